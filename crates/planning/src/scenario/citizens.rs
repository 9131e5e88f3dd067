//! The synthetic civil registry: citizens generated on demand from (seed, index), with no
//! stored list, behind the [`CivilRegistry`] port of `nobat_domain::registry` (a deployment
//! implements it for the real registry).
//!
//! Citizen `i` has a national code whose first nine digits are an invertible scramble of `i`,
//! so a lookup by code recovers `i` arithmetically and regenerates the record in O(1).

use chrono::{Days, NaiveDate};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::network::{offset_km, pick_weighted};
use super::towns::Town;
use super::{derive_seed, CitizenSpec, Scenario};
use nobat_domain::applicant::Gender;
use nobat_domain::registry::{CitizenRecord, CivilRegistry};
use nobat_domain::{BirthCertificateSerial, GeoPoint, Mobile, NationalCode, PostalCode};

/// A registry of a scenario's synthetic citizens.
#[derive(Debug, Clone)]
pub struct SyntheticRegistry {
    generator: CitizenGenerator,
}

impl SyntheticRegistry {
    pub fn from_scenario(scenario: &Scenario) -> Self {
        Self {
            generator: CitizenGenerator::new(scenario),
        }
    }

    pub fn count(&self) -> u64 {
        self.generator.count()
    }

    pub fn citizen(&self, i: u64) -> Option<CitizenRecord> {
        self.generator.citizen(i)
    }
}

impl CivilRegistry for SyntheticRegistry {
    fn lookup(&self, code: &NationalCode) -> Option<CitizenRecord> {
        let i = self.generator.scramble.index_of(code)?;
        self.generator.citizen(i)
    }
}

const CODE_SPACE: u64 = 1_000_000_000;
/// 3^18: odd and not a multiple of 5, hence invertible modulo 10^9; large enough that
/// consecutive citizens get unrelated-looking codes.
const CODE_MULTIPLIER: u64 = 387_420_489;

/// The bijection between citizen indices and the first nine digits of national codes:
/// j ↦ (j · M + offset) mod 10^9, skipping the ten j whose code would have all digits equal.
#[derive(Debug, Clone)]
struct CodeScramble {
    offset: u64,
    inverse: u64,
    /// The j that map to 000000000, 111111111, …, sorted.
    skipped: Vec<u64>,
}

impl CodeScramble {
    fn new(seed: u64) -> Self {
        let offset = derive_seed(seed, "national-code", 0) % CODE_SPACE;
        let inverse = mod_inverse(CODE_MULTIPLIER, CODE_SPACE);
        let mut scramble = Self {
            offset,
            inverse,
            skipped: Vec::new(),
        };
        let mut skipped: Vec<u64> = (0..10)
            .map(|d| scramble.j_of_first_nine(d * 111_111_111))
            .collect();
        skipped.sort_unstable();
        scramble.skipped = skipped;
        scramble
    }

    fn j_of_first_nine(&self, n: u64) -> u64 {
        let shifted = (n + CODE_SPACE - self.offset) % CODE_SPACE;
        mul_mod(shifted, self.inverse, CODE_SPACE)
    }

    fn code_of_index(&self, i: u64) -> NationalCode {
        let mut j = i;
        for &s in &self.skipped {
            if s <= j {
                j += 1;
            }
        }
        let n = (mul_mod(j, CODE_MULTIPLIER, CODE_SPACE) + self.offset) % CODE_SPACE;
        let mut digits = [0u8; 9];
        let mut rest = n;
        for d in digits.iter_mut().rev() {
            *d = (rest % 10) as u8;
            rest /= 10;
        }
        NationalCode::from_first_nine(digits).expect("all-equal codes are skipped")
    }

    fn index_of(&self, code: &NationalCode) -> Option<u64> {
        let n: u64 = code.as_string()[..9].parse().ok()?;
        let j = self.j_of_first_nine(n);
        if self.skipped.binary_search(&j).is_ok() {
            return None;
        }
        Some(j - self.skipped.iter().filter(|&&s| s < j).count() as u64)
    }
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(m)) as u64
}

/// The inverse of `a` modulo `m` (they are coprime), by the extended Euclidean algorithm.
fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut old_r, mut r) = (i128::from(a), i128::from(m));
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    debug_assert_eq!(old_r, 1, "multiplier and modulus must be coprime");
    old_s.rem_euclid(i128::from(m)) as u64
}

/// Adult age bands (years) and weights, roughly Iran's 2016 age pyramid above 15.
const ADULT_AGE_BANDS: [(u32, f64); 15] = [
    (15, 7.5),
    (20, 8.5),
    (25, 10.5),
    (30, 12.0),
    (35, 11.0),
    (40, 9.0),
    (45, 8.0),
    (50, 7.0),
    (55, 6.0),
    (60, 5.0),
    (65, 3.7),
    (70, 2.5),
    (75, 1.6),
    (80, 1.0),
    (85, 0.5),
];

const FEMALE_NAMES: [&str; 30] = [
    "زهرا",
    "فاطمه",
    "مریم",
    "زینب",
    "معصومه",
    "سارا",
    "نرگس",
    "لیلا",
    "الهام",
    "مهسا",
    "نازنین",
    "فرزانه",
    "سمیه",
    "مینا",
    "رقیه",
    "هانیه",
    "ریحانه",
    "کوثر",
    "نگار",
    "پریسا",
    "سحر",
    "شیما",
    "آزاده",
    "طاهره",
    "اکرم",
    "محبوبه",
    "یگانه",
    "هستی",
    "ستایش",
    "فاطیما",
];
const MALE_NAMES: [&str; 30] = [
    "محمد",
    "علی",
    "حسین",
    "رضا",
    "مهدی",
    "امیر",
    "حسن",
    "مصطفی",
    "ابوالفضل",
    "محمدرضا",
    "احمد",
    "سعید",
    "حمید",
    "مجید",
    "جواد",
    "امیرحسین",
    "علیرضا",
    "محسن",
    "سجاد",
    "یوسف",
    "عباس",
    "هادی",
    "وحید",
    "بهروز",
    "کامران",
    "داوود",
    "اکبر",
    "ناصر",
    "مرتضی",
    "پویا",
];
const LAST_NAMES: [&str; 40] = [
    "محمدی",
    "حسینی",
    "احمدی",
    "رضایی",
    "موسوی",
    "کریمی",
    "جعفری",
    "رحیمی",
    "هاشمی",
    "قاسمی",
    "صادقی",
    "کاظمی",
    "مرادی",
    "اکبری",
    "حیدری",
    "نوری",
    "باقری",
    "امیری",
    "عباسی",
    "سلطانی",
    "زارعی",
    "یوسفی",
    "نجفی",
    "شریفی",
    "طاهری",
    "فرهادی",
    "قربانی",
    "ملکی",
    "عزیزی",
    "کرمی",
    "بهرامی",
    "نظری",
    "خسروی",
    "میرزایی",
    "ابراهیمی",
    "سلیمانی",
    "جلالی",
    "رستمی",
    "تهرانی",
    "شیرازی",
];
/// Mobile prefixes after `09` (MCI, Irancell, Rightel).
const MOBILE_PREFIXES: [&str; 16] = [
    "12", "13", "14", "15", "16", "17", "18", "19", "10", "11", "01", "02", "03", "30", "35", "21",
];
/// Digits allowed in the first five of a postal code.
const POSTAL_LEAD_DIGITS: [u8; 8] = [1, 3, 4, 5, 6, 7, 8, 9];

#[derive(Debug, Clone)]
struct ProvinceTowns {
    slug: &'static str,
    towns: Vec<&'static Town>,
    by_population: Vec<f64>,
    by_root_population: Vec<f64>,
}

/// Generates citizen `i` of a scenario from (seed, i) alone.
#[derive(Debug, Clone)]
pub struct CitizenGenerator {
    seed: u64,
    spec: CitizenSpec,
    /// Ages are counted on the scenario's start date.
    reference_date: NaiveDate,
    provinces: Vec<ProvinceTowns>,
    province_weights: Vec<f64>,
    scramble: CodeScramble,
}

impl CitizenGenerator {
    pub fn new(scenario: &Scenario) -> Self {
        let spec = scenario.citizens.clone();
        let provinces: Vec<ProvinceTowns> = spec
            .provinces
            .iter()
            .map(|p| {
                let towns = Town::of_province(&p.slug);
                let by_population: Vec<f64> = towns
                    .iter()
                    .map(|t| f64::from(t.population_thousands))
                    .collect();
                let by_root_population = by_population.iter().map(|x| x.sqrt()).collect();
                ProvinceTowns {
                    slug: p.slug.as_str(),
                    towns,
                    by_population,
                    by_root_population,
                }
            })
            .collect();
        let province_weights = spec
            .provinces
            .iter()
            .map(|p| p.population_2016 as f64)
            .collect();
        Self {
            seed: scenario.seed,
            spec,
            reference_date: scenario.calendar.start_date,
            provinces,
            province_weights,
            scramble: CodeScramble::new(scenario.seed),
        }
    }

    pub fn count(&self) -> u64 {
        if self.provinces.is_empty() {
            0
        } else {
            self.spec.count
        }
    }

    /// Citizen `i`, or `None` when `i` is not below the count.
    ///
    /// Home locations are rounded to 0.01° (about 1 km): addresses are known to postal-area
    /// precision, and neighbours sharing a cell let the allocator collapse them into one node.
    pub fn citizen(&self, i: u64) -> Option<CitizenRecord> {
        if i >= self.count() {
            return None;
        }
        let spec = &self.spec;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, "citizen", i));

        let province = &self.provinces[pick_weighted(&mut rng, &self.province_weights)];
        let rural = rng.gen_bool(spec.rural_share);
        let (town, sigma_km) = if rural {
            // Villages surround small towns as much as large ones.
            let t = province.towns[pick_weighted(&mut rng, &province.by_root_population)];
            (t, spec.rural_dispersion_km)
        } else {
            let t = province.towns[pick_weighted(&mut rng, &province.by_population)];
            let scale = (f64::from(t.population_thousands) / 100.0).sqrt();
            (
                t,
                (spec.dispersion_km * scale).clamp(0.5, spec.max_dispersion_km),
            )
        };
        // Box–Muller: a 2-D normal offset, its length clamped to max_dispersion_km.
        let u1 = 1.0 - rng.gen::<f64>();
        let u2 = rng.gen::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt() * sigma_km;
        let radius = radius.min(spec.max_dispersion_km);
        let angle = std::f64::consts::TAU * u2;
        let home = offset_km(town.location, radius * angle.sin(), radius * angle.cos());
        let location = GeoPoint {
            lat: (home.lat * 100.0).round() / 100.0,
            lon: (home.lon * 100.0).round() / 100.0,
        };

        let gender = if rng.gen_bool(spec.female_share) {
            Gender::Female
        } else {
            Gender::Male
        };
        let age_days: u64 = if rng.gen_bool(spec.under_15_share) {
            // 12 to 15: some turn 15 within a planning horizon.
            rng.gen_range(12 * 365..15 * 365)
        } else {
            let weights: Vec<f64> = ADULT_AGE_BANDS.iter().map(|b| b.1).collect();
            let band_start = u64::from(ADULT_AGE_BANDS[pick_weighted(&mut rng, &weights)].0);
            // Whole years plus a day offset keep the person inside the band.
            rng.gen_range(band_start * 36525 / 100 + 1..(band_start + 5) * 36525 / 100)
        };
        let birth_date = self
            .reference_date
            .checked_sub_days(Days::new(age_days))
            .unwrap_or(self.reference_date);
        let first_name = match gender {
            Gender::Female => FEMALE_NAMES[rng.gen_range(0..FEMALE_NAMES.len())],
            Gender::Male => MALE_NAMES[rng.gen_range(0..MALE_NAMES.len())],
        };
        let last_name = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
        let serial = BirthCertificateSerial::from_parts(
            rng.gen_range(0..32),
            rng.gen_range(1..100),
            rng.gen_range(1..1_000_000),
        );
        let mobile = format!(
            "09{}{:07}",
            MOBILE_PREFIXES[rng.gen_range(0..MOBILE_PREFIXES.len())],
            rng.gen_range(0..10_000_000u32)
        );
        let mut postal = String::with_capacity(10);
        for _ in 0..5 {
            postal.push(char::from(
                b'0' + POSTAL_LEAD_DIGITS[rng.gen_range(0..POSTAL_LEAD_DIGITS.len())],
            ));
        }
        postal.push_str(&format!("{:05}", rng.gen_range(0..100_000u32)));
        let nationality = if rng.gen_bool(spec.foreign_share) {
            "AF"
        } else {
            "IR"
        };
        let has_photo = rng.gen_bool(spec.photo_certificate_share);

        Some(CitizenRecord {
            national_code: self.scramble.code_of_index(i),
            birth_certificate_serial: serial,
            birth_date,
            gender,
            first_name: first_name.to_string(),
            last_name: last_name.to_string(),
            province: province.slug.to_string(),
            city: town.name_en.clone(),
            location,
            mobile: Mobile::parse(&mobile).expect("generated mobiles are well formed"),
            postal_code: PostalCode::parse(&postal)
                .expect("generated postal codes are well formed"),
            nationality: nationality.to_string(),
            birth_certificate_has_photo: has_photo,
        })
    }

    /// Citizens `offset..offset + limit`, clipped to the count.
    pub fn range(&self, offset: u64, limit: u64) -> impl Iterator<Item = CitizenRecord> + '_ {
        let end = offset.saturating_add(limit).min(self.count());
        (offset..end).filter_map(move |i| self.citizen(i))
    }
}

/// Writes citizens as CSV (`national_code,birth_certificate_serial,birth_date,gender,first_name,
/// last_name,province,city,lat,lon,mobile,postal_code`); coordinates with two decimals, their
/// precision.
pub fn write_citizens_csv<W: std::io::Write>(
    citizens: impl Iterator<Item = CitizenRecord>,
    out: W,
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "national_code",
        "birth_certificate_serial",
        "birth_date",
        "gender",
        "first_name",
        "last_name",
        "province",
        "city",
        "lat",
        "lon",
        "mobile",
        "postal_code",
    ])?;
    for c in citizens {
        w.write_record([
            c.national_code.as_string().as_str(),
            &c.birth_certificate_serial.to_string(),
            &c.birth_date.format("%Y-%m-%d").to_string(),
            c.gender.as_str(),
            &c.first_name,
            &c.last_name,
            &c.province,
            &c.city,
            &format!("{:.2}", c.location.lat),
            &format!("{:.2}", c.location.lon),
            c.mobile.as_str(),
            c.postal_code.as_str(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scramble_is_a_bijection_that_skips_all_equal_codes() {
        let s = CodeScramble::new(42);
        assert_eq!(mul_mod(CODE_MULTIPLIER, s.inverse, CODE_SPACE), 1);
        for i in (0..2_000).chain([999_999_980, 999_999_989]) {
            let code = s.code_of_index(i);
            assert_eq!(s.index_of(&code), Some(i), "{i}");
        }
        for &j in &s.skipped {
            assert!(j < CODE_SPACE);
        }
        assert_eq!(s.skipped.len(), 10);
    }
}
