//! Scenario generation: the national office network, citizen generation and registry lookups.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nobat::domain::registry::CivilRegistry;
use nobat::planning::scenario::{Scenario, SyntheticRegistry};

fn national() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/iran-national.toml");
    Scenario::load(path).expect("iran-national.toml loads")
}

fn network(c: &mut Criterion) {
    let scenario = national();
    let mut group = c.benchmark_group("scenario/network");
    group.throughput(Throughput::Elements(2_200));
    group.bench_function("iran_national", |b| b.iter(|| scenario.generate_network()));
    group.finish();
}

fn citizens(c: &mut Criterion) {
    let scenario = national();
    let generator = scenario.citizen_generator();
    let registry = SyntheticRegistry::from_scenario(&scenario);
    let mut group = c.benchmark_group("scenario/citizens");
    for n in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("generate", n), &n, |b, &n| {
            b.iter(|| generator.range(0, n).count())
        });
    }
    let codes: Vec<_> = generator.range(0, 1_000).map(|c| c.national_code).collect();
    group.throughput(Throughput::Elements(codes.len() as u64));
    group.bench_function("lookup/1000", |b| {
        b.iter(|| {
            codes
                .iter()
                .filter(|c| registry.lookup(c).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, network, citizens);
criterion_main!(benches);
