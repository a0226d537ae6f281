//! The session's types in one place: station descriptions, configuration,
//! events, and the core's own classes. Each lives with its owner
//! ([`crate::ids`], [`crate::config`], [`crate::event`], [`crate::builtin`]);
//! this module gathers them under the names they have always had.

pub use crate::builtin::{
    RoomData, RoomInfo, RoomObject, SessionObject, StationData, StationObject,
};
pub use crate::config::{StationConfig, Topology};
pub use crate::event::{Event, JoinError, RoomError};
pub use crate::ids::StationInfo;
