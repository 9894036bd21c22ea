//! Table-driven policy tests: realistic settings, different probe results,
//! user selection on/off, tenants, kill switch, preferred sender, purposes.

use std::collections::BTreeMap;

use mailhost::config::{
    Account, Loc, PolicySettings, Purpose, Settings, Tenant, User, UserAccount,
};
use mailhost::policy::{decide, Action, ProbeResult, Request, World};
use mailhost_plugin_api::Capabilities;

fn account(name: &str, plugin: &str, modes: &[&str]) -> (String, Account) {
    (
        name.to_string(),
        Account {
            name: name.into(),
            plugin: plugin.into(),
            from: Some(format!("{name}@example.com")),
            max_per_minute: None,
            max_concurrent: None,
            max_age_secs: None,
            description: String::new(),
            save_copy_to: None,
            settings: serde_json::json!({}),
            modes: modes.iter().map(|m| m.to_string()).collect(),
            loc: Loc {
                file: "t.toml".into(),
                line: 1,
                col: 1,
            },
            preset: None,
        },
    )
}

/// An office with an SMTP account, a Microsoft 365 account, a pickup archive,
/// two tenants (one with its own account), users and purposes.
fn settings() -> Settings {
    let accounts: BTreeMap<String, Account> = [
        account("office", "smtp", &["smtp"]),
        account("m365", "graph", &["graph", "m365-draft"]),
        account("archive", "pickup", &["pickup"]),
        account("acme-smtp", "smtp", &["smtp"]),
        account("imap", "imap", &["imap-draft"]),
    ]
    .into_iter()
    .collect();
    let loc = Loc {
        file: "t.toml".into(),
        line: 2,
        col: 1,
    };
    let tenants = [
        ("acme", Some("acme-smtp"), true),
        ("globex", None, true),
        ("frozen", Some("acme-smtp"), false),
    ]
    .into_iter()
    .map(|(n, a, e)| {
        (
            n.to_string(),
            Tenant {
                name: n.into(),
                account: a.map(String::from),
                from: None,
                enabled: e,
                support_address: None,
                loc: loc.clone(),
            },
        )
    })
    .collect();
    let mut users = BTreeMap::new();
    let user = |n: &str, send: Option<&str>, compose: Option<&str>, tenant: Option<&str>| User {
        name: n.into(),
        send_mode: send.map(String::from),
        compose_mode: compose.map(String::from),
        tenant: tenant.map(String::from),
        from: None,
        accounts: BTreeMap::new(),
        loc: loc.clone(),
    };
    users.insert(
        "alice".to_string(),
        user("alice", Some("outlook"), Some("m365-draft"), None),
    );
    users.insert(
        "bob".to_string(),
        user("bob", Some("office"), Some("imap-draft"), Some("acme")),
    );
    users.insert("carol".to_string(), user("carol", None, None, None));
    let mut dave = user("dave", Some("smtp"), None, None);
    dave.accounts.insert(
        "office".into(),
        UserAccount {
            username: Some("dave@example.com".into()),
            password: Some("env:DAVE".into()),
            mailbox: None,
        },
    );
    users.insert("dave".to_string(), dave);
    let mut purposes = BTreeMap::new();
    purposes.insert(
        "pin-request".to_string(),
        Purpose {
            name: "pin-request".into(),
            accounts: vec!["office".into()],
            allow_sender: false,
            allowed_recipients: vec!["@example.com".into(), "partner.org".into()],
            default_from: Some("noreply@example.com".into()),
            support_address: None,
            attach_system_info: false,
            allow_client_support_address: false,
            loc: loc.clone(),
        },
    );
    purposes.insert(
        "support".to_string(),
        Purpose {
            name: "support".into(),
            accounts: vec![],
            allow_sender: true,
            allowed_recipients: vec!["support@vendor.example".into()],
            default_from: None,
            support_address: Some("support@vendor.example".into()),
            attach_system_info: true,
            allow_client_support_address: false,
            loc: loc.clone(),
        },
    );
    purposes.insert(
        "scan-to-email".to_string(),
        Purpose {
            name: "scan-to-email".into(),
            accounts: vec!["archive".into()],
            allow_sender: false,
            allowed_recipients: vec![],
            default_from: None,
            support_address: None,
            attach_system_info: false,
            allow_client_support_address: false,
            loc,
        },
    );
    Settings {
        source: "t.toml".into(),
        base_dir: ".".into(),
        policy: PolicySettings {
            account: Some("office".into()),
            ..PolicySettings::default()
        },
        oauth: BTreeMap::new(),
        accounts,
        tenants,
        users,
        purposes,
        limits: Default::default(),
        outbox: Default::default(),
        api: Default::default(),
        warnings: vec![],
    }
}

fn probe(available: bool, level: &str) -> ProbeResult {
    ProbeResult {
        available,
        level: level.into(),
        reason: if available {
            String::new()
        } else {
            "not installed".into()
        },
    }
}

/// A Windows desktop: Outlook Classic and a MAPI client, as given.
fn world(outlook: Option<bool>, mapi: Option<&str>) -> World {
    let mut w = World::default();
    let both = Capabilities::SEND | Capabilities::COMPOSE;
    for (p, modes, caps) in [
        ("smtp", vec!["smtp"], Capabilities::SEND),
        ("graph", vec!["graph", "m365-draft"], both),
        ("pickup", vec!["pickup"], Capabilities::SEND),
        ("imap", vec!["imap-draft"], both),
        ("outlook", vec![], both),
        ("mapi", vec![], both),
    ] {
        w.capabilities.insert(p.into(), caps);
        if modes.is_empty() {
            continue;
        }
        w.plugin_modes
            .insert(p.into(), modes.into_iter().map(String::from).collect());
        w.probes.insert(p.into(), probe(true, ""));
    }
    // These need an account's settings; outlook and mapi do not.
    for p in ["smtp", "graph", "pickup", "imap"] {
        w.needs_account.insert(p.into());
    }
    if let Some(o) = outlook {
        w.plugin_modes
            .insert("outlook".into(), vec!["outlook".into()]);
        w.probes.insert("outlook".into(), probe(o, ""));
    }
    if let Some(level) = mapi {
        w.plugin_modes.insert(
            "mapi".into(),
            vec!["mapi-full".into(), "mapi-simple".into()],
        );
        w.probes.insert(
            "mapi".into(),
            if level == "none" {
                probe(false, "")
            } else {
                probe(true, level)
            },
        );
    }
    w
}

struct Case {
    name: &'static str,
    tweak: fn(&mut Settings),
    world: World,
    action: Action,
    req: Request,
    /// Expected chain labels, or `Err(substring of the refusal)`.
    expect: Result<Vec<&'static str>, &'static str>,
}

fn req(user: Option<&str>, tenant: Option<&str>, purpose: Option<&str>) -> Request {
    Request {
        user: user.map(String::from),
        tenant: tenant.map(String::from),
        purpose: purpose.map(String::from),
        ..Request::default()
    }
}

fn none(_: &mut Settings) {}

/// Tenants stay; no policy.account, and the only graph/smtp account left is a tenant's.
fn no_global_account(s: &mut Settings) {
    s.policy.account = None;
    s.accounts.remove("office");
    s.accounts.remove("m365");
}

fn cases() -> Vec<Case> {
    use Action::{Compose, Send};
    let full = || world(Some(true), Some("full"));
    let bare = || world(None, None);
    vec![
        Case {
            name: "send autodetect: system account then desktop ways",
            tweak: none,
            world: full(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec![
                "office",
                "mode:outlook",
                "mode:mapi-full",
                "mode:mapi-simple",
            ]),
        },
        Case {
            name: "send autodetect on Linux: only the account",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "send autodetect, outlook not installed",
            tweak: none,
            world: world(Some(false), Some("simple")),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office", "mode:mapi-simple"]),
        },
        Case {
            name: "send autodetect, default client has no MAPI",
            tweak: none,
            world: world(Some(false), Some("none")),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "send autodetect skips an unreachable account",
            tweak: none,
            world: {
                let mut w = full();
                w.unreachable
                    .insert("office".into(), "connection refused".into());
                w
            },
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["mode:outlook", "mode:mapi-full", "mode:mapi-simple"]),
        },
        Case {
            name: "send mode = account name",
            tweak: |s| s.policy.send_mode = "m365".into(),
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["m365", "office"]),
        },
        Case {
            name: "send mode smtp picks the system smtp account",
            tweak: |s| s.policy.send_mode = "smtp".into(),
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office", "acme-smtp"]),
        },
        Case {
            name: "send mode graph",
            tweak: |s| s.policy.send_mode = "graph".into(),
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["m365", "office"]),
        },
        Case {
            name: "send mode outlook available, system account as fallback",
            tweak: |s| s.policy.send_mode = "outlook".into(),
            world: full(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["mode:outlook", "office"]),
        },
        Case {
            name: "send mode outlook unavailable → the system account",
            tweak: |s| s.policy.send_mode = "outlook".into(),
            world: world(Some(false), None),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "send mode mapi-simple with a full client",
            tweak: |s| s.policy.send_mode = "mapi-simple".into(),
            world: full(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["mode:mapi-simple", "office"]),
        },
        Case {
            name: "send mode mapi-full with a simple-only client → the system account",
            tweak: |s| s.policy.send_mode = "mapi-full".into(),
            world: world(None, Some("simple")),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "user selection allowed: alice's outlook",
            tweak: none,
            world: full(),
            action: Send,
            req: req(Some("alice"), None, None),
            expect: Ok(vec!["mode:outlook", "office"]),
        },
        Case {
            name: "user selection off: alice gets the system mode",
            tweak: |s| s.policy.allow_user_send_selection = false,
            world: full(),
            action: Send,
            req: req(Some("alice"), None, None),
            expect: Ok(vec![
                "office",
                "mode:outlook",
                "mode:mapi-full",
                "mode:mapi-simple",
            ]),
        },
        Case {
            name: "user without modes gets the system mode",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(Some("carol"), None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "unknown user is treated as no user choice",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(Some("nobody"), None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "request mode wins when allowed",
            tweak: none,
            world: bare(),
            action: Send,
            req: Request {
                mode: Some("archive".into()),
                ..req(None, None, None)
            },
            expect: Ok(vec!["archive", "office"]),
        },
        Case {
            name: "request mode ignored when user selection is off",
            tweak: |s| s.policy.allow_user_send_selection = false,
            world: bare(),
            action: Send,
            req: Request {
                mode: Some("archive".into()),
                ..req(None, None, None)
            },
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "tenant with its own account, global as fallback",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, Some("acme"), None),
            expect: Ok(vec!["acme-smtp", "office"]),
        },
        Case {
            name: "tenant without account uses the global one",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, Some("globex"), None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "user's tenant applies when the request names none",
            tweak: |s| s.policy.allow_user_send_selection = false,
            world: bare(),
            action: Send,
            req: req(Some("bob"), None, None),
            expect: Ok(vec!["acme-smtp", "office"]),
        },
        Case {
            name: "bob chose account office; tenant fallback follows",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(Some("bob"), None, None),
            expect: Ok(vec!["office", "acme-smtp"]),
        },
        Case {
            name: "unknown tenant refused",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, Some("initech"), None),
            expect: Err("tenant `initech` is not configured"),
        },
        Case {
            name: "disabled tenant refused",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, Some("frozen"), None),
            expect: Err("switched off for tenant `frozen`"),
        },
        Case {
            name: "kill switch stops everything",
            tweak: |s| s.policy.enabled = false,
            world: full(),
            action: Send,
            req: req(None, None, None),
            expect: Err("switched off for everyone"),
        },
        Case {
            name: "kill switch stops tenant accounts too",
            tweak: |s| s.policy.enabled = false,
            world: bare(),
            action: Send,
            req: req(None, Some("acme"), None),
            expect: Err("switched off for everyone"),
        },
        Case {
            name: "kill switch stops compose",
            tweak: |s| s.policy.enabled = false,
            world: full(),
            action: Compose,
            req: req(None, None, None),
            expect: Err("switched off for everyone"),
        },
        Case {
            name: "preferred sender graph when account unset",
            tweak: |s| s.policy.account = None,
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["m365"]),
        },
        Case {
            // `acme-smtp` is tenant acme's own account: never the global one.
            name: "preferred sender smtp when account unset",
            tweak: |s| {
                s.policy.account = None;
                s.policy.preferred_sender = "smtp".into();
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "only smtp accounts: smtp regardless of preference",
            tweak: |s| {
                s.policy.account = None;
                s.accounts.remove("m365");
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "purpose with allowed recipients and accounts",
            tweak: none,
            world: bare(),
            action: Send,
            req: Request {
                recipients: vec!["x@example.com".into(), "y@partner.org".into()],
                ..req(None, None, Some("pin-request"))
            },
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "purpose refuses a recipient outside its list",
            tweak: none,
            world: bare(),
            action: Send,
            req: Request {
                recipients: vec!["x@evil.example".into()],
                ..req(None, None, Some("pin-request"))
            },
            expect: Err("may not send to x@evil.example"),
        },
        Case {
            name: "purpose refuses a sender override",
            tweak: none,
            world: bare(),
            action: Send,
            req: Request {
                from: Some("me@example.com".into()),
                recipients: vec!["x@example.com".into()],
                ..req(None, None, Some("pin-request"))
            },
            expect: Err("does not let the request set its From"),
        },
        Case {
            name: "support purpose allows its sender",
            tweak: none,
            world: bare(),
            action: Send,
            req: Request {
                from: Some("me@example.com".into()),
                recipients: vec!["support@vendor.example".into()],
                ..req(None, None, Some("support"))
            },
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "purpose restricts accounts away from the mode",
            tweak: none,
            world: full(),
            action: Send,
            req: req(Some("alice"), None, Some("scan-to-email")),
            expect: Ok(vec!["archive"]),
        },
        Case {
            name: "unknown purpose refused",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(None, None, Some("marketing")),
            expect: Err("purpose `marketing` is not configured"),
        },
        Case {
            name: "compose autodetect: outlook first",
            tweak: none,
            world: full(),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec![
                "mode:outlook",
                "mode:mapi-full",
                "mode:mapi-simple",
                "builtin",
            ]),
        },
        Case {
            name: "compose autodetect without outlook: MAPI level",
            tweak: none,
            world: world(Some(false), Some("simple")),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec!["mode:mapi-simple", "builtin"]),
        },
        Case {
            name: "compose autodetect on Linux: builtin",
            tweak: none,
            world: bare(),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec!["builtin"]),
        },
        Case {
            name: "compose m365-draft for alice",
            tweak: none,
            world: bare(),
            action: Compose,
            req: req(Some("alice"), None, None),
            expect: Ok(vec!["m365"]),
        },
        Case {
            name: "compose m365-draft removed when web is off → system compose mode",
            tweak: |s| s.policy.allow_microsoft365_web = false,
            world: bare(),
            action: Compose,
            req: req(Some("alice"), None, None),
            expect: Ok(vec!["builtin"]),
        },
        Case {
            name: "compose imap-draft for bob",
            tweak: none,
            world: bare(),
            action: Compose,
            req: req(Some("bob"), None, None),
            expect: Ok(vec!["imap"]),
        },
        Case {
            name: "compose user selection off ignores alice",
            tweak: |s| s.policy.allow_user_compose_selection = false,
            world: world(Some(true), None),
            action: Compose,
            req: req(Some("alice"), None, None),
            expect: Ok(vec!["mode:outlook", "builtin"]),
        },
        Case {
            name: "compose system mode builtin",
            tweak: |s| s.policy.compose_mode = "builtin".into(),
            world: full(),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec!["builtin"]),
        },
        Case {
            name: "custom send autodetect order",
            tweak: |s| s.policy.send_autodetect = vec!["mapi-simple".into(), "account".into()],
            world: full(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["mode:mapi-simple", "office"]),
        },
        Case {
            name: "custom compose order with m365 draft first",
            tweak: |s| s.policy.compose_autodetect = vec!["m365-draft".into(), "builtin".into()],
            world: bare(),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec!["m365", "builtin"]),
        },
        Case {
            name: "custom compose order, web off skips m365",
            tweak: |s| {
                s.policy.compose_autodetect = vec!["m365-draft".into(), "builtin".into()];
                s.policy.allow_microsoft365_web = false;
            },
            world: bare(),
            action: Compose,
            req: req(None, None, None),
            expect: Ok(vec!["builtin"]),
        },
        Case {
            name: "dave's smtp mode uses the system smtp account",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(Some("dave"), None, None),
            expect: Ok(vec!["office", "acme-smtp"]),
        },
        Case {
            name: "alice's outlook missing on Linux: system mode instead",
            tweak: none,
            world: bare(),
            action: Send,
            req: req(Some("alice"), None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "explicit system mode with nothing behind it is refused",
            tweak: |s| {
                s.policy.send_mode = "outlook".into();
                s.policy.account = None;
                s.accounts.clear();
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Err("no way to send"),
        },
        // No global account, no sending: with tenants configured and neither
        // policy.account nor an account for preferred_sender to pick (tenant
        // accounts never are), no send goes through an account.
        Case {
            name: "no global account: a send is refused",
            tweak: no_global_account,
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Err("sending through accounts is disabled"),
        },
        Case {
            name: "no global account: the tenant's own account is refused too",
            tweak: no_global_account,
            world: bare(),
            action: Send,
            req: req(None, Some("acme"), None),
            expect: Err("so no account may send (`acme-smtp`), tenant accounts included"),
        },
        Case {
            name: "no global account: an account chosen by name is refused",
            tweak: no_global_account,
            world: bare(),
            action: Send,
            req: Request {
                mode: Some("archive".into()),
                ..req(None, None, None)
            },
            expect: Err("sending through accounts is disabled"),
        },
        Case {
            name: "no global account: desktop modes still send",
            tweak: no_global_account,
            world: full(),
            action: Send,
            req: req(None, Some("acme"), None),
            expect: Ok(vec!["mode:outlook", "mode:mapi-full", "mode:mapi-simple"]),
        },
        Case {
            name: "no global account: compose is not a send",
            tweak: no_global_account,
            world: bare(),
            action: Compose,
            req: req(Some("bob"), None, None),
            expect: Ok(vec!["imap"]),
        },
        Case {
            name: "no tenants: the global account may be any smtp account",
            tweak: |s| {
                no_global_account(s);
                s.tenants.clear();
                s.policy.send_mode = "archive".into();
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["archive", "acme-smtp"]),
        },
        // allow_microsoft365_web = false: Microsoft 365 is no option for users
        // or modes; a Graph system account still sends.
        Case {
            name: "web off: a user's graph send mode is ignored",
            tweak: |s| s.policy.allow_microsoft365_web = false,
            world: bare(),
            action: Send,
            req: Request {
                mode: Some("graph".into()),
                ..req(None, None, None)
            },
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "web off: a user's Graph account is ignored",
            tweak: |s| s.policy.allow_microsoft365_web = false,
            world: bare(),
            action: Send,
            req: Request {
                mode: Some("m365".into()),
                ..req(None, None, None)
            },
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "web off: system send mode graph keeps only the system accounts",
            tweak: |s| {
                s.policy.allow_microsoft365_web = false;
                s.policy.send_mode = "graph".into();
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["office"]),
        },
        Case {
            name: "web off: the Graph global account still sends",
            tweak: |s| {
                s.policy.allow_microsoft365_web = false;
                s.policy.account = Some("m365".into());
            },
            world: bare(),
            action: Send,
            req: req(None, None, None),
            expect: Ok(vec!["m365"]),
        },
        Case {
            name: "web off: a tenant's Graph account still sends",
            tweak: |s| {
                s.policy.allow_microsoft365_web = false;
                if let Some(t) = s.tenants.get_mut("acme") {
                    t.account = Some("m365".into());
                }
            },
            world: bare(),
            action: Send,
            req: req(None, Some("acme"), None),
            expect: Ok(vec!["m365", "office"]),
        },
        Case {
            name: "web off: no compose through the Graph global account",
            tweak: |s| {
                s.policy.allow_microsoft365_web = false;
                s.policy.account = Some("m365".into());
                s.policy.compose_mode = "m365-draft".into();
            },
            world: bare(),
            action: Compose,
            req: req(None, None, None),
            expect: Err("no way to compose"),
        },
        Case {
            name: "web off: a purpose's Graph account is not used",
            tweak: |s| {
                s.policy.allow_microsoft365_web = false;
                if let Some(p) = s.purposes.get_mut("scan-to-email") {
                    p.accounts = vec!["m365".into()];
                }
            },
            world: bare(),
            action: Send,
            req: req(None, None, Some("scan-to-email")),
            expect: Err("no way to send"),
        },
        Case {
            name: "compose mode imap-draft without an imap account is refused",
            tweak: |s| {
                s.policy.compose_mode = "imap-draft".into();
                s.accounts.remove("imap");
            },
            world: bare(),
            action: Compose,
            req: req(None, None, None),
            expect: Err("no way to compose"),
        },
    ]
}

#[test]
fn policy_table() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 40, "at least 40 cases");
    for c in all {
        let mut s = settings();
        (c.tweak)(&mut s);
        let d = decide(&s, &c.world, c.action, &c.req);
        let got: Result<Vec<String>, String> = match &d.refused {
            Some(r) => Err(r.message.clone()),
            None => Ok(d.chain.iter().map(|c| c.label.clone()).collect()),
        };
        let ok = match (&c.expect, &got) {
            (Ok(want), Ok(have)) => want.iter().map(|s| s.to_string()).collect::<Vec<_>>() == *have,
            (Err(want), Err(have)) => have.contains(want),
            _ => false,
        };
        // Every decision explains itself.
        assert!(!d.trace.is_empty(), "{}: empty trace", c.name);
        if !ok {
            failures.push(format!(
                "{}:\n  want {:?}\n  got  {:?}\n{}",
                c.name,
                c.expect,
                got,
                d.render()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn trace_says_why_user_choice_was_ignored() {
    let mut s = settings();
    s.policy.allow_user_send_selection = false;
    let d = decide(
        &s,
        &world(Some(true), None),
        Action::Send,
        &req(Some("alice"), None, None),
    );
    let text = d.render();
    assert!(
        text.contains("user chose `outlook`, but allow_user_send_selection = false"),
        "{text}"
    );
    assert!(text.contains("chain: office (smtp, smtp)"), "{text}");
}

#[test]
fn refusal_is_explained_in_json() {
    let mut s = settings();
    s.policy.enabled = false;
    let d = decide(&s, &world(None, None), Action::Send, &req(None, None, None));
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["refused"]["rule"], "kill switch");
    assert!(j["chain"].as_array().unwrap().is_empty());
}

/// "Nothing available" names what each way out lacked: a caller that sees
/// only the refusal (an API client, `mailhost send`) knows what to fix.
#[test]
fn a_refusal_for_no_way_out_says_what_each_one_lacked() {
    let mut s = settings();
    s.policy.send_mode = "autodetect".into();
    s.policy.account = None;
    s.accounts.clear();
    let d = decide(
        &s,
        &world(Some(false), None),
        Action::Send,
        &req(None, None, None),
    );
    let r = d.refused.expect("refused");
    assert_eq!(r.rule, "chain");
    assert!(
        r.message.contains("account (no system or tenant account)"),
        "{}",
        r.message
    );
    assert!(r.message.contains("mode outlook ("), "{}", r.message);
    assert!(!r.message.contains("above"), "{}", r.message);
    assert!(
        r.message
            .ends_with("configure an account for it or choose another mode"),
        "{}",
        r.message
    );
}

/// Tenant acme has its own support address; the support purpose may allow it.
fn client_support(allow: bool) -> Settings {
    let mut s = settings();
    if let Some(t) = s.tenants.get_mut("acme") {
        t.support_address = Some("Acme Helpdesk <help@acme.example>".into());
    }
    if let Some(p) = s.purposes.get_mut("support") {
        p.allow_client_support_address = allow;
    }
    s
}

#[test]
fn a_tenant_support_address_replaces_the_purpose_one_where_allowed() {
    let support = req(None, Some("acme"), Some("support"));
    let d = decide(
        &client_support(true),
        &world(None, None),
        Action::Send,
        &support,
    );
    assert!(d.refused.is_none(), "{}", d.render());
    assert_eq!(d.default_to, ["Acme Helpdesk <help@acme.example>"]);
    let text = d.render();
    assert!(
        text.contains("tenant `acme`'s own (allow_client_support_address = true) support address Acme Helpdesk <help@acme.example>"),
        "{text}"
    );

    // The client's address is a permitted recipient of the purpose, too.
    let named = Request {
        recipients: vec!["help@acme.example".into()],
        ..support.clone()
    };
    let d = decide(
        &client_support(true),
        &world(None, None),
        Action::Send,
        &named,
    );
    assert!(d.refused.is_none(), "{}", d.render());
    assert!(d.default_to.is_empty());

    // Another tenant (none of its own) and no tenant: the purpose's address.
    for tenant in [Some("globex"), None] {
        let d = decide(
            &client_support(true),
            &world(None, None),
            Action::Send,
            &req(None, tenant, Some("support")),
        );
        assert_eq!(d.default_to, ["support@vendor.example"], "{}", d.render());
        assert!(d.render().contains("purpose `support`'s support address"));
    }
}

#[test]
fn without_the_purpose_allowing_it_the_tenant_support_address_is_not_used() {
    let support = req(None, Some("acme"), Some("support"));
    let d = decide(
        &client_support(false),
        &world(None, None),
        Action::Send,
        &support,
    );
    assert_eq!(d.default_to, ["support@vendor.example"], "{}", d.render());
    let named = Request {
        recipients: vec!["help@acme.example".into()],
        ..support
    };
    let d = decide(
        &client_support(false),
        &world(None, None),
        Action::Send,
        &named,
    );
    let refusal = d.refused.as_ref().map(|r| r.message.as_str()).unwrap_or("");
    assert!(
        refusal.contains("may not send to help@acme.example"),
        "{}",
        d.render()
    );
}

#[test]
fn explain_shows_the_microsoft365_switch_and_the_kept_system_account() {
    let mut s = settings();
    s.policy.allow_microsoft365_web = false;
    s.policy.account = Some("m365".into());
    let d = decide(
        &s,
        &world(None, None),
        Action::Send,
        &Request {
            mode: Some("graph".into()),
            ..req(None, None, None)
        },
    );
    let text = d.render();
    assert!(
        text.contains("user chose `graph` (Microsoft 365), but allow_microsoft365_web = false"),
        "{text}"
    );
    assert!(text.contains("kept the system account `m365`"), "{text}");
    assert!(text.contains("chain: m365 (graph, graph)"), "{text}");
}
