//! Reading request bodies within their limit. A body over the limit is
//! read on and dropped (within a bound) before the 413 goes out: a client
//! usually sends its whole body before it reads, and a server that closes
//! with the body unread gives it a reset or a broken pipe instead of the
//! answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};

use super::problem::Problem;

/// The request's media type without its parameters, lower case (`""` when
/// there is none or it is not text).
pub(super) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

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
/// most 64 MiB (see [`read_within`]).
fn drain_cap(limit: u64) -> u64 {
    limit.saturating_mul(4).min(64 << 20)
}

/// The body, when it is at most `limit` bytes; else `refused(declared
/// length)`, the 413. A declared length over the limit is refused before
/// anything is read: the body is read and dropped first (up to
/// [`drain_cap`] and 10 seconds; past that the answer goes at once), so
/// the client, which usually sends it all before it reads, gets the answer
/// instead of a connection reset.
pub(super) async fn read_within(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    refused: impl Fn(Option<u64>) -> Problem,
) -> Result<Bytes, Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit) {
        if len <= drain_cap(limit) {
            drain(body, 0, limit).await;
        }
        return Err(refused(Some(len)));
    }
    read_limited(body, limit).await.ok_or_else(|| refused(None))
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
/// (then the rest is drained, as [`read_within`] does for a declared
/// length: a chunked body has none) or cannot be read.
async fn read_limited(mut body: Body, limit: u64) -> Option<Bytes> {
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
