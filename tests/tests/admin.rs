//! The admin web page of `mailhost serve`: the security properties checked at
//! the HTTP level (no browser), and the pages driven in Debian's chromium by
//! Playwright (`tests/admin-browser/`), against the Node smtp-server peer
//! (2587, `testuser`/`testpass`). Screenshots land in
//! `target/admin-screenshots/`.
//!
//! Needs the cdylibs and the binary built (`cargo build -p mailhost -p
//! mailhost-smtp -p mailhost-example`), the peers running (`PEERS_DIR`), and
//! for the browser case `/usr/bin/chromium` and `npm ci` in
//! `tests/admin-browser` (`scripts/test.sh` installs both).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mailhost::server::auth::hash_token;
use mailhost_tests::service::Options;
use mailhost_tests::{
    copy_as, mailhost_bin, peer_ca, plugin_file_name, plugin_path, profile_dir, Service,
};

const ADMIN_TOKEN: &str = "admin-token-for-admin-tests";
const SEND_TOKEN: &str = "send-token-for-admin-tests";
/// The SMTP password stored in a secrets file: it must never appear in a response.
const STORED_SECRET: &str = "testpass";
/// The OAuth client secret of the Graph double, in a secrets file.
const OAUTH_SECRET: &str = "test-secret";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A config with comments (kept across saves), the Node smtp-server account
/// `node` whose password sits in a secrets file, and a user `alice`.
fn config(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for p in ["smtp", "example"] {
        copy_as(&plugin_path(p), &plugins, &plugin_file_name(p));
    }
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/node.password"), STORED_SECRET).unwrap();
    std::fs::write(dir.join("secrets/m365.secret"), OAUTH_SECRET).unwrap();
    let text = format!(
        r#"# mailhost for the admin page tests
[policy]
account = "node"        # the system account
send_mode = "autodetect"

[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "file:secrets/m365.secret"
authority = "{shared}"
ca_file = "{ca}"

[oauth.wrong]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "not-the-secret"
authority = "{shared}"
ca_file = "{ca}"

[accounts.node]
plugin = "smtp"
from = "erp@example.com"
description = "Node <smtp-server> peer"
host = "127.0.0.1"
port = 2587
security = "starttls"
ca_file = "{ca}"
auth = "required"
username = "testuser"
password = "file:secrets/node.password"

[tenants.acme]
account = "node"
support_address = "help@acme.example"

[purposes.support]
allowed_recipients = ["support@example.com"]
allow_client_support_address = true

[users.alice]
compose_mode = "builtin"   # alice's own choice

[users.alice.accounts.node]
username = "alice"
password = "file:secrets/node.password"

[outbox]
database = "outbox.db"

[api.tokens.ops]
hash = "{admin}"
scopes = ["admin"]

[api.tokens.erp]
hash = "{send}"
scopes = ["send"]
"#,
        ca = peer_ca().display(),
        shared = mailhost_tests::graph::SHARED,
        admin = hash_token(ADMIN_TOKEN),
        send = hash_token(SEND_TOKEN),
    );
    let path = dir.join("mailhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The admin page as a browser uses it.
trait Admin {
    fn config_text(&self) -> String;
    fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String);
    fn login(&self, token: &str) -> (String, String);
}

impl Admin for Service {
    fn config_text(&self) -> String {
        std::fs::read_to_string(self.dir().join("mailhost.toml")).unwrap()
    }

    /// (status, headers, body). `form` is sent url-encoded when not empty.
    fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        rt().block_on(async {
            let mut r = self
                .client()
                .request(method.parse().unwrap(), format!("{}{path}", self.base));
            if let Some(c) = cookie {
                r = r.header("cookie", c);
            }
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if method == "POST" {
                let body: String = form
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                r = r
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let h = resp.headers().clone();
            (status, h, resp.text().await.unwrap())
        })
    }

    /// Signs in with `token`: the session cookie (`name=value`) and the page's CSRF token.
    fn login(&self, token: &str) -> (String, String) {
        let (_, h, body) = self.request("GET", "/admin/login", None, &[], &[]);
        let pre = set_cookie(&h, "mh_login").expect("the login form sets its cookie");
        let csrf = hidden(&body, "csrf");
        let (status, h, body) = self.request(
            "POST",
            "/admin/login",
            Some(&format!("mh_login={pre}")),
            &[],
            &[("csrf", &csrf), ("token", token)],
        );
        assert_eq!(status, 303, "login failed: {body}");
        let session = set_cookie(&h, "mh_admin").expect("a session cookie");
        let cookie = format!("mh_admin={session}");
        let (_, _, page) = self.request("GET", "/admin/status", Some(&cookie), &[], &[]);
        (cookie, hidden(&page, "csrf"))
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of cookie `name` in the response's Set-Cookie headers.
fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

fn set_cookie_line(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or("")
        .to_string()
}

/// The value of the first hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden `{name}` in:\n{page}"));
    let rest = &page[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A session lasts only as long as its token does in the config in use:
/// revoked, rotated or without the admin scope after a reload, it ends.
#[test]
fn a_session_ends_when_its_token_loses_the_admin_scope() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (cookie, _) = s.login(ADMIN_TOKEN);
    let page = || s.request("GET", "/admin/status", Some(&cookie), &[], &[]).0;
    assert_eq!(page(), 200);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "scopes = [\"admin\"]",
        "scopes = [\"send\"]   # admin taken away",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    s.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log().contains("reloaded (SIGHUP)") {
        assert!(Instant::now() < deadline, "no reload in:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, h, _) = s.request("GET", "/admin/status", Some(&cookie), &[], &[]);
    assert_eq!(status, 303);
    assert_eq!(h.get("location").unwrap(), "/admin/login");
    assert!(
        s.log().contains("session of token `ops` ended"),
        "{}",
        s.log()
    );
    // and signing in again with it is refused for the scope
    let (_, h, body) = s.request("GET", "/admin/login", None, &[], &[]);
    let pre = set_cookie(&h, "mh_login").unwrap();
    let (status, _, body) = s.request(
        "POST",
        "/admin/login",
        Some(&format!("mh_login={pre}")),
        &[],
        &[("csrf", &hidden(&body, "csrf")), ("token", ADMIN_TOKEN)],
    );
    assert_eq!(status, 403, "{body}");
}

#[test]
fn sign_in_needs_an_admin_token_and_sets_a_strict_http_only_cookie() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    // Pages without a session go to the login form.
    let (status, h, _) = s.request("GET", "/admin/status", None, &[], &[]);
    assert_eq!(status, 303);
    assert_eq!(h.get("location").unwrap(), "/admin/login");
    // The assets are inside the binary.
    let (status, h, css) = s.request("GET", "/admin/assets/admin.css", None, &[], &[]);
    assert_eq!(status, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.contains(":focus-visible"));
    // Wrong token, a send-only token, a login without its CSRF token: refused.
    let (_, h, body) = s.request("GET", "/admin/login", None, &[], &[]);
    let pre = set_cookie(&h, "mh_login").unwrap();
    let csrf = hidden(&body, "csrf");
    let cookie = format!("mh_login={pre}");
    let (status, h, _) = s.request(
        "POST",
        "/admin/login",
        Some(&cookie),
        &[],
        &[("csrf", &csrf), ("token", "nope")],
    );
    assert_eq!(status, 401);
    assert!(set_cookie(&h, "mh_admin").is_none());
    let (status, _, body) = s.request(
        "POST",
        "/admin/login",
        Some(&cookie),
        &[],
        &[("csrf", &csrf), ("token", SEND_TOKEN)],
    );
    assert_eq!(status, 403);
    assert!(body.contains("lacks the `admin` scope"), "{body}");
    let (status, h, _) = s.request(
        "POST",
        "/admin/login",
        None,
        &[],
        &[("csrf", &csrf), ("token", ADMIN_TOKEN)],
    );
    assert_eq!(status, 403, "a login without the form's cookie is refused");
    assert!(set_cookie(&h, "mh_admin").is_none());
    // The right token: a session cookie, HttpOnly and SameSite=Strict; not
    // Secure on loopback http (the browser would not send it back).
    let (status, h, _) = s.request(
        "POST",
        "/admin/login",
        Some(&cookie),
        &[],
        &[("csrf", &csrf), ("token", ADMIN_TOKEN)],
    );
    assert_eq!(status, 303);
    let line = set_cookie_line(&h, "mh_admin");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "{line}");
    assert!(
        !line.contains(ADMIN_TOKEN),
        "the token is not the cookie: {line}"
    );
    // Behind an https proxy the cookie is Secure.
    let (_, h, body) = s.request(
        "GET",
        "/admin/login",
        None,
        &[("x-forwarded-proto", "https")],
        &[],
    );
    let pre2 = set_cookie(&h, "mh_login").unwrap();
    let (_, h, _) = s.request(
        "POST",
        "/admin/login",
        Some(&format!("mh_login={pre2}")),
        &[("x-forwarded-proto", "https")],
        &[("csrf", &hidden(&body, "csrf")), ("token", ADMIN_TOKEN)],
    );
    assert!(set_cookie_line(&h, "mh_admin").contains("; Secure"));
    // Logout ends the session.
    let (session, csrf) = s.login(ADMIN_TOKEN);
    assert_eq!(
        s.request("GET", "/admin/users", Some(&session), &[], &[]).0,
        200
    );
    assert_eq!(
        s.request(
            "POST",
            "/admin/logout",
            Some(&session),
            &[],
            &[("csrf", &csrf)]
        )
        .0,
        303
    );
    assert_eq!(
        s.request("GET", "/admin/users", Some(&session), &[], &[]).0,
        303
    );
}

#[test]
fn posts_without_the_sessions_csrf_token_or_from_another_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (session, csrf) = s.login(ADMIN_TOKEN);
    let before = s.config_text();
    let (_, _, page) = s.request("GET", "/admin/policy", Some(&session), &[], &[]);
    let etag = hidden(&page, "etag");
    let kill = |csrf: Option<&str>, origin: Option<&str>| {
        let mut form = vec![("do", "kill"), ("confirm", "1"), ("etag", etag.as_str())];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let headers: Vec<(&str, &str)> = origin.map(|o| vec![("origin", o)]).unwrap_or_default();
        s.request("POST", "/admin/policy", Some(&session), &headers, &form)
    };
    let (status, _, body) = kill(None, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF token is missing"), "{body}");
    let (status, _, body) = kill(Some("forged"), None);
    assert_eq!(status, 403);
    assert!(body.contains("does not match"), "{body}");
    let (status, _, body) = kill(Some(&csrf), Some("http://evil.example"));
    assert_eq!(status, 403);
    assert!(body.contains("another site"), "{body}");
    assert_eq!(s.config_text(), before, "nothing was written");
    // Another session's token does not work either.
    let (other, _) = s.login(ADMIN_TOKEN);
    let (status, _, _) = s.request(
        "POST",
        "/admin/policy",
        Some(&other),
        &[],
        &[
            ("do", "kill"),
            ("confirm", "1"),
            ("etag", &etag),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 403);
    // The real thing works (and asks for the confirmation first).
    let (status, _, body) = kill(Some(&csrf), Some(&s.base));
    assert_eq!(status, 200);
    assert!(body.contains("Sending is switched off."), "{body}");
    assert!(s.config_text().contains("enabled = false"));
    // Every admin response forbids framing and caching, and scripts come from here only.
    let (_, h, _) = s.request("GET", "/admin/status", Some(&session), &[], &[]);
    assert!(h
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
}

#[test]
fn stored_secrets_never_leave_and_typed_ones_go_to_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (session, csrf) = s.login(ADMIN_TOKEN);
    // Every page (the status page also polls itself).
    for path in [
        "/admin/status",
        "/admin/accounts",
        "/admin/accounts/node",
        "/admin/policy",
        "/admin/users",
        "/admin/explain?user=alice&action=send",
        "/admin/outbox",
    ] {
        let (status, _, body) = s.request("GET", path, Some(&session), &[], &[]);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            !body.contains(STORED_SECRET),
            "{path} shows the stored password"
        );
        assert!(
            !body.contains("secrets/node.password"),
            "{path} shows the secret's file"
        );
    }
    let (_, _, page) = s.request("GET", "/admin/accounts/node", Some(&session), &[], &[]);
    assert!(
        page.contains("set (from a file)"),
        "the page says the password is set"
    );
    // Test settings with the stored password: each step, the server's words.
    let etag = hidden(&page, "etag");
    let base = [
        ("csrf", csrf.as_str()),
        ("etag", etag.as_str()),
        ("plugin", "smtp"),
        ("k.host", "127.0.0.1"),
        ("k.port", "2587"),
        ("k.security", "starttls"),
    ];
    let (status, _, body) = s.request(
        "POST",
        "/admin/accounts/node",
        Some(&session),
        &[],
        &[&base[..], &[("do", "test")]].concat(),
    );
    assert_eq!(status, 200);
    assert!(body.contains("every step passed"), "{body}");
    assert!(
        body.contains("235"),
        "the server's AUTH reply is shown: {body}"
    );
    assert!(!body.contains(STORED_SECRET));
    // A new password typed on the page: into secrets/, mode 0600, never the TOML, never echoed.
    let typed = "n3w-Secret-typed-on-the-page";
    let (status, _, body) = s.request(
        "POST",
        "/admin/accounts/node",
        Some(&session),
        &[],
        &[&base[..], &[("do", "save"), ("secret.password", typed)]].concat(),
    );
    assert_eq!(status, 200);
    assert!(body.contains("Saved and applied"), "{body}");
    assert!(!body.contains(typed));
    let toml = s.config_text();
    assert!(!toml.contains(typed), "{toml}");
    assert!(
        toml.contains("password = \"file:secrets/node.password\""),
        "{toml}"
    );
    assert!(
        toml.contains("# mailhost for the admin page tests")
            && toml.contains("# the system account"),
        "comments are kept:\n{toml}"
    );
    let file = dir.path().join("secrets/node.password");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), typed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    for path in ["/admin/accounts/node", "/admin/status"] {
        let (_, _, body) = s.request("GET", path, Some(&session), &[], &[]);
        assert!(!body.contains(typed), "{path} echoes the new password");
    }
    // A user's own password for an account: write-only too, into its own 0600 file.
    let (_, _, page) = s.request("GET", "/admin/users", Some(&session), &[], &[]);
    assert!(
        page.contains("Credentials for account <code>node</code>"),
        "{page}"
    );
    assert!(!page.contains(typed) && !page.contains(STORED_SECRET));
    let alices = "alices-own-password";
    let (_, _, body) = s.request(
        "POST",
        "/admin/users",
        Some(&session),
        &[],
        &[
            ("csrf", &csrf),
            ("etag", &hidden(&page, "etag")),
            ("cred.alice.node.username", "alice"),
            ("cred.alice.node.password", alices),
        ],
    );
    assert!(body.contains("Users saved."), "{body}");
    assert!(!body.contains(alices));
    let toml = s.config_text();
    assert!(!toml.contains(alices), "{toml}");
    assert!(
        toml.contains("password = \"file:secrets/user-alice-node.password\""),
        "{toml}"
    );
    let file = dir.path().join("secrets/user-alice-node.password");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), alices);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn saves_are_validated_like_the_cli_refused_when_stale_and_applied_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (session, csrf) = s.login(ADMIN_TOKEN);
    let explain = || {
        let (status, _, body) = s.request(
            "GET",
            "/v1/policy/explain?user=alice&action=compose",
            None,
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            &[],
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    assert!(explain().contains("user chose `builtin`"));
    // A port out of range: refused with the CLI's file:line message.
    let (_, _, page) = s.request("GET", "/admin/accounts/node", Some(&session), &[], &[]);
    let etag = hidden(&page, "etag");
    let bad = [
        ("csrf", csrf.as_str()),
        ("etag", etag.as_str()),
        ("plugin", "smtp"),
        ("k.port", "70000"),
        ("do", "save"),
    ];
    let before = s.config_text();
    let (_, _, body) = s.request("POST", "/admin/accounts/node", Some(&session), &[], &bad);
    assert!(
        body.contains("Not saved: the change does not validate"),
        "{body}"
    );
    assert_eq!(s.config_text(), before);
    // The CLI on the same change says the same, at the same place.
    let copy = tempfile::tempdir().unwrap();
    config(copy.path());
    let cfg = copy.path().join("mailhost.toml");
    std::fs::write(&cfg, before.replace("port = 2587", "port = 70000")).unwrap();
    let out = Command::new(mailhost_bin())
        .current_dir(copy.path())
        .args([
            "--config",
            "mailhost.toml",
            "--plugins",
            "plugins",
            "config",
            "validate",
        ])
        .output()
        .unwrap();
    let cli =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let line = cli
        .lines()
        .find(|l| l.contains("mailhost.toml:") && l.contains("port"))
        .unwrap_or_else(|| panic!("the CLI names the port: {cli}"));
    let at = &line[line.find("mailhost.toml:").unwrap()..];
    let html_at = at
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(
        body.contains(&html_at),
        "the page says what the CLI says ({at}):\n{body}"
    );
    // And under the field itself, tied to the input for screen readers.
    assert!(
        body.contains("aria-invalid=\"true\" aria-errormessage=\"f-port-error\""),
        "{body}"
    );
    assert!(
        body.contains("<p class=\"error\" id=\"f-port-error\">"),
        "{body}"
    );
    // Flip alice's compose mode: applied at once (the API's explain sees it).
    let (_, _, page) = s.request("GET", "/admin/users", Some(&session), &[], &[]);
    let etag = hidden(&page, "etag");
    let (_, _, body) = s.request(
        "POST",
        "/admin/users",
        Some(&session),
        &[],
        &[
            ("csrf", &csrf),
            ("etag", &etag),
            ("user.alice.compose_mode", "imap-draft"),
            ("user.alice.send_mode", ""),
        ],
    );
    assert!(body.contains("Users saved."), "{body}");
    assert!(
        s.config_text()
            .contains("compose_mode = \"imap-draft\"   # alice's own choice"),
        "the comment stays:\n{}",
        s.config_text()
    );
    assert!(
        explain().contains("user chose `imap-draft`"),
        "{}",
        explain()
    );
    // A second save from the same (now stale) page is refused, not merged.
    let (_, _, body) = s.request(
        "POST",
        "/admin/users",
        Some(&session),
        &[],
        &[
            ("csrf", &csrf),
            ("etag", &etag),
            ("user.alice.compose_mode", "builtin"),
        ],
    );
    assert!(
        body.contains("the config changed since this page was loaded"),
        "{body}"
    );
    assert!(s.config_text().contains("imap-draft"));
    // What is rendered is escaped.
    let (_, _, page) = s.request("GET", "/admin/accounts/node", Some(&session), &[], &[]);
    assert!(page.contains("Node &lt;smtp-server&gt; peer"), "{page}");
    assert!(!page.contains("Node <smtp-server> peer"));
}

/// The loader's debug line for each settings schema it compiles.
const COMPILING: &str = "compiling a settings JSON Schema";

/// The child processes the service's log says it checked the config in.
fn check_children(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| {
            let rest = l
                .split("checking the config in a child process (pid ")
                .nth(1)?;
            rest.split(')').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn new_account_settings_from_the_page_are_checked_in_a_child_not_in_the_service() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let cache = dir.path().join("cache");
    let env = [
        ("MAILHOST_CACHE_DIR", cache.to_str().unwrap()),
        ("RUST_LOG", "mailhost=debug"),
    ];
    let s = Service::start_with(
        dir.path(),
        Options {
            env: &env,
            quiet: true,
            ..Options::default()
        },
    );
    let (session, csrf) = s.login(ADMIN_TOKEN);
    let started = s.log().len();
    let (_, _, page) = s.request("GET", "/admin/accounts/node", Some(&session), &[], &[]);
    let etag = hidden(&page, "etag");
    let form = |port: &'static str, action: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("etag", etag.clone()),
            ("plugin", "smtp".to_string()),
            ("k.host", "127.0.0.1".to_string()),
            ("k.port", port.to_string()),
            ("k.security", "starttls".to_string()),
            ("do", action.to_string()),
        ]
    };
    let post = |f: Vec<(&'static str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.request("POST", "/admin/accounts/node", Some(&session), &[], &f)
            .2
    };
    // Settings this host has not seen: "validate" checks them in a child.
    let body = post(form("2588", "validate"));
    assert!(body.contains("The settings validate"), "{body}");
    // A save of other new settings: checked in a child too, then applied.
    let body = post(form("2589", "save"));
    assert!(body.contains("Saved and applied"), "{body}");
    assert!(
        s.config_text().contains("port = 2589"),
        "{}",
        s.config_text()
    );
    let log = s.log();
    let after = &log[started..];
    let children = check_children(after);
    assert_eq!(children.len(), 2, "one child per new candidate:\n{after}");
    for c in &children {
        assert_ne!(*c, s.pid());
        assert!(
            after.contains(&format!(
                "the config check in child process {c} ended: exit status: 0"
            )),
            "{after}"
        );
    }
    // Whatever was compiled after the start was compiled in those children.
    for l in after.lines().filter(|l| l.contains(COMPILING)) {
        assert!(
            children
                .iter()
                .any(|c| l.contains(&format!("config_check{{pid={c}}}"))),
            "compiled in the service: {l}\n{after}"
        );
    }
    // The candidate's file for the child is gone, and nothing else was left.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".check-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A refused value is still refused here, with the CLI's words.
    let etag2 = hidden(
        &s.request("GET", "/admin/accounts/node", Some(&session), &[], &[])
            .2,
        "etag",
    );
    let bad: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("etag", &etag2),
        ("plugin", "smtp"),
        ("k.port", "70000"),
        ("do", "save"),
    ];
    let (_, _, body) = s.request("POST", "/admin/accounts/node", Some(&session), &[], &bad);
    assert!(
        body.contains("Not saved: the change does not validate"),
        "{body}"
    );
    assert!(s.config_text().contains("port = 2589"));
}

#[test]
fn oauth_clients_get_a_token_now_and_the_page_shows_its_claims_not_the_token() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (session, csrf) = s.login(ADMIN_TOKEN);
    let (_, _, page) = s.request("GET", "/admin/accounts", Some(&session), &[], &[]);
    assert!(
        page.contains("Get a token now") && page.contains("test-client"),
        "{page}"
    );
    assert!(!page.contains(OAUTH_SECRET) && !page.contains("not-the-secret"));
    let get = |client: &str| {
        s.request(
            "POST",
            &format!("/admin/oauth/{client}/token"),
            Some(&session),
            &[],
            &[
                ("csrf", &csrf),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
    };
    let (status, _, body) = get("m365");
    assert_eq!(status, 200);
    assert!(body.contains("[oauth.m365] issued a token"), "{body}");
    assert!(
        body.contains("audience https://graph.microsoft.com"),
        "{body}"
    );
    assert!(
        !body.contains("eyJ"),
        "the token itself is not shown: {body}"
    );
    assert!(!body.contains(OAUTH_SECRET));
    // The identity provider's refusal, in its words.
    let (_, _, body) = get("wrong");
    assert!(body.contains("did not issue a token"), "{body}");
    assert!(body.contains("AADSTS7000215"), "{body}");
    assert!(!body.contains("not-the-secret"), "{body}");
    // Without the CSRF token: refused.
    let (status, _, _) = s.request(
        "POST",
        "/admin/oauth/m365/token",
        Some(&session),
        &[],
        &[("scope", "x")],
    );
    assert_eq!(status, 403);
}

#[test]
fn the_status_page_shows_each_batchs_progress() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let (session, _) = s.login(ADMIN_TOKEN);
    let (_, _, page) = s.request("GET", "/admin/status", Some(&session), &[], &[]);
    assert!(page.contains("No batches yet"), "{page}");
    // a paced batch of three: the first goes at once, the rest wait for their slots
    let body = serde_json::json!({
        "name": "November <invoices>",
        "rate": 1,
        "template": {"subject": "Invoice {{ n }}", "text": "Hello {{ n }}"},
        "rows": [
            {"to": "batch-a@example.com", "n": 1},
            {"to": "batch-b@example.com", "n": 2},
            {"to": "batch-c@example.com", "n": 3}
        ]
    });
    let (status, id) = rt().block_on(async {
        let r = s
            .client()
            .post(format!("{}/v1/batches", s.base))
            .bearer_auth(SEND_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        (status, v["id"].as_str().unwrap_or_default().to_string())
    });
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let (_, _, page) = s.request("GET", "/admin/status", Some(&session), &[], &[]);
        if page.contains("<td class=\"sent\">1</td>") {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the first row was never sent:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains(&format!("data-batch=\"{id}\"")), "{page}");
    // the name is escaped; progress 1 of 3 settled, 2 waiting, paced at 1/min
    assert!(page.contains("November &lt;invoices&gt;"), "{page}");
    assert!(!page.contains("November <invoices>"), "{page}");
    assert!(page.contains("<progress max=\"3\" value=\"1\""), "{page}");
    assert!(page.contains("<td class=\"waiting\">2</td>"), "{page}");
    assert!(page.contains("1/min"), "{page}");
}

#[test]
fn admin_pages_in_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin-browser");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: `apt-get install chromium` (scripts/test.sh does)"
    );
    assert!(
        suite.join("node_modules/playwright-core").exists(),
        "run `npm ci` in {} (scripts/test.sh does)",
        suite.display()
    );
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &[]);
    let shots = profile_dir().parent().unwrap().join("admin-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(suite.join("admin.test.js"))
        .current_dir(&suite)
        .env("MAILHOST_URL", &s.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SEND_TOKEN", SEND_TOKEN)
        .env("STORED_SECRET", STORED_SECRET)
        .env("PEER_CA", peer_ca())
        .env("CONFIG_DIR", dir.path())
        .env("SCREENSHOTS", &shots)
        .env("USER_DATA_DIR", profile.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser tests failed:\n{stdout}\n{stderr}\nserve log:\n{}",
        s.log()
    );
}

/// The outbox page's bulk actions: cancel every queued message the filters
/// match, retry every cancelled one; each needs the session's CSRF token and
/// a state that allows the move.
#[test]
fn the_outbox_page_cancels_and_retries_every_match() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    // no workers: queued mail stays queued
    let s = Service::start(dir.path(), &["--no-workers"]);
    for n in 0..3 {
        let status = rt().block_on(async {
            let r = s
                .client()
                .post(format!("{}/v1/messages", s.base))
                .bearer_auth(SEND_TOKEN)
                .json(&serde_json::json!({
                    "tenant": if n < 2 { Some("acme") } else { None },
                    "to": ["bulk@example.com"], "subject": "bulk", "text": "x"
                }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
        assert_eq!(status, 202);
    }
    let (session, _) = s.login(ADMIN_TOKEN);
    let (_, _, page) = s.request(
        "GET",
        "/admin/outbox?state=queued&tenant=acme",
        Some(&session),
        &[],
        &[],
    );
    assert!(
        page.contains("action=\"/admin/outbox/cancel-all\""),
        "{page}"
    );
    assert!(
        page.contains("<th scope=\"col\">Account</th>") && page.contains("<td>node</td>"),
        "{page}"
    );
    assert!(
        !page.contains("action=\"/admin/outbox/retry-all\""),
        "{page}"
    );
    let csrf = hidden(&page, "csrf");
    let post = |path: &str, csrf: &str, state: &str| {
        s.request(
            "POST",
            path,
            Some(&session),
            &[],
            &[
                ("csrf", csrf),
                ("state", state),
                ("tenant", "acme"),
                ("account", ""),
                ("user", ""),
            ],
        )
    };
    // without the session's CSRF token: refused, nothing changes
    let (status, _, _) = post("/admin/outbox/cancel-all", "forged", "queued");
    assert_eq!(status, 403);
    let (status, _, page) = post("/admin/outbox/cancel-all", &csrf, "queued");
    assert_eq!(status, 200);
    assert!(page.contains("2 queued message(s) cancelled."), "{page}");
    // the third (no tenant) is still queued
    let (_, _, page) = s.request(
        "GET",
        "/admin/outbox?state=queued",
        Some(&session),
        &[],
        &[],
    );
    assert_eq!(page.matches("bulk@example.com").count(), 1, "{page}");
    // a state that does not allow the move changes nothing
    let (_, _, page) = post("/admin/outbox/retry-all", &csrf, "sent");
    assert!(
        page.contains("Choose a state that allows it first"),
        "{page}"
    );
    let (_, _, page) = post("/admin/outbox/retry-all", &csrf, "cancelled");
    assert!(
        page.contains("2 cancelled message(s) queued to be sent again."),
        "{page}"
    );
    let (_, _, page) = s.request(
        "GET",
        "/admin/outbox?state=queued",
        Some(&session),
        &[],
        &[],
    );
    assert_eq!(page.matches("bulk@example.com").count(), 3, "{page}");
}

/// The outbox page pages through a long list (newest first, 200 a page)
/// and filters by creation time; a time it cannot read is said, escaped.
#[test]
fn the_outbox_page_pages_and_filters_by_time() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let s = Service::start(dir.path(), &["--no-workers"]);
    rt().block_on(async {
        for n in 0..203 {
            let r = s
                .client()
                .post(format!("{}/v1/messages", s.base))
                .bearer_auth(SEND_TOKEN)
                .json(&serde_json::json!({
                    "to": [format!("page{n}@example.com")], "subject": "page", "text": "x"
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    });
    let (session, _) = s.login(ADMIN_TOKEN);
    let get = |path: &str| s.request("GET", path, Some(&session), &[], &[]).2;
    let rows = |page: &str| page.matches("<tr><td><a href=\"/admin/outbox/").count();
    let first = get("/admin/outbox?state=queued&since=2020-01-01");
    assert_eq!(rows(&first), 200, "{first}");
    assert!(first.contains("page202@example.com") && !first.contains("page0@"));
    let at = first
        .find("rel=\"next\"")
        .map(|i| first[..i].rfind("href=\"").unwrap() + 6);
    let href = &first[at.expect("a link to older messages")..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    assert!(
        href.contains("state=queued") && href.contains("since=2020-01-01"),
        "{href}"
    );
    let older = get(&href);
    assert_eq!(rows(&older), 3, "{older}");
    for n in 0..3 {
        assert!(older.contains(&format!("page{n}@example.com")), "{older}");
    }
    assert!(!older.contains("rel=\"next\"") && older.contains(">Newest</a>"));
    // nothing was created before 2000, or after 2100
    assert!(get("/admin/outbox?until=2000-01-01").contains("No messages match."));
    assert!(get("/admin/outbox?since=2100-01-01T00:00").contains("No messages match."));
    // a time it cannot read: said, escaped, nothing listed
    let bad = get("/admin/outbox?since=%3Cscript%3Eyesterday");
    assert!(
        bad.contains("is not a time") && !bad.contains("<script>"),
        "{bad}"
    );
    assert_eq!(rows(&bad), 0);
    // the bulk actions take the time filters: cancel only what is older
    // than 2000 (nothing)
    let csrf = hidden(&first, "csrf");
    let (status, _, page) = s.request(
        "POST",
        "/admin/outbox/cancel-all",
        Some(&session),
        &[],
        &[
            ("csrf", &csrf),
            ("state", "queued"),
            ("until", "2000-01-01"),
        ],
    );
    assert_eq!(status, 200);
    assert!(page.contains("0 queued message(s) cancelled."), "{page}");
}
