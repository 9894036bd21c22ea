//! Helpers shared by the integration tests: where the built plugins and the
//! binary are, and where the running test peers keep their state.

pub mod graph;
pub mod imap;
pub mod loader;
pub mod service;
pub mod smtp;

pub use service::Service;

use std::path::{Path, PathBuf};

/// `target/<profile>` of the running test binary (it lives in `target/<profile>/deps`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The file name a plugin's cdylib has on this OS: `libmailhost_smtp.so`.
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}mailhost_{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    )
}

/// The built cdylib of plugin `name` (`cargo test --workspace` builds them).
pub fn plugin_path(name: &str) -> PathBuf {
    let p = profile_dir().join(plugin_file_name(name));
    assert!(
        p.exists(),
        "{} is not built; run the workspace tests (`cargo test --workspace`) or `cargo build -p mailhost-{name}`",
        p.display()
    );
    p
}

/// The `mailhost` binary next to the test binaries.
pub fn mailhost_bin() -> PathBuf {
    let p = profile_dir().join(format!("mailhost{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "{} is not built", p.display());
    p
}

/// A loopback port nothing listens on right now (for a private server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// `$PEERS_DIR`, where the running peers keep state (see ../shared/peers/README.md).
pub fn peers_dir() -> PathBuf {
    let dir = std::env::var_os("PEERS_DIR").expect(
        "PEERS_DIR is not set: start the peers with `PEERS_DIR=$PWD/target/peers ../shared/peers/all.sh start` and export it",
    );
    PathBuf::from(dir)
}

/// The peers' self-signed CA certificate.
pub fn peer_ca() -> PathBuf {
    peers_dir().join("tls").join("cert.pem")
}

/// Copies a file into `dir` under `name` and returns the new path.
pub fn copy_as(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(src, &dest).expect("copy");
    dest
}

/// Writes an executable shell script to `path` (Unix).
///
/// The file is written by a child `sh`, not by this process: a test that
/// writes a script with `std::fs::write` holds a write descriptor that any
/// other test's concurrent `spawn` inherits until its `exec`, and running
/// the script in that window fails with "Text file busy" (ETXTBSY).
#[cfg(unix)]
pub fn write_script(path: &Path, body: &str) {
    let status = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            r#"printf '%s' "$1" > "$2" && chmod 755 "$2""#,
            "sh",
            body,
        ])
        .arg(path)
        .status()
        .expect("run /bin/sh to write a script");
    assert!(status.success(), "writing {} failed", path.display());
}
