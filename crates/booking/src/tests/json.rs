//! The JSON of requests, outcomes, refusals and rows is a stored format: idempotency records
//! keep a booking's `Outcome` as JSON and replay it, so a renamed field or variant would make an
//! old record replay as `idempotency_key_reused`. These literals were written from the code
//! before the requests became one struct per kind; serialising must give them byte for byte,
//! and deserialising them must give the values back.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;

fn slot_row() -> SlotRow {
    SlotRow {
        id: 7,
        office_id: "021-0001".into(),
        start_at: 1_727_000_000,
        duration_minutes: 15,
        capacity: 4,
        taken: 2,
        opens_at: None,
        opens_for: None,
    }
}

fn hold_row() -> HoldRow {
    HoldRow {
        id: "hold_x1".into(),
        slot_id: 7,
        application_id: "app-1".into(),
        national_code: "0499370899".into(),
        service: "first_issuance".into(),
        status: HoldStatus::Live,
        created_at: 100,
        expires_at: 700,
    }
}

fn appointment_row(tracking_code: &str, payment_id: Option<&str>) -> AppointmentRow {
    AppointmentRow {
        tracking_code: tracking_code.into(),
        slot_id: 7,
        office_id: "021-0001".into(),
        start_at: 1_727_000_000,
        application_id: "app-1".into(),
        national_code: "0499370899".into(),
        service: "first_issuance".into(),
        payment_id: payment_id.map(Into::into),
        status: AppointmentStatus::Booked,
        created_at: 100,
        updated_at: 200,
        reschedules: 0,
    }
}

fn card_row() -> CardRow {
    CardRow {
        tracking_code: "T1".into(),
        office_id: "021-0001".into(),
        ready_date: "2024-10-06".into(),
        pickup_tracking_code: Some("P1".into()),
        created_at: 300,
    }
}

pub(super) fn requests() -> Vec<Request> {
    vec![
        Request::Hold(Hold {
            national_code: "0499370899".into(),
            application_id: "app-1".into(),
            service: "first_issuance".into(),
            slot_id: 7,
            hold_id: "hold_x1".into(),
            expires_at: 700,
        }),
        Request::Confirm(Confirm {
            national_code: "0499370899".into(),
            hold_id: "hold_x1".into(),
            payment_id: "pay-1".into(),
            tracking_code: "T1".into(),
        }),
        Request::Release(Release {
            national_code: "0499370899".into(),
            hold_id: "hold_x1".into(),
            closing: false,
        }),
        Request::Book(Book {
            national_code: "0499370899".into(),
            application_id: "app-1".into(),
            service: "first_issuance".into(),
            slot_id: 7,
            payment_id: "pay-1".into(),
            hold_id: "hold_x2".into(),
            tracking_code: "T2".into(),
        }),
        Request::Cancel(Cancel {
            national_code: "0499370899".into(),
            tracking_code: "T1".into(),
        }),
        Request::Reschedule(Reschedule {
            national_code: "0499370899".into(),
            tracking_code: "T1".into(),
            new_slot_id: 8,
        }),
        Request::Expire(Expire {
            hold_id: "hold_x1".into(),
        }),
        Request::CheckIn(CheckIn {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            actor: "staff:1".into(),
        }),
        Request::Enrol(Enrol {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            national_code: "0499370899".into(),
            ready_date: "2024-10-06".into(),
            pickup: Some(PickupBooking {
                slot_id: 9,
                tracking_code: "P1".into(),
            }),
            actor: "staff:1".into(),
        }),
        Request::Enrol(Enrol {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            national_code: "0499370899".into(),
            ready_date: "2024-10-06".into(),
            pickup: None,
            actor: "staff:1".into(),
        }),
        Request::NoShow(NoShow {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            actor: "staff:1".into(),
        }),
        Request::CardReady(CardReady {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            actor: "staff:1".into(),
        }),
        Request::Deliver(Deliver {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            pickup_tracking_code: Some("P1".into()),
            actor: "staff:1".into(),
        }),
        Request::Deliver(Deliver {
            office_id: "021-0001".into(),
            tracking_code: "T1".into(),
            pickup_tracking_code: None,
            actor: "staff:1".into(),
        }),
        Request::Relocate(Relocate {
            tracking_code: "T1".into(),
            new_slot_id: Some(8),
            reason: RelocationReason::OfficeClosed,
            notice_key: "closure:021-0001:2024-09-23".into(),
            actor: "admin:root".into(),
        }),
        Request::Relocate(Relocate {
            tracking_code: "T1".into(),
            new_slot_id: None,
            reason: RelocationReason::CapacityCut,
            notice_key: "cut:7".into(),
            actor: "admin:root".into(),
        }),
        Request::SetCapacity(SetCapacity {
            slot_id: 7,
            capacity: 3,
            actor: "admin:root".into(),
        }),
        Request::PickHold(PickHold {
            national_code: "0499370899".into(),
            application_id: "app-1".into(),
            service: "first_issuance".into(),
            candidates: vec![7, 8],
            hold_id: "hold_x1".into(),
            expires_at: 700,
        }),
        Request::PickBook(PickBook {
            national_code: "0499370899".into(),
            application_id: "app-1".into(),
            service: "first_issuance".into(),
            candidates: vec![7, 8],
            payment_id: "pay-1".into(),
            hold_id: "hold_x2".into(),
            tracking_code: "T2".into(),
        }),
    ]
}

fn refusals() -> Vec<Refusal> {
    vec![
        Refusal::SlotFull { slot_id: 7 },
        Refusal::SlotUnknown { slot_id: 7 },
        Refusal::NotYetReleased {
            slot_id: 7,
            opens_at: 1_727_000_000,
        },
        Refusal::AlreadyHolding {
            hold_id: "hold_x1".into(),
        },
        Refusal::AlreadyBooked {
            tracking_code: "T1".into(),
        },
        Refusal::HoldNotFound,
        Refusal::HoldExpired,
        Refusal::HoldNotLive {
            status: HoldStatus::Released,
        },
        Refusal::PaymentNotFound,
        Refusal::PaymentNotPaid {
            status: PaymentStatus::Declined,
        },
        Refusal::PaymentMismatch,
        Refusal::ApplicationNotFound,
        Refusal::AppointmentNotFound,
        Refusal::NotActive {
            status: AppointmentStatus::Cancelled,
        },
        Refusal::SameSlot,
        Refusal::InvalidTransition {
            status: AppointmentStatus::CheckedIn,
        },
        Refusal::TooEarly,
        Refusal::CapacityBelowTaken {
            slot_id: 7,
            taken: 2,
        },
        Refusal::RescheduleLimitReached { limit: 2 },
        Refusal::CancellationLimitReached {
            limit: 3,
            window_days: 30,
        },
        Refusal::CandidatesFull,
    ]
}

fn outcomes() -> Vec<Outcome> {
    let booked = appointment_row("T1", Some("pay-1"));
    let pickup = appointment_row("P1", None);
    vec![
        Outcome::Held { hold: hold_row() },
        Outcome::Booked {
            appointment: booked.clone(),
        },
        Outcome::Released {
            hold_id: "hold_x1".into(),
        },
        Outcome::Cancelled {
            appointment: booked.clone(),
        },
        Outcome::Rescheduled {
            appointment: booked.clone(),
            old_slot_id: 6,
        },
        Outcome::Expired {
            hold_id: "hold_x1".into(),
        },
        Outcome::Updated {
            appointment: booked.clone(),
        },
        Outcome::Enrolled {
            appointment: booked.clone(),
            card: card_row(),
            pickup: Some(pickup.clone()),
        },
        Outcome::Enrolled {
            appointment: booked.clone(),
            card: card_row(),
            pickup: None,
        },
        Outcome::Delivered {
            appointment: booked.clone(),
            pickup: Some(pickup),
        },
        Outcome::Relocated {
            appointment: booked,
            old_slot_id: 6,
        },
        Outcome::CapacitySet {
            slot_id: 7,
            capacity: 3,
        },
        Outcome::Refused(Refusal::SlotFull { slot_id: 7 }),
        Outcome::Refused(Refusal::HoldExpired),
    ]
}

fn payment_row() -> PaymentRow {
    PaymentRow {
        id: "pay-1".into(),
        application_id: "app-1".into(),
        service: "first_issuance".into(),
        national_code: "0499370899".into(),
        status: PaymentStatus::Paid,
    }
}

fn application_ref() -> ApplicationRef {
    ApplicationRef {
        id: "app-1".into(),
        national_code: "0499370899".into(),
        service: "first_issuance".into(),
    }
}

fn outbox_row() -> OutboxRow {
    OutboxRow {
        national_code: "0499370899".into(),
        application_id: "app-1".into(),
        tracking_code: "T1".into(),
        notice_key: "closure:021-0001:2024-09-23".into(),
        channel: "sms".into(),
        body: "نوبت شما با کد رهگیری T1 لغو شد".into(),
        created_at: 400,
    }
}

const REQUESTS: &[&str] = &[
    r#"{"Hold":{"national_code":"0499370899","application_id":"app-1","service":"first_issuance","slot_id":7,"hold_id":"hold_x1","expires_at":700}}"#,
    r#"{"Confirm":{"national_code":"0499370899","hold_id":"hold_x1","payment_id":"pay-1","tracking_code":"T1"}}"#,
    r#"{"Release":{"national_code":"0499370899","hold_id":"hold_x1"}}"#,
    r#"{"Book":{"national_code":"0499370899","application_id":"app-1","service":"first_issuance","slot_id":7,"payment_id":"pay-1","hold_id":"hold_x2","tracking_code":"T2"}}"#,
    r#"{"Cancel":{"national_code":"0499370899","tracking_code":"T1"}}"#,
    r#"{"Reschedule":{"national_code":"0499370899","tracking_code":"T1","new_slot_id":8}}"#,
    r#"{"Expire":{"hold_id":"hold_x1"}}"#,
    r#"{"CheckIn":{"office_id":"021-0001","tracking_code":"T1","actor":"staff:1"}}"#,
    r#"{"Enrol":{"office_id":"021-0001","tracking_code":"T1","national_code":"0499370899","ready_date":"2024-10-06","pickup":{"slot_id":9,"tracking_code":"P1"},"actor":"staff:1"}}"#,
    r#"{"Enrol":{"office_id":"021-0001","tracking_code":"T1","national_code":"0499370899","ready_date":"2024-10-06","pickup":null,"actor":"staff:1"}}"#,
    r#"{"NoShow":{"office_id":"021-0001","tracking_code":"T1","actor":"staff:1"}}"#,
    r#"{"CardReady":{"office_id":"021-0001","tracking_code":"T1","actor":"staff:1"}}"#,
    r#"{"Deliver":{"office_id":"021-0001","tracking_code":"T1","pickup_tracking_code":"P1","actor":"staff:1"}}"#,
    r#"{"Deliver":{"office_id":"021-0001","tracking_code":"T1","pickup_tracking_code":null,"actor":"staff:1"}}"#,
    r#"{"Relocate":{"tracking_code":"T1","new_slot_id":8,"reason":"office_closed","notice_key":"closure:021-0001:2024-09-23","actor":"admin:root"}}"#,
    r#"{"Relocate":{"tracking_code":"T1","new_slot_id":null,"reason":"capacity_cut","notice_key":"cut:7","actor":"admin:root"}}"#,
    r#"{"SetCapacity":{"slot_id":7,"capacity":3,"actor":"admin:root"}}"#,
    r#"{"PickHold":{"national_code":"0499370899","application_id":"app-1","service":"first_issuance","candidates":[7,8],"hold_id":"hold_x1","expires_at":700}}"#,
    r#"{"PickBook":{"national_code":"0499370899","application_id":"app-1","service":"first_issuance","candidates":[7,8],"payment_id":"pay-1","hold_id":"hold_x2","tracking_code":"T2"}}"#,
];

const REFUSALS: &[&str] = &[
    r#"{"refusal":"slot_full","slot_id":7}"#,
    r#"{"refusal":"slot_unknown","slot_id":7}"#,
    r#"{"refusal":"not_yet_released","slot_id":7,"opens_at":1727000000}"#,
    r#"{"refusal":"already_holding","hold_id":"hold_x1"}"#,
    r#"{"refusal":"already_booked","tracking_code":"T1"}"#,
    r#"{"refusal":"hold_not_found"}"#,
    r#"{"refusal":"hold_expired"}"#,
    r#"{"refusal":"hold_not_live","status":"released"}"#,
    r#"{"refusal":"payment_not_found"}"#,
    r#"{"refusal":"payment_not_paid","status":"declined"}"#,
    r#"{"refusal":"payment_mismatch"}"#,
    r#"{"refusal":"application_not_found"}"#,
    r#"{"refusal":"appointment_not_found"}"#,
    r#"{"refusal":"not_active","status":"cancelled"}"#,
    r#"{"refusal":"same_slot"}"#,
    r#"{"refusal":"invalid_transition","status":"checked_in"}"#,
    r#"{"refusal":"too_early"}"#,
    r#"{"refusal":"capacity_below_taken","slot_id":7,"taken":2}"#,
    r#"{"refusal":"reschedule_limit_reached","limit":2}"#,
    r#"{"refusal":"cancellation_limit_reached","limit":3,"window_days":30}"#,
    r#"{"refusal":"candidates_full"}"#,
];

const OUTCOMES: &[&str] = &[
    r#"{"outcome":"held","hold":{"id":"hold_x1","slot_id":7,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","status":"live","created_at":100,"expires_at":700}}"#,
    r#"{"outcome":"booked","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200}}"#,
    r#"{"outcome":"released","hold_id":"hold_x1"}"#,
    r#"{"outcome":"cancelled","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200}}"#,
    r#"{"outcome":"rescheduled","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200},"old_slot_id":6}"#,
    r#"{"outcome":"expired","hold_id":"hold_x1"}"#,
    r#"{"outcome":"updated","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200}}"#,
    r#"{"outcome":"enrolled","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200},"card":{"tracking_code":"T1","office_id":"021-0001","ready_date":"2024-10-06","pickup_tracking_code":"P1","created_at":300},"pickup":{"tracking_code":"P1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":null,"status":"booked","created_at":100,"updated_at":200}}"#,
    r#"{"outcome":"enrolled","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200},"card":{"tracking_code":"T1","office_id":"021-0001","ready_date":"2024-10-06","pickup_tracking_code":"P1","created_at":300},"pickup":null}"#,
    r#"{"outcome":"delivered","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200},"pickup":{"tracking_code":"P1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":null,"status":"booked","created_at":100,"updated_at":200}}"#,
    r#"{"outcome":"relocated","appointment":{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200},"old_slot_id":6}"#,
    r#"{"outcome":"capacity_set","slot_id":7,"capacity":3}"#,
    r#"{"outcome":"refused","refusal":"slot_full","slot_id":7}"#,
    r#"{"outcome":"refused","refusal":"hold_expired"}"#,
];

const APPOINTMENT_STATUSES: &[&str] = &[
    r#""booked""#,
    r#""checked_in""#,
    r#""enrolled""#,
    r#""no_show""#,
    r#""cancelled""#,
    r#""rescheduled""#,
    r#""card_ready""#,
    r#""delivered""#,
];

const HOLD_STATUSES: &[&str] = &[
    r#""live""#,
    r#""confirmed""#,
    r#""released""#,
    r#""expired""#,
];

const PAYMENT_STATUSES: &[&str] = &[r#""pending""#, r#""paid""#, r#""declined""#];

const RELOCATION_REASONS: &[&str] = &[r#""office_closed""#, r#""holiday""#, r#""capacity_cut""#];

/// Each value serialises to its literal, and the literal deserialises to the value.
fn assert_json<T>(values: &[T], literals: &[&str])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(values.len(), literals.len());
    for (value, literal) in values.iter().zip(literals) {
        assert_eq!(&serde_json::to_string(value).unwrap(), literal);
        assert_eq!(&serde_json::from_str::<T>(literal).unwrap(), value);
    }
}

#[test]
fn requests_keep_their_json() {
    assert_json(&requests(), REQUESTS);
}

#[test]
fn outcomes_and_refusals_keep_their_json() {
    assert_json(&outcomes(), OUTCOMES);
    assert_json(&refusals(), REFUSALS);
}

#[test]
fn rows_and_statuses_keep_their_json() {
    assert_json(
        &[
            slot_row(),
            SlotRow {
                opens_at: Some(1_726_990_000),
                opens_for: Some("first_issuance".into()),
                ..slot_row()
            },
        ],
        &[
            r#"{"id":7,"office_id":"021-0001","start_at":1727000000,"duration_minutes":15,"capacity":4,"taken":2}"#,
            r#"{"id":7,"office_id":"021-0001","start_at":1727000000,"duration_minutes":15,"capacity":4,"taken":2,"opens_at":1726990000,"opens_for":"first_issuance"}"#,
        ],
    );
    assert_json(
        &[hold_row()],
        &[
            r#"{"id":"hold_x1","slot_id":7,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","status":"live","created_at":100,"expires_at":700}"#,
        ],
    );
    assert_json(
        &[appointment_row("T1", Some("pay-1"))],
        &[
            r#"{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":"pay-1","status":"booked","created_at":100,"updated_at":200}"#,
        ],
    );
    // A moved appointment carries its count; one never moved reads and writes as before the
    // count existed (above).
    let moved = AppointmentRow {
        reschedules: 2,
        ..appointment_row("T1", None)
    };
    assert_json(
        &[moved],
        &[
            r#"{"tracking_code":"T1","slot_id":7,"office_id":"021-0001","start_at":1727000000,"application_id":"app-1","national_code":"0499370899","service":"first_issuance","payment_id":null,"status":"booked","created_at":100,"updated_at":200,"reschedules":2}"#,
        ],
    );
    assert_json(
        &[payment_row()],
        &[
            r#"{"id":"pay-1","application_id":"app-1","service":"first_issuance","national_code":"0499370899","status":"paid"}"#,
        ],
    );
    assert_json(
        &[application_ref()],
        &[r#"{"id":"app-1","national_code":"0499370899","service":"first_issuance"}"#],
    );
    assert_json(
        &[card_row()],
        &[
            r#"{"tracking_code":"T1","office_id":"021-0001","ready_date":"2024-10-06","pickup_tracking_code":"P1","created_at":300}"#,
        ],
    );
    assert_json(
        &[outbox_row()],
        &[
            r#"{"national_code":"0499370899","application_id":"app-1","tracking_code":"T1","notice_key":"closure:021-0001:2024-09-23","channel":"sms","body":"نوبت شما با کد رهگیری T1 لغو شد","created_at":400}"#,
        ],
    );
    assert_json(&AppointmentStatus::ALL, APPOINTMENT_STATUSES);
    assert_json(
        &[
            HoldStatus::Live,
            HoldStatus::Confirmed,
            HoldStatus::Released,
            HoldStatus::Expired,
        ],
        HOLD_STATUSES,
    );
    assert_json(
        &[
            PaymentStatus::Pending,
            PaymentStatus::Paid,
            PaymentStatus::Declined,
        ],
        PAYMENT_STATUSES,
    );
    assert_json(
        &[
            RelocationReason::OfficeClosed,
            RelocationReason::Holiday,
            RelocationReason::CapacityCut,
        ],
        RELOCATION_REASONS,
    );
}

fn wait_row() -> WaitRow {
    WaitRow {
        id: "wait_1".into(),
        national_code: "0499370899".into(),
        service: "first_issuance".into(),
        application_id: "app-1".into(),
        payment_id: "pay-1".into(),
        auto_accept: false,
        limits: WaitLimits {
            earliest_at: 1_726_950_000,
            latest_at: 1_729_540_000,
            part_of_day: PartOfDay::Morning,
        },
        limits_json: r#"{"office_ids":["021-0001"]}"#.into(),
        status: WaitStatus::Offered,
        offer_hold_id: Some("offer_x1".into()),
        tracking_code: None,
        joined_at: 100,
        updated_at: 200,
    }
}

/// The waitlist's requests (and a closure's release), pinned apart from the older kinds'.
fn waitlist_requests() -> Vec<Request> {
    let row = wait_row();
    vec![
        Request::JoinWaitlist(Box::new(JoinWaitlist {
            national_code: "0499370899".into(),
            application_id: "app-1".into(),
            service: "first_issuance".into(),
            payment_id: "pay-1".into(),
            entry_id: "wait_1".into(),
            auto_accept: true,
            limits: row.limits,
            limits_json: row.limits_json.clone(),
            offices: vec!["021-0001".into(), "021-0002".into()],
        })),
        Request::LeaveWaitlist(LeaveWaitlist {
            national_code: "0499370899".into(),
            entry_id: "wait_1".into(),
            lapsed: false,
        }),
        Request::AcceptOffer(AcceptOffer {
            national_code: "0499370899".into(),
            entry_id: "wait_1".into(),
            hold_id: "offer_x1".into(),
            payment_id: "pay-1".into(),
            tracking_code: "T9".into(),
        }),
        Request::DeclineOffer(DeclineOffer {
            national_code: "0499370899".into(),
            entry_id: "wait_1".into(),
            hold_id: "offer_x1".into(),
        }),
        Request::ReleaseSeat(ReleaseSeat {
            release_id: 42,
            closing: false,
        }),
        Request::Release(Release {
            national_code: "0499370899".into(),
            hold_id: "hold_x1".into(),
            closing: true,
        }),
    ]
}

const WAITLIST_REQUESTS: &[&str] = &[
    r#"{"JoinWaitlist":{"national_code":"0499370899","application_id":"app-1","service":"first_issuance","payment_id":"pay-1","entry_id":"wait_1","auto_accept":true,"limits":{"earliest_at":1726950000,"latest_at":1729540000,"part_of_day":"morning"},"limits_json":"{\"office_ids\":[\"021-0001\"]}","offices":["021-0001","021-0002"]}}"#,
    r#"{"LeaveWaitlist":{"national_code":"0499370899","entry_id":"wait_1"}}"#,
    r#"{"AcceptOffer":{"national_code":"0499370899","entry_id":"wait_1","hold_id":"offer_x1","payment_id":"pay-1","tracking_code":"T9"}}"#,
    r#"{"DeclineOffer":{"national_code":"0499370899","entry_id":"wait_1","hold_id":"offer_x1"}}"#,
    r#"{"ReleaseSeat":{"release_id":42}}"#,
    r#"{"Release":{"national_code":"0499370899","hold_id":"hold_x1","closing":true}}"#,
];

const WAIT_ROW: &str = r#"{"id":"wait_1","national_code":"0499370899","service":"first_issuance","application_id":"app-1","payment_id":"pay-1","auto_accept":false,"limits":{"earliest_at":1726950000,"latest_at":1729540000,"part_of_day":"morning"},"limits_json":"{\"office_ids\":[\"021-0001\"]}","status":"offered","offer_hold_id":"offer_x1","tracking_code":null,"joined_at":100,"updated_at":200}"#;

#[test]
fn waitlist_json_is_pinned() {
    assert_json(&waitlist_requests(), WAITLIST_REQUESTS);
    let row = wait_row();
    let outcomes = [
        Outcome::Waitlisted {
            entry: row.clone(),
            created: true,
        },
        Outcome::WaitlistLeft { entry: row.clone() },
        Outcome::OfferDeclined { entry: row.clone() },
        Outcome::SeatReleased { slot_id: 7 },
        Outcome::Refused(Refusal::AlreadyWaiting {
            entry_id: "wait_1".into(),
        }),
        Outcome::Refused(Refusal::EntryNotFound),
        Outcome::Refused(Refusal::EntryNotActive {
            status: WaitStatus::Lapsed,
        }),
        Outcome::Refused(Refusal::OfferNotFound),
        Outcome::Refused(Refusal::ReleaseNotDue),
    ];
    let literals = [
        format!(r#"{{"outcome":"waitlisted","entry":{WAIT_ROW},"created":true}}"#),
        format!(r#"{{"outcome":"waitlist_left","entry":{WAIT_ROW}}}"#),
        format!(r#"{{"outcome":"offer_declined","entry":{WAIT_ROW}}}"#),
        r#"{"outcome":"seat_released","slot_id":7}"#.to_string(),
        r#"{"outcome":"refused","refusal":"already_waiting","entry_id":"wait_1"}"#.to_string(),
        r#"{"outcome":"refused","refusal":"entry_not_found"}"#.to_string(),
        r#"{"outcome":"refused","refusal":"entry_not_active","status":"lapsed"}"#.to_string(),
        r#"{"outcome":"refused","refusal":"offer_not_found"}"#.to_string(),
        r#"{"outcome":"refused","refusal":"release_not_due"}"#.to_string(),
    ];
    let literals: Vec<&str> = literals.iter().map(String::as_str).collect();
    assert_json(&outcomes, &literals);
    assert_json(&[row], &[WAIT_ROW]);
    assert_json(
        &[SeatReleaseRow {
            id: 3,
            slot_id: 7,
            release_at: 900,
            freed_by: Some("0499370899".into()),
            status: ReleaseStatus::Pending,
            created_at: 100,
        }],
        &[
            r#"{"id":3,"slot_id":7,"release_at":900,"freed_by":"0499370899","status":"pending","created_at":100}"#,
        ],
    );
    assert_json(
        &[EntryOffice {
            entry_id: "wait_1".into(),
            office_id: "021-0001".into(),
            joined_at: 100,
        }],
        &[r#"{"entry_id":"wait_1","office_id":"021-0001","joined_at":100}"#],
    );
    assert_json(
        &WaitStatus::ALL,
        &[
            r#""waiting""#,
            r#""offered""#,
            r#""booked""#,
            r#""left""#,
            r#""lapsed""#,
        ],
    );
}
