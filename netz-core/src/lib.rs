//! netz-core: the sans-IO station state machine of netz.
pub mod time;
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
