//! Link keys and connect tokens: a token admits one station once, may be
//! bound to a session and an address, and no two joins ever share a link
//! key, whoever reuses the token.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::crypto::{ConnectToken, Key, SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::forge;
use netz_core::sim::SimConfig;
use netz_core::station::ForgedJoinMsg;
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x33; 32];
const GAME: u64 = 0x6e65_747a;

fn issue(grant: TokenGrant, random: u8) -> ConnectToken {
    TokenIssuer::new(&KEY, GAME).issue(&grant, [random; 24])
}

fn token(client_id: u64, p: ProcessType, random: u8) -> ConnectToken {
    issue(TokenGrant::new(client_id, p, 600_000), random)
}

fn master(topology: Topology, entropy: Key, session_id: u64) -> StationConfig {
    let mut sec = SecurityConfig::authority(KEY, GAME).with_session_id(session_id);
    sec.entropy = entropy;
    StationConfig {
        topology,
        security: Some(sec),
        ..StationConfig::new(ProcessType::Server, "master")
    }
}

fn joiner(p: ProcessType, t: ConnectToken, topology: Topology, entropy: Key) -> StationConfig {
    let mut sec = SecurityConfig::joiner(t, GAME);
    sec.entropy = entropy;
    StationConfig {
        topology,
        security: Some(sec),
        // The same seed every time: a restarted station that draws the
        // same numbers again.
        seed: 99,
        ..StationConfig::new(p, "joiner")
    }
}

fn denied_because(r: Result<usize, JoinError>, why: &str) {
    match r {
        Err(JoinError::Denied(reason)) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a denial ({why}), got {other:?}"),
    }
}

/// The joiner's keys for its link with the session master (id 1), after
/// a join with `token` into a fresh session.
fn keys_of_a_join(
    token: &ConnectToken,
    master_entropy: Key,
    joiner_entropy: Key,
    session_id: u64,
) -> (u64, u64) {
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![master(Topology::Mesh, master_entropy, session_id)],
    )
    .unwrap();
    let j = c
        .join(
            joiner(
                ProcessType::Client,
                token.clone(),
                Topology::Mesh,
                joiner_entropy,
            ),
            0,
        )
        .unwrap();
    let mine = forge::link_key_fingerprints(c.station(j));
    let theirs = forge::link_key_fingerprints(c.station(0));
    let (_, send, recv) = mine
        .iter()
        .copied()
        .find(|(id, ..)| *id == StationId(1))
        .expect("a key for the session master");
    // Both sides hold the same pair, crossed.
    let joiner_id = c.station(j).id();
    assert!(
        theirs.contains(&(joiner_id, recv, send)),
        "the two sides disagree on the link's keys"
    );
    (send, recv)
}

#[test]
fn two_joins_with_one_token_never_share_a_link_key() {
    let t = token(5, ProcessType::Client, 1);
    let mut seen = std::collections::BTreeSet::new();
    // The same token, the same station id (2) and the same joiner seed in
    // every session; the randomness of one side repeats each time: first
    // the joiner's, then the session master's, then both differ.
    for (master_entropy, joiner_entropy, session_id) in [
        ([1; 32], [9; 32], 0),
        ([2; 32], [9; 32], 0),
        ([3; 32], [9; 32], 0),
        ([4; 32], [8; 32], 0),
        ([4; 32], [7; 32], 0),
        ([4; 32], [7; 32], 12),
    ] {
        let (send, recv) = keys_of_a_join(&t, master_entropy, joiner_entropy, session_id);
        assert!(seen.insert(send), "a send key came back");
        assert!(seen.insert(recv), "a receive key came back");
    }
}

#[test]
fn a_connect_token_admits_one_station_once() {
    for topology in [Topology::Mesh, Topology::ClientServer] {
        let mut c = Cluster::start(
            SimConfig::seeded(6),
            registry(),
            vec![master(topology, [1; 32], 0)],
        )
        .unwrap();
        let t = token(7, ProcessType::Client, 2);
        let first = c
            .join(joiner(ProcessType::Client, t.clone(), topology, [2; 32]), 0)
            .unwrap();
        let first_id = c.station(first).id();
        // The station crashes and comes back with the same token: the
        // session master has declared it gone, so no member holds the
        // token any more, and still it is spent.
        c.crash(first);
        assert!(c.run_until(Duration::from_secs(5), |c| {
            c.station(0).stations().iter().all(|s| s.id != first_id)
        }));
        assert_eq!(forge::spent_tokens(c.station(0)), 1);
        denied_because(
            c.join(joiner(ProcessType::Client, t, topology, [3; 32]), 0),
            "already used",
        );
        // A fresh token of the same player joins.
        let fresh = token(7, ProcessType::Client, 3);
        c.join(joiner(ProcessType::Client, fresh, topology, [3; 32]), 0)
            .unwrap();
    }
}

#[test]
fn a_token_bound_to_a_session_admits_only_there() {
    let mut c = Cluster::start(
        SimConfig::seeded(7),
        registry(),
        vec![master(Topology::Mesh, [1; 32], 4242)],
    )
    .unwrap();
    let grant = TokenGrant::new(8, ProcessType::Client, 600_000);
    denied_because(
        c.join(
            joiner(
                ProcessType::Client,
                issue(grant.clone().for_session(4243), 4),
                Topology::Mesh,
                [2; 32],
            ),
            0,
        ),
        "another session",
    );
    c.join(
        joiner(
            ProcessType::Client,
            issue(grant.for_session(4242), 5),
            Topology::Mesh,
            [2; 32],
        ),
        0,
    )
    .unwrap();
}

#[test]
fn a_token_bound_to_an_address_admits_only_from_there() {
    let mut c = Cluster::start(
        SimConfig::seeded(8),
        registry(),
        vec![master(Topology::Mesh, [1; 32], 0)],
    )
    .unwrap();
    let home: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let elsewhere: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let grant = TokenGrant::new(9, ProcessType::Client, 600_000).from_address(home);
    let at = |c: &mut Cluster, addr: SocketAddr, t: ConnectToken| {
        let st = Station::new(
            joiner(ProcessType::Client, t, Topology::Mesh, [2; 32]),
            registry(),
        );
        c.sim.add_node_at(addr, st);
        c.addrs.push(addr);
        let i = c.addrs.len() - 1;
        c.join_existing(i, 0).map(|_| i)
    };
    denied_because(
        at(&mut c, elsewhere, issue(grant.clone(), 6)),
        "another address",
    );
    at(&mut c, home, issue(grant, 7)).unwrap();
}

#[test]
fn secure_joins_complete_when_their_join_keys_are_lost() {
    // The small connectionless message that completes the joiner's keys is
    // lost as often as anything else; the joiner's retries bring it again.
    for seed in 0..8 {
        for topology in [Topology::Mesh, Topology::ClientServer] {
            let sim = SimConfig {
                loss: 0.3,
                ..SimConfig::seeded(100 + seed)
            };
            let mut c =
                Cluster::start(sim, registry(), vec![master(topology, [1; 32], 0)]).unwrap();
            let t = token(10 + seed, ProcessType::Client, seed as u8 + 10);
            let j = c
                .join(joiner(ProcessType::Client, t, topology, [2; 32]), 0)
                .unwrap_or_else(|e| panic!("seed {seed} {topology:?}: {e}"));
            assert!(c.station(j).id().0 >= 2);
        }
    }
}

#[test]
fn join_keys_forward_is_no_reflector() {
    let cs = Topology::ClientServer;
    let mut c = Cluster::start(
        SimConfig::seeded(9),
        registry(),
        vec![master(cs, [1; 32], 0), {
            let mut s = master(cs, [5; 32], 0);
            if let Some(sec) = s.security.as_mut() {
                sec.connect_token = Some(token(20, ProcessType::Server, 20));
            }
            s
        }],
    )
    .unwrap();
    let client = c
        .join(
            joiner(
                ProcessType::Client,
                token(21, ProcessType::Client, 21),
                cs,
                [2; 32],
            ),
            1,
        )
        .unwrap();
    let victim: SocketAddr = "10.9.9.9:53".parse().unwrap();
    let now = c.now();
    // From a client, and from the session master for a request the server
    // never forwarded: the server sends nothing towards the victim.
    for from in [c.station(client).id(), c.station(0).id()] {
        let before = c.station(1).stats().clone();
        c.station_mut(1).deliver_forged_join_msg(
            now,
            from,
            ForgedJoinMsg::KeysForward {
                nonce: 1,
                addr: victim,
            },
        );
        let mut out = Vec::new();
        while let Some(t) = c.station_mut(1).poll_transmit(now) {
            out.push(t.destination);
        }
        assert!(!out.contains(&victim), "reflected");
        let after = c.station(1).stats();
        assert!(
            after.join_messages_refused + after.unauthorized_messages
                > before.join_messages_refused + before.unauthorized_messages,
            "not counted"
        );
    }
}
