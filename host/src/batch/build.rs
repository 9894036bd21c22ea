//! Every row of a batch, rendered and built through `Engine::prepare` (the
//! one use case: policy, defaults, build, purpose checks) before anything is
//! queued.

use super::{EmlFile, Renderer, Row, RowError, RowErrors, Template};
use crate::engine::Engine;
use crate::message::MessageRequest;
use crate::outbox::batches::NewBatch;
use crate::outbox::{NewMessage, Priority, MAX_BATCH_PER_MINUTE};
use crate::policy::Action;
use crate::submit::{Content, Submission, SubmitError};

/// What the batch is made of.
#[derive(Debug, Clone)]
pub enum BatchContent {
    /// A template and recipient rows (JSON Lines, CSV, the API's `rows`).
    Rows { template: Template, rows: Vec<Row> },
    /// Complete messages, each sent as it is.
    Eml(Vec<EmlFile>),
}

/// One batch request, from the CLI or the API.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub label: Option<String>,
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub purpose: Option<String>,
    pub mode: Option<String>,
    /// A second batch with the same key (per tenant) answers with the first batch's id.
    pub idempotency_key: Option<String>,
    /// Messages per minute; default `[outbox] batch_per_minute`; 0 = not paced.
    pub per_minute: Option<u32>,
    pub content: BatchContent,
}

impl BatchRequest {
    pub fn rows(&self) -> usize {
        match &self.content {
            BatchContent::Rows { rows, .. } => rows.len(),
            BatchContent::Eml(f) => f.len(),
        }
    }
}

/// A batch ready to queue: the batch row and every message, built and checked.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    pub batch: NewBatch,
    pub messages: Vec<NewMessage>,
}

/// Renders and prepares every row. One bad row → `Err` with every bad row
/// (up to [`super::MAX_LISTED`]); `refused` counts the rows the policy refused.
pub fn prepare_all(
    engine: &Engine,
    req: &BatchRequest,
) -> Result<PreparedBatch, (RowErrors, usize)> {
    let per_minute = req
        .per_minute
        .unwrap_or_else(|| engine.settings().outbox.batch_rate());
    if per_minute > MAX_BATCH_PER_MINUTE {
        return Err((
            RowErrors::one(RowError::whole(format!(
                "rate {per_minute} per minute is more than {MAX_BATCH_PER_MINUTE} (1,000 a second); give a lower rate, or 0 to send unpaced"
            ))),
            0,
        ));
    }
    let limit = engine.settings().limits.max_batch_rows;
    if req.rows() > limit {
        return Err((
            RowErrors::one(RowError::whole(format!(
                "the batch has {} rows, more than {limit} ([limits] max_batch_rows); split it or raise the limit",
                req.rows()
            ))),
            0,
        ));
    }
    if req.rows() == 0 {
        return Err((RowErrors::one(RowError::whole("the batch has no rows")), 0));
    }
    if let Err(e) = crate::submit::check_names(&[
        ("user", req.user.as_deref()),
        ("tenant", req.tenant.as_deref()),
        ("purpose", req.purpose.as_deref()),
        ("mode", req.mode.as_deref()),
        ("idempotency_key", req.idempotency_key.as_deref()),
        ("name", req.label.as_deref()),
    ]) {
        return Err((RowErrors::one(RowError::whole(e.to_string())), 0));
    }
    let mut errors = RowErrors::default();
    let mut refused = 0;
    let mut messages = Vec::with_capacity(req.rows());
    let sub = |content: Content| Submission {
        action: Action::Send,
        user: req.user.clone(),
        tenant: req.tenant.clone(),
        purpose: req.purpose.clone(),
        mode: req.mode.clone(),
        content,
        idempotency_key: None,
        options: serde_json::Map::new(),
    };
    // A built message, or the row's error and whether the policy refused it.
    let prepare = |at: RowError, content: Content| -> Result<NewMessage, (RowError, bool)> {
        let p = engine.prepare(&sub(content)).map_err(|e| {
            let refused = matches!(e, SubmitError::Refused(_));
            (
                RowError {
                    message: e.to_string(),
                    ..at.clone()
                },
                refused,
            )
        })?;
        NewMessage::from_prepared(&p, None, Priority::Batch).map_err(|e| {
            (
                RowError {
                    message: e.to_string(),
                    ..at
                },
                false,
            )
        })
    };
    let mut take = |r: Result<NewMessage, (RowError, bool)>| match r {
        Ok(m) => messages.push(m),
        Err((e, r)) => {
            refused += usize::from(r);
            errors.push(e);
        }
    };
    match &req.content {
        BatchContent::Rows { template, rows } => {
            let renderer = Renderer::new(template).map_err(|e| (RowErrors::one(e), 0))?;
            for row in rows {
                let r = match renderer.render(row) {
                    Ok(r) => r,
                    Err(e) => {
                        take(Err((e, false)));
                        continue;
                    }
                };
                let m = MessageRequest {
                    from: template.from.clone(),
                    to: row.to.clone(),
                    cc: row.cc.clone(),
                    bcc: row.bcc.clone(),
                    subject: r.subject,
                    text: r.text,
                    html: r.html,
                    ..Default::default()
                };
                take(prepare(
                    RowError::line(row.line, ""),
                    Content::Fields(Box::new(m)),
                ));
            }
        }
        BatchContent::Eml(files) => {
            for (i, f) in files.iter().enumerate() {
                take(prepare(
                    RowError::file(i + 1, &f.name, ""),
                    Content::Mime {
                        bytes: f.bytes.clone(),
                        envelope_from: None,
                        envelope_to: Vec::new(),
                    },
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err((errors, refused));
    }
    Ok(PreparedBatch {
        batch: NewBatch {
            label: req.label.clone(),
            tenant: req.tenant.clone(),
            user: req.user.clone(),
            idempotency_key: req.idempotency_key.clone(),
            per_minute,
        },
        messages,
    })
}
