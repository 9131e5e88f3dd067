//! The HTTP layer's one error type, answered as RFC 9457 `application/problem+json` with a
//! stable machine-readable `code` (one of [`ProblemCode`]) and a human `detail`. Internal
//! errors never leak details: they are logged with their chain of sources ([`ErrorChain`]).

mod code;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::ValidationError;
use crate::store::StoreError;

pub use code::ProblemCode;

/// Seconds a client should wait before retrying when storage is unavailable.
pub const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank`-style tags keep it stable without hosting.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: ProblemCode,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Details particular to the problem (e.g. alternatives for `slot_full`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Value>,
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_secs: Option<u64>,
}

/// One failed field. Its `code` is the field-level vocabulary (the domain's validation codes,
/// or `invalid` for a scenario's rules), kept a string: it names what is wrong with a field,
/// not the problem, and the planner's scenario rules are not a closed set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub detail: String,
}

impl From<&ValidationError> for FieldError {
    fn from(e: &ValidationError) -> Self {
        Self {
            field: e.field.to_string(),
            code: e.code.to_string(),
            detail: e.message.clone(),
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("tag:nobat,2026:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: None,
            retry_after_secs: None,
        }
    }

    pub fn with_errors(mut self, errors: &[ValidationError]) -> Self {
        self.errors = errors.iter().map(FieldError::from).collect();
        self
    }

    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::Unavailable,
            detail,
        );
        p.retry_after_secs = Some(RETRY_AFTER_SECS);
        p
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }

    /// A 500 for `error`, which is logged (`what` went wrong, with the error's whole chain);
    /// the client gets `internal` and none of it.
    pub fn internal_error(what: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "{what}");
        Self::internal()
    }

    /// A 422 for one failed field whose code is the problem's code too (what a domain
    /// validation error gives), for the checks the HTTP layer makes itself.
    pub fn invalid_field(field: &str, code: ProblemCode, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            format!("{field}: {detail}"),
        );
        problem.errors = vec![FieldError {
            field: field.to_string(),
            code: code.as_str().to_string(),
            detail,
        }];
        problem
    }
}

/// A single failed field: its code is the problem's code. A domain code without a problem
/// code (a test rules it out) is answered `invalid_form`, the code of "some field is
/// invalid", with the field's own code still in `errors`.
impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Self {
        let code = ProblemCode::of_validation(e.code).unwrap_or_else(|| {
            tracing::error!(
                code = e.code,
                field = e.field,
                "a validation code has no problem code"
            );
            ProblemCode::InvalidForm
        });
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            .with_errors(std::slice::from_ref(&e))
    }
}

/// An error followed by its sources, `outer: inner: innermost`, for logs. JSON logs would
/// otherwise keep only the outer message (tracing records an error field by its `Display`).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                // At debug: in a surge every request turned away would log; the 503s are in
                // the metrics.
                tracing::debug!(error = %ErrorChain(&e), "storage unavailable");
                Problem::unavailable("storage is unavailable; retry shortly")
            }
            StoreError::Constraint { constraint, .. } => {
                tracing::warn!(%constraint, "constraint refused a write");
                Problem::new(
                    StatusCode::CONFLICT,
                    ProblemCode::Conflict,
                    "the request conflicts with the current state",
                )
            }
            other => Problem::internal_error("storage error", &other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // For the middleware that counts shed requests by reason.
        response.extensions_mut().insert(self.code);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the journal")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_source() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(ErrorChain(&e).to_string(), "reading the journal: disk full");
        let p = Problem::internal_error("journal", &e);
        assert_eq!(p.code, ProblemCode::Internal);
        assert!(!p.detail.contains("disk"), "{}", p.detail);
    }
}
