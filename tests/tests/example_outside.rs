//! The example plugin as an integrator builds it: copied out of the workspace,
//! its manifest rewritten to a standalone one (the same shape the guide shows),
//! built with `cargo build --offline`, loaded from disk by the host and used.

use mailhost::loader::load_file;
use mailhost_tests::loader::{
    build_example_outside, guide_toml_block, host, message, receiver::Receiver,
    standalone_manifest, workspace_root,
};

/// The first line of the guide's standalone Cargo.toml block.
const GUIDE_MARKER: &str = "# Cargo.toml of a plugin crate outside the mailhost workspace";

#[test]
fn built_outside_the_workspace_it_loads_and_sends() {
    let lib = build_example_outside();
    assert!(lib.starts_with(workspace_root().join("target/outside-example")));
    let plugin = load_file(&lib).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(plugin.name(), "example");
    assert_eq!(plugin.manifest().api_version.as_str(), "1.0.0");

    let rx = Receiver::start();
    let t = plugin
        .open(
            &serde_json::json!({ "url": rx.url("/ok"), "headers": {"X-Built": "outside"} })
                .to_string(),
            host(),
        )
        .unwrap();
    let m = message("Built outside", "outside-1");
    let receipt = t.send(&m).into_result().unwrap();
    assert!(
        receipt.server_reply.starts_with("HTTP 202 Accepted"),
        "{receipt:?}"
    );
    let got = rx.with_key("outside-1");
    assert_eq!(got.len(), 1, "{:?}", rx.requests());
    assert_eq!(got[0].header("x-built"), Some("outside"));
    let v = got[0].json();
    assert_eq!(v["subject"], "Built outside");
    assert_eq!(v["message_id"], m.message_id.as_str());
}

/// The guide's Cargo.toml is the one the build above used (apart from the
/// path to plugin-api and the package's description).
#[test]
fn the_guides_cargo_toml_is_the_one_that_was_built() {
    let api = workspace_root().join("plugin-api");
    let built = standalone_manifest(&api);
    let mut guide: toml::Table = guide_toml_block(GUIDE_MARKER)
        .parse()
        .unwrap_or_else(|e| panic!("the guide's Cargo.toml does not parse: {e}"));
    // The guide points at a checkout beside the crate; the test at this one.
    guide["dependencies"]["mailhost-plugin-api"]
        .as_table_mut()
        .unwrap()
        .insert("path".into(), api.to_string_lossy().into_owned().into());
    for section in ["lib", "dependencies", "dev-dependencies"] {
        assert_eq!(
            guide.get(section),
            built.get(section),
            "[{section}] differs between docs/plugin-authors.md and the standalone build:\n{}",
            toml::to_string(&built).unwrap()
        );
    }
    for key in ["name", "version", "edition"] {
        assert_eq!(
            guide["package"][key], built["package"][key],
            "package.{key}"
        );
    }
}
