//! What the application is told: object events of user objects only
//! (unless asked), recovery that knows a leave from a failure, and a join
//! of the wrong topology.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

fn mesh(n: usize, core_events: bool) -> Cluster {
    let cfgs = (0..n)
        .map(|i| {
            let mut c = StationConfig::new(ProcessType::Server, format!("s{i}"));
            c.core_object_events = core_events;
            c
        })
        .collect();
    Cluster::start(SimConfig::seeded(3), registry(), cfgs).unwrap()
}

fn object_events(events: &[Event]) -> Vec<DOHandle> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ObjectAdded { handle, .. } | Event::MasterChanged { handle, .. } => {
                Some(*handle)
            }
            Event::ObjectRemoved(h) => Some(*h),
            _ => None,
        })
        .collect()
}

#[test]
fn object_events_concern_user_objects_unless_asked() {
    for core in [false, true] {
        let mut c = mesh(2, core);
        c.events(0);
        let now = c.now();
        let h = c
            .station_mut(1)
            .publish(now, Counter::new(1, "x"))
            .unwrap()
            .handle();
        c.run_for(Duration::from_millis(200));
        let cfg = StationConfig {
            core_object_events: core,
            ..StationConfig::new(ProcessType::Server, "s2")
        };
        let i = c.join(cfg, 0).unwrap();
        c.run_for(Duration::from_millis(200));
        let now = c.now();
        c.station_mut(i).leave(now).unwrap();
        c.run_for(Duration::from_secs(1));
        let seen = object_events(&c.events(0));
        assert!(seen.contains(&h), "core={core}");
        let core_seen = seen.iter().any(|h| !h.class_id().is_user());
        assert_eq!(core_seen, core, "core objects reported only when asked");
    }
}

/// Kept when its station fails, removed with a station that leaves.
#[derive(Default)]
struct Bullet;

impl DoClass for Bullet {
    const CLASS_NAME: &'static str = "Bullet";
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Bullet
    }
    fn approve_recovery(&mut self, loss: MasterLoss) -> bool {
        loss == MasterLoss::Failed
    }
}

#[test]
fn approve_recovery_tells_a_leave_from_a_failure() {
    let mut r = Registry::new();
    r.register::<Bullet>().unwrap();
    let r = std::sync::Arc::new(r);
    let cfgs = (0..3)
        .map(|i| StationConfig::new(ProcessType::Server, format!("s{i}")))
        .collect();
    let mut c = Cluster::start(SimConfig::seeded(3), r, cfgs).unwrap();
    let now = c.now();
    let left = c.station_mut(1).publish(now, Bullet).unwrap().handle();
    let failed = c.station_mut(2).publish(now, Bullet).unwrap().handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(1).leave(now).unwrap();
    c.run_for(Duration::from_secs(1));
    assert!(
        !c.station(0).contains(left),
        "removed after a graceful leave"
    );
    c.crash(2);
    c.run_for(Duration::from_secs(4));
    assert!(c.station(0).contains(failed), "recovered after a failure");
    assert_eq!(c.station(0).master_of(failed), Some(c.station(0).id()));
}

#[test]
fn fault_recovery_operations_say_whether_the_station_failed() {
    let mut c = mesh(3, false);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    c.station_mut(0)
        .register_operation_callback(Some(OperationKind::FaultRecovery), 5, move |op| {
            if let Some(fr) = op.downcast::<FaultRecoveryOperation>() {
                if op.is_user_do() {
                    s2.lock().unwrap().push(fr.station_failed);
                }
            }
        })
        .unwrap();
    let now = c.now();
    c.station_mut(1).publish(now, Counter::new(1, "a")).unwrap();
    c.station_mut(2).publish(now, Counter::new(2, "b")).unwrap();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(1).leave(now).unwrap();
    c.run_for(Duration::from_secs(1));
    c.crash(2);
    c.run_for(Duration::from_secs(4));
    assert_eq!(*seen.lock().unwrap(), [false, true]);
}

#[test]
fn a_mesh_station_joining_a_client_server_session_gets_topology_mismatch() {
    let mut cfg = StationConfig::new(ProcessType::Server, "server");
    cfg.topology = Topology::ClientServer;
    let mut c = Cluster::start(SimConfig::seeded(4), registry(), vec![cfg]).unwrap();
    let joiner = StationConfig::new(ProcessType::Server, "mesh");
    assert_eq!(c.join(joiner, 0), Err(JoinError::TopologyMismatch));
}
