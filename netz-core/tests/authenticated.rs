//! Security on: connect tokens, sealed datagrams, replay protection. A
//! spoofed, modified, replayed or expired datagram is dropped and counted;
//! the session keeps working.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::crypto::{ConnectToken, SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::sim::SimConfig;
use netz_core::transport::{PacketHeader, PacketKind};
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x5A; 32];
const GAME: u64 = 0x6e65_747a;

fn token(client_id: u64, process_type: ProcessType, expires_at_ms: u64) -> ConnectToken {
    let mut random = [0u8; 24];
    random[..8].copy_from_slice(&client_id.to_le_bytes());
    random[8..16].copy_from_slice(&expires_at_ms.to_le_bytes());
    TokenIssuer::new(&KEY, GAME).issue(
        &TokenGrant {
            client_id,
            process_type,
            expires_at_ms,
            session: 0,
            address: None,
        },
        random,
    )
}

/// The session's creator: holds the token key.
fn authority(p: ProcessType, topology: Topology) -> StationConfig {
    StationConfig {
        topology,
        security: Some(SecurityConfig::authority(KEY, GAME)),
        ..StationConfig::new(p, "authority")
    }
}

/// A joiner with a token valid for a minute; servers also know the token key.
fn joiner(id: u64, p: ProcessType, topology: Topology) -> StationConfig {
    let t = token(id, p, 60_000);
    let security = if p == ProcessType::Server {
        SecurityConfig::authority(KEY, GAME).with_token(t)
    } else {
        SecurityConfig::joiner(t, GAME)
    };
    StationConfig {
        topology,
        security: Some(security),
        ..StationConfig::new(p, format!("station-{id}"))
    }
}

fn rmc_works(c: &mut Cluster, from: usize, h: DOHandle) {
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(from)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(1i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(5)), "the RMC completes");
    assert_eq!(ctx.outcome(), Outcome::Success);
}

fn mesh() -> (Cluster, DOHandle) {
    let mut c = Cluster::start(
        SimConfig::seeded(11),
        registry(),
        vec![
            authority(ProcessType::Server, Topology::Mesh),
            joiner(2, ProcessType::Client, Topology::Mesh),
            joiner(3, ProcessType::Client, Topology::Mesh),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "target"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    (c, h)
}

#[test]
fn a_secure_mesh_session_works() {
    let (mut c, h) = mesh();
    rmc_works(&mut c, 1, h);
    rmc_works(&mut c, 2, h);
    // Peer to peer links between the two clients are keyed too.
    let now = c.now();
    let h2 = c
        .station_mut(1)
        .publish(now, Counter::new(5, "client's"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    rmc_works(&mut c, 2, h2);
    for i in 0..3 {
        let s = c.station(i).stats();
        assert_eq!((s.auth_failed, s.replayed), (0, 0), "station {i}: {s:?}");
    }
}

#[test]
fn a_secure_client_server_session_works() {
    let t = Topology::ClientServer;
    let mut c = Cluster::start(
        SimConfig::seeded(12),
        registry(),
        vec![
            authority(ProcessType::Server, t),
            joiner(2, ProcessType::Server, t),
        ],
    )
    .unwrap();
    c.join(joiner(3, ProcessType::Client, t), 0).unwrap();
    c.join(joiner(4, ProcessType::Client, t), 1).unwrap();
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(1, "a client's"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    // Client 4 (through server 1) calls client 3's object (through server 0).
    rmc_works(&mut c, 3, h);
    for i in 0..4 {
        let s = c.station(i).stats();
        assert_eq!((s.auth_failed, s.replayed), (0, 0), "station {i}: {s:?}");
    }
}

/// Link datagrams recorded from `from` to `to`.
fn recorded(c: &mut Cluster, from: usize, to: usize, h: DOHandle) -> Vec<Vec<u8>> {
    c.sim.set_recording(true);
    for _ in 0..5 {
        rmc_works(c, from, h);
    }
    c.sim.set_recording(false);
    let (a, b) = (c.addrs[from], c.addrs[to]);
    let got: Vec<Vec<u8>> = c
        .sim
        .take_deliveries()
        .into_iter()
        .filter(|d| d.from == a && d.to == b)
        .map(|d| d.data)
        .collect();
    assert!(!got.is_empty());
    got
}

fn deliver(c: &mut Cluster, to: usize, from: SocketAddr, bytes: &[u8]) {
    let now = c.now();
    c.station_mut(to).handle_datagram(now, from, bytes);
}

#[test]
fn spoofed_datagrams_are_dropped_and_counted() {
    let (mut c, h) = mesh();
    let before = c.station(0).stats().clone();
    let member = c.addrs[1];
    let session = {
        let real = recorded(&mut c, 1, 0, h);
        PacketHeader::decode(&real[0]).unwrap().0.session
    };
    // The right address, the right header, no key: a ping and an ack in clear.
    for i in 0..50u8 {
        let mut d = Vec::new();
        PacketHeader {
            kind: PacketKind::Link,
            session,
            sender: 2,
            receiver: 1,
        }
        .encode(&mut d);
        d.extend_from_slice(&[
            100 + i,
            0x01,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        deliver(&mut c, 0, member, &d);
    }
    let after = c.station(0).stats().clone();
    assert_eq!(after.auth_failed - before.auth_failed, 50, "{after:?}");
    rmc_works(&mut c, 1, h);
}

#[test]
fn modified_datagrams_are_dropped_and_counted() {
    let (mut c, h) = mesh();
    let real = recorded(&mut c, 1, 0, h);
    let member = c.addrs[1];
    let before = c.station(0).stats().clone();
    let mut n = 0;
    for (k, d) in real.iter().enumerate() {
        let hlen = PacketHeader::decode(d).unwrap().0.encoded_len();
        // Flip one bit in the counter, the sealed payload or the tag.
        let at = hlen + (k * 7) % (d.len() - hlen);
        let mut bad = d.clone();
        bad[at] ^= 1 << (k % 8);
        deliver(&mut c, 0, member, &bad);
        // And one in the header (associated data): another session tag.
        let mut bad = d.clone();
        bad[3] ^= 0x01;
        deliver(&mut c, 0, member, &bad);
        n += 1;
    }
    let after = c.station(0).stats().clone();
    assert!(after.auth_failed - before.auth_failed >= n, "{after:?}");
    assert_eq!(after.replayed, before.replayed);
    rmc_works(&mut c, 1, h);
}

#[test]
fn replayed_datagrams_are_dropped_and_counted() {
    let (mut c, h) = mesh();
    let real = recorded(&mut c, 1, 0, h);
    let member = c.addrs[1];
    let before = c.station(0).stats().clone();
    let calls = before.calls_executed;
    // The last few are still inside the replay window; older ones fell out
    // of it and are refused all the same.
    for d in real.iter().rev() {
        deliver(&mut c, 0, member, d);
    }
    let after = c.station(0).stats().clone();
    assert_eq!(
        after.replayed - before.replayed,
        real.len() as u64,
        "{after:?}"
    );
    assert_eq!(after.calls_executed, calls, "no replayed call ran again");
    rmc_works(&mut c, 1, h);
}

fn try_join(c: &mut Cluster, cfg: StationConfig) -> Result<usize, JoinError> {
    c.join(cfg, 0)
}

#[test]
fn expired_forged_and_missing_tokens_are_refused_and_told_why() {
    let (mut c, h) = mesh();
    let now_ms = c.now().as_micros() / 1000;
    let with = |t: Option<ConnectToken>, p: ProcessType| StationConfig {
        join_timeout: Duration::from_secs(1),
        security: Some(SecurityConfig {
            connect_token: t,
            ..SecurityConfig::joiner(token(99, p, 1), GAME)
        }),
        ..StationConfig::new(p, "intruder")
    };
    let before = c.station(0).stats().clone();
    // Expired.
    let expired = token(20, ProcessType::Client, now_ms.saturating_sub(1));
    assert_eq!(
        try_join(&mut c, with(Some(expired), ProcessType::Client)),
        Err(JoinError::Denied("the connect token expired".into()))
    );
    let mid = c.station(0).stats().clone();
    assert!(mid.token_expired > before.token_expired, "{mid:?}");
    // Forged: sealed under another key.
    let forged = TokenIssuer::new(&[1; 32], GAME).issue(
        &TokenGrant {
            client_id: 21,
            process_type: ProcessType::Client,
            expires_at_ms: u64::MAX,
            session: 0,
            address: None,
        },
        [9; 24],
    );
    assert_eq!(
        try_join(&mut c, with(Some(forged), ProcessType::Client)),
        Err(JoinError::Denied("the connect token is invalid".into()))
    );
    // A tool without a token.
    assert_eq!(
        try_join(&mut c, with(None, ProcessType::Tool)),
        Err(JoinError::Denied("the connect token is invalid".into()))
    );
    // A client's token used to join as a server.
    let client = token(22, ProcessType::Client, u64::MAX);
    assert_eq!(
        try_join(&mut c, with(Some(client), ProcessType::Server)),
        Err(JoinError::Denied(
            "the connect token is for another process type".into()
        ))
    );
    // A token already in use by a member.
    let taken = token(2, ProcessType::Client, u64::MAX);
    assert_eq!(
        try_join(&mut c, with(Some(taken), ProcessType::Client)),
        Err(JoinError::Denied("the connect token is in use".into()))
    );
    let after = c.station(0).stats().clone();
    assert!(after.token_rejected >= mid.token_rejected + 4, "{after:?}");
    assert_eq!(c.station(0).stations().len(), 3);
    rmc_works(&mut c, 1, h);
    // A good token still gets in.
    let i = c
        .join(joiner(30, ProcessType::Tool, Topology::Mesh), 1)
        .unwrap();
    c.run_for(Duration::from_millis(200));
    rmc_works(&mut c, i, h);
}
