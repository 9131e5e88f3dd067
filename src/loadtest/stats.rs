//! What a run measured: HDR latency histograms per endpoint (from the intended send time),
//! status and problem-code counts, and a per-second timeline.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds up to this (longer ones are clamped and counted).
pub const LATENCY_US_MAX: u64 = 300_000_000;
/// Most seconds in a timeline (a run is bounded by `RUN_SECS_MAX` anyway).
pub const TIMELINE_SECS_MAX: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Session,
    Application,
    Payment,
    Offices,
    Slots,
    Hold,
    Confirm,
    Release,
    Cancel,
    Reschedule,
    Status,
    /// `POST /v1/queue` (the waiting room).
    Join,
    /// `GET /v1/queue/{ticket}`.
    Poll,
    /// `PUT /v1/ballots/{id}/entry` (a ballot day).
    Entry,
    /// `DELETE /v1/ballots/{id}/entry`.
    Withdraw,
    /// `GET /v1/ballots/{id}`.
    Ballot,
}

impl Endpoint {
    pub const ALL: [Endpoint; 16] = [
        Endpoint::Session,
        Endpoint::Application,
        Endpoint::Payment,
        Endpoint::Offices,
        Endpoint::Slots,
        Endpoint::Hold,
        Endpoint::Confirm,
        Endpoint::Release,
        Endpoint::Cancel,
        Endpoint::Reschedule,
        Endpoint::Status,
        Endpoint::Join,
        Endpoint::Poll,
        Endpoint::Entry,
        Endpoint::Withdraw,
        Endpoint::Ballot,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Session => "POST /v1/sessions",
            Endpoint::Application => "POST /v1/applications",
            Endpoint::Payment => "POST /v1/payments",
            Endpoint::Offices => "GET /v1/offices",
            Endpoint::Slots => "GET /v1/offices/{id}/slots",
            Endpoint::Hold => "POST /v1/holds",
            Endpoint::Confirm => "POST /v1/holds/{id}/confirm",
            Endpoint::Release => "DELETE /v1/holds/{id}",
            Endpoint::Cancel => "POST /v1/appointments/{code}/cancel",
            Endpoint::Reschedule => "POST /v1/appointments/{code}/reschedule",
            Endpoint::Status => "GET /v1/status",
            Endpoint::Join => "POST /v1/queue",
            Endpoint::Poll => "GET /v1/queue/{ticket}",
            Endpoint::Entry => "PUT /v1/ballots/{id}/entry",
            Endpoint::Withdraw => "DELETE /v1/ballots/{id}/entry",
            Endpoint::Ballot => "GET /v1/ballots/{id}",
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// An HTTP answer, with the problem `code` when it was an error.
    Status {
        status: u16,
        code: Option<String>,
    },
    Timeout,
    /// Connection refused or reset (e.g. the server was killed).
    Connect,
    Other,
}

impl AttemptResult {
    fn is_error(&self) -> bool {
        match self {
            AttemptResult::Status { status, .. } => *status >= 500,
            _ => true,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

pub struct EndpointStats {
    pub latency_us: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub problem_codes: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub connect_errors: u64,
    pub other_errors: u64,
    pub retries: u64,
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self {
            latency_us: new_histogram(),
            statuses: BTreeMap::new(),
            problem_codes: BTreeMap::new(),
            timeouts: 0,
            connect_errors: 0,
            other_errors: 0,
            retries: 0,
        }
    }
}

pub struct Second {
    pub arrivals: u64,
    pub shed: u64,
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub bookings: u64,
    pub latency_us: Histogram<u64>,
}

impl Default for Second {
    fn default() -> Self {
        Self {
            arrivals: 0,
            shed: 0,
            requests: 0,
            ok: 0,
            refused: 0,
            errors: 0,
            bookings: 0,
            latency_us: new_histogram(),
        }
    }
}

/// Everything measured; behind one mutex in the runner (a few thousand updates a second).
#[derive(Default)]
pub struct Stats {
    pub endpoints: BTreeMap<Endpoint, EndpointStats>,
    pub timeline: Vec<Second>,
    /// Arrival to confirmed booking, for applicants who booked.
    pub time_to_book_us: Option<Histogram<u64>>,
    pub arrivals: u64,
    pub shed: u64,
    /// The most journeys running at once: beside `limits.journeys_in_flight_max` it shows
    /// whether the generator's own bound was near (journeys run for seconds of think time, so
    /// arrivals × journey length is what the bound must hold).
    pub journeys_in_flight_peak: u64,
    pub journeys_done: u64,
    pub journeys_cut: u64,
    pub latency_clamped: u64,
    /// Journeys by kind and how they ended (`book: booked`, `book: slot_full`, …).
    pub journey_outcomes: BTreeMap<String, u64>,
    /// With a waiting room: the requests of applicants after their admission (every endpoint
    /// but the queue's), from the intended send time.
    pub admitted_us: Option<Histogram<u64>>,
    /// Holds granted, and of them to bots (their share of the seats taken).
    pub holds_granted: u64,
    pub bot_holds_granted: u64,
    /// Identities that arrived: applicants' (one per journey) and distinct bots'; of the
    /// applicants, those whose journey takes a seat (every kind but browsing).
    pub applicant_identities: u64,
    pub seat_seekers: u64,
    pub bot_identities: std::collections::BTreeSet<u64>,
}

impl Stats {
    pub fn empty_histogram() -> Histogram<u64> {
        new_histogram()
    }

    fn second(&mut self, at_secs: f64) -> Option<&mut Second> {
        let i = at_secs.max(0.0) as usize;
        if i >= TIMELINE_SECS_MAX {
            return None;
        }
        if self.timeline.len() <= i {
            self.timeline.resize_with(i + 1, Second::default);
        }
        self.timeline.get_mut(i)
    }

    /// An arrival, with the journeys running once it started (or was shed).
    pub fn arrival(&mut self, at_secs: f64, shed: bool, in_flight: u64) {
        self.arrivals += 1;
        self.journeys_in_flight_peak = self.journeys_in_flight_peak.max(in_flight);
        if shed {
            self.shed += 1;
        }
        if let Some(s) = self.second(at_secs) {
            s.arrivals += 1;
            if shed {
                s.shed += 1;
            }
        }
    }

    /// One attempt: `done_secs` is when it ended, `latency_us` from its intended send time.
    pub fn attempt(
        &mut self,
        endpoint: Endpoint,
        done_secs: f64,
        latency_us: u64,
        result: &AttemptResult,
        retry: bool,
    ) {
        let clamped = latency_us.clamp(1, LATENCY_US_MAX);
        if clamped != latency_us {
            self.latency_clamped += 1;
        }
        let e = self.endpoints.entry(endpoint).or_default();
        let _ = e.latency_us.record(clamped);
        if retry {
            e.retries += 1;
        }
        match result {
            AttemptResult::Status { status, code } => {
                *e.statuses.entry(*status).or_default() += 1;
                if let Some(c) = code {
                    *e.problem_codes.entry(c.clone()).or_default() += 1;
                }
            }
            AttemptResult::Timeout => e.timeouts += 1,
            AttemptResult::Connect => e.connect_errors += 1,
            AttemptResult::Other => e.other_errors += 1,
        }
        let error = result.is_error();
        let ok = matches!(result, AttemptResult::Status { status, .. } if *status < 400);
        if let Some(s) = self.second(done_secs) {
            s.requests += 1;
            let _ = s.latency_us.record(clamped);
            if ok {
                s.ok += 1;
            } else if error {
                s.errors += 1;
            } else {
                s.refused += 1;
            }
        }
    }

    /// A request of an admitted applicant (its latency as [`Stats::attempt`] records it).
    pub fn admitted_request(&mut self, latency_us: u64) {
        let h = self.admitted_us.get_or_insert_with(new_histogram);
        let _ = h.record(latency_us.clamp(1, LATENCY_US_MAX));
    }

    pub fn booked(&mut self, done_secs: f64, since_arrival_us: u64) {
        let h = self.time_to_book_us.get_or_insert_with(new_histogram);
        let _ = h.record(since_arrival_us.clamp(1, LATENCY_US_MAX));
        if let Some(s) = self.second(done_secs) {
            s.bookings += 1;
        }
    }

    pub fn journey_ended(&mut self, kind: &str, outcome: &str) {
        self.journeys_done += 1;
        *self
            .journey_outcomes
            .entry(format!("{kind}: {outcome}"))
            .or_default() += 1;
    }
}

/// Percentiles of a histogram in milliseconds, for reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
        if h.is_empty() {
            return LatencySummary {
                count: 0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        LatencySummary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: (h.mean() / 1000.0 * 100.0).round() / 100.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_land_in_their_second_and_endpoint() {
        let mut s = Stats::default();
        let ok = AttemptResult::Status {
            status: 201,
            code: None,
        };
        let full = AttemptResult::Status {
            status: 409,
            code: Some("slot_full".into()),
        };
        s.attempt(Endpoint::Hold, 0.5, 2_000, &ok, false);
        s.attempt(Endpoint::Hold, 2.2, 9_000, &full, false);
        s.attempt(
            Endpoint::Hold,
            2.9,
            1_000_000,
            &AttemptResult::Timeout,
            true,
        );
        let h = &s.endpoints[&Endpoint::Hold];
        assert_eq!(h.latency_us.len(), 3);
        assert_eq!(h.problem_codes["slot_full"], 1);
        assert_eq!((h.timeouts, h.retries), (1, 1));
        assert_eq!(s.timeline.len(), 3);
        assert_eq!(
            (
                s.timeline[2].ok,
                s.timeline[2].refused,
                s.timeline[2].errors
            ),
            (0, 1, 1)
        );
        let sum = LatencySummary::of(&h.latency_us);
        assert!(sum.max_ms >= 999.0 && sum.p50_ms < 10.0, "{sum:?}");
    }
}
