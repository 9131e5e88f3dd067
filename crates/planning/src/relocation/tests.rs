use std::collections::{BTreeSet, HashMap};

use nobat_domain::{GeoPoint, OfficeId, ServiceCode};
use proptest::prelude::*;

use super::*;

const CENTRE: GeoPoint = GeoPoint {
    lat: 35.70,
    lon: 51.40,
};
/// About 1.1 km of latitude.
const KM: f64 = 0.01;
const HOUR: i64 = 3_600;

fn north(km: f64) -> GeoPoint {
    GeoPoint {
        lat: CENTRE.lat + km * KM,
        lon: CENTRE.lon,
    }
}

fn office(id: &str, location: GeoPoint, slots: &[(i64, u32, i64, u32)]) -> Office {
    Office {
        id: OfficeId::parse(id).unwrap(),
        location,
        services: BTreeSet::from([ServiceCode::FirstIssuance, ServiceCode::Replacement]),
        slots: slots
            .iter()
            .map(|&(id, day, hour, free)| FreeSlot {
                id,
                day,
                start_at: i64::from(day) * 24 * HOUR + hour * HOUR,
                free,
            })
            .collect(),
    }
}

fn appointment(id: &str, origin: GeoPoint, booked_at: i64) -> Appointment {
    Appointment {
        id: id.to_string(),
        origin: Some(origin),
        service: "first_issuance".to_string(),
        booked_at,
    }
}

fn relocation(appointments: Vec<Appointment>, offices: Vec<Office>) -> Relocation {
    Relocation {
        appointments,
        offices,
        radius_km: 50.0,
        wait_km_per_day: 10.0,
    }
}

fn slots(plan: &Plan) -> Vec<Option<i64>> {
    plan.placements.iter().map(Placement::slot_id).collect()
}

#[test]
fn greedy_takes_the_earliest_day_then_the_nearest_office_then_the_earliest_start() {
    let r = relocation(
        (0..5)
            .map(|i| appointment(&format!("A{i}"), CENTRE, i))
            .collect(),
        vec![
            // The old office itself: two slots on day 0, the later one listed last.
            office("O0", CENTRE, &[(1, 0, 9, 1), (2, 0, 11, 1)]),
            // Farther, but on day 0 and as early as the old office's first slot.
            office("O1", north(5.0), &[(3, 0, 9, 1)]),
            // Nearer than O1, but a day later.
            office("O2", north(3.0), &[(4, 1, 8, 1)]),
        ],
    );
    let plan = plan(&r).unwrap();
    assert_eq!(plan.method, Method::Greedy);
    assert_eq!(slots(&plan), vec![Some(1), Some(2), Some(3), Some(4), None]);
    assert_eq!(
        plan.placements[4],
        Placement::Unplaced(Unplaced::NoFreeSeat)
    );
}

#[test]
fn the_allocator_weighs_distance_against_a_days_wait() {
    // Ten km per day: a seat 5 km away today beats the old office tomorrow, one 15 km away
    // does not.
    for (km, expected) in [(5.0, 2), (15.0, 1)] {
        let r = relocation(
            vec![appointment("A", CENTRE, 0)],
            vec![
                office("O0", CENTRE, &[(1, 1, 9, 1)]),
                office("O1", north(km / (KM * 111.2)), &[(2, 0, 9, 1)]),
            ],
        );
        let plan = plan_with_allocator(&r).unwrap();
        assert_eq!(slots(&plan), vec![Some(expected)], "office {km} km away");
        // The greedy method takes the earliest day whatever the distance.
        assert_eq!(slots(&plan_greedy(&r).unwrap()), vec![Some(2)]);
    }
}

#[test]
fn the_allocator_and_the_greedy_method_agree_where_both_are_optimal() {
    // Ten towns 111 km apart (beyond each other's radius), each with its own appointments and
    // just enough seats at its office on day 0: each appointment stays in its town, earliest
    // booking in the earliest slot, by either method.
    let mut appointments = Vec::new();
    let mut offices = Vec::new();
    for t in 0..10 {
        let town = GeoPoint {
            lat: CENTRE.lat + f64::from(t),
            lon: CENTRE.lon,
        };
        let first_slot = i64::from(t) * 10;
        offices.push(office(
            &format!("O{t}"),
            town,
            &[(first_slot, 0, 9, 2), (first_slot + 1, 0, 10, 1)],
        ));
        for k in 0..3 {
            appointments.push(appointment(&format!("A{t}-{k}"), town, i64::from(k)));
        }
    }
    let r = relocation(appointments, offices);
    let exact = plan(&r).unwrap();
    assert_eq!(exact.method, Method::Allocator);
    let greedy = plan_greedy(&r).unwrap();
    assert_eq!(exact.placements, greedy.placements);
    assert_eq!(slots(&exact)[..3], [Some(0), Some(0), Some(1)]);
}

#[test]
fn plans_are_deterministic() {
    let offices: Vec<Office> = (0..6)
        .map(|i| {
            office(
                &format!("O{i}"),
                north(f64::from(i) * 4.0),
                &[
                    (i64::from(i) * 10, 0, 9, 2),
                    (i64::from(i) * 10 + 1, 1, 9, 3),
                ],
            )
        })
        .collect();
    let appointments: Vec<Appointment> = (0..20)
        .map(|i| {
            appointment(
                &format!("A{i}"),
                north(f64::from(i % 7) * 3.0),
                i64::from(i % 4),
            )
        })
        .collect();
    let r = relocation(appointments, offices);
    let first = plan(&r).unwrap();
    assert_eq!(first.method, Method::Allocator);
    for _ in 0..3 {
        assert_eq!(plan(&r).unwrap(), first);
        assert_eq!(plan_greedy(&r).unwrap(), plan_greedy(&r).unwrap());
    }
}

#[test]
fn unplaceable_appointments_are_reported_with_their_reason() {
    let far = GeoPoint {
        lat: CENTRE.lat + 2.0,
        lon: CENTRE.lon,
    };
    let mut unknown_office = appointment("unknown-office", CENTRE, 0);
    unknown_office.origin = None;
    let mut unknown_service = appointment("unknown-service", CENTRE, 1);
    unknown_service.service = "passport".to_string();
    let mut not_offered = appointment("not-offered", CENTRE, 2);
    not_offered.service = "card_pickup".to_string();
    let appointments = vec![
        unknown_office,
        unknown_service,
        not_offered,
        appointment("too-far", far, 3),
        appointment("seated", CENTRE, 4),
        appointment("no-seat-left", CENTRE, 5),
    ];
    let r = relocation(appointments, vec![office("O0", CENTRE, &[(1, 0, 9, 1)])]);
    let expected = [
        Placement::Unplaced(Unplaced::UnknownOffice),
        Placement::Unplaced(Unplaced::UnknownService),
        Placement::Unplaced(Unplaced::NoOfficeInReach),
        Placement::Unplaced(Unplaced::NoOfficeInReach),
        Placement::Moved(Destination {
            slot_id: 1,
            office: 0,
            day: 0,
            start_at: 9 * HOUR,
            distance_km: 0.0,
        }),
        Placement::Unplaced(Unplaced::NoFreeSeat),
    ];
    assert_eq!(plan_greedy(&r).unwrap().placements, expected);
    assert_eq!(plan_with_allocator(&r).unwrap().placements, expected);
}

#[test]
fn when_the_allocator_refuses_the_greedy_method_places_them() {
    let mut appointments: Vec<Appointment> = (0..ALLOCATOR_MIN_MOVES as i64)
        .map(|i| appointment(&format!("A{i}"), CENTRE, i))
        .collect();
    // A latitude the allocator refuses; the greedy method finds nothing within reach of it.
    appointments[0].origin = Some(GeoPoint {
        lat: 91.0,
        lon: 0.0,
    });
    let r = relocation(appointments, vec![office("O0", CENTRE, &[(1, 0, 9, 3)])]);
    let plan = plan(&r).unwrap();
    assert!(
        matches!(
            plan.method,
            Method::GreedyFallback(AllocationError::InvalidApplicant { .. })
        ),
        "{:?}",
        plan.method
    );
    assert_eq!(plan.placements, plan_greedy(&r).unwrap().placements);
    assert_eq!(slots(&plan)[..5], [None, Some(1), Some(1), Some(1), None]);
}

#[test]
fn invalid_input_is_refused() {
    let r = relocation(
        vec![appointment("A", CENTRE, 0)],
        vec![office("O0", CENTRE, &[(1, 0, 11, 1), (2, 0, 9, 1)])],
    );
    assert!(matches!(
        plan(&r),
        Err(RelocationError::SlotsOutOfOrder { slot_id: 2, .. })
    ));
    let r = relocation(
        vec![appointment("A", CENTRE, 0)],
        vec![
            office("O0", CENTRE, &[(1, 0, 9, 1)]),
            office("O1", CENTRE, &[(1, 0, 9, 1)]),
        ],
    );
    assert_eq!(plan(&r), Err(RelocationError::DuplicateSlot(1)));
    let mut r = relocation(vec![], vec![]);
    r.radius_km = f64::NAN;
    assert!(matches!(plan(&r), Err(RelocationError::InvalidRadius(_))));
}

#[test]
fn a_seat_taken_meanwhile_is_planned_again_until_the_last_attempt() {
    let attempts: Vec<Attempt> = Attempt::all().collect();
    assert_eq!(attempts.len(), ATTEMPTS_MAX);
    let (last, earlier) = attempts.split_last().unwrap();
    assert!(earlier
        .iter()
        .all(|a| a.on_seat_taken() == SeatTaken::Replan));
    assert_eq!(last.on_seat_taken(), SeatTaken::Cancel);
}

/// Checks what every plan must hold: no slot over its free seats, every destination a slot of
/// its office, offering the service, within the radius.
fn check_feasible(r: &Relocation, plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(plan.placements.len(), r.appointments.len());
    let mut used: HashMap<i64, u32> = HashMap::new();
    for (a, p) in r.appointments.iter().zip(&plan.placements) {
        let Placement::Moved(d) = p else { continue };
        let office = &r.offices[d.office];
        let slot = office.slots.iter().find(|s| s.id == d.slot_id);
        prop_assert!(
            slot.is_some(),
            "slot {} is not at office {}",
            d.slot_id,
            d.office
        );
        let service = ServiceCode::parse(&a.service).unwrap();
        prop_assert!(office.services.contains(&service));
        let origin = a.origin.unwrap();
        prop_assert!(origin.distance_km(office.location) <= r.radius_km);
        *used.entry(d.slot_id).or_default() += 1;
    }
    for o in &r.offices {
        for s in &o.slots {
            let n = used.get(&s.id).copied().unwrap_or(0);
            prop_assert!(
                n <= s.free,
                "slot {} has {} free, {} planned",
                s.id,
                s.free,
                n
            );
        }
    }
    Ok(())
}

fn moved(plan: &Plan) -> usize {
    plan.placements
        .iter()
        .filter(|p| p.slot_id().is_some())
        .count()
}

prop_compose! {
    fn arb_relocation()(
        offices in prop::collection::vec(
            (0.0..60.0f64, prop::bool::ANY, prop::collection::vec((0u32..3, 0u32..3), 0..4)),
            1..7,
        ),
        appointments in prop::collection::vec((0.0..60.0f64, prop::bool::ANY, 0i64..5), 0..24),
    ) -> Relocation {
        let mut next_slot = 0;
        let offices = offices
            .into_iter()
            .enumerate()
            .map(|(i, (km, both, slots))| {
                let mut slots: Vec<(u32, u32)> = slots;
                slots.sort_unstable();
                slots.dedup_by_key(|s| s.0);
                let mut o = office(&format!("O{i}"), north(km), &[]);
                if !both {
                    o.services = BTreeSet::from([ServiceCode::FirstIssuance]);
                }
                o.slots = slots
                    .into_iter()
                    .map(|(day, free)| {
                        next_slot += 1;
                        FreeSlot { id: next_slot, day, start_at: i64::from(day) * 86_400, free }
                    })
                    .collect();
                o
            })
            .collect();
        let appointments = appointments
            .into_iter()
            .enumerate()
            .map(|(i, (km, replacement, booked_at))| {
                let mut a = appointment(&format!("A{i}"), north(km), booked_at);
                if replacement {
                    a.service = "replacement".to_string();
                }
                a
            })
            .collect();
        Relocation { appointments, offices, radius_km: 25.0, wait_km_per_day: 10.0 }
    }
}

proptest! {
    #[test]
    fn every_plan_respects_every_slots_free_seats(r in arb_relocation()) {
        let greedy = plan_greedy(&r).unwrap();
        let exact = plan_with_allocator(&r).unwrap();
        check_feasible(&r, &greedy)?;
        check_feasible(&r, &exact)?;
        check_feasible(&r, &plan(&r).unwrap())?;
        // The allocator moves the most appointments there are seats for.
        prop_assert!(moved(&exact) >= moved(&greedy));
    }
}
