//! Invariants over random sequences of requests of every kind.

use proptest::prelude::*;

use super::*;

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
        (c.clone(), prop::collection::vec(s.clone(), 0..4), n.clone()).prop_map(|(c, cands, h)| {
            Request::PickHold(PickHold {
                national_code: format!("c{c}"),
                application_id: format!("app-c{c}").into(),
                service: "first_issuance".into(),
                candidates: cands,
                hold_id: format!("p{h}").into(),
                expires_at: 10_000_000,
            })
        }),
        (
            c.clone(),
            prop::collection::vec(s.clone(), 0..4),
            n.clone(),
            n.clone()
        )
            .prop_map(|(c, cands, h, t)| Request::PickBook(PickBook {
                national_code: format!("c{c}"),
                application_id: format!("app-c{c}").into(),
                service: "first_issuance".into(),
                candidates: cands,
                payment_id: format!("pay-c{c}").into(),
                hold_id: format!("q{h}").into(),
                tracking_code: format!("Q{t}").into(),
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
            Request::PickHold(p) => seen.insert(p.hold_id.to_string()),
            Request::PickBook(p) => seen.insert(p.hold_id.to_string()) && seen.insert(p.tracking_code.to_string()),
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
