//! The caps on an applicant's own reschedules and cancellations (`Limits`).

use super::*;

fn reschedule(code: &str, tracking: &str, to: i64) -> Request {
    Request::Reschedule(Reschedule {
        national_code: code.into(),
        tracking_code: tracking.into(),
        new_slot_id: to,
    })
}

fn cancel(code: &str, tracking: &str) -> Request {
    Request::Cancel(Cancel {
        national_code: code.into(),
        tracking_code: tracking.into(),
    })
}

fn relocate(tracking: &str, to: i64) -> Request {
    Request::Relocate(Relocate {
        tracking_code: tracking.into(),
        new_slot_id: Some(to),
        reason: RelocationReason::OfficeClosed,
        notice_key: format!("closure:{to}"),
        actor: "admin:root".into(),
    })
}

fn slots(n: i64) -> Vec<SlotRow> {
    (1..=n).map(|id| slot(id, 1)).collect()
}

/// The appointment as the batch left it (an update, or a row made in the batch).
fn moved_count(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Rescheduled { appointment, .. } | Outcome::Relocated { appointment, .. } => {
            appointment.reschedules
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_third_reschedule_is_refused_and_writes_nothing() {
    let mut state = state_with(&slots(4), &["a"]);
    booked(&mut state, "a", 1, "T1");
    // One batch after another, as the database would carry the count.
    for (to, count) in [(2, 1), (3, 2)] {
        let (outcomes, effects) = decide(&mut state, &[reschedule("a", "T1", to)], 10);
        assert_eq!(moved_count(&outcomes[0]), count);
        assert_eq!(effects.appointment_updates["T1"].reschedules, count);
        state
            .appointments
            .insert("T1".into(), effects.appointment_updates["T1"].clone());
    }
    let (outcomes, effects) = decide(&mut state, &[reschedule("a", "T1", 4)], 20);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::RescheduleLimitReached { limit: 2 })
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(state.slots[&3].taken, 1, "the appointment keeps its seat");
    assert_eq!(state.slots[&4].taken, 0);
}

#[test]
fn reschedules_within_one_batch_count_too() {
    let mut state = state_with(&slots(4), &["a"]);
    booked(&mut state, "a", 1, "T1");
    let (outcomes, effects) = decide(
        &mut state,
        &[
            reschedule("a", "T1", 2),
            reschedule("a", "T1", 3),
            reschedule("a", "T1", 4),
        ],
        10,
    );
    assert_eq!(moved_count(&outcomes[1]), 2);
    assert_eq!(
        outcomes[2],
        Outcome::Refused(Refusal::RescheduleLimitReached { limit: 2 })
    );
    assert_eq!(effects.appointment_updates["T1"].slot_id, 3);
    assert_eq!(effects.slot_deltas.get(&4), None);
    assert_eq!(
        effects
            .events
            .iter()
            .filter(|e| e.kind == "appointment_rescheduled")
            .count(),
        2
    );
}

/// A refused move (full slot) is not a move; an administrator's relocation is not the
/// applicant's.
#[test]
fn only_the_applicants_own_moves_count() {
    let mut state = state_with(
        &[
            slot(1, 1),
            slot(2, 1),
            slot(3, 1),
            slot(4, 1),
            slot(5, 0),
            slot(6, 1),
        ],
        &["a"],
    );
    booked(&mut state, "a", 1, "T1");
    // (A relocation's old slot is being closed: its seat is cut, not offered; the last move
    // goes to a sixth slot.)
    let (outcomes, _) = decide(
        &mut state,
        &[
            reschedule("a", "T1", 5),
            relocate("T1", 2),
            relocate("T1", 3),
            reschedule("a", "T1", 4),
            reschedule("a", "T1", 6),
        ],
        10,
    );
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::SlotFull { slot_id: 5 })
    );
    assert_eq!(moved_count(&outcomes[1]), 0);
    assert_eq!(moved_count(&outcomes[2]), 0);
    assert_eq!(moved_count(&outcomes[3]), 1);
    assert_eq!(moved_count(&outcomes[4]), 2);
}

#[test]
fn the_cap_is_the_configured_one() {
    let mut state = state_with(&slots(3), &["a"]);
    state.limits.max_reschedules = 0;
    booked(&mut state, "a", 1, "T1");
    let (outcomes, _) = decide(&mut state, &[reschedule("a", "T1", 2)], 10);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::RescheduleLimitReached { limit: 0 })
    );
    state.limits.max_reschedules = 5;
    let (outcomes, _) = decide(&mut state, &[reschedule("a", "T1", 2)], 10);
    assert_eq!(moved_count(&outcomes[0]), 1);
}

/// Three appointments of one citizen (different services), booked.
fn three_booked(state: &mut BatchState) {
    for (i, service) in ["first_issuance", "replacement", "renewal"]
        .into_iter()
        .enumerate()
    {
        let id = i as i64 + 1;
        let tracking = format!("T{id}");
        let slot = &state.slots[&id];
        let row = AppointmentRow {
            tracking_code: tracking.clone(),
            slot_id: id,
            office_id: slot.office_id.clone(),
            start_at: slot.start_at,
            application_id: format!("app-{service}"),
            national_code: "a".into(),
            service: service.into(),
            payment_id: None,
            status: AppointmentStatus::Booked,
            created_at: 0,
            updated_at: 0,
            reschedules: 0,
        };
        state.slots.get_mut(&id).unwrap().taken = 1;
        state.appointments.insert(tracking, row);
    }
    state.index();
}

#[test]
fn a_cancellation_beyond_the_cap_in_the_window_is_refused_and_writes_nothing() {
    let mut state = state_with(&slots(3), &["a"]);
    three_booked(&mut state);
    // Two cancellations already in the window (read by the writer).
    state.recent_cancellations.insert("a".into(), 2);
    let (outcomes, effects) = decide(&mut state, &[cancel("a", "T1"), cancel("a", "T2")], 10);
    assert!(matches!(outcomes[0], Outcome::Cancelled { .. }));
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::CancellationLimitReached {
            limit: 3,
            window_days: 30
        })
    );
    // Only the first one's writes.
    assert_eq!(
        effects.appointment_updates.keys().collect::<Vec<_>>(),
        ["T1"]
    );
    assert_eq!(effects.slot_deltas.keys().collect::<Vec<_>>(), [&1]);
    assert_eq!(effects.events.len(), 1);
    assert_eq!(state.slots[&2].taken, 1, "T2 keeps its seat");

    // Another citizen is not concerned; a refused cancellation does not count.
    assert_eq!(state.recent_cancellations["a"], 3);
    let (outcomes, _) = decide(&mut state, &[cancel("a", "T3")], 11);
    assert!(matches!(
        outcomes[0],
        Outcome::Refused(Refusal::CancellationLimitReached { .. })
    ));
}

#[test]
fn the_cancellation_cap_comes_after_ownership_and_status() {
    let mut state = state_with(&slots(3), &["a", "b"]);
    three_booked(&mut state);
    state.limits.max_cancellations = 0;
    let (outcomes, _) = decide(&mut state, &[cancel("b", "T1"), cancel("a", "T9")], 10);
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::AppointmentNotFound));
    assert_eq!(outcomes[1], Outcome::Refused(Refusal::AppointmentNotFound));
    state.limits.max_cancellations = 1;
    let (outcomes, _) = decide(&mut state, &[cancel("a", "T1"), cancel("a", "T1")], 10);
    assert!(matches!(outcomes[0], Outcome::Cancelled { .. }));
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::NotActive {
            status: AppointmentStatus::Cancelled
        }),
        "already cancelled says so, not that the cap is reached"
    );
}

#[test]
fn the_window_ends_at_the_batchs_time() {
    let limits = Limits::default();
    assert_eq!(
        (
            limits.max_reschedules,
            limits.max_cancellations,
            limits.cancellation_window_days
        ),
        (2, 3, 30)
    );
    assert_eq!(limits.cancellations_counted_after(40 * 86_400), 10 * 86_400);
    assert_eq!(BatchState::default().limits, limits);
}

#[test]
fn a_cancellation_reads_its_citizens_recent_cancellations() {
    let mut keys = BatchKeys::default();
    cancel("b", "T2").touches(&mut keys);
    cancel("a", "T1").touches(&mut keys);
    cancel("a", "T3").touches(&mut keys);
    reschedule("c", "T4", 1).touches(&mut keys);
    keys.normalise();
    assert_eq!(keys.cancelling, ["a", "b"]);
    assert_eq!(keys.appointments, ["T1", "T2", "T3", "T4"]);
}
