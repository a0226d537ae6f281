//! Criterion benches of the sans-IO core: the operation pipeline, RMC
//! dispatch and dataset updates, on stations wired in memory with no
//! latency (see `netz_bench::mesh`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netz_bench::classes::{registry, Motion, Unit};
use netz_bench::mesh::Mesh;
use netz_core::{OperationKind, Ref, RmcContext};
use std::hint::black_box;
use std::time::Duration;

/// A mesh of `n` stations with `objects` units published on station 0.
fn setup(n: usize, objects: usize) -> (Mesh, Vec<Ref<Unit>>) {
    let mut mesh = Mesh::new(n, registry());
    let refs = (0..objects)
        .map(|_| {
            mesh.with(0, |st, now| st.publish(now, Unit::default()))
                .expect("published")
        })
        .collect();
    mesh.settle();
    (mesh, refs)
}

/// One CallMethod operation on a local master: the whole pipeline (safety
/// checks, callbacks, OperationBegin/End, dispatch, reply) with no network.
fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for callbacks in [0usize, 8] {
        let (mut mesh, refs) = setup(1, 1);
        let h = refs[0].handle();
        mesh.with_quiet(0, |st, _| {
            for k in 0..callbacks {
                let priority = if k % 2 == 0 {
                    -10 - k as i32
                } else {
                    10 + k as i32
                };
                st.register_operation_callback(Some(OperationKind::CallMethod), priority, |op| {
                    black_box(op);
                })
                .expect("callback registered");
            }
        });
        let ctx: RmcContext<i32> = RmcContext::on_master();
        g.bench_function(BenchmarkId::new("local_rmc_callbacks", callbacks), |b| {
            b.iter(|| {
                mesh.with_quiet(0, |st, _| {
                    assert!(st.object::<Unit>(h).call_ping(&ctx, 7));
                    while st.poll_event().is_some() {}
                });
                black_box(ctx.result())
            })
        });
    }
    g.finish();
}

/// An RMC between two stations: encode, link, decode, dispatch, reply and
/// completion, with datagrams handed over in memory.
fn rmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("rmc");
    g.throughput(Throughput::Elements(1));
    let (mut mesh, refs) = setup(2, 1);
    let h = refs[0].handle();
    let ctx: RmcContext<i32> = RmcContext::on_master();
    g.bench_function("remote_roundtrip_sans_io", |b| {
        b.iter(|| {
            mesh.with(1, |st, _| st.object::<Unit>(h).call_ping(&ctx, 7));
            assert!(ctx.is_complete());
            black_box(ctx.result())
        })
    });
    g.finish();
}

/// Dataset updates: every field of `n` units changes, the master encodes the
/// deltas, and a duplica applies them. Throughput counts field updates.
fn dataset(c: &mut Criterion) {
    let mut g = c.benchmark_group("dataset");
    let n = 1000usize;
    g.throughput(Throughput::Elements((n * Motion::FIELDS) as u64));

    let (mut mesh, refs) = setup(2, n);
    let handles: Vec<_> = refs.iter().map(|r| r.handle()).collect();
    let mut tick = 0u32;
    let step = |mesh: &mut Mesh, tick: u32| {
        for r in &refs {
            r.with(|u| u.motion.step(tick));
        }
        mesh.with(0, |st, now| {
            for h in &handles {
                st.update(now, *h).expect("update");
            }
        });
    };
    let applied = mesh.station(1).stats().updates_applied;
    tick += 1;
    step(&mut mesh, tick);
    assert_eq!(
        mesh.station(1).stats().updates_applied - applied,
        n as u64,
        "the duplica applied every update"
    );
    g.bench_function(BenchmarkId::new("encode_apply", n), |b| {
        b.iter(|| {
            tick += 1;
            step(&mut mesh, tick);
        })
    });

    let (mut alone, refs) = setup(1, n);
    let handles: Vec<_> = refs.iter().map(|r| r.handle()).collect();
    g.bench_function(BenchmarkId::new("encode_only", n), |b| {
        b.iter(|| {
            tick += 1;
            for r in &refs {
                r.with(|u| u.motion.step(tick));
            }
            alone.with_quiet(0, |st, now| {
                for h in &handles {
                    black_box(st.update(now, *h).expect("update"));
                }
            });
        })
    });
    g.bench_function(BenchmarkId::new("scan_unchanged", n), |b| {
        b.iter(|| alone.with_quiet(0, |st, now| black_box(st.update_all(now))))
    });
    g.finish();
}

/// What a station pays to find out it has nothing to send or do, by the
/// number of stations in the session: drivers and the simulator call
/// `poll_transmit` until it returns `None`, and `poll_timeout`, after every
/// input.
fn idle_polls(c: &mut Criterion) {
    let mut g = c.benchmark_group("idle");
    for n in [2usize, 8, 32, 64] {
        let mut mesh = Mesh::new(n, registry());
        mesh.settle();
        g.bench_function(BenchmarkId::new("poll_transmit_none", n), |b| {
            b.iter(|| mesh.with_quiet(0, |st, now| black_box(st.poll_transmit(now))))
        });
        g.bench_function(BenchmarkId::new("poll_timeout", n), |b| {
            b.iter(|| mesh.with_quiet(0, |st, _| black_box(st.poll_timeout())))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = pipeline, rmc, dataset, idle_polls
}
criterion_main!(benches);
