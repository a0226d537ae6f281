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

/// A station crashes and comes back at once on the same address, as a new
/// station: what its peers still send to the crashed one reaches it while
/// it waits to be admitted (here the first messages a newcomer sent the
/// crashed station, sent again and again). Once in, it has every
/// station's object, and its links carry what it is sent.
#[test]
fn a_station_restarted_on_its_address_joins_with_working_links() {
    let mut c = mesh(2);
    let addr = c.addrs[1];
    c.crash(1);
    // A newcomer links to the crashed station too (nobody noticed yet):
    // its first messages to it go unanswered and are sent again.
    let late = c
        .join(StationConfig::new(ProcessType::Server, "late"), 0)
        .unwrap();
    let fresh = Station::new(StationConfig::new(ProcessType::Server, "again"), registry());
    c.sim.restart(addr, fresh);
    c.join_existing(1, 0).unwrap();
    c.run_for(Duration::from_secs(2));
    let station_objects = |s: &Station| {
        s.objects()
            .into_iter()
            .filter(|h| h.class_id() == ClassId::STATION)
            .collect::<Vec<_>>()
    };
    assert_eq!(station_objects(c.station(1)).len(), 3);
    assert_eq!(station_objects(c.station(1)), station_objects(c.station(0)));
    let now = c.now();
    let h = c
        .station_mut(late)
        .publish(now, Counter::new(4, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    assert_eq!(
        c.station(1).get::<Counter>(h).map(|r| r.lock().data.value),
        Some(4)
    );
}

fn cs(process_type: ProcessType, token: &str) -> StationConfig {
    StationConfig {
        topology: Topology::ClientServer,
        ..StationConfig::new(process_type, token)
    }
}

/// A client-server session of `n` servers (`s1`, `s2`, ...) on a network
/// drawn from `seed`.
fn servers(seed: u64, n: usize) -> Cluster {
    let cfgs = (1..=n)
        .map(|i| cs(ProcessType::Server, &format!("s{i}")))
        .collect();
    Cluster::start(SimConfig::seeded(seed), registry(), cfgs).unwrap()
}

/// A client hands its object to a server that is not its own: its server
/// passes the hand-over on (it learnt of it first, from the client's word
/// to itself), and every station ends with the new master.
#[test]
fn a_client_hands_its_object_to_another_server() {
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Server, "s2"),
            cs(ProcessType::Client, "c3"),
            cs(ProcessType::Client, "c4"),
        ],
    )
    .unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(2).relay(), Some(StationId(1)));
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(6, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(2).migrate(now, h, StationId(2)).unwrap();
    c.run_for(Duration::from_millis(500));
    for i in 0..4 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(2)), "station {i}");
    }
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(3)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(1i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.result(), Some(7));
}

/// A master sends a change and hands its object to the session master,
/// whose own word reaches a duplica before the old master's change (the
/// old master's link to it is slow): the duplica waits for the old
/// master's word, applies the change, and ends with the master's state.
#[test]
fn a_hand_over_to_the_session_master_does_not_overtake_the_last_change() {
    let mut c = mesh(3);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    c.sim
        .set_link_latency(c.addrs[1], c.addrs[2], Duration::from_millis(60));
    r.lock().data.value = 2;
    let now = c.now();
    c.station_mut(1).update(now, h).unwrap();
    c.station_mut(1).migrate(now, h, StationId(1)).unwrap();
    c.run_for(Duration::from_millis(500));
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(300));
    assert!(c.station(0).get::<Counter>(h).unwrap().is_master());
    for i in 0..3 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(1)), "station {i}");
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            2,
            "station {i}"
        );
    }
}

/// A client deletes its object: its server passes the deletion on to the
/// other client, though it applied the deletion addressed to itself
/// first (and no longer holds the object when it checks the other).
#[test]
fn a_client_deletes_its_object_everywhere() {
    let mut c = Cluster::start(
        SimConfig::seeded(6),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Client, "c2"),
            cs(ProcessType::Client, "c3"),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    assert!(c.station(2).contains(h));
    let now = c.now();
    c.station_mut(1).delete_main_ref(now, h).unwrap();
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        assert!(!c.station(i).contains(h), "station {i}");
    }
}

/// A station that leaves publishes an object on its way out: nobody keeps
/// a duplica whose master is gone.
#[test]
fn an_object_published_while_leaving_is_kept_nowhere() {
    let mut c = mesh(3);
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(1, "late"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_secs(3));
    assert!(c.station(2).is_closed());
    for i in 0..2 {
        assert!(!c.station(i).contains(h), "station {i}");
    }
}

/// A station that is leaving hands nothing over: its hand-over would
/// reach the duplicas while the new master, which already counts it gone,
/// refuses it, and they would hold a duplica that nobody masters. Its
/// objects go to the recovery, as any of a station that left.
#[test]
fn a_leaving_station_hands_nothing_over() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    let to = c.station(0).id();
    assert_eq!(
        c.station_mut(2).migrate(now, h, to),
        Err(StationError::NotInSession)
    );
    c.run_for(Duration::from_secs(3));
    assert!(c.station(2).is_closed());
    let m = c.station(0).master_of(h).expect("recovered");
    assert_eq!(c.station(1).master_of(h), Some(m));
    let k = (0..2).find(|&i| c.station(i).id() == m).unwrap();
    assert!(c.station(k).get::<Counter>(h).unwrap().is_master());
}

/// A master hands its object to a station that is leaving (the hand-over
/// crosses the leave): the session master takes the object over, as it
/// would any object of a station that left, and every station agrees.
#[test]
fn an_object_handed_to_a_leaving_station_is_recovered() {
    let mut c = mesh(3);
    // The leave reaches the session master before the hand-over does.
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[1], Duration::from_millis(30));
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    let r = c
        .station_mut(1)
        .publish(now, Counter::recovering(true))
        .unwrap();
    let h = r.handle();
    c.station_mut(1).migrate(now, h, StationId(3)).unwrap();
    c.run_for(Duration::from_secs(3));
    assert!(c.station(2).is_closed());
    for i in 0..2 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(1)), "station {i}");
    }
    assert!(c.station(0).get::<Counter>(h).unwrap().is_master());
}

/// A client asks to move while the only other server has crashed (nobody
/// noticed yet): once that server is declared failed the migration fails,
/// and what the client sent meanwhile goes out through its server.
#[test]
fn a_migration_to_a_server_that_crashed_fails_and_releases_what_was_held() {
    let mut c = Cluster::start(
        SimConfig::seeded(8),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Server, "s2"),
            cs(ProcessType::Client, "c3"),
        ],
    )
    .unwrap();
    let now = c.now();
    let r = c.station_mut(2).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    c.crash(1);
    let now = c.now();
    c.station_mut(2).send_migrate(now).unwrap();
    c.run_for(Duration::from_millis(50));
    r.lock().data.value = 2;
    let now = c.now();
    c.station_mut(2).update(now, h).unwrap();
    c.run_for(Duration::from_secs(4));
    let events = c.events(2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MigrateFailed { .. })),
        "{events:?}"
    );
    assert!(!c.station(2).is_migrating());
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().data.value, 2);
}

/// A new object is handed over at once, and the new master changes it
/// before the old master's announcement of the object reaches a slow
/// duplica: what the new master sent waits for the object there, and the
/// duplica ends with the new master's state.
#[test]
fn a_change_by_the_new_master_waits_for_the_object_to_arrive() {
    let mut c = mesh(4);
    c.sim
        .set_link_latency(c.addrs[1], c.addrs[3], Duration::from_millis(80));
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.station_mut(1).migrate(now, h, StationId(3)).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(2)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    c.station(2).get::<Counter>(h).unwrap().lock().data.value = 2;
    let now = c.now();
    c.station_mut(2).update(now, h).unwrap();
    c.run_for(Duration::from_millis(500));
    for i in 0..4 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(3)), "station {i}");
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            2,
            "station {i}"
        );
    }
}

/// An object is handed on twice in a row (A to B, B to C), and B's
/// hand-over reaches C before A's word that B is the master: C takes the
/// object once A's word arrives, and every station agrees C masters it.
#[test]
fn a_second_hand_over_that_overtakes_the_first_waits_for_it() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    // A's word to C is slow.
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[1], Duration::from_millis(80));
    let now = c.now();
    c.station_mut(0).migrate(now, h, StationId(3)).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(2)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    let now = c.now();
    c.station_mut(2).migrate(now, h, StationId(2)).unwrap();
    c.run_for(Duration::from_millis(500));
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
    for i in 0..3 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(2)), "station {i}");
    }
}

/// The session master leaves, and the new session master's word reaches a
/// station before the old one's goodbye (the old master's link to it is
/// slow): that station ends in the same session as the others, without
/// the station that left or the objects nobody kept.
#[test]
fn the_session_master_leaving_is_agreed_on_when_its_successor_speaks_first() {
    let mut c = mesh(3);
    let now = c.now();
    let kept = c
        .station_mut(0)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    let dropped = c
        .station_mut(0)
        .publish(now, Counter::recovering(false))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[2], Duration::from_millis(100));
    let now = c.now();
    c.station_mut(0).leave(now).unwrap();
    c.run_for(Duration::from_secs(3));
    for i in [1, 2] {
        let st = c.station(i);
        let ids: Vec<StationId> = st.stations().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![StationId(2), StationId(3)], "station {i}");
        assert_eq!(st.session_master(), StationId(2), "station {i}");
        assert_eq!(st.master_of(kept), Some(StationId(2)), "station {i}");
        assert!(!st.contains(dropped), "station {i}");
        assert!(st
            .objects()
            .iter()
            .all(|h| st.master_of(*h) != Some(StationId(1))));
    }
}

/// A station joins while a master has a change not sent yet, and the
/// change is undone before the next update: the newcomer ends with the
/// master's state like every other duplica.
#[test]
fn a_newcomer_gets_the_state_the_other_duplicas_have() {
    let mut c = mesh(2);
    let now = c.now();
    let r = c.station_mut(0).publish(now, Counter::new(5, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    r.lock().data.value = 9;
    let late = c
        .join(StationConfig::new(ProcessType::Server, "late"), 0)
        .unwrap();
    r.lock().data.value = 5;
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(300));
    for i in [1, late] {
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            5,
            "station {i}"
        );
    }
}

/// A server that is the session master leaves: its client is
/// disconnected (nothing reaches it any more), the other server's client
/// stays, and the survivors agree on who is left.
#[test]
fn the_client_of_a_server_that_leaves_is_disconnected() {
    let mut c = Cluster::start(
        SimConfig::seeded(9),
        registry(),
        vec![cs(ProcessType::Server, "s1"), cs(ProcessType::Server, "s2")],
    )
    .unwrap();
    let mine = c.join(cs(ProcessType::Client, "c3"), 0).unwrap();
    let other = c.join(cs(ProcessType::Client, "c4"), 1).unwrap();
    let now = c.now();
    c.station_mut(0).leave(now).unwrap();
    c.run_for(Duration::from_secs(5));
    assert!(c.station(0).is_closed());
    assert!(c.station(mine).is_closed());
    for i in [1, other] {
        let st = c.station(i);
        assert!(st.is_in_session(), "station {i}");
        let ids: Vec<StationId> = st.stations().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![StationId(2), StationId(4)], "station {i}");
    }
}

/// The session master leaves while its successor has just crashed: the
/// next session master recovers what the one that left mastered (its
/// station object included), and no station keeps a duplica whose master
/// is gone.
#[test]
fn objects_of_a_leaving_session_master_are_recovered_when_its_successor_crashed() {
    let mut c = mesh(4);
    let now = c.now();
    let kept = c
        .station_mut(0)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    c.crash(1);
    let now = c.now();
    c.station_mut(0).leave(now).unwrap();
    c.run_for(Duration::from_secs(5));
    for i in [2, 3] {
        let st = c.station(i);
        assert_eq!(st.session_master(), StationId(3), "station {i}");
        let ids: Vec<StationId> = st.stations().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![StationId(3), StationId(4)], "station {i}");
        assert_eq!(st.master_of(kept), Some(StationId(3)), "station {i}");
        for h in st.objects() {
            let m = st.master_of(h).unwrap();
            assert!(ids.contains(&m), "station {i}: {h:?} mastered by {m}");
        }
    }
}

/// A station leaves and comes back at once on the same address as a new
/// station, while its peers' links to the one that left still linger to
/// flush: what those links send is not taken for the new station's links,
/// which carry everything it is sent.
#[test]
fn a_station_back_on_the_address_of_one_that_left_gets_what_it_is_sent() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(3, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let addr = c.addrs[1];
    let now = c.now();
    c.station_mut(1).leave(now).unwrap();
    // Something on its way to the station that leaves, to flush.
    c.station(2).get::<Counter>(h).unwrap().lock().data.value = 4;
    c.station_mut(2).update(now, h).unwrap();
    c.run_for(Duration::from_millis(60));
    assert!(c.station(1).is_closed());
    let fresh = Station::new(StationConfig::new(ProcessType::Server, "again"), registry());
    c.sim.restart(addr, fresh);
    c.join_existing(1, 0).unwrap();
    for value in 5..10 {
        c.station(2).get::<Counter>(h).unwrap().lock().data.value = value;
        let now = c.now();
        c.station_mut(2).update(now, h).unwrap();
        c.run_for(Duration::from_millis(100));
    }
    c.run_for(Duration::from_secs(2));
    assert_eq!(
        c.station(1).get::<Counter>(h).map(|r| r.lock().data.value),
        Some(9)
    );
}

/// Two stations join one after the other and the first one's acceptance
/// is slow to arrive: the second, in already, talks to the first while it
/// still waits. Once both are in, each has the other's station object.
#[test]
fn a_station_slow_to_be_accepted_links_with_one_admitted_after_it() {
    let mut c = mesh(3);
    let reg = registry();
    let a = c.sim.add_node(Station::new(
        StationConfig::new(ProcessType::Server, "a"),
        reg.clone(),
    ));
    let b = c.sim.add_node(Station::new(
        StationConfig::new(ProcessType::Server, "b"),
        reg,
    ));
    c.addrs.push(a);
    c.addrs.push(b);
    // Joining through station 1, admitted by the session master, whose
    // link to `a` is slow: `a` is admitted first and hears so last.
    let (master, contact) = (c.addrs[0], c.addrs[1]);
    c.sim
        .set_link_latency(master, a, Duration::from_millis(150));
    let now = c.now();
    c.sim.node_mut(a).join(now, a, contact).unwrap();
    c.run_for(Duration::from_millis(30));
    let now = c.now();
    c.sim.node_mut(b).join(now, b, contact).unwrap();
    c.run_for(Duration::from_secs(3));
    let station_objects = |s: &Station| {
        s.objects()
            .into_iter()
            .filter(|h| h.class_id() == ClassId::STATION)
            .count()
    };
    for i in [3, 4] {
        assert!(c.station(i).is_in_session(), "station {i}");
        assert_eq!(station_objects(c.station(i)), 5, "station {i}");
    }
}

/// The session master admits a station and fails before one member heard
/// of it: the next session master announces every member again, and
/// everyone agrees on who is in the session.
#[test]
fn a_station_admitted_just_before_the_session_master_failed_is_known_to_all() {
    let mut c = mesh(4);
    let (master, deaf) = (c.addrs[0], c.addrs[3]);
    c.sim.set_link_loss(master, deaf, 1.0);
    let late = c.sim.add_node(Station::new(
        StationConfig::new(ProcessType::Server, "late"),
        registry(),
    ));
    c.addrs.push(late);
    let now = c.now();
    c.sim.node_mut(late).join(now, late, c.addrs[1]).unwrap();
    assert!(c.run_until(Duration::from_secs(2), |c| c.station(4).is_in_session()));
    c.run_for(Duration::from_millis(50));
    c.crash(0);
    c.sim.clear_link(master, deaf);
    c.run_for(Duration::from_secs(5));
    let ids = |s: &Station| s.stations().iter().map(|m| m.id).collect::<Vec<_>>();
    let want = ids(c.station(1));
    assert_eq!(want.len(), 4, "{want:?}");
    for i in 2..5 {
        assert_eq!(ids(c.station(i)), want, "station {i}");
    }
}

/// The station with the highest id fails, then the session master: the
/// next session master gives a newcomer a new id, not the failed one's
/// (whose objects, recovered, still carry it in their handles).
#[test]
fn a_new_session_master_never_gives_out_an_id_again() {
    let mut c = mesh(4);
    let now = c.now();
    let kept = c
        .station_mut(3)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    c.crash(3);
    c.run_for(Duration::from_secs(3));
    c.crash(0);
    c.run_for(Duration::from_secs(3));
    assert!(c.station(1).is_session_master());
    assert!(c.station(1).contains(kept));
    let late = c
        .join(StationConfig::new(ProcessType::Server, "late"), 1)
        .unwrap();
    assert!(
        c.station(late).id() > StationId(4),
        "{}",
        c.station(late).id()
    );
    let now = c.now();
    let h = c
        .station_mut(late)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    assert_ne!(h, kept);
}

/// An object is handed over and deleted at once by its new master; its
/// old master's announcement of it reaches one station after the
/// deletion (that link is slow): that station does not keep it.
#[test]
fn an_object_deleted_before_its_announcement_arrives_is_kept_nowhere() {
    let mut c = mesh(4);
    c.sim
        .set_link_latency(c.addrs[2], c.addrs[1], Duration::from_millis(80));
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.station_mut(2).migrate(now, h, StationId(4)).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(3)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    let now = c.now();
    c.station_mut(3).delete_main_ref(now, h).unwrap();
    c.run_for(Duration::from_secs(1));
    for i in 0..4 {
        assert!(!c.station(i).contains(h), "station {i}");
    }
}

/// An object is handed over and deleted at once by its new master, whose
/// deletion reaches a station before the old master's word of the
/// hand-over (that link is slow): the deletion waits for the word, and
/// nobody keeps the object.
#[test]
fn a_deletion_by_a_new_master_waits_for_the_word_of_the_hand_over() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    c.sim
        .set_link_latency(c.addrs[2], c.addrs[0], Duration::from_millis(80));
    let now = c.now();
    c.station_mut(2).migrate(now, h, StationId(4)).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(3)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    let now = c.now();
    c.station_mut(3).delete_main_ref(now, h).unwrap();
    c.run_for(Duration::from_secs(1));
    for i in 0..4 {
        assert!(!c.station(i).contains(h), "station {i}");
    }
}

/// A client publishes and changes an object, and hands another one over,
/// while it moves to a new server (what it sends waits for the switch),
/// and learns of the new server only after that: the new server passes
/// the change and the hand-over on though its own copies of the objects
/// come after them, and every station ends with both.
#[test]
fn a_migrating_clients_change_reaches_everyone_through_its_new_server() {
    let mut c = Cluster::start(
        SimConfig::seeded(12),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Client, "c2"),
            cs(ProcessType::Client, "c3"),
        ],
    )
    .unwrap();
    // What the first server tells the client is slow.
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[1], Duration::from_millis(300));
    let s4 = c.join(cs(ProcessType::Server, "s4"), 0).unwrap();
    assert!(c.station(1).station_info(c.station(s4).id()).is_none());
    let now = c.now();
    c.station_mut(1).send_migrate(now).unwrap();
    let r = c.station_mut(1).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    r.lock().data.value = 2;
    c.station_mut(1).update(now, h).unwrap();
    let given = c
        .station_mut(1)
        .publish(now, Counter::new(5, "given"))
        .unwrap()
        .handle();
    c.station_mut(1).migrate(now, given, StationId(3)).unwrap();
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.station(1).relay(), Some(c.station(s4).id()));
    for i in [0, 2, s4] {
        assert_eq!(
            c.station(i).get::<Counter>(h).map(|r| r.lock().data.value),
            Some(2),
            "station {i}"
        );
    }
    for i in [0, 1, 2, s4] {
        assert_eq!(
            c.station(i).master_of(given),
            Some(StationId(3)),
            "station {i}"
        );
    }
}

/// A client moves to another server and at once back, and its old server
/// (to be its new one again) sends it updates while the move back waits
/// (the server handing it over waits for another client's link): the
/// move completes, and what is sent to the client arrives.
#[test]
fn a_client_moving_back_to_its_old_server_at_once_completes() {
    let mut c = Cluster::start(
        SimConfig::seeded(13),
        registry(),
        vec![cs(ProcessType::Server, "s1"), cs(ProcessType::Server, "s2")],
    )
    .unwrap();
    let client = c.join(cs(ProcessType::Client, "c3"), 1).unwrap();
    let other = c.join(cs(ProcessType::Client, "c4"), 0).unwrap();
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(client).send_migrate(now).unwrap();
    assert!(c.run_until(Duration::from_secs(3), |c| !c
        .station(client)
        .is_migrating()));
    assert_eq!(c.station(client).relay(), Some(StationId(1)));
    // Back to the second server; the first one's link to the other client
    // is cut for a while, so the hand-over waits.
    let (s1, o) = (c.addrs[0], c.addrs[other]);
    c.sim.set_link_loss(s1, o, 1.0);
    let now = c.now();
    // Something from the first server to the other client, unacknowledged.
    c.station_mut(0)
        .publish(now, Counter::new(7, "unacked"))
        .unwrap();
    c.station_mut(client).send_migrate(now).unwrap();
    for v in 2..10 {
        c.run_for(Duration::from_millis(100));
        r.lock().data.value = v;
        let now = c.now();
        c.station_mut(1).update(now, h).unwrap();
    }
    c.sim.clear_link(s1, o);
    assert!(c.run_until(Duration::from_secs(5), |c| !c
        .station(client)
        .is_migrating()));
    assert_eq!(c.station(client).relay(), Some(StationId(2)));
    c.run_for(Duration::from_millis(500));
    assert_eq!(
        c.station(client)
            .get::<Counter>(h)
            .unwrap()
            .lock()
            .data
            .value,
        9
    );
}

/// A client hands its object to another client that leaves at that moment
/// (the leave reaches the server first): the server recovers the object,
/// passes the hand-over on, and every station ends with the server as the
/// object's master.
#[test]
fn a_clients_object_handed_to_a_client_that_leaves_is_recovered_everywhere() {
    let mut c = Cluster::start(
        SimConfig::seeded(14),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Client, "c2"),
            cs(ProcessType::Client, "c3"),
            cs(ProcessType::Client, "c4"),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[1], Duration::from_millis(40));
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    c.station_mut(1).migrate(now, h, StationId(3)).unwrap();
    c.run_for(Duration::from_secs(3));
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(h), Some(StationId(1)), "station {i}");
    }
}

/// A station joins and leaves at once, and a new station comes up on its
/// address and joins over a lossy network: what the session master's
/// lingering link to the one that left sends reaches the newcomer while it
/// waits to be admitted, and the newcomer's answers on the link it built
/// from those reach the session master's link to it. The newcomer's real
/// link numbers its packets on after them (a fresh numbering was taken
/// there for duplicates, acknowledged and dropped), and the object it
/// publishes the moment it is in reaches every station.
#[test]
fn a_newcomer_on_the_address_of_one_that_left_publishes_at_once_to_everyone() {
    let cfgs = (0..2)
        .map(|i| StationConfig::new(ProcessType::Server, format!("s{i}")))
        .collect();
    let lossy = SimConfig {
        loss: 0.25,
        ..SimConfig::seeded(115)
    };
    let mut c = Cluster::start(lossy, registry(), cfgs).unwrap();
    let brief = c
        .join(StationConfig::new(ProcessType::Server, "brief"), 0)
        .unwrap();
    let addr = c.addrs[brief];
    let now = c.now();
    c.station_mut(brief).leave(now).unwrap();
    c.run_for(Duration::from_millis(50));
    let mut cfg = StationConfig::new(ProcessType::Server, "again");
    cfg.seed = 99;
    c.sim.restart(addr, Station::new(cfg, registry()));
    let (now, contact) = (c.now(), c.addrs[0]);
    c.sim.node_mut(addr).join(now, addr, contact).unwrap();
    let mut published = None;
    c.sim.run_until_cond(Duration::from_secs(10), |sim| {
        let now = sim.now();
        let st = sim.node_mut(addr);
        let mut joined = false;
        while let Some(e) = st.poll_event() {
            joined |= matches!(e, Event::Joined { .. });
        }
        if joined {
            published = Some(st.publish(now, Counter::new(7, "y")).unwrap().handle());
        }
        published.is_some()
    });
    let h = published.expect("the newcomer is in");
    c.sim.set_config(SimConfig::seeded(115));
    c.run_for(Duration::from_secs(5));
    for i in 0..2 {
        assert!(c.station(i).contains(h), "station {i}");
    }
}

/// A master hands its object to a station admitted a moment ago, and the
/// master's word reaches a duplica before the session master's
/// announcement of the new station (the session master's link to it is
/// slow): the word waits for the announcement, and every station agrees
/// the new station masters the object.
#[test]
fn a_hand_over_to_a_station_not_announced_yet_waits_for_its_announcement() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    c.sim
        .set_link_latency(c.addrs[0], c.addrs[2], Duration::from_millis(300));
    let late = c
        .join(StationConfig::new(ProcessType::Server, "late"), 0)
        .unwrap();
    let to = c.station(late).id();
    assert!(!c.station(2).stations().iter().any(|s| s.id == to));
    let now = c.now();
    c.station_mut(1).migrate(now, h, to).unwrap();
    c.run_for(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(c.station(i).master_of(h), Some(to), "station {i}");
    }
}

/// A master hands its object over and fails before the new master got it
/// (nor the session master the word of it), though one duplica got the
/// word: the session master recovers the object, and that duplica takes
/// the recovery instead of waiting in vain for a word of the new master,
/// which follows the recovery too.
#[test]
fn a_recovery_after_a_hand_over_lost_with_its_master_is_taken_everywhere() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let a = c.addrs.clone();
    c.sim.set_link_loss(a[2], a[3], 1.0);
    c.sim.set_link_loss(a[2], a[0], 1.0);
    let now = c.now();
    c.station_mut(2).migrate(now, h, StationId(4)).unwrap();
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.station(1).master_of(h), Some(StationId(4)));
    c.crash(2);
    c.sim.clear_link(a[2], a[3]);
    c.sim.clear_link(a[2], a[0]);
    c.run_for(Duration::from_secs(6));
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(h), Some(StationId(1)), "station {i}");
    }
}

/// A client moves to the other server and back a failure timeout later,
/// when the first server's link to it has just run out of its time to
/// close while the client's link to that server still lingers (it started
/// closing a moment later): both ends take up the same link again (kept
/// dormant on the server), the move back completes, and what the client
/// publishes then reaches both servers.
#[test]
fn a_client_moving_back_to_a_server_once_its_link_ran_out_gets_through() {
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Server, "s2"),
            cs(ProcessType::Client, "c3"),
        ],
    )
    .unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(2).relay(), Some(StationId(1)));
    let now = c.now();
    c.station_mut(2).send_migrate(now).unwrap();
    c.run_for(Duration::from_millis(1505));
    assert_eq!(c.station(2).relay(), Some(StationId(2)));
    let now = c.now();
    c.station_mut(2).send_migrate(now).unwrap();
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.station(2).relay(), Some(StationId(1)));
    assert!(!c.station(2).is_migrating());
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(6, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_secs(2));
    for i in 0..2 {
        assert!(c.station(i).contains(h), "server {i}");
    }
}

/// A station hands its object over just after the session master declared
/// it failed (a cut between the two; the session master's word is late
/// elsewhere): once, the new master refused the session master's
/// `Delete`, so a third station that took the recovery's word lost the
/// object the new master kept. The session master's recovery waits for
/// every member's answer to its word (`Holding`): the new master says it
/// holds the object, and keeps it everywhere.
#[test]
fn an_object_handed_over_by_a_station_declared_failed_goes_with_the_recovery() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(3, "late"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let ft = c.station(0).config().failure_timeout;
    let [one, two, three, four] = [0, 1, 2, 3].map(|i| c.addrs[i]);
    let gone = c.station(2).id();
    c.sim.partition(&[one], &[three]);
    c.run_for(ft * 7 / 10);
    c.sim.block(&[one], &[two, four]);
    assert!(c.run_until(ft, |c| c.station(0).station_info(gone).is_none()));
    assert!(c.station(1).station_info(gone).is_some(), "2 not told yet");
    let (now, to) = (c.now(), c.station(1).id());
    c.station_mut(2).migrate(now, h, to).unwrap();
    c.run_for(Duration::from_millis(60));
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
    // The session master's word reaches 2, and 4 only later.
    c.sim.heal();
    c.sim.partition(&[one], &[three]);
    c.sim.block(&[one], &[four]);
    c.run_for(Duration::from_millis(100));
    c.sim.heal();
    c.sim.partition(&[one], &[three]);
    c.run_for(ft * 3);
    for i in [0, 1, 3] {
        assert!(c.station(i).is_in_session(), "station {i}");
        assert_eq!(c.station(i).master_of(h), Some(to), "station {i}");
    }
    assert_eq!(doubly_mastered(&c), Vec::<DOHandle>::new());
}

/// A server hands a client over to another server and tells the session
/// master, which fails before it passes the word on (the word is slow to
/// reach it). The server tells the new session master again (itself, or
/// the server the client went to), which tells everyone: once the old
/// server is gone too, the last server still reaches the client (through
/// the server it moved to) with its object.
#[test]
fn a_hand_over_the_failed_session_master_did_not_pass_on_is_told_to_the_next() {
    // The old server takes over; then the server the client went to does.
    hand_over_lost_with_the_session_master(1, 2);
    hand_over_lost_with_the_session_master(2, 1);
}

/// The client of server `from` moves (to server `to`) while the session
/// master (server 0) fails; server 3 must reach it afterwards.
fn hand_over_lost_with_the_session_master(from: usize, to: usize) {
    let mut c = servers(7, 4);
    // A client of the session master, so that the hand-over goes to the
    // least loaded other server, the lowest.
    c.join(cs(ProcessType::Client, "c5"), 0).unwrap();
    let client = c.join(cs(ProcessType::Client, "c6"), from).unwrap();
    c.run_for(Duration::from_millis(300));
    let id = c.station(client).id();
    let [master, old, new] = [0, from, to].map(|i| c.station(i).id());
    assert_eq!(c.station(client).relay(), Some(old));
    let (a0, a1) = (c.addrs[0], c.addrs[from]);
    c.sim.set_link_latency(a0, a1, Duration::from_millis(400));
    c.run_for(Duration::from_millis(500));
    let now = c.now();
    c.station_mut(client).send_migrate(now).unwrap();
    assert!(c.run_until(Duration::from_secs(5), |c| !c
        .station(client)
        .is_migrating()));
    assert_eq!(c.station(client).relay(), Some(new));
    // The old server's word is still on its way to the session master.
    assert_eq!(c.station(3).station_info(id).unwrap().relay, Some(old));
    c.crash(0);
    let ft = c.station(1).config().failure_timeout;
    assert!(c.run_until(ft * 4, |c| c.station(1).is_session_master()));
    c.run_for(Duration::from_millis(300));
    for i in [1, 2, 3] {
        assert_eq!(
            c.station(i).station_info(id).unwrap().relay,
            Some(new),
            "station {i}"
        );
    }
    let now = c.now();
    c.station_mut(from).leave(now).unwrap();
    assert!(c.run_until(ft * 4, |c| c.station(3).station_info(old).is_none()));
    let now = c.now();
    let h = c
        .station_mut(3)
        .publish(now, Counter::new(4, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_secs(1));
    assert!(c.station(3).station_info(master).is_none());
    assert_eq!(c.station(client).relay(), Some(new));
    assert!(c.station(client).contains(h));
}

/// A master hands its object over and fails before its `Migrate` reaches
/// the new master, while its word of the move reached everyone else: the
/// session master, which saw the hand-over, tells the new master, which
/// masters the object everywhere (before, it held a duplica of a gone
/// station's object and nobody mastered it).
#[test]
fn a_hand_over_whose_migrate_was_lost_with_the_old_master_is_told_to_the_new_one() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    for i in [0, 1, 3] {
        assert!(c.station(i).contains(h), "station {i}");
    }
    // Nothing the old master sends reaches the new one any more.
    let (old, new) = (c.addrs[2], c.addrs[1]);
    c.sim.block(&[old], &[new]);
    let to = c.station(1).id();
    let now = c.now();
    c.station_mut(2).migrate(now, h, to).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| [0, 3]
        .iter()
        .all(|&i| c.station(i).master_of(h) == Some(to))));
    assert_ne!(c.station(1).master_of(h), Some(to));
    c.crash(2);
    let ft = c.station(0).config().failure_timeout;
    c.run_for(ft * 4);
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(h), Some(to), "station {i}");
    }
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
}

/// A server that refused a takeover (it still heard the old session
/// master) and follows that station later learns the stations it admitted
/// meanwhile: before, it never did, and as session master later it could
/// give such a station's id to another.
#[test]
fn a_server_that_refused_a_takeover_learns_whom_its_successor_admitted() {
    let mut c = servers(11, 3);
    c.run_for(Duration::from_millis(300));
    let [first, second] = [0, 1].map(|i| c.station(i).id());
    // The second server stops hearing the session master; the third does not.
    c.sim.block(&[c.addrs[0]], &[c.addrs[1]]);
    let ft = c.station(0).config().failure_timeout;
    assert!(c.run_until(ft * 4, |c| c.station(1).is_session_master()));
    assert_eq!(c.station(2).session_master(), first);
    let joiner = c.join(cs(ProcessType::Server, "s4"), 1).unwrap();
    let id = c.station(joiner).id();
    assert!(c.station(2).station_info(id).is_none());
    c.crash(0);
    assert!(c.run_until(ft * 4, |c| c.station(2).session_master() == second));
    c.run_for(Duration::from_millis(500));
    assert!(c.station(2).station_info(id).is_some());
    assert_eq!(c.station(joiner).session_master(), second);
}

/// A client moves to another server and at once back, while the session
/// master's word of the first move is still on its way to the server it
/// left: that word, arriving once the server took the client back, must
/// not move the client away again (it dropped the link the client was
/// reconnecting on, and the client waited for a `Welcome` for ever, its
/// messages to the others held).
#[test]
fn a_late_word_of_a_clients_first_move_does_not_undo_its_move_back() {
    let mut c = servers(13, 3);
    // A client of the session master, so that the moves go between the others.
    c.join(cs(ProcessType::Client, "c4"), 0).unwrap();
    let client = c.join(cs(ProcessType::Client, "c5"), 1).unwrap();
    c.run_for(Duration::from_millis(300));
    let [sm, s2, s3, cl] = [0, 1, 2, client].map(|i| c.addrs[i]);
    let [second, third] = [1, 2].map(|i| c.station(i).id());
    assert_eq!(c.station(client).relay(), Some(second));
    // The session master's word to the second server is held back.
    c.sim.block(&[sm], &[s2]);
    let now = c.now();
    c.station_mut(client).send_migrate(now).unwrap();
    assert!(c.run_until(Duration::from_millis(600), |c| !c
        .station(client)
        .is_migrating()));
    assert_eq!(c.station(client).relay(), Some(third));
    // Back to the second server; its `Reconnect` and the third server's
    // word of this move to the session master are held back too.
    c.sim.block(&[cl], &[s2]);
    c.sim.block(&[s3], &[sm]);
    let now = c.now();
    c.station_mut(client).send_migrate(now).unwrap();
    assert!(
        c.run_until(Duration::from_millis(400), |c| c.station(client).relay()
            == Some(second))
    );
    assert!(c.station(client).is_migrating(), "waits for its Welcome");
    // The late word of the first move reaches the second server...
    c.sim.heal();
    c.sim.block(&[cl], &[s2]);
    c.sim.block(&[s3], &[sm]);
    c.run_for(Duration::from_millis(300));
    // ...then the client's `Reconnect`, then the word of the move back.
    c.sim.heal();
    c.sim.block(&[s3], &[sm]);
    c.run_for(Duration::from_millis(300));
    c.sim.heal();
    assert!(c.run_until(Duration::from_secs(3), |c| !c
        .station(client)
        .is_migrating()));
    assert_eq!(c.station(client).relay(), Some(second));
    let now = c.now();
    let h = c
        .station_mut(client)
        .publish(now, Counter::new(6, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_secs(1));
    for i in 0..3 {
        assert!(c.station(i).contains(h), "server {i}");
    }
}

/// A client hands its object to a client of another server, and its own
/// server crashes before it passed the `Migrate` (or even the object) on
/// to that server: the new master never had the object, while a third
/// server that had it took the hand-over's word. Once the old master is
/// declared failed with its server, that server asks the new master,
/// which answers that it has no such object: the duplica nobody masters
/// is deleted (before, it stayed, naming a master that did not have it).
#[test]
fn a_duplica_of_an_object_whose_new_master_never_got_it_is_deleted() {
    let mut c = servers(17, 3);
    let old = c.join(cs(ProcessType::Client, "c4"), 1).unwrap();
    let new = c.join(cs(ProcessType::Client, "c5"), 0).unwrap();
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(old).relay(), Some(c.station(1).id()));
    assert_eq!(c.station(new).relay(), Some(c.station(0).id()));
    // Nothing the old master's server passes on reaches the session master
    // (and through it, the new master).
    let (s1, s2) = (c.addrs[0], c.addrs[1]);
    c.sim.block(&[s2], &[s1]);
    let now = c.now();
    let h = c
        .station_mut(old)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(150));
    assert!(c.station(2).contains(h));
    let to = c.station(new).id();
    let now = c.now();
    c.station_mut(old).migrate(now, h, to).unwrap();
    assert!(
        c.run_until(Duration::from_millis(300), |c| c.station(2).master_of(h)
            == Some(to))
    );
    assert!(!c.station(new).contains(h));
    c.crash(1);
    c.sim.heal();
    let ft = c.station(0).config().failure_timeout;
    c.run_for(ft * 4);
    assert!(c.station(0).station_info(c.station(2).id()).is_some());
    for i in [0, 2, new] {
        assert!(!c.station(i).contains(h), "station {i} holds it");
    }
}

/// A station holds one station's claim to master an object (here a
/// cheater's, in the swarm a would-be session master's of a split view)
/// when the real new master, which the old master handed it to, names
/// itself and sends a change before the old master's word arrives: both
/// claims wait, and the old master's word brings the real one's change
/// (before, the second claim and its change were refused, and the duplica
/// kept the old state for good).
#[test]
fn a_second_claim_to_master_an_object_waits_beside_the_first() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let claimant = c.station(1).id();
    let dest = c.station(3).id();
    let now = c.now();
    assert!(netz_core::forge::send_as(
        c.station_mut(1),
        now,
        dest,
        netz_core::forge::Forged::MasterChanged {
            handle: h,
            master: claimant,
        },
    ));
    c.run_for(Duration::from_millis(100));
    // The old master's word to station 3 is held back.
    c.sim.block(&[c.addrs[2]], &[c.addrs[3]]);
    let to = c.station(0).id();
    let now = c.now();
    c.station_mut(2).migrate(now, h, to).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(0)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    c.station(0).get::<Counter>(h).unwrap().lock().data.value = 9;
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(3).master_of(h), Some(c.station(2).id()));
    c.sim.heal();
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.station(3).master_of(h), Some(to));
    assert_eq!(c.station(3).get::<Counter>(h).unwrap().lock().data.value, 9);
}

/// The session master saw an object go from one station to another and,
/// once the first one failed, tells the second it masters the object
/// (its `Migrate` may have died with the first). The second had handed
/// it to the session master meanwhile, whose `Migrate` is slow to come:
/// the word is stale, and the second keeps naming the session master
/// (before, it took the word for a hand-over back from its master, and
/// the object had two masters once the `Migrate` came).
#[test]
fn a_stale_word_of_a_lost_hand_over_does_not_make_a_second_master() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let second = c.station(3).id();
    let now = c.now();
    c.station_mut(2).migrate(now, h, second).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| (0..4)
        .all(|i| c.station(i).master_of(h) == Some(second))));
    c.crash(2);
    c.run_for(Duration::from_millis(900));
    let (sm, b) = (c.addrs[0], c.addrs[3]);
    c.sim.set_link_latency(sm, b, Duration::from_millis(1200));
    let master = c.station(0).id();
    let now = c.now();
    c.station_mut(3).migrate(now, h, master).unwrap();
    let ft = c.station(0).config().failure_timeout;
    let masters = |c: &Cluster| -> Vec<usize> {
        [0, 1, 3]
            .into_iter()
            .filter(|&i| {
                c.station(i)
                    .get::<Counter>(h)
                    .is_some_and(|r| r.is_master())
            })
            .collect()
    };
    for _ in 0..40 {
        c.run_for(ft / 10);
        assert!(masters(&c).len() <= 1, "two masters: {:?}", masters(&c));
    }
    c.sim.clear_link(sm, b);
    c.run_for(ft);
    assert_eq!(masters(&c), vec![0]);
}

/// A duplica station does not hear the old master's word of a hand-over
/// for longer than a claim waits: the new master's changes are refused
/// there meanwhile. Once the word comes, the duplica asks the new master
/// (`DuplicaHeld`), which sends its whole state (before, the duplica kept
/// what it had until the next change, or for good).
#[test]
fn a_duplica_that_refused_its_new_masters_changes_gets_its_state_once_it_knows_it() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let (old, late) = (c.addrs[2], c.addrs[3]);
    c.sim.block(&[old], &[late]);
    let to = c.station(0).id();
    let now = c.now();
    c.station_mut(2).migrate(now, h, to).unwrap();
    assert!(c.run_until(Duration::from_secs(1), |c| c
        .station(0)
        .get::<Counter>(h)
        .is_some_and(|r| r.is_master())));
    // The new master's claim waits at station 3 for twice the failure
    // timeout, then goes; a change after that is refused there.
    let ft = c.station(0).config().failure_timeout;
    c.run_for(ft * 2 + Duration::from_millis(200));
    c.station(0).get::<Counter>(h).unwrap().lock().data.value = 9;
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(3).master_of(h), Some(c.station(2).id()));
    assert!(c
        .station(3)
        .stats()
        .unauthorized_by_kind
        .contains_key("Update"));
    c.sim.heal();
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.station(3).master_of(h), Some(to));
    assert_eq!(c.station(3).get::<Counter>(h).unwrap().lock().data.value, 9);
}

/// The session master admits a station and fails before its word of it
/// reaches anyone else: the next session master does not know that id
/// was given, and must not give it again (before, it gave the next
/// joiner the same id, and the others' links to the first one followed
/// the second's datagrams).
#[test]
fn a_new_session_master_does_not_give_out_an_id_its_predecessor_gave() {
    let mut c = mesh(3);
    c.run_for(Duration::from_millis(300));
    let (sm, others) = (c.addrs[0], [c.addrs[1], c.addrs[2]]);
    c.sim.block(&[sm], &others);
    let first = c
        .join(StationConfig::new(ProcessType::Server, "s4"), 0)
        .unwrap();
    let first_id = c.station(first).id();
    assert!(c.station(1).station_info(first_id).is_none());
    c.crash(0);
    c.sim.heal();
    let ft = c.station(1).config().failure_timeout;
    assert!(c.run_until(ft * 4, |c| c.station(1).is_session_master()));
    let second = c
        .join(StationConfig::new(ProcessType::Server, "s5"), 1)
        .unwrap();
    assert_ne!(c.station(second).id(), first_id);
}

/// An object is handed on twice, the second time by the session master
/// (A to the session master, which hands it at once to B), while A's last
/// change travels slowly to a duplica: the session master's word moving
/// the object on waits there with its own claim, A's change counts, and
/// the duplica ends with the master's state (before, the session master's
/// word was taken for a recovery, and A's late change was refused).
#[test]
fn a_hand_on_by_the_session_master_does_not_overtake_the_old_masters_last_change() {
    let mut c = mesh(4);
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    c.sim
        .set_link_latency(c.addrs[1], c.addrs[3], Duration::from_millis(80));
    r.lock().data.value = 2;
    let now = c.now();
    c.station_mut(1).update(now, h).unwrap();
    c.station_mut(1).migrate(now, h, StationId(1)).unwrap();
    assert!(c.run_until(Duration::from_millis(60), |c| c
        .station(0)
        .get::<Counter>(h)
        .is_some_and(|o| o.is_master())));
    let now = c.now();
    c.station_mut(0).migrate(now, h, StationId(3)).unwrap();
    c.run_for(Duration::from_millis(600));
    for i in 0..4 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(3)), "station {i}");
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            2,
            "station {i}"
        );
    }
}

/// A client hands its object to a client of another server, and its own
/// server crashes before the last change and the `Migrate` reached the new
/// master's server (the session master got both). The session master
/// names the new master master, which announces the object to everyone
/// with its whole state, through its server: that server hears the
/// session master's word first, so it passes the announcement on (before,
/// it refused the announcement to the session master, whose duplica kept
/// the change the new master never had).
#[test]
fn a_new_master_named_by_the_session_master_is_heard_through_its_server() {
    let mut c = servers(19, 3);
    let old = c.join(cs(ProcessType::Client, "c4"), 1).unwrap();
    let new = c.join(cs(ProcessType::Client, "c5"), 2).unwrap();
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(old).relay(), Some(c.station(1).id()));
    assert_eq!(c.station(new).relay(), Some(c.station(2).id()));
    let now = c.now();
    let r = c
        .station_mut(old)
        .publish(now, Counter::recovering(true))
        .unwrap();
    let h = r.handle();
    assert!(
        c.run_until(Duration::from_millis(500), |c| c.station(new).contains(h)
            && c.station(0).contains(h))
    );
    // What the old master's server passes on from now on reaches the
    // session master only.
    let (s2, s3) = (c.addrs[1], c.addrs[2]);
    c.sim.block(&[s2], &[s3]);
    r.lock().data.value = 9;
    let to = c.station(new).id();
    let now = c.now();
    c.station_mut(old).update(now, h).unwrap();
    c.station_mut(old).migrate(now, h, to).unwrap();
    assert!(
        c.run_until(Duration::from_millis(300), |c| c.station(0).master_of(h)
            == Some(to))
    );
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().data.value, 9);
    c.crash(1);
    c.sim.heal();
    let ft = c.station(0).config().failure_timeout;
    c.run_for(ft * 4);
    assert!(c.station(new).get::<Counter>(h).unwrap().is_master());
    let value = c.station(new).get::<Counter>(h).unwrap().lock().data.value;
    for i in [0, 2, new] {
        assert_eq!(c.station(i).master_of(h), Some(to), "station {i}");
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            value,
            "station {i}"
        );
    }
}

/// A server reports its client silent (a cut longer than the failure
/// timeout), and the session master declares the client failed on that
/// word and recovers its object; then the server hears the client again,
/// which hands the object to the other server before it learns it is out.
/// The server does not pass that hand-over on: the object never has two
/// masters (the session master by its recovery, the other server by the
/// client's word) and ends with the session master.
#[test]
fn a_client_reported_silent_hands_nothing_over() {
    let mut c = servers(41, 3);
    let cl = c.join(cs(ProcessType::Client, "c4"), 2).unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(cl).relay(), Some(StationId(3)));
    let now = c.now();
    let h = c
        .station_mut(cl)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(1).master_of(h), Some(StationId(4)));
    // The session master's word reaches the servers late.
    for s in [1, 2] {
        c.sim
            .set_link_latency(c.addrs[0], c.addrs[s], Duration::from_millis(60));
    }
    let (s3, client) = (c.addrs[2], c.addrs[cl]);
    // The client still hears its server: it does not find it silent.
    c.sim.block(&[client], &[s3]);
    let id = c.station(cl).id();
    let failed = c.run_until(Duration::from_secs(10), |c| {
        c.station(0).station_info(id).is_none()
    });
    assert!(failed, "the session master declared the client failed");
    c.sim.heal();
    assert!(c.station(cl).is_in_session());
    let now = c.now();
    c.station_mut(cl).migrate(now, h, StationId(2)).unwrap();
    for _ in 0..300 {
        c.run_for(Duration::from_millis(1));
        let masters: Vec<usize> = (0..3)
            .filter(|&i| {
                c.station(i)
                    .get::<Counter>(h)
                    .is_some_and(|o| o.is_master())
            })
            .collect();
        assert!(masters.len() <= 1, "two masters of {h:?}: {masters:?}");
    }
    for i in 0..3 {
        assert_eq!(c.station(i).master_of(h), Some(StationId(1)), "station {i}");
    }
    assert!(c.station(2).stats().reported_client_messages >= 1);
}

/// A server reports its client silent to a session master that fails
/// before the word arrives, and hears the client again: it reports the
/// client once more to the successor, which declares it failed and
/// recovers its object; meanwhile nothing the client says is passed on.
#[test]
fn a_client_reported_to_a_session_master_that_failed_is_reported_to_its_successor() {
    let mut c = servers(43, 3);
    let cl = c.join(cs(ProcessType::Client, "c4"), 2).unwrap();
    c.run_for(Duration::from_millis(200));
    let now = c.now();
    let h = c
        .station_mut(cl)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let (s1, s3, client) = (c.addrs[0], c.addrs[2], c.addrs[cl]);
    let ft = StationConfig::default().failure_timeout;
    // The client still hears its server; its server stops hearing it, and
    // its report never reaches the session master, which then crashes.
    c.sim.block(&[client], &[s3]);
    c.run_for(ft - Duration::from_millis(100));
    c.sim.block(&[s3], &[s1]);
    c.run_for(Duration::from_millis(250));
    c.crash(0);
    c.sim.heal();
    let now = c.now();
    // Heard again, it hands its object to the other server.
    c.station_mut(cl).migrate(now, h, StationId(2)).unwrap();
    let gone = c.run_until(Duration::from_secs(10), |c| {
        c.station(1).is_session_master() && c.station(1).master_of(h) == Some(StationId(2))
    });
    assert!(gone, "the successor recovered the client's object");
    c.run_for(Duration::from_millis(500));
    for i in [1, 2] {
        assert!(
            !c.station(i).stations().iter().any(|s| s.id == StationId(4)),
            "station {i} still counts the client"
        );
        assert_eq!(c.station(i).master_of(h), Some(StationId(2)), "station {i}");
    }
    assert!(c.station(1).get::<Counter>(h).unwrap().is_master());
    assert!(!c.station(2).get::<Counter>(h).unwrap().is_master());
    assert!(c.station(2).stats().reported_client_messages >= 1);
}

/// In a session of three servers, a client of s2 moves to s3 while
/// nothing s2 sends reaches the session master s1 (a client on s1 makes s3
/// the least loaded); the cut stays. Returns the cluster, the client's
/// index and its id.
fn moved_unheard(mut c: Cluster) -> (Cluster, usize, StationId) {
    c.join(cs(ProcessType::Client, "d4"), 0).unwrap();
    let cl = c.join(cs(ProcessType::Client, "c5"), 1).unwrap();
    c.run_for(Duration::from_millis(200));
    let me = c.station(cl).id();
    assert_eq!(c.station(cl).relay(), Some(StationId(2)));
    let (s1, s2) = (c.addrs[0], c.addrs[1]);
    c.sim.block(&[s2], &[s1]);
    let now = c.now();
    c.station_mut(cl).send_migrate(now).unwrap();
    let moved = c.run_until(Duration::from_millis(500), |c| {
        c.station(cl).relay() == Some(StationId(3))
    });
    assert!(moved, "the client moved to s3");
    (c, cl, me)
}

/// A client's server hands it to another server, which leaves before the
/// session master hears of the move: the session master, which still
/// counted the client on its first server, declares it gone once the word
/// of the move comes (nothing reaches it any more), instead of counting it
/// for ever.
#[test]
fn a_client_handed_to_a_server_that_left_is_declared_gone() {
    let (mut c, _, me) = moved_unheard(servers(47, 3));
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    c.run_for(Duration::from_millis(300));
    c.sim.heal();
    c.run_for(Duration::from_secs(3));
    for i in [0, 1] {
        assert!(
            !c.station(i).stations().iter().any(|s| s.id == me),
            "station {i} still counts the client"
        );
    }
}

/// A client moves to another server and crashes there before the session
/// master hears of the move: the new server reports it silent to a
/// session master that still counts it on its first server and takes no
/// such word; the new server tells it again while the client stays silent,
/// and once the word of the move has come the client is declared gone.
#[test]
fn a_client_that_crashed_after_a_move_the_session_master_missed_is_declared_gone() {
    let quick = StationConfig {
        failure_timeout: Duration::from_millis(500),
        ..cs(ProcessType::Server, "s3")
    };
    let c = Cluster::start(
        SimConfig::seeded(49),
        registry(),
        vec![
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Server, "s2"),
            quick,
        ],
    )
    .unwrap();
    // The word of the move reaches the session master after s3's report.
    let (mut c, cl, me) = moved_unheard(c);
    c.crash(cl);
    c.run_for(Duration::from_millis(900));
    c.sim.heal();
    c.run_for(Duration::from_secs(3));
    for i in 0..3 {
        assert!(
            !c.station(i).stations().iter().any(|s| s.id == me),
            "station {i} still counts the client"
        );
    }
}

/// A server changes its object and hands it over; two duplicas, the
/// session master one of them, hear neither (their links to the old
/// master are cut), only the new master's word, which waits for the old
/// master's. The old master crashes: the duplicas believe the new master
/// now, and ask it for its state, since the old master's last change died
/// with it. They end with the master's state, though nobody changes it
/// again.
#[test]
fn a_duplica_that_missed_the_last_change_before_a_hand_over_gets_it_from_the_new_master() {
    let mut c = servers(3, 4);
    let now = c.now();
    let r = c
        .station_mut(2)
        .publish(now, Counter::recovering(true))
        .unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    assert!(c.station(3).get::<Counter>(h).is_some());
    let a = c.addrs.clone();
    c.sim.set_link_loss(a[2], a[3], 1.0);
    c.sim.set_link_loss(a[2], a[0], 1.0);
    r.lock().data.value = 5;
    let now = c.now();
    c.station_mut(2).update(now, h).unwrap();
    c.station_mut(2).migrate(now, h, StationId(2)).unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(1).master_of(h), Some(StationId(2)));
    // The new master's own word waits there for the old master's.
    assert_eq!(c.station(0).master_of(h), Some(StationId(3)));
    assert_eq!(c.station(3).master_of(h), Some(StationId(3)));
    c.crash(2);
    c.sim.clear_link(a[2], a[3]);
    c.sim.clear_link(a[2], a[0]);
    c.run_for(Duration::from_secs(6));
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(h), Some(StationId(2)), "station {i}");
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            5,
            "station {i}"
        );
    }
}

/// A station stops hearing the session master (one way: the master still
/// hears it), takes over and recovers the master's object; the others
/// still hear the old master and refuse the takeover. The old master
/// then hands the object to one of them and crashes. When they follow
/// the new session master, the one that took the object yields it at
/// once to the recovery it had been told of: never two masters.
#[test]
fn a_station_handed_an_object_the_successor_recovered_yields_when_it_follows_the_successor() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let a = c.addrs.clone();
    c.sim.block(&[a[0]], &[a[1]]);
    let took_over = c.run_until(Duration::from_secs(5), |c| c.station(1).is_session_master());
    assert!(took_over, "station 1 took over");
    assert_eq!(c.station(2).session_master(), StationId(1));
    let now = c.now();
    c.station_mut(0).migrate(now, h, StationId(3)).unwrap();
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.station(2).master_of(h), Some(StationId(3)));
    c.crash(0);
    c.sim.heal();
    let mut followed = false;
    for _ in 0..600 {
        c.run_for(Duration::from_millis(10));
        // Once it follows the new session master, it is one session with
        // it: the object has one master there.
        if c.station(2).session_master() == StationId(2) {
            followed = true;
            let masters = [1, 2]
                .into_iter()
                .filter(|&i| {
                    c.station(i)
                        .get::<Counter>(h)
                        .is_some_and(|o| o.is_master())
                })
                .count();
            assert!(masters <= 1, "two masters of {h:?}");
        }
    }
    assert!(followed);
    assert_eq!(doubly_mastered(&c), Vec::<DOHandle>::new());
    let master = c.station(1).master_of(h);
    assert!(master.is_some());
    for i in [2, 3] {
        assert_eq!(c.station(i).master_of(h), master, "station {i}");
    }
}

/// A mesh of three where station 2 lacks station 0's counter (the
/// master's word that it is deleted, to station 2 alone), though station
/// 0 still counts it among the duplicas.
fn a_duplica_lost(c: &mut Cluster) -> Ref<Counter> {
    let now = c.now();
    let r = c.station_mut(0).publish(now, Counter::new(1, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    let to = c.station(2).id();
    let now = c.now();
    assert!(netz_core::forge::send_as(
        c.station_mut(0),
        now,
        to,
        netz_core::forge::Forged::Delete { handle: h }
    ));
    c.run_for(Duration::from_millis(300));
    assert!(!c.station(2).contains(h));
    r
}

/// A station lacks an object whose master counts it among the duplicas
/// (the announcement was lost on its way: a server that could not check
/// it refused it). The master's next change makes it ask the master, who
/// sends it the whole state.
#[test]
fn a_station_that_lacks_an_object_whose_changes_come_asks_its_master_for_it() {
    let mut c = mesh(3);
    let r = a_duplica_lost(&mut c);
    let h = r.handle();
    r.lock().data.value = 4;
    let now = c.now();
    c.station_mut(0).update(now, h).unwrap();
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(2).stats().missing_objects_asked, 1);
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().data.value, 4);
    assert_eq!(c.station(2).master_of(h), Some(StationId(1)));
}

/// The session master declares a station failed that it merely cannot
/// hear, and the station hands its recoverable object over before the
/// word reaches the new master (the session master's word is late
/// there). The session master recovers nothing before every member
/// answered what the gone station handed it: the new master keeps the
/// object, and at no moment do two stations that follow the session
/// master both master it (the session master by a recovery, the new
/// master by the hand-over).
#[test]
fn a_recovery_waits_for_the_members_word_of_a_hand_over_in_flight() {
    let mut c = mesh(4);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let ft = c.station(0).config().failure_timeout;
    let [one, two, three, _] = [0, 1, 2, 3].map(|i| c.addrs[i]);
    let gone = c.station(2).id();
    c.sim.partition(&[one], &[three]);
    c.sim.set_link_latency(one, two, Duration::from_millis(80));
    assert!(c.run_until(ft * 2, |c| c.station(0).station_info(gone).is_none()));
    assert!(c.station(1).station_info(gone).is_some(), "2 not told yet");
    let (now, to) = (c.now(), c.station(1).id());
    c.station_mut(2).migrate(now, h, to).unwrap();
    let sm = c.station(0).id();
    for _ in 0..(3 * ft.as_millis() as usize) {
        c.run_for(Duration::from_millis(1));
        let masters: Vec<usize> = [0, 1, 3]
            .into_iter()
            .filter(|&i| {
                let st = c.station(i);
                st.session_master() == sm && st.get::<Counter>(h).is_some_and(|o| o.is_master())
            })
            .collect();
        assert!(masters.len() <= 1, "two masters of {h:?}: {masters:?}");
    }
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(h), Some(to), "station {i}");
    }
}

/// The same with the word of a hand-over: a station that lacks the object
/// (its announcement was lost) hears that it moved, and asks the new
/// master, who sends it the whole state.
#[test]
fn a_station_that_lacks_an_object_that_moves_asks_its_new_master_for_it() {
    let mut c = mesh(3);
    let r = a_duplica_lost(&mut c);
    let h = r.handle();
    r.lock().data.value = 4;
    let now = c.now();
    c.station_mut(0).migrate(now, h, StationId(2)).unwrap();
    c.run_for(Duration::from_millis(300));
    assert!(c.station(2).stats().missing_objects_asked >= 1);
    assert_eq!(c.station(2).master_of(h), Some(StationId(2)));
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().data.value, 4);
}
