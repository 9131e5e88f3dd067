//! Hold, confirm, release, book, cancel, reschedule, expire.

use super::*;

#[test]
fn a_hold_needs_the_citizens_own_application_for_the_service() {
    let mut state = state_with(&[slot(1, 5)], &["a", "b"]);
    let mut foreign = hold("a", 1, "h1");
    if let Request::Hold(h) = &mut foreign {
        h.application_id = "app-b".into();
    }
    let mut other_service = hold("a", 1, "h2");
    if let Request::Hold(h) = &mut other_service {
        h.service = "renewal".into();
    }
    let unknown = hold("c", 1, "h3");
    let (outcomes, effects) = decide(&mut state, &[foreign, other_service, unknown], 0);
    for o in &outcomes {
        assert_eq!(o, &Outcome::Refused(Refusal::ApplicationNotFound));
    }
    assert!(effects.new_holds.is_empty() && effects.slot_deltas.is_empty());
    let (outcomes, _) = decide(&mut state, &[hold("a", 1, "h4")], 0);
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");
}

#[test]
fn last_seat_goes_to_the_first_in_arrival_order() {
    let mut state = state_with(&[slot(1, 1)], &["a", "b"]);
    let (outcomes, effects) = decide(&mut state, &[hold("a", 1, "h1"), hold("b", 1, "h2")], 0);
    assert!(matches!(outcomes[0], Outcome::Held { .. }));
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::SlotFull { slot_id: 1 })
    );
    assert_eq!(effects.slot_deltas[&1], 1);
    assert_eq!(effects.new_holds.len(), 1);
}

#[test]
fn one_live_hold_per_citizen_within_a_batch() {
    let mut state = state_with(&[slot(1, 5), slot(2, 5)], &["a"]);
    let (outcomes, effects) = decide(&mut state, &[hold("a", 1, "h1"), hold("a", 2, "h2")], 0);
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::AlreadyHolding {
            hold_id: "h1".into()
        })
    );
    assert_eq!(effects.slot_deltas.len(), 1);
}

#[test]
fn hold_then_confirm_in_one_batch_books_once() {
    let mut state = state_with(&[slot(1, 2)], &["a"]);
    let (outcomes, effects) = decide(
        &mut state,
        &[
            hold("a", 1, "h1"),
            confirm("a", "h1", "T1"),
            hold("a", 1, "h3"),
        ],
        10,
    );
    assert!(
        matches!(&outcomes[1], Outcome::Booked { appointment } if appointment.tracking_code == "T1")
    );
    assert_eq!(
        outcomes[2],
        Outcome::Refused(Refusal::AlreadyBooked {
            tracking_code: "T1".into()
        })
    );
    assert_eq!(effects.new_holds[0].status, HoldStatus::Confirmed);
    assert_eq!(
        effects.slot_deltas[&1], 1,
        "the hold's seat becomes the appointment's seat"
    );
}

#[test]
fn confirm_needs_a_paid_payment_and_leaves_the_hold_when_declined() {
    let mut state = state_with(&[slot(1, 2)], &["a"]);
    state.payments.get_mut("pay-a").unwrap().status = PaymentStatus::Declined;
    let (outcomes, effects) = decide(
        &mut state,
        &[hold("a", 1, "h1"), confirm("a", "h1", "T1")],
        10,
    );
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::PaymentNotPaid {
            status: PaymentStatus::Declined
        })
    );
    assert_eq!(effects.new_holds[0].status, HoldStatus::Live);
}

#[test]
fn someone_elses_hold_is_not_found() {
    let mut state = state_with(&[slot(1, 2)], &["a", "b"]);
    let (outcomes, _) = decide(
        &mut state,
        &[hold("a", 1, "h1"), confirm("b", "h1", "T1")],
        10,
    );
    assert_eq!(outcomes[1], Outcome::Refused(Refusal::HoldNotFound));
}

#[test]
fn an_expired_hold_cannot_be_confirmed_and_frees_its_seat() {
    let mut state = state_with(&[slot(1, 1)], &["a"]);
    let (_, _) = decide(&mut state, &[hold("a", 1, "h1")], 0);
    let h = state.holds.entry("h1".into()).or_insert(HoldRow {
        id: "h1".into(),
        slot_id: 1,
        application_id: "app-a".into(),
        national_code: "a".into(),
        service: "first_issuance".into(),
        status: HoldStatus::Live,
        created_at: 0,
        expires_at: 600,
    });
    h.status = HoldStatus::Live;
    let (outcomes, effects) = decide(&mut state, &[confirm("a", "h1", "T1")], 600);
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::HoldExpired));
    assert_eq!(effects.hold_status["h1"], HoldStatus::Expired);
    assert_eq!(effects.slot_deltas[&1], -1);
}

#[test]
fn reschedule_keeps_the_old_seat_when_the_new_slot_is_full() {
    let mut state = state_with(&[slot(1, 1), slot(2, 1)], &["a", "b"]);
    replay(
        &mut state,
        &[vec![
            hold("a", 1, "h1"),
            confirm("a", "h1", "T1"),
            hold("b", 2, "h2"),
        ]],
        0,
    );
    let (outcomes, effects) = decide(
        &mut state,
        &[Request::Reschedule(Reschedule {
            national_code: "a".into(),
            tracking_code: "T1".into(),
            new_slot_id: 2,
        })],
        1,
    );
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::SlotFull { slot_id: 2 })
    );
    assert!(effects.is_empty());
}

/// What a batch reads, and on PostgreSQL locks: a confirmation names its hold (read, slot
/// lock left to `keeps_its_seat`) and needs the citizen's active appointments, not their other
/// holds; a new hold needs both, and locks its slot.
#[test]
fn a_confirmation_reads_its_hold_and_the_citizens_appointments() {
    let mut keys = BatchKeys::default();
    Request::Confirm(Confirm {
        national_code: "0499370899".into(),
        hold_id: "h1".into(),
        payment_id: "p1".into(),
        tracking_code: "T1".into(),
    })
    .touches(&mut keys);
    keys.normalise();
    assert_eq!(keys.confirmed_holds, ["h1"]);
    assert!(keys.holds.is_empty() && keys.slots.is_empty());
    assert_eq!(keys.citizen_codes, ["0499370899"]);
    assert!(keys.hold_codes.is_empty());

    let mut keys = BatchKeys::default();
    hold("1111111111", 7, "h2").touches(&mut keys);
    Request::Release(Release {
        national_code: "0499370899".into(),
        hold_id: "h1".into(),
        closing: false,
    })
    .touches(&mut keys);
    keys.normalise();
    assert_eq!(keys.slots, [7]);
    assert_eq!(keys.holds, ["h1"]);
    assert!(keys.confirmed_holds.is_empty());
    assert_eq!(keys.citizen_codes, ["1111111111"]);
    assert_eq!(keys.hold_codes, ["1111111111"]);
}

/// A slot of a release wave not yet open (`opens_at`): no hold, auto-pick or reschedule takes
/// its seat before the opening; a wave for another service does not hold this one back.
#[test]
fn a_seat_of_an_unopened_wave_is_refused_until_it_opens() {
    let closed = |opens_for: Option<&str>| SlotRow {
        opens_at: Some(1_000),
        opens_for: opens_for.map(str::to_string),
        ..slot(1, 2)
    };
    let mut state = state_with(&[closed(None), slot(2, 1)], &["a", "b"]);
    let (outcomes, effects) = decide(&mut state, &[hold("a", 1, "h1")], 999);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::NotYetReleased {
            slot_id: 1,
            opens_at: 1_000
        })
    );
    assert!(effects.slot_deltas.is_empty() && effects.new_holds.is_empty());

    // Auto-pick passes over it to the next candidate.
    let pick = Request::PickHold(PickHold {
        national_code: "b".into(),
        application_id: "app-b".into(),
        service: "first_issuance".into(),
        candidates: vec![1, 2],
        hold_id: "h2".into(),
        expires_at: 1_600,
    });
    let (outcomes, _) = decide(&mut state, &[pick], 999);
    match &outcomes[0] {
        Outcome::Held { hold } => assert_eq!(hold.slot_id, 2),
        other => panic!("{other:?}"),
    }

    // At the opening it is bookable.
    let mut state = state_with(&[closed(None)], &["a"]);
    let (outcomes, _) = decide(&mut state, &[hold("a", 1, "h1")], 1_000);
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");

    // A wave for another service keeps nothing from this one; one for this service does.
    let mut state = state_with(&[closed(Some("renewal"))], &["a"]);
    let (outcomes, _) = decide(&mut state, &[hold("a", 1, "h1")], 999);
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");
    let mut state = state_with(&[closed(Some("first_issuance"))], &["a"]);
    let (outcomes, _) = decide(&mut state, &[hold("a", 1, "h1")], 999);
    assert!(
        matches!(
            outcomes[0],
            Outcome::Refused(Refusal::NotYetReleased { .. })
        ),
        "{outcomes:?}"
    );
}
