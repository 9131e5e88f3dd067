//! What each request kind reads and locks (`touches`), the slot it may take a seat in and the
//! subject it is queued by, pinned from the code before the requests became one struct per
//! kind: the writer's locks and the queue a request goes to must not change.

use super::*;

fn describe(request: &Request) -> String {
    let mut keys = BatchKeys::default();
    request.touches(&mut keys);
    keys.normalise();
    format!(
        "seat_slot={:?} subject={:?} national_code={:?} slots={:?} holds={:?} confirmed_holds={:?} appointments={:?} payments={:?} applications={:?} citizens={:?} citizen_codes={:?} hold_codes={:?}",
        request.seat_slot(),
        request.subject(),
        request.national_code(),
        keys.slots,
        keys.holds,
        keys.confirmed_holds,
        keys.appointments,
        keys.payments,
        keys.applications,
        keys.citizens,
        keys.citizen_codes,
        keys.hold_codes,
    )
}

/// One line per request of `json::requests()`, in order.
const ROUTES: &[&str] = &[
    r#"seat_slot=Some(7) subject="0499370899" national_code=Some("0499370899") slots=[7] holds=[] confirmed_holds=[] appointments=[] payments=[] applications=["app-1"] citizens=[("0499370899", "first_issuance")] citizen_codes=["0499370899"] hold_codes=["0499370899"]"#,
    r#"seat_slot=None subject="0499370899" national_code=Some("0499370899") slots=[] holds=[] confirmed_holds=["hold_x1"] appointments=[] payments=["pay-1"] applications=[] citizens=[] citizen_codes=["0499370899"] hold_codes=[]"#,
    r#"seat_slot=None subject="0499370899" national_code=Some("0499370899") slots=[] holds=["hold_x1"] confirmed_holds=[] appointments=[] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(7) subject="0499370899" national_code=Some("0499370899") slots=[7] holds=[] confirmed_holds=[] appointments=[] payments=["pay-1"] applications=[] citizens=[("0499370899", "first_issuance")] citizen_codes=["0499370899"] hold_codes=["0499370899"]"#,
    r#"seat_slot=None subject="0499370899" national_code=Some("0499370899") slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(8) subject="0499370899" national_code=Some("0499370899") slots=[8] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="hold_x1" national_code=None slots=[] holds=["hold_x1"] confirmed_holds=[] appointments=[] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(9) subject="T1" national_code=None slots=[9] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=["0499370899"] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=["0499370899"] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["P1", "T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(8) subject="T1" national_code=None slots=[8] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=None subject="T1" national_code=None slots=[] holds=[] confirmed_holds=[] appointments=["T1"] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(7) subject="" national_code=None slots=[7] holds=[] confirmed_holds=[] appointments=[] payments=[] applications=[] citizens=[] citizen_codes=[] hold_codes=[]"#,
    r#"seat_slot=Some(7) subject="0499370899" national_code=Some("0499370899") slots=[7, 8] holds=[] confirmed_holds=[] appointments=[] payments=[] applications=["app-1"] citizens=[("0499370899", "first_issuance")] citizen_codes=["0499370899"] hold_codes=["0499370899"]"#,
    r#"seat_slot=Some(7) subject="0499370899" national_code=Some("0499370899") slots=[7, 8] holds=[] confirmed_holds=[] appointments=[] payments=["pay-1"] applications=[] citizens=[("0499370899", "first_issuance")] citizen_codes=["0499370899"] hold_codes=["0499370899"]"#,
];

#[test]
fn every_request_kind_reads_locks_and_queues_as_before() {
    let requests = json::requests();
    assert_eq!(requests.len(), ROUTES.len());
    for (request, expected) in requests.iter().zip(ROUTES) {
        assert_eq!(&describe(request), expected, "{request:?}");
    }
}
