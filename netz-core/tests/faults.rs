//! Five stations on a lossy, duplicating, reordering network: convergence,
//! ordering, determinism, and the loss of the session master.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::{Rng, SimConfig};
use netz_core::*;
use std::time::Duration;

fn lossy(seed: u64) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(5),
        loss: 0.10,
        duplicate: 0.05,
        reorder: 0.10,
        ..SimConfig::seeded(seed)
    }
}

struct Run {
    cluster: Cluster,
    /// Per station: (handle, recovering) of its masters.
    objects: Vec<Vec<(DOHandle, bool)>>,
    trace: Vec<String>,
}

const ROUNDS: i64 = 40;

fn run(seed: u64) -> Run {
    let mut cfgs = vec![StationConfig::new(ProcessType::Server, "s")];
    for i in 1..5 {
        cfgs.push(StationConfig::new(ProcessType::Client, format!("c{i}")));
    }
    let mut c = Cluster::start(lossy(seed), registry(), cfgs).unwrap();
    let mut objects = Vec::new();
    for i in 0..5 {
        let now = c.now();
        let a = c
            .station_mut(i)
            .publish(now, Counter::recovering(true))
            .unwrap()
            .handle();
        let b = c
            .station_mut(i)
            .publish(now, Counter::recovering(false))
            .unwrap()
            .handle();
        objects.push(vec![(a, true), (b, false)]);
    }
    c.run_for(Duration::from_millis(500));
    let mut rng = Rng::new(seed);
    let mut calls = Vec::new();
    for round in 1..=ROUNDS {
        for i in 0..5 {
            for &(h, _) in &objects[i] {
                let r = c.station(i).get::<Counter>(h).unwrap();
                r.lock().data.value += rng.gen_range(1..100i64);
                let now = c.now();
                c.station_mut(i).update(now, h).unwrap();
                // Actions are sequenced: duplicas must see 1, 2, 3... exactly once.
                assert!(c
                    .station_mut(i)
                    .object::<Counter>(h)
                    .action_on_duplicas(BUMP, &(round,)));
            }
            // An RMC with a return value to another station's object, on sub-stream 2.
            let j = (i + 1 + rng.below(4) as usize) % 5;
            let target = objects[j][0].0;
            let ctx: RmcContext<i64> = RmcContext::on_master();
            ctx.set_sub_stream_id(2);
            assert!(c
                .station_mut(i)
                .object::<Counter>(target)
                .call(&ctx, GET, &()));
            calls.push(ctx);
        }
        c.run_for(Duration::from_millis(20));
    }
    assert!(c.run_until(Duration::from_secs(10), |_| calls
        .iter()
        .all(|x| x.is_complete())));
    assert!(
        calls.iter().all(|x| x.outcome() == Outcome::Success),
        "every RMC completed despite the losses"
    );
    c.run_for(Duration::from_secs(1));
    let mut trace = Vec::new();
    for i in 0..5 {
        for e in c.events(i) {
            trace.push(format!("{i} {e:?}"));
        }
        for h in c.station(i).objects() {
            if let Some(r) = c.station(i).get::<Counter>(h) {
                let x = r.lock();
                trace.push(format!("{i} {h:?} {} {}", x.data.value, x.bumps));
            }
        }
    }
    trace.push(format!("{:?}", c.sim.stats()));
    Run {
        cluster: c,
        objects,
        trace,
    }
}

fn assert_converged(c: &Cluster, stations: &[usize]) {
    for &i in stations {
        for h in c.station(i).objects() {
            let Some(r) = c.station(i).get::<Counter>(h) else {
                continue;
            };
            if r.is_master() {
                continue;
            }
            let master = c.station(i).master_of(h).unwrap();
            let mi = stations
                .iter()
                .copied()
                .find(|&k| c.station(k).id() == master)
                .expect("master is live");
            let m = c.station(mi).get::<Counter>(h).unwrap();
            assert!(m.is_master());
            assert_eq!(
                r.lock().data.value,
                m.lock().data.value,
                "{h:?} on station {i}"
            );
        }
    }
}

#[test]
fn five_lossy_stations_converge_in_order_and_deterministically() {
    let a = run(42);
    let c = &a.cluster;
    assert!(
        c.sim.stats().lost > 0 && c.sim.stats().duplicated > 0 && c.sim.stats().reordered > 0,
        "{:?}",
        c.sim.stats()
    );
    assert_converged(c, &[0, 1, 2, 3, 4]);
    for i in 0..5 {
        for j in 0..5 {
            for &(h, _) in &a.objects[j] {
                let r = c
                    .station(i)
                    .get::<Counter>(h)
                    .expect("every station has every object");
                if i != j {
                    assert_eq!(
                        r.lock().seen,
                        (1..=ROUNDS).collect::<Vec<_>>(),
                        "no loss, duplication or reordering"
                    );
                }
            }
        }
    }
    let b = run(42);
    assert_eq!(a.trace, b.trace, "the same seed gives the same trace");
    let d = run(43);
    assert_ne!(a.trace, d.trace);
}

#[test]
fn killing_the_session_master_elects_the_lowest_survivor_and_recovers() {
    let mut a = run(7);
    let c = &mut a.cluster;
    let values: Vec<i64> = a.objects[0]
        .iter()
        .map(|(h, _)| c.station(0).get::<Counter>(*h).unwrap().lock().data.value)
        .collect();
    c.crash(0);
    c.run_for(Duration::from_secs(5));
    let live = [1, 2, 3, 4];
    for &i in &live {
        let st = c.station(i);
        assert_eq!(st.session_master(), StationId(2), "station {i}");
        assert_eq!(st.stations().len(), 4, "station {i}: {:?}", st.stations());
        for (k, &(h, recovering)) in a.objects[0].iter().enumerate() {
            if recovering {
                assert_eq!(
                    st.master_of(h),
                    Some(StationId(2)),
                    "{h:?} recovered by the new session master"
                );
                assert_eq!(
                    st.get::<Counter>(h).unwrap().lock().data.value,
                    values[k],
                    "last acknowledged state"
                );
            } else {
                assert!(!st.contains(h), "{h:?} removed");
            }
        }
    }
    assert!(c
        .station(1)
        .get::<Counter>(a.objects[0][0].0)
        .unwrap()
        .is_master());
    assert_converged(c, &live);
    // The new master's objects keep replicating.
    let h = a.objects[0][0].0;
    let r = c.station(1).get::<Counter>(h).unwrap();
    r.lock().data.value = -5;
    let now = c.now();
    c.station_mut(1).update(now, h).unwrap();
    c.run_for(Duration::from_secs(1));
    for i in live {
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            -5
        );
    }
}

#[test]
fn losing_a_plain_station_recovers_its_objects_on_the_session_master() {
    let mut a = run(9);
    let c = &mut a.cluster;
    c.crash(3);
    c.run_for(Duration::from_secs(5));
    for i in [0, 1, 2, 4] {
        let st = c.station(i);
        assert_eq!(st.session_master(), StationId(1));
        assert_eq!(st.master_of(a.objects[3][0].0), Some(StationId(1)));
        assert!(!st.contains(a.objects[3][1].0));
    }
}

#[test]
fn client_server_relays_between_clients() {
    let reg = registry();
    let mut c = Cluster::start(
        SimConfig::seeded(11),
        reg,
        vec![
            StationConfig {
                topology: Topology::ClientServer,
                ..StationConfig::new(ProcessType::Server, "s1")
            },
            StationConfig {
                topology: Topology::ClientServer,
                ..StationConfig::new(ProcessType::Server, "s2")
            },
        ],
    )
    .unwrap();
    let client = |t: &str| StationConfig {
        topology: Topology::ClientServer,
        ..StationConfig::new(ProcessType::Client, t)
    };
    let c3 = c.join(client("c3"), 0).unwrap();
    let c4 = c.join(client("c4"), 1).unwrap();
    // A client cannot join through another client.
    assert!(matches!(
        c.join(client("c5"), c3),
        Err(JoinError::Denied(_)) | Err(JoinError::TimedOut)
    ));
    c.sim.set_recording(true);
    let now = c.now();
    let h = c
        .station_mut(c3)
        .publish(now, Counter::new(1, "relayed"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    assert_eq!(
        c.station(c4).get::<Counter>(h).unwrap().lock().data.value,
        1
    );
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(c4)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(2i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.result(), Some(3));
    let (a3, a4) = (c.addrs[c3], c.addrs[c4]);
    let direct = c
        .sim
        .deliveries()
        .iter()
        .filter(|d| (d.from == a3 && d.to == a4) || (d.from == a4 && d.to == a3))
        .count();
    assert_eq!(direct, 0, "clients never talk to each other directly");
    assert!(c.station(0).stats().relayed > 0 || c.station(1).stats().relayed > 0);
    // A server fails: its client is lost with it, the other client stays.
    c.crash(1);
    c.run_for(Duration::from_secs(5));
    assert!(c.station(c4).is_closed());
    assert_eq!(c.station(0).stations().len(), 2);
    assert_eq!(c.station(c3).stations().len(), 2);
}
