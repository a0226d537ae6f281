//! The game-server side of netz-host: read the slot's `server.json`, watch
//! for allocations and deallocations, report players, and answer the query
//! protocol (Valve A2S or Unity SQP) on the query port, on IPv4 and, when
//! `server.json` names one, IPv6. `server.json` variables `serverName`,
//! `map`, `gameType`, `buildID` and `maxPlayers` seed what queries report.
//!
//! ```no_run
//! use std::time::Duration;
//! use netz_host::sdk::{AllocationEvent, GameServer};
//!
//! let mut server = GameServer::from_env().expect("server.json");
//! loop {
//!     match server.watcher.wait(Duration::from_secs(1)) {
//!         Some(AllocationEvent::Allocated(id)) => { server.set_players(1); let _ = id; }
//!         Some(AllocationEvent::Deallocated(_)) => server.set_players(0),
//!         None => {}
//!     }
//! }
//! ```

pub mod a2s;
mod backend;
mod query;
mod server_json;
pub mod sqp;
mod udp;

pub use backend::{
    choose_backend, connect, AgonesSdk, Backend, HostSdk, NetzHostSdk, ANNOTATION_ALLOCATION_ID,
    ENV_AGONES_GRPC_PORT, ENV_AGONES_HTTP_PORT, ENV_BACKEND,
};
pub use query::{GameServer, QueryDetails, QueryInfo, QueryPlayer, QueryServer, QueryTeam};
pub use server_json::{
    read_payload, server_json_path, write_atomic, AllocationEvent, AllocationTracker,
    AllocationWatcher, QueryType, ServerJson, ENV_SERVER_JSON, FILE_NAME, PAYLOAD_FILE_NAME,
};
