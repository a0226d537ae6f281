//! Sessions: station descriptions, configuration, the core station and
//! session classes, and the events a station reports.

use crate::ids::{DOHandle, ProcessType, StationId};
use crate::object::{decode_value, encode_value, DataSet, DecodeError, DoClass, ObjectProxy};
use crate::rmc::Outcome;
use crate::transport::TransportConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// What the session knows of a station (NetZ `Station`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationInfo {
    /// Its id.
    pub id: StationId,
    /// Client, server or tool.
    pub process_type: ProcessType,
    /// The identification token it joined with.
    pub token: String,
    /// Its address (as seen by the station that admitted it).
    pub addr: SocketAddr,
    /// In a client-server session, the server a client is attached to.
    pub relay: Option<StationId>,
}

impl StationInfo {
    /// NetZ `GetProcessType`.
    pub fn process_type(&self) -> ProcessType {
        self.process_type
    }

    /// NetZ `GetIdentificationToken`.
    pub fn identification_token(&self) -> &str {
        &self.token
    }
}

/// How stations of a session are connected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Topology {
    /// Every station talks to every other station.
    #[default]
    Mesh,
    /// Clients talk only to their server; servers talk to each other and
    /// relay what clients address to each other (works behind NAT).
    ClientServer,
}

/// The configuration of one station.
#[derive(Clone, Debug)]
pub struct StationConfig {
    /// Client, server or tool.
    pub process_type: ProcessType,
    /// The identification token sent when joining (NetZ `GetIdentificationToken`).
    pub token: String,
    /// Mesh or client-server (must match the session's).
    pub topology: Topology,
    /// Transport settings (datagram size, sub-streams, RTO, heartbeats).
    pub transport: TransportConfig,
    /// Silence after which a peer is declared failed.
    pub failure_timeout: Duration,
    /// How long an RMC waits for its reply before `Outcome::TimedOut`.
    pub rmc_timeout: Duration,
    /// How long a join waits for an answer before it fails.
    pub join_timeout: Duration,
    /// How often a join request is resent while unanswered.
    pub join_retry: Duration,
    /// Entropy from the driver (the core has no random source); picks the
    /// session tag and join nonces.
    pub seed: u64,
    /// How many retries `RetryOnTargetValidationFailure` allows.
    pub max_rmc_retries: u32,
    /// How long a server that scales in waits for its clients to migrate
    /// before it disconnects the rest and leaves (the drivers' default for
    /// [`crate::Station::scale_in`]). Default 10 s.
    pub drain_timeout: Duration,
    /// Caps on pending joins, join rates, RMCs in flight and queues
    /// (see [`crate::limits::Limits`]).
    pub limits: crate::limits::Limits,
    /// Authenticated, encrypted datagrams and connect tokens (see
    /// [`crate::crypto`]). `None` (the default) sends datagrams in clear and
    /// admits every joiner the join approval accepts: for trusted networks
    /// and tests only.
    pub security: Option<crate::crypto::SecurityConfig>,
}

impl Default for StationConfig {
    fn default() -> Self {
        StationConfig {
            process_type: ProcessType::Client,
            token: String::new(),
            topology: Topology::Mesh,
            transport: TransportConfig::default(),
            failure_timeout: Duration::from_millis(1500),
            rmc_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(5),
            join_retry: Duration::from_millis(250),
            seed: 0x6e65_747a,
            max_rmc_retries: 3,
            drain_timeout: Duration::from_secs(10),
            limits: crate::limits::Limits::default(),
            security: None,
        }
    }
}

impl StationConfig {
    /// A configuration for the given process type and token.
    pub fn new(process_type: ProcessType, token: impl Into<String>) -> Self {
        StationConfig {
            process_type,
            token: token.into(),
            ..Default::default()
        }
    }
}

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
    ObjectAdded {
        /// Its handle.
        handle: DOHandle,
        /// Whether it is the master.
        master: bool,
    },
    /// An object left the local store.
    ObjectRemoved(DOHandle),
    /// An object's master moved.
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

    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        RoomError {
            code,
            message: message.into(),
        }
    }
}

/// A room as every station sees it (the dataset of its [`RoomObject`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoomInfo {
    /// The room's object.
    pub handle: DOHandle,
    /// The room id; it names the server that hosts the room, so it changes
    /// when the room migrates (the handle does not).
    pub id: String,
    /// The server hosting the room (the room object's master).
    pub server: StationId,
    /// The owner: the only member allowed to migrate the room.
    pub owner: StationId,
    /// The members, sorted.
    pub members: Vec<StationId>,
    /// The properties, sorted by key.
    pub properties: Vec<(String, String)>,
    /// The room objects: masters on the room's server that move with it.
    pub objects: Vec<DOHandle>,
    /// How many times the room migrated.
    pub migrations: u32,
}

/// The dataset of a room.
#[derive(Clone, Debug, Default)]
pub struct RoomData {
    /// The room id.
    pub id: String,
    /// The hosting server's station id.
    pub server: u32,
    /// The owner's station id.
    pub owner: u32,
    /// The members' station ids, sorted.
    pub members: Vec<u32>,
    /// The properties, sorted by key.
    pub properties: Vec<(String, String)>,
    /// The room objects' handles.
    pub objects: Vec<u64>,
    /// How many times the room migrated.
    pub migrations: u32,
    received: u8,
}

impl DataSet for RoomData {
    fn name(&self) -> &'static str {
        "RoomData"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &[
            "id",
            "server",
            "owner",
            "members",
            "properties",
            "objects",
            "migrations",
        ]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 0, 0, 0, 0, 0]
    }
    fn encode_field(&self, index: usize, out: &mut Vec<u8>) {
        match index {
            0 => encode_value(&self.id, out),
            1 => encode_value(&self.server, out),
            2 => encode_value(&self.owner, out),
            3 => encode_value(&self.members, out),
            4 => encode_value(&self.properties, out),
            5 => encode_value(&self.objects, out),
            _ => encode_value(&self.migrations, out),
        }
    }
    fn decode_field(&mut self, index: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.id = decode_value(input, "RoomData.id")?,
            1 => self.server = decode_value(input, "RoomData.server")?,
            2 => self.owner = decode_value(input, "RoomData.owner")?,
            3 => self.members = decode_value(input, "RoomData.members")?,
            4 => self.properties = decode_value(input, "RoomData.properties")?,
            5 => self.objects = decode_value(input, "RoomData.objects")?,
            _ => self.migrations = decode_value(input, "RoomData.migrations")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, revision: u8) {
        self.received = revision;
    }
}

/// The core class of rooms: published by the server that hosts the room,
/// replicated to every station. The session takes a room over when its
/// server fails.
#[derive(Debug, Default)]
pub struct RoomObject {
    /// What the room replicates.
    pub data: RoomData,
}

impl RoomObject {
    pub(crate) fn info(&self, handle: DOHandle) -> RoomInfo {
        let d = &self.data;
        RoomInfo {
            handle,
            id: d.id.clone(),
            server: StationId(d.server),
            owner: StationId(d.owner),
            members: d.members.iter().map(|m| StationId(*m)).collect(),
            properties: d.properties.clone(),
            objects: d.objects.iter().map(|h| DOHandle(*h)).collect(),
            migrations: d.migrations,
        }
    }
}

impl DoClass for RoomObject {
    const CLASS_NAME: &'static str = "Room";
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        RoomObject::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.data as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.data as &mut dyn DataSet)
    }
    fn approve_fault_recovery(&mut self) -> bool {
        true
    }
}

/// The dataset of a station object.
#[derive(Clone, Debug, Default)]
pub struct StationData {
    /// The station id.
    pub id: u32,
    /// The process type (0 client, 1 server, 2 tool).
    pub process_type: u8,
    /// The identification token.
    pub token: String,
    received: u8,
}

impl StationData {
    /// The dataset describing `info`.
    pub fn new(info: &StationInfo) -> Self {
        StationData {
            id: info.id.0,
            process_type: process_type_code(info.process_type),
            token: info.token.clone(),
            received: 0,
        }
    }
}

impl DataSet for StationData {
    fn name(&self) -> &'static str {
        "StationData"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["id", "process_type", "token"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 0]
    }
    fn encode_field(&self, index: usize, out: &mut Vec<u8>) {
        match index {
            0 => encode_value(&self.id, out),
            1 => encode_value(&self.process_type, out),
            _ => encode_value(&self.token, out),
        }
    }
    fn decode_field(&mut self, index: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.id = decode_value(input, "StationData.id")?,
            1 => self.process_type = decode_value(input, "StationData.process_type")?,
            _ => self.token = decode_value(input, "StationData.token")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, revision: u8) {
        self.received = revision;
    }
}

/// The core class of station objects: one per station, mastered by the
/// station itself (published by the session master at join, then migrated).
#[derive(Debug, Default)]
pub struct StationObject {
    /// What the station object replicates.
    pub data: StationData,
}

impl DoClass for StationObject {
    const CLASS_NAME: &'static str = "Station";
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        StationObject::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.data as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.data as &mut dyn DataSet)
    }
    fn approve_fault_recovery(&mut self) -> bool {
        false
    }
}

/// The core well-known session object, mastered by the session master.
#[derive(Debug, Default)]
pub struct SessionObject;

impl DoClass for SessionObject {
    const CLASS_NAME: &'static str = "Session";
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        SessionObject
    }
    fn approve_fault_recovery(&mut self) -> bool {
        true
    }
}

pub(crate) fn process_type_code(p: ProcessType) -> u8 {
    match p {
        ProcessType::Client => 0,
        ProcessType::Server => 1,
        ProcessType::Tool => 2,
    }
}
