//! Counters and errors of the station.

use super::*;

/// Counters of what a station received, dropped and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StationStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Messages from a member that had no right to send them (see the
    /// authority rules next to the station's dispatch): dropped, changing
    /// nothing.
    pub unauthorized_messages: u64,
    /// [`StationStats::unauthorized_messages`] by message kind.
    pub unauthorized_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Room requests refused by a room quota (rooms per station, properties
    /// per room, sizes).
    pub rooms_limited: u64,
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Datagrams whose header or frames did not parse.
    pub malformed_datagrams: u64,
    /// Datagrams from an address or station that is not in the session.
    pub unknown_sender: u64,
    /// Datagrams tagged with another session.
    pub wrong_session: u64,
    /// Times a member's link followed it to a new address (NAT rebinding,
    /// another network).
    pub address_changes: u64,
    /// Times this station found it had been excluded (not run for longer
    /// than the failure timeout).
    pub exclusions: u64,
    /// Probes sent to stations declared failed (the partition rule).
    pub probes_sent: u64,
    /// Authentic probes received from stations declared failed.
    pub probes_received: u64,
    /// Probes dropped: not from a station this one declared failed, not
    /// authentic, or of another session.
    pub probes_dropped: u64,
    /// Messages that did not decode or made no sense in the current state.
    pub bad_messages: u64,
    /// Object messages naming a class this build does not know.
    pub unknown_class: u64,
    /// Object messages naming an object not in the store.
    pub unknown_object: u64,
    /// Objects lacked here whose changes came, asked for from their
    /// sender (`DuplicaHeld`; at most once a failure timeout each).
    pub missing_objects_asked: u64,
    /// Room answers for no request this station waits on (late, after
    /// the request timed out or its server went, or never asked for).
    pub unmatched_room_replies: u64,
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
    /// Latest-state dataset updates sent (one per object and station;
    /// also counted in [`StationStats::updates_sent`]).
    pub latest_updates_sent: u64,
    /// Latest-state dataset updates applied (also counted in
    /// [`StationStats::updates_applied`]).
    pub latest_updates_applied: u64,
    /// Latest-state states received that were not newer than the duplica's
    /// (late or reordered), per dataset: dropped.
    pub latest_stale_dropped: u64,
    /// Times a dataset update (of one object for one station) waited past
    /// a flush for the budget or the congestion window.
    pub updates_deferred: u64,
    /// The budget figures of each link with a budget or latest-state
    /// traffic, by peer, as of its last flush.
    pub budgets: std::collections::BTreeMap<StationId, super::LinkBudgetStats>,
    /// RMCs and actions executed locally.
    pub calls_executed: u64,
    /// RMCs of this station answered with success.
    pub rmc_round_trips: u64,
    /// Their time from sending to the reply, added up, microseconds (the
    /// mean round trip over an interval is the change of this over the
    /// change of [`StationStats::rmc_round_trips`]).
    pub rmc_round_trip_micros: u64,
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
    /// Join messages dropped because their sender had no right to send
    /// them: a `JoinAccepted` with the wrong nonce, a `JoinForward` or
    /// `JoinDenyForward` from a station that may not send it or for a
    /// request it never forwarded.
    pub join_messages_refused: u64,
    /// Join requests from a member's address not taken as its restart
    /// (the member is still heard from).
    pub join_restarts_refused: u64,
    /// Join requests passed on again (or taken up here): the session
    /// master they were first passed on to went away before it answered.
    pub joins_forwarded_again: u64,
    /// Messages from a client this server reported silent to the session
    /// master, held until its verdict (dropped when the client is
    /// declared gone; beyond `Limits::max_early_messages` a client's are
    /// dropped at once).
    pub reported_client_messages: u64,
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
    /// As many room requests wait for their answer as the limits allow
    /// (`Limits::max_room_requests_in_flight`).
    #[error("{0} room requests wait for their answer already")]
    TooManyRoomRequests(usize),
    /// Only the room's owner may migrate it.
    #[error("only the room owner ({owner}) may migrate room {room_id}")]
    NotRoomOwner {
        /// The room's id.
        room_id: String,
        /// Its owner.
        owner: StationId,
    },
}
