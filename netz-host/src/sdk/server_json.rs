//! The Multiplay-style `server.json` of a server slot, and a watcher that
//! reports allocations and deallocations as the supervisor rewrites it.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Name of the file in a slot folder.
pub const FILE_NAME: &str = "server.json";
/// Name of the allocation payload file written next to `server.json`.
pub const PAYLOAD_FILE_NAME: &str = "allocation-payload.json";
/// Environment variable through which the supervisor passes the path of
/// `server.json` to the game server.
pub const ENV_SERVER_JSON: &str = "NETZ_SERVER_JSON";

/// Query protocol a server answers on its query port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryType {
    /// Unity Server Query Protocol.
    Sqp,
    /// Valve A2S_INFO.
    A2s,
}

impl QueryType {
    /// The name written in `server.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::Sqp => "sqp",
            QueryType::A2s => "a2s",
        }
    }
}

mod num_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        S(String),
        N(u64),
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = match StrOrNum::deserialize(d)? {
            StrOrNum::S(s) => s,
            StrOrNum::N(n) => n.to_string(),
        };
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}

/// The contents of a slot's `server.json`. Numbers are written as strings;
/// custom build-configuration variables are flattened into the same object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerJson {
    /// Current allocation id; empty when unallocated.
    #[serde(rename = "allocatedUUID", default)]
    pub allocated_uuid: String,
    /// Server (slot) id.
    #[serde(rename = "serverID", with = "num_str")]
    pub server_id: u64,
    /// Machine id.
    #[serde(rename = "machineID", default)]
    pub machine_id: String,
    /// Fleet id.
    #[serde(rename = "fleetID", default)]
    pub fleet_id: String,
    /// Region id.
    #[serde(rename = "regionID", default)]
    pub region_id: String,
    /// Region name.
    #[serde(rename = "regionName", default)]
    pub region_name: String,
    /// IPv4 address to bind.
    #[serde(default)]
    pub ip: String,
    /// IPv6 address to bind.
    #[serde(default)]
    pub ipv6: String,
    /// Game port.
    #[serde(with = "num_str")]
    pub port: u16,
    /// Query port.
    #[serde(rename = "queryPort", with = "num_str")]
    pub query_port: u16,
    /// `"sqp"`, `"a2s"`, or empty when no query protocol is configured.
    #[serde(rename = "queryType", default)]
    pub query_type: String,
    /// Directory for the server's logs.
    #[serde(rename = "serverLogDir", default)]
    pub server_log_dir: String,
    /// Custom build-configuration variables.
    #[serde(flatten)]
    pub variables: BTreeMap<String, String>,
}

impl ServerJson {
    /// Reads and parses a `server.json` file.
    pub fn read(path: impl AsRef<Path>) -> io::Result<ServerJson> {
        let text = std::fs::read_to_string(path.as_ref())?;
        serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.as_ref().display()),
            )
        })
    }

    /// Reads the file named by `NETZ_SERVER_JSON`, or `./server.json`.
    pub fn from_env() -> io::Result<ServerJson> {
        ServerJson::read(server_json_path())
    }

    /// The current allocation id, if allocated.
    pub fn allocation(&self) -> Option<&str> {
        if self.allocated_uuid.is_empty() {
            None
        } else {
            Some(&self.allocated_uuid)
        }
    }

    /// The query protocol, if any.
    pub fn query_type(&self) -> Option<QueryType> {
        match self.query_type.as_str() {
            "sqp" => Some(QueryType::Sqp),
            "a2s" => Some(QueryType::A2s),
            _ => None,
        }
    }

    /// Writes the file atomically: a temporary file in the same folder,
    /// then a rename over the target.
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(path.as_ref(), &text)
    }
}

pub use crate::files::write_atomic;

/// The path of `server.json` for this process: `NETZ_SERVER_JSON`, or
/// `server.json` in the working directory.
pub fn server_json_path() -> PathBuf {
    std::env::var_os(ENV_SERVER_JSON)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(FILE_NAME))
}

/// Reads the allocation payload stored next to `server_json`, if any.
pub fn read_payload(server_json: impl AsRef<Path>) -> io::Result<Option<String>> {
    let p = server_json.as_ref().with_file_name(PAYLOAD_FILE_NAME);
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A change of allocation seen in `server.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationEvent {
    /// The server was allocated with this id.
    Allocated(String),
    /// The allocation with this id ended.
    Deallocated(String),
}

/// Polls `server.json` and reports allocation changes. A server that
/// starts while already allocated gets an [`AllocationEvent::Allocated`]
/// from its first poll.
#[derive(Debug)]
pub struct AllocationWatcher {
    path: PathBuf,
    tracker: AllocationTracker,
    interval: Duration,
}

/// Turns a sequence of "allocated as X / not allocated" observations into
/// [`AllocationEvent`]s (a change of id is a deallocation, then an
/// allocation).
#[derive(Debug, Default)]
pub struct AllocationTracker {
    current: Option<String>,
    pending: VecDeque<AllocationEvent>,
}

impl AllocationTracker {
    /// The allocation id last observed.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// An event not handed out yet.
    pub fn take_pending(&mut self) -> Option<AllocationEvent> {
        self.pending.pop_front()
    }

    /// Records what is seen now and returns the next event.
    pub fn observe(&mut self, now: Option<String>) -> Option<AllocationEvent> {
        if now != self.current {
            if let Some(old) = self.current.take() {
                self.pending.push_back(AllocationEvent::Deallocated(old));
            }
            if let Some(new) = &now {
                self.pending
                    .push_back(AllocationEvent::Allocated(new.clone()));
            }
            self.current = now;
        }
        self.pending.pop_front()
    }
}

impl AllocationWatcher {
    /// Watches the file at `path`, polling every `interval` in [`Self::wait`].
    pub fn new(path: impl Into<PathBuf>, interval: Duration) -> Self {
        AllocationWatcher {
            path: path.into(),
            tracker: AllocationTracker::default(),
            interval,
        }
    }

    /// The allocation id seen by the last poll.
    pub fn current(&self) -> Option<&str> {
        self.tracker.current()
    }

    /// Reads the file once and returns the next change, if any. A file that
    /// is missing or unreadable for a moment is not a change.
    pub fn poll(&mut self) -> Option<AllocationEvent> {
        if let Some(e) = self.tracker.take_pending() {
            return Some(e);
        }
        let Ok(json) = ServerJson::read(&self.path) else {
            return None;
        };
        self.tracker.observe(json.allocation().map(str::to_owned))
    }

    /// Polls until a change is seen or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Option<AllocationEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.poll() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(self.interval.min(left));
        }
    }
}
