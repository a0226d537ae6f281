//! The station: one process's sans-IO state machine.

use crate::ids::{ClassId, DOHandle, MethodId, ProcessType, StationId};
use crate::object::{
    new_cell, ActionTarget, CallContext, DispatchError, DoClass, DoDyn, ErasedCell, Invoker,
    MethodKind, ObjectProxy, Ref, Registry,
};
use crate::operation::*;
use crate::pipeline::{CallbackError, CallbackId, Hooks};
use crate::rmc::{bits, Outcome, RmcFlag, RmcShared};
use crate::session::*;
use crate::transport::{Link, PacketHeader, PacketKind, TransportConfig};
use crate::wire::{get_varint, put_varint, Bytes, Envelope, Msg, RoomOp};
use crate::{Instant, Transmit};
use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, trace};

/// The system sub-stream: session and object messages travel on it.
const SYSTEM_STREAM: u8 = 0;
/// How many links a joining station keeps for stations it does not know yet.
const MAX_PROVISIONAL_LINKS: usize = 16;
/// How many relayed messages from stations not known yet are kept until
/// their `StationJoined` arrives.
const MAX_EARLY_RELAYED: usize = 1024;
/// Why a server that scales in refuses joins.
const OFFLINE_REASON: &str = "the server is going offline (scale-in); join through another server";
/// Why a server that scaled in disconnects the clients that did not migrate.
const KICK_REASON: &str =
    "the server scaled in and its drain timeout ended before the client migrated";

/// Counters of what a station received, dropped and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StationStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Datagrams whose header or frames did not parse.
    pub malformed_datagrams: u64,
    /// Datagrams from an address or station that is not in the session.
    pub unknown_sender: u64,
    /// Datagrams tagged with another session.
    pub wrong_session: u64,
    /// Messages that did not decode or made no sense in the current state.
    pub bad_messages: u64,
    /// Object messages naming a class this build does not know.
    pub unknown_class: u64,
    /// Object messages naming an object not in the store.
    pub unknown_object: u64,
    /// Calls naming a method id the class does not know.
    pub unknown_method: u64,
    /// Operations rejected by the SafetyExecutive.
    pub operations_rejected: u64,
    /// Messages relayed for other stations.
    pub relayed: u64,
    /// Dataset updates sent.
    pub updates_sent: u64,
    /// Dataset updates applied.
    pub updates_applied: u64,
    /// RMCs and actions executed locally.
    pub calls_executed: u64,
    /// Join requests dropped by the per-source rate limit.
    pub join_rate_limited: u64,
    /// Join requests dropped because too many joins were pending.
    pub pending_joins_limited: u64,
    /// RMCs failed at once because too many were in flight.
    pub rmcs_limited: u64,
    /// Postponed calls dropped because too many were postponed.
    pub postponed_limited: u64,
    /// Messages dropped because a peer's send queue was full.
    pub send_queue_limited: u64,
    /// Messages dropped by a joining station beyond its early-message cap.
    pub early_messages_limited: u64,
    /// Link datagrams dropped (security on) because no key exists for the
    /// sender (spoofed) or their tag did not verify (forged or modified).
    pub auth_failed: u64,
    /// Link datagrams dropped (security on) because they were seen before.
    pub replayed: u64,
    /// Join requests dropped (security on) for a missing or invalid connect
    /// token, or one of the wrong process type or already in use.
    pub token_rejected: u64,
    /// Join requests dropped (security on) for an expired connect token.
    pub token_expired: u64,
    /// Messages to this client that arrived a second time (they were sent
    /// again another way when a server left) and were dropped.
    pub duplicate_messages: u64,
    /// Messages to this client given up on: a gap in a sender's numbering
    /// that was not filled in time (lost with a crashed server).
    pub sequence_gaps: u64,
}

/// Errors of station API calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StationError {
    /// The station is not in a session.
    #[error("the station is not in a session")]
    NotInSession,
    /// The class is not registered.
    #[error("class `{0}` is not registered")]
    UnknownClass(&'static str),
    /// No such object in the store.
    #[error("no object {0:?} in the store")]
    NoSuchObject(DOHandle),
    /// The operation needs the master.
    #[error("{0:?} is not mastered here")]
    NotMaster(DOHandle),
    /// No such station in the session.
    #[error("no station {0} in the session")]
    NoSuchStation(StationId),
    /// The SafetyExecutive rejected the operation.
    #[error("the operation was rejected by the SafetyExecutive")]
    Rejected,
    /// The system lock is held.
    #[error("the system lock is held; migration and removal are deferred")]
    SystemLocked,
    /// No pending join with that id.
    #[error("no pending join for station {0}")]
    NoPendingJoin(StationId),
    /// Only a server of a client-server session can do this (scale in).
    #[error("only a server of a client-server session can scale in")]
    NotAServer,
    /// Only a client of a client-server session can do this (migrate).
    #[error("only a client of a client-server session can migrate")]
    NotAClient,
    /// A migration of this client is already under way.
    #[error("a migration is already under way")]
    AlreadyMigrating,
    /// No such room.
    #[error("no room {0:?}")]
    NoSuchRoom(DOHandle),
    /// Only the room's owner may migrate it.
    #[error("only the room owner ({owner}) may migrate room {room_id}")]
    NotRoomOwner {
        /// The room's id.
        room_id: String,
        /// Its owner.
        owner: StationId,
    },
}

struct Member {
    info: StationInfo,
    link: Option<Link>,
    silent: bool,
    /// Whether a packet naming it as sender arrived (before, a joiner
    /// sends without its id: see `Station::resolve_joiner`).
    heard: bool,
}

struct Entry {
    cell: Arc<dyn ErasedCell>,
    master: StationId,
    dup_set: BTreeSet<StationId>,
    snapshot: Vec<Vec<Vec<u8>>>,
    type_id: TypeId,
}

struct PendingCall {
    shared: Arc<RmcShared>,
    generation: u64,
    target: StationId,
    deadline: Instant,
    handle: DOHandle,
    method: u16,
    args: Vec<u8>,
    flags: u16,
    substream: u8,
    retries: u32,
}

struct Postponed {
    due: Instant,
    op: Operation,
    call: u64,
    reply: bool,
    handle: DOHandle,
    args: Vec<u8>,
    substream: u8,
    forward: bool,
}

struct PendingJoin {
    nonce: u64,
    info: StationInfo,
    contact: StationId,
}

enum State {
    Idle,
    Joining {
        contact: SocketAddr,
        nonce: u64,
        deadline: Instant,
        next_send: Instant,
        provisional: HashMap<SocketAddr, (u32, Link)>,
        early: Vec<(SocketAddr, u8, Envelope)>,
    },
    InSession,
    Leaving {
        deadline: Instant,
    },
    Closed,
}

/// A link kept after its station stopped being a direct peer, so that the
/// last acknowledgements and retransmissions still go out.
struct Closing {
    id: StationId,
    addr: SocketAddr,
    link: Link,
    until: Instant,
    /// Whether messages still arriving on it are handled (the old server's
    /// link of a migrating client) or dropped.
    deliver: bool,
    /// Whether the peer is a client (which may only speak for itself).
    client: bool,
}

/// A client's receiving order for one (sender, sub-stream).
struct InOrder {
    /// The number of the next message to handle.
    next: u64,
    /// Messages that arrived ahead of `next`.
    held: BTreeMap<u64, Envelope>,
    /// Since when the oldest gap has not moved.
    since: Option<Instant>,
}

impl InOrder {
    /// Nothing held; `next` is the number of the next message to handle.
    fn expecting(next: u64) -> InOrder {
        InOrder {
            next,
            held: BTreeMap::new(),
            since: None,
        }
    }
}

/// The sub-stream a delivered message came on (the unreliable channel
/// counts as the system stream).
fn delivered_substream(channel: crate::transport::Channel) -> u8 {
    match channel {
        crate::transport::Channel::Reliable(s) => s,
        _ => SYSTEM_STREAM,
    }
}

/// Messages a client holds back per sender behind a gap before it gives up
/// on the gap.
const MAX_HELD_IN_ORDER: usize = 4096;

/// A server's scale-in.
struct ScaleIn {
    deadline: Instant,
    /// Set when the drain is over: clients still attached were told to go,
    /// and the server leaves once its links are idle or at this instant.
    kicked_until: Option<Instant>,
}

/// A client's migration to another server.
enum MigrationPhase {
    /// Waiting until the old server acknowledged everything we sent.
    WaitIdle,
    /// `MigrateRequest` sent; waiting for `MigrateGo`.
    Requested,
    /// Switched to the new server; waiting for its `Welcome`.
    Switched { to: StationId },
}

struct Migration {
    phase: MigrationPhase,
    /// Messages sent by the application during the migration, in order.
    held: Vec<(u8, Envelope)>,
}

/// A server handing one of its clients over to another server.
struct Handover {
    target: StationId,
    tried: Vec<StationId>,
    accepted: bool,
    /// Marks of this server's links when the client asked: everything the
    /// client sent before was relayed once they are passed.
    marks: Vec<(StationId, Vec<u64>)>,
}

enum Deferred {
    Msg(StationId, Msg),
    Recover(DOHandle, StationId),
}

/// One station: the sans-IO state machine that keeps the DO store, runs the
/// operation pipeline and speaks the session protocol.
///
/// # Call contract
/// - Inputs: [`Station::handle_datagram`] for every datagram received,
///   [`Station::handle_timeout`] whenever the deadline from
///   [`Station::poll_timeout`] passes, and the user calls (publish, RMCs,
///   updates, join, leave...). Every input carries `now`, which must never
///   go backwards.
/// - Outputs, to drain after every input: [`Station::poll_transmit`] until it
///   returns `None` (datagrams to send), [`Station::poll_event`] (what
///   happened), and [`Station::poll_timeout`] (when to call back).
///
/// The station never reads a clock, opens a socket, spawns a thread or draws
/// randomness; the same inputs always give the same outputs.
pub struct Station {
    cfg: Arc<StationConfig>,
    tcfg: Arc<TransportConfig>,
    registry: Arc<Registry>,
    hooks: Hooks,
    now: Instant,
    local_addr: Option<SocketAddr>,
    id: StationId,
    state: State,
    session_tag: u32,
    session_master: StationId,
    members: BTreeMap<StationId, Member>,
    addrs: HashMap<SocketAddr, StationId>,
    relay: StationId,
    next_station_id: u32,
    forwarded: HashMap<SocketAddr, u64>,
    pending_joins: BTreeMap<StationId, PendingJoin>,
    store: crate::fasthash::FastMap<DOHandle, Entry>,
    next_serial: u32,
    calls: crate::fasthash::FastMap<u64, PendingCall>,
    call_deadlines: BTreeSet<(Instant, u64)>,
    next_call: u64,
    postponed: Vec<Postponed>,
    local_queue: VecDeque<(StationId, Msg)>,
    depth: u32,
    system_lock: u32,
    deferred: Vec<Deferred>,
    gone: BTreeSet<StationId>,
    /// Links of stations that left gracefully (or stopped being direct
    /// peers), kept briefly so that the last acknowledgements and messages
    /// still go out.
    closing: Vec<Closing>,
    /// Servers that announced a scale-in.
    offline: BTreeSet<StationId>,
    scale_in: Option<ScaleIn>,
    migration: Option<Migration>,
    handovers: BTreeMap<StationId, Handover>,
    /// Messages a server relays from or to a station whose `StationJoined`
    /// has not arrived yet (it took another path): (received, hop, sub-stream).
    early_relayed: Vec<(Instant, StationId, u8, Envelope)>,
    /// Client-server sessions: the number of the last message this station
    /// sent to a client, per (client, sub-stream).
    seq_out: crate::fasthash::FastMap<(StationId, u8), u64>,
    /// A client: messages to it in each sender's order, per (sender,
    /// sub-stream); they may take two paths while a server hands it over.
    seq_in: BTreeMap<(StationId, u8), InOrder>,
    /// Per room: the last migration epoch whose start / completion was reported.
    room_started: HashMap<DOHandle, u32>,
    room_completed: HashMap<DOHandle, u32>,
    next_room_serial: u32,
    next_request: u64,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    rng: u64,
    stats: StationStats,
    limit_state: crate::limits::LimitState,
    /// Keys and token checks, when security is on.
    sec: Option<crate::crypto::SecurityState>,
    /// Where packets are built; handed out only when one is produced.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("id", &self.id)
            .field("session_master", &self.session_master)
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .field("objects", &self.store.len())
            .finish()
    }
}

impl Station {
    /// A station that is in no session yet.
    pub fn new(config: StationConfig, registry: Arc<Registry>) -> Station {
        let rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        let sec = config
            .security
            .clone()
            .map(crate::crypto::SecurityState::new);
        let mut tcfg = config.transport.clone();
        if sec.is_some() {
            // Room for the packet counter and the tag.
            tcfg.max_datagram_size = tcfg
                .max_datagram_size
                .saturating_sub(crate::crypto::DATAGRAM_OVERHEAD);
        }
        Station {
            tcfg: Arc::new(tcfg),
            cfg: Arc::new(config),
            registry,
            hooks: Hooks::default(),
            now: Instant::ZERO,
            local_addr: None,
            id: StationId::NONE,
            state: State::Idle,
            session_tag: 0,
            session_master: StationId::NONE,
            members: BTreeMap::new(),
            addrs: HashMap::new(),
            relay: StationId::NONE,
            next_station_id: 2,
            forwarded: HashMap::new(),
            pending_joins: BTreeMap::new(),
            store: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(
                rng.rotate_left(17) ^ 0xA5A5_5A5A_0F0F_F0F0,
            )),
            next_serial: 1,
            calls: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(
                rng.rotate_left(41),
            )),
            call_deadlines: BTreeSet::new(),
            next_call: 1,
            postponed: Vec::new(),
            local_queue: VecDeque::new(),
            depth: 0,
            system_lock: 0,
            deferred: Vec::new(),
            gone: BTreeSet::new(),
            closing: Vec::new(),
            offline: BTreeSet::new(),
            scale_in: None,
            migration: None,
            handovers: BTreeMap::new(),
            early_relayed: Vec::new(),
            seq_out: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(
                rng.rotate_left(7),
            )),
            seq_in: BTreeMap::new(),
            room_started: HashMap::new(),
            room_completed: HashMap::new(),
            next_room_serial: 1,
            next_request: 1,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            rng,
            stats: StationStats::default(),
            limit_state: Default::default(),
            sec,
            scratch: Vec::new(),
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64 over the driver-provided seed.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    // ----------------------------------------------------------------- queries

    /// This station's id (`StationId::NONE` before it is in a session).
    pub fn id(&self) -> StationId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &StationConfig {
        &self.cfg
    }

    /// The class registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether the station is in a session.
    pub fn is_in_session(&self) -> bool {
        matches!(self.state, State::InSession | State::Leaving { .. })
    }

    /// Whether the station has left (or lost) its session for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The session master.
    pub fn session_master(&self) -> StationId {
        self.session_master
    }

    /// Whether this station is the session master.
    pub fn is_session_master(&self) -> bool {
        self.id.is_some() && self.session_master == self.id
    }

    /// Every station of the session, this one included, by id.
    pub fn stations(&self) -> Vec<StationInfo> {
        self.members.values().map(|m| m.info.clone()).collect()
    }

    /// One station's description.
    pub fn station_info(&self, id: StationId) -> Option<&StationInfo> {
        self.members.get(&id).map(|m| &m.info)
    }

    /// Counters.
    pub fn stats(&self) -> &StationStats {
        &self.stats
    }

    /// Handles of every object in the store, sorted.
    pub fn objects(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self.store.keys().copied().collect();
        v.sort();
        v
    }

    /// Handles of the masters in the store, sorted.
    pub fn masters(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self
            .store
            .iter()
            .filter(|(_, e)| e.master == self.id)
            .map(|(h, _)| *h)
            .collect();
        v.sort();
        v
    }

    /// Handles of the duplicas in the store, sorted.
    pub fn duplicas(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self
            .store
            .iter()
            .filter(|(_, e)| e.master != self.id)
            .map(|(h, _)| *h)
            .collect();
        v.sort();
        v
    }

    /// Whether `handle` is in the store.
    pub fn contains(&self, handle: DOHandle) -> bool {
        self.store.contains_key(&handle)
    }

    /// The master station of an object in the store.
    pub fn master_of(&self, handle: DOHandle) -> Option<StationId> {
        self.store.get(&handle).map(|e| e.master)
    }

    /// The duplica set of a master in the store.
    pub fn dup_set(&self, handle: DOHandle) -> Option<Vec<StationId>> {
        self.store
            .get(&handle)
            .filter(|e| e.master == self.id)
            .map(|e| e.dup_set.iter().copied().collect())
    }

    /// A reference to a local object of class `T`.
    pub fn get<T: DoClass>(&self, handle: DOHandle) -> Option<Ref<T>> {
        Ref::from_erased(self.store.get(&handle)?.cell.clone())
    }

    /// Every local object of class `T` (NetZ `T::SelectionIterator`), by handle.
    pub fn select<T: DoClass>(&self) -> Vec<Ref<T>> {
        let mut v: Vec<_> = self
            .store
            .iter()
            .filter(|(_, e)| e.type_id == TypeId::of::<T>())
            .filter_map(|(_, e)| Ref::from_erased(e.cell.clone()))
            .collect();
        v.sort_by_key(|r: &Ref<T>| r.handle());
        v
    }

    /// A proxy to call `T`'s RMCs and actions on `handle`.
    pub fn object<T: DoClass>(&mut self, handle: DOHandle) -> T::Proxy<'_> {
        T::Proxy::from(ObjectProxy::new(self, handle))
    }

    /// A station's process type (for checks and approval callbacks).
    pub fn process_type_of(&self, id: StationId) -> Option<ProcessType> {
        self.members.get(&id).map(|m| m.info.process_type)
    }

    // ------------------------------------------------------------------- hooks

    /// NetZ `SafetyExecutive::TrustLocalStation`: whether operations the local
    /// station triggers skip the checks (default: trusted).
    pub fn trust_local_station(&mut self, trusted: bool) {
        self.hooks.trust_local = trusted;
    }

    /// Marks a remote station as trusted (its operations skip the checks) or
    /// not (the default).
    pub fn trust_station(&mut self, id: StationId, trusted: bool) {
        self.hooks.trust_station(id, trusted);
    }

    /// NetZ `RegisterCustomOperationCheck`: vets every operation from an
    /// untrusted origin; false rejects it.
    pub fn register_custom_operation_check(
        &mut self,
        f: impl FnMut(&Operation) -> bool + Send + 'static,
    ) {
        self.hooks.add_check(Box::new(f));
    }

    /// NetZ `RegisterInvalidOperationCallback`: runs for each rejected operation.
    pub fn register_invalid_operation_callback(
        &mut self,
        f: impl FnMut(&Operation) + Send + 'static,
    ) {
        self.hooks.add_invalid(Box::new(f));
    }

    /// NetZ `OperationManager::RegisterCallback`: runs `f` for operations of
    /// `kind` (or every kind) at `priority` (-1024..=1024, lower first; the
    /// operation itself is at 0, -1 and 1 are reserved).
    pub fn register_operation_callback(
        &mut self,
        kind: Option<OperationKind>,
        priority: i32,
        f: impl FnMut(&mut Operation) + Send + 'static,
    ) -> Result<CallbackId, CallbackError> {
        self.hooks.register(kind, priority, Box::new(f))
    }

    /// Removes a callback; returns whether it existed.
    pub fn unregister_operation_callback(&mut self, id: CallbackId) -> bool {
        self.hooks.unregister(id)
    }

    /// NetZ `Operation::SetTraceFilter`.
    pub fn set_trace_filter(&mut self, f: impl Fn(&Operation) -> bool + Send + 'static) {
        self.hooks.set_trace_filter(Box::new(f));
    }

    /// NetZ `TraceLog::SetFlag(TRACE_OPERATION)`: traces operations through
    /// `tracing` (target `netz::operation`) and keeps the lines for [`Station::take_trace`].
    pub fn set_trace_log(&mut self, on: bool) {
        self.hooks.trace_log = on;
    }

    /// The trace lines recorded so far.
    pub fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.hooks.traced)
    }

    /// NetZ `Session::RegisterJoinApprovalCallback` (runs on the session master).
    pub fn register_join_approval_callback(
        &mut self,
        f: impl FnMut(&mut JoinSessionOperation) + Send + 'static,
    ) {
        self.hooks.join_approval = Some(Box::new(f));
    }

    /// NetZ `Scheduler::SystemLock`: while held, ChangeMasterStation and
    /// RemoveFromStore are deferred. Pair with [`Station::unlock_system`].
    pub fn lock_system(&mut self) {
        self.system_lock += 1;
    }

    /// Releases the system lock; deferred operations run when it reaches zero.
    pub fn unlock_system(&mut self, now: Instant) {
        self.advance(now);
        self.system_lock = self.system_lock.saturating_sub(1);
        if self.system_lock == 0 {
            let deferred = std::mem::take(&mut self.deferred);
            for d in deferred {
                match d {
                    Deferred::Msg(origin, msg) => self.handle_msg(origin, msg),
                    Deferred::Recover(h, failed) => self.fault_recover(h, failed),
                }
            }
            self.drain_local();
            self.progress_migrations();
            self.drain_local();
        }
    }

    /// Whether the system lock is held.
    pub fn is_system_locked(&self) -> bool {
        self.system_lock > 0
    }

    // ------------------------------------------------------------ output side

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.advance(now);
        if let Some(t) = self.transmits.pop_front() {
            self.stats.datagrams_sent += 1;
            return Some(t);
        }
        let tag = self.session_tag;
        let me = self.id.0;
        let max = self.tcfg.max_datagram_size;
        let scratch = &mut self.scratch;
        let sec = &mut self.sec;
        let mut out = None;
        for (id, m) in self.members.iter_mut() {
            if let Some(link) = m.link.as_mut() {
                out = next_packet(scratch, sec, tag, me, *id, link, now, max)
                    .map(|b| (m.info.addr, b));
                if out.is_some() {
                    break;
                }
            }
        }
        if out.is_none() {
            for c in self.closing.iter_mut() {
                out = next_packet(scratch, sec, tag, me, c.id, &mut c.link, now, max)
                    .map(|b| (c.addr, b));
                if out.is_some() {
                    break;
                }
            }
        }
        if out.is_none() {
            if let State::Joining { provisional, .. } = &mut self.state {
                for (addr, (sender, link)) in provisional.iter_mut() {
                    out = next_packet(scratch, sec, tag, me, StationId(*sender), link, now, max)
                        .map(|b| (*addr, b));
                    if out.is_some() {
                        break;
                    }
                }
            }
        }
        let (destination, contents) = out?;
        self.stats.datagrams_sent += 1;
        Some(Transmit {
            destination,
            contents,
        })
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Station::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        if !self.local_queue.is_empty() || !self.transmits.is_empty() {
            consider(self.now);
        }
        for m in self.members.values() {
            if let Some(link) = &m.link {
                if let Some(x) = link.poll_timeout() {
                    consider(x);
                }
                if !m.silent {
                    consider(link.last_received() + self.cfg.failure_timeout);
                }
            }
        }
        for c in &self.closing {
            consider(c.until);
            if let Some(x) = c.link.poll_timeout() {
                consider(x.min(c.until));
            }
        }
        if let Some(sc) = &self.scale_in {
            consider(sc.kicked_until.unwrap_or(sc.deadline));
        }
        for o in self.seq_in.values() {
            if let Some(t) = o.since {
                consider(t + self.gap_timeout());
            }
        }
        if let Some((d, _)) = self.call_deadlines.first() {
            consider(*d);
        }
        for p in &self.postponed {
            consider(p.due);
        }
        match &self.state {
            State::Joining {
                deadline,
                next_send,
                provisional,
                ..
            } => {
                consider(*deadline);
                consider(*next_send);
                for (_, l) in provisional.values() {
                    if let Some(x) = l.poll_timeout() {
                        consider(x);
                    }
                }
            }
            State::Leaving { deadline } => consider(*deadline),
            _ => {}
        }
        t
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    // ------------------------------------------------------------- input side

    /// Time passes: retransmissions, heartbeats, failure detection, RMC
    /// timeouts, postponed calls, join retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        for m in self.members.values_mut() {
            if let Some(link) = m.link.as_mut() {
                link.handle_timeout(now);
            }
        }
        self.closing.retain_mut(|c| {
            c.link.handle_timeout(now);
            now < c.until
        });
        let keep = self.cfg.failure_timeout;
        self.early_relayed.retain(|e| now < e.0 + keep);
        let wait = self.gap_timeout();
        let expired: Vec<(StationId, u8)> = self
            .seq_in
            .iter()
            .filter(|(_, o)| o.since.is_some_and(|t| now >= t + wait))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.skip_gap(key);
        }
        if let Some(sec) = self.sec.as_mut() {
            let known = self.members.len() + self.closing.len() + self.pending_joins.len();
            if matches!(self.state, State::InSession) && sec.peer_count() > 2 * known + 8 {
                let (members, closing, pending) =
                    (&self.members, &self.closing, &self.pending_joins);
                sec.retain(|id| {
                    members.contains_key(&id)
                        || pending.contains_key(&id)
                        || closing.iter().any(|c| c.id == id)
                });
            }
        }
        // Join retries.
        let mut join_failed = false;
        let mut resend = None;
        if let State::Joining {
            contact,
            nonce,
            deadline,
            next_send,
            provisional,
            ..
        } = &mut self.state
        {
            for (_, l) in provisional.values_mut() {
                l.handle_timeout(now);
            }
            if now >= *deadline {
                join_failed = true;
            } else if now >= *next_send {
                *next_send = now + self.cfg.join_retry;
                resend = Some((*contact, *nonce));
            }
        }
        if join_failed {
            self.state = State::Idle;
            self.events
                .push_back(Event::JoinFailed(JoinError::TimedOut));
        }
        if let Some((contact, nonce)) = resend {
            self.send_join_request(contact, nonce);
        }
        if let State::Leaving { deadline } = self.state {
            // Closed once every station acknowledged our goodbye (or at the deadline).
            let hop = self.next_hop(self.session_master);
            let delivered = hop
                .and_then(|h| self.members.get(&h))
                .and_then(|m| m.link.as_ref())
                .is_none_or(|l| l.is_idle());
            if delivered || now >= deadline {
                self.close("left the session");
            }
        }
        // Failure detection.
        let silent: Vec<StationId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                !m.silent
                    && m.link
                        .as_ref()
                        .is_some_and(|l| now >= l.last_received() + self.cfg.failure_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            if let Some(m) = self.members.get_mut(&id) {
                m.silent = true;
            }
            self.peer_silent(id);
        }
        // RMC timeouts.
        while let Some(&(d, call)) = self.call_deadlines.first() {
            if d > now {
                break;
            }
            self.call_deadlines.pop_first();
            if let Some(p) = self.calls.remove(&call) {
                self.complete_call(&p, Outcome::TimedOut, None);
            }
        }
        // Postponed calls.
        if self.postponed.iter().any(|p| p.due <= now) {
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.postponed)
                .into_iter()
                .partition(|p| p.due <= now);
            self.postponed = rest;
            for p in due {
                self.execute_call(
                    p.op,
                    p.call,
                    p.reply,
                    p.handle,
                    p.args,
                    p.substream,
                    p.forward,
                );
            }
        }
        self.drain_local();
        self.progress_migrations();
        self.drain_local();
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.advance(now);
        self.stats.datagrams_received += 1;
        let Ok((header, payload)) = PacketHeader::decode(datagram) else {
            self.stats.malformed_datagrams += 1;
            return;
        };
        match header.kind {
            PacketKind::Connectionless => {
                let Ok(msg) = postcard::from_bytes::<Msg>(payload) else {
                    self.stats.malformed_datagrams += 1;
                    return;
                };
                self.handle_connectionless(from, msg);
            }
            PacketKind::Link => {
                let (header, resolved) = match self.resolve_joiner(from, header) {
                    Some(h) => (h, true),
                    None => (header, false),
                };
                self.handle_sealed_link_packet(from, header, resolved, datagram, payload);
            }
            #[allow(unreachable_patterns)]
            _ => self.stats.malformed_datagrams += 1,
        }
        self.drain_local();
        if self.migration.is_some() || !self.handovers.is_empty() || self.scale_in.is_some() {
            self.progress_migrations();
            self.drain_local();
        }
    }

    /// A station that is still joining does not know its id nor the
    /// session's tag, and sends its acknowledgements and heartbeats without
    /// them: they are taken as its own when they come from the address of a
    /// member just admitted, so that its links see it alive and learn what
    /// it received.
    fn resolve_joiner(&self, from: SocketAddr, mut header: PacketHeader) -> Option<PacketHeader> {
        if header.sender != StationId::NONE.0
            || header.session != 0
            || !matches!(self.state, State::InSession)
        {
            return None;
        }
        if let Some(&id) = self.addrs.get(&from) {
            // Only a member never heard from: a station that restarted on
            // the address of one that is still a member is not taken for it.
            if id != self.id
                && self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.link.is_some() && !m.heard)
            {
                header.sender = id.0;
                header.session = self.session_tag;
                return Some(header);
            }
        }
        None
    }

    fn handle_sealed_link_packet(
        &mut self,
        from: SocketAddr,
        header: PacketHeader,
        resolved: bool,
        datagram: &[u8],
        payload: &[u8],
    ) {
        match self.sec.as_mut() {
            None => self.handle_link_packet(from, header, resolved, payload),
            Some(sec) => {
                let hlen = datagram.len() - payload.len();
                let peer = StationId(header.sender);
                match sec.open(peer, &datagram[..hlen], payload) {
                    Ok(plain) => self.handle_link_packet(from, header, resolved, &plain),
                    Err(crate::crypto::OpenError::Replayed) => self.stats.replayed += 1,
                    Err(crate::crypto::OpenError::Unauthentic) => self.stats.auth_failed += 1,
                }
            }
        }
    }

    fn handle_link_packet(
        &mut self,
        from: SocketAddr,
        header: PacketHeader,
        resolved: bool,
        payload: &[u8],
    ) {
        let now = self.now;
        if let State::Joining {
            provisional, early, ..
        } = &mut self.state
        {
            if !provisional.contains_key(&from) {
                if provisional.len() >= MAX_PROVISIONAL_LINKS {
                    self.stats.unknown_sender += 1;
                    return;
                }
                provisional.insert(from, (header.sender, Link::new(self.tcfg.clone(), now)));
            }
            let Some((_, link)) = provisional.get_mut(&from) else {
                return;
            };
            if link.handle_packet(now, payload).is_err() {
                self.stats.malformed_datagrams += 1;
                return;
            }
            let mut got = Vec::new();
            while let Some(d) = link.poll_message() {
                let substream = delivered_substream(d.channel);
                match Envelope::decode(&d.data) {
                    Some(env) => got.push((substream, env)),
                    None => self.stats.bad_messages += 1,
                }
            }
            let mut accepted = None;
            for (substream, env) in got {
                if matches!(env.msg, Msg::JoinAccepted { .. }) && accepted.is_none() {
                    accepted = Some((substream, env));
                } else if early.len() < self.cfg.limits.max_early_messages {
                    early.push((from, substream, env));
                } else {
                    self.stats.early_messages_limited += 1;
                    self.limit_state
                        .hit(crate::limits::Limit::EarlyMessages, self.id);
                }
            }
            if let Some((substream, env)) = accepted {
                self.on_join_accepted(from, header.sender, substream, env);
            }
            return;
        }
        if !self.is_in_session() {
            self.stats.unknown_sender += 1;
            return;
        }
        if header.session != self.session_tag {
            self.stats.wrong_session += 1;
            return;
        }
        let sender = StationId(header.sender);
        let linked = self
            .members
            .get(&sender)
            .is_some_and(|m| m.link.is_some() && m.info.addr == from);
        if !linked {
            if let Some(c) = self
                .closing
                .iter_mut()
                .find(|c| c.id == sender && c.addr == from)
            {
                if c.link.handle_packet(now, payload).is_err() {
                    self.stats.malformed_datagrams += 1;
                    return;
                }
                let mut got = Vec::new();
                while let Some(d) = c.link.poll_message() {
                    got.push(d);
                }
                let (deliver, client) = (c.deliver, c.client);
                for d in got {
                    let substream = delivered_substream(d.channel);
                    match Envelope::decode(&d.data) {
                        // Only acknowledgements matter now, and what it
                        // passes on to clients (numbered, so never twice),
                        // unless the link is a migrating client's old
                        // server's: all of it is handled.
                        Some(env) if deliver || env.seq != 0 => {
                            self.route(sender, client, substream, env)
                        }
                        Some(_) => {}
                        None => self.stats.bad_messages += 1,
                    }
                }
                return;
            }
        }
        let Some(m) = self.members.get_mut(&sender) else {
            self.stats.unknown_sender += 1;
            return;
        };
        if m.info.addr != from || sender == self.id {
            self.stats.unknown_sender += 1;
            return;
        }
        let Some(link) = m.link.as_mut() else {
            self.stats.unknown_sender += 1;
            return;
        };
        if link.handle_packet(now, payload).is_err() {
            self.stats.malformed_datagrams += 1;
            return;
        }
        if m.silent {
            m.silent = false;
        }
        if !resolved {
            m.heard = true;
        }
        let mut got = Vec::new();
        while let Some(d) = link.poll_message() {
            got.push(d);
        }
        let hop_is_client = m.info.process_type == ProcessType::Client;
        for d in got {
            let substream = delivered_substream(d.channel);
            let Some(env) = Envelope::decode(&d.data) else {
                self.stats.bad_messages += 1;
                continue;
            };
            self.route(sender, hop_is_client, substream, env);
        }
    }

    fn route(&mut self, hop: StationId, hop_is_client: bool, substream: u8, env: Envelope) {
        // A client may only speak for itself (no spoofed origins through relays).
        let origin_ok = env.origin == hop
            || (self.cfg.topology == Topology::ClientServer
                && !hop_is_client
                && self.members.contains_key(&env.origin));
        if !origin_ok {
            // A server may relay what a new client sent before the session
            // master's `StationJoined` for it reached us: keep it briefly.
            let early = self.cfg.topology == Topology::ClientServer
                && !hop_is_client
                && !self.members.contains_key(&env.origin)
                && !self.gone.contains(&env.origin)
                && self.early_relayed.len() < MAX_EARLY_RELAYED;
            if early {
                self.early_relayed.push((self.now, hop, substream, env));
            } else {
                self.stats.bad_messages += 1;
            }
            return;
        }
        if env.dest.is_some() && env.dest != self.id {
            if self.members.contains_key(&env.dest) {
                self.stats.relayed += 1;
                self.send_envelope(substream, env);
            } else if self.cfg.topology == Topology::ClientServer
                && !self.gone.contains(&env.dest)
                && self.early_relayed.len() < MAX_EARLY_RELAYED
            {
                // For a new client whose `StationJoined` took another path.
                self.early_relayed.push((self.now, hop, substream, env));
            } else {
                self.stats.unknown_sender += 1;
            }
            return;
        }
        if env.seq != 0 {
            self.handle_in_order(substream, env);
        } else {
            self.handle_msg(env.origin, env.msg);
        }
    }

    /// A numbered message to this client: handled in its sender's order,
    /// once; those ahead of a gap wait for it (see [`Envelope::seq`]).
    fn handle_in_order(&mut self, substream: u8, env: Envelope) {
        let now = self.now;
        let key = (env.origin, substream);
        let order = self
            .seq_in
            .entry(key)
            .or_insert_with(|| InOrder::expecting(1));
        if env.seq < order.next || order.held.contains_key(&env.seq) {
            self.stats.duplicate_messages += 1;
            return;
        }
        if env.seq > order.next {
            order.held.insert(env.seq, env);
            order.since.get_or_insert(now);
            if order.held.len() > MAX_HELD_IN_ORDER {
                self.skip_gap(key);
            }
            return;
        }
        order.next += 1;
        let mut ready = vec![env];
        Self::take_ready(order, &mut ready, now);
        for e in ready {
            self.handle_msg(e.origin, e.msg);
        }
    }

    /// Moves the messages that are next in order out of `order.held`.
    fn take_ready(order: &mut InOrder, ready: &mut Vec<Envelope>, now: Instant) {
        while let Some(e) = order.held.remove(&order.next) {
            order.next += 1;
            ready.push(e);
        }
        order.since = (!order.held.is_empty()).then_some(now);
    }

    /// Gives up on the gap in front of the messages held for `key`.
    fn skip_gap(&mut self, key: (StationId, u8)) {
        let now = self.now;
        let Some(order) = self.seq_in.get_mut(&key) else {
            return;
        };
        let Some(&first) = order.held.keys().next() else {
            return;
        };
        self.stats.sequence_gaps += first - order.next;
        debug!(station = %self.id, from = %key.0, missing = first - order.next, "gave up on a gap");
        order.next = first;
        let mut ready = Vec::new();
        Self::take_ready(order, &mut ready, now);
        for e in ready {
            self.handle_msg(e.origin, e.msg);
        }
    }

    /// How long a client waits for a gap in a sender's messages to fill:
    /// long enough for a server that left to be noticed and what it did
    /// not pass on to come another way.
    fn gap_timeout(&self) -> Duration {
        self.cfg.failure_timeout * 2
    }

    // ------------------------------------------------------------------ sending

    fn next_hop(&self, dest: StationId) -> Option<StationId> {
        let m = self.members.get(&dest)?;
        if m.link.is_some() {
            return Some(dest);
        }
        if self.cfg.topology == Topology::ClientServer {
            if self.cfg.process_type == ProcessType::Client {
                return self
                    .members
                    .get(&self.relay)
                    .filter(|r| r.link.is_some())
                    .map(|_| self.relay);
            }
            let r = m.info.relay?;
            return self.members.get(&r).filter(|r| r.link.is_some()).map(|_| r);
        }
        None
    }

    /// Sends `env` towards its destination. A message of this station to a
    /// client of a client-server session gets its number (see
    /// [`Envelope::seq`]); relayed ones keep theirs.
    fn send_envelope(&mut self, substream: u8, mut env: Envelope) -> bool {
        let Some(hop) = self.next_hop(env.dest) else {
            return false;
        };
        let substream = self.substream(substream);
        let numbered = (env.seq == 0 && env.origin == self.id && self.sequenced(env.dest))
            .then(|| self.next_seq(env.dest, substream));
        if let Some(n) = numbered {
            env.seq = n;
        }
        let bytes = env.encode();
        let sent = self.send_bytes(hop, substream, &bytes);
        if let (true, Some(n)) = (sent, numbered) {
            self.seq_out.insert((env.dest, substream), n);
        }
        sent
    }

    /// The sub-stream a message on `substream` travels on.
    fn substream(&self, substream: u8) -> u8 {
        if substream < self.tcfg.substreams {
            substream
        } else {
            SYSTEM_STREAM
        }
    }

    /// Whether messages to `dest` are numbered: it is a client of a
    /// client-server session, whose server may change under them.
    fn sequenced(&self, dest: StationId) -> bool {
        self.cfg.topology == Topology::ClientServer
            && self
                .members
                .get(&dest)
                .is_some_and(|m| m.info.process_type == ProcessType::Client)
    }

    /// The number the next message to `dest` on `substream` gets (taken
    /// only once it was queued).
    fn next_seq(&self, dest: StationId, substream: u8) -> u64 {
        self.seq_out.get(&(dest, substream)).copied().unwrap_or(0) + 1
    }

    /// Queues an encoded envelope on the link to `hop`, within the queue limit.
    fn send_bytes(&mut self, hop: StationId, substream: u8, bytes: &[u8]) -> bool {
        let substream = self.substream(substream);
        match self.members.get_mut(&hop).and_then(|m| m.link.as_mut()) {
            Some(link) => {
                if link.queued_bytes() + bytes.len() > self.cfg.limits.max_queued_bytes_per_link {
                    self.stats.send_queue_limited += 1;
                    self.limit_state
                        .hit(crate::limits::Limit::QueuedBytes, self.id);
                    return false;
                }
                link.send_reliable(substream, bytes).is_ok()
            }
            None => false,
        }
    }

    /// Sends one message to several stations, encoding it once for every
    /// station with a direct link (addressed to "the hop": no destination).
    fn multicast(&mut self, targets: &[StationId], substream: u8, msg: Msg) {
        if self.migration.is_some() {
            for &t in targets {
                self.send(t, substream, msg.clone());
            }
            return;
        }
        let me = self.id;
        let substream = self.substream(substream);
        let mut direct: Option<Vec<u8>> = None;
        for &t in targets {
            if t != me && self.members.get(&t).is_some_and(|m| m.link.is_some()) {
                let bytes = direct.get_or_insert_with(|| {
                    Envelope {
                        seq: 0,
                        origin: me,
                        dest: StationId::NONE,
                        msg: msg.clone(),
                    }
                    .encode()
                });
                if self.sequenced(t) {
                    let n = self.next_seq(t, substream);
                    let numbered = Envelope::renumbered(bytes, n);
                    if self.send_bytes(t, substream, &numbered) {
                        self.seq_out.insert((t, substream), n);
                    }
                } else {
                    self.send_bytes(t, substream, bytes);
                }
            } else {
                self.send(t, substream, msg.clone());
            }
        }
    }

    /// Sends `msg` to `dest` (itself included: queued locally).
    fn send(&mut self, dest: StationId, substream: u8, msg: Msg) -> bool {
        if dest == self.id {
            self.local_queue.push_back((self.id, msg));
            return true;
        }
        trace!(station = %self.id, to = %dest, msg = msg.name(), "send");
        let env = Envelope {
            seq: 0,
            origin: self.id,
            dest,
            msg,
        };
        if let Some(m) = self.migration.as_mut() {
            // Held until the new server welcomes us, then sent in order.
            m.held.push((substream, env));
            return true;
        }
        self.send_envelope(substream, env)
    }

    /// Sends `msg` at once, even while migrating (the migration's own messages).
    fn send_now(&mut self, dest: StationId, msg: Msg) -> bool {
        trace!(station = %self.id, to = %dest, msg = msg.name(), "send");
        let env = Envelope {
            seq: 0,
            origin: self.id,
            dest,
            msg,
        };
        self.send_envelope(SYSTEM_STREAM, env)
    }

    fn broadcast(&mut self, msg: &Msg, except: &[StationId]) {
        let ids: Vec<StationId> = self
            .members
            .keys()
            .copied()
            .filter(|i| *i != self.id && !except.contains(i))
            .collect();
        self.multicast(&ids, SYSTEM_STREAM, msg.clone());
    }

    fn send_connectionless(&mut self, to: SocketAddr, msg: &Msg) {
        let mut buf = Vec::new();
        PacketHeader {
            kind: PacketKind::Connectionless,
            session: self.session_tag,
            sender: self.id.0,
            receiver: 0,
        }
        .encode(&mut buf);
        if let Ok(b) = postcard::to_extend(msg, buf) {
            self.transmits.push_back(Transmit {
                destination: to,
                contents: b,
            });
        }
    }

    fn drain_local(&mut self) {
        if self.depth > 0 {
            return;
        }
        let mut guard = 0;
        while let Some((origin, msg)) = self.local_queue.pop_front() {
            self.handle_msg(origin, msg);
            guard += 1;
            if guard > 100_000 {
                break;
            }
        }
    }

    // ---------------------------------------------------------------- sessions

    /// Creates a session; this station becomes its master (id 1).
    pub fn create_session(
        &mut self,
        now: Instant,
        local_addr: SocketAddr,
    ) -> Result<(), JoinError> {
        self.advance(now);
        if !matches!(self.state, State::Idle) {
            return Err(JoinError::AlreadyInSession);
        }
        self.local_addr = Some(local_addr);
        self.id = StationId(1);
        self.session_master = self.id;
        self.next_station_id = 2;
        self.session_tag = (self.next_random() as u32) | 1;
        let info = StationInfo {
            id: self.id,
            process_type: self.cfg.process_type,
            token: self.cfg.token.clone(),
            addr: local_addr,
            relay: None,
        };
        self.members.insert(
            self.id,
            Member {
                info: info.clone(),
                link: None,
                silent: false,
                heard: false,
            },
        );
        self.state = State::InSession;
        self.events.push_back(Event::SessionCreated { id: self.id });
        debug!(station = %self.id, "session created");
        for h in self.registry.well_known_handles() {
            self.add_well_known(h, true);
        }
        self.publish_station_object(&info);
        self.drain_local();
        Ok(())
    }

    /// Starts joining the session that the station at `contact` belongs to.
    /// Completion is reported by `Event::Joined` or `Event::JoinFailed`.
    pub fn join(
        &mut self,
        now: Instant,
        local_addr: SocketAddr,
        contact: SocketAddr,
    ) -> Result<(), JoinError> {
        self.advance(now);
        if !matches!(self.state, State::Idle) {
            return Err(JoinError::AlreadyInSession);
        }
        self.local_addr = Some(local_addr);
        let nonce = self.next_random();
        if let Some(sec) = self.sec.as_mut() {
            sec.set_joining(true);
        }
        self.state = State::Joining {
            contact,
            nonce,
            deadline: now + self.cfg.join_timeout,
            next_send: now + self.cfg.join_retry,
            provisional: HashMap::new(),
            early: Vec::new(),
        };
        self.send_join_request(contact, nonce);
        Ok(())
    }

    fn send_join_request(&mut self, contact: SocketAddr, nonce: u64) {
        let msg = Msg::JoinRequest {
            nonce,
            process_type: self.cfg.process_type,
            token: self.cfg.token.clone(),
            topology: self.cfg.topology,
            connect: Bytes(self.sec.as_ref().map(|s| s.own_token()).unwrap_or_default()),
        };
        self.send_connectionless(contact, &msg);
    }

    fn handle_connectionless(&mut self, from: SocketAddr, msg: Msg) {
        match msg {
            Msg::JoinRequest {
                nonce,
                process_type,
                token,
                topology,
                connect,
            } => {
                if !matches!(self.state, State::InSession) {
                    self.stats.unknown_sender += 1;
                    return;
                }
                if !self
                    .limit_state
                    .allow_join(&self.cfg.limits, from, self.now)
                {
                    self.stats.join_rate_limited += 1;
                    self.limit_state
                        .hit(crate::limits::Limit::JoinRate, self.id);
                    return;
                }
                if !self.vet_token(&connect.0, process_type) {
                    return;
                }
                if self.scale_in.is_some() {
                    self.send_connectionless(
                        from,
                        &Msg::JoinDenied {
                            nonce,
                            reason: OFFLINE_REASON.into(),
                        },
                    );
                    return;
                }
                self.on_join_request(
                    self.id,
                    nonce,
                    from,
                    process_type,
                    token,
                    topology,
                    connect.0,
                );
            }
            Msg::JoinDenied { nonce: n, reason } => {
                if let State::Joining { nonce, contact, .. } = &self.state {
                    if *nonce == n && *contact == from {
                        self.state = State::Idle;
                        self.events
                            .push_back(Event::JoinFailed(JoinError::Denied(reason)));
                        return;
                    }
                }
                self.stats.bad_messages += 1;
            }
            _ => self.stats.bad_messages += 1,
        }
    }

    /// With security on, whether a join request's connect token may be
    /// handled (checked fully where the token key is known, for its form
    /// elsewhere); counts the refusals.
    fn vet_token(&mut self, connect: &[u8], process_type: ProcessType) -> bool {
        let Some(sec) = &self.sec else {
            return true;
        };
        let verdict = if sec.can_open_tokens() {
            sec.open_token(connect, process_type, self.now).map(|_| ())
        } else if connect.len() == crate::crypto::SEALED_TOKEN_LEN {
            Ok(())
        } else {
            Err(crate::crypto::TokenError::Invalid)
        };
        match verdict {
            Ok(()) => true,
            Err(crate::crypto::TokenError::Expired) => {
                self.stats.token_expired += 1;
                false
            }
            Err(_) => {
                self.stats.token_rejected += 1;
                false
            }
        }
    }

    /// A join request reached this station (directly, or forwarded by `contact`).
    #[allow(clippy::too_many_arguments)]
    fn on_join_request(
        &mut self,
        contact: StationId,
        nonce: u64,
        addr: SocketAddr,
        process_type: ProcessType,
        token: String,
        topology: Topology,
        connect: Vec<u8>,
    ) {
        // Already admitted (a retry of a request whose answer is on its way).
        if let Some(id) = self.addrs.get(&addr).copied() {
            if self.forwarded.get(&addr) == Some(&nonce) {
                return;
            }
            // With security on, a request from a member's address is not
            // taken as a restart: anyone can replay one with a new nonce.
            if self.sec.is_some() {
                return;
            }
            // The station at that address restarted: the old one is gone.
            if self.is_session_master() && id != self.id {
                self.declare_gone(id, true);
            } else {
                return;
            }
        }
        if self.forwarded.get(&addr) == Some(&nonce) {
            return;
        }
        if !self.join_capacity() {
            return;
        }
        if !self.is_session_master() {
            self.forwarded.insert(addr, nonce);
            let master = self.session_master;
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::JoinForward {
                    nonce,
                    addr,
                    process_type,
                    token,
                    topology,
                    connect: Bytes(connect),
                },
            );
            return;
        }
        // With security on, the token must open here and be in use by no
        // current member.
        let mut joiner_keys = None;
        if let Some(sec) = &self.sec {
            match sec.open_token(&connect, process_type, self.now) {
                Ok((grant, c2s, s2c)) => {
                    let members = &self.members;
                    let pending = &self.pending_joins;
                    if sec.client_in_use(grant.client_id, |id| {
                        members.contains_key(&id) || pending.contains_key(&id)
                    }) {
                        self.stats.token_rejected += 1;
                        return;
                    }
                    joiner_keys = Some((c2s, s2c, grant.client_id));
                }
                Err(crate::crypto::TokenError::Expired) => {
                    self.stats.token_expired += 1;
                    return;
                }
                Err(_) => {
                    self.stats.token_rejected += 1;
                    return;
                }
            }
        }
        self.forwarded.insert(addr, nonce);
        let id = StationId(self.next_station_id);
        self.next_station_id += 1;
        let relay = (self.cfg.topology == Topology::ClientServer
            && process_type == ProcessType::Client)
            .then_some(contact);
        let info = StationInfo {
            id,
            process_type,
            token,
            addr,
            relay,
        };
        if topology != self.cfg.topology {
            self.deny_join(
                contact,
                nonce,
                addr,
                "the session uses a different topology".into(),
            );
            return;
        }
        if self.offline.contains(&contact) {
            self.deny_join(contact, nonce, addr, OFFLINE_REASON.into());
            return;
        }
        if self.cfg.topology == Topology::ClientServer
            && process_type == ProcessType::Client
            && self
                .members
                .get(&contact)
                .is_none_or(|m| m.info.process_type != ProcessType::Server)
        {
            self.deny_join(
                contact,
                nonce,
                addr,
                "clients must join through a server".into(),
            );
            return;
        }
        let stations = self.stations();
        let mut op = self.make_op(
            OperationDetail::JoinSession(JoinSessionOperation {
                joining: info.clone(),
                stations,
                state: ApprovalState::Unknown,
                reason: None,
            }),
            id,
            self.id,
            None,
        );
        op.origin_type = Some(process_type);
        let Some(op) = self.run_op(op, None, false, |st, op| {
            if let (Some(f), Some(j)) = (
                st.hooks.join_approval.as_mut(),
                op.downcast_mut::<JoinSessionOperation>(),
            ) {
                f(j);
            }
        }) else {
            self.deny_join(
                contact,
                nonce,
                addr,
                "rejected by the SafetyExecutive".into(),
            );
            return;
        };
        let Some(j) = op.downcast::<JoinSessionOperation>() else {
            return;
        };
        if let (Some(sec), Some((c2s, s2c, client))) = (self.sec.as_mut(), joiner_keys) {
            sec.remember_joiner(id, c2s, s2c, client);
        }
        match j.state {
            ApprovalState::Denied => {
                if let Some(sec) = self.sec.as_mut() {
                    sec.forget_joiner(id);
                }
                let reason = j
                    .reason
                    .clone()
                    .unwrap_or_else(|| "denied by the join approval callback".into());
                self.deny_join(contact, nonce, addr, reason);
            }
            ApprovalState::Pending => {
                self.pending_joins.insert(
                    id,
                    PendingJoin {
                        nonce,
                        info: info.clone(),
                        contact,
                    },
                );
                self.events.push_back(Event::JoinPending { station: info });
            }
            _ => self.admit(nonce, info, contact),
        }
    }

    /// Whether another join may be started: bounds the joins pending a
    /// decision and the requests forwarded but not yet answered.
    fn join_capacity(&mut self) -> bool {
        let max = self.cfg.limits.max_pending_joins.max(1);
        if self.forwarded.len() >= max {
            // Keep the entries of admitted stations (they filter retries);
            // forget unanswered ones (their retries are forwarded again).
            let addrs = &self.addrs;
            self.forwarded.retain(|a, _| addrs.contains_key(a));
            if self.forwarded.len() > max.saturating_mul(64) {
                self.forwarded.clear();
            }
        }
        let unanswered = self
            .forwarded
            .keys()
            .filter(|a| !self.addrs.contains_key(a))
            .count();
        if self.pending_joins.len() >= max || unanswered >= max {
            self.stats.pending_joins_limited += 1;
            self.limit_state
                .hit(crate::limits::Limit::PendingJoins, self.id);
            return false;
        }
        true
    }

    /// Decides a join whose approval was postponed (`PostponeDecision`).
    pub fn decide_join(
        &mut self,
        now: Instant,
        station: StationId,
        approve: bool,
    ) -> Result<(), StationError> {
        self.advance(now);
        let p = self
            .pending_joins
            .remove(&station)
            .ok_or(StationError::NoPendingJoin(station))?;
        if approve {
            self.admit(p.nonce, p.info, p.contact);
        } else {
            if let Some(sec) = self.sec.as_mut() {
                sec.forget_joiner(station);
            }
            self.deny_join(
                p.contact,
                p.nonce,
                p.info.addr,
                "denied by the join approval callback".into(),
            );
        }
        self.drain_local();
        Ok(())
    }

    fn deny_join(&mut self, contact: StationId, nonce: u64, addr: SocketAddr, reason: String) {
        debug!(station = %self.id, %addr, %reason, "join denied");
        self.forwarded.remove(&addr);
        if contact == self.id {
            self.send_connectionless(addr, &Msg::JoinDenied { nonce, reason });
        } else {
            self.send(
                contact,
                SYSTEM_STREAM,
                Msg::JoinDenyForward {
                    nonce,
                    addr,
                    reason,
                },
            );
        }
    }

    fn direct_link_to(&self, info: &StationInfo) -> bool {
        if info.id == self.id {
            return false;
        }
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => match (self.cfg.process_type, info.process_type) {
                (ProcessType::Client, _) => info.id == self.relay,
                (_, ProcessType::Client) => info.relay == Some(self.id),
                _ => true,
            },
        }
    }

    fn add_member(&mut self, info: StationInfo, link: Option<Link>) {
        let link = if self.direct_link_to(&info) {
            Some(link.unwrap_or_else(|| Link::new(self.tcfg.clone(), self.now)))
        } else {
            None
        };
        self.addrs.insert(info.addr, info.id);
        self.gone.remove(&info.id);
        self.members.insert(
            info.id,
            Member {
                info,
                link,
                silent: false,
                heard: false,
            },
        );
    }

    /// Admits an approved station (JoinStation, 14.3.1.9).
    fn admit(&mut self, nonce: u64, info: StationInfo, contact: StationId) {
        debug!(station = %self.id, joiner = %info.id, "admitting");
        let _ = contact;
        self.send_link_keys(&info);
        self.add_member(info.clone(), None);
        let members = self.stations();
        let accepted = Msg::JoinAccepted {
            nonce,
            id: info.id,
            session_master: self.id,
            session: self.session_tag,
            members,
        };
        self.broadcast(&Msg::StationJoined(info.clone()), &[info.id]);
        self.send(info.id, SYSTEM_STREAM, accepted);
        // The station object is published here, then migrates to the joiner.
        let h = self.publish_station_object(&info);
        let op = self.make_op(
            OperationDetail::JoinStation(JoinStationOperation {
                station: info.clone(),
            }),
            self.id,
            info.id,
            None,
        );
        let joiner = info.id;
        self.run_op(op, None, false, |st, _| {
            st.discover_all_for(joiner);
            if let Some(h) = h {
                let _ = st.migrate_inner(h, joiner);
            }
        });
        self.events.push_back(Event::StationJoined(info));
    }

    /// With security on, at the session master: installs our keys for the
    /// joiner and sends every member that may link to it the keys of that
    /// link (before `StationJoined`, on the same ordered stream).
    fn send_link_keys(&mut self, info: &StationInfo) {
        let Some(sec) = self.sec.as_mut() else {
            return;
        };
        if let Some((send, recv)) = sec.link_keys_for(info.id, self.id) {
            sec.install(info.id, &send, &recv);
        }
        let client_server = self.cfg.topology == Topology::ClientServer;
        let mut out = Vec::new();
        for (id, m) in &self.members {
            if *id == self.id || *id == info.id {
                continue;
            }
            if client_server
                && m.info.process_type == ProcessType::Client
                && info.process_type == ProcessType::Client
            {
                continue;
            }
            if let Some((send, recv)) = sec.link_keys_for(info.id, *id) {
                out.push((*id, send, recv));
            }
        }
        for (id, send, recv) in out {
            self.send(
                id,
                SYSTEM_STREAM,
                Msg::LinkKeys {
                    station: info.id,
                    send,
                    recv,
                },
            );
        }
    }

    fn on_join_accepted(&mut self, from: SocketAddr, sender: u32, substream: u8, env: Envelope) {
        let (seq, origin) = (env.seq, env.origin);
        let Msg::JoinAccepted {
            nonce: n,
            id,
            session_master,
            session,
            members,
        } = env.msg
        else {
            return;
        };
        let State::Joining {
            nonce,
            provisional,
            early,
            ..
        } = std::mem::replace(&mut self.state, State::InSession)
        else {
            return;
        };
        if n != nonce {
            self.stats.bad_messages += 1;
        }
        self.id = id;
        self.session_master = session_master;
        self.session_tag = session;
        // In a client-server session a client's relay is the station it reached.
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
        {
            self.relay = StationId(sender);
        }
        let mut provisional = provisional;
        if let Some(sec) = self.sec.as_mut() {
            sec.set_joining(false);
            for info in &members {
                if info.id != id {
                    sec.derive_own(info.id);
                }
            }
        }
        for info in members {
            if info.id == id {
                self.members.insert(
                    id,
                    Member {
                        info,
                        link: None,
                        silent: false,
                        heard: false,
                    },
                );
                continue;
            }
            let link = provisional.remove(&info.addr).map(|(_, l)| l);
            self.add_member(info, link);
        }
        let _ = from;
        debug!(station = %self.id, master = %session_master, "joined");
        self.events.push_back(Event::Joined { id, session_master });
        for h in self.registry.well_known_handles() {
            self.add_well_known(h, false);
        }
        // The acceptance came first in its sender's order.
        if seq != 0 {
            self.seq_in
                .insert((origin, substream), InOrder::expecting(seq + 1));
        }
        for (addr, substream, env) in early {
            if let Some(&sid) = self.addrs.get(&addr) {
                self.route(sid, false, substream, env);
            }
        }
    }

    /// Leaves the session gracefully: masters are handed to the session
    /// master's fault recovery, and the station closes once that is done.
    pub fn leave(&mut self, now: Instant) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        self.update_all(now);
        self.broadcast(&Msg::Leaving, &[]);
        self.state = State::Leaving {
            deadline: now + self.cfg.failure_timeout,
        };
        Ok(())
    }

    fn close(&mut self, reason: &str) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let handles = self.objects();
        for h in handles {
            self.remove_from_store(h, self.id, RemoveReason::SessionLeft, false);
        }
        let calls: Vec<u64> = self.calls.keys().copied().collect();
        for c in calls {
            if let Some(p) = self.calls.remove(&c) {
                self.complete_call(&p, Outcome::StationUnreachable, None);
            }
        }
        self.call_deadlines.clear();
        self.migration = None;
        self.handovers.clear();
        self.scale_in = None;
        self.state = State::Closed;
        self.events.push_back(Event::Disconnected {
            reason: reason.into(),
        });
    }

    fn peer_silent(&mut self, id: StationId) {
        debug!(station = %self.id, peer = %id, "peer silent");
        if !self.is_in_session() || id == self.id {
            return;
        }
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && id == self.relay
        {
            self.close("lost the connection to the server");
            return;
        }
        if id == self.session_master {
            self.master_lost(id);
        } else if self.is_session_master() {
            self.declare_gone(id, true);
        } else if self
            .members
            .get(&id)
            .is_some_and(|m| m.info.relay == Some(self.id))
        {
            let master = self.session_master;
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
        }
    }

    fn eligible_master(&self, info: &StationInfo) -> bool {
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => info.process_type == ProcessType::Server,
        }
    }

    /// The session master is gone: the lowest surviving eligible id takes over.
    fn master_lost(&mut self, old: StationId) {
        self.gone.insert(old);
        let candidate = self
            .members
            .values()
            .filter(|m| {
                !(self.gone.contains(&m.info.id) || (m.silent && m.info.id != self.id))
                    && self.eligible_master(&m.info)
            })
            .map(|m| m.info.id)
            .min();
        debug!(station = %self.id, old = %old, ?candidate, "session master lost");
        if candidate == Some(self.id) {
            self.become_session_master();
        } else if let Some(c) = candidate {
            if self.session_master != c {
                self.session_master = c;
                self.events
                    .push_back(Event::SessionMasterChanged { new_master: c });
            }
        }
    }

    fn become_session_master(&mut self) {
        self.session_master = self.id;
        self.next_station_id = self
            .next_station_id
            .max(self.members.keys().map(|i| i.0 + 1).max().unwrap_or(2));
        let failed: Vec<StationId> = self
            .gone
            .iter()
            .copied()
            .filter(|g| self.members.contains_key(g))
            .collect();
        let silent: Vec<StationId> = self
            .members
            .iter()
            .filter(|(i, m)| m.silent && **i != self.id)
            .map(|(i, _)| *i)
            .collect();
        self.broadcast(
            &Msg::NewSessionMaster {
                failed: failed.clone(),
            },
            &failed,
        );
        self.events.push_back(Event::SessionMasterChanged {
            new_master: self.id,
        });
        for f in failed.into_iter().chain(silent) {
            if self.members.contains_key(&f) {
                self.declare_gone(f, true);
            }
        }
    }

    /// Session master only: station `id` is out (failed or left).
    fn declare_gone(&mut self, id: StationId, failed: bool) {
        if !self.members.contains_key(&id) || id == self.id {
            return;
        }
        debug!(station = %self.id, gone = %id, failed, "declaring station gone");
        self.gone.insert(id);
        // Clients relayed by a gone server are unreachable too.
        let orphans: Vec<StationId> = self
            .members
            .values()
            .filter(|m| m.info.relay == Some(id))
            .map(|m| m.info.id)
            .collect();
        // The station object first (14.3.1.10), then the station, then its objects.
        let mastered: Vec<DOHandle> = {
            let mut v: Vec<_> = self
                .store
                .iter()
                .filter(|(_, e)| e.master == id)
                .map(|(h, _)| *h)
                .collect();
            v.sort_by_key(|h| (h.class_id() != ClassId::STATION, *h));
            v
        };
        let (station_objs, others): (Vec<_>, Vec<_>) = mastered
            .into_iter()
            .partition(|h| h.class_id() == ClassId::STATION);
        for h in station_objs {
            self.fault_recover(h, id);
        }
        // A station that left gracefully is told too (its link lingers to flush).
        let except: &[StationId] = if failed { &[id] } else { &[] };
        self.broadcast(&Msg::StationGone { id, failed }, except);
        self.station_gone(id, failed);
        for h in others {
            self.fault_recover(h, id);
        }
        self.broadcast(&Msg::RecoveryDone { id }, &[]);
        for o in orphans {
            self.declare_gone(o, true);
        }
    }

    /// Every station: `id` leaves the session (LeaveStation, 14.3.1.10).
    fn station_gone(&mut self, id: StationId, failed: bool) {
        if !self.members.contains_key(&id) {
            return;
        }
        self.gone.insert(id);
        let op = self.make_op(
            OperationDetail::LeaveStation(LeaveStationOperation {
                station: id,
                failed,
            }),
            id,
            id,
            None,
        );
        let mut resend = Vec::new();
        self.run_op(op, None, false, |st, _| {
            if let Some(m) = st.members.remove(&id) {
                if st.addrs.get(&m.info.addr) == Some(&id) {
                    st.addrs.remove(&m.info.addr);
                }
                st.forwarded.remove(&m.info.addr);
                st.seq_out.retain(|(dest, _), _| *dest != id);
                st.seq_in.retain(|(origin, _), _| *origin != id);
                if let Some(link) = &m.link {
                    resend = link.unacked_messages();
                }
                if let (false, Some(link)) = (failed, m.link) {
                    let until = st.now + st.cfg.failure_timeout;
                    st.closing.push(Closing {
                        id,
                        addr: m.info.addr,
                        link,
                        until,
                        deliver: false,
                        client: m.info.process_type == ProcessType::Client,
                    });
                }
            }
            let calls: Vec<u64> = st
                .calls
                .iter()
                .filter(|(_, c)| c.target == id)
                .map(|(k, _)| *k)
                .collect();
            for c in calls {
                if let Some(p) = st.calls.remove(&c) {
                    st.call_deadlines.remove(&(p.deadline, c));
                    st.complete_call(&p, Outcome::StationUnreachable, None);
                }
            }
            let masters: Vec<DOHandle> = st
                .store
                .iter()
                .filter(|(_, e)| e.master == st.id && e.dup_set.contains(&id))
                .map(|(h, _)| *h)
                .collect();
            for h in masters {
                st.change_dup_set(h, id, false, id);
            }
        });
        // What it was to pass on to clients and may not have: another way
        // (numbered, so the clients drop what did arrive).
        for (substream, bytes) in resend {
            match Envelope::decode(&bytes) {
                Some(env)
                    if env.seq != 0 && env.dest != id && self.members.contains_key(&env.dest) =>
                {
                    self.send_envelope(substream, env);
                }
                _ => {}
            }
        }
        self.offline.remove(&id);
        self.handovers.remove(&id);
        self.room_member_gone(id);
        self.events.push_back(if failed {
            Event::StationFailed(id)
        } else {
            Event::StationLeft(id)
        });
    }

    // ------------------------------------------------------------ the pipeline

    fn make_op(
        &self,
        detail: OperationDetail,
        origin: StationId,
        target: StationId,
        handle: Option<DOHandle>,
    ) -> Operation {
        let mut op = Operation::new(detail, origin, target, self.id);
        op.origin_type = self.process_type_of(origin);
        op.target_type = self.process_type_of(target);
        if let Some(h) = handle {
            op.handle = Some(h);
            if let Some(c) = self.registry.entry(h.class_id()) {
                op.class_name = Some(c.name);
                op.class_type = Some(c.type_id);
            }
        }
        op
    }

    /// Runs one operation through the pipeline; `None` when it was rejected.
    fn run_op(
        &mut self,
        mut op: Operation,
        cell: Option<Arc<dyn ErasedCell>>,
        datasets: bool,
        body: impl FnOnce(&mut Station, &mut Operation),
    ) -> Option<Operation> {
        if !self.hooks.is_trusted(op.origin, self.id) && !self.hooks.check(&op) {
            debug!(station = %self.id, op = op.class_name(), origin = %op.origin, "operation rejected");
            self.hooks.rejected(&op);
            self.stats.operations_rejected += 1;
            self.events.push_back(Event::OperationRejected {
                kind: op.class_name(),
                origin: op.origin,
            });
            return None;
        }
        self.hooks.trace(&op);
        self.hooks.run_callbacks(&mut op, true);
        object_hooks(cell.as_ref(), datasets, &op, true);
        body(self, &mut op);
        object_hooks(cell.as_ref(), datasets, &op, false);
        self.hooks.run_callbacks(&mut op, false);
        Some(op)
    }

    // ------------------------------------------------------------------- store

    /// Publishes `object` as a master (AddToStore, 14.3.1.1) and duplicates it
    /// to every station of the session.
    pub fn publish<T: DoClass>(&mut self, now: Instant, object: T) -> Result<Ref<T>, StationError> {
        self.advance(now);
        if !self.is_in_session() {
            return Err(StationError::NotInSession);
        }
        let class = self
            .registry
            .class_id::<T>()
            .ok_or(StationError::UnknownClass(T::CLASS_NAME))?;
        let handle = DOHandle::new(class, self.id, self.next_serial);
        // The SafetyExecutive is consulted before the object exists.
        let probe = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: true }),
            self.id,
            self.id,
            Some(handle),
        );
        if !self.hooks.is_trusted(self.id, self.id) && !self.hooks.check(&probe) {
            self.hooks.rejected(&probe);
            self.stats.operations_rejected += 1;
            return Err(StationError::Rejected);
        }
        self.next_serial += 1;
        let cell = new_cell(object, handle, self.id, self.id);
        self.add_master(handle, cell.clone(), true);
        self.discover_all(handle);
        self.drain_local();
        Ref::from_erased(cell).ok_or(StationError::NoSuchObject(handle))
    }

    fn add_master(&mut self, handle: DOHandle, cell: Arc<dyn ErasedCell>, checked: bool) {
        let op = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: true }),
            self.id,
            self.id,
            Some(handle),
        );
        let type_id = self
            .registry
            .entry(handle.class_id())
            .map(|c| c.type_id)
            .unwrap_or(TypeId::of::<()>());
        let trust = self.hooks.trust_local;
        if checked {
            // Checked by the caller already.
            self.hooks.trust_local = true;
        }
        let c2 = cell.clone();
        self.run_op(op, Some(cell.clone()), true, |st, _| {
            c2.with_dyn(&mut |o| {
                for i in 0..o.ds_count() {
                    if let Some(d) = o.ds_mut(i) {
                        let r = d.declared_revision();
                        d.set_received_revision(r);
                    }
                }
                o.init();
            });
            let snapshot = c2.snapshot_fields();
            c2.meta().in_store.store(true, Ordering::Release);
            st.store.insert(
                handle,
                Entry {
                    cell: c2.clone(),
                    master: st.id,
                    dup_set: BTreeSet::new(),
                    snapshot,
                    type_id,
                },
            );
        });
        self.hooks.trust_local = trust;
        self.events.push_back(Event::ObjectAdded {
            handle,
            master: true,
        });
    }

    fn add_well_known(&mut self, h: DOHandle, master: bool) {
        let Some(entry) = self.registry.entry(h.class_id()) else {
            return;
        };
        let m = if master { self.id } else { self.session_master };
        let cell = (entry.factory)(h, self.id, m);
        if master {
            self.add_master(h, cell, true);
        } else if !self.store.contains_key(&h) {
            self.add_duplica(h, m, cell, None, m);
        }
    }

    fn publish_station_object(&mut self, info: &StationInfo) -> Option<DOHandle> {
        let handle = DOHandle::new(ClassId::STATION, self.id, self.next_serial);
        self.next_serial += 1;
        let obj = StationObject {
            data: StationData::new(info),
        };
        let cell = new_cell(obj, handle, self.id, self.id);
        self.add_master(handle, cell, true);
        self.discover_all(handle);
        Some(handle)
    }

    /// Sends master `handle` to every station that lacks it (ChangeDupSet).
    fn discover_all(&mut self, handle: DOHandle) {
        let ids: Vec<StationId> = self
            .members
            .keys()
            .copied()
            .filter(|i| *i != self.id)
            .collect();
        for id in ids {
            self.change_dup_set(handle, id, true, self.id);
        }
    }

    /// Sends every local master to a new station.
    fn discover_all_for(&mut self, station: StationId) {
        for h in self.masters() {
            if self
                .store
                .get(&h)
                .is_some_and(|e| !e.dup_set.contains(&station))
            {
                self.change_dup_set(h, station, true, self.id);
            }
        }
    }

    /// ChangeDupSet on a master (14.3.1.3).
    fn change_dup_set(
        &mut self,
        handle: DOHandle,
        station: StationId,
        addition: bool,
        origin: StationId,
    ) {
        let Some(e) = self.store.get(&handle) else {
            return;
        };
        if e.master != self.id || station == self.id || e.dup_set.contains(&station) == addition {
            return;
        }
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::ChangeDupSet(ChangeDupSetOperation { addition, station }),
            origin,
            station,
            Some(handle),
        );
        self.run_op(op, Some(cell.clone()), true, |st, _| {
            if addition {
                let data = encode_datasets(&cell, None);
                st.send(
                    station,
                    SYSTEM_STREAM,
                    Msg::Create {
                        handle,
                        master: st.id,
                        data: Bytes(data),
                    },
                );
                if let Some(e) = st.store.get_mut(&handle) {
                    e.dup_set.insert(station);
                }
            } else if let Some(e) = st.store.get_mut(&handle) {
                e.dup_set.remove(&station);
            }
        });
    }

    fn add_duplica(
        &mut self,
        handle: DOHandle,
        master: StationId,
        cell: Arc<dyn ErasedCell>,
        data: Option<&[u8]>,
        origin: StationId,
    ) {
        let op = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: false }),
            origin,
            self.id,
            Some(handle),
        );
        let type_id = self
            .registry
            .entry(handle.class_id())
            .map(|c| c.type_id)
            .unwrap_or(TypeId::of::<()>());
        let c2 = cell.clone();
        let mut bad = false;
        let done = self.run_op(op, Some(cell), true, |st, _| {
            if let Some(data) = data {
                bad = apply_datasets(&c2, data).is_none();
            }
            c2.with_dyn(&mut |o| o.init());
            c2.meta().in_store.store(true, Ordering::Release);
            st.store.insert(
                handle,
                Entry {
                    cell: c2.clone(),
                    master,
                    dup_set: BTreeSet::new(),
                    snapshot: Vec::new(),
                    type_id,
                },
            );
        });
        if bad {
            self.stats.bad_messages += 1;
        }
        if done.is_some() {
            self.events.push_back(Event::ObjectAdded {
                handle,
                master: false,
            });
        }
    }

    /// RemoveFromStore (14.3.1.2). `notify`: a master tells its duplicas.
    fn remove_from_store(
        &mut self,
        handle: DOHandle,
        origin: StationId,
        reason: RemoveReason,
        notify: bool,
    ) -> bool {
        let Some(e) = self.store.get(&handle) else {
            return false;
        };
        let cell = e.cell.clone();
        let was_master = e.master == self.id;
        let op = self.make_op(
            OperationDetail::RemoveFromStore(RemoveFromStoreOperation { was_master, reason }),
            origin,
            self.id,
            Some(handle),
        );
        let done = self.run_op(op, Some(cell.clone()), true, |st, _| {
            if let Some(e) = st.store.remove(&handle) {
                if notify {
                    let targets: Vec<StationId> = if was_master {
                        e.dup_set.iter().copied().collect()
                    } else {
                        Vec::new()
                    };
                    for t in targets {
                        st.send(t, SYSTEM_STREAM, Msg::Delete { handle });
                    }
                }
                cell.meta().in_store.store(false, Ordering::Release);
            }
        });
        if done.is_some() {
            self.events.push_back(Event::ObjectRemoved(handle));
        }
        done.is_some()
    }

    /// NetZ `DeleteMainRef`: deletes a master and its duplicas.
    pub fn delete_main_ref(&mut self, now: Instant, handle: DOHandle) -> Result<(), StationError> {
        self.advance(now);
        let e = self
            .store
            .get(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != self.id {
            return Err(StationError::NotMaster(handle));
        }
        if self.system_lock > 0 {
            return Err(StationError::SystemLocked);
        }
        let ok = self.remove_from_store(handle, self.id, RemoveReason::Deleted, true);
        self.drain_local();
        if ok {
            Ok(())
        } else {
            Err(StationError::Rejected)
        }
    }

    /// Migrates master `handle` to `to` (ChangeMasterStation, 14.3.1.4).
    pub fn migrate(
        &mut self,
        now: Instant,
        handle: DOHandle,
        to: StationId,
    ) -> Result<(), StationError> {
        self.advance(now);
        if self.system_lock > 0 {
            return Err(StationError::SystemLocked);
        }
        let r = self.migrate_inner(handle, to);
        self.drain_local();
        r
    }

    fn migrate_inner(&mut self, handle: DOHandle, to: StationId) -> Result<(), StationError> {
        let e = self
            .store
            .get(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != self.id {
            return Err(StationError::NotMaster(handle));
        }
        if to == self.id {
            return Ok(());
        }
        if !self.members.contains_key(&to) {
            return Err(StationError::NoSuchStation(to));
        }
        if !e.dup_set.contains(&to) {
            self.change_dup_set(handle, to, true, self.id);
        }
        let Some(e) = self.store.get(&handle) else {
            return Err(StationError::NoSuchObject(handle));
        };
        let mut dup_set: Vec<StationId> = e.dup_set.iter().copied().filter(|s| *s != to).collect();
        dup_set.push(self.id);
        let data = encode_datasets(&e.cell, None);
        if self.change_master(handle, to, self.id) {
            self.send(
                to,
                SYSTEM_STREAM,
                Msg::Migrate {
                    handle,
                    data: Bytes(data),
                    dup_set,
                },
            );
            Ok(())
        } else {
            Err(StationError::Rejected)
        }
    }

    /// ChangeMasterStation on the local copy; returns whether it ran.
    fn change_master(
        &mut self,
        handle: DOHandle,
        new_master: StationId,
        origin: StationId,
    ) -> bool {
        let Some(e) = self.store.get(&handle) else {
            return false;
        };
        let old_master = e.master;
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::ChangeMasterStation(ChangeMasterStationOperation {
                old_master,
                new_master,
            }),
            origin,
            new_master,
            Some(handle),
        );
        let done = self.run_op(op, Some(cell.clone()), true, |st, _| {
            cell.meta().master.store(new_master.0, Ordering::Release);
            if let Some(e) = st.store.get_mut(&handle) {
                e.master = new_master;
                if new_master == st.id {
                    e.snapshot = cell.snapshot_fields();
                    cell.with_dyn(&mut |o| {
                        for i in 0..o.ds_count() {
                            if let Some(d) = o.ds_mut(i) {
                                let r = d.declared_revision();
                                d.set_received_revision(r);
                            }
                        }
                    });
                } else {
                    e.dup_set.clear();
                    e.snapshot = Vec::new();
                }
            }
        });
        if done.is_some() {
            self.events.push_back(Event::MasterChanged {
                handle,
                master: new_master,
            });
        }
        done.is_some()
    }

    /// FaultRecovery (14.3.1.5) of one object on the session master.
    fn fault_recover(&mut self, handle: DOHandle, failed: StationId) {
        if self.system_lock > 0 {
            self.deferred.push(Deferred::Recover(handle, failed));
            return;
        }
        let Some(e) = self.store.get(&handle) else {
            return;
        };
        if e.master != failed {
            return;
        }
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::FaultRecovery(FaultRecoveryOperation {
                failed_station: failed,
                approved: None,
            }),
            self.id,
            self.id,
            Some(handle),
        );
        let well_known = handle.is_well_known();
        let c2 = cell.clone();
        let done = self.run_op(op, Some(cell), false, |st, op| {
            let mut approved = false;
            c2.with_dyn(&mut |o| approved = o.approve());
            let approved = approved || well_known;
            if let Some(fr) = op.downcast_mut::<FaultRecoveryOperation>() {
                fr.approved = Some(approved);
            }
            if approved {
                if st.change_master(handle, st.id, st.id) {
                    // Re-discover: every station gets the new master's state.
                    st.discover_all(handle);
                }
            } else {
                st.remove_from_store(handle, st.id, RemoveReason::FaultRecovery, false);
                st.broadcast(&Msg::Delete { handle }, &[failed]);
            }
        });
        if done.is_none() {
            // Rejected: nobody may keep an object without a master.
            self.remove_from_store(handle, self.id, RemoveReason::FaultRecovery, false);
            self.broadcast(&Msg::Delete { handle }, &[failed]);
        }
    }

    // ---------------------------------------------------------------- datasets

    /// Sends the changed fields of master `handle` to its duplicas
    /// (UpdateDataSet on each duplica). Returns whether anything changed.
    pub fn update(&mut self, now: Instant, handle: DOHandle) -> Result<bool, StationError> {
        self.advance(now);
        let id = self.id;
        let e = self
            .store
            .get_mut(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != id {
            return Err(StationError::NotMaster(handle));
        }
        let Some(delta) = encode_delta(&e.cell, &mut e.snapshot) else {
            return Ok(false);
        };
        let targets: Vec<StationId> = e.dup_set.iter().copied().collect();
        self.stats.updates_sent += targets.len() as u64;
        self.multicast(
            &targets,
            SYSTEM_STREAM,
            Msg::Update {
                handle,
                data: Bytes(delta),
            },
        );
        Ok(true)
    }

    /// [`Station::update`] for every local master; returns how many changed.
    /// The changes of many objects for one station travel together, in
    /// messages of about a datagram each.
    pub fn update_all(&mut self, now: Instant) -> usize {
        self.advance(now);
        let id = self.id;
        let mut changed = 0;
        let mut per_station: BTreeMap<StationId, Vec<(DOHandle, Bytes)>> = BTreeMap::new();
        for handle in self.masters() {
            let Some(e) = self.store.get_mut(&handle) else {
                continue;
            };
            if e.master != id {
                continue;
            }
            let Some(delta) = encode_delta(&e.cell, &mut e.snapshot) else {
                continue;
            };
            changed += 1;
            for t in e.dup_set.iter() {
                per_station
                    .entry(*t)
                    .or_default()
                    .push((handle, Bytes(delta.clone())));
            }
        }
        let budget = self.tcfg.max_datagram_size.saturating_sub(100).max(256);
        for (t, items) in per_station {
            self.stats.updates_sent += items.len() as u64;
            let mut batch = Vec::new();
            let mut size = 0;
            for (handle, data) in items {
                let len = data.0.len() + 8;
                if !batch.is_empty() && size + len > budget {
                    self.send_updates(t, std::mem::take(&mut batch));
                    size = 0;
                }
                size += len;
                batch.push((handle, data));
            }
            self.send_updates(t, batch);
        }
        changed
    }

    fn send_updates(&mut self, to: StationId, mut items: Vec<(DOHandle, Bytes)>) {
        let msg = match items.len() {
            0 => return,
            1 => {
                let Some((handle, data)) = items.pop() else {
                    return;
                };
                Msg::Update { handle, data }
            }
            _ => Msg::Updates { items },
        };
        self.send(to, SYSTEM_STREAM, msg);
    }

    // -------------------------------------------------------------- messages

    fn handle_msg(&mut self, origin: StationId, msg: Msg) {
        trace!(station = %self.id, from = %origin, msg = msg.name(), "recv");
        if self.system_lock > 0 && self.needs_unlocked(&msg) {
            self.deferred.push(Deferred::Msg(origin, msg));
            return;
        }
        match msg {
            Msg::JoinRequest { .. } | Msg::JoinDenied { .. } | Msg::JoinAccepted { .. } => {
                self.stats.bad_messages += 1
            }
            Msg::JoinForward {
                nonce,
                addr,
                process_type,
                token,
                topology,
                connect,
            } => {
                if self.is_session_master() {
                    self.on_join_request(
                        origin,
                        nonce,
                        addr,
                        process_type,
                        token,
                        topology,
                        connect.0,
                    );
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::JoinDenyForward {
                nonce,
                addr,
                reason,
            } => {
                self.forwarded.remove(&addr);
                self.send_connectionless(addr, &Msg::JoinDenied { nonce, reason });
            }
            Msg::LinkKeys {
                station,
                send,
                recv,
            } => match self.sec.as_mut() {
                Some(sec) if origin == self.session_master && station != self.id => {
                    sec.install(station, &send, &recv);
                }
                _ => self.stats.bad_messages += 1,
            },
            Msg::StationJoined(info) => {
                if origin != self.session_master || info.id == self.id {
                    self.stats.bad_messages += 1;
                    return;
                }
                let op = self.make_op(
                    OperationDetail::JoinStation(JoinStationOperation {
                        station: info.clone(),
                    }),
                    origin,
                    info.id,
                    None,
                );
                let id = info.id;
                let i2 = info.clone();
                self.run_op(op, None, false, |st, _| {
                    st.add_member(i2, None);
                    st.discover_all_for(id);
                });
                self.events.push_back(Event::StationJoined(info));
                let mine =
                    |e: &(Instant, StationId, u8, Envelope)| e.3.origin == id || e.3.dest == id;
                if self.early_relayed.iter().any(mine) {
                    let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early_relayed)
                        .into_iter()
                        .partition(mine);
                    self.early_relayed = later;
                    for (_, hop, substream, env) in now {
                        let hop_is_client = self.process_type_of(hop) == Some(ProcessType::Client);
                        self.route(hop, hop_is_client, substream, env);
                    }
                }
            }
            Msg::Leaving => {
                if origin == self.session_master {
                    if let Some(m) = self.members.get_mut(&origin) {
                        m.silent = true;
                    }
                    self.master_lost(origin);
                    if self.is_session_master() {
                        self.declare_gone(origin, false);
                    }
                } else if self.is_session_master() {
                    self.declare_gone(origin, false);
                }
            }
            Msg::StationGone { id, failed } => {
                if origin != self.session_master {
                    self.stats.bad_messages += 1;
                    return;
                }
                if id == self.id {
                    self.close(if failed {
                        "declared failed by the session master"
                    } else {
                        "left the session"
                    });
                } else {
                    self.station_gone(id, failed);
                }
            }
            Msg::RecoveryDone { id } => {
                if origin != self.session_master {
                    return;
                }
                // Objects nobody recovered have no master any more.
                let orphans: Vec<DOHandle> = self
                    .store
                    .iter()
                    .filter(|(_, e)| e.master == id)
                    .map(|(h, _)| *h)
                    .collect();
                for h in orphans {
                    self.remove_from_store(h, origin, RemoveReason::FaultRecovery, false);
                }
            }
            Msg::ReportFailure { id } => {
                if self.is_session_master()
                    && self
                        .members
                        .get(&id)
                        .is_some_and(|m| m.info.relay == Some(origin))
                {
                    self.declare_gone(id, true);
                }
            }
            Msg::NewSessionMaster { failed } => {
                if !self.members.contains_key(&origin) {
                    return;
                }
                if self.is_session_master() && origin > self.id {
                    // Two takeovers: the lower id wins; tell the other.
                    self.broadcast(
                        &Msg::NewSessionMaster {
                            failed: failed.clone(),
                        },
                        &[],
                    );
                    return;
                }
                for f in &failed {
                    self.gone.insert(*f);
                }
                if self.session_master != origin {
                    self.session_master = origin;
                    self.events
                        .push_back(Event::SessionMasterChanged { new_master: origin });
                }
            }
            Msg::Create {
                handle,
                master,
                data,
            } => self.on_create(origin, handle, master, &data.0),
            Msg::Delete { handle } => {
                let Some(e) = self.store.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if e.master == self.id || (origin != e.master && origin != self.session_master) {
                    self.stats.bad_messages += 1;
                    return;
                }
                self.remove_from_store(handle, origin, RemoveReason::Deleted, false);
            }
            Msg::DuplicaRemoved { handle } => self.change_dup_set(handle, origin, false, origin),
            Msg::Update { handle, data } => self.on_update(origin, handle, &data.0),
            Msg::Updates { items } => {
                for (handle, data) in items {
                    self.on_update(origin, handle, &data.0);
                }
            }
            Msg::MasterChanged { handle, master } => {
                let Some(e) = self.store.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if origin != master || e.master == master {
                    return;
                }
                self.change_master(handle, master, origin);
            }
            Msg::Migrate {
                handle,
                data,
                dup_set,
            } => {
                if !self.store.contains_key(&handle) {
                    self.stats.unknown_object += 1;
                    return;
                }
                if let Some(e) = self.store.get(&handle) {
                    apply_datasets(&e.cell, &data.0);
                }
                if self.change_master(handle, self.id, origin) {
                    let set: BTreeSet<StationId> = dup_set
                        .into_iter()
                        .filter(|s| *s != self.id && self.members.contains_key(s))
                        .collect();
                    if let Some(e) = self.store.get_mut(&handle) {
                        e.dup_set = set.clone();
                    }
                    for s in set {
                        self.send(
                            s,
                            SYSTEM_STREAM,
                            Msg::MasterChanged {
                                handle,
                                master: self.id,
                            },
                        );
                    }
                    let me = self.id;
                    self.discover_all_for_handle(handle, me);
                }
            }
            Msg::Rmc {
                call,
                handle,
                method,
                flags,
                args,
                reply,
                substream,
            } => {
                self.on_rmc(
                    origin, call, handle, method, flags, args.0, reply, substream,
                );
            }
            Msg::RmcReply {
                call,
                outcome,
                result,
                master_hint,
            } => self.on_rmc_reply(call, Outcome::from_wire(outcome), result.0, master_hint),
            Msg::Action {
                handle,
                method,
                args,
                forward,
            } => {
                let Some(e) = self.store.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if forward && e.master != self.id {
                    // The master moved: pass it on.
                    let m = e.master;
                    self.send(
                        m,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method,
                            args,
                            forward,
                        },
                    );
                    return;
                }
                let op = self.make_call_op(origin, handle, method, true);
                self.execute_call(op, 0, false, handle, args.0, SYSTEM_STREAM, forward);
            }
            Msg::Offline { drain_ms } => self.on_offline(origin, drain_ms),
            Msg::MigrateRequest => self.on_migrate_request(origin),
            Msg::MigrateRefused { reason } => self.on_migrate_refused(origin, reason),
            Msg::Handover { station } => self.on_handover(origin, station),
            Msg::HandoverAck { station, accepted } => {
                self.on_handover_ack(origin, station, accepted)
            }
            Msg::MigrateGo { to } => self.on_migrate_go(origin, to),
            Msg::Reconnect => {
                if self.members.get(&origin).and_then(|m| m.info.relay) == Some(self.id) {
                    self.send_now(origin, Msg::Welcome);
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::Welcome => self.on_welcome(origin),
            Msg::Reattach { station, relay } => self.on_reattach(origin, station, relay),
            Msg::Kick { reason } => {
                if self.cfg.process_type == ProcessType::Client && origin == self.relay {
                    self.close(&reason);
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::RoomRequest {
                request,
                by,
                room,
                op,
            } => self.on_room_request(origin, request, by, room, op),
            Msg::RoomReply {
                request,
                room,
                code,
                message,
                room_id,
            } => {
                let result = if code == 0 {
                    Ok(room_id)
                } else {
                    Err(RoomError::new(code, message))
                };
                self.events.push_back(Event::RoomResult {
                    request,
                    room,
                    result,
                });
            }
            Msg::RoomAdopt { room, epoch } => self.on_room_adopt(origin, room, epoch),
            Msg::RoomMigrateStart { room, epoch } => {
                let started = self.room_started.entry(room).or_insert(0);
                if epoch > *started {
                    *started = epoch;
                    self.events.push_back(Event::RoomMigrateStart { room });
                }
            }
            Msg::RoomMigrateComplete {
                room,
                epoch,
                success,
                room_id,
                code,
                message,
            } => {
                if success {
                    if self.room_completed.get(&room).is_some_and(|e| *e >= epoch) {
                        return;
                    }
                    self.room_completed.insert(room, epoch);
                    // The start may have taken a slower path: report it first.
                    let started = self.room_started.entry(room).or_insert(0);
                    if *started < epoch {
                        *started = epoch;
                        self.events.push_back(Event::RoomMigrateStart { room });
                    }
                }
                self.events.push_back(Event::RoomMigrateComplete {
                    room,
                    success,
                    room_id,
                    error_code: code,
                    message,
                });
            }
        }
    }

    fn discover_all_for_handle(&mut self, handle: DOHandle, _me: StationId) {
        self.discover_all(handle);
    }

    fn needs_unlocked(&self, msg: &Msg) -> bool {
        matches!(
            msg,
            Msg::Delete { .. }
                | Msg::MasterChanged { .. }
                | Msg::Migrate { .. }
                | Msg::StationGone { .. }
                | Msg::RecoveryDone { .. }
                | Msg::RoomAdopt { .. }
        )
    }

    fn on_create(&mut self, origin: StationId, handle: DOHandle, master: StationId, data: &[u8]) {
        if master != origin {
            self.stats.bad_messages += 1;
            return;
        }
        if let Some(e) = self.store.get(&handle) {
            if e.master == self.id {
                self.stats.bad_messages += 1;
                return;
            }
            if e.master != master {
                self.change_master(handle, master, origin);
            }
            self.on_update(origin, handle, data);
            return;
        }
        let Some(entry) = self.registry.entry(handle.class_id()) else {
            self.stats.unknown_class += 1;
            return;
        };
        let cell = (entry.factory)(handle, self.id, master);
        self.add_duplica(handle, master, cell, Some(data), origin);
        if !self.store.contains_key(&handle) {
            // Refused by the SafetyExecutive: the master forgets us.
            self.send(master, SYSTEM_STREAM, Msg::DuplicaRemoved { handle });
        }
    }

    fn on_update(&mut self, origin: StationId, handle: DOHandle, data: &[u8]) {
        let Some(e) = self.store.get(&handle) else {
            self.stats.unknown_object += 1;
            return;
        };
        if e.master != origin || e.master == self.id {
            self.stats.bad_messages += 1;
            return;
        }
        let cell = e.cell.clone();
        let revision = peek_revision(data);
        let op = self.make_op(
            OperationDetail::UpdateDataSet(UpdateDataSetOperation { revision }),
            origin,
            self.id,
            Some(handle),
        );
        let c2 = cell.clone();
        let mut ok = true;
        self.run_op(op, Some(cell), true, |_, _| {
            ok = apply_datasets(&c2, data).is_some()
        });
        if ok {
            self.stats.updates_applied += 1;
        } else {
            self.stats.bad_messages += 1;
        }
    }

    // ---------------------------------------------------------------- calls

    fn make_call_op(
        &self,
        origin: StationId,
        handle: DOHandle,
        method: u16,
        is_action: bool,
    ) -> Operation {
        self.make_op(
            OperationDetail::CallMethod(CallMethodOperation {
                method: MethodId(method),
                attempt: 1,
                user_context: None,
                postpone: None,
                is_action,
            }),
            origin,
            self.id,
            Some(handle),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn on_rmc(
        &mut self,
        origin: StationId,
        call: u64,
        handle: DOHandle,
        method: u16,
        flags: u16,
        args: Vec<u8>,
        reply: bool,
        substream: u8,
    ) {
        let fail = |st: &mut Station, outcome: Outcome, hint: StationId| {
            if reply {
                st.send(
                    origin,
                    substream,
                    Msg::RmcReply {
                        call,
                        outcome: outcome.to_wire(),
                        result: Bytes::default(),
                        master_hint: hint,
                    },
                );
            }
        };
        let Some(e) = self.store.get(&handle) else {
            self.stats.unknown_object += 1;
            fail(self, Outcome::TargetObjectNotFound, StationId::NONE);
            return;
        };
        let master = e.master;
        if (bits::has(flags, RmcFlag::TargetObjectMustBeMaster)
            || bits::has(flags, RmcFlag::TargetObjectMustHaveAuthority))
            && master != self.id
        {
            fail(self, Outcome::TargetValidationFailure, master);
            return;
        }
        let op = self.make_call_op(origin, handle, method, false);
        self.execute_call(op, call, reply, handle, args, substream, false);
    }

    /// Runs a CallMethod operation (an RMC, or an action when `op` says so).
    #[allow(clippy::too_many_arguments)]
    fn execute_call(
        &mut self,
        op: Operation,
        call: u64,
        reply: bool,
        handle: DOHandle,
        args: Vec<u8>,
        substream: u8,
        forward: bool,
    ) {
        let origin = op.origin;
        let Some(e) = self.store.get(&handle) else {
            self.stats.unknown_object += 1;
            if reply {
                self.send(
                    origin,
                    substream,
                    Msg::RmcReply {
                        call,
                        outcome: Outcome::TargetObjectNotFound.to_wire(),
                        result: Bytes::default(),
                        master_hint: StationId::NONE,
                    },
                );
            }
            return;
        };
        let cell = e.cell.clone();
        let methods = self
            .registry
            .entry(handle.class_id())
            .map(|c| c.methods)
            .unwrap_or(&[]);
        let method = match &op.detail {
            OperationDetail::CallMethod(c) => c.method,
            _ => return,
        };
        let is_action = matches!(&op.detail, OperationDetail::CallMethod(c) if c.is_action);
        let known = methods
            .get(method.0 as usize)
            .is_some_and(|m| (m.kind == MethodKind::Action) == is_action);
        if !known {
            self.stats.unknown_method += 1;
            if reply {
                self.send(
                    origin,
                    substream,
                    Msg::RmcReply {
                        call,
                        outcome: Outcome::ErrorRMCDispatchFailed.to_wire(),
                        result: Bytes::default(),
                        master_hint: StationId::NONE,
                    },
                );
            }
            return;
        }
        let mut result: Result<Vec<u8>, DispatchError> = Err(DispatchError::UnknownMethod(method));
        let now = self.now;
        let c2 = cell.clone();
        self.depth += 1;
        let done = self.run_op(op, Some(cell), false, |st, op| {
            c2.with_dyn(&mut |o: &mut dyn DoDyn| {
                let mut ctx = CallContext {
                    invoker: st,
                    op,
                    handle,
                    now,
                };
                result = o.call(&mut ctx, method, &args);
            });
        });
        self.depth -= 1;
        self.stats.calls_executed += 1;
        let Some(mut op) = done else {
            if reply {
                self.send(
                    origin,
                    substream,
                    Msg::RmcReply {
                        call,
                        outcome: Outcome::RejectedBySafetyExecutive.to_wire(),
                        result: Bytes::default(),
                        master_hint: StationId::NONE,
                    },
                );
            }
            return;
        };
        if let Some(delay) = op.downcast_mut::<CallMethodOperation>().and_then(|c| {
            let d = c.postpone.take();
            if d.is_some() {
                c.attempt += 1;
            }
            d
        }) {
            if self.postponed.len() >= self.cfg.limits.max_postponed_calls {
                self.stats.postponed_limited += 1;
                self.limit_state
                    .hit(crate::limits::Limit::PostponedCalls, self.id);
                return;
            }
            self.postponed.push(Postponed {
                due: self.now + delay,
                op,
                call,
                reply,
                handle,
                args,
                substream,
                forward,
            });
            return;
        }
        if is_action {
            if forward
                || (origin == self.id
                    && self.store.get(&handle).is_some_and(|e| e.master == self.id)
                    && call == u64::MAX)
            {
                let targets: Vec<StationId> = self
                    .store
                    .get(&handle)
                    .map(|e| e.dup_set.iter().copied().collect())
                    .unwrap_or_default();
                for t in targets {
                    self.send(
                        t,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method: method.0,
                            args: Bytes(args.clone()),
                            forward: false,
                        },
                    );
                }
            }
            return;
        }
        if reply {
            let (outcome, bytes) = match result {
                Ok(b) => (Outcome::Success, b),
                Err(DispatchError::UnknownMethod(_)) => {
                    self.stats.unknown_method += 1;
                    (Outcome::ErrorRMCDispatchFailed, Vec::new())
                }
                Err(_) => (Outcome::ErrorInvalidArguments, Vec::new()),
            };
            self.send(
                origin,
                substream,
                Msg::RmcReply {
                    call,
                    outcome: outcome.to_wire(),
                    result: Bytes(bytes),
                    master_hint: StationId::NONE,
                },
            );
        }
    }

    fn on_rmc_reply(&mut self, call: u64, outcome: Outcome, result: Vec<u8>, hint: StationId) {
        let Some(mut p) = self.calls.remove(&call) else {
            return;
        };
        self.call_deadlines.remove(&(p.deadline, call));
        if outcome == Outcome::TargetValidationFailure
            && bits::has(p.flags, RmcFlag::RetryOnTargetValidationFailure)
            && p.retries < self.cfg.max_rmc_retries
            && hint.is_some()
            && self.members.contains_key(&hint)
        {
            p.retries += 1;
            p.target = hint;
            let msg = Msg::Rmc {
                call,
                handle: p.handle,
                method: p.method,
                flags: p.flags,
                args: Bytes(p.args.clone()),
                reply: true,
                substream: p.substream,
            };
            let substream = p.substream;
            self.call_deadlines.insert((p.deadline, call));
            self.calls.insert(call, p);
            self.send(hint, substream, msg);
            return;
        }
        self.complete_call(&p, outcome, Some(result));
    }

    fn complete_call(&mut self, p: &PendingCall, outcome: Outcome, result: Option<Vec<u8>>) {
        if p.shared.complete(p.generation, outcome, result) {
            self.events.push_back(Event::RmcCompleted { outcome });
        }
    }

    fn fail_now(&mut self, shared: &Arc<RmcShared>, outcome: Outcome) -> bool {
        let g = shared.begin();
        shared.complete(g, outcome, None);
        false
    }
}

// ------------------------------------------------------------ migration
//
// Scale-in, client migration and room migration (client-server sessions).
//
// A server that scales in broadcasts `Offline`, hands its masters (except
// rooms and their objects) to the surviving servers at once, refuses joins
// and new rooms, and leaves when none of its clients and rooms is left, or
// when its drain ends: rooms still hosted then move by themselves, clients
// still attached get `Kick`.
//
// A client migrates in four steps: (1) `send_migrate` holds every message
// the application sends from now on and waits until the old server has
// acknowledged everything sent before; (2) `MigrateRequest`: the old server
// marks its links and asks a survivor to adopt the client (`Handover`,
// `HandoverAck`); (3) once the marks are passed (everything the client sent
// has been relayed onwards) it sends `MigrateGo` and routes the client's
// traffic to the new server, and the session master tells everyone
// (`Reattach`); (4) the client links to the new server (`Reconnect`,
// `Welcome`) and sends what it held, in order. Its station id, objects and
// duplicas never change.
impl Station {
    /// The server a client of a client-server session is attached to.
    pub fn relay(&self) -> Option<StationId> {
        (self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && self.relay.is_some())
        .then_some(self.relay)
    }

    /// The servers that announced a scale-in and are still in the session.
    pub fn offline_servers(&self) -> Vec<StationId> {
        self.offline.iter().copied().collect()
    }

    /// Whether this server is scaling in (see [`Station::scale_in`]).
    pub fn is_offline(&self) -> bool {
        self.offline.contains(&self.id)
    }

    /// Whether this client is migrating (between `send_migrate` and
    /// [`Event::Reconnected`] or [`Event::MigrateFailed`]).
    pub fn is_migrating(&self) -> bool {
        self.migration.is_some()
    }

    /// The clients this server relays, sorted.
    pub fn attached_clients(&self) -> Vec<StationId> {
        self.members
            .values()
            .filter(|m| {
                m.info.process_type == ProcessType::Client
                    && m.info.relay == Some(self.id)
                    && m.info.id != self.id
            })
            .map(|m| m.info.id)
            .collect()
    }

    /// Scales this server in (Diarkis: the server goes offline): it tells
    /// every station ([`Event::Offline`]; its clients should call
    /// [`Station::send_migrate`]), hands its masters to the surviving
    /// servers with ChangeMasterStation (rooms and their objects stay until
    /// their owner moves them with [`Station::send_migrate_room`]), refuses
    /// joins and new rooms, and leaves the session once no client and no
    /// room is left, or when `drain` is over: rooms still here then move by
    /// themselves and clients still here are disconnected with a reason.
    pub fn scale_in(&mut self, now: Instant, drain: Duration) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        if self.cfg.topology != Topology::ClientServer
            || self.cfg.process_type != ProcessType::Server
        {
            return Err(StationError::NotAServer);
        }
        if self.scale_in.is_some() {
            return Ok(());
        }
        debug!(station = %self.id, ?drain, "scaling in");
        self.scale_in = Some(ScaleIn {
            deadline: now + drain,
            kicked_until: None,
        });
        self.offline.insert(self.id);
        let drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX);
        self.broadcast(&Msg::Offline { drain_ms }, &[]);
        self.events.push_back(Event::Offline {
            server: self.id,
            ours: false,
            drain,
        });
        self.evacuate();
        self.drain_local();
        self.progress_migrations();
        self.drain_local();
        Ok(())
    }

    /// Moves this client to another server (Diarkis `SendMigrate`), usually
    /// after [`Event::Offline`]. The cluster picks the server; the client
    /// keeps its station id, objects and duplicas. Reported by
    /// [`Event::MigrateDisconnected`], then [`Event::Reconnected`] (or
    /// [`Event::MigrateFailed`]). Everything the application sends in
    /// between is held and sent after the switch, exactly once and in order.
    pub fn send_migrate(&mut self, now: Instant) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        if self.cfg.topology != Topology::ClientServer
            || self.cfg.process_type != ProcessType::Client
        {
            return Err(StationError::NotAClient);
        }
        if self.migration.is_some() {
            return Err(StationError::AlreadyMigrating);
        }
        debug!(station = %self.id, from = %self.relay, "migrating");
        self.migration = Some(Migration {
            phase: MigrationPhase::WaitIdle,
            held: Vec::new(),
        });
        self.progress_migrations();
        self.drain_local();
        Ok(())
    }

    /// The least loaded server that can take clients or objects.
    fn pick_server(
        &self,
        exclude: &[StationId],
        extra: &BTreeMap<StationId, usize>,
    ) -> Option<StationId> {
        let candidates = self.members.values().filter(|m| {
            let id = m.info.id;
            m.info.process_type == ProcessType::Server
                && id != self.id
                && !m.silent
                && !self.offline.contains(&id)
                && !self.gone.contains(&id)
                && !exclude.contains(&id)
        });
        candidates
            .map(|m| {
                let id = m.info.id;
                let clients = self
                    .members
                    .values()
                    .filter(|c| c.info.relay == Some(id))
                    .count();
                let pending = self.handovers.values().filter(|h| h.target == id).count();
                (clients + pending + extra.get(&id).copied().unwrap_or(0), id)
            })
            .min()
            .map(|(_, id)| id)
    }

    /// Rooms hosted here, with the objects that move with them.
    fn hosted_rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .store
            .iter()
            .filter(|(h, e)| h.class_id() == ClassId::ROOM && e.master == self.id)
            .filter_map(|(h, _)| self.get::<RoomObject>(*h).map(|r| r.lock().info(*h)))
            .collect();
        v.sort_by_key(|r| r.handle);
        v
    }

    /// Hands every master of this scaling-in server to the survivors,
    /// except rooms and their objects, station and well-known objects.
    fn evacuate(&mut self) {
        if self.system_lock > 0 {
            return;
        }
        let in_rooms: BTreeSet<DOHandle> = self
            .hosted_rooms()
            .into_iter()
            .flat_map(|r| r.objects.into_iter().chain(std::iter::once(r.handle)))
            .collect();
        let mut assigned: BTreeMap<StationId, usize> = BTreeMap::new();
        for h in self.masters() {
            if h.class_id() == ClassId::STATION || h.is_well_known() || in_rooms.contains(&h) {
                continue;
            }
            let Some(to) = self.pick_server(&[], &assigned) else {
                return;
            };
            if self.migrate_inner(h, to).is_ok() {
                debug!(station = %self.id, object = ?h, to = %to, "object handed over");
                *assigned.entry(to).or_default() += 1;
            }
        }
    }

    fn progress_migrations(&mut self) {
        if !self.is_in_session() {
            return;
        }
        // A client waits until the old server acknowledged everything.
        if matches!(
            self.migration,
            Some(Migration {
                phase: MigrationPhase::WaitIdle,
                ..
            })
        ) {
            let idle = self
                .members
                .get(&self.relay)
                .and_then(|m| m.link.as_ref())
                .is_none_or(|l| l.is_idle());
            if idle {
                if let Some(m) = self.migration.as_mut() {
                    m.phase = MigrationPhase::Requested;
                }
                let relay = self.relay;
                self.send_now(relay, Msg::MigrateRequest);
            }
        }
        // A server switches a client once what it relayed for it arrived.
        let ready: Vec<StationId> = self
            .handovers
            .iter()
            .filter(|(_, h)| {
                h.accepted
                    && h.marks.iter().all(|(id, mark)| {
                        self.members
                            .get(id)
                            .and_then(|m| m.link.as_ref())
                            .is_none_or(|l| l.is_acked_through(mark))
                    })
            })
            .map(|(c, _)| *c)
            .collect();
        for c in ready {
            self.complete_handover(c);
        }
        self.progress_scale_in();
    }

    fn progress_scale_in(&mut self) {
        if !matches!(self.state, State::InSession) {
            return;
        }
        let Some(sc) = &self.scale_in else {
            return;
        };
        let now = self.now;
        match sc.kicked_until {
            None => {
                let attached = self.attached_clients();
                let rooms = self.hosted_rooms();
                let empty = attached.is_empty() && rooms.is_empty() && self.handovers.is_empty();
                if !empty && now < sc.deadline {
                    return;
                }
                debug!(station = %self.id, clients = attached.len(), rooms = rooms.len(), "drain over");
                for r in rooms {
                    if let Some(to) = self.pick_server(&[], &BTreeMap::new()) {
                        self.migrate_room_to(r.handle, to);
                    }
                }
                self.evacuate();
                self.handovers.clear();
                for c in attached {
                    self.send(
                        c,
                        SYSTEM_STREAM,
                        Msg::Kick {
                            reason: KICK_REASON.into(),
                        },
                    );
                }
                let until = now + self.cfg.failure_timeout;
                if let Some(sc) = self.scale_in.as_mut() {
                    sc.kicked_until = Some(until);
                }
            }
            Some(until) => {
                let idle = self
                    .members
                    .values()
                    .filter_map(|m| m.link.as_ref())
                    .all(|l| l.is_idle());
                if idle || now >= until {
                    debug!(station = %self.id, "scaled in: leaving");
                    self.scale_in = None;
                    let _ = self.leave(now);
                }
            }
        }
    }

    /// Re-points `station`'s relay, linking or unlinking this station.
    fn set_relay(&mut self, station: StationId, relay: StationId) {
        let Some(m) = self.members.get_mut(&station) else {
            return;
        };
        if m.info.relay == Some(relay) {
            return;
        }
        m.info.relay = Some(relay);
        let info = m.info.clone();
        let direct = self.direct_link_to(&info);
        let now = self.now;
        let until = now + self.cfg.failure_timeout;
        let tcfg = self.tcfg.clone();
        if direct {
            self.closing.retain(|c| c.id != station);
        }
        let Some(m) = self.members.get_mut(&station) else {
            return;
        };
        if direct {
            if m.link.is_none() {
                m.link = Some(Link::new(tcfg, now));
                m.silent = false;
            }
        } else if let Some(link) = m.link.take() {
            self.closing.push(Closing {
                id: station,
                addr: info.addr,
                link,
                until,
                deliver: false,
                client: info.process_type == ProcessType::Client,
            });
        }
    }

    fn on_offline(&mut self, origin: StationId, drain_ms: u64) {
        if self
            .members
            .get(&origin)
            .is_none_or(|m| m.info.process_type != ProcessType::Server)
        {
            self.stats.bad_messages += 1;
            return;
        }
        if !self.offline.insert(origin) {
            return;
        }
        let ours = self.cfg.process_type == ProcessType::Client && self.relay == origin;
        debug!(station = %self.id, server = %origin, ours, "server offline");
        self.events.push_back(Event::Offline {
            server: origin,
            ours,
            drain: Duration::from_millis(drain_ms),
        });
    }

    fn on_migrate_request(&mut self, origin: StationId) {
        let Some(m) = self.members.get(&origin) else {
            return;
        };
        if m.info.process_type != ProcessType::Client || m.info.relay != Some(self.id) {
            self.stats.bad_messages += 1;
            return;
        }
        if self.handovers.contains_key(&origin) {
            return;
        }
        let Some(to) = self.pick_server(&[], &BTreeMap::new()) else {
            self.send(
                origin,
                SYSTEM_STREAM,
                Msg::MigrateRefused {
                    reason: "no other server can take the client".into(),
                },
            );
            return;
        };
        let marks = self
            .members
            .iter()
            .filter(|(id, _)| **id != origin)
            .filter_map(|(id, m)| m.link.as_ref().map(|l| (*id, l.reliable_mark())))
            .collect();
        debug!(station = %self.id, client = %origin, to = %to, "handing over");
        self.handovers.insert(
            origin,
            Handover {
                target: to,
                tried: vec![to],
                accepted: false,
                marks,
            },
        );
        self.send(to, SYSTEM_STREAM, Msg::Handover { station: origin });
    }

    fn on_handover(&mut self, origin: StationId, station: StationId) {
        let from_server = self
            .members
            .get(&origin)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        let is_client = self
            .members
            .get(&station)
            .is_some_and(|m| m.info.process_type == ProcessType::Client);
        if !from_server || !is_client {
            self.stats.bad_messages += 1;
            return;
        }
        let accepted = self.cfg.process_type == ProcessType::Server
            && self.scale_in.is_none()
            && matches!(self.state, State::InSession);
        if accepted {
            self.set_relay(station, self.id);
        }
        self.send(
            origin,
            SYSTEM_STREAM,
            Msg::HandoverAck { station, accepted },
        );
    }

    fn on_handover_ack(&mut self, origin: StationId, station: StationId, accepted: bool) {
        let Some(h) = self.handovers.get_mut(&station) else {
            return;
        };
        if h.target != origin {
            return;
        }
        if accepted {
            h.accepted = true;
            return;
        }
        let tried = h.tried.clone();
        match self.pick_server(&tried, &BTreeMap::new()) {
            Some(to) => {
                if let Some(h) = self.handovers.get_mut(&station) {
                    h.target = to;
                    h.tried.push(to);
                }
                self.send(to, SYSTEM_STREAM, Msg::Handover { station });
            }
            None => {
                self.handovers.remove(&station);
                self.send(
                    station,
                    SYSTEM_STREAM,
                    Msg::MigrateRefused {
                        reason: "no other server accepted the client".into(),
                    },
                );
            }
        }
    }

    fn complete_handover(&mut self, client: StationId) {
        let Some(h) = self.handovers.remove(&client) else {
            return;
        };
        let to = h.target;
        if !self.members.contains_key(&client) {
            return;
        }
        if !self.members.contains_key(&to) {
            self.send(
                client,
                SYSTEM_STREAM,
                Msg::MigrateRefused {
                    reason: "the new server went away".into(),
                },
            );
            return;
        }
        // On the old link, after everything else sent to the client.
        self.send(client, SYSTEM_STREAM, Msg::MigrateGo { to });
        self.set_relay(client, to);
        debug!(station = %self.id, client = %client, to = %to, "client handed over");
        if self.is_session_master() {
            self.apply_reattach(client, to);
        } else {
            let master = self.session_master;
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::Reattach {
                    station: client,
                    relay: to,
                },
            );
        }
    }

    /// Session master: `station` is relayed by `relay` now; tells everyone.
    fn apply_reattach(&mut self, station: StationId, relay: StationId) {
        self.set_relay(station, relay);
        self.broadcast(&Msg::Reattach { station, relay }, &[station]);
    }

    fn on_reattach(&mut self, origin: StationId, station: StationId, relay: StationId) {
        let relay_ok = self
            .members
            .get(&relay)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        if station == self.id || !relay_ok || !self.members.contains_key(&station) {
            self.stats.bad_messages += 1;
            return;
        }
        if self.is_session_master() {
            if self
                .members
                .get(&origin)
                .is_some_and(|m| m.info.process_type == ProcessType::Server)
            {
                self.apply_reattach(station, relay);
            } else {
                self.stats.bad_messages += 1;
            }
        } else if origin == self.session_master {
            self.set_relay(station, relay);
        } else {
            self.stats.bad_messages += 1;
        }
    }

    fn on_migrate_go(&mut self, origin: StationId, to: StationId) {
        let requested = matches!(
            self.migration,
            Some(Migration {
                phase: MigrationPhase::Requested,
                ..
            })
        );
        if !requested || origin != self.relay || !self.members.contains_key(&to) {
            self.stats.bad_messages += 1;
            return;
        }
        let from = self.relay;
        self.relay = to;
        let now = self.now;
        let until = now + self.cfg.failure_timeout;
        if let Some(me) = self.members.get_mut(&self.id) {
            me.info.relay = Some(to);
        }
        self.closing.retain(|c| c.id != to);
        if let Some(m) = self.members.get_mut(&from) {
            if let Some(link) = m.link.take() {
                // What the old server still sends us is handled.
                self.closing.push(Closing {
                    id: from,
                    addr: m.info.addr,
                    link,
                    until,
                    deliver: true,
                    client: m.info.process_type == ProcessType::Client,
                });
            }
        }
        let tcfg = self.tcfg.clone();
        if let Some(m) = self.members.get_mut(&to) {
            m.link = Some(Link::new(tcfg, now));
            m.silent = false;
        }
        if let Some(m) = self.migration.as_mut() {
            m.phase = MigrationPhase::Switched { to };
        }
        debug!(station = %self.id, from = %from, to = %to, "switched server");
        self.events
            .push_back(Event::MigrateDisconnected { from, to });
        self.send_now(to, Msg::Reconnect);
    }

    fn on_welcome(&mut self, origin: StationId) {
        let switched = matches!(
            self.migration,
            Some(Migration { phase: MigrationPhase::Switched { to }, .. }) if to == origin
        );
        if !switched {
            self.stats.bad_messages += 1;
            return;
        }
        let Some(m) = self.migration.take() else {
            return;
        };
        for (substream, env) in m.held {
            self.send_envelope(substream, env);
        }
        debug!(station = %self.id, server = %origin, "reconnected");
        self.events.push_back(Event::Reconnected { server: origin });
    }

    fn on_migrate_refused(&mut self, origin: StationId, reason: String) {
        if self.migration.is_none() || origin != self.relay {
            self.stats.bad_messages += 1;
            return;
        }
        let Some(m) = self.migration.take() else {
            return;
        };
        for (substream, env) in m.held {
            self.send_envelope(substream, env);
        }
        self.events.push_back(Event::MigrateFailed { reason });
    }

    // ------------------------------------------------------------------ rooms

    /// Every room of the session, by handle.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .store
            .keys()
            .filter(|h| h.class_id() == ClassId::ROOM)
            .filter_map(|h| self.room(*h))
            .collect();
        v.sort_by_key(|r| r.handle);
        v
    }

    /// One room.
    pub fn room(&self, room: DOHandle) -> Option<RoomInfo> {
        if room.class_id() != ClassId::ROOM {
            return None;
        }
        self.get::<RoomObject>(room).map(|r| r.lock().info(room))
    }

    /// The room with id `id`.
    pub fn room_by_id(&self, id: &str) -> Option<RoomInfo> {
        self.rooms().into_iter().find(|r| r.id == id)
    }

    fn room_request(
        &mut self,
        now: Instant,
        room: DOHandle,
        op: RoomOp,
    ) -> Result<u64, StationError> {
        self.advance(now);
        if !self.is_in_session() {
            return Err(StationError::NotInSession);
        }
        let dest = match op {
            RoomOp::Create { .. } => {
                if self.cfg.process_type == ProcessType::Server {
                    self.id
                } else if let Some(r) = self.relay() {
                    r
                } else {
                    self.members
                        .values()
                        .filter(|m| m.info.process_type == ProcessType::Server)
                        .map(|m| m.info.id)
                        .min()
                        .unwrap_or(self.session_master)
                }
            }
            _ => {
                if room.class_id() != ClassId::ROOM {
                    return Err(StationError::NoSuchRoom(room));
                }
                self.master_of(room).ok_or(StationError::NoSuchRoom(room))?
            }
        };
        let request = self.next_request;
        self.next_request += 1;
        let by = self.id;
        self.send(
            dest,
            SYSTEM_STREAM,
            Msg::RoomRequest {
                request,
                by,
                room,
                op,
            },
        );
        self.drain_local();
        Ok(request)
    }

    /// Asks the server (this client's, or this server) to host a new room
    /// owned by this station. Answered by [`Event::RoomResult`] with the new
    /// room's handle and id; returns the request id.
    pub fn create_room(
        &mut self,
        now: Instant,
        properties: Vec<(String, String)>,
    ) -> Result<u64, StationError> {
        self.room_request(now, DOHandle::NULL, RoomOp::Create { properties })
    }

    /// Joins a room (answered by [`Event::RoomResult`]).
    pub fn join_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        self.room_request(now, room, RoomOp::Join)
    }

    /// Leaves a room; when the owner leaves, the lowest remaining member
    /// becomes the owner (answered by [`Event::RoomResult`]).
    pub fn leave_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        self.room_request(now, room, RoomOp::Leave)
    }

    /// Sets a property of a room this station is a member of (answered by
    /// [`Event::RoomResult`]).
    pub fn set_room_property(
        &mut self,
        now: Instant,
        room: DOHandle,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<u64, StationError> {
        let op = RoomOp::SetProperty {
            key: key.into(),
            value: value.into(),
        };
        self.room_request(now, room, op)
    }

    /// Moves a room to another server (Diarkis `SendMigrateRoom`). Only the
    /// room's owner may: anyone else gets [`StationError::NotRoomOwner`].
    /// Every member sees [`Event::RoomMigrateStart`], then
    /// [`Event::RoomMigrateComplete`] with the room's new id; members,
    /// properties and room objects move with it.
    pub fn send_migrate_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        let info = self.room(room).ok_or(StationError::NoSuchRoom(room))?;
        if info.owner != self.id {
            return Err(StationError::NotRoomOwner {
                room_id: info.id,
                owner: info.owner,
            });
        }
        self.room_request(now, room, RoomOp::Migrate)
    }

    /// Makes master `object` a room object of `room` (both mastered here,
    /// on the room's server): it moves with the room.
    pub fn attach_to_room(
        &mut self,
        now: Instant,
        room: DOHandle,
        object: DOHandle,
    ) -> Result<(), StationError> {
        self.advance(now);
        let r = self
            .get::<RoomObject>(room)
            .ok_or(StationError::NoSuchRoom(room))?;
        for h in [room, object] {
            if self.master_of(h) != Some(self.id) {
                return Err(StationError::NotMaster(h));
            }
        }
        {
            let mut g = r.lock();
            if !g.data.objects.contains(&object.0) {
                g.data.objects.push(object.0);
            }
        }
        self.update(now, room)?;
        Ok(())
    }

    fn new_room_id(&mut self) -> String {
        let n = self.next_room_serial;
        self.next_room_serial += 1;
        format!("room-{}-{}", self.id.0, n)
    }

    fn on_room_request(
        &mut self,
        origin: StationId,
        request: u64,
        by: StationId,
        room: DOHandle,
        op: RoomOp,
    ) {
        // The requester itself, or a server passing its request on.
        let forwarded = self
            .members
            .get(&origin)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        if by != origin && !forwarded {
            self.stats.bad_messages += 1;
            return;
        }
        let reply = |st: &mut Station, room: DOHandle, r: Result<String, RoomError>| {
            let (code, message, room_id) = match r {
                Ok(id) => (0, String::new(), id),
                Err(e) => (e.code, e.message, String::new()),
            };
            st.send(
                by,
                SYSTEM_STREAM,
                Msg::RoomReply {
                    request,
                    room,
                    code,
                    message,
                    room_id,
                },
            );
        };
        if let RoomOp::Create { mut properties } = op {
            if self.cfg.process_type != ProcessType::Server {
                let e = RoomError::new(RoomError::NO_SERVER, "rooms are hosted by servers");
                reply(self, DOHandle::NULL, Err(e));
                return;
            }
            if self.scale_in.is_some() {
                let e = RoomError::new(
                    RoomError::SERVER_OFFLINE,
                    "the server is going offline (scale-in) and takes no new rooms",
                );
                reply(self, DOHandle::NULL, Err(e));
                return;
            }
            properties.sort();
            properties.dedup_by(|a, b| a.0 == b.0);
            let id = self.new_room_id();
            let mut data = RoomData::default();
            data.id = id.clone();
            data.server = self.id.0;
            data.owner = by.0;
            data.members = vec![by.0];
            data.properties = properties;
            let obj = RoomObject { data };
            let handle = DOHandle::new(ClassId::ROOM, self.id, self.next_serial);
            self.next_serial += 1;
            let cell = new_cell(obj, handle, self.id, self.id);
            self.add_master(handle, cell, true);
            self.discover_all(handle);
            debug!(station = %self.id, room = %id, owner = %by, "room created");
            reply(self, handle, Ok(id));
            return;
        }
        let Some(master) = self
            .store
            .get(&room)
            .filter(|_| room.class_id() == ClassId::ROOM)
            .map(|e| e.master)
        else {
            let e = RoomError::new(RoomError::NO_SUCH_ROOM, format!("no room {room:?}"));
            if matches!(op, RoomOp::Migrate) {
                self.send_room_failure(by, room, String::new(), e);
            } else {
                reply(self, room, Err(e));
            }
            return;
        };
        if master != self.id {
            // The room moved: pass the request on.
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::RoomRequest {
                    request,
                    by,
                    room,
                    op,
                },
            );
            return;
        }
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let room_id = r.lock().data.id.clone();
        match op {
            RoomOp::Create { .. } => {}
            RoomOp::Join => {
                {
                    let mut g = r.lock();
                    if !g.data.members.contains(&by.0) {
                        g.data.members.push(by.0);
                        g.data.members.sort();
                    }
                }
                let _ = self.update(self.now, room);
                reply(self, room, Ok(room_id));
            }
            RoomOp::Leave => {
                self.remove_room_member(room, by);
                reply(self, room, Ok(room_id));
            }
            RoomOp::SetProperty { key, value } => {
                let member = r.lock().data.members.contains(&by.0);
                if !member {
                    let e = RoomError::new(
                        RoomError::NOT_MEMBER,
                        format!("only members of room {room_id} may set its properties"),
                    );
                    reply(self, room, Err(e));
                    return;
                }
                {
                    let mut g = r.lock();
                    let props = &mut g.data.properties;
                    match props.iter_mut().find(|(k, _)| *k == key) {
                        Some(p) => p.1 = value,
                        None => {
                            props.push((key, value));
                            props.sort();
                        }
                    }
                }
                let _ = self.update(self.now, room);
                reply(self, room, Ok(room_id));
            }
            RoomOp::Migrate => {
                let owner = StationId(r.lock().data.owner);
                if owner != by {
                    let e = RoomError::new(
                        RoomError::NOT_OWNER,
                        format!("only the room owner ({owner}) may migrate room {room_id}"),
                    );
                    self.send_room_failure(by, room, room_id, e);
                    return;
                }
                match self.pick_server(&[], &BTreeMap::new()) {
                    Some(to) => self.migrate_room_to(room, to),
                    None => {
                        let e = RoomError::new(
                            RoomError::NO_SERVER,
                            "no other server can take the room",
                        );
                        self.send_room_failure(by, room, room_id, e);
                    }
                }
            }
        }
    }

    fn send_room_failure(&mut self, to: StationId, room: DOHandle, room_id: String, e: RoomError) {
        self.send(
            to,
            SYSTEM_STREAM,
            Msg::RoomMigrateComplete {
                room,
                epoch: 0,
                success: false,
                room_id,
                code: e.code,
                message: e.message,
            },
        );
    }

    /// Moves a room hosted here, and its objects, to server `to`.
    fn migrate_room_to(&mut self, room: DOHandle, to: StationId) {
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let (members, objects, epoch, room_id) = {
            let g = r.lock();
            (
                g.data.members.clone(),
                g.data.objects.clone(),
                g.data.migrations + 1,
                g.data.id.clone(),
            )
        };
        debug!(station = %self.id, room = %room_id, to = %to, "room migrating");
        for m in &members {
            self.send(
                StationId(*m),
                SYSTEM_STREAM,
                Msg::RoomMigrateStart { room, epoch },
            );
        }
        if let Err(err) = self.migrate_inner(room, to) {
            let e = RoomError::new(
                RoomError::NO_SERVER,
                format!("the room did not move: {err}"),
            );
            for m in members {
                self.send(
                    StationId(m),
                    SYSTEM_STREAM,
                    Msg::RoomMigrateComplete {
                        room,
                        epoch,
                        success: false,
                        room_id: room_id.clone(),
                        code: e.code,
                        message: e.message.clone(),
                    },
                );
            }
            return;
        }
        for o in objects {
            let _ = self.migrate_inner(DOHandle(o), to);
        }
        self.send(to, SYSTEM_STREAM, Msg::RoomAdopt { room, epoch });
    }

    fn on_room_adopt(&mut self, origin: StationId, room: DOHandle, epoch: u32) {
        if self.master_of(room) != Some(self.id) {
            self.stats.bad_messages += 1;
            return;
        }
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let id = self.new_room_id();
        let members = {
            let mut g = r.lock();
            g.data.id = id.clone();
            g.data.server = self.id.0;
            g.data.migrations = epoch;
            g.data.members.clone()
        };
        let _ = self.update(self.now, room);
        debug!(station = %self.id, room = %id, from = %origin, "room adopted");
        let message = format!("room moved from {origin} to {}", self.id);
        for m in members {
            self.send(
                StationId(m),
                SYSTEM_STREAM,
                Msg::RoomMigrateComplete {
                    room,
                    epoch,
                    success: true,
                    room_id: id.clone(),
                    code: 0,
                    message: message.clone(),
                },
            );
        }
    }

    fn remove_room_member(&mut self, room: DOHandle, member: StationId) {
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        {
            let mut g = r.lock();
            g.data.members.retain(|m| *m != member.0);
            if g.data.owner == member.0 {
                // The owner is gone: the lowest remaining member takes over.
                g.data.owner = g.data.members.first().copied().unwrap_or(0);
            }
        }
        let _ = self.update(self.now, room);
    }

    /// A station left: rooms hosted here forget it (and find a new owner).
    fn room_member_gone(&mut self, id: StationId) {
        for r in self.hosted_rooms() {
            if r.members.contains(&id) || r.owner == id {
                self.remove_room_member(r.handle, id);
            }
        }
    }
}

impl Invoker for Station {
    fn invoke_rmc(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        ctx: &Arc<RmcShared>,
        returns: bool,
    ) -> bool {
        if !self.is_in_session() {
            return self.fail_now(ctx, Outcome::StationUnreachable);
        }
        let (flags, explicit, substream) = {
            let g = ctx.lock();
            (g.flags, g.target, g.substream)
        };
        let one_way = bits::has(flags, RmcFlag::OneWayCall);
        let master = self.store.get(&handle).map(|e| e.master);
        let mut targets: Vec<StationId> = Vec::new();
        if let Some(t) = explicit {
            targets.push(t);
        }
        if bits::has(flags, RmcFlag::CallOnMaster) {
            match master {
                Some(m) => targets.push(m),
                None => return self.fail_now(ctx, Outcome::TargetObjectNotFound),
            }
        }
        if bits::has(flags, RmcFlag::CallOnLocalStation) {
            targets.push(self.id);
        }
        let on_dups = bits::has(flags, RmcFlag::CallOnDuplicas);
        let on_neigh = bits::has(flags, RmcFlag::CallOnNeighbouringStations);
        if one_way {
            if on_dups {
                match self.store.get(&handle) {
                    Some(e) if e.master == self.id => targets.extend(e.dup_set.iter().copied()),
                    _ => return self.fail_now(ctx, Outcome::ErrorInvalidContext),
                }
            }
            if on_neigh {
                targets.extend(self.members.keys().copied().filter(|i| *i != self.id));
            }
        } else if on_dups || on_neigh || targets.len() != 1 {
            return self.fail_now(ctx, Outcome::ErrorInvalidContext);
        }
        if bits::has(flags, RmcFlag::RetryOnTargetValidationFailure) && returns && !one_way {
            return self.fail_now(ctx, Outcome::ErrorInvalidContext);
        }
        targets.sort();
        targets.dedup();
        if targets.iter().any(|t| !self.members.contains_key(t)) {
            return self.fail_now(ctx, Outcome::StationUnreachable);
        }
        let generation = ctx.begin();
        if one_way {
            for t in targets {
                self.send(
                    t,
                    substream,
                    Msg::Rmc {
                        call: 0,
                        handle,
                        method: method.0,
                        flags,
                        args: Bytes(args.clone()),
                        reply: false,
                        substream,
                    },
                );
            }
            ctx.complete(generation, Outcome::Success, None);
            self.drain_local();
            return true;
        }
        if self.calls.len() >= self.cfg.limits.max_rmcs_in_flight {
            self.stats.rmcs_limited += 1;
            self.limit_state
                .hit(crate::limits::Limit::RmcsInFlight, self.id);
            return self.fail_now(ctx, Outcome::StationUnreachable);
        }
        let target = targets[0];
        let call = self.next_call;
        self.next_call += 1;
        let deadline = self.now + self.cfg.rmc_timeout;
        self.calls.insert(
            call,
            PendingCall {
                shared: ctx.clone(),
                generation,
                target,
                deadline,
                handle,
                method: method.0,
                args: args.clone(),
                flags,
                substream,
                retries: 0,
            },
        );
        self.call_deadlines.insert((deadline, call));
        let sent = self.send(
            target,
            substream,
            Msg::Rmc {
                call,
                handle,
                method: method.0,
                flags,
                args: Bytes(args),
                reply: true,
                substream,
            },
        );
        if !sent {
            if let Some(p) = self.calls.remove(&call) {
                self.call_deadlines.remove(&(deadline, call));
                self.complete_call(&p, Outcome::StationUnreachable, None);
            }
            return false;
        }
        self.drain_local();
        true
    }

    fn invoke_action(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        target: ActionTarget,
    ) -> bool {
        let Some(e) = self.store.get(&handle) else {
            return false;
        };
        let master = e.master;
        let is_master = master == self.id;
        let sent = match target {
            ActionTarget::Master => {
                if is_master {
                    let op = self.make_call_op(self.id, handle, method.0, true);
                    // The master runs it, then every duplica does.
                    self.execute_call(op, 0, false, handle, args, SYSTEM_STREAM, true);
                    true
                } else {
                    self.send(
                        master,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method: method.0,
                            args: Bytes(args),
                            forward: true,
                        },
                    )
                }
            }
            ActionTarget::Duplicas => {
                if !is_master {
                    return false;
                }
                let targets: Vec<StationId> = e.dup_set.iter().copied().collect();
                for t in targets {
                    self.send(
                        t,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method: method.0,
                            args: Bytes(args.clone()),
                            forward: false,
                        },
                    );
                }
                true
            }
        };
        self.drain_local();
        sent
    }

    fn local_station(&self) -> StationId {
        self.id
    }
}

impl crate::sim::SimNode for Station {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Station::handle_datagram(self, now, from, data)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Station::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Station::poll_transmit(self, now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Station::poll_timeout(self)
    }
}

// ------------------------------------------------------------ dataset codec
//
// A dataset message is `count` entries of
// `[dataset index][revision u8][field mask varint][byte length][fields]`.
// Fields beyond what the receiver knows come last and are skipped; datasets
// the receiver does not know are skipped by length (VER-3).

trait CellExt {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>>;
}

impl CellExt for Arc<dyn ErasedCell> {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>> {
        let mut snap = Vec::new();
        self.with_dyn(&mut |o| {
            for i in 0..o.ds_count() {
                let Some(d) = o.ds(i) else { continue };
                let fields = (0..d.field_names().len().min(crate::object::MAX_DATASET_FIELDS))
                    .map(|f| {
                        let mut b = Vec::new();
                        d.encode_field(f, &mut b);
                        b
                    })
                    .collect();
                snap.push(fields);
            }
        });
        snap
    }
}

/// Encodes every field of every dataset.
fn encode_datasets(cell: &Arc<dyn ErasedCell>, _unused: Option<()>) -> Vec<u8> {
    let snap = cell.snapshot_fields();
    let mut revs = Vec::new();
    cell.with_dyn(&mut |o| {
        for i in 0..o.ds_count() {
            revs.push(o.ds(i).map(|d| d.declared_revision()).unwrap_or(0));
        }
    });
    let mut out = Vec::new();
    put_varint(&mut out, snap.len() as u64);
    for (i, fields) in snap.iter().enumerate() {
        let mask = if fields.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << fields.len()) - 1
        };
        let body: Vec<u8> = fields.concat();
        put_varint(&mut out, i as u64);
        out.push(revs.get(i).copied().unwrap_or(0));
        put_varint(&mut out, mask);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    out
}

/// Encodes the fields that changed since `snapshot` and refreshes it.
#[allow(clippy::needless_range_loop)]
fn encode_delta(cell: &Arc<dyn ErasedCell>, snapshot: &mut Vec<Vec<Vec<u8>>>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut entries = Vec::new();
    cell.with_dyn(&mut |o| {
        if snapshot.len() != o.ds_count() {
            snapshot.resize(o.ds_count(), Vec::new());
        }
        let mut scratch = Vec::new();
        for i in 0..o.ds_count() {
            let Some(d) = o.ds(i) else { continue };
            let n = d.field_names().len().min(crate::object::MAX_DATASET_FIELDS);
            let snap = &mut snapshot[i];
            snap.resize(n, Vec::new());
            let mut mask = 0u64;
            let mut body = Vec::new();
            for (f, slot) in snap.iter_mut().enumerate().take(n) {
                scratch.clear();
                d.encode_field(f, &mut scratch);
                if scratch != *slot {
                    mask |= 1 << f;
                    body.extend_from_slice(&scratch);
                    slot.clear();
                    slot.extend_from_slice(&scratch);
                }
            }
            if mask != 0 {
                count += 1;
                entries.push((i, d.declared_revision(), mask, body));
            }
        }
    });
    if count == 0 {
        return None;
    }
    put_varint(&mut out, count);
    for (i, rev, mask, body) in entries {
        put_varint(&mut out, i as u64);
        out.push(rev);
        put_varint(&mut out, mask);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    Some(out)
}

fn peek_revision(data: &[u8]) -> u8 {
    let mut s = data;
    let _ = get_varint(&mut s);
    let _ = get_varint(&mut s);
    s.first().copied().unwrap_or(0)
}

/// Applies a dataset message; `None` if it was malformed.
fn apply_datasets(cell: &Arc<dyn ErasedCell>, data: &[u8]) -> Option<()> {
    let mut ok = Some(());
    cell.with_dyn(&mut |o| ok = apply_to(o, data));
    ok
}

fn apply_to(o: &mut dyn DoDyn, mut s: &[u8]) -> Option<()> {
    let count = get_varint(&mut s)?;
    for _ in 0..count {
        let idx = usize::try_from(get_varint(&mut s)?).ok()?;
        let (&rev, rest) = s.split_first()?;
        s = rest;
        let mask = get_varint(&mut s)?;
        let len = usize::try_from(get_varint(&mut s)?).ok()?;
        if len > s.len() {
            return None;
        }
        let (mut body, rest) = s.split_at(len);
        s = rest;
        // A dataset this build does not know is skipped (VER-3).
        let Some(d) = o.ds_mut(idx) else { continue };
        d.set_received_revision(rev);
        let known = d.field_names().len();
        for f in 0..64usize {
            if mask & (1u64 << f) == 0 {
                continue;
            }
            // Fields this build does not know come last: ignore them.
            if f >= known {
                break;
            }
            d.decode_field(f, &mut body).ok()?;
        }
    }
    Some(())
}

/// Seals a link datagram for `peer` when security is on; false if it must
/// not be sent (no key for the peer).
/// Runs `OperationBegin` (or `OperationEnd`) on the object's datasets, then
/// on the object itself (14.3.1).
fn object_hooks(cell: Option<&Arc<dyn ErasedCell>>, datasets: bool, op: &Operation, begin: bool) {
    let Some(c) = cell else { return };
    c.with_dyn(&mut |o| {
        if datasets {
            for i in 0..o.ds_count() {
                if let Some(d) = o.ds_mut(i) {
                    if begin {
                        d.operation_begin(op);
                    } else {
                        d.operation_end(op);
                    }
                }
            }
        }
        if begin {
            o.op_begin(op);
        } else {
            o.op_end(op);
        }
    });
}

/// The next packet of `link`, built in `scratch` so that an idle poll
/// allocates nothing; a fresh scratch buffer replaces one that is handed out.
#[allow(clippy::too_many_arguments)]
fn next_packet(
    scratch: &mut Vec<u8>,
    sec: &mut Option<crate::crypto::SecurityState>,
    session: u32,
    me: u32,
    peer: StationId,
    link: &mut Link,
    now: Instant,
    max: usize,
) -> Option<Vec<u8>> {
    scratch.clear();
    PacketHeader {
        kind: PacketKind::Link,
        session,
        sender: me,
        receiver: peer.0,
    }
    .encode(scratch);
    let header_len = scratch.len();
    if !link.poll_packet(now, scratch) {
        return None;
    }
    let mut buf = std::mem::replace(scratch, Vec::with_capacity(max));
    seal(sec, peer, &mut buf, header_len).then_some(buf)
}

fn seal(
    sec: &mut Option<crate::crypto::SecurityState>,
    peer: StationId,
    buf: &mut Vec<u8>,
    header_len: usize,
) -> bool {
    match sec {
        None => true,
        Some(sec) => sec.seal(peer, buf, header_len),
    }
}

// ---- views for monitoring tools ----

impl Station {
    /// Every live link of this station with its transport figures (RTT,
    /// loss, bytes, queue), by peer id. Read-only; for monitoring tools.
    pub fn link_views(&self) -> Vec<crate::views::LinkView> {
        self.members
            .iter()
            .filter_map(|(id, m)| {
                let link = m.link.as_ref()?;
                let s = link.stats();
                Some(crate::views::LinkView {
                    peer: *id,
                    addr: m.info.addr,
                    rtt: link.rtt(),
                    rto: link.rto(),
                    rtt_samples: s.rtt_samples,
                    packets_sent: s.packets_sent,
                    packets_received: s.packets_received,
                    packets_lost: s.packets_lost,
                    retransmissions: s.retransmissions,
                    bytes_sent: s.bytes_sent,
                    bytes_received: s.bytes_received,
                    packets_in_flight: link.packets_in_flight(),
                    queued_bytes: link.queued_bytes(),
                    last_received_ago: self.now.saturating_duration_since(link.last_received()),
                    silent: m.silent,
                })
            })
            .collect()
    }

    /// One object of the store: class, master, duplica set (on the
    /// master). `None` for a handle not in the store.
    pub fn object_view(&self, handle: DOHandle) -> Option<crate::views::ObjectView> {
        let e = self.store.get(&handle)?;
        let mut dataset_count = 0;
        e.cell.with_dyn(&mut |o| dataset_count = o.ds_count());
        Some(crate::views::ObjectView {
            handle,
            class_id: handle.class_id(),
            class_name: self.registry.class_name(handle.class_id()),
            master: e.master,
            is_master: e.master == self.id,
            dup_set: (e.master == self.id).then(|| e.dup_set.iter().copied().collect()),
            dataset_count,
        })
    }

    /// [`Station::object_view`] of every object in the store, by handle.
    pub fn object_views(&self) -> Vec<crate::views::ObjectView> {
        self.objects()
            .into_iter()
            .filter_map(|h| self.object_view(h))
            .collect()
    }

    /// The current values of an object's datasets, each field as its wire
    /// encoding. `None` for a handle not in the store.
    pub fn dataset_views(&self, handle: DOHandle) -> Option<Vec<crate::views::DatasetView>> {
        let e = self.store.get(&handle)?;
        let mut out = Vec::new();
        e.cell.with_dyn(&mut |o| {
            for i in 0..o.ds_count() {
                let Some(d) = o.ds(i) else { continue };
                let names = d.field_names();
                let revisions = d.field_revisions();
                let fields = names
                    .iter()
                    .take(crate::object::MAX_DATASET_FIELDS)
                    .enumerate()
                    .map(|(f, name)| {
                        let mut bytes = Vec::new();
                        d.encode_field(f, &mut bytes);
                        crate::views::FieldView {
                            name,
                            valid_from_revision: revisions.get(f).copied().unwrap_or(0),
                            bytes,
                        }
                    })
                    .collect();
                out.push(crate::views::DatasetView {
                    name: d.name(),
                    revision: d.received_revision(),
                    fields,
                });
            }
        });
        Some(out)
    }

    /// The RMCs this station sent and still waits for, oldest first.
    pub fn rmc_views(&self) -> Vec<crate::views::RmcView> {
        let mut v: Vec<_> = self
            .calls
            .values()
            .map(|p| {
                let sent = Instant::from_micros(
                    p.deadline
                        .as_micros()
                        .saturating_sub(self.cfg.rmc_timeout.as_micros() as u64),
                );
                let method_name = self
                    .registry
                    .entry(p.handle.class_id())
                    .and_then(|c| c.methods.get(usize::from(p.method)))
                    .map(|m| m.name);
                crate::views::RmcView {
                    handle: p.handle,
                    method: p.method,
                    method_name,
                    target: p.target,
                    age: self.now.saturating_duration_since(sent),
                    retries: p.retries,
                }
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.age));
        v
    }
}
