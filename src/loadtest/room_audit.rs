//! The waiting room after a run, from the database: the audit's check that every booking
//! write in the room's scope carried a valid pass, and the order figures (join order against
//! admission order, ETA error) read from the room's tickets.

use std::collections::HashMap;

use serde::Serialize;

use super::audit::{check, CheckResult};
use crate::store::{on_pool, Store, StoreError};

/// The room's order and ETAs as its tickets recorded them.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct RoomOrder {
    pub room_id: String,
    pub tickets: u64,
    /// Tickets that joined before the opening (shuffled there).
    pub prequeue_tickets: u64,
    pub admitted: u64,
    pub admitted_prequeue: u64,
    /// Spearman's ρ between join order (`seq`) and admission order, among admitted pre-queue
    /// joiners: ≈ 0 if the opening's shuffle is fair. Admission order is by `admitted_at` (the
    /// tick whose frontier passed the ticket, migration 0019), and within a tick by the rank
    /// recomputed from the revealed seed (a tick passes ranks in order).
    pub spearman_prequeue: Option<f64>,
    /// The same among admitted later joiners: near 1 if they are admitted first in, first out.
    pub spearman_after_opening: Option<f64>,
    /// |ETA − the wait from when it was given until admission| / that wait, over admitted
    /// tickets that waited at least a second after their ETA: given at the join for later
    /// joiners, at the first poll after the opening for pre-queue joiners (who have no order,
    /// hence no ETA, before it).
    pub eta_error_p50: Option<f64>,
    pub eta_error_p90: Option<f64>,
    /// Seconds from a ticket's admission to its first poll that was given the pass
    /// (`pass_given_at − admitted_at`): how long applicants took to learn they were in.
    #[serde(default)]
    pub pass_pickup_p50_secs: Option<f64>,
    #[serde(default)]
    pub pass_pickup_p95_secs: Option<f64>,
    pub eta_samples: u64,
    /// Of `eta_samples`, pre-queue joiners.
    #[serde(default)]
    pub eta_samples_prequeue: u64,
    /// The room's admission as created (JSON: `{"fixed":…}` or `{"auto":…}`), its rate at the
    /// end of the run (the controller's last, for `auto`), and the places passed over because
    /// their ticket was gone.
    #[serde(default)]
    pub admission: String,
    #[serde(default)]
    pub final_rate_per_minute: i64,
    #[serde(default)]
    pub skipped: i64,
}

/// seq, eta_at_join, when it was given (`eta_given_at`, else `joined_at`), admitted_at,
/// pass_given_at.
type TicketRow = (i64, Option<i64>, i64, Option<i64>, Option<i64>);

/// What the audit reads of a room to order its tickets: the pre-queue's size once frozen and
/// the seed (served from the opening), the admission as created, the final rate and skips.
type RoomRow = (Option<i64>, String, String, i64, i64);

async fn room_row(store: &Store, room_id: &str) -> Result<Option<RoomRow>, StoreError> {
    Ok(
        on_pool!(store, pool, q = "SELECT prequeue, seed, admission, rate_per_minute, skipped FROM waiting_rooms WHERE id = $1" => {
            sqlx::query_as(q).bind(room_id).fetch_optional(pool).await?
        }),
    )
}

async fn ticket_rows(store: &Store, room_id: &str) -> Result<Vec<TicketRow>, StoreError> {
    Ok(
        on_pool!(store, pool, q = "SELECT seq, eta_at_join, COALESCE(eta_given_at, joined_at), admitted_at, pass_given_at FROM room_tickets WHERE room_id = $1 ORDER BY seq" => {
            sqlx::query_as(q).bind(room_id).fetch_all(pool).await?
        }),
    )
}

/// Each ticket's rank in the room's order, recomputed from the seed (the opening's shuffle
/// of the pre-queue, then join order): the audit's own reading of the published order.
fn ranks_of(seed_hex: &str, prequeue: i64, rows: &[TicketRow]) -> Option<Vec<u64>> {
    let seed = crate::domain::lottery::LotterySeed::from_hex(seed_hex).ok()?;
    let order = crate::room::QueueOrder::new(&seed, prequeue.max(0) as u64);
    Some(rows.iter().map(|r| order.rank(r.0.max(0) as u64)).collect())
}

/// Reads the room's tickets and works out its order figures.
pub async fn room_order(store: &Store, room_id: &str) -> Result<RoomOrder, StoreError> {
    let (prequeue, seed, admission, rate, skipped) =
        room_row(store, room_id).await?.unwrap_or_default();
    let prequeue = prequeue.unwrap_or(0);
    let rows = ticket_rows(store, room_id).await?;
    // Without a readable seed, seq stands in for the rank (ties then stay ties).
    let ranks = ranks_of(&seed, prequeue, &rows)
        .unwrap_or_else(|| rows.iter().map(|r| r.0.max(0) as u64).collect());
    Ok(RoomOrder {
        admission,
        final_rate_per_minute: rate,
        skipped,
        ..order_of(room_id, prequeue, &rows, &ranks)
    })
}

/// `room_admitted_in_published_order`: no admitted ticket was admitted before one ranked
/// ahead of it in the order recomputed from the room's revealed seed (`admitted_at` never
/// decreases along the ranks). A ticket admitted late because its applicant polled late is
/// not a violation: the admission is the frontier's tick, not the poll.
pub async fn admitted_in_published_order(
    store: &Store,
    room_id: &str,
) -> Result<CheckResult, StoreError> {
    let name = "room_admitted_in_published_order";
    let Some((prequeue, seed, ..)) = room_row(store, room_id).await? else {
        return Ok(check(
            name,
            vec![format!("room {room_id} is not in the database")],
            String::new(),
            "the run's room is missing".into(),
        ));
    };
    let rows = ticket_rows(store, room_id).await?;
    let Some(ranks) = ranks_of(&seed, prequeue.unwrap_or(0), &rows) else {
        return Ok(check(
            name,
            vec![format!("room {room_id}'s seed is not 64 hex digits")],
            String::new(),
            "the room's order cannot be recomputed".into(),
        ));
    };
    let mut admitted: Vec<(u64, i64, i64)> = rows
        .iter()
        .zip(&ranks)
        .filter_map(|(r, &rank)| r.3.map(|at| (rank, at, r.0)))
        .collect();
    admitted.sort_unstable();
    let violations: Vec<String> = admitted
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| {
            format!(
                "ticket {} (rank {}) admitted at {}, before ticket {} (rank {}) at {}",
                w[1].2, w[1].0, w[1].1, w[0].2, w[0].0, w[0].1
            )
        })
        .collect();
    Ok(check(
        name,
        violations,
        format!(
            "{} admitted tickets of room {room_id} were admitted in the order its seed gives",
            admitted.len()
        ),
        format!("tickets of room {room_id} admitted out of the published order"),
    ))
}

fn order_of(room_id: &str, prequeue: i64, rows: &[TicketRow], ranks: &[u64]) -> RoomOrder {
    // Admitted tickets in admission order: by the tick, then by rank within it.
    let mut by_admission: Vec<(i64, u64, i64)> = rows
        .iter()
        .zip(ranks)
        .filter_map(|(r, &rank)| r.3.map(|at| (at, rank, r.0)))
        .collect();
    by_admission.sort_unstable();
    let admitted: Vec<(f64, f64, bool)> = by_admission
        .iter()
        .enumerate()
        .map(|(place, &(_, _, seq))| (seq as f64, place as f64, seq < prequeue))
        .collect();
    let group = |pre: bool| {
        let (x, y): (Vec<f64>, Vec<f64>) = admitted
            .iter()
            .filter(|a| a.2 == pre)
            .map(|a| (a.0, a.1))
            .unzip();
        spearman(&x, &y)
    };
    let measured: Vec<(f64, bool)> = rows
        .iter()
        .filter_map(|(seq, eta, given, at, _)| {
            let (eta, wait) = ((*eta)?, (*at)? - given);
            (wait >= 1).then(|| ((eta - wait).abs() as f64 / wait as f64, *seq < prequeue))
        })
        .collect();
    let mut errors: Vec<f64> = measured.iter().map(|m| m.0).collect();
    errors.sort_by(f64::total_cmp);
    let mut pickups: Vec<f64> = rows
        .iter()
        .filter_map(|r| Some(((r.4? - r.3?).max(0)) as f64))
        .collect();
    pickups.sort_by(f64::total_cmp);
    RoomOrder {
        room_id: room_id.to_string(),
        tickets: rows.len() as u64,
        prequeue_tickets: rows.iter().filter(|r| r.0 < prequeue).count() as u64,
        admitted: admitted.len() as u64,
        admitted_prequeue: admitted.iter().filter(|a| a.2).count() as u64,
        spearman_prequeue: group(true),
        spearman_after_opening: group(false),
        eta_error_p50: quantile(&errors, 0.5),
        eta_error_p90: quantile(&errors, 0.9),
        eta_samples: errors.len() as u64,
        eta_samples_prequeue: measured.iter().filter(|m| m.1).count() as u64,
        pass_pickup_p50_secs: quantile(&pickups, 0.5),
        pass_pickup_p95_secs: quantile(&pickups, 0.95),
        ..RoomOrder::default()
    }
}

/// The `q` quantile of sorted values (nearest rank), none of none.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
}

/// Ranks from 1, ties given their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's ρ: Pearson's correlation of the ranks; none under 3 pairs or with a constant
/// side.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

type RoomScope = (String, String, i64, i64);

/// `bookings_carried_a_valid_pass`: every hold and reschedule made in the room's scope (its
/// service, at an office of its provinces) while it was active has a recorded use of a valid
/// pass (`room_pass_uses`, migration 0015: unexpired when used, of an admitted ticket of the
/// same citizen); counted per citizen and kind, so a citizen with more holds than valid uses
/// is a violation. Holds the writer made for waiters (`offer_…`) need none. A direct booking
/// (`POST /v1/appointments`, an office and start or a pick) writes a confirmed hold with its
/// appointment; told apart by its `appointment_booked` event (no `hold_id`: not the
/// confirmation of a hold), it needs a use of kind `appointment`, which is what the pass check
/// records for it.
pub async fn bookings_carried_a_valid_pass(
    store: &Store,
    room_id: &str,
) -> Result<CheckResult, StoreError> {
    let room: Option<RoomScope> = on_pool!(store, pool, q = "SELECT service, provinces, prequeue_opens_at, closes_at FROM waiting_rooms WHERE id = $1" => {
        sqlx::query_as(q).bind(room_id).fetch_optional(pool).await?
    });
    let Some((service, provinces, from, to)) = room else {
        return Ok(check(
            "bookings_carried_a_valid_pass",
            vec![format!("room {room_id} is not in the database")],
            String::new(),
            "the run's room is missing".into(),
        ));
    };
    let provinces: Vec<String> = serde_json::from_str(&provinces).unwrap_or_default();
    let in_scope = |p: &str| provinces.is_empty() || provinces.iter().any(|q| q == p);
    let holds: Vec<(String, String, i64, i64)> = on_pool!(store, pool, q = "SELECT h.national_code, o.province, h.slot_id, h.created_at FROM holds h JOIN slots s ON s.id = h.slot_id JOIN offices o ON o.id = s.office_id WHERE h.created_at >= $1 AND h.created_at < $2 AND h.service = $3 AND h.id NOT LIKE 'offer%'" => {
        sqlx::query_as(q).bind(from).bind(to).bind(&service).fetch_all(pool).await?
    });
    let mut direct = direct_bookings(store, from, to, &service).await?;
    let moves: Vec<(String, String)> = on_pool!(store, pool, q = "SELECT e.actor, e.payload_json FROM events e JOIN appointments a ON a.tracking_code = e.subject WHERE e.kind = 'appointment_rescheduled' AND e.at >= $1 AND e.at < $2 AND a.service = $3" => {
        sqlx::query_as(q).bind(from).bind(to).bind(&service).fetch_all(pool).await?
    });
    let mut needed: HashMap<(String, &'static str), i64> = HashMap::new();
    for (code, province, slot, at) in holds {
        let kind = match direct.get_mut(&(code.clone(), slot, at)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                "appointment"
            }
            _ => "hold",
        };
        if in_scope(&province) {
            *needed.entry((code, kind)).or_default() += 1;
        }
    }
    for (code, payload) in &moves {
        let slot = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["new_slot_id"].as_i64());
        let province: Option<String> = match slot {
            Some(slot) => {
                on_pool!(store, pool, q = "SELECT o.province FROM slots s JOIN offices o ON o.id = s.office_id WHERE s.id = $1" => {
                    sqlx::query_scalar(q).bind(slot).fetch_optional(pool).await?
                })
            }
            None => None,
        };
        if province.is_none_or(|p| in_scope(&p)) {
            *needed.entry((code.clone(), "reschedule")).or_default() += 1;
        }
    }
    let uses: Vec<(String, String, i64)> = on_pool!(store, pool, q = "SELECT u.national_code, u.kind, COUNT(*) FROM room_pass_uses u WHERE u.room_id = $1 AND u.pass_expires_at > u.used_at AND EXISTS (SELECT 1 FROM room_tickets t WHERE t.room_id = u.room_id AND t.national_code = u.national_code AND t.admitted_at IS NOT NULL AND t.admitted_at <= u.used_at) GROUP BY u.national_code, u.kind" => {
        sqlx::query_as(q).bind(room_id).fetch_all(pool).await?
    });
    let valid: HashMap<(String, String), i64> = uses
        .into_iter()
        .map(|(code, kind, n)| ((code, kind), n))
        .collect();
    let mut violations: Vec<String> = needed
        .iter()
        .filter_map(|((code, kind), n)| {
            let have = valid
                .get(&(code.clone(), kind.to_string()))
                .copied()
                .unwrap_or(0);
            (have < *n).then(|| {
                format!(
                    "citizen {code}: {n} {kind}(s) in the room's scope, {have} with a valid pass"
                )
            })
        })
        .collect();
    violations.sort();
    let writes: i64 = needed.values().sum();
    Ok(check(
        "bookings_carried_a_valid_pass",
        violations,
        format!(
            "all {writes} holds, bookings and reschedules in room {room_id}'s scope carried a valid pass"
        ),
        format!("booking writes in room {room_id}'s scope without a valid pass"),
    ))
}

/// The direct bookings made in `[from, to)` for `service`, by (citizen, slot, time): their
/// `appointment_booked` events name no `hold_id` (a hold's confirmation does) and no
/// `pickup_of` (staff's card-pickup visits).
async fn direct_bookings(
    store: &Store,
    from: i64,
    to: i64,
    service: &str,
) -> Result<HashMap<(String, i64, i64), i64>, StoreError> {
    let booked: Vec<(String, String, i64)> = on_pool!(store, pool, q = "SELECT e.actor, e.payload_json, e.at FROM events e JOIN appointments a ON a.tracking_code = e.subject WHERE e.kind = 'appointment_booked' AND e.at >= $1 AND e.at < $2 AND a.service = $3" => {
        sqlx::query_as(q).bind(from).bind(to).bind(service).fetch_all(pool).await?
    });
    let mut direct: HashMap<(String, i64, i64), i64> = HashMap::new();
    for (actor, payload, at) in booked {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else {
            continue;
        };
        if v.get("hold_id").is_some() || v.get("pickup_of").is_some() {
            continue;
        }
        if let Some(slot) = v["slot_id"].as_i64() {
            *direct.entry((actor, slot, at)).or_default() += 1;
        }
    }
    Ok(direct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_is_one_for_the_same_order_minus_one_reversed_and_handles_ties() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[10.0, 20.0, 30.0, 40.0, 50.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Admissions seen in the same second share a rank: still perfectly monotone.
        let tied = spearman(&x, &[7.0, 7.0, 8.0, 8.0, 9.0]).unwrap();
        assert!(tied > 0.9 && tied < 1.0, "{tied}");
        assert_eq!(spearman(&x, &[1.0; 5]), None);
        assert_eq!(spearman(&x[..2], &x[..2]), None);
    }

    #[test]
    fn order_figures_split_the_prequeue_from_later_joiners() {
        // seq, eta, given at, admitted_at, pass given at. The pre-queue (seq < 4) shuffled to
        // ranks 1, 3, 0, 2 and admitted in that order (seq 2 and 0 in the same tick, 100),
        // given their ETA at their first poll after the opening (99, 100) but for seq 3,
        // admitted before its first poll (no wait, no sample); later joiners first in, first out, seq 5 picking its pass up 4 s
        // late; seq 7 not admitted.
        let rows: Vec<TicketRow> = vec![
            (0, Some(1), 99, Some(100), Some(101)),
            (1, Some(3), 100, Some(103), Some(103)),
            (2, Some(0), 100, Some(100), Some(100)),
            (3, Some(0), 102, Some(102), Some(102)),
            (4, Some(10), 100, Some(110), Some(110)),
            (5, Some(10), 100, Some(112), Some(116)),
            (6, Some(10), 101, Some(121), Some(121)),
            (7, Some(10), 101, None, None),
        ];
        let ranks = [1, 3, 0, 2, 4, 5, 6, 7];
        let o = order_of("room_x", 4, &rows, &ranks);
        assert_eq!((o.tickets, o.prequeue_tickets), (8, 4));
        assert_eq!((o.admitted, o.admitted_prequeue), (7, 4));
        assert!((o.spearman_after_opening.unwrap() - 1.0).abs() < 1e-12);
        // Admission order seq 2, 0, 3, 1, so places 1, 3, 0, 2 against seq 0, 1, 2, 3:
        // Σd² = 10, ρ = 1 − 6·10/(4·15) = 0 (no ties: the tick shared by seq 2 and 0 is split
        // by rank; by time alone they would share a place and ρ would be 0.21).
        let rho = o.spearman_prequeue.unwrap();
        assert!(rho.abs() < 1e-12, "{rho}");
        // Errors 0, 0 (pre-queue), 0, 2/12, 10/20: the median is 0, the p90 10/20.
        assert_eq!((o.eta_samples, o.eta_samples_prequeue), (5, 2));
        assert_eq!(o.eta_error_p50, Some(0.0));
        assert!((o.eta_error_p90.unwrap() - 0.5).abs() < 1e-12);
        // Pick-ups 1, 0, 0, 0, 0, 4, 0 s.
        assert_eq!(o.pass_pickup_p50_secs, Some(0.0));
        assert_eq!(o.pass_pickup_p95_secs, Some(4.0));
    }
}
