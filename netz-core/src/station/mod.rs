//! The station: one process's sans-IO state machine.

use crate::ids::{ClassId, DOHandle, MethodId, ProcessType, StationId};
use crate::object::{
    new_cell, ActionTarget, CallContext, DispatchError, DoClass, DoDyn, ErasedCell, Invoker,
    MasterLoss, MethodKind, ObjectProxy, Ref,
};
use crate::operation::*;
use crate::pipeline::{CallbackError, CallbackId, Hooks};
use crate::registry::Registry;
use crate::rmc::{bits, Outcome, RmcFlag, RmcShared};
use crate::session::*;
use crate::transport::{Link, PacketHeader, PacketKind, TransportConfig};
use crate::wire::{Bytes, Envelope, Msg, RoomOp};
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
/// How many bytes of such messages are kept at most.
const MAX_EARLY_RELAYED_BYTES: usize = 1 << 20;
/// Why a server that scales in refuses joins.
const OFFLINE_REASON: &str = "the server is going offline (scale-in); join through another server";
/// Why a server that scaled in disconnects the clients that did not migrate.
const KICK_REASON: &str =
    "the server scaled in and its drain timeout ended before the client migrated";

mod admission;
mod calls;
mod census;
mod claims;
mod dispatch;
mod election;
mod interest;
mod io;
mod join;
mod membership;
mod migration;
mod ops;
mod partition;
mod referee;
mod replication;
mod rooms;
mod routing;
mod schedule;
mod stats;
mod store;
mod timers;
mod views;

use crate::dataset_codec::*;
#[doc(hidden)]
pub use admission::ForgedJoinMsg;
use admission::*;
use calls::*;
use membership::*;
use migration::*;
use rooms::*;
use routing::*;
pub use schedule::LinkBudgetStats;
pub use stats::{StationError, StationStats};
use store::*;
use timers::*;

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
    /// The operation pipeline's checks, callbacks and trace.
    hooks: Hooks,
    /// The latest time any input carried.
    now: Instant,
    /// The state of the seeded random sequence (splitmix64).
    rng: u64,
    stats: StationStats,
    limit_state: crate::limits::LimitState,
    /// Keys and token checks, when security is on.
    sec: Option<crate::crypto::SecurityState>,
    events: VecDeque<Event>,
    /// Who is in the session, the links, this station's id and state.
    membership: Membership,
    /// The timer table of the members' links.
    link_timers: LinkTimers,
    /// Join requests being decided (session master) or forwarded.
    admission: Admission,
    /// The DO store.
    store: Store,
    /// RMCs in flight and postponed calls.
    calls: Calls,
    /// Queues of what goes out, relaying and in-order delivery to clients.
    routing: Routing,
    /// Scale-in, this client's migration, handovers of clients.
    migration: Migrations,
    /// What this station reported of rooms, and its room request ids.
    rooms: Rooms,
    /// Class policies, declared interests and the spatial index.
    interest: interest::Interests,
    /// Dataset updates waiting: latest-state datasets, budgets, priorities.
    sched: schedule::Scheduler,
    /// Stations declared failed, probed after a partition.
    partition: partition::Partition,
    /// Message kinds whose refusal was logged already (each is logged once).
    refusals_logged: BTreeSet<&'static str>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("id", &self.membership.id)
            .field("session_master", &self.membership.session_master)
            .field(
                "members",
                &self.membership.members.keys().collect::<Vec<_>>(),
            )
            .field("objects", &self.store.entries.len())
            .finish()
    }
}

impl Station {
    /// A station that is in no session yet.
    pub fn new(config: StationConfig, registry: Arc<Registry>) -> Station {
        let classes = crate::compat::describe(&registry);
        let rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        let sec = config
            .security
            .clone()
            .map(|c| crate::crypto::SecurityState::new(c, config.seed));
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
            membership: Membership::new(),
            link_timers: LinkTimers::default(),
            admission: Admission::with_classes(classes),
            store: Store::new(rng.rotate_left(17) ^ 0xA5A5_5A5A_0F0F_F0F0),
            calls: Calls::new(rng.rotate_left(41)),
            routing: Routing::new(rng.rotate_left(7)),
            migration: Migrations::default(),
            rooms: Rooms::default(),
            interest: interest::Interests::new(rng.rotate_left(29)),
            sched: Default::default(),
            partition: Default::default(),
            refusals_logged: BTreeSet::new(),
            events: VecDeque::new(),
            rng,
            stats: StationStats::default(),
            limit_state: Default::default(),
            sec,
        }
    }

    pub(super) fn next_random(&mut self) -> u64 {
        // splitmix64 over the driver-provided seed.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// This station's id (`StationId::NONE` before it is in a session).
    pub fn id(&self) -> StationId {
        self.membership.id
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
        matches!(
            self.membership.state,
            State::InSession | State::Leaving { .. }
        )
    }

    /// Whether the station has left (or lost) its session for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.membership.state, State::Closed)
    }

    /// The session's tag, carried in the header of every datagram of the
    /// session (0 before a session is joined or made).
    pub fn session_tag(&self) -> u32 {
        self.membership.session_tag
    }

    /// The session master.
    pub fn session_master(&self) -> StationId {
        self.membership.session_master
    }

    /// Whether this station is the session master.
    pub fn is_session_master(&self) -> bool {
        self.membership.id.is_some() && self.membership.session_master == self.membership.id
    }

    /// Every station of the session, this one included, by id.
    pub fn stations(&self) -> Vec<StationInfo> {
        self.membership
            .members
            .values()
            .map(|m| m.info.clone())
            .collect()
    }

    /// One station's description.
    pub fn station_info(&self, id: StationId) -> Option<&StationInfo> {
        self.membership.members.get(&id).map(|m| &m.info)
    }

    /// Counters.
    pub fn stats(&self) -> &StationStats {
        &self.stats
    }

    /// Handles of every object in the store, sorted.
    pub fn objects(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self.store.entries.keys().copied().collect();
        v.sort();
        v
    }

    /// Handles of the masters in the store, sorted.
    pub fn masters(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self
            .store
            .entries
            .iter()
            .filter(|(_, e)| e.master == self.membership.id)
            .map(|(h, _)| *h)
            .collect();
        v.sort();
        v
    }

    /// Handles of the duplicas in the store, sorted.
    pub fn duplicas(&self) -> Vec<DOHandle> {
        let mut v: Vec<_> = self
            .store
            .entries
            .iter()
            .filter(|(_, e)| e.master != self.membership.id)
            .map(|(h, _)| *h)
            .collect();
        v.sort();
        v
    }

    /// Whether `handle` is in the store.
    pub fn contains(&self, handle: DOHandle) -> bool {
        self.store.entries.contains_key(&handle)
    }

    /// The master station of an object in the store.
    pub fn master_of(&self, handle: DOHandle) -> Option<StationId> {
        self.store.entries.get(&handle).map(|e| e.master)
    }

    /// The duplica set of a master in the store.
    pub fn dup_set(&self, handle: DOHandle) -> Option<Vec<StationId>> {
        self.store
            .entries
            .get(&handle)
            .filter(|e| e.master == self.membership.id)
            .map(|e| e.dup_set.iter().copied().collect())
    }

    /// A reference to a local object of class `T`.
    pub fn get<T: DoClass>(&self, handle: DOHandle) -> Option<Ref<T>> {
        Ref::from_erased(self.store.entries.get(&handle)?.cell.clone())
    }

    /// Every local object of class `T` (NetZ `T::SelectionIterator`), by handle.
    pub fn select<T: DoClass>(&self) -> Vec<Ref<T>> {
        let mut v: Vec<_> = self
            .store
            .entries
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
        self.membership
            .members
            .get(&id)
            .map(|m| m.info.process_type)
    }

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
        mut f: impl FnMut(&Operation) -> bool + Send + 'static,
    ) {
        self.hooks.add_check(Box::new(move |op, _| f(op)));
    }

    /// A custom operation check with read access to the local store: like
    /// [`Station::register_custom_operation_check`], `f` vets every
    /// operation from an untrusted origin (false rejects it), and it can
    /// look at other objects through the [`StoreView`](crate::pipeline::StoreView)
    /// and at what the operation brings in ([`Operation::arguments`],
    /// [`Operation::incoming`]). On a server of a client-server session it
    /// also vets what clients send to each other through it.
    ///
    /// ```
    /// # use netz_core::{DoClass, ObjectProxy, OperationKind, Station};
    /// # struct Player { name: String }
    /// # impl DoClass for Player {
    /// #     const CLASS_NAME: &'static str = "Player";
    /// #     type Proxy<'a> = ObjectProxy<'a, Self>;
    /// #     fn new_duplica() -> Self { Player { name: String::new() } }
    /// # }
    /// # fn setup(station: &mut Station) {
    /// // No Player may take a name another Player already has.
    /// station.register_operation_check(|op, store| {
    ///     if op.get_type() != OperationKind::AddToStore {
    ///         return true;
    ///     }
    ///     let Some(new) = op.incoming::<Player>() else { return true };
    ///     !store.select::<Player>().iter().any(|p| p.lock().name == new.name)
    /// });
    /// # }
    /// ```
    pub fn register_operation_check(
        &mut self,
        f: impl FnMut(&Operation, &crate::pipeline::StoreView<'_>) -> bool + Send + 'static,
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
        self.store.system_lock += 1;
    }

    /// Releases the system lock; deferred operations run when it reaches zero.
    pub fn unlock_system(&mut self, now: Instant) {
        self.advance(now);
        self.store.system_lock = self.store.system_lock.saturating_sub(1);
        if self.store.system_lock == 0 {
            let deferred = std::mem::take(&mut self.store.deferred);
            for d in deferred {
                match d {
                    Deferred::Msg(origin, msg) => self.handle_msg(origin, msg),
                    Deferred::Recover(h, gone, failed) => self.fault_recover(h, gone, failed),
                }
            }
            self.drain_local();
            self.progress_migrations();
            self.drain_local();
        }
    }

    /// Whether the system lock is held.
    pub fn is_system_locked(&self) -> bool {
        self.store.system_lock > 0
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(super) fn advance(&mut self, now: Instant) {
        if now > self.now {
            let gap = now.saturating_duration_since(self.now);
            self.now = now;
            if gap > self.cfg.failure_timeout && self.is_in_session() {
                self.check_stall(gap);
            }
        }
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

// Hand-made messages for the tests of `crate::forge`.
impl Station {
    pub(crate) fn forge_send(&mut self, now: Instant, dest: StationId, msg: Msg) -> bool {
        self.advance(now);
        let sent = self.send(dest, SYSTEM_STREAM, msg);
        self.drain_local();
        sent
    }

    pub(crate) fn forge_envelope(
        &mut self,
        now: Instant,
        origin: StationId,
        dest: StationId,
        seq: u64,
        msg: Msg,
    ) -> bool {
        self.advance(now);
        let Some(hop) = self.next_hop(dest) else {
            return false;
        };
        let env = Envelope {
            seq,
            origin,
            dest,
            msg,
        };
        let sent = self.send_bytes(hop, SYSTEM_STREAM, env.encode());
        self.drain_local();
        sent
    }

    pub(crate) fn forge_next_station_id(&mut self, next: u32) {
        self.membership.next_station_id = next;
    }

    pub(crate) fn forge_key_fingerprints(&self) -> Vec<(StationId, u64, u64)> {
        self.sec
            .as_ref()
            .map(|s| s.key_fingerprints())
            .unwrap_or_default()
    }

    pub(crate) fn forge_spent_tokens(&self) -> usize {
        self.sec.as_ref().map_or(0, |s| s.spent_tokens())
    }

    pub(crate) fn forge_latest_batch(&self, handles: &[DOHandle], version: u64) -> Vec<u8> {
        self.forge_batch(
            handles,
            crate::dataset_codec::BatchWriter::latest(version),
            version,
        )
    }

    pub(crate) fn forge_update_batch(&self, handles: &[DOHandle]) -> Vec<u8> {
        self.forge_batch(handles, crate::dataset_codec::BatchWriter::reliable(), 0)
    }

    fn forge_batch(
        &self,
        handles: &[DOHandle],
        mut w: crate::dataset_codec::BatchWriter,
        version: u64,
    ) -> Vec<u8> {
        let mut hs = handles.to_vec();
        hs.sort();
        hs.dedup();
        for h in hs {
            let Some(e) = self.store.entries.get(&h) else {
                continue;
            };
            let shape = crate::dataset_codec::Shape::of(&e.cell);
            let snap = e.cell.snapshot_fields();
            let masks: Vec<u64> = shape.datasets.iter().map(|d| d.all()).collect();
            if let Some(item) = crate::dataset_codec::Item::from_snapshot(&snap, &shape, &masks) {
                w.push(h, version, &shape, &item);
            }
        }
        w.finish()
    }

    pub(crate) fn forge_datasets(&self, handle: DOHandle) -> Option<Vec<u8>> {
        self.store
            .entries
            .get(&handle)
            .map(|e| crate::dataset_codec::encode_datasets(&e.cell))
    }
}
