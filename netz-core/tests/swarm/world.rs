//! The swarm's world: stations on the simulated network, running a plan
//! (see `plan.rs`) step by step.

use crate::plan::{Op, Params, Step};
use crate::probe::{self, as_node, uid, ApplyArgs, ApplyResult, NoteArgs, Probe, Uid, APPLY, NOTE};
use netz_core::sim::{Sim, SimConfig, SimNode};
use netz_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

// ------------------------------------------------------------------ nodes

/// How many datagrams a frozen station's socket keeps for it; later ones
/// are dropped, as a full receive buffer would.
const FROZEN_BUFFER: usize = 64;

/// A station as the simulator drives it, which the swarm can freeze: a
/// frozen station is not driven at all (no timeouts, nothing sent), and
/// what arrives for it waits in a small buffer until it thaws.
pub struct Node {
    /// The station.
    pub st: Station,
    /// The harness identity of this incarnation.
    pub uid: Uid,
    /// Whether the station is frozen.
    pub frozen: bool,
    held: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams dropped while frozen (the buffer was full).
    pub dropped_frozen: u64,
}

impl Node {
    fn new(st: Station, uid: Uid) -> Node {
        Node {
            st,
            uid,
            frozen: false,
            held: Vec::new(),
            dropped_frozen: 0,
        }
    }

    /// Runs `f` on the station as this node (executions are journalled
    /// as its).
    pub fn drive<R>(&mut self, f: impl FnOnce(&mut Station) -> R) -> R {
        let st = &mut self.st;
        as_node(self.uid, || f(st))
    }

    fn thaw(&mut self, now: Instant) {
        self.frozen = false;
        for (from, data) in std::mem::take(&mut self.held) {
            self.drive(|st| st.handle_datagram(now, from, &data));
        }
    }
}

impl SimNode for Node {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.frozen {
            if self.held.len() < FROZEN_BUFFER {
                self.held.push((from, data.to_vec()));
            } else {
                self.dropped_frozen += 1;
            }
            return;
        }
        self.drive(|st| st.handle_datagram(now, from, data));
    }
    fn handle_timeout(&mut self, now: Instant) {
        if !self.frozen {
            self.drive(|st| st.handle_timeout(now));
        }
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.frozen {
            return None;
        }
        self.drive(|st| st.poll_transmit(now))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.frozen {
            return None;
        }
        self.st.poll_timeout()
    }
}

// ------------------------------------------------------------------ the world

/// The harness's view of one node (one address; its incarnations).
#[derive(Clone, Debug)]
pub struct Slot {
    /// Its address.
    pub addr: SocketAddr,
    /// Server or client.
    pub kind: ProcessType,
    /// How often it was restarted.
    pub incarnation: u32,
    /// Whether it is crashed (or replaced: a restart ends it).
    pub crashed: bool,
    /// Until when it is frozen.
    pub frozen_until: Option<Instant>,
    /// Whether it is joining, since when.
    pub joining: Option<Instant>,
}

/// An `apply` the swarm sent.
pub struct Call {
    /// Its context.
    pub ctx: RmcContext<ApplyResult>,
    /// The caller's node and uid.
    pub node: usize,
    /// The caller's uid.
    pub caller: Uid,
    /// The station it was sent to.
    pub target: StationId,
    /// Its sub-stream and number.
    pub substream: u8,
    /// Its number.
    pub seq: u64,
    /// Whether its outcome was looked at already.
    pub checked: bool,
    /// When it was sent.
    pub sent: Instant,
}

/// A timed end of a fault.
#[derive(Clone, Debug)]
enum Undo {
    Thaw(usize),
    Heal,
    RestoreLoss,
    ClearLink(SocketAddr, SocketAddr),
}

/// The counts a run reports.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Steps run.
    pub steps: u64,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Ops that did something, by kind.
    pub applied: BTreeMap<&'static str, u64>,
    /// Stations declared failed or left, as seen by any station.
    pub departures: u64,
    /// RMCs completed, by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Invariant checks run.
    pub checks: u64,
    /// Datagrams the network carried.
    pub datagrams: u64,
    /// `apply` RMCs and `note` actions the stations ran.
    pub executions: u64,
}

/// Lines of what happened, shared with the runner (which prints them).
pub type Trace = std::rc::Rc<std::cell::RefCell<Vec<String>>>;

/// A seed's world.
pub struct World {
    /// The parameters.
    pub p: Params,
    /// The network and the stations.
    pub sim: Sim<Node>,
    /// Each node's state, by index (the simulator's order).
    pub slots: Vec<Slot>,
    registry: Arc<Registry>,
    /// Every `apply` sent.
    pub calls: Vec<Call>,
    rmc_seq: BTreeMap<(Uid, u8), u64>,
    note_seq: BTreeMap<Uid, u64>,
    /// `note`s sent: per (object, sender) how many to the master and how
    /// many to the duplicas only.
    pub notes_sent: BTreeMap<(DOHandle, Uid), (u64, u64)>,
    /// Every handle ever published.
    pub handles: BTreeSet<DOHandle>,
    /// How often each station saw each object's master change.
    views: BTreeMap<(Uid, DOHandle), u32>,
    /// When each object's master last changed, as far as anyone saw.
    handed: BTreeMap<DOHandle, Instant>,
    /// When each station last published or handed over an object.
    handed_by: BTreeMap<Uid, Instant>,
    /// Room requests not answered yet: (node, incarnation, request) -> when.
    pub room_requests: BTreeMap<(usize, u32, u64), Instant>,
    undo: Vec<(Instant, Undo)>,
    partitioned: bool,
    lossy_burst: bool,
    /// What the run counted.
    pub stats: RunStats,
    /// Where the lines of what happened go, when tracing.
    pub trace: Option<Trace>,
    /// Refused messages already traced, per node incarnation and kind.
    refusals_seen: BTreeMap<(usize, u32, &'static str), u64>,
    /// What went wrong outside the checks (a harness call that panicked).
    pub failures: Vec<String>,
}

/// The user class id of the probes.
pub fn probe_class(registry: &Registry) -> ClassId {
    match registry.class_id::<Probe>() {
        Some(c) => c,
        None => panic!("the probe class is registered"),
    }
}

impl World {
    /// A world for `p`: the first station creates the session, the others
    /// join it one after the other.
    pub fn new(p: Params, trace: Option<Trace>) -> World {
        probe::reset_journal();
        let mut w = World {
            sim: Sim::new(p.net.clone()),
            p,
            slots: Vec::new(),
            registry: probe::registry(),
            calls: Vec::new(),
            rmc_seq: BTreeMap::new(),
            note_seq: BTreeMap::new(),
            notes_sent: BTreeMap::new(),
            handles: BTreeSet::new(),
            views: BTreeMap::new(),
            handed: BTreeMap::new(),
            handed_by: BTreeMap::new(),
            room_requests: BTreeMap::new(),
            undo: Vec::new(),
            partitioned: false,
            lossy_burst: false,
            stats: RunStats::default(),
            trace,
            refusals_seen: BTreeMap::new(),
            failures: Vec::new(),
        };
        // The first station creates the session: a server (the session
        // master of a client-server session must be one).
        let first = w.add_node(ProcessType::Server);
        let addr = w.slots[first].addr;
        let now = w.sim.now();
        if let Err(e) = w.sim.node_mut(addr).st.create_session(now, addr) {
            panic!("the session is created: {e}");
        }
        for i in 1..w.p.initial {
            // Client-server: the first `servers` are servers. Mesh: every
            // third station is a client (process types mix in a mesh too).
            let client = match w.p.topology {
                Topology::ClientServer => i >= w.p.servers,
                _ => i % 3 == 2,
            };
            let kind = if client {
                ProcessType::Client
            } else {
                ProcessType::Server
            };
            let node = w.add_node(kind);
            let contact = w.contact(i as u32 * 7919, kind);
            if let Some(c) = contact {
                w.start_join(node, c);
                let deadline = w.sim.now() + Duration::from_secs(8);
                while w.slots[node].joining.is_some() && w.sim.now() < deadline {
                    w.advance(Duration::from_millis(10));
                    w.drain_events();
                }
            }
        }
        w.advance(Duration::from_millis(200));
        w.drain_events();
        w
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &self.trace {
            let line = format!("{:>9} {}", self.sim.now().as_micros() / 1000, line());
            t.borrow_mut().push(line);
        }
    }

    fn station_config(&self, index: usize, incarnation: u32, kind: ProcessType) -> StationConfig {
        let mut cfg = StationConfig::new(kind, format!("n{index}.{incarnation}"));
        cfg.topology = self.p.topology;
        cfg.failure_timeout = self.p.failure_timeout;
        cfg.rmc_timeout = self.p.rmc_timeout;
        cfg.seed = self.p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ ((index as u64) << 32)
            ^ u64::from(incarnation);
        cfg.drain_timeout = Duration::from_secs(3);
        // Every simulated station has the same IP address: the per-source
        // join limits would count all of them as one source.
        cfg.limits.join_attempts_per_second = 10_000;
        cfg.limits.join_burst = 10_000;
        cfg.limits.join_attempts_per_second_total = 10_000;
        cfg
    }

    fn add_node(&mut self, kind: ProcessType) -> usize {
        let index = self.slots.len();
        let cfg = self.station_config(index, 0, kind);
        let st = Station::new(cfg, self.registry.clone());
        let addr = self.sim.add_node(Node::new(st, uid(index, 0)));
        self.slots.push(Slot {
            addr,
            kind,
            incarnation: 0,
            crashed: false,
            frozen_until: None,
            joining: None,
        });
        index
    }

    fn start_join(&mut self, node: usize, contact: usize) {
        let addr = self.slots[node].addr;
        let via = self.slots[contact].addr;
        let now = self.sim.now();
        match self.sim.node_mut(addr).drive(|st| st.join(now, addr, via)) {
            Ok(()) => self.slots[node].joining = Some(now),
            Err(e) => self.log(|| format!("node {node} cannot join: {e}")),
        }
    }

    /// The station of node `i`.
    pub fn station(&self, i: usize) -> &Station {
        &self.sim.node(self.slots[i].addr).st
    }

    /// Node `i`.
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        let addr = self.slots[i].addr;
        self.sim.node_mut(addr)
    }

    /// The uid of node `i`'s current incarnation.
    pub fn uid(&self, i: usize) -> Uid {
        uid(i, self.slots[i].incarnation)
    }

    /// Whether node `i` is running (not crashed).
    pub fn is_up(&self, i: usize) -> bool {
        !self.slots[i].crashed
    }

    /// Whether node `i` runs, is not frozen and is in its session.
    pub fn is_active(&self, i: usize) -> bool {
        !self.slots[i].crashed
            && self.slots[i].frozen_until.is_none()
            && self.station(i).is_in_session()
    }

    /// Nodes that run and believe they are in a session (frozen ones too).
    pub fn in_session(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| !self.slots[i].crashed && self.station(i).is_in_session())
            .collect()
    }

    fn active(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.is_active(i))
            .collect()
    }

    /// The stations a crash, a freeze, a cut or a leave may hit.
    fn targets(&self) -> Vec<usize> {
        let all = self.active();
        let recent = |i: usize| {
            !self.p.scenarios.departure_after_hand_over
                && self
                    .handed_by
                    .get(&self.uid(i))
                    .is_some_and(|t| self.sim.now() < *t + 3 * self.p.failure_timeout)
        };
        all.into_iter()
            .filter(|&i| {
                (self.p.scenarios.session_master_faults || !self.station(i).is_session_master())
                    && !recent(i)
            })
            .collect()
    }

    /// Whether `h` may be handed over now (see [`Scenarios::quick_hand_backs`]).
    fn may_hand_over(&self, h: DOHandle) -> bool {
        self.p.scenarios.quick_hand_backs
            || self
                .handed
                .get(&h)
                .is_none_or(|t| self.sim.now() >= *t + 3 * self.p.failure_timeout)
    }

    fn pick<T: Copy>(list: &[T], pick: u32) -> Option<T> {
        (!list.is_empty()).then(|| list[pick as usize % list.len()])
    }

    /// A member to join through: a server that is not scaling in, in a
    /// client-server session; anyone in a mesh.
    fn contact(&self, pick: u32, _joiner: ProcessType) -> Option<usize> {
        let list: Vec<usize> = self
            .active()
            .into_iter()
            .filter(|&i| {
                let st = self.station(i);
                !st.is_offline()
                    && (self.p.topology == Topology::Mesh
                        || st.config().process_type == ProcessType::Server)
            })
            .collect();
        Self::pick(&list, pick)
    }

    fn probes(&self, i: usize, masters_only: bool) -> Vec<DOHandle> {
        let class = probe_class(&self.registry);
        let st = self.station(i);
        let list = if masters_only {
            st.masters()
        } else {
            st.objects()
        };
        list.into_iter().filter(|h| h.class_id() == class).collect()
    }

    // ------------------------------------------------------------- running

    /// Runs the network for `d`, ending the faults whose time came.
    pub fn advance(&mut self, d: Duration) {
        let end = self.sim.now() + d;
        loop {
            self.undo.sort_by_key(|(t, _)| *t);
            match self.undo.first() {
                Some((t, _)) if *t <= end => {
                    let (t, u) = self.undo.remove(0);
                    self.sim.run_until(t);
                    self.end_fault(u);
                }
                _ => break,
            }
        }
        self.sim.run_until(end);
    }

    fn end_fault(&mut self, u: Undo) {
        self.log(|| format!("end {u:?}"));
        match u {
            Undo::Thaw(i) => self.thaw(i),
            Undo::Heal => {
                self.sim.heal();
                self.partitioned = false;
            }
            Undo::RestoreLoss => {
                self.sim.set_config(self.p.net.clone());
                self.lossy_burst = false;
            }
            Undo::ClearLink(a, b) => self.sim.clear_link(a, b),
        }
    }

    fn thaw(&mut self, i: usize) {
        if self.slots[i].frozen_until.take().is_none() {
            return;
        }
        let now = self.sim.now();
        let addr = self.slots[i].addr;
        self.sim.node_mut(addr).thaw(now);
    }

    /// Ends every fault at once and makes the network lossless.
    pub fn heal_all(&mut self) {
        self.undo.clear();
        self.sim.heal();
        self.partitioned = false;
        self.lossy_burst = false;
        let addrs: Vec<SocketAddr> = self.slots.iter().map(|s| s.addr).collect();
        for &a in &addrs {
            for &b in &addrs {
                self.sim.clear_link(a, b);
            }
        }
        self.sim.set_config(SimConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            ..self.p.net.clone()
        });
        for i in 0..self.slots.len() {
            self.thaw(i);
        }
        self.log(|| "heal everything".into());
    }

    /// Handles what every driven station reported.
    pub fn drain_events(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].crashed || self.slots[i].frozen_until.is_some() {
                continue;
            }
            let inc = self.slots[i].incarnation;
            if self.trace.is_some() {
                let refused = self.station(i).stats().unauthorized_by_kind.clone();
                for (kind, n) in refused {
                    let seen = self.refusals_seen.entry((i, inc, kind)).or_default();
                    if n > *seen {
                        let more = n - *seen;
                        *seen = n;
                        self.log(|| format!("node {i} refused {more} {kind}"));
                    }
                }
            }
            let events: Vec<Event> = {
                let st = &mut self.node_mut(i).st;
                std::iter::from_fn(|| st.poll_event()).collect()
            };
            for e in events {
                if !matches!(e, Event::RmcCompleted { .. }) {
                    self.log(|| format!("node {i} event {e:?}"));
                }
                match e {
                    Event::Joined { id, .. } => {
                        self.slots[i].joining = None;
                        self.log(|| format!("node {i} joined as {id}"));
                    }
                    Event::JoinFailed(err) => {
                        self.slots[i].joining = None;
                        self.log(|| format!("node {i} join failed: {err}"));
                    }
                    Event::Disconnected { reason } => {
                        self.log(|| format!("node {i} disconnected: {reason}"));
                    }
                    Event::StationFailed(_) | Event::StationLeft(_) => {
                        self.stats.departures += 1;
                    }
                    Event::Offline { ours: true, .. } => {
                        let now = self.sim.now();
                        // Most clients move; the others are kicked at the end of the drain.
                        if (self.uid(i) + now.as_micros() / 1000) % 8 != 0 {
                            let r = self.node_mut(i).drive(|st| st.send_migrate(now));
                            self.log(|| format!("node {i} migrates on Offline: {r:?}"));
                        }
                    }
                    Event::MasterChanged { handle, master } => {
                        *self.views.entry((self.uid(i), handle)).or_default() += 1;
                        let now = self.sim.now();
                        self.handed.insert(handle, now);
                        // A master that became one hands objects on too
                        // (scale-in, rooms): count it as handing over.
                        if master == self.station(i).id() {
                            self.handed_by.insert(self.uid(i), now);
                        }
                    }
                    Event::RoomResult { request, .. } => {
                        self.room_requests.remove(&(i, inc, request));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs one step of a plan.
    pub fn step(&mut self, step: &Step) {
        let applied = self.apply(&step.op);
        if applied {
            *self.stats.applied.entry(step.op.kind()).or_default() += 1;
        }
        self.advance(Duration::from_millis(u64::from(step.wait_ms)));
        self.drain_events();
        self.stats.steps += 1;
    }

    fn fault_until(&self, ms: u32) -> Instant {
        self.sim.now() + Duration::from_millis(u64::from(ms))
    }

    /// Applies one op; returns whether it did something.
    fn apply(&mut self, op: &Op) -> bool {
        let now = self.sim.now();
        let active = self.active();
        let r = match *op {
            Op::Idle => return false,
            Op::Publish {
                node,
                recover,
                label,
            } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let cap = 3 * self.p.max_stations;
                let live: BTreeSet<DOHandle> =
                    active.iter().flat_map(|&k| self.probes(k, true)).collect();
                if live.len() >= cap {
                    return false;
                }
                let value = i64::from(label) * 3;
                let text = "x".repeat(usize::from(label));
                let r = self
                    .node_mut(i)
                    .drive(|st| st.publish(now, Probe::new(value, text, recover)));
                match r {
                    Ok(r) => {
                        let h = r.handle();
                        self.handles.insert(h);
                        self.handed_by.insert(self.uid(i), now);
                        // Handles are unique within a session (two sessions
                        // split from one may give out the same ones).
                        let clash = (0..self.slots.len()).find(|&k| {
                            k != i && crate::checks::mutual(self, i, k) && {
                                let o = self.station(k);
                                o.contains(h) && o.master_of(h) != Some(self.station(i).id())
                            }
                        });
                        if let Some(k) = clash {
                            self.failures.push(format!(
                                "node {i} published {h:?}, which node {k} of its session holds already (mastered by {:?})",
                                self.station(k).master_of(h)
                            ));
                        }
                        format!("node {i} publishes {h:?} (recover {recover})")
                    }
                    Err(e) => format!("node {i} cannot publish: {e}"),
                }
            }
            Op::Update {
                node,
                obj,
                delta,
                label,
            } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let Some(h) = Self::pick(&self.probes(i, true), obj) else {
                    return false;
                };
                let Some(r) = self.station(i).get::<Probe>(h) else {
                    return false;
                };
                {
                    let mut g = r.lock();
                    g.data.value = g.data.value.wrapping_add(delta);
                    g.data.label = "y".repeat(usize::from(label));
                }
                let r = self.node_mut(i).drive(|st| st.update(now, h));
                format!("node {i} updates {h:?} by {delta}: {r:?}")
            }
            Op::UpdateAll { node } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let n = self.node_mut(i).drive(|st| st.update_all(now));
                format!("node {i} updates all: {n}")
            }
            Op::Rmc {
                node,
                obj,
                substream,
                delta,
            } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let Some(h) = Self::pick(&self.probes(i, false), obj) else {
                    return false;
                };
                let caller = self.uid(i);
                let st = self.station(i);
                let caller_id = st.id();
                let Some(target) = st.master_of(h) else {
                    return false;
                };
                let seq = {
                    let s = self.rmc_seq.entry((caller, substream)).or_default();
                    *s += 1;
                    *s
                };
                let ctx: RmcContext<ApplyResult> = RmcContext::on_master();
                ctx.set_flag(RmcFlag::TargetObjectMustBeMaster);
                ctx.set_sub_stream_id(substream);
                let args: ApplyArgs = (caller, caller_id.0, substream, seq, delta);
                let sent = self
                    .node_mut(i)
                    .drive(|st| st.object::<Probe>(h).call(&ctx, APPLY, &args));
                self.calls.push(Call {
                    ctx,
                    node: i,
                    caller,
                    target,
                    substream,
                    seq,
                    checked: false,
                    sent: now,
                });
                format!("node {i} ({caller_id}) calls apply #{seq} on {h:?} at {target} on sub-stream {substream}: sent {sent}")
            }
            Op::Note {
                node,
                obj,
                duplicas,
            } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let Some(h) = Self::pick(&self.probes(i, duplicas), obj) else {
                    return false;
                };
                let sender = self.uid(i);
                let sender_id = self.station(i).id();
                let seq = {
                    let s = self.note_seq.entry(sender).or_default();
                    *s += 1;
                    *s
                };
                let as_master = self.station(i).master_of(h) == Some(sender_id);
                let view = self.views.get(&(sender, h)).copied().unwrap_or(0);
                let args: NoteArgs = (sender, sender_id.0, seq, as_master, view);
                let sent = self.node_mut(i).drive(|st| {
                    let mut o = st.object::<Probe>(h);
                    if duplicas {
                        o.action_on_duplicas(NOTE, &args)
                    } else {
                        o.action_on_master(NOTE, &args)
                    }
                });
                if sent {
                    let e = self.notes_sent.entry((h, sender)).or_default();
                    if duplicas {
                        e.1 += 1;
                    } else {
                        e.0 += 1;
                    }
                }
                format!("node {i} notes #{seq} on {h:?} (duplicas {duplicas}): sent {sent}")
            }
            Op::Delete { node, obj } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let Some(h) = Self::pick(&self.probes(i, true), obj) else {
                    return false;
                };
                let r = self.node_mut(i).drive(|st| st.delete_main_ref(now, h));
                format!("node {i} deletes {h:?}: {r:?}")
            }
            Op::Migrate { node, obj, to } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let Some(h) = Self::pick(&self.probes(i, true), obj) else {
                    return false;
                };
                let st = self.station(i);
                let me = st.id();
                let others: Vec<StationId> = st
                    .stations()
                    .into_iter()
                    .map(|s| s.id)
                    .filter(|s| *s != me)
                    .collect();
                let Some(dest) = Self::pick(&others, to) else {
                    return false;
                };
                if !self.may_hand_over(h) {
                    return false;
                }
                self.handed.insert(h, now);
                self.handed_by.insert(self.uid(i), now);
                let r = self.node_mut(i).drive(|st| st.migrate(now, h, dest));
                format!("node {i} migrates {h:?} to {dest}: {r:?}")
            }
            Op::CreateRoom { node } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let props = vec![("mode".to_string(), format!("m{}", node % 5))];
                let r = self.node_mut(i).drive(|st| st.create_room(now, props));
                self.room_request(i, &r);
                format!("node {i} creates a room: {r:?}")
            }
            Op::JoinRoom { node, room } | Op::LeaveRoom { node, room } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let rooms: Vec<DOHandle> = self
                    .station(i)
                    .rooms()
                    .into_iter()
                    .map(|r| r.handle)
                    .collect();
                let Some(h) = Self::pick(&rooms, room) else {
                    return false;
                };
                let join = matches!(op, Op::JoinRoom { .. });
                let r = self.node_mut(i).drive(|st| {
                    if join {
                        st.join_room(now, h)
                    } else {
                        st.leave_room(now, h)
                    }
                });
                self.room_request(i, &r);
                format!(
                    "node {i} {} room {h:?}: {r:?}",
                    if join { "joins" } else { "leaves" }
                )
            }
            Op::RoomProperty {
                node,
                room,
                key,
                value,
            } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let rooms: Vec<DOHandle> = self
                    .station(i)
                    .rooms()
                    .into_iter()
                    .map(|r| r.handle)
                    .collect();
                let Some(h) = Self::pick(&rooms, room) else {
                    return false;
                };
                let r = self.node_mut(i).drive(|st| {
                    st.set_room_property(now, h, format!("k{key}"), format!("v{value}"))
                });
                self.room_request(i, &r);
                format!("node {i} sets k{key} of room {h:?}: {r:?}")
            }
            Op::MigrateRoom { node, room } => {
                let Some(i) = Self::pick(&active, node) else {
                    return false;
                };
                let me = self.station(i).id();
                let rooms: Vec<DOHandle> = self
                    .station(i)
                    .rooms()
                    .into_iter()
                    .filter(|r| r.owner == me)
                    .map(|r| r.handle)
                    .collect();
                let Some(h) = Self::pick(&rooms, room) else {
                    return false;
                };
                if !self.may_hand_over(h) {
                    return false;
                }
                self.handed.insert(h, now);
                self.handed_by.insert(self.uid(i), now);
                // Answered by `RoomMigrateComplete` (which names no request),
                // not by a `RoomResult`: not counted among the requests.
                let r = self.node_mut(i).drive(|st| st.send_migrate_room(now, h));
                format!("node {i} migrates room {h:?}: {r:?}")
            }
            Op::Join { contact, server } => {
                if self.slots.len() >= self.p.max_stations {
                    return false;
                }
                let kind = if server || self.p.topology == Topology::Mesh && contact % 2 == 0 {
                    ProcessType::Server
                } else {
                    ProcessType::Client
                };
                let Some(c) = self.contact(contact, kind) else {
                    return false;
                };
                let i = self.add_node(kind);
                self.start_join(i, c);
                format!("node {i} ({kind:?}) joins through node {c}")
            }
            Op::Leave { node } => {
                if active.len() <= 2 {
                    return false;
                }
                let Some(i) = Self::pick(&self.targets(), node) else {
                    return false;
                };
                let r = self.node_mut(i).drive(|st| st.leave(now));
                format!("node {i} leaves: {r:?}")
            }
            Op::Crash { node } => {
                if active.len() <= 2 {
                    return false;
                }
                let Some(i) = Self::pick(&self.targets(), node) else {
                    return false;
                };
                self.sim.crash(self.slots[i].addr);
                self.slots[i].crashed = true;
                self.slots[i].joining = None;
                format!("node {i} crashes")
            }
            Op::Restart { node, contact } => {
                let down: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| {
                        self.slots[i].crashed
                            || (self.slots[i].joining.is_none()
                                && self.slots[i].frozen_until.is_none()
                                && !self.station(i).is_in_session())
                    })
                    .collect();
                let Some(i) = Self::pick(&down, node) else {
                    return false;
                };
                let kind = self.slots[i].kind;
                let Some(c) = self.contact(contact, kind) else {
                    return false;
                };
                let inc = self.slots[i].incarnation + 1;
                let cfg = self.station_config(i, inc, kind);
                let st = Station::new(cfg, self.registry.clone());
                let addr = self.slots[i].addr;
                self.sim.restart(addr, Node::new(st, uid(i, inc)));
                let s = &mut self.slots[i];
                s.incarnation = inc;
                s.crashed = false;
                s.frozen_until = None;
                self.start_join(i, c);
                format!("node {i} restarts (incarnation {inc}) and joins through node {c}")
            }
            Op::Freeze { node, ms } => {
                if active.len() <= 2 {
                    return false;
                }
                let Some(i) = Self::pick(&self.targets(), node) else {
                    return false;
                };
                let until = self.fault_until(ms);
                self.node_mut(i).frozen = true;
                self.slots[i].frozen_until = Some(until);
                self.undo.push((until, Undo::Thaw(i)));
                format!("node {i} freezes for {ms} ms")
            }
            Op::Partition { side, ms } => {
                if self.partitioned {
                    return false;
                }
                let up: Vec<usize> = (0..self.slots.len()).filter(|&i| self.is_up(i)).collect();
                let (a, b): (Vec<usize>, Vec<usize>) =
                    up.iter().partition(|&&i| (side >> (i % 64)) & 1 == 1);
                if a.is_empty() || b.is_empty() {
                    return false;
                }
                let a: Vec<SocketAddr> = a.iter().map(|&i| self.slots[i].addr).collect();
                let b: Vec<SocketAddr> = b.iter().map(|&i| self.slots[i].addr).collect();
                self.sim.partition(&a, &b);
                self.partitioned = true;
                self.undo.push((self.fault_until(ms), Undo::Heal));
                format!("partition {a:?} | {b:?} for {ms} ms")
            }
            Op::Isolate { node, ms } => {
                if self.partitioned {
                    return false;
                }
                let Some(i) = Self::pick(&self.targets(), node) else {
                    return false;
                };
                self.sim.isolate(self.slots[i].addr);
                self.partitioned = true;
                self.undo.push((self.fault_until(ms), Undo::Heal));
                format!("node {i} isolated for {ms} ms")
            }
            Op::LossBurst { percent, ms } => {
                if self.lossy_burst {
                    return false;
                }
                self.sim.set_config(SimConfig {
                    loss: f64::from(percent) / 100.0,
                    ..self.p.net.clone()
                });
                self.lossy_burst = true;
                self.undo.push((self.fault_until(ms), Undo::RestoreLoss));
                format!("loss {percent}% for {ms} ms")
            }
            Op::LinkLoss { a, b, percent, ms } => {
                let up: Vec<usize> = (0..self.slots.len()).filter(|&i| self.is_up(i)).collect();
                let (Some(x), Some(y)) = (Self::pick(&up, a), Self::pick(&up, b)) else {
                    return false;
                };
                if x == y {
                    return false;
                }
                let (ax, ay) = (self.slots[x].addr, self.slots[y].addr);
                self.sim.set_link_loss(ax, ay, f64::from(percent) / 100.0);
                self.undo
                    .push((self.fault_until(ms), Undo::ClearLink(ax, ay)));
                format!("link {x}-{y} loses {percent}% for {ms} ms")
            }
            Op::ScaleIn { node, drain_ms } => {
                let servers: Vec<usize> = active
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let st = self.station(i);
                        st.config().process_type == ProcessType::Server && !st.is_offline()
                    })
                    .collect();
                if servers.len() < 2 {
                    return false;
                }
                let Some(i) = Self::pick(&servers, node) else {
                    return false;
                };
                let drain = Duration::from_millis(u64::from(drain_ms));
                let r = self.node_mut(i).drive(|st| st.scale_in(now, drain));
                format!("node {i} scales in ({drain_ms} ms): {r:?}")
            }
            Op::ClientMigrate { node } => {
                let clients: Vec<usize> = active
                    .iter()
                    .copied()
                    .filter(|&i| self.station(i).relay().is_some())
                    .collect();
                let Some(i) = Self::pick(&clients, node) else {
                    return false;
                };
                let r = self.node_mut(i).drive(|st| st.send_migrate(now));
                format!("node {i} migrates: {r:?}")
            }
        };
        self.log(|| r);
        true
    }

    /// Logs every station's view: members, session master, objects with
    /// their masters, duplica sets and values (when tracing).
    pub fn dump(&mut self) {
        let mut lines = Vec::new();
        for i in 0..self.slots.len() {
            let st = self.station(i);
            lines.push(format!(
                "node {i} ({}) crashed {} in session {} master {} members {:?} idle {} {:?}",
                st.id(),
                self.slots[i].crashed,
                st.is_in_session(),
                st.session_master(),
                st.stations().iter().map(|s| s.id).collect::<Vec<_>>(),
                st.is_idle(),
                st.bookkeeping()
            ));
            let stats = st.stats();
            lines.push(format!(
                "    unknown sender {} wrong session {} malformed {} bad {} refused {:?}",
                stats.unknown_sender,
                stats.wrong_session,
                stats.malformed_datagrams,
                stats.bad_messages,
                stats.unauthorized_by_kind
            ));
            for l in st.link_views() {
                lines.push(format!(
                    "    link {} sent {} received {} lost {} retransmissions {} in flight {} queued {}",
                    l.peer,
                    l.packets_sent,
                    l.packets_received,
                    l.packets_lost,
                    l.retransmissions,
                    l.packets_in_flight,
                    l.queued_bytes
                ));
            }
            for h in st.objects() {
                let values: Vec<String> = st
                    .dataset_views(h)
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|d| d.fields.iter().map(|f| format!("{:?}", f.bytes)))
                    .collect();
                lines.push(format!(
                    "    {h:?} master {:?} dup_set {:?} {}",
                    st.master_of(h),
                    st.dup_set(h),
                    values.join(" ")
                ));
            }
        }
        for l in lines {
            self.log(|| l);
        }
    }

    fn room_request(&mut self, i: usize, r: &Result<u64, StationError>) {
        if let Ok(request) = r {
            let inc = self.slots[i].incarnation;
            self.room_requests
                .insert((i, inc, *request), self.sim.now());
        }
    }
}
