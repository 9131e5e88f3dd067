//! Reports of simulations and plans: a JSON summary, CSV time series and a self-contained
//! HTML page with inline SVG charts (no scripts, no network). The builders are pure (they
//! return strings and values); [`write_simulation`] and [`write_plan`] put them in a directory.

mod compare;
pub mod svg;
pub mod tables;

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::scenario::Scenario;
use crate::sim::{SimOutput, State, World, DISTANCE_BANDS_KM};
pub use compare::{comparison_html, PolicyRun};
use nobat_domain::JalaliDate;
use svg::{bar_chart, column_chart, escape, line_chart, short_number, Series};

fn jalali(world: &World, day: u32) -> String {
    JalaliDate::from_gregorian(world.date(day)).to_string()
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The JSON summary of a run: totals, waits, distance shares, fairness and per province.
pub fn simulation_summary(scenario: &Scenario, world: &World, out: &SimOutput) -> Value {
    let last = out.days.last().cloned().unwrap_or_default();
    let sum = |f: fn(&crate::sim::DayRecord) -> u64| out.days.iter().map(f).sum::<u64>();
    let enrolled = sum(|d| d.enrolled_today);
    let seats = sum(|d| d.enrol_seats_today);
    let national = out.national_wait_histogram();
    let target = scenario.plan.as_ref().map(|p| p.target_wait_days_p95);
    let bands = out.distance_bands;
    let band_total: u64 = bands.iter().sum();
    let provinces: Vec<Value> = out
        .provinces
        .iter()
        .map(|p| {
            let p95 = p.wait_percentile(0.95);
            json!({
                "slug": p.slug,
                "name": p.name_en,
                "registered": p.registered,
                "enrolled": p.enrolled,
                "backlog_end": p.backlog_daily.last().copied().unwrap_or(0),
                "wait_days_p50": p.wait_percentile(0.5),
                "wait_days_p95": p95,
                "wait_days_mean": p.wait_mean().map(round3),
                "utilisation": round3(share(p.enrolled, p.enrol_seats)),
                "enrol_seats": p.enrol_seats,
                "no_shows": p.no_shows,
                "meets_target": target.map(|t| p95.is_none_or(|w| w <= t)),
            })
        })
        .collect();
    let p95s: Vec<(u32, &str)> = out
        .provinces
        .iter()
        .filter_map(|p| p.wait_percentile(0.95).map(|w| (w, p.slug.as_str())))
        .collect();
    let worst = p95s.iter().max_by_key(|(w, _)| *w);
    let best = p95s.iter().min_by_key(|(w, _)| *w);
    json!({
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "seed": scenario.seed,
            "start_date": scenario.calendar.start_date.to_string(),
            "start_date_jalali": jalali(world, 0),
            "horizon_days": scenario.calendar.horizon_days,
            "policy": scenario.policy.kind.as_str(),
            "offices": world.sites.iter().filter(|s| !s.is_mobile_leg).count(),
            "mobile_legs": world.sites.iter().filter(|s| s.is_mobile_leg).count(),
            "demand_cells": world.cells.len(),
            "capacity_changes": scenario.capacity_changes.len(),
        },
        "totals": {
            "registered": last.registered_total,
            "enrolled": enrolled,
            "no_shows": sum(|d| d.no_shows_today),
            "cancellations": sum(|d| d.cancellations_today),
            "reschedules": sum(|d| d.reschedules_today),
            "pickups": sum(|d| d.pickups_today),
            "pickup_visits": sum(|d| d.pickup_visits_today),
            "enrol_seats": seats,
            "utilisation": round3(share(enrolled, seats)),
            "backlog_end": last.backlog(),
            "states_end": State::ALL.iter().map(|s| (s.as_str().to_string(), json!(last.count(*s)))).collect::<serde_json::Map<_, _>>(),
        },
        "wait_days": {
            "p50": crate::sim::percentile(&national, 0.5),
            "p95": crate::sim::percentile(&national, 0.95),
            "target_p95": target,
        },
        "distance_shares": {
            "within_10_km": round3(share(bands[0], band_total)),
            "within_25_km": round3(share(bands[0] + bands[1], band_total)),
            "within_50_km": round3(share(bands[0] + bands[1] + bands[2], band_total)),
            "beyond_50_km": round3(share(bands[3], band_total)),
        },
        "fairness": {
            "jain_index_mean_wait": out.fairness_jain().map(round3),
            "wait_days_p95_max": worst.map(|w| w.0),
            "worst_province": worst.map(|w| w.1),
            "wait_days_p95_min": best.map(|w| w.0),
            "provinces_over_target": target.map(|t| p95s.iter().filter(|(w, _)| *w > t).count()),
        },
        "provinces": provinces,
    })
}

/// `daily.csv` as a string (see [`tables::write_daily`]).
pub fn daily_csv(world: &World, out: &SimOutput) -> String {
    tables::in_memory(|w| tables::write_daily(w, world, out))
}

/// `provinces_daily.csv` as a string (see [`tables::write_provinces_daily`]).
pub fn provinces_daily_csv(world: &World, out: &SimOutput) -> String {
    tables::in_memory(|w| tables::write_provinces_daily(w, world, out))
}

/// `offices.csv` as a string (see [`tables::write_offices`]).
pub fn offices_csv(out: &SimOutput) -> String {
    tables::in_memory(|w| tables::write_offices(w, out))
}

const STYLE: &str = r#"body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Vazirmatn",sans-serif;margin:24px auto;max-width:1000px;color:#222;background:#fff}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:0}.figures{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.figure{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}.figure b{display:block;font-size:22px}
.figure span{color:#666;font-size:13px}svg.chart{width:100%;height:auto;display:block;margin:8px 0}
svg .title{font-size:15px;font-weight:600;fill:#222}svg .tick{font-size:11px;fill:#555}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}.bad{color:#b00020;font-weight:600}.ok{color:#00703c}
p.note{color:#555;font-size:13px}"#;

fn figure(value: &str, label: &str) -> String {
    format!(
        r#"<div class="figure"><b>{}</b><span>{}</span></div>"#,
        escape(value),
        escape(label)
    )
}

/// The HTML report of a run: a page a planner opens in a browser, with every chart inline.
pub fn simulation_html(scenario: &Scenario, world: &World, out: &SimOutput) -> String {
    let page = SimulationPage {
        scenario,
        world,
        out,
        summary: simulation_summary(scenario, world, out),
        labels: (0..out.days.len() as u32)
            .map(|d| {
                let j = JalaliDate::from_gregorian(world.date(d));
                format!("{:02}/{:02}", j.month(), j.day())
            })
            .collect(),
        target: scenario.plan.as_ref().map(|p| p.target_wait_days_p95),
    };
    let mut html = String::new();
    page.head(&mut html);
    page.backlog(&mut html);
    page.waits(&mut html);
    page.utilisation(&mut html);
    page.distance(&mut html);
    page.no_shows_and_pickups(&mut html);
    page.fairness(&mut html);
    html.push_str(r#"<p class="note">Generated by nobat simulate. Every figure comes from a deterministic run: the same scenario file and seed give the same report.</p></body></html>"#);
    html
}

/// What the sections of the simulation report share: the run, its JSON summary (the
/// figures are read from it, so the page and `summary.json` cannot disagree), the day
/// labels of the time axes and the p95 wait target.
struct SimulationPage<'a> {
    scenario: &'a Scenario,
    world: &'a World,
    out: &'a SimOutput,
    summary: Value,
    labels: Vec<String>,
    target: Option<u32>,
}

fn num(v: &Value) -> String {
    short_number(v.as_f64().unwrap_or(0.0))
}

fn pct(v: &Value) -> String {
    format!("{:.1}%", v.as_f64().unwrap_or(0.0) * 100.0)
}

fn opt_days(v: &Value) -> String {
    v.as_u64().map_or("–".to_string(), |d| format!("{d} days"))
}

/// Provinces by p95 wait, longest first (then by slug).
fn by_p95_wait(
    a: &crate::sim::ProvinceResult,
    b: &crate::sim::ProvinceResult,
) -> std::cmp::Ordering {
    b.wait_percentile(0.95)
        .cmp(&a.wait_percentile(0.95))
        .then(a.slug.cmp(&b.slug))
}

impl SimulationPage<'_> {
    /// A national daily series as chart values.
    fn col(&self, g: fn(&crate::sim::DayRecord) -> u64) -> Vec<f64> {
        self.out.days.iter().map(|d| g(d) as f64).collect()
    }

    /// A line chart over the days.
    fn daily_chart(&self, id: &str, title: &str, unit: &str, series: &[Series<'_>]) -> String {
        line_chart(id, title, unit, &self.labels, series, None)
    }

    /// The document head, the title line and the headline figures.
    fn head(&self, html: &mut String) {
        let scenario = self.scenario;
        let summary = &self.summary;
        let _ = write!(
            html,
            r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nobat simulation: {name}</title><style>{STYLE}</style></head><body>"#,
            name = escape(&scenario.name)
        );
        let _ = write!(
            html,
            r#"<h1>Simulation: {}</h1><p class="sub">{} · {} days from {} ({}) · seed {} · {} offices{}</p>"#,
            escape(&scenario.name),
            escape(&scenario.description),
            scenario.calendar.horizon_days,
            scenario.calendar.start_date,
            jalali(self.world, 0),
            scenario.seed,
            summary["scenario"]["offices"],
            if scenario.capacity_changes.is_empty() {
                String::new()
            } else {
                format!(" · {} capacity changes", scenario.capacity_changes.len())
            }
        );
        let t = &summary["totals"];
        html.push_str(r#"<div class="figures">"#);
        html.push_str(&figure(&num(&t["registered"]), "registered"));
        html.push_str(&figure(&num(&t["enrolled"]), "enrolled"));
        html.push_str(&figure(&num(&t["backlog_end"]), "backlog at the end"));
        html.push_str(&figure(
            &opt_days(&summary["wait_days"]["p50"]),
            "median wait (working days)",
        ));
        html.push_str(&figure(
            &opt_days(&summary["wait_days"]["p95"]),
            "p95 wait (working days)",
        ));
        html.push_str(&figure(&pct(&t["utilisation"]), "seat utilisation"));
        html.push_str(&figure(&num(&t["no_shows"]), "no-shows (seats lost)"));
        html.push_str(&figure(
            &pct(&summary["distance_shares"]["within_25_km"]),
            "enrolled within 25 km",
        ));
        html.push_str("</div>");
    }

    /// The national backlog and that of the six provinces that wait longest.
    fn backlog(&self, html: &mut String) {
        html.push_str("<h2>Backlog</h2>");
        let waiting = self.col(|d| d.count(State::Waiting));
        let booked = self.col(|d| d.count(State::Booked));
        let backlog = self.col(|d| d.backlog());
        let registered = self.col(|d| d.registered_today);
        html.push_str(&self.daily_chart(
            "chart-backlog",
            "Backlog per day: registered, not yet enrolled",
            "applicants",
            &[
                Series {
                    name: "backlog",
                    values: &backlog,
                },
                Series {
                    name: "waiting for a slot",
                    values: &waiting,
                },
                Series {
                    name: "booked",
                    values: &booked,
                },
                Series {
                    name: "registered that day",
                    values: &registered,
                },
            ],
        ));
        let mut worst: Vec<&crate::sim::ProvinceResult> = self.out.provinces.iter().collect();
        worst.sort_by(|a, b| by_p95_wait(a, b));
        let top: Vec<Vec<f64>> = worst
            .iter()
            .take(6)
            .map(|p| p.backlog_daily.iter().map(|&v| v as f64).collect())
            .collect();
        let series: Vec<Series<'_>> = worst
            .iter()
            .take(6)
            .zip(&top)
            .map(|(p, v)| Series {
                name: &p.name_en,
                values: v,
            })
            .collect();
        html.push_str(&self.daily_chart(
            "chart-backlog-provinces",
            "Backlog of the six provinces with the longest p95 wait",
            "applicants",
            &series,
        ));
    }

    /// p50 and p95 waits by province, against the target.
    fn waits(&self, html: &mut String) {
        html.push_str("<h2>Wait from registration to enrolment</h2>");
        let mut by_p95 = self.out.provinces.clone();
        by_p95.sort_by(by_p95_wait);
        let names: Vec<String> = by_p95.iter().map(|p| p.name_en.clone()).collect();
        let p50: Vec<f64> = by_p95
            .iter()
            .map(|p| f64::from(p.wait_percentile(0.5).unwrap_or(0)))
            .collect();
        let p95: Vec<f64> = by_p95
            .iter()
            .map(|p| f64::from(p.wait_percentile(0.95).unwrap_or(0)))
            .collect();
        let target_label = self.target.map(|t| format!("target {t}"));
        html.push_str(&bar_chart(
            "chart-waits",
            "Wait by province, working days (enrolled applicants)",
            "working days",
            &names,
            &["p50", "p95"],
            &[p50, p95],
            self.target
                .zip(target_label.as_deref())
                .map(|(t, l)| (f64::from(t), l)),
        ));
        html.push_str(r#"<p class="note">Waits count working days after the registration day up to the enrolment day. Applicants still waiting at the end are not in these figures; the backlog charts show them.</p>"#);
    }

    /// Offices by share of seats used, and seats against enrolments per day.
    fn utilisation(&self, html: &mut String) {
        html.push_str("<h2>Office utilisation</h2>");
        let mut bins = [0f64; 11];
        for s in self.out.sites.iter().filter(|s| s.enrol_seats > 0) {
            let b = ((s.utilisation() * 10.0).floor() as usize).min(10);
            bins[b] += 1.0;
        }
        let bin_labels: Vec<String> = (0..11)
            .map(|b| {
                if b == 10 {
                    "100%".to_string()
                } else {
                    format!("{}–{}%", b * 10, b * 10 + 10)
                }
            })
            .collect();
        html.push_str(&column_chart(
            "chart-utilisation",
            "Offices by share of enrolment seats used over the horizon",
            "offices",
            &bin_labels,
            &bins,
        ));
        let seats_daily = self.col(|d| d.enrol_seats_today);
        let enrolled_daily = self.col(|d| d.enrolled_today);
        html.push_str(&self.daily_chart(
            "chart-seats",
            "Enrolment seats and enrolments per day",
            "per day",
            &[
                Series {
                    name: "enrolment seats",
                    values: &seats_daily,
                },
                Series {
                    name: "enrolled",
                    values: &enrolled_daily,
                },
            ],
        ));
    }

    /// Shares of enrolled applicants by distance band (cumulative up to the last band).
    fn distance(&self, html: &mut String) {
        html.push_str("<h2>Distance travelled</h2>");
        let bands = self.out.distance_bands;
        let total: u64 = bands.iter().sum();
        let cumulative = [
            bands[0],
            bands[0] + bands[1],
            bands[0] + bands[1] + bands[2],
        ];
        let band_labels: Vec<String> = DISTANCE_BANDS_KM
            .iter()
            .map(|km| format!("within {km} km"))
            .chain(std::iter::once(format!(
                "beyond {} km",
                DISTANCE_BANDS_KM[2]
            )))
            .collect();
        let band_values: Vec<f64> = cumulative
            .iter()
            .chain(std::iter::once(&bands[3]))
            .map(|&v| 100.0 * share(v, total))
            .collect();
        html.push_str(&column_chart(
            "chart-distance",
            "Share of enrolled applicants by distance to their office (%)",
            "% of enrolled",
            &band_labels,
            &band_values,
        ));
    }

    /// Seats lost and bookings changed per day; the pickup load.
    fn no_shows_and_pickups(&self, html: &mut String) {
        html.push_str("<h2>No-shows and cancellations</h2>");
        let no_shows = self.col(|d| d.no_shows_today);
        let cancels = self.col(|d| d.cancellations_today);
        let rescheds = self.col(|d| d.reschedules_today);
        html.push_str(&self.daily_chart(
            "chart-no-shows",
            "Seats lost to no-shows, and bookings cancelled or moved, per day",
            "per day",
            &[
                Series {
                    name: "no-shows (seat lost)",
                    values: &no_shows,
                },
                Series {
                    name: "cancelled",
                    values: &cancels,
                },
                Series {
                    name: "rescheduled",
                    values: &rescheds,
                },
            ],
        ));
        html.push_str("<h2>Card pickups</h2>");
        let pickups = self.col(|d| d.pickups_today);
        let pickup_cap = self.col(|d| d.pickup_visits_today);
        let awaiting = self.col(|d| d.count(State::AwaitingPickup));
        html.push_str(&self.daily_chart(
            "chart-pickups",
            "Pickup load: visits served, pickup capacity and cards waiting",
            "per day",
            &[
                Series {
                    name: "pickups served",
                    values: &pickups,
                },
                Series {
                    name: "pickup capacity",
                    values: &pickup_cap,
                },
                Series {
                    name: "cards awaiting pickup",
                    values: &awaiting,
                },
            ],
        ));
    }

    /// Jain's index, the extremes and a table of every province.
    fn fairness(&self, html: &mut String) {
        html.push_str("<h2>Fairness across provinces</h2>");
        let fair = &self.summary["fairness"];
        let _ = write!(
            html,
            r#"<p>Jain's index of the provinces' mean waits: <b>{}</b> (1 = every province waits alike). Longest p95: <b>{}</b> ({}); shortest: <b>{}</b>.{}</p>"#,
            fair["jain_index_mean_wait"]
                .as_f64()
                .map_or("–".into(), |v| format!("{v:.3}")),
            opt_days(&fair["wait_days_p95_max"]),
            escape(fair["worst_province"].as_str().unwrap_or("–")),
            opt_days(&fair["wait_days_p95_min"]),
            fair["provinces_over_target"]
                .as_u64()
                .map(|n| format!(" Provinces over the target: <b>{n}</b>."))
                .unwrap_or_default()
        );
        html.push_str("<table><tr><th>province</th><th>registered</th><th>enrolled</th><th>backlog at end</th><th>p50</th><th>p95</th><th>utilisation</th><th>no-shows</th></tr>");
        for p in self.summary["provinces"].as_array().into_iter().flatten() {
            let p95 = p["wait_days_p95"].as_u64();
            let class = match (self.target, p95) {
                (Some(t), Some(w)) if w > u64::from(t) => "bad",
                (Some(_), _) => "ok",
                _ => "",
            };
            let _ = write!(
                html,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{class}">{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(p["name"].as_str().unwrap_or("")),
                num(&p["registered"]),
                num(&p["enrolled"]),
                num(&p["backlog_end"]),
                p["wait_days_p50"]
                    .as_u64()
                    .map_or("–".into(), |v| v.to_string()),
                p95.map_or("–".into(), |v| v.to_string()),
                pct(&p["utilisation"]),
                num(&p["no_shows"]),
            );
        }
        html.push_str("</table>");
    }
}

/// Writes `summary.json`, `daily.csv`, `provinces_daily.csv`, `offices.csv` and
/// `report.html` into `dir` (created if missing).
pub fn write_simulation(
    dir: &Path,
    scenario: &Scenario,
    world: &World,
    out: &SimOutput,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let summary = simulation_summary(scenario, world, out);
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)? + "\n",
    )?;
    let create = |name: &str| std::fs::File::create(dir.join(name)).map(std::io::BufWriter::new);
    tables::write_daily(create("daily.csv")?, world, out)?;
    tables::write_provinces_daily(create("provinces_daily.csv")?, world, out)?;
    tables::write_offices(create("offices.csv")?, out)?;
    std::fs::write(
        dir.join("report.html"),
        simulation_html(scenario, world, out),
    )?;
    Ok(())
}

/// The plan as text a person reads: per province what to add, when, and at what cost.
pub fn plan_text(plan: &crate::plan::Plan, world: &World) -> String {
    let mut s = String::new();
    let date = |d: u32| {
        let j = JalaliDate::from_gregorian(world.date(d));
        format!("{} ({})", j, world.date(d))
    };
    let _ = writeln!(
        s,
        "Capacity plan: every province enrolled within {} working days of registering.",
        plan.target_wait_days
    );
    let _ = writeln!(
        s,
        "Total cost: {:.0}. {}",
        plan.total_cost(),
        if plan.feasible() {
            "The target is met in every province.".to_string()
        } else {
            let n = plan.provinces.iter().filter(|p| !p.feasible).count();
            format!("The target CANNOT be met in {n} province(s) within the limits (below).")
        }
    );
    let _ = writeln!(s);
    for p in &plan.provinces {
        let nothing = p.stations_by_block.iter().all(|&n| n == 0)
            && p.mobile_units_by_block.iter().all(|&n| n == 0)
            && p.thursday_openings.is_empty()
            && p.friday_openings.is_empty();
        if nothing && p.feasible {
            continue;
        }
        let _ = writeln!(
            s,
            "{}, {} area ({} offices, {} stations, {} registrations): cost {:.0}",
            p.name_en, p.town, p.offices, p.stations, p.registered, p.cost
        );
        for (k, &n) in p.stations_by_block.iter().enumerate() {
            if n > 0 {
                let (a, b) = plan.blocks[k];
                let _ = writeln!(s, "  + {n} stations from {} to {}", date(a), date(b));
            }
        }
        for (k, &n) in p.mobile_units_by_block.iter().enumerate() {
            if n > 0 {
                let (a, b) = plan.blocks[k];
                let towns: Vec<&str> = p
                    .mobile_towns
                    .iter()
                    .cycle()
                    .take(n as usize)
                    .map(String::as_str)
                    .collect();
                let _ = writeln!(
                    s,
                    "  + {n} mobile units ({} stations each) from {} to {} in {}",
                    plan.mobile_unit_stations,
                    date(a),
                    date(b),
                    towns.join(", ")
                );
            }
        }
        if !p.thursday_openings.is_empty() {
            let days: Vec<String> = p.thursday_openings.iter().map(|&d| date(d)).collect();
            let _ = writeln!(
                s,
                "  + full-day Thursdays at every office: {}",
                days.join(", ")
            );
        }
        if !p.friday_openings.is_empty() {
            let days: Vec<String> = p.friday_openings.iter().map(|&d| date(d)).collect();
            let _ = writeln!(
                s,
                "  + Friday openings at every office: {}",
                days.join(", ")
            );
        }
        if p.far_demand_share > 0.0 {
            let _ = writeln!(
                s,
                "  {:.1}% of registrations live beyond the distance limit from every office",
                p.far_demand_share * 100.0
            );
        }
        if !p.feasible {
            let _ = writeln!(
                s,
                "  INFEASIBLE: even with every addition at its limit, up to {} applicants are late{}",
                p.late_applicants_max,
                match p.best_reachable_wait_days {
                    Some(n) => format!("; the shortest reachable wait is {n} working days"),
                    None => "; no wait within the horizon is reachable".to_string(),
                }
            );
        }
    }
    s
}

/// The plan as JSON.
pub fn plan_json(plan: &crate::plan::Plan) -> Value {
    json!({
        "target_wait_days": plan.target_wait_days,
        "feasible": plan.feasible(),
        "total_cost": round3(plan.total_cost()),
        "blocks": plan.blocks.iter().map(|(a, b)| json!({"from_day": a, "to_day": b})).collect::<Vec<_>>(),
        "provinces": plan.provinces.iter().map(|p| json!({
            "slug": p.slug,
            "name": p.name_en,
            "town": p.town,
            "offices": p.offices,
            "stations": p.stations,
            "registered": p.registered,
            "feasible": p.feasible,
            "cost": round3(p.cost),
            "stations_by_block": p.stations_by_block,
            "mobile_units_by_block": p.mobile_units_by_block,
            "thursday_openings": p.thursday_openings,
            "friday_openings": p.friday_openings,
            "late_applicants_max": p.late_applicants_max,
            "best_reachable_wait_days": p.best_reachable_wait_days,
            "far_demand_share": round3(p.far_demand_share),
            "mobile_towns": p.mobile_towns.iter().take(5).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A small HTML page of the plan (its text, and the added stations per province as bars).
pub fn plan_html(plan: &crate::plan::Plan, world: &World, scenario: &Scenario) -> String {
    let mut html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nobat plan: {n}</title><style>{STYLE}</style></head><body><h1>Capacity plan: {n}</h1>"#,
        n = escape(&scenario.name)
    );
    let rows: Vec<&crate::plan::ProvincePlan> = plan
        .provinces
        .iter()
        .filter(|p| p.cost > 0.0 || !p.feasible)
        .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|p| format!("{}, {}", p.town, p.name_en))
        .collect();
    let stations: Vec<f64> = rows
        .iter()
        .map(|p| f64::from(p.stations_by_block.iter().copied().max().unwrap_or(0)))
        .collect();
    let units: Vec<f64> = rows
        .iter()
        .map(|p| f64::from(p.mobile_units_by_block.iter().copied().max().unwrap_or(0)))
        .collect();
    let openings: Vec<f64> = rows
        .iter()
        .map(|p| (p.thursday_openings.len() + p.friday_openings.len()) as f64)
        .collect();
    if !rows.is_empty() {
        html.push_str(&bar_chart(
            "chart-plan",
            "Additions by area (most in any block)",
            "count",
            &labels,
            &["stations", "mobile units", "extra opening days"],
            &[stations, units, openings],
            None,
        ));
    }
    html.push_str("<pre>");
    html.push_str(&escape(&plan_text(plan, world)));
    html.push_str("</pre></body></html>");
    html
}

/// Writes `plan.txt`, `plan.json`, `plan.html` and `overlay.toml` into `dir`.
pub fn write_plan(
    dir: &Path,
    scenario: &Scenario,
    world: &World,
    plan: &crate::plan::Plan,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("plan.txt"), plan_text(plan, world))?;
    std::fs::write(
        dir.join("plan.json"),
        serde_json::to_string_pretty(&plan_json(plan)).map_err(std::io::Error::other)? + "\n",
    )?;
    std::fs::write(dir.join("plan.html"), plan_html(plan, world, scenario))?;
    std::fs::write(
        dir.join("overlay.toml"),
        crate::plan::overlay_toml(plan, &scenario.name),
    )?;
    Ok(())
}
