//! Batch sending (`mailhost send-batch`, `POST /v1/batches`): many messages
//! from one template and a list of recipient rows (JSON Lines or CSV), or a
//! folder of `.eml` files sent as they are.
//!
//! Every row is read ([`input`]), rendered ([`template`]) and built through
//! the one use case (`Engine::prepare`, so policy and purpose rules hold on
//! each built message) **before anything is queued** ([`build`]): one bad row
//! and nothing is queued, every bad row listed (up to [`MAX_LISTED`]).
//! The outbox then stores the batch and its messages in one transaction and
//! paces them at the batch's rate (`outbox::pacing`).

pub mod build;
pub mod cli;
pub mod input;
pub mod template;
pub mod text;

use serde::Serialize;

pub use build::{prepare_all, BatchContent, BatchRequest};
pub use input::{EmlFile, Format, Row};
pub use template::{Rendered, Renderer, Template};

/// How many bad rows an error lists (the rest are counted).
pub const MAX_LISTED: usize = 100;

/// One bad row (or the whole input when `row` is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// The line (JSON Lines, CSV) or the position of the file (folder), 1-based; 0: the whole batch.
    pub row: usize,
    /// `line 3`, `file b.eml` or `batch`.
    pub at: String,
    /// The field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    pub fn whole(message: impl Into<String>) -> RowError {
        RowError {
            row: 0,
            at: "batch".into(),
            field: None,
            message: message.into(),
        }
    }

    pub fn line(line: usize, message: impl Into<String>) -> RowError {
        RowError {
            row: line,
            at: format!("line {line}"),
            field: None,
            message: message.into(),
        }
    }

    pub fn field(line: usize, field: &str, message: impl std::fmt::Display) -> RowError {
        RowError {
            row: line,
            at: format!("line {line}"),
            field: Some(field.to_string()),
            message: format!("field `{}` {message}", field.escape_debug()),
        }
    }

    pub fn file(pos: usize, name: &str, message: impl Into<String>) -> RowError {
        RowError {
            row: pos,
            at: format!("file {}", name.escape_debug()),
            field: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every bad row of a batch (the first [`MAX_LISTED`]) and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowErrors {
    pub list: Vec<RowError>,
    /// All bad rows, listed or not.
    pub total: usize,
}

impl RowErrors {
    pub fn one(e: RowError) -> RowErrors {
        RowErrors {
            list: vec![e],
            total: 1,
        }
    }

    pub fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.list.len() < MAX_LISTED {
            self.list.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn into_result<T>(self, ok: T) -> Result<T, RowErrors> {
        if self.is_empty() {
            Ok(ok)
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for RowErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bad row(s); nothing was queued (fix them and send the batch again):",
            self.total
        )?;
        for e in &self.list {
            write!(f, "\n  {e}")?;
        }
        if self.total > self.list.len() {
            write!(f, "\n  ... and {} more", self.total - self.list.len())?;
        }
        Ok(())
    }
}
