//! What the monitor remembers between requests: sampled series, per-link
//! rates, when each object last changed, and the event log.

use netz_core::{DOHandle, Event, Station, StationId};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How many samples are kept.
pub(crate) const HISTORY: usize = 600;
/// How many log entries are kept.
pub(crate) const LOG: usize = 1000;
/// Objects whose changes are tracked (beyond, `last_update_ms_ago` is `null`).
const TRACKED_OBJECTS: usize = 10_000;

/// One sample of the station's activity, over the interval before `t_ms`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Milliseconds since the monitor started.
    pub t_ms: u64,
    /// Link payload bytes received per second, all links.
    pub bytes_in_per_s: f64,
    /// Link payload bytes sent per second, all links.
    pub bytes_out_per_s: f64,
    /// Operations per second: dataset updates sent and applied plus RMCs
    /// and actions executed.
    pub ops_per_s: f64,
    /// The mean smoothed RTT of the links with an RTT sample, milliseconds
    /// (an RMC's round trip takes at least this).
    pub rtt_ms: f64,
    /// The mean round trip of the RMCs answered in the interval, from
    /// sending to the reply, milliseconds (0: none answered).
    pub rmc_ms: f64,
    /// RMCs answered in the interval.
    pub rmcs_answered: u64,
    /// The age of the oldest RMC in flight, milliseconds (0: none).
    pub rmc_oldest_ms: f64,
    /// RMCs in flight.
    pub rmcs_in_flight: usize,
    /// Packets declared lost over packets sent in the interval, percent.
    pub loss_pct: f64,
    /// Stations in the session.
    pub stations: usize,
}

/// One entry of the event log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LogEntry {
    /// Its sequence number (increasing from 0).
    pub seq: u64,
    /// Milliseconds since the monitor started.
    pub t_ms: u64,
    /// What happened: `joined`, `left`, `failed`, `session_master`,
    /// `migration`, `master_change`, `rejected`, `object_removed`,
    /// `offline`, `disconnected`, `reconnected`, `migrate`, `room`,
    /// `join_failed`, `present`.
    pub kind: &'static str,
    /// For people.
    pub text: String,
    /// The station concerned, if one.
    pub station: Option<u32>,
    /// The object concerned, if one (its number as a decimal string).
    pub handle: Option<String>,
}

#[derive(Default)]
struct Inner {
    history: VecDeque<Sample>,
    log: VecDeque<LogEntry>,
    next_seq: u64,
    /// Per peer: the byte counters at the last sample and the rates since.
    links: HashMap<StationId, LinkRate>,
    /// Per object: a hash of its datasets and when it last changed.
    seen: HashMap<DOHandle, (u64, u64)>,
    /// Per object: the master as last known (to tell migrations from recoveries).
    masters: HashMap<DOHandle, StationId>,
    /// Stations that failed or left.
    gone: Vec<StationId>,
    prev: Option<Totals>,
}

#[derive(Clone, Copy, Default)]
struct LinkRate {
    bytes_in: u64,
    bytes_out: u64,
    rate_in: f64,
    rate_out: f64,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    t_ms: u64,
    bytes_in: u64,
    bytes_out: u64,
    ops: u64,
    packets_sent: u64,
    packets_lost: u64,
    rmc_round_trips: u64,
    rmc_round_trip_micros: u64,
}

/// The monitor's memory.
pub(crate) struct Collector {
    started: std::time::Instant,
    pub(crate) interval: Duration,
    inner: Mutex<Inner>,
}

impl Collector {
    pub(crate) fn new(interval: Duration) -> Collector {
        Collector {
            started: std::time::Instant::now(),
            interval,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Bytes per second in and out on the link to `peer` over the last interval.
    pub(crate) fn link_rate(&self, peer: StationId) -> (f64, f64) {
        self.lock()
            .links
            .get(&peer)
            .map(|r| (r.rate_in, r.rate_out))
            .unwrap_or_default()
    }

    /// Milliseconds since `handle`'s datasets were last seen to change.
    pub(crate) fn last_update_ago(&self, handle: DOHandle) -> Option<u64> {
        let now = self.now_ms();
        self.lock()
            .seen
            .get(&handle)
            .map(|(_, t)| now.saturating_sub(*t))
    }

    /// Takes one sample of `st` (called every interval, under the station's lock).
    pub(crate) fn sample(&self, st: &Station) {
        let now = self.now_ms();
        let links = st.link_views();
        let s = st.stats();
        let mut inner = self.lock();
        let mut totals = Totals {
            t_ms: now,
            ops: s.updates_sent + s.updates_applied + s.calls_executed,
            rmc_round_trips: s.rmc_round_trips,
            rmc_round_trip_micros: s.rmc_round_trip_micros,
            ..Totals::default()
        };
        let dt = inner
            .prev
            .map(|p| now.saturating_sub(p.t_ms))
            .unwrap_or(0)
            .max(1) as f64
            / 1000.0;
        let mut rtt_sum = 0.0;
        let mut rtt_n = 0usize;
        let mut fresh = HashMap::new();
        for l in &links {
            totals.bytes_in += l.bytes_received;
            totals.bytes_out += l.bytes_sent;
            totals.packets_sent += l.packets_sent;
            totals.packets_lost += l.packets_lost;
            if l.rtt_samples > 0 {
                rtt_sum += l.rtt.as_secs_f64() * 1000.0;
                rtt_n += 1;
            }
            let old = inner.links.get(&l.peer).copied();
            let (rate_in, rate_out) = match old {
                Some(o) if inner.prev.is_some() => (
                    l.bytes_received.saturating_sub(o.bytes_in) as f64 / dt,
                    l.bytes_sent.saturating_sub(o.bytes_out) as f64 / dt,
                ),
                _ => (0.0, 0.0),
            };
            fresh.insert(
                l.peer,
                LinkRate {
                    bytes_in: l.bytes_received,
                    bytes_out: l.bytes_sent,
                    rate_in,
                    rate_out,
                },
            );
        }
        let rmcs = st.rmc_views();
        let sample = match inner.prev {
            Some(p) => {
                let sent = totals.packets_sent.saturating_sub(p.packets_sent);
                let lost = totals.packets_lost.saturating_sub(p.packets_lost);
                let answered = totals.rmc_round_trips.saturating_sub(p.rmc_round_trips);
                let micros = totals
                    .rmc_round_trip_micros
                    .saturating_sub(p.rmc_round_trip_micros);
                Sample {
                    t_ms: now,
                    bytes_in_per_s: fresh.values().map(|r| r.rate_in).sum(),
                    bytes_out_per_s: fresh.values().map(|r| r.rate_out).sum(),
                    ops_per_s: totals.ops.saturating_sub(p.ops) as f64 / dt,
                    rtt_ms: if rtt_n == 0 {
                        0.0
                    } else {
                        rtt_sum / rtt_n as f64
                    },
                    rmc_ms: if answered == 0 {
                        0.0
                    } else {
                        micros as f64 / answered as f64 / 1000.0
                    },
                    rmcs_answered: answered,
                    rmc_oldest_ms: rmcs
                        .first()
                        .map(|r| r.age.as_secs_f64() * 1000.0)
                        .unwrap_or(0.0),
                    rmcs_in_flight: rmcs.len(),
                    loss_pct: if sent == 0 {
                        0.0
                    } else {
                        (100.0 * lost as f64 / sent as f64).min(100.0)
                    },
                    stations: st.stations().len(),
                }
            }
            None => Sample {
                t_ms: now,
                stations: st.stations().len(),
                ..Sample::default()
            },
        };
        inner.links = fresh;
        inner.prev = Some(totals);
        inner.history.push_back(sample);
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        // Which objects changed since the last sample.
        let handles = st.objects();
        let mut seen = HashMap::with_capacity(handles.len().min(TRACKED_OBJECTS));
        for h in handles.into_iter().take(TRACKED_OBJECTS) {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            if let Some(ds) = st.dataset_views(h) {
                for d in &ds {
                    d.revision.hash(&mut hasher);
                    for f in &d.fields {
                        f.bytes.hash(&mut hasher);
                    }
                }
            }
            let hash = hasher.finish();
            let t = match inner.seen.get(&h) {
                Some((old, t)) if *old == hash => *t,
                _ => now,
            };
            seen.insert(h, (hash, t));
            if let Some(m) = st.master_of(h) {
                inner.masters.insert(h, m);
            }
        }
        inner.seen = seen;
    }

    /// Records one entry of the log.
    pub(crate) fn log(
        &self,
        kind: &'static str,
        text: String,
        station: Option<StationId>,
        handle: Option<DOHandle>,
    ) {
        let t_ms = self.now_ms();
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.log.push_back(LogEntry {
            seq,
            t_ms,
            kind,
            text,
            station: station.map(|s| s.0),
            handle: handle.map(|h| h.0.to_string()),
        });
        while inner.log.len() > LOG {
            inner.log.pop_front();
        }
    }

    /// Turns a station event into log entries (most events are logged;
    /// object additions and RMC completions are too many to be).
    pub(crate) fn on_event(&self, e: &Event, st_name: impl Fn(StationId) -> String) {
        match e {
            Event::SessionCreated { id } => self.log(
                "joined",
                format!("{} created the session", st_name(*id)),
                Some(*id),
                None,
            ),
            Event::Joined { id, session_master } => self.log(
                "joined",
                format!(
                    "{} joined (session master S{})",
                    st_name(*id),
                    session_master.0
                ),
                Some(*id),
                None,
            ),
            Event::JoinFailed(err) => {
                self.log("join_failed", format!("join failed: {err:?}"), None, None)
            }
            Event::StationJoined(info) => self.log(
                "joined",
                format!(
                    "S{} joined: {} {:?} at {}",
                    info.id.0,
                    crate::api::process_type_name(info.process_type),
                    info.token,
                    info.addr
                ),
                Some(info.id),
                None,
            ),
            Event::StationLeft(id) => {
                self.lock().gone.push(*id);
                self.log("left", format!("{} left", st_name(*id)), Some(*id), None)
            }
            Event::StationFailed(id) => {
                self.lock().gone.push(*id);
                self.log(
                    "failed",
                    format!("{} failed (silent too long)", st_name(*id)),
                    Some(*id),
                    None,
                )
            }
            Event::SessionMasterChanged { new_master } => self.log(
                "session_master",
                format!("the session master is now {}", st_name(*new_master)),
                Some(*new_master),
                None,
            ),
            Event::MasterChanged { handle, master } => {
                let (old, gone) = {
                    let mut inner = self.lock();
                    let old = inner.masters.insert(*handle, *master);
                    let gone = old.is_some_and(|o| inner.gone.contains(&o));
                    (old, gone)
                };
                let from = old.map(|o| format!(" from S{}", o.0)).unwrap_or_default();
                if gone {
                    self.log(
                        "master_change",
                        format!("{handle}: master recovered{from} to S{}", master.0),
                        Some(*master),
                        Some(*handle),
                    )
                } else {
                    self.log(
                        "migration",
                        format!("{handle}: master migrated{from} to S{}", master.0),
                        Some(*master),
                        Some(*handle),
                    )
                }
            }
            Event::ObjectRemoved(h) => {
                self.log("object_removed", format!("{h} removed"), None, Some(*h))
            }
            Event::OperationRejected { kind, origin } => self.log(
                "rejected",
                format!(
                    "the SafetyExecutive rejected {kind} from {}",
                    st_name(*origin)
                ),
                Some(*origin),
                None,
            ),
            Event::Offline { server, drain, .. } => self.log(
                "offline",
                format!(
                    "{} scales in (drain {} ms)",
                    st_name(*server),
                    drain.as_millis()
                ),
                Some(*server),
                None,
            ),
            Event::Disconnected { reason } => self.log(
                "disconnected",
                format!("disconnected: {reason}"),
                None,
                None,
            ),
            Event::MigrateDisconnected { from, to } => self.log(
                "migrate",
                format!("moving from S{} to S{}", from.0, to.0),
                Some(*to),
                None,
            ),
            Event::Reconnected { server } => self.log(
                "reconnected",
                format!("reconnected to S{}", server.0),
                Some(*server),
                None,
            ),
            Event::MigrateFailed { reason } => {
                self.log("migrate", format!("migration failed: {reason}"), None, None)
            }
            Event::RoomMigrateComplete {
                room,
                success,
                room_id,
                ..
            } => self.log(
                "room",
                format!(
                    "room {room_id} moved: {}",
                    if *success { "done" } else { "failed" }
                ),
                None,
                Some(*room),
            ),
            _ => {}
        }
    }

    /// Every sample, oldest first.
    pub(crate) fn history(&self) -> Vec<Sample> {
        self.lock().history.iter().cloned().collect()
    }

    /// The newest sample.
    pub(crate) fn latest(&self) -> Option<Sample> {
        self.lock().history.back().cloned()
    }

    /// Log entries with `seq >= since`, and the next sequence number.
    pub(crate) fn events_since(&self, since: u64) -> (Vec<LogEntry>, u64) {
        let inner = self.lock();
        (
            inner
                .log
                .iter()
                .filter(|e| e.seq >= since)
                .cloned()
                .collect(),
            inner.next_seq,
        )
    }
}
