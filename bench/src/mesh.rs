//! A zero-latency in-memory network of sans-IO stations.
//!
//! Datagrams go from `poll_transmit` straight into the receiver's
//! `handle_datagram`, and time only moves when [`Mesh::advance`] is called,
//! so a benchmark measures the station's own work and nothing else.

use crate::alloc;
use netz_core::{Instant, ProcessType, Registry, Station, StationConfig};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Stations wired to each other in memory; station 0 created the session.
pub struct Mesh {
    stations: Vec<Station>,
    addrs: Vec<SocketAddr>,
    index: HashMap<SocketAddr, usize>,
    now: Instant,
    attribute: bool,
    /// Datagrams moved so far.
    pub datagrams: u64,
    /// Bytes of the datagrams moved so far.
    pub bytes: u64,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("stations", &self.stations.len())
            .field("now", &self.now)
            .finish()
    }
}

impl Mesh {
    /// `n` stations with the default configuration, all in one session.
    pub fn new(n: usize, registry: Arc<Registry>) -> Mesh {
        Self::build(n, registry, false)
    }

    /// Like [`Mesh::new`], charging each station's heap use to allocator
    /// slot `1 + index` (see [`crate::alloc`]).
    pub fn with_attribution(n: usize, registry: Arc<Registry>) -> Mesh {
        Self::build(n, registry, true)
    }

    fn build(n: usize, registry: Arc<Registry>, attribute: bool) -> Mesh {
        let mut m = Mesh {
            stations: Vec::new(),
            addrs: Vec::new(),
            index: HashMap::new(),
            now: Instant::ZERO,
            attribute,
            datagrams: 0,
            bytes: 0,
        };
        for i in 0..n {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20_000 + i as u16);
            let cfg = StationConfig {
                seed: i as u64 + 1,
                ..StationConfig::new(ProcessType::Server, format!("bench-{i}"))
            };
            let st = Self::charge(attribute, i, || Station::new(cfg, registry.clone()));
            m.stations.push(st);
            m.addrs.push(addr);
            m.index.insert(addr, i);
        }
        if n == 0 {
            return m;
        }
        let (now, a0) = (m.now, m.addrs[0]);
        let st0 = &mut m.stations[0];
        Self::charge(attribute, 0, || st0.create_session(now, a0)).expect("session created");
        for i in 1..n {
            let (now, ai) = (m.now, m.addrs[i]);
            let sti = &mut m.stations[i];
            Self::charge(attribute, i, || sti.join(now, ai, a0)).expect("join started");
            for _ in 0..10_000 {
                m.advance(Duration::from_millis(1));
                if m.stations[i].is_in_session() {
                    break;
                }
            }
            assert!(m.stations[i].is_in_session(), "station {i} joined");
        }
        m.settle();
        m
    }

    fn charge<R>(attribute: bool, i: usize, f: impl FnOnce() -> R) -> R {
        if attribute {
            alloc::attribute(1 + i, f)
        } else {
            f()
        }
    }

    /// How many stations there are.
    pub fn len(&self) -> usize {
        self.stations.len()
    }

    /// Whether there is no station.
    pub fn is_empty(&self) -> bool {
        self.stations.is_empty()
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Station `i`.
    pub fn station(&self, i: usize) -> &Station {
        &self.stations[i]
    }

    /// Runs `f` on station `i` at the current time (charged to its slot),
    /// then delivers whatever it sent.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Station, Instant) -> R) -> R {
        let now = self.now;
        let st = &mut self.stations[i];
        let r = Self::charge(self.attribute, i, || f(st, now));
        self.pump();
        r
    }

    /// Runs `f` on station `i` without delivering anything.
    pub fn with_quiet<R>(&mut self, i: usize, f: impl FnOnce(&mut Station, Instant) -> R) -> R {
        let now = self.now;
        let st = &mut self.stations[i];
        Self::charge(self.attribute, i, || f(st, now))
    }

    /// Delivers datagrams until no station has anything left to send now;
    /// returns how many were moved. Events are drained and dropped.
    pub fn pump(&mut self) -> u64 {
        let now = self.now;
        let mut moved = 0;
        loop {
            let mut round = 0;
            for i in 0..self.stations.len() {
                loop {
                    let st = &mut self.stations[i];
                    let Some(t) = Self::charge(self.attribute, i, || st.poll_transmit(now)) else {
                        break;
                    };
                    round += 1;
                    self.bytes += t.contents.len() as u64;
                    if let Some(&j) = self.index.get(&t.destination) {
                        let from = self.addrs[i];
                        let dst = &mut self.stations[j];
                        Self::charge(self.attribute, j, || {
                            dst.handle_datagram(now, from, &t.contents)
                        });
                    }
                    // The sender allocated the datagram: its free is the sender's too.
                    Self::charge(self.attribute, i, || drop(t));
                }
            }
            moved += round;
            if round == 0 {
                break;
            }
        }
        self.datagrams += moved;
        self.drain_events();
        moved
    }

    /// Drops every station's pending events.
    pub fn drain_events(&mut self) {
        for i in 0..self.stations.len() {
            let st = &mut self.stations[i];
            Self::charge(self.attribute, i, || while st.poll_event().is_some() {});
        }
    }

    /// Moves time on by `d`, runs every deadline that passed, and delivers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for i in 0..self.stations.len() {
            let st = &mut self.stations[i];
            if st.poll_timeout().is_some_and(|t| t <= now) {
                Self::charge(self.attribute, i, || st.handle_timeout(now));
            }
        }
        self.pump();
    }

    /// Lets delayed acknowledgements and heartbeats go out (at least 100 ms
    /// of virtual time in 5 ms steps, and on until every station is idle:
    /// congestion control paces a large backlog), so that no retransmission
    /// state is left.
    pub fn settle(&mut self) {
        for _ in 0..20 {
            self.advance(Duration::from_millis(5));
        }
        for _ in 0..20_000 {
            if self.stations.iter().all(|st| st.is_idle()) {
                break;
            }
            self.advance(Duration::from_millis(5));
        }
    }
}
