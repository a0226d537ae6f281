//! Interest management: what a tick costs when a client holds only the
//! units near its player (spatial interest) and when every client holds
//! every unit (always relevant), on sans-IO stations wired in memory (see
//! `netz_bench::interest`).
//!
//! One server masters a square world of units spread uniformly; 1 % of
//! them walk every tick; every other station is a client whose area covers
//! 1 % of the world (enter radius; it leaves 10 % further out). A tick moves
//! the walkers, sends their updates and lets 50 ms of virtual time pass.
//!
//! - `interest/<policy>/<stations>x<objects>`: one tick of the whole
//!   session, for 8, 16, 32 and 64 stations at 100,000 units and for
//!   10,000, 30,000 and 100,000 units at 64 stations.
//!
//! Before each measurement the bench prints, for 20 ticks, the time the
//! server and a client spent per tick, the bytes the server sent and a
//! client received per tick, and the updates a client applied; after each
//! pair, the always-relevant cost over the spatial one.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use netz_bench::interest::{Policy, TickCost, World, WorldConfig};
use std::time::{Duration, Instant};

/// The worlds measured: stations and units.
const WORLDS: [(usize, usize); 6] = [
    (8, 100_000),
    (16, 100_000),
    (32, 100_000),
    (64, 100_000),
    (64, 10_000),
    (64, 30_000),
];

fn describe(cfg: &WorldConfig, cost: &TickCost) {
    eprintln!(
        "interest/{}/{}x{}: tick {:.3} ms ({:.1} µs per station; server {:.3} ms, a client {:.1} µs); \
         server sent {:.0} B, a client received {:.0} B and applied {:.1} updates; \
         {:.1} units entered or left a client",
        cfg.policy.name(),
        cfg.stations,
        cfg.objects,
        cost.tick_micros / 1e3,
        cost.per_station_micros(cfg.stations),
        cost.server_micros / 1e3,
        cost.client_micros,
        cost.server_bytes,
        cost.client_bytes,
        cost.client_updates,
        cost.interest_changes,
    );
}

fn ticks(c: &mut Criterion) {
    let mut g = c.benchmark_group("interest");
    g.sample_size(10);
    for (stations, objects) in WORLDS {
        let mut costs = Vec::new();
        for policy in [Policy::Spatial, Policy::Always] {
            let cfg = WorldConfig::new(stations, objects, policy);
            let start = Instant::now();
            let mut w = World::new(cfg);
            eprintln!(
                "interest/{}/{stations}x{objects}: built in {:.1} s",
                policy.name(),
                start.elapsed().as_secs_f64()
            );
            w.measure(3);
            let cost = w.measure(20);
            describe(&cfg, &cost);
            if policy == Policy::Always {
                // Every client applied every walker's update, every tick.
                assert_eq!(cost.client_updates, cfg.movers() as f64);
            } else {
                assert!(cost.client_updates < cfg.movers() as f64 / 10.0);
            }
            costs.push(cost);
            g.bench_function(
                BenchmarkId::new(policy.name(), format!("{stations}x{objects}")),
                |b| b.iter(|| w.tick()),
            );
        }
        let (s, a) = (&costs[0], &costs[1]);
        eprintln!(
            "interest/{stations}x{objects}: always / spatial = {:.1}× the CPU per tick, \
             {:.1}× the bytes per client",
            a.tick_micros / s.tick_micros,
            a.client_bytes / s.client_bytes
        );
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
    targets = ticks
}
criterion_main!(benches);
