//! Scenario files and the deterministic synthetic office network and civil registry.
//!
//! A scenario (TOML, documented in `scenarios/README.md`) names a seed, a planning calendar,
//! an office network (listed or generated) and a synthetic population. Everything generated
//! from it is a pure function of the file: the same file gives byte-identical output.
//! Each generator derives its own RNG from the seed and a purpose tag ([`derive_seed`]), so
//! changing the citizen count does not move a single office.

pub mod allocation;
mod citizens;
mod format;
mod network;
pub mod simulation;
pub mod towns;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;

use nobat_domain::calendar::ThursdayRule;
use nobat_domain::registry::CitizenRecord;
use nobat_domain::{GeoPoint, OfficeId, OfficeKind, Province, ServiceCode};

pub use citizens::{write_citizens_csv, CitizenGenerator, SyntheticRegistry};
pub use network::{largest_remainder, write_network_csv, NetworkSummary};
pub use simulation::{
    Behaviour, CapacityChange, ChangeTarget, DemandSpec, MobileLeg, PlanSpec, Policy, PolicyKind,
    Surge, SurgeShape,
};
pub use towns::Town;

use format::{ProvinceSelection, RawScenario, RawThursday};

/// Longest planning horizon a scenario may ask for (two years).
pub const HORIZON_DAYS_MAX: u32 = 730;
/// Most offices a scenario may list or generate: far above Iran's ≈ 5,000 and a bound on memory.
pub const OFFICES_MAX: u32 = 50_000;
/// Generated ids carry a four-digit sequence within the province.
pub const OFFICES_PER_PROVINCE_MAX: u32 = 9_999;
/// Most synthetic citizens: above Iran's population, and a bound on generation time.
pub const CITIZENS_MAX: u64 = 100_000_000;
/// Most stations one office may have.
pub const STATIONS_MAX: u16 = 64;
/// Most scenario holidays.
pub const HOLIDAYS_MAX: usize = 1_000;

/// One rule a scenario broke: the field path (`network.generator.offices_total`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read the scenario file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the format (unknown field, wrong type).
    #[error("{origin}{}: {}", line.map(|l| format!(":{l}")).unwrap_or_default(), FieldError { path: path.clone(), message: message.clone() })]
    Format {
        origin: String,
        line: Option<usize>,
        path: String,
        message: String,
    },
    /// The file parses but breaks the rules; every broken rule is listed.
    #[error("{origin}: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(&format!("\n{origin}: ")))]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
}

impl ScenarioError {
    /// The field errors with their paths (one for a format error).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ScenarioError::Read { source, .. } => vec![FieldError {
                path: ".".into(),
                message: source.to_string(),
            }],
            ScenarioError::Format { path, message, .. } => vec![FieldError {
                path: path.clone(),
                message: message.clone(),
            }],
            ScenarioError::Invalid { errors, .. } => errors.clone(),
        }
    }
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    /// Where the scenario came from (a path), for messages.
    pub origin: String,
    pub calendar: ScenarioCalendar,
    pub network: NetworkSpec,
    pub citizens: CitizenSpec,
    /// Registrations per province per day and surge events (none when absent).
    pub demand: DemandSpec,
    pub behaviour: Behaviour,
    /// Capacity changes over the horizon, in file order (a plan's overlay appends to them).
    pub capacity_changes: Vec<CapacityChange>,
    pub policy: Policy,
    /// Targets and costs for `nobat plan`.
    pub plan: Option<PlanSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioCalendar {
    pub start_date: NaiveDate,
    /// Days planned from `start_date` (1..=730).
    pub horizon_days: u32,
    /// Closures of every office on top of the national holiday table.
    pub holidays: Vec<ScenarioHoliday>,
    /// Thursday rule of offices that do not set their own.
    pub thursday: ThursdayRule,
}

impl ScenarioCalendar {
    /// The last planned day, inclusive.
    pub fn end_date(&self) -> NaiveDate {
        self.start_date + chrono::Days::new(u64::from(self.horizon_days) - 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioHoliday {
    pub date: NaiveDate,
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum NetworkSpec {
    /// Offices listed one by one in the file.
    Explicit(Vec<OfficeSpec>),
    Generated(GeneratorSpec),
}

#[derive(Debug, Clone)]
pub struct OfficeSpec {
    pub id: OfficeId,
    pub name: String,
    pub kind: OfficeKind,
    pub province: &'static Province,
    pub city: String,
    pub location: GeoPoint,
    pub stations: u16,
    pub services: BTreeSet<ServiceCode>,
    pub thursday: Option<ThursdayRule>,
}

#[derive(Debug, Clone)]
pub struct GeneratorSpec {
    /// Included provinces, in the order of the province table.
    pub provinces: Vec<&'static Province>,
    pub offices_total: u32,
    /// Fixed counts for some provinces (slug → offices); the rest is shared by population.
    pub province_offices: BTreeMap<String, u32>,
    /// Shares of each kind, indexed like [`OfficeKind::ALL`]; they sum to 1.
    pub kind_mix: [f64; 4],
    /// Station distribution of each kind, indexed like [`OfficeKind::ALL`].
    pub stations: [StationDistribution; 4],
    /// Offices sit uniformly within this radius of their town's centre.
    pub jitter_km: f64,
    pub thursday: Option<ThursdayRule>,
}

/// P(stations = min + k) ∝ weights\[k\].
#[derive(Debug, Clone, PartialEq)]
pub struct StationDistribution {
    pub min: u16,
    pub weights: Vec<f64>,
}

impl StationDistribution {
    pub fn max(&self) -> u16 {
        self.min + self.weights.len() as u16 - 1
    }

    pub fn mean(&self) -> f64 {
        let total: f64 = self.weights.iter().sum();
        self.weights
            .iter()
            .enumerate()
            .map(|(k, w)| (f64::from(self.min) + k as f64) * w)
            .sum::<f64>()
            / total
    }
}

#[derive(Debug, Clone)]
pub struct CitizenSpec {
    pub count: u64,
    /// Provinces citizens live in, in the order of the province table.
    pub provinces: Vec<&'static Province>,
    /// σ of a town dweller's distance from the centre of a 100,000-person town; scaled by
    /// √(population / 100k), so a metropolis spreads further than a small town.
    pub dispersion_km: f64,
    /// No citizen lives further than this from their town's centre.
    pub max_dispersion_km: f64,
    /// Share living in villages around a town rather than in it.
    pub rural_share: f64,
    /// σ of a village dweller's distance from the nearest listed town.
    pub rural_dispersion_km: f64,
    /// Share younger than 15 (not yet eligible), for eligibility tests.
    pub under_15_share: f64,
    pub photo_certificate_share: f64,
    pub female_share: f64,
    /// Share of non-Iranian residents (not eligible), for eligibility tests.
    pub foreign_share: f64,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text; `origin` names it in messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let line = inner
                    .span()
                    .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
                ScenarioError::Format {
                    origin: origin.to_string(),
                    line,
                    path,
                    message: inner.message().trim().to_string(),
                }
            })?;
        let scenario = validate(raw, origin)?;
        scenario.check_office_references(&scenario.capacity_changes, "capacity_changes")?;
        Ok(scenario)
    }

    /// Lays an overlay (a file of `[[capacity_changes]]`, as `nobat plan` writes) over this
    /// scenario: its changes are appended. Errors name `overlay.capacity_changes[i]…` paths.
    pub fn with_overlay(&self, text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw: format::RawOverlay =
            serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let line = inner
                    .span()
                    .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
                ScenarioError::Format {
                    origin: origin.to_string(),
                    line,
                    path,
                    message: inner.message().trim().to_string(),
                }
            })?;
        let mut problems = Problems(Vec::new());
        let changes = simulation::validate_changes(
            &raw.capacity_changes,
            "capacity_changes",
            self.calendar.horizon_days,
            &self.citizens.provinces,
            &mut problems,
        );
        if !problems.0.is_empty() {
            return Err(ScenarioError::Invalid {
                origin: origin.to_string(),
                errors: problems.0,
            });
        }
        self.check_office_references(&changes, "capacity_changes")?;
        let mut out = self.clone();
        out.capacity_changes.extend(changes);
        Ok(out)
    }

    /// Changes that name an office, or a town, must name one of the network's.
    fn check_office_references(
        &self,
        changes: &[CapacityChange],
        prefix: &str,
    ) -> Result<(), ScenarioError> {
        let target = |c: &CapacityChange| match c {
            CapacityChange::AddStations { target, .. }
            | CapacityChange::Thursday { target, .. }
            | CapacityChange::FridayOpening { target, .. }
            | CapacityChange::Closure { target, .. } => Some(target.clone()),
            CapacityChange::MobileUnit { .. } => None,
        };
        let named = changes.iter().any(|c| {
            matches!(
                target(c),
                Some(ChangeTarget::Office(_)) | Some(ChangeTarget::Town(..))
            )
        });
        if !named {
            return Ok(());
        }
        let network = self.generate_network();
        let ids: BTreeSet<String> = network.iter().map(|o| o.id.to_string()).collect();
        let towns: BTreeSet<(String, String)> = network
            .iter()
            .map(|o| (o.province.clone(), o.city.clone()))
            .collect();
        let errors: Vec<FieldError> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match target(c) {
                Some(ChangeTarget::Office(id)) if !ids.contains(&id) => Some(FieldError {
                    path: format!("{prefix}[{i}].office"),
                    message: format!("no office {id:?} in the network"),
                }),
                Some(ChangeTarget::Town(p, town))
                    if !towns.contains(&(p.slug.clone(), town.clone())) =>
                {
                    Some(FieldError {
                        path: format!("{prefix}[{i}].town"),
                        message: format!("no office of {} is in {town:?}", p.name_en),
                    })
                }
                _ => None,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid {
                origin: self.origin.clone(),
                errors,
            })
        }
    }

    /// The office network: listed offices as given, or the generated network.
    /// The national holiday table plus this scenario's own closures. A scenario holiday on a
    /// day that is already a holiday adds nothing.
    pub fn holidays(&self) -> nobat_domain::calendar::HolidayCalendar {
        let mut holidays = nobat_domain::calendar::HolidayCalendar::builtin().clone();
        for h in &self.calendar.holidays {
            if holidays.is_holiday(h.date).is_none() {
                // Two scenario holidays on one date: the second adds nothing, so its refusal
                // is not an error.
                let _ = holidays.add(
                    nobat_domain::JalaliDate::from_gregorian(h.date),
                    &h.name,
                    &h.name,
                );
            }
        }
        holidays
    }

    pub fn generate_network(&self) -> Vec<nobat_domain::Office> {
        network::generate(self)
    }

    pub fn citizen_count(&self) -> u64 {
        self.citizens.count
    }

    /// A generator of this scenario's citizens; build it once and call `citizen(i)` often.
    pub fn citizen_generator(&self) -> CitizenGenerator {
        CitizenGenerator::new(self)
    }

    /// Citizen `i` (0-based), or `None` past the count. Builds a generator per call: in a loop
    /// use [`Scenario::citizen_generator`] or [`Scenario::citizens`].
    pub fn citizen(&self, i: u64) -> Option<CitizenRecord> {
        self.citizen_generator().citizen(i)
    }

    /// Every citizen in index order.
    pub fn citizens(&self) -> impl Iterator<Item = CitizenRecord> {
        let generator = self.citizen_generator();
        (0..generator.count()).filter_map(move |i| generator.citizen(i))
    }
}

/// A per-purpose seed: the scenario seed mixed with a purpose tag and an index (SplitMix64
/// over FNV-1a of the tag), so that generators never share a random stream.
pub fn derive_seed(seed: u64, purpose: &str, index: u64) -> u64 {
    let mut tag: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes() {
        tag ^= u64::from(b);
        tag = tag.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ tag.rotate_left(17) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}

fn thursday_rule(raw: RawThursday) -> ThursdayRule {
    match raw {
        RawThursday::Closed => ThursdayRule::Closed,
        RawThursday::HalfDay => ThursdayRule::HalfDay,
        RawThursday::Open => ThursdayRule::Open,
    }
}

/// Collects broken rules with their paths.
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A share: a number in [0, 1].
    fn share(&mut self, path: &str, value: Option<f64>, default: f64) -> f64 {
        let v = value.unwrap_or(default);
        if !(0.0..=1.0).contains(&v) {
            self.add(path, format!("must be between 0 and 1, got {v}"));
            return default;
        }
        v
    }

    /// A positive distance in km no larger than `max_km`.
    fn distance(&mut self, path: &str, value: Option<f64>, default: f64, max_km: f64) -> f64 {
        let v = value.unwrap_or(default);
        if !(v > 0.0 && v <= max_km) {
            self.add(
                path,
                format!("must be more than 0 and at most {max_km} km, got {v}"),
            );
            return default;
        }
        v
    }

    /// Resolves a province selection to provinces in table order, reporting unknown slugs.
    fn provinces(&mut self, path: &str, selection: &ProvinceSelection) -> Vec<&'static Province> {
        match selection {
            ProvinceSelection::All => Province::all().iter().collect(),
            ProvinceSelection::List(slugs) => {
                if slugs.is_empty() {
                    self.add(path, "must name at least one province");
                }
                let mut chosen = BTreeSet::new();
                for (i, slug) in slugs.iter().enumerate() {
                    match Province::by_slug(slug) {
                        Some(_) => {
                            if !chosen.insert(slug.as_str()) {
                                self.add(
                                    format!("{path}[{i}]"),
                                    format!("{slug:?} is listed twice"),
                                );
                            }
                        }
                        None => self.add(
                            format!("{path}[{i}]"),
                            format!("unknown province slug {slug:?} (see data/provinces.csv)"),
                        ),
                    }
                }
                Province::all()
                    .iter()
                    .filter(|p| chosen.contains(p.slug.as_str()))
                    .collect()
            }
        }
    }
}

fn validate(raw: RawScenario, origin: &str) -> Result<Scenario, ScenarioError> {
    let mut problems = Problems(Vec::new());
    if raw.name.trim().is_empty() {
        problems.add("name", "must not be empty");
    }
    let calendar = validate_calendar(&raw.calendar, &mut problems);
    let network = validate_network(&raw.network, &mut problems);
    let citizens = validate_citizens(&raw.citizens, network.as_ref(), &mut problems);

    // Simulation and planning sections.
    let horizon_days = calendar.horizon_days.max(1);
    let demand = simulation::validate_demand(
        raw.demand.as_ref(),
        horizon_days,
        &citizens.provinces,
        &mut problems,
    );
    let behaviour = simulation::validate_behaviour(raw.behaviour.as_ref(), &mut problems);
    let capacity_changes = simulation::validate_changes(
        &raw.capacity_changes,
        "capacity_changes",
        horizon_days,
        &citizens.provinces,
        &mut problems,
    );
    let policy = simulation::validate_policy(raw.policy.as_ref(), &mut problems);
    let plan = simulation::validate_plan(raw.plan.as_ref(), horizon_days, &mut problems);

    match network {
        Some(network) if problems.0.is_empty() => Ok(Scenario {
            name: raw.name.trim().to_string(),
            description: raw.description.trim().to_string(),
            seed: raw.seed,
            origin: origin.to_string(),
            calendar,
            network,
            citizens,
            demand,
            behaviour,
            capacity_changes,
            policy,
            plan,
        }),
        _ => Err(ScenarioError::Invalid {
            origin: origin.to_string(),
            errors: problems.0,
        }),
    }
}

fn validate_calendar(c: &format::RawCalendar, problems: &mut Problems) -> ScenarioCalendar {
    if !(1..=HORIZON_DAYS_MAX).contains(&c.horizon_days) {
        problems.add(
            "calendar.horizon_days",
            format!(
                "must be between 1 and {HORIZON_DAYS_MAX}, got {}",
                c.horizon_days
            ),
        );
    }
    if c.holidays.len() > HOLIDAYS_MAX {
        problems.add(
            "calendar.holidays",
            format!("at most {HOLIDAYS_MAX} holidays, got {}", c.holidays.len()),
        );
    }
    for (i, h) in c.holidays.iter().enumerate() {
        if h.name.trim().is_empty() {
            problems.add(format!("calendar.holidays[{i}].name"), "must not be empty");
        }
    }
    ScenarioCalendar {
        start_date: c.start_date.0,
        horizon_days: c.horizon_days,
        holidays: c
            .holidays
            .iter()
            .map(|h| ScenarioHoliday {
                date: h.date.0,
                name: h.name.trim().to_string(),
            })
            .collect(),
        thursday: c
            .thursday
            .map(thursday_rule)
            .unwrap_or(ThursdayRule::HalfDay),
    }
}

/// Explicit offices or a generator, exactly one of them.
fn validate_network(n: &format::RawNetwork, problems: &mut Problems) -> Option<NetworkSpec> {
    match (&n.generator, n.offices.is_empty()) {
        (Some(_), false) => {
            problems.add(
                "network",
                "give either [[network.offices]] or [network.generator], not both",
            );
            None
        }
        (None, true) => {
            problems.add(
                "network",
                "give the offices ([[network.offices]]) or a generator ([network.generator])",
            );
            None
        }
        (None, false) => Some(NetworkSpec::Explicit(validate_offices(
            &n.offices, problems,
        ))),
        (Some(g), true) => validate_generator(g, problems).map(NetworkSpec::Generated),
    }
}

/// The citizens; their provinces default to the network's.
fn validate_citizens(
    rc: &format::RawCitizens,
    network: Option<&NetworkSpec>,
    problems: &mut Problems,
) -> CitizenSpec {
    if rc.count > CITIZENS_MAX {
        problems.add(
            "citizens.count",
            format!("must be at most {CITIZENS_MAX}, got {}", rc.count),
        );
    }
    let citizen_provinces = match (&rc.provinces, network) {
        (Some(selection), _) => problems.provinces("citizens.provinces", selection),
        (None, Some(NetworkSpec::Generated(g))) => g.provinces.clone(),
        (None, Some(NetworkSpec::Explicit(offices))) => {
            let slugs: BTreeSet<&str> = offices.iter().map(|o| o.province.slug.as_str()).collect();
            Province::all()
                .iter()
                .filter(|p| slugs.contains(p.slug.as_str()))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    let dispersion_km = problems.distance("citizens.dispersion_km", rc.dispersion_km, 1.2, 50.0);
    let max_dispersion_km = problems.distance(
        "citizens.max_dispersion_km",
        rc.max_dispersion_km,
        60.0,
        300.0,
    );
    let rural_dispersion_km = problems.distance(
        "citizens.rural_dispersion_km",
        rc.rural_dispersion_km,
        15.0,
        100.0,
    );
    CitizenSpec {
        count: rc.count,
        provinces: citizen_provinces,
        dispersion_km,
        max_dispersion_km,
        rural_share: problems.share("citizens.rural_share", rc.rural_share, 0.25),
        rural_dispersion_km,
        under_15_share: problems.share("citizens.under_15_share", rc.under_15_share, 0.0),
        photo_certificate_share: problems.share(
            "citizens.photo_certificate_share",
            rc.photo_certificate_share,
            0.98,
        ),
        female_share: problems.share("citizens.female_share", rc.female_share, 0.5),
        foreign_share: problems.share("citizens.foreign_share", rc.foreign_share, 0.0),
    }
}

fn validate_offices(raw: &[format::RawOffice], problems: &mut Problems) -> Vec<OfficeSpec> {
    if raw.len() > OFFICES_MAX as usize {
        problems.add(
            "network.offices",
            format!("at most {OFFICES_MAX} offices, got {}", raw.len()),
        );
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut offices = Vec::with_capacity(raw.len());
    for (i, o) in raw.iter().enumerate() {
        let at = |field: &str| format!("network.offices[{i}].{field}");
        let id = match OfficeId::parse(&o.id) {
            Ok(id) => {
                if !seen.insert(id.clone()) {
                    problems.add(at("id"), format!("office id {id} is used twice"));
                }
                Some(id)
            }
            Err(e) => {
                problems.add(at("id"), e.message);
                None
            }
        };
        if o.name.trim().is_empty() {
            problems.add(at("name"), "must not be empty");
        }
        if o.city.trim().is_empty() {
            problems.add(at("city"), "must not be empty");
        }
        let province = Province::by_slug(&o.province);
        if province.is_none() {
            problems.add(
                at("province"),
                format!(
                    "unknown province slug {:?} (see data/provinces.csv)",
                    o.province
                ),
            );
        }
        let location = GeoPoint::new(o.lat, o.lon);
        if let Err(e) = &location {
            problems.add(format!("network.offices[{i}].lat"), e.message.clone());
        }
        if !(1..=STATIONS_MAX).contains(&o.stations) {
            problems.add(
                at("stations"),
                format!("must be between 1 and {STATIONS_MAX}, got {}", o.stations),
            );
        }
        let services: BTreeSet<ServiceCode> = match &o.services {
            Some(list) => {
                for (j, s) in list.iter().enumerate() {
                    if !s.info().offered_at(o.kind) {
                        problems.add(
                            format!("network.offices[{i}].services[{j}]"),
                            format!("a {} office cannot offer {s}", o.kind),
                        );
                    }
                }
                list.iter().copied().collect()
            }
            None => o.kind.default_services(),
        };
        if services.is_empty() {
            problems.add(at("services"), "an office must offer at least one service");
        }
        if let (Some(id), Some(province), Ok(location)) = (id, province, location) {
            offices.push(OfficeSpec {
                id,
                name: o.name.trim().to_string(),
                kind: o.kind,
                province,
                city: o.city.trim().to_string(),
                location,
                stations: o.stations,
                services,
                thursday: o.thursday.map(thursday_rule),
            });
        }
    }
    offices
}

fn default_stations(kind: OfficeKind) -> StationDistribution {
    match kind {
        OfficeKind::Pishkhan | OfficeKind::Post => StationDistribution {
            min: 1,
            weights: vec![0.6, 0.4],
        },
        OfficeKind::CivilRegistry => StationDistribution {
            min: 2,
            weights: vec![1.0, 1.0, 1.0],
        },
        OfficeKind::MobileStation => StationDistribution {
            min: 1,
            weights: vec![1.0],
        },
    }
}

/// The path of the generator section in a scenario file.
const GENERATOR: &str = "network.generator";

fn validate_generator(g: &format::RawGenerator, problems: &mut Problems) -> Option<GeneratorSpec> {
    const P: &str = GENERATOR;
    let errors_before = problems.0.len();
    let provinces = problems.provinces(&format!("{P}.provinces"), &g.provinces);
    let offices_total = generator_offices_total(g, &provinces, problems);
    check_province_offices(g, &provinces, offices_total, problems);
    let kind_mix = generator_kind_mix(&g.kind_mix, problems);
    let s = &g.stations;
    let raw_ranges = [&s.pishkhan, &s.civil_registry, &s.post, &s.mobile_station];
    let stations = std::array::from_fn(|k| {
        let kind = OfficeKind::ALL[k];
        match raw_ranges[k] {
            None => default_stations(kind),
            Some(r) => station_distribution(kind, r, problems),
        }
    });
    let jitter_km = g.jitter_km.unwrap_or(3.0);
    if !(0.0..=50.0).contains(&jitter_km) {
        problems.add(
            format!("{P}.jitter_km"),
            format!("must be between 0 and 50 km, got {jitter_km}"),
        );
    }
    (problems.0.len() == errors_before).then(|| GeneratorSpec {
        provinces,
        offices_total,
        province_offices: g.province_offices.clone(),
        kind_mix,
        stations,
        jitter_km,
        thursday: g.thursday.map(thursday_rule),
    })
}

/// Offices to generate: given, or per million inhabitants of the provinces (0 when invalid).
fn generator_offices_total(
    g: &format::RawGenerator,
    provinces: &[&'static Province],
    problems: &mut Problems,
) -> u32 {
    const P: &str = GENERATOR;
    let population_m: f64 = provinces
        .iter()
        .map(|p| p.population_2016 as f64 / 1e6)
        .sum();
    let offices_total = match (g.offices_total, g.offices_per_million) {
        (Some(_), Some(_)) => {
            problems.add(P, "give offices_total or offices_per_million, not both");
            0
        }
        (None, None) => {
            problems.add(P, "give offices_total or offices_per_million");
            0
        }
        (Some(total), None) => {
            if total < 1 {
                problems.add(format!("{P}.offices_total"), "must be at least 1");
            }
            total
        }
        (None, Some(per_million)) => {
            if !(per_million > 0.0 && per_million <= 1_000.0) {
                problems.add(
                    format!("{P}.offices_per_million"),
                    format!("must be more than 0 and at most 1000, got {per_million}"),
                );
                0
            } else {
                (per_million * population_m).round().max(1.0) as u32
            }
        }
    };
    if offices_total > OFFICES_MAX {
        problems.add(
            P,
            format!("at most {OFFICES_MAX} offices may be generated, got {offices_total}"),
        );
    }
    offices_total
}

/// Fixed per-province counts: in the generator's provinces, in range, and leaving every
/// other province at least one office and none more than the maximum.
fn check_province_offices(
    g: &format::RawGenerator,
    provinces: &[&'static Province],
    offices_total: u32,
    problems: &mut Problems,
) {
    const P: &str = GENERATOR;
    let mut fixed_total: u64 = 0;
    for (slug, &count) in &g.province_offices {
        let path = format!("{P}.province_offices.{slug}");
        if !provinces.iter().any(|p| &p.slug == slug) {
            problems.add(
                &path,
                format!("{slug:?} is not one of the generator's provinces"),
            );
        }
        if !(1..=OFFICES_PER_PROVINCE_MAX).contains(&count) {
            problems.add(
                &path,
                format!("must be between 1 and {OFFICES_PER_PROVINCE_MAX}, got {count}"),
            );
        }
        fixed_total += u64::from(count);
    }
    // Every province needs at least its civil-registry office.
    let free_provinces = provinces.len() as u64 - g.province_offices.len() as u64;
    if offices_total > 0 && fixed_total + free_provinces > u64::from(offices_total) {
        problems.add(
            P,
            format!(
                "{offices_total} offices cannot give each of the {} provinces at least one \
                 (fixed counts take {fixed_total})",
                provinces.len()
            ),
        );
    }
    // The largest population-shared count, to keep ids within four digits.
    let free: Vec<&&Province> = provinces
        .iter()
        .filter(|p| !g.province_offices.contains_key(&p.slug))
        .collect();
    let free_population: f64 = free.iter().map(|p| p.population_2016 as f64).sum();
    let largest_free = free
        .iter()
        .map(|p| p.population_2016 as f64)
        .fold(0.0, f64::max);
    let free_total = u64::from(offices_total).saturating_sub(fixed_total) as f64;
    if free_population > 0.0
        && (free_total * largest_free / free_population).ceil()
            > f64::from(OFFICES_PER_PROVINCE_MAX)
    {
        problems.add(
            P,
            format!("a province would get more than {OFFICES_PER_PROVINCE_MAX} offices"),
        );
    }
}

/// Shares of the office kinds, normalised to sum to 1.
fn generator_kind_mix(m: &format::RawKindMix, problems: &mut Problems) -> [f64; 4] {
    const P: &str = GENERATOR;
    let mix = [m.pishkhan, m.civil_registry, m.post, m.mobile_station];
    for (kind, share) in OfficeKind::ALL.iter().zip(mix) {
        if !(share.is_finite() && share >= 0.0) {
            problems.add(
                format!("{P}.kind_mix.{kind}"),
                format!("must be a share of at least 0, got {share}"),
            );
        }
    }
    let mix_sum: f64 = mix.iter().sum();
    if !(mix_sum > 0.0 && mix_sum.is_finite()) {
        problems.add(format!("{P}.kind_mix"), "the shares must not all be 0");
    }
    mix.map(|s| if mix_sum > 0.0 { s / mix_sum } else { 0.0 })
}

/// Stations per office of a kind from its range and weights (the kind's default when they
/// are invalid, with the problem reported).
fn station_distribution(
    kind: OfficeKind,
    r: &format::RawStationRange,
    problems: &mut Problems,
) -> StationDistribution {
    let path = format!("{GENERATOR}.stations.{kind}");
    if !(1 <= r.min && r.min <= r.max && r.max <= STATIONS_MAX) {
        problems.add(
            &path,
            format!(
                "need 1 <= min <= max <= {STATIONS_MAX}, got min {} and max {}",
                r.min, r.max
            ),
        );
        return default_stations(kind);
    }
    let len = usize::from(r.max - r.min) + 1;
    let weights = match &r.weights {
        None => vec![1.0; len],
        Some(w) => {
            if w.len() != len {
                problems.add(
                    format!("{path}.weights"),
                    format!(
                        "needs one weight per count from min to max ({len}), got {}",
                        w.len()
                    ),
                );
                return default_stations(kind);
            }
            if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                problems.add(
                    format!("{path}.weights"),
                    "weights must be at least 0 and not all 0",
                );
                return default_stations(kind);
            }
            w.clone()
        }
    };
    StationDistribution {
        min: r.min,
        weights,
    }
}
