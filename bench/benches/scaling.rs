//! How the cost grows with stations and objects, in netz-core's network
//! simulator (`netz_core::cluster::Cluster`, 5 ms latency, no loss).
//!
//! - `tick_stations/N`: 1,000 units on one master change every field and
//!   are delivered to N - 1 duplica stations.
//! - `tick_objects/K`: K units change and reach 3 duplica stations.
//! - `idle_second/N`: one second of virtual time for N idle stations
//!   (heartbeats and failure detection only).
//!
//! Throughput counts field updates delivered (or, for `idle_second`,
//! stations).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netz_bench::classes::Motion;
use netz_bench::scaling::{cluster, drain, World};
use std::time::Duration;

fn tick_stations(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    g.sample_size(10);
    let objects = 1000;
    for n in [2usize, 4, 8, 16, 32, 64] {
        let mut w = World::new(n, objects);
        g.throughput(Throughput::Elements(
            (objects * (n - 1) * Motion::FIELDS) as u64,
        ));
        g.bench_function(BenchmarkId::new("tick_stations", n), |b| {
            b.iter(|| w.tick())
        });
    }
    g.finish();
}

fn tick_objects(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    g.sample_size(10);
    let stations = 4;
    for k in [1_000usize, 10_000, 100_000] {
        let mut w = World::new(stations, k);
        g.throughput(Throughput::Elements(
            (k * (stations - 1) * Motion::FIELDS) as u64,
        ));
        g.bench_function(BenchmarkId::new("tick_objects", k), |b| b.iter(|| w.tick()));
    }
    g.finish();
}

fn idle(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    g.sample_size(10);
    for n in [2usize, 8, 32, 64] {
        let mut cl = cluster(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("idle_second", n), |b| {
            b.iter(|| {
                cl.run_for(Duration::from_secs(1));
                drain(&mut cl);
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = tick_stations, tick_objects, idle
}
criterion_main!(benches);
