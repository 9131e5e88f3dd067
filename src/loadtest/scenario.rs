//! The surge scenario file (`scenarios/loadtest/*.toml`): when applicants arrive, what they
//! do, how they retry, and which server scenario (civil registry, office network) they belong
//! to. Parsed with `serde_path_to_error`, so a bad file is refused naming the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Longest run a scenario may describe (arrivals plus drain), in seconds.
pub const RUN_SECS_MAX: f64 = 3_600.0;
/// Highest arrival rate any segment may ask for, applicants per second.
pub const RATE_PER_SEC_MAX: f64 = 100_000.0;
/// Most applicants one run may start.
pub const ARRIVALS_MAX: u64 = 5_000_000;

#[derive(Debug, thiserror::Error)]
pub enum LoadScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: field `{field}`: {message}")]
    Parse {
        origin: String,
        field: String,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// A parsed, checked surge scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds arrivals, journey choices and think times.
    pub seed: u64,
    /// The server's scenario (its synthetic civil registry and office network), relative to
    /// this file. The generator logs in as that scenario's citizens.
    pub server_scenario: PathBuf,
    /// Citizens used start at this index (so two runs on one database can use fresh people).
    #[serde(default)]
    pub citizen_offset: u64,
    /// Once arrivals stop, the longest wait for journeys still running; then they are cut.
    pub drain_secs: f64,
    /// What the compressed run stands for in the real world (reported, not simulated).
    #[serde(default)]
    pub scale: Scale,
    /// The arrival profile: consecutive segments of applicants per second.
    pub arrivals: Vec<Segment>,
    pub mix: Mix,
    #[serde(default)]
    pub behaviour: Behaviour,
    /// How booking journeys take a seat, and which other ways to run for comparison.
    #[serde(default)]
    pub booking: BookingOptions,
    /// A waiting room in front of the booking writes (created through the admin API before
    /// the arrivals); absent: no room.
    #[serde(default)]
    pub room: Option<RoomOptions>,
    /// A ballot day (issue 20): the generator opens a ballot through the admin API, the
    /// journeys enter it instead of booking, the server closes it after the window and the
    /// audit checks the close (`ballot_audit`); absent: first-come booking.
    #[serde(default)]
    pub ballot: Option<BallotOptions>,
    #[serde(default)]
    pub retry: RetryModel,
    #[serde(default)]
    pub limits: Limits,
    /// How `--spawn` starts the server.
    #[serde(default)]
    pub server: ServerSettings,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Applicants on the real surge day.
    #[serde(default)]
    pub real_applicants: u64,
    /// Hours the real surge lasts.
    #[serde(default)]
    pub real_hours: f64,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Straight line from `from_per_sec` to `to_per_sec`.
    Linear,
    /// Geometric: constant ratio per second (a spike that decays, a climb that accelerates).
    Exponential,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub secs: f64,
    pub from_per_sec: f64,
    pub to_per_sec: f64,
    #[serde(default = "Segment::default_shape")]
    pub shape: Shape,
    /// Shown in the report's timeline (e.g. "08:00 opening").
    #[serde(default)]
    pub label: String,
}

impl Segment {
    fn default_shape() -> Shape {
        Shape::Linear
    }

    fn rate_at(&self, t: f64) -> f64 {
        let f = (t / self.secs).clamp(0.0, 1.0);
        match self.shape {
            Shape::Linear => self.from_per_sec + (self.to_per_sec - self.from_per_sec) * f,
            Shape::Exponential => {
                // Geometric interpolation needs both ends positive; checked at load.
                self.from_per_sec * (self.to_per_sec / self.from_per_sec).powf(f)
            }
        }
    }
}

/// Weights of what an arriving applicant does (they need not sum to 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Log in, apply, pay, find an office, hold, confirm; maybe check status.
    pub book: f64,
    /// Book, then cancel.
    #[serde(default)]
    pub cancel: f64,
    /// Book, then move to another slot.
    #[serde(default)]
    pub reschedule: f64,
    /// Hold, then walk away: the hold must expire.
    #[serde(default)]
    pub abandon_hold: f64,
    /// Hold, then release it.
    #[serde(default)]
    pub release_hold: f64,
    /// Pay with a card that is declined, hold, try to confirm (402), give up.
    #[serde(default)]
    pub declined_payment: f64,
    /// Log in and look at offices and slots only.
    #[serde(default)]
    pub browse: f64,
    /// A bot: one identity hammering holds and office listings.
    #[serde(default)]
    pub bot: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Think time between steps, uniform in [min, max] milliseconds.
    pub think_ms_min: u64,
    pub think_ms_max: u64,
    /// Share of applicants who list an office's slots rather than take an earliest free one.
    pub list_slots_share: f64,
    /// Share of applicants who search offices with `GET /v1/offices`; the others already know
    /// their nearest offices (from the network) and go straight to an office's slot list.
    #[serde(default = "Behaviour::default_office_search_share")]
    pub office_search_share: f64,
    /// Share of those who booked that then check their status.
    pub status_check_share: f64,
    /// Offices asked for near home.
    pub offices_limit: u32,
    /// Hold attempts after `slot_full` (taking the alternatives offered).
    pub hold_attempts_max: u32,
    /// Requests one bot fires, and the gap between them (it does not wait for answers).
    pub bot_requests: u32,
    pub bot_interval_ms: u64,
    /// Distinct identities bots use (each bot takes one of these; they are shared).
    pub bot_identities: u64,
}

impl Behaviour {
    fn default_office_search_share() -> f64 {
        1.0
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            think_ms_min: 100,
            think_ms_max: 1_000,
            list_slots_share: 0.3,
            office_search_share: 1.0,
            status_check_share: 0.3,
            offices_limit: 5,
            hold_attempts_max: 3,
            bot_requests: 20,
            bot_interval_ms: 50,
            bot_identities: 3,
        }
    }
}

/// How a journey that books takes its seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingMode {
    /// Find a slot (nearest offices, an earliest free one or one from a listing) and hold it,
    /// taking the alternatives a `slot_full` offers.
    Slot,
    /// Let the engine choose: `POST /v1/holds` with `pick` near home within `pick_max_km`
    /// (widened once to the `max_km` a `no_seat_within_limits` offers).
    Pick,
}

impl BookingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingMode::Slot => "slot",
            BookingMode::Pick => "pick",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingOptions {
    /// How the journeys that hold a seat (book, cancel, reschedule, abandon and release a hold,
    /// declined payment) take it. Bots always hammer one slot; a reschedule names its new slot.
    #[serde(default = "BookingOptions::default_mode")]
    pub mode: BookingMode,
    /// `pick`: how far from home the office may be, in km.
    #[serde(default = "BookingOptions::default_pick_max_km")]
    pub pick_max_km: f64,
    /// Also run the same arrivals (same seed, a fresh server each) with these modes, one after
    /// another, and write a comparison (`compare.md`, `compare.json`) beside their reports.
    #[serde(default)]
    pub compare: Vec<BookingMode>,
}

impl BookingOptions {
    fn default_mode() -> BookingMode {
        BookingMode::Slot
    }

    fn default_pick_max_km() -> f64 {
        30.0
    }
}

impl Default for BookingOptions {
    fn default() -> Self {
        Self {
            mode: Self::default_mode(),
            pick_max_km: Self::default_pick_max_km(),
            compare: Vec::new(),
        }
    }
}

/// The waiting room of a run: created by the generator on the spawned server (scope: the
/// service every applicant books, every province) when the arrivals start, opening
/// `prequeue_secs` later. Journeys that book join it, poll at `poll_after_seconds` and send
/// their pass in `Booking-Pass`; bots join too (one ticket per identity) and hammer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomOptions {
    /// Seconds from the first arrival to the opening: whoever joins before is in the
    /// pre-queue (shuffled at the opening).
    pub prequeue_secs: f64,
    /// A fixed admission rate, applicants a minute; or the controller with `auto_*`.
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// The controller's booking p99 target (milliseconds) and most passes in use.
    #[serde(default)]
    pub auto_target_p99_ms: Option<u32>,
    #[serde(default)]
    pub auto_max_active: Option<u32>,
    #[serde(default = "RoomOptions::default_pass_minutes")]
    pub pass_minutes: u32,
    #[serde(default = "RoomOptions::default_ticket_idle_minutes")]
    pub ticket_idle_minutes: u32,
    /// Then run the same arrivals again without the room on a fresh server, and write
    /// `room.md` / `room.json` with the figures side by side.
    #[serde(default)]
    pub compare_without: bool,
}

/// The ballot of a run: created by the generator on the spawned server (every province, the
/// applicants' service), open from the first arrival; it closes `close_after_secs` after the
/// arrivals end (journeys still entering then race the close and get `ballot_closed`), and its
/// seats are `seat_days` days starting `seat_days_from` days after today. Journeys: `book`
/// enters; `reschedule` enters then changes its preferences; `cancel` enters then withdraws;
/// `declined_payment` tries to enter with a declined payment (402); `browse` reads the
/// ballot; `bot` hammers entries from a few identities (`behaviour.bot_*`); the hold journeys
/// enter like `book`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BallotOptions {
    #[serde(default = "BallotOptions::default_close_after_secs")]
    pub close_after_secs: f64,
    #[serde(default = "BallotOptions::default_seat_days_from")]
    pub seat_days_from: u32,
    #[serde(default = "BallotOptions::default_seat_days")]
    pub seat_days: u32,
    /// An entry's `max_km` around home.
    #[serde(default = "BallotOptions::default_max_km")]
    pub max_km: f64,
    /// Longest wait for the close to publish after the drain.
    #[serde(default = "BallotOptions::default_publish_wait_secs")]
    pub publish_wait_secs: f64,
}

impl BallotOptions {
    fn default_close_after_secs() -> f64 {
        5.0
    }

    fn default_seat_days_from() -> u32 {
        2
    }

    fn default_seat_days() -> u32 {
        2
    }

    fn default_max_km() -> f64 {
        50.0
    }

    fn default_publish_wait_secs() -> f64 {
        600.0
    }
}

impl RoomOptions {
    fn default_pass_minutes() -> u32 {
        10
    }

    fn default_ticket_idle_minutes() -> u32 {
        5
    }

    /// The `admission` object of the admin API's room request.
    pub fn admission_json(&self) -> serde_json::Value {
        match (
            self.per_minute,
            self.auto_target_p99_ms,
            self.auto_max_active,
        ) {
            (Some(per_minute), _, _) => serde_json::json!({ "per_minute": per_minute }),
            (None, Some(target_p99_ms), Some(max_active)) => serde_json::json!({
                "auto": { "target_p99_ms": target_p99_ms, "max_active": max_active }
            }),
            _ => serde_json::json!({}),
        }
    }
}

/// How applicants retry after 503, 5xx, timeouts and refused connections. POSTs are retried
/// with the same `Idempotency-Key`, so a retry never books twice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryModel {
    /// Attempts per request, the first included.
    pub attempts_max: u32,
    /// Patient applicants wait `Retry-After` (or an exponential backoff without it).
    pub backoff_ms: u64,
    pub backoff_ms_max: u64,
    /// Share of applicants who ignore `Retry-After` and hammer (the retry storm).
    pub impatient_share: f64,
    /// How soon an impatient applicant retries.
    pub impatient_retry_ms: u64,
}

impl Default for RetryModel {
    fn default() -> Self {
        Self {
            attempts_max: 4,
            backoff_ms: 500,
            backoff_ms_max: 8_000,
            impatient_share: 0.2,
            impatient_retry_ms: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Journeys running at once; an arrival beyond this is shed by the generator and counted.
    pub journeys_in_flight_max: usize,
    /// A request with no answer after this is a timeout.
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            journeys_in_flight_max: 20_000,
            request_timeout_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Seconds a hold lasts on the spawned server (short, so abandoned holds expire in-run).
    pub hold_seconds: u64,
    /// The server's hold-sweep interval (its default); the audit's allowance for late expiry.
    pub sweep_interval_secs: f64,
    pub db_max_connections: u32,
    /// Longest wait for the spawned server to become ready (seeding a national network takes
    /// a while).
    pub ready_timeout_secs: u64,
}

impl Default for ServerSettings {
    /// The server's own defaults ([`crate::app::Settings::default`]), so a scenario that says
    /// nothing runs the server as `nobat serve` would.
    fn default() -> Self {
        let server = crate::app::Settings::default();
        Self {
            hold_seconds: server.engine.hold_ttl.as_secs(),
            sweep_interval_secs: server.sweep_interval.map_or(0.0, |d| d.as_secs_f64()),
            db_max_connections: server.store.max_connections,
            ready_timeout_secs: 120,
        }
    }
}

impl LoadScenario {
    pub fn load(path: impl AsRef<Path>) -> Result<LoadScenario, LoadScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut s = Self::from_toml_str(&text, &path.display().to_string())?;
        if s.server_scenario.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            s.server_scenario = base.join(&s.server_scenario);
        }
        Ok(s)
    }

    pub fn from_toml_str(text: &str, origin: &str) -> Result<LoadScenario, LoadScenarioError> {
        let de = toml::Deserializer::new(text);
        let s: LoadScenario =
            serde_path_to_error::deserialize(de).map_err(|e| LoadScenarioError::Parse {
                origin: origin.to_string(),
                field: e.path().to_string(),
                message: e.inner().message().to_string(),
            })?;
        s.check(origin)?;
        Ok(s)
    }

    fn check(&self, origin: &str) -> Result<(), LoadScenarioError> {
        let bad = |message: String| {
            Err(LoadScenarioError::Invalid {
                origin: origin.to_string(),
                message,
            })
        };
        if self.arrivals.is_empty() {
            return bad("arrivals: at least one segment is needed".into());
        }
        for (i, seg) in self.arrivals.iter().enumerate() {
            if !(seg.secs > 0.0 && seg.secs.is_finite()) {
                return bad(format!("arrivals[{i}].secs must be positive"));
            }
            for (name, r) in [
                ("from_per_sec", seg.from_per_sec),
                ("to_per_sec", seg.to_per_sec),
            ] {
                if !(0.0..=RATE_PER_SEC_MAX).contains(&r) {
                    return bad(format!(
                        "arrivals[{i}].{name} must be 0 to {RATE_PER_SEC_MAX}, not {r}"
                    ));
                }
            }
            if seg.shape == Shape::Exponential && (seg.from_per_sec <= 0.0 || seg.to_per_sec <= 0.0)
            {
                return bad(format!(
                    "arrivals[{i}]: an exponential segment needs positive rates at both ends"
                ));
            }
        }
        if !(0.0..=RUN_SECS_MAX).contains(&self.drain_secs) {
            return bad(format!("drain_secs must be 0 to {RUN_SECS_MAX}"));
        }
        if self.duration_secs() + self.drain_secs > RUN_SECS_MAX {
            return bad(format!(
                "arrivals and drain last {:.0} s; at most {RUN_SECS_MAX} s",
                self.duration_secs() + self.drain_secs
            ));
        }
        let m = &self.mix;
        let weights = [
            m.book,
            m.cancel,
            m.reschedule,
            m.abandon_hold,
            m.release_hold,
            m.declined_payment,
            m.browse,
            m.bot,
        ];
        if weights.iter().any(|w| !(*w >= 0.0 && w.is_finite()))
            || weights.iter().sum::<f64>() <= 0.0
        {
            return bad("mix: weights must be non-negative with a positive sum".into());
        }
        let b = &self.behaviour;
        if b.think_ms_min > b.think_ms_max || b.think_ms_max > 60_000 {
            return bad("behaviour: think_ms_min ≤ think_ms_max ≤ 60000".into());
        }
        for (name, v) in [
            ("behaviour.list_slots_share", b.list_slots_share),
            ("behaviour.status_check_share", b.status_check_share),
            ("behaviour.office_search_share", b.office_search_share),
            ("retry.impatient_share", self.retry.impatient_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be 0 to 1"));
            }
        }
        if !(1..=100).contains(&b.offices_limit)
            || !(1..=10).contains(&b.hold_attempts_max)
            || b.bot_requests > 10_000
            || b.bot_identities == 0
        {
            return bad("behaviour: offices_limit 1..=100, hold_attempts_max 1..=10, bot_requests ≤ 10000, bot_identities ≥ 1".into());
        }
        let booking = &self.booking;
        if !(booking.pick_max_km > 0.0 && booking.pick_max_km <= 300.0) {
            return bad("booking.pick_max_km must be above 0 and at most 300".into());
        }
        let mut modes = vec![booking.mode];
        for m in &booking.compare {
            if modes.contains(m) {
                return bad(format!(
                    "booking.compare: {} is run once already",
                    m.as_str()
                ));
            }
            modes.push(*m);
        }
        if let Some(room) = &self.room {
            let auto = (room.auto_target_p99_ms, room.auto_max_active);
            let one_policy = matches!(
                (room.per_minute, auto),
                (Some(_), (None, None)) | (None, (Some(_), Some(_)))
            );
            if !one_policy {
                return bad(
                    "room: per_minute, or auto_target_p99_ms with auto_max_active (not both)"
                        .into(),
                );
            }
            if !(room.prequeue_secs >= 1.0 && room.prequeue_secs < self.duration_secs()) {
                return bad("room.prequeue_secs must be at least 1 and within the arrivals".into());
            }
        }
        if let Some(ballot) = &self.ballot {
            if self.room.is_some() || !self.booking.compare.is_empty() {
                return bad("ballot: a ballot day runs alone (no room, no booking.compare)".into());
            }
            if !(ballot.close_after_secs >= 1.0
                && ballot.seat_days >= 1
                && ballot.seat_days_from >= 1
                && ballot.max_km > 0.0
                && ballot.publish_wait_secs >= 1.0)
            {
                return bad("ballot: close_after_secs and publish_wait_secs at least 1, seat_days and seat_days_from at least 1, max_km above 0".into());
            }
        }
        if !(1..=20).contains(&self.retry.attempts_max) {
            return bad("retry.attempts_max must be 1 to 20".into());
        }
        if !(1..=1_000_000).contains(&self.limits.journeys_in_flight_max)
            || !(100..=120_000).contains(&self.limits.request_timeout_ms)
        {
            return bad(
                "limits: journeys_in_flight_max 1..=1000000, request_timeout_ms 100..=120000"
                    .into(),
            );
        }
        if !(1..=7200).contains(&self.server.hold_seconds) {
            return bad("server.hold_seconds must be 1 to 7200".into());
        }
        if self.expected_arrivals() > ARRIVALS_MAX as f64 {
            return bad(format!(
                "the profile brings {:.0} applicants; at most {ARRIVALS_MAX}",
                self.expected_arrivals()
            ));
        }
        Ok(())
    }

    /// Seconds of arrivals (the drain comes after).
    pub fn duration_secs(&self) -> f64 {
        self.arrivals.iter().map(|s| s.secs).sum()
    }

    /// Arrival rate at `t` seconds from the start; 0 after the last segment.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for seg in &self.arrivals {
            if t < start + seg.secs {
                return seg.rate_at(t - start);
            }
            start += seg.secs;
        }
        0.0
    }

    /// Highest rate anywhere in the profile.
    pub fn peak_rate(&self) -> f64 {
        self.arrivals
            .iter()
            .map(|s| s.from_per_sec.max(s.to_per_sec))
            .fold(0.0, f64::max)
    }

    /// The integral of the rate (numerically, 10 ms steps).
    pub fn expected_arrivals(&self) -> f64 {
        let step = 0.01;
        let n = (self.duration_secs() / step).ceil() as u64;
        (0..n)
            .map(|i| self.rate_at((i as f64 + 0.5) * step) * step)
            .sum()
    }

    /// Multiplies every rate by `factor` (for finding the saturation point), and a waiting
    /// room's fixed admission rate and most passes in use with them (the room is sized for the
    /// arrivals it stands in front of).
    pub fn scale_rates(&mut self, factor: f64) {
        for seg in &mut self.arrivals {
            seg.from_per_sec *= factor;
            seg.to_per_sec *= factor;
        }
        if let Some(room) = &mut self.room {
            let scale = |n: u32| ((f64::from(n) * factor).round() as u32).max(1);
            room.per_minute = room.per_minute.map(scale);
            room.auto_max_active = room.auto_max_active.map(scale);
        }
    }

    /// Multiplies every segment's length (and the room's pre-queue) by `factor`.
    pub fn scale_duration(&mut self, factor: f64) {
        for seg in &mut self.arrivals {
            seg.secs *= factor;
        }
        if let Some(room) = &mut self.room {
            room.prequeue_secs *= factor;
        }
    }

    /// Re-checks after scaling from the command line.
    pub fn recheck(&self, origin: &str) -> Result<(), LoadScenarioError> {
        self.check(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
seed = 1
server_scenario = "../small.toml"
drain_secs = 5
[[arrivals]]
secs = 10
from_per_sec = 10
to_per_sec = 10
[mix]
book = 1
"#;

    #[test]
    fn a_flat_profile_integrates_to_rate_times_duration() {
        let s = LoadScenario::from_toml_str(MINIMAL, "t.toml").unwrap();
        assert!((s.expected_arrivals() - 100.0).abs() < 0.5);
        assert_eq!(s.rate_at(10.5), 0.0);
    }

    #[test]
    fn an_exponential_decay_halves_on_schedule() {
        let text = MINIMAL.replace(
            "from_per_sec = 10\nto_per_sec = 10",
            "from_per_sec = 40\nto_per_sec = 10\nshape = \"exponential\"",
        );
        let s = LoadScenario::from_toml_str(&text, "t.toml").unwrap();
        assert!((s.rate_at(5.0) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn booking_is_by_slot_unless_the_file_says_pick() {
        let s = LoadScenario::from_toml_str(MINIMAL, "t.toml").unwrap();
        assert_eq!(s.booking.mode, BookingMode::Slot);
        assert!(s.booking.compare.is_empty());
        let text = format!(
            "{MINIMAL}[booking]\nmode = \"pick\"\npick_max_km = 20\ncompare = [\"slot\"]\n"
        );
        let s = LoadScenario::from_toml_str(&text, "t.toml").unwrap();
        assert_eq!(
            (s.booking.mode, s.booking.pick_max_km, s.booking.compare),
            (BookingMode::Pick, 20.0, vec![BookingMode::Slot])
        );
        for (bad, says) in [
            ("mode = \"pick\"\ncompare = [\"pick\"]", "run once already"),
            ("pick_max_km = 0", "pick_max_km"),
            ("mode = \"any\"", "booking.mode"),
        ] {
            let text = format!("{MINIMAL}[booking]\n{bad}\n");
            let e = LoadScenario::from_toml_str(&text, "t.toml").unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_room_needs_one_admission_policy_and_scales_with_the_run() {
        let with = |room: &str| format!("{MINIMAL}[room]\n{room}\n");
        let s =
            LoadScenario::from_toml_str(&with("prequeue_secs = 2\nper_minute = 600"), "t").unwrap();
        let room = s.room.as_ref().unwrap();
        assert_eq!((room.pass_minutes, room.ticket_idle_minutes), (10, 5));
        assert_eq!(
            room.admission_json(),
            serde_json::json!({ "per_minute": 600 })
        );
        let mut scaled = s.clone();
        scaled.scale_rates(0.5);
        scaled.scale_duration(0.5);
        let room = scaled.room.as_ref().unwrap();
        assert_eq!((room.per_minute, room.prequeue_secs), (Some(300), 1.0));
        for bad in [
            "prequeue_secs = 2",
            "prequeue_secs = 2\nper_minute = 600\nauto_target_p99_ms = 300\nauto_max_active = 9",
            "prequeue_secs = 2\nauto_target_p99_ms = 300",
            "prequeue_secs = 0\nper_minute = 600",
            "prequeue_secs = 10\nper_minute = 600",
        ] {
            let e = LoadScenario::from_toml_str(&with(bad), "t").unwrap_err();
            assert!(e.to_string().contains("room"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_unknown_field_is_named() {
        let text = MINIMAL.replace("book = 1", "book = 1\nbok = 2");
        let e = LoadScenario::from_toml_str(&text, "t.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t.toml") && msg.contains("bok"), "{msg}");
    }

    #[test]
    fn an_exponential_segment_from_zero_is_refused() {
        let text = MINIMAL.replace(
            "from_per_sec = 10\nto_per_sec = 10",
            "from_per_sec = 0\nto_per_sec = 10\nshape = \"exponential\"",
        );
        let e = LoadScenario::from_toml_str(&text, "t.toml").unwrap_err();
        assert!(e.to_string().contains("arrivals[0]"), "{e}");
    }
}
