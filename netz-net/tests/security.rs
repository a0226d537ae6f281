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
    // One token, two stations: the second is told it is in use.
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
    assert!(denied(&err).is_some_and(|r| r.contains("in use")), "{err}");
    for s in [forger, first, second, server] {
        s.shutdown().await;
    }
}
