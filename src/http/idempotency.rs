//! `Idempotency-Key`: a retried POST returns the first answer and does nothing twice.
//!
//! Booking requests (holds, confirmations, cancellations, reschedules) store their key inside the
//! writer's transaction, so the effect and its record commit together. Other POSTs (sessions,
//! applications, payments) use [`replay_or_run`], which records the answer after the handler's
//! own commit; those handlers are themselves safe to repeat (a payment for an already paid
//! application returns that payment instead of charging again).

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use super::problem::ProblemCode;
use super::Problem;
use crate::reserve::IdempotencyKey;
use crate::store::{IdempotencyRecord, Store};

/// Longest key accepted (a UUID is 36).
const KEY_CHARS_MAX: usize = 128;

/// Reads the header; a malformed key is a 400 rather than silently ignored.
pub fn key_from_headers(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= KEY_CHARS_MAX && k.is_ascii());
    match key {
        Some(k) => Ok(Some(k.to_string())),
        None => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidIdempotencyKey,
            format!("Idempotency-Key must be 1 to {KEY_CHARS_MAX} printable ASCII characters"),
        )),
    }
}

/// A hash of what was asked, so the same key with a different request is refused.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    format!("{:x}", h.finalize())
}

pub fn engine_key(scope: &str, key: Option<String>, hash: String) -> Option<IdempotencyKey> {
    key.map(|key| IdempotencyKey {
        scope: scope.to_string(),
        key,
        request_hash: hash,
    })
}

pub fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ProblemCode::IdempotencyKeyReused,
        "this Idempotency-Key was already used with a different request",
    )
}

/// For non-booking POSTs: replays a stored answer, or runs `handler` and stores its answer.
pub async fn replay_or_run<F, Fut>(
    store: &Store,
    key: Option<IdempotencyKey>,
    now_unix: i64,
    handler: F,
) -> Result<(StatusCode, serde_json::Value), Problem>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, serde_json::Value), Problem>>,
{
    let Some(key) = key else {
        return handler().await;
    };
    if let Some(rec) = store.idempotency_record(&key.scope, &key.key).await? {
        if rec.request_hash != key.request_hash {
            return Err(key_reused());
        }
        let status = StatusCode::from_u16(rec.response_status as u16).unwrap_or(StatusCode::OK);
        let body = serde_json::from_str(&rec.response_body).unwrap_or(serde_json::Value::Null);
        return Ok((status, body));
    }
    let (status, body) = handler().await?;
    store
        .put_idempotency_record(
            &IdempotencyRecord {
                scope: key.scope,
                key: key.key,
                request_hash: key.request_hash,
                response_status: i64::from(status.as_u16()),
                response_body: body.to_string(),
            },
            now_unix,
        )
        .await?;
    Ok((status, body))
}
