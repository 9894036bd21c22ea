//! Plugin load time per plugin, and the cost of a call across the ABI compared
//! with calling the same transport directly (the pickup rlib).
//!
//!     cargo bench -p mailhost-pickup --bench abi
//!     MAILHOST_BENCH_SMOKE=1 cargo test -p mailhost-pickup --benches   # CI: a few iterations
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailhost::loader::{load_file, plugin_files};
use mailhost::services::HostEnv;
use mailhost::tokens::TokenBroker;
use mailhost_pickup::{PickupConfig, PickupTransport};
use mailhost_plugin_api::{Envelope, OutgoingMessage, TransportImpl};

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn message(i: usize) -> OutgoingMessage {
    let mime = format!("From: a@example.com\r\nTo: b@example.com\r\nMessage-ID: <{i}@bench>\r\nSubject: bench\r\n\r\n{}\r\n", "x".repeat(2000));
    OutgoingMessage {
        envelope: Envelope {
            from: Some("a@example.com".into()).into(),
            to: vec!["b@example.com".into()].into(),
        },
        mime: mime.into_bytes().into(),
        parts: Default::default(),
        message_id: format!("{i}@bench").into(),
        idempotency_key: format!("{i}@bench").into(),
        options_json: "{}".into(),
    }
}

fn per_call(total: Duration, n: usize) -> f64 {
    total.as_nanos() as f64 / n as f64
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn main() {
    let smoke = std::env::var_os("MAILHOST_BENCH_SMOKE").is_some();
    let (calls, sends) = if smoke {
        (1_000, 20)
    } else {
        (2_000_000, 20_000)
    };
    let dir = profile_dir();

    println!("plugin load time (first load in this process, by absolute path):");
    let copies = tempfile::tempdir().unwrap();
    let files = plugin_files(&dir).unwrap();
    for f in &files {
        // A fresh copy, so the dynamic loader really opens and relocates it.
        let copy = copies.path().join(f.file_name().unwrap());
        std::fs::copy(f, &copy).unwrap();
        let t = Instant::now();
        let p = load_file(&copy);
        let took = t.elapsed();
        match p {
            Ok(p) => println!(
                "  {:<10} {:>8.3} ms  ({} KiB)",
                p.name(),
                took.as_secs_f64() * 1e3,
                std::fs::metadata(f).unwrap().len() / 1024
            ),
            Err(e) => println!("  {} failed: {e}", f.display()),
        }
    }

    let pickup = load_file(&dir.join(format!(
        "{}mailhost_pickup{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )))
    .unwrap();
    let host = HostEnv::new(std::sync::Arc::new(TokenBroker::default())).handle();
    let out_abi = scratch_dir();
    let out_direct = scratch_dir();
    let settings = |d: &Path| {
        format!(
            r#"{{"dir": {}}}"#,
            serde_json::to_string(&d.to_string_lossy()).unwrap()
        )
    };
    let abi = pickup.open(&settings(out_abi.path()), host).unwrap();
    let direct =
        PickupTransport::new(PickupConfig::from_json(&settings(out_direct.path())).unwrap())
            .unwrap();

    // status(): the smallest call with a return value.
    let t = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(abi.status());
    }
    let abi_status = per_call(t.elapsed(), calls);
    let t = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(direct.status());
    }
    let direct_status = per_call(t.elapsed(), calls);

    // send(): a 2 KB message written to a file (tmpfs when available), alternating
    // rounds so both sides see the same machine state.
    let msgs: Vec<OutgoingMessage> = (0..sends).map(message).collect();
    let (mut abi_send, mut direct_send) = (Duration::ZERO, Duration::ZERO);
    let rounds = 4;
    for _ in 0..rounds {
        let t = Instant::now();
        for m in &msgs[..sends / rounds] {
            abi.send(m).into_result().unwrap();
        }
        abi_send += t.elapsed();
        let t = Instant::now();
        for m in &msgs[..sends / rounds] {
            direct.send(m).unwrap();
        }
        direct_send += t.elapsed();
    }
    let n = (sends / rounds) * rounds;
    let (a, d) = (per_call(abi_send, n), per_call(direct_send, n));
    println!(
        "\ncross-ABI call cost ({}):",
        if smoke {
            "SMOKE run, numbers meaningless"
        } else {
            "release"
        }
    );
    println!(
        "  {:<28} {:>12} {:>12} {:>10}",
        "call", "via ABI", "direct", "overhead"
    );
    println!(
        "  {:<28} {:>9.1} ns {:>9.1} ns {:>9.1} ns",
        format!("status() x {calls}"),
        abi_status,
        direct_status,
        abi_status - direct_status
    );
    println!(
        "  {:<28} {:>9.2} µs {:>9.2} µs {:>9.2} %",
        format!("send() 2 KB x {n}"),
        a / 1e3,
        d / 1e3,
        (a - d) / d * 100.0
    );
}
