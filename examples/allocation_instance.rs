//! Writes a synthetic national allocation instance as CSV for `nobat allocate`:
//! offices around the province capitals (in proportion to population), applicants on a 0.01°
//! grid, a horizon of days, seats about 1.1 × demand with some offices nearly closed.
//!
//! `cargo run --release --example allocation_instance -- OUT_DIR [APPLICANTS] [OFFICES] [DAYS] [SEED]
//! [earliest]`: with `earliest`, an `earliest_day` column where every third applicant names
//! one (1, 3, 7, 10, 14 in turn: the planning crate's earliest-day variant, issue 26).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use nobat::domain::province::Province;
use nobat::planning::allocator::synthetic::earliest_day_of;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; the synthetic data only needs a bell shape.
    let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).map_or("alloc-instance", |s| s.as_str()));
    let applicants: usize = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
    let offices: usize = args.get(3).map_or(Ok(2_200), |s| s.parse())?;
    let days: u32 = args.get(4).map_or(Ok(30), |s| s.parse())?;
    let seed: u64 = args.get(5).map_or(Ok(1), |s| s.parse())?;
    let earliest = match args.get(6).map(String::as_str) {
        None => false,
        Some("earliest") => true,
        Some(other) => anyhow::bail!("unknown variant {other:?} (expected `earliest`)"),
    };
    std::fs::create_dir_all(&out)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let provinces = Province::all();
    let population: f64 = provinces.iter().map(|p| p.population_2016 as f64).sum();
    let pick_province = |rng: &mut ChaCha8Rng| {
        let mut x = rng.gen_range(0.0..population);
        for p in provinces.iter() {
            x -= p.population_2016 as f64;
            if x < 0.0 {
                return p;
            }
        }
        provinces.last().expect("provinces")
    };
    let around = |rng: &mut ChaCha8Rng, lat: f64, lon: f64| {
        // Most people near the capital, the rest spread over the province.
        let sd = if rng.gen_bool(0.6) { 0.08 } else { 0.7 };
        (
            (lat + sd * gaussian(rng)).clamp(25.0, 39.7),
            (lon + sd * gaussian(rng)).clamp(44.0, 63.3),
        )
    };

    let mut office_rows = Vec::with_capacity(offices);
    let mut w = BufWriter::new(File::create(out.join("offices.csv"))?);
    writeln!(w, "office_id,lat,lon,province,stations,services")?;
    for i in 0..offices {
        let p = pick_province(&mut rng);
        let (lat, lon) = around(&mut rng, p.capital.lat, p.capital.lon);
        let services = if rng.gen_bool(0.15) {
            "first_issuance"
        } else {
            "first_issuance;replacement"
        };
        let stations = rng.gen_range(1..6);
        writeln!(
            w,
            "O{i:05},{lat:.5},{lon:.5},{},{stations},{services}",
            p.slug
        )?;
        office_rows.push(stations);
    }
    w.flush()?;

    // Seats: 1.1 × demand spread over offices by stations, days uneven, 5% nearly closed.
    let total_seats = applicants as f64 * 1.1;
    let station_sum: f64 = office_rows.iter().map(|&s| s as f64).sum();
    let mut w = BufWriter::new(File::create(out.join("capacity.csv"))?);
    writeln!(w, "office_id,day,seats")?;
    for (i, &stations) in office_rows.iter().enumerate() {
        let scale = if rng.gen_bool(0.05) { 0.05 } else { 1.0 };
        let per_day = total_seats * stations as f64 / station_sum / days as f64 * scale;
        for day in 0..days {
            let seats = (per_day * rng.gen_range(0.7..1.3)).round() as u32;
            writeln!(w, "O{i:05},{day},{seats}")?;
        }
    }
    w.flush()?;

    let mut w = BufWriter::new(File::create(out.join("applicants.csv"))?);
    writeln!(
        w,
        "applicant_id,lat,lon,province,priority,service,registered_at{}",
        if earliest { ",earliest_day" } else { "" }
    )?;
    for i in 0..applicants {
        let p = pick_province(&mut rng);
        let (lat, lon) = around(&mut rng, p.capital.lat, p.capital.lon);
        let priority = match rng.gen_range(0..100) {
            0..=1 => 2,
            2..=6 => 1,
            _ => 0,
        };
        let service = if rng.gen_bool(0.1) {
            "replacement"
        } else {
            "first_issuance"
        };
        let registered_at = 1_700_000_000 + rng.gen_range(0..86_400 * 3);
        write!(
            w,
            "A{i:07},{:.2},{:.2},{},{priority},{service},{registered_at}",
            lat, lon, p.slug
        )?;
        if earliest {
            match earliest_day_of(i) {
                Some(day) => write!(w, ",{day}")?,
                None => write!(w, ",")?,
            }
        }
        writeln!(w)?;
    }
    w.flush()?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
