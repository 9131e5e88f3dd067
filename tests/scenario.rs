//! Scenario files, the generated office network and the synthetic civil registry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nobat::domain::applicant::age_full_years;
use nobat::domain::calendar::ThursdayRule;
use nobat::domain::registry::CivilRegistry;
use nobat::domain::{
    BirthCertificateSerial, Mobile, NationalCode, OfficeKind, PostalCode, Province,
};
use nobat::planning::scenario::{
    write_citizens_csv, write_network_csv, NetworkSummary, Scenario, ScenarioError,
    SyntheticRegistry, Town,
};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn load(name: &str) -> Scenario {
    Scenario::load(scenario_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn scenario_text(name: &str) -> String {
    std::fs::read_to_string(scenario_path(name)).unwrap()
}

fn network_csv(s: &Scenario) -> Vec<u8> {
    let mut out = Vec::new();
    write_network_csv(&s.generate_network(), &mut out).unwrap();
    out
}

#[test]
fn both_scenario_files_load() {
    let small = load("small.toml");
    assert_eq!(small.calendar.horizon_days, 30);
    assert_eq!(small.citizen_count(), 5_000);
    let offices = small.generate_network();
    assert!((40..=60).contains(&offices.len()), "{}", offices.len());
    assert_eq!(NetworkSummary::of(&offices).provinces, 4);

    let national = load("iran-national.toml");
    assert_eq!(national.citizen_count(), 1_000_000);
    assert_eq!(national.calendar.horizon_days, 30);
}

#[test]
fn the_national_network_covers_every_province_at_programme_scale() {
    let offices = load("iran-national.toml").generate_network();
    let summary = NetworkSummary::of(&offices);
    assert_eq!(summary.provinces, 31);
    assert!(summary.offices >= 2_000, "{summary}");
    // DOMAIN.md: a national peak of ≈ 2.5 M cards a month is ≈ 100k enrolments a working day.
    assert!(
        (80_000..=200_000).contains(&summary.seats_per_standard_day),
        "{summary}"
    );

    let mut per_kind: BTreeMap<OfficeKind, usize> = BTreeMap::new();
    let mut per_province: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for o in &offices {
        *per_kind.entry(o.kind).or_default() += 1;
        per_province
            .entry(o.province.as_str())
            .or_default()
            .push(o.clone());
    }
    let mobiles = per_kind[&OfficeKind::MobileStation];
    assert!((200..=800).contains(&mobiles), "{mobiles} mobile stations");
    assert!(per_kind[&OfficeKind::Pishkhan] > offices.len() / 2);
    for p in Province::all() {
        let here = &per_province[p.slug.as_str()];
        assert!(
            here.iter().any(|o| o.kind == OfficeKind::CivilRegistry),
            "{} has no civil-registry office",
            p.slug
        );
    }
    // Mazandaran: the published ≈ 180 offices and ≥ 8,000 enrolments a day.
    let mazandaran = NetworkSummary::of(&per_province["mazandaran"]);
    assert_eq!(mazandaran.offices, 180);
    assert!(mazandaran.seats_per_standard_day >= 8_000, "{mazandaran}");
}

#[test]
fn generated_offices_are_well_formed() {
    let offices = load("iran-national.toml").generate_network();
    let mut ids: Vec<&str> = offices.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), offices.len(), "office ids are unique");
    for o in &offices {
        let province = Province::by_slug(&o.province).unwrap();
        assert!(o
            .id
            .as_str()
            .starts_with(&format!("{}-", province.area_code)));
        assert_eq!(o.area_code, province.area_code);
        assert!(o.stations >= 1);
        assert_eq!(o.services, o.kind.default_services());
        let town = Town::of_province(&o.province)
            .into_iter()
            .find(|t| t.name_en == o.city)
            .unwrap_or_else(|| panic!("{} is not a town of {}", o.city, o.province));
        assert!(town.location.distance_km(o.location) <= 3.1, "{}", o.id);
        assert!(o.name.contains(&town.name_fa), "{}", o.name);
        assert_eq!(o.calendar.slot_minutes, 15);
        assert_eq!(o.calendar.closures.len(), 2);
    }
    let tehran_7 = offices
        .iter()
        .find(|o| o.id.as_str() == "021-0007")
        .unwrap();
    assert!(
        tehran_7.name.starts_with("دفتر پیشخوان شماره ۷ "),
        "{}",
        tehran_7.name
    );
}

#[test]
fn the_same_seed_gives_byte_identical_output() {
    let text = scenario_text("iran-national.toml");
    let a = Scenario::from_toml_str(&text, "a").unwrap();
    let b = Scenario::from_toml_str(&text, "b").unwrap();
    assert_eq!(network_csv(&a), network_csv(&b));

    let citizens = |s: &Scenario| {
        let mut out = Vec::new();
        write_citizens_csv(s.citizen_generator().range(0, 2_000), &mut out).unwrap();
        out
    };
    assert_eq!(citizens(&a), citizens(&b));

    let other =
        Scenario::from_toml_str(&text.replace("seed = 14030101", "seed = 14030102"), "other")
            .unwrap();
    assert_ne!(network_csv(&a), network_csv(&other));
    assert_ne!(citizens(&a), citizens(&other));
}

#[test]
fn the_citizen_count_does_not_move_the_network_or_earlier_citizens() {
    let text = scenario_text("small.toml");
    let a = Scenario::from_toml_str(&text, "a").unwrap();
    let b = Scenario::from_toml_str(&text.replace("count = 5000", "count = 7000"), "b").unwrap();
    assert_eq!(network_csv(&a), network_csv(&b));
    assert_eq!(a.citizen(4_321), b.citizen(4_321));
    assert_eq!(a.citizen(5_000), None);
    assert!(b.citizen(5_000).is_some());
}

#[test]
fn every_citizen_has_valid_identifiers_and_a_plausible_age() {
    let s = load("small.toml");
    let start = s.calendar.start_date;
    let mut under_15 = 0;
    let mut count = 0;
    for c in s.citizens() {
        count += 1;
        let code = c.national_code.as_string();
        assert_eq!(NationalCode::parse(&code).unwrap(), c.national_code);
        let serial = c.birth_certificate_serial.to_string();
        assert_eq!(
            BirthCertificateSerial::parse(&serial).unwrap(),
            c.birth_certificate_serial
        );
        Mobile::parse(c.mobile.as_str()).unwrap();
        PostalCode::parse(c.postal_code.as_str()).unwrap();
        assert_eq!(c.nationality, "IR");
        let age = age_full_years(c.birth_date, start);
        assert!((12..91).contains(&age), "age {age}");
        if age < 15 {
            under_15 += 1;
        }
        // Locations sit on the 0.01° grid, near a town of their province.
        for x in [c.location.lat, c.location.lon] {
            assert!(((x * 100.0).round() - x * 100.0).abs() < 1e-6, "{x}");
        }
        let town = Town::of_province(&c.province)
            .into_iter()
            .find(|t| t.name_en == c.city)
            .unwrap();
        assert!(town.location.distance_km(c.location) <= 61.0);
    }
    assert_eq!(count, 5_000);
    // small.toml asks for 2% under 15.
    assert!((50..=160).contains(&under_15), "{under_15} under 15");
}

#[test]
fn citizens_spread_over_provinces_by_population() {
    let s = load("iran-national.toml");
    let n = 100_000u64;
    let mut per_province: BTreeMap<String, u64> = BTreeMap::new();
    let mut photo = 0u64;
    for c in s.citizen_generator().range(0, n) {
        *per_province.entry(c.province).or_default() += 1;
        photo += u64::from(c.birth_certificate_has_photo);
    }
    let tehran_share = per_province["tehran"] as f64 / n as f64;
    assert!((tehran_share - 0.166).abs() <= 0.015, "{tehran_share}");
    for p in Province::all() {
        let expected = p.population_2016 as f64 / Province::total_population() as f64;
        let got = per_province[&p.slug] as f64 / n as f64;
        assert!(
            (got - expected).abs() < 0.005,
            "{}: {got} vs {expected}",
            p.slug
        );
    }
    let photo_share = photo as f64 / n as f64;
    assert!((photo_share - 0.98).abs() < 0.005, "{photo_share}");
}

#[test]
fn the_registry_finds_its_citizens_and_nobody_else() {
    let s = load("small.toml");
    // A deployment swaps in the real registry behind the trait object.
    let registry: Box<dyn CivilRegistry> = Box::new(SyntheticRegistry::from_scenario(&s));
    let generator = s.citizen_generator();
    let stranger_serial = BirthCertificateSerial::parse("ب01/000001").unwrap();
    for i in (0..5_000).step_by(7) {
        let c = generator.citizen(i).unwrap();
        assert_eq!(registry.lookup(&c.national_code).as_ref(), Some(&c), "{i}");
        assert!(registry.verify(&c.national_code, &c.birth_certificate_serial));
        assert!(!registry.verify(&c.national_code, &stranger_serial));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut tried = 0;
    while tried < 2_000 {
        let digits: [u8; 9] = std::array::from_fn(|_| rng.gen_range(0..10));
        let Some(code) = NationalCode::from_first_nine(digits) else {
            continue;
        };
        tried += 1;
        assert_eq!(registry.lookup(&code), None, "{code}");
        assert!(!registry.verify(&code, &stranger_serial));
    }
    // The examples from DOMAIN.md are valid codes, but not of this registry's citizens.
    for code in ["0499370899", "0790419904", "0084575948", "4032152314"] {
        assert_eq!(registry.lookup(&NationalCode::parse(code).unwrap()), None);
    }
}

#[test]
fn every_province_has_towns_near_its_capital() {
    for p in Province::all() {
        let towns = Town::of_province(&p.slug);
        assert!(towns.len() >= 3, "{}", p.slug);
        // Sistan and Baluchestan runs 800 km north to south; Chabahar is ≈ 470 km from Zahedan.
        let limit_km = if p.slug == "sistan-and-baluchestan" {
            500.0
        } else {
            300.0
        };
        for t in towns {
            let d = p.capital.distance_km(t.location);
            assert!(
                d <= limit_km,
                "{} is {d:.0} km from {}",
                t.name_en,
                p.capital_en
            );
        }
    }
}

#[test]
fn listed_offices_are_taken_as_given() {
    let text = r#"
name = "two offices"
seed = 1
[calendar]
start_date = 2024-04-06
horizon_days = 10
[[network.offices]]
id = "QOM-1"
name = "اداره ثبت احوال قم"
kind = "civil_registry"
province = "qom"
city = "Qom"
lat = 34.64
lon = 50.88
stations = 4
thursday = "closed"
[[network.offices]]
id = "QOM-2"
name = "دفتر پیشخوان"
kind = "pishkhan"
province = "qom"
city = "Qom"
lat = 34.65
lon = 50.89
stations = 2
services = ["first_issuance"]
[citizens]
count = 100
"#;
    let s = Scenario::from_toml_str(text, "inline").unwrap();
    let offices = s.generate_network();
    assert_eq!(offices.len(), 2);
    assert_eq!(offices[0].stations, 4);
    assert_eq!(offices[1].services.len(), 1);
    assert_eq!(offices[0].calendar.thursday, ThursdayRule::Closed);
    assert_eq!(offices[1].calendar.thursday, ThursdayRule::HalfDay);
    assert!(s.citizens().all(|c| c.province == "qom"));

    let wrong_service = text.replace("[\"first_issuance\"]", "[\"reissue_loss_1\"]");
    let err = Scenario::from_toml_str(&wrong_service, "inline").unwrap_err();
    assert!(err
        .field_errors()
        .iter()
        .any(|e| e.path == "network.offices[1].services[0]"));
}

/// A valid base scenario to break one field at a time.
const BASE: &str = r#"
name = "base"
seed = 3
[calendar]
start_date = "2024-04-06"
horizon_days = 30
[network.generator]
provinces = ["qom", "ilam"]
offices_total = 6
[network.generator.kind_mix]
pishkhan = 0.7
civil_registry = 0.3
[citizens]
count = 100
"#;

#[test]
fn the_base_scenario_is_valid() {
    let s = Scenario::from_toml_str(BASE, "base").unwrap();
    assert_eq!(s.generate_network().len(), 6);
}

#[test]
fn bad_scenarios_are_refused_with_the_field_path() {
    // (what, text to replace in BASE, replacement, expected path)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "unknown field",
            "count = 100",
            "count = 100\ncolour = \"blue\"",
            "citizens.colour",
        ),
        (
            "horizon 0",
            "horizon_days = 30",
            "horizon_days = 0",
            "calendar.horizon_days",
        ),
        (
            "horizon too long",
            "horizon_days = 30",
            "horizon_days = 731",
            "calendar.horizon_days",
        ),
        (
            "unknown province",
            "[\"qom\", \"ilam\"]",
            "[\"qom\", \"atlantis\"]",
            "network.generator.provinces[1]",
        ),
        (
            "negative count",
            "count = 100",
            "count = -5",
            "citizens.count",
        ),
        (
            "bad date",
            "\"2024-04-06\"",
            "\"2024-02-30\"",
            "calendar.start_date",
        ),
        (
            "offices_total 0",
            "offices_total = 6",
            "offices_total = 0",
            "network.generator.offices_total",
        ),
        (
            "share above 1",
            "count = 100",
            "count = 100\nfemale_share = 1.5",
            "citizens.female_share",
        ),
        (
            "unknown kind in the mix",
            "pishkhan = 0.7",
            "pishkhan = 0.7\nbank = 0.1",
            "network.generator.kind_mix.bank",
        ),
        (
            "more offices in a province than four-digit ids allow",
            "offices_total = 6",
            "offices_total = 20000",
            "network.generator",
        ),
        (
            "both a generator and listed offices",
            "[citizens]",
            "[[network.offices]]\nid = \"A\"\nname = \"A\"\nkind = \"post\"\nprovince = \"qom\"\ncity = \"Qom\"\nlat = 34.6\nlon = 50.9\nstations = 1\n[citizens]",
            "network",
        ),
        (
            "too few offices for the provinces",
            "offices_total = 6",
            "offices_total = 1",
            "network.generator",
        ),
    ];
    for (what, from, to, path) in cases {
        assert!(BASE.contains(from), "{what}: base lacks {from:?}");
        let text = BASE.replacen(from, to, 1);
        let err = match Scenario::from_toml_str(&text, "bad.toml") {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(
            err.field_errors().iter().any(|e| e.path == *path),
            "{what}: expected path {path}, got {message}"
        );
        assert!(message.starts_with("bad.toml"), "{what}: {message}");
        assert!(message.contains(path), "{what}: {message}");
    }
}

#[test]
fn a_format_error_names_the_line() {
    let text = BASE.replace("horizon_days = 30", "horizon_days = \"thirty\"");
    match Scenario::from_toml_str(&text, "bad.toml") {
        Err(ScenarioError::Format { line, path, .. }) => {
            assert_eq!(path, "calendar.horizon_days");
            assert_eq!(line, Some(6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let err = Scenario::load("/nonexistent/scenario.toml").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/scenario.toml"));
}
