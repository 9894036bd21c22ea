//! The Windows build (`x86_64-pc-windows-gnu`) run under Wine against the same
//! peers as the Linux tests. `scripts/windows.sh` builds what these need,
//! creates a fresh Wine prefix (with the `bcryptprimitives.dll` test shim) and
//! runs them with `--ignored`; a plain `cargo test` skips them because they
//! need that build and prefix.
//!
//! Every run of a Windows program is bounded: one that does not exit in time
//! is killed and fails its test (that is how the SMTP exit hang shows).
//!
//! The desktop-client plugins run against real Windows mechanisms with test
//! doubles for the clients: the prefix's registry (written with `wine reg`),
//! Wine's `mapi32.dll`, which forwards `MAPISendMailW` to the default mail
//! client's DLL, here `tests/windows/testclient.c` (it records what it got and
//! answers a chosen `MAPI_E_*` code), and COM activation of
//! `Outlook.Application`, served by `tests/windows/testoutlook.c`, an
//! out-of-process COM server (`LocalServer32`, an exe, as Outlook is) that
//! records the object-model calls: activation and the marshalling of the
//! late-bound calls cross a process boundary.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mailhost_tests::loader::workspace_root;
use mailhost_tests::{peer_ca, smtp::saved_for};

mod mapi;
mod outlook;
mod service;

/// Long enough for a cold Wine start on a busy 2-core machine; a hang never ends.
const LIMIT: Duration = Duration::from_secs(90);

/// Where the Windows build put `mailhost.exe` and the plugin DLLs.
fn win_dir() -> PathBuf {
    std::env::var_os("MAILHOST_WINDOWS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/x86_64-pc-windows-gnu/debug"))
}

fn win_exe() -> PathBuf {
    let exe = win_dir().join("mailhost.exe");
    assert!(
        exe.exists(),
        "{} is not built: run scripts/windows.sh",
        exe.display()
    );
    exe
}

/// A Unix path as Wine's `Z:` drive shows it to the Windows program.
fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// `wine64 PROGRAM ARGS...` in the test prefix (`WINEPREFIX`, set by scripts/windows.sh).
fn wine(program: &Path) -> Command {
    let prefix = std::env::var_os("WINEPREFIX")
        .expect("WINEPREFIX is not set: run these tests through scripts/windows.sh");
    let wine = std::env::var_os("WINE").unwrap_or_else(|| "/usr/lib/wine/wine64".into());
    let mut c = Command::new(wine);
    c.arg(program)
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    c
}

#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` and waits at most `limit` for it to exit; a program still
/// running then is killed and the test fails. Output goes to files, not pipes:
/// a wineserver started by the program may keep inherited pipes open after
/// the program exited.
fn run_bounded(cmd: Command, dir: &Path, limit: Duration) -> Run {
    run_bounded_with(cmd, dir, limit, Stdio::null())
}

/// [`run_bounded`] with `stdin` as the program's standard input.
fn run_bounded_with(mut cmd: Command, dir: &Path, limit: Duration, stdin: Stdio) -> Run {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut child = cmd
        .stdin(stdin)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start wine64 (apt-get install wine64, or run scripts/windows.sh)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit within {} s (killed). stdout:\n{}\nstderr:\n{}",
                limit.as_secs(),
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn plugins_load_over_the_abi_under_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = wine(&win_exe());
    cmd.current_dir(dir.path())
        .args(["--plugins", &win_path(&win_dir()), "plugins", "--json"]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let loaded: Vec<&str> = v["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["pickup", "smtp", "mapi", "outlook"] {
        assert!(loaded.contains(&name), "{name} not loaded: {run:?}");
    }
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(0), "{run:?}");
}

#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn a_pickup_send_writes_the_file_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let subject = unique("win-pickup");
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"outbox\"\n",
    )
    .unwrap();
    let mut cmd = wine(&win_exe());
    cmd.current_dir(dir.path()).args([
        "--plugins",
        &win_path(&win_dir()),
        "--config",
        "mailhost.toml",
        "send",
        "--to",
        "someone@example.com",
        "--subject",
        &subject,
        "--text",
        "from Windows",
    ]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains(&subject), "{eml}");
}

/// The SMTP plugin over STARTTLS + AUTH to the Node smtp-server peer: the
/// message arrives and the process exits (it used to deliver and then hang).
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn an_smtp_send_over_starttls_delivers_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let rcpt = format!("{}@example.com", unique("win-smtp"));
    let config = format!(
        r#"[policy]
account = "peer"

[accounts.peer]
plugin = "smtp"
from = "erp@example.com"
host = "localhost"
port = 2587
security = "starttls"
auth = "required"
username = "testuser"
password = "env:WIN_SMTP_PASSWORD"
ca_file = '{ca}'
"#,
        ca = win_path(&peer_ca())
    );
    std::fs::write(dir.path().join("mailhost.toml"), config).unwrap();
    let mut cmd = wine(&win_exe());
    cmd.current_dir(dir.path())
        .env("WIN_SMTP_PASSWORD", "testpass")
        .args([
            "--plugins",
            &win_path(&win_dir()),
            "--config",
            "mailhost.toml",
            "send",
            "--to",
            &rcpt,
            "--subject",
            "Grüße aus Windows",
            "--text",
            "sent by mailhost.exe under Wine",
        ]);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "{run:?}");
    let (eml, meta) = saved_for(&rcpt).unwrap_or_else(|| panic!("{rcpt} not captured; {run:?}"));
    assert_eq!(meta["port"], 2587, "{meta}");
    assert_eq!(meta["user"], "testuser", "{meta}");
    assert_eq!(meta["tls"], true, "{meta}");
    let eml = String::from_utf8_lossy(&eml);
    assert!(eml.contains("sent by mailhost.exe under Wine"), "{eml}");
    assert!(!run.stderr.contains("testpass"), "{run:?}");
}

/// `wine reg ARGS` in the test prefix; fails the test when `reg` fails.
fn reg(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = wine(Path::new("reg"));
    cmd.args(args);
    let run = run_bounded(cmd, dir.path(), LIMIT);
    assert!(run.status.success(), "reg {args:?}: {run:?}");
}

/// `wine reg delete KEY /f`, which may find nothing to delete.
fn reg_delete(key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = wine(Path::new("reg"));
    cmd.args(["delete", key, "/f"]);
    let _ = run_bounded(cmd, dir.path(), LIMIT);
}

/// `mailhost.exe ARGS` in `dir` (with `mailhost.toml` there) and extra environment.
fn mailhost_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    mailhost_with_plugins(dir, &win_dir(), env, args)
}

/// [`mailhost_in`] with the plugins from `plugins`.
fn mailhost_with_plugins(dir: &Path, plugins: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let command = || {
        let mut cmd = wine(&win_exe());
        cmd.current_dir(dir)
            .args(["--plugins", &win_path(plugins), "--config", "mailhost.toml"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    // mailhost exits 0 or with a sysexits code (64–78, 101 on a panic) and
    // says why; exit 1 with nothing printed is Wine failing to start the
    // program (seen once in CI). Such a start is tried again, at most twice.
    for _ in 0..2 {
        let out = tempfile::tempdir().unwrap();
        let run = run_bounded(command(), out.path(), LIMIT);
        let not_started =
            run.status.code() == Some(1) && run.stdout.is_empty() && run.stderr.is_empty();
        if !not_started {
            return run;
        }
        eprintln!("wine did not start mailhost.exe {args:?} (exit 1, no output): trying again");
    }
    let out = tempfile::tempdir().unwrap();
    run_bounded(command(), out.path(), LIMIT)
}

/// The Windows temporary directories of the prefix (where attachments go):
/// Wine 8's `%TEMP%` is `C:\users\<user>\Temp`; Windows' is
/// `AppData\Local\Temp`. Asserts that there is one.
fn prefix_temp_dirs() -> Vec<PathBuf> {
    let prefix = PathBuf::from(std::env::var_os("WINEPREFIX").unwrap());
    let mut dirs = Vec::new();
    for user in std::fs::read_dir(prefix.join("drive_c/users"))
        .unwrap()
        .flatten()
    {
        for temp in ["Temp", "AppData/Local/Temp"] {
            let d = user.path().join(temp);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    assert!(
        !dirs.is_empty(),
        "no temporary directory in {}",
        prefix.display()
    );
    dirs
}

/// The entries of the prefix's temporary directories.
fn prefix_temp_entries() -> Vec<String> {
    let mut found = Vec::new();
    for dir in prefix_temp_dirs() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

const CLIENTS_MAIL: &str = r"HKLM\Software\Clients\Mail";

/// `mailhost service uninstall --name NAME` when dropped, so a failed test
/// leaves no service that starts with every later Wine session.
struct Installed<'a> {
    name: String,
    dir: &'a Path,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let mut cmd = wine(&win_exe());
        cmd.args(["service", "uninstall", "--name", &self.name]);
        let out = tempfile::tempdir_in(self.dir).unwrap();
        let _ = run_bounded(cmd, out.path(), LIMIT);
    }
}
