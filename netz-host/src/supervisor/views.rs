//! Read-only pictures of the supervisor's state, as the control API and
//! the SDK servers show them, and the requests they make.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::{ProcessState, SlotState};
use crate::gameserver::{Counter, List};
use crate::sdk::QueryType;

/// A read-only picture of one slot.
#[derive(Debug, Clone)]
pub struct ServerView {
    /// Server id.
    pub server_id: u64,
    /// Slot index.
    pub slot: usize,
    /// Lifecycle state.
    pub state: SlotState,
    /// Process state.
    pub process: ProcessState,
    /// Process id while running.
    pub pid: Option<u32>,
    /// Build configuration running (or wanted when none runs).
    pub build_config: String,
    /// Address the server binds.
    pub ip: String,
    /// Game port.
    pub port: u16,
    /// Query port, when a query protocol is configured.
    pub query_port: Option<u16>,
    /// The query protocol.
    pub query_type: Option<QueryType>,
    /// Current allocation id.
    pub allocation_id: Option<String>,
    /// Milliseconds left of a reservation.
    pub reserved_for_ms: Option<u64>,
    /// Milliseconds left of a hold.
    pub held_for_ms: Option<u64>,
    /// Whether crash backoff is engaged.
    pub backoff: bool,
    /// Crashes within the crash window.
    pub recent_crashes: usize,
    /// Processes started in this slot.
    pub starts: u64,
    /// How the last process ended.
    pub last_exit: Option<String>,
    /// Resident memory of the process, KiB.
    pub memory_kb: Option<u64>,
    /// The slot folder.
    pub dir: PathBuf,
    /// Players in the `players` list of the Agones SDK.
    pub players: usize,
    /// The session (server cluster) the running server is in, as netz-host
    /// started it: servers that joined one another share the number.
    pub cluster: Option<u64>,
    /// The game address the running server was told to join (`{join}`);
    /// `None` when it created its session.
    pub joined: Option<String>,
}

/// A read-only picture of one allocation.
#[derive(Debug, Clone)]
pub struct AllocationView {
    /// Allocation id.
    pub allocation_id: String,
    /// The server hosting it.
    pub server_id: u64,
    /// Build configuration it runs.
    pub build_config: String,
    /// Address.
    pub ip: String,
    /// Game port.
    pub port: u16,
    /// Query port, when a query protocol is configured.
    pub query_port: Option<u16>,
    /// The payload given at allocation.
    pub payload: Option<Value>,
    /// When it was made, Unix milliseconds.
    pub allocated_at_ms: u64,
    /// The slot's state.
    pub state: SlotState,
}

/// A read-only picture of the machine.
#[derive(Debug, Clone)]
pub struct MachineView {
    /// Whether the machine runs servers (HOST-8).
    pub running: bool,
    /// Whether a shutdown is under way.
    pub shutting_down: bool,
    /// Fleet id.
    pub fleet_id: String,
    /// Machine id.
    pub machine_id: String,
    /// Number of slots.
    pub slots: usize,
    /// Active build configuration.
    pub active_build_config: String,
    /// Whether idle slots run a server.
    pub start_on_provision: bool,
    /// Time since the supervisor started, ms.
    pub uptime_ms: u64,
}

/// One line of the transition log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// The server concerned, if one.
    pub server_id: Option<u64>,
    /// What kind of event it is, for events a program watches for (a
    /// rolling upgrade's: `UpgradeStarted`, `UpgradeServerStarted`,
    /// `UpgradeServerJoined`, `UpgradeServerDraining`,
    /// `UpgradeServerDrained`, `UpgradeServerKilled`,
    /// `UpgradeServerFailed`, `UpgradeServerGone`, `UpgradeDone`,
    /// `UpgradeFailed`); `None` for the other transitions.
    pub kind: Option<&'static str>,
    /// What happened.
    pub message: String,
}

/// A slot as Agones' `GameServer` resource shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GameServerView {
    /// `<fleet id>-<server id>`.
    pub name: String,
    /// The region id.
    pub namespace: String,
    /// Unique per process.
    pub uid: String,
    /// Bumped on every change the SDK makes.
    pub generation: u64,
    /// When the process started, Unix seconds.
    pub creation_timestamp: i64,
    /// Labels: the allocation's and the SDK's.
    pub labels: BTreeMap<String, String>,
    /// Annotations: the allocation's (with its id and payload) and the
    /// SDK's.
    pub annotations: BTreeMap<String, String>,
    /// The state, named as Agones names it.
    pub state: SlotState,
    /// IPv4 address.
    pub address: String,
    /// IPv6 address, when configured.
    pub ipv6: String,
    /// Game port.
    pub port: u16,
    /// Health probe interval, seconds.
    pub health_period_seconds: i32,
    /// Failures that stop the server.
    pub health_failure_threshold: i32,
    /// Startup grace, seconds.
    pub health_initial_delay_seconds: i32,
    /// Counters.
    pub counters: BTreeMap<String, Counter>,
    /// Lists.
    pub lists: BTreeMap<String, List>,
}

/// An allocation request.
#[derive(Debug, Clone, Default)]
pub struct AllocateRequest {
    /// Allocation id (validated: 1..=128 characters of `A-Z a-z 0-9 - _ . :`).
    pub allocation_id: String,
    /// Build configuration; the active one when `None`.
    pub build_config: Option<String>,
    /// Payload handed to the server.
    pub payload: Option<Value>,
    /// A specific server, or any.
    pub server_id: Option<u64>,
    /// Labels the allocated GameServer gets (Agones' allocation metadata).
    pub labels: BTreeMap<String, String>,
    /// Annotations the allocated GameServer gets.
    pub annotations: BTreeMap<String, String>,
}
