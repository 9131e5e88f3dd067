//! The waiting room's figures (issue 22): per run, what the room is judged by (admitted
//! applicants' latency, 5xx and overload sheds, bookings per second, bots' share, the order
//! and ETA figures read from the database), and for a run with a room beside the same
//! arrivals without it, the targets side by side (`room.json`, `room.md`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::report::Report;
use super::room_audit::RoomOrder;
use super::stats::{LatencySummary, Stats};

/// One run's figures, with a room or without.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SurgeFigures {
    pub with_room: bool,
    /// Requests of applicants once admitted (every endpoint but the queue's); none without a
    /// room.
    pub admitted_requests: Option<LatencySummary>,
    /// Answers 500 to 599, every endpoint.
    pub server_errors_5xx: u64,
    /// Of them, 503 `overloaded` (the in-flight limit's sheds) and `timeout`.
    pub overload_sheds: u64,
    pub timeouts_503: u64,
    pub bookings: u64,
    pub bookings_per_sec_mean: f64,
    pub bookings_per_sec_peak_10s: f64,
    /// Holds granted to bots over all holds granted (bots never confirm: this is their share
    /// of the seats taken), against their share of the identities that came for a seat
    /// (bots' and the applicants' who hold one; browsers, who only read, are not counted).
    pub bot_share_of_holds: f64,
    pub bot_share_of_identities: f64,
    pub holds_granted: u64,
    pub bot_holds_granted: u64,
    pub order: Option<RoomOrder>,
}

/// A run's figures from its stats and report (and the room's order, read after the run).
pub fn surge_figures(stats: &Stats, report: &Report, order: Option<RoomOrder>) -> SurgeFigures {
    let count_code = |code: &str| {
        report
            .endpoints
            .iter()
            .filter_map(|e| e.problem_codes.get(code))
            .sum::<u64>()
    };
    let server_errors_5xx = report
        .endpoints
        .iter()
        .flat_map(|e| e.statuses.iter())
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();
    let bots = stats.bot_identities.len() as u64;
    let identities = (stats.seat_seekers + bots).max(1);
    SurgeFigures {
        with_room: order.is_some(),
        admitted_requests: stats.admitted_us.as_ref().map(LatencySummary::of),
        server_errors_5xx,
        overload_sheds: count_code("overloaded"),
        timeouts_503: count_code("timeout"),
        bookings: report.totals.bookings,
        bookings_per_sec_mean: report.totals.bookings_per_sec_mean,
        bookings_per_sec_peak_10s: report.totals.bookings_per_sec_peak_10s,
        bot_share_of_holds: stats.bot_holds_granted as f64 / stats.holds_granted.max(1) as f64,
        bot_share_of_identities: bots as f64 / identities as f64,
        holds_granted: stats.holds_granted,
        bot_holds_granted: stats.bot_holds_granted,
        order,
    }
}

/// One of the targets, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub figure: String,
    pub target: String,
    pub measured: String,
    /// None: not measurable in this run (say why in `measured`).
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomComparison {
    pub scenario: String,
    pub backend: String,
    pub rate_scale: f64,
    pub with_room: SurgeFigures,
    pub without_room: SurgeFigures,
    pub targets: Vec<Target>,
}

/// How far from 0 the pre-queue's Spearman ρ may be and still read as a fair shuffle: 0.1, or
/// where `n` admitted is too few for that, three standard deviations of ρ over uniformly
/// random permutations of `n` (`1/√(n−1)`). A fixed 0.1 fails a fair shuffle of 141 about one
/// run in four (sd 0.085); the bound keeps the check to what the sample can tell.
pub fn prequeue_rho_bound(n: u64) -> f64 {
    let sd = 1.0 / ((n.max(2) - 1) as f64).sqrt();
    (3.0 * sd).max(0.1)
}

/// The targets: the run with the room against the same arrivals without it.
pub fn room_figures(room: &Report, no_room: &Report) -> RoomComparison {
    let (w, wo) = (&room.surge, &no_room.surge);
    let mut targets = Vec::new();
    let mut add = |figure: &str, target: &str, measured: String, met: Option<bool>| {
        targets.push(Target {
            figure: figure.into(),
            target: target.into(),
            measured,
            met,
        })
    };
    match &w.admitted_requests {
        Some(l) => add(
            "admitted applicants' request p99",
            "≤ 300 ms",
            format!("{} ms ({} requests)", l.p99_ms, l.count),
            Some(l.p99_ms <= 300.0),
        ),
        None => add(
            "admitted applicants' request p99",
            "≤ 300 ms",
            "nobody was admitted".into(),
            Some(false),
        ),
    }
    add(
        "5xx answers",
        "0",
        format!(
            "{} (without the room: {})",
            w.server_errors_5xx, wo.server_errors_5xx
        ),
        Some(w.server_errors_5xx == 0),
    );
    add(
        "overload sheds (503 overloaded)",
        "0",
        format!(
            "{} (without the room: {})",
            w.overload_sheds, wo.overload_sheds
        ),
        Some(w.overload_sheds == 0),
    );
    let ratio = w.bookings_per_sec_peak_10s / wo.bookings_per_sec_peak_10s.max(f64::MIN_POSITIVE);
    add(
        "bookings/s (best 10 s) vs the saturation rate without the room",
        "≥ 90%",
        format!(
            "{:.2} vs {:.2}: {:.0}%",
            w.bookings_per_sec_peak_10s,
            wo.bookings_per_sec_peak_10s,
            ratio * 100.0,
        ),
        Some(ratio >= 0.9),
    );
    let order = w.order.clone().unwrap_or_default();
    let rho = |r: Option<f64>, n: u64| match r {
        Some(r) => format!("{r:.3} ({n} admitted)"),
        None => format!("not measurable ({n} admitted)"),
    };
    let shuffle_bound = prequeue_rho_bound(order.admitted_prequeue);
    add(
        "Spearman ρ, join order vs admission order, pre-queue joiners",
        &format!(
            "≈ 0 (abs(ρ) ≤ {shuffle_bound:.3}: 0.1, or 3 sd of a fair shuffle of {} when wider)",
            order.admitted_prequeue
        ),
        rho(order.spearman_prequeue, order.admitted_prequeue),
        order.spearman_prequeue.map(|r| r.abs() <= shuffle_bound),
    );
    add(
        "Spearman ρ, join order vs admission order, after the opening",
        "≥ 0.95",
        rho(
            order.spearman_after_opening,
            order.admitted - order.admitted_prequeue,
        ),
        order.spearman_after_opening.map(|r| r >= 0.95),
    );
    add(
        "bots' share of seats taken (holds; bots never confirm) vs their share of the identities seeking a seat",
        "≤",
        format!(
            "{:.4} ({} of {} holds) vs {:.4}; without the room {:.4} vs {:.4}",
            w.bot_share_of_holds,
            w.bot_holds_granted,
            w.holds_granted,
            w.bot_share_of_identities,
            wo.bot_share_of_holds,
            wo.bot_share_of_identities
        ),
        Some(w.bot_share_of_holds <= w.bot_share_of_identities),
    );
    add(
        "ETA error p50 (abs(ETA − wait since it was given) / wait)",
        "≤ 20%",
        match order.eta_error_p50 {
            Some(e) => format!(
                "{:.1}% (p90 {:.1}%, {} tickets: {} pre-queue joiners from their first ETA after the opening, the rest from their join)",
                e * 100.0,
                order.eta_error_p90.unwrap_or_default() * 100.0,
                order.eta_samples,
                order.eta_samples_prequeue
            ),
            None => "no ticket with an ETA was admitted after a wait".into(),
        },
        order.eta_error_p50.map(|e| e <= 0.2),
    );
    add(
        "audit: every booking write in the room's scope carried a valid pass",
        "passed",
        match room.audit.check("bookings_carried_a_valid_pass") {
            Some(c) => c.detail.clone(),
            None => "not checked".into(),
        },
        room.audit
            .check("bookings_carried_a_valid_pass")
            .map(|c| c.passed),
    );
    add(
        "audit: tickets admitted in the order recomputed from the revealed seed",
        "passed",
        match room.audit.check("room_admitted_in_published_order") {
            Some(c) => c.detail.clone(),
            None => "not checked".into(),
        },
        room.audit
            .check("room_admitted_in_published_order")
            .map(|c| c.passed),
    );
    RoomComparison {
        scenario: room.scenario.name.clone(),
        backend: room.target.backend.clone(),
        rate_scale: room.scenario.rate_scale,
        with_room: w.clone(),
        without_room: wo.clone(),
        targets,
    }
}

pub fn room_markdown(c: &RoomComparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Load test: {}, with the waiting room and without\n\nThe same arrivals (same seed) against a fresh server each, {}, rate scale {}; each run's own report is in `room/` and `no-room/`.\n",
        c.scenario, c.backend, c.rate_scale
    );
    let _ = writeln!(s, "| figure | target | measured | met |");
    let _ = writeln!(s, "|---|---|---|---|");
    for t in &c.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.figure, t.target, t.measured, met
        );
    }
    if let Some(o) = &c.with_room.order {
        let _ = writeln!(
            s,
            "\nRoom {}: admission {}, {} a minute at the end; {} tickets ({} in the pre-queue), {} admitted ({} of the pre-queue), {} places passed over (ticket gone).",
            o.room_id,
            o.admission,
            o.final_rate_per_minute,
            o.tickets,
            o.prequeue_tickets,
            o.admitted,
            o.admitted_prequeue,
            o.skipped
        );
        if let (Some(p50), Some(p95)) = (o.pass_pickup_p50_secs, o.pass_pickup_p95_secs) {
            let _ = writeln!(
                s,
                "Admission is the tick whose frontier passed a ticket; applicants learned of it at their next poll, {p50:.0} s later at the median (p95 {p95:.0} s)."
            );
        }
    }
    s
}

/// Writes `room.json` and `room.md` into `dir`.
pub fn write_room_figures(dir: &Path, c: &RoomComparison) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(c).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("room.json"), json)?;
    std::fs::write(dir.join("room.md"), room_markdown(c))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prequeue_rho_bound;
    use crate::domain::lottery::LotterySeed;
    use crate::loadtest::room_audit::spearman;
    use crate::room::QueueOrder;

    #[test]
    fn the_prequeue_bound_is_three_sd_of_a_fair_shuffle_until_that_is_under_0_1() {
        assert!((prequeue_rho_bound(141) - 3.0 / 140f64.sqrt()).abs() < 1e-12);
        assert_eq!(prequeue_rho_bound(901), 0.1);
        assert_eq!(prequeue_rho_bound(1_000_000), 0.1);
        // The room's own shuffle of 141 over 400 seeds: nearly every one within the bound
        // (3 sd: about 0.3 % outside), where a fixed 0.1 fails about a quarter.
        let n = 141u64;
        let join: Vec<f64> = (0..n).map(|s| s as f64).collect();
        let (mut outside, mut over_tenth) = (0, 0);
        for s in 0..400u32 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&s.to_le_bytes());
            let order = QueueOrder::new(&LotterySeed::from_bytes(bytes), n);
            let admitted: Vec<f64> = (0..n).map(|seq| order.rank(seq) as f64).collect();
            let rho = spearman(&join, &admitted).unwrap();
            outside += usize::from(rho.abs() > prequeue_rho_bound(n));
            over_tenth += usize::from(rho.abs() > 0.1);
        }
        assert!(outside <= 4, "{outside} of 400 outside");
        assert!(over_tenth >= 60, "{over_tenth} of 400 over 0.1");
        // The join order kept (ρ = 1) is far outside it.
        assert!(spearman(&join, &join).unwrap() > prequeue_rho_bound(n));
    }
}
