//! netz-core: the sans-IO station state machine of netz.
//!
//! See [`Station`] for the call contract.
pub mod builtin;
pub mod cluster;
mod compat;
pub mod config;
pub mod crypto;
mod crypto_text;
mod dataset_codec;
pub mod event;
mod fasthash;
#[doc(hidden)]
pub mod forge;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod interest;
pub mod limits;
pub mod object;
pub mod operation;
pub mod pipeline;
pub mod registry;
pub mod rmc;
pub mod session;
pub mod sim;
pub mod station;
pub mod time;
pub mod transport;
pub mod views;
mod wire;

pub use builtin::{RoomData, RoomInfo, RoomObject};
pub use config::{StationConfig, Topology};
pub use crypto_text::{
    key_from_bytes, key_from_text, key_to_text, TokenFormatError, CONNECT_TOKEN_LEN,
};
pub use event::{Event, JoinError, RoomError};
pub use ids::{ClassId, DOHandle, MethodId, ProcessType, StationId, StationInfo};
pub use object::{
    decode_quantized, decode_value, dequantize, encode_quantized, encode_value, quantize,
    ActionTarget, CallContext, DataSet, DecodeError, Delivery, DispatchError, DoClass, Invoker,
    MasterLoss, MethodInfo, MethodKind, ObjectProxy, Ref,
};
pub use operation::*;
pub use pipeline::{CallbackError, CallbackId, StoreView};
pub use registry::{Registry, RegistryError};
pub use rmc::{CallState, Completion, Outcome, RmcContext, RmcFlag};
pub use station::{LinkBudgetStats, Station, StationError, StationStats};
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
