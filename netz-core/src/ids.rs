//! Identifiers: stations, classes, methods and duplicated-object handles.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// Identifies a station (one process) inside a session. Assigned by the
/// session master when the station joins; the session's creator is `1`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct StationId(pub u32);

impl StationId {
    /// "No station": used before an id is assigned.
    pub const NONE: StationId = StationId(0);

    /// Whether this is a real station id.
    pub fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Debug for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S{}", self.0)
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S{}", self.0)
    }
}

/// The kind of process a station is (NetZ `Station::GetProcessType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProcessType {
    /// A game client.
    Client,
    /// A game server.
    Server,
    /// A tool (monitor, debugger); not counted as a player.
    Tool,
}

impl ProcessType {
    /// Every process type.
    pub const ALL: [ProcessType; 3] = [ProcessType::Client, ProcessType::Server, ProcessType::Tool];

    /// Its one-byte code in station objects and connect tokens.
    pub fn code(self) -> u8 {
        match self {
            ProcessType::Client => 0,
            ProcessType::Server => 1,
            ProcessType::Tool => 2,
        }
    }

    /// The process type of a one-byte code.
    pub fn from_code(code: u8) -> Option<ProcessType> {
        ProcessType::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Its lowercase name: `client`, `server` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessType::Client => "client",
            ProcessType::Server => "server",
            ProcessType::Tool => "tool",
        }
    }
}

impl std::str::FromStr for ProcessType {
    type Err = String;

    /// Parses `client`, `server` or `tool`.
    fn from_str(s: &str) -> Result<ProcessType, String> {
        ProcessType::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not server, client or tool"))
    }
}

/// A duplicated-object class id. User classes use 100..=255; lower ids are
/// the core's own classes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct ClassId(pub u8);

impl ClassId {
    /// The core class of station objects.
    pub const STATION: ClassId = ClassId(1);
    /// The core class of the session object.
    pub const SESSION: ClassId = ClassId(2);
    /// The core class of rooms (the `RoomObject` of the built-in classes).
    pub const ROOM: ClassId = ClassId(3);
    /// The first id handed to user classes.
    pub const FIRST_USER: u8 = 100;

    /// Whether this is a user class (id 100 or above).
    pub fn is_user(self) -> bool {
        self.0 >= Self::FIRST_USER
    }
}

/// A method id: the index of an RMC or action in its class, in declaration order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct MethodId(pub u16);

/// The handle of a duplicated object: its class id plus an instance id that
/// is unique in the session (NetZ `DOHandle`).
///
/// Layout of the 64 bits: class id (8) | creating station (24) | serial (32).
/// Well-known objects are created by "station 0".
///
/// The default handle (`DOHandle::NULL`) names no object.
///
/// It is serialized as its three parts `(class u8, creator u32, serial
/// u32)`: with postcard's varints, 3 to 5 bytes for the usual handle
/// instead of 9 for the whole word.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DOHandle(pub u64);

impl Serialize for DOHandle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.class_id().0, self.creator().0, self.serial()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DOHandle {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (class, creator, serial) = <(u8, u32, u32)>::deserialize(deserializer)?;
        if creator > 0x00FF_FFFF {
            return Err(serde::de::Error::custom(
                "a handle's creating station does not fit in 24 bits",
            ));
        }
        Ok(DOHandle::new(ClassId(class), StationId(creator), serial))
    }
}

impl DOHandle {
    /// The handle of no object.
    pub const NULL: DOHandle = DOHandle(0);

    /// Builds a handle from its parts.
    pub fn new(class: ClassId, creator: StationId, serial: u32) -> DOHandle {
        DOHandle(
            (u64::from(class.0) << 56)
                | (u64::from(creator.0 & 0x00FF_FFFF) << 32)
                | u64::from(serial),
        )
    }

    /// The handle of the `index`-th well-known object of `class`.
    pub fn well_known(class: ClassId, index: u32) -> DOHandle {
        DOHandle::new(class, StationId::NONE, index)
    }

    /// The object's class.
    pub fn class_id(self) -> ClassId {
        ClassId((self.0 >> 56) as u8)
    }

    /// The station that created the object (`StationId::NONE` for well-known objects).
    pub fn creator(self) -> StationId {
        StationId(((self.0 >> 32) & 0x00FF_FFFF) as u32)
    }

    /// The creator's serial number.
    pub fn serial(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is a well-known object's handle.
    pub fn is_well_known(self) -> bool {
        !self.creator().is_some()
    }
}

impl fmt::Debug for DOHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DO({}:{}/{})",
            self.class_id().0,
            self.creator().0,
            self.serial()
        )
    }
}

impl fmt::Display for DOHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_parts_roundtrip() {
        let h = DOHandle::new(ClassId(200), StationId(77), 123456);
        assert_eq!(h.class_id(), ClassId(200));
        assert_eq!(h.creator(), StationId(77));
        assert_eq!(h.serial(), 123456);
        assert!(!h.is_well_known());
        assert!(DOHandle::well_known(ClassId(100), 0).is_well_known());
    }

    #[test]
    fn handles_serialize_compactly_and_reject_bad_parts() {
        for h in [
            DOHandle::NULL,
            DOHandle::new(ClassId(200), StationId(77), 123_456),
            DOHandle::new(ClassId(255), StationId(0x00FF_FFFF), u32::MAX),
            DOHandle::well_known(ClassId(1), 3),
        ] {
            let b = postcard::to_allocvec(&h).unwrap();
            assert_eq!(postcard::from_bytes::<DOHandle>(&b).unwrap(), h);
        }
        let usual = postcard::to_allocvec(&DOHandle::new(ClassId(100), StationId(3), 7)).unwrap();
        assert_eq!(usual.len(), 3);
        // A creator beyond 24 bits is an error, not a silently cut handle.
        let bad = postcard::to_allocvec(&(100u8, 0x0100_0000u32, 1u32)).unwrap();
        assert!(postcard::from_bytes::<DOHandle>(&bad).is_err());
        assert!(postcard::from_bytes::<DOHandle>(&[100]).is_err());
    }
}

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
