//! `mailhost service install` and `serve` as a Windows service: the account it
//! runs as, the service manager's start and stop, the Event Log.

use super::*;

/// One HTTP request over a plain socket: (status line, whole answer).
fn http(port: u16, head: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{head}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    (
        answer.lines().next().unwrap_or_default().to_string(),
        answer,
    )
}

/// `service install --account`: the service manager runs it as that
/// account (here LocalService), which is given modify rights on the
/// config's folder; a user account without its password is refused
/// before anything is registered.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn service_install_takes_the_account_to_run_as() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"picked\"\n",
    )
    .unwrap();
    let name = format!("mh-acct-{}", std::process::id());
    let install = |extra: &[&str]| {
        let mut cmd = wine(&win_exe());
        cmd.current_dir(dir.path())
            .args([
                "--plugins",
                &win_path(&win_dir()),
                "--config",
                "mailhost.toml",
            ])
            .args(["service", "install", "--name", &name])
            .args(extra);
        run_bounded(cmd, dir.path(), LIMIT)
    };
    let run = install(&["--account", "CORP\\mail"]);
    assert_eq!(run.status.code(), Some(64), "{run:?}");
    assert!(run.stderr.contains("--password-env VAR"), "{run:?}");
    let mut sc = wine(Path::new("sc"));
    sc.args(["query", &name]);
    assert!(
        !run_bounded(sc, dir.path(), LIMIT).status.success(),
        "registered anyway"
    );

    // (not started here: the address is only written into the service)
    let run = install(&["--account", "LocalService", "--bind", "0.0.0.0:18025"]);
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains("netsh advfirewall firewall add rule")
            && run.stdout.contains("localport=18025"),
        "{run:?}"
    );
    let _installed = Installed {
        name: name.clone(),
        dir: dir.path(),
    };
    assert!(
        run.stdout.contains("as NT AUTHORITY\\LocalService"),
        "{run:?}"
    );
    // icacls ran, or its command is printed for an administrator
    assert!(
        run.stdout.contains("may now change files in")
            || run
                .stdout
                .contains("/grant \"NT AUTHORITY\\LocalService:(OI)(CI)M\""),
        "{run:?}"
    );
    // The service manager keeps it as the service's ObjectName (Wine's sc
    // has no `qc`).
    let mut reg = wine(Path::new("reg"));
    reg.args([
        "query",
        &format!("HKLM\\SYSTEM\\CurrentControlSet\\Services\\{name}"),
        "/v",
        "ObjectName",
    ]);
    let q = run_bounded(reg, dir.path(), LIMIT);
    assert!(q.stdout.contains("NT AUTHORITY\\LocalService"), "{q:?}");
}

/// `mailhost service install` registers `serve` with the service manager;
/// the service starts in its config's folder, takes a message through the
/// API, stops gracefully on `sc stop` (the log says so), and `service
/// uninstall` removes it. (Wine's service manager does not keep restart
/// actions: install warns and goes on.)
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn serve_runs_as_a_windows_service() {
    let dir = tempfile::tempdir().unwrap();
    let port = mailhost_tests::free_port();
    let token = "svc-token-for-tests";
    let config = dir.path().join("mailhost.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"picked\"\n\n[api.tokens.erp]\nhash = \"{}\"\nscopes = [\"send\"]\n",
            mailhost::server::auth::hash_token(token)
        ),
    )
    .unwrap();
    let name = format!("mh-svc-{}", std::process::id());
    // Wine ends the services it started when no other Wine program runs:
    // one waits on its input meanwhile. It starts Wine afresh, so that the
    // service manager and the services inherit its standard error and
    // debug channels: Wine prints each Event Log event (`ReportEventW`) there.
    let wine_bin = std::env::var_os("WINE").unwrap_or_else(|| "/usr/lib/wine/wine64".into());
    let server = Path::new(&wine_bin).with_file_name("wineserver");
    for arg in ["-k", "-w"] {
        let _ = Command::new(&server)
            .arg(arg)
            .env("WINEPREFIX", std::env::var_os("WINEPREFIX").unwrap())
            .status();
    }
    let events_path = dir.path().join("events.txt");
    let booted_path = dir.path().join("keeper.txt");
    let mut keeper = wine(Path::new("cmd"))
        .args(["/c", "echo booted & pause"])
        .env("WINEDEBUG", "err+eventlog,warn+eventlog,trace+eventlog")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&booted_path).unwrap())
        .stderr(std::fs::File::create(&events_path).unwrap())
        .spawn()
        .unwrap();
    let events = || std::fs::read_to_string(&events_path).unwrap_or_default();
    // A program runs once Wine has booted (its service manager included).
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_to_string(&booted_path).is_ok_and(|t| t.contains("booted")) {
        assert!(Instant::now() < deadline, "Wine did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut cmd = wine(&win_exe());
    cmd.current_dir(dir.path()).args([
        "--plugins",
        &win_path(&win_dir()),
        "--config",
        "mailhost.toml",
        "service",
        "install",
        "--name",
        &name,
        "--bind",
        &format!("127.0.0.1:{port}"),
    ]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains(&format!("installed service `{name}`")),
        "{run:?}"
    );
    let _installed = Installed {
        name: name.clone(),
        dir: dir.path(),
    };
    // The service's events go to the Application log under its name, with
    // the message table in mailhost.exe.
    let source =
        format!("HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\{name}");
    let mut reg = wine(Path::new("reg"));
    reg.args(["query", &source]);
    let q = run_bounded(reg, dir.path(), LIMIT);
    assert!(q.status.success(), "no event source: {q:?}");
    assert!(
        q.stdout.contains("EventMessageFile") && q.stdout.contains("mailhost.exe"),
        "{q:?}"
    );
    assert!(q.stdout.contains("TypesSupported"), "{q:?}");

    let mut sc = wine(Path::new("sc"));
    sc.args(["start", &name]);
    // Started here, or already by Wine's boot (the service starts automatically).
    let _ = run_bounded(sc, dir.path(), LIMIT);
    let log = dir.path().join("mailhost-service.log");
    let deadline = Instant::now() + LIMIT;
    while !mailhost_tests::service::readyz(port) {
        assert!(
            Instant::now() < deadline,
            "the service never answered; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its own events go to the Event Log as information.
    let deadline = Instant::now() + LIMIT;
    while !events().contains(&format!(
        "trace:eventlog:ReportEventW L\"service `{name}`: running, listening on http://127.0.0.1:{port}\""
    )) {
        assert!(Instant::now() < deadline, "no event; Wine's output:\n{}", events());
        std::thread::sleep(Duration::from_millis(200));
    }
    let subject = unique("win-service");
    let (status, answer) = http(
        port,
        &format!("POST /v1/messages HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json"),
        &format!("{{\"to\": \"someone@example.com\", \"subject\": \"{subject}\", \"text\": \"queued\"}}"),
    );
    assert!(status.contains(" 202 "), "{answer}");
    // The pickup folder is relative: the config's folder, not the system's.
    let picked = dir.path().join("picked");
    let deadline = Instant::now() + LIMIT;
    loop {
        let sent = std::fs::read_dir(&picked)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&subject)));
        if sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A token added to the file applies on `mailhost service reload` (the
    // service's SIGHUP), without a restart.
    let token2 = "svc-token-two";
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[api.tokens.two]\nhash = \"{}\"\nscopes = [\"send\"]\n",
        mailhost::server::auth::hash_token(token2)
    ));
    std::fs::write(&config, text).unwrap();
    let status_with = |t: &str| {
        http(
            port,
            &format!("GET /v1/status HTTP/1.1\r\nAuthorization: Bearer {t}"),
            "",
        )
        .0
    };
    assert!(
        status_with(token2).contains(" 401 "),
        "not before the reload"
    );
    let mut cmd = wine(&win_exe());
    cmd.args(["service", "reload", "--name", &name]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("to read its config again"), "{run:?}");
    let deadline = Instant::now() + LIMIT;
    while !status_with(token2).contains(" 200 ") {
        assert!(
            Instant::now() < deadline,
            "the new token never worked; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut sc = wine(Path::new("sc"));
    sc.args(["stop", &name]);
    let run = run_bounded(sc, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("serve: stopped") {
            assert!(
                text.contains("the service manager asked it to stop"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no graceful stop; log:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A config broken after the install: the service stops with the
    // config's exit code (78) for the service manager, the log says where.
    let mut text = std::fs::read_to_string(&config).unwrap();
    let bad_line = text.lines().count() + 1;
    text.push_str("bogus = = 1\n");
    std::fs::write(&config, text).unwrap();
    let mut sc = wine(Path::new("sc"));
    sc.args(["start", &name]);
    let _ = run_bounded(sc, dir.path(), LIMIT);
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut sc = wine(Path::new("sc"));
        sc.args(["query", &name]);
        let q = run_bounded(sc, dir.path(), LIMIT).stdout;
        if q.contains("STOPPED") && q.contains("SERVICE_EXIT_CODE  : 78") {
            break;
        }
        assert!(Instant::now() < deadline, "{q}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("mailhost.toml:{bad_line}:9: extra `=`")),
        "{text}"
    );
    assert!(
        text.contains("not started: the config does not load (exit code 78)"),
        "{text}"
    );
    // ... and as an error in the Event Log.
    assert!(
        events().contains(&format!(
            "err:eventlog:ReportEventW L\"service `{name}`: not started: the config does not load (exit code 78)"
        )),
        "{}",
        events()
    );

    let mut cmd = wine(&win_exe());
    cmd.args(["service", "uninstall", "--name", &name]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains(&format!("removed service `{name}`")),
        "{run:?}"
    );
    let mut sc = wine(Path::new("sc"));
    sc.args(["query", &name]);
    assert!(
        !run_bounded(sc, dir.path(), LIMIT).status.success(),
        "still registered"
    );
    let mut reg = wine(Path::new("reg"));
    reg.args(["query", &source]);
    assert!(
        !run_bounded(reg, dir.path(), LIMIT).status.success(),
        "the event source is left behind"
    );
    let _ = keeper.kill();
    let _ = keeper.wait();
}
