//! A fault-injection UDP proxy for tests across real processes (the kernel
//! here has no netem): on loopback only, it drops, delays, reorders and
//! duplicates datagrams with seeded randomness, and stands between one
//! client and one upstream (a server) like a NAT: the client sends to the
//! proxy's front address, the upstream sees the client at the proxy's back
//! address. The back port can be changed mid-session (NAT rebinding), and
//! traffic can be cut for a while.
//!
//! The proxy runs on its own thread with its own tokio runtime, so the
//! synchronous process tests can use it; dropping it stops the thread.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// What the proxy does to every datagram, in both directions.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Every datagram is delayed by a uniformly random time in `delay`.
    pub delay: (Duration, Duration),
    /// Probability that a datagram is sent twice (each copy with its own delay).
    pub duplicate: f64,
    /// Probability that a datagram gets `reorder_delay` on top of its delay.
    pub reorder: f64,
    /// The extra delay of reordered datagrams.
    pub reorder_delay: Duration,
}

impl Faults {
    /// Forwards everything at once.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        delay: (Duration::ZERO, Duration::ZERO),
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
    };
}

/// What the proxy did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Datagrams from the client.
    pub from_client: u64,
    /// Datagrams from the upstream.
    pub from_upstream: u64,
    /// Datagrams dropped at random.
    pub dropped: u64,
    /// Datagrams dropped because traffic was cut.
    pub cut: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams that got the reordering delay.
    pub reordered: u64,
    /// Datagrams (copies included) handed to a socket.
    pub forwarded: u64,
    /// Times the back port changed.
    pub rebinds: u64,
}

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        if span == 0 {
            return lo;
        }
        lo + Duration::from_micros(self.next() % (span + 1))
    }
}

struct State {
    faults: Faults,
    rng: Rng,
    stats: ProxyStats,
    /// Where the client was last heard from.
    client: Option<SocketAddr>,
    cut_until: Option<Instant>,
    /// Set to ask the proxy for a new back socket.
    rebind: bool,
    back_addr: SocketAddr,
}

impl State {
    /// The delays of the copies of one datagram (none: dropped).
    fn decide(&mut self) -> Vec<Duration> {
        if self.cut_until.is_some_and(|t| Instant::now() < t) {
            self.stats.cut += 1;
            return Vec::new();
        }
        if self.rng.chance(self.faults.loss) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let mut d = self.rng.between(self.faults.delay);
                if self.rng.chance(self.faults.reorder) {
                    self.stats.reordered += 1;
                    d += self.faults.reorder_delay;
                }
                d
            })
            .collect()
    }
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    front: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl Proxy {
    /// A proxy to `upstream` (on loopback) with `faults`, its random
    /// decisions drawn from `seed`.
    pub fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy is for loopback only"
        );
        let std_front = std::net::UdpSocket::bind(loopback()).expect("bind front");
        let std_back = std::net::UdpSocket::bind(loopback()).expect("bind back");
        let front = std_front.local_addr().unwrap();
        let back_addr = std_back.local_addr().unwrap();
        std_front.set_nonblocking(true).unwrap();
        std_back.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State {
            faults,
            rng: Rng(seed),
            stats: ProxyStats::default(),
            client: None,
            cut_until: None,
            rebind: false,
            back_addr,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(run(std_front, std_back, upstream, state, stop));
            })
        };
        Proxy {
            front,
            upstream,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the client sends to.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }

    /// Where the upstream sees the client now.
    pub fn back_addr(&self) -> SocketAddr {
        self.state.lock().unwrap().back_addr
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// NAT rebinding: from now on the upstream sees the client at a new
    /// port; datagrams to the old one are no longer forwarded. Returns once
    /// the new port is in use.
    pub fn rebind(&self) -> SocketAddr {
        let old = {
            let mut s = self.state.lock().unwrap();
            s.rebind = true;
            s.back_addr
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.back_addr();
            if now != old {
                return now;
            }
            assert!(Instant::now() < deadline, "the proxy did not rebind");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Drops everything in both directions for `d` from now.
    pub fn cut_for(&self, d: Duration) {
        self.state.lock().unwrap().cut_until = Some(Instant::now() + d);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        self.state.lock().unwrap().stats
    }

    /// The upstream's address.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `data` to `to` through `socket` after each of `delays`.
fn forward(socket: &Arc<UdpSocket>, to: SocketAddr, data: &[u8], delays: Vec<Duration>) {
    for d in delays {
        let socket = socket.clone();
        let data = data.to_vec();
        if d.is_zero() {
            let _ = socket.try_send_to(&data, to);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let _ = socket.send_to(&data, to).await;
            });
        }
    }
}

async fn run(
    front: std::net::UdpSocket,
    back: std::net::UdpSocket,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    let front = Arc::new(UdpSocket::from_std(front).expect("front"));
    let mut back = Arc::new(UdpSocket::from_std(back).expect("back"));
    let mut fbuf = vec![0u8; 65536];
    let mut bbuf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            r = front.recv_from(&mut fbuf) => {
                let Ok((n, from)) = r else { continue };
                let delays = {
                    let mut s = state.lock().unwrap();
                    s.stats.from_client += 1;
                    s.client = Some(from);
                    let d = s.decide();
                    s.stats.forwarded += d.len() as u64;
                    d
                };
                forward(&back, upstream, &fbuf[..n], delays);
            }
            r = back.recv_from(&mut bbuf) => {
                let Ok((n, from)) = r else { continue };
                if from != upstream {
                    continue;
                }
                let (client, delays) = {
                    let mut s = state.lock().unwrap();
                    s.stats.from_upstream += 1;
                    let d = s.decide();
                    s.stats.forwarded += d.len() as u64;
                    (s.client, d)
                };
                if let Some(client) = client {
                    forward(&front, client, &bbuf[..n], delays);
                }
            }
            _ = tick.tick() => {
                let rebind = std::mem::take(&mut state.lock().unwrap().rebind);
                if rebind {
                    let socket = UdpSocket::bind(loopback()).await.expect("rebind");
                    let addr = socket.local_addr().unwrap();
                    back = Arc::new(socket);
                    let mut s = state.lock().unwrap();
                    s.back_addr = addr;
                    s.stats.rebinds += 1;
                }
            }
        }
    }
}
