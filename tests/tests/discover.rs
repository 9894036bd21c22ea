//! `mailhost discover` against a real DNS server on loopback (hickory-server,
//! started here) whose SRV and MX records point at the running peers, and a
//! local HTTPS autoconfig server with the peers' certificate. Hostile DNS,
//! HTTPS and SMTP answers come from small servers here (no real server sends
//! garbage on purpose). Never the internet.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, MX, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use mailhost_tests::{mailhost_bin, peer_ca, peers_dir};
use predicates::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mailhost(cwd: &Path) -> Command {
    let mut c = Command::new(mailhost_bin());
    c.current_dir(cwd)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    c
}

/// A fully qualified name (records outside their zone would be dropped silently).
fn name(s: &str) -> Name {
    assert!(s.ends_with('.'), "`{s}` must end with a dot");
    Name::from_ascii(s).unwrap()
}

fn srv(owner: &str, priority: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, 1, port, name(target))),
    )
}

fn mx(owner: &str, preference: u16, exchange: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::MX(MX::new(preference, name(exchange))),
    )
}

fn a(owner: &str) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::LOCALHOST)))
}

/// A running authoritative DNS server (UDP and TCP on one loopback port),
/// stopped when dropped.
struct Dns {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn dns_server(zones: &[(&str, Vec<Record>)]) -> Dns {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut catalog = Catalog::new();
    for (origin, records) in zones {
        let origin_name = name(origin);
        let mut zone = InMemoryAuthority::empty(origin_name.clone(), ZoneType::Primary, false);
        zone.upsert_mut(
            Record::from_rdata(
                origin_name.clone(),
                60,
                RData::SOA(SOA::new(
                    name(&format!("ns.{origin}")),
                    name(&format!("hostmaster.{origin}")),
                    1,
                    60,
                    60,
                    600,
                    60,
                )),
            ),
            0,
        );
        for r in records {
            zone.upsert_mut(r.clone(), 0);
        }
        let zone: Arc<dyn AuthorityObject> = Arc::new(zone);
        catalog.upsert(LowerName::from(origin_name), vec![zone]);
    }
    let addr = rt.block_on(async {
        // UDP and TCP on one port: the UDP port chosen may be taken for TCP; try again
        let mut bound = None;
        for _ in 0..50 {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                bound = Some((udp, tcp, addr));
                break;
            }
        }
        let (udp, tcp, addr) = bound.expect("a port free for both UDP and TCP");
        let mut server = ServerFuture::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5));
        tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        addr
    });
    Dns { addr, _rt: rt }
}

/// A small HTTPS server with the peers' certificate: path → (status, body).
struct Https {
    port: u16,
    _rt: tokio::runtime::Runtime,
}

fn https_server(routes: Vec<(&'static str, u16, Vec<u8>)>) -> Https {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let tls = peers_dir().join("tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls.join("cert.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls.join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let routes = Arc::new(routes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let routes = routes.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let routes = routes.clone();
                        async move {
                            let (status, body) = routes
                                .iter()
                                .find(|(p, _, _)| *p == req.uri().path())
                                .map(|(_, s, b)| (*s, b.clone()))
                                .unwrap_or((404, b"not found".to_vec()));
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "text/xml")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        port
    });
    Https { port, _rt: rt }
}

/// The mailbox provider of the peers: submission and IMAP side by side.
fn provider_zone(domain: &str) -> Vec<Record> {
    vec![
        srv(
            &format!("_submissions._tcp.{domain}."),
            0,
            2465,
            "localhost.",
        ),
        srv(
            &format!("_submission._tcp.{domain}."),
            10,
            2587,
            "localhost.",
        ),
        srv(&format!("_imaps._tcp.{domain}."), 0, 1993, "localhost."),
        srv(&format!("_imap._tcp.{domain}."), 10, 1143, "localhost."),
        mx(&format!("{domain}."), 10, "localhost."),
    ]
}

fn localhost_zone() -> (&'static str, Vec<Record>) {
    ("localhost.", vec![a("localhost.")])
}

#[test]
fn srv_records_lead_to_the_peers_and_the_block_is_a_valid_config() {
    let dns = dns_server(&[
        ("example.test.", provider_zone("example.test")),
        localhost_zone(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let ca = peer_ca();
    let out = mailhost(dir.path())
        .args(["discover", "jo@example.test", "--no-autoconfig"])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(&ca)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    println!("{out}");
    // SRV _submissions (implicit TLS, priority 0) wins over _submission.
    assert!(out.contains("[accounts.example]\n"), "{out}");
    assert!(
        out.contains("host = \"localhost\"\nport = 2465\nsecurity = \"tls\"\n"),
        "{out}"
    );
    assert!(
        out.contains("# AUTH offered: PLAIN LOGIN CRAM-MD5"),
        "{out}"
    );
    assert!(out.contains("certificate verified"), "{out}");
    assert!(
        out.contains("# IMAP (same mailbox): localhost:1993 implicit TLS"),
        "{out}"
    );
    assert!(
        out.contains("[ok  ] smtp localhost:2587 STARTTLS"),
        "STARTTLS verified too: {out}"
    );
    assert!(
        out.contains("password = \"env:EXAMPLE_SMTP_PASSWORD\""),
        "{out}"
    );

    // The printed block is a config the host accepts as it is.
    let block = &out[out.find("# found by").unwrap()..];
    let cfg = dir.path().join("mailhost.toml");
    std::fs::write(&cfg, block).unwrap();
    mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["config", "validate"])
        .env("EXAMPLE_SMTP_PASSWORD", "testpass")
        .assert()
        .success()
        .stdout(predicate::str::contains("valid (1 account(s)"));
}

#[test]
fn json_report_says_what_was_verified_where_it_came_from() {
    let dns = dns_server(&[
        ("example.test.", provider_zone("example.test")),
        localhost_zone(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "--json",
            "discover",
            "jo@example.test",
            "--no-autoconfig",
            "--name",
            "office",
        ])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(peer_ca())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let smtp = &v["chosen_smtp"];
    assert_eq!(smtp["port"], 2465);
    assert_eq!(smtp["security"], "tls");
    assert_eq!(smtp["source"], "SRV _submissions._tcp.example.test");
    assert_eq!(smtp["tls"]["verified"], true);
    assert!(smtp["auth"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "PLAIN"));
    let imap = &v["chosen_imap"];
    assert_eq!(imap["port"], 1993);
    assert!(imap["auth"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "PLAIN"));
    // Dovecot on 1143 after STARTTLS, verified as well
    let imap_all = v["imap"].as_array().unwrap();
    assert!(imap_all
        .iter()
        .any(|p| p["port"] == 1143 && p["verified"] == true && p["security"] == "starttls"));
    let dns_queries: Vec<&str> = v["dns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["query"].as_str().unwrap())
        .collect();
    assert!(dns_queries.contains(&"MX example.test"), "{dns_queries:?}");
    assert!(v["account_toml"]
        .as_str()
        .unwrap()
        .contains("[accounts.office]"));
    // nothing was guessed: SRV answered
    assert!(v["smtp"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["source"] != "guess"));
}

#[test]
fn without_the_private_ca_the_certificate_is_refused_and_nothing_is_proposed() {
    let dns = dns_server(&[
        ("example.test.", provider_zone("example.test")),
        localhost_zone(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args([
            "discover",
            "jo@example.test",
            "--no-autoconfig",
            "--smtp-port",
            "2587:starttls",
            "--imap-port",
            "1143:starttls",
        ])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .assert()
        .code(69)
        .stdout(
            predicate::str::contains("certificate is not valid for localhost")
                .and(predicate::str::contains("--ca-file"))
                .and(predicate::str::contains("[accounts.").not()),
        )
        .stderr(predicate::str::contains(
            "no submission server for jo@example.test could be verified",
        ));
}

#[test]
fn autoconfig_over_https_names_the_submission_service() {
    let dns = dns_server(&[("auto.test.", vec![]), localhost_zone()]);
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="auto.test">
    <domain>auto.test</domain>
    <incomingServer type="imap">
      <hostname>localhost</hostname><port>1143</port><socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication><username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>localhost</hostname><port>1465</port><socketType>SSL</socketType>
      <authentication>password-cleartext</authentication><username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;
    let web = https_server(vec![("/mail/config-v1.1.xml", 200, xml.to_vec())]);
    let url = format!(
        "https://localhost:{}/mail/config-v1.1.xml?emailaddress=jo@auto.test",
        web.port
    );
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "--json",
            "discover",
            "jo@auto.test",
            "--autoconfig-url",
            &url,
        ])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(peer_ca())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["autoconfig"][0]["servers"].as_array().unwrap().len(),
        2,
        "{v:#}"
    );
    let smtp = &v["chosen_smtp"];
    assert_eq!(smtp["port"], 1465, "Dovecot's submission: {v:#}");
    assert_eq!(smtp["source"], format!("autoconfig {url}"));
    assert_eq!(smtp["tls"]["verified"], true);
    assert!(smtp["auth"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "PLAIN"));
    assert_eq!(v["chosen_imap"]["port"], 1143);
    assert_eq!(v["chosen_imap"]["security"], "starttls");
}

#[test]
fn autoconfig_host_names_are_resolved_by_the_given_resolver() {
    // `web.auto.test` exists only in the test's DNS server: reaching the HTTPS
    // server (whose certificate names localhost, not web.auto.test) proves it.
    let dns = dns_server(&[("auto.test.", vec![a("web.auto.test.")]), localhost_zone()]);
    let web = https_server(vec![(
        "/mail/config-v1.1.xml",
        200,
        b"<clientConfig/>".to_vec(),
    )]);
    let url = format!("https://web.auto.test:{}/mail/config-v1.1.xml", web.port);
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "--json",
            "discover",
            "jo@auto.test",
            "--autoconfig-url",
            &url,
        ])
        .args(["--smtp-port", "1:tls", "--imap-port", "1:tls"])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(peer_ca())
        .assert()
        .code(69)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let e = v["autoconfig"][0]["error"].as_str().unwrap();
    assert!(
        e.starts_with("the server's certificate is not trusted"),
        "connected to the test server, refused its name: {e}"
    );
}

#[test]
fn mx_and_likely_names_are_probed_when_nothing_names_the_service() {
    let dns = dns_server(&[
        ("mx.test.", vec![mx("mx.test.", 10, "localhost.")]),
        localhost_zone(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "discover",
            "jo@mx.test",
            "--no-autoconfig",
            "--smtp-port",
            "2587:starttls",
            "--imap-port",
            "1993:tls",
        ])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(peer_ca())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("dns  MX mx.test"), "{out}");
    assert!(
        out.contains("[FAIL] smtp smtp.mx.test:2587 smtp.mx.test: no such name"),
        "{out}"
    );
    assert!(out.contains("[ok  ] smtp localhost:2587 STARTTLS"), "{out}");
    assert!(
        out.contains("port = 2587\nsecurity = \"starttls\""),
        "{out}"
    );
    assert!(
        out.contains("# IMAP (same mailbox): localhost:1993"),
        "{out}"
    );
}

/// A DNS "server" that answers every query with garbage: a short packet, a
/// packet with the right id and a truncated body, random bytes.
fn garbage_dns() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut n = 0u32;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            n += 1;
            let reply: Vec<u8> = match n % 3 {
                0 => vec![0xff],
                // same id, "response" bit, 1 answer claimed, then nothing
                1 => vec![buf[0], buf[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0],
                _ => buf[..len]
                    .iter()
                    .rev()
                    .copied()
                    .chain(std::iter::repeat_n(0xc0, 64))
                    .collect(),
            };
            let _ = sock.send_to(&reply, from);
        }
    });
    (addr, h)
}

#[test]
fn hostile_dns_answers_end_in_a_report_not_a_panic() {
    let (addr, _h) = garbage_dns();
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args([
            "discover",
            "jo@example.test",
            "--no-autoconfig",
            "--step-timeout-ms",
            "500",
            "--timeout-ms",
            "8000",
        ])
        .arg("--resolver")
        .arg(addr.to_string())
        .assert()
        .code(69)
        .stdout(predicate::str::contains(
            "dns  SRV _submissions._tcp.example.test",
        ))
        .stderr(predicate::str::contains("panicked").not());
}

/// SMTP "servers" that misbehave: an endless line, an endless reply, silence.
fn hostile_smtp(kind: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    match kind {
                        "long" => {
                            let _ = s.write_all(b"220 ").await;
                            let chunk = vec![b'x'; 64 * 1024];
                            for _ in 0..64 {
                                if s.write_all(&chunk).await.is_err() {
                                    break;
                                }
                            }
                        }
                        "endless" => {
                            let _ = s.write_all(b"220 hi\r\n").await;
                            let mut b = [0u8; 512];
                            let _ = s.read(&mut b).await;
                            for _ in 0..100_000 {
                                if s.write_all(b"250-AUTH PLAIN\r\n").await.is_err() {
                                    break;
                                }
                            }
                        }
                        "inject" => {
                            let _ = s.write_all(b"220 hi\r\n").await;
                            let mut b = [0u8; 512];
                            let _ = s.read(&mut b).await;
                            let _ = s.write_all(b"250-hi\r\n250 STARTTLS\r\n").await;
                            let _ = s.read(&mut b).await;
                            // STARTTLS answered together with plaintext meant for after the handshake
                            let _ = s.write_all(b"220 go ahead\r\n250 AUTH PLAIN\r\n").await;
                            let _ = s.read(&mut b).await;
                        }
                        _ => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                    drop(s);
                });
            }
        });
    });
    port
}

#[test]
fn hostile_smtp_servers_and_autoconfig_documents_are_bounded() {
    let long = hostile_smtp("long");
    let endless = hostile_smtp("endless");
    let inject = hostile_smtp("inject");
    let silent = hostile_smtp("silent");
    let dns = dns_server(&[
        (
            "hostile.test.",
            vec![
                srv("_submission._tcp.hostile.test.", 0, long, "localhost."),
                srv("_submission._tcp.hostile.test.", 1, endless, "localhost."),
                srv("_submission._tcp.hostile.test.", 2, inject, "localhost."),
                srv("_submission._tcp.hostile.test.", 3, silent, "localhost."),
                srv("_submission._tcp.hostile.test.", 4, 0, "localhost."),
                srv("_submissions._tcp.hostile.test.", 0, 465, "."),
            ],
        ),
        localhost_zone(),
    ]);
    let bomb = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><clientConfig>&b;</clientConfig>"#;
    let web = https_server(vec![
        ("/bomb.xml", 200, bomb.to_vec()),
        ("/huge.xml", 200, vec![b' '; 1024 * 1024]),
        (
            "/html.xml",
            200,
            b"<html><body>Welcome</body></html>".to_vec(),
        ),
        ("/gone.xml", 500, b"oops".to_vec()),
    ]);
    let url = |p: &str| format!("https://localhost:{}{p}", web.port);
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "discover",
            "jo@hostile.test",
            "--smtp-port",
            "1:tls",
            "--imap-port",
            "1:tls",
            "--step-timeout-ms",
            "1000",
            "--timeout-ms",
            "20000",
        ])
        .args(["--autoconfig-url", &url("/bomb.xml")])
        .args(["--autoconfig-url", &url("/huge.xml")])
        .args(["--autoconfig-url", &url("/html.xml")])
        .args(["--autoconfig-url", &url("/gone.xml")])
        .args(["--autoconfig-url", "http://localhost/plain.xml"])
        .arg("--resolver")
        .arg(dns.addr.to_string())
        .arg("--ca-file")
        .arg(peer_ca())
        .assert()
        .code(69)
        .stderr(predicate::str::contains("panicked").not())
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    println!("{out}");
    for expected in [
        "the domain says it does not offer this service",
        "port 0 ignored",
        &format!("smtp localhost:{long} the server sent a line longer than 4096 bytes"),
        &format!("smtp localhost:{endless} a reply of more than 100 lines"),
        &format!("smtp localhost:{inject} the server sent data after agreeing to STARTTLS"),
        &format!("smtp localhost:{silent} no answer within 1000 ms"),
        "not a well-formed autoconfig document",
        "the document is larger than 65536 bytes",
        "the root element is <html>",
        "HTTP 500",
        "only HTTPS autoconfig URLs are used",
        "no submission server could be verified",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn a_silent_dns_server_is_bounded_by_the_overall_limit() {
    // bound, never read: every query times out
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args([
            "discover",
            "jo@example.test",
            "--no-autoconfig",
            "--step-timeout-ms",
            "800",
            "--timeout-ms",
            "1200",
        ])
        .arg("--resolver")
        .arg(silent.local_addr().unwrap().to_string())
        .assert()
        .code(69)
        .stdout(predicate::str::contains(
            "the overall time limit (1200 ms) ran out; raise --timeout-ms to look further",
        ));
}

#[test]
fn a_bad_address_is_a_usage_error_in_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args(["--json", "discover", "not-an-address"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains(
            "`not-an-address` is not an email address (user@domain)",
        ))
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], "usage");
    assert_eq!(v["error"]["exit_code"], 64);
}
