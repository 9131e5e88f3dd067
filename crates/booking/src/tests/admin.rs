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
