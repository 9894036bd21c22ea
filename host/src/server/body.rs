//! Reading request bodies within their limit. A body over the limit is
//! read on and dropped (within a bound) before the 413 goes out: a client
//! usually sends its whole body before it reads, and a server that closes
//! with the body unread gives it a reset or a broken pipe instead of the
//! answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;

use super::problem::Problem;

/// The 413 answer for a body over `limit` (`len`: its declared length).
pub(super) fn too_large(limit: usize, len: Option<u64>) -> Problem {
    let size = len.map(|l| format!(" ({l} bytes)")).unwrap_or_default();
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "The request body is too large",
        format!(
            "the body{size} is larger than {limit} bytes, the limit that follows from the config's [limits] max_message_bytes"
        ),
    )
}

/// How much of a refused body is read and dropped: four times the limit, at
/// most 64 MiB (see [`drain_refused`]).
fn drain_cap(limit: u64) -> u64 {
    limit.saturating_mul(4).min(64 << 20)
}

/// Reads and drops a body whose declared length is over the limit, so the
/// client, which usually sends it all before it reads, gets the 413 instead
/// of a connection reset (the server would close with the body unread). Up
/// to [`drain_cap`] and 10 seconds; past that the answer goes at once.
pub(crate) async fn drain_refused(body: Body, declared: u64, limit: u64) {
    if declared <= drain_cap(limit) {
        drain(body, 0, limit).await;
    }
}

/// Reads and drops the rest of `body` (`seen` bytes were read already).
async fn drain(mut body: Body, mut seen: u64, limit: u64) {
    use http_body_util::BodyExt as _;
    let cap = drain_cap(limit);
    let rest = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map(|d| d.len() as u64).unwrap_or(0);
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), rest).await;
}

/// The body, when it is at most `limit` bytes; `None` when it is longer
/// (then the rest is drained, as [`drain_refused`] does for a declared
/// length: a chunked body has none) or cannot be read.
pub(crate) async fn read_limited(mut body: Body, limit: u64) -> Option<Bytes> {
    use http_body_util::BodyExt as _;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > limit {
            drop(chunks);
            drain(body, len, limit).await;
            return None;
        }
        chunks.push(data);
    }
    // One chunk (the usual small request) is passed on without a copy.
    if chunks.len() == 1 {
        return chunks.pop();
    }
    Some(chunks.concat().into())
}

/// Reads the body up to the limit; more → 413.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    read_limited(body, limit as u64)
        .await
        .ok_or_else(|| too_large(limit, None))
}
