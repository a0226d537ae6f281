//! Station basics: join, replication, RMCs, actions.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

fn cfg(p: ProcessType, token: &str) -> StationConfig {
    StationConfig::new(p, token)
}

fn three() -> Cluster {
    Cluster::start(
        SimConfig::seeded(1),
        registry(),
        vec![
            cfg(ProcessType::Server, "s"),
            cfg(ProcessType::Client, "a"),
            cfg(ProcessType::Client, "b"),
        ],
    )
    .unwrap()
}

#[test]
fn stations_join_and_agree_on_membership() {
    let c = three();
    for i in 0..3 {
        let st = c.station(i);
        assert!(st.is_in_session());
        assert_eq!(st.session_master(), StationId(1));
        assert_eq!(st.stations().len(), 3, "station {i}");
    }
    assert_eq!(c.station(1).id(), StationId(2));
    assert_eq!(c.station(2).id(), StationId(3));
    // Every station object exists everywhere, mastered by its own station.
    for i in 0..3 {
        let st = c.station(i);
        let stations: Vec<_> = st
            .objects()
            .into_iter()
            .filter(|h| h.class_id() == ClassId::STATION)
            .collect();
        assert_eq!(stations.len(), 3, "station {i} sees {stations:?}");
        for h in stations {
            let m = st.master_of(h).unwrap();
            assert_eq!(
                st.get::<netz_core::session::StationObject>(h)
                    .unwrap()
                    .lock()
                    .data
                    .id,
                m.0
            );
        }
    }
}

#[test]
fn datasets_replicate_and_rmc_returns() {
    let mut c = three();
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(5, "x")).unwrap();
    let h = r.handle();
    assert!(r.is_master());
    c.run_for(Duration::from_millis(200));
    for i in [0, 2] {
        let d = c.station(i).get::<Counter>(h).expect("duplica");
        assert!(d.is_duplica());
        assert_eq!(d.lock().data.value, 5);
        assert_eq!(d.lock().data.name, "x");
    }
    r.lock().data.value = 42;
    let now = c.now();
    assert!(c.station_mut(1).update(now, h).unwrap());
    assert!(!c.station_mut(1).update(now, h).unwrap(), "nothing changed");
    c.run_for(Duration::from_millis(200));
    assert_eq!(
        c.station(2).get::<Counter>(h).unwrap().lock().data.value,
        42
    );

    // RMC from station 2 on the master, with a return value.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(8i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), Some(50));
    assert_eq!(r.lock().data.value, 50);

    // Unknown method id.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .call(&ctx, MethodId(9), &()));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::ErrorRMCDispatchFailed);

    // Must-be-master flag on a duplica target.
    let ctx: RmcContext<i64> = RmcContext::with_target(StationId(1), true);
    ctx.set_flag(RmcFlag::TargetObjectMustBeMaster);
    assert!(c.station_mut(2).object::<Counter>(h).call(&ctx, GET, &()));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::TargetValidationFailure);
}

#[test]
fn actions_run_on_master_and_duplicas() {
    let mut c = three();
    let now = c.now();
    let r = c.station_mut(0).publish(now, Counter::default()).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .action_on_master(BUMP, &(3i64,)));
    c.run_for(Duration::from_millis(200));
    for i in 0..3 {
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().bumps,
            3,
            "station {i}"
        );
    }
    assert!(c
        .station_mut(0)
        .object::<Counter>(h)
        .action_on_duplicas(BUMP, &(1i64,)));
    assert!(
        !c.station_mut(1)
            .object::<Counter>(h)
            .action_on_duplicas(BUMP, &(1i64,)),
        "only the master"
    );
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().bumps, 3);
    assert_eq!(c.station(1).get::<Counter>(h).unwrap().lock().bumps, 4);
}

#[test]
fn well_known_objects_exist_everywhere_from_session_start() {
    let mut r = Registry::new();
    r.register_well_known::<Counter>(2).unwrap();
    let reg = std::sync::Arc::new(r);
    let h0 = reg.well_known_handle::<Counter>(0).unwrap();
    let h1 = reg.well_known_handle::<Counter>(1).unwrap();
    assert!(reg.well_known_handle::<Counter>(2).is_none());
    let mut c = Cluster::start(
        SimConfig::seeded(2),
        reg,
        vec![cfg(ProcessType::Server, "s")],
    )
    .unwrap();
    assert!(c.station(0).get::<Counter>(h0).unwrap().is_master());
    let i = c.join(cfg(ProcessType::Client, "late"), 0).unwrap();
    // Present on the joiner as soon as it joined, mastered by the session master.
    let d = c.station(i).get::<Counter>(h1).expect("well-known duplica");
    assert!(d.is_duplica());
    assert_eq!(d.master_station(), StationId(1));
    c.station(0).get::<Counter>(h1).unwrap().lock().data.value = 9;
    let now = c.now();
    c.station_mut(0).update(now, h1).unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(d.lock().data.value, 9);
}

#[test]
fn update_all_carries_the_changes_of_many_objects_to_each_station() {
    // Enough objects, with long enough changes, for several batches per
    // duplica station; a lossy network; one object left unchanged.
    let mut c = Cluster::start(
        SimConfig {
            loss: 0.1,
            reorder: 0.1,
            ..SimConfig::seeded(8)
        },
        registry(),
        vec![
            cfg(ProcessType::Server, "s"),
            cfg(ProcessType::Client, "a"),
            cfg(ProcessType::Client, "b"),
        ],
    )
    .unwrap();
    let now = c.now();
    let handles: Vec<DOHandle> = (0..300)
        .map(|i| {
            c.station_mut(0)
                .publish(now, Counter::new(i, "x"))
                .unwrap()
                .handle()
        })
        .collect();
    c.run_for(Duration::from_millis(500));
    let sent_before = c.station(0).stats().updates_sent;
    let applied_before: Vec<u64> = (0..3)
        .map(|i| c.station(i).stats().updates_applied)
        .collect();
    for (i, h) in handles.iter().enumerate().skip(1) {
        let st = c.station_mut(0);
        let o = st.get::<Counter>(*h).unwrap();
        let mut o = o.lock();
        o.data.value = 1000 + i as i64;
        o.data.name = format!("{i:0>40}");
    }
    let now = c.now();
    assert_eq!(c.station_mut(0).update_all(now), 299);
    // Nothing changed since: nothing to send.
    assert_eq!(c.station_mut(0).update_all(now), 0);
    assert_eq!(c.station(0).stats().updates_sent - sent_before, 2 * 299);
    c.run_for(Duration::from_secs(2));
    for (i, before) in applied_before.iter().enumerate().skip(1) {
        let st = c.station(i);
        assert_eq!(st.stats().updates_applied - before, 299, "station {i}");
        for (k, h) in handles.iter().enumerate() {
            let o = st.get::<Counter>(*h).unwrap();
            let o = o.lock();
            if k == 0 {
                assert_eq!((o.data.value, o.data.name.as_str()), (0, "x"));
            } else {
                assert_eq!(o.data.value, 1000 + k as i64);
                assert_eq!(o.data.name, format!("{k:0>40}"));
            }
        }
    }
}
