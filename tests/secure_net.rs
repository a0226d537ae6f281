//! Security over real loopback sockets in a few lines: a backend issues
//! tokens from the OS's random source, a client joins with one (passed as
//! text) and calls an RMC on sealed links; stations without a valid token
//! are kept out.
#![allow(missing_docs)]

use netz::crypto::TokenIssuer;
use netz::net::security::{new_token_key, TokenIssuerExt};
use netz::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const GAME: u64 = 0x0061_7265_6e61;
const WAIT: Duration = Duration::from_secs(10);

#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Board {
    pub value: i64,
}

#[doclass]
#[derive(Default)]
pub struct Counter {
    #[dataset]
    pub board: Board,
}

#[doclass]
impl Counter {
    #[rmc]
    pub fn add(&mut self, n: i64) -> i64 {
        self.board.value += n;
        self.board.value
    }
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Counter>().unwrap();
    Arc::new(r)
}

fn cfg(p: ProcessType, name: &str) -> NetConfig {
    NetConfig::new(p, name)
        .heartbeat_interval(Duration::from_millis(50))
        .join_timeout(Duration::from_millis(700))
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_admit_and_keep_out() {
    // The backend: a token key and an issuer.
    let key = new_token_key().unwrap();
    assert_ne!(key, new_token_key().unwrap(), "two keys from the OS differ");
    let issuer = TokenIssuer::new(&key, GAME);

    let server = NetStation::bind(
        local(),
        cfg(ProcessType::Server, "server").secure_authority(key, GAME),
        registry(),
    )
    .await
    .unwrap();
    server.create_session().unwrap();
    let counter = server.publish(Counter::default()).unwrap();

    // A client joins with a token handed to it as text.
    let text = issuer
        .issue_for(1, ProcessType::Client, Duration::from_secs(60))
        .unwrap()
        .to_text();
    let alice = NetStation::bind(
        local(),
        cfg(ProcessType::Client, "alice").secure_joiner(text.parse().unwrap(), GAME),
        registry(),
    )
    .await
    .unwrap();
    alice.join(server.local_addr()).await.unwrap();
    assert!(
        alice
            .wait_until(WAIT, |st| st.contains(counter.handle()))
            .await
    );
    assert_eq!(alice.remote_ref(&counter).add(5).await.unwrap(), 5);

    // No token, an expired token, a token of another key, the wrong process type.
    let other = TokenIssuer::new(&new_token_key().unwrap(), GAME);
    let refused = [
        (cfg(ProcessType::Client, "none"), "no token"),
        (
            cfg(ProcessType::Client, "late").secure_joiner(
                issuer
                    .issue_for(2, ProcessType::Client, Duration::ZERO)
                    .unwrap(),
                GAME,
            ),
            "expired",
        ),
        (
            cfg(ProcessType::Client, "forged").secure_joiner(
                other
                    .issue_for(3, ProcessType::Client, Duration::from_secs(60))
                    .unwrap(),
                GAME,
            ),
            "another key",
        ),
        (
            cfg(ProcessType::Server, "upgrade").secure_joiner(
                issuer
                    .issue_for(4, ProcessType::Client, Duration::from_secs(60))
                    .unwrap(),
                GAME,
            ),
            "granted as a client, joining as a server",
        ),
    ];
    for (config, what) in refused {
        let s = NetStation::bind(local(), config, registry()).await.unwrap();
        assert!(s.join(server.local_addr()).await.is_err(), "{what}");
        s.shutdown().await;
    }
    assert_eq!(server.read(|st| st.stations().len()), 2);
    alice.shutdown().await;
    server.shutdown().await;
}
