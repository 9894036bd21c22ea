//! This plugin links the SMTP plugin's rlib for its submission leg. Both crates
//! export the plugin root symbol that abi_stable looks up (`export_plugin!`),
//! and rustc keeps every upstream `#[no_mangle]` item of a cdylib, so the link
//! sees two definitions. The first one on the command line, this crate's own,
//! must win: ask ELF linkers (GNU ld, lld, gold, MinGW's ld) to keep it.
//! A test (`tests/tests/imap.rs`) checks that the library's manifest is IMAP's.

fn main() {
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if env != "msvc" && os != "macos" && os != "ios" {
        println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
