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
    let mut cmd = wine(&win_exe());
    cmd.current_dir(dir)
        .args(["--plugins", &win_path(plugins), "--config", "mailhost.toml"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tempfile::tempdir().unwrap();
    run_bounded(cmd, out.path(), LIMIT)
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

/// Simple MAPI end to end: detection from the registry, then Wine's
/// mapi32.dll forwarding MAPISendMailW to the registered test client. One test
/// because the registry is the prefix's, shared by everything running in it.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn simple_mapi_through_the_registered_default_mail_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"mapi-simple\"\ncompose_mode = \"mapi-simple\"\n",
    )
    .unwrap();

    // No default mail client: the probe says so and policy explain shows it.
    reg_delete(CLIENTS_MAIL);
    let run = mailhost_in(dir.path(), &[], &["policy", "explain", "--action", "send"]);
    assert_eq!(run.status.code(), Some(69), "{run:?}");
    assert!(
        run.stdout
            .contains("plugin `mapi`: no default mail client is set"),
        "{run:?}"
    );

    // A client whose DLL is missing: named, with what is wrong.
    reg(&["add", CLIENTS_MAIL, "/ve", "/d", "Gone Client", "/f"]);
    reg(&[
        "add",
        &format!(r"{CLIENTS_MAIL}\Gone Client"),
        "/v",
        "DLLPath",
        "/d",
        r"C:\nowhere\gone.dll",
        "/f",
    ]);
    let run = mailhost_in(dir.path(), &[], &["policy", "explain", "--action", "send"]);
    assert!(
        run.stdout
            .contains(r"the default mail client `Gone Client`")
            && run
                .stdout
                .contains(r"its DLLPath C:\nowhere\gone.dll: cannot read it"),
        "{run:?}"
    );

    // The test client: Simple MAPI is offered.
    let client = std::env::var_os("MAILHOST_TEST_CLIENT_DLL")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_CLIENT_DLL: run through scripts/windows.sh");
    reg(&["add", CLIENTS_MAIL, "/ve", "/d", "MailhostTestClient", "/f"]);
    reg(&[
        "add",
        &format!(r"{CLIENTS_MAIL}\MailhostTestClient"),
        "/v",
        "DLLPath",
        "/d",
        &win_path(&client),
        "/f",
    ]);
    let run = mailhost_in(dir.path(), &[], &["policy", "explain", "--action", "send"]);
    assert!(
        run.stdout
            .contains("plugin `mapi` probe: available (level simple)"),
        "{run:?}"
    );

    // send: recipients by class, HTML as text, the attachment readable during the call.
    let log = dir.path().join("client.log");
    let env = [("MAILHOST_TEST_CLIENT_LOG", win_path(&log))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    std::fs::write(dir.path().join("Bestellung äö.txt"), "zwölf Zeichen").unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "Anna Ärger <anna@example.com>",
            "--cc",
            "cc@example.com",
            "--bcc",
            "bcc@example.com",
            "--subject",
            "Grüße aus Wine",
            "--html",
            "<p>Hallo <b>Welt</b></p><p>zweiter Absatz</p>",
            "--attach",
            "Bestellung äö.txt",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .contains("handed to the mail client `MailhostTestClient`"),
        "{run:?}"
    );
    let got = std::fs::read_to_string(&log).unwrap();
    let expected = "flags=1\nsubject=Grüße aus Wine\nbody=Hallo Welt\\r\\n\\r\\nzweiter Absatz\nrecip1=SMTP:anna@example.com\nrecip2=SMTP:cc@example.com\nrecip3=SMTP:bcc@example.com\nfile=Bestellung äö.txt\nsize=14\nend\n";
    assert_eq!(got, expected);
    assert!(
        !prefix_temp_entries()
            .iter()
            .any(|e| e.starts_with("mailhost-attachments-")),
        "attachment files left behind: {:?}",
        prefix_temp_entries()
    );

    // compose: the client's modal window (MAPI_LOGON_UI | MAPI_DIALOG).
    std::fs::remove_file(&log).unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "Entwurf",
            "--text",
            "bitte prüfen",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    let got = std::fs::read_to_string(&log).unwrap();
    assert!(
        got.starts_with("flags=9\nsubject=Entwurf\nbody=bitte prüfen\n"),
        "{got}"
    );

    // The client's answers become classes: user abort, login failure.
    let mut abort = env.clone();
    abort.push(("MAILHOST_TEST_CLIENT_ANSWER", "1"));
    let run = mailhost_in(
        dir.path(),
        &abort,
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--text",
            "x",
        ],
    );
    assert_eq!(run.status.code(), Some(76), "{run:?}");
    assert!(
        run.stderr.contains("answered MAPI_E_USER_ABORT (1): the user cancelled; nothing was sent [class permanent]"),
        "{run:?}"
    );
    let mut login = env.clone();
    login.push(("MAILHOST_TEST_CLIENT_ANSWER", "3"));
    let run = mailhost_in(
        dir.path(),
        &login,
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--text",
            "x",
        ],
    );
    assert_eq!(run.status.code(), Some(77), "{run:?}");
    assert!(run.stderr.contains("MAPI_E_LOGIN_FAILURE (3)"), "{run:?}");

    reg_delete(CLIENTS_MAIL);
}

/// Removes the attachment directories a modeless window kept in the prefix's
/// temporary directory; returns how many there were.
fn remove_kept_attachments() -> usize {
    let mut removed = 0;
    for dir in prefix_temp_dirs() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("mailhost-attachments-")
            {
                std::fs::remove_dir_all(e.path()).unwrap();
                removed += 1;
            }
        }
    }
    removed
}

/// mapi-full where the client has Extended MAPI too (DLLPathEx exporting
/// MAPILogonEx): compose opens the modeless window (`MAPI_DIALOG_MODELESS`)
/// and keeps the attachment for it; a send in mapi-full is refused as
/// unsupported, so the next mode, mapi-simple, sends.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn mapi_full_composes_in_the_modeless_window() {
    let client = std::env::var_os("MAILHOST_TEST_CLIENT_DLL")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_CLIENT_DLL: run through scripts/windows.sh");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"mapi-full\"\ncompose_mode = \"mapi-full\"\n",
    )
    .unwrap();
    reg_delete(CLIENTS_MAIL);
    reg_delete(CLIENTS_MAIL_USER);
    remove_kept_attachments();
    reg(&["add", CLIENTS_MAIL, "/ve", "/d", "MailhostTestClient", "/f"]);
    for value in ["DLLPath", "DLLPathEx"] {
        reg(&[
            "add",
            &format!(r"{CLIENTS_MAIL}\MailhostTestClient"),
            "/v",
            value,
            "/d",
            &win_path(&client),
            "/f",
        ]);
    }
    let run = mailhost_in(
        dir.path(),
        &[],
        &["policy", "explain", "--action", "compose"],
    );
    assert!(
        run.stdout
            .contains("plugin `mapi` probe: available (level full)"),
        "{run:?}"
    );

    let log = dir.path().join("client.log");
    let log_env = win_path(&log);
    let env = [("MAILHOST_TEST_CLIENT_LOG", log_env.as_str())];
    std::fs::write(dir.path().join("Entwurf äö.txt"), "zwölf Zeichen").unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "Später senden",
            "--text",
            "bitte prüfen",
            "--attach",
            "Entwurf äö.txt",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("MAPI_DIALOG_MODELESS"), "{run:?}");
    // MAPI_LOGON_UI | MAPI_DIALOG_MODELESS = 0x1 | 0x4 | 0x8.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "flags=13\nsubject=Später senden\nbody=bitte prüfen\nrecip1=SMTP:anna@example.com\nfile=Entwurf äö.txt\nsize=14\nend\n"
    );
    // The window reads the attachment later: it is still there.
    assert_eq!(remove_kept_attachments(), 1, "the attachment was not kept");

    // A send in mapi-full alone: refused, with the reason.
    let send = [
        "send",
        "--from",
        "erp@example.com",
        "--to",
        "anna@example.com",
        "--text",
        "x",
    ];
    let run = mailhost_in(dir.path(), &env, &send);
    assert_eq!(run.status.code(), Some(69), "{run:?}");
    assert!(
        run.stderr
            .contains("mapi-full: sending through Extended MAPI (Outbox, HTML body) is not built")
            && run.stderr.contains("[class unsupported]"),
        "{run:?}"
    );
    // With mapi-simple after it (the default order), mapi-simple sends.
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"autodetect\"\nsend_autodetect = [\"mapi-full\", \"mapi-simple\"]\n",
    )
    .unwrap();
    std::fs::remove_file(&log).unwrap();
    let run = mailhost_in(dir.path(), &env, &send);
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("via mode:mapi-simple"), "{run:?}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .starts_with("flags=1\n"),
        "{:?}",
        std::fs::read_to_string(&log)
    );
    assert_eq!(remove_kept_attachments(), 0);
    reg_delete(CLIENTS_MAIL);
}

const CLIENTS_MAIL_USER: &str = r"HKCU\Software\Clients\Mail";

/// Runs the helper `mailhost-mapi32.exe` of `plugins` with `request` on its
/// stdin and returns its answer.
fn helper_exchange(
    plugins: &Path,
    env: &[(&str, &str)],
    request: &mailhost_mapi_helper32::Request,
) -> (Run, mailhost_mapi_helper32::Answer) {
    use mailhost_mapi_helper32::protocol::{encode, read_frame, MAX_ANSWER, MAX_REQUEST};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("request.bin");
    std::fs::write(&input, encode(request, MAX_REQUEST).unwrap()).unwrap();
    let mut cmd = wine(&plugins.join(mailhost_mapi_helper32::HELPER_EXE));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = run_bounded_with(
        cmd,
        dir.path(),
        LIMIT,
        std::fs::File::open(&input).unwrap().into(),
    );
    let stdout = std::fs::read(dir.path().join("stdout.txt")).unwrap();
    let answer = read_frame(&mut &stdout[..], MAX_ANSWER)
        .unwrap_or_else(|e| panic!("no answer ({e}): {run:?}"));
    (run, answer)
}

/// Copies the files `names` of the Windows build into a fresh plugin directory.
fn plugin_dir_with(names: &[(&Path, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in names {
        std::fs::copy(from, dir.path().join(name))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    dir
}

/// The 32-bit helper route of Simple MAPI: a 32-bit default mail client and
/// the 64-bit mailhost.
///
/// Debian's 32-bit Wine (`wine32:i386`) is not used by this stage, so a
/// 32-bit program cannot run here. What runs for real: the probe reading the
/// 32-bit client DLL's header and exports, the route decision, the plugin
/// finding (or missing) the helper beside its DLL, starting it as a Windows
/// process, the protocol both ways, and the helper's `MAPISendMailW` call
/// through Wine's `mapi32.dll` into a registered test client. The helper that
/// answers is the x86_64 build of the same source (`mailhost-mapi32.exe` in
/// the Windows build's directory), standing in for the i686 one; and since
/// Wine's `mapi32.dll` reads the default client from HKLM only while the
/// plugin reads HKCU first, HKCU names the 32-bit test client (what the probe
/// sees) and HKLM the 64-bit build of the same client (what the stand-in
/// helper's `mapi32.dll` loads). The real i686 helper is built and shown to
/// be refused cleanly where 32-bit programs cannot run.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn simple_mapi_through_the_32_bit_helper() {
    use mailhost_mapi_helper32::{Outcome, RecipClass, Recipient, Request, SimpleMessage};
    let client64 = std::env::var_os("MAILHOST_TEST_CLIENT_DLL")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_CLIENT_DLL: run through scripts/windows.sh");
    let client32 = std::env::var_os("MAILHOST_TEST_CLIENT32_DLL")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_CLIENT32_DLL: run through scripts/windows.sh");
    let helper32 = std::env::var_os("MAILHOST_HELPER32_EXE")
        .map(PathBuf::from)
        .expect("MAILHOST_HELPER32_EXE: run through scripts/windows.sh");
    assert_eq!(
        &std::fs::read(&helper32).unwrap()[..2],
        b"MZ",
        "{} is not a Windows program",
        helper32.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"mapi-simple\"\ncompose_mode = \"mapi-simple\"\n",
    )
    .unwrap();
    reg_delete(CLIENTS_MAIL);
    reg_delete(CLIENTS_MAIL_USER);
    for (root, name, dll) in [
        (CLIENTS_MAIL, "MailhostTestClient", &client64),
        (CLIENTS_MAIL_USER, "MailhostTestClient32", &client32),
    ] {
        reg(&["add", root, "/ve", "/d", name, "/f"]);
        reg(&[
            "add",
            &format!(r"{root}\{name}"),
            "/v",
            "DLLPath",
            "/d",
            &win_path(dll),
            "/f",
        ]);
    }
    let log = dir.path().join("client.log");
    let log_env = win_path(&log);

    // The helper on its own: one request on stdin, one answer on stdout.
    std::fs::write(dir.path().join("Preisliste.txt"), "zwölf Zeichen").unwrap();
    let request = Request::new(
        SimpleMessage {
            subject: "Grüße vom Helfer".into(),
            body: "Zeile 1\r\nZeile 2".into(),
            recipients: vec![
                Recipient {
                    class: RecipClass::To,
                    name: "Anna Ärger".into(),
                    address: "SMTP:anna@example.com".into(),
                },
                Recipient {
                    class: RecipClass::Bcc,
                    name: "bcc@example.com".into(),
                    address: "SMTP:bcc@example.com".into(),
                },
            ],
            files: vec![mailhost_mapi_helper32::File {
                path: win_path(&dir.path().join("Preisliste.txt")).into(),
                name: "Preisliste.txt".into(),
            }],
        },
        1,
        0,
    );
    let env = [("MAILHOST_TEST_CLIENT_LOG", log_env.as_str())];
    let (run, answer) = helper_exchange(&win_dir(), &env, &request);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(answer, mailhost_mapi_helper32::Answer::returned(0));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "flags=1\nsubject=Grüße vom Helfer\nbody=Zeile 1\\r\\nZeile 2\nrecip1=SMTP:anna@example.com\nrecip3=SMTP:bcc@example.com\nfile=Preisliste.txt\nsize=14\nend\n"
    );
    std::fs::remove_file(&log).unwrap();
    let (_, answer) = helper_exchange(
        &win_dir(),
        &[
            ("MAILHOST_TEST_CLIENT_LOG", log_env.as_str()),
            ("MAILHOST_TEST_CLIENT_ANSWER", "21"),
        ],
        &request,
    );
    assert!(
        matches!(answer.outcome, Outcome::Returned { code: 21, ref name } if name == "MAPI_E_AMBIGUOUS_RECIPIENT"),
        "{answer:?}"
    );
    std::fs::remove_file(&log).unwrap();

    // The probe: a 32-bit client, and no helper beside the plugin.
    let mapi_dll = win_dir().join("mailhost_mapi.dll");
    let bare = plugin_dir_with(&[(&mapi_dll, "mailhost_mapi.dll")]);
    let run = mailhost_with_plugins(
        dir.path(),
        bare.path(),
        &[],
        &["policy", "explain", "--action", "send"],
    );
    assert_eq!(run.status.code(), Some(69), "{run:?}");
    assert!(
        run.stdout.contains(
            "the default mail client `MailhostTestClient32` is 32-bit and this mailhost is 64-bit"
        ) && run
            .stdout
            .contains("mailhost-mapi32.exe is missing); install it beside mailhost_mapi.dll"),
        "{run:?}"
    );

    // The real 32-bit helper where 32-bit programs cannot run: refused with the reason.
    let real = plugin_dir_with(&[
        (&mapi_dll, "mailhost_mapi.dll"),
        (&helper32, mailhost_mapi_helper32::HELPER_EXE),
    ]);
    let run = mailhost_with_plugins(
        dir.path(),
        real.path(),
        &env,
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--text",
            "x",
        ],
    );
    assert_eq!(run.status.code(), Some(69), "{run:?}");
    // Wine without its 32-bit part starts the process, which ends at once
    // without running (real Windows without WoW64 refuses to start it).
    assert!(
        run.stderr
            .contains("mapi-simple (32-bit helper for `MailhostTestClient32`)")
            && (run.stderr.contains("the helper ended without an answer")
                || run.stderr.contains("cannot start"))
            && run.stderr.contains("32-bit programs")
            && run.stderr.contains("[class unavailable]"),
        "{run:?}"
    );
    assert!(!log.exists(), "the client was called");

    // Through mailhost.exe: the plugin starts the helper for the 32-bit client.
    let run = mailhost_in(dir.path(), &env, &["policy", "explain", "--action", "send"]);
    assert!(
        run.stdout
            .contains("plugin `mapi` probe: available (level simple)"),
        "{run:?}"
    );
    std::fs::write(dir.path().join("Angebot äö.txt"), "zwölf Zeichen").unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "Anna Ärger <anna@example.com>",
            "--cc",
            "cc@example.com",
            "--subject",
            "Grüße über den Helfer",
            "--html",
            "<p>Hallo <b>Welt</b></p>",
            "--attach",
            "Angebot äö.txt",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .contains("handed to the mail client `MailhostTestClient32`"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "flags=1\nsubject=Grüße über den Helfer\nbody=Hallo Welt\nrecip1=SMTP:anna@example.com\nrecip2=SMTP:cc@example.com\nfile=Angebot äö.txt\nsize=14\nend\n"
    );
    assert!(
        !prefix_temp_entries()
            .iter()
            .any(|e| e.starts_with("mailhost-attachments-")),
        "attachment files left behind: {:?}",
        prefix_temp_entries()
    );

    // compose: the modal window's flags cross the process boundary; the
    // client's answer comes back as its class.
    std::fs::remove_file(&log).unwrap();
    let mut abort = env.to_vec();
    abort.push(("MAILHOST_TEST_CLIENT_ANSWER", "1"));
    let run = mailhost_in(
        dir.path(),
        &abort,
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "Entwurf",
            "--text",
            "bitte prüfen",
        ],
    );
    assert_eq!(run.status.code(), Some(76), "{run:?}");
    assert!(
        run.stderr
            .contains("`MailhostTestClient32` answered MAPI_E_USER_ABORT (1): the user cancelled"),
        "{run:?}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .starts_with("flags=9\nsubject=Entwurf\nbody=bitte prüfen\n"),
        "{:?}",
        std::fs::read_to_string(&log)
    );

    reg_delete(CLIENTS_MAIL_USER);
    reg_delete(CLIENTS_MAIL);
}

/// The object-model calls the Outlook double recorded, without its own
/// "server ..." lines.
fn calls(log: &str) -> String {
    log.lines()
        .filter(|l| !l.starts_with("server "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Outlook: detection from the registry (not installed, registered, the new
/// Outlook in use) and COM activation of what is registered.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn outlook_detection_and_activation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"outlook\"\ncompose_mode = \"outlook\"\n",
    )
    .unwrap();
    let progid = r"HKCR\Outlook.Application";
    let prefs = r"HKCU\Software\Microsoft\Office\16.0\Outlook\Preferences";
    reg_delete(progid);
    reg_delete(prefs);
    let run = mailhost_in(
        dir.path(),
        &[],
        &["policy", "explain", "--action", "compose"],
    );
    assert!(
        run.stdout.contains(r"plugin `outlook`: Outlook Classic is not installed (HKCR\Outlook.Application\CLSID is missing)"),
        "{run:?}"
    );

    // Registered (a CLSID nothing serves): the probe offers it, activation fails cleanly.
    reg(&[
        "add",
        &format!(r"{progid}\CLSID"),
        "/ve",
        "/d",
        "{0006F03A-0000-0000-C000-000000000046}",
        "/f",
    ]);
    let run = mailhost_in(dir.path(), &[], &["policy", "explain", "--action", "send"]);
    assert!(
        run.stdout.contains("plugin `outlook` probe: available"),
        "{run:?}"
    );
    let run = mailhost_in(
        dir.path(),
        &[],
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "x",
            "--text",
            "x",
        ],
    );
    assert_eq!(run.status.code(), Some(69), "{run:?}");
    assert!(
        run.stderr
            .contains("outlook: CoCreateInstance(Outlook.Application) failed (HRESULT 0x80040154)")
            && run
                .stderr
                .contains("Outlook Classic is not registered on this machine"),
        "{run:?}"
    );

    // The test double registered as Outlook.Application: a send and a compose
    // go through the object model, non-ASCII text and an attachment included.
    // An out-of-process server, as Outlook is: COM starts the exe.
    let double = std::env::var_os("MAILHOST_TEST_OUTLOOK_EXE")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_OUTLOOK_EXE: run through scripts/windows.sh");
    let clsid = "{6D41A0C5-3E0B-4C57-9E33-7A1F2B4C9D10}";
    let server = format!(r"HKCR\CLSID\{clsid}\LocalServer32");
    reg(&["add", &format!(r"{progid}\CLSID"), "/ve", "/d", clsid, "/f"]);
    reg(&["add", &server, "/ve", "/d", &win_path(&double), "/f"]);
    let log = dir.path().join("outlook.log");
    let log_env = win_path(&log);
    let env = [("MAILHOST_TEST_OUTLOOK_LOG", log_env.as_str())];
    std::fs::write(dir.path().join("Angebot 2026.pdf"), "%PDF-1.4 test").unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "Anna Ärger <anna@example.com>",
            "--to",
            "bob@example.com",
            "--bcc",
            "hidden@example.com",
            "--subject",
            "Grüße",
            "--html",
            "<p>Schöne Grüße</p>",
            "--attach",
            "Angebot 2026.pdf",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains("handed to Outlook (MailItem.Send)"),
        "{run:?}"
    );
    // COM started the server process (with -Embedding) for this client.
    let got = std::fs::read_to_string(&log).unwrap();
    assert!(got.starts_with("server started=-Embedding\n"), "{got}");
    assert_eq!(
        calls(&got),
        "CreateItem(0)\nTo=anna@example.com; bob@example.com\nBCC=hidden@example.com\nSubject=Grüße\nHTMLBody=<p>Schöne Grüße</p>\nAttachments.Add=Angebot 2026.pdf\nsize=13\nSend\n"
    );
    std::fs::remove_file(&log).unwrap();
    let run = mailhost_in(
        dir.path(),
        &env,
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "Entwurf",
            "--text",
            "bitte prüfen",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        calls(&std::fs::read_to_string(&log).unwrap()),
        "CreateItem(0)\nTo=anna@example.com\nSubject=Entwurf\nBody=bitte prüfen\nDisplay(false)\n"
    );
    // The object model guard's answer (E_ABORT in EXCEPINFO) is a permanent failure.
    let run = mailhost_in(
        dir.path(),
        &[
            ("MAILHOST_TEST_OUTLOOK_LOG", log_env.as_str()),
            ("MAILHOST_TEST_OUTLOOK_FAIL", "Send"),
        ],
        &[
            "send",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--text",
            "x",
        ],
    );
    assert_eq!(run.status.code(), Some(76), "{run:?}");
    assert!(
        run.stderr.contains(
            "outlook: MailItem.Send failed (HRESULT 0x80004004): refused by the test double"
        ) && run.stderr.contains("object model guard"),
        "{run:?}"
    );
    assert!(
        !prefix_temp_entries()
            .iter()
            .any(|e| e.starts_with("mailhost-attachments-")),
        "attachment files left behind"
    );
    reg_delete(&format!(r"HKCR\CLSID\{clsid}"));

    // The new Outlook in use: neither COM nor MAPI.
    reg(&[
        "add",
        prefs,
        "/v",
        "UseNewOutlook",
        "/t",
        "REG_DWORD",
        "/d",
        "1",
        "/f",
    ]);
    let run = mailhost_in(
        dir.path(),
        &[],
        &["policy", "explain", "--action", "compose"],
    );
    assert!(
        run.stdout.contains("the new Outlook is in use (Outlook's UseNewOutlook = 1); it offers neither COM nor MAPI"),
        "{run:?}"
    );
    reg_delete(progid);
    reg_delete(prefs);

    // Only the new Outlook: compose hands it an X-Unsent draft (mode
    // outlook-new); a send through Outlook is not offered.
    let olk = std::env::var_os("MAILHOST_TEST_OLK_EXE")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_OLK_EXE: run through scripts/windows.sh");
    let app_path = r"HKCU\Software\Microsoft\Windows\CurrentVersion\App Paths\olk.exe";
    reg(&["add", app_path, "/ve", "/d", &win_path(&olk), "/f"]);
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\nsend_mode = \"outlook\"\ncompose_mode = \"outlook-new\"\n",
    )
    .unwrap();
    let run = mailhost_in(dir.path(), &[], &["policy", "explain", "--action", "send"]);
    assert!(
        run.stdout.contains(
            "plugin `outlook`: probe level is `outlook-new`, which does not offer outlook"
        ),
        "{run:?}"
    );
    let drafted = dir.path().join("olk.eml");
    let drafted_env = win_path(&drafted);
    let run = mailhost_in(
        dir.path(),
        &[("MAILHOST_TEST_OLK_LOG", drafted_env.as_str())],
        &[
            "compose",
            "--from",
            "erp@example.com",
            "--to",
            "anna@example.com",
            "--subject",
            "Neuer Entwurf",
            "--text",
            "für das neue Outlook",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains("opened in the new Outlook as a draft"),
        "{run:?}"
    );
    // olk.exe runs on its own (mailhost does not wait for it): wait, bounded.
    let started = Instant::now();
    while !drafted.exists() {
        assert!(
            started.elapsed() < LIMIT,
            "the new Outlook double was not given the draft"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let eml = std::fs::read_to_string(&drafted).unwrap();
    assert!(eml.starts_with("X-Unsent: 1\r\n"), "{eml}");
    assert!(
        eml.contains("Subject: Neuer Entwurf") && eml.contains("To: anna@example.com"),
        "{eml}"
    );
    reg_delete(app_path);
}

/// The chain `policy explain --json` shows.
fn chain_of(dir: &Path, action: &str) -> Vec<String> {
    let run = mailhost_in(
        dir,
        &[],
        &["--json", "policy", "explain", "--action", action],
    );
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    v["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("no chain: {run:?}"))
        .iter()
        .map(|c| c["label"].as_str().unwrap().to_string())
        .collect()
}

/// Autodetect on Windows: Outlook Classic when registered, then the MAPI level
/// the default mail client offers, then the account (send) or the builtin editor.
#[test]
#[ignore = "needs the Windows build and a Wine prefix: run scripts/windows.sh"]
fn autodetect_picks_outlook_then_the_mapi_level_then_falls_through() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"local\"\nsend_mode = \"autodetect\"\ncompose_mode = \"autodetect\"\nsend_autodetect = [\"outlook\", \"mapi-full\", \"mapi-simple\", \"account\"]\ncompose_autodetect = [\"outlook\", \"mapi-full\", \"mapi-simple\", \"builtin\"]\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"outbox\"\n",
    )
    .unwrap();
    let progid = r"HKCR\Outlook.Application";
    let client = std::env::var_os("MAILHOST_TEST_CLIENT_DLL")
        .map(PathBuf::from)
        .expect("MAILHOST_TEST_CLIENT_DLL: run through scripts/windows.sh");
    reg_delete(progid);
    reg_delete(CLIENTS_MAIL);
    assert_eq!(chain_of(dir.path(), "send"), ["local"]);
    assert_eq!(chain_of(dir.path(), "compose"), ["builtin"]);

    reg(&["add", CLIENTS_MAIL, "/ve", "/d", "MailhostTestClient", "/f"]);
    reg(&[
        "add",
        &format!(r"{CLIENTS_MAIL}\MailhostTestClient"),
        "/v",
        "DLLPath",
        "/d",
        &win_path(&client),
        "/f",
    ]);
    assert_eq!(chain_of(dir.path(), "send"), ["mode:mapi-simple", "local"]);
    assert_eq!(
        chain_of(dir.path(), "compose"),
        ["mode:mapi-simple", "builtin"]
    );

    reg(&[
        "add",
        &format!(r"{progid}\CLSID"),
        "/ve",
        "/d",
        "{0006F03A-0000-0000-C000-000000000046}",
        "/f",
    ]);
    assert_eq!(
        chain_of(dir.path(), "send"),
        ["mode:outlook", "mode:mapi-simple", "local"]
    );
    assert_eq!(
        chain_of(dir.path(), "compose"),
        ["mode:outlook", "mode:mapi-simple", "builtin"]
    );
    reg_delete(progid);
    reg_delete(CLIENTS_MAIL);
}

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
