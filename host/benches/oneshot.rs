//! One process per message, as a script or an ERP calls a sendmail-like tool:
//! `mailhost send --eml` against `msmtp` (Debian's package), both over
//! STARTTLS + AUTH PLAIN to the Node smtp-server peer (port 2587), in turns in
//! the same run. Per process: CPU time (user + system), peak memory (max RSS)
//! and wall time, as the kernel accounts them for the waited-for child.
//!
//! Goals (issue "one-shot send"): CPU ≤ 1.5× msmtp, peak memory ≤ 20 MB, wall
//! time below msmtp's.
//!
//! ```sh
//! export PEERS_DIR=$PWD/target/peers && ../shared/peers/all.sh start
//! cargo build --release -p mailhost -p mailhost-smtp    # the plugin is a cdylib: build it first
//! cargo bench -p mailhost --bench oneshot
//! MAILHOST_BENCH_RUNS=50 cargo bench -p mailhost --bench oneshot
//! ```
//! Under `cargo test --benches`, or with `MAILHOST_BENCH_SMOKE=1`, it makes two
//! runs of each (CI). A missing reference (msmtp, the peers, the plugin) is a
//! failure when `CI` is set, and a skip with the reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failure is a panic

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Run {
    cpu_ms: f64,
    max_rss_kb: i64,
    wall_ms: f64,
}

/// Runs `cmd` to the end and returns what the kernel accounted for it.
fn run(mut cmd: Command, stdin: &Path) -> Run {
    cmd.stdin(Stdio::from(std::fs::File::open(stdin).unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    // Reaped by wait4 below, which also gives the child's rusage (Child::wait does not).
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes one status and one rusage for our own child.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut ru);
        ru
    };
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    Run {
        cpu_ms: ms(ru.ru_utime) + ms(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss,
        wall_ms,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("oneshot benchmark: {what}; in CI the reference must be there");
    }
    println!("oneshot benchmark skipped: {what}");
}

fn main() {
    let smoke = std::env::var_os("MAILHOST_BENCH_SMOKE").is_some()
        || !std::env::args().any(|a| a == "--bench");
    let runs: usize = if smoke {
        2
    } else {
        std::env::var("MAILHOST_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mailhost"));
    let plugin_dir = bin.parent().unwrap().to_path_buf();
    let plugin = plugin_dir.join(format!(
        "{}mailhost_smtp{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if !plugin.exists() {
        return missing(&format!(
            "{} is not built (cargo build -p mailhost-smtp in the same profile)",
            plugin.display()
        ));
    }
    let msmtp = match which("msmtp") {
        Some(p) => p,
        None => return missing("msmtp is not installed (apt-get install msmtp)"),
    };
    let Some(peers) = std::env::var_os("PEERS_DIR").map(PathBuf::from) else {
        return missing("PEERS_DIR is not set (start ../shared/peers/all.sh)");
    };
    let ca = peers.join("tls").join("cert.pem");
    if std::net::TcpStream::connect("127.0.0.1:2587").is_err() || !ca.exists() {
        return missing("the Node smtp-server peer does not answer on 127.0.0.1:2587");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mailhost.toml");
    std::fs::write(dir.path().join("password"), "testpass").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[policy]\naccount = \"office\"\n\n[accounts.office]\nplugin = \"smtp\"\nfrom = \"erp@example.com\"\n\
             host = \"localhost\"\nport = 2587\nsecurity = \"starttls\"\nca_file = {:?}\nauth = \"required\"\n\
             mechanism = \"plain\"\nusername = \"testuser\"\npassword = \"file:password\"\n",
            ca.display().to_string()
        ),
    )
    .unwrap();
    let rc = dir.path().join("msmtprc");
    std::fs::write(
        &rc,
        format!(
            "account default\nhost localhost\nport 2587\ntls on\ntls_starttls on\ntls_trust_file {}\n\
             auth plain\nuser testuser\npassword testpass\nfrom erp@example.com\n",
            ca.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let eml = dir.path().join("m.eml");
    std::fs::write(
        &eml,
        format!(
            "From: erp@example.com\r\nTo: oneshot@example.com\r\nSubject: one-shot benchmark\r\n\r\n{}\r\n",
            "A line of text for a small business message.\r\n".repeat(40)
        ),
    )
    .unwrap();

    let mailhost = || {
        let mut c = Command::new(&bin);
        c.arg("--config")
            .arg(&cfg)
            .arg("--plugins")
            .arg(&plugin_dir)
            .args(["send", "--eml", "-"])
            .env_remove("MAILHOST_CONFIG")
            .env_remove("MAILHOST_PLUGIN_PATH");
        c
    };
    let msmtp_cmd = || {
        let mut c = Command::new(&msmtp);
        c.arg("-C").arg(&rc).arg("oneshot@example.com");
        c
    };
    // One of each first: page cache, the peer's first TLS handshake.
    run(mailhost(), &eml);
    run(msmtp_cmd(), &eml);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate the order so neither always runs on a warmer machine.
        if i % 2 == 0 {
            a.push(run(mailhost(), &eml));
            b.push(run(msmtp_cmd(), &eml));
        } else {
            b.push(run(msmtp_cmd(), &eml));
            a.push(run(mailhost(), &eml));
        }
    }
    let stat = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let (a_cpu, b_cpu) = (stat(&a, |r| r.cpu_ms), stat(&b, |r| r.cpu_ms));
    let (a_rss, b_rss) = (
        stat(&a, |r| r.max_rss_kb as f64),
        stat(&b, |r| r.max_rss_kb as f64),
    );
    let (a_wall, b_wall) = (stat(&a, |r| r.wall_ms), stat(&b, |r| r.wall_ms));
    println!("one-shot send, STARTTLS + AUTH PLAIN, median of {runs} runs each");
    println!("                 mailhost      msmtp   ratio  goal");
    println!(
        "CPU (ms)       {a_cpu:>10.1} {b_cpu:>10.1}  {:>5.2}×  ≤ 1.5×",
        a_cpu / b_cpu
    );
    println!(
        "peak RSS (MB)  {:>10.1} {:>10.1}  {:>5.2}×  ≤ 20 MB",
        a_rss / 1024.0,
        b_rss / 1024.0,
        a_rss / b_rss
    );
    println!(
        "wall (ms)      {a_wall:>10.1} {b_wall:>10.1}  {:>5.2}×  < 1×",
        a_wall / b_wall
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
