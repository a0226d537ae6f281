//! A deterministic simulated network.
//!
//! [`Sim`] runs many sans-IO nodes (anything implementing [`SimNode`], such as
//! a netz station) in one thread, on virtual time, over a network with
//! configurable latency, jitter, loss, duplication, reordering and MTU, plus
//! partitions, per-link overrides and node crashes. Every random decision is
//! drawn from a seeded [`Rng`]: the same [`SimConfig::seed`] and the same
//! sequence of calls produce exactly the same deliveries at exactly the same
//! virtual times.
//!
//! ```
//! use netz_core::sim::{Sim, SimConfig, SimNode};
//! use netz_core::{Instant, Transmit};
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! /// Answers every datagram with the same bytes.
//! #[derive(Default)]
//! struct Echo { outbox: Vec<Transmit>, got: Vec<(Instant, Vec<u8>)> }
//!
//! impl SimNode for Echo {
//!     fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
//!         self.got.push((now, data.to_vec()));
//!         if data != b"pong" {
//!             self.outbox.push(Transmit { destination: from, contents: b"pong".to_vec() });
//!         }
//!     }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> { self.outbox.pop() }
//!     fn poll_timeout(&mut self) -> Option<Instant> { None }
//! }
//!
//! let mut sim = Sim::new(SimConfig { seed: 1, ..SimConfig::default() });
//! let a = sim.add_node(Echo::default());
//! let b = sim.add_node(Echo::default());
//! sim.node_mut(a).outbox.push(Transmit { destination: b, contents: b"ping".to_vec() });
//! sim.run_for(Duration::from_millis(100));
//! // The default one-way latency is 5 ms.
//! assert_eq!(sim.node(b).got, vec![(Instant::from_millis(5), b"ping".to_vec())]);
//! assert_eq!(sim.node(a).got, vec![(Instant::from_millis(10), b"pong".to_vec())]);
//! ```

mod config;
mod rng;
#[cfg(test)]
mod tests;

pub use config::{Delivery, SimConfig, SimConfigError, SimStats};
pub use rng::{Rng, SampleRange};

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tracing::{trace, trace_span};

use crate::{Instant, Transmit};

use config::clamp_probability;

/// Anything that speaks datagrams sans-IO; a netz station implements this.
///
/// The simulator drives a node exactly like a real driver would: it hands it
/// received datagrams and expired timeouts, and drains the datagrams it wants
/// to send and the time it next wants to be woken up.
pub trait SimNode {
    /// A datagram from `from` arrived at `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// The time returned by [`poll_timeout`](SimNode::poll_timeout) has come;
    /// `now` is at or after it.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any. Called repeatedly until `None`.
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;
    /// When the node next wants [`handle_timeout`](SimNode::handle_timeout)
    /// called, if ever.
    fn poll_timeout(&mut self) -> Option<Instant>;
}

impl<T: SimNode + ?Sized> SimNode for Box<T> {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        (**self).handle_datagram(now, from, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        (**self).poll_transmit(now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        (**self).poll_timeout()
    }
}

/// The first port [`Sim::add_node`] hands out.
pub const FIRST_PORT: u16 = 40000;

/// A node and its bookkeeping.
struct Slot<N> {
    addr: SocketAddr,
    node: N,
    crashed: bool,
    /// Set to `now` when the node's timeout was handled at `now`; while it
    /// equals the clock, a timeout at or before `now` is not handled again
    /// (guards against nodes that keep returning an expired timeout).
    /// Cleared by any other input to the node.
    timeout_guard: Option<Instant>,
    /// Whether the node may have datagrams to send: set by every input and
    /// by mutable access, cleared once it was drained.
    dirty: bool,
    /// The node's deadline as last asked, queued in `Sim::deadlines`;
    /// `stale` when it must be asked again.
    deadline: Option<Instant>,
    stale: bool,
}

/// A datagram on the wire.
struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Per-link overrides of the global configuration.
#[derive(Debug, Clone, Copy, Default)]
struct LinkOverride {
    loss: Option<f64>,
    latency: Option<Duration>,
    /// Bytes per second and queue size in bytes.
    bandwidth: Option<(u64, usize)>,
}

/// The transmitter of one direction of a link with a bandwidth.
#[derive(Debug, Clone, Copy)]
struct Queue {
    /// When the last admitted datagram is completely on the link.
    busy_until: Instant,
}

/// Bytes a link of `rate` bytes per second serializes in `d`.
fn bytes_in(d: Duration, rate: u64) -> u64 {
    u64::try_from(d.as_micros().saturating_mul(u128::from(rate)) / 1_000_000).unwrap_or(u64::MAX)
}

/// Time a link of `rate` bytes per second takes for `len` bytes (rounded up).
fn serialization(len: usize, rate: u64) -> Duration {
    let rate = u128::from(rate.max(1));
    let micros = (len as u128 * 1_000_000).div_ceil(rate);
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

impl Queue {
    /// Bytes waiting at `now` (the one being serialized included).
    fn backlog(&self, now: Instant, rate: u64) -> u64 {
        bytes_in(self.busy_until.saturating_duration_since(now), rate)
    }

    /// Admits `len` bytes at `now` and returns when they are on the link,
    /// or `None` when the queue has no room for them.
    fn admit(
        &mut self,
        now: Instant,
        len: usize,
        rate: u64,
        capacity: usize,
    ) -> Option<(Instant, u64)> {
        let backlog = self.backlog(now, rate);
        let after = backlog.saturating_add(len as u64);
        if after > capacity as u64 {
            return None;
        }
        self.busy_until = self.busy_until.max(now) + serialization(len, rate);
        Some((self.busy_until, after))
    }
}

/// The next thing that happens.
#[derive(Debug, Clone, Copy)]
struct Event {
    at: Instant,
    kind: EventKind,
}

#[derive(Debug, Clone, Copy)]
enum EventKind {
    /// The earliest in-flight datagram arrives.
    Deliver,
    /// The node in this slot times out.
    Timeout(usize),
}

/// A deterministic simulated network of nodes of type `N`.
///
/// Use `Sim<Box<dyn SimNode>>` to mix node types.
///
/// # Scheduling
///
/// Each [`step`](Sim::step) first drains [`SimNode::poll_transmit`] of every
/// live node (in insertion order) onto the wire, then handles the single
/// earliest event — a datagram arriving, or a node's
/// [`poll_timeout`](SimNode::poll_timeout) coming due — and advances the
/// clock to it. Ties are broken deterministically: arrivals before timeouts,
/// arrivals in the order they were sent, timeouts in node insertion order.
/// A timeout in the past is handled at the current time. A node whose timeout
/// was just handled and that still reports a timeout at or before the current
/// time is not woken again until the clock moves or it receives a datagram, so
/// a misbehaving node cannot stall the simulation.
///
/// A datagram's fate is decided when it is sent (MTU, partition, loss,
/// duplication, delay) and checked again when it arrives (partition,
/// destination crashed or unknown).
///
/// Zero latency is allowed; two nodes answering each other with zero delay
/// then never let the clock advance.
pub struct Sim<N: SimNode> {
    config: SimConfig,
    rng: Rng,
    now: Instant,
    slots: Vec<Slot<N>>,
    index: HashMap<SocketAddr, usize>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    partitions: Vec<(BTreeSet<SocketAddr>, BTreeSet<SocketAddr>)>,
    /// One-way cuts: datagrams from the first group to the second.
    blocks: Vec<(BTreeSet<SocketAddr>, BTreeSet<SocketAddr>)>,
    links: BTreeMap<(SocketAddr, SocketAddr), LinkOverride>,
    /// Transmit queues of links with a bandwidth, per direction `(from, to)`.
    queues: BTreeMap<(SocketAddr, SocketAddr), Queue>,
    stats: SimStats,
    recording: bool,
    deliveries: Vec<Delivery>,
    /// Every live node's known deadline, soonest first: `(deadline, slot)`.
    deadlines: BTreeSet<(Instant, usize)>,
    /// Slots whose deadline must be asked again before the next event.
    stale: Vec<usize>,
    /// Address translation: a node's address -> the public address its
    /// datagrams come from, and back.
    nat_out: BTreeMap<SocketAddr, SocketAddr>,
    nat_in: BTreeMap<SocketAddr, SocketAddr>,
}

impl<N: SimNode> fmt::Debug for Sim<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<_> = self.slots.iter().map(|s| (s.addr, s.crashed)).collect();
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("config", &self.config)
            .field("nodes (addr, crashed)", &nodes)
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The key of the (undirected) link between `a` and `b`.
fn link_key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl<N: SimNode> Sim<N> {
    /// An empty network at time zero.
    ///
    /// Probabilities outside `[0, 1]` are clamped into it (NaN becomes 0);
    /// use [`Sim::try_new`] to reject them instead.
    pub fn new(config: SimConfig) -> Self {
        let config = config.clamped();
        Sim {
            rng: Rng::new(config.seed),
            config,
            now: Instant::ZERO,
            slots: Vec::new(),
            index: HashMap::new(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            nat_out: BTreeMap::new(),
            nat_in: BTreeMap::new(),
            partitions: Vec::new(),
            blocks: Vec::new(),
            links: BTreeMap::new(),
            queues: BTreeMap::new(),
            stats: SimStats::default(),
            recording: false,
            deliveries: Vec::new(),
            deadlines: BTreeSet::new(),
            stale: Vec::new(),
        }
    }

    /// Like [`Sim::new`], but fails on an invalid configuration.
    pub fn try_new(config: SimConfig) -> Result<Self, SimConfigError> {
        config.validate()?;
        Ok(Sim::new(config))
    }

    /// The current configuration (with probabilities clamped).
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Changes the network's behaviour from now on; datagrams already in
    /// flight keep their fate. Probabilities are clamped into `[0, 1]`. The
    /// seed is ignored: the random sequence continues.
    pub fn set_config(&mut self, config: SimConfig) {
        let seed = self.config.seed;
        self.config = SimConfig {
            seed,
            ..config.clamped()
        };
    }

    /// Adds a node at the next free address `127.0.0.1:(40000 + n)`, where `n`
    /// starts at the number of nodes already present (skipping ports taken
    /// by [`Sim::add_node_at`]), and returns it.
    ///
    /// # Panics
    ///
    /// If every port of `127.0.0.1` is taken.
    pub fn add_node(&mut self, node: N) -> SocketAddr {
        let start = usize::from(FIRST_PORT) + self.slots.len();
        let free = (0..=usize::from(u16::MAX))
            .map(|k| (start + k) % (usize::from(u16::MAX) + 1))
            .filter_map(|port| u16::try_from(port).ok().filter(|&p| p != 0))
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .find(|addr| !self.index.contains_key(addr));
        let Some(addr) = free else {
            panic!("no free port left on 127.0.0.1");
        };
        self.add_node_at(addr, node);
        addr
    }

    /// Adds a node at `addr`.
    ///
    /// # Panics
    ///
    /// If a node already lives at `addr` (use [`Sim::restart`] to replace it).
    pub fn add_node_at(&mut self, addr: SocketAddr, node: N) {
        assert!(
            !self.index.contains_key(&addr),
            "a node already lives at {addr}"
        );
        self.index.insert(addr, self.slots.len());
        self.slots.push(Slot {
            addr,
            node,
            crashed: false,
            timeout_guard: None,
            dirty: true,
            deadline: None,
            stale: false,
        });
        self.touch(self.slots.len() - 1);
    }

    /// The node in slot `i` had an input (or was handed out mutably): it
    /// may have datagrams to send and a new deadline.
    fn touch(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.dirty = true;
        if !slot.stale {
            slot.stale = true;
            self.stale.push(i);
        }
    }

    fn slot_index(&self, addr: SocketAddr) -> usize {
        match self.index.get(&addr) {
            Some(&i) => i,
            None => panic!("no node at {addr}"),
        }
    }

    /// The node at `addr` (a crashed node's last state while it is crashed).
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`; see [`Sim::get`].
    pub fn node(&self, addr: SocketAddr) -> &N {
        &self.slots[self.slot_index(addr)].node
    }

    /// The node at `addr`, mutably. Datagrams it queues are sent at the next
    /// step; a changed timeout is taken into account at the next step.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`; see [`Sim::get_mut`].
    pub fn node_mut(&mut self, addr: SocketAddr) -> &mut N {
        let i = self.slot_index(addr);
        self.touch(i);
        let slot = &mut self.slots[i];
        slot.timeout_guard = None;
        &mut slot.node
    }

    /// The node at `addr`, if there is one.
    pub fn get(&self, addr: SocketAddr) -> Option<&N> {
        self.index.get(&addr).map(|&i| &self.slots[i].node)
    }

    /// The node at `addr` mutably, if there is one.
    pub fn get_mut(&mut self, addr: SocketAddr) -> Option<&mut N> {
        let i = *self.index.get(&addr)?;
        self.touch(i);
        let slot = &mut self.slots[i];
        slot.timeout_guard = None;
        Some(&mut slot.node)
    }

    /// Whether a node (live or crashed) lives at `addr`.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.index.contains_key(&addr)
    }

    /// All nodes with their addresses, in insertion order (crashed ones too).
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &N)> + '_ {
        self.slots.iter().map(|s| (s.addr, &s.node))
    }

    /// All nodes mutably with their addresses, in insertion order (crashed
    /// ones too).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (SocketAddr, &mut N)> + '_ {
        for i in 0..self.slots.len() {
            self.touch(i);
        }
        self.slots.iter_mut().map(|s| {
            s.timeout_guard = None;
            (s.addr, &mut s.node)
        })
    }

    /// The addresses of all nodes (crashed ones too), in insertion order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// What happened to datagrams so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// How many datagrams (copies included) are on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts (`true`) or stops recording every delivery; see
    /// [`Sim::deliveries`].
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// The deliveries recorded while recording was on, oldest first.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Takes the recorded deliveries, leaving none.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.deliveries)
    }

    // ---------------------------------------------------------------- running

    /// Drains every live node's transmits onto the wire, then handles the
    /// single earliest event (an arrival or a timeout), advancing the clock to
    /// it. Returns `false` (and leaves the clock alone) when nothing at all is
    /// scheduled.
    pub fn step(&mut self) -> bool {
        self.collect_transmits();
        match self.next_event() {
            Some(event) => {
                self.process(event);
                true
            }
            None => false,
        }
    }

    /// The time of the next event, after draining every live node's
    /// transmits onto the wire; `None` if nothing is scheduled.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        self.collect_transmits();
        self.next_event().map(|e| e.at)
    }

    /// Steps through every event up to and including `deadline`, then sets
    /// the clock to `deadline` (the clock never goes backwards: an earlier
    /// `deadline` changes nothing but still drains transmits).
    pub fn run_until(&mut self, deadline: Instant) {
        loop {
            self.collect_transmits();
            match self.next_event() {
                Some(event) if event.at <= deadline => self.process(event),
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
    }

    /// [`run_until`](Sim::run_until) `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// Steps until `cond` holds or `max` virtual time has elapsed, and returns
    /// whether `cond` held.
    ///
    /// `cond` is checked before the first step and after every step. When it
    /// holds, the clock stays at the event that made it hold; otherwise it
    /// ends at `now + max` (with every event up to then handled), and `cond`
    /// is checked one last time.
    pub fn run_until_cond(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let deadline = self.now + max;
        if cond(self) {
            return true;
        }
        loop {
            self.collect_transmits();
            match self.next_event() {
                Some(event) if event.at <= deadline => {
                    self.process(event);
                    if cond(self) {
                        return true;
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
        cond(self)
    }

    /// Steps until nothing at all is scheduled (returns `true`, the clock
    /// stays at the last event) or `max` virtual time has elapsed (returns
    /// `false`, the clock ends at `now + max`).
    pub fn run_until_idle(&mut self, max: Duration) -> bool {
        let deadline = self.now + max;
        loop {
            self.collect_transmits();
            match self.next_event() {
                None => return true,
                Some(event) if event.at <= deadline => self.process(event),
                Some(_) => break,
            }
        }
        self.now = self.now.max(deadline);
        false
    }

    /// Drains the transmits of every live node that may have some: those
    /// that had an input since they were last drained, and those whose
    /// deadline has come (their links may send on time alone). Others have
    /// nothing to send, so the order of what goes on the wire is that of
    /// polling every node.
    fn collect_transmits(&mut self) {
        let now = self.now;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.crashed || !(slot.dirty || slot.deadline.is_some_and(|d| d <= now)) {
                continue;
            }
            self.slots[i].dirty = false;
            self.touch_deadline(i);
            let addr = self.slots[i].addr;
            let span = trace_span!("node", addr = %addr);
            loop {
                let transmit = {
                    let _entered = span.enter();
                    self.slots[i].node.poll_transmit(now)
                };
                match transmit {
                    Some(transmit) => self.send(addr, transmit),
                    None => break,
                }
            }
        }
    }

    /// Puts node `node` behind a NAT: the others see its datagrams come
    /// from `public`, and what they send to `public` reaches it (and what
    /// they send to `node` itself does not). Calling it
    /// again with another address is a rebinding: the old public address
    /// leads nowhere from then on.
    pub fn set_nat(&mut self, node: SocketAddr, public: SocketAddr) {
        if let Some(old) = self.nat_out.insert(node, public) {
            self.nat_in.remove(&old);
        }
        self.nat_in.insert(public, node);
    }

    /// Takes node `node` out from behind its NAT.
    pub fn clear_nat(&mut self, node: SocketAddr) {
        if let Some(old) = self.nat_out.remove(&node) {
            self.nat_in.remove(&old);
        }
    }

    /// Puts a datagram on the wire (or drops it).
    fn send(&mut self, from: SocketAddr, transmit: Transmit) {
        let Transmit {
            destination: to,
            contents: data,
        } = transmit;
        // Through the receiver's NAT, if it has one; a node behind one
        // cannot be reached at its own address.
        let to = match self.nat_in.get(&to) {
            Some(node) => *node,
            None if self.nat_out.contains_key(&to) => {
                self.stats.sent += 1;
                self.stats.to_unknown_address += 1;
                trace!(%from, %to, "to a node's own address behind its NAT, dropped");
                return;
            }
            None => to,
        };
        self.stats.sent += 1;
        if data.len() > self.config.mtu {
            self.stats.dropped_mtu += 1;
            trace!(%from, %to, len = data.len(), mtu = self.config.mtu, "datagram exceeds MTU, dropped");
            return;
        }
        if self.is_partitioned(from, to) {
            self.stats.dropped_partition += 1;
            trace!(%from, %to, len = data.len(), "datagram blocked by partition");
            return;
        }
        let link = self
            .links
            .get(&link_key(from, to))
            .copied()
            .unwrap_or_default();
        if self.rng.gen_bool(link.loss.unwrap_or(self.config.loss)) {
            self.stats.lost += 1;
            trace!(%from, %to, len = data.len(), "datagram lost");
            return;
        }
        let latency = link.latency.unwrap_or(self.config.latency);
        let bandwidth = link.bandwidth.or(self
            .config
            .bandwidth
            .map(|rate| (rate, self.config.queue_bytes)));
        let depart = match bandwidth {
            None => self.now,
            Some((rate, capacity)) => {
                let now = self.now;
                let queue = self
                    .queues
                    .entry((from, to))
                    .or_insert(Queue { busy_until: now });
                match queue.admit(now, data.len(), rate, capacity) {
                    Some((depart, backlog)) => {
                        self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(backlog);
                        depart
                    }
                    None => {
                        self.stats.dropped_queue += 1;
                        trace!(%from, %to, len = data.len(), "link queue full, dropped");
                        return;
                    }
                }
            }
        };
        let duplicate = self.rng.gen_bool(self.config.duplicate);
        if duplicate {
            self.stats.duplicated += 1;
        }
        if duplicate {
            self.enqueue(from, to, data.clone(), depart, latency);
        }
        self.enqueue(from, to, data, depart, latency);
    }

    /// Puts one copy of a datagram on the wire, leaving at `depart`, with a
    /// freshly drawn delay.
    fn enqueue(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
        depart: Instant,
        latency: Duration,
    ) {
        let at = depart + self.draw_delay(latency);
        trace!(%from, %to, len = data.len(), ?at, "datagram in flight");
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq,
            from,
            to,
            data,
        }));
    }

    fn draw_delay(&mut self, latency: Duration) -> Duration {
        let mut delay = micros(latency);
        let jitter = micros(self.config.jitter);
        if jitter > 0 {
            delay = delay.saturating_add(self.rng.below(jitter));
        }
        if self.rng.gen_bool(self.config.reorder) {
            self.stats.reordered += 1;
            let max = micros(self.config.reorder_delay);
            delay = delay.saturating_add(self.rng.below(max.saturating_add(1)));
        }
        Duration::from_micros(delay)
    }

    fn is_partitioned(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.partitions.iter().any(|(a, b)| {
            (a.contains(&from) && b.contains(&to)) || (b.contains(&from) && a.contains(&to))
        }) || self
            .blocks
            .iter()
            .any(|(a, b)| a.contains(&from) && b.contains(&to))
    }

    /// The deadline of slot `i` must be asked again.
    fn touch_deadline(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.stale {
            slot.stale = true;
            self.stale.push(i);
        }
    }

    /// Asks the nodes whose deadline may have changed, and queues it.
    fn refresh_deadlines(&mut self) {
        for i in std::mem::take(&mut self.stale) {
            let slot = &mut self.slots[i];
            slot.stale = false;
            if let Some(old) = slot.deadline.take() {
                self.deadlines.remove(&(old, i));
            }
            if slot.crashed {
                continue;
            }
            let timeout = {
                let _entered = trace_span!("node", addr = %slot.addr).entered();
                slot.node.poll_timeout()
            };
            slot.deadline = timeout;
            if let Some(t) = timeout {
                self.deadlines.insert((t, i));
            }
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        let now = self.now;
        self.refresh_deadlines();
        // (time, kind rank, tie-breaker): arrivals before timeouts.
        let mut best: Option<((Instant, u8, u64), Event)> =
            self.in_flight.peek().map(|Reverse(f)| {
                (
                    (f.at, 0, f.seq),
                    Event {
                        at: f.at.max(now),
                        kind: EventKind::Deliver,
                    },
                )
            });
        // The soonest deadline that is not guarded (a node that keeps
        // returning an expired timeout is not woken twice at one instant).
        for &(t, i) in &self.deadlines {
            let slot = &self.slots[i];
            if t <= now && slot.timeout_guard == Some(now) {
                continue;
            }
            let at = t.max(now);
            let key = (at, 1, i as u64);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((
                    key,
                    Event {
                        at,
                        kind: EventKind::Timeout(i),
                    },
                ));
            }
            if t > now {
                break;
            }
        }
        best.map(|(_, event)| event)
    }

    fn process(&mut self, event: Event) {
        self.now = self.now.max(event.at);
        match event.kind {
            EventKind::Deliver => {
                if let Some(Reverse(datagram)) = self.in_flight.pop() {
                    self.deliver(datagram);
                }
            }
            EventKind::Timeout(i) => {
                let now = self.now;
                self.touch(i);
                let slot = &mut self.slots[i];
                slot.timeout_guard = Some(now);
                let _entered = trace_span!("node", addr = %slot.addr).entered();
                trace!("timeout");
                slot.node.handle_timeout(now);
                self.stats.timeouts += 1;
            }
        }
    }

    fn deliver(&mut self, datagram: InFlight) {
        let InFlight { from, to, data, .. } = datagram;
        let Some(&i) = self.index.get(&to) else {
            self.stats.to_unknown_address += 1;
            trace!(%from, %to, len = data.len(), "no node at destination, dropped");
            return;
        };
        if self.is_partitioned(from, to) {
            self.stats.dropped_partition += 1;
            trace!(%from, %to, len = data.len(), "datagram blocked by partition on arrival");
            return;
        }
        let now = self.now;
        let slot = &mut self.slots[i];
        if slot.crashed {
            self.stats.dropped_crashed += 1;
            trace!(%from, %to, len = data.len(), "destination crashed, dropped");
            return;
        }
        slot.timeout_guard = None;
        slot.dirty = true;
        if !slot.stale {
            slot.stale = true;
            self.stale.push(i);
        }
        // The sender as the receiver sees it: its public address.
        let seen_from = self.nat_out.get(&from).copied().unwrap_or(from);
        let slot = &mut self.slots[i];
        {
            let _entered = trace_span!("node", addr = %to).entered();
            trace!(from = %seen_from, len = data.len(), "datagram received");
            slot.node.handle_datagram(now, seen_from, &data);
        }
        self.stats.delivered += 1;
        if self.recording {
            self.deliveries.push(Delivery {
                at: now,
                from,
                to,
                data,
            });
        }
    }

    // ----------------------------------------------------------------- faults

    /// Drops every in-flight datagram addressed to `addr`, counting it in
    /// [`SimStats::dropped_crashed`].
    fn purge_in_flight_to(&mut self, addr: SocketAddr) {
        let before = self.in_flight.len();
        self.in_flight.retain(|Reverse(f)| f.to != addr);
        self.stats.dropped_crashed += (before - self.in_flight.len()) as u64;
    }

    /// Crashes the node at `addr`: it receives nothing and is never polled
    /// until [`restart`](Sim::restart)ed, and the datagrams in flight to it
    /// are lost. Datagrams it already sent stay in flight. Crashing a crashed
    /// node does nothing.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`.
    pub fn crash(&mut self, addr: SocketAddr) {
        let i = self.slot_index(addr);
        if self.slots[i].crashed {
            return;
        }
        trace!(%addr, "node crashed");
        self.slots[i].crashed = true;
        self.slots[i].timeout_guard = None;
        self.touch_deadline(i);
        self.purge_in_flight_to(addr);
    }

    /// Freezes the node at `addr`, as SIGSTOP does a process: it receives
    /// nothing (what is sent to it is lost) and is never polled, but keeps
    /// its state until [`resume`](Sim::resume)d.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`.
    pub fn freeze(&mut self, addr: SocketAddr) {
        self.crash(addr);
    }

    /// Resumes a frozen (or crashed) node with the state it had, as
    /// SIGCONT does a stopped process: it is polled again at once, with the
    /// time that passed meanwhile.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`.
    pub fn resume(&mut self, addr: SocketAddr) {
        let i = self.slot_index(addr);
        if !self.slots[i].crashed {
            return;
        }
        trace!(%addr, "node resumed");
        let slot = &mut self.slots[i];
        slot.crashed = false;
        slot.timeout_guard = None;
        self.touch(i);
    }

    /// Replaces the node at `addr` by `node` ("bounce") and makes it live.
    ///
    /// Restarting a live node crashes it first (datagrams in flight to it are
    /// lost). Datagrams sent to a crashed node that are still in flight when
    /// it restarts reach the new instance, as they would a restarted process.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr` (use [`Sim::add_node_at`]).
    pub fn restart(&mut self, addr: SocketAddr, node: N) {
        self.crash(addr);
        let i = self.slot_index(addr);
        trace!(%addr, "node restarted");
        let slot = &mut self.slots[i];
        slot.node = node;
        slot.crashed = false;
        slot.timeout_guard = None;
        self.touch(i);
    }

    /// Whether the node at `addr` is crashed.
    ///
    /// # Panics
    ///
    /// If there is no node at `addr`.
    pub fn is_crashed(&self, addr: SocketAddr) -> bool {
        self.slots[self.slot_index(addr)].crashed
    }

    /// Blocks all traffic between the group `a` and the group `b`, in both
    /// directions, until [`heal`](Sim::heal): datagrams sent across are
    /// dropped, and so are datagrams already in flight across when they
    /// arrive. Traffic within each group is unaffected. Several partitions
    /// add up.
    pub fn partition(&mut self, a: &[SocketAddr], b: &[SocketAddr]) {
        trace!(?a, ?b, "partition");
        self.partitions
            .push((a.iter().copied().collect(), b.iter().copied().collect()));
    }

    /// Whether a partition (or an isolation) separates `a` and `b` now:
    /// nothing passes between them in either direction. One-way blocks do
    /// not count.
    pub fn is_cut(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.partitions
            .iter()
            .any(|(x, y)| (x.contains(&a) && y.contains(&b)) || (y.contains(&a) && x.contains(&b)))
    }

    /// Cuts `addr` off from every other node currently present.
    pub fn isolate(&mut self, addr: SocketAddr) {
        let others: Vec<_> = self
            .slots
            .iter()
            .map(|s| s.addr)
            .filter(|&a| a != addr)
            .collect();
        self.partition(&[addr], &others);
    }

    /// Cuts one direction only, until [`heal`](Sim::heal): datagrams from
    /// a node of `from` to a node of `to` are dropped (in flight too), the
    /// other way passes (an asymmetric path: a firewall, a broken route).
    pub fn block(&mut self, from: &[SocketAddr], to: &[SocketAddr]) {
        trace!(?from, ?to, "one-way block");
        self.blocks
            .push((from.iter().copied().collect(), to.iter().copied().collect()));
    }

    /// Removes every partition and one-way block.
    pub fn heal(&mut self) {
        trace!("heal");
        self.partitions.clear();
        self.blocks.clear();
    }

    /// Overrides the loss probability of the link between `a` and `b` (both
    /// directions), clamped into `[0, 1]` (NaN becomes 0).
    pub fn set_link_loss(&mut self, a: SocketAddr, b: SocketAddr, loss: f64) {
        self.links.entry(link_key(a, b)).or_default().loss = Some(clamp_probability(loss));
    }

    /// Overrides the base latency of the link between `a` and `b` (both
    /// directions). Jitter and reordering still apply.
    pub fn set_link_latency(&mut self, a: SocketAddr, b: SocketAddr, latency: Duration) {
        self.links.entry(link_key(a, b)).or_default().latency = Some(latency);
    }

    /// Gives the link between `a` and `b` a rate of `bytes_per_sec` in
    /// each direction and a queue of `queue_bytes` per direction: datagrams
    /// are serialized one after the other at that rate, then travel for
    /// their delay; one that finds its queue full is dropped (tail drop,
    /// counted in [`SimStats::dropped_queue`]). Random loss is drawn before
    /// the queue. Overrides [`SimConfig::bandwidth`] for this link.
    pub fn set_link_bandwidth(
        &mut self,
        a: SocketAddr,
        b: SocketAddr,
        bytes_per_sec: u64,
        queue_bytes: usize,
    ) {
        self.links.entry(link_key(a, b)).or_default().bandwidth =
            Some((bytes_per_sec.max(1), queue_bytes));
    }

    /// Bytes waiting in the queue from `from` to `to` (a link with a
    /// bandwidth), the datagram being serialized included; 0 otherwise.
    pub fn queued_bytes(&self, from: SocketAddr, to: SocketAddr) -> u64 {
        let link = self
            .links
            .get(&link_key(from, to))
            .copied()
            .unwrap_or_default();
        let Some((rate, _)) = link.bandwidth.or(self
            .config
            .bandwidth
            .map(|rate| (rate, self.config.queue_bytes)))
        else {
            return 0;
        };
        self.queues
            .get(&(from, to))
            .map_or(0, |q| q.backlog(self.now, rate))
    }

    /// Removes the overrides of the link between `a` and `b`.
    pub fn clear_link(&mut self, a: SocketAddr, b: SocketAddr) {
        self.links.remove(&link_key(a, b));
    }
}
