//! Config mistakes: each gives `file:line:col`, what is wrong and what is valid.

use std::path::Path;

use mailhost::config::{validate, Source};
use mailhost::loader::{load_file, PluginSet};
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
    let src = Source::from_text("test.toml", Path::new("/etc/mailhost"), GOOD);
    let s = validate(&src, &plugins()).expect("valid");
    assert_eq!(s.accounts["local"].settings["dir"], "/etc/mailhost/out");
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
    assert!(e.contains("hint: valid keys: plugin, from, max_per_minute, description, save_copy_to, create_dir, dir, envelope_headers, keep_bcc"), "{e}");
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
