//! Auto-picks: the first candidate with a free seat, then exactly a hold or a booking there.

use proptest::prelude::*;

use super::*;

fn pick_hold(code: &str, candidates: &[i64], hold_id: &str) -> Request {
    Request::PickHold(PickHold {
        national_code: code.into(),
        application_id: format!("app-{code}").into(),
        service: "first_issuance".into(),
        candidates: candidates.to_vec(),
        hold_id: hold_id.into(),
        expires_at: 600,
    })
}

fn pick_book(code: &str, candidates: &[i64], n: usize) -> Request {
    Request::PickBook(PickBook {
        national_code: code.into(),
        application_id: format!("app-{code}").into(),
        service: "first_issuance".into(),
        candidates: candidates.to_vec(),
        payment_id: format!("pay-{code}").into(),
        hold_id: format!("hb{n}").into(),
        tracking_code: format!("TB{n}").into(),
    })
}

fn held_slot(o: &Outcome) -> Option<i64> {
    match o {
        Outcome::Held { hold } => Some(hold.slot_id),
        Outcome::Booked { appointment } => Some(appointment.slot_id),
        _ => None,
    }
}

#[test]
fn picks_in_one_batch_take_different_seats_in_candidate_order() {
    let mut state = state_with(
        &[slot(1, 1), slot(2, 2), slot(3, 1)],
        &["a", "b", "c", "d", "e"],
    );
    let picks: Vec<Request> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, c)| pick_hold(c, &[3, 1, 2], &format!("h{i}")))
        .chain([pick_book("e", &[3, 1, 2], 9)])
        .collect();
    let (outcomes, effects) = decide(&mut state, &picks, 0);
    let slots: Vec<Option<i64>> = outcomes.iter().map(held_slot).collect();
    assert_eq!(slots, vec![Some(3), Some(1), Some(2), Some(2), None]);
    assert_eq!(outcomes[4], Outcome::Refused(Refusal::CandidatesFull));
    assert_eq!(
        effects.slot_deltas,
        std::collections::BTreeMap::from([(1, 1), (2, 2), (3, 1)])
    );
    assert_eq!(effects.new_holds.len(), 4);
}

#[test]
fn the_citizens_refusal_comes_before_the_seats() {
    // Every candidate full, but the citizen already holds: that is the answer, not "full".
    let mut state = state_with(&[slot(1, 1), slot(2, 1)], &["a", "b"]);
    let (outcomes, _) = decide(
        &mut state,
        &[
            hold("a", 1, "h1"),
            hold("b", 2, "h2"),
            pick_hold("a", &[1, 2], "h3"),
            pick_hold("b", &[], "h4"),
        ],
        0,
    );
    assert_eq!(
        outcomes[2],
        Outcome::Refused(Refusal::AlreadyHolding {
            hold_id: "h1".into()
        })
    );
    assert_eq!(outcomes[3], Outcome::Refused(Refusal::CandidatesFull));
    // A booking's payment is checked before the seats too.
    let mut state = state_with(&[slot(1, 0)], &["c"]);
    let mut unpaid = pick_book("c", &[1], 1);
    if let Request::PickBook(p) = &mut unpaid {
        p.payment_id = "nope".into();
    }
    let (outcomes, _) = decide(&mut state, &[unpaid], 0);
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::PaymentNotFound));
}

#[test]
fn unknown_candidates_are_skipped() {
    let mut state = state_with(&[slot(2, 1)], &["a", "b"]);
    let (outcomes, _) = decide(
        &mut state,
        &[pick_hold("a", &[7, 2], "h1"), pick_hold("b", &[7], "h2")],
        0,
    );
    assert_eq!(held_slot(&outcomes[0]), Some(2));
    assert_eq!(outcomes[1], Outcome::Refused(Refusal::CandidatesFull));
}

proptest! {
    /// A pick decides exactly as the hold or booking in the first candidate with a free seat
    /// would (same outcome, same writes), and as "all full" when there is none.
    #[test]
    fn a_pick_is_the_hold_or_booking_in_its_first_free_candidate(
        capacities in prop::collection::vec(0i64..3, 5),
        taken in prop::collection::vec(0i64..3, 5),
        candidates in prop::collection::vec(1i64..=6, 0..5),
        book in any::<bool>(),
    ) {
        let slots: Vec<SlotRow> = capacities
            .iter()
            .zip(&taken)
            .enumerate()
            .map(|(i, (&c, &t))| SlotRow { taken: t.min(c), ..slot(i as i64 + 1, c) })
            .collect();
        let free = candidates
            .iter()
            .copied()
            .find(|id| slots.iter().any(|s| s.id == *id && s.taken < s.capacity));
        let picked = if book { pick_book("a", &candidates, 1) } else { pick_hold("a", &candidates, "h1") };
        let mut state = state_with(&slots, &["a"]);
        let (outcomes, effects) = decide(&mut state, &[picked], 0);
        match free {
            Some(slot_id) => {
                let plain = if book {
                    Request::Book(Book {
                        national_code: "a".into(),
                        application_id: "app-a".into(),
                        service: "first_issuance".into(),
                        slot_id,
                        payment_id: "pay-a".into(),
                        hold_id: "hb1".into(),
                        tracking_code: "TB1".into(),
                    })
                } else {
                    hold("a", slot_id, "h1")
                };
                let mut again = state_with(&slots, &["a"]);
                let (o2, e2) = decide(&mut again, &[plain], 0);
                prop_assert_eq!(outcomes, o2);
                prop_assert_eq!(effects, e2);
            }
            None => {
                prop_assert_eq!(&outcomes[0], &Outcome::Refused(Refusal::CandidatesFull));
                prop_assert!(effects.is_empty());
            }
        }
    }
}

proptest! {
    /// Picks with the same candidate list add it once, yet the batch reads and locks exactly
    /// the slots it would if each added its own copy.
    #[test]
    fn repeated_candidate_lists_touch_the_same_slots(
        lists in prop::collection::vec(
            prop_oneof![Just(vec![3i64, 1, 2]), Just(vec![2i64, 5]), prop::collection::vec(0i64..8, 0..4)],
            1..12,
        ),
    ) {
        let mut keys = BatchKeys::default();
        let mut expected: Vec<i64> = Vec::new();
        for (n, list) in lists.iter().enumerate() {
            let request = if n % 2 == 0 {
                pick_hold(&format!("c{n}"), list, &format!("h{n}"))
            } else {
                pick_book(&format!("c{n}"), list, n)
            };
            request.touches(&mut keys);
            expected.extend(list);
        }
        keys.normalise();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(keys.slots, expected);
    }
}
