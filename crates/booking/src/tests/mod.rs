//! The decision's tests: one file per request family (`seats`, `staff`, `admin`), the
//! property test over random sequences (`properties`), and the pins of what a restructuring
//! must keep (`effects`, `json`, `routing`). The helpers below build rows, requests and states.

use super::*;

mod admin;
mod effects;
mod json;
mod limits;
mod pick;
mod properties;
mod routing;
mod seats;
mod staff;
mod waitlist;

fn slot(id: i64, capacity: i64) -> SlotRow {
    SlotRow {
        id,
        office_id: "021-0001".into(),
        start_at: 1_000_000 + id * 900,
        duration_minutes: 15,
        capacity,
        taken: 0,
        opens_at: None,
        opens_for: None,
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
