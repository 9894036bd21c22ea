//! Windows builds carry resources: the message table the Event Log shows
//! the service's events with, and the version shown in the file's
//! properties (`res/mailhost.rc`, compiled with windres or rc.exe).

fn main() {
    println!("cargo:rerun-if-changed=res");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let part = |k: &str| std::env::var(k).unwrap_or_else(|_| "0".into());
    let macros = [
        format!("MAJOR={}", part("CARGO_PKG_VERSION_MAJOR")),
        format!("MINOR={}", part("CARGO_PKG_VERSION_MINOR")),
        format!("PATCH={}", part("CARGO_PKG_VERSION_PATCH")),
        format!("VERSION=\\\"{version}\\\""),
    ];
    // Only the binary links them (the library is also linked into tests).
    if let Err(e) =
        embed_resource::compile_for("res/mailhost.rc", ["mailhost"], &macros).manifest_optional()
    {
        println!("cargo:warning=the Windows resources were not compiled: {e}");
    }
}
