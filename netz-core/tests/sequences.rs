//! The exact event orders of NetZ 14.3.1, one test per operation sequence.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

const MS200: Duration = Duration::from_millis(200);

fn relevant(op: &Operation) -> bool {
    op.is_a::<Counter>() || op.associated_do().is_none()
}

/// Installs a logging SafetyExecutive check and callbacks at -10 and +10 on every station.
fn instrument(c: &mut Cluster) -> Log {
    let log = Log::default();
    set_log(&log);
    for i in 0..c.addrs.len() {
        let st = c.station_mut(i);
        st.trust_local_station(false);
        st.register_custom_operation_check(|op| {
            if relevant(op) {
                common::log(format!(
                    "{} SafetyExecutive {}",
                    op.local_station(),
                    kind(op)
                ));
            }
            true
        });
        st.register_operation_callback(None, -10, |op| {
            if relevant(op) {
                common::log(format!("{} cb-10 {}", op.local_station(), kind(op)));
            }
        })
        .unwrap();
        st.register_operation_callback(None, 10, |op| {
            if relevant(op) {
                common::log(format!("{} cb+10 {}", op.local_station(), kind(op)));
            }
        })
        .unwrap();
    }
    log
}

fn on(lines: &[String], station: u32) -> Vec<String> {
    let p = format!("S{station} ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&p).map(str::to_string))
        .collect()
}

fn cluster(n: usize) -> Cluster {
    let mut cfgs = vec![StationConfig::new(ProcessType::Server, "s")];
    for i in 1..n {
        cfgs.push(StationConfig::new(ProcessType::Client, format!("c{i}")));
    }
    Cluster::start(SimConfig::seeded(7), registry(), cfgs).unwrap()
}

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn add_to_store_master_then_duplica() {
    let mut c = cluster(2);
    let log = instrument(&mut c);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::default()).unwrap();
    assert!(
        r.is_master() && !r.is_duplica(),
        "roles valid as soon as the handle exists"
    );
    let master = on(&log.take(), 2);
    assert_eq!(
        master,
        seq(&[
            "SafetyExecutive AddToStore",
            "cb-10 AddToStore",
            "DataSet::OperationBegin AddToStore",
            "DO::OperationBegin AddToStore",
            "DO::InitDO",
            "DataSet::OperationEnd AddToStore",
            "DO::OperationEnd AddToStore",
            "cb+10 AddToStore",
            // The master then adds the existing station to its duplica set (14.3.1.3).
            "SafetyExecutive ChangeDupSet",
            "cb-10 ChangeDupSet",
            "DataSet::OperationBegin ChangeDupSet",
            "DO::OperationBegin ChangeDupSet",
            "DataSet::OperationEnd ChangeDupSet",
            "DO::OperationEnd ChangeDupSet",
            "cb+10 ChangeDupSet",
        ])
    );
    c.run_for(MS200);
    assert_eq!(
        on(&log.take(), 1),
        seq(&[
            "SafetyExecutive AddToStore",
            "cb-10 AddToStore",
            "DataSet::OperationBegin AddToStore",
            "DO::OperationBegin AddToStore",
            "DO::InitDO",
            "DataSet::OperationEnd AddToStore",
            "DO::OperationEnd AddToStore",
            "cb+10 AddToStore",
        ])
    );
    assert_eq!(c.station(1).dup_set(r.handle()), Some(vec![StationId(1)]));
    assert!(c
        .station(0)
        .get::<Counter>(r.handle())
        .unwrap()
        .is_duplica());
}

#[test]
fn remove_from_store_master_and_duplica_with_destructors() {
    let mut c = cluster(2);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::default()).unwrap();
    let h = r.handle();
    c.run_for(MS200);
    let log = instrument(&mut c);
    let now = c.now();
    c.station_mut(1).delete_main_ref(now, h).unwrap();
    assert!(!r.is_valid());
    let remove = [
        "SafetyExecutive RemoveFromStore",
        "cb-10 RemoveFromStore",
        "DataSet::OperationBegin RemoveFromStore",
        "DO::OperationBegin RemoveFromStore",
        "DataSet::OperationEnd RemoveFromStore",
        "DO::OperationEnd RemoveFromStore",
        "cb+10 RemoveFromStore",
    ];
    // The master's destructor waits for the last reference.
    assert_eq!(on(&log.take(), 2), seq(&remove));
    drop(r);
    assert_eq!(on(&log.take(), 2), seq(&["DO::Destructor"]));
    c.run_for(MS200);
    let mut dup = seq(&remove);
    dup.push("DO::Destructor".into());
    assert_eq!(on(&log.take(), 1), dup);
    assert!(!c.station(0).contains(h));
}

#[test]
fn change_dup_set_removal_when_a_station_leaves() {
    let mut c = cluster(3);
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::default())
        .unwrap()
        .handle();
    c.run_for(MS200);
    assert_eq!(
        c.station(1).dup_set(h),
        Some(vec![StationId(1), StationId(3)])
    );
    let log = instrument(&mut c);
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    c.run_for(Duration::from_secs(1));
    let l = on(&log.take(), 2);
    let i = l
        .iter()
        .position(|x| x == "cb-10 LeaveStation")
        .expect("leave seen");
    assert_eq!(
        l[i..].to_vec(),
        seq(&[
            "cb-10 LeaveStation",
            "SafetyExecutive ChangeDupSet",
            "cb-10 ChangeDupSet",
            "DataSet::OperationBegin ChangeDupSet",
            "DO::OperationBegin ChangeDupSet",
            "DataSet::OperationEnd ChangeDupSet",
            "DO::OperationEnd ChangeDupSet",
            "cb+10 ChangeDupSet",
            "cb+10 LeaveStation",
        ])
    );
    assert_eq!(c.station(1).dup_set(h), Some(vec![StationId(1)]));
    assert!(c.station(2).is_closed());
}

#[test]
fn change_master_station_demotes_and_promotes() {
    let mut c = cluster(2);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::default()).unwrap();
    let h = r.handle();
    c.run_for(MS200);
    let log = instrument(&mut c);
    let now = c.now();
    c.station_mut(1).migrate(now, h, StationId(1)).unwrap();
    assert!(r.is_duplica(), "demoted at once");
    c.run_for(MS200);
    let l = log.take();
    let cms = seq(&[
        "SafetyExecutive ChangeMasterStation",
        "cb-10 ChangeMasterStation",
        "DataSet::OperationBegin ChangeMasterStation",
        "DO::OperationBegin ChangeMasterStation",
        "DataSet::OperationEnd ChangeMasterStation",
        "DO::OperationEnd ChangeMasterStation",
        "cb+10 ChangeMasterStation",
    ]);
    assert_eq!(on(&l, 2), cms);
    assert_eq!(on(&l, 1), cms);
    assert!(c.station(0).get::<Counter>(h).unwrap().is_master());
    assert_eq!(c.station(1).master_of(h), Some(StationId(1)));
    assert_eq!(c.station(0).dup_set(h), Some(vec![StationId(2)]));
}

fn fault_recovery(approve: bool) -> Vec<String> {
    let mut c = cluster(3);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::recovering(approve))
        .unwrap()
        .handle();
    c.run_for(MS200);
    let log = instrument(&mut c);
    c.crash(2);
    c.run_for(Duration::from_secs(3));
    let l = on(&log.take(), 1);
    if approve {
        assert_eq!(c.station(0).master_of(h), Some(StationId(1)));
        assert_eq!(c.station(1).master_of(h), Some(StationId(1)));
    } else {
        assert!(!c.station(0).contains(h));
        assert!(!c.station(1).contains(h));
    }
    let i = l
        .iter()
        .position(|x| x == "SafetyExecutive FaultRecovery")
        .expect("fault recovery ran");
    let end = l.iter().position(|x| x == "cb+10 FaultRecovery").unwrap();
    let mut v = l[i..=end].to_vec();
    v.extend(
        l[end + 1..]
            .iter()
            .filter(|x| *x == "DO::Destructor")
            .cloned(),
    );
    v
}

#[test]
fn fault_recovery_approved_takes_the_master() {
    assert_eq!(
        fault_recovery(true),
        seq(&[
            "SafetyExecutive FaultRecovery",
            "cb-10 FaultRecovery",
            "DO::OperationBegin FaultRecovery",
            "DO::ApproveFaultRecovery",
            "SafetyExecutive ChangeMasterStation",
            "cb-10 ChangeMasterStation",
            "DataSet::OperationBegin ChangeMasterStation",
            "DO::OperationBegin ChangeMasterStation",
            "DataSet::OperationEnd ChangeMasterStation",
            "DO::OperationEnd ChangeMasterStation",
            "cb+10 ChangeMasterStation",
            "SafetyExecutive ChangeDupSet",
            "cb-10 ChangeDupSet",
            "DataSet::OperationBegin ChangeDupSet",
            "DO::OperationBegin ChangeDupSet",
            "DataSet::OperationEnd ChangeDupSet",
            "DO::OperationEnd ChangeDupSet",
            "cb+10 ChangeDupSet",
            "DO::OperationEnd FaultRecovery",
            "cb+10 FaultRecovery",
        ])
    );
}

#[test]
fn fault_recovery_refused_removes_the_object() {
    assert_eq!(
        fault_recovery(false),
        seq(&[
            "SafetyExecutive FaultRecovery",
            "cb-10 FaultRecovery",
            "DO::OperationBegin FaultRecovery",
            "DO::ApproveFaultRecovery",
            "SafetyExecutive RemoveFromStore",
            "cb-10 RemoveFromStore",
            "DataSet::OperationBegin RemoveFromStore",
            "DO::OperationBegin RemoveFromStore",
            "DataSet::OperationEnd RemoveFromStore",
            "DO::OperationEnd RemoveFromStore",
            "cb+10 RemoveFromStore",
            "DO::OperationEnd FaultRecovery",
            "cb+10 FaultRecovery",
            // The destructor runs once the last reference is gone.
            "DO::Destructor",
        ])
    );
}

#[test]
fn call_method_and_update_data_set() {
    let mut c = cluster(2);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::default()).unwrap();
    let h = r.handle();
    c.run_for(MS200);
    let log = instrument(&mut c);
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(0)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(2i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(1)));
    assert_eq!(ctx.result(), Some(2));
    assert_eq!(
        on(&log.take(), 2),
        seq(&[
            "SafetyExecutive CallMethod",
            "cb-10 CallMethod",
            "DO::OperationBegin CallMethod",
            "DO::Call",
            "DO::OperationEnd CallMethod",
            "cb+10 CallMethod"
        ])
    );
    let now = c.now();
    c.station_mut(1).update(now, h).unwrap();
    c.run_for(MS200);
    assert_eq!(
        on(&log.take(), 1),
        seq(&[
            "SafetyExecutive UpdateDataSet",
            "cb-10 UpdateDataSet",
            "DataSet::OperationBegin UpdateDataSet",
            "DO::OperationBegin UpdateDataSet",
            "DataSet::OperationEnd UpdateDataSet",
            "DO::OperationEnd UpdateDataSet",
            "cb+10 UpdateDataSet",
        ])
    );
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().data.value, 2);
}

#[test]
fn join_session_join_station_and_leave_station() {
    let mut c = cluster(2);
    let log = instrument(&mut c);
    c.station_mut(0).register_join_approval_callback(|op| {
        common::log(format!("S1 JoinApproval {}", op.joining_station().token));
        op.approve();
    });
    let i = c
        .join(StationConfig::new(ProcessType::Client, "newcomer"), 0)
        .unwrap();
    let l = on(&log.take(), 1);
    let cbs: Vec<String> = l
        .iter()
        .filter(|x| x.contains("Join") || x.contains("cb"))
        .cloned()
        .collect();
    assert_eq!(
        cbs[..4].to_vec(),
        seq(&[
            "SafetyExecutive JoinSession",
            "cb-10 JoinSession",
            "JoinApproval newcomer",
            "cb+10 JoinSession"
        ]),
    );
    let js = cbs.iter().position(|x| x == "cb-10 JoinStation").unwrap();
    let je = cbs.iter().position(|x| x == "cb+10 JoinStation").unwrap();
    assert!(js < je);
    // The new station's object is mastered by the new station.
    let st3: Vec<DOHandle> = c
        .station(i)
        .masters()
        .into_iter()
        .filter(|h| h.class_id() == ClassId::STATION)
        .collect();
    assert_eq!(st3.len(), 1);
    assert_eq!(c.station(0).master_of(st3[0]), Some(StationId(3)));

    // LeaveStation: the station object is removed first, then the station.
    let now = c.now();
    c.station_mut(i).leave(now).unwrap();
    c.run_for(Duration::from_secs(1));
    let l = on(&log.take(), 2);
    assert_eq!(
        l,
        seq(&[
            "SafetyExecutive LeaveStation",
            "cb-10 LeaveStation",
            "cb+10 LeaveStation"
        ])
    );
    assert!(c.station(0).master_of(st3[0]).is_none());
    assert!(c.station(1).master_of(st3[0]).is_none());
    assert_eq!(c.station(1).stations().len(), 2);
}

#[test]
fn callback_priorities_order_and_reserved_values() {
    let mut c = cluster(1);
    let log = Log::default();
    set_log(&log);
    let st = c.station_mut(0);
    for p in [7, -5, 3, -100, 1024, -1024] {
        st.register_operation_callback(Some(OperationKind::AddToStore), p, move |op| {
            if op.is_a::<Counter>() {
                common::log(format!("{} p{p}", op.local_station()));
            }
        })
        .unwrap();
    }
    for p in [-1, 0, 1] {
        assert_eq!(
            st.register_operation_callback(None, p, |_| {}),
            Err(CallbackError::Reserved(p))
        );
    }
    for p in [-1025, 1025, i32::MAX] {
        assert_eq!(
            st.register_operation_callback(None, p, |_| {}),
            Err(CallbackError::OutOfRange(p))
        );
    }
    let now = c.now();
    c.station_mut(0).publish(now, Counter::default()).unwrap();
    assert_eq!(
        on(&log.take(), 1),
        seq(&[
            "p-1024",
            "p-100",
            "p-5",
            "DataSet::OperationBegin AddToStore",
            "DO::OperationBegin AddToStore",
            "DO::InitDO",
            "DataSet::OperationEnd AddToStore",
            "DO::OperationEnd AddToStore",
            "p3",
            "p7",
            "p1024",
        ])
    );
}

#[test]
fn system_lock_defers_migration_and_removal() {
    let mut c = cluster(2);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::default()).unwrap();
    let h = r.handle();
    c.run_for(MS200);
    c.station_mut(0).lock_system();
    let now = c.now();
    c.station_mut(1).migrate(now, h, StationId(1)).unwrap();
    c.run_for(MS200);
    assert_eq!(
        c.station(0).master_of(h),
        Some(StationId(2)),
        "ChangeMasterStation deferred while locked"
    );
    assert_eq!(
        c.station_mut(0).migrate(now, h, StationId(2)),
        Err(StationError::SystemLocked)
    );
    let now = c.now();
    c.station_mut(0).unlock_system(now);
    assert_eq!(c.station(0).master_of(h), Some(StationId(1)));
    c.run_for(MS200);
    assert!(c.station(0).get::<Counter>(h).unwrap().is_master());
}
