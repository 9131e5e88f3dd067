//! `Idempotency-Key`: a retried POST returns the first answer and does nothing twice.
//!
//! Every record holds the HTTP status and JSON body the client got (record format 2, migration
//! 0006), and a retry is answered with them byte for byte. Booking requests (holds,
//! confirmations, cancellations, reschedules, bookings) store their key inside the writer's
//! transaction, so the effect and its record commit together: the handler hands the writer its
//! render function with the request (`Reservations::submit_rendered`), the writer renders the
//! outcome there, stores the answer, and the handler sends that same answer ([`respond`]).
//! Other POSTs (applications, payments, waitlist entries) use [`replay_or_run`], or
//! [`run_then_replay`] where the handler does nothing before its write but check (applications:
//! the record is read only when the write did not take effect). Applications and payments
//! store the answer in the transaction of their effect too ([`Recorder`]); the rest record it
//! after the handler's own commit, and those handlers are themselves safe to repeat (a payment
//! for an already paid application returns that payment instead of charging again). Payments
//! read first: a retry must not reach the gateway again.
//!
//! Records of format 1, written before: booking records held the engine's outcome instead. The
//! writer still replays them, decoded and rendered afresh, while the outcome's form reads them;
//! one it cannot read is answered 422 `idempotency_record_unreadable` ([`record_unreadable`];
//! `reserve::writer::replay` says why).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::problem::ProblemCode;
use super::Problem;
use crate::reserve::{IdempotencyKey, Rendered};
use crate::store::{IdempotencyRecord, KeptAnswer, Store, StoredAnswer};

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

/// The key's stored answer was written by an older (or newer) version of the server and cannot
/// be replayed; the request is not run again either (it may have taken effect).
pub fn record_unreadable() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ProblemCode::IdempotencyRecordUnreadable,
        "this Idempotency-Key's first answer was stored in a form this server version cannot replay; use a new key",
    )
}

/// A JSON answer as it is sent and stored.
pub fn rendered_json(status: StatusCode, body: &impl serde::Serialize) -> Rendered {
    Rendered {
        status: status.as_u16(),
        body: serde_json::to_string(body).expect("answers serialise"),
    }
}

/// A problem as it is sent and stored (the bytes `Problem::into_response` sends).
pub fn rendered_problem(problem: &Problem) -> Rendered {
    rendered_json(
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        problem,
    )
}

/// Sends a rendered answer: its status, its body as it is, and the content type its status
/// implies (an error status carries a problem, a success the resource as JSON).
pub fn respond(answer: Rendered) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status.is_client_error() || status.is_server_error() {
        "application/problem+json"
    } else {
        "application/json"
    };
    let mut response = (status, answer.body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// What a handler run by [`replay_or_run`] answered.
pub enum Ran {
    /// Its answer; `kept` when its own write stored the answer under the key, with the effect
    /// (a [`Recorder::answer`] handed to the store, and the write done).
    Answer {
        status: StatusCode,
        body: serde_json::Value,
        kept: bool,
    },
    /// Its write found the key stored by a twin request that committed first, and wrote
    /// nothing: the twin's answer is the one to give.
    KeyTaken,
}

impl Ran {
    /// An answer its write did not store ([`replay_or_run`] stores it after).
    pub fn answer(status: StatusCode, body: serde_json::Value) -> Ran {
        Ran::Answer {
            status,
            body,
            kept: false,
        }
    }
}

/// Handed to a handler run by [`replay_or_run`]: the key its own write may store its answer
/// under.
pub struct Recorder {
    key: Option<IdempotencyKey>,
    now_unix: i64,
}

impl Recorder {
    /// The record to write in the effect's own transaction, if the request has a key. The
    /// handler answers `Ran::Answer { kept: true, .. }` once that write is done, or
    /// [`Ran::KeyTaken`] if the store found the key taken.
    pub fn answer(&self, status: StatusCode, body: &serde_json::Value) -> Option<KeptAnswer> {
        let key = self.key.as_ref()?;
        Some(KeptAnswer {
            record: IdempotencyRecord {
                scope: key.scope.clone(),
                key: key.key.clone(),
                request_hash: key.request_hash.clone(),
                answer: StoredAnswer::Http {
                    status: status.as_u16(),
                    body: body.to_string(),
                },
            },
            at_unix: self.now_unix,
        })
    }
}

/// The stored answer of `key`, if any; a key stored for another request is refused.
async fn stored_answer(
    store: &Store,
    key: &IdempotencyKey,
) -> Result<Option<(StatusCode, serde_json::Value)>, Problem> {
    let Some(rec) = store.idempotency_record(&key.scope, &key.key).await? else {
        return Ok(None);
    };
    if rec.request_hash != key.request_hash {
        return Err(key_reused());
    }
    // Only a booking's record holds anything but an HTTP answer, and its request hash (its
    // method and path) is never this request's.
    let StoredAnswer::Http { status, body } = rec.answer else {
        return Err(record_unreadable());
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    Ok(Some((status, body)))
}

/// For non-booking POSTs: replays a stored answer, or runs `handler` and makes sure its answer
/// is stored. A handler whose write is one transaction stores the answer in it
/// ([`Recorder::answer`]): one commit instead of two, and a retry never finds the effect
/// without its answer, nor a twin sent at once run twice. Answers its write did not store
/// (an early one, a refusal of the store's) are stored after it.
pub async fn replay_or_run<F, Fut>(
    store: &Store,
    key: Option<IdempotencyKey>,
    now_unix: i64,
    handler: F,
) -> Result<(StatusCode, serde_json::Value), Problem>
where
    F: FnOnce(Recorder) -> Fut,
    Fut: std::future::Future<Output = Result<Ran, Problem>>,
{
    if let Some(key) = &key {
        if let Some(answer) = stored_answer(store, key).await? {
            return Ok(answer);
        }
    }
    run(store, key, now_unix, handler, Read::Before).await
}

/// [`replay_or_run`] for a handler that does nothing before its write but read and check, and
/// whose write stores the answer under the key whenever it takes effect: the handler runs
/// first, and the key's record is read only when it did not take effect. Its write found the
/// key taken (a retry, a twin), or it refused before writing: the record, if any, answers
/// then, as it would have before the run (a retry of a request that has since taken effect
/// gets its first answer, and a key used for another request is refused). A first request,
/// nearly every one, is spared a read of a record that is not there; a retry pays for its
/// checks again.
pub async fn run_then_replay<F, Fut>(
    store: &Store,
    key: Option<IdempotencyKey>,
    now_unix: i64,
    handler: F,
) -> Result<(StatusCode, serde_json::Value), Problem>
where
    F: FnOnce(Recorder) -> Fut,
    Fut: std::future::Future<Output = Result<Ran, Problem>>,
{
    run(store, key, now_unix, handler, Read::After).await
}

/// When the key's record was read: before the handler ran (none was there), or not yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Before,
    After,
}

/// Runs `handler` and gives its answer, storing it when its write did not.
async fn run<F, Fut>(
    store: &Store,
    key: Option<IdempotencyKey>,
    now_unix: i64,
    handler: F,
    read: Read,
) -> Result<(StatusCode, serde_json::Value), Problem>
where
    F: FnOnce(Recorder) -> Fut,
    Fut: std::future::Future<Output = Result<Ran, Problem>>,
{
    let ran = handler(Recorder {
        key: key.clone(),
        now_unix,
    })
    .await;
    // Whatever did not take effect defers to a record stored before it, when none was read.
    let stored_first = |key: &Option<IdempotencyKey>| {
        let key = key.clone().filter(|_| read == Read::After);
        async move {
            match key {
                Some(key) => stored_answer(store, &key).await,
                None => Ok(None),
            }
        }
    };
    let (status, body) = match ran {
        Err(problem) => {
            return match stored_first(&key).await? {
                Some(answer) => Ok(answer),
                None => Err(problem),
            }
        }
        Ok(Ran::Answer {
            status,
            body,
            kept: true,
        }) => return Ok((status, body)),
        Ok(Ran::Answer { status, body, .. }) => {
            if let Some(answer) = stored_first(&key).await? {
                return Ok(answer);
            }
            (status, body)
        }
        Ok(Ran::KeyTaken) => {
            // Only a write handed a record finds its key taken, and a record needs a key.
            let answer = match &key {
                Some(key) => stored_answer(store, key).await?,
                None => None,
            };
            return answer.ok_or_else(|| {
                tracing::error!("a write found its idempotency key taken, but no record");
                Problem::internal()
            });
        }
    };
    let recorder = Recorder { key, now_unix };
    if let Some(kept) = recorder.answer(status, &body) {
        store
            .put_idempotency_record(&kept.record, kept.at_unix)
            .await?;
    }
    Ok((status, body))
}
