//! Security through the driver on real loopback sockets: token expiry on
//! the Unix clock with no extra call, and refused joiners told why.

#[path = "../src/bin/netz-station/score.rs"]
mod score;

use netz_core::crypto::{TokenGrant, TokenIssuer};
use netz_core::{JoinError, ProcessType};
use netz_net::security::{new_token_key, random_bytes, unix_ms, TokenIssuerExt};
use netz_net::{NetConfig, NetError, NetStation};
use score::registry;
use std::net::SocketAddr;
use std::time::Duration;

const GAME: u64 = 0x7365_6332;

fn cfg(p: ProcessType, token: &str) -> NetConfig {
    NetConfig::new(p, token)
        .heartbeat_interval(Duration::from_millis(50))
        .failure_timeout(Duration::from_millis(500))
        .join_timeout(Duration::from_secs(3))
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn denied(err: &NetError) -> Option<&str> {
    match err {
        NetError::Join(JoinError::Denied(r)) => Some(r),
        _ => None,
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_through_netz_net() {
    let key = new_token_key().unwrap();
    let issuer = TokenIssuer::new(&key, GAME);
    let server = NetStation::bind(
        loopback(),
        cfg(ProcessType::Server, "server").secure_authority(key, GAME),
        registry(),
    )
    .await
    .unwrap();
    server.create_session().unwrap();
    // Expired a second ago on the Unix clock: the driver's clock starts at
    // zero, so without the origin it would look valid for years.
    let expired = issuer.issue(
        &TokenGrant {
            client_id: 1,
            process_type: ProcessType::Client,
            expires_at_ms: unix_ms() - 1000,
            session: 0,
            address: None,
        },
        random_bytes::<24>().unwrap(),
    );
    let late = NetStation::bind(
        loopback(),
        cfg(ProcessType::Client, "late").secure_joiner(expired, GAME),
        registry(),
    )
    .await
    .unwrap();
    let err = late.join(server.local_addr()).await.unwrap_err();
    assert!(denied(&err).is_some_and(|r| r.contains("expired")), "{err}");
    // A valid token still gets in.
    let fresh = issuer
        .issue_for(2, ProcessType::Client, Duration::from_secs(60))
        .unwrap();
    let good = NetStation::bind(
        loopback(),
        cfg(ProcessType::Client, "good").secure_joiner(fresh, GAME),
        registry(),
    )
    .await
    .unwrap();
    good.join(server.local_addr()).await.unwrap();
    for s in [late, good, server] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn a_refused_token_is_told_why_through_netz_net() {
    let key = new_token_key().unwrap();
    let server = NetStation::bind(
        loopback(),
        cfg(ProcessType::Server, "server").secure_authority(key, GAME),
        registry(),
    )
    .await
    .unwrap();
    server.create_session().unwrap();
    // Sealed under another key.
    let forged = TokenIssuer::new(&new_token_key().unwrap(), GAME)
        .issue_for(3, ProcessType::Client, Duration::from_secs(60))
        .unwrap();
    let forger = NetStation::bind(
        loopback(),
        cfg(ProcessType::Client, "forger").secure_joiner(forged, GAME),
        registry(),
    )
    .await
    .unwrap();
    let err = forger.join(server.local_addr()).await.unwrap_err();
    assert!(denied(&err).is_some_and(|r| r.contains("invalid")), "{err}");
    // One token, two stations: the second is told it was used.
    let token = TokenIssuer::new(&key, GAME)
        .issue_for(4, ProcessType::Client, Duration::from_secs(60))
        .unwrap();
    let first = NetStation::bind(
        loopback(),
        cfg(ProcessType::Client, "first").secure_joiner(token.clone(), GAME),
        registry(),
    )
    .await
    .unwrap();
    first.join(server.local_addr()).await.unwrap();
    let second = NetStation::bind(
        loopback(),
        cfg(ProcessType::Client, "second").secure_joiner(token, GAME),
        registry(),
    )
    .await
    .unwrap();
    let err = second.join(server.local_addr()).await.unwrap_err();
    assert!(
        denied(&err).is_some_and(|r| r.contains("already used")),
        "{err}"
    );
    for s in [forger, first, second, server] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn join_salts_come_from_the_operating_system() {
    // Two sessions whose stations are configured alike to the bit: the
    // same seeds (fresh seeds off), the same entropy put in by the caller,
    // the same token key and the same token, the same station ids. Only
    // the operating system's randomness tells the joins apart, and their
    // link keys differ.
    let key = [0x42; 32];
    let token = TokenIssuer::new(&key, GAME)
        .issue_for(5, ProcessType::Client, Duration::from_secs(60))
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut server_cfg = cfg(ProcessType::Server, "server")
            .secure_authority(key, GAME)
            .seed(7, false);
        if let Some(sec) = server_cfg.station.security.as_mut() {
            sec.entropy = [1; 32];
        }
        let server = NetStation::bind(loopback(), server_cfg, registry())
            .await
            .unwrap();
        server.create_session().unwrap();
        let mut client_cfg = cfg(ProcessType::Client, "client")
            .secure_joiner(token.clone(), GAME)
            .seed(8, false);
        if let Some(sec) = client_cfg.station.security.as_mut() {
            sec.entropy = [1; 32];
        }
        let client = NetStation::bind(loopback(), client_cfg, registry())
            .await
            .unwrap();
        // The session master is the only one that knows which tokens were
        // used: each session has its own.
        client.join(server.local_addr()).await.unwrap();
        let keys = client.read(netz_core::forge::link_key_fingerprints);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(client.id(), netz_core::StationId(2));
        seen.push(keys[0]);
        for s in [client, server] {
            s.shutdown().await;
        }
    }
    assert_eq!(seen[0].0, seen[1].0, "both are links to station 1");
    assert_ne!(seen[0].1, seen[1].1, "a send key came back");
    assert_ne!(seen[0].2, seen[1].2, "a receive key came back");
}
