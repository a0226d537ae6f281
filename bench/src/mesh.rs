//! A zero-latency in-memory network of sans-IO stations.
//!
//! Datagrams go from `poll_transmit` straight into the receiver's
//! `handle_datagram`, and time only moves when [`Mesh::advance`] is called,
//! so a benchmark measures the station's own work and nothing else.

use crate::alloc;
use netz_core::{Event, Instant, ProcessType, Registry, Station, StationConfig};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What the mesh charges each station's calls to: allocator slots, and
/// optionally the time spent in them.
#[derive(Debug)]
struct Meter {
    attribute: bool,
    timing: bool,
    cpu: Vec<Duration>,
}

impl Meter {
    fn charge<R>(&mut self, i: usize, f: impl FnOnce() -> R) -> R {
        let start = self.timing.then(std::time::Instant::now);
        let r = if self.attribute {
            alloc::attribute(1 + i, f)
        } else {
            f()
        };
        if let Some(start) = start {
            self.cpu[i] += start.elapsed();
        }
        r
    }
}

/// Stations wired to each other in memory; station 0 created the session.
pub struct Mesh {
    stations: Vec<Station>,
    addrs: Vec<SocketAddr>,
    index: HashMap<SocketAddr, usize>,
    now: Instant,
    meter: Meter,
    sent: Vec<u64>,
    received: Vec<u64>,
    kept: Option<Vec<(usize, Event)>>,
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

    /// One station per configuration, all in one session: station 0
    /// creates it (it must be a server in a client-server session) and the
    /// others join through it, in order.
    pub fn with_configs(configs: Vec<StationConfig>, registry: Arc<Registry>) -> Mesh {
        Self::build_from(configs, registry, false)
    }

    fn build(n: usize, registry: Arc<Registry>, attribute: bool) -> Mesh {
        let configs = (0..n)
            .map(|i| StationConfig {
                seed: i as u64 + 1,
                ..StationConfig::new(ProcessType::Server, format!("bench-{i}"))
            })
            .collect();
        Self::build_from(configs, registry, attribute)
    }

    fn build_from(configs: Vec<StationConfig>, registry: Arc<Registry>, attribute: bool) -> Mesh {
        let n = configs.len();
        let mut m = Mesh {
            stations: Vec::new(),
            addrs: Vec::new(),
            index: HashMap::new(),
            now: Instant::ZERO,
            meter: Meter {
                attribute,
                timing: false,
                cpu: vec![Duration::ZERO; n],
            },
            sent: vec![0; n],
            received: vec![0; n],
            kept: None,
            datagrams: 0,
            bytes: 0,
        };
        for (i, cfg) in configs.into_iter().enumerate() {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20_000 + i as u16);
            let st = m.meter.charge(i, || Station::new(cfg, registry.clone()));
            m.stations.push(st);
            m.addrs.push(addr);
            m.index.insert(addr, i);
        }
        if n == 0 {
            return m;
        }
        let (now, a0) = (m.now, m.addrs[0]);
        let st0 = &mut m.stations[0];
        m.meter
            .charge(0, || st0.create_session(now, a0))
            .expect("session created");
        for i in 1..n {
            let (now, ai) = (m.now, m.addrs[i]);
            let sti = &mut m.stations[i];
            m.meter
                .charge(i, || sti.join(now, ai, a0))
                .expect("join started");
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

    /// Starts or stops adding up the time each station spends in the calls
    /// the mesh makes on it (see [`Mesh::cpu`]).
    pub fn set_timing(&mut self, on: bool) {
        self.meter.timing = on;
    }

    /// The time station `i` spent in calls made through the mesh while
    /// timing was on.
    pub fn cpu(&self, i: usize) -> Duration {
        self.meter.cpu[i]
    }

    /// Bytes of the datagrams station `i` sent so far.
    pub fn sent(&self, i: usize) -> u64 {
        self.sent[i]
    }

    /// Bytes of the datagrams station `i` received so far.
    pub fn received(&self, i: usize) -> u64 {
        self.received[i]
    }

    /// Starts or stops keeping the stations' events (they are dropped
    /// otherwise); see [`Mesh::take_events`].
    pub fn keep_events(&mut self, on: bool) {
        self.kept = on.then(Vec::new);
    }

    /// The events kept since the last call, with the index of the station
    /// that reported each.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
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
        let r = self.meter.charge(i, || f(st, now));
        self.pump();
        r
    }

    /// Runs `f` on station `i` without delivering anything.
    pub fn with_quiet<R>(&mut self, i: usize, f: impl FnOnce(&mut Station, Instant) -> R) -> R {
        let now = self.now;
        let st = &mut self.stations[i];
        self.meter.charge(i, || f(st, now))
    }

    /// Delivers datagrams until no station has anything left to send now;
    /// returns how many were moved. Events are drained and dropped (or kept,
    /// see [`Mesh::keep_events`]).
    pub fn pump(&mut self) -> u64 {
        let now = self.now;
        let mut moved = 0;
        loop {
            let mut round = 0;
            for i in 0..self.stations.len() {
                loop {
                    let st = &mut self.stations[i];
                    let Some(t) = self.meter.charge(i, || st.poll_transmit(now)) else {
                        break;
                    };
                    round += 1;
                    let len = t.contents.len() as u64;
                    self.bytes += len;
                    self.sent[i] += len;
                    if let Some(&j) = self.index.get(&t.destination) {
                        self.received[j] += len;
                        let from = self.addrs[i];
                        let dst = &mut self.stations[j];
                        self.meter
                            .charge(j, || dst.handle_datagram(now, from, &t.contents));
                    }
                    // The sender allocated the datagram: its free is the sender's too.
                    self.meter.charge(i, || drop(t));
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

    /// Drops every station's pending events (or keeps them, see
    /// [`Mesh::keep_events`]).
    pub fn drain_events(&mut self) {
        for i in 0..self.stations.len() {
            let st = &mut self.stations[i];
            let kept = &mut self.kept;
            self.meter.charge(i, || {
                while let Some(e) = st.poll_event() {
                    if let Some(k) = kept.as_mut() {
                        k.push((i, e));
                    }
                }
            });
        }
    }

    /// Moves time on by `d`, runs every deadline that passed, and delivers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for i in 0..self.stations.len() {
            let st = &mut self.stations[i];
            if st.poll_timeout().is_some_and(|t| t <= now) {
                self.meter.charge(i, || st.handle_timeout(now));
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
