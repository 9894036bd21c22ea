//! Outlook Classic through COM activation (a test double), and autodetect's
//! chain over Outlook, the MAPI level and the accounts.

use super::*;

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
