use proptest::prelude::*;

use super::*;

fn slot(id: i64, capacity: i64) -> SlotRow {
    SlotRow {
        id,
        office_id: "021-0001".into(),
        start_at: 1_000_000 + id * 900,
        duration_minutes: 15,
        capacity,
        taken: 0,
    }
}

fn paid(id: &str, code: &str, app: &str) -> PaymentRow {
    PaymentRow {
        id: id.into(),
        application_id: app.into(),
        service: "first_issuance".into(),
        national_code: code.into(),
        status: PaymentStatus::Paid,
    }
}

fn hold(code: &str, slot_id: i64, hold_id: &str) -> Request {
    Request::Hold {
        national_code: code.into(),
        application_id: format!("app-{code}"),
        service: "first_issuance".into(),
        slot_id,
        hold_id: hold_id.into(),
        expires_at: 600,
    }
}

fn confirm(code: &str, hold_id: &str, tracking: &str) -> Request {
    Request::Confirm {
        national_code: code.into(),
        hold_id: hold_id.into(),
        payment_id: format!("pay-{code}"),
        tracking_code: tracking.into(),
    }
}

fn state_with(slots: &[SlotRow], citizens: &[&str]) -> BatchState {
    let mut state = BatchState::default();
    for s in slots {
        state.slots.insert(s.id, s.clone());
    }
    for c in citizens {
        let p = paid(&format!("pay-{c}"), c, &format!("app-{c}"));
        state.payments.insert(p.id.clone(), p);
    }
    state
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
        &[Request::Reschedule {
            national_code: "a".into(),
            tracking_code: "T1".into(),
            new_slot_id: 2,
        }],
        1,
    );
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::SlotFull { slot_id: 2 })
    );
    assert!(effects.is_empty());
}

/// Replays requests batch by batch, carrying the state forward as the database would.
fn replay(state: &mut BatchState, batches: &[Vec<Request>], now: UnixSeconds) {
    for batch in batches {
        let (_, effects) = decide(state, batch, now);
        for h in effects.new_holds {
            state.holds.insert(h.id.clone(), h);
        }
        for a in effects
            .new_appointments
            .into_iter()
            .chain(effects.appointment_updates.into_values())
        {
            state.appointments.insert(a.tracking_code.clone(), a);
        }
    }
}

fn arb_request(citizens: usize, slots: i64) -> impl Strategy<Value = Request> {
    let c = 0..citizens;
    let s = 1..=slots;
    let n = 0..40usize;
    prop_oneof![
        (c.clone(), s.clone(), n.clone()).prop_map(|(c, s, n)| hold(
            &format!("c{c}"),
            s,
            &format!("h{n}")
        )),
        (c.clone(), n.clone(), n.clone()).prop_map(|(c, h, t)| confirm(
            &format!("c{c}"),
            &format!("h{h}"),
            &format!("T{t}")
        )),
        (c.clone(), n.clone()).prop_map(|(c, h)| Request::Release {
            national_code: format!("c{c}"),
            hold_id: format!("h{h}")
        }),
        (c.clone(), n.clone()).prop_map(|(c, t)| Request::Cancel {
            national_code: format!("c{c}"),
            tracking_code: format!("T{t}")
        }),
        (c.clone(), n.clone(), s.clone()).prop_map(|(c, t, s)| Request::Reschedule {
            national_code: format!("c{c}"),
            tracking_code: format!("T{t}"),
            new_slot_id: s
        }),
        (c, s, n.clone(), n).prop_map(|(c, s, h, t)| Request::Book {
            national_code: format!("c{c}"),
            application_id: format!("app-c{c}"),
            service: "first_issuance".into(),
            slot_id: s,
            payment_id: format!("pay-c{c}"),
            hold_id: format!("b{h}"),
            tracking_code: format!("B{t}")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the sequence: capacity is never exceeded nor negative, every taken seat has a
    /// live hold or an active appointment behind it, and the per-citizen limits hold.
    #[test]
    fn invariants_hold_over_random_sequences(
        batches in prop::collection::vec(prop::collection::vec(arb_request(6, 4), 1..12), 1..8),
        capacities in prop::collection::vec(0i64..3, 4),
    ) {
        let slots: Vec<SlotRow> = capacities.iter().enumerate().map(|(i, &c)| slot(i as i64 + 1, c)).collect();
        let citizens: Vec<String> = (0..6).map(|c| format!("c{c}")).collect();
        let refs: Vec<&str> = citizens.iter().map(String::as_str).collect();
        let mut state = state_with(&slots, &refs);
        // Hold and tracking ids are unique in production; random ones may repeat, so drop
        // requests that would create an id already used.
        let mut seen = std::collections::HashSet::new();
        let batches: Vec<Vec<Request>> = batches.into_iter().map(|b| b.into_iter().filter(|r| match r {
            Request::Hold { hold_id, .. } => seen.insert(hold_id.clone()),
            Request::Confirm { tracking_code, .. } => seen.insert(tracking_code.clone()),
            Request::Book { hold_id, tracking_code, .. } => seen.insert(hold_id.clone()) && seen.insert(tracking_code.clone()),
            _ => true,
        }).collect()).collect();
        replay(&mut state, &batches, 0);
        for s in state.slots.values() {
            prop_assert!(s.taken >= 0 && s.taken <= s.capacity, "slot {} taken {} capacity {}", s.id, s.taken, s.capacity);
            let live = state.holds.values().filter(|h| h.slot_id == s.id && h.status == HoldStatus::Live).count() as i64;
            let active = state.appointments.values().filter(|a| a.slot_id == s.id && a.status.is_active()).count() as i64;
            prop_assert_eq!(s.taken, live + active, "slot {} conservation", s.id);
        }
        for c in &citizens {
            let live = state.holds.values().filter(|h| &h.national_code == c && h.status == HoldStatus::Live).count();
            prop_assert!(live <= 1);
            let active = state.appointments.values().filter(|a| &a.national_code == c && a.status.is_active()).count();
            prop_assert!(active <= 1);
        }
    }
}
