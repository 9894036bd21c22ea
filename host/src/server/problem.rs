//! Errors as `application/problem+json` (RFC 9457). `type` is a stable URN per
//! kind of problem (`urn:mailhost:problem:CODE`); clients branch on it, people
//! read `detail`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One problem.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable code: the last part of `type`.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (RFC 9457 §3.2), e.g. `rows` for a batch's bad rows.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    /// Adds an extension member (a name the standard members do not use).
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Problem {
        self.extensions.insert(key.to_string(), value);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            code,
            "The request is invalid",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "No valid API token",
            detail,
        )
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, code, "Not allowed", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::CONFLICT,
            code,
            "Not possible in this state",
            detail,
        )
    }

    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "The service cannot take this now",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The service failed",
            detail,
        )
    }

    pub fn type_uri(&self) -> String {
        format!("urn:mailhost:problem:{}", self.code)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: self.type_uri(),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            extensions: &self.extensions,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut r = (self.status, json).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mailhost\""),
            );
        }
        r
    }
}
