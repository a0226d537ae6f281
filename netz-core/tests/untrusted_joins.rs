//! Joins from untrusted stations: a stranger who spoofs addresses or
//! replays requests, a cheating member who forges join messages over its
//! authenticated link. Each test shows one way in that is closed.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::crypto::{ConnectToken, SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::sim::SimConfig;
use netz_core::station::ForgedJoinMsg;
use netz_core::transport::{PacketHeader, PacketKind};
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x5A; 32];
const GAME: u64 = 0x6e65_747a;

fn token_under(key: &[u8; 32], client_id: u64, p: ProcessType) -> ConnectToken {
    let mut random = [0u8; 24];
    random[..8].copy_from_slice(&client_id.to_le_bytes());
    TokenIssuer::new(key, GAME).issue(
        &TokenGrant {
            client_id,
            process_type: p,
            expires_at_ms: 600_000,
            session: 0,
            address: None,
        },
        random,
    )
}

fn plain(p: ProcessType, name: &str, topology: Topology) -> StationConfig {
    StationConfig {
        topology,
        ..StationConfig::new(p, name)
    }
}

fn secure(p: ProcessType, client_id: u64, topology: Topology) -> StationConfig {
    let security = if client_id == 0 {
        SecurityConfig::authority(KEY, GAME)
    } else if p == ProcessType::Server {
        SecurityConfig::authority(KEY, GAME).with_token(token_under(&KEY, client_id, p))
    } else {
        SecurityConfig::joiner(token_under(&KEY, client_id, p), GAME)
    };
    StationConfig {
        topology,
        security: Some(security),
        seed: 0x1000 + client_id,
        ..StationConfig::new(p, format!("station-{client_id}"))
    }
}

fn is_connectionless(data: &[u8]) -> bool {
    PacketHeader::decode(data).is_ok_and(|(h, _)| h.kind == PacketKind::Connectionless)
}

/// The first connectionless datagram `st` has to send (its join request).
fn take_request(st: &mut Station, now: Instant) -> Vec<u8> {
    while let Some(t) = st.poll_transmit(now) {
        if is_connectionless(&t.contents) {
            return t.contents;
        }
    }
    panic!("no join request");
}

/// The same request with one bit of its nonce flipped.
fn flip_nonce(request: &[u8]) -> Vec<u8> {
    let (_, payload) = PacketHeader::decode(request).unwrap();
    let at = request.len() - payload.len() + 1;
    let mut out = request.to_vec();
    out[at] ^= 1;
    out
}

/// Everything `st` sends right now, as (destination, bytes).
fn drain(st: &mut Station, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = st.poll_transmit(now) {
        out.push((t.destination, t.contents));
    }
    out
}

/// Hands `request` to `st` as if from `from`, and answers the challenge
/// that comes back (the cookie is the request's last 16 bytes): the request
/// as it arrives from a station that receives at `from`.
fn with_cookie(st: &mut Station, now: Instant, from: SocketAddr, request: &[u8]) -> Vec<u8> {
    st.handle_datagram(now, from, request);
    let challenge = drain(st, now)
        .into_iter()
        .find(|(to, d)| *to == from && is_connectionless(d))
        .expect("a challenge")
        .1;
    let mut out = request[..request.len() - 16].to_vec();
    out.extend_from_slice(&challenge[challenge.len() - 16..]);
    out
}

fn joined(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Joined { .. }))
}

fn member_ids(c: &Cluster, i: usize) -> Vec<StationId> {
    c.station(i).stations().iter().map(|s| s.id).collect()
}

#[test]
fn a_join_accepted_with_the_wrong_nonce_is_dropped() {
    let mut c = Cluster::start(
        SimConfig::seeded(1),
        registry(),
        vec![plain(ProcessType::Server, "s", Topology::Mesh)],
    )
    .unwrap();
    let addr: SocketAddr = "10.7.0.1:4000".parse().unwrap();
    let now = c.now();
    let mut b = Station::new(plain(ProcessType::Client, "b", Topology::Mesh), registry());
    b.join(now, addr, c.addrs[0]).unwrap();
    // The session master answers a request whose nonce is not b's.
    let request = flip_nonce(&take_request(&mut b, now));
    let request = with_cookie(c.station_mut(0), now, addr, &request);
    c.station_mut(0).handle_datagram(now, addr, &request);
    c.sim.add_node_at(addr, b);
    c.run_for(Duration::from_secs(2));
    let events: Vec<Event> = std::iter::from_fn(|| c.sim.node_mut(addr).poll_event()).collect();
    assert!(!joined(&events), "{events:?}");
    assert!(c.sim.node(addr).stats().join_messages_refused >= 1);
}

#[test]
fn bad_tokens_do_not_use_up_the_join_rate() {
    let mut c = Cluster::start(
        SimConfig::seeded(2),
        registry(),
        vec![StationConfig {
            limits: netz_core::limits::Limits {
                join_attempts_per_second_total: 5,
                ..Default::default()
            },
            ..secure(ProcessType::Server, 0, Topology::Mesh)
        }],
    )
    .unwrap();
    // A request whose token was sealed under another key.
    let now = c.now();
    let mut forger = Station::new(
        StationConfig {
            security: Some(SecurityConfig::joiner(
                token_under(&[1; 32], 9, ProcessType::Client),
                GAME,
            )),
            ..StationConfig::new(ProcessType::Client, "forger")
        },
        registry(),
    );
    let stranger: SocketAddr = "10.7.0.2:4000".parse().unwrap();
    forger.join(now, stranger, c.addrs[0]).unwrap();
    let bad = take_request(&mut forger, now);
    let real = c.sim.add_node(Station::new(
        secure(ProcessType::Client, 3, Topology::Mesh),
        registry(),
    ));
    let now = c.now();
    c.sim.node_mut(real).join(now, real, c.addrs[0]).unwrap();
    let mut events = Vec::new();
    for i in 0..3000u32 {
        let from = SocketAddr::from(([10, 8, (i / 250) as u8, (i % 250) as u8], 5000));
        let now = c.now();
        c.station_mut(0).handle_datagram(now, from, &bad);
        drain(c.station_mut(0), now);
        c.run_for(Duration::from_millis(1));
        events.extend(std::iter::from_fn(|| c.sim.node_mut(real).poll_event()));
    }
    assert!(joined(&events), "the real joiner got in: {events:?}");
    assert!(c.station(0).stats().token_rejected >= 2900);
}

/// Mesh session of three plain stations, or client-server: server 0,
/// server 1, client 2.
fn three(topology: Topology) -> Cluster {
    three_with(topology, netz_core::limits::Limits::default())
}

fn three_with(topology: Topology, limits: netz_core::limits::Limits) -> Cluster {
    let p = |i| {
        if topology == Topology::ClientServer && i == 2 {
            ProcessType::Client
        } else {
            ProcessType::Server
        }
    };
    let mut c = Cluster::start(
        SimConfig::seeded(4),
        registry(),
        vec![
            StationConfig {
                limits,
                ..plain(p(0), "s0", topology)
            },
            plain(p(1), "s1", topology),
        ],
    )
    .unwrap();
    c.join(plain(p(2), "c2", topology), 1).unwrap();
    c.run_for(Duration::from_millis(200));
    c
}

#[test]
fn a_join_deny_forward_from_a_client_is_dropped() {
    let mut c = three(Topology::ClientServer);
    let victim: SocketAddr = "10.9.9.9:53".parse().unwrap();
    let client = c.station(2).id();
    let now = c.now();
    c.station_mut(1).deliver_forged_join_msg(
        now,
        client,
        ForgedJoinMsg::DenyForward {
            nonce: 1,
            addr: victim,
            reason: "x".repeat(60_000),
        },
    );
    let out = drain(c.station_mut(1), now);
    assert!(out.iter().all(|(to, _)| *to != victim), "reflected");
    // Refused by the authority rule (only the session master sends it).
    let st = c.station(1).stats();
    assert!(st.join_messages_refused + st.unauthorized_messages >= 1);
}

#[test]
fn a_join_deny_forward_for_a_request_never_forwarded_is_dropped() {
    let mut c = three(Topology::ClientServer);
    let victim: SocketAddr = "10.9.9.9:53".parse().unwrap();
    let master = c.station(0).id();
    let now = c.now();
    // Even the session master cannot make a server send to an address
    // that never asked it to join.
    c.station_mut(1).deliver_forged_join_msg(
        now,
        master,
        ForgedJoinMsg::DenyForward {
            nonce: 1,
            addr: victim,
            reason: "x".repeat(60_000),
        },
    );
    let out = drain(c.station_mut(1), now);
    assert!(out.iter().all(|(to, _)| *to != victim), "reflected");
}

#[test]
fn a_join_forward_from_a_client_is_dropped() {
    let mut c = three(Topology::ClientServer);
    let before = member_ids(&c, 0);
    let client = c.station(2).id();
    let now = c.now();
    c.station_mut(0).deliver_forged_join_msg(
        now,
        client,
        ForgedJoinMsg::Forward {
            nonce: 7,
            addr: "10.9.9.8:1000".parse().unwrap(),
            process_type: ProcessType::Server,
        },
    );
    c.run_for(Duration::from_millis(100));
    assert_eq!(member_ids(&c, 0), before, "nobody admitted");
    // Refused by the authority rule (only a contact forwards joins).
    let st = c.station(0).stats();
    assert!(st.join_messages_refused + st.unauthorized_messages >= 1);
}

#[test]
fn join_forwards_are_charged_to_the_join_rate_and_capacity() {
    let mut c = three_with(
        Topology::Mesh,
        netz_core::limits::Limits {
            join_attempts_per_second_total: 5,
            join_burst: 5,
            ..Default::default()
        },
    );
    let member = c.station(1).id();
    let now = c.now();
    for i in 0..100u32 {
        c.station_mut(0).deliver_forged_join_msg(
            now,
            member,
            ForgedJoinMsg::Forward {
                nonce: u64::from(i) + 1,
                addr: SocketAddr::from(([10, 6, 0, i as u8], 1000)),
                process_type: ProcessType::Client,
            },
        );
    }
    let admitted = c.station(0).stations().len() - 3;
    assert!(admitted <= 10, "{admitted} ghosts admitted");
    assert!(c.station(0).stats().join_rate_limited > 0);
}

#[test]
fn a_join_request_from_a_members_address_does_not_remove_it() {
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![
            plain(ProcessType::Server, "s0", Topology::Mesh),
            plain(ProcessType::Client, "c1", Topology::Mesh),
        ],
    )
    .unwrap();
    c.sim.set_recording(true);
    c.join(plain(ProcessType::Client, "c2", Topology::Mesh), 0)
        .unwrap();
    let master = c.addrs[0];
    let request = c
        .sim
        .take_deliveries()
        .into_iter()
        .find(|d| d.to == master && is_connectionless(&d.data))
        .expect("a join request")
        .data;
    c.run_for(Duration::from_millis(200));
    let before = member_ids(&c, 0);
    // c2's own request, one nonce bit flipped, sent from c1's address.
    let now = c.now();
    let c1 = c.addrs[1];
    let request = with_cookie(c.station_mut(0), now, c1, &flip_nonce(&request));
    c.station_mut(0).handle_datagram(now, c1, &request);
    c.run_for(Duration::from_millis(300));
    assert_eq!(member_ids(&c, 0), before);
    assert!(c.station(0).stats().join_restarts_refused >= 1);
}

#[test]
fn a_join_forward_naming_a_members_address_does_not_remove_it() {
    let mut c = three(Topology::Mesh);
    let before = member_ids(&c, 0);
    let (from, victim) = (c.station(2).id(), c.addrs[1]);
    let now = c.now();
    c.station_mut(0).deliver_forged_join_msg(
        now,
        from,
        ForgedJoinMsg::Forward {
            nonce: 99,
            addr: victim,
            process_type: ProcessType::Client,
        },
    );
    c.run_for(Duration::from_millis(300));
    assert_eq!(member_ids(&c, 0), before);
}

#[test]
fn a_spoofed_join_request_gets_at_most_three_times_its_size_back() {
    let mut now = Instant::ZERO;
    let master_addr: SocketAddr = "10.1.0.1:4000".parse().unwrap();
    let spoofed: SocketAddr = "10.66.0.1:4000".parse().unwrap();
    let mut master = Station::new(plain(ProcessType::Server, "s", Topology::Mesh), registry());
    master.create_session(now, master_addr).unwrap();
    drain(&mut master, now);
    let mut joiner = Station::new(plain(ProcessType::Client, "j", Topology::Mesh), registry());
    joiner.join(now, spoofed, master_addr).unwrap();
    let request = take_request(&mut joiner, now);
    // The request arrives with the victim's address as its source; the
    // victim never answers.
    master.handle_datagram(now, spoofed, &request);
    let mut sent = 0;
    for _ in 0..300 {
        for (to, data) in drain(&mut master, now) {
            if to == spoofed {
                sent += data.len();
            }
        }
        now += Duration::from_millis(10);
        master.handle_timeout(now);
    }
    assert!(
        sent <= 3 * request.len(),
        "{sent} bytes sent for a request of {}",
        request.len()
    );
    assert_eq!(master.stations().len(), 1, "nobody admitted");
}

#[test]
fn replayed_join_requests_from_new_ports_admit_no_ghost() {
    let mut c = Cluster::start(
        SimConfig::seeded(6),
        registry(),
        vec![plain(ProcessType::Server, "s", Topology::Mesh)],
    )
    .unwrap();
    c.sim.set_recording(true);
    c.join(plain(ProcessType::Client, "c", Topology::Mesh), 0)
        .unwrap();
    let master = c.addrs[0];
    // Every request the real joiner sent (with and without its cookie).
    let requests: Vec<Vec<u8>> = c
        .sim
        .take_deliveries()
        .into_iter()
        .filter(|d| d.to == master && is_connectionless(&d.data))
        .map(|d| d.data)
        .collect();
    assert!(!requests.is_empty());
    let ip = c.addrs[1].ip();
    for i in 0..200u16 {
        let now = c.now();
        let from = SocketAddr::new(ip, 20_000 + i);
        let r = &requests[usize::from(i) % requests.len()];
        c.station_mut(0).handle_datagram(now, from, r);
        c.run_for(Duration::from_millis(5));
    }
    c.run_for(Duration::from_millis(500));
    assert_eq!(c.station(0).stations().len(), 2, "no ghost admitted");
}

fn token_expiring(client_id: u64, p: ProcessType, expires_at_ms: u64) -> ConnectToken {
    let mut random = [0u8; 24];
    random[..8].copy_from_slice(&client_id.to_le_bytes());
    random[8] = 0xE0;
    TokenIssuer::new(&KEY, GAME).issue(
        &TokenGrant {
            client_id,
            process_type: p,
            expires_at_ms,
            session: 0,
            address: None,
        },
        random,
    )
}

fn joiner_with(p: ProcessType, token: ConnectToken, topology: Topology) -> StationConfig {
    StationConfig {
        topology,
        security: Some(SecurityConfig::joiner(token, GAME)),
        ..StationConfig::new(p, "joiner")
    }
}

fn denied_because(r: Result<usize, JoinError>, why: &str) {
    match r {
        Err(JoinError::Denied(reason)) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a denial ({why}), got {other:?}"),
    }
}

#[test]
fn a_refused_token_is_answered_with_the_reason() {
    for topology in [Topology::Mesh, Topology::ClientServer] {
        // The session master, and a second server that forwards joins.
        let mut c = Cluster::start(
            SimConfig::seeded(7),
            registry(),
            vec![
                secure(ProcessType::Server, 0, topology),
                secure(ProcessType::Server, 2, topology),
            ],
        )
        .unwrap();
        c.run_for(Duration::from_millis(300));
        for contact in [0, 1] {
            let expired = token_expiring(10, ProcessType::Client, 1);
            denied_because(
                c.join(joiner_with(ProcessType::Client, expired, topology), contact),
                "expired",
            );
            let forged = token_under(&[1; 32], 11, ProcessType::Client);
            denied_because(
                c.join(joiner_with(ProcessType::Client, forged, topology), contact),
                "invalid",
            );
            let tool = token_under(&KEY, 12, ProcessType::Tool);
            denied_because(
                c.join(joiner_with(ProcessType::Client, tool, topology), contact),
                "process type",
            );
        }
        // A token that admitted a member, and another token of the same
        // player while that member is in the session (told by the session
        // master, through the contact when forwarded).
        let token = token_under(&KEY, 13, ProcessType::Client);
        c.join(joiner_with(ProcessType::Client, token.clone(), topology), 1)
            .unwrap();
        for contact in [0, 1] {
            if topology == Topology::ClientServer && contact == 0 {
                continue;
            }
            denied_because(
                c.join(
                    joiner_with(ProcessType::Client, token.clone(), topology),
                    contact,
                ),
                "already used",
            );
            let mut second = [9u8; 24];
            second[0] = contact as u8;
            let again = TokenIssuer::new(&KEY, GAME)
                .issue(&TokenGrant::new(13, ProcessType::Client, 600_000), second);
            denied_because(
                c.join(joiner_with(ProcessType::Client, again, topology), contact),
                "in use",
            );
        }
    }
}

#[test]
fn clients_do_not_learn_each_others_addresses() {
    let cs = Topology::ClientServer;
    let mut c = Cluster::start(
        SimConfig::seeded(8),
        registry(),
        vec![
            plain(ProcessType::Server, "s0", cs),
            plain(ProcessType::Server, "s1", cs),
        ],
    )
    .unwrap();
    c.join(plain(ProcessType::Client, "c2", cs), 0).unwrap();
    c.join(plain(ProcessType::Client, "c3", cs), 1).unwrap();
    c.join(plain(ProcessType::Tool, "t4", cs), 0).unwrap();
    c.run_for(Duration::from_millis(300));
    let addr_at = |c: &Cluster, i: usize, j: usize| {
        let id = c.station(j).id();
        c.station(i).station_info(id).map(|s| s.addr)
    };
    for client in [2, 3] {
        let other = 5 - client;
        assert!(
            addr_at(&c, client, other).is_some_and(|a| a.ip().is_unspecified() && a.port() == 0),
            "client {client} knows client {other} at {:?}",
            addr_at(&c, client, other)
        );
        // Servers' addresses it needs (to reattach when one goes).
        for server in [0, 1] {
            assert_eq!(addr_at(&c, client, server), Some(c.addrs[server]));
        }
        // A tool is told no client's address either.
        assert!(addr_at(&c, 4, client).is_some_and(|a| a.ip().is_unspecified()));
        // Servers know every client.
        for server in [0, 1] {
            assert_eq!(addr_at(&c, server, client), Some(c.addrs[client]));
        }
    }
    // Every station still sees everyone.
    for i in 0..5 {
        assert_eq!(c.station(i).stations().len(), 5, "station {i}");
    }
}

#[test]
fn the_identification_token_is_not_broadcast() {
    for topology in [Topology::Mesh, Topology::ClientServer] {
        let mut c = Cluster::start(
            SimConfig::seeded(9),
            registry(),
            vec![plain(ProcessType::Server, "master-secret", topology)],
        )
        .unwrap();
        // The join-approval idiom: the token is a password only the
        // session master may see.
        c.station_mut(0).register_join_approval_callback(|op| {
            if !op.joining_station().token.ends_with(":pw") {
                op.deny_with_reason("bad password");
            }
        });
        let p = if topology == Topology::Mesh {
            ProcessType::Server
        } else {
            ProcessType::Client
        };
        c.join(plain(p, "alice:pw", topology), 0).unwrap();
        c.join(plain(p, "bob:pw", topology), 0).unwrap();
        c.run_for(Duration::from_millis(300));
        let tokens = |c: &Cluster, i: usize| -> Vec<String> {
            c.station(i)
                .stations()
                .into_iter()
                .map(|s| s.token)
                .collect()
        };
        // The session master keeps them all.
        let mut at_master = tokens(&c, 0);
        at_master.sort();
        assert_eq!(at_master, ["alice:pw", "bob:pw", "master-secret"]);
        // Each joiner knows its own, and no one else's.
        for (i, own) in [(1, "alice:pw"), (2, "bob:pw")] {
            let mut seen: Vec<String> = tokens(&c, i)
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect();
            seen.sort();
            assert_eq!(seen, [own], "{topology:?} station {i}");
        }
    }
}
