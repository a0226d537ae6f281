//! The core's own classes: station objects, the session object and rooms.

use crate::ids::{DOHandle, StationId};
use crate::object::{decode_value, encode_value, DataSet, DecodeError, DoClass, ObjectProxy};
use crate::StationInfo;

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
            process_type: info.process_type.code(),
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
