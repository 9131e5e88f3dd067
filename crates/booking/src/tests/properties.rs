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
            hold_id: format!("h{h}").into(),
            closing: false,
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

/// The waitlist's requests over the entries `w0`..`w5` and the offers the batches may make.
fn arb_waitlist_request() -> impl Strategy<Value = Request> {
    let c = 0..6usize;
    let offer = (0..8usize, 0..3usize).prop_map(|(k, i)| format!("offer_{k}_{i}"));
    prop_oneof![
        (c.clone(), offer.clone()).prop_map(|(c, h)| Request::DeclineOffer(DeclineOffer {
            national_code: format!("c{c}"),
            entry_id: format!("w{c}"),
            hold_id: h.into(),
        })),
        (c.clone(), offer, 0..40usize).prop_map(|(c, h, t)| Request::AcceptOffer(AcceptOffer {
            national_code: format!("c{c}"),
            entry_id: format!("w{c}"),
            hold_id: h.into(),
            payment_id: format!("pay-c{c}").into(),
            tracking_code: format!("A{t}").into(),
        })),
        c.prop_map(|c| Request::LeaveWaitlist(LeaveWaitlist {
            national_code: format!("c{c}"),
            entry_id: format!("w{c}"),
            lapsed: c % 3 == 0,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// With waiters, offers and release delays (slots not yet started, so freed seats go
    /// through the waitlist): never over capacity, every taken seat has a live hold, an
    /// active appointment or a pending release behind it, and one active appointment and one
    /// active entry per citizen and service.
    #[test]
    fn freed_seats_are_conserved_through_waiters_and_releases(
        batches in prop::collection::vec(
            prop::collection::vec(prop_oneof![3 => arb_request(6, 4), 1 => arb_waitlist_request()], 1..12),
            1..8,
        ),
        capacities in prop::collection::vec(1i64..3, 4),
        waiting in prop::collection::vec(any::<bool>(), 6),
        seed in any::<u64>(),
    ) {
        let slots: Vec<SlotRow> = capacities.iter().enumerate().map(|(i, &c)| slot(i as i64 + 1, c)).collect();
        let citizens: Vec<String> = (0..6).map(|c| format!("c{c}")).collect();
        let refs: Vec<&str> = citizens.iter().map(String::as_str).collect();
        let mut state = state_with(&slots, &refs);
        for (c, auto_accept) in waiting.iter().enumerate() {
            let entry = WaitRow {
                id: format!("w{c}"),
                national_code: format!("c{c}"),
                service: "first_issuance".into(),
                application_id: format!("app-c{c}"),
                payment_id: format!("pay-c{c}"),
                auto_accept: *auto_accept,
                limits: WaitLimits { earliest_at: 0, latest_at: 3_000_000, part_of_day: PartOfDay::Any },
                limits_json: "{}".into(),
                status: WaitStatus::Waiting,
                offer_hold_id: None,
                tracking_code: None,
                joined_at: c as i64,
                updated_at: c as i64,
            };
            state.waiters.entry("021-0001".into()).or_default().push(entry.id.clone());
            state.entries.insert(entry.id.clone(), entry);
        }
        state.freeing = FreeingPolicy { offer_ttl: 100, release_delay_min: 0, release_delay_max: 60, seed };
        state.index();
        let mut seen = std::collections::HashSet::new();
        let mut next_release = 1;
        for (k, batch) in batches.into_iter().enumerate() {
            let mut batch: Vec<Request> = batch.into_iter().filter(|r| match r {
                Request::Hold(h) => seen.insert(h.hold_id.to_string()),
                Request::Confirm(c) => seen.insert(c.tracking_code.to_string()),
                Request::AcceptOffer(a) => seen.insert(a.tracking_code.to_string()),
                Request::Book(b) => seen.insert(b.hold_id.to_string()) && seen.insert(b.tracking_code.to_string()),
                Request::Enrol(Enrol { pickup: Some(p), .. }) => seen.insert(p.tracking_code.to_string()),
                Request::PickHold(p) => seen.insert(p.hold_id.to_string()),
                Request::PickBook(p) => seen.insert(p.hold_id.to_string()) && seen.insert(p.tracking_code.to_string()),
                _ => true,
            }).map(|r| match r {
                Request::Hold(h) => Request::Hold(Hold { expires_at: 10_000_000, ..h }),
                other => other,
            }).collect();
            let now = 500 + k as i64 * 40;
            batch.extend(state.releases.values().filter(|r| r.status == ReleaseStatus::Pending && r.release_at <= now)
                .map(|r| Request::ReleaseSeat(ReleaseSeat { release_id: r.id, closing: false })));
            state.spare_offer_ids = (0..3).map(|i| format!("offer_{k}_{i}")).collect();
            state.spare_tracking_codes = (0..3).map(|i| format!("W{k}_{i}")).collect();
            let (_, effects) = decide(&mut state, &batch, now);
            for h in effects.new_holds {
                state.holds.insert(h.id.clone(), h);
            }
            for (id, status) in effects.hold_status {
                if let Some(h) = state.holds.get_mut(&id) {
                    h.status = status;
                }
            }
            for a in effects.new_appointments.into_iter().chain(effects.appointment_updates.into_values()) {
                state.appointments.insert(a.tracking_code.clone(), a);
            }
            for r in effects.new_releases {
                state.releases.insert(next_release, SeatReleaseRow { id: next_release, ..r });
                next_release += 1;
            }
        }
        for s in state.slots.values() {
            prop_assert!(s.taken >= 0 && s.taken <= s.capacity, "slot {} taken {} capacity {}", s.id, s.taken, s.capacity);
            let live = state.holds.values().filter(|h| h.slot_id == s.id && h.status == HoldStatus::Live).count() as i64;
            let active = state.appointments.values().filter(|a| a.slot_id == s.id && a.status.is_active()).count() as i64;
            let pending = state.releases.values().filter(|r| r.slot_id == s.id && r.status == ReleaseStatus::Pending).count() as i64;
            prop_assert_eq!(s.taken, live + active + pending, "slot {} conservation", s.id);
        }
        for c in &citizens {
            let live = state.holds.values().filter(|h| &h.national_code == c && h.status == HoldStatus::Live).count();
            prop_assert!(live <= 1, "{} has {} live holds", c, live);
            let active = state.appointments.values().filter(|a| &a.national_code == c && a.service == "first_issuance" && a.status.is_active()).count();
            prop_assert!(active <= 1, "{} has {} active appointments", c, active);
            let offered = state.entries.values().filter(|e| &e.national_code == c && e.status == WaitStatus::Offered).count();
            let offers_live = state.holds.values().filter(|h| &h.national_code == c && h.id.starts_with("offer_") && h.status == HoldStatus::Live).count();
            prop_assert_eq!(offered, offers_live, "{}: an offered entry has its live offer hold", c);
        }
    }
}
