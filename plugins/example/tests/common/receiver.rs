//! A webhook receiver for tests: a real HTTP/1.1 server (hyper) on
//! 127.0.0.1:<free port> that records every request and answers by path.
//!
//! | path | answer |
//! |---|---|
//! | `/ok` | 202 `{"id":"wh-N"}` |
//! | `/busy` | 503 with `Retry-After: 7`, body `maintenance until 10:00` |
//! | `/auth` | 401 `invalid token` |
//! | `/bad` | 400 `subject must not be empty` |
//! | `/post-only` | 405 to anything but POST, 202 to POST |
//! | other | 404 |
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = requests.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let log = log.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| handle(req, log.clone()));
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    _ = accept => {}
                }
            });
        });
        Self {
            addr,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests that carried `Idempotency-Key: key`.
    pub fn with_key(&self, key: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("idempotency-key") == Some(key))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let n = {
        let mut log = log.lock().unwrap();
        log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        log.len()
    };
    let (status, extra, body): (u16, Vec<(&str, &str)>, String) =
        match (method.as_str(), path.as_str()) {
            (_, "/ok") => (
                202,
                vec![("content-type", "application/json")],
                format!(r#"{{"id":"wh-{n}"}}"#),
            ),
            (_, "/busy") => (
                503,
                vec![("retry-after", "7")],
                "maintenance until 10:00".into(),
            ),
            (_, "/auth") => (401, vec![], "invalid token".into()),
            (_, "/bad") => (400, vec![], "subject must not be empty".into()),
            ("POST", "/post-only") => (202, vec![], String::new()),
            (_, "/post-only") => (405, vec![("allow", "POST")], String::new()),
            _ => (404, vec![], "no such hook".into()),
        };
    let mut response = Response::builder().status(status);
    for (k, v) in extra {
        response = response.header(k, v);
    }
    Ok(response
        .body(Full::new(Bytes::from(body)))
        .expect("response"))
}
