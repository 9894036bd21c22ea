//! Simple and Extended MAPI: the registered default mail client (a test
//! double), the modeless compose window, and a 32-bit client through the helper.

use super::*;

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
