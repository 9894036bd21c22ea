//! Running the service: reloads, API tokens, config and schema checks, HTTPS,
//! JSON logs.

use super::*;

/// SIGHUP reloads the config file; one that does not validate is logged
/// with its line and changes nothing.
#[test]
fn sighup_reloads_the_config_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let s = start(dir.path(), &[]);
    let wait_log = |what: &str, times: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.log().matches(what).count() < times {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let post = || {
        s.post_json(
            Some(ERP_TOKEN),
            &json!({"tenant": "acme", "to": ["bob@example.com"], "subject": unique("hup"), "text": "x"}),
        )
    };
    assert_eq!(post().0, 202);
    // the kill switch, set by hand: after SIGHUP new mail is refused
    edit(&cfg, "[policy]\n", "[policy]\nenabled = false\n");
    s.signal("-HUP");
    wait_log("reloaded (SIGHUP)", 1);
    assert_problem(&post(), 422, "refused-by-policy");
    // every account shows Stopped while the kill switch holds the mail
    let st = s.get("/v1/status");
    for a in st["accounts"].as_array().unwrap() {
        assert_eq!(a["state"], "Stopped", "{st:#}");
        assert!(
            a["reason"]
                .as_str()
                .unwrap()
                .contains("[policy] enabled = false"),
            "{st:#}"
        );
    }
    // a file that does not validate: its error with file:line, the old config stays
    edit(
        &cfg,
        "[policy]\nenabled = false\n",
        "[policy]\nenabled = false\nbogus = 1\n",
    );
    s.signal("-HUP");
    wait_log("does not validate; the running config stays", 1);
    assert!(s.log().contains("mailhost.toml:"), "{}", s.log());
    assert_problem(&post(), 422, "refused-by-policy");
    // fixed and switched on again: new mail goes out
    edit(&cfg, "enabled = false\nbogus = 1\n", "");
    s.signal("-HUP");
    wait_log("reloaded (SIGHUP)", 2);
    let r = post();
    assert_eq!(r.0, 202, "{:#}", r.2);
    s.wait_for(r.2["id"].as_str().unwrap(), "sent", |m| {
        m["state"] == "sent"
    });
}

/// `mailhost api-token NAME --add | --replace` writes the config file; the
/// running service takes added, rotated and revoked tokens on SIGHUP.
#[test]
fn api_tokens_added_rotated_and_revoked_apply_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let token_cmd = |args: &[&str]| {
        let out = Command::new(mailhost_bin())
            .current_dir(dir.path())
            .env_remove("MAILHOST_PLUGIN_PATH")
            .env(SECRET_VAR, "test-secret")
            .args([
                "--config",
                "mailhost.toml",
                "--plugins",
                "plugins",
                "api-token",
            ])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr,
        )
    };
    let reloads = std::cell::Cell::new(0);
    let hup = || {
        reloads.set(reloads.get() + 1);
        s.signal("-HUP");
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.log().matches("reloaded (SIGHUP)").count() < reloads.get() {
            assert!(Instant::now() < deadline, "no reload in:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let status_with = |token: &str| s.call("GET", "/v1/status", Some(token), None, Vec::new()).0;

    // added: known after the reload, not before
    let (code, ci, err) = token_cmd(&["ci", "--add", "--scope", "admin"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(ci.starts_with("mh_") && !ci.contains('\n'), "{ci}");
    assert!(err.contains("added [api.tokens.ci]"), "{err}");
    assert!(!err.contains(&ci), "the token is on stdout only: {err}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[api.tokens.ci]") && text.contains("[tenants.acme]"),
        "{text}"
    );
    assert!(
        !text.contains(&ci),
        "the config holds the hash, never the token"
    );
    assert_eq!(status_with(&ci), 401);
    hup();
    assert_eq!(status_with(&ci), 200);
    assert!(s.log().contains("API tokens added ci"), "{}", s.log());

    // the same name again: refused, the file unchanged
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (code, _, err) = token_cmd(&["ci", "--add"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);

    // rotated: the new token works after the reload, the old one and its
    // admin session do not; the scope stays
    let (code, ci2, err) = token_cmd(&["ci", "--replace"]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(ci2, ci);
    hup();
    assert_eq!(status_with(&ci), 401);
    assert_eq!(status_with(&ci2), 200, "the admin scope stayed");
    assert!(s.log().contains("API tokens changed ci"), "{}", s.log());

    // revoked by hand: gone after the reload
    let text = std::fs::read_to_string(&cfg).unwrap();
    let at = text.find("[api.tokens.ci]").unwrap();
    std::fs::write(&cfg, &text[..at]).unwrap();
    hup();
    assert_eq!(status_with(&ci2), 401);
    assert_eq!(status_with(OPS_TOKEN), 200, "the other tokens stay");
    assert!(s.log().contains("API tokens revoked ci"), "{}", s.log());

    // a binding the config does not have: refused at its line, nothing written
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (code, _, err) = token_cmd(&["bad", "--add", "--tenant", "nowhere"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("mailhost.toml:") && err.contains("`nowhere`"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
}

#[test]
fn config_validate_names_bad_api_tokens_and_unknown_outbox_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "scopes = [\"send\"]", "scopes = [\"sudo\"]");
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("mailhost.toml:"), "{err}");
    assert!(
        err.contains("[api.tokens.erp] scope `sudo` is unknown"),
        "{err}"
    );
    assert!(err.contains("send, admin"), "{err}");
    assert!(!err.contains(ERP_TOKEN));
    config(dir.path(), 2525, "lease = 3");
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("unknown field `lease`"), "{err}");
    assert!(err.contains("lease_secs"), "{err}");
}

/// The names of the facts (`schema-…`, `settings-…`) in a check cache.
fn facts(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("checked"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The loader's debug line for each settings schema it compiles.
const COMPILING: &str = "compiling a settings JSON Schema";

#[test]
fn a_first_start_checks_the_schemas_in_a_child_and_the_service_compiles_none() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let cache = dir.path().join("cache");
    let env = [
        (SECRET_VAR, "test-secret"),
        ("MAILHOST_CACHE_DIR", cache.to_str().unwrap()),
        ("RUST_LOG", "mailhost=debug"),
    ];
    let opts = Options {
        env: &env,
        quiet: true,
        ..Options::default()
    };
    let s = Service::start_with(dir.path(), opts.clone());
    let log = s.log();
    // the service started one child and waited for it
    let child: u32 = log
        .lines()
        .find_map(|l| {
            let rest = l
                .split("checking the config in a child process (pid ")
                .nth(1)?;
            rest.split(')').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no child process in the log:\n{log}"));
    assert_ne!(child, s.pid());
    assert!(
        log.contains(&format!(
            "the config check in child process {child} ended: exit status: 0"
        )),
        "{log}"
    );
    // every schema compiled was compiled in the child, none in the service
    let compiled: Vec<&str> = log.lines().filter(|l| l.contains(COMPILING)).collect();
    assert!(compiled.len() >= 2, "one per plugin at least:\n{log}");
    for l in &compiled {
        assert!(
            l.contains(&format!("config_check{{pid={child}}}")),
            "compiled outside the child: {l}\n{log}"
        );
    }
    // and the child left what it found valid: both plugins' schemas, the
    // three accounts' settings
    let found = facts(&cache);
    assert_eq!(
        found.iter().filter(|f| f.starts_with("schema-")).count(),
        2,
        "{found:?}"
    );
    assert_eq!(
        found.iter().filter(|f| f.starts_with("settings-")).count(),
        3,
        "{found:?}"
    );
    drop(s);

    // the next start knows everything: no child, nothing compiled
    let before = log.len();
    let s = Service::start_with(dir.path(), opts);
    let log = s.log();
    let second = &log[before..];
    assert!(second.contains("mailhost::"), "no debug log:\n{second}");
    assert!(!second.contains(COMPILING), "{second}");
    assert!(!second.contains("child process"), "{second}");
    assert_eq!(facts(&cache), found);
}

#[test]
fn an_invalid_account_setting_gives_serve_the_same_error_with_or_without_the_check_child() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "port = 2526\n", "port = \"twenty-five\"\n");
    let line = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("port = \"twenty-five\""))
        .unwrap()
        + 1;
    let serve = |cache: &str| {
        let out = Command::new(mailhost_bin())
            .current_dir(dir.path())
            .env_remove("MAILHOST_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .env(SECRET_VAR, "test-secret")
            .env("MAILHOST_CACHE_DIR", cache)
            .args(["--config", "mailhost.toml", "--plugins", "plugins", "serve"])
            .args(["--bind", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cache = dir.path().join("cache");
    let with_child = serve(cache.to_str().unwrap());
    let in_process = serve("off");
    assert_eq!(with_child.0, Some(78), "{}", with_child.2);
    let at = format!("mailhost.toml:{line}:");
    assert_eq!(
        with_child.2.matches(&at).count(),
        1,
        "the error once, at {at}:\n{}",
        with_child.2
    );
    assert!(
        with_child.2.contains("account `server` `port`"),
        "{}",
        with_child.2
    );
    // the same answer, word for word, as checking in the one process
    assert_eq!(with_child, in_process);
    // the child did run: it remembered the two plugins' schemas
    let found = facts(&cache);
    assert_eq!(
        found.iter().filter(|f| f.starts_with("schema-")).count(),
        2,
        "{found:?}"
    );
}

/// `[api] tls_cert`/`tls_key`: the API (and the admin page) answer over
/// HTTPS only; a config with half of it names the line and does not start.
#[test]
fn https_when_the_config_gives_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), 2525, "");
    let ca = peer_ca();
    let key = ca.with_file_name("key.pem");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}\n[api]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            ca.display(),
            key.display()
        ),
    )
    .unwrap();
    let s = Service::start_with(
        dir.path(),
        Options {
            env: &[(SECRET_VAR, "test-secret")],
            tls_ca: Some(&ca),
            ..Options::default()
        },
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
    // Clients that connect and say nothing, or say garbage, hold up no one.
    let silent: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    {
        use std::io::Write;
        let mut junk = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0]);
    }
    let rcpt = format!("{}@example.com", unique("https"));
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": [rcpt], "subject": "over TLS", "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "sent", |m| m["state"] == "sent");
    assert!(saved_for(&rcpt).is_some());
    drop(silent);
    let metrics = s.metrics();
    let end: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mailhost_api_certificate_expiry_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no certificate expiry: {metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(end > now, "{end} is not in the future");
    // Plain HTTP on that port gets no answer.
    assert!(!mailhost_tests::service::readyz(port));
    assert!(s
        .log()
        .contains(&format!("listening on https://127.0.0.1:{port}")));
    drop(s);

    // Only the certificate: the config's line, and no start.
    std::fs::write(
        &path,
        format!("{text}\n[api]\ntls_cert = \"{}\"\n", ca.display()),
    )
    .unwrap();
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("mailhost.toml:") && err.contains("only one of tls_cert and tls_key"),
        "{err}"
    );
    // A key that is not the certificate's.
    let other = dir.path().join("other.key");
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&other)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::write(
        &path,
        format!(
            "{text}\n[api]\ntls_cert = \"{}\"\ntls_key = \"other.key\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = cli(dir.path(), &["serve", "--bind", &bind]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY-----\n"), "{err}");
}

/// `--log-format json`: every log line is one JSON object (for log
/// shippers), the service's own events and the settled messages alike.
#[test]
fn log_lines_as_json_for_log_shippers() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--log-format", "json"]);
    let rcpt = format!("{}@example.com", unique("jsonlog"));
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": [rcpt], "subject": "json log", "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "sent", |m| m["state"] == "sent");
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serve: listening on http://127.0.0.1:"))),
        "{log}"
    );
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["target"].is_string()));
    assert!(!log.contains(ERP_TOKEN));
}
