//! Listing answers kept whole, by request, until the part of the availability view they were
//! built from changes: a repeated listing (the same office's week, the same area code) costs a
//! lookup and a version check, not a render. The view says what an answer depends on
//! (`availability::Stamp`: the versions of the offices it shows, for a ranked listing whether
//! any office gained seats, and the instant the clock makes it stale); the directory it was
//! built against must still be the one in force.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::booking::UnixSeconds;
use crate::reserve::availability::{Availability, Stamp};
use crate::reserve::directory::Directory;

/// Most answers kept; past it the cache starts again empty (the requests still asked refill
/// it), so that a client varying its query cannot grow it without limit.
const ANSWERS_MAX: usize = 8_192;
/// Most bytes of answers kept, with the same consequence.
const ANSWER_BYTES_MAX: usize = 32 << 20;

struct Answer {
    body: Bytes,
    stamp: Stamp,
    directory: Arc<Directory>,
}

/// The process's kept listing answers, keyed by route and raw query.
#[derive(Default)]
pub struct Answers {
    kept: RwLock<HashMap<Box<str>, Arc<Answer>>>,
    bytes: AtomicUsize,
}

/// A JSON answer of kept bytes.
pub fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl Answers {
    /// The kept answer to `key` if it still holds at `now` against this directory and view.
    pub fn get(
        &self,
        key: &str,
        directory: &Arc<Directory>,
        view: &Availability,
        now: UnixSeconds,
    ) -> Option<Bytes> {
        let answer = self
            .kept
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()?;
        (Arc::ptr_eq(&answer.directory, directory) && view.unchanged(&answer.stamp, now))
            .then(|| answer.body.clone())
    }

    /// Keeps `body` as the answer to `key` while `stamp` holds (no stamp: the view changed
    /// while the answer was built, so it is not kept).
    pub fn keep(&self, key: &str, directory: &Arc<Directory>, stamp: Option<Stamp>, body: Bytes) {
        let Some(stamp) = stamp else {
            return;
        };
        let len = body.len();
        let answer = Arc::new(Answer {
            body,
            stamp,
            directory: directory.clone(),
        });
        let mut kept = self.kept.write().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= ANSWERS_MAX || self.bytes.load(Ordering::Relaxed) + len > ANSWER_BYTES_MAX
        {
            kept.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        let old = kept.insert(key.into(), answer);
        // Under the write lock: the count matches the map.
        let freed = old.map_or(0, |a| a.body.len());
        self.bytes.store(
            self.bytes.load(Ordering::Relaxed) + len - freed,
            Ordering::Relaxed,
        );
    }

    /// Answers kept now.
    pub fn len(&self) -> usize {
        self.kept.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
