//! netz-host: the game-server lifecycle supervisor.
//!
//! It runs game-server processes in slots on one machine, hands them to
//! matches (allocations), restarts them when they crash, stops them when
//! they misbehave and recycles them between sessions. The [`sdk`] module is
//! the game-server side.

pub mod sdk;

pub mod agones;
pub mod api;
pub mod config;
pub mod error;
pub mod files;
pub mod gameserver;
pub mod host;
pub mod http_client;
pub mod process;
pub mod supervisor;
pub mod test_server;
pub mod wrap;

pub use config::{Config, ConfigError};
pub use host::run;
