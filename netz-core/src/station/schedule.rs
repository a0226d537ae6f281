//! When dataset updates go out: latest-state datasets, the budget of each
//! link, and the priorities that decide what goes first.
//!
//! Reliable datasets of a link without a budget go at once, as
//! `Update` / `UpdateBatch` (see `replication.rs`). Everything else waits
//! here, per destination station and object, until a flush sends what fits:
//!
//! - **Latest state.** The master numbers the states of its latest-state
//!   datasets with a station-wide version and remembers the recent changes
//!   of each. For each destination it knows the newest version the
//!   destination acknowledged (the link reports the fate of each tracked
//!   unreliable message) and sends the fields changed since then, which
//!   make any state the destination may hold (the acknowledged one or a
//!   newer one still in flight) the newest. A lost update is not sent
//!   again: the next flush sends the newest state. A destination first
//!   gets the object's full state reliably (`Create`, or after a change of
//!   master its `MasterChanged` and a full latest state); latest-state
//!   updates wait until the link acknowledged that.
//! - **Budget.** A link may have a budget in bytes per second (a token
//!   bucket holding at most one datagram, charged with every byte the link
//!   sends: RMCs, acknowledgements and heartbeats too, which never wait for
//!   it). A flush sends dataset updates while the bucket and the
//!   congestion window both allow: the smaller wins.
//! - **Priority.** What waits accumulates priority, per object and
//!   destination: its gain (`Station::set_priority`, or the class's) times
//!   its relevance weight (closer objects of a spatial class weigh more)
//!   times the time it has waited. The most important go first; what does
//!   not fit keeps accumulating, so nothing starves. A class may also have
//!   a send rate (at most so many updates per second per destination).

use super::*;
use crate::dataset_codec::{BatchWriter, Item, Shape};
use crate::object::Delivery;

mod receive;
mod send;

/// How many recent changes of a latest-state dataset are remembered (a
/// destination that acknowledged nothing newer gets every field).
const RING: usize = 32;
/// The most tracked messages remembered per link.
const MAX_INFLIGHT: usize = 4096;
/// What a batch costs besides its items: the envelope, its frame and a
/// share of the packet (header, packet number, acknowledgement, PING).
const BATCH_OVERHEAD: usize = 64;
/// A flush waiting for the path retries after at least this long.
const PATH_RETRY: Duration = Duration::from_millis(2);

/// The scheduler's state.
#[derive(Default)]
pub(super) struct Scheduler {
    /// The station-wide version of latest-state datasets (the newest one
    /// given out).
    version: u64,
    /// Whether the update call under way already took its version.
    call_version: Option<u64>,
    shapes: BTreeMap<ClassId, Arc<Shape>>,
    /// Masters with latest-state datasets: their version and recent changes.
    objects: HashMap<DOHandle, ObjState>,
    /// What waits for each destination station.
    dests: BTreeMap<StationId, Dest>,
    /// Budget state of each hop link.
    links: BTreeMap<StationId, LinkBudget>,
    /// Budgets set for one link, overriding the configuration's.
    overrides: BTreeMap<StationId, Option<u64>>,
    gains: HashMap<DOHandle, f64>,
    class_gains: BTreeMap<ClassId, f64>,
    class_intervals: BTreeMap<ClassId, Duration>,
    /// Duplicas: the newest latest-state version applied per dataset, and
    /// the master it came from.
    received: HashMap<DOHandle, Received>,
    /// When the next flush is due.
    pub(super) due: Option<Instant>,
    /// Hops with something the link may resolve (tracked messages in
    /// flight, destinations waiting for their full state to be
    /// acknowledged).
    watched: BTreeSet<StationId>,
}

struct Received {
    master: StationId,
    versions: Vec<u64>,
}

/// A master's latest-state datasets.
struct ObjState {
    version: u64,
    /// By dataset index (empty for reliable datasets).
    rings: Vec<Ring>,
}

/// The recent changes of one dataset: every change after `floor` is in
/// `changes`, as (version, changed fields).
#[derive(Default)]
struct Ring {
    changes: VecDeque<(u64, u64)>,
    floor: u64,
}

impl Ring {
    fn push(&mut self, version: u64, mask: u64) {
        if let Some(last) = self.changes.back_mut() {
            if last.0 == version {
                last.1 |= mask;
                return;
            }
        }
        if self.changes.len() == RING {
            if let Some((v, _)) = self.changes.pop_front() {
                self.floor = v;
            }
        }
        self.changes.push_back((version, mask));
    }

    /// The fields changed after version `a`; `None` when that reaches
    /// beyond what is remembered.
    fn since(&self, a: u64) -> Option<u64> {
        if a < self.floor {
            return None;
        }
        Some(
            self.changes
                .iter()
                .rev()
                .take_while(|(v, _)| *v > a)
                .fold(0, |m, (_, c)| m | c),
        )
    }
}

#[derive(Default)]
struct Dest {
    objects: BTreeMap<DOHandle, Pending>,
}

/// What waits for one object and one destination.
struct Pending {
    /// Fields of reliable datasets changed and not sent yet, by dataset.
    reliable: Vec<u64>,
    /// The newest latest-state version the destination acknowledged
    /// (`None`: nothing known, the next update carries every field).
    acked: Option<u64>,
    /// The version of the newest latest-state update in flight (0: none).
    inflight: u64,
    /// The reliable messages the destination must have before latest-state
    /// updates go.
    confirm: Option<Confirm>,
    acc: f64,
    acc_at: Instant,
    /// Since when something of it waits unsent.
    since: Option<Instant>,
    last_sent: Option<Instant>,
}

struct Confirm {
    hop: StationId,
    mark: Vec<u64>,
    /// The version the destination holds once confirmed.
    base: Option<u64>,
}

/// A tracked message: which states of which objects it carried to whom.
struct Sent {
    dest: StationId,
    at: Instant,
    items: Vec<(DOHandle, u64)>,
}

/// One hop link's budget and tracked messages.
struct LinkBudget {
    tokens: f64,
    at: Instant,
    /// Wire bytes the link had sent at `at`.
    wire: u64,
    inflight: BTreeMap<u64, Sent>,
    /// Measuring the rate: the start of the current second and the wire
    /// bytes then.
    window: (Instant, u64),
    rate: u64,
    /// Not before this instant does a flush send more.
    next: Option<Instant>,
    /// Something changed for this hop since its last flush.
    dirty: bool,
}

/// The figures of one link's budget (see [`StationStats::budgets`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkBudgetStats {
    /// The budget, bytes per second (`None`: no budget).
    pub budget: Option<u64>,
    /// Bytes the link sent per second, over the last full second.
    pub bytes_per_second: u64,
    /// Everything the link sent, bytes (datagrams as they go on the wire).
    pub bytes_sent: u64,
    /// Updates (per object) waiting for this link after the last flush.
    pub deferred: u64,
    /// Their accumulated priority, added up (gain x weight x milliseconds).
    pub queued_priority: u64,
    /// How long the oldest of them has waited.
    pub oldest_deferred: Duration,
    /// Latest-state updates in flight (sent, fate unknown).
    pub in_flight: u64,
}

/// One candidate of a flush.
struct Candidate {
    dest: StationId,
    handle: DOHandle,
    acc: f64,
    since: Instant,
    latest: Option<(u64, Vec<u64>)>,
}

impl Station {
    /// Sets the bandwidth budget of the link to `station` in bytes per
    /// second, overriding [`StationConfig::link_budget`]; `None` leaves
    /// this link without a budget. Dataset updates to the station (and to
    /// those it relays to) then go most important first, as the budget
    /// allows; RMCs and actions never wait for it.
    pub fn set_link_budget(&mut self, station: StationId, bytes_per_second: Option<u64>) {
        self.sched.overrides.insert(station, bytes_per_second);
        if let Some(lb) = self.sched.links.get_mut(&station) {
            lb.dirty = true;
        }
    }

    /// Goes back to [`StationConfig::link_budget`] for the link to `station`.
    pub fn reset_link_budget(&mut self, station: StationId) {
        self.sched.overrides.remove(&station);
    }

    /// The budget of the link to `station`, bytes per second (`None`: none).
    pub fn link_budget(&self, station: StationId) -> Option<u64> {
        self.sched
            .overrides
            .get(&station)
            .copied()
            .unwrap_or(self.cfg.link_budget)
    }

    /// Sets the priority gain of object `handle` (default: its class's,
    /// see [`Station::set_class_priority`], or 1): under a budget, what
    /// waits gains priority at this rate (times its relevance weight), so
    /// an object with gain 4 goes about four times as often as one with
    /// gain 1. Gains are clamped to `0.001..=1e6`.
    pub fn set_priority(&mut self, handle: DOHandle, gain: f32) {
        self.sched.gains.insert(handle, clamp_gain(gain));
    }

    /// Sets the default priority gain of the objects of class `T` (see
    /// [`Station::set_priority`]).
    pub fn set_class_priority<T: DoClass>(&mut self, gain: f32) -> Result<(), StationError> {
        let class = self
            .registry
            .class_id::<T>()
            .ok_or(StationError::UnknownClass(T::CLASS_NAME))?;
        self.sched.class_gains.insert(class, clamp_gain(gain));
        Ok(())
    }

    /// Sends the updates of each object of class `T` at most `hz` times a
    /// second to each station (what changes in between is merged into the
    /// next); `None` (the default) sends them as they come, budget allowing.
    pub fn set_class_send_rate<T: DoClass>(&mut self, hz: Option<f32>) -> Result<(), StationError> {
        let class = self
            .registry
            .class_id::<T>()
            .ok_or(StationError::UnknownClass(T::CLASS_NAME))?;
        match hz.filter(|h| h.is_finite() && *h > 0.0) {
            Some(hz) => {
                let micros = (1e6 / f64::from(hz)).clamp(1.0, 3.6e9) as u64;
                self.sched
                    .class_intervals
                    .insert(class, Duration::from_micros(micros));
            }
            None => {
                self.sched.class_intervals.remove(&class);
            }
        }
        Ok(())
    }

    /// The shape of the class of `handle` (from `cell`, once per class).
    pub(super) fn shape_of(&mut self, handle: DOHandle, cell: &Arc<dyn ErasedCell>) -> Arc<Shape> {
        self.sched
            .shapes
            .entry(handle.class_id())
            .or_insert_with(|| Arc::new(Shape::of(cell)))
            .clone()
    }

    /// Whether dataset updates through the link to `hop` wait for a budget.
    pub(super) fn budgeted(&self, hop: StationId) -> bool {
        self.link_budget(hop).is_some()
    }

    /// Whether any link may have a budget.
    pub(super) fn any_budget(&self) -> bool {
        self.cfg.link_budget.is_some() || self.sched.overrides.values().any(Option::is_some)
    }

    /// Ends an update call: the next one takes a new version.
    pub(super) fn end_update_call(&mut self) {
        self.sched.call_version = None;
    }

    /// The version of the update call under way.
    fn call_version(&mut self) -> u64 {
        match self.sched.call_version {
            Some(v) => v,
            None => {
                self.sched.version += 1;
                self.sched.call_version = Some(self.sched.version);
                self.sched.version
            }
        }
    }

    /// The latest-state version of master `handle` (given one now if it
    /// has none), for its full state; `None` for a class without
    /// latest-state datasets.
    pub(super) fn state_version(&mut self, handle: DOHandle, shape: &Shape) -> Option<u64> {
        if !shape.has_latest() {
            return None;
        }
        if let Some(o) = self.sched.objects.get(&handle) {
            return Some(o.version);
        }
        self.sched.version += 1;
        let v = self.sched.version;
        self.sched.objects.insert(handle, new_obj(shape, v));
        Some(v)
    }

    /// Records changed latest-state fields of master `handle` (`masks`
    /// per dataset, reliable ones zero) for `targets`.
    pub(super) fn record_latest(
        &mut self,
        handle: DOHandle,
        shape: &Shape,
        masks: &[u64],
        targets: &[StationId],
    ) {
        let v = self.call_version();
        let o = self
            .sched
            .objects
            .entry(handle)
            .or_insert_with(|| new_obj(shape, v.saturating_sub(1)));
        o.version = v;
        for (i, &m) in masks.iter().enumerate() {
            if m != 0 {
                if let Some(r) = o.rings.get_mut(i) {
                    r.push(v, m);
                }
            }
        }
        let now = self.now;
        for &t in targets {
            let p = self.pending(t, handle);
            p.since.get_or_insert(now);
        }
    }

    /// Records changed reliable fields of master `handle` for `targets`
    /// (links with a budget).
    pub(super) fn record_reliable(
        &mut self,
        handle: DOHandle,
        masks: &[u64],
        targets: &[StationId],
    ) {
        let now = self.now;
        for &t in targets {
            let p = self.pending(t, handle);
            if p.reliable.len() < masks.len() {
                p.reliable.resize(masks.len(), 0);
            }
            for (a, b) in p.reliable.iter_mut().zip(masks) {
                *a |= *b;
            }
            p.since.get_or_insert(now);
        }
    }

    /// What waits for `dest` about `handle` (made if there is nothing yet:
    /// its latest-state updates wait for what was sent reliably so far).
    fn pending(&mut self, dest: StationId, handle: DOHandle) -> &mut Pending {
        let hop = self.next_hop(dest).unwrap_or(StationId::NONE);
        let mark = self.hop_mark(hop);
        let now = self.now;
        if let Some(lb) = self.sched.links.get_mut(&hop) {
            lb.dirty = true;
        } else {
            let wire = self.wire_sent(hop);
            let lb = new_link_budget(now, wire, self.tcfg.max_datagram_size);
            self.sched.links.insert(hop, lb);
        }
        self.sched.watched.insert(hop);
        self.sched.due = Some(self.sched.due.map_or(now, |d| d.min(now)));
        self.sched
            .dests
            .entry(dest)
            .or_default()
            .objects
            .entry(handle)
            .or_insert_with(|| Pending {
                reliable: Vec::new(),
                acked: None,
                inflight: 0,
                confirm: Some(Confirm {
                    hop,
                    mark,
                    base: None,
                }),
                acc: 0.0,
                acc_at: now,
                since: None,
                last_sent: None,
            })
    }

    /// The reliable mark of the link to `hop` (empty without one).
    fn hop_mark(&self, hop: StationId) -> Vec<u64> {
        self.membership
            .members
            .get(&hop)
            .and_then(|m| m.link.as_ref())
            .map(|l| l.reliable_mark())
            .unwrap_or_default()
    }

    /// The object's full state was just queued for `station` (it joined
    /// the duplica set): what waited for it is moot, and its latest-state
    /// updates resume from that state once the link acknowledged it.
    pub(super) fn sched_dup_added(
        &mut self,
        handle: DOHandle,
        station: StationId,
        version: Option<u64>,
    ) {
        if let Some(d) = self.sched.dests.get_mut(&station) {
            d.objects.remove(&handle);
        }
        let Some(version) = version else {
            return;
        };
        let p = self.pending(station, handle);
        if let Some(c) = p.confirm.as_mut() {
            c.base = Some(version);
        }
    }

    /// `station` left the duplica set of `handle`.
    pub(super) fn sched_dup_removed(&mut self, handle: DOHandle, station: StationId) {
        if let Some(d) = self.sched.dests.get_mut(&station) {
            d.objects.remove(&handle);
        }
    }

    /// This station stopped or started mastering `handle`, or removed it:
    /// its scheduling state goes.
    pub(super) fn sched_forget(&mut self, handle: DOHandle) {
        self.sched.objects.remove(&handle);
        for d in self.sched.dests.values_mut() {
            d.objects.remove(&handle);
        }
    }

    /// Sends at once whatever reliable update of `handle` waits (before its
    /// master moves away).
    pub(super) fn flush_reliable_now(&mut self, handle: DOHandle) {
        let dests: Vec<StationId> = self.sched.dests.keys().copied().collect();
        let Some(e) = self.store.entries.get(&handle) else {
            return;
        };
        let shape = self.shape_of(handle, &e.cell.clone());
        for d in dests {
            let masks = self
                .sched
                .dests
                .get_mut(&d)
                .and_then(|x| x.objects.get_mut(&handle))
                .map(|p| std::mem::take(&mut p.reliable))
                .unwrap_or_default();
            let Some(e) = self.store.entries.get(&handle) else {
                return;
            };
            if let Some(data) = encode_from_snapshot(&e.snapshot, &shape, &masks) {
                self.stats.updates_sent += 1;
                self.send(
                    d,
                    SYSTEM_STREAM,
                    Msg::Update {
                        handle,
                        data: Bytes(data),
                    },
                );
            }
        }
    }

    /// Bytes the link to `hop` sent so far, as datagrams on the wire.
    fn wire_sent(&self, hop: StationId) -> u64 {
        let Some(link) = self
            .membership
            .members
            .get(&hop)
            .and_then(|m| m.link.as_ref())
        else {
            return 0;
        };
        let header = PacketHeader {
            kind: PacketKind::Link,
            session: self.membership.session_tag,
            sender: self.membership.id.0,
            receiver: hop.0,
        }
        .encoded_len();
        let seal = if self.sec.is_some() {
            crate::crypto::DATAGRAM_OVERHEAD
        } else {
            0
        };
        let s = link.stats();
        s.bytes_sent + s.packets_sent * (header + seal) as u64
    }

    /// Something happened to the link to `id` (see `link_changed`): if the
    /// scheduler waits for it, a flush is due.
    pub(super) fn sched_link_changed(&mut self, id: StationId) {
        if !self.sched.watched.contains(&id) {
            return;
        }
        let now = self.now;
        if let Some(lb) = self.sched.links.get_mut(&id) {
            lb.dirty = true;
        }
        self.sched.due = Some(self.sched.due.map_or(now, |d| d.min(now)));
    }

    /// Sends the dataset updates that fit, most important first, on every
    /// link that has some waiting; sets when the next flush is due.
    pub(super) fn flush_updates(&mut self) {
        self.sched.due = None;
        if self.sched.dests.is_empty() && self.sched.links.is_empty() {
            return;
        }
        let now = self.now;
        // Destinations and links that are gone.
        let members = &self.membership.members;
        self.sched
            .dests
            .retain(|d, x| members.contains_key(d) && !x.objects.is_empty());
        self.sched
            .links
            .retain(|h, _| members.get(h).is_some_and(|m| m.link.is_some()));
        let mut by_hop: BTreeMap<StationId, Vec<StationId>> = BTreeMap::new();
        for &d in self.sched.dests.keys() {
            if let Some(h) = self.next_hop(d) {
                by_hop.entry(h).or_default().push(d);
            }
        }
        let datagram = self.tcfg.max_datagram_size;
        for &h in by_hop.keys() {
            if !self.sched.links.contains_key(&h) {
                let lb = new_link_budget(now, self.wire_sent(h), datagram);
                self.sched.links.insert(h, lb);
            }
        }
        let hops: Vec<StationId> = self.sched.links.keys().copied().collect();
        let mut due: Option<Instant> = None;
        let mut watched = BTreeSet::new();
        for hop in hops {
            let dests = by_hop.remove(&hop).unwrap_or_default();
            let (next, watch) = self.flush_hop(hop, &dests);
            if let Some(t) = next {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
            if watch {
                watched.insert(hop);
            }
        }
        // Destinations without a link to reach them wait for one.
        if !by_hop.is_empty() {
            let t = now + Duration::from_millis(20);
            due = Some(due.map_or(t, |d| d.min(t)));
        }
        self.sched.watched = watched;
        self.sched.due = due;
        self.prune_received();
    }

    /// One hop's flush; returns when the next is due and whether the link
    /// has something the scheduler waits for.
    fn flush_hop(&mut self, hop: StationId, dests: &[StationId]) -> (Option<Instant>, bool) {
        let now = self.now;
        let budget = self.link_budget(hop);
        let wire = self.wire_sent(hop);
        let datagram = self.tcfg.max_datagram_size;
        let cap = datagram as f64;
        // The fate of what was sent.
        let mut outcomes = Vec::new();
        if let Some(link) = self
            .membership
            .members
            .get_mut(&hop)
            .and_then(|m| m.link.as_mut())
        {
            while let Some(o) = link.poll_outcome() {
                outcomes.push(o);
            }
        }
        let Some(lb) = self.sched.links.get_mut(&hop) else {
            return (None, false);
        };
        let elapsed = now.saturating_duration_since(lb.at).as_secs_f64();
        let spent = wire.saturating_sub(lb.wire) as f64;
        lb.tokens = match budget {
            Some(rate) => (lb.tokens + rate as f64 * elapsed).min(cap) - spent,
            None => f64::INFINITY,
        };
        lb.at = now;
        lb.wire = wire;
        if now.saturating_duration_since(lb.window.0) >= Duration::from_secs(1) {
            let secs = now.saturating_duration_since(lb.window.0).as_secs_f64();
            lb.rate = (wire.saturating_sub(lb.window.1) as f64 / secs) as u64;
            lb.window = (now, wire);
        }
        let mut resolved = Vec::new();
        for (token, acked) in outcomes {
            if let Some(s) = lb.inflight.remove(&token) {
                resolved.push((s, acked));
            }
        }
        let dirty = std::mem::take(&mut lb.dirty) || !resolved.is_empty();
        let next = lb.next;
        for (s, acked) in resolved {
            let Some(d) = self.sched.dests.get_mut(&s.dest) else {
                continue;
            };
            for (h, v) in s.items {
                let Some(p) = d.objects.get_mut(&h) else {
                    continue;
                };
                if acked && p.acked.is_none_or(|a| a < v) {
                    p.acked = Some(v);
                }
                if p.inflight == v {
                    p.inflight = 0;
                    if !acked {
                        p.since.get_or_insert(s.at);
                    }
                }
            }
        }
        if !dirty && next.is_some_and(|t| t > now) {
            let lb = &self.sched.links[&hop];
            return (next, !lb.inflight.is_empty() || self.has_unconfirmed(dests));
        }
        let (link_allow, queued, srtt) = match self
            .membership
            .members
            .get(&hop)
            .and_then(|m| m.link.as_ref())
        {
            Some(l) => (l.send_allowance(), l.queued_bytes(), l.rtt()),
            None => return (None, false),
        };
        let tokens = self.sched.links[&hop].tokens - queued as f64;
        let mut avail = tokens.min(link_allow as f64);
        let migrating = self.migration.client.is_some();
        // The candidates, with their accumulated priority.
        let mut cands = Vec::new();
        let mut rate_due: Option<Instant> = None;
        let mut unconfirmed = false;
        for &d in dests {
            let handles: Vec<DOHandle> = match self.sched.dests.get(&d) {
                Some(x) => x.objects.keys().copied().collect(),
                None => continue,
            };
            for h in handles {
                let look = self.candidate(d, h, hop, now);
                if let Some(t) = look.rate {
                    rate_due = Some(rate_due.map_or(t, |r| r.min(t)));
                }
                unconfirmed |= look.confirm;
                if let Some(c) = look.cand {
                    cands.push(c);
                }
            }
        }
        cands.sort_by(|a, b| {
            b.acc
                .total_cmp(&a.acc)
                .then(a.since.cmp(&b.since))
                .then((a.dest, a.handle).cmp(&(b.dest, b.handle)))
        });
        // What fits, most important first.
        let latest_max = self
            .membership
            .members
            .get(&hop)
            .and_then(|m| m.link.as_ref())
            .map_or(0, |l| l.max_tracked_message())
            .saturating_sub(BATCH_OVERHEAD / 2);
        let reliable_max = datagram.saturating_sub(100).max(256);
        let mut open: BTreeMap<(StationId, bool), usize> = BTreeMap::new();
        let mut chosen: BTreeMap<(StationId, bool), Vec<Chosen>> = BTreeMap::new();
        let mut left = Vec::new();
        let mut stopped = None;
        let mut oversized = Vec::new();
        let mut held_back = false;
        let full = (cap - queued as f64).min(link_allow as f64);
        for c in cands {
            if migrating && c.latest.is_some() {
                // The link to this client's server is changing.
                held_back = true;
                left.push(c);
                continue;
            }
            if stopped.is_some() {
                left.push(c);
                continue;
            }
            let items = self.items_of(&c);
            if items.is_empty() {
                // Nothing changed since what the destination holds.
                self.settle_empty(&c);
                continue;
            }
            let mut cost = 0usize;
            for (latest, it, _) in &items {
                let size = it.shape.len() + it.fields.len() + 4;
                let max = if *latest { latest_max } else { reliable_max };
                let fill = open.get(&(c.dest, *latest)).copied();
                cost += size
                    + match fill {
                        Some(f) if f + size <= max => 0,
                        _ => BATCH_OVERHEAD,
                    };
            }
            // One larger than the bucket goes when the bucket is full.
            let alone =
                chosen.is_empty() && oversized.is_empty() && cost > datagram && avail >= full;
            if cost as f64 > avail && !alone {
                stopped = Some(cost);
                left.push(c);
                continue;
            }
            avail -= cost as f64;
            for (latest, it, v) in items {
                let size = it.shape.len() + it.fields.len() + 4;
                if latest && size + 16 > latest_max {
                    oversized.push((c.dest, c.handle, v, it));
                    continue;
                }
                let max = if latest { latest_max } else { reliable_max };
                let f = open.entry((c.dest, latest)).or_insert(0);
                *f = if *f > 0 && *f + size <= max {
                    *f + size
                } else {
                    size
                };
                chosen
                    .entry((c.dest, latest))
                    .or_default()
                    .push((c.handle, v, it));
            }
            self.mark_sent(&c, now);
        }
        for (dest, handle, v, it) in oversized {
            self.send_latest_reliably(hop, dest, handle, v, it);
        }
        for ((dest, latest), mut items) in chosen {
            items.sort_by_key(|(h, ..)| *h);
            if latest {
                self.send_latest(hop, dest, items, latest_max);
            } else {
                self.send_reliable_batches(dest, items, reliable_max);
            }
        }
        // The figures, and when to come back.
        let mut deferred = 0u64;
        let mut queued_priority = 0f64;
        let mut oldest = Duration::ZERO;
        for c in &left {
            deferred += 1;
            queued_priority += c.acc;
            oldest = oldest.max(now.saturating_duration_since(c.since));
            self.stats.updates_deferred += 1;
        }
        let lb = self.sched.links.get_mut(&hop);
        let Some(lb) = lb else {
            return (None, false);
        };
        let mut next = rate_due;
        if held_back {
            let t = now + Duration::from_millis(20);
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        if stopped.is_some() {
            let t = match budget {
                // Back once the bucket is full: a datagram's worth goes
                // together, not one small update per packet.
                Some(rate) if rate > 0 && tokens < cap => {
                    let need = cap - tokens.min(cap);
                    let micros = (need / rate as f64 * 1e6).ceil().max(1000.0);
                    now + Duration::from_micros(micros.min(1e7) as u64)
                }
                _ => now + (srtt / 4).max(PATH_RETRY),
            };
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        lb.next = next;
        let in_flight = lb.inflight.len() as u64;
        let watch = in_flight > 0 || unconfirmed;
        self.stats.budgets.insert(
            hop,
            LinkBudgetStats {
                budget,
                bytes_per_second: lb.rate,
                bytes_sent: wire,
                deferred,
                queued_priority: queued_priority.min(u64::MAX as f64) as u64,
                oldest_deferred: oldest,
                in_flight,
            },
        );
        (next, watch)
    }

    fn has_unconfirmed(&self, dests: &[StationId]) -> bool {
        dests.iter().any(|d| {
            self.sched
                .dests
                .get(d)
                .is_some_and(|x| x.objects.values().any(|p| p.confirm.is_some()))
        })
    }

    /// Whether `(dest, handle)` has something to send now, with its
    /// priority brought up to date.
    fn candidate(
        &mut self,
        dest: StationId,
        handle: DOHandle,
        hop: StationId,
        now: Instant,
    ) -> Look {
        let mut look = Look {
            cand: None,
            confirm: false,
            rate: None,
        };
        let me = self.membership.id;
        let keep = self
            .store
            .entries
            .get(&handle)
            .is_some_and(|e| e.master == me && e.dup_set.contains(&dest));
        if !keep {
            if let Some(x) = self.sched.dests.get_mut(&dest) {
                x.objects.remove(&handle);
            }
            return look;
        }
        let version = self.sched.objects.get(&handle).map(|o| o.version);
        let mark_now = self.hop_mark(hop);
        let confirmed = {
            let link = self
                .membership
                .members
                .get(&hop)
                .and_then(|m| m.link.as_ref());
            let Some(p) = self
                .sched
                .dests
                .get_mut(&dest)
                .and_then(|x| x.objects.get_mut(&handle))
            else {
                return look;
            };
            if let Some(c) = &p.confirm {
                if c.hop != hop {
                    // Another path: start over from what it carries.
                    p.confirm = Some(Confirm {
                        hop,
                        mark: mark_now,
                        base: None,
                    });
                    p.acked = None;
                    p.inflight = 0;
                } else if link.is_some_and(|l| l.is_acked_through(&c.mark)) {
                    let base = c.base;
                    p.confirm = None;
                    if let Some(b) = base {
                        if p.acked.is_none_or(|a| a < b) {
                            p.acked = Some(b);
                        }
                    }
                }
            }
            p.confirm.is_none()
        };
        let interval = self.sched.class_intervals.get(&handle.class_id()).copied();
        let gain = self
            .sched
            .gains
            .get(&handle)
            .or_else(|| self.sched.class_gains.get(&handle.class_id()))
            .copied()
            .unwrap_or(1.0);
        let weight = self.relevance_weight(handle, dest);
        let Some(p) = self
            .sched
            .dests
            .get_mut(&dest)
            .and_then(|x| x.objects.get_mut(&handle))
        else {
            return look;
        };
        look.confirm = version.is_some() && !confirmed;
        let need_reliable = p.reliable.iter().any(|m| *m != 0);
        let need_latest =
            version.is_some_and(|v| confirmed && p.acked.is_none_or(|a| a < v) && p.inflight < v);
        if !need_reliable && !need_latest {
            if version.is_none() && !need_reliable {
                if let Some(x) = self.sched.dests.get_mut(&dest) {
                    x.objects.remove(&handle);
                }
            }
            return look;
        }
        if let (Some(i), Some(last)) = (interval, p.last_sent) {
            if now < last + i {
                p.acc_at = now;
                look.rate = Some(last + i);
                return look;
            }
        }
        let dt = now.saturating_duration_since(p.acc_at).as_secs_f64() * 1e3;
        p.acc += gain * weight * (1.0 + dt);
        p.acc_at = now;
        let since = *p.since.get_or_insert(now);
        let acked = p.acked;
        let acc = p.acc;
        let latest = if need_latest {
            self.sched.objects.get(&handle).map(|o| {
                let masks = o
                    .rings
                    .iter()
                    .map(|r| match acked {
                        Some(a) => r.since(a).unwrap_or(u64::MAX),
                        None => u64::MAX,
                    })
                    .collect();
                (o.version, masks)
            })
        } else {
            None
        };
        look.cand = Some(Candidate {
            dest,
            handle,
            acc,
            since,
            latest,
        });
        look
    }

    /// The items a candidate sends: (latest-state?, item, version).
    fn items_of(&mut self, c: &Candidate) -> Vec<(bool, Item, u64)> {
        let Some(e) = self.store.entries.get(&c.handle) else {
            return Vec::new();
        };
        let cell = e.cell.clone();
        let shape = self.shape_of(c.handle, &cell);
        let Some(e) = self.store.entries.get(&c.handle) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let reliable = self
            .sched
            .dests
            .get(&c.dest)
            .and_then(|x| x.objects.get(&c.handle))
            .map(|p| p.reliable.clone())
            .unwrap_or_default();
        let reliable: Vec<u64> = reliable
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let is_rel = shape
                    .datasets
                    .get(i)
                    .is_some_and(|d| d.delivery == Delivery::Reliable);
                if is_rel {
                    *m
                } else {
                    0
                }
            })
            .collect();
        if let Some(it) = Item::from_snapshot(&e.snapshot, &shape, &reliable) {
            out.push((false, it, 0));
        }
        if let Some((v, masks)) = &c.latest {
            let latest_masks: Vec<u64> = shape
                .datasets
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    if d.delivery == Delivery::Latest {
                        masks.get(i).copied().unwrap_or(u64::MAX) & d.all()
                    } else {
                        0
                    }
                })
                .collect();
            if let Some(it) = Item::from_snapshot(&e.snapshot, &shape, &latest_masks) {
                out.push((true, it, *v));
            }
        }
        out
    }

    /// A candidate whose latest-state update turned out empty: the
    /// destination's state is the newest already.
    fn settle_empty(&mut self, c: &Candidate) {
        if let Some(p) = self
            .sched
            .dests
            .get_mut(&c.dest)
            .and_then(|x| x.objects.get_mut(&c.handle))
        {
            if let Some((v, _)) = c.latest {
                p.acked = Some(v);
            }
            p.reliable.clear();
            p.since = None;
            p.acc = 0.0;
        }
    }

    fn mark_sent(&mut self, c: &Candidate, now: Instant) {
        if let Some(p) = self
            .sched
            .dests
            .get_mut(&c.dest)
            .and_then(|x| x.objects.get_mut(&c.handle))
        {
            for m in p.reliable.iter_mut() {
                *m = 0;
            }
            if let Some((v, _)) = c.latest {
                p.inflight = v;
            }
            p.acc = 0.0;
            p.since = None;
            p.last_sent = Some(now);
        }
    }

    /// The weight of `handle` for `station` from interest management: 1
    /// for a class without a policy; for a spatial class, from 1 at the
    /// centre of the station's area down to 0.1 at its edge.
    fn relevance_weight(&self, handle: DOHandle, station: StationId) -> f64 {
        if !self.interest.has_policy(handle.class_id()) {
            return 1.0;
        }
        match self.relevance(handle, station) {
            crate::interest::Relevance::Near { distance, radius } if radius > 0.0 => {
                1.0 - 0.9 * f64::from((distance / radius).clamp(0.0, 1.0))
            }
            _ => 1.0,
        }
    }
}

/// An item chosen for a batch: object, latest-state version, the item.
type Chosen = (DOHandle, u64, Item);

/// What one (destination, object) has: a candidate, or why it waits.
struct Look {
    cand: Option<Candidate>,
    /// Its latest-state updates wait for its full state to be acknowledged.
    confirm: bool,
    /// Its class's send rate holds it back until then.
    rate: Option<Instant>,
}

fn clamp_gain(gain: f32) -> f64 {
    if gain.is_nan() {
        return 1.0;
    }
    f64::from(gain).clamp(1e-3, 1e6)
}

fn new_obj(shape: &Shape, version: u64) -> ObjState {
    ObjState {
        version,
        rings: shape
            .datasets
            .iter()
            .map(|_| Ring {
                changes: VecDeque::new(),
                floor: version,
            })
            .collect(),
    }
}

fn new_link_budget(now: Instant, wire: u64, datagram: usize) -> LinkBudget {
    LinkBudget {
        tokens: datagram as f64,
        at: now,
        wire,
        inflight: BTreeMap::new(),
        window: (now, wire),
        rate: 0,
        next: None,
        dirty: true,
    }
}
