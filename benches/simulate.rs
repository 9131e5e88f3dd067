//! Simulator and planner throughput on mid-size scenarios (the national surge is measured
//! once with `/usr/bin/time -v`, see the README of scenarios/).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nobat::planning::plan;
use nobat::planning::scenario::Scenario;
use nobat::planning::sim::{self, SimOptions, World};

fn load(name: &str) -> Scenario {
    Scenario::load(format!("scenarios/{name}.toml")).expect("shipped scenario loads")
}

fn simulate(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/sim");
    group.sample_size(10);
    for name in ["thin-province", "deadline-rush"] {
        let scenario = load(name);
        let offices = scenario.generate_network();
        let world = World::build(&scenario, &offices, &sim::holidays_for(&scenario)).unwrap();
        let registrations: u64 = (0..world.horizon_days)
            .map(|d| world.arrivals(d).iter().sum::<u64>())
            .sum();
        group.throughput(Throughput::Elements(registrations));
        group.bench_with_input(BenchmarkId::new("run_world", name), &world, |b, world| {
            b.iter(|| {
                sim::run_world(world, &scenario, SimOptions::default(), &mut |_, _| {}).unwrap()
            })
        });
    }
    group.finish();
}

fn planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/plan");
    group.sample_size(10);
    let scenario = load("thin-province");
    let offices = scenario.generate_network();
    let world = World::build(&scenario, &offices, &sim::holidays_for(&scenario)).unwrap();
    group.bench_function(BenchmarkId::new("plan", "thin-province"), |b| {
        b.iter(|| plan::plan(&scenario, &world).unwrap())
    });
    group.finish();
}

criterion_group!(benches, simulate, planner);
criterion_main!(benches);
