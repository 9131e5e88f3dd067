//! The waiting room's server part: the rooms each process caches, booking passes, the
//! admission ticker, and the pass check in front of the booking writes.
//!
//! The order and the admission arithmetic are `nobat_room`'s (pure); this module reads and
//! writes their state through `store::rooms` and serves it.
//!
//! - **Passes** are sealed like session tokens (XChaCha20-Poly1305 under a key HKDF derives from
//!   the shared secret, with its own salt and info), bound to the national code and the room,
//!   and expire `pass_minutes` after the admission: any process with the secret checks one
//!   without a database read. Format `bp1.` then base64url of `nonce (24) ‖ sealed (expiry 8,
//!   national code 10, room id) ‖ tag (16)`.
//! - **The ticker**: each process runs one, every second; for each open room it reads the
//!   room's state and, if a second has passed since the last tick, moves the frontier on
//!   (`Admission::tick`) and writes it back under `WHERE last_tick_ms = old`: one process wins
//!   each tick, the others find the row moved and do nothing, so processes on one PostgreSQL
//!   admit one sequence. The first tick at or after the opening also freezes the pre-queue.
//! - **The pass check** ([`require_pass`]) is a layer in front of `POST /v1/holds`,
//!   `POST /v1/appointments` and reschedules: while a room whose scope covers the request
//!   (its service, the office's province) is active (from its pre-queue's opening to its
//!   close), the request needs a `Booking-Pass` header with a pass of the caller for that room.
//!   With no active room it costs one read of the cached list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use super::problem::{ErrorChain, ProblemCode};
use super::{AppState, Problem, BODY_BYTES_MAX};
use crate::domain::NationalCode;
use crate::room::{Admission, Observed, QueueOrder, Standing};
use crate::store::{PassUse, RoomRecord, RoomState, Store, StoreError};

/// The header a booking request carries its pass in.
pub const PASS_HEADER: &str = "Booking-Pass";
const PASS_PREFIX: &str = "bp1.";
const PASS_CHARS_MAX: usize = 512;
const NONCE_BYTES: usize = 24;
const CODE_BYTES: usize = 10;
/// Units of the admission frontier per rank.
const UNITS_PER_RANK: i64 = crate::room::UNITS_PER_RANK as i64;
/// How often a room's admission moves on, at most.
pub const TICK_MS: i64 = 1000;

/// The key passes are sealed with.
pub struct PassKeys {
    cipher: XChaCha20Poly1305,
}

/// What a valid pass says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub room_id: String,
    pub national_code: String,
    pub expires_at: i64,
}

impl PassKeys {
    /// Derived from the session secret (the same on every node); `None` draws a random key
    /// (one process).
    pub fn new(secret: Option<&[u8]>) -> Self {
        let mut drawn = [0u8; 32];
        let secret = match secret {
            Some(s) => s,
            None => {
                rand::rngs::OsRng.fill_bytes(&mut drawn);
                &drawn
            }
        };
        let hkdf = Hkdf::<Sha256>::new(Some(b"nobat booking passes"), secret);
        let mut key = [0u8; 32];
        hkdf.expand(b"bp1 key", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    pub fn issue(&self, room_id: &str, national_code: &str, expires_at: i64) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut rand::rngs::OsRng);
        let mut plain = Vec::with_capacity(8 + CODE_BYTES + room_id.len());
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.extend_from_slice(national_code.as_bytes());
        plain.extend_from_slice(room_id.as_bytes());
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: b"bp1",
                },
            )
            .expect("sealing a pass cannot fail");
        let mut raw = Vec::with_capacity(NONCE_BYTES + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// What a pass sealed with this key says, expired or not; `None` for anything else.
    pub fn open(&self, pass: &str) -> Option<Pass> {
        if pass.len() > PASS_CHARS_MAX {
            return None;
        }
        let raw = URL_SAFE_NO_PAD
            .decode(pass.strip_prefix(PASS_PREFIX)?)
            .ok()?;
        if raw.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: b"bp1",
                },
            )
            .ok()?;
        if plain.len() <= 8 + CODE_BYTES {
            return None;
        }
        let expires_at = i64::from_be_bytes(plain[..8].try_into().ok()?);
        let national_code = std::str::from_utf8(&plain[8..8 + CODE_BYTES]).ok()?;
        let room_id = std::str::from_utf8(&plain[8 + CODE_BYTES..]).ok()?;
        Some(Pass {
            room_id: room_id.to_string(),
            national_code: national_code.to_string(),
            expires_at,
        })
    }
}

/// Where a room is in its life at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Scheduled,
    Prequeue,
    Open,
    Closed,
}

impl Phase {
    pub fn of(room: &RoomRecord, now: i64) -> Phase {
        if now >= room.closes_at {
            Phase::Closed
        } else if now >= room.opens_at {
            Phase::Open
        } else if now >= room.prequeue_opens_at {
            Phase::Prequeue
        } else {
            Phase::Scheduled
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Prequeue => "prequeue",
            Phase::Open => "open",
            Phase::Closed => "closed",
        }
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the pre-queue, not yet ordered (the opening has not been reached or not yet frozen).
    Prequeue {
        eta_seconds: u64,
    },
    Waiting {
        position: u64,
        eta_seconds: u64,
    },
    Admitted,
}

/// The rank of the ticket numbered `seq` once the pre-queue is frozen:
/// `QueueOrder(seed, prequeue).rank(seq)`.
pub fn rank(room: &RoomRecord, prequeue: i64, seq: i64) -> u64 {
    QueueOrder::new(&room.seed, prequeue.max(0) as u64).rank(seq.max(0) as u64)
}

fn admission(state: &RoomState) -> Admission {
    let rate_per_minute = state.rate_per_minute.clamp(1, i64::from(u32::MAX)) as u32;
    Admission {
        frontier: state.frontier.max(0) as u64,
        rate_per_minute,
        skipped: state.skipped.max(0) as u64,
        // Not yet ticked: the starting rate.
        pace_per_minute: match state.pace_per_minute {
            0 => rate_per_minute,
            pace => pace.clamp(1, i64::from(u32::MAX)) as u32,
        },
    }
}

/// Ranks the frontier has passed: tickets admitted, and ranks skipped because their ticket
/// was gone.
pub fn passed(state: &RoomState) -> i64 {
    state.frontier / UNITS_PER_RANK
}

/// Tickets admitted so far (ranks passed less those skipped).
pub fn admitted(state: &RoomState) -> i64 {
    (passed(state) - state.skipped).max(0)
}

/// Ranks the ticker looks through for gone tickets per tick, at most: a mass expiry is passed
/// over a tick at a time rather than in one long read (ranks past the cap in one tick count as
/// admitted to nobody, as before this count existed).
const PASS_OVER_RANKS_MAX: u64 = 50_000;

/// Where the ticket numbered `seq` stands at `now`.
pub fn place(room: &RoomRecord, state: &RoomState, seq: i64, now: i64) -> Place {
    let Some(prequeue) = state.prequeue else {
        // Before the opening every pre-queue ticket is as likely to be anywhere in it: the
        // middle of the pre-queue, as admission would reach it from the opening.
        let middle = (state.next_seq.max(0) as u64) / 2;
        let to_open = (room.opens_at - now).max(0) as u64;
        let after_opening = match admission(state).standing(&room.admission, middle, TICK_MS as u64)
        {
            Standing::Waiting { eta_seconds, .. } => eta_seconds,
            Standing::Admitted => 0,
        };
        return Place::Prequeue {
            eta_seconds: to_open + after_opening,
        };
    };
    match admission(state).standing(&room.admission, rank(room, prequeue, seq), TICK_MS as u64) {
        Standing::Admitted => Place::Admitted,
        Standing::Waiting {
            position,
            eta_seconds,
        } => Place::Waiting {
            position,
            eta_seconds,
        },
    }
}

/// The rooms this process knows (reloaded with the admin changes), and what it counts for
/// their controller and their join limit.
pub struct Rooms {
    rooms: RwLock<Arc<Vec<Arc<RoomRecord>>>>,
    pub passes: PassKeys,
    /// Joins per client address (this process): a bot farm behind one address joins slowly.
    pub join_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Booking requests' latencies (microseconds) since the last tick, for the controller.
    booking_latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// The process's count of shed requests at the last tick ([`metrics::shed_total`]).
    shed_seen: std::sync::atomic::AtomicU64,
    /// Each known room's state as last read, and when (the injected clock's milliseconds):
    /// polls read it from here while it is younger than a tick (see [`fresh_state`]).
    states: Mutex<HashMap<String, (RoomState, i64)>>,
}

/// Joins a client address may make a minute, and the burst allowed, by default (a household
/// or an office behind one address joins a few; a bot farm behind one joins slowly).
pub const JOINS_PER_ADDRESS_PER_MINUTE: u32 = 60;
pub const JOIN_BURST_PER_ADDRESS: u32 = 20;

impl Rooms {
    /// `joins_per_minute` and `join_burst` per client address (each at least 1).
    pub fn new(
        passes: PassKeys,
        rooms: Vec<RoomRecord>,
        joins_per_minute: u32,
        join_burst: u32,
    ) -> Self {
        let quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(joins_per_minute.max(1)).expect("≥ 1"),
        )
        .allow_burst(std::num::NonZeroU32::new(join_burst.max(1)).expect("≥ 1"));
        Self {
            rooms: RwLock::new(Arc::new(rooms.into_iter().map(Arc::new).collect())),
            passes,
            join_limiter: governor::RateLimiter::keyed(quota),
            shed_seen: std::sync::atomic::AtomicU64::new(crate::http::metrics::shed_total()),
            booking_latency: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
                    .expect("valid histogram bounds"),
            ),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// The room's state if read less than [`TICK_MS`] ago (a clock gone back reads again).
    fn kept_state(&self, room_id: &str, now_ms: i64) -> Option<RoomState> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states
            .get(room_id)
            .filter(|(_, read_ms)| (0..TICK_MS).contains(&(now_ms - read_ms)))
            .map(|(s, _)| *s)
    }

    /// Keeps a room's state as read at `now_ms`; only for rooms this process knows, so the
    /// map is bounded by the rooms (a public poll of an unknown id keeps nothing).
    fn keep_state(&self, room_id: &str, state: RoomState, now_ms: i64) {
        if self.get(room_id).is_none() {
            return;
        }
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.insert(room_id.to_string(), (state, now_ms));
    }

    /// This process moved the room on: the next read goes to the database.
    fn forget_state(&self, room_id: &str) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.remove(room_id);
    }

    pub fn all(&self) -> Arc<Vec<Arc<RoomRecord>>> {
        self.rooms.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<RoomRecord>> {
        self.all().iter().find(|r| r.id == id).cloned()
    }

    pub fn replace(&self, rooms: Vec<RoomRecord>) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.retain(|id, _| rooms.iter().any(|r| &r.id == id));
        drop(states);
        *self.rooms.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(rooms.into_iter().map(Arc::new).collect());
    }

    pub fn add(&self, room: RoomRecord) {
        let mut guard = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let mut rooms: Vec<Arc<RoomRecord>> = guard.iter().cloned().collect();
        rooms.retain(|r| r.id != room.id);
        rooms.push(Arc::new(room));
        *guard = Arc::new(rooms);
    }

    /// Rooms from their pre-queue's opening to their close.
    pub fn active(&self, now: i64) -> Vec<Arc<RoomRecord>> {
        self.all()
            .iter()
            .filter(|r| r.prequeue_opens_at <= now && now < r.closes_at)
            .cloned()
            .collect()
    }

    fn record_booking(&self, took: Duration) {
        let micros = (took.as_micros() as u64).clamp(1, 60_000_000);
        let _ = self
            .booking_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(micros);
    }

    /// Requests shed since the last call, and starts a new interval.
    fn take_shed(&self) -> u32 {
        let now = crate::http::metrics::shed_total();
        let seen = self
            .shed_seen
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        now.saturating_sub(seen).min(u64::from(u32::MAX)) as u32
    }

    /// The booking p99 since the last call (milliseconds), and starts a new interval.
    fn take_booking_p99(&self) -> Option<u32> {
        let mut h = self
            .booking_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if h.is_empty() {
            return None;
        }
        let p99 = h.value_at_quantile(0.99) / 1000;
        h.reset();
        Some(p99.min(u64::from(u32::MAX)) as u32)
    }
}

/// A room's state for polls and the public view, read from the database at most once per
/// [`TICK_MS`] per process: a poll must stay cheap (a million applicants poll), and the
/// frontier moves only at ticks, a tick apart, so a copy younger than a tick is at most one
/// tick behind. It can say "wait" a tick late, never "admitted" early, and a pre-queue not
/// yet frozen in the copy only shows the pre-queue's estimate a moment longer. Joins, ticks
/// and the order endpoint read the database.
pub async fn fresh_state(state: &AppState, room_id: &str) -> Result<Option<RoomState>, StoreError> {
    let now_ms = state.engine.clock().now().timestamp_millis();
    if let Some(kept) = state.rooms.kept_state(room_id, now_ms) {
        return Ok(Some(kept));
    }
    let read = state.store.room_state(room_id).await?;
    if let Some(read) = read {
        state.rooms.keep_state(room_id, read, now_ms);
    }
    Ok(read)
}

/// Reloads the rooms (after an admin change on any node).
pub async fn reload(state: &AppState) -> Result<(), StoreError> {
    let now = state.engine.clock().now().timestamp();
    state.rooms.replace(state.store.rooms(now - 86_400).await?);
    Ok(())
}

/// Rooms whose scope covers a booking of `service` at an office of `province`, active now.
pub fn covering(state: &AppState, service: &str, province: &str, now: i64) -> Vec<Arc<RoomRecord>> {
    state
        .rooms
        .active(now)
        .into_iter()
        .filter(|r| {
            r.service == service
                && (r.provinces.is_empty() || r.provinces.iter().any(|p| p == province))
        })
        .collect()
}

/// One pass of the ticker over the open rooms: each moves on at most once per [`TICK_MS`];
/// another process may have done it (then this one does nothing). Tests call it with a
/// manual clock.
pub async fn tick_once(state: &AppState) {
    let now = state.engine.clock().now();
    let now_ms = now.timestamp_millis();
    let load = Load {
        booking_p99_ms: state.rooms.take_booking_p99(),
        shed_requests: state.rooms.take_shed(),
    };
    for room in state.rooms.all().iter() {
        if Phase::of(room, now.timestamp()) != Phase::Open {
            continue;
        }
        if let Err(e) = tick_room(state, room, now_ms, load).await {
            tracing::warn!(error = %ErrorChain(&e), room = %room.id, "ticking a waiting room failed; will retry");
        }
    }
}

/// What the process saw of its own load since the last tick, for the controller.
#[derive(Debug, Clone, Copy)]
struct Load {
    booking_p99_ms: Option<u32>,
    shed_requests: u32,
}

async fn tick_room(
    state: &AppState,
    room: &RoomRecord,
    now_ms: i64,
    load: Load,
) -> Result<(), StoreError> {
    let store: &Store = &state.store;
    let Some(old) = store.room_state(&room.id).await? else {
        return Ok(());
    };
    if now_ms - old.last_tick_ms < TICK_MS {
        return Ok(());
    }
    // Passes given within their lifetime and not returned.
    let active_passes = store
        .passes_in_use(
            &room.id,
            admitted(&old),
            now_ms - room.pass_minutes * 60_000,
        )
        .await?;
    let observed = Observed {
        elapsed_ms: (now_ms - old.last_tick_ms).max(0) as u64,
        booking_p99_ms: load.booking_p99_ms,
        shed_requests: load.shed_requests,
        writer_queue: state.engine.queued().min(u32::MAX as usize) as u32,
        writer_queue_max: state.engine.config().queue_bound.min(u32::MAX as usize) as u32,
        active_passes: active_passes.clamp(0, i64::from(u32::MAX)) as u32,
    };
    let mut a = admission(&old);
    // Tickets numbered before the pre-queue froze (this tick freezes it if no join has).
    let queued = old.next_seq.max(0) as u64;
    let from = a.passed();
    a.tick(&room.admission, &observed, queued);
    pass_over_gone(
        store,
        room,
        old.prequeue.unwrap_or(old.next_seq),
        &mut a,
        from,
        queued,
        now_ms / 1000,
    )
    .await?;
    let new = RoomState {
        frontier: a.frontier.min(i64::MAX as u64) as i64,
        rate_per_minute: i64::from(a.rate_per_minute),
        skipped: a.skipped.min(i64::MAX as u64) as i64,
        pace_per_minute: i64::from(a.pace_per_minute),
        ..old
    };
    if store.tick_room(&room.id, &old, &new, now_ms).await? {
        state.rooms.forget_state(&room.id);
        metrics::counter!("nobat_room_admitted_total", "room" => room.id.clone())
            .increment((admitted(&new) - admitted(&old)).max(0) as u64);
        metrics::counter!("nobat_room_skipped_total", "room" => room.id.clone())
            .increment((new.skipped - old.skipped).max(0) as u64);
        metrics::gauge!("nobat_room_queue_length", "room" => room.id.clone())
            .set((old.next_seq - passed(&new)).max(0) as f64);
        metrics::gauge!("nobat_room_active_passes", "room" => room.id.clone())
            .set(active_passes as f64);
        metrics::gauge!("nobat_room_rate_per_minute", "room" => room.id.clone())
            .set(f64::from(a.rate_per_minute));
    }
    Ok(())
}

/// Moves the frontier over the ranks it has just passed (`from..`) whose tickets are gone
/// (expired unpolled as of `now`, or queued again under a new number), and over those of the
/// ranks that move brings in, until none is gone: so the rate admits live applicants. The
/// ranks' tickets are found by inverting the opening's permutation (`prequeue` tickets
/// shuffled; later ones in join order), a read of that many primary keys; expiry is final, so
/// what this finds stays true, and nothing is written per ticket.
async fn pass_over_gone(
    store: &Store,
    room: &RoomRecord,
    prequeue: i64,
    a: &mut Admission,
    from: u64,
    queued: u64,
    now: i64,
) -> Result<(), StoreError> {
    let order = QueueOrder::new(&room.seed, prequeue.max(0) as u64);
    let seen_since = now - room.ticket_idle_minutes * 60;
    let mut range = from..a.passed();
    let mut looked = 0u64;
    while !range.is_empty() && looked < PASS_OVER_RANKS_MAX {
        let end = range.end.min(range.start + (PASS_OVER_RANKS_MAX - looked));
        let seqs: Vec<i64> = (range.start..end)
            .map(|rank| order.ticket_at(rank).min(i64::MAX as u64) as i64)
            .collect();
        looked += seqs.len() as u64;
        let standing = store.standing_tickets(&room.id, &seqs, seen_since).await?;
        let gone = (seqs.len() as u64).saturating_sub(standing);
        if gone == 0 {
            break;
        }
        range = a.pass_over(gone, queued);
    }
    Ok(())
}

/// Ticks every `every` until the process stops.
pub fn spawn_ticker(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            tick_once(&state).await;
        }
    })
}

/// The booking writes a room can stand in front of.
fn pass_checked(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path == "/v1/holds"
            || path == "/v1/appointments"
            || (path.starts_with("/v1/appointments/") && path.ends_with("/reschedule")))
}

/// What a pass was used for (`room_pass_uses.kind`), from a path `pass_checked` accepted.
fn use_kind(path: &str) -> &'static str {
    match path {
        "/v1/holds" => "hold",
        "/v1/appointments" => "appointment",
        _ => "reschedule",
    }
}

fn forbidden(code: ProblemCode, room: &RoomRecord, detail: &str) -> Response {
    Problem::new(
        StatusCode::FORBIDDEN,
        code,
        format!("waiting room {}: {detail}", room.id),
    )
    .with_extra(serde_json::json!({ "room_id": room.id }))
    .into_response()
}

/// The service and province a booking write is for, as far as they can be told before its
/// handler runs (`None`: an unreadable body, or an application, appointment or office that is
/// not the caller's or does not exist, which the handler refuses itself). A storage error is
/// an error, not a way around the check.
async fn scope_of(
    state: &AppState,
    path: &str,
    body: &[u8],
    caller: &NationalCode,
) -> Result<Option<(String, Vec<String>)>, StoreError> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(None);
    };
    let provinces = seat_provinces(state, &json);
    if provinces.is_empty() {
        return Ok(None);
    }
    let service = if let Some(rest) = path.strip_prefix("/v1/appointments/") {
        let code = rest
            .strip_suffix("/reschedule")
            .and_then(crate::reserve::ids::normalise_tracking_code);
        match code {
            Some(code) => state
                .store
                .appointment(&code)
                .await?
                .filter(|a| a.national_code == caller.as_string())
                .map(|a| a.service),
            None => None,
        }
    } else {
        match json.get("application_id").and_then(|a| a.as_str()) {
            Some(id) => state
                .store
                .application(id)
                .await?
                .filter(|a| a.national_code == caller.as_string())
                .map(|a| a.service),
            None => None,
        }
    };
    Ok(service.map(|service| (service, provinces)))
}

/// The provinces a booking write may take its seat in: its named office's, or for an
/// auto-pick (`pick`) those of every office its limits reach (the offices named, or those
/// within `max_km` of `near`), so that a pick is no way around a room covering any of them.
/// Limits the handler will refuse give what they name; the handler answers them.
fn seat_provinces(state: &AppState, json: &serde_json::Value) -> Vec<String> {
    let directory = state.directory();
    let mut provinces: Vec<String> = Vec::new();
    if let Some(office) = json.get("office_id").and_then(|o| o.as_str()) {
        provinces.extend(directory.get(office).map(|o| o.province.clone()));
    } else if let Some(pick) = json.get("pick") {
        if let Some(ids) = pick.get("office_ids").and_then(|v| v.as_array()) {
            provinces.extend(
                ids.iter()
                    .take(crate::http::v1::pick::MAX_OFFICE_IDS)
                    .filter_map(|id| id.as_str().and_then(|id| directory.get(id)))
                    .map(|o| o.province.clone()),
            );
        } else if let Some(near) = pick.get("near") {
            let coordinate = |name: &str| near.get(name).and_then(|v| v.as_f64());
            let point = coordinate("lat")
                .zip(coordinate("lon"))
                .and_then(|(lat, lon)| crate::domain::GeoPoint::new(lat, lon).ok());
            let max_km = pick
                .get("max_km")
                .and_then(|v| v.as_f64())
                .unwrap_or(crate::http::v1::pick::DEFAULT_MAX_KM);
            if let Some(point) = point {
                provinces.extend(
                    directory
                        .search(None, None, Some(point), None)
                        .into_iter()
                        .filter(|(_, km)| km.is_some_and(|km| km <= max_km))
                        .map(|(o, _)| o.province.clone()),
                );
            }
        }
    }
    provinces.sort_unstable();
    provinces.dedup();
    provinces
}

/// The pass check of the booking writes (see the module's description); also times booking
/// writes for the admission controller.
pub async fn require_pass(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !pass_checked(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let now = state.engine.clock().now().timestamp();
    let path = request.uri().path().to_string();
    let response = if state.rooms.active(now).is_empty() {
        next.run(request).await
    } else {
        match checked(&state, request, now).await {
            Ok((request, None)) => next.run(request).await,
            Ok((request, Some(pass))) => {
                // The use is recorded before the write is made (the audit's evidence that it
                // carried this pass), so no booking exists without it; when it cannot be
                // recorded the write is not made.
                let used = PassUse {
                    room_id: pass.room_id.clone(),
                    national_code: pass.national_code.clone(),
                    kind: use_kind(path.as_str()),
                    pass_expires_at: pass.expires_at,
                    used_at: now,
                };
                if let Err(e) = state.store.record_pass_use(&used).await {
                    return Problem::from(e).into_response();
                }
                let response = next.run(request).await;
                if response.status().is_success() {
                    // Booking done: its pass is returned, and the controller may admit another.
                    if let Err(e) = state
                        .store
                        .return_pass(&pass.room_id, &pass.national_code, now)
                        .await
                    {
                        tracing::warn!(error = %ErrorChain(&e), "returning a booking pass failed");
                    }
                }
                response
            }
            Err(refusal) => return refusal,
        }
    };
    state.rooms.record_booking(started.elapsed());
    response
}

/// The request back (its body re-attached) when it may go on, with the pass it carried when a
/// room required one; the refusal otherwise.
async fn checked(
    state: &AppState,
    request: Request,
    now: i64,
) -> Result<(Request, Option<Pass>), Response> {
    let caller = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.verify(t.trim(), now));
    // No valid session: the handler answers 401 (no booking can happen).
    let Some(caller) = caller else {
        return Ok((request, None));
    };
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::BodyTooLarge,
                format!("the body is larger than {BODY_BYTES_MAX} bytes"),
            )
            .into_response()
        })?;
    let rooms = match scope_of(state, parts.uri.path(), &bytes, &caller).await {
        Ok(Some((service, provinces))) => {
            let mut rooms: Vec<Arc<RoomRecord>> = provinces
                .iter()
                .flat_map(|province| covering(state, &service, province, now))
                .collect();
            rooms.sort_by(|a, b| a.id.cmp(&b.id));
            rooms.dedup_by(|a, b| a.id == b.id);
            rooms
        }
        Ok(None) => Vec::new(),
        Err(e) => return Err(Problem::from(e).into_response()),
    };
    let mut carried = None;
    if let Some(first) = rooms.first() {
        let Some(pass) = parts.headers.get(PASS_HEADER) else {
            return Err(forbidden(
                ProblemCode::PassRequired,
                first,
                "a waiting room is in front of these bookings: join it (POST /v1/queue) and send the pass it gives in the Booking-Pass header",
            ));
        };
        carried = pass
            .to_str()
            .ok()
            .and_then(|p| state.rooms.passes.open(p.trim()))
            .filter(|p| {
                p.national_code == caller.as_string()
                    && p.expires_at > now
                    && rooms.iter().any(|r| r.id == p.room_id)
            });
        if carried.is_none() {
            return Err(forbidden(
                ProblemCode::PassInvalid,
                first,
                "the Booking-Pass is not a valid, unexpired pass of this applicant for this waiting room",
            ));
        }
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), carried))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_open_only_with_their_key_and_resist_tampering() {
        let keys = PassKeys::new(Some(b"0123456789abcdef0123456789abcdef"));
        let pass = keys.issue("room_abc", "0499370899", 1_000);
        assert_eq!(
            keys.open(&pass),
            Some(Pass {
                room_id: "room_abc".into(),
                national_code: "0499370899".into(),
                expires_at: 1_000
            })
        );
        assert_eq!(
            PassKeys::new(Some(b"another secret of thirty-two by")).open(&pass),
            None
        );
        let raw = URL_SAFE_NO_PAD.decode(&pass[PASS_PREFIX.len()..]).unwrap();
        for at in [0, NONCE_BYTES, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[at] ^= 1;
            assert_eq!(
                keys.open(&format!("{PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(bad))),
                None
            );
        }
        assert!(!pass.contains("0499370899") && !pass.contains("room_abc"));
        assert_eq!(keys.open("garbage"), None);
    }

    #[test]
    fn only_booking_writes_are_checked() {
        assert!(pass_checked(&Method::POST, "/v1/holds"));
        assert!(pass_checked(&Method::POST, "/v1/appointments"));
        assert!(pass_checked(
            &Method::POST,
            "/v1/appointments/ABCD/reschedule"
        ));
        assert!(!pass_checked(&Method::POST, "/v1/appointments/ABCD/cancel"));
        assert!(!pass_checked(&Method::GET, "/v1/holds"));
        assert!(!pass_checked(&Method::POST, "/v1/queue"));
    }
}
