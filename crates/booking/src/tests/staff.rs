//! Staff steps: check in, enrol with the pickup visit, no-show.

use super::*;

#[test]
fn enrolment_frees_the_visit_seat_and_books_the_pickup_at_the_same_office() {
    let mut state = state_with(&[slot(1, 1), slot(2, 1)], &["a"]);
    booked(&mut state, "a", 1, "T1");
    let enrol = |slot_id| {
        Request::Enrol(Enrol {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            national_code: "a".into(),
            ready_date: "2024-10-06".into(),
            pickup: Some(PickupBooking {
                slot_id,
                tracking_code: "P1".into(),
            }),
            actor: "staff:1".into(),
        })
    };
    // Not checked in yet: refused, nothing changes.
    let (outcomes, effects) = decide(&mut state, &[enrol(2)], 10);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::InvalidTransition {
            status: AppointmentStatus::Booked
        })
    );
    assert!(effects.is_empty());
    apply_all(&mut state, &[staff("check_in", "T1")], 10);
    let (outcomes, effects) = decide(&mut state, &[enrol(2)], 20);
    match &outcomes[0] {
        Outcome::Enrolled {
            appointment,
            card,
            pickup,
        } => {
            assert_eq!(appointment.status, AppointmentStatus::Enrolled);
            assert_eq!(card.pickup_tracking_code.as_deref(), Some("P1"));
            let pickup = pickup.as_ref().unwrap();
            assert_eq!(
                (pickup.service.as_str(), pickup.slot_id),
                (PICKUP_SERVICE, 2)
            );
            assert_eq!(pickup.office_id, "021-0001");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        effects.slot_deltas[&1], -1,
        "the visit's seat leaves with the active set"
    );
    assert_eq!(effects.slot_deltas[&2], 1, "the pickup takes a seat");
    assert_eq!(effects.new_cards.len(), 1);
}

#[test]
fn a_full_pickup_slot_refuses_the_whole_enrolment() {
    let mut state = state_with(&[slot(1, 1), slot(2, 0)], &["a"]);
    booked(&mut state, "a", 1, "T1");
    apply_all(&mut state, &[staff("check_in", "T1")], 10);
    let (outcomes, effects) = decide(
        &mut state,
        &[Request::Enrol(Enrol {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            national_code: "a".into(),
            ready_date: "2024-10-06".into(),
            pickup: Some(PickupBooking {
                slot_id: 2,
                tracking_code: "P1".into(),
            }),
            actor: "staff:1".into(),
        })],
        20,
    );
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::SlotFull { slot_id: 2 })
    );
    assert!(effects.is_empty());
}

#[test]
fn staff_of_another_office_do_not_see_the_appointment() {
    let mut state = state_with(&[slot(1, 1)], &["a"]);
    booked(&mut state, "a", 1, "T1");
    let (outcomes, effects) = decide(
        &mut state,
        &[Request::CheckIn(CheckIn {
            office_id: "021-0002".into(),
            tracking_code: "T1".into(),
            actor: "staff:2".into(),
        })],
        10,
    );
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::AppointmentNotFound));
    assert!(effects.is_empty());
}

#[test]
fn no_show_only_after_the_start_and_frees_the_seat() {
    let mut state = state_with(&[slot(1, 1)], &["a"]);
    booked(&mut state, "a", 1, "T1");
    let start = state.slots[&1].start_at;
    let (outcomes, _) = decide(&mut state, &[staff("no_show", "T1")], start - 1);
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::TooEarly));
    let (outcomes, effects) = decide(&mut state, &[staff("no_show", "T1")], start + 60);
    assert!(
        matches!(&outcomes[0], Outcome::Updated { appointment } if appointment.status == AppointmentStatus::NoShow)
    );
    assert_eq!(effects.slot_deltas[&1], -1);
}
