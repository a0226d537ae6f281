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
use netz_bench::classes::{registry, Motion, Unit};
use netz_core::cluster::Cluster;
use netz_core::{DOHandle, ProcessType, Ref, StationConfig};
use std::time::Duration;

fn cluster(n: usize) -> Cluster {
    let configs = (0..n)
        .map(|i| StationConfig {
            seed: i as u64 + 1,
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect();
    Cluster::start(Default::default(), registry(), configs).expect("cluster starts")
}

fn drain(c: &mut Cluster) {
    for i in 0..c.addrs.len() {
        while c.station_mut(i).poll_event().is_some() {}
    }
}

fn applied(c: &Cluster) -> u64 {
    (1..c.addrs.len())
        .map(|i| c.station(i).stats().updates_applied)
        .sum()
}

struct World {
    c: Cluster,
    refs: Vec<Ref<Unit>>,
    handles: Vec<DOHandle>,
    tick: u32,
}

impl World {
    fn new(stations: usize, objects: usize) -> World {
        let mut c = cluster(stations);
        let mut refs = Vec::with_capacity(objects);
        for _ in 0..objects {
            let now = c.now();
            refs.push(
                c.station_mut(0)
                    .publish(now, Unit::default())
                    .expect("published"),
            );
        }
        let want = objects * (stations - 1);
        c.run_until(Duration::from_secs(600), |c| {
            (1..c.addrs.len())
                .map(|i| c.station(i).duplicas().len())
                .sum::<usize>()
                >= want
        });
        drain(&mut c);
        let handles = refs.iter().map(|r| r.handle()).collect();
        World {
            c,
            refs,
            handles,
            tick: 0,
        }
    }

    /// Changes every unit, sends the updates and runs until all arrived.
    fn tick(&mut self) {
        self.tick += 1;
        let tick = self.tick;
        for r in &self.refs {
            r.with(|u| u.motion.step(tick));
        }
        let before = applied(&self.c);
        let now = self.c.now();
        let st = self.c.station_mut(0);
        for h in &self.handles {
            st.update(now, *h).expect("update");
        }
        let want = before + (self.handles.len() * (self.c.addrs.len() - 1)) as u64;
        let done = self
            .c
            .run_until(Duration::from_secs(60), |c| applied(c) >= want);
        assert!(done, "every update was delivered");
        drain(&mut self.c);
    }
}

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
