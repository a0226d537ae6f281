//! netz-core: the sans-IO station state machine of netz.
//!
//! See [`Station`] for the call contract.
pub mod cluster;
pub mod crypto;
mod crypto_text;
mod fasthash;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod limits;
pub mod object;
pub mod operation;
pub mod pipeline;
pub mod rmc;
pub mod session;
pub mod sim;
pub mod station;
pub mod time;
pub mod transport;
mod wire;

pub use crypto_text::{
    key_from_bytes, key_from_text, key_to_text, TokenFormatError, CONNECT_TOKEN_LEN,
};
pub use ids::{ClassId, DOHandle, MethodId, ProcessType, StationId};
pub use object::{
    decode_value, encode_value, ActionTarget, CallContext, DataSet, DecodeError, DispatchError,
    DoClass, Invoker, MethodInfo, MethodKind, ObjectProxy, Ref, Registry, RegistryError,
};
pub use operation::*;
pub use pipeline::{CallbackError, CallbackId};
pub use rmc::{CallState, Completion, Outcome, RmcContext, RmcFlag};
pub use session::{
    Event, JoinError, RoomData, RoomError, RoomInfo, RoomObject, StationConfig, StationInfo,
    Topology,
};
pub use station::{Station, StationError, StationStats};
pub use time::Instant;

use std::net::SocketAddr;

/// A datagram the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram's bytes.
    pub contents: Vec<u8>,
}
