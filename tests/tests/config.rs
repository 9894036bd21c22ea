//! Config mistakes: each gives `file:line:col`, what is wrong and what is valid.

use std::path::Path;

use mailhost::config::{validate, Source};
use mailhost::loader::{load_file, PluginSet};
use mailhost_tests::loader::fixture_path;
use mailhost_tests::plugin_path;

fn plugins() -> PluginSet {
    let pickup = load_file(&plugin_path("pickup")).expect("pickup loads");
    PluginSet {
        plugins: vec![pickup],
        ..PluginSet::default()
    }
}

fn errors(text: &str) -> String {
    let src = Source::from_text("test.toml", Path::new("/etc/mailhost"), text);
    match validate(&src, &plugins()) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const GOOD: &str = r#"
[policy]
account = "local"

[accounts.local]
plugin = "pickup"
from = "ERP <erp@example.com>"
dir = "out"
"#;

#[test]
fn good_config_is_valid_and_paths_are_absolute() {
    // An existing config directory: a missing one would be warned about.
    let base = tempfile::tempdir().unwrap();
    let src = Source::from_text("test.toml", base.path(), GOOD);
    let s = validate(&src, &plugins()).expect("valid");
    assert_eq!(
        s.accounts["local"].settings["dir"],
        base.path().join("out").to_str().unwrap()
    );
    assert_eq!(
        s.accounts["local"].from.as_deref(),
        Some("ERP <erp@example.com>")
    );
    assert!(s.warnings.is_empty());
}

#[test]
fn each_mistake_names_its_place() {
    let cases: &[(&str, &str, &str)] = &[
        // (config, expected location, expected words)
        (
            "[policy]\nenabld = true\n",
            "test.toml:2:1",
            "unknown field `enabld`",
        ),
        ("[polcy]\n", "test.toml:1:2", "unknown field `polcy`"),
        (
            "[policy]\nenabled = \"yes\"\n",
            "test.toml:2:11",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[accounts.a]\nplugin = \"smtp\"\n",
            "test.toml:2:10",
            "no plugin named `smtp` is loaded",
        ),
        (
            "[accounts.a]\ndir = \"x\"\n",
            "test.toml:1:11",
            "account `a` has no `plugin` key",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\ndirr = 1\n",
            "test.toml:4:1",
            "unknown key `dirr` for plugin `pickup`",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\n",
            "test.toml:1:11",
            "\"dir\" is a required property",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = 5\n",
            "test.toml:3:1",
            "5 is not of type \"string\"",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\nfrom = \"not an address\"\n",
            "test.toml:4:8",
            "from `not an address` is not a valid address",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\nmax_per_minute = 0\n",
            "test.toml:4:18",
            "max_per_minute` must be a whole number",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\nmax_concurrent = -1\n",
            "test.toml:4:18",
            "max_concurrent` must be a whole number from 1 to 10000",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\nmax_age_secs = \"1h\"\n",
            "test.toml:4:16",
            "max_age_secs` must be a whole number of seconds",
        ),
        (
            "[accounts.smtp]\nplugin = \"pickup\"\ndir = \"x\"\n",
            "test.toml:1:11",
            "account `smtp` is named after a mode",
        ),
        (
            "[policy]\naccount = \"nope\"\n",
            "test.toml:2:11",
            "policy.account names account `nope`, which does not exist",
        ),
        (
            "[policy]\nsend_mode = \"carrier-pigeon\"\n",
            "test.toml:2:13",
            "policy.send_mode `carrier-pigeon` is not a send mode",
        ),
        (
            "[policy]\ncompose_mode = \"smtp\"\n",
            "test.toml:2:16",
            "policy.compose_mode `smtp` is not a compose mode",
        ),
        (
            "[policy]\nsend_autodetect = []\n",
            "test.toml:2:19",
            "policy.send_autodetect is empty",
        ),
        (
            "[policy]\nsend_autodetect = [\"account\", \"autodetect\"]\n",
            "test.toml:2:31",
            "cannot contain `autodetect` (a cycle)",
        ),
        (
            "[policy]\nsend_autodetect = [\"outlook\", \"outlook\"]\n",
            "test.toml:2:31",
            "lists `outlook` twice",
        ),
        (
            "[policy]\npreferred_sender = \"fax\"\n",
            "test.toml:2:20",
            "preferred_sender `fax` is not `graph` or `smtp`",
        ),
        (
            "[users.alice]\nsend_mode = \"telex\"\n",
            "test.toml:2:13",
            "user `alice` send_mode `telex` is not a send mode",
        ),
        (
            "[users.alice.accounts.office]\nusername = \"a\"\n",
            "test.toml:1:23",
            "user `alice` names account `office`, which does not exist",
        ),
        (
            "[users.alice]\ntenant = \"acme\"\n",
            "test.toml:2:10",
            "user `alice` names tenant `acme`, which does not exist",
        ),
        (
            "[tenants.acme]\naccount = \"gone\"\n",
            "test.toml:2:11",
            "tenant `acme` names account `gone`",
        ),
        (
            "[purposes.pin]\naccounts = []\n",
            "test.toml:2:12",
            "purpose `pin` allows no account",
        ),
        (
            "[purposes.pin]\nallowed_recipients = [\"not a domain\"]\n",
            "test.toml:2:23",
            "`not a domain` is neither an address nor a domain",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\noauth = \"m365\"\n",
            "test.toml:4:9",
            "no OAuth client `[oauth.m365]` is configured",
        ),
        (
            "[oauth.m365]\ntenant = \"t\"\nclient_id = \"c\"\n",
            "test.toml:1:1",
            "missing field `client_secret`",
        ),
        ("[policy\n", "test.toml:1:8", "unclosed table, expected `]`"),
    ];
    let mut failures = Vec::new();
    for (text, loc, words) in cases {
        let e = errors(text);
        if !e.contains(&format!("{loc}: ")) || !e.contains(words) {
            failures.push(format!(
                "config:\n{text}\nwant {loc}: ...{words}...\ngot  {e}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hints_list_what_is_valid() {
    let e = errors("[accounts.a]\nplugin = \"pickup\"\ndir = \"x\"\ndirr = 1\n");
    assert!(e.contains("hint: valid keys: plugin, from, max_per_minute, max_concurrent, max_age_secs, description, save_copy_to, preset, create_dir, dir, envelope_headers, keep_bcc"), "{e}");
    let e = errors("[policy]\nsend_mode = \"carrier-pigeon\"\n");
    assert!(
        e.contains("valid: autodetect, graph, mapi-full, mapi-simple, outlook, pickup, smtp"),
        "{e}"
    );
    let e = errors("[policy]\nenabld = true\n");
    assert!(
        e.contains("hint: valid keys here:") && e.contains("`enabled`"),
        "{e}"
    );
}

#[test]
fn all_mistakes_are_reported_at_once() {
    let e = errors(
        "[policy]\naccount = \"nope\"\nsend_mode = \"x\"\n[users.bob]\ncompose_mode = \"y\"\n",
    );
    assert_eq!(e.matches("test.toml:").count(), 3, "{e}");
}

#[test]
fn plain_text_secrets_are_warned_about_without_the_value() {
    let text = "[oauth.m365]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"\n";
    let src = Source::from_text("test.toml", Path::new("."), text);
    let s = validate(&src, &plugins()).expect("valid with a warning");
    let w: Vec<String> = s.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("test.toml:4:17: [oauth.m365] client_secret is written in plain text"),
        "{w:?}"
    );
    assert!(!w[0].contains("hunter2"));
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        !json.contains("hunter2"),
        "settings JSON leaks the secret: {json}"
    );
}

// ---- hostile and malformed configs (issues 9 and 15) ----

/// pickup and the `validating` fixture (a schema with `format: uri`,
/// `format: path`, `writeOnly`, and the `validate_settings` extension).
fn plugins_with_validating() -> PluginSet {
    static SET: std::sync::OnceLock<PluginSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let v = mailhost_tests::copy_as(
            &fixture_path("fixture_validating"),
            dir.path(),
            &mailhost_tests::plugin_file_name("validating"),
        );
        let validating = load_file(&v).unwrap_or_else(|f| panic!("{f}"));
        // The library stays mapped; the copy may go.
        std::mem::forget(dir);
        PluginSet {
            plugins: vec![load_file(&plugin_path("pickup")).unwrap(), validating],
            ..PluginSet::default()
        }
    })
    .clone()
}

fn check(text: &str) -> Result<mailhost::config::Settings, String> {
    let base = std::env::temp_dir();
    let src = Source::from_text("test.toml", &base, text);
    validate(&src, &plugins_with_validating()).map_err(|e| e.to_string())
}

fn check_err(text: &str) -> String {
    match check(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e,
    }
}

const SECRET: &str = "918273645546372";

#[test]
fn cr_lf_and_nul_in_any_wire_value_are_refused_at_their_place() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"out\\r\\nQUIT\"\n",
            "test.toml:3:7",
            "account `a` `dir` contains a carriage return (CR)",
        ),
        // Nested inside a third-party plugin's settings: found by the generic walk.
        (
            "[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nextra = { list = [\"ok\", \"x\\u0000y\"] }\n",
            "test.toml:4:9",
            "account `v` `extra.list[1]` contains a NUL byte",
        ),
        (
            "[accounts.a]\nplugin = \"pickup\"\ndir = \"out\"\nfrom = \"a@example.com\\nBcc: evil@example.com\"\n",
            "test.toml:4:8",
            "account `a` `from` contains a line feed (LF)",
        ),
        (
            "[users.alice.accounts.a]\nusername = \"alice\\r\\nRSET\"\n[accounts.a]\nplugin = \"pickup\"\ndir = \"out\"\n",
            "test.toml:2:12",
            "[users.alice.accounts.a] username contains a carriage return (CR)",
        ),
        (
            "[users.alice.accounts.a]\nusername = \"alice\"\npassword = \"env:X\\nY\"\n[accounts.a]\nplugin = \"pickup\"\ndir = \"out\"\n",
            "test.toml:3:12",
            "[users.alice.accounts.a] password contains a line feed (LF)",
        ),
        (
            "[oauth.m]\ntenant = \"t\\r\\n\"\nclient_id = \"c\"\nclient_secret = \"env:S\"\n",
            "test.toml:2:10",
            "[oauth.m] tenant contains a carriage return (CR)",
        ),
        (
            "[accounts.\"a\\nb\"]\nplugin = \"pickup\"\ndir = \"out\"\n",
            "test.toml:1:11",
            "[accounts] name contains a line feed (LF)",
        ),
        (
            "[tenants.acme]\nfrom = \"a@example.com\\r\\nX: y\"\n",
            "test.toml:2:8",
            "from contains a carriage return (CR)",
        ),
    ];
    let mut failures = Vec::new();
    for (text, loc, words) in cases {
        let e = check_err(text);
        if !e.contains(&format!("{loc}: ")) || !e.contains(words) {
            failures.push(format!(
                "config:\n{text}\nwant {loc}: ...{words}...\ngot  {e}\n"
            ));
        }
        // The value itself is never repeated (it may be a secret).
        for leaked in ["QUIT", "RSET", "evil@", "x\u{0}y"] {
            if e.contains(leaked) {
                failures.push(format!("`{leaked}` echoed: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn absurdly_long_values_are_refused() {
    let host = "h".repeat(1024 * 1024);
    let e = check_err(&format!(
        "[accounts.a]\nplugin = \"pickup\"\ndir = \"{host}\"\n"
    ));
    assert!(
        e.starts_with("test.toml:3:7: account `a` `dir` is 1048576 bytes long; values are limited to 4096 bytes"),
        "{}",
        &e[..e.len().min(300)]
    );
    assert!(e.len() < 1000, "the value is not echoed");
    let ok = "d".repeat(mailhost::config::MAX_VALUE_BYTES - 10);
    assert!(check(&format!(
        "[accounts.a]\nplugin = \"pickup\"\ndir = \"/tmp/{ok}\"\n"
    ))
    .is_ok());
}

#[test]
fn what_the_plugin_would_refuse_at_open_is_refused_by_validate() {
    let text =
        "[accounts.w]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nlevel = \"1.0\"\n";
    let e = check_err(text);
    assert!(
        e.starts_with("test.toml:4:1: account `w` `level`: plugin `validating` refuses this: levels 1.0 and 1.1 are refused: use 1.2 or 1.3"),
        "{e}"
    );
    assert!(
        e.contains("hint: run `mailhost plugins --settings validating`"),
        "{e}"
    );
    // The same settings are what `open` refuses: validate found it first.
    let p = plugins_with_validating();
    let v = p.get("validating").unwrap();
    let opened = v.open(
        r#"{"url":"https://x.example/","level":"1.0"}"#,
        mailhost_tests::loader::host(),
    );
    assert!(opened.is_err());
    // A good level passes both.
    let s = check(&text.replace("1.0", "1.3")).expect("valid");
    assert!(v
        .open(
            &s.accounts["w"].settings.to_string(),
            mailhost_tests::loader::host()
        )
        .is_ok());
    // A panic inside the plugin's check is caught and reported, not fatal.
    let e = check_err(&text.replace("1.0", "panic"));
    assert!(
        e.contains(
            "account `w`: plugin `validating` refuses this: plugin panicked in validate_settings"
        ),
        "{e}"
    );
}

#[test]
fn schema_formats_are_checked() {
    let e = check_err("[accounts.v]\nplugin = \"validating\"\nurl = \"not a url\"\n");
    assert!(
        e.starts_with("test.toml:3:1: account `v` `url`: \"not a url\" is not a \"uri\""),
        "{e}"
    );
}

#[test]
fn secrets_given_with_the_wrong_type_are_never_echoed() {
    let cases: &[(String, &str)] = &[
        // writeOnly in the plugin's schema
        (
            format!("[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\npin = {SECRET}\n"),
            "test.toml:4:1: account `v` `pin` must be of type string, but an integer was given (the value is not shown: it is a secret)",
        ),
        (
            format!("[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\npin = [\"{SECRET}\"]\n"),
            "test.toml:4:1: account `v` `pin` must be of type string, but an array was given",
        ),
        // a key named like a secret that the plugin does not even take
        (
            format!("[accounts.a]\nplugin = \"pickup\"\ndir = \"out\"\npassword = {SECRET}\n"),
            "test.toml:4:1: account `a`: unknown key `password` for plugin `pickup`",
        ),
        (
            format!("[oauth.m]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = {SECRET}\n"),
            "test.toml:4:17: `client_secret` has the wrong type: expected a string (the value is not shown: it is a secret)",
        ),
        (
            format!("[oauth.m]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = [\"{SECRET}\", 1]\n"),
            "test.toml:4:17: `client_secret` has the wrong type: expected a string",
        ),
        (
            format!("[users.alice.accounts.a]\nusername = \"alice\"\npassword = {SECRET}\n"),
            "test.toml:3:12: `password` has the wrong type: expected a string",
        ),
        (
            format!("[users.alice.accounts.a]\nusername = \"alice\"\npassword = {{ v = \"{SECRET}\" }}\n"),
            "test.toml:3:12: `password` has the wrong type: expected a string",
        ),
        (
            format!("[users.alice.accounts]\na = {{ username = \"alice\", password = {SECRET} }}\n"),
            "test.toml:2:38: `password` has the wrong type: expected a string",
        ),
        // nested in a plugin's settings: by the key on the path...
        (
            format!("[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nextra = {{ token = {SECRET} }}\n"),
            "test.toml:4:1: account `v` `extra.token` must be of type string, but an integer was given",
        ),
        // ...or because the value an error would quote holds one
        (
            format!("[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nextra = {{ list = [{{ password = \"{SECRET}\" }}] }}\n"),
            "test.toml:4:1: account `v` `extra.list.0` must be of type string, but a table was given",
        ),
    ];
    for (text, want) in cases {
        let e = check_err(text);
        assert!(e.starts_with(want), "want {want}\ngot  {e}");
        assert!(!e.contains(SECRET), "the secret is echoed: {e}");
    }
}

#[test]
fn missing_secret_files_and_ca_files_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    let text = "[oauth.m]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = \"file:gone\"\nca_file = \"nope.pem\"\n\n[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\npin = \"file:secrets\"\nca_file = \"missing-ca.pem\"\n";
    let src = Source::from_text("test.toml", dir.path(), text);
    let s = validate(&src, &plugins_with_validating()).expect("valid, with warnings");
    let w: Vec<String> = s.warnings.iter().map(|w| w.to_string()).collect();
    let d = dir.path().display();
    let want = [
        format!("test.toml:4:17: [oauth.m] client_secret: cannot read {d}/gone ("),
        format!("test.toml:5:11: [oauth.m] ca_file: {d}/nope.pem cannot be read ("),
        format!("test.toml:10:7: [accounts.v] pin: {d}/secrets is a directory, not a secret file"),
        format!("test.toml:11:1: account `v` `ca_file`: {d}/missing-ca.pem cannot be read ("),
    ];
    for want in &want {
        assert!(
            w.iter().any(|w| w.starts_with(want.as_str())),
            "want {want}\nin {w:#?}"
        );
    }
    assert_eq!(w.len(), want.len(), "{w:#?}");
    // With the files there, no warning.
    std::fs::write(dir.path().join("gone"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("nope.pem"), "x").unwrap();
    std::fs::write(dir.path().join("missing-ca.pem"), "x").unwrap();
    let text = text.replace("file:secrets", "file:gone");
    let src = Source::from_text("test.toml", dir.path(), &text);
    let s = validate(&src, &plugins_with_validating()).expect("valid");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_config_that_is_not_utf8_says_where_the_bad_byte_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(
        &path,
        b"[accounts.a]\nplugin = \"pickup\"\ndir = \"caf\xe9\"\n",
    )
    .unwrap();
    let e = Source::from_file(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:3:11: the config file is not UTF-8: byte 41 (0xe9) starts no valid character\n  hint: save the file as UTF-8 (TOML files are UTF-8)",
            path.display()
        )
    );
}

#[test]
fn dev_zero_as_config_fails_fast_with_the_limit() {
    let e = Source::from_file(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/dev/zero: the config file is larger than 8388608 bytes"),
        "{e}"
    );
}

#[test]
fn zero_limits_are_refused_at_their_key() {
    let e = errors("[limits]\nmax_message_bytes = 0\n  max_batch_rows   = 0\n");
    assert!(
        e.contains(
            "test.toml:2:1: [limits] max_message_bytes is 0, which would refuse every input"
        ) && e.contains("test.toml:3:3: [limits] max_batch_rows is 0"),
        "{e}"
    );
    let e = errors("[limits]\nmax_batch_bytes = 0\n");
    assert!(
        e.contains("test.toml:2:1: [limits] max_batch_bytes is 0"),
        "{e}"
    );
    let e = errors("[outbox]\ndrain_secs = 5\nbatch_per_minute = 100000\n");
    assert!(
        e.contains("test.toml:3:1: [outbox] batch_per_minute = 100000 is more than 60000"),
        "{e}"
    );
    let e = errors("[outbox]\ndrain_secs = 5\nretention_days = 40000\n");
    assert!(
        e.contains("test.toml:3:1: [outbox] retention_days = 40000 is more than 36500")
            && e.contains("0 to keep every message"),
        "{e}"
    );
    for n in [0, 65] {
        let e = errors(&format!(
            "[outbox]\ndrain_secs = 5\nmessages_per_step = {n}\n"
        ));
        assert!(
            e.contains(&format!(
                "test.toml:3:1: [outbox] messages_per_step = {n} is not between 1 and 64"
            )) && e.contains("concurrency × 2"),
            "{e}"
        );
    }
    // Huge worker numbers would start thousands of threads, overflow a
    // lease's time or fail a semaphore: each is refused at its key.
    let e = errors(
        "[outbox]\nconcurrency = 100000\nper_account = 9000000000000000000\nlease_secs = 99999999999999\nmax_age_secs = 99999999999\ndrain_secs = 86400\n",
    );
    for (line, key, range) in [
        (2, "concurrency = 100000", "1 and 256"),
        (3, "per_account = 9000000000000000000", "1 and 10000"),
        (4, "lease_secs = 99999999999999", "1 and 86400"),
        (5, "max_age_secs = 99999999999", "0 and 2592000"),
        (6, "drain_secs = 86400", "0 and 3600"),
    ] {
        assert!(
            e.contains(&format!(
                "test.toml:{line}:1: [outbox] {key} is not between {range}"
            )),
            "{e}"
        );
    }
    let e = errors("[outbox]\nbatch_per_minute = -1\n");
    assert!(e.contains("test.toml:2:"), "{e}");
    let e = errors("[limits]\nmax_recipents = 5\n");
    assert!(
        e.contains("test.toml:2:1: unknown field `max_recipents`"),
        "{e}"
    );
}

/// Every command that loads the config refuses a mistyped secret without
/// echoing it, exits 78 and writes nothing (text and `--json`).
#[test]
fn no_command_echoes_a_mistyped_secret() {
    let work = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    mailhost_tests::copy_as(
        &plugin_path("pickup"),
        plugins.path(),
        &mailhost_tests::plugin_file_name("pickup"),
    );
    let config = work.path().join("mailhost.toml");
    std::fs::write(
        &config,
        format!("[accounts.local]\nplugin = \"pickup\"\ndir = \"out\"\n\n[oauth.m]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = {SECRET}\n\n[users.alice.accounts.local]\nusername = \"a\"\npassword = [\"{SECRET}\"]\n"),
    )
    .unwrap();
    let commands: &[&[&str]] = &[
        &["config", "validate"],
        &[
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "s",
            "--text",
            "t",
        ],
        &[
            "compose",
            "--to",
            "a@example.com",
            "--subject",
            "s",
            "--text",
            "t",
        ],
        &["check", "local"],
        &["status"],
        &["policy", "explain", "--action", "send"],
    ];
    for json in [false, true] {
        for args in commands {
            let mut cmd = std::process::Command::new(mailhost_tests::mailhost_bin());
            cmd.current_dir(work.path())
                .arg("--plugins")
                .arg(plugins.path())
                .arg("--config")
                .arg(&config);
            if json {
                cmd.arg("--json");
            }
            let out = cmd.args(*args).output().unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(78), "{args:?}: {all}");
            assert!(!all.contains(SECRET), "{args:?} echoes the secret: {all}");
            assert!(all.contains("mailhost.toml:8:17:"), "{args:?}: {all}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["mailhost.toml"], "nothing is written");
}

// ---- generated input: the loader never panics ----

mod generated {
    use super::*;
    use proptest::prelude::*;

    fn validate_bytes(bytes: Vec<u8>) {
        let plugins = plugins_with_validating();
        if let Ok(src) = Source::from_bytes("gen.toml", Path::new("/nonexistent"), bytes) {
            // Valid or a list of errors, each with a place: never a panic.
            if let Err(e) = validate(&src, &plugins) {
                assert!(!e.0.is_empty());
                for one in &e.0 {
                    assert_eq!(one.loc.file, "gen.toml");
                }
            }
        }
    }

    /// TOML-ish lines: sections and keys the host and plugins know, values of
    /// every type, control characters, and broken syntax.
    fn tomlish() -> impl Strategy<Value = String> {
        let section = prop_oneof![
            Just("[policy]".to_string()),
            Just("[accounts.a]".to_string()),
            Just("[accounts.v]".to_string()),
            Just("[oauth.m]".to_string()),
            Just("[users.u.accounts.a]".to_string()),
            Just("[tenants.t]".to_string()),
            Just("[purposes.p]".to_string()),
            Just("[limits]".to_string()),
            "\\[[a-z.]{0,12}\\]?",
        ];
        let key = prop_oneof![
            Just("plugin"),
            Just("dir"),
            Just("from"),
            Just("url"),
            Just("pin"),
            Just("level"),
            Just("extra"),
            Just("password"),
            Just("client_secret"),
            Just("account"),
            Just("send_mode"),
            Just("max_recipients"),
            Just("allowed_recipients"),
        ];
        let value = prop_oneof![
            Just("\"pickup\"".to_string()),
            Just("\"validating\"".to_string()),
            "\"[ -~\\r\\n\\t\\u{0}\\u{7f}é]{0,20}\"".prop_map(|s| format!("{s:?}")),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            Just("[1, \"a\", [true]]".to_string()),
            Just("{ x = { y = [\"\\u0000\"] } }".to_string()),
            "[ -~]{0,12}",
        ];
        let line = prop_oneof![
            section,
            (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
            "[ -~]{0,30}",
        ];
        prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            validate_bytes(bytes);
        }

        #[test]
        fn arbitrary_tomlish_text_never_panics(text in tomlish()) {
            validate_bytes(text.into_bytes());
        }
    }
}

#[test]
fn nested_secrets_are_warned_about_like_top_level_ones() {
    let s = check(
        "[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nextra = { token = \"hunter2\", list = [] }\n",
    )
    .expect("valid, with a warning");
    let w: Vec<String> = s.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(
            "test.toml:4:9: [accounts.v] extra.token is written in plain text in the config"
        ),
        "{w:?}"
    );
    assert!(!w[0].contains("hunter2"), "{w:?}");
    let s = check(
        "[accounts.v]\nplugin = \"validating\"\nurl = \"https://x.example/\"\nextra = { token = \"file:/nonexistent/token\" }\n",
    )
    .expect("valid, with a warning");
    assert!(
        s.warnings[0].to_string().starts_with(
            "test.toml:4:9: [accounts.v] extra.token: cannot read /nonexistent/token ("
        ),
        "{:?}",
        s.warnings
    );
}

/// The issue's own case: CR/LF in the SMTP plugin's `helo_name` and
/// `envelope_from` would reach the server as commands of their own.
#[test]
fn smtp_helo_name_and_envelope_from_with_cr_lf_are_refused() {
    let set = PluginSet {
        plugins: vec![load_file(&plugin_path("smtp")).unwrap_or_else(|f| panic!("{f}"))],
        ..PluginSet::default()
    };
    let text = "[accounts.office]\nplugin = \"smtp\"\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\nauth = \"none\"\nhelo_name = \"x.example\\r\\nX-INJECTED-CMD\"\nenvelope_from = \"a@example.com\\nRCPT TO:<victim@example.com>\"\n";
    let src = Source::from_text("test.toml", Path::new("/tmp"), text);
    let e = validate(&src, &set).unwrap_err().to_string();
    assert!(
        e.contains("test.toml:7:13: account `office` `helo_name` contains a carriage return (CR)")
            && e.contains(
                "test.toml:8:17: account `office` `envelope_from` contains a line feed (LF)"
            ),
        "{e}"
    );
    assert!(
        !e.contains("X-INJECTED-CMD") && !e.contains("victim"),
        "{e}"
    );
}
