//! The supervisor's configuration file (TOML) and its validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sdk::QueryType;

/// Errors from loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has wrong or unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A value is out of range or refers to something undefined.
    #[error("invalid config: `{key}`: {message}")]
    Invalid {
        /// The offending key, as a TOML path.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fleet this machine belongs to.
    pub fleet: FleetConfig,
    /// The machine's resources.
    pub machine: MachineConfig,
    /// What one server uses (the density calculation's divisor).
    pub usage: UsageConfig,
    /// The control API.
    #[serde(default)]
    pub control: ControlConfig,
    /// Health checks.
    #[serde(default)]
    pub health: HealthConfig,
    /// Crash restart and backoff.
    #[serde(default)]
    pub crash: CrashConfig,
    /// Builds: executables and their arguments.
    #[serde(default)]
    pub builds: Vec<Build>,
    /// Build configurations: a build plus arguments, environment, query
    /// protocol and port ranges.
    #[serde(default)]
    pub build_configs: Vec<BuildConfiguration>,
    /// The Agones-compatible SDK server of each slot; none when absent.
    #[serde(default)]
    pub agones: Option<AgonesConfig>,
}

/// `[agones]`: each slot gets an Agones SDK server (gRPC and REST) on
/// loopback; its ports reach the game server in `AGONES_SDK_GRPC_PORT` and
/// `AGONES_SDK_HTTP_PORT`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgonesConfig {
    /// gRPC ports: slot `i` gets `start + i`. Inclusive `[start, end]`.
    pub grpc_port_range: [u16; 2],
    /// REST ports: slot `i` gets `start + i`. Inclusive `[start, end]`.
    pub http_port_range: [u16; 2],
    /// Capacity of the predefined `players` counter and list.
    #[serde(default = "default_player_capacity")]
    pub player_capacity: i64,
}

fn default_player_capacity() -> i64 {
    100
}

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Fleet id written to `server.json`.
    pub id: String,
    /// Region id.
    #[serde(default = "default_region")]
    pub region_id: String,
    /// Region name.
    #[serde(default = "default_region")]
    pub region_name: String,
    /// Machine id.
    #[serde(default = "default_machine_id")]
    pub machine_id: String,
    /// IPv4 address servers bind.
    #[serde(default = "default_ip")]
    pub ip: String,
    /// IPv6 address servers bind.
    #[serde(default = "default_ipv6")]
    pub ipv6: String,
    /// The build configuration servers run unless an allocation asks for
    /// another.
    pub build_config: String,
    /// Start every slot's server when the supervisor starts, and again
    /// after an intentional exit.
    #[serde(default)]
    pub start_on_provision: bool,
    /// When set: once every server has been idle (unallocated, not reserved
    /// or held) this long, all servers are stopped and the machine reports
    /// `stopped`.
    #[serde(default)]
    pub idle_ttl_ms: Option<u64>,
    /// Grace period between SIGTERM and SIGKILL when stopping a server.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_ms: u64,
    /// Folder for slot folders; default `<temp dir>/netz-host/<fleet id>`.
    /// Relative paths are relative to the config file's folder.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// First server id; slot `i` gets `first_server_id + i`.
    #[serde(default = "default_first_server_id")]
    pub first_server_id: u64,
}

fn default_region() -> String {
    "local".into()
}
fn default_machine_id() -> String {
    "1".into()
}
fn default_ip() -> String {
    "127.0.0.1".into()
}
fn default_ipv6() -> String {
    "::1".into()
}
fn default_stop_grace() -> u64 {
    5000
}
fn default_first_server_id() -> u64 {
    1
}

/// `[machine]`: the resources of this machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// CPU cores.
    pub cpu_cores: f64,
    /// Memory in MiB.
    pub memory_mb: u64,
}

/// `[usage]`: the fleet's usage settings for one server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// CPU cores one server uses.
    pub cpu_cores: f64,
    /// Memory one server uses, in MiB; also the memory limit of a slot.
    pub memory_mb: u64,
    /// Extra memory tolerated above `memory_mb` before a server counts as
    /// overusing, in percent.
    #[serde(default)]
    pub memory_tolerance_percent: u64,
    /// Upper bound on slots, whatever the resources allow.
    #[serde(default)]
    pub max_servers: Option<usize>,
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Loopback address of the HTTP/JSON control API (port 0 picks one;
    /// the bound address is written to `<work_dir>/api-addr`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Connections answered at the same time; more are refused with 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_listen(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_max_connections() -> usize {
    32
}

/// The default control API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}

/// `[health]`: misbehaviour checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between checks (query answered, memory within the limit),
    /// from the start of one probe to the start of the next: a probe that
    /// waits out `query_timeout_ms` does not push the next one back (unless
    /// the timeout is longer than the interval, when the next probe starts
    /// as the previous one gives up). With the defaults (60 s, threshold 3)
    /// a server that stops answering is stopped about
    /// `failure_threshold * interval_ms + query_timeout_ms` after its last
    /// answer.
    #[serde(default = "default_health_interval")]
    pub interval_ms: u64,
    /// Failures of the same check within the window that stop the server.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Window in which failures are counted.
    #[serde(default = "default_failure_window")]
    pub failure_window_ms: u64,
    /// How long one query may take.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_ms: u64,
    /// After a start, failed queries are not counted for this long unless
    /// the server has already answered once.
    #[serde(default = "default_startup_grace")]
    pub startup_grace_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: default_health_interval(),
            failure_threshold: default_failure_threshold(),
            failure_window_ms: default_failure_window(),
            query_timeout_ms: default_query_timeout(),
            startup_grace_ms: default_startup_grace(),
        }
    }
}

fn default_health_interval() -> u64 {
    60_000
}
fn default_failure_threshold() -> u32 {
    3
}
fn default_failure_window() -> u64 {
    30 * 60_000
}
fn default_query_timeout() -> u64 {
    1000
}
fn default_startup_grace() -> u64 {
    30_000
}

/// `[crash]`: restarts after crashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashConfig {
    /// Crashes within the window after which restarts stop (backoff).
    #[serde(default = "default_max_crashes")]
    pub max_crashes: u32,
    /// Window in which crashes are counted.
    #[serde(default = "default_crash_window")]
    pub window_ms: u64,
    /// Delay before restarting a crashed server.
    #[serde(default = "default_restart_delay")]
    pub restart_delay_ms: u64,
}

impl Default for CrashConfig {
    fn default() -> Self {
        CrashConfig {
            max_crashes: default_max_crashes(),
            window_ms: default_crash_window(),
            restart_delay_ms: default_restart_delay(),
        }
    }
}

fn default_max_crashes() -> u32 {
    5
}
fn default_crash_window() -> u64 {
    5 * 60_000
}
fn default_restart_delay() -> u64 {
    1000
}

/// `[[builds]]`: an executable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Name referenced by build configurations.
    pub name: String,
    /// Executable path. `{self}` means the `netz-host` executable itself
    /// (handy with its `test-server` subcommand). Relative paths with a
    /// `/` are relative to the config file's folder; bare names are looked
    /// up in `PATH`.
    pub executable: String,
    /// Arguments before the build configuration's.
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[[build_configs]]`: how to run a build.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfiguration {
    /// Name used by the API and allocations.
    pub name: String,
    /// The build to run.
    pub build: String,
    /// Extra arguments. In all arguments `{port}`, `{query_port}`,
    /// `{server_id}`, `{server_json}`, `{log_dir}`, `{slot_dir}`, `{join}`
    /// and `{drain_ms}` are replaced.
    #[serde(default)]
    pub args: Vec<String>,
    /// Arguments added (after the others) when the server is to join a
    /// running session instead of creating one, `--join {join}` say:
    /// `{join}` is the game address (`ip:port`) of a running server of
    /// that session, also passed in `NETZ_JOIN`. With them every server of
    /// the fleet joins the session of the first ready one (the first
    /// creates it), and a rolling upgrade's new servers join the sessions
    /// of the servers they replace. Without them each server is on its own
    /// and `{join}` is empty.
    #[serde(default)]
    pub join_args: Vec<String>,
    /// How long a server of this configuration drains after the SIGTERM
    /// of a rolling upgrade's scale-in, in ms: passed in `{drain_ms}` and
    /// `NETZ_DRAIN_MS`, so that the game scales in for that long (netz's
    /// `scale_in(drain)` tells the clients still there why when it ends).
    /// The upgrade kills a server that has not exited `stop_grace_ms` later.
    #[serde(default)]
    pub drain_ms: Option<u64>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Query protocol, `"sqp"`, `"a2s"` or `"none"`.
    #[serde(default = "default_query_type")]
    pub query_type: String,
    /// Game ports: slot `i` gets `start + i`. Inclusive `[start, end]`.
    pub port_range: [u16; 2],
    /// Query ports, inclusive `[start, end]`; needed with a query type.
    #[serde(default)]
    pub query_port_range: Option<[u16; 2]>,
    /// Custom variables written into `server.json`.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The server says when it is ready through the Agones SDK (`Ready`):
    /// until then the slot is `Scheduled`, whatever its query protocol
    /// answers. Needs `[agones]`.
    #[serde(default)]
    pub sdk_ready: bool,
}

fn default_query_type() -> String {
    "none".into()
}

impl BuildConfiguration {
    /// The parsed query protocol (after validation).
    pub fn query(&self) -> Option<QueryType> {
        match self.query_type.as_str() {
            "sqp" => Some(QueryType::Sqp),
            "a2s" => Some(QueryType::A2s),
            _ => None,
        }
    }
}

/// Reserved `server.json` keys that custom variables may not override.
const RESERVED_KEYS: &[&str] = &[
    "allocatedUUID",
    "serverID",
    "machineID",
    "fleetID",
    "regionID",
    "regionName",
    "ip",
    "ipv6",
    "port",
    "queryPort",
    "queryType",
    "serverLogDir",
];

impl Config {
    /// Reads, parses and validates a config file. Relative paths in it are
    /// resolved against the file's folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
        if let Some(w) = &cfg.fleet.work_dir {
            if w.is_relative() {
                cfg.fleet.work_dir = Some(base.join(w));
            }
        }
        for b in &mut cfg.builds {
            if b.executable.contains('/') && Path::new(&b.executable).is_relative() {
                b.executable = base.join(&b.executable).to_string_lossy().into_owned();
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates TOML text (relative paths are left as they are).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::from_toml(text).map_err(|message| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The number of server slots: the server-density calculation (HOST-1).
    /// `min(cpu / cpu per server, memory / memory per server, max_servers)`.
    pub fn slot_count(&self) -> usize {
        let by_cpu = (self.machine.cpu_cores / self.usage.cpu_cores + 1e-9).floor() as usize;
        let by_mem = (self.machine.memory_mb / self.usage.memory_mb) as usize;
        let n = by_cpu.min(by_mem);
        match self.usage.max_servers {
            Some(m) => n.min(m),
            None => n,
        }
    }

    /// The memory limit of one slot, in KiB.
    pub fn memory_limit_kb(&self) -> u64 {
        self.usage.memory_mb * 1024 * (100 + self.usage.memory_tolerance_percent) / 100
    }

    /// The build configuration with this name.
    pub fn build_config(&self, name: &str) -> Option<&BuildConfiguration> {
        self.build_configs.iter().find(|b| b.name == name)
    }

    /// The build with this name.
    pub fn build(&self, name: &str) -> Option<&Build> {
        self.builds.iter().find(|b| b.name == name)
    }

    /// The folder holding the slot folders: `fleet.work_dir`, else a
    /// folder private to the user, `<state_dir>/fleets/<fleet id>` (see
    /// [`crate::files::state_dir`]).
    pub fn work_dir(&self) -> PathBuf {
        self.fleet.work_dir.clone().unwrap_or_else(|| {
            crate::files::state_dir()
                .join("fleets")
                .join(sanitize(&self.fleet.id))
        })
    }

    /// Checks every rule; errors name the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fleet.id.trim().is_empty() {
            return Err(invalid("fleet.id", "must not be empty"));
        }
        if self.control.max_connections == 0 {
            return Err(invalid("control.max_connections", "must be at least 1"));
        }
        if !self.control.listen.ip().is_loopback() {
            return Err(invalid(
                "control.listen",
                format!(
                    "{} is not a loopback address; the control API only listens on loopback",
                    self.control.listen
                ),
            ));
        }
        if !(self.machine.cpu_cores.is_finite() && self.machine.cpu_cores > 0.0) {
            return Err(invalid("machine.cpu_cores", "must be greater than zero"));
        }
        if self.machine.memory_mb == 0 {
            return Err(invalid("machine.memory_mb", "must be greater than zero"));
        }
        if !(self.usage.cpu_cores.is_finite() && self.usage.cpu_cores > 0.0) {
            return Err(invalid("usage.cpu_cores", "must be greater than zero"));
        }
        if self.usage.memory_mb == 0 {
            return Err(invalid("usage.memory_mb", "must be greater than zero"));
        }
        if self.usage.max_servers == Some(0) {
            return Err(invalid("usage.max_servers", "must be at least 1"));
        }
        let slots = self.slot_count();
        if slots == 0 {
            return Err(invalid(
                "usage",
                format!(
                    "the machine ({} cores, {} MiB) cannot fit one server ({} cores, {} MiB)",
                    self.machine.cpu_cores,
                    self.machine.memory_mb,
                    self.usage.cpu_cores,
                    self.usage.memory_mb
                ),
            ));
        }
        for (key, v) in [
            ("health.interval_ms", self.health.interval_ms),
            ("health.failure_window_ms", self.health.failure_window_ms),
            ("health.query_timeout_ms", self.health.query_timeout_ms),
            ("crash.window_ms", self.crash.window_ms),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if self.health.failure_threshold == 0 {
            return Err(invalid("health.failure_threshold", "must be at least 1"));
        }
        if self.crash.max_crashes == 0 {
            return Err(invalid("crash.max_crashes", "must be at least 1"));
        }
        if self.fleet.idle_ttl_ms == Some(0) {
            return Err(invalid("fleet.idle_ttl_ms", "must be greater than zero"));
        }
        if self.builds.is_empty() {
            return Err(invalid("builds", "at least one [[builds]] entry is needed"));
        }
        for (i, b) in self.builds.iter().enumerate() {
            if b.name.is_empty() {
                return Err(invalid(format!("builds[{i}].name"), "must not be empty"));
            }
            if b.executable.is_empty() {
                return Err(invalid(
                    format!("builds[{i}].executable"),
                    "must not be empty",
                ));
            }
            if b.executable != "{self}"
                && b.executable.contains('/')
                && !Path::new(&b.executable).is_file()
            {
                return Err(invalid(
                    format!("builds[{i}].executable"),
                    format!("{} does not exist or is not a file", b.executable),
                ));
            }
            if self.builds[..i].iter().any(|o| o.name == b.name) {
                return Err(invalid(
                    format!("builds[{i}].name"),
                    format!("duplicate build name {:?}", b.name),
                ));
            }
        }
        if self.build_configs.is_empty() {
            return Err(invalid(
                "build_configs",
                "at least one [[build_configs]] entry is needed",
            ));
        }
        for (i, bc) in self.build_configs.iter().enumerate() {
            let k = |f: &str| format!("build_configs[{i}].{f}");
            if bc.name.is_empty() {
                return Err(invalid(k("name"), "must not be empty"));
            }
            if self.build_configs[..i].iter().any(|o| o.name == bc.name) {
                return Err(invalid(
                    k("name"),
                    format!("duplicate build configuration name {:?}", bc.name),
                ));
            }
            if self.build(&bc.build).is_none() {
                return Err(invalid(
                    k("build"),
                    format!(
                        "unknown build {:?} (no [[builds]] entry has that name)",
                        bc.build
                    ),
                ));
            }
            if !matches!(bc.query_type.as_str(), "sqp" | "a2s" | "none") {
                return Err(invalid(
                    k("query_type"),
                    format!(
                        "{:?} is not one of \"sqp\", \"a2s\", \"none\"",
                        bc.query_type
                    ),
                ));
            }
            check_range(&k("port_range"), bc.port_range, slots)?;
            match (bc.query(), bc.query_port_range) {
                (Some(_), None) => {
                    return Err(invalid(
                        k("query_port_range"),
                        format!("needed because query_type is {:?}", bc.query_type),
                    ))
                }
                (_, Some(q)) => {
                    check_range(&k("query_port_range"), q, slots)?;
                    let [a, _] = bc.port_range;
                    let [c, _] = q;
                    let (b, d) = (a + (slots as u16 - 1), c + (slots as u16 - 1));
                    if a <= d && c <= b {
                        return Err(invalid(
                            k("query_port_range"),
                            "overlaps port_range for the ports in use",
                        ));
                    }
                }
                _ => {}
            }
            if bc.drain_ms == Some(0) {
                return Err(invalid(k("drain_ms"), "must be greater than zero"));
            }
            let uses = |p: &str| {
                bc.args
                    .iter()
                    .chain(&bc.join_args)
                    .chain(self.build(&bc.build).map_or(&[][..], |b| &b.args[..]))
                    .any(|a| a.contains(p))
            };
            if bc.drain_ms.is_none() && uses("{drain_ms}") {
                return Err(invalid(
                    k("drain_ms"),
                    "needed because an argument uses {drain_ms}",
                ));
            }
            if !bc.join_args.is_empty() && !bc.join_args.iter().any(|a| a.contains("{join}")) {
                return Err(invalid(
                    k("join_args"),
                    "name the session to join with {join} (the game address of one of its servers)",
                ));
            }
            for key in bc.variables.keys() {
                if RESERVED_KEYS.contains(&key.as_str()) {
                    return Err(invalid(
                        format!("{}.{key}", k("variables")),
                        "is a reserved server.json field",
                    ));
                }
            }
        }
        if let Some(a) = &self.agones {
            check_range("agones.grpc_port_range", a.grpc_port_range, slots)?;
            check_range("agones.http_port_range", a.http_port_range, slots)?;
            if a.player_capacity < 0 {
                return Err(invalid("agones.player_capacity", "must not be negative"));
            }
        }
        if let Some(bc) = self.build_configs.iter().find(|b| b.sdk_ready) {
            if self.agones.is_none() {
                return Err(invalid(
                    format!("build configuration {}: sdk_ready", bc.name),
                    "needs an [agones] section",
                ));
            }
        }
        if self.build_config(&self.fleet.build_config).is_none() {
            return Err(invalid(
                "fleet.build_config",
                format!(
                    "unknown build configuration {:?} (no [[build_configs]] entry has that name)",
                    self.fleet.build_config
                ),
            ));
        }
        Ok(())
    }

    /// Health-check interval.
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health.interval_ms)
    }
}

fn check_range(key: &str, [start, end]: [u16; 2], slots: usize) -> Result<(), ConfigError> {
    if start == 0 {
        return Err(invalid(key, "port 0 is not allowed"));
    }
    if end < start {
        return Err(invalid(key, format!("end {end} is below start {start}")));
    }
    let len = (end - start) as usize + 1;
    if len < slots {
        return Err(invalid(
            key,
            format!("{len} ports for {slots} server slots; the range is too small"),
        ));
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
