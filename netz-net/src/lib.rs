//! The tokio driver of netz: puts a [`netz_core::Station`] on a UDP socket.
//!
//! netz-core is sans-IO: it never reads a clock or touches a socket. This
//! crate owns the socket, the timers and the task that feed it, the way
//! quinn's endpoint driver runs quinn-proto. Every protocol decision
//! (membership, failure detection, retransmission, fault recovery) stays in
//! the core.
//!
//! - [`NetStation`]: bind a socket, create or join a session, publish
//!   objects, call RMCs, leave, shut down.
//! - [`NetConfig`]: the station's configuration with the timeouts you are
//!   most likely to tune (heartbeat, failure detection, RMC, join).
//! - [`wait_rmc`]: await an RMC's completion with a timeout.
//! - [`Callbacks`]: the Diarkis-style connection callbacks (`on_connect`,
//!   `on_disconnect`, `on_offline`, `on_room_migrate_start`,
//!   `on_room_migrate_complete`) for server and room migration, with
//!   [`NetStation::scale_in`], [`NetStation::send_migrate`] and
//!   [`NetStation::send_migrate_room`].
//! - [`DatagramSocket`]: what the driver needs of a socket; implemented for
//!   tokio's `UdpSocket` and for [`simnet::SimSocket`], an in-memory network
//!   with loss and partitions for tests.
//!
//! Each station's driver runs in a `tracing` span named `station` carrying
//! its address and, once known, its id.
//!
//! The `netz-station` binary of this crate runs one station per process,
//! driven by command-line arguments and a line protocol on stdin/stdout; the
//! multi-process tests use it.

mod config;
mod error;
pub mod simnet;
mod socket;
mod station;

pub use config::NetConfig;
pub use error::NetError;
pub use socket::DatagramSocket;
pub use station::{wait_rmc, Callbacks, Events, NetStation, RoomMigrateComplete, SessionState};
