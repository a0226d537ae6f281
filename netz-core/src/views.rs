//! Plain, read-only snapshots of a station's state for monitoring tools.
//!
//! What [`crate::Station`]'s `*_view` accessors return: owned copies that
//! hold no lock and no reference into the station, so a tool can take them
//! under the driver's lock and format them at leisure.

use crate::ids::{ClassId, DOHandle, StationId};
use std::net::SocketAddr;
use std::time::Duration;

/// One live link of the station to a peer, with its transport figures.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkView {
    /// The peer station.
    pub peer: StationId,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The smoothed round-trip time.
    pub rtt: Duration,
    /// The current retransmission timeout, backoff included.
    pub rto: Duration,
    /// Round-trip time samples taken (0: [`LinkView::rtt`] is the initial guess).
    pub rtt_samples: u64,
    /// Packets sent on the link.
    pub packets_sent: u64,
    /// Packets received and accepted on the link.
    pub packets_received: u64,
    /// Sent packets declared lost.
    pub packets_lost: u64,
    /// Reliable segments sent again.
    pub retransmissions: u64,
    /// Link payload bytes sent (headers excluded).
    pub bytes_sent: u64,
    /// Link payload bytes received (headers excluded).
    pub bytes_received: u64,
    /// Packets sent and not yet acknowledged or declared lost.
    pub packets_in_flight: usize,
    /// The round-trip time variation.
    pub rttvar: Duration,
    /// The congestion window, in bytes.
    pub cwnd: u64,
    /// Bytes of ack-eliciting packets in flight.
    pub bytes_in_flight: u64,
    /// Times the congestion window was reduced after a loss.
    pub congestion_events: u64,
    /// Reliable segments waiting to be sent again.
    pub retransmit_backlog: u64,
    /// Bytes queued to send, not yet in a packet.
    pub queued_bytes: usize,
    /// How long ago the last packet from the peer arrived.
    pub last_received_ago: Duration,
    /// Whether the failure detector currently finds the peer silent.
    pub silent: bool,
    /// The link's bandwidth budget, bytes per second (`None`: none).
    pub budget: Option<u64>,
    /// Bytes the link sent per second over the last full second, as of
    /// the last flush of dataset updates (0 before one).
    pub bytes_per_second: u64,
    /// Dataset updates (per object) waiting for the link.
    pub deferred_updates: u64,
    /// Their accumulated priority, added up.
    pub queued_priority: u64,
    /// How long the oldest of them has waited.
    pub oldest_deferred: Duration,
}

/// One object of the local store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectView {
    /// Its handle.
    pub handle: DOHandle,
    /// Its class id.
    pub class_id: ClassId,
    /// Its class name, when the registry knows the class.
    pub class_name: Option<&'static str>,
    /// The station holding the master.
    pub master: StationId,
    /// Whether the local copy is the master.
    pub is_master: bool,
    /// The duplica set, known on the master only (`None` on a duplica).
    pub dup_set: Option<Vec<StationId>>,
    /// How many datasets the object has.
    pub dataset_count: usize,
}

/// One field of a dataset: its name and its current encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldView {
    /// The field's name.
    pub name: &'static str,
    /// The revision from which the field is valid.
    pub valid_from_revision: u8,
    /// The field's current value, encoded as it goes on the wire (postcard).
    pub bytes: Vec<u8>,
}

/// One dataset of an object with its fields' current values.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatasetView {
    /// The dataset's name.
    pub name: &'static str,
    /// The revision of the received dataset (the declared one on a master).
    pub revision: u8,
    /// Its fields in declaration order.
    pub fields: Vec<FieldView>,
}

/// One RMC this station sent and still waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RmcView {
    /// The called object.
    pub handle: DOHandle,
    /// The method id.
    pub method: u16,
    /// The method's name, when the registry knows the class.
    pub method_name: Option<&'static str>,
    /// The station the call was sent to.
    pub target: StationId,
    /// How long ago it was sent.
    pub age: Duration,
    /// How often it was sent again to another station.
    pub retries: u32,
}

/// The sizes of a station's tables that remote input can grow (each is
/// bounded); for tests and monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bookkeeping {
    /// Rooms whose migration start or completion was reported.
    pub room_reports: usize,
    /// Relayed messages kept for stations not known yet.
    pub early_relayed: usize,
    /// Their encoded bytes.
    pub early_relayed_bytes: usize,
    /// Messages to this client held behind a gap in their sender's order.
    pub held_in_order: usize,
    /// Master changes waiting for the old master's word, or for their new
    /// master to be announced.
    pub pending_masters: usize,
    /// RMCs in flight.
    pub pending_calls: usize,
    /// Postponed calls.
    pub postponed_calls: usize,
    /// Duplicas whose latest-state versions are remembered (at most about
    /// twice the store, see [`crate::Delivery::Latest`]).
    pub latest_versions: usize,
    /// The encoded bytes kept of what a station whose takeover this one
    /// refused says as session master (at most 256 KiB).
    pub successor_bytes: usize,
    /// Recent hand-overs this station saw (at most 4,096).
    pub hand_overs_seen: usize,
    /// Recently refused changes of duplicas (at most 1,024).
    pub refused_changes: usize,
    /// Objects lacked here whose changes came, recently asked for (at
    /// most 1,024).
    pub missing_asked: usize,
}
