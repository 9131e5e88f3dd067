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
    Request::Hold(Hold {
        national_code: code.into(),
        application_id: format!("app-{code}").into(),
        service: "first_issuance".into(),
        slot_id,
        hold_id: hold_id.into(),
        expires_at: 600,
    })
}

fn confirm(code: &str, hold_id: &str, tracking: &str) -> Request {
    Request::Confirm(Confirm {
        national_code: code.into(),
        hold_id: hold_id.into(),
        payment_id: format!("pay-{code}").into(),
        tracking_code: tracking.into(),
    })
}

fn state_with(slots: &[SlotRow], citizens: &[&str]) -> BatchState {
    let mut state = BatchState::default();
    for s in slots {
        state.slots.insert(s.id, s.clone());
    }
    for c in citizens {
        let p = paid(&format!("pay-{c}"), c, &format!("app-{c}"));
        state.payments.insert(p.id.clone(), p);
        let a = ApplicationRef {
            id: format!("app-{c}"),
            national_code: c.to_string(),
            service: "first_issuance".into(),
        };
        state.applications.insert(a.id.clone(), a);
    }
    state
}

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
        (c.clone(), n.clone()).prop_map(|(c, h)| Request::Release(Release {
            national_code: format!("c{c}"),
            hold_id: format!("h{h}").into()
        })),
        (c.clone(), n.clone()).prop_map(|(c, t)| Request::Cancel(Cancel {
            national_code: format!("c{c}"),
            tracking_code: format!("T{t}").into()
        })),
        (c.clone(), n.clone(), s.clone()).prop_map(|(c, t, s)| Request::Reschedule(Reschedule {
            national_code: format!("c{c}"),
            tracking_code: format!("T{t}").into(),
            new_slot_id: s
        })),
        (n.clone()).prop_map(|t| Request::CheckIn(CheckIn {
            office_id: "021-0001".into(),
            tracking_code: format!("T{t}").into(),
            actor: "staff".into(),
        })),
        (n.clone()).prop_map(|t| Request::NoShow(NoShow {
            office_id: "021-0001".into(),
            tracking_code: format!("B{t}").into(),
            actor: "staff".into(),
        })),
        (
            c.clone(),
            n.clone(),
            prop::option::of((s.clone(), n.clone()))
        )
            .prop_map(|(c, t, p)| Request::Enrol(Enrol {
                office_id: "021-0001".into(),
                tracking_code: format!("T{t}").into(),
                national_code: format!("c{c}"),
                ready_date: "2024-10-06".into(),
                pickup: p.map(|(slot_id, k)| PickupBooking {
                    slot_id,
                    tracking_code: format!("P{k}").into()
                }),
                actor: "staff".into(),
            })),
        (n.clone()).prop_map(|t| Request::CardReady(CardReady {
            office_id: "021-0001".into(),
            tracking_code: format!("T{t}").into(),
            actor: "staff".into(),
        })),
        (n.clone(), prop::option::of(n.clone())).prop_map(|(t, p)| Request::Deliver(Deliver {
            office_id: "021-0001".into(),
            tracking_code: format!("T{t}").into(),
            pickup_tracking_code: p.map(|p| format!("P{p}").into()),
            actor: "staff".into(),
        })),
        (n.clone(), prop::option::of(s.clone())).prop_map(|(t, s)| Request::Relocate(Relocate {
            tracking_code: format!("B{t}").into(),
            new_slot_id: s,
            reason: RelocationReason::OfficeClosed,
            notice_key: "closure".into(),
            actor: "admin".into(),
        })),
        (s.clone(), 0i64..3).prop_map(|(s, c)| Request::SetCapacity(SetCapacity {
            slot_id: s,
            capacity: c,
            actor: "admin".into(),
        })),
        (c, s, n.clone(), n).prop_map(|(c, s, h, t)| Request::Book(Book {
            national_code: format!("c{c}"),
            application_id: format!("app-c{c}").into(),
            service: "first_issuance".into(),
            slot_id: s,
            payment_id: format!("pay-c{c}").into(),
            hold_id: format!("b{h}").into(),
            tracking_code: format!("B{t}").into()
        })),
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
            Request::Hold(h) => seen.insert(h.hold_id.to_string()),
            Request::Confirm(c) => seen.insert(c.tracking_code.to_string()),
            Request::Book(b) => seen.insert(b.hold_id.to_string()) && seen.insert(b.tracking_code.to_string()),
            Request::Enrol(Enrol { pickup: Some(p), .. }) => seen.insert(p.tracking_code.to_string()),
            _ => true,
        }).map(|r| match r {
            // Holds outlive the batches, so that "now" can be after every slot's start (which
            // no-shows need) without every hold expiring on sight.
            Request::Hold(h) => Request::Hold(Hold { expires_at: 10_000_000, ..h }),
            other => other,
        }).collect()).collect();
        for batch in &batches {
            let (outcomes, effects) = decide(&mut state, batch, 2_000_000);
            let relocated = outcomes.iter().filter(|o| matches!(o, Outcome::Relocated { .. })).count();
            prop_assert_eq!(relocated, effects.outbox.len(), "one notice per moved or cancelled appointment");
            for h in effects.new_holds {
                state.holds.insert(h.id.clone(), h);
            }
            for a in effects.new_appointments.into_iter().chain(effects.appointment_updates.into_values()) {
                state.appointments.insert(a.tracking_code.clone(), a);
            }
        }
        for s in state.slots.values() {
            prop_assert!(s.taken >= 0 && s.taken <= s.capacity, "slot {} taken {} capacity {}", s.id, s.taken, s.capacity);
            let live = state.holds.values().filter(|h| h.slot_id == s.id && h.status == HoldStatus::Live).count() as i64;
            let active = state.appointments.values().filter(|a| a.slot_id == s.id && a.status.is_active()).count() as i64;
            prop_assert_eq!(s.taken, live + active, "slot {} conservation", s.id);
        }
        for c in &citizens {
            let live = state.holds.values().filter(|h| &h.national_code == c && h.status == HoldStatus::Live).count();
            prop_assert!(live <= 1);
            for service in ["first_issuance", PICKUP_SERVICE] {
                let active = state.appointments.values().filter(|a| &a.national_code == c && a.service == service && a.status.is_active()).count();
                prop_assert!(active <= 1, "{} has {} active {}", c, active, service);
            }
        }
    }
}

fn booked(state: &mut BatchState, code: &str, slot_id: i64, tracking: &str) {
    let (outcomes, _) = decide(
        state,
        &[Request::Book(Book {
            national_code: code.into(),
            application_id: format!("app-{code}").into(),
            service: "first_issuance".into(),
            slot_id,
            payment_id: format!("pay-{code}").into(),
            hold_id: format!("h-{tracking}").into(),
            tracking_code: tracking.into(),
        })],
        0,
    );
    match &outcomes[0] {
        Outcome::Booked { appointment } => {
            state
                .appointments
                .insert(appointment.tracking_code.clone(), appointment.clone());
        }
        other => panic!("{other:?}"),
    }
}

fn staff(req: &str, tracking: &str) -> Request {
    let office_id = "021-0001".to_string();
    let tracking_code = TrackingCode::from(tracking);
    let actor = "staff:1".to_string();
    match req {
        "check_in" => Request::CheckIn(CheckIn {
            office_id,
            tracking_code,
            actor,
        }),
        "no_show" => Request::NoShow(NoShow {
            office_id,
            tracking_code,
            actor,
        }),
        "card_ready" => Request::CardReady(CardReady {
            office_id,
            tracking_code,
            actor,
        }),
        _ => unreachable!(),
    }
}

fn apply_all(state: &mut BatchState, requests: &[Request], now: UnixSeconds) -> Vec<Outcome> {
    let (outcomes, effects) = decide(state, requests, now);
    for a in effects
        .new_appointments
        .into_iter()
        .chain(effects.appointment_updates.into_values())
    {
        state.appointments.insert(a.tracking_code.clone(), a);
    }
    outcomes
}

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
    })
    .touches(&mut keys);
    keys.normalise();
    assert_eq!(keys.slots, [7]);
    assert_eq!(keys.holds, ["h1"]);
    assert!(keys.confirmed_holds.is_empty());
    assert_eq!(keys.citizen_codes, ["1111111111"]);
    assert_eq!(keys.hold_codes, ["1111111111"]);
}

mod effects;
mod json;
mod routing;
