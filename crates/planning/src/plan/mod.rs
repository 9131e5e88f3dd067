//! Capacity planning: the cheapest extra stations, Thursday and Friday openings and mobile
//! units that keep every province's wait under the target, as a mixed-integer programme per
//! province (good_lp with the pure-Rust microlp backend).
//!
//! **Model.** Applicants book in their own province, and mostly near home, so the plan is
//! made per catchment area: the offices of one town of a province and the demand cells whose
//! nearest office is among them (a province-wide model let a congested town borrow the idle
//! seats of a town 200 km away, and the simulated plan missed its target). For an area over
//! horizon days τ, with A(t) its registrations through day t:
//!
//! ```text
//! minimise   Σ_k cost_station·open_days(k)·x_k + Σ_k cost_unit·open_days(k)·m_k
//!          + Σ_j cost_thursday·offices·o_j + Σ_j cost_friday·offices·f_j + M·Σ_t u_t
//! subject to s_τ ≤ e·(c_τ + σ_τ·(x_k(τ) + w·m_k(τ)) + θ_τ·o_j(τ) + φ_τ·f_j(τ))   (seats)
//!            S_τ = S_τ−1 + s_τ,   S_τ ≤ A(τ − lead)                              (causality)
//!            S_deadline(t) + u_t ≥ A(t)                                          (the target)
//!            x_k, m_k whole; o_j, f_j ∈ {0, 1}; u_t ≥ 0
//! ```
//!
//! **Solving.** microlp's branch and bound on a few hundred variables took minutes on some
//! areas, so the relaxation is solved (seconds for the whole country) and rounded up to
//! whole units (more capacity never breaks the target), then trimmed greedily, the costliest
//! additions first, while an exact check of the target (the greedy running total, which is
//! the largest possible) still holds. On the hand-worked tests this is the optimum.
//!
//! s_τ is enrolments on day τ and S_τ their running total; c_τ the province's enrolment seats;
//! σ_τ the seats of one added station (the default calendar less the pickup share); θ_τ and
//! φ_τ what opening every office of the province on a Thursday (full day) or Friday adds;
//! e = 1 − no-show rate (a no-show's seat is lost); w the stations of a mobile unit; x_k and
//! m_k the stations and mobile units hired for block k (`plan.block_days` long).
//! deadline(t) is the last day whose working-day count is at most the target after t's, so
//! S_deadline(t) ≥ A(t) says that (in this fluid, first-come-first-served model) everyone who
//! registered by t is enrolled within the target: stricter than a p95, which leaves the
//! simulation's randomness and geography some room. Days whose deadline falls past the
//! horizon are not constrained. u_t, the applicants late at t, costs M (far above any
//! addition), so it is positive only when even the largest additions allowed cannot meet the
//! target; then the province is reported infeasible with the shortest wait it can reach.
//! With `plan.max_distance_km`, demand living further than that from every permanent office
//! must be met by mobile units: in each block their seats must cover that share of the block's
//! registrations.

use good_lp::{
    constraint, microlp, variable, Expression, ProblemVariables, ResolutionError, Solution,
    SolverModel, Variable,
};

use crate::scenario::{PlanSpec, Scenario};
use crate::sim::World;

/// Cost of one applicant late for the target: far above any addition, so lateness is bought
/// only when nothing else can help.
const LATE_PENALTY: f64 = 1e7;
/// Most blocks in a horizon (730 days in 1-day blocks).
pub const BLOCKS_MAX: usize = 730;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the scenario has no [plan] section: targets and costs are needed")]
    NoPlanSection,
    #[error("{province}: the solver failed: {message}")]
    Solver { province: String, message: String },
}

/// Additions for one province.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvincePlan {
    pub slug: String,
    pub name_en: String,
    /// The catchment area within the province: the town whose offices it adds to.
    pub town: String,
    /// Prefix of the ids of planned mobile units (`plan-054`, the province's area code).
    pub unit_prefix: String,
    pub offices: u32,
    pub stations: u32,
    /// Stations added in each block.
    pub stations_by_block: Vec<u32>,
    pub mobile_units_by_block: Vec<u32>,
    /// Horizon days (Thursdays) on which every office of the province opens a full day.
    pub thursday_openings: Vec<u32>,
    pub friday_openings: Vec<u32>,
    pub cost: f64,
    /// Whether the target can be met within the limits.
    pub feasible: bool,
    /// Applicants late at the worst day when the target cannot be met (0 when it can).
    pub late_applicants_max: u64,
    /// The shortest wait (working days) reachable with every addition at its limit, when the
    /// target is not.
    pub best_reachable_wait_days: Option<u32>,
    /// Share of registrations living further than `plan.max_distance_km` from every
    /// permanent office.
    pub far_demand_share: f64,
    /// Towns where the mobile units stand (the least-served first).
    pub mobile_towns: Vec<String>,
    pub registered: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub target_wait_days: u32,
    /// (first day, last day) of each block.
    pub blocks: Vec<(u32, u32)>,
    pub provinces: Vec<ProvincePlan>,
    pub mobile_unit_stations: u16,
}

impl Plan {
    pub fn total_cost(&self) -> f64 {
        self.provinces.iter().map(|p| p.cost).sum()
    }

    pub fn feasible(&self) -> bool {
        self.provinces.iter().all(|p| p.feasible)
    }
}

/// Per-province inputs of the programme, in the units above.
struct ProvinceInputs {
    cumulative: Vec<f64>,
    seats: Vec<f64>,
    station_seats: Vec<f64>,
    thursday_extra: Vec<f64>,
    friday_extra: Vec<f64>,
    offices: u32,
    far_share: f64,
}

/// A catchment area: the offices of one town of a province and the demand cells whose
/// nearest permanent office is one of them (mobile legs count with their nearest office).
struct Area {
    province: usize,
    town: String,
    sites: Vec<usize>,
    /// Share of the province's registrations living here.
    weight: f64,
    cells: Vec<usize>,
}

fn areas_of(world: &World, p: usize) -> Vec<Area> {
    let permanent: Vec<usize> = (0..world.sites.len())
        .filter(|&s| world.sites[s].province == p && !world.sites[s].is_mobile_leg)
        .collect();
    let mut areas: Vec<Area> = Vec::new();
    for &s in &permanent {
        let town = &world.sites[s].town;
        match areas.iter_mut().find(|a| &a.town == town) {
            Some(a) => a.sites.push(s),
            None => areas.push(Area {
                province: p,
                town: town.clone(),
                sites: vec![s],
                weight: 0.0,
                cells: Vec::new(),
            }),
        }
    }
    let nearest_area = |at: nobat_domain::GeoPoint| -> Option<usize> {
        permanent
            .iter()
            .min_by(|&&a, &&b| {
                at.distance_km(world.sites[a].location)
                    .total_cmp(&at.distance_km(world.sites[b].location))
                    .then(a.cmp(&b))
            })
            .and_then(|&s| areas.iter().position(|a| a.sites.contains(&s)))
    };
    let legs: Vec<(usize, Option<usize>)> = (0..world.sites.len())
        .filter(|&s| world.sites[s].province == p && world.sites[s].is_mobile_leg)
        .map(|s| (s, nearest_area(world.sites[s].location)))
        .collect();
    let cells: Vec<(usize, Option<usize>)> = (0..world.cells.len())
        .filter(|&c| world.cells[c].province == p)
        .map(|c| (c, nearest_area(world.cells[c].location)))
        .collect();
    if areas.is_empty() {
        // No office at all: one area of the whole province, which only mobile units can serve.
        let town = cells
            .first()
            .map(|&(c, _)| world.cells[c].town.clone())
            .unwrap_or_default();
        areas.push(Area {
            province: p,
            town,
            sites: Vec::new(),
            weight: 0.0,
            cells: Vec::new(),
        });
    }
    for (s, a) in legs {
        areas[a.unwrap_or(0)].sites.push(s);
    }
    for (c, a) in cells {
        let area = &mut areas[a.unwrap_or(0)];
        area.weight += world.cells[c].weight;
        area.cells.push(c);
    }
    areas
}

fn area_inputs(world: &World, spec: &PlanSpec, area: &Area) -> ProvinceInputs {
    let h = world.horizon_days as usize;
    let mut cumulative = Vec::with_capacity(h);
    let mut acc = 0.0;
    for d in 0..h as u32 {
        acc += world.arrivals(d)[area.province] as f64 * area.weight;
        cumulative.push(acc);
    }
    let sites: Vec<_> = area.sites.iter().map(|&s| &world.sites[s]).collect();
    let seats = (0..h)
        .map(|d| sites.iter().map(|s| f64::from(s.enrol_seats[d])).sum())
        .collect();
    let keep = 1.0 - world.pickup_share;
    let station_seats: Vec<f64> = world
        .standard_slots
        .iter()
        .map(|&slots| (f64::from(slots) * keep).floor())
        .collect();
    let permanent: Vec<_> = sites.iter().filter(|s| !s.is_mobile_leg).collect();
    let stations: f64 = permanent.iter().map(|s| f64::from(s.stations)).sum();
    let full = f64::from(world.full_day_slots);
    let (thursday_extra, friday_extra) = (0..h as u32)
        .map(|d| {
            let weekday = chrono::Datelike::weekday(&world.date(d));
            if world.is_holiday[d as usize] {
                return (0.0, 0.0);
            }
            let extra_slots = |slots: f64| ((full - slots).max(0.0) * stations * keep).floor();
            match weekday {
                chrono::Weekday::Thu if spec.thursday_openings => (
                    extra_slots(f64::from(world.standard_slots[d as usize])),
                    0.0,
                ),
                chrono::Weekday::Fri if spec.friday_openings => (0.0, extra_slots(0.0)),
                _ => (0.0, 0.0),
            }
        })
        .unzip();
    let all_permanent: Vec<_> = world
        .sites
        .iter()
        .filter(|s| s.province == area.province && !s.is_mobile_leg)
        .collect();
    let far_weight: f64 = match spec.max_distance_km {
        None => 0.0,
        Some(max_km) => area
            .cells
            .iter()
            .map(|&c| &world.cells[c])
            .filter(|c| {
                all_permanent
                    .iter()
                    .all(|s| c.location.distance_km(s.location) > max_km)
            })
            .map(|c| c.weight)
            .sum(),
    };
    ProvinceInputs {
        cumulative,
        seats,
        station_seats,
        thursday_extra,
        friday_extra,
        offices: permanent.len() as u32,
        far_share: if area.weight > 0.0 {
            far_weight / area.weight
        } else {
            0.0
        },
    }
}

/// deadline[t]: the last horizon day within `target` working days of t, or `None` when that
/// day is past the horizon (no constraint).
fn deadlines(world: &World, target: u32) -> Vec<Option<usize>> {
    let wd = &world.working_days_through;
    let h = wd.len();
    let mut out = vec![None; h];
    let mut tau = 0;
    for t in 0..h {
        let limit = wd[t] + target;
        tau = tau.max(t);
        while tau + 1 < h && wd[tau + 1] <= limit {
            tau += 1;
        }
        // Only constrained when some later day would be past the target.
        if tau + 1 < h {
            out[t] = Some(tau);
        }
    }
    out
}

/// The most the province can enrol by each day with every addition at its limit (the greedy
/// running total is the largest possible one).
fn max_cumulative(
    inputs: &ProvinceInputs,
    spec: &PlanSpec,
    efficiency: f64,
    lead: usize,
) -> Vec<f64> {
    let mut s = 0.0;
    let stations_max = f64::from(spec.stations_per_province_max)
        + f64::from(spec.mobile_units_per_province_max) * f64::from(spec.mobile_unit_stations);
    (0..inputs.cumulative.len())
        .map(|d| {
            let cap = efficiency
                * (inputs.seats[d]
                    + inputs.station_seats[d] * stations_max
                    + inputs.thursday_extra[d]
                    + inputs.friday_extra[d]);
            let registered = if d >= lead {
                inputs.cumulative[d - lead]
            } else {
                0.0
            };
            s = (s + cap).min(registered);
            s
        })
        .collect()
}

fn lateness(cumulative: &[f64], served: &[f64], deadline: &[Option<usize>]) -> f64 {
    deadline
        .iter()
        .enumerate()
        .filter_map(|(t, d)| d.map(|d| cumulative[t] - served[d]))
        .fold(0.0, f64::max)
}

/// Plans the cheapest additions for a scenario whose world is `world`.
pub fn plan(scenario: &Scenario, world: &World) -> Result<Plan, PlanError> {
    plan_observed(scenario, world, &mut |_, _| {})
}

/// [`plan`], calling `on_area(done, total)` as each planning area (a province, or a town of
/// one) is planned: the planner console's progress.
pub fn plan_observed(
    scenario: &Scenario,
    world: &World,
    on_area: &mut dyn FnMut(u32, u32),
) -> Result<Plan, PlanError> {
    let spec = scenario.plan.as_ref().ok_or(PlanError::NoPlanSection)?;
    let h = world.horizon_days;
    let block_days = spec.block_days.max(1);
    let blocks: Vec<(u32, u32)> = (0..h)
        .step_by(block_days as usize)
        .take(BLOCKS_MAX)
        .map(|from| (from, (from + block_days - 1).min(h - 1)))
        .collect();
    let efficiency = 1.0 - scenario.behaviour.no_show_rate;
    let lead = scenario.policy.lead_days as usize;
    let deadline = deadlines(world, spec.target_wait_days_p95);
    let mut provinces = Vec::new();
    let areas: Vec<(usize, Area)> = (0..world.provinces.len())
        .flat_map(|p| areas_of(world, p).into_iter().map(move |a| (p, a)))
        .collect();
    let total = areas.len() as u32;
    for (done, (p, area)) in areas.into_iter().enumerate() {
        on_area(done as u32, total);
        let province = &world.provinces[p];
        let inputs = area_inputs(world, spec, &area);
        let registered = inputs.cumulative.last().copied().unwrap_or(0.0);
        let mut result = ProvincePlan {
            slug: province.slug.clone(),
            name_en: province.name_en.clone(),
            town: area.town.clone(),
            unit_prefix: format!("plan-{}-{}", province.area_code, provinces.len() + 1),
            offices: inputs.offices,
            stations: area
                .sites
                .iter()
                .filter(|&&s| !world.sites[s].is_mobile_leg)
                .map(|&s| u32::from(world.sites[s].stations))
                .sum(),
            stations_by_block: vec![0; blocks.len()],
            mobile_units_by_block: vec![0; blocks.len()],
            thursday_openings: Vec::new(),
            friday_openings: Vec::new(),
            cost: 0.0,
            feasible: true,
            late_applicants_max: 0,
            best_reachable_wait_days: None,
            far_demand_share: inputs.far_share,
            mobile_towns: Vec::new(),
            registered: registered.round() as u64,
        };
        if registered < 0.5 {
            provinces.push(result);
            continue;
        }
        // Can the target be met at all? The greedy maximum says so without a solver.
        let best = max_cumulative(&inputs, spec, efficiency, lead);
        let late = lateness(&inputs.cumulative, &best, &deadline);
        if late > 0.5 {
            result.feasible = false;
            result.late_applicants_max = late.round() as u64;
            result.best_reachable_wait_days = (spec.target_wait_days_p95 + 1..=h)
                .find(|&n| lateness(&inputs.cumulative, &best, &deadlines(world, n)) <= 0.5);
        }
        solve_province(
            world,
            spec,
            &inputs,
            &blocks,
            &deadline,
            efficiency,
            lead,
            &mut result,
        )?;
        result.mobile_towns = mobile_towns(world, spec, &area);
        provinces.push(result);
    }
    on_area(total, total);
    Ok(Plan {
        target_wait_days: spec.target_wait_days_p95,
        blocks,
        provinces,
        mobile_unit_stations: spec.mobile_unit_stations,
    })
}

#[allow(clippy::too_many_arguments)]
fn solve_province(
    world: &World,
    spec: &PlanSpec,
    inputs: &ProvinceInputs,
    blocks: &[(u32, u32)],
    deadline: &[Option<usize>],
    efficiency: f64,
    lead: usize,
    result: &mut ProvincePlan,
) -> Result<(), PlanError> {
    let h = world.horizon_days as usize;
    let thursdays: Vec<usize> = (0..h).filter(|&d| inputs.thursday_extra[d] > 0.0).collect();
    let fridays: Vec<usize> = (0..h).filter(|&d| inputs.friday_extra[d] > 0.0).collect();
    let check = Check {
        inputs,
        blocks,
        deadline,
        efficiency,
        lead,
        unit_stations: f64::from(spec.mobile_unit_stations),
        thursdays: &thursdays,
        fridays: &fridays,
    };
    let (mut add, lp_late) = check.relaxation(spec, h, &result.slug)?;
    let allowed_late = lp_late + 0.5;
    if check.late(&add) <= allowed_late {
        check.trim(&mut add, allowed_late);
    }
    result.stations_by_block = add.stations.clone();
    result.mobile_units_by_block = add.units.clone();
    result.thursday_openings = thursdays
        .iter()
        .zip(&add.thursdays)
        .filter(|(_, &open)| open)
        .map(|(&d, _)| d as u32)
        .collect();
    result.friday_openings = fridays
        .iter()
        .zip(&add.fridays)
        .filter(|(_, &open)| open)
        .map(|(&d, _)| d as u32)
        .collect();
    let offices = f64::from(inputs.offices);
    result.cost = (0..blocks.len())
        .map(|k| {
            check.open_days(k)
                * (spec.station_day_cost * f64::from(result.stations_by_block[k])
                    + spec.mobile_unit_day_cost * f64::from(result.mobile_units_by_block[k]))
        })
        .sum::<f64>()
        + result.thursday_openings.len() as f64 * spec.thursday_office_day_cost * offices
        + result.friday_openings.len() as f64
            * spec.friday_office_day_cost.unwrap_or(0.0)
            * offices;
    Ok(())
}

/// The relaxation's variables (see the module docs): per block the stations `x` and mobile
/// units `m`; per possible Thursday and Friday opening `o` and `f`; per day the enrolments
/// `s` and their running total `cum`; per day with a deadline the applicants late `u`.
struct LpVars {
    x: Vec<Variable>,
    m: Vec<Variable>,
    o: Vec<Variable>,
    f: Vec<Variable>,
    s: Vec<Variable>,
    cum: Vec<Variable>,
    u: Vec<Variable>,
    /// (registration day, deadline day) of each `u`.
    constrained: Vec<(usize, usize)>,
}

/// Whole additions of one area.
struct Additions {
    stations: Vec<u32>,
    units: Vec<u32>,
    thursdays: Vec<bool>,
    fridays: Vec<bool>,
}

/// An area's capacity problem: its inputs, the blocks and the deadlines. Solves the
/// relaxation and checks additions against the target with the greedy running total (the
/// largest possible).
struct Check<'a> {
    inputs: &'a ProvinceInputs,
    blocks: &'a [(u32, u32)],
    deadline: &'a [Option<usize>],
    efficiency: f64,
    lead: usize,
    unit_stations: f64,
    thursdays: &'a [usize],
    fridays: &'a [usize],
}

impl Check<'_> {
    /// Horizon days of block `k` on which an added station has seats.
    fn open_days(&self, k: usize) -> f64 {
        let (a, b) = self.blocks[k];
        (a..=b)
            .filter(|&d| self.inputs.station_seats[d as usize] > 0.0)
            .count() as f64
    }

    /// The LP relaxation over `h` days, solved and rounded up to whole units (more capacity
    /// never breaks the target); also the most applicants it leaves late after a deadline.
    fn relaxation(
        &self,
        spec: &PlanSpec,
        h: usize,
        slug: &str,
    ) -> Result<(Additions, f64), PlanError> {
        let mut vars = ProblemVariables::new();
        let blocks = self.blocks.len();
        let x: Vec<Variable> = (0..blocks)
            .map(|_| vars.add(variable().min(0).max(spec.stations_per_province_max)))
            .collect();
        let m: Vec<Variable> = (0..blocks)
            .map(|_| vars.add(variable().min(0).max(spec.mobile_units_per_province_max)))
            .collect();
        let o: Vec<Variable> = self
            .thursdays
            .iter()
            .map(|_| vars.add(variable().min(0).max(1)))
            .collect();
        let f: Vec<Variable> = self
            .fridays
            .iter()
            .map(|_| vars.add(variable().min(0).max(1)))
            .collect();
        let s: Vec<Variable> = (0..h).map(|_| vars.add(variable().min(0))).collect();
        let cum: Vec<Variable> = (0..h).map(|_| vars.add(variable().min(0))).collect();
        let constrained: Vec<(usize, usize)> = self
            .deadline
            .iter()
            .enumerate()
            .filter_map(|(t, d)| d.map(|d| (t, d)))
            .collect();
        let u: Vec<Variable> = constrained
            .iter()
            .map(|_| vars.add(variable().min(0)))
            .collect();
        let lp = LpVars {
            x,
            m,
            o,
            f,
            s,
            cum,
            u,
            constrained,
        };
        let model = vars.minimise(self.objective(spec, &lp)).using(microlp);
        let solution = self
            .constrain(model, &lp)
            .solve()
            .map_err(|e: ResolutionError| PlanError::Solver {
                province: slug.to_string(),
                message: e.to_string(),
            })?;
        let up = |v: f64| (v - 1e-6).ceil().max(0.0) as u32;
        let add = Additions {
            stations: lp.x.iter().map(|&v| up(solution.value(v))).collect(),
            units: lp.m.iter().map(|&v| up(solution.value(v))).collect(),
            thursdays: lp.o.iter().map(|&v| solution.value(v) > 1e-6).collect(),
            fridays: lp.f.iter().map(|&v| solution.value(v) > 1e-6).collect(),
        };
        let lp_late: f64 = lp.u.iter().map(|&v| solution.value(v)).fold(0.0, f64::max);
        Ok((add, lp_late))
    }

    /// What the additions cost, plus the penalty on late applicants.
    fn objective(&self, spec: &PlanSpec, lp: &LpVars) -> Expression {
        let offices = f64::from(self.inputs.offices);
        let mut objective = Expression::from(0.0);
        for k in 0..self.blocks.len() {
            objective += spec.station_day_cost * self.open_days(k) * lp.x[k];
            objective += spec.mobile_unit_day_cost * self.open_days(k) * lp.m[k];
        }
        for &v in &lp.o {
            objective += spec.thursday_office_day_cost * offices * v;
        }
        let friday_cost = spec.friday_office_day_cost.unwrap_or(0.0);
        for &v in &lp.f {
            objective += friday_cost * offices * v;
        }
        for &v in &lp.u {
            objective += LATE_PENALTY * v;
        }
        objective
    }

    /// Seats, causality and the target per day; mobile units cover the far demand per block.
    fn constrain<M: SolverModel>(&self, mut model: M, lp: &LpVars) -> M {
        let i = self.inputs;
        let (efficiency, w) = (self.efficiency, self.unit_stations);
        let (s, cum) = (&lp.s, &lp.cum);
        for d in 0..s.len() {
            let k = self.block_of(d);
            let mut capacity: Expression = Expression::from(efficiency * i.seats[d]);
            if i.station_seats[d] > 0.0 {
                capacity += efficiency * i.station_seats[d] * lp.x[k];
                capacity += efficiency * i.station_seats[d] * w * lp.m[k];
            }
            if let Some(j) = self.thursdays.iter().position(|&t| t == d) {
                capacity += efficiency * i.thursday_extra[d] * lp.o[j];
            }
            if let Some(j) = self.fridays.iter().position(|&t| t == d) {
                capacity += efficiency * i.friday_extra[d] * lp.f[j];
            }
            model = model.with(constraint!(s[d] <= capacity));
            if d == 0 {
                model = model.with(constraint!(cum[0] == s[0]));
            } else {
                model = model.with(constraint!(cum[d] == cum[d - 1] + s[d]));
            }
            let registered = if d >= self.lead {
                i.cumulative[d - self.lead]
            } else {
                0.0
            };
            model = model.with(constraint!(cum[d] <= registered));
        }
        for (j, &(t, d)) in lp.constrained.iter().enumerate() {
            model = model.with(constraint!(cum[d] + lp.u[j] >= i.cumulative[t]));
        }
        if i.far_share > 0.0 {
            for (k, &(a, b)) in self.blocks.iter().enumerate() {
                let unit_seats = self.unit_seats(a, b);
                if unit_seats > 0.0 {
                    let arrivals = self.arrivals(a, b);
                    model = model.with(constraint!(unit_seats * lp.m[k] >= i.far_share * arrivals));
                }
            }
        }
        model
    }

    /// The block that holds day `d`.
    fn block_of(&self, d: usize) -> usize {
        self.blocks
            .iter()
            .position(|&(a, b)| a as usize <= d && d <= b as usize)
            .unwrap_or(0)
    }

    /// Registrations from day `a` through day `b`.
    fn arrivals(&self, a: u32, b: u32) -> f64 {
        let cumulative = &self.inputs.cumulative;
        cumulative[b as usize]
            - if a == 0 {
                0.0
            } else {
                cumulative[a as usize - 1]
            }
    }

    /// Seats one mobile unit serves from day `a` through day `b`, no-shows deducted.
    fn unit_seats(&self, a: u32, b: u32) -> f64 {
        (a..=b)
            .map(|d| self.inputs.station_seats[d as usize])
            .sum::<f64>()
            * self.efficiency
            * self.unit_stations
    }

    /// Removes additions greedily, the costliest kinds first (Friday, then Thursday
    /// openings, then per block mobile units and stations), while no more than
    /// `allowed_late` applicants are late and units still cover the far demand.
    fn trim(&self, add: &mut Additions, allowed_late: f64) {
        for j in (0..add.fridays.len()).rev() {
            if add.fridays[j] {
                add.fridays[j] = false;
                if self.late(add) > allowed_late {
                    add.fridays[j] = true;
                }
            }
        }
        for j in (0..add.thursdays.len()).rev() {
            if add.thursdays[j] {
                add.thursdays[j] = false;
                if self.late(add) > allowed_late {
                    add.thursdays[j] = true;
                }
            }
        }
        for k in 0..self.blocks.len() {
            while add.units[k] > 0 {
                add.units[k] -= 1;
                if self.late(add) > allowed_late || !self.far_covered(add, k) {
                    add.units[k] += 1;
                    break;
                }
            }
            while add.stations[k] > 0 {
                add.stations[k] -= 1;
                if self.late(add) > allowed_late {
                    add.stations[k] += 1;
                    break;
                }
            }
        }
    }

    fn late(&self, add: &Additions) -> f64 {
        let i = self.inputs;
        let mut extra = vec![0.0; i.seats.len()];
        for (k, &(a, b)) in self.blocks.iter().enumerate() {
            let stations =
                f64::from(add.stations[k]) + self.unit_stations * f64::from(add.units[k]);
            let range = a as usize..=b as usize;
            for (slot, seats) in extra[range.clone()].iter_mut().zip(&i.station_seats[range]) {
                *slot += seats * stations;
            }
        }
        for (j, &d) in self.thursdays.iter().enumerate() {
            if add.thursdays[j] {
                extra[d] += i.thursday_extra[d];
            }
        }
        for (j, &d) in self.fridays.iter().enumerate() {
            if add.fridays[j] {
                extra[d] += i.friday_extra[d];
            }
        }
        let mut total = 0.0;
        let served: Vec<f64> = (0..i.seats.len())
            .map(|d| {
                let registered = if d >= self.lead {
                    i.cumulative[d - self.lead]
                } else {
                    0.0
                };
                total = (total + self.efficiency * (i.seats[d] + extra[d])).min(registered);
                total
            })
            .collect();
        lateness(&i.cumulative, &served, self.deadline)
    }

    /// Mobile units cover the far demand of block k.
    fn far_covered(&self, add: &Additions, k: usize) -> bool {
        let i = self.inputs;
        if i.far_share <= 0.0 {
            return true;
        }
        let (a, b) = self.blocks[k];
        let arrivals = self.arrivals(a, b);
        let unit_seats = self.unit_seats(a, b);
        unit_seats <= 0.0 || unit_seats * f64::from(add.units[k]) + 1e-6 >= i.far_share * arrivals
    }
}

/// Towns for mobile units in an area, least served first: demand beyond the distance limit,
/// then demand per permanent station within 10 km.
fn mobile_towns(world: &World, spec: &PlanSpec, area: &Area) -> Vec<String> {
    let permanent: Vec<_> = world
        .sites
        .iter()
        .filter(|s| s.province == area.province && !s.is_mobile_leg)
        .collect();
    let mut towns: Vec<(String, f64, f64)> = Vec::new();
    for c in area.cells.iter().map(|&c| &world.cells[c]) {
        let nearest = permanent
            .iter()
            .map(|s| c.location.distance_km(s.location))
            .fold(f64::INFINITY, f64::min);
        let far = spec.max_distance_km.is_some_and(|max| nearest > max);
        let near_stations: f64 = permanent
            .iter()
            .filter(|s| c.location.distance_km(s.location) <= 10.0)
            .map(|s| f64::from(s.stations))
            .sum();
        let far_weight = if far { c.weight } else { 0.0 };
        let pressure = c.weight / (near_stations + 1.0);
        match towns.iter_mut().find(|t| t.0 == c.town) {
            Some(t) => {
                t.1 += far_weight;
                t.2 += pressure;
            }
            None => towns.push((c.town.clone(), far_weight, pressure)),
        }
    }
    towns.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    towns.into_iter().map(|t| t.0).collect()
}

/// The plan as a scenario overlay: `[[capacity_changes]]` that `nobat simulate --overlay`
/// lays over the scenario.
pub fn overlay_toml(plan: &Plan, scenario_name: &str) -> String {
    let mut out = format!(
        "# Capacity overlay written by `nobat plan` for scenario {scenario_name:?}.\n\
         # Target: every province enrolled within {} working days. Total cost {:.0}.\n\
         # Check it: nobat simulate SCENARIO --overlay THIS_FILE --out DIR\n",
        plan.target_wait_days,
        plan.total_cost()
    );
    for p in &plan.provinces {
        for (k, &n) in p.stations_by_block.iter().enumerate() {
            if n > 0 {
                let (a, b) = plan.blocks[k];
                out.push_str(&format!(
                    "\n[[capacity_changes]]\nkind = \"add_stations\"\nprovince = \"{}\"\ntown = \"{}\"\nstations = {n}\nfrom_day = {a}\nto_day = {b}\n",
                    p.slug, p.town
                ));
            }
        }
        for &d in &p.thursday_openings {
            out.push_str(&format!(
                "\n[[capacity_changes]]\nkind = \"thursday\"\nprovince = \"{}\"\ntown = \"{}\"\nrule = \"open\"\nfrom_day = {d}\nto_day = {d}\n",
                p.slug, p.town
            ));
        }
        for &d in &p.friday_openings {
            out.push_str(&format!(
                "\n[[capacity_changes]]\nkind = \"friday_opening\"\nprovince = \"{}\"\ntown = \"{}\"\nfrom_day = {d}\nto_day = {d}\n",
                p.slug, p.town
            ));
        }
        let mut unit = 0;
        for (k, &n) in p.mobile_units_by_block.iter().enumerate() {
            let (a, b) = plan.blocks[k];
            for i in 0..n as usize {
                unit += 1;
                let town = p
                    .mobile_towns
                    .get(i % p.mobile_towns.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                out.push_str(&format!(
                    "\n[[capacity_changes]]\nkind = \"mobile_unit\"\nid = \"{}-{unit}\"\nprovince = \"{}\"\nstations = {}\nschedule = [{{ town = \"{town}\", from_day = {a}, to_day = {b} }}]\n",
                    p.unit_prefix, p.slug, plan.mobile_unit_stations
                ));
            }
        }
    }
    out
}
