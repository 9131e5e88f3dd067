//! Administrators' changes: relocation with its notice, capacity.

use super::*;

#[test]
fn relocation_moves_or_cancels_with_one_notice_each() {
    let mut state = state_with(&[slot(1, 2), slot(2, 1)], &["a", "b"]);
    booked(&mut state, "a", 1, "T1");
    booked(&mut state, "b", 1, "T2");
    let relocate = |code: &str| {
        Request::Relocate(Relocate {
            tracking_code: code.into(),
            new_slot_id: Some(2),
            reason: RelocationReason::OfficeClosed,
            notice_key: "closure:021-0001:2024-09-23".into(),
            actor: "admin".into(),
        })
    };
    let (outcomes, effects) = decide(
        &mut state,
        &[
            relocate("T1"),
            relocate("T2"),
            Request::Relocate(Relocate {
                tracking_code: "T2".into(),
                new_slot_id: None,
                reason: RelocationReason::OfficeClosed,
                notice_key: "closure:021-0001:2024-09-23".into(),
                actor: "admin".into(),
            }),
            Request::SetCapacity(SetCapacity {
                slot_id: 1,
                capacity: 0,
                actor: "admin".into(),
            }),
        ],
        10,
    );
    assert!(
        matches!(&outcomes[0], Outcome::Relocated { appointment, .. } if appointment.slot_id == 2)
    );
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::SlotFull { slot_id: 2 })
    );
    assert!(
        matches!(&outcomes[2], Outcome::Relocated { appointment, .. } if appointment.status == AppointmentStatus::Cancelled)
    );
    assert_eq!(
        outcomes[3],
        Outcome::CapacitySet {
            slot_id: 1,
            capacity: 0
        }
    );
    assert_eq!(effects.outbox.len(), 2);
    assert!(effects.outbox[0].body.contains("منتقل شد") && effects.outbox[0].body.contains("T1"));
    assert!(effects.outbox[1].body.contains("لغو شد"));
    assert_eq!(effects.slot_capacity[&1], 0);
}

#[test]
fn capacity_cannot_drop_below_taken() {
    let mut state = state_with(&[slot(1, 2)], &["a"]);
    booked(&mut state, "a", 1, "T1");
    let (outcomes, effects) = decide(
        &mut state,
        &[Request::SetCapacity(SetCapacity {
            slot_id: 1,
            capacity: 0,
            actor: "admin".into(),
        })],
        10,
    );
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::CapacityBelowTaken {
            slot_id: 1,
            taken: 1
        })
    );
    assert!(effects.is_empty());
}

/// A seat a closure frees goes with its slot: cut from the capacity in the same batch, so no
/// booking (an auto-pick led by a view that shows it free) lands in the closed slot before
/// the closure shrinks it, and no waiter is offered it.
#[test]
fn a_closure_cuts_the_seats_it_frees() {
    let mut state = state_with(&[slot(1, 3), slot(2, 1)], &["a", "b", "c", "d"]);
    booked(&mut state, "a", 1, "T1");
    booked(&mut state, "b", 1, "T2");
    let relocate = |code: &str, to: Option<i64>| {
        Request::Relocate(Relocate {
            tracking_code: code.into(),
            new_slot_id: to,
            reason: RelocationReason::OfficeClosed,
            notice_key: "closure:021-0001:2024-09-23".into(),
            actor: "admin".into(),
        })
    };
    let book = |code: &str| {
        Request::Book(Book {
            national_code: code.into(),
            application_id: format!("app-{code}").into(),
            service: "first_issuance".into(),
            slot_id: 1,
            payment_id: format!("pay-{code}").into(),
            hold_id: format!("h-{code}").into(),
            tracking_code: format!("T-{code}").into(),
        })
    };
    let (outcomes, effects) = decide(
        &mut state,
        &[
            relocate("T1", Some(2)),
            relocate("T2", None),
            book("c"),
            book("d"),
        ],
        10,
    );
    assert!(
        matches!(&outcomes[0], Outcome::Relocated { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], Outcome::Relocated { .. }),
        "{outcomes:?}"
    );
    // Slot 1 had one free seat (3 - 2) before the closure; it still has one, and no more.
    assert_eq!(effects.slot_capacity[&1], 1);
    assert_eq!(effects.slot_deltas[&1], -1, "two freed, one taken");
    assert!(
        matches!(outcomes[2], Outcome::Booked { .. }),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[3],
        Outcome::Refused(Refusal::SlotFull { slot_id: 1 })
    );
    assert!(effects.new_releases.is_empty());
}
