//! The JSON documents of the API (see the crate documentation for the
//! endpoints) and how they are built from a station.

use crate::collect::{Collector, LogEntry, Sample};
use crate::token::to_hex;
use netz_core::views::{DatasetView, LinkView, ObjectView};
use netz_core::{DOHandle, ProcessType, Station, StationId, Topology};
use serde::Serialize;
use std::collections::BTreeMap;

/// `GET /api/session`: the stations, this station's links and counters.
#[derive(Clone, Debug, Serialize)]
pub struct SessionJson {
    /// The id of the station serving the page (0 before it is in a session).
    pub self_id: u32,
    /// Its UDP address.
    pub self_addr: String,
    /// Its process type: `"client"`, `"server"` or `"tool"`.
    pub process_type: &'static str,
    /// Whether it is in a session.
    pub in_session: bool,
    /// The session master's id (0: none).
    pub session_master: u32,
    /// `"mesh"` or `"client_server"`.
    pub topology: &'static str,
    /// Milliseconds since the monitor started.
    pub uptime_ms: u64,
    /// Every station of the session, by id.
    pub stations: Vec<StationJson>,
    /// This station's links, by peer id.
    pub links: Vec<LinkJson>,
    /// This station's counters.
    pub stats: StatsJson,
    /// The RMCs this station waits for, oldest first.
    pub rmcs_in_flight: Vec<RmcJson>,
}

/// One station of the session.
#[derive(Clone, Debug, Serialize)]
pub struct StationJson {
    /// Its id.
    pub id: u32,
    /// `"client"`, `"server"` or `"tool"`.
    pub process_type: &'static str,
    /// The identification token (name) it joined with.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// In a client-server session, the server a client is attached to.
    pub relay: Option<u32>,
    /// Whether it is the session master.
    pub is_session_master: bool,
    /// Whether it is the station serving the page.
    pub is_self: bool,
}

/// One link of the station serving the page (`from`) to a peer.
#[derive(Clone, Debug, Serialize)]
pub struct LinkJson {
    /// The station serving the page.
    pub from: u32,
    /// The peer.
    pub peer: u32,
    /// The peer's address.
    pub addr: String,
    /// Smoothed round-trip time, milliseconds.
    pub rtt_ms: f64,
    /// RTT samples taken (0: `rtt_ms` is the initial guess).
    pub rtt_samples: u64,
    /// Retransmission timeout, milliseconds.
    pub rto_ms: f64,
    /// Packets declared lost over packets sent since the link started, percent.
    pub loss_pct: f64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Reliable segments sent again.
    pub retransmissions: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Bytes per second received over the last sample interval.
    pub bytes_in_per_s: f64,
    /// Bytes per second sent over the last sample interval.
    pub bytes_out_per_s: f64,
    /// Packets in flight.
    pub packets_in_flight: usize,
    /// The congestion window, bytes (0 where congestion control is off).
    pub cwnd: u64,
    /// Bytes of ack-eliciting packets in flight.
    pub bytes_in_flight: u64,
    /// Times the congestion controller reduced the window.
    pub congestion_events: u64,
    /// Bytes queued, not yet sent.
    pub queued_bytes: usize,
    /// Milliseconds since the peer was last heard.
    pub last_heard_ms: u64,
    /// Whether the failure detector finds the peer silent.
    pub silent: bool,
}

/// The station's counters (a subset of `netz_core::StationStats`).
#[derive(Clone, Debug, Serialize)]
pub struct StatsJson {
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Dataset updates sent.
    pub updates_sent: u64,
    /// Dataset updates applied.
    pub updates_applied: u64,
    /// RMCs and actions executed here.
    pub calls_executed: u64,
    /// Operations rejected by the SafetyExecutive.
    pub operations_rejected: u64,
    /// Messages relayed for other stations.
    pub relayed: u64,
    /// Object messages naming a class this build does not know.
    pub unknown_class: u64,
    /// Malformed datagrams.
    pub malformed_datagrams: u64,
    /// Datagrams that failed authentication (security on).
    pub auth_failed: u64,
}

/// One RMC in flight.
#[derive(Clone, Debug, Serialize)]
pub struct RmcJson {
    /// The called object's handle (a decimal string, see [`ObjectJson::handle`]).
    pub handle: String,
    /// The method's name, or its id.
    pub method: String,
    /// Where it was sent.
    pub target: u32,
    /// Milliseconds since it was sent.
    pub age_ms: f64,
}

/// One object of the store (`GET /api/objects`).
#[derive(Clone, Debug, Serialize)]
pub struct ObjectJson {
    /// The handle's 64-bit number as a decimal string (JavaScript numbers
    /// cannot hold it); use it in `/api/objects/{handle}`.
    pub handle: String,
    /// The handle as people read it: `DO(class:creator/serial)`.
    pub name: String,
    /// The class id.
    pub class_id: u8,
    /// The class name, or `"class N"` when this build does not know it.
    pub class: String,
    /// The master station.
    pub master: u32,
    /// Whether the station serving the page holds the master.
    pub is_master: bool,
    /// The duplica set (known on the master's station only, else `null`).
    pub dup_set: Option<Vec<u32>>,
    /// How many datasets it has.
    pub datasets: usize,
    /// Milliseconds since the monitor last saw its datasets change (or
    /// first saw the object); `null` when not seen yet.
    pub last_update_ms_ago: Option<u64>,
}

/// `GET /api/objects/{handle}`: an object and its datasets' current values.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectDetailJson {
    /// The object.
    pub object: ObjectJson,
    /// Its datasets.
    pub datasets: Vec<DatasetJson>,
}

/// One dataset.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetJson {
    /// Its name.
    pub name: &'static str,
    /// Its received revision.
    pub revision: u8,
    /// Its fields.
    pub fields: Vec<FieldJson>,
}

/// One field's current value.
#[derive(Clone, Debug, Serialize)]
pub struct FieldJson {
    /// Its name.
    pub name: &'static str,
    /// The wire encoding (postcard) in lowercase hex.
    pub hex: String,
    /// The encoding's length in bytes.
    pub len: usize,
    /// A best-effort reading of the bytes (a string, or an unsigned and a
    /// zigzag integer), `null` when none fits. Postcard carries no types,
    /// so this is a guess; `hex` is the truth.
    pub guess: Option<String>,
}

/// `GET /api/classes`: per class, masters and duplicas per station.
#[derive(Clone, Debug, Serialize)]
pub struct ClassJson {
    /// The class id.
    pub class_id: u8,
    /// The class name.
    pub class: String,
    /// Objects of the class in the store.
    pub objects: usize,
    /// Per station (every station of the session), by id.
    pub per_station: Vec<ClassCountJson>,
}

/// Masters and duplicas of one class on one station.
#[derive(Clone, Debug, Serialize)]
pub struct ClassCountJson {
    /// The station.
    pub station: u32,
    /// Masters of the class it holds.
    pub masters: usize,
    /// Duplicas of the class it holds: exact for objects whose master is
    /// the station serving the page (their duplica set is known) and for
    /// that station itself; otherwise counted by netz's rule that a master
    /// duplicates its object to every station of the session.
    pub duplicas: usize,
}

/// `GET /api/history`: the sampled series, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryJson {
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// The samples (at most the last five minutes).
    pub samples: Vec<Sample>,
}

/// `GET /api/events`: the event log from `since` on.
#[derive(Clone, Debug, Serialize)]
pub struct EventsJson {
    /// Pass as `since` to get only newer entries.
    pub next: u64,
    /// The entries, oldest first.
    pub events: Vec<LogEntry>,
}

/// One message of `GET /api/live` (server-sent event `update`).
#[derive(Clone, Debug, Serialize)]
pub struct LiveJson {
    /// As `GET /api/session`.
    pub session: SessionJson,
    /// As `GET /api/classes`.
    pub classes: Vec<ClassJson>,
    /// As `GET /api/objects` (at most [`LIVE_OBJECTS`] of them).
    pub objects: Vec<ObjectJson>,
    /// How many objects the store holds in all.
    pub object_count: usize,
    /// The newest sample, if any.
    pub sample: Option<Sample>,
    /// Log entries since the previous message (all retained ones in the first).
    pub events: Vec<LogEntry>,
}

/// The most objects a live message carries; `GET /api/objects` has them all.
pub const LIVE_OBJECTS: usize = 2000;

/// The name of a process type in the API.
pub fn process_type_name(p: ProcessType) -> &'static str {
    match p {
        ProcessType::Client => "client",
        ProcessType::Server => "server",
        ProcessType::Tool => "tool",
        _ => "other",
    }
}

pub(crate) fn session_json(st: &Station, col: &Collector, local_addr: String) -> SessionJson {
    let me = st.id();
    let master = st.session_master();
    let stations = st
        .stations()
        .into_iter()
        .map(|s| StationJson {
            id: s.id.0,
            process_type: process_type_name(s.process_type),
            name: s.token.clone(),
            addr: s.addr.to_string(),
            relay: s.relay.map(|r| r.0),
            is_session_master: s.id == master,
            is_self: s.id == me,
        })
        .collect();
    let links = st
        .link_views()
        .iter()
        .map(|l| link_json(me, l, col))
        .collect();
    let s = st.stats();
    SessionJson {
        self_id: me.0,
        self_addr: local_addr,
        process_type: process_type_name(st.config().process_type),
        in_session: st.is_in_session(),
        session_master: master.0,
        topology: match st.config().topology {
            Topology::ClientServer => "client_server",
            _ => "mesh",
        },
        uptime_ms: col.now_ms(),
        stations,
        links,
        stats: StatsJson {
            datagrams_received: s.datagrams_received,
            datagrams_sent: s.datagrams_sent,
            updates_sent: s.updates_sent,
            updates_applied: s.updates_applied,
            calls_executed: s.calls_executed,
            operations_rejected: s.operations_rejected,
            relayed: s.relayed,
            unknown_class: s.unknown_class,
            malformed_datagrams: s.malformed_datagrams,
            auth_failed: s.auth_failed,
        },
        rmcs_in_flight: st
            .rmc_views()
            .into_iter()
            .take(100)
            .map(|r| RmcJson {
                handle: r.handle.0.to_string(),
                method: r
                    .method_name
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("#{}", r.method)),
                target: r.target.0,
                age_ms: ms(r.age),
            })
            .collect(),
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn link_json(me: StationId, l: &LinkView, col: &Collector) -> LinkJson {
    let (rate_in, rate_out) = col.link_rate(l.peer);
    LinkJson {
        from: me.0,
        peer: l.peer.0,
        addr: l.addr.to_string(),
        rtt_ms: ms(l.rtt),
        rtt_samples: l.rtt_samples,
        rto_ms: ms(l.rto),
        loss_pct: if l.packets_sent == 0 {
            0.0
        } else {
            100.0 * l.packets_lost as f64 / l.packets_sent as f64
        },
        packets_sent: l.packets_sent,
        packets_received: l.packets_received,
        packets_lost: l.packets_lost,
        retransmissions: l.retransmissions,
        bytes_sent: l.bytes_sent,
        bytes_received: l.bytes_received,
        bytes_in_per_s: rate_in,
        bytes_out_per_s: rate_out,
        packets_in_flight: l.packets_in_flight,
        cwnd: l.cwnd,
        bytes_in_flight: l.bytes_in_flight,
        congestion_events: l.congestion_events,
        queued_bytes: l.queued_bytes,
        last_heard_ms: l.last_received_ago.as_millis() as u64,
        silent: l.silent,
    }
}

pub(crate) fn object_json(o: &ObjectView, col: &Collector) -> ObjectJson {
    ObjectJson {
        handle: o.handle.0.to_string(),
        name: o.handle.to_string(),
        class_id: o.class_id.0,
        class: class_name(o),
        master: o.master.0,
        is_master: o.is_master,
        dup_set: o.dup_set.as_ref().map(|d| d.iter().map(|s| s.0).collect()),
        datasets: o.dataset_count,
        last_update_ms_ago: col.last_update_ago(o.handle),
    }
}

fn class_name(o: &ObjectView) -> String {
    o.class_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("class {}", o.class_id.0))
}

/// Whether an object matches a search: a case-insensitive substring of its
/// name, class, handle number or master (`S3`).
pub(crate) fn matches(o: &ObjectJson, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    q.is_empty()
        || o.name.to_lowercase().contains(&q)
        || o.class.to_lowercase().contains(&q)
        || o.handle.contains(&q)
        || format!("s{}", o.master) == q
}

pub(crate) fn detail_json(
    st: &Station,
    handle: DOHandle,
    col: &Collector,
) -> Option<ObjectDetailJson> {
    let o = st.object_view(handle)?;
    let datasets = st.dataset_views(handle)?;
    Some(ObjectDetailJson {
        object: object_json(&o, col),
        datasets: datasets.iter().map(dataset_json).collect(),
    })
}

fn dataset_json(d: &DatasetView) -> DatasetJson {
    DatasetJson {
        name: d.name,
        revision: d.revision,
        fields: d
            .fields
            .iter()
            .map(|f| FieldJson {
                name: f.name,
                hex: to_hex(&f.bytes),
                len: f.bytes.len(),
                guess: guess(&f.bytes),
            })
            .collect(),
    }
}

/// Reads a postcard varint from the front of `b`.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A best-effort reading of a postcard encoding: a string, a bool-like
/// byte, or an integer (unsigned and zigzag).
pub(crate) fn guess(b: &[u8]) -> Option<String> {
    let (v, n) = varint(b)?;
    if n == b.len() {
        let zigzag = ((v >> 1) as i64) ^ -((v & 1) as i64);
        return Some(format!("{v} (signed: {zigzag})"));
    }
    if usize::try_from(v).ok()? == b.len() - n {
        let s = std::str::from_utf8(&b[n..]).ok()?;
        if !s.chars().any(char::is_control) {
            return Some(format!("{s:?}"));
        }
    }
    None
}

/// Per station: masters and duplicas.
type PerStation = BTreeMap<StationId, (usize, usize)>;

pub(crate) fn classes_json(st: &Station, objects: &[ObjectView]) -> Vec<ClassJson> {
    let members: Vec<StationId> = st.stations().iter().map(|s| s.id).collect();
    // class -> station -> (masters, duplicas)
    let mut by_class: BTreeMap<u8, (String, usize, PerStation)> = BTreeMap::new();
    for o in objects {
        let entry = by_class
            .entry(o.class_id.0)
            .or_insert_with(|| (class_name(o), 0, BTreeMap::new()));
        entry.1 += 1;
        entry.2.entry(o.master).or_default().0 += 1;
        let holders: Vec<StationId> = match &o.dup_set {
            Some(d) => d.clone(),
            None => members.iter().copied().filter(|s| *s != o.master).collect(),
        };
        for s in holders {
            entry.2.entry(s).or_default().1 += 1;
        }
    }
    by_class
        .into_iter()
        .map(|(id, (class, count, per))| ClassJson {
            class_id: id,
            class,
            objects: count,
            per_station: members
                .iter()
                .map(|s| {
                    let (m, d) = per.get(s).copied().unwrap_or_default();
                    ClassCountJson {
                        station: s.0,
                        masters: m,
                        duplicas: d,
                    }
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_read_strings_and_integers_and_refuse_the_rest() {
        assert_eq!(guess(&[5]).as_deref(), Some("5 (signed: -3)"));
        assert_eq!(guess(&[0xac, 0x02]).as_deref(), Some("300 (signed: 150)"));
        assert_eq!(guess(&[2, b'h', b'i']).as_deref(), Some("\"hi\""));
        assert_eq!(guess(&[]), None);
        assert_eq!(guess(&[0x80]), None);
        assert_eq!(guess(&[2, 0xff, 0xfe]), None);
        assert_eq!(guess(&[9, 1, 2]), None);
    }
}
