//! Errors of the driver.

use netz_core::{JoinError, StationError};
use std::io;
use std::net::SocketAddr;

/// What can go wrong when binding, joining, leaving or calling a station.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Another socket already holds the address.
    #[error("cannot bind {addr}: the address is already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address does not belong to this machine.
    #[error("cannot bind {addr}: the address is not available on this machine")]
    AddrNotAvailable {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
    /// An address that cannot be used as a contact (unspecified, port 0, or
    /// of another family than the local socket).
    #[error("invalid address {addr}: {why}")]
    InvalidAddress {
        /// The address given.
        addr: SocketAddr,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Joining failed: denied by the session, timed out, or another topology.
    #[error("join failed: {0}")]
    Join(#[from] JoinError),
    /// A station call failed.
    #[error(transparent)]
    Station(#[from] StationError),
    /// The station is not in a session.
    #[error("the station is not in a session")]
    NotInSession,
    /// An RMC or action was not sent (no such object, or an invalid context).
    #[error("the call was not sent: no such object, or an invalid call context")]
    NotSent,
    /// The operation did not finish in time.
    #[error("timed out: {0}")]
    TimedOut(&'static str),
    /// The driver has stopped (after `shutdown`, or the task was aborted).
    #[error("the station driver has stopped")]
    Stopped,
    /// The operating system's random source failed (drawing a key or a token).
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl NetError {
    /// The error for a failed bind of `addr`.
    pub fn from_bind(addr: SocketAddr, source: io::Error) -> NetError {
        match source.kind() {
            io::ErrorKind::AddrInUse => NetError::AddrInUse { addr },
            io::ErrorKind::AddrNotAvailable => NetError::AddrNotAvailable { addr },
            _ => NetError::Bind { addr, source },
        }
    }
}
