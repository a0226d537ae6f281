//! What a station reports to the application: events and the errors they carry.

use crate::ids::{DOHandle, StationId};
use crate::rmc::Outcome;
use crate::StationInfo;
use std::time::Duration;

/// Why joining a session failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The session's join approval denied the request.
    #[error("join denied: {0}")]
    Denied(String),
    /// Nobody answered in time.
    #[error("no answer from the session within the join timeout")]
    TimedOut,
    /// The station is already in a session or joining one.
    #[error("the station is already in a session")]
    AlreadyInSession,
    /// The session uses another topology.
    #[error("the session uses a different topology")]
    TopologyMismatch,
    /// The joiner's classes do not match the session's: the message names
    /// the class and the difference (classes registered in another order,
    /// a method or a field renamed or moved). Additive changes (RMCs,
    /// datasets and fields with a higher revision appended at the end) join.
    #[error("the session's classes differ: {0}")]
    IncompatibleClasses(String),
}

/// Something that happened on the station, for the application's loop.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// This station created a session and is its master.
    SessionCreated {
        /// Our id.
        id: StationId,
    },
    /// This station joined a session.
    Joined {
        /// Our id.
        id: StationId,
        /// The session master.
        session_master: StationId,
    },
    /// A member's datagrams now come from another address (NAT
    /// rebinding, a phone changing networks), and its link follows them.
    PeerAddressChanged {
        /// The member.
        station: StationId,
        /// Where it is reached now.
        addr: std::net::SocketAddr,
    },
    /// Joining failed.
    JoinFailed(JoinError),
    /// A station joined the session.
    StationJoined(StationInfo),
    /// A station left the session gracefully.
    StationLeft(StationId),
    /// A station was declared failed.
    StationFailed(StationId),
    /// The session master changed.
    SessionMasterChanged {
        /// The new session master.
        new_master: StationId,
    },
    /// A join request awaits a decision (`PostponeDecision` was used).
    JoinPending {
        /// The joining station.
        station: StationInfo,
    },
    /// An object entered the local store.
    ///
    /// This event, [`Event::ObjectRemoved`] and [`Event::MasterChanged`]
    /// concern user objects only: the core's own objects (each station's
    /// station object, the session object, rooms) come and go with every
    /// join and leave, and are reported only when
    /// [`StationConfig::core_object_events`](crate::StationConfig::core_object_events)
    /// is set ([`DOHandle::class_id`]`().is_user()` tells them apart).
    ObjectAdded {
        /// Its handle.
        handle: DOHandle,
        /// Whether it is the master.
        master: bool,
    },
    /// An object left the local store (user objects only, see
    /// [`Event::ObjectAdded`]).
    ObjectRemoved(DOHandle),
    /// An object's master moved (user objects only, see
    /// [`Event::ObjectAdded`]).
    MasterChanged {
        /// The object.
        handle: DOHandle,
        /// Its new master station.
        master: StationId,
    },
    /// An operation was rejected by the SafetyExecutive.
    OperationRejected {
        /// The operation's class name.
        kind: &'static str,
        /// Its origin.
        origin: StationId,
    },
    /// An RMC completed.
    RmcCompleted {
        /// How it ended.
        outcome: Outcome,
    },
    /// The session excluded this station, which the others have declared
    /// failed and whose objects they dealt with: it was not run for longer
    /// than the failure timeout (a stopped process, a suspended machine);
    /// or it was on the losing side of a split session once the network
    /// healed (see [`StationConfig::partition_memory`](crate::StationConfig::partition_memory));
    /// or the successor it picked as session master never took over. It
    /// holds no duplica any more and is out of the session
    /// (`Event::Disconnected` follows; a server that is excluded
    /// disconnects its clients with the same reason); the game rejoins (a
    /// new station, with a fresh token where security is on) or stops.
    Excluded {
        /// Why.
        reason: String,
    },
    /// This station is no longer in the session (left, or was declared failed by the others).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A server of the session scales in: it takes no new clients or rooms
    /// and leaves once its drain ends. Reported on every station; a client
    /// whose own server it is (`ours`) should call
    /// [`crate::Station::send_migrate`] when it suits it (Diarkis `OnOffline`).
    Offline {
        /// The server going away.
        server: StationId,
        /// Whether it is this client's server.
        ours: bool,
        /// How long it waits for its clients before disconnecting them.
        drain: Duration,
    },
    /// A migrating client left its old server; the runtime reconnects it to
    /// another one at once (Diarkis `OnDisconnect(isReconnect = true)`). The
    /// application's normal disconnect path must not run.
    MigrateDisconnected {
        /// The server left.
        from: StationId,
        /// The server the client moves to.
        to: StationId,
    },
    /// A migrating client is connected to its new server, with its station
    /// id, objects and duplicas intact; messages held during the switch are
    /// sent now (Diarkis `OnConnect(reconnect = true)`).
    Reconnected {
        /// The new server.
        server: StationId,
    },
    /// A migration could not be done (no other server, or the new server
    /// refused); the client stays on its server.
    MigrateFailed {
        /// Why.
        reason: String,
    },
    /// The answer to a room request of this station (create, join, leave,
    /// set a property).
    RoomResult {
        /// The request id the call returned.
        request: u64,
        /// The room (for a create: the new room).
        room: DOHandle,
        /// The room id, or why the request failed.
        result: Result<String, RoomError>,
    },
    /// A room this station is a member of starts moving to another server
    /// (Diarkis `OnRoomMigrateStart`).
    RoomMigrateStart {
        /// The room.
        room: DOHandle,
    },
    /// A room migration ended (Diarkis `OnRoomMigrateComplete`): on every
    /// member when it succeeded, on the requester when it failed.
    RoomMigrateComplete {
        /// The room.
        room: DOHandle,
        /// Whether the room moved.
        success: bool,
        /// The room's id from now on (its old id when it failed).
        room_id: String,
        /// 0, or one of the `RoomError` codes.
        error_code: u16,
        /// What happened, for people.
        message: String,
    },
    /// An object entered or left a station's relevance (interest
    /// management). On the master: `station` is the other station; on the
    /// duplica's station (which also gets `ObjectRemoved`): itself. An
    /// object entering a station is an `ObjectAdded` there.
    InterestChanged {
        /// The object.
        handle: DOHandle,
        /// The station it entered or left.
        station: StationId,
        /// Entered (true) or left.
        entered: bool,
    },
}

/// Why a room request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("room error {code}: {message}")]
pub struct RoomError {
    /// One of the `RoomError::*` codes.
    pub code: u16,
    /// What went wrong, for people.
    pub message: String,
}

impl RoomError {
    /// Only the room's owner may migrate it.
    pub const NOT_OWNER: u16 = 1;
    /// No such room.
    pub const NO_SUCH_ROOM: u16 = 2;
    /// No other server can take the room.
    pub const NO_SERVER: u16 = 3;
    /// The server is going offline and takes no new rooms.
    pub const SERVER_OFFLINE: u16 = 4;
    /// The room is already migrating.
    pub const MIGRATING: u16 = 5;
    /// Only members may do this.
    pub const NOT_MEMBER: u16 = 6;
    /// A room quota was reached (rooms per station, properties per room,
    /// the size of a property).
    pub const LIMIT: u16 = 7;
    /// No answer came within the RMC timeout (`StationConfig::rmc_timeout`);
    /// the request may have taken effect.
    pub const TIMEOUT: u16 = 8;
    /// The server the request went to left or failed, or this station
    /// left the session, before the answer came; the request may have
    /// taken effect.
    pub const UNREACHABLE: u16 = 9;

    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        RoomError {
            code,
            message: message.into(),
        }
    }
}
