//! Virtual applicants: one journey per arrival, over the real HTTP API.
//!
//! Every request has an intended send time (the arrival, or the previous answer plus a think
//! time, or a retry delay); its latency is measured from that instant, so a generator that
//! falls behind, or a server that queues, cannot hide the wait (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::journal::{AckedAppointment, Journal, Knowledge};
use super::scenario::{BookingMode, LoadScenario};
use super::stats::{AttemptResult, Endpoint, Stats};
use crate::domain::geo::haversine_km;
use crate::domain::registry::CitizenRecord;
use crate::domain::GeoPoint;
use crate::http::v1::dto::{AppointmentDto, HoldResponse, OfficeDto, SlotDto};
use crate::planning::scenario::{derive_seed, CitizenGenerator};

/// The service every synthetic applicant applies for.
pub const SERVICE: &str = "first_issuance";
/// Slots considered when an applicant lists an office's slots.
const SLOT_CHOICES_MAX: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyKind {
    Book,
    Cancel,
    Reschedule,
    AbandonHold,
    ReleaseHold,
    DeclinedPayment,
    Browse,
    Bot,
}

impl JourneyKind {
    pub const ALL: [JourneyKind; 8] = [
        JourneyKind::Book,
        JourneyKind::Cancel,
        JourneyKind::Reschedule,
        JourneyKind::AbandonHold,
        JourneyKind::ReleaseHold,
        JourneyKind::DeclinedPayment,
        JourneyKind::Browse,
        JourneyKind::Bot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JourneyKind::Book => "book",
            JourneyKind::Cancel => "cancel",
            JourneyKind::Reschedule => "reschedule",
            JourneyKind::AbandonHold => "abandon_hold",
            JourneyKind::ReleaseHold => "release_hold",
            JourneyKind::DeclinedPayment => "declined_payment",
            JourneyKind::Browse => "browse",
            JourneyKind::Bot => "bot",
        }
    }

    fn weight(self, s: &LoadScenario) -> f64 {
        let m = &s.mix;
        match self {
            JourneyKind::Book => m.book,
            JourneyKind::Cancel => m.cancel,
            JourneyKind::Reschedule => m.reschedule,
            JourneyKind::AbandonHold => m.abandon_hold,
            JourneyKind::ReleaseHold => m.release_hold,
            JourneyKind::DeclinedPayment => m.declined_payment,
            JourneyKind::Browse => m.browse,
            JourneyKind::Bot => m.bot,
        }
    }

    /// Draws a journey by the scenario's mix.
    pub fn draw(s: &LoadScenario, rng: &mut impl Rng) -> JourneyKind {
        let total: f64 = Self::ALL.iter().map(|k| k.weight(s)).sum();
        let mut x = rng.gen::<f64>() * total;
        for k in Self::ALL {
            x -= k.weight(s);
            if x < 0.0 {
                return k;
            }
        }
        JourneyKind::Book
    }
}

/// What every journey shares.
pub struct Ctx {
    pub client: reqwest::Client,
    pub base_url: String,
    pub scenario: Arc<LoadScenario>,
    pub citizens: CitizenGenerator,
    /// Offices offering the service, with their locations (from the server's scenario), for
    /// applicants who already know their nearest offices.
    pub offices: Vec<(String, GeoPoint)>,
    pub stats: Arc<Mutex<Stats>>,
    pub journal: Arc<Mutex<Journal>>,
    /// The run's start; timeline seconds count from here.
    pub t0: Instant,
    /// No request is sent after this instant (arrivals end plus drain).
    pub stop_at: Instant,
    /// The waiting room in front of the booking writes, if the scenario has one.
    pub room_id: Option<String>,
    /// A ballot day's ballot: the journeys enter it instead of booking.
    pub ballot_id: Option<String>,
}

impl Ctx {
    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The final answer to one request (after retries).
enum Reply {
    Ok(Value),
    /// A definite refusal (4xx) with its problem code and body.
    Refused {
        code: String,
        body: Value,
    },
    /// No definite answer: retries exhausted on 5xx/timeouts/refused connections, or the run
    /// stopped. A write may or may not have happened.
    Unknown,
    /// Not sent: the run's sending window closed.
    Cut,
}

impl Reply {
    fn knowledge(&self) -> Knowledge {
        match self {
            Reply::Ok(_) => Knowledge::Yes,
            Reply::Refused { .. } | Reply::Cut => Knowledge::No,
            Reply::Unknown => Knowledge::Unknown,
        }
    }

    fn outcome(&self) -> String {
        match self {
            Reply::Ok(_) => "ok".into(),
            Reply::Refused { code, .. } => code.clone(),
            Reply::Unknown => "no_answer".into(),
            Reply::Cut => "run_ended".into(),
        }
    }
}

/// One virtual applicant.
struct User {
    id: u64,
    rng: ChaCha8Rng,
    token: Option<String>,
    impatient: bool,
    /// When the next request is meant to go out.
    due: Instant,
    arrived: Instant,
    requests: u64,
    /// The client address it sends (in the spawned server's client-address header).
    address: String,
    /// Its booking pass, once the waiting room admitted it (sent as `Booking-Pass`).
    pass: Option<String>,
    /// Admitted by the room: its requests from then on are the admitted applicants' latency.
    admitted: bool,
}

/// A client address of its own per applicant (10.0.0.0/8 from the number), so a per-address
/// limit sees a crowd; bots share their identity's.
fn address_of(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

impl User {
    /// The `n`-th shot of a bot with this identity: its token and address, its own seed and
    /// idempotency keys (bots do not reuse them), never backing off, due `n` intervals after
    /// `first`.
    fn bot_shot(&self, n: u32, first: Instant, interval_ms: u64) -> User {
        User {
            id: self.id,
            rng: ChaCha8Rng::seed_from_u64(u64::from(n)),
            token: self.token.clone(),
            impatient: true,
            due: first + Duration::from_millis(interval_ms * u64::from(n)),
            arrived: self.arrived,
            requests: 1_000_000 + u64::from(n) * 1_000,
            address: self.address.clone(),
            pass: None,
            admitted: false,
        }
    }

    fn think(&mut self, ctx: &Ctx) {
        let b = &ctx.scenario.behaviour;
        let ms = self.rng.gen_range(b.think_ms_min..=b.think_ms_max);
        self.due = Instant::now().max(self.due) + Duration::from_millis(ms);
    }
}

/// Sends one request with the retry model. POSTs carry an `Idempotency-Key` that stays the
/// same across retries.
async fn call(
    ctx: &Ctx,
    user: &mut User,
    endpoint: Endpoint,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    user.requests += 1;
    let key = (method == Method::POST).then(|| format!("lt-{}-{}", user.id, user.requests));
    let retry = &ctx.scenario.retry;
    let timeout = Duration::from_millis(ctx.scenario.limits.request_timeout_ms);
    for attempt in 0..retry.attempts_max {
        let now = Instant::now();
        if user.due > now {
            tokio::time::sleep_until(user.due).await;
        }
        if Instant::now() >= ctx.stop_at {
            // A retry that is never sent leaves the outcome of the earlier attempts open.
            return if attempt == 0 {
                Reply::Cut
            } else {
                Reply::Unknown
            };
        }
        let intended = user.due;
        let mut req = ctx
            .client
            .request(method.clone(), format!("{}{}", ctx.base_url, path))
            .timeout(timeout);
        if let Some(t) = &user.token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = &key {
            req = req.header("Idempotency-Key", k);
        }
        req = req.header(super::server::CLIENT_IP_HEADER, &user.address);
        if let Some(pass) = &user.pass {
            req = req.header(crate::http::room::PASS_HEADER, pass);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let sent = req.send().await;
        let (result, parsed, retry_after) = match sent {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match resp.bytes().await {
                    Ok(bytes) => {
                        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let code = (!status.is_success())
                            .then(|| value["code"].as_str().unwrap_or("none").to_string());
                        (
                            AttemptResult::Status {
                                status: status.as_u16(),
                                code,
                            },
                            Some((status, value)),
                            retry_after,
                        )
                    }
                    Err(e) if e.is_timeout() => (AttemptResult::Timeout, None, None),
                    Err(_) => (AttemptResult::Other, None, None),
                }
            }
            Err(e) if e.is_timeout() => (AttemptResult::Timeout, None, None),
            Err(e) if e.is_connect() => (AttemptResult::Connect, None, None),
            Err(_) => (AttemptResult::Other, None, None),
        };
        let done = Instant::now();
        let latency_us = done.saturating_duration_since(intended).as_micros() as u64;
        {
            let mut stats = ctx.stats();
            stats.attempt(endpoint, ctx.secs(done), latency_us, &result, attempt > 0);
            if user.admitted && !matches!(endpoint, Endpoint::Join | Endpoint::Poll) {
                stats.admitted_request(latency_us);
            }
        }
        user.due = done;
        match parsed {
            Some((status, value)) if status.is_success() => return Reply::Ok(value),
            Some((status, value)) if status.is_client_error() => {
                return Reply::Refused {
                    code: value["code"].as_str().unwrap_or("none").to_string(),
                    body: value,
                }
            }
            _ => {}
        }
        // 5xx, timeout or no connection: wait, then retry with the same key.
        let delay_ms = if user.impatient {
            retry.impatient_retry_ms
        } else if let Some(secs) = retry_after {
            (secs * 1000).min(retry.backoff_ms_max)
        } else {
            (retry.backoff_ms << attempt.min(16)).min(retry.backoff_ms_max)
        };
        user.due = done + Duration::from_millis(delay_ms);
    }
    Reply::Unknown
}

fn form(c: &CitizenRecord) -> Value {
    json!({
        "personal": {
            "national_code": c.national_code.to_string(),
            "birth_certificate_serial": c.birth_certificate_serial.to_string(),
            "first_name": c.first_name,
            "last_name": c.last_name,
            "gender": match c.gender { crate::domain::applicant::Gender::Female => "female", crate::domain::applicant::Gender::Male => "male" },
            "birth_date": c.birth_date.to_string(),
            "nationality": c.nationality,
            "birth_certificate_has_photo": c.birth_certificate_has_photo,
        },
        "father": { "first_name": "علی", "last_name": c.last_name },
        "mother": { "first_name": "زهرا", "last_name": "احمدی" },
        "mobile": c.mobile.to_string(),
        "postal_code": c.postal_code.to_string(),
        "address": format!("{}، خیابان اصلی، پلاک ۱۲", c.city),
    })
}

/// Logged in, applied and paid: what a booking needs.
struct Ready {
    citizen: CitizenRecord,
    application_id: String,
    payment_id: String,
}

fn parse_start(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp())
}

/// Log in; `Err(outcome)` ends the journey.
async fn login(ctx: &Ctx, user: &mut User, c: &CitizenRecord) -> Result<(), String> {
    let body = json!({
        "national_code": c.national_code.to_string(),
        "birth_certificate_serial": c.birth_certificate_serial.to_string(),
    });
    match call(
        ctx,
        user,
        Endpoint::Session,
        Method::POST,
        "/v1/sessions",
        Some(&body),
    )
    .await
    {
        Reply::Ok(v) => {
            user.token = v["token"].as_str().map(str::to_string);
            user.think(ctx);
            Ok(())
        }
        other => Err(format!("login: {}", other.outcome())),
    }
}

async fn apply_and_pay(
    ctx: &Ctx,
    user: &mut User,
    citizen: CitizenRecord,
    decline: bool,
) -> Result<Ready, String> {
    if user.token.is_none() {
        login(ctx, user, &citizen).await?;
    }
    let body = json!({ "service": SERVICE, "form": form(&citizen) });
    let application_id = match call(
        ctx,
        user,
        Endpoint::Application,
        Method::POST,
        "/v1/applications",
        Some(&body),
    )
    .await
    {
        Reply::Ok(v) => v["application_id"].as_str().unwrap_or_default().to_string(),
        other => return Err(format!("application: {}", other.outcome())),
    };
    user.think(ctx);
    let mut body = json!({ "application_id": application_id });
    if decline {
        body["sandbox_outcome"] = json!("decline");
    }
    let payment_id = match call(
        ctx,
        user,
        Endpoint::Payment,
        Method::POST,
        "/v1/payments",
        Some(&body),
    )
    .await
    {
        Reply::Ok(v) => v["payment_id"].as_str().unwrap_or_default().to_string(),
        other => return Err(format!("payment: {}", other.outcome())),
    };
    user.think(ctx);
    Ok(Ready {
        citizen,
        application_id,
        payment_id,
    })
}

/// Finds a free slot near home, as a person would: nearest offices, then either an earliest
/// free slot or one picked from the office's slot list. `avoid` skips one (office, start).
async fn find_slot(
    ctx: &Ctx,
    user: &mut User,
    c: &CitizenRecord,
    avoid: Option<&(String, i64)>,
) -> Result<(String, String), String> {
    let is_avoided = |office: &str, start: &str| {
        avoid.is_some_and(|(o, s)| o == office && parse_start(start) == Some(*s))
    };
    if !ctx.offices.is_empty()
        && !user
            .rng
            .gen_bool(ctx.scenario.behaviour.office_search_share)
    {
        let mut nearest: Vec<(f64, &String)> = ctx
            .offices
            .iter()
            .map(|(id, p)| {
                (
                    haversine_km(c.location.lat, c.location.lon, p.lat, p.lon),
                    id,
                )
            })
            .collect();
        let k = 3.min(nearest.len());
        nearest.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        let office_id = nearest[user.rng.gen_range(0..k)].1.clone();
        let path = format!("/v1/offices/{office_id}/slots?service={SERVICE}");
        if let Reply::Ok(v) = call(ctx, user, Endpoint::Slots, Method::GET, &path, None).await {
            user.think(ctx);
            if let Some(start) = pick_listed_slot(user, &v, &office_id, &is_avoided) {
                return Ok((office_id, start));
            }
        }
    }
    let path = format!(
        "/v1/offices?near={:.4},{:.4}&service={SERVICE}&limit={}",
        c.location.lat, c.location.lon, ctx.scenario.behaviour.offices_limit
    );
    let offices: Vec<OfficeDto> = match call(ctx, user, Endpoint::Offices, Method::GET, &path, None)
        .await
    {
        Reply::Ok(v) => serde_json::from_value(v).map_err(|_| "offices: bad body".to_string())?,
        other => return Err(format!("offices: {}", other.outcome())),
    };
    user.think(ctx);
    let with_free: Vec<&OfficeDto> = offices
        .iter()
        .filter(|o| {
            o.earliest_free
                .iter()
                .any(|s| s.free > 0 && !is_avoided(&o.office_id, &s.start))
        })
        .collect();
    if with_free.is_empty() {
        return Err("offices: none free".into());
    }
    let office = with_free[user.rng.gen_range(0..with_free.len().min(3))];
    if user.rng.gen_bool(ctx.scenario.behaviour.list_slots_share) {
        let path = format!("/v1/offices/{}/slots?service={SERVICE}", office.office_id);
        if let Reply::Ok(v) = call(ctx, user, Endpoint::Slots, Method::GET, &path, None).await {
            user.think(ctx);
            if let Some(start) = pick_listed_slot(user, &v, &office.office_id, &is_avoided) {
                return Ok((office.office_id.clone(), start));
            }
        }
    }
    let free: Vec<&SlotDto> = office
        .earliest_free
        .iter()
        .filter(|s| s.free > 0 && !is_avoided(&office.office_id, &s.start))
        .collect();
    let s = free[user.rng.gen_range(0..free.len())];
    Ok((office.office_id.clone(), s.start.clone()))
}

/// A random free slot among the first few of a slot listing that start over a minute from now.
fn pick_listed_slot(
    user: &mut User,
    listing: &Value,
    office_id: &str,
    is_avoided: &dyn Fn(&str, &str) -> bool,
) -> Option<String> {
    let slots: Vec<SlotDto> = serde_json::from_value(listing.clone()).unwrap_or_default();
    // The listing includes today's slots that have already started (still "free"); a person
    // skips those, so must we.
    let soon = chrono::Utc::now().timestamp() + 60;
    let free: Vec<&SlotDto> = slots
        .iter()
        .filter(|s| parse_start(&s.start).is_some_and(|t| t > soon))
        .filter(|s| s.free > 0 && !is_avoided(office_id, &s.start))
        .take(SLOT_CHOICES_MAX)
        .collect();
    if free.is_empty() {
        return None;
    }
    Some(free[user.rng.gen_range(0..free.len())].start.clone())
}

/// The first alternative a `slot_full` answer offers.
fn alternative(body: &Value) -> Option<(String, String)> {
    let alts = &body["extra"]["alternatives"];
    if let Some(s) = alts["same_office"][0]["start"].as_str() {
        // Same office: the office id is not repeated in the alternative.
        return Some((String::new(), s.to_string()));
    }
    let n = &alts["nearby"][0];
    Some((
        n["office_id"].as_str()?.to_string(),
        n["slot"]["start"].as_str()?.to_string(),
    ))
}

/// Holds a seat, taking offered alternatives after `slot_full`. Returns the hold id.
async fn hold(
    ctx: &Ctx,
    user: &mut User,
    ready: &Ready,
    mut office_id: String,
    mut start: String,
) -> Result<String, String> {
    for _ in 0..ctx.scenario.behaviour.hold_attempts_max {
        let body = json!({ "application_id": ready.application_id, "office_id": office_id, "start": start });
        let reply = call(
            ctx,
            user,
            Endpoint::Hold,
            Method::POST,
            "/v1/holds",
            Some(&body),
        )
        .await;
        ctx.journal().holds.add(reply.knowledge());
        match reply {
            Reply::Ok(v) => return held(ctx, user, v),
            Reply::Refused { code, body, .. } if code == "slot_full" => {
                user.think(ctx);
                match alternative(&body) {
                    Some((o, s)) => {
                        if !o.is_empty() {
                            office_id = o;
                        }
                        start = s;
                    }
                    None => return Err("hold: slot_full, no alternative".into()),
                }
            }
            // An earlier attempt whose answer was lost left a hold: carry on with it.
            Reply::Refused { code, body, .. } if code == "already_holding" => {
                if let Some(id) = body["extra"]["hold_id"].as_str() {
                    return Ok(id.to_string());
                }
                return Err("hold: already_holding".into());
            }
            other => return Err(format!("hold: {}", other.outcome())),
        }
    }
    Err("hold: slot_full after alternatives".into())
}

/// Holds a seat as the scenario's booking mode says: a slot found and held (with the
/// alternatives after `slot_full`), or the engine's pick near home. Returns the hold id.
async fn hold_a_seat(ctx: &Ctx, user: &mut User, ready: &Ready) -> Result<String, String> {
    match ctx.scenario.booking.mode {
        BookingMode::Slot => {
            let (o, s) = find_slot(ctx, user, &ready.citizen, None).await?;
            hold(ctx, user, ready, o, s).await
        }
        BookingMode::Pick => pick_hold(ctx, user, ready).await,
    }
}

/// `POST /v1/holds` with `pick` near home within `pick_max_km`; after
/// `no_seat_within_limits`, once more with the wider `max_km` the answer offers (a person
/// accepting a longer trip), up to `hold_attempts_max` attempts.
async fn pick_hold(ctx: &Ctx, user: &mut User, ready: &Ready) -> Result<String, String> {
    let home = ready.citizen.location;
    let mut max_km = ctx.scenario.booking.pick_max_km;
    for _ in 0..ctx.scenario.behaviour.hold_attempts_max {
        let body = json!({
            "application_id": ready.application_id,
            "pick": { "near": { "lat": home.lat, "lon": home.lon }, "max_km": max_km },
        });
        let reply = call(
            ctx,
            user,
            Endpoint::Hold,
            Method::POST,
            "/v1/holds",
            Some(&body),
        )
        .await;
        ctx.journal().holds.add(reply.knowledge());
        match reply {
            Reply::Ok(v) => return held(ctx, user, v),
            Reply::Refused { code, body, .. } if code == "no_seat_within_limits" => {
                let wider = body["extra"]["relaxations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|r| r["max_km"].as_f64());
                match wider {
                    Some(km) if km > max_km => {
                        max_km = km;
                        user.think(ctx);
                    }
                    _ => return Err("hold: no_seat_within_limits".into()),
                }
            }
            Reply::Refused { code, body, .. } if code == "already_holding" => {
                if let Some(id) = body["extra"]["hold_id"].as_str() {
                    return Ok(id.to_string());
                }
                return Err("hold: already_holding".into());
            }
            other => return Err(format!("hold: {}", other.outcome())),
        }
    }
    Err("hold: no_seat_within_limits after relaxations".into())
}

/// A granted hold: its id, and its expiry in the journal.
fn held(ctx: &Ctx, user: &mut User, v: Value) -> Result<String, String> {
    ctx.stats().holds_granted += 1;
    user.think(ctx);
    let h: HoldResponse = serde_json::from_value(v).map_err(|_| "hold: bad body".to_string())?;
    if let Some(exp) = parse_start(&h.expires_at) {
        let mut j = ctx.journal();
        j.latest_hold_expiry_unix = j.latest_hold_expiry_unix.max(Some(exp));
    }
    Ok(h.hold_id)
}

async fn confirm(
    ctx: &Ctx,
    user: &mut User,
    ready: &Ready,
    hold_id: &str,
) -> Result<AckedAppointment, String> {
    let body = json!({ "payment_id": ready.payment_id });
    let path = format!("/v1/holds/{hold_id}/confirm");
    let reply = call(
        ctx,
        user,
        Endpoint::Confirm,
        Method::POST,
        &path,
        Some(&body),
    )
    .await;
    ctx.journal().confirms.add(reply.knowledge());
    match reply {
        Reply::Ok(v) => {
            let a: AppointmentDto =
                serde_json::from_value(v).map_err(|_| "confirm: bad body".to_string())?;
            let acked = AckedAppointment {
                tracking_code: a.tracking_code.clone(),
                national_code: ready.citizen.national_code.to_string(),
                office_id: a.office.office_id.clone(),
                start_unix: parse_start(&a.start).unwrap_or_default(),
                cancelled: Knowledge::No,
                rescheduled_to: None,
                reschedule_unknown: false,
            };
            ctx.journal().booked(acked.clone());
            let done = Instant::now();
            ctx.stats().booked(
                ctx.secs(done),
                done.saturating_duration_since(user.arrived).as_micros() as u64,
            );
            user.think(ctx);
            Ok(acked)
        }
        other => Err(format!("confirm: {}", other.outcome())),
    }
}

/// Runs one applicant's journey to its end and records how it ended.
pub async fn journey(ctx: Arc<Ctx>, seq: u64, arrived: Instant) {
    let s = &ctx.scenario;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(s.seed, "loadtest-journey", seq));
    let kind = JourneyKind::draw(s, &mut rng);
    let impatient = rng.gen_bool(s.retry.impatient_share);
    let mut user = User {
        id: seq,
        rng,
        token: None,
        impatient,
        due: arrived,
        arrived,
        requests: 0,
        address: address_of(seq),
        pass: None,
        admitted: false,
    };
    let outcome = match run_journey(&ctx, &mut user, kind).await {
        Ok(o) => o.to_string(),
        Err(o) => o,
    };
    ctx.stats().journey_ended(kind.as_str(), &outcome);
}

fn citizen_for(ctx: &Ctx, user: &User, kind: JourneyKind) -> Option<CitizenRecord> {
    let count = ctx.citizens.count();
    if count == 0 {
        return None;
    }
    let b = &ctx.scenario.behaviour;
    let bots = b.bot_identities.min(count);
    // Bots take identities from the end of the registry, applicants from the offset on; past
    // the registry's end they wrap (and meet `already_booked`).
    let i = if kind == JourneyKind::Bot {
        count - 1 - (user.id % bots)
    } else {
        (ctx.scenario.citizen_offset + user.id) % (count - bots).max(1)
    };
    ctx.citizens.citizen(i)
}

async fn run_journey(
    ctx: &Arc<Ctx>,
    user: &mut User,
    kind: JourneyKind,
) -> Result<&'static str, String> {
    let citizen = citizen_for(ctx, user, kind).ok_or("no citizen")?;
    if kind != JourneyKind::Bot {
        ctx.stats().applicant_identities += 1;
    }
    let takes_a_seat = !matches!(kind, JourneyKind::Browse | JourneyKind::Bot);
    if takes_a_seat {
        ctx.stats().seat_seekers += 1;
    }
    if takes_a_seat && ctx.room_id.is_some() {
        wait_in_room(ctx, user, &citizen).await?;
    }
    if let Some(ballot_id) = &ctx.ballot_id {
        return ballot_journey(ctx, user, kind, citizen, ballot_id).await;
    }
    match kind {
        JourneyKind::Browse => {
            login(ctx, user, &citizen).await?;
            find_slot(ctx, user, &citizen, None).await?;
            Ok("browsed")
        }
        JourneyKind::Bot => bot(ctx, user, citizen).await,
        JourneyKind::DeclinedPayment => {
            let ready = apply_and_pay(ctx, user, citizen, true).await?;
            let hold_id = hold_a_seat(ctx, user, &ready).await?;
            match confirm(ctx, user, &ready, &hold_id).await {
                Ok(_) => Err("confirm: booked with a declined payment".into()),
                Err(e) => Err(e),
            }
        }
        JourneyKind::AbandonHold | JourneyKind::ReleaseHold => {
            let ready = apply_and_pay(ctx, user, citizen, false).await?;
            let hold_id = hold_a_seat(ctx, user, &ready).await?;
            if kind == JourneyKind::AbandonHold {
                return Ok("abandoned");
            }
            let path = format!("/v1/holds/{hold_id}");
            let reply = call(ctx, user, Endpoint::Release, Method::DELETE, &path, None).await;
            ctx.journal().releases.add(reply.knowledge());
            match reply {
                Reply::Ok(_) => Ok("released"),
                other => Err(format!("release: {}", other.outcome())),
            }
        }
        JourneyKind::Book | JourneyKind::Cancel | JourneyKind::Reschedule => {
            let ready = apply_and_pay(ctx, user, citizen, false).await?;
            let hold_id = hold_a_seat(ctx, user, &ready).await?;
            let booked = confirm(ctx, user, &ready, &hold_id).await?;
            if user.rng.gen_bool(ctx.scenario.behaviour.status_check_share) {
                let path = format!(
                    "/v1/status?national_code={}&tracking_code={}",
                    booked.national_code, booked.tracking_code
                );
                if let Reply::Refused { code, .. } =
                    call(ctx, user, Endpoint::Status, Method::GET, &path, None).await
                {
                    return Err(format!("status: {code}"));
                }
                user.think(ctx);
            }
            match kind {
                JourneyKind::Cancel => {
                    let path = format!("/v1/appointments/{}/cancel", booked.tracking_code);
                    let reply = call(ctx, user, Endpoint::Cancel, Method::POST, &path, None).await;
                    ctx.journal()
                        .cancelled(&booked.tracking_code, reply.knowledge());
                    match reply {
                        Reply::Ok(_) => Ok("cancelled"),
                        other => Err(format!("cancel: {}", other.outcome())),
                    }
                }
                JourneyKind::Reschedule => {
                    let here = (booked.office_id.clone(), booked.start_unix);
                    let (o, s) = find_slot(ctx, user, &ready.citizen, Some(&here)).await?;
                    let path = format!("/v1/appointments/{}/reschedule", booked.tracking_code);
                    let body = json!({ "office_id": o, "start": s });
                    let reply = call(
                        ctx,
                        user,
                        Endpoint::Reschedule,
                        Method::POST,
                        &path,
                        Some(&body),
                    )
                    .await;
                    let to = match &reply {
                        Reply::Ok(v) => {
                            let a: Option<AppointmentDto> = serde_json::from_value(v.clone()).ok();
                            a.map(|a| {
                                (
                                    a.office.office_id,
                                    parse_start(&a.start).unwrap_or_default(),
                                )
                            })
                        }
                        _ => None,
                    };
                    ctx.journal()
                        .rescheduled(&booked.tracking_code, reply.knowledge(), to);
                    match reply {
                        Reply::Ok(_) => Ok("rescheduled"),
                        other => Err(format!("reschedule: {}", other.outcome())),
                    }
                }
                _ => Ok("booked"),
            }
        }
    }
}

/// A bot: one identity that fires holds at one slot without waiting for answers, hoarding a
/// seat it never pays for. The server must give it at most one live hold. In front of a
/// waiting room it joins too (its identity has one ticket, shared by every bot using it) and
/// polls its ticket with every shot, ignoring `poll_after_seconds`; once a poll gives the
/// pass, its later shots carry it.
async fn bot(
    ctx: &Arc<Ctx>,
    user: &mut User,
    citizen: CitizenRecord,
) -> Result<&'static str, String> {
    let identity = citizen.national_code.to_string();
    user.address = address_of(u64::from(crc_of(&identity)) | 0x80_0000);
    ctx.stats().bot_identities.insert(crc_of(&identity).into());
    let ready = apply_and_pay(ctx, user, citizen, false).await?;
    let (office_id, start) = find_slot(ctx, user, &ready.citizen, None).await?;
    let ticket = match &ctx.room_id {
        Some(room_id) => {
            let body = json!({ "room_id": room_id });
            match call(
                ctx,
                user,
                Endpoint::Join,
                Method::POST,
                "/v1/queue",
                Some(&body),
            )
            .await
            {
                Reply::Ok(v) => v["ticket"].as_str().map(str::to_string),
                _ => None,
            }
        }
        None => None,
    };
    let pass: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let b = &ctx.scenario.behaviour;
    let body =
        json!({ "application_id": ready.application_id, "office_id": office_id, "start": start });
    let mut shots = tokio::task::JoinSet::new();
    let first = Instant::now().max(user.due);
    for n in 0..b.bot_requests {
        let mut shooter = user.bot_shot(n, first, b.bot_interval_ms);
        let body = body.clone();
        let ctx = ctx.clone();
        let ticket = ticket.clone();
        let pass = pass.clone();
        shots.spawn(async move {
            if let Some(ticket) = &ticket {
                shooter.pass = pass.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if shooter.pass.is_none() {
                    let path = format!("/v1/queue/{ticket}");
                    if let Reply::Ok(v) =
                        call(&ctx, &mut shooter, Endpoint::Poll, Method::GET, &path, None).await
                    {
                        if let Some(p) = v["pass"].as_str() {
                            shooter.pass = Some(p.to_string());
                            *pass.lock().unwrap_or_else(|p| p.into_inner()) = shooter.pass.clone();
                        }
                    }
                }
            }
            let reply = call(
                &ctx,
                &mut shooter,
                Endpoint::Hold,
                Method::POST,
                "/v1/holds",
                Some(&body),
            )
            .await;
            if matches!(reply, Reply::Ok(_)) {
                let mut stats = ctx.stats();
                stats.holds_granted += 1;
                stats.bot_holds_granted += 1;
            }
            ctx.journal().holds.add(reply.knowledge());
        });
    }
    while shots.join_next().await.is_some() {}
    Ok("hammered")
}

/// A ballot day's journey (see `scenario::BallotOptions`).
async fn ballot_journey(
    ctx: &Arc<Ctx>,
    user: &mut User,
    kind: JourneyKind,
    citizen: CitizenRecord,
    ballot_id: &str,
) -> Result<&'static str, String> {
    let path = format!("/v1/ballots/{ballot_id}/entry");
    match kind {
        JourneyKind::Browse => {
            let path = format!("/v1/ballots/{ballot_id}");
            match call(ctx, user, Endpoint::Ballot, Method::GET, &path, None).await {
                Reply::Ok(_) => Ok("browsed"),
                other => Err(format!("ballot: {}", other.outcome())),
            }
        }
        JourneyKind::Bot => bot_entries(ctx, user, citizen, &path).await,
        JourneyKind::DeclinedPayment => {
            let ready = apply_and_pay(ctx, user, citizen, true).await?;
            match enter(ctx, user, &ready, &path, false).await {
                Ok(()) => Err("entry: entered with a declined payment".into()),
                Err(e) => Err(e),
            }
        }
        _ => {
            let ready = apply_and_pay(ctx, user, citizen, false).await?;
            enter(ctx, user, &ready, &path, false).await?;
            user.think(ctx);
            match kind {
                JourneyKind::Reschedule => {
                    enter(ctx, user, &ready, &path, true).await?;
                    Ok("entry_changed")
                }
                JourneyKind::Cancel => {
                    let code = ready.citizen.national_code.to_string();
                    let reply =
                        call(ctx, user, Endpoint::Withdraw, Method::DELETE, &path, None).await;
                    ctx.journal().withdrew(&code, reply.knowledge());
                    match reply {
                        Reply::Ok(_) => Ok("withdrawn"),
                        other => Err(format!("withdraw: {}", other.outcome())),
                    }
                }
                _ => Ok("entered"),
            }
        }
    }
}

/// The body of an entry: near home within the ballot's `max_km`, or (`changed`) the same
/// with mornings only.
fn entry_body(ctx: &Ctx, ready: &Ready, changed: bool) -> Value {
    let max_km = ctx.scenario.ballot.as_ref().map_or(50.0, |b| b.max_km);
    let p = ready.citizen.location;
    json!({
        "application_id": ready.application_id,
        "payment_id": ready.payment_id,
        "preferences": {
            "near": { "lat": p.lat, "lon": p.lon },
            "max_km": max_km,
            "part_of_day": if changed { "morning" } else { "any" },
        },
    })
}

/// Enters the ballot (or changes the entry) and journals the answer.
async fn enter(
    ctx: &Ctx,
    user: &mut User,
    ready: &Ready,
    path: &str,
    changed: bool,
) -> Result<(), String> {
    let body = entry_body(ctx, ready, changed);
    let reply = call(ctx, user, Endpoint::Entry, Method::PUT, path, Some(&body)).await;
    let key = match &reply {
        Reply::Ok(v) => v["entry_key"].as_str().map(str::to_string),
        _ => None,
    };
    let code = ready.citizen.national_code.to_string();
    ctx.journal().entered(&code, reply.knowledge(), key, false);
    match reply {
        Reply::Ok(_) => Ok(()),
        other => Err(format!("entry: {}", other.outcome())),
    }
}

/// A bot on a ballot day: one identity that fires entries without waiting for answers. The
/// server keeps one entry per citizen and ballot, so however many shots it fires it holds one
/// entry, and the close gives it at most one seat.
async fn bot_entries(
    ctx: &Arc<Ctx>,
    user: &mut User,
    citizen: CitizenRecord,
    path: &str,
) -> Result<&'static str, String> {
    let identity = citizen.national_code.to_string();
    user.address = address_of(u64::from(crc_of(&identity)) | 0x80_0000);
    ctx.stats().bot_identities.insert(crc_of(&identity).into());
    let ready = apply_and_pay(ctx, user, citizen, false).await?;
    let body = entry_body(ctx, &ready, false);
    let b = &ctx.scenario.behaviour;
    let mut shots = tokio::task::JoinSet::new();
    let first = Instant::now().max(user.due);
    for n in 0..b.bot_requests {
        let mut shooter = user.bot_shot(n, first, b.bot_interval_ms);
        let (ctx, body, path, identity) = (
            ctx.clone(),
            body.clone(),
            path.to_string(),
            identity.clone(),
        );
        shots.spawn(async move {
            let reply = call(
                &ctx,
                &mut shooter,
                Endpoint::Entry,
                Method::PUT,
                &path,
                Some(&body),
            )
            .await;
            let key = match &reply {
                Reply::Ok(v) => v["entry_key"].as_str().map(str::to_string),
                _ => None,
            };
            ctx.journal()
                .entered(&identity, reply.knowledge(), key, true);
        });
    }
    while shots.join_next().await.is_some() {}
    Ok("hammered")
}

/// A small stable number for a bot identity (its address and its count).
fn crc_of(identity: &str) -> u32 {
    identity
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        & 0x7f_ffff
}

/// The waiting room, as a person at the portal goes through it: log in, join
/// (`POST /v1/queue`), poll the ticket when `poll_after_seconds` says, and once admitted keep
/// the pass for the booking writes. An expired ticket (410) ends the journey.
async fn wait_in_room(ctx: &Ctx, user: &mut User, citizen: &CitizenRecord) -> Result<(), String> {
    let room_id = ctx.room_id.as_deref().ok_or("no room")?;
    login(ctx, user, citizen).await?;
    let body = json!({ "room_id": room_id });
    let mut reply = call(
        ctx,
        user,
        Endpoint::Join,
        Method::POST,
        "/v1/queue",
        Some(&body),
    )
    .await;
    let mut ticket = String::new();
    loop {
        let v = match reply {
            Reply::Ok(v) => v,
            other => return Err(format!("queue: {}", other.outcome())),
        };
        if let Some(t) = v["ticket"].as_str() {
            ticket = t.to_string();
        }
        if let Some(pass) = v["pass"].as_str() {
            user.pass = Some(pass.to_string());
            user.admitted = true;
            return Ok(());
        }
        let after = v["poll_after_seconds"].as_u64().unwrap_or(1).max(1);
        user.due = Instant::now().max(user.due) + Duration::from_secs(after);
        let path = format!("/v1/queue/{ticket}");
        reply = call(ctx, user, Endpoint::Poll, Method::GET, &path, None).await;
    }
}
