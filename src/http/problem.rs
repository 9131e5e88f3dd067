//! The HTTP layer's one error type, answered as RFC 9457 `application/problem+json` with a
//! stable machine-readable `code` and a human `detail`. Internal errors never leak details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::ValidationError;
use crate::store::StoreError;

/// Seconds a client should wait before retrying when storage is unavailable.
pub const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank`-style tags keep it stable without hosting.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: String,
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
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("tag:nobat,2026:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code: code.to_string(),
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
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after_secs = Some(RETRY_AFTER_SECS);
        p
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.to_string())
            .with_errors(std::slice::from_ref(&e))
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                Problem::unavailable("storage is unavailable; retry shortly")
            }
            StoreError::Constraint { constraint, .. } => {
                tracing::warn!(%constraint, "constraint refused a write");
                Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the request conflicts with the current state",
                )
            }
            other => {
                tracing::error!(error = %other, "storage error");
                Problem::internal()
            }
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
        response
    }
}
