//! Messages over Graph's ~4 MB request limit: a draft, attachments added one
//! by one or through upload sessions (3–150 MB, chunks of at most 4 MB, no
//! Authorization header on the upload URL), then `/send`.

use super::json::{attachment_json, content_type};
use super::*;

/// `{id, webLink}` of a created draft.
#[derive(Debug, Deserialize)]
pub(super) struct Draft {
    pub(super) id: String,
    #[serde(default, rename = "webLink")]
    pub(super) web_link: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct UploadSession {
    #[serde(rename = "uploadUrl")]
    pub(super) upload_url: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct UploadProgress {
    #[serde(default, rename = "nextExpectedRanges")]
    pub(super) next_expected_ranges: Vec<String>,
}

impl UploadProgress {
    /// The first byte the server still expects.
    pub(super) fn next_offset(&self) -> Option<usize> {
        let first = self.next_expected_ranges.first()?;
        first.split('-').next()?.trim().parse().ok()
    }
}

pub(super) enum ChunkResult {
    Done,
    /// More to send; the server's next expected offset when it said.
    Next(Option<usize>),
}

pub(super) fn parse_draft(answer: Answer) -> Result<Draft, PluginError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        PluginError::transient(format!(
            "graph: {}: the answer is not a message with an id: {e}",
            answer.what
        ))
    })
}

impl Inner {
    pub(super) async fn send_large(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
        save: bool,
    ) -> Result<Sent, PluginError> {
        if !save {
            tracing::warn!(
                mailbox = %mailbox,
                "message over 4 MB: Graph sends it from a draft, which always keeps a copy in Sent Items (save_to_sent_items = false cannot be honored)"
            );
        }
        let draft = self.create_large_draft(message, mailbox).await?;
        let sent = self
            .request(
                mailbox,
                Method::POST,
                &["users", mailbox, "messages", &draft.id, "send"],
                None,
                &Payload::Empty,
            )
            .await
            .and_then(|a| self.expect(a, Op::SendDraft, mailbox));
        match sent {
            Ok(answer) => Ok(Sent {
                route: "draft-upload-send",
                server_id: draft.id,
                reply: format!("{} send (draft with upload sessions)", answer.status),
                saved_to_sent_items: true,
            }),
            Err(e) => {
                self.delete_draft(mailbox, &draft.id).await;
                Err(e)
            }
        }
    }

    /// Creates a draft from the structured parts: small attachments inline while
    /// the request stays under Graph's limit, the rest one by one, big ones
    /// through upload sessions. On failure the half-built draft is deleted.
    pub(super) async fn create_large_draft(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
    ) -> Result<Draft, PluginError> {
        let atts = &message.parts.attachments;
        if let Some(a) = atts.iter().find(|a| a.data.len() > MAX_ATTACHMENT) {
            return Err(PluginError::permanent(format!(
                "graph: attachment {:?} is {} bytes; Exchange Online takes at most 150 MB per attachment — send it as a link instead",
                a.filename.as_str(),
                a.data.len()
            )));
        }
        // Plan: which small attachments fit into the draft request itself.
        let base_len = serde_json::to_vec(&message_json(message, mailbox, &[]))
            .map(|v| v.len())
            .unwrap_or(0);
        let mut budget = SINGLE_REQUEST_LIMIT.saturating_sub(base_len + 1024);
        let mut in_draft = Vec::new();
        let mut separate = Vec::new();
        let mut upload = Vec::new();
        for a in atts.iter() {
            if a.data.len() >= UPLOAD_THRESHOLD {
                upload.push(a);
                continue;
            }
            let cost = a.data.len().div_ceil(3) * 4 + a.filename.len() + a.media_type.len() + 256;
            if cost <= budget {
                budget -= cost;
                in_draft.push(a);
            } else {
                separate.push(a);
            }
        }
        // A service with a lower request limit than planned answers 413: then
        // the draft goes without attachments, and each one is added on its own.
        let mut attempts = vec![in_draft.clone()];
        if !in_draft.is_empty() {
            attempts.push(Vec::new());
        }
        let mut draft = None;
        for attempt in attempts {
            let body =
                serde_json::to_vec(&message_json(message, mailbox, &attempt)).map_err(|e| {
                    PluginError::permanent(format!("graph: cannot encode the message as JSON: {e}"))
                })?;
            let answer = self
                .request(
                    mailbox,
                    Method::POST,
                    &["users", mailbox, "messages"],
                    None,
                    &Payload::Json(body),
                )
                .await?;
            if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
                if attempt.is_empty() {
                    return Err(PluginError::permanent(format!(
                        "graph: {} → 413: the message's text alone is larger than Graph takes in one request (4 MB); shorten the body or move content into attachments",
                        answer.what
                    ))
                    .with_code(413));
                }
                tracing::info!("Graph refused the draft with its small attachments as too large (413); adding them one by one");
                separate.splice(0..0, attempt.iter().copied());
                continue;
            }
            draft = Some(parse_draft(self.expect(answer, Op::Draft, mailbox)?)?);
            break;
        }
        let Some(draft) = draft else {
            return Err(PluginError::transient("graph: the draft was not created"));
        };
        let built = async {
            for a in separate {
                if !self.add_attachment(mailbox, &draft.id, a).await? {
                    // Too large for one request here: an upload session takes any size.
                    self.upload_attachment(mailbox, &draft.id, a).await?;
                }
            }
            for a in upload {
                self.upload_attachment(mailbox, &draft.id, a).await?;
            }
            Ok::<_, PluginError>(())
        }
        .await;
        if let Err(e) = built {
            self.delete_draft(mailbox, &draft.id).await;
            return Err(e);
        }
        Ok(draft)
    }

    /// `POST …/messages/{id}/attachments` with one file; `false` when the service answered 413.
    pub(super) async fn add_attachment(
        &self,
        mailbox: &str,
        draft_id: &str,
        a: &Attachment,
    ) -> Result<bool, PluginError> {
        let body = serde_json::to_vec(&attachment_json(a)).map_err(|e| {
            PluginError::permanent(format!("graph: cannot encode an attachment: {e}"))
        })?;
        let answer = self
            .request(
                mailbox,
                Method::POST,
                &["users", mailbox, "messages", draft_id, "attachments"],
                None,
                &Payload::Json(body),
            )
            .await?;
        if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
            return Ok(false);
        }
        self.expect(answer, Op::Draft, mailbox)?;
        Ok(true)
    }

    /// Best effort: removes a draft left behind by a failed large send.
    pub(super) async fn delete_draft(&self, mailbox: &str, id: &str) {
        match self
            .request(
                mailbox,
                Method::DELETE,
                &["users", mailbox, "messages", id],
                None,
                &Payload::None,
            )
            .await
        {
            Ok(a) if a.status.is_success() => {
                tracing::info!(draft = %id, "half-built draft deleted")
            }
            Ok(a) => {
                tracing::warn!(draft = %id, status = %a.status, "could not delete the half-built draft; remove it from Drafts")
            }
            Err(e) => {
                tracing::warn!(draft = %id, error = %e.message(), "could not delete the half-built draft; remove it from Drafts")
            }
        }
    }

    /// `createUploadSession` for one attachment, then its chunks (no
    /// Authorization header on the upload URL), resuming from the server's
    /// `nextExpectedRanges` after a failed chunk.
    pub(super) async fn upload_attachment(
        &self,
        mailbox: &str,
        draft_id: &str,
        a: &Attachment,
    ) -> Result<(), PluginError> {
        let size = a.data.len();
        if size == 0 {
            return Err(PluginError::permanent(format!(
                "graph: attachment {:?} is empty and cannot go through an upload session",
                a.filename.as_str()
            )));
        }
        let mut item = json!({
            "attachmentType": "file",
            "name": a.filename.as_str(),
            "size": size,
            "contentType": content_type(a),
            "isInline": a.inline,
        });
        if !a.content_id.is_empty() {
            item["contentId"] = json!(a.content_id.as_str());
        }
        let body = serde_json::to_vec(&json!({ "AttachmentItem": item })).map_err(|e| {
            PluginError::permanent(format!(
                "graph: cannot encode the upload session request: {e}"
            ))
        })?;
        let answer = self
            .request(
                mailbox,
                Method::POST,
                &[
                    "users",
                    mailbox,
                    "messages",
                    draft_id,
                    "attachments",
                    "createUploadSession",
                ],
                None,
                &Payload::Json(body),
            )
            .await?;
        let answer = self.expect(answer, Op::Draft, mailbox)?;
        let session: UploadSession = serde_json::from_slice(&answer.body).map_err(|e| {
            PluginError::transient(format!(
                "graph: {}: the answer has no uploadUrl: {e}",
                answer.what
            ))
        })?;
        let upload_url = Url::parse(&session.upload_url).map_err(|e| {
            PluginError::transient(format!(
                "graph: the upload URL {:?} is invalid: {e}",
                session.upload_url
            ))
        })?;
        if upload_url.scheme() != "https" {
            return Err(PluginError::permanent(format!(
                "graph: refusing to upload {:?} to a non-https upload URL",
                a.filename.as_str()
            )));
        }
        let gate = mailbox_gate(&self.base, mailbox);
        let mut offset = 0usize;
        let mut failures = 0u32;
        let mut chunks = 0usize;
        // Enough PUTs for every chunk twice over; a server that keeps asking for
        // the same bytes must not keep us here forever.
        let max_puts = 2 * size.div_ceil(CHUNK) + MAX_CHUNK_FAILURES as usize;
        while offset < size {
            if chunks >= max_puts {
                return Err(PluginError::transient(format!(
                    "graph: the upload session for {:?} made no progress after {chunks} chunks (stuck at byte {offset} of {size})",
                    a.filename.as_str()
                )));
            }
            let end = (offset + CHUNK).min(size);
            match self
                .put_chunk(&gate, &upload_url, &a.data[offset..end], offset, size)
                .await
            {
                Ok(ChunkResult::Done) => {
                    chunks += 1;
                    tracing::debug!(attachment = %a.filename.as_str(), size, chunks, "attachment uploaded");
                    return Ok(());
                }
                Ok(ChunkResult::Next(next)) => {
                    chunks += 1;
                    offset = next.unwrap_or(end).min(size);
                }
                Err(e) => {
                    failures += 1;
                    if failures > MAX_CHUNK_FAILURES || !(e.is_transient() || e.code == 416) {
                        return Err(e);
                    }
                    let wait = e
                        .retry_after_ms()
                        .unwrap_or(250 * u64::from(failures))
                        .min(30_000);
                    tracing::info!(
                        attachment = %a.filename.as_str(),
                        offset,
                        error = %e.message(),
                        "chunk upload failed; asking the upload session where to resume"
                    );
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    chunks += 1;
                    if let Some(next) = self.upload_status(&gate, &upload_url).await {
                        offset = next.min(size);
                    }
                }
            }
        }
        Ok(())
    }

    /// One chunk `PUT` to the upload URL, without an Authorization header.
    pub(super) async fn put_chunk(
        &self,
        gate: &Semaphore,
        url: &Url,
        data: &[u8],
        start: usize,
        total: usize,
    ) -> Result<ChunkResult, PluginError> {
        let end = start + data.len() - 1;
        let what = format!("PUT upload session (bytes {start}-{end}/{total})");
        let _permit = gate
            .acquire()
            .await
            .map_err(|_| PluginError::transient("graph: the mailbox queue was closed"))?;
        let resp = self
            .http
            .put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, format!("bytes {start}-{end}/{total}"))
            .body(data.to_vec())
            .send()
            .await
            .map_err(|e| error::network(&e, &what))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| error::network(&e, &what))?;
        match status.as_u16() {
            201 => Ok(ChunkResult::Done),
            200 | 202 => {
                let progress: UploadProgress = serde_json::from_slice(&body).unwrap_or_default();
                if end + 1 >= total && progress.next_expected_ranges.is_empty() {
                    Ok(ChunkResult::Done)
                } else {
                    Ok(ChunkResult::Next(progress.next_offset()))
                }
            }
            _ => Err(error::classify(
                status,
                &headers,
                &body,
                Op::Draft,
                &what,
                "",
            )),
        }
    }

    /// Where the upload session wants the next byte (GET on the upload URL, no Authorization).
    pub(super) async fn upload_status(&self, gate: &Semaphore, url: &Url) -> Option<usize> {
        let _permit = gate.acquire().await.ok()?;
        let resp = self.http.get(url.clone()).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let progress: UploadProgress = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
        progress.next_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn upload_progress_reads_the_first_range() {
        let p: UploadProgress =
            serde_json::from_str(r#"{"nextExpectedRanges":["327680-","9000-9999"]}"#).unwrap();
        assert_eq!(p.next_offset(), Some(327_680));
        assert_eq!(UploadProgress::default().next_offset(), None);
    }
}
