//! What the writer stores (rows, seat changes, events and their payloads, notices) for a
//! scripted run that uses every request kind, pinned as text written from the code before the
//! requests became one struct per kind: a restructuring of `decide` must not change one byte
//! of what reaches the database.

use super::*;

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap()
}

fn render(out: &mut String, outcomes: &[Outcome], effects: &Effects) {
    use std::fmt::Write;
    for o in outcomes {
        writeln!(out, "outcome {}", json(o)).unwrap();
    }
    for h in &effects.new_holds {
        writeln!(out, "new_hold {}", json(h)).unwrap();
    }
    for (id, s) in &effects.hold_status {
        writeln!(out, "hold_status {id} {}", s.as_str()).unwrap();
    }
    for a in &effects.new_appointments {
        writeln!(out, "new_appointment {}", json(a)).unwrap();
    }
    for a in effects.appointment_updates.values() {
        writeln!(out, "appointment_update {}", json(a)).unwrap();
    }
    for (slot, d) in &effects.slot_deltas {
        writeln!(out, "slot_delta {slot} {d}").unwrap();
    }
    for (slot, c) in &effects.slot_capacity {
        writeln!(out, "slot_capacity {slot} {c}").unwrap();
    }
    for c in &effects.new_cards {
        writeln!(out, "card {}", json(c)).unwrap();
    }
    for o in &effects.outbox {
        writeln!(out, "outbox {}", json(o)).unwrap();
    }
    for e in &effects.events {
        writeln!(
            out,
            "event {} {} {} {} {}",
            e.at, e.kind, e.subject, e.actor, e.payload_json
        )
        .unwrap();
    }
}

fn book(code: &str, slot_id: i64, tracking: &str) -> Request {
    Request::Book(Book {
        national_code: code.into(),
        application_id: format!("app-{code}").into(),
        service: "first_issuance".into(),
        slot_id,
        payment_id: format!("pay-{code}").into(),
        hold_id: format!("h-{tracking}").into(),
        tracking_code: tracking.into(),
    })
}

/// Batches with the time each is decided at.
fn script() -> Vec<(UnixSeconds, Vec<Request>)> {
    let mut short = hold("d", 2, "h4");
    if let Request::Hold(h) = &mut short {
        h.expires_at = 5;
    }
    vec![
        (
            0,
            vec![
                hold("a", 1, "h1"),
                confirm("a", "h1", "T1"),
                book("b", 1, "T2"),
                hold("c", 2, "h3"),
                Request::Release(Release {
                    national_code: "c".into(),
                    hold_id: "h3".into(),
                    closing: false,
                }),
                short,
                book("e", 3, "T5"),
                book("f", 3, "T6"),
                book("g", 3, "T7"),
                // Refused: the slot is full.
                book("h", 3, "T8"),
            ],
        ),
        (
            10,
            vec![
                Request::Expire(Expire {
                    hold_id: "h4".into(),
                }),
                Request::Reschedule(Reschedule {
                    national_code: "a".into(),
                    tracking_code: "T1".into(),
                    new_slot_id: 2,
                }),
                Request::Cancel(Cancel {
                    national_code: "b".into(),
                    tracking_code: "T2".into(),
                }),
                // Refused: already cancelled.
                Request::Cancel(Cancel {
                    national_code: "b".into(),
                    tracking_code: "T2".into(),
                }),
            ],
        ),
        (
            2_000_000,
            vec![
                staff("check_in", "T1"),
                Request::Enrol(Enrol {
                    office_id: "021-0001".into(),
                    tracking_code: "T1".into(),
                    national_code: "a".into(),
                    ready_date: "2024-10-06".into(),
                    pickup: Some(PickupBooking {
                        slot_id: 4,
                        tracking_code: "P1".into(),
                    }),
                    actor: "staff:1".into(),
                }),
                staff("card_ready", "T1"),
                Request::Deliver(Deliver {
                    office_id: "021-0001".into(),
                    tracking_code: "T1".into(),
                    pickup_tracking_code: Some("P1".into()),
                    actor: "staff:1".into(),
                }),
                staff("no_show", "T5"),
                Request::Relocate(Relocate {
                    tracking_code: "T6".into(),
                    new_slot_id: Some(1),
                    reason: RelocationReason::Holiday,
                    notice_key: "holiday:2024-09-23".into(),
                    actor: "admin:root".into(),
                }),
                Request::Relocate(Relocate {
                    tracking_code: "T7".into(),
                    new_slot_id: None,
                    reason: RelocationReason::CapacityCut,
                    notice_key: "cut:3".into(),
                    actor: "admin:root".into(),
                }),
                Request::SetCapacity(SetCapacity {
                    slot_id: 3,
                    capacity: 1,
                    actor: "admin:root".into(),
                }),
                // Refused: below the seats taken.
                Request::SetCapacity(SetCapacity {
                    slot_id: 1,
                    capacity: 0,
                    actor: "admin:root".into(),
                }),
            ],
        ),
    ]
}

fn run_script() -> String {
    let citizens = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut state = state_with(&[slot(1, 3), slot(2, 2), slot(3, 3), slot(4, 1)], &citizens);
    let mut out = String::new();
    for (now, batch) in script() {
        let (outcomes, effects) = decide(&mut state, &batch, now);
        render(&mut out, &outcomes, &effects);
        out.push_str("--\n");
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
    out
}

/// Written from the code before the restructuring (the JSON of rows, the events' payloads,
/// the notices' text); a rescheduled appointment has carried its `reschedules` count since the
/// caps of issue 21.
const EXPECTED: &str = r#"outcome {"outcome":"held","hold":{"id":"h1","slot_id":1,"application_id":"app-a","national_code":"a","service":"first_issuance","status":"live","created_at":0,"expires_at":600}}
outcome {"outcome":"booked","appointment":{"tracking_code":"T1","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"booked","created_at":0,"updated_at":0}}
outcome {"outcome":"booked","appointment":{"tracking_code":"T2","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-b","national_code":"b","service":"first_issuance","payment_id":"pay-b","status":"booked","created_at":0,"updated_at":0}}
outcome {"outcome":"held","hold":{"id":"h3","slot_id":2,"application_id":"app-c","national_code":"c","service":"first_issuance","status":"live","created_at":0,"expires_at":600}}
outcome {"outcome":"released","hold_id":"h3"}
outcome {"outcome":"held","hold":{"id":"h4","slot_id":2,"application_id":"app-d","national_code":"d","service":"first_issuance","status":"live","created_at":0,"expires_at":5}}
outcome {"outcome":"booked","appointment":{"tracking_code":"T5","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-e","national_code":"e","service":"first_issuance","payment_id":"pay-e","status":"booked","created_at":0,"updated_at":0}}
outcome {"outcome":"booked","appointment":{"tracking_code":"T6","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-f","national_code":"f","service":"first_issuance","payment_id":"pay-f","status":"booked","created_at":0,"updated_at":0}}
outcome {"outcome":"booked","appointment":{"tracking_code":"T7","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-g","national_code":"g","service":"first_issuance","payment_id":"pay-g","status":"booked","created_at":0,"updated_at":0}}
outcome {"outcome":"refused","refusal":"slot_full","slot_id":3}
new_hold {"id":"h1","slot_id":1,"application_id":"app-a","national_code":"a","service":"first_issuance","status":"confirmed","created_at":0,"expires_at":600}
new_hold {"id":"h-T2","slot_id":1,"application_id":"app-b","national_code":"b","service":"first_issuance","status":"confirmed","created_at":0,"expires_at":0}
new_hold {"id":"h3","slot_id":2,"application_id":"app-c","national_code":"c","service":"first_issuance","status":"released","created_at":0,"expires_at":600}
new_hold {"id":"h4","slot_id":2,"application_id":"app-d","national_code":"d","service":"first_issuance","status":"live","created_at":0,"expires_at":5}
new_hold {"id":"h-T5","slot_id":3,"application_id":"app-e","national_code":"e","service":"first_issuance","status":"confirmed","created_at":0,"expires_at":0}
new_hold {"id":"h-T6","slot_id":3,"application_id":"app-f","national_code":"f","service":"first_issuance","status":"confirmed","created_at":0,"expires_at":0}
new_hold {"id":"h-T7","slot_id":3,"application_id":"app-g","national_code":"g","service":"first_issuance","status":"confirmed","created_at":0,"expires_at":0}
new_appointment {"tracking_code":"T1","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"booked","created_at":0,"updated_at":0}
new_appointment {"tracking_code":"T2","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-b","national_code":"b","service":"first_issuance","payment_id":"pay-b","status":"booked","created_at":0,"updated_at":0}
new_appointment {"tracking_code":"T5","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-e","national_code":"e","service":"first_issuance","payment_id":"pay-e","status":"booked","created_at":0,"updated_at":0}
new_appointment {"tracking_code":"T6","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-f","national_code":"f","service":"first_issuance","payment_id":"pay-f","status":"booked","created_at":0,"updated_at":0}
new_appointment {"tracking_code":"T7","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-g","national_code":"g","service":"first_issuance","payment_id":"pay-g","status":"booked","created_at":0,"updated_at":0}
slot_delta 1 2
slot_delta 2 1
slot_delta 3 3
event 0 hold_created h1 a {"slot_id":1,"expires_at":600}
event 0 appointment_booked T1 a {"slot_id":1,"hold_id":"h1","payment_id":"pay-a"}
event 0 appointment_booked T2 b {"payment_id":"pay-b","slot_id":1}
event 0 hold_created h3 c {"slot_id":2,"expires_at":600}
event 0 hold_released h3 c {"slot_id":2}
event 0 hold_created h4 d {"slot_id":2,"expires_at":5}
event 0 appointment_booked T5 e {"payment_id":"pay-e","slot_id":3}
event 0 appointment_booked T6 f {"payment_id":"pay-f","slot_id":3}
event 0 appointment_booked T7 g {"payment_id":"pay-g","slot_id":3}
--
outcome {"outcome":"expired","hold_id":"h4"}
outcome {"outcome":"rescheduled","appointment":{"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"booked","created_at":0,"updated_at":10,"reschedules":1},"old_slot_id":1}
outcome {"outcome":"cancelled","appointment":{"tracking_code":"T2","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-b","national_code":"b","service":"first_issuance","payment_id":"pay-b","status":"cancelled","created_at":0,"updated_at":10}}
outcome {"outcome":"refused","refusal":"not_active","status":"cancelled"}
hold_status h4 expired
appointment_update {"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"booked","created_at":0,"updated_at":10,"reschedules":1}
appointment_update {"tracking_code":"T2","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-b","national_code":"b","service":"first_issuance","payment_id":"pay-b","status":"cancelled","created_at":0,"updated_at":10}
slot_delta 1 -2
event 10 hold_expired h4 system {"slot_id":2}
event 10 appointment_rescheduled T1 a {"new_slot_id":2,"old_slot_id":1}
event 10 appointment_cancelled T2 b {"slot_id":1}
--
outcome {"outcome":"updated","appointment":{"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"checked_in","created_at":0,"updated_at":2000000,"reschedules":1}}
outcome {"outcome":"enrolled","appointment":{"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"enrolled","created_at":0,"updated_at":2000000,"reschedules":1},"card":{"tracking_code":"T1","office_id":"021-0001","ready_date":"2024-10-06","pickup_tracking_code":"P1","created_at":2000000},"pickup":{"tracking_code":"P1","slot_id":4,"office_id":"021-0001","start_at":1003600,"application_id":"app-a","national_code":"a","service":"card_pickup","payment_id":null,"status":"booked","created_at":2000000,"updated_at":2000000}}
outcome {"outcome":"updated","appointment":{"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"card_ready","created_at":0,"updated_at":2000000,"reschedules":1}}
outcome {"outcome":"delivered","appointment":{"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"delivered","created_at":0,"updated_at":2000000,"reschedules":1},"pickup":{"tracking_code":"P1","slot_id":4,"office_id":"021-0001","start_at":1003600,"application_id":"app-a","national_code":"a","service":"card_pickup","payment_id":null,"status":"delivered","created_at":2000000,"updated_at":2000000}}
outcome {"outcome":"updated","appointment":{"tracking_code":"T5","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-e","national_code":"e","service":"first_issuance","payment_id":"pay-e","status":"no_show","created_at":0,"updated_at":2000000}}
outcome {"outcome":"relocated","appointment":{"tracking_code":"T6","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-f","national_code":"f","service":"first_issuance","payment_id":"pay-f","status":"booked","created_at":0,"updated_at":2000000},"old_slot_id":3}
outcome {"outcome":"relocated","appointment":{"tracking_code":"T7","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-g","national_code":"g","service":"first_issuance","payment_id":"pay-g","status":"cancelled","created_at":0,"updated_at":2000000},"old_slot_id":3}
outcome {"outcome":"capacity_set","slot_id":3,"capacity":1}
outcome {"outcome":"refused","refusal":"capacity_below_taken","slot_id":1,"taken":1}
new_appointment {"tracking_code":"P1","slot_id":4,"office_id":"021-0001","start_at":1003600,"application_id":"app-a","national_code":"a","service":"card_pickup","payment_id":null,"status":"delivered","created_at":2000000,"updated_at":2000000}
appointment_update {"tracking_code":"T1","slot_id":2,"office_id":"021-0001","start_at":1001800,"application_id":"app-a","national_code":"a","service":"first_issuance","payment_id":"pay-a","status":"delivered","created_at":0,"updated_at":2000000,"reschedules":1}
appointment_update {"tracking_code":"T5","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-e","national_code":"e","service":"first_issuance","payment_id":"pay-e","status":"no_show","created_at":0,"updated_at":2000000}
appointment_update {"tracking_code":"T6","slot_id":1,"office_id":"021-0001","start_at":1000900,"application_id":"app-f","national_code":"f","service":"first_issuance","payment_id":"pay-f","status":"booked","created_at":0,"updated_at":2000000}
appointment_update {"tracking_code":"T7","slot_id":3,"office_id":"021-0001","start_at":1002700,"application_id":"app-g","national_code":"g","service":"first_issuance","payment_id":"pay-g","status":"cancelled","created_at":0,"updated_at":2000000}
slot_delta 1 1
slot_delta 2 -1
slot_delta 3 -3
slot_capacity 3 1
card {"tracking_code":"T1","office_id":"021-0001","ready_date":"2024-10-06","pickup_tracking_code":"P1","created_at":2000000}
outbox {"national_code":"f","application_id":"app-f","tracking_code":"T6","notice_key":"holiday:2024-09-23","channel":"sms","body":"نوبت شما با کد رهگیری T6 به دلیل تعطیل رسمی به دوشنبه ۲۲ دی ۱۳۴۸، ساعت ۱۷:۳۱ در دفتر 021-0001 منتقل شد.","created_at":2000000}
outbox {"national_code":"g","application_id":"app-g","tracking_code":"T7","notice_key":"cut:3","channel":"sms","body":"نوبت شما با کد رهگیری T7 به دلیل کاهش ظرفیت دفتر لغو شد؛ نوبت خالی جایگزین نبود. لطفاً دوباره نوبت بگیرید.","created_at":2000000}
event 2000000 appointment_checked_in T1 staff:1 {"office_id":"021-0001"}
event 2000000 appointment_enrolled T1 staff:1 {"office_id":"021-0001","ready_date":"2024-10-06"}
event 2000000 pickup_booked T1 staff:1 {"pickup_tracking_code":"P1","slot_id":4,"start_at":1003600}
event 2000000 appointment_booked P1 staff:1 {"pickup_of":"T1","slot_id":4}
event 2000000 card_ready T1 staff:1 {"office_id":"021-0001"}
event 2000000 card_delivered T1 staff:1 {"office_id":"021-0001","pickup_tracking_code":"P1"}
event 2000000 appointment_no_show T5 staff:1 {"office_id":"021-0001"}
event 2000000 slot_seat_cut 3 system {"capacity":2}
event 2000000 appointment_relocated T6 admin:root {"new_slot_id":1,"office_id":"021-0001","old_slot_id":3,"reason":"holiday"}
event 2000000 slot_seat_cut 3 system {"capacity":1}
event 2000000 appointment_cancelled T7 admin:root {"cause":"capacity_cut","old_slot_id":3,"reason":"no_free_slot"}
--
"#;

#[test]
fn every_request_kind_writes_what_it_wrote_before() {
    let got = run_script();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        EXPECTED.lines().collect::<Vec<_>>()
    );
}
