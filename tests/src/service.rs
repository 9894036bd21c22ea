//! A running `mailhost serve` for the service tests and benchmarks: started in
//! a folder that holds `mailhost.toml` and `plugins/`, on a free loopback port,
//! its log appended to `serve.log` there, killed when dropped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, mailhost_bin};

/// A running `mailhost serve`.
pub struct Service {
    child: Child,
    port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    dir: PathBuf,
    client: reqwest::Client,
}

/// How to start one (see [`Service::start`] for the defaults).
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Arguments after `serve --bind ADDR` (e.g. `--no-workers`).
    pub args: &'a [&'a str],
    /// Environment variables for the process (e.g. a secret the config names as `env:`).
    pub env: &'a [(&'a str, &'a str)],
    /// Without `-v` (benchmarks: logging every message costs time).
    pub quiet: bool,
    /// The service serves HTTPS (`[api] tls_cert`): the client trusts this
    /// CA file and `base` is `https://…`.
    pub tls_ca: Option<&'a Path>,
}

impl Service {
    /// `mailhost -v --config mailhost.toml --plugins plugins serve --bind
    /// 127.0.0.1:PORT ARGS…` in `dir`; returns once `/readyz` answers 200.
    pub fn start(dir: &Path, args: &[&str]) -> Service {
        Service::start_with(
            dir,
            Options {
                args,
                ..Options::default()
            },
        )
    }

    pub fn start_with(dir: &Path, opts: Options) -> Service {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .expect("open serve.log");
        let mut cmd = Command::new(mailhost_bin());
        cmd.current_dir(dir)
            .env_remove("MAILHOST_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .envs(opts.env.iter().copied());
        if !opts.quiet {
            cmd.arg("-v");
        }
        let child = cmd
            .args(["--config", "mailhost.toml", "--plugins", "plugins", "serve"])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(opts.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mailhost serve");
        let scheme = if opts.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        let s = Service {
            child,
            port,
            base: format!("{scheme}://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .tls_backend_preconfigured(
                    mailhost::tokens::tls_config(opts.tls_ca).expect("a TLS config"),
                )
                .build()
                .expect("an HTTP client"),
        };
        if opts.tls_ca.is_some() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "serve did not listen; log:\n{}",
                    s.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            while s.call("GET", "/readyz", None, None, Vec::new()).0 != 200 {
                assert!(
                    Instant::now() < deadline,
                    "serve did not become ready; log:\n{}",
                    s.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            s.wait_ready();
        }
        s
    }

    /// Polls `/readyz` until it answers 200.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ready() {
            assert!(
                Instant::now() < deadline,
                "serve did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One `GET /readyz` over a plain socket: is the answer 200?
    fn ready(&self) -> bool {
        readyz(self.port)
    }

    /// The process id (for /proc, signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The folder it runs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything it logged (every service started in this folder appends to one `serve.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// The client [`Service::call`] uses (redirects are not followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Any request: (status, content type, JSON body or Null). A POST always
    /// sends `Content-Length`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Value) {
        let (status, headers, v) = self.call_with_headers(method, path, token, ctype, body);
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, ct, v)
    }

    /// [`Service::call`] with every header of the answer.
    pub fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_with_extra(method, path, token, ctype, &[], body)
    }

    /// [`Service::call_with_headers`] with more request header fields.
    pub fn call_with_extra(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let mut r = self.client.request(
                method.parse().expect("an HTTP method"),
                format!("{}{path}", self.base),
            );
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(c) = ctype {
                r = r.header("content-type", c);
            }
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            if method == "POST" {
                r = r.header("content-length", body.len().to_string());
            }
            let resp = r
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", self.log()));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.expect("the response body");
            let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, headers, v)
        })
    }

    /// Sends a signal (`-TERM`, `-INT`, `-KILL`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits (up to a minute) for the process to end.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().expect("the process's state") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET /readyz` to `127.0.0.1:port` over a plain socket: is the answer 200?
pub fn readyz(port: u16) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if c.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    c.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
