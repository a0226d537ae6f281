//! The driver on real UDP sockets, in one process: sessions over IPv4 and
//! IPv6 loopback, RMCs and actions, clear errors, and datagrams from
//! strangers.

#[path = "../src/bin/netz-station/score.rs"]
mod score;

use async_trait::async_trait;
use netz_core::rmc::RmcContext;
use netz_core::{Event, JoinError, Outcome, ProcessType, StationId};
use netz_net::{wait_rmc, DatagramSocket, NetConfig, NetError, NetStation, SessionState};
use score::{registry, Score, ADD, BUMP};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn cfg(p: ProcessType, token: &str) -> NetConfig {
    NetConfig::new(p, token)
        .heartbeat_interval(Duration::from_millis(50))
        .failure_timeout(Duration::from_millis(500))
        .join_timeout(Duration::from_secs(3))
        .rmc_timeout(Duration::from_secs(3))
}

fn any(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 0)
}

async fn session(ip: &str, clients: usize) -> Vec<NetStation> {
    let reg = registry();
    let server = NetStation::bind(any(ip), cfg(ProcessType::Server, "server"), reg.clone())
        .await
        .unwrap();
    assert_eq!(server.create_session().unwrap(), StationId(1));
    let mut all = vec![server];
    for i in 0..clients {
        let c = NetStation::bind(
            any(ip),
            cfg(ProcessType::Client, &format!("c{i}")),
            reg.clone(),
        )
        .await
        .unwrap();
        let (id, master) = c.join(all[0].local_addr()).await.unwrap();
        assert_eq!(master, StationId(1));
        assert_eq!(id, c.id());
        all.push(c);
    }
    let n = all.len();
    for s in &all {
        assert!(s.wait_until(WAIT, |st| st.stations().len() == n).await);
    }
    all
}

async fn replicate_call_and_leave(stations: Vec<NetStation>) {
    let r = stations[1].publish(Score::new(5, "c0", false)).unwrap();
    let h = r.handle();
    for s in &stations {
        assert!(s.wait_until(WAIT, |st| st.get::<Score>(h).is_some()).await);
    }
    // An RMC from another client runs on the master and returns.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(stations[2].with(|st, _| st.object::<Score>(h).call(&ctx, ADD, &(8i64,))));
    assert_eq!(wait_rmc(&ctx, WAIT).await, Outcome::Success);
    assert_eq!(ctx.result(), Some(13));
    // The master's update reaches every duplica.
    assert!(stations[1].update(h).unwrap());
    for s in &stations {
        assert!(
            s.wait_until(WAIT, |st| st.get::<Score>(h).unwrap().lock().data.value
                == 13)
                .await
        );
    }
    // An action runs on the master and every duplica.
    assert!(stations[0].with(|st, _| st.object::<Score>(h).action_on_master(BUMP, &(2i64,))));
    for s in &stations {
        assert!(
            s.wait_until(WAIT, |st| st.get::<Score>(h).unwrap().lock().bumps == 2)
                .await
        );
    }
    // A graceful leave: the others see it, and the object (not recoverable) goes.
    let mut events = stations[0].events();
    let leaver = stations[1].id();
    stations[1].leave().await.unwrap();
    assert!(matches!(stations[1].state(), SessionState::Closed { .. }));
    let left = events
        .wait_for(WAIT, |e| match e {
            Event::StationLeft(id) => Some(*id),
            _ => None,
        })
        .await;
    assert_eq!(left, Some(leaver));
    for s in [&stations[0], &stations[2]] {
        assert!(s.wait_until(WAIT, |st| st.get::<Score>(h).is_none()).await);
    }
    for s in stations {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn ipv4_session_replicates_calls_and_leaves() {
    let stations = session("127.0.0.1", 2).await;
    replicate_call_and_leave(stations).await;
}

#[tokio::test]
async fn ipv6_session_replicates_calls_and_leaves() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("IPv6 loopback unavailable; skipping");
        return;
    }
    let stations = session("::1", 2).await;
    assert!(stations[0].local_addr().is_ipv6());
    replicate_call_and_leave(stations).await;
}

#[tokio::test]
async fn session_master_crash_is_recovered() {
    let mut stations = session("127.0.0.1", 3).await;
    let kept = stations[0].publish(Score::new(7, "server", true)).unwrap();
    let gone = stations[0].publish(Score::new(1, "server", false)).unwrap();
    let (k, g) = (kept.handle(), gone.handle());
    for s in &stations {
        assert!(s.wait_until(WAIT, |st| st.get::<Score>(g).is_some()).await);
    }
    // Dropping the last handle aborts the driver: a crash, no goodbye.
    drop((kept, gone));
    drop(stations.remove(0));
    for s in &stations {
        assert!(
            s.wait_until(WAIT, |st| st.session_master() == StationId(2)
                && st.stations().len() == 3
                && st.get::<Score>(g).is_none()
                && st.master_of(k) == Some(StationId(2)))
                .await,
            "{:?}",
            s
        );
    }
    assert_eq!(
        stations[2].read(|st| st.get::<Score>(k).unwrap().lock().data.value),
        7
    );
    for s in stations {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let reg = registry();
    let a = NetStation::bind(any("127.0.0.1"), cfg(ProcessType::Server, "a"), reg.clone())
        .await
        .unwrap();
    let err = NetStation::bind(a.local_addr(), cfg(ProcessType::Server, "b"), reg.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::AddrInUse { addr } if addr == a.local_addr()));
    assert!(err.to_string().contains("already in use"), "{err}");
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
    let err = NetStation::bind(
        "192.0.2.1:0".parse().unwrap(),
        cfg(ProcessType::Server, "c"),
        reg,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, NetError::AddrNotAvailable { .. }), "{err}");
    a.shutdown().await;
}

#[tokio::test]
async fn wrong_contact_addresses_are_rejected() {
    let a = NetStation::bind(any("127.0.0.1"), cfg(ProcessType::Client, "a"), registry())
        .await
        .unwrap();
    for bad in [
        "127.0.0.1:0",
        "0.0.0.0:4000",
        "[::1]:4000",
        "224.0.0.1:4000",
    ] {
        let err = a.join(bad.parse().unwrap()).await.unwrap_err();
        assert!(
            matches!(err, NetError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
    }
    let err = a.join(a.local_addr()).await.unwrap_err();
    assert!(matches!(err, NetError::InvalidAddress { .. }), "{err}");
    assert_eq!(a.state(), SessionState::Idle);
    a.shutdown().await;
}

#[tokio::test]
async fn a_refused_join_says_why() {
    let reg = registry();
    let server = NetStation::bind(any("127.0.0.1"), cfg(ProcessType::Server, "s"), reg.clone())
        .await
        .unwrap();
    server.create_session().unwrap();
    server.with(|st, _| {
        st.register_join_approval_callback(|op| {
            if op.joining_station().token == "mallory" {
                op.deny_with_reason("banned");
            }
        })
    });
    let bad = NetStation::bind(
        any("127.0.0.1"),
        cfg(ProcessType::Client, "mallory"),
        reg.clone(),
    )
    .await
    .unwrap();
    let err = bad.join(server.local_addr()).await.unwrap_err();
    assert!(
        matches!(&err, NetError::Join(JoinError::Denied(r)) if r.contains("banned")),
        "{err}"
    );
    assert!(err.to_string().contains("banned"), "{err}");
    let good = NetStation::bind(any("127.0.0.1"), cfg(ProcessType::Client, "alice"), reg)
        .await
        .unwrap();
    good.join(server.local_addr()).await.unwrap();
    for s in [bad, good, server] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn a_join_nobody_answers_times_out() {
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = NetStation::bind(
        any("127.0.0.1"),
        cfg(ProcessType::Client, "a").join_timeout(Duration::from_millis(300)),
        registry(),
    )
    .await
    .unwrap();
    let err = a.join(silent.local_addr().unwrap()).await.unwrap_err();
    assert!(matches!(err, NetError::Join(JoinError::TimedOut)), "{err}");
    assert_eq!(a.state(), SessionState::JoinFailed(JoinError::TimedOut));
    a.shutdown().await;
}

/// Every datagram sent, with its destination.
type SentLog = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// A UDP socket that keeps a copy of every datagram it sends.
struct Tap {
    socket: tokio::net::UdpSocket,
    sent: SentLog,
}

#[async_trait]
impl DatagramSocket for Tap {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.sent.lock().unwrap().push((target, buf.to_vec()));
        self.socket.send_to(buf, target).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

#[tokio::test]
async fn datagrams_from_strangers_are_dropped_and_counted() {
    let reg = registry();
    let server = NetStation::bind(any("127.0.0.1"), cfg(ProcessType::Server, "s"), reg.clone())
        .await
        .unwrap();
    server.create_session().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let tap = Tap {
        socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        sent: sent.clone(),
    };
    let client = NetStation::with_socket(tap, cfg(ProcessType::Client, "c"), reg).unwrap();
    client.join(server.local_addr()).await.unwrap();
    assert!(server.wait_until(WAIT, |st| st.stations().len() == 2).await);

    // A member's datagram replayed from another address is not the member's.
    let replay = sent
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(to, _)| *to == server.local_addr())
        .map(|(_, d)| d.clone())
        .unwrap();
    let before = server.stats();
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger
        .send_to(&replay, server.local_addr())
        .await
        .unwrap();
    stranger
        .send_to(b"not a netz datagram", server.local_addr())
        .await
        .unwrap();
    assert!(
        server
            .wait_until(WAIT, |st| st.stats().unknown_sender > before.unknown_sender
                && st.stats().malformed_datagrams > before.malformed_datagrams)
            .await,
        "{:?}",
        server.stats()
    );
    // The session did not notice.
    assert_eq!(server.read(|st| st.stations().len()), 2);
    assert!(matches!(client.state(), SessionState::InSession { .. }));
    client.shutdown().await;
    server.shutdown().await;
}
