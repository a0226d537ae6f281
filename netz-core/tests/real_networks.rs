//! Stations behind NATs and port forwards, and peers whose address
//! changes mid-session: every station talks to a peer at the address the
//! peer's datagrams come from, and a link follows its peer to a new address
//! once a datagram from there is authentic and the newest it has seen.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::crypto::{ConnectToken, SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::sim::SimConfig;
use netz_core::transport::PacketHeader;
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x44; 32];
const GAME: u64 = 0x6e65_747a;

fn token(client_id: u64, p: ProcessType) -> ConnectToken {
    TokenIssuer::new(&KEY, GAME).issue(
        &TokenGrant::new(client_id, p, 600_000),
        [client_id as u8; 24],
    )
}

fn server(topology: Topology, secure: bool) -> StationConfig {
    StationConfig {
        topology,
        security: secure.then(|| SecurityConfig::authority(KEY, GAME)),
        ..StationConfig::new(ProcessType::Server, "server")
    }
}

fn client(topology: Topology, secure: bool, n: u64) -> StationConfig {
    StationConfig {
        topology,
        security: secure.then(|| SecurityConfig::joiner(token(n, ProcessType::Client), GAME)),
        seed: 0x2000 + n,
        ..StationConfig::new(ProcessType::Client, format!("client-{n}"))
    }
}

fn public(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], port))
}

/// Adds a station with `cfg` behind a NAT at `nat`, and joins it through
/// station 0 reached at `contact`.
fn join_behind_nat(
    c: &mut Cluster,
    cfg: StationConfig,
    nat: Option<SocketAddr>,
    contact: SocketAddr,
) -> Result<usize, JoinError> {
    let addr = c.sim.add_node(Station::new(cfg, registry()));
    if let Some(p) = nat {
        c.sim.set_nat(addr, p);
    }
    c.addrs.push(addr);
    let i = c.addrs.len() - 1;
    let now = c.now();
    c.station_mut(i).join(now, addr, contact)?;
    let mut result = None;
    c.run_until(Duration::from_secs(10), |c| {
        result = c.station(i).state_events_joined();
        result.is_some()
    });
    match result {
        Some(r) => r.map(|_| i),
        None => Err(JoinError::TimedOut),
    }
}

trait JoinedYet {
    fn state_events_joined(&self) -> Option<Result<(), JoinError>>;
}

impl JoinedYet for Station {
    fn state_events_joined(&self) -> Option<Result<(), JoinError>> {
        self.is_in_session().then_some(Ok(()))
    }
}

/// Station `owner` publishes a counter, then sets it to 1..=rounds one
/// update at a time; every other station in `watchers` must see each value.
fn play(c: &mut Cluster, owner: usize, watchers: &[usize], rounds: i64) {
    let now = c.now();
    let h = c
        .station_mut(owner)
        .publish(now, Counter::new(0, "c"))
        .unwrap()
        .handle();
    for v in 1..=rounds {
        c.station(owner)
            .get::<Counter>(h)
            .unwrap()
            .lock()
            .data
            .value = v;
        let now = c.now();
        c.station_mut(owner).update(now, h).unwrap();
        let ok = c.run_until(Duration::from_secs(3), |c| {
            watchers.iter().all(|&w| {
                c.station(w)
                    .get::<Counter>(h)
                    .is_some_and(|r| r.lock().data.value == v)
            })
        });
        assert!(ok, "value {v} did not arrive");
    }
}

fn members(c: &Cluster, i: usize) -> Vec<StationId> {
    c.station(i).stations().iter().map(|s| s.id).collect()
}

#[test]
fn a_client_behind_a_nat_joins_a_server_behind_a_port_forward() {
    for topology in [Topology::ClientServer, Topology::Mesh] {
        for secure in [false, true] {
            let mut c = Cluster::start(
                SimConfig::seeded(1),
                registry(),
                vec![server(topology, secure)],
            )
            .unwrap();
            // The server is reached at a forwarded port only; it knows
            // itself by its own address.
            let forwarded = public(7000);
            let server_addr = c.addrs[0];
            c.sim.set_nat(server_addr, forwarded);
            let j = join_behind_nat(
                &mut c,
                client(topology, secure, 1),
                Some(public(40000)),
                forwarded,
            )
            .unwrap_or_else(|e| panic!("{topology:?} secure={secure}: {e}"));
            // Each side knows the other where its datagrams come from.
            let seen_by_client = c.station(j).stations();
            assert!(seen_by_client
                .iter()
                .any(|s| s.id == StationId(1) && s.addr == forwarded));
            let seen_by_server = c.station(0).stations();
            let me = c.station(j).id();
            assert!(seen_by_server
                .iter()
                .any(|s| s.id == me && s.addr == public(40000)));
            play(&mut c, j, &[0], 5);
            play(&mut c, 0, &[j], 5);
            // Past the failure timeout, both are still in one session.
            c.run_for(Duration::from_secs(2));
            assert_eq!(members(&c, 0), members(&c, j));
            assert_eq!(members(&c, 0).len(), 2);
        }
    }
}

#[test]
fn a_link_follows_its_peer_across_a_nat_rebinding() {
    for topology in [Topology::ClientServer, Topology::Mesh] {
        for secure in [false, true] {
            let mut c = Cluster::start(
                SimConfig {
                    latency: Duration::from_millis(5),
                    ..SimConfig::seeded(2)
                },
                registry(),
                vec![server(topology, secure)],
            )
            .unwrap();
            let contact = c.addrs[0];
            let j = join_behind_nat(
                &mut c,
                client(topology, secure, 2),
                Some(public(41000)),
                contact,
            )
            .unwrap();
            play(&mut c, j, &[0], 3);
            let me = c.station(j).id();
            let _ = c.events(0);
            // The NAT gives the client another public port.
            let node = c.addrs[j];
            c.sim.set_nat(node, public(41001));
            play(&mut c, j, &[0], 3);
            play(&mut c, 0, &[j], 3);
            assert_eq!(c.station(0).stats().address_changes, 1);
            assert!(c.events(0).iter().any(|e| matches!(
                e,
                Event::PeerAddressChanged { station, addr } if *station == me && *addr == public(41001)
            )));
            c.run_for(Duration::from_secs(2));
            assert_eq!(members(&c, 0), members(&c, j), "{topology:?} {secure}");
            assert!(c
                .station(0)
                .stations()
                .iter()
                .any(|s| s.id == me && s.addr == public(41001)));
        }
    }
}

#[test]
fn a_copy_of_a_packet_sent_from_another_address_moves_no_link() {
    // An on-path attacker re-sends a client's datagram from its own
    // address: with security on the copy is a replay and moves nothing;
    // a packet that does not open moves nothing either.
    let cs = Topology::ClientServer;
    let mut c = Cluster::start(SimConfig::seeded(3), registry(), vec![server(cs, true)]).unwrap();
    let j = c.join(client(cs, true, 3), 0).unwrap();
    let me = c.station(j).id();
    let home = c.addrs[j];
    let attacker: SocketAddr = "203.0.113.9:666".parse().unwrap();
    c.sim.set_recording(true);
    play(&mut c, j, &[0], 2);
    let captured: Vec<Vec<u8>> = c
        .sim
        .take_deliveries()
        .into_iter()
        .filter(|d| d.from == home && d.to == c.addrs[0])
        .map(|d| d.data)
        .collect();
    assert!(!captured.is_empty());
    let now = c.now();
    let before = c.station(0).stats().clone();
    for d in &captured {
        c.station_mut(0).handle_datagram(now, attacker, d);
        let mut forged = d.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        c.station_mut(0).handle_datagram(now, attacker, &forged);
    }
    let after = c.station(0).stats();
    assert_eq!(after.address_changes, 0);
    assert!(after.replayed >= before.replayed + captured.len() as u64);
    assert!(after.auth_failed >= before.auth_failed + captured.len() as u64);
    assert!(c
        .station(0)
        .stations()
        .iter()
        .any(|s| s.id == me && s.addr == home));
    play(&mut c, j, &[0], 2);
}

#[test]
fn without_security_a_packet_of_another_session_moves_no_link() {
    let cs = Topology::ClientServer;
    let mut c = Cluster::start(SimConfig::seeded(4), registry(), vec![server(cs, false)]).unwrap();
    let j = c.join(client(cs, false, 4), 0).unwrap();
    let home = c.addrs[j];
    c.sim.set_recording(true);
    play(&mut c, j, &[0], 2);
    let sent = c
        .sim
        .take_deliveries()
        .into_iter()
        .rfind(|d| d.from == home && d.to == c.addrs[0])
        .unwrap()
        .data;
    // The same packet under another session tag: a blind attacker does not
    // know the session's.
    let (mut header, rest) = PacketHeader::decode(&sent).unwrap();
    header.session ^= 0x5a5a;
    let mut d = Vec::new();
    header.encode(&mut d);
    d.extend_from_slice(rest);
    let attacker: SocketAddr = "203.0.113.9:666".parse().unwrap();
    let now = c.now();
    c.station_mut(0).handle_datagram(now, attacker, &d);
    assert_eq!(c.station(0).stats().address_changes, 0);
    assert!(c.station(0).stats().wrong_session >= 1);
}

/// The handles that more than one station in a session considers its own
/// master copy.
#[test]
fn a_station_frozen_past_the_failure_timeout_learns_it_was_excluded() {
    // Mesh: a member, then the session master; client-server: a client, a
    // server, the session master. Each is frozen (as SIGSTOP would), the
    // others declare it failed and recover its objects, and when it
    // resumes it does not live on as a session of its own.
    let cases = [
        (Topology::Mesh, 1usize),
        (Topology::Mesh, 0),
        (Topology::ClientServer, 3),
        (Topology::ClientServer, 1),
        (Topology::ClientServer, 0),
    ];
    for (topology, frozen) in cases {
        for secure in [false, true] {
            let mut cfgs = vec![server(topology, secure)];
            let second = if topology == Topology::ClientServer {
                let mut s = server(topology, secure);
                if let Some(sec) = s.security.as_mut() {
                    sec.connect_token = Some(token(9, ProcessType::Server));
                }
                s
            } else {
                client(topology, secure, 9)
            };
            cfgs.push(second);
            cfgs.push(client(topology, secure, 10));
            cfgs.push(client(topology, secure, 11));
            let mut c = Cluster::start(SimConfig::seeded(5), registry(), cfgs).unwrap();
            let mut objects = Vec::new();
            for i in 0..4 {
                let now = c.now();
                let h = c
                    .station_mut(i)
                    .publish(now, Counter::recovering(true))
                    .unwrap()
                    .handle();
                objects.push(h);
            }
            c.run_for(Duration::from_millis(300));
            let frozen_id = c.station(frozen).id();
            let _ = c.events(frozen);
            let addr = c.addrs[frozen];
            // Clients of the frozen server lose their server: they learn it
            // within the failure timeout and disconnect.
            let orphans: Vec<usize> = (0..4)
                .filter(|i| *i != frozen && c.station(*i).relay() == Some(frozen_id))
                .collect();
            c.sim.freeze(addr);
            c.run_for(c.station(0).config().failure_timeout * 3);
            for &i in &orphans {
                assert!(!c.station(i).is_in_session());
                assert!(c
                    .events(i)
                    .iter()
                    .any(|e| matches!(e, Event::Disconnected { .. })));
            }
            let survivors: Vec<usize> = (0..4)
                .filter(|i| *i != frozen && !orphans.contains(i))
                .collect();
            for &i in &survivors {
                assert!(
                    !c.station(i).stations().iter().any(|s| s.id == frozen_id),
                    "{topology:?} frozen {frozen}: station {i} still lists it"
                );
            }
            c.sim.resume(addr);
            c.run_for(c.station(0).config().failure_timeout * 3);
            let events = c.events(frozen);
            let case = format!("{topology:?} secure={secure} frozen={frozen}");
            assert!(
                events.iter().any(|e| matches!(e, Event::Excluded { .. })),
                "{case}: {events:?}"
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::SessionMasterChanged { new_master } if *new_master == frozen_id)),
                "{case}: it elected itself"
            );
            let st = c.station(frozen);
            assert!(!st.is_in_session(), "{case}");
            assert!(st.objects().is_empty(), "{case}: it kept duplicas");
            assert!(doubly_mastered(&c).is_empty(), "{case}");
            // The others carry on, with every recovering object mastered.
            for &i in &survivors {
                let st = c.station(i);
                assert!(st.is_in_session(), "{case}: station {i}");
                for h in &objects {
                    if topology == Topology::ClientServer
                        && st.config().process_type == ProcessType::Client
                    {
                        continue;
                    }
                    assert!(
                        st.master_of(*h).is_some_and(|m| m != frozen_id),
                        "{case}: station {i} has no live master for {h:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_client_cut_off_within_the_failure_timeout_comes_back_as_itself() {
    for secure in [false, true] {
        let cs = Topology::ClientServer;
        let mut c =
            Cluster::start(SimConfig::seeded(6), registry(), vec![server(cs, secure)]).unwrap();
        let j = c.join(client(cs, secure, 6), 0).unwrap();
        let now = c.now();
        let h = c
            .station_mut(0)
            .publish(now, Counter::new(0, "s"))
            .unwrap()
            .handle();
        let mine = c
            .station_mut(j)
            .publish(now, Counter::new(0, "c"))
            .unwrap()
            .handle();
        c.run_for(Duration::from_millis(300));
        let id = c.station(j).id();
        // Cut off for most of the failure timeout (1.5 s); the server acts
        // on its object meanwhile.
        let addr = c.addrs[j];
        c.sim.isolate(addr);
        for n in 1..=10 {
            assert!(c
                .station_mut(0)
                .object::<Counter>(h)
                .action_on_duplicas(BUMP, &(n,)));
            c.run_for(Duration::from_millis(100));
        }
        c.sim.heal();
        c.run_for(Duration::from_secs(2));
        let st = c.station(j);
        assert!(st.is_in_session(), "secure={secure}");
        assert_eq!(st.id(), id);
        assert_eq!(
            st.get::<Counter>(h).unwrap().lock().seen,
            (1..=10).collect::<Vec<i64>>(),
            "what it missed, once and in order"
        );
        assert_eq!(c.station(0).master_of(mine), Some(id));
        assert!(!c
            .events(0)
            .iter()
            .any(|e| matches!(e, Event::StationFailed(s) if *s == id)));
    }
}
