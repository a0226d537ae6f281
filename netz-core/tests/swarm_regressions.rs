//! Scenarios the swarm test (`tests/swarm.rs`) found, each reduced to a
//! small deterministic test of its own.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

fn mesh(n: usize) -> Cluster {
    let cfgs = (0..n)
        .map(|i| StationConfig::new(ProcessType::Server, format!("s{i}")))
        .collect();
    Cluster::start(SimConfig::seeded(3), registry(), cfgs).unwrap()
}

/// A master whose change was not sent yet (an RMC changed it, say) is
/// handed to another station and at once back: the duplicas end with
/// the master's state, though nobody changes it again.
#[test]
fn a_master_handed_over_and_back_brings_its_duplicas_the_changes_not_sent_yet() {
    let mut c = mesh(3);
    let now = c.now();
    let r = c.station_mut(0).publish(now, Counter::new(5, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    // Changed on the master, not sent.
    r.lock().data.value = 9;
    let now = c.now();
    c.station_mut(0).migrate(now, h, StationId(2)).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(1)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    let now = c.now();
    c.station_mut(1).migrate(now, h, StationId(1)).unwrap();
    c.run_for(Duration::from_millis(300));
    assert!(r.is_master(), "back on station 0");
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            9,
            "station {i}"
        );
    }
}
