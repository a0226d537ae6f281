//! An in-memory datagram network for testing the driver: seeded loss,
//! latency, partitions and sockets that come and go.
//!
//! It runs on tokio's clock, so tests can pause time
//! (`#[tokio::test(start_paused = true)]`) and run minutes of protocol in
//! milliseconds while exercising the same driver code as real UDP.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use netz_net::simnet::SimNet;
//! use netz_net::DatagramSocket;
//!
//! let net = SimNet::new(7);
//! let a = net.bind("10.0.0.1:9000".parse().unwrap())?;
//! let b = net.bind("10.0.0.2:9000".parse().unwrap())?;
//! a.send_to(b"hi", b.local_addr()?).await?;
//! let mut buf = [0u8; 16];
//! let (n, from) = b.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr()?));
//! # Ok(()) }
//! ```

use crate::socket::DatagramSocket;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

type Datagram = (Vec<u8>, SocketAddr);

/// Counters of a [`SimNet`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimNetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams delivered to a socket.
    pub delivered: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub partitioned: u64,
    /// Datagrams to an address nobody is bound to.
    pub unreachable: u64,
}

struct Inner {
    sockets: HashMap<SocketAddr, (u64, mpsc::UnboundedSender<Datagram>)>,
    next_socket: u64,
    rng: u64,
    loss: f64,
    latency: Duration,
    jitter: Duration,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    stats: SimNetStats,
}

impl Inner {
    fn next_f64(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An in-memory network of [`SimSocket`]s. Cheap to clone.
#[derive(Clone)]
pub struct SimNet {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimNet {
    /// A network without loss, with 1 ms latency; `seed` drives loss and jitter.
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            inner: Arc::new(Mutex::new(Inner {
                sockets: HashMap::new(),
                next_socket: 0,
                rng: seed,
                loss: 0.0,
                latency: Duration::from_millis(1),
                jitter: Duration::ZERO,
                cut: HashSet::new(),
                stats: SimNetStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds a socket at `addr`; fails with `AddrInUse` if one is bound there.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<SimSocket> {
        let mut g = self.lock();
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a simulated socket needs a full address",
            ));
        }
        if g.sockets.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is already bound"),
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        g.next_socket += 1;
        let key = g.next_socket;
        g.sockets.insert(addr, (key, tx));
        Ok(SimSocket {
            net: self.clone(),
            addr,
            key,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// Sets the probability that a datagram is lost (0.0..=1.0).
    pub fn set_loss(&self, p: f64) {
        self.lock().loss = p.clamp(0.0, 1.0);
    }

    /// Sets the one-way latency and the extra random delay on top of it.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let mut g = self.lock();
        g.latency = latency;
        g.jitter = jitter;
    }

    /// Cuts every path between `a` and `b`, both ways.
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr]) {
        let mut g = self.lock();
        for x in a {
            for y in b {
                g.cut.insert((*x, *y));
                g.cut.insert((*y, *x));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// The network's counters.
    pub fn stats(&self) -> SimNetStats {
        self.lock().stats
    }

    fn send(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let delay = {
            let mut g = self.lock();
            g.stats.sent += 1;
            if g.cut.contains(&(from, to)) {
                g.stats.partitioned += 1;
                return;
            }
            if g.loss > 0.0 && g.next_f64() < g.loss {
                g.stats.lost += 1;
                return;
            }
            let jitter = g.jitter.mul_f64(g.next_f64());
            g.latency + jitter
        };
        let net = self.clone();
        let data = data.to_vec();
        if delay.is_zero() {
            net.deliver(from, to, data);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                net.deliver(from, to, data);
            });
        }
    }

    fn deliver(&self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let mut g = self.lock();
        // A partition made while the datagram was in flight also drops it.
        if g.cut.contains(&(from, to)) {
            g.stats.partitioned += 1;
            return;
        }
        let ok = g
            .sockets
            .get(&to)
            .is_some_and(|(_, tx)| tx.send((data, from)).is_ok());
        if ok {
            g.stats.delivered += 1;
        } else {
            g.stats.unreachable += 1;
        }
    }
}

/// A socket of a [`SimNet`]; unbinds when dropped.
pub struct SimSocket {
    net: SimNet,
    addr: SocketAddr,
    key: u64,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Datagram>>,
}

impl std::fmt::Debug for SimSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSocket")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for SimSocket {
    fn drop(&mut self) {
        let mut g = self.net.lock();
        if g.sockets
            .get(&self.addr)
            .is_some_and(|(k, _)| *k == self.key)
        {
            g.sockets.remove(&self.addr);
        }
    }
}

#[async_trait]
impl DatagramSocket for SimSocket {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.net.send(self.addr, target, buf);
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some((data, from)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok((n, from))
            }
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
