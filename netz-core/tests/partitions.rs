//! A session split by a partition becomes one again when the network
//! heals: the side with more of the session's stations (servers, in
//! client-server) lives on, on a tie the side whose session master has the
//! lower id; every station of the other side reports `Event::Excluded` and
//! closes, and no object is left with two masters.

mod common;

use common::*;
use netz_core::cluster::Cluster;
use netz_core::crypto::{ConnectToken, SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::sim::SimConfig;
use netz_core::transport::{PacketHeader, PacketKind};
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x5a; 32];
const GAME: u64 = 0x7061_7274;

fn token(client_id: u64, p: ProcessType) -> ConnectToken {
    TokenIssuer::new(&KEY, GAME).issue(
        &TokenGrant::new(client_id, p, 600_000),
        [client_id as u8; 24],
    )
}

/// Station `n` of a session: the first is the authority; `server` picks
/// the process type in client-server.
fn cfg(topology: Topology, secure: bool, n: u64, server: bool) -> StationConfig {
    let p = if server {
        ProcessType::Server
    } else {
        ProcessType::Client
    };
    let security = secure.then(|| {
        if n == 0 {
            SecurityConfig::authority(KEY, GAME)
        } else {
            SecurityConfig::joiner(token(100 + n, p), GAME)
        }
    });
    StationConfig {
        topology,
        security,
        seed: 0x3000 + n,
        ..StationConfig::new(p, format!("station-{n}"))
    }
}

/// A session of `servers` servers then `clients` clients (a mesh of
/// `servers + clients` stations when `topology` is Mesh), each publishing
/// one recovering object.
fn session(
    topology: Topology,
    secure: bool,
    servers: usize,
    clients: usize,
    seed: u64,
) -> (Cluster, Vec<DOHandle>) {
    let cfgs = (0..servers + clients)
        .map(|i| cfg(topology, secure, i as u64, i < servers))
        .collect();
    let mut c = Cluster::start(SimConfig::seeded(seed), registry(), cfgs).unwrap();
    let mut objects = Vec::new();
    for i in 0..servers + clients {
        let now = c.now();
        let h = c
            .station_mut(i)
            .publish(now, Counter::recovering(true))
            .unwrap()
            .handle();
        objects.push(h);
    }
    c.run_for(Duration::from_millis(400));
    (c, objects)
}

fn failure_timeout(c: &Cluster) -> Duration {
    c.station(0).config().failure_timeout
}

fn addrs(c: &Cluster, side: &[usize]) -> Vec<SocketAddr> {
    side.iter().map(|&i| c.addrs[i]).collect()
}

/// Splits the session into `a` and `b` for three failure timeouts (both
/// sides go on as sessions of their own, each mastering every object),
/// heals it and runs three failure timeouts more.
fn split_and_heal(c: &mut Cluster, a: &[usize], b: &[usize]) {
    let (aa, bb) = (addrs(c, a), addrs(c, b));
    c.sim.partition(&aa, &bb);
    c.run_for(failure_timeout(c) * 3);
    for i in c.live() {
        let _ = c.events(i);
    }
    c.sim.heal();
    c.run_for(failure_timeout(c) * 3);
}

fn excluded(c: &mut Cluster, i: usize) -> bool {
    c.events(i)
        .iter()
        .any(|e| matches!(e, Event::Excluded { .. }))
}

/// After the heal: every station of `winners` is in one session of exactly
/// them (and `clients`), every station of `losers` was excluded, holds
/// nothing and is out; every object the winners know has a master among
/// them; nothing has two masters.
fn check(c: &mut Cluster, case: &str, winners: &[usize], losers: &[usize], objects: &[DOHandle]) {
    let winner_ids: Vec<StationId> = winners.iter().map(|&i| c.station(i).id()).collect();
    for &i in losers {
        assert!(
            excluded(c, i),
            "{case}: station {i} was not told it was excluded"
        );
        let st = c.station(i);
        assert!(!st.is_in_session(), "{case}: station {i} lives on");
        assert!(st.objects().is_empty(), "{case}: station {i} kept objects");
    }
    for &i in winners {
        let ev = c.events(i);
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Excluded { .. })),
            "{case}: winner {i} was excluded: {ev:?}"
        );
        let st = c.station(i);
        assert!(st.is_in_session(), "{case}: winner {i} is out");
        let mut members: Vec<StationId> = st.stations().iter().map(|s| s.id).collect();
        members.sort();
        let mut want = winner_ids.clone();
        want.sort();
        if st.config().process_type != ProcessType::Client {
            let servers: Vec<StationId> = members
                .iter()
                .copied()
                .filter(|id| {
                    st.station_info(*id)
                        .is_some_and(|s| s.process_type != ProcessType::Client)
                        || st.config().topology == Topology::Mesh
                })
                .collect();
            let want_servers: Vec<StationId> = winners
                .iter()
                .filter(|&&w| {
                    c.station(w).config().process_type != ProcessType::Client
                        || st.config().topology == Topology::Mesh
                })
                .map(|&w| c.station(w).id())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(
                servers, want_servers,
                "{case}: station {i}'s view of the session"
            );
            for h in objects {
                if let Some(m) = st.master_of(*h) {
                    assert!(
                        winner_ids.contains(&m),
                        "{case}: {h:?} mastered by {m} at {i}"
                    );
                }
            }
        }
    }
    let sm: Vec<StationId> = winners
        .iter()
        .map(|&i| c.station(i).session_master())
        .collect();
    assert!(
        sm.windows(2).all(|w| w[0] == w[1]),
        "{case}: session masters {sm:?}"
    );
    assert!(
        doubly_mastered(c).is_empty(),
        "{case}: {:?}",
        doubly_mastered(c)
    );
}

#[test]
fn the_larger_side_of_a_split_mesh_lives_on() {
    for secure in [false, true] {
        for seed in 1..9 {
            let (mut c, objects) = session(Topology::Mesh, secure, 5, 0, seed);
            split_and_heal(&mut c, &[0, 1, 2], &[3, 4]);
            let case = format!("mesh secure={secure} seed={seed}");
            check(&mut c, &case, &[0, 1, 2], &[3, 4], &objects);
            // The objects of the excluded side were recovered by the other.
            for h in &objects {
                assert!(c.station(0).master_of(*h).is_some(), "{case}: {h:?} lost");
            }
            assert!(c.station(3).stats().probes_received > 0, "{case}");
        }
    }
}

#[test]
fn a_session_master_cut_off_alone_is_excluded_and_the_rest_live_on() {
    for secure in [false, true] {
        let (mut c, objects) = session(Topology::Mesh, secure, 4, 0, 7);
        assert_eq!(c.station(1).session_master(), c.station(0).id());
        split_and_heal(&mut c, &[0], &[1, 2, 3]);
        let case = format!("lone session master secure={secure}");
        check(&mut c, &case, &[1, 2, 3], &[0], &objects);
        assert_eq!(c.station(1).session_master(), c.station(1).id(), "{case}");
    }
}

#[test]
fn a_tie_goes_to_the_side_whose_session_master_has_the_lower_id() {
    // Ids 1..4 at indices 0..3: {2, 3} (led by 2) against {1, 4} (led by 1).
    let (mut c, objects) = session(Topology::Mesh, false, 4, 0, 11);
    split_and_heal(&mut c, &[1, 2], &[0, 3]);
    check(&mut c, "tie", &[0, 3], &[1, 2], &objects);
    // And the other way round: {1, 2} against {3, 4}.
    let (mut c, objects) = session(Topology::Mesh, false, 4, 0, 12);
    split_and_heal(&mut c, &[2, 3], &[0, 1]);
    check(&mut c, "tie 2", &[0, 1], &[2, 3], &objects);
}

#[test]
fn in_client_server_the_side_with_more_servers_lives_on() {
    for (secure, seed) in [(false, 5), (true, 5), (false, 6), (true, 7), (false, 8)] {
        // Servers at 0, 1, 2; clients at 3, 4, 5 (joined through station 0).
        let (mut c, objects) = session(Topology::ClientServer, secure, 3, 3, seed);
        let relay_of = |c: &Cluster, i: usize| c.station(i).relay();
        let server_ids: Vec<StationId> = (0..3).map(|i| c.station(i).id()).collect();
        // Side a: server 0 and its clients; side b: servers 1 and 2 and theirs.
        let side = |c: &Cluster, s: &[usize]| -> Vec<usize> {
            let ids: Vec<StationId> = s.iter().map(|&i| server_ids[i]).collect();
            let mut v = s.to_vec();
            v.extend((3..6).filter(|&k| relay_of(c, k).is_some_and(|r| ids.contains(&r))));
            v
        };
        let (a, b) = (side(&c, &[0]), side(&c, &[1, 2]));
        split_and_heal(&mut c, &a, &b);
        let case = format!("client-server secure={secure} seed={seed}");
        check(&mut c, &case, &b, &[0], &objects);
        for &k in a.iter().filter(|&&k| k >= 3) {
            assert!(
                !c.station(k).is_in_session(),
                "{case}: client {k} of the excluded server"
            );
        }
    }
}

#[test]
fn a_partition_shorter_than_the_failure_timeout_excludes_nobody() {
    let (mut c, _) = session(Topology::Mesh, false, 4, 0, 3);
    let (a, b) = (addrs(&c, &[0, 1]), addrs(&c, &[2, 3]));
    c.sim.partition(&a, &b);
    c.run_for(failure_timeout(&c) / 3);
    c.sim.heal();
    c.run_for(failure_timeout(&c) * 3);
    for i in 0..4 {
        assert!(!excluded(&mut c, i));
        assert_eq!(c.station(i).stations().len(), 4);
        assert_eq!(c.station(i).stats().probes_sent, 0);
    }
}

/// A probe datagram as a station would send it without security.
fn probe(session: u32, sender: StationId, receiver: StationId, master: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    PacketHeader {
        kind: PacketKind::Probe,
        session,
        sender: sender.0,
        receiver: receiver.0,
    }
    .encode(&mut buf);
    buf.extend_from_slice(&postcard::to_allocvec(&master).unwrap());
    buf
}

#[test]
fn probes_are_believed_only_from_stations_declared_failed_at_their_address() {
    // A mesh of three; station 3 (index 2) is cut off and declared failed.
    let (mut c, _) = session(Topology::Mesh, false, 3, 0, 9);
    let tag = c.station(0).session_tag();
    let (me, member, cut) = (c.station(0).id(), c.station(1).id(), c.station(2).id());
    let cut_addr = c.addrs[2];
    c.sim.isolate(cut_addr);
    c.run_for(failure_timeout(&c) * 3);
    assert!(c.station(0).station_info(cut).is_none());
    c.crash(2);
    let now = c.now();
    let st = c.station_mut(0);
    let before = st.stats().probes_dropped;
    // From a member (not declared failed), naming a lower master.
    let from_member = c.addrs[1];
    let st = c.station_mut(0);
    st.handle_datagram(now, from_member, &probe(tag, member, me, 0));
    // From the failed station's id but another address.
    let elsewhere = SocketAddr::from(([10, 9, 9, 9], 4000));
    st.handle_datagram(now, elsewhere, &probe(tag, cut, me, 0));
    // Of another session.
    st.handle_datagram(now, cut_addr, &probe(tag ^ 1, cut, me, 0));
    // For another receiver.
    st.handle_datagram(now, cut_addr, &probe(tag, cut, member, 0));
    // Malformed body.
    let mut bad = probe(tag, cut, me, 0);
    bad.truncate(bad.len() - 1);
    st.handle_datagram(now, cut_addr, &bad);
    assert_eq!(st.stats().probes_dropped - before, 5);
    assert_eq!(st.stats().probes_received, 0);
    // From the failed station at its address: heard, and one station
    // naming a session master of id 0 (below every id) cannot end a side
    // of two.
    st.handle_datagram(now, cut_addr, &probe(tag, cut, me, 0));
    assert_eq!(st.stats().probes_received, 1);
    c.run_for(failure_timeout(&c) * 2);
    assert!(!excluded(&mut c, 0));
    assert!(!excluded(&mut c, 1));
    assert!(c.station(0).is_in_session() && c.station(1).is_in_session());
}

#[test]
fn with_security_a_probe_must_be_sealed_under_the_links_keys() {
    let (mut c, _) = session(Topology::Mesh, true, 2, 0, 13);
    let tag = c.station(0).session_tag();
    let (me, cut) = (c.station(0).id(), c.station(1).id());
    let cut_addr = c.addrs[1];
    c.sim.isolate(cut_addr);
    c.run_for(failure_timeout(&c) * 3);
    c.crash(1);
    // A probe in clear from the right address and id, naming master 0,
    // would win a tie against this side of one: it is not believed.
    let now = c.now();
    let st = c.station_mut(0);
    st.handle_datagram(now, cut_addr, &probe(tag, cut, me, 0));
    assert_eq!(st.stats().probes_dropped, 1);
    c.run_for(failure_timeout(&c) * 2);
    assert!(!excluded(&mut c, 0));
    assert!(c.station(0).is_in_session());
}

#[test]
fn a_station_whose_chosen_successor_never_takes_over_learns_it_is_out() {
    // Station 4 stops hearing the session master (station 1) while
    // station 1 still hears it: 4 takes station 2 for the successor, but
    // 2 still hears 1 and never takes over, and 1 never declares 4
    // failed. Before, 4 lived on believing 2 led the session and refused
    // everything 1 said (a new member, a departure) for good.
    for secure in [false, true] {
        let (mut c, objects) = session(Topology::Mesh, secure, 4, 0, 21);
        let (sm, cut) = (c.addrs[0], c.addrs[3]);
        c.sim.block(&[sm], &[cut]);
        c.run_for(failure_timeout(&c) * 5);
        let case = format!("one-way cut secure={secure}");
        assert!(excluded(&mut c, 3), "{case}: station 4 was not told");
        assert!(!c.station(3).is_in_session(), "{case}");
        c.sim.heal();
        c.run_for(failure_timeout(&c) * 3);
        for i in 0..3 {
            let st = c.station(i);
            assert_eq!(
                st.session_master(),
                c.station(0).id(),
                "{case}: station {i}"
            );
            assert!(
                st.station_info(c.station(3).id()).is_none(),
                "{case}: station {i}"
            );
        }
        check(&mut c, &case, &[0, 1, 2], &[], &objects);
    }
}

#[test]
fn a_departure_missed_with_the_old_session_master_is_learned_from_the_new_one() {
    // Station 4 crashes while station 3 cannot hear station 1, the session
    // master (which still hears 3), which declares 4 failed and then
    // crashes too: 3 never got that word. Its new session master (2) no longer counts 4 and tells 3
    // so when 3 reports it silent. Before, 3 counted 4 a member for good.
    for secure in [false, true] {
        let (mut c, objects) = session(Topology::Mesh, secure, 4, 0, 23);
        let ft = failure_timeout(&c);
        let four = c.station(3).id();
        let (one, three) = (c.addrs[0], c.addrs[2]);
        c.sim.block(&[one], &[three]);
        c.crash(3);
        c.run_for(ft + ft / 3);
        assert!(
            c.station(1).station_info(four).is_none(),
            "2 heard the word"
        );
        assert!(c.station(2).station_info(four).is_some(), "3 missed it");
        c.crash(0);
        c.sim.heal();
        c.run_for(ft * 4);
        let ev = c.events(2);
        let case = format!("secure={secure} {ev:?}");
        let (two, st3) = (c.station(1), c.station(2));
        assert!(two.is_session_master(), "{case}");
        assert!(st3.is_in_session(), "{case}");
        assert_eq!(st3.session_master(), two.id(), "{case}");
        assert!(st3.station_info(four).is_none(), "{case}: 3 still counts 4");
        let ids = |s: &Station| s.stations().iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(two), ids(st3), "{case}");
        // And where 4's object (and 1's) went: the recovery it missed.
        for h in &objects {
            let at_two = two.master_of(*h);
            assert!(at_two.is_some_and(|m| m != four), "{case}: {h:?}");
            assert_eq!(st3.master_of(*h), at_two, "{case}: {h:?} at 3");
        }
        assert!(doubly_mastered(&c).is_empty(), "{case}");
    }
}

#[test]
fn a_report_of_silence_from_a_member_declares_no_live_station_failed() {
    // A cheating member reports live stations silent, in a mesh and to
    // the session master of a client-server session (a client about
    // another server's client, a server about another server): nobody
    // is declared failed. About a station long gone, only the reporter
    // hears it again.
    use netz_core::forge::{self, Forged};
    let (mut c, _) = session(Topology::Mesh, false, 4, 0, 31);
    let (sm, victim) = (c.station(0).id(), c.station(2).id());
    let now = c.now();
    assert!(forge::send_as(
        c.station_mut(3),
        now,
        sm,
        Forged::ReportFailure { id: victim }
    ));
    c.run_for(failure_timeout(&c));
    for i in 0..4 {
        assert_eq!(c.station(i).stations().len(), 4, "mesh: station {i}");
    }
    let (mut c, _) = session(Topology::ClientServer, false, 2, 2, 32);
    let sm = c.station(0).id();
    let (server, other_client) = (c.station(1).id(), c.station(3).id());
    let now = c.now();
    assert!(forge::send_as(
        c.station_mut(2),
        now,
        sm,
        Forged::ReportFailure { id: server }
    ));
    assert!(forge::send_as(
        c.station_mut(2),
        now,
        sm,
        Forged::ReportFailure { id: other_client }
    ));
    assert!(forge::send_as(
        c.station_mut(1),
        now,
        sm,
        Forged::ReportFailure { id: sm }
    ));
    c.run_for(failure_timeout(&c));
    for i in 0..4 {
        assert!(c.station(i).is_in_session(), "client-server: station {i}");
    }
    assert_eq!(c.station(0).stations().len(), 4);
    assert_eq!(c.station(1).stations().len(), 4);
}

/// Servers 1, 2 and 3 (station 1 the session master) and a client that
/// joined through server 3.
fn servers_and_a_client_of_the_third(seed: u64) -> (Cluster, usize, Vec<DOHandle>) {
    let (mut c, objects) = session(Topology::ClientServer, false, 3, 0, seed);
    let client = c
        .join(cfg(Topology::ClientServer, false, 3, false), 2)
        .unwrap();
    c.run_for(Duration::from_millis(400));
    assert_eq!(
        c.station(client).relay(),
        Some(c.station(2).id()),
        "the client's server"
    );
    (c, client, objects)
}

#[test]
fn a_client_follows_no_takeover_its_server_refuses() {
    // Servers 1 and 2 stop hearing each other; 3 and its client hear
    // both. Server 2 takes over, naming 1 failed; 3 hears 1 and refuses,
    // and does not pass the word on to its client, which cannot tell
    // whether 1 is silent. Before, the client followed 2 and refused all
    // that 1 said from then on.
    for seed in [31, 32] {
        let (mut c, client, _) = servers_and_a_client_of_the_third(seed);
        let ft = failure_timeout(&c);
        let _ = c.events(client);
        let (one, two) = (c.addrs[0], c.addrs[1]);
        c.sim.partition(&[one], &[two]);
        c.run_for(ft * 3);
        c.sim.heal();
        c.run_for(ft * 3);
        let ev = c.events(client);
        let case = format!("seed {seed}: {ev:?}");
        assert!(
            !ev.iter()
                .any(|e| matches!(e, Event::SessionMasterChanged { .. })),
            "{case}"
        );
        let (sm, three, cl) = (c.station(0), c.station(2), c.station(client));
        assert!(cl.is_in_session(), "{case}");
        assert_eq!(cl.session_master(), sm.id(), "{case}");
        assert_eq!(three.session_master(), sm.id(), "{case}");
        let ids = |s: &Station| s.stations().iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(cl), ids(sm), "{case}");
        assert_eq!(ids(three), ids(sm), "{case}");
        assert!(doubly_mastered(&c).is_empty(), "{case}");
    }
}

#[test]
fn a_new_session_master_tells_everyone_of_a_departure_they_missed() {
    // Server 3 cannot hear the session master (1) when 1 declares a
    // client of server 2 gone (a client 3 has no link with); then 1
    // crashes. 3 cannot find the client silent, so it never reports it;
    // its new session master (2) tells it. Before, 3 counted the client a
    // member for good.
    let (mut c, _) = session(Topology::ClientServer, false, 3, 0, 33);
    let client = c
        .join(cfg(Topology::ClientServer, false, 3, false), 1)
        .unwrap();
    c.run_for(Duration::from_millis(400));
    assert_eq!(c.station(client).relay(), Some(c.station(1).id()));
    let now = c.now();
    let h = c
        .station_mut(client)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(400));
    let ft = failure_timeout(&c);
    let gone = c.station(client).id();
    let (one, three) = (c.addrs[0], c.addrs[2]);
    c.sim.block(&[one], &[three]);
    c.crash(client);
    c.run_for(ft + ft / 2);
    assert!(c.station(0).station_info(gone).is_none(), "1 declared it");
    assert!(c.station(2).station_info(gone).is_some(), "3 missed it");
    c.crash(0);
    c.sim.heal();
    c.run_for(ft * 4);
    let ev = c.events(2);
    let (two, st3) = (c.station(1), c.station(2));
    let case = format!("{:?} {ev:?}", st3.stations());
    assert!(two.is_session_master(), "{case}");
    assert!(st3.is_in_session(), "{case}");
    assert_eq!(st3.session_master(), two.id(), "{case}");
    assert!(
        st3.station_info(gone).is_none(),
        "{case}: 3 still counts it"
    );
    assert_eq!(st3.master_of(h), two.master_of(h), "{case}");
    assert!(two.master_of(h).is_some_and(|m| m != gone), "{case}");
    assert!(doubly_mastered(&c).is_empty(), "{case}");
}

#[test]
fn a_takeover_a_server_follows_late_reaches_its_clients() {
    // Station 2 stops hearing the session master (1) first and takes over
    // when 1 crashes; 3 still heard 1 a moment ago and refuses, so it
    // keeps the word from its client; once 1 is silent at 3 too, 3
    // follows 2 and passes the takeover on. Without that, the client
    // followed 1 for good.
    for seed in [34, 35] {
        let (mut c, client, objects) = servers_and_a_client_of_the_third(seed);
        let ft = failure_timeout(&c);
        let (one, two) = (c.addrs[0], c.addrs[1]);
        c.sim.block(&[one], &[two]);
        c.run_for(ft * 8 / 10);
        c.crash(0);
        c.run_for(ft * 4);
        let ev = (c.events(2), c.events(client));
        let (st2, three, cl) = (c.station(1), c.station(2), c.station(client));
        let case = format!("seed {seed}: {:?} {ev:?}", cl.stations());
        assert!(st2.is_session_master(), "{case}");
        assert!(three.is_in_session() && cl.is_in_session(), "{case}");
        assert_eq!(three.session_master(), st2.id(), "{case}");
        assert_eq!(cl.session_master(), st2.id(), "{case}");
        let ids = |s: &Station| s.stations().iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(cl), ids(st2), "{case}");
        for h in &objects {
            let m = st2.master_of(*h);
            assert!(m.is_some_and(|m| m != StationId(1)), "{case}: {h:?}");
            assert_eq!(three.master_of(*h), m, "{case}: {h:?} at 3");
        }
        assert!(doubly_mastered(&c).is_empty(), "{case}");
    }
}

/// A station that saw a station declared gone (by the session master of
/// a side the session did not follow) while its session master counts it
/// cannot mend its view: told so by the session master (`StillMember`,
/// its answer to the other station's report that this one is silent), it
/// reports `Event::Excluded`, drops what it holds and closes.
#[test]
fn a_station_whose_session_master_counts_a_station_it_saw_gone_is_excluded() {
    use netz_core::forge::{self, Forged};
    let (mut c, _) = session(Topology::Mesh, false, 4, 0, 11);
    let two = crash_until_gone(&mut c, 2);
    for i in c.live() {
        let _ = c.events(i);
    }
    // The session master's word to station `to` that the session counts `id`.
    let still_member = |c: &mut Cluster, to: usize, id: StationId| {
        let (now, dest) = (c.now(), c.station(to).id());
        assert!(forge::send_as(
            c.station_mut(0),
            now,
            dest,
            Forged::StillMember { id }
        ));
        c.run_for(Duration::from_millis(300));
    };
    still_member(&mut c, 1, two);
    assert!(excluded(&mut c, 1), "station 1 was told it is out");
    assert!(!c.station(1).is_in_session());
    assert!(c.station(1).objects().is_empty());
    // The session master's word about a member the station counts
    // changes nothing.
    let one = c.station(0).id();
    still_member(&mut c, 3, one);
    assert!(c.station(3).is_in_session());
    assert!(!excluded(&mut c, 3));
}
