//! Interest management: objects enter and leave a station's relevance
//! through ChangeDupSet / AddToStore / RemoveFromStore, traffic follows
//! the duplica sets, a client never learns an irrelevant object.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::fuzzing::{dissect_handles, CapturedDatagram};
use netz_core::interest::{ClassInterest, Position, Relevance, StationInterest};
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

const MS200: Duration = Duration::from_millis(200);

/// Counters are placed at `(value, 0)`.
fn spatial() -> ClassInterest<Counter> {
    ClassInterest::spatial_by(|c: &Counter| Position::new(c.data.value as f32, 0.0))
}

fn cluster(topology: Topology, n: usize, seed: u64) -> Cluster {
    let cfg = |p, t: String| {
        let mut c = StationConfig::new(p, t);
        c.topology = topology;
        c
    };
    let cfgs = vec![cfg(ProcessType::Server, "s".into())];
    let mut c = Cluster::start(SimConfig::seeded(seed), registry(), cfgs).unwrap();
    // Everything is recorded from the first link on (so that a capture
    // decodes from the start of each stream).
    c.sim.set_recording(true);
    for i in 1..n {
        c.join(cfg(ProcessType::Client, format!("c{i}")), 0)
            .unwrap();
    }
    for i in 0..n {
        let now = c.now();
        c.station_mut(i).set_class_interest(now, spatial()).unwrap();
    }
    c
}

/// Station `i` looks at `(x, 0)`: enters at 10, leaves beyond 15.
fn look(c: &mut Cluster, i: usize, x: f32) {
    let now = c.now();
    c.station_mut(i)
        .set_interest(
            now,
            StationInterest::new().with_area(Position::new(x, 0.0), 10.0, 15.0),
        )
        .unwrap();
    c.run_for(MS200);
}

fn move_to(c: &mut Cluster, i: usize, r: &Ref<Counter>, x: i64) {
    r.lock().data.value = x;
    let now = c.now();
    c.station_mut(i).update(now, r.handle()).unwrap();
    c.run_for(MS200);
}

fn instrument(c: &mut Cluster) -> Log {
    let log = Log::default();
    set_log(&log);
    for i in 0..c.addrs.len() {
        let st = c.station_mut(i);
        st.trust_local_station(false);
        st.register_custom_operation_check(|op| {
            if op.is_a::<Counter>() {
                common::log(format!(
                    "{} SafetyExecutive {}",
                    op.local_station(),
                    kind(op)
                ));
            }
            true
        });
        st.register_operation_callback(None, 10, |op| {
            if op.is_a::<Counter>() {
                let extra = match op.downcast::<RemoveFromStoreOperation>() {
                    Some(r) => format!(" {:?}", r.reason),
                    None => String::new(),
                };
                common::log(format!("{} cb+10 {}{extra}", op.local_station(), kind(op)));
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

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn capture(c: &mut Cluster) -> Vec<CapturedDatagram> {
    c.sim
        .take_deliveries()
        .into_iter()
        .map(|d| (d.from, d.to, d.data))
        .collect()
}

/// The handles named in the messages station `i` received.
fn seen_by(cap: &[CapturedDatagram], c: &Cluster, i: usize) -> Vec<DOHandle> {
    dissect_handles(cap)
        .unwrap()
        .into_iter()
        .filter(|(to, _, _)| *to == c.addrs[i])
        .flat_map(|(_, _, h)| h)
        .collect()
}

#[test]
fn an_object_enters_and_leaves_with_the_operations_of_14_3_1() {
    let mut c = cluster(Topology::Mesh, 3, 3);
    look(&mut c, 2, 0.0);
    let log = instrument(&mut c);
    let now = c.now();
    let r = c
        .station_mut(1)
        .publish(now, Counter::new(100, "x"))
        .unwrap();
    let h = r.handle();
    c.run_for(MS200);
    log.take();
    // S1 is the session master (and a server): it sees everything.
    assert!(c.station(0).contains(h));
    assert!(!c.station(2).contains(h));
    assert_eq!(
        c.station(1).why_relevant(h, StationId(3)),
        Some(Relevance::Not("outside the station's area"))
    );

    move_to(&mut c, 1, &r, 5);
    let lines = log.take();
    assert_eq!(
        on(&lines, 2),
        seq(&[
            "SafetyExecutive ChangeDupSet",
            "DataSet::OperationBegin ChangeDupSet",
            "DO::OperationBegin ChangeDupSet",
            "DataSet::OperationEnd ChangeDupSet",
            "DO::OperationEnd ChangeDupSet",
            "cb+10 ChangeDupSet",
        ])
    );
    assert_eq!(
        on(&lines, 3),
        seq(&[
            "SafetyExecutive AddToStore",
            "DataSet::OperationBegin AddToStore",
            "DO::OperationBegin AddToStore",
            "DO::InitDO",
            "DataSet::OperationEnd AddToStore",
            "DO::OperationEnd AddToStore",
            "cb+10 AddToStore",
        ])
    );
    // The full current state arrived with it.
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().data.value, 5);
    assert_eq!(
        c.station(1).why_relevant(h, StationId(3)),
        Some(Relevance::Near {
            distance: 5.0,
            radius: 15.0
        })
    );
    assert!(c.events(1).contains(&Event::InterestChanged {
        handle: h,
        station: StationId(3),
        entered: true
    }));

    move_to(&mut c, 1, &r, 100);
    let lines = log.take();
    assert_eq!(
        on(&lines, 2),
        seq(&[
            "SafetyExecutive ChangeDupSet",
            "DataSet::OperationBegin ChangeDupSet",
            "DO::OperationBegin ChangeDupSet",
            "DataSet::OperationEnd ChangeDupSet",
            "DO::OperationEnd ChangeDupSet",
            "cb+10 ChangeDupSet",
        ])
    );
    assert_eq!(
        on(&lines, 3),
        seq(&[
            // The last update before it left, then the removal.
            "SafetyExecutive UpdateDataSet",
            "DataSet::OperationBegin UpdateDataSet",
            "DO::OperationBegin UpdateDataSet",
            "DataSet::OperationEnd UpdateDataSet",
            "DO::OperationEnd UpdateDataSet",
            "cb+10 UpdateDataSet",
            "SafetyExecutive RemoveFromStore",
            "DataSet::OperationBegin RemoveFromStore",
            "DO::OperationBegin RemoveFromStore",
            "DataSet::OperationEnd RemoveFromStore",
            "DO::OperationEnd RemoveFromStore",
            "cb+10 RemoveFromStore NotRelevant",
            // The last reference went with the store's (DO-7).
            "DO::Destructor",
        ])
    );
    assert!(!c.station(2).contains(h));
    let ev = c.events(2);
    assert!(ev.contains(&Event::ObjectRemoved(h)));
    assert!(ev.contains(&Event::InterestChanged {
        handle: h,
        station: StationId(3),
        entered: false
    }));
    // Masters are never affected.
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
    assert_eq!(c.station(1).dup_set(h), Some(vec![StationId(1)]));
}

#[test]
fn hysteresis_holds_at_the_border() {
    let mut c = cluster(Topology::Mesh, 3, 5);
    look(&mut c, 2, 0.0);
    let now = c.now();
    let r = c
        .station_mut(1)
        .publish(now, Counter::new(12, "x"))
        .unwrap();
    let h = r.handle();
    c.run_for(MS200);
    // Between the radii and not held: it does not enter.
    assert!(!c.station(2).contains(h));
    move_to(&mut c, 1, &r, 10);
    assert!(c.station(2).contains(h), "enters at the enter radius");
    for x in [14, 11, 15, 13, 15] {
        move_to(&mut c, 1, &r, x);
        assert!(
            c.station(2).contains(h),
            "held up to the leave radius ({x})"
        );
    }
    move_to(&mut c, 1, &r, 16);
    assert!(!c.station(2).contains(h), "leaves beyond the leave radius");
    for x in [14, 11, 15] {
        move_to(&mut c, 1, &r, x);
        assert!(
            !c.station(2).contains(h),
            "does not come back before 10 ({x})"
        );
    }
    // The station moving its area counts the same way.
    look(&mut c, 2, 8.0);
    assert!(c.station(2).contains(h), "the area came to it");
    look(&mut c, 2, 1.0);
    assert!(c.station(2).contains(h), "14 away and held: it stays");
    look(&mut c, 2, -4.0);
    assert!(!c.station(2).contains(h), "19 away: it leaves");
}

#[test]
fn no_update_or_action_reaches_a_station_without_the_duplica() {
    let mut c = cluster(Topology::Mesh, 4, 9);
    look(&mut c, 2, 0.0);
    look(&mut c, 3, 1000.0);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(3, "x")).unwrap();
    let h = r.handle();
    c.run_for(MS200);
    for x in [4, 5, 6, 7] {
        move_to(&mut c, 1, &r, x);
    }
    assert!(c
        .station_mut(1)
        .object::<Counter>(h)
        .action_on_duplicas(BUMP, &(2i64,)));
    c.run_for(MS200);
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().bumps, 2);
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().bumps, 2);
    assert!(!c.station(3).contains(h));
    let cap = capture(&mut c);
    assert!(
        !seen_by(&cap, &c, 3).contains(&h),
        "the far station heard of the object"
    );
    assert!(seen_by(&cap, &c, 2).contains(&h));
    // An RMC from the far station fails at once with a clear outcome.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(!c
        .station_mut(3)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(1i64,)));
    assert_eq!(ctx.outcome(), Outcome::TargetObjectNotFound);
}

#[test]
fn a_client_never_learns_an_irrelevant_object() {
    let mut c = cluster(Topology::ClientServer, 3, 13);
    look(&mut c, 1, 0.0);
    look(&mut c, 2, 500.0);
    // Objects of the server near each client, and one of client 1's.
    let mut near1 = Vec::new();
    let mut near2 = Vec::new();
    for x in [0, 3, 7] {
        let now = c.now();
        near1.push(c.station_mut(0).publish(now, Counter::new(x, "a")).unwrap());
    }
    for x in [495, 500, 509] {
        let now = c.now();
        near2.push(c.station_mut(0).publish(now, Counter::new(x, "b")).unwrap());
    }
    let now = c.now();
    let mine = c.station_mut(1).publish(now, Counter::new(1, "m")).unwrap();
    c.run_for(MS200);
    for step in 0..5 {
        for r in near1.iter().chain(near2.iter()) {
            r.lock().data.value += if step % 2 == 0 { 1 } else { -1 };
        }
        let now = c.now();
        c.station_mut(0).update_all(now);
        move_to(&mut c, 1, &mine, 2 + step);
    }
    let cap = capture(&mut c);
    let h = |v: &[Ref<Counter>]| v.iter().map(|r| r.handle()).collect::<Vec<_>>();
    let (h1, h2) = (h(&near1), h(&near2));
    let seen1 = seen_by(&cap, &c, 1);
    let seen2 = seen_by(&cap, &c, 2);
    assert!(
        seen1.iter().all(|x| !h2.contains(x)),
        "client 1 saw client 2's world"
    );
    assert!(
        seen2.iter().all(|x| !h1.contains(x)),
        "client 2 saw client 1's world"
    );
    assert!(
        !seen2.contains(&mine.handle()),
        "client 2 heard of client 1's object"
    );
    assert!(h1.iter().all(|x| seen1.contains(x)));
    assert!(h2.iter().all(|x| seen2.contains(x)));
    // The server sees client 1's object (it referees and recovers it).
    assert!(c.station(0).contains(mine.handle()));
    let mut held2 = c.station(2).duplicas();
    held2.retain(|x| x.class_id() == mine.handle().class_id());
    assert_eq!(held2, {
        let mut v = h2.clone();
        v.sort();
        v
    });
}

#[test]
fn an_object_some_stations_did_not_see_is_recovered() {
    let mut c = cluster(Topology::Mesh, 4, 17);
    look(&mut c, 2, 0.0);
    look(&mut c, 3, 1000.0);
    let now = c.now();
    let r = c
        .station_mut(1)
        .publish(now, Counter::new(2, "recover"))
        .unwrap();
    let h = r.handle();
    c.run_for(MS200);
    assert!(c.station(2).contains(h) && !c.station(3).contains(h));
    c.crash(1);
    let ok = c.run_until(Duration::from_secs(30), |c| {
        c.station(0).master_of(h) == Some(StationId(1))
            && c.station(2).master_of(h) == Some(StationId(1))
    });
    assert!(ok, "the session master recovered it, the viewer follows");
    assert!(
        !c.station(3).contains(h),
        "the far station still does not see it"
    );
    // The new master applies relevance: moving it to the far station's area.
    let r0 = c.station(0).get::<Counter>(h).unwrap();
    move_to(&mut c, 0, &r0, 1000);
    c.run_for(MS200);
    assert!(c.station(3).contains(h));
    assert!(!c.station(2).contains(h));
    assert_eq!(
        c.station(3).get::<Counter>(h).unwrap().lock().data.value,
        1000
    );
}

#[test]
fn groups_and_predicates_decide_too() {
    let mut c = cluster(Topology::Mesh, 3, 21);
    for i in 0..3 {
        let now = c.now();
        c.station_mut(i)
            .set_class_interest(now, ClassInterest::groups(|c: &Counter| vec![c.data.extra]))
            .unwrap();
    }
    let now = c.now();
    c.station_mut(2)
        .set_interest(now, StationInterest::new().with_group(7))
        .unwrap();
    c.run_for(MS200);
    let now = c.now();
    let a = c.station_mut(1).publish(now, Counter::new(0, "a")).unwrap();
    a.lock().data.extra = 7;
    let b = c.station_mut(1).publish(now, Counter::new(0, "b")).unwrap();
    c.run_for(MS200);
    // `a` was published in group 0; it enters when its group changes.
    assert!(!c.station(2).contains(a.handle()));
    let now = c.now();
    c.station_mut(1).update(now, a.handle()).unwrap();
    c.run_for(MS200);
    assert!(c.station(2).contains(a.handle()));
    assert!(!c.station(2).contains(b.handle()));
    assert_eq!(
        c.station(1).why_relevant(a.handle(), StationId(3)),
        Some(Relevance::Group(7))
    );
    // Unsubscribing takes it away.
    let now = c.now();
    c.station_mut(2)
        .set_interest(now, StationInterest::new().with_group(8))
        .unwrap();
    c.run_for(MS200);
    assert!(!c.station(2).contains(a.handle()));

    // A custom predicate: only objects named like the station's groups.
    let now = c.now();
    c.station_mut(1)
        .set_class_interest(
            now,
            ClassInterest::custom(|c: &Counter, _s, i: &StationInterest| {
                i.groups.contains(&(c.data.name.len() as u32))
            }),
        )
        .unwrap();
    let now = c.now();
    c.station_mut(2)
        .set_interest(now, StationInterest::new().with_group(1))
        .unwrap();
    c.run_for(MS200);
    assert!(c.station(2).contains(a.handle()) && c.station(2).contains(b.handle()));
    // Always relevant again: every station holds everything.
    let now = c.now();
    c.station_mut(1)
        .set_class_interest(now, ClassInterest::<Counter>::Always)
        .unwrap();
    let now = c.now();
    c.station_mut(2)
        .set_interest(now, StationInterest::new())
        .unwrap();
    c.run_for(MS200);
    assert!(c.station(2).contains(a.handle()) && c.station(2).contains(b.handle()));
}

/// The index of declared areas follows a station that moves its area far
/// away: an object coming into the new area enters, one coming into the
/// old area does not.
#[test]
fn a_station_that_moves_its_area_is_found_where_it_looks_now() {
    let mut c = cluster(Topology::Mesh, 4, 25);
    look(&mut c, 2, 0.0);
    look(&mut c, 3, 0.0);
    let now = c.now();
    let near = c
        .station_mut(1)
        .publish(now, Counter::new(3, "near"))
        .unwrap();
    let far = c
        .station_mut(1)
        .publish(now, Counter::new(500, "far"))
        .unwrap();
    let other = c
        .station_mut(1)
        .publish(now, Counter::new(700, "other"))
        .unwrap();
    c.run_for(MS200);
    assert!(c.station(2).contains(near.handle()));
    assert!(c.station(3).contains(near.handle()));
    let (s3, s4) = (StationId(3), StationId(4));
    assert_eq!(
        c.station(1).interest_index_at(Position::new(0.0, 0.0)),
        vec![s3, s4]
    );

    // Station 3 looks 2000 units away now: `near` leaves it, not station 4.
    look(&mut c, 2, 2000.0);
    assert!(!c.station(2).contains(near.handle()));
    assert!(c.station(3).contains(near.handle()));
    assert_eq!(
        c.station(1).interest_index_at(Position::new(0.0, 0.0)),
        vec![s4]
    );
    assert_eq!(
        c.station(1).interest_index_at(Position::new(2000.0, 0.0)),
        vec![s3]
    );

    // Into the new area: it enters.
    move_to(&mut c, 1, &far, 2004);
    assert!(c.station(2).contains(far.handle()));
    assert!(!c.station(3).contains(far.handle()));
    assert_eq!(
        c.station(1).why_relevant(far.handle(), s3),
        Some(Relevance::Near {
            distance: 4.0,
            radius: 15.0
        })
    );
    // Into the old area: it does not (station 4 still looks there).
    move_to(&mut c, 1, &other, 1);
    assert!(!c.station(2).contains(other.handle()));
    assert!(c.station(3).contains(other.handle()));
    assert_eq!(
        c.station(1).why_relevant(other.handle(), s3),
        Some(Relevance::Not("outside the station's area"))
    );
    // Held in the new area, it leaves when it goes back to the old one.
    move_to(&mut c, 1, &far, 2);
    assert!(!c.station(2).contains(far.handle()));
    assert!(c.station(3).contains(far.handle()));

    // A new cell size lists the areas again.
    for i in 0..4 {
        c.station_mut(i).set_interest_cell_size(4.0);
    }
    move_to(&mut c, 1, &near, 1990);
    assert!(c.station(2).contains(near.handle()));
    assert!(!c.station(3).contains(near.handle()));
    move_to(&mut c, 1, &other, 2000);
    assert!(c.station(2).contains(other.handle()));
    assert!(!c.station(3).contains(other.handle()));
    assert_eq!(
        c.station(1).interest_index_at(Position::new(2013.0, 0.0)),
        vec![s3]
    );
    assert_eq!(
        c.station(1).interest_index_at(Position::new(2017.0, 0.0)),
        vec![]
    );
}

/// A station that leaves or fails is taken out of every station's index of
/// declared areas, with its declared interest.
#[test]
fn a_station_that_leaves_or_fails_is_taken_out_of_the_index() {
    let mut c = cluster(Topology::Mesh, 5, 29);
    look(&mut c, 2, 0.0);
    look(&mut c, 3, 1000.0);
    look(&mut c, 4, 1000.0);
    let at = Position::new(1000.0, 0.0);
    let (s3, s4, s5) = (StationId(3), StationId(4), StationId(5));
    for i in [0, 1] {
        assert_eq!(c.station(i).interest_index_at(at), vec![s4, s5]);
        assert_eq!(
            c.station(i).interest_index_at(Position::new(0.0, 0.0)),
            vec![s3]
        );
    }
    // At cells of 64: station 3's square spans 2 × 2 cells, the others' 1 × 2.
    assert_eq!(c.station(1).interest_index_size(), 8);

    // Station 4 leaves, station 5 fails.
    let now = c.now();
    c.station_mut(3).leave(now).unwrap();
    c.crash(4);
    let gone = c.run_until(Duration::from_secs(30), |c| {
        [0, 1, 2]
            .iter()
            .all(|i| c.station(*i).stations().len() == 3)
    });
    assert!(gone, "the others saw both go");
    for i in [0, 1, 2] {
        assert_eq!(c.station(i).interest_of(s4), None);
        assert_eq!(c.station(i).interest_of(s5), None);
        assert_eq!(c.station(i).interest_index_at(at), vec![]);
    }
    assert_eq!(
        c.station(1).interest_of(s3).map(|i| i.area.is_some()),
        Some(true)
    );
    // Station 3's listings are all that is left.
    assert_eq!(c.station(1).interest_index_size(), 4);
    assert_eq!(
        c.station(1).interest_index_at(Position::new(0.0, 0.0)),
        vec![s3]
    );

    // Relevance goes on for the stations left.
    let now = c.now();
    let r = c
        .station_mut(1)
        .publish(now, Counter::new(1000, "x"))
        .unwrap();
    c.run_for(MS200);
    assert_eq!(c.station(1).dup_set(r.handle()), Some(vec![StationId(1)]));
    move_to(&mut c, 1, &r, 2);
    assert_eq!(
        c.station(1).dup_set(r.handle()),
        Some(vec![StationId(1), s3])
    );
    assert!(c.station(2).contains(r.handle()));
}

/// An area far larger than the cells is not listed cell by cell: its
/// station is checked for every object, and the index stays small.
#[test]
fn an_area_too_large_to_list_by_cell_is_checked_everywhere() {
    let mut c = cluster(Topology::Mesh, 4, 31);
    for i in 0..4 {
        c.station_mut(i).set_interest_cell_size(1.0);
    }
    let now = c.now();
    c.station_mut(2)
        .set_interest(
            now,
            StationInterest::new().with_area(Position::new(0.0, 0.0), 1e6, 1e6),
        )
        .unwrap();
    c.run_for(MS200);
    look(&mut c, 3, 0.0);
    let (s3, s4) = (StationId(3), StationId(4));
    // Station 4's square spans 32 × 32 cells of 1 (the most a station is
    // listed at: -16 to 15, its leave radius padded); station 3's is not listed.
    assert_eq!(c.station(1).interest_index_size(), 32 * 32);
    assert_eq!(
        c.station(1).interest_index_at(Position::new(0.0, 0.0)),
        vec![s3, s4]
    );
    assert_eq!(
        c.station(1)
            .interest_index_at(Position::new(-900_000.0, 5e5)),
        vec![s3]
    );
    let now = c.now();
    let r = c
        .station_mut(1)
        .publish(now, Counter::new(-900_000, "x"))
        .unwrap();
    c.run_for(MS200);
    assert!(c.station(2).contains(r.handle()));
    assert!(!c.station(3).contains(r.handle()));
    move_to(&mut c, 1, &r, 5);
    assert!(c.station(2).contains(r.handle()) && c.station(3).contains(r.handle()));
    move_to(&mut c, 1, &r, 1_000_001);
    assert!(!c.station(2).contains(r.handle()) && !c.station(3).contains(r.handle()));
    // Back to a small area: listed by cell again.
    look(&mut c, 2, 100.0);
    assert_eq!(c.station(1).interest_index_size(), 2 * 32 * 32);
    assert_eq!(
        c.station(1)
            .interest_index_at(Position::new(-900_000.0, 5e5)),
        vec![]
    );
}

/// Counters are placed at `(value, extra)` for the comparison below.
fn spatial_2d() -> ClassInterest<Counter> {
    ClassInterest::spatial_by(|c: &Counter| Position::new(c.data.value as f32, c.data.extra as f32))
}

/// A small deterministic random source for the scenario below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Everything the stations of a scenario did and said.
#[derive(Debug, PartialEq)]
struct Trace {
    /// Each station's events, station by station, step by step.
    events: Vec<(usize, Vec<Event>)>,
    /// The operations and their hooks, in order.
    log: Vec<String>,
    /// Every datagram delivered.
    wire: Vec<(std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)>,
    /// What each live station holds at the end.
    held: Vec<Vec<DOHandle>>,
}

/// Objects walking over a plane mastered by three stations, four stations
/// moving their areas (one of them for a while far larger than the
/// cells), the cell size changing, master `crash` failing; with the index
/// of declared areas or checking every station (`full_scan`). In a
/// client-server session stations 0 and 1 are servers; in a mesh every
/// station is a client (so the session master is the only privileged one).
fn walk(
    topology: Topology,
    full_scan: bool,
    seed: u64,
    crash: usize,
) -> (Trace, Cluster, Vec<DOHandle>) {
    let cfg = |p, t: String| {
        let mut c = StationConfig::new(p, t);
        c.topology = topology;
        c
    };
    let first = if topology == Topology::ClientServer {
        ProcessType::Server
    } else {
        ProcessType::Client
    };
    let cfgs = vec![cfg(first, "s".into())];
    let mut c = Cluster::start(SimConfig::seeded(seed), registry(), cfgs).unwrap();
    c.sim.set_recording(true);
    c.join(cfg(first, "s1".into()), 0).unwrap();
    for i in 2..6 {
        c.join(cfg(ProcessType::Client, format!("c{i}")), 0)
            .unwrap();
    }
    for i in 0..6 {
        let now = c.now();
        let st = c.station_mut(i);
        st.set_interest_full_scan(full_scan);
        st.set_interest_cell_size(8.0);
        st.set_class_interest(now, spatial_2d()).unwrap();
    }
    let log = instrument(&mut c);
    let mut rng = Rng(seed | 1);
    let mut trace = Trace {
        events: Vec::new(),
        log: Vec::new(),
        wire: Vec::new(),
        held: Vec::new(),
    };
    let mut handles = Vec::new();
    for i in [0, 1, 2] {
        for k in 0..4 {
            let mut o = Counter::new(rng.below(200) as i64, &format!("o{i}{k}"));
            o.data.extra = rng.below(200) as u32;
            let now = c.now();
            handles.push(c.station_mut(i).publish(now, o).unwrap().handle());
        }
    }
    let declare = |c: &mut Cluster, rng: &mut Rng, i: usize, radius: f32| {
        let p = Position::new(rng.below(200) as f32, rng.below(200) as f32);
        let now = c.now();
        c.station_mut(i)
            .set_interest(
                now,
                StationInterest::new().with_area(p, radius, radius + 5.0),
            )
            .unwrap();
    };
    for i in 2..6 {
        let radius = if i == 5 { 1e4 } else { 15.0 + 10.0 * i as f32 };
        declare(&mut c, &mut rng, i, radius);
    }
    c.run_for(MS200);
    for step in 0..40 {
        match step {
            15 => {
                for i in c.live() {
                    c.station_mut(i).set_interest_cell_size(5.0);
                }
            }
            25 => {
                c.crash(crash);
                c.run_for(Duration::from_secs(3));
            }
            _ => {}
        }
        for _ in 0..4 {
            let h = handles[rng.below(handles.len() as u64) as usize];
            let Some(i) = c
                .live()
                .into_iter()
                .find(|i| c.station(*i).master_of(h) == Some(c.station(*i).id()))
            else {
                continue;
            };
            let r = c.station(i).get::<Counter>(h).unwrap();
            {
                let mut o = r.lock();
                o.data.value = (o.data.value + rng.below(41) as i64 - 20).clamp(-20, 220);
                o.data.extra =
                    (o.data.extra as i64 + rng.below(41) as i64 - 20).clamp(0, 220) as u32;
            }
            let now = c.now();
            c.station_mut(i).update(now, h).unwrap();
        }
        if step % 3 == 0 {
            let i = 3 + rng.below(3) as usize;
            declare(&mut c, &mut rng, i, 15.0 + 10.0 * i as f32);
        }
        c.run_for(MS200);
        for i in c.live() {
            trace.events.push((i, c.events(i)));
        }
    }
    trace.log = log.take();
    trace.wire = capture(&mut c);
    trace.held = c.live().iter().map(|i| c.station(*i).duplicas()).collect();
    (trace, c, handles)
}

/// The index of declared areas changes nothing but the work: the same
/// duplica sets, events, operations and datagrams as checking every
/// station, in a session of servers and clients and in a mesh.
#[test]
fn the_index_of_areas_decides_as_checking_every_station_does() {
    for (topology, seed, crash) in [(Topology::ClientServer, 41, 2), (Topology::Mesh, 43, 0)] {
        let (indexed, c, handles) = walk(topology, false, seed, crash);
        let (full, _, _) = walk(topology, true, seed, crash);
        let changes = |t: &Trace, entered: bool| {
            t.events
                .iter()
                .flat_map(|(_, e)| e)
                .filter(|e| matches!(e, Event::InterestChanged { entered: x, .. } if *x == entered))
                .count()
        };
        assert!(changes(&indexed, true) > 10, "objects entered");
        assert!(changes(&indexed, false) > 10, "objects left");
        let failed = Event::StationFailed(StationId(crash as u32 + 1));
        assert!(indexed.events.iter().any(|(_, e)| e.contains(&failed)));
        assert_eq!(indexed.held, full.held);
        assert_eq!(indexed.log, full.log);
        assert_eq!(indexed.events, full.events);
        assert!(indexed.wire == full.wire, "the same datagrams");
        // And the duplicas are where the areas say.
        for i in [3, 4] {
            let Some(area) = c
                .station(i)
                .interest_of(c.station(i).id())
                .and_then(|d| d.area)
            else {
                panic!("station {i} declared an area");
            };
            for h in &handles {
                let Some(m) = c
                    .live()
                    .into_iter()
                    .find(|m| c.station(*m).master_of(*h) == Some(c.station(*m).id()))
                else {
                    continue;
                };
                let o = c.station(m).get::<Counter>(*h).unwrap();
                let p = o.with(|o| Position::new(o.data.value as f32, o.data.extra as f32));
                let d = p.distance(area.center);
                let held = c.station(i).contains(*h);
                assert!(
                    d > area.enter || held,
                    "station {i} misses an object {d} away"
                );
                assert!(
                    d <= area.leave || !held,
                    "station {i} holds an object {d} away"
                );
            }
        }
    }
}
