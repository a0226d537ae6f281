//! A server under a flood on loopback: 100 000 garbage datagrams and 10 000
//! join attempts (forged, expired and replayed connect tokens) from a few
//! sockets, while its four members keep calling RMCs. Security is on. The
//! RMCs keep completing, the drops are counted, and the heap of the whole
//! test process (server, members and flooders) grows by less than
//! `HEAP_BOUND` over its level before the flood.
#![allow(unsafe_code)] // the counting allocator below

#[path = "../src/bin/netz-station/score.rs"]
mod score;

use netz_core::crypto::{SecurityConfig, TokenGrant, TokenIssuer};
use netz_core::rmc::RmcContext;
use netz_core::{Outcome, ProcessType, StationConfig, StationId, Topology};
use netz_net::{NetConfig, NetStation};
use score::{registry, Score, ADD};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counts the bytes allocated on the heap, and the peak since the last reset.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound on heap growth during the flood.
const HEAP_BOUND: usize = 64 << 20;
const KEY: [u8; 32] = [0x77; 32];
const GAME: u64 = 0xF100D;
const WAIT: Duration = Duration::from_secs(20);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn token(client_id: u64, p: ProcessType, expires_at_ms: u64) -> netz_core::crypto::ConnectToken {
    let mut random = [0u8; 24];
    random[..8].copy_from_slice(&client_id.to_le_bytes());
    random[8..16].copy_from_slice(&unix_ms().to_le_bytes());
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

fn cfg(p: ProcessType, security: SecurityConfig) -> NetConfig {
    let station = StationConfig {
        topology: Topology::ClientServer,
        security: Some(security.with_clock_origin_ms(unix_ms())),
        ..StationConfig::new(p, "flood")
    };
    NetConfig::from(station)
        .heartbeat_interval(Duration::from_millis(100))
        .failure_timeout(Duration::from_secs(3))
        .join_timeout(Duration::from_secs(5))
        .rmc_timeout(Duration::from_secs(10))
}

/// A small xorshift generator for the garbage.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

async fn flood(target: SocketAddr, seed: u64, garbage: usize, joins: usize) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut noise = Noise(seed | 1);
    let expired = token(1000 + seed, ProcessType::Client, 1);
    // A valid token, replayed from every flooding socket.
    let stolen = token(2000, ProcessType::Client, unix_ms() + 600_000);
    let (mut g, mut j) = (0, 0);
    while g < garbage || j < joins {
        for _ in 0..10 {
            if g < garbage {
                g += 1;
                let d = match noise.next() % 3 {
                    0 => {
                        let len = (noise.next() % 1300) as usize;
                        noise.bytes(len)
                    }
                    1 => {
                        // A netz link header, then garbage.
                        let mut d = vec![0x4E, netz_core::transport::PROTOCOL_VERSION, 0];
                        let len = 3 + (noise.next() % 200) as usize;
                        d.extend(noise.bytes(len));
                        d
                    }
                    _ => {
                        // A connectionless header, then garbage.
                        let mut d = vec![0x4E, netz_core::transport::PROTOCOL_VERSION, 1, 0, 0, 0];
                        let len = (noise.next() % 200) as usize;
                        d.extend(noise.bytes(len));
                        d
                    }
                };
                let _ = socket.send_to(&d, target).await;
            }
        }
        if j < joins {
            j += 1;
            let connect = match j % 3 {
                0 => noise.bytes(netz_core::crypto::SEALED_TOKEN_LEN),
                1 => expired.sealed.clone(),
                _ => stolen.sealed.clone(),
            };
            let d = netz_core::fuzzing::join_request_datagram(
                noise.next(),
                ProcessType::Client,
                "intruder",
                Topology::ClientServer,
                &connect,
            );
            let _ = socket.send_to(&d, target).await;
        }
        if (g + j) % 22 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keeps_serving_its_members_under_a_flood() {
    let reg = registry();
    let server = NetStation::bind(
        "127.0.0.1:0".parse().unwrap(),
        cfg(ProcessType::Server, SecurityConfig::authority(KEY, GAME)),
        reg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(server.create_session().unwrap(), StationId(1));
    let mut members = Vec::new();
    for i in 0..4u64 {
        let t = token(i + 1, ProcessType::Client, unix_ms() + 600_000);
        let m = NetStation::bind(
            "127.0.0.1:0".parse().unwrap(),
            cfg(ProcessType::Client, SecurityConfig::joiner(t, GAME)),
            reg.clone(),
        )
        .await
        .unwrap();
        m.join(server.local_addr()).await.unwrap();
        members.push(m);
    }
    assert!(server.wait_until(WAIT, |st| st.stations().len() == 5).await);
    let h = server
        .publish(Score::new(0, "server", false))
        .unwrap()
        .handle();
    for m in &members {
        assert!(m.wait_until(WAIT, |st| st.get::<Score>(h).is_some()).await);
    }
    let before = server.stats();

    let start_heap = CURRENT.load(Ordering::Relaxed);
    PEAK.store(start_heap, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    // The members call RMCs on the server's object during the whole flood.
    let mut callers = Vec::new();
    for m in members.clone() {
        let done = done.clone();
        callers.push(tokio::spawn(async move {
            let mut completed = 0u32;
            while completed < 20 || !done.load(Ordering::Relaxed) {
                let ctx: RmcContext<i64> = RmcContext::on_master();
                let outcome = m
                    .call(&ctx, |st| st.object::<Score>(h).call(&ctx, ADD, &(1i64,)))
                    .await
                    .unwrap();
                assert_eq!(outcome, Outcome::Success);
                completed += 1;
                if completed > 2000 {
                    break;
                }
            }
            completed
        }));
    }
    let target = server.local_addr();
    let flooders: Vec<_> = (0..4u64)
        .map(|k| tokio::spawn(flood(target, 0x9E37 + k, 25_000, 2_500)))
        .collect();
    for f in flooders {
        f.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in callers {
        total += c.await.unwrap();
    }
    let peak_growth = PEAK.load(Ordering::Relaxed).saturating_sub(start_heap);
    let after = server.stats();
    eprintln!(
        "flood: {total} RMCs completed; heap before {start_heap} B, peak growth {peak_growth} B; \
         server received {} datagrams during the flood; {:?}",
        after.datagrams_received - before.datagrams_received,
        after
    );
    assert!(total >= 80, "every member completed its RMCs");
    let dropped = |s: &netz_core::StationStats| {
        s.malformed_datagrams + s.auth_failed + s.unknown_sender + s.wrong_session + s.bad_messages
    };
    assert!(dropped(&after) > dropped(&before) + 1000, "{after:?}");
    assert!(
        after.token_rejected + after.token_expired + after.join_rate_limited
            > before.token_rejected + before.token_expired + before.join_rate_limited,
        "{after:?}"
    );
    assert!(
        peak_growth < HEAP_BOUND,
        "heap grew by {peak_growth} bytes (bound {HEAP_BOUND})"
    );
    // The session is intact: the four members, and no intruder stayed.
    assert!(server.wait_until(WAIT, |st| st.stations().len() == 5).await);
    let value = server.read(|st| st.get::<Score>(h).unwrap().lock().data.value);
    assert_eq!(value, i64::from(total));
}
