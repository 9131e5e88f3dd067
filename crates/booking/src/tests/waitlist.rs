//! Where a freed seat goes (`Decider::give_up_seat`): the earliest joined waiter whose limits
//! fit, booked at once or offered; else a pending release after a seeded random delay.

use super::*;

/// Slot 1 starts at 1,000,900 (17:31 in Tehran: an afternoon); the batch runs at 500.
const NOW: UnixSeconds = 500;

fn waiter(id: &str, code: &str, joined_at: i64, auto_accept: bool, part: PartOfDay) -> WaitRow {
    WaitRow {
        id: id.into(),
        national_code: code.into(),
        service: "first_issuance".into(),
        application_id: format!("app-{code}"),
        payment_id: format!("pay-{code}"),
        auto_accept,
        limits: WaitLimits {
            earliest_at: 0,
            latest_at: 2_000_000,
            part_of_day: part,
        },
        limits_json: "{}".into(),
        status: WaitStatus::Waiting,
        offer_hold_id: None,
        tracking_code: None,
        joined_at,
        updated_at: joined_at,
    }
}

/// A state where `canceller` has appointment T0 in slot 1, and `waiters` wait at its office.
fn with_waiters(canceller: &str, waiters: &[WaitRow], spare: usize) -> BatchState {
    let codes: Vec<&str> = std::iter::once(canceller)
        .chain(waiters.iter().map(|w| w.national_code.as_str()))
        .collect();
    let mut state = state_with(&[slot(1, 2)], &codes);
    booked(&mut state, canceller, 1, "T0");
    state.slots.get_mut(&1).unwrap().taken = 1;
    for w in waiters {
        state.entries.insert(w.id.clone(), w.clone());
        state
            .waiters
            .entry("021-0001".into())
            .or_default()
            .push(w.id.clone());
    }
    state.spare_offer_ids = (0..spare).map(|i| format!("offer_{i}")).collect();
    state.spare_tracking_codes = (0..spare).map(|i| format!("W{i}")).collect();
    state.freeing = FreeingPolicy {
        offer_ttl: 7_200,
        release_delay_min: 300,
        release_delay_max: 1_800,
        seed: 7,
    };
    state.index();
    state
}

fn cancel(code: &str) -> Request {
    Request::Cancel(Cancel {
        national_code: code.into(),
        tracking_code: "T0".into(),
    })
}

#[test]
fn the_earliest_fitting_waiter_is_booked_in_the_cancelling_batch() {
    let waiters = [
        // Joined first, but only mornings: the slot is an afternoon.
        waiter("w1", "morning", 10, true, PartOfDay::Morning),
        waiter("w3", "third", 30, true, PartOfDay::Any),
        waiter("w2", "second", 20, true, PartOfDay::Afternoon),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    // The waiter list is ordered by join time when indexed.
    assert_eq!(state.waiters["021-0001"], ["w1", "w2", "w3"]);
    let (outcomes, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert!(
        matches!(outcomes[0], Outcome::Cancelled { .. }),
        "{outcomes:?}"
    );
    assert!(
        effects.slot_deltas.is_empty(),
        "the seat never left the slot"
    );
    assert!(effects.new_releases.is_empty());
    let booked = &effects.new_appointments;
    assert_eq!(booked.len(), 1);
    assert_eq!(
        (booked[0].national_code.as_str(), booked[0].slot_id),
        ("second", 1)
    );
    assert_eq!(booked[0].payment_id.as_deref(), Some("pay-second"));
    assert_eq!(effects.new_holds[0].status, HoldStatus::Confirmed);
    let entry = &effects.entry_updates["w2"];
    assert_eq!(entry.status, WaitStatus::Booked);
    assert_eq!(
        entry.tracking_code.as_deref(),
        Some(booked[0].tracking_code.as_str())
    );
    assert_eq!(effects.outbox.len(), 1);
    assert_eq!(effects.outbox[0].notice_key, "waitlist_booked");
    let kinds: Vec<&str> = effects.events.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&"waitlist_booked") && !kinds.contains(&"waitlist_fulfilled"),
        "one end of the entry: {kinds:?}"
    );
    assert!(effects.outbox[0].body.contains("کد رهگیری"));
}

#[test]
fn an_offer_holds_the_seat_and_its_expiry_moves_it_on() {
    let waiters = [
        waiter("w1", "first", 10, false, PartOfDay::Any),
        waiter("w2", "second", 20, false, PartOfDay::Any),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    let offer = &effects.new_holds[0];
    assert_eq!(
        (offer.national_code.as_str(), offer.status, offer.expires_at),
        ("first", HoldStatus::Live, NOW + 7_200)
    );
    assert_eq!(effects.entry_updates["w1"].status, WaitStatus::Offered);
    assert_eq!(effects.outbox[0].notice_key, "waitlist_offer");

    // The batch after: the offer's hold and entry as stored; two hours on it expires.
    let mut next = with_waiters("c", &waiters, 2);
    next.appointments.clear();
    next.holds.insert(offer.id.clone(), offer.clone());
    next.entries
        .insert("w1".into(), effects.entry_updates["w1"].clone());
    next.index();
    let later = NOW + 7_200;
    let expire = Request::Expire(Expire {
        hold_id: offer.id.as_str().into(),
    });
    let (outcomes, effects) = decide(&mut next, &[expire], later);
    assert!(
        matches!(outcomes[0], Outcome::Expired { .. }),
        "{outcomes:?}"
    );
    assert_eq!(effects.entry_updates["w1"].status, WaitStatus::Lapsed);
    assert_eq!(effects.entry_updates["w2"].status, WaitStatus::Offered);
    assert_eq!(effects.new_holds[0].national_code, "second");
    assert!(effects.slot_deltas.is_empty());
}

#[test]
fn the_freer_and_the_busy_are_passed_over() {
    // The canceller waits too (for another appointment of the service: the index allows one
    // entry, this tests the rule), and the other waiter holds a seat elsewhere.
    let waiters = [
        waiter("w1", "c", 10, true, PartOfDay::Any),
        waiter("w2", "holder", 20, true, PartOfDay::Any),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    state
        .live_hold_by_citizen
        .insert("holder".into(), "h-elsewhere".into());
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert!(effects.new_appointments.is_empty());
    assert_eq!(
        effects.new_releases.len(),
        1,
        "no one took it: released later"
    );
}

#[test]
fn with_no_waiter_the_seat_is_released_after_a_seeded_delay() {
    let delay = |seed: u64| {
        let mut state = with_waiters("c", &[], 2);
        state.freeing.seed = seed;
        let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
        assert!(effects.slot_deltas.is_empty(), "still taken while pending");
        let r = &effects.new_releases[0];
        assert_eq!(
            (r.slot_id, r.status, r.freed_by.as_deref()),
            (1, ReleaseStatus::Pending, Some("c"))
        );
        r.release_at - NOW
    };
    let delays: Vec<i64> = (0..20).map(delay).collect();
    assert!(
        delays.iter().all(|d| (300..=1_800).contains(d)),
        "{delays:?}"
    );
    assert_eq!(delay(3), delay(3), "a batch replays exactly");
    assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");

    // A delay of 0 frees at once.
    let mut state = with_waiters("c", &[], 2);
    state.freeing.release_delay_max = 0;
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert!(effects.new_releases.is_empty());
    assert_eq!(effects.slot_deltas[&1], -1);
}

#[test]
fn a_batch_out_of_spare_ids_keeps_the_seat_for_the_sweeper() {
    let waiters = [waiter("w1", "first", 10, true, PartOfDay::Any)];
    let mut state = with_waiters("c", &waiters, 0);
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert!(effects.new_appointments.is_empty());
    let r = &effects.new_releases[0];
    assert_eq!(
        r.release_at, NOW,
        "due at once: the sweeper's ReleaseSeat hands it over"
    );
    // The end of that release gives it to the waiter.
    let mut next = with_waiters("c", &waiters, 1);
    next.appointments.clear();
    next.index();
    next.releases
        .insert(5, SeatReleaseRow { id: 5, ..r.clone() });
    let (outcomes, effects) = decide(
        &mut next,
        &[Request::ReleaseSeat(ReleaseSeat {
            release_id: 5,
            closing: false,
        })],
        NOW,
    );
    assert_eq!(outcomes[0], Outcome::SeatReleased { slot_id: 1 });
    assert_eq!(effects.release_status[&5], ReleaseStatus::Done);
    assert_eq!(effects.new_appointments[0].national_code, "first");
    assert!(effects.slot_deltas.is_empty());
}

#[test]
fn leaving_with_an_open_offer_passes_the_seat_on() {
    let waiters = [
        waiter("w1", "first", 10, false, PartOfDay::Any),
        waiter("w2", "second", 20, false, PartOfDay::Any),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    let offer = effects.new_holds[0].clone();

    let mut next = with_waiters("c", &waiters, 2);
    next.appointments.clear();
    next.holds.insert(offer.id.clone(), offer.clone());
    next.entries
        .insert("w1".into(), effects.entry_updates["w1"].clone());
    next.index();
    let leave = Request::LeaveWaitlist(LeaveWaitlist {
        national_code: "first".into(),
        entry_id: "w1".into(),
        lapsed: false,
    });
    let (outcomes, effects) = decide(&mut next, std::slice::from_ref(&leave), NOW + 60);
    match &outcomes[0] {
        Outcome::WaitlistLeft { entry } => assert_eq!(entry.status, WaitStatus::Left),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects.hold_status[&offer.id], HoldStatus::Released);
    assert_eq!(effects.entry_updates["w1"].status, WaitStatus::Left);
    assert_eq!(effects.entry_updates["w2"].status, WaitStatus::Offered);
    assert!(effects.slot_deltas.is_empty());
    // Someone else's entry does not exist; a left entry cannot be left again.
    let theirs = Request::LeaveWaitlist(LeaveWaitlist {
        national_code: "second".into(),
        entry_id: "w1".into(),
        lapsed: false,
    });
    let (outcomes, _) = decide(&mut next, &[theirs, leave], NOW + 60);
    assert_eq!(outcomes[0], Outcome::Refused(Refusal::EntryNotFound));
    assert_eq!(
        outcomes[1],
        Outcome::Refused(Refusal::EntryNotActive {
            status: WaitStatus::Left
        })
    );
}

/// A seat freed in a slot whose release wave has not opened is not offered to a waiter
/// before the opening (it goes the way of a seat no one waits for); one whose wave is for
/// another service is.
#[test]
fn a_seat_of_an_unopened_wave_is_not_offered() {
    let waiters = [waiter("w1", "first", 10, true, PartOfDay::Any)];
    let mut state = with_waiters("c", &waiters, 2);
    state.slots.get_mut(&1).unwrap().opens_at = Some(NOW + 100);
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert!(effects.new_appointments.is_empty(), "{effects:?}");
    assert!(effects.entry_updates.is_empty());
    assert_eq!(effects.new_releases.len(), 1, "released after the delay");

    let mut state = with_waiters("c", &waiters, 2);
    let slot = state.slots.get_mut(&1).unwrap();
    slot.opens_at = Some(NOW + 100);
    slot.opens_for = Some("renewal".into());
    let (_, effects) = decide(&mut state, &[cancel("c")], NOW);
    assert_eq!(effects.new_appointments.len(), 1, "{effects:?}");
}

/// A citizen who books directly (a confirmation, or a one-step booking) ends their waiting
/// entry for the service: booked with that appointment, and never offered a second seat.
#[test]
fn a_direct_booking_ends_the_waiting_entry() {
    let waiters = [
        waiter("w1", "first", 10, true, PartOfDay::Any),
        waiter("w2", "second", 20, true, PartOfDay::Any),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    state.slots.insert(2, slot(2, 1));
    let book = Request::Book(Book {
        national_code: "first".into(),
        application_id: "app-first".into(),
        service: "first_issuance".into(),
        slot_id: 2,
        payment_id: "pay-first".into(),
        hold_id: "h-first".into(),
        tracking_code: "T-first".into(),
    });
    // The booking, then a cancellation in the same batch: the seat goes to the second waiter.
    let (outcomes, effects) = decide(&mut state, &[book, cancel("c")], NOW);
    assert!(
        matches!(outcomes[0], Outcome::Booked { .. }),
        "{outcomes:?}"
    );
    let first = &effects.entry_updates["w1"];
    assert_eq!(
        (first.status, first.tracking_code.as_deref()),
        (WaitStatus::Booked, Some("T-first"))
    );
    assert_eq!(effects.entry_updates["w2"].status, WaitStatus::Booked);
    let by_waitlist: Vec<&str> = effects
        .new_appointments
        .iter()
        .map(|a| a.national_code.as_str())
        .collect();
    assert_eq!(by_waitlist, ["first", "second"], "one seat each");
    assert!(effects
        .events
        .iter()
        .any(|e| e.kind == "waitlist_fulfilled"));

    // A hold confirmed in a later batch ends the entry the same way.
    let mut state = with_waiters("c", &[waiter("w3", "third", 30, false, PartOfDay::Any)], 2);
    state.slots.insert(3, slot(3, 1));
    let (outcomes, effects) = decide(
        &mut state,
        &[hold("third", 3, "h3"), confirm("third", "h3", "T3")],
        NOW,
    );
    assert!(
        matches!(outcomes[1], Outcome::Booked { .. }),
        "{outcomes:?}"
    );
    assert_eq!(
        effects.entry_updates["w3"].tracking_code.as_deref(),
        Some("T3")
    );
    assert_eq!(effects.entry_updates["w3"].status, WaitStatus::Booked);
}

/// The sweeper's lapse ends a waiting entry once its last date has passed, and nothing else.
#[test]
fn an_entry_lapses_after_its_last_date() {
    let mut late = waiter("w1", "first", 10, false, PartOfDay::Any);
    late.limits.latest_at = NOW + 100;
    let mut state = with_waiters("c", &[late], 2);
    let lapse = |code: &str| {
        Request::LeaveWaitlist(LeaveWaitlist {
            national_code: code.into(),
            entry_id: "w1".into(),
            lapsed: true,
        })
    };
    let (outcomes, effects) = decide(&mut state, &[lapse("first")], NOW);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Refusal::EntryNotActive {
            status: WaitStatus::Waiting
        }),
        "not yet due"
    );
    assert!(effects.entry_updates.is_empty());
    let (outcomes, effects) = decide(&mut state, &[lapse("first")], NOW + 100);
    match &outcomes[0] {
        Outcome::WaitlistLeft { entry } => assert_eq!(entry.status, WaitStatus::Lapsed),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects.entry_updates["w1"].status, WaitStatus::Lapsed);
    assert!(effects.events.iter().any(|e| e.kind == "waitlist_lapsed"));
}

#[test]
fn seats_added_to_a_slot_go_to_the_waiters_first() {
    use crate::SetCapacity;
    let raise = |capacity| {
        Request::SetCapacity(SetCapacity {
            slot_id: 1,
            capacity,
            actor: "admin".into(),
        })
    };
    // Slot 1 has 2 seats, 1 taken: two more seats, and three waiters of whom one fits only
    // mornings (the slot is an afternoon). The two who fit get one seat each, in join order.
    let waiters = [
        waiter("w1", "morning", 10, true, PartOfDay::Morning),
        waiter("w2", "second", 20, false, PartOfDay::Any),
        waiter("w3", "third", 30, true, PartOfDay::Afternoon),
    ];
    let mut state = with_waiters("c", &waiters, 2);
    let (outcomes, effects) = decide(&mut state, &[raise(4)], NOW);
    assert!(
        matches!(outcomes[0], Outcome::CapacitySet { capacity: 4, .. }),
        "{outcomes:?}"
    );
    assert_eq!(
        effects.slot_deltas.get(&1),
        Some(&2),
        "both new seats taken"
    );
    assert_eq!(effects.entry_updates["w2"].status, WaitStatus::Offered);
    assert_eq!(effects.entry_updates["w3"].status, WaitStatus::Booked);
    assert!(!effects.entry_updates.contains_key("w1"));
    assert_eq!(effects.new_appointments.len(), 1);
    assert_eq!(state.slots[&1].taken, 3);

    // No waiter fits: the new seats are free at once, no release delay.
    let mut state = with_waiters("c", &waiters[..1], 2);
    let (_, effects) = decide(&mut state, &[raise(5)], NOW);
    assert!(effects.slot_deltas.is_empty());
    assert!(effects.new_releases.is_empty());
    assert_eq!(state.slots[&1].capacity - state.slots[&1].taken, 4);

    // Out of spare ids: the seats wanted are kept taken, released at once for the sweeper.
    let mut state = with_waiters("c", &waiters, 0);
    let (_, effects) = decide(&mut state, &[raise(4)], NOW);
    assert_eq!(effects.new_releases.len(), 2);
    assert!(effects.new_releases.iter().all(|r| r.release_at == NOW));
    assert_eq!(state.slots[&1].taken, 3);
}
