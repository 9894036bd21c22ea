//! The host's OAuth2 token broker against the Graph double's token endpoint
//! (real HTTPS with the peers' CA): caching, sharing, expiry, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use mailhost::tokens::TokenBroker;
use mailhost_plugin_api::ErrorClass;
use mailhost_tests::graph::{broker, broker_with, oauth_client, StrictDouble, SCOPE, SHARED};

#[test]
fn one_token_request_for_100_calls() {
    let double = StrictDouble::start(None);
    let b = broker(&double.url());
    let first = b.token("m365", SCOPE, false).unwrap();
    for _ in 0..99 {
        assert_eq!(b.token("m365", SCOPE, false).unwrap(), first);
    }
    assert_eq!(double.stats()["tokenRequests"], 1);
    assert_eq!(b.stats().requests, 1);
    assert_eq!(b.stats().cache_hits, 99);
}

#[test]
fn concurrent_first_callers_share_one_request() {
    let double = StrictDouble::start(None);
    let b = broker(&double.url());
    let barrier = Arc::new(Barrier::new(16));
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                s.spawn(move || {
                    barrier.wait();
                    b.token("m365", SCOPE, false).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(double.stats()["tokenRequests"], 1);
}

#[test]
fn scopes_are_cached_apart_and_force_refresh_fetches_anew() {
    let double = StrictDouble::start(None);
    let b = broker(&double.url());
    let graph = b.token("m365", SCOPE, false).unwrap();
    let outlook = b
        .token("m365", "https://outlook.office365.com/.default", false)
        .unwrap();
    assert_ne!(graph, outlook);
    let fresh = b.token("m365", SCOPE, true).unwrap();
    assert_ne!(fresh, graph);
    assert_eq!(b.token("m365", SCOPE, false).unwrap(), fresh);
    assert_eq!(double.stats()["tokenRequests"], 3);
}

#[test]
fn expired_token_is_fetched_again() {
    // Tokens that live 2 s: the broker hands one out until shortly before expiry.
    let double = StrictDouble::start(Some(2));
    let b = broker(&double.url());
    let first = b.token("m365", SCOPE, false).unwrap();
    assert_eq!(b.token("m365", SCOPE, false).unwrap(), first);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = b.token("m365", SCOPE, false).unwrap();
    assert_ne!(first, second);
    assert_eq!(double.stats()["tokenRequests"], 2);
}

#[test]
fn works_from_inside_a_tokio_runtime() {
    let b = broker(SHARED);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let token = rt.block_on(async {
        let b2 = b.clone();
        // On a worker thread itself, and from a spawned task.
        let direct = b.token("m365", SCOPE, false).unwrap();
        let spawned = tokio::spawn(async move { b2.token("m365", SCOPE, false).unwrap() })
            .await
            .unwrap();
        assert_eq!(direct, spawned);
        direct
    });
    assert_eq!(token.split('.').count(), 3, "a JWT-shaped token");
    drop(rt);
    // Dropping the broker inside a runtime must not panic either.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move { drop(b) });
}

#[test]
fn wrong_secret_is_auth_naming_the_cause_without_the_secret() {
    let secret = "wrong-secret-7f3a9c";
    let b = broker_with(oauth_client(SHARED, "test-client", secret));
    let e = b.token("m365", SCOPE, false).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    let text = e.message();
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(text.contains("invalid client secret"), "{text}");
    assert!(text.contains("[oauth.m365]"), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(!format!("{e:?} {b:?}").contains(secret));
}

#[test]
fn unknown_tenant_and_unknown_app_say_so() {
    let mut c = oauth_client(SHARED, "test-client", "test-secret");
    c.tenant = "no-such-tenant".into();
    let e = broker_with(c).token("m365", SCOPE, false).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(
        e.message().contains("AADSTS90002") && e.message().contains("unknown tenant"),
        "{e}"
    );

    let e = broker_with(oauth_client(SHARED, "no-such-app", "test-secret"))
        .token("m365", SCOPE, false)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert!(
        e.message().contains("AADSTS700016") && e.message().contains("unknown application"),
        "{e}"
    );
}

#[test]
fn scope_without_default_is_config() {
    let e = broker(SHARED)
        .token("m365", "Mail.Send", false)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(e.message().contains("AADSTS1002012"), "{e}");
}

#[test]
fn untrusted_certificate_is_config() {
    let mut c = oauth_client(SHARED, "test-client", "test-secret");
    c.ca_file = None;
    let e = broker_with(c).token("m365", SCOPE, false).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(e.message().contains("certificate"), "{e}");
}

#[test]
fn unreachable_authority_is_transient() {
    // A port nobody listens on: take a free one and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = broker(&format!("https://127.0.0.1:{port}"))
        .token("m365", SCOPE, false)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[test]
fn unknown_provider_is_config() {
    let e = TokenBroker::default()
        .token("m365", SCOPE, false)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG);
}
