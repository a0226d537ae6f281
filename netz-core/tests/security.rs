//! SafetyExecutive (14.3.2 / 14.3.3): trust, custom checks, invalid-operation callbacks.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MS300: Duration = Duration::from_millis(300);

/// S1 server, S2 client, S3 server.
fn cluster() -> Cluster {
    Cluster::start(
        SimConfig::seeded(3),
        registry(),
        vec![
            StationConfig::new(ProcessType::Server, "s1"),
            StationConfig::new(ProcessType::Client, "c2"),
            StationConfig::new(ProcessType::Server, "s3"),
        ],
    )
    .unwrap()
}

/// The 14.3.2 check: "I will not create duplicas of my Avatar on a client station."
fn deny_client_avatar(op: &Operation) -> bool {
    if let Some(cds) = op.downcast::<ChangeDupSetOperation>() {
        if cds.is_a_duplica_addition()
            && op.is_a::<Avatar>()
            && op.target_process_type() == Some(ProcessType::Client)
        {
            return false;
        }
    }
    true
}

#[test]
fn no_avatar_duplica_on_a_client_station() {
    let mut c = cluster();
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let r2 = rejected.clone();
    let st = c.station_mut(0);
    st.trust_local_station(false);
    st.register_custom_operation_check(deny_client_avatar);
    st.register_invalid_operation_callback(move |op| {
        r2.lock()
            .unwrap()
            .push((op.get_type(), op.target_station()))
    });
    let now = c.now();
    let avatar = c.station_mut(0).publish(now, Avatar).unwrap().handle();
    let counter = c
        .station_mut(0)
        .publish(now, Counter::default())
        .unwrap()
        .handle();
    c.run_for(MS300);
    assert!(
        !c.station(1).contains(avatar),
        "no avatar duplica on the client"
    );
    assert!(c.station(2).contains(avatar), "the other server has one");
    assert!(
        c.station(1).contains(counter),
        "other classes are not affected"
    );
    assert_eq!(c.station(0).dup_set(avatar), Some(vec![StationId(3)]));
    assert_eq!(
        *rejected.lock().unwrap(),
        vec![(OperationKind::ChangeDupSet, StationId(2))]
    );
    assert_eq!(c.station(0).stats().operations_rejected, 1);
}

#[test]
fn a_trusted_local_station_skips_the_checks() {
    let mut c = cluster();
    let ran = Arc::new(Mutex::new(0));
    let r2 = ran.clone();
    c.station_mut(0).register_custom_operation_check(move |op| {
        *r2.lock().unwrap() += 1;
        deny_client_avatar(op)
    });
    let now = c.now();
    let avatar = c.station_mut(0).publish(now, Avatar).unwrap().handle();
    c.run_for(MS300);
    assert!(
        c.station(1).contains(avatar),
        "trusted (default): the check did not run"
    );
    assert_eq!(*ran.lock().unwrap(), 0);
}

#[test]
fn special_rmc_only_from_a_server() {
    let mut c = cluster();
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(7, "k"))
        .unwrap()
        .handle();
    c.run_for(MS300);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r2 = reports.clone();
    let special = c.station(0).registry().method_id::<Counter>("get").unwrap();
    let st = c.station_mut(0);
    // 14.3.3: only server processes may call the special RMC.
    st.register_custom_operation_check(move |op| {
        if let Some(call) = op.downcast::<CallMethodOperation>() {
            if call.target_method_id() == special {
                return op.origin_process_type() == Some(ProcessType::Server);
            }
        }
        true
    });
    st.register_invalid_operation_callback(move |op| r2.lock().unwrap().push(op.origin()));
    // From the client: rejected, nothing ran.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    assert!(c.wait(&ctx, Duration::from_secs(1)));
    assert_eq!(ctx.outcome(), Outcome::RejectedBySafetyExecutive);
    assert_eq!(ctx.result(), None);
    // Other RMCs from the client still run.
    let ctx2: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Counter>(h)
        .call(&ctx2, ADD, &(1i64,)));
    assert!(c.wait(&ctx2, Duration::from_secs(1)));
    assert_eq!(ctx2.result(), Some(8));
    // From the other server: allowed.
    let ctx3: RmcContext<i64> = RmcContext::on_master();
    assert!(c.station_mut(2).object::<Counter>(h).call(&ctx3, GET, &()));
    assert!(c.wait(&ctx3, Duration::from_secs(1)));
    assert_eq!(ctx3.result(), Some(8));
    assert_eq!(*reports.lock().unwrap(), vec![StationId(2)]);
}

#[test]
fn a_rejected_update_changes_nothing() {
    let mut c = cluster();
    let now = c.now();
    let r = c.station_mut(0).publish(now, Counter::new(1, "a")).unwrap();
    c.run_for(MS300);
    let invalid = Arc::new(Mutex::new(0));
    let i2 = invalid.clone();
    let st = c.station_mut(1);
    st.register_custom_operation_check(|op| op.get_type() != OperationKind::UpdateDataSet);
    st.register_invalid_operation_callback(move |_| *i2.lock().unwrap() += 1);
    r.lock().data.value = 99;
    let now = c.now();
    c.station_mut(0).update(now, r.handle()).unwrap();
    c.run_for(MS300);
    assert_eq!(
        c.station(1)
            .get::<Counter>(r.handle())
            .unwrap()
            .lock()
            .data
            .value,
        1,
        "rejected: unchanged"
    );
    assert_eq!(
        c.station(2)
            .get::<Counter>(r.handle())
            .unwrap()
            .lock()
            .data
            .value,
        99
    );
    assert_eq!(*invalid.lock().unwrap(), 1);
    // Trusting the origin skips the check.
    c.station_mut(1).trust_station(StationId(1), true);
    r.lock().data.value = 100;
    let now = c.now();
    c.station_mut(0).update(now, r.handle()).unwrap();
    c.run_for(MS300);
    assert_eq!(
        c.station(1)
            .get::<Counter>(r.handle())
            .unwrap()
            .lock()
            .data
            .value,
        100
    );
}
