//! `config/mailhost.service`, the systemd unit the admin guide installs: it
//! passes `systemd-analyze verify`, and its ExecStart, ExecReload and
//! KillSignal do what the unit says when run as systemd runs them, with
//! `$NOTIFY_SOCKET` (Type=notify): READY once the API answers, RELOADING then
//! READY around a reload, STOPPING, and exit 0 within TimeoutStopSec.
#![cfg(unix)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mailhost_tests::service::readyz;
use mailhost_tests::{copy_as, free_port, mailhost_bin, plugin_file_name, plugin_path};

const UNIT: &str = include_str!("../../config/mailhost.service");

/// `Key=value` of the unit's `[Service]` section.
fn service_key(key: &str) -> String {
    let mut in_service = false;
    for line in UNIT.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service {
            if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                return v.to_string();
            }
        }
    }
    panic!("no {key}= in [Service] of config/mailhost.service")
}

/// systemd-analyze, or None on a machine without systemd (outside CI only).
fn systemd_analyze() -> Option<PathBuf> {
    for p in ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-analyze is missing (apt-get install systemd); scripts/test.sh installs it"
    );
    eprintln!("skipped: no systemd-analyze on this machine");
    None
}

/// The unit with the installed paths replaced by this build's.
fn localized(dir: &Path) -> String {
    UNIT.replace(
        "/usr/local/bin/mailhost",
        &mailhost_bin().display().to_string(),
    )
    .replace(
        "/etc/mailhost/mailhost.toml",
        &dir.join("mailhost.toml").display().to_string(),
    )
    .replace(
        "/usr/local/lib/mailhost/plugins",
        &dir.join("plugins").display().to_string(),
    )
}

#[test]
fn the_unit_file_verifies() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("mailhost.service");
    std::fs::write(&unit, localized(dir.path())).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on keys it ignores: every line it prints is a mistake
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// What the service manager was told, one datagram at a time.
fn told(sock: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no {wanted} from serve");
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == wanted) {
                return msg;
            }
        }
    }
}

#[test]
fn exec_start_reload_and_stop_behave_as_the_unit_says() {
    assert_eq!(service_key("Type"), "notify");
    assert_eq!(service_key("KillSignal"), "SIGTERM");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("plugins")).unwrap();
    copy_as(
        &plugin_path("pickup"),
        &d.join("plugins"),
        &plugin_file_name("pickup"),
    );
    let port = free_port();
    std::fs::write(
        d.join("mailhost.toml"),
        format!(
            "[policy]\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"outbox\"\n\n[outbox]\ndatabase = \"{}\"\ndrain_secs = 5\n\n[api]\nbind = \"127.0.0.1:{port}\"\n",
            d.join("state/outbox.db").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("state")).unwrap();
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // ExecStart, split as systemd splits a command line without quotes
    let unit = localized(d);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(!exec.contains('"') && !exec.contains('\''), "{exec}");
    let log = std::fs::File::create(d.join("serve.log")).unwrap();
    // Standard error is the journal's stream, as systemd says in JOURNAL_STREAM.
    let journal = {
        use std::os::unix::fs::MetadataExt;
        let m = log.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(d.join("state"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("JOURNAL_STREAM", journal)
        .env("MAILHOST_CACHE_DIR", d.join("cache"))
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .stderr(log)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();

    // READY=1 once it listens: /readyz answers
    let msg = told(&sock, "READY=1");
    assert!(
        msg.contains(&format!("STATUS=listening on http://127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(
        readyz(port),
        "READY=1 before /readyz answers; log:\n{}",
        log()
    );

    // ExecReload with $MAINPID: RELOADING=1, then READY=1 again
    let reload = service_key("ExecReload").replace("$MAINPID", &child.id().to_string());
    let argv: Vec<&str> = reload.split_whitespace().collect();
    assert!(Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .unwrap()
        .success());
    let msg = told(&sock, "RELOADING=1");
    assert!(
        msg.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{msg}"
    );
    let msg = told(&sock, "READY=1");
    assert!(msg.contains("config reloaded"), "{msg}");
    assert!(log().contains("reloaded (SIGHUP)"), "{}", log());

    // KillSignal: STOPPING=1, exit 0 within TimeoutStopSec
    let stop_secs: u64 = service_key("TimeoutStopSec").parse().unwrap();
    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    told(&sock, "STOPPING=1");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(stop_secs),
            "still running after TimeoutStopSec; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; log:\n{}", log());
    // Each line carries its priority for the journal (`journalctl -p`) and
    // no time stamp (the journal has its own).
    let text = log();
    assert!(
        text.lines()
            .any(|l| l.starts_with("<6> INFO mailhost::server: serve: listening on")),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line without its priority: {line}"
        );
    }
}
