//! The supervisor: slots, processes, allocations and the lifecycle rules
//! (HOST-1..8). One task owns all state; the control API, child watchers
//! and health probes talk to it through a channel.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::{BuildConfiguration, Config};
use crate::gameserver::{self, Counter, GameServerRecord, List};
use crate::process::{rss_kb, supervise_child, ExitInfo, ProcControl};
use crate::sdk::{self, QueryType, ServerJson};

/// Largest allocation payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024;
/// How often the supervisor looks at timers (restarts, expiries, checks).
const TICK: Duration = Duration::from_millis(25);
/// Events kept for the API.
const MAX_EVENTS: usize = 2000;

/// Work handed to the supervisor task: it runs with the whole state and
/// nothing else runs meanwhile.
pub type Job = Box<dyn FnOnce(&mut Supervisor) + Send>;

/// A cloneable way into the supervisor task (the control API and the SDK
/// servers hold one).
#[derive(Clone, Debug)]
pub struct Handle {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Handle {
    /// A handle and the receiving end the supervisor task reads.
    pub fn channel() -> (Handle, mpsc::UnboundedReceiver<Job>) {
        let (jobs, rx) = mpsc::unbounded_channel();
        (Handle { jobs }, rx)
    }

    /// Runs `f` on the supervisor's state and returns its result; `None`
    /// when the supervisor has stopped.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Supervisor) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

pub use crate::error::HostError;

/// A server slot's lifecycle state, named as Multiplay and Agones name
/// theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Starting, or restarting; not answering its query protocol yet.
    Scheduled,
    /// Running and answering, ready for an allocation.
    Ready,
    /// Held back from allocations for a time.
    Reserved,
    /// Hosting a match.
    Allocated,
    /// Failed its health checks; being restarted.
    Unhealthy,
    /// In crash backoff: not restarted until started or deallocated.
    Error,
    /// No process, none planned.
    Shutdown,
}

impl SlotState {
    /// The name used by the API and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Scheduled => "Scheduled",
            SlotState::Ready => "Ready",
            SlotState::Reserved => "Reserved",
            SlotState::Allocated => "Allocated",
            SlotState::Unhealthy => "Unhealthy",
            SlotState::Error => "Error",
            SlotState::Shutdown => "Shutdown",
        }
    }
}

/// What a slot's process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Running.
    Running,
    /// Told to stop, not reaped yet.
    Stopping,
    /// Not running; a restart is planned.
    RestartPending,
    /// Not running.
    Stopped,
}

impl ProcessState {
    /// The name used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Stopping => "stopping",
            ProcessState::RestartPending => "restart-pending",
            ProcessState::Stopped => "stopped",
        }
    }
}

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
    /// What happened.
    pub message: String,
}

pub use crate::sdk::ANNOTATION_ALLOCATION_ID;
/// The annotation of an allocated GameServer that holds its payload.
pub const ANNOTATION_ALLOCATION_PAYLOAD: &str = "netz.dev/allocation-payload";

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

enum Internal {
    Exited {
        slot: usize,
        gen: u64,
        info: ExitInfo,
    },
    Health {
        slot: usize,
        gen: u64,
        query_ok: Option<bool>,
        rss_kb: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StopReason {
    Manual,
    Restart,
    Malfunction(String),
    Deallocated,
    Expired,
    MachineIdle,
    Shutdown,
    /// The server called `Shutdown` through the Agones SDK: ends like an
    /// exit with code 0.
    SdkShutdown,
}

struct Proc {
    pid: u32,
    gen: u64,
    build_config: String,
    started: Instant,
    control: mpsc::UnboundedSender<ProcControl>,
    stopping: Option<StopReason>,
    answered: bool,
    next_check: Instant,
    check_in_flight: bool,
    rss_kb: Option<u64>,
}

struct Allocation {
    id: String,
    build_config: String,
    payload: Option<Value>,
    allocated_at_ms: u64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

struct Slot {
    index: usize,
    server_id: u64,
    dir: PathBuf,
    log_dir: PathBuf,
    want_config: String,
    proc: Option<Proc>,
    start_at: Option<Instant>,
    allocation: Option<Allocation>,
    reserved_until: Option<Instant>,
    held_until: Option<Instant>,
    backoff: bool,
    unhealthy: bool,
    crashes: VecDeque<Instant>,
    query_failures: VecDeque<Instant>,
    memory_failures: VecDeque<Instant>,
    starts: u64,
    last_exit: Option<String>,
    /// What the server said through the Agones SDK.
    record: GameServerRecord,
    /// When the current process started, Unix ms.
    started_ms: u64,
}

impl Slot {
    fn idle(&self, now: Instant) -> bool {
        self.allocation.is_none()
            && self.reserved_until.is_none_or(|t| t <= now)
            && self.held_until.is_none_or(|t| t <= now)
    }

    fn running(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.stopping.is_none())
    }

    /// `has_query`: the build configuration names a query protocol;
    /// `sdk_ready`: it waits for the SDK's `Ready` instead.
    fn state(&self, has_query: bool, sdk_ready: bool) -> SlotState {
        if self.backoff {
            SlotState::Error
        } else if self.unhealthy {
            SlotState::Unhealthy
        } else if self.allocation.is_some() {
            SlotState::Allocated
        } else if self.reserved_until.is_some() {
            SlotState::Reserved
        } else {
            match &self.proc {
                Some(p) if p.stopping.is_none() => {
                    let ready = if sdk_ready {
                        self.record.sdk_ready
                    } else {
                        p.answered || !has_query || self.record.sdk_ready
                    };
                    if ready {
                        SlotState::Ready
                    } else {
                        SlotState::Scheduled
                    }
                }
                Some(p) if p.stopping == Some(StopReason::Restart) => SlotState::Scheduled,
                _ if self.start_at.is_some() => SlotState::Scheduled,
                _ => SlotState::Shutdown,
            }
        }
    }
}

/// Machine state for HOST-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MachineState {
    Running,
    Stopped,
}

/// The supervisor's whole state: slots, processes, allocations. Its
/// methods are the operations the control API and the SDK servers use.
pub struct Supervisor {
    cfg: Arc<Config>,
    active_config: String,
    slots: Vec<Slot>,
    events: VecDeque<Event>,
    event_seq: u64,
    started: Instant,
    machine: MachineState,
    last_busy: Instant,
    shutting_down: bool,
    next_gen: u64,
    self_exe: PathBuf,
    tx: mpsc::UnboundedSender<Internal>,
    internal: Option<mpsc::UnboundedReceiver<Internal>>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Supervisor {
    fn log(&mut self, server: Option<u64>, msg: String) {
        match server {
            Some(id) => tracing::info!(server = id, "{msg}"),
            None => tracing::info!("{msg}"),
        }
        self.event_seq += 1;
        self.events.push_back(Event {
            seq: self.event_seq,
            time_ms: unix_ms(),
            server_id: server,
            message: msg,
        });
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    fn bc(&self, name: &str) -> &BuildConfiguration {
        self.cfg
            .build_config(name)
            .expect("validated build configuration")
    }

    fn ports(&self, i: usize, bc: &BuildConfiguration) -> (u16, u16) {
        let port = bc.port_range[0] + i as u16;
        let qport = bc.query_port_range.map(|r| r[0] + i as u16).unwrap_or(0);
        (port, qport)
    }

    fn server_json(&self, i: usize) -> ServerJson {
        let s = &self.slots[i];
        let bc = self.bc(&s.want_config);
        let (port, query_port) = self.ports(i, bc);
        let f = &self.cfg.fleet;
        ServerJson {
            allocated_uuid: s
                .allocation
                .as_ref()
                .map(|a| a.id.clone())
                .unwrap_or_default(),
            server_id: s.server_id,
            machine_id: f.machine_id.clone(),
            fleet_id: f.id.clone(),
            region_id: f.region_id.clone(),
            region_name: f.region_name.clone(),
            ip: f.ip.clone(),
            ipv6: f.ipv6.clone(),
            port,
            query_port,
            query_type: bc
                .query()
                .map(|q| q.as_str().to_owned())
                .unwrap_or_default(),
            server_log_dir: s.log_dir.to_string_lossy().into_owned(),
            variables: bc.variables.clone(),
        }
    }

    fn write_server_json(&mut self, i: usize) {
        let json = self.server_json(i);
        let path = self.slots[i].dir.join(sdk::FILE_NAME);
        if let Err(e) = json.write_atomic(&path) {
            let id = self.slots[i].server_id;
            self.log(Some(id), format!("cannot write {}: {e}", path.display()));
        }
    }

    fn write_payload(&mut self, i: usize) {
        let path = self.slots[i].dir.join(sdk::PAYLOAD_FILE_NAME);
        let res = match self.slots[i]
            .allocation
            .as_ref()
            .and_then(|a| a.payload.as_ref())
        {
            Some(p) => {
                let bytes = match p {
                    Value::String(s) => s.clone().into_bytes(),
                    v => v.to_string().into_bytes(),
                };
                sdk::write_atomic(&path, &bytes)
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = res {
            let id = self.slots[i].server_id;
            self.log(Some(id), format!("cannot write allocation payload: {e}"));
        }
    }

    // ----- processes -------------------------------------------------------

    fn start(&mut self, i: usize) {
        self.slots[i].start_at = None;
        if self.slots[i].proc.is_some() || self.shutting_down {
            return;
        }
        if self.machine == MachineState::Stopped {
            return;
        }
        self.write_server_json(i);
        let name = self.slots[i].want_config.clone();
        let bc = self.bc(&name).clone();
        let build = self.cfg.build(&bc.build).expect("validated build").clone();
        let (port, qport) = self.ports(i, &bc);
        let s = &self.slots[i];
        let sj = s.dir.join(sdk::FILE_NAME);
        let subst = |a: &str| {
            a.replace("{port}", &port.to_string())
                .replace("{query_port}", &qport.to_string())
                .replace("{server_id}", &s.server_id.to_string())
                .replace("{server_json}", &sj.to_string_lossy())
                .replace("{log_dir}", &s.log_dir.to_string_lossy())
                .replace("{slot_dir}", &s.dir.to_string_lossy())
        };
        let exe = if build.executable == "{self}" {
            self.self_exe.clone()
        } else {
            PathBuf::from(&build.executable)
        };
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(build.args.iter().map(|a| subst(a)))
            .args(bc.args.iter().map(|a| subst(a)))
            .envs(&bc.env)
            .env(sdk::ENV_SERVER_JSON, &sj)
            .envs(self.sdk_ports(i).iter().flat_map(|(g, h)| {
                [
                    ("AGONES_SDK_GRPC_PORT", g.to_string()),
                    ("AGONES_SDK_HTTP_PORT", h.to_string()),
                ]
            }))
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        crate::process::die_with_parent(&mut cmd);
        let log_file = |name: &str| crate::files::open_append_no_follow(&s.log_dir.join(name));
        match (log_file("stdout.log"), log_file("stderr.log")) {
            (Ok(o), Ok(e)) => {
                cmd.stdout(o).stderr(e);
            }
            _ => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let server_id = s.server_id;
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.log(
                    Some(server_id),
                    format!("cannot start {} ({name}): {e}", exe.display()),
                );
                self.record_crash(i, format!("start failed: {e}"));
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        self.next_gen += 1;
        let gen = self.next_gen;
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let tx = self.tx.clone();
        tokio::spawn(supervise_child(child, pid, ctl_rx, move |info| {
            let _ = tx.send(Internal::Exited { slot: i, gen, info });
        }));
        let now = Instant::now();
        let slot = &mut self.slots[i];
        slot.starts += 1;
        slot.record =
            GameServerRecord::new(self.cfg.agones.as_ref().map_or(0, |a| a.player_capacity));
        slot.started_ms = unix_ms();
        slot.query_failures.clear();
        slot.memory_failures.clear();
        slot.proc = Some(Proc {
            pid,
            gen,
            build_config: name.clone(),
            started: now,
            control: ctl_tx,
            stopping: None,
            answered: false,
            next_check: now + self.cfg.health_interval(),
            check_in_flight: false,
            rss_kb: None,
        });
        let alloc = slot
            .allocation
            .as_ref()
            .map(|a| format!(", allocation {}", a.id))
            .unwrap_or_default();
        self.log(
            Some(server_id),
            format!("started pid {pid} with build configuration {name}{alloc}"),
        );
    }

    fn stop(&mut self, i: usize, reason: StopReason) {
        let grace = Duration::from_millis(self.cfg.fleet.stop_grace_ms);
        let id = self.slots[i].server_id;
        self.slots[i].start_at = None;
        let Some(p) = self.slots[i].proc.as_mut() else {
            return;
        };
        // A shutdown overrides whatever stop was under way.
        if p.stopping.is_some() && reason != StopReason::Shutdown {
            p.stopping = Some(reason);
            return;
        }
        let first = p.stopping.is_none();
        p.stopping = Some(reason.clone());
        let _ = p.control.send(ProcControl::Stop { grace });
        let pid = p.pid;
        if first {
            self.log(Some(id), format!("stopping pid {pid}: {reason:?}"));
        }
    }

    fn record_crash(&mut self, i: usize, what: String) {
        let now = Instant::now();
        let window = Duration::from_millis(self.cfg.crash.window_ms);
        let id = self.slots[i].server_id;
        let slot = &mut self.slots[i];
        slot.crashes.push_back(now);
        while slot
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            slot.crashes.pop_front();
        }
        let n = slot.crashes.len();
        if n as u32 >= self.cfg.crash.max_crashes {
            slot.backoff = true;
            slot.start_at = None;
            self.log(
                Some(id),
                format!(
                    "crash backoff engaged: {n} failures within {} ms ({what}); not restarting",
                    self.cfg.crash.window_ms
                ),
            );
        } else {
            slot.start_at = Some(now + Duration::from_millis(self.cfg.crash.restart_delay_ms));
            self.log(
                Some(id),
                format!(
                    "{what}; restarting in {} ms ({n} of {} allowed within the window)",
                    self.cfg.crash.restart_delay_ms, self.cfg.crash.max_crashes
                ),
            );
        }
    }

    /// Whether an unallocated slot should have a running server.
    fn wants_running_idle(&self, i: usize) -> bool {
        let now = Instant::now();
        let s = &self.slots[i];
        self.machine == MachineState::Running
            && !s.backoff
            && (self.cfg.fleet.start_on_provision
                || s.held_until.is_some_and(|t| t > now)
                || s.reserved_until.is_some_and(|t| t > now))
    }

    fn on_exit(&mut self, i: usize, gen: u64, info: ExitInfo) {
        let Some(p) = self.slots[i].proc.as_ref() else {
            return;
        };
        if p.gen != gen {
            return;
        }
        let p = self.slots[i].proc.take().expect("checked above");
        let id = self.slots[i].server_id;
        self.slots[i].last_exit = Some(info.to_string());
        match p.stopping {
            Some(StopReason::Restart) => {
                self.log(
                    Some(id),
                    format!("pid {} stopped ({info}) for a restart", p.pid),
                );
                self.start(i);
            }
            Some(StopReason::Malfunction(why)) => {
                self.log(
                    Some(id),
                    format!("pid {} stopped ({info}) after malfunction", p.pid),
                );
                self.record_crash(i, format!("malfunction: {why}"));
            }
            Some(StopReason::SdkShutdown) if !self.shutting_down => {
                self.log(
                    Some(id),
                    format!(
                        "pid {} stopped ({info}) after Shutdown through the SDK",
                        p.pid
                    ),
                );
                self.session_over(i, "Shutdown through the SDK");
            }
            Some(reason) => {
                self.log(
                    Some(id),
                    format!("pid {} stopped ({info}): {reason:?}", p.pid),
                );
            }
            None if self.shutting_down => {}
            None if info.success() => {
                self.log(
                    Some(id),
                    format!("pid {} exited with code 0 (intentional)", p.pid),
                );
                self.session_over(i, "exit 0");
            }
            None => {
                self.log(Some(id), format!("pid {} crashed ({info})", p.pid));
                self.record_crash(i, format!("crash ({info})"));
            }
        }
    }

    /// The intentional end of a server: its allocation ends, the slot is
    /// ready for the next one (and runs a fresh server if idle slots do).
    fn session_over(&mut self, i: usize, why: &str) {
        let id = self.slots[i].server_id;
        if let Some(a) = self.slots[i].allocation.take() {
            self.log(Some(id), format!("deallocated {} after {why}", a.id));
            self.write_payload(i);
        }
        self.slots[i].want_config = self.active_config.clone();
        self.write_server_json(i);
        self.slots[i].unhealthy = false;
        if self.wants_running_idle(i) {
            self.start(i);
        }
        self.log(Some(id), "slot ready".into());
    }

    fn on_health(&mut self, i: usize, gen: u64, query_ok: Option<bool>, rss: Option<u64>) {
        let cfg = self.cfg.clone();
        let now = Instant::now();
        let window = Duration::from_millis(cfg.health.failure_window_ms);
        let limit = cfg.memory_limit_kb();
        let grace = Duration::from_millis(cfg.health.startup_grace_ms);
        let id = self.slots[i].server_id;
        let slot = &mut self.slots[i];
        let Some(p) = slot.proc.as_mut() else {
            return;
        };
        if p.gen != gen {
            return;
        }
        // The next probe was planned when this one was sent, so probes
        // come every interval whatever the query timeout.
        p.check_in_flight = false;
        if p.stopping.is_some() {
            return;
        }
        p.rss_kb = rss;
        let mut msgs = Vec::new();
        let mut became_ready = false;
        match query_ok {
            Some(true) => {
                if !p.answered {
                    became_ready = true;
                }
                p.answered = true;
            }
            Some(false) if p.answered || now.duration_since(p.started) >= grace => {
                slot.query_failures.push_back(now);
                msgs.push("no answer to the query protocol".to_string());
            }
            _ => {}
        }
        // The SDK's Health pings are a second health source: once a server
        // has pinged, a probe that finds no ping within the last interval
        // (plus the query timeout) counts as a failure.
        if let Some(t) = slot.record.last_health {
            let allowed =
                cfg.health_interval() + Duration::from_millis(cfg.health.query_timeout_ms);
            if now.duration_since(t) > allowed {
                slot.query_failures.push_back(now);
                msgs.push(format!(
                    "no Health ping through the SDK for {} ms",
                    now.duration_since(t).as_millis()
                ));
            }
        }
        if let Some(kb) = rss {
            if kb > limit {
                slot.memory_failures.push_back(now);
                msgs.push(format!("memory {kb} KiB over the limit of {limit} KiB"));
            }
        }
        for q in [&mut slot.query_failures, &mut slot.memory_failures] {
            while q.front().is_some_and(|t| now.duration_since(*t) > window) {
                q.pop_front();
            }
        }
        if became_ready || (query_ok.is_none() && msgs.is_empty()) {
            slot.unhealthy = false;
        }
        let qf = slot.query_failures.len() as u32;
        let mf = slot.memory_failures.len() as u32;
        if became_ready {
            self.log(Some(id), "answered its first query: ready".into());
        }
        for m in msgs {
            self.log(Some(id), format!("health check failed: {m}"));
        }
        let t = cfg.health.failure_threshold;
        let why = if qf >= t {
            Some(format!("no answer to {qf} queries"))
        } else if mf >= t {
            Some(format!("memory over the limit in {mf} checks"))
        } else {
            None
        };
        if let Some(why) = why {
            self.slots[i].unhealthy = true;
            self.log(Some(id), format!("malfunction: {why}; stopping to restart"));
            self.stop(i, StopReason::Malfunction(why));
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let id = self.slots[i].server_id;
            if self.slots[i].reserved_until.is_some_and(|t| t <= now) {
                self.slots[i].reserved_until = None;
                self.log(Some(id), "reservation expired".into());
                self.after_release(i);
            }
            if self.slots[i].held_until.is_some_and(|t| t <= now) {
                self.slots[i].held_until = None;
                self.log(Some(id), "hold expired".into());
                self.after_release(i);
            }
            if self.slots[i].start_at.is_some_and(|t| t <= now) {
                self.start(i);
            }
            self.maybe_check(i, now);
        }
        if self.slots.iter().any(|s| !s.idle(now)) {
            self.last_busy = now;
        }
        if let Some(ttl) = self.cfg.fleet.idle_ttl_ms {
            if self.machine == MachineState::Running
                && !self.shutting_down
                && now.duration_since(self.last_busy) >= Duration::from_millis(ttl)
            {
                self.machine = MachineState::Stopped;
                self.log(
                    None,
                    format!("machine stopped: every server idle for more than {ttl} ms"),
                );
                for i in 0..self.slots.len() {
                    self.slots[i].start_at = None;
                    self.stop(i, StopReason::MachineIdle);
                }
            }
        }
    }

    /// After a reservation or hold ends on an unallocated slot.
    fn after_release(&mut self, i: usize) {
        if self.slots[i].allocation.is_none() && !self.wants_running_idle(i) {
            self.stop(i, StopReason::Expired);
        }
    }

    fn maybe_check(&mut self, i: usize, now: Instant) {
        let cfg = &self.cfg;
        let slot = &self.slots[i];
        let Some(p) = slot.proc.as_ref() else {
            return;
        };
        if p.stopping.is_some() || p.check_in_flight || now < p.next_check {
            return;
        }
        let bc = self.bc(&p.build_config);
        let query = bc.query();
        let (_, qport) = self.ports(i, bc);
        let ip: IpAddr = cfg
            .fleet
            .ip
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let addr = SocketAddr::new(ip, qport);
        let timeout = Duration::from_millis(cfg.health.query_timeout_ms);
        let (pid, gen) = (p.pid, p.gen);
        let tx = self.tx.clone();
        let interval = cfg.health_interval();
        if let Some(p) = self.slots[i].proc.as_mut() {
            p.check_in_flight = true;
            p.next_check = now + interval;
        }
        tokio::task::spawn_blocking(move || {
            let query_ok = query.map(|q| match q {
                QueryType::A2s => sdk::a2s::query(addr, timeout).is_ok(),
                QueryType::Sqp => sdk::sqp::query(addr, timeout).is_ok(),
            });
            let rss = rss_kb(pid);
            let _ = tx.send(Internal::Health {
                slot: i,
                gen,
                query_ok,
                rss_kb: rss,
            });
        });
    }

    // ----- read-only views ---------------------------------------------------

    fn server_view(&self, i: usize) -> ServerView {
        let s = &self.slots[i];
        let now = Instant::now();
        let bc_name = s
            .proc
            .as_ref()
            .map(|p| p.build_config.clone())
            .unwrap_or_else(|| s.want_config.clone());
        let bc = self.bc(&bc_name);
        let (port, qport) = self.ports(i, bc);
        let remaining = |t: Option<Instant>| {
            t.filter(|t| *t > now)
                .map(|t| t.duration_since(now).as_millis() as u64)
        };
        let process = match &s.proc {
            Some(p) if p.stopping.is_some() => ProcessState::Stopping,
            Some(_) => ProcessState::Running,
            None if s.start_at.is_some() => ProcessState::RestartPending,
            None => ProcessState::Stopped,
        };
        ServerView {
            server_id: s.server_id,
            slot: s.index,
            state: s.state(bc.query().is_some(), bc.sdk_ready),
            process,
            pid: s.proc.as_ref().map(|p| p.pid),
            build_config: bc_name.clone(),
            ip: self.cfg.fleet.ip.clone(),
            port,
            query_port: bc.query().map(|_| qport),
            query_type: bc.query(),
            allocation_id: s.allocation.as_ref().map(|a| a.id.clone()),
            reserved_for_ms: remaining(s.reserved_until),
            held_for_ms: remaining(s.held_until),
            backoff: s.backoff,
            recent_crashes: s.crashes.len(),
            starts: s.starts,
            last_exit: s.last_exit.clone(),
            memory_kb: s.proc.as_ref().and_then(|p| p.rss_kb),
            dir: s.dir.clone(),
            players: s
                .record
                .lists
                .get(gameserver::PLAYERS)
                .map_or(0, |l| l.values.len()),
        }
    }

    fn allocation_view(&self, i: usize) -> Option<AllocationView> {
        let s = &self.slots[i];
        let a = s.allocation.as_ref()?;
        let bc = self.bc(&a.build_config);
        let (port, qport) = self.ports(i, bc);
        Some(AllocationView {
            allocation_id: a.id.clone(),
            server_id: s.server_id,
            build_config: a.build_config.clone(),
            ip: self.cfg.fleet.ip.clone(),
            port,
            query_port: bc.query().map(|_| qport),
            payload: a.payload.clone(),
            allocated_at_ms: a.allocated_at_ms,
            state: s.state(bc.query().is_some(), bc.sdk_ready),
        })
    }

    fn slot_by_id(&self, id: u64) -> Result<usize, HostError> {
        self.slots
            .iter()
            .position(|s| s.server_id == id)
            .ok_or_else(|| HostError::NotFound(format!("no server with id {id}")))
    }

    /// The machine.
    pub fn machine(&self) -> MachineView {
        MachineView {
            running: self.machine == MachineState::Running,
            shutting_down: self.shutting_down,
            fleet_id: self.cfg.fleet.id.clone(),
            machine_id: self.cfg.fleet.machine_id.clone(),
            slots: self.slots.len(),
            active_build_config: self.active_config.clone(),
            start_on_provision: self.cfg.fleet.start_on_provision,
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// Every slot.
    pub fn servers(&self) -> Vec<ServerView> {
        (0..self.slots.len()).map(|i| self.server_view(i)).collect()
    }

    /// One slot.
    pub fn server(&self, id: u64) -> Result<ServerView, HostError> {
        self.slot_by_id(id).map(|i| self.server_view(i))
    }

    /// Every allocation.
    pub fn allocations(&self) -> Vec<AllocationView> {
        (0..self.slots.len())
            .filter_map(|i| self.allocation_view(i))
            .collect()
    }

    /// One allocation.
    pub fn allocation(&self, id: &str) -> Result<AllocationView, HostError> {
        self.find_allocation(id)
            .and_then(|i| self.allocation_view(i))
            .ok_or_else(|| no_allocation(id))
    }

    /// The transition log, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.iter().cloned().collect()
    }

    /// The active build configuration.
    pub fn active_build_config(&self) -> &str {
        &self.active_config
    }

    fn find_allocation(&self, id: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.allocation.as_ref().is_some_and(|a| a.id == id))
    }

    // ----- operations ----------------------------------------------------------

    fn refuse_when_shutting_down(&self) -> Result<(), HostError> {
        if self.shutting_down {
            Err(HostError::Unavailable(
                "the supervisor is shutting down".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Allocates a server (HOST-3).
    pub fn allocate(&mut self, req: AllocateRequest) -> Result<AllocationView, HostError> {
        self.refuse_when_shutting_down()?;
        let id = req.allocation_id.trim().to_owned();
        validate_allocation_id(&id)?;
        if let Some(p) = &req.payload {
            let n = match p {
                Value::String(s) => s.len(),
                v => v.to_string().len(),
            };
            if n > MAX_PAYLOAD_BYTES {
                return Err(HostError::TooLarge(format!(
                    "allocation payload is {n} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes (10 KB)"
                )));
            }
        }
        for k in req.labels.keys().chain(req.annotations.keys()) {
            if k.is_empty()
                || k.len() > 253
                || k.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(HostError::BadRequest(format!(
                    "metadata key {k:?} is invalid"
                )));
            }
        }
        if self.find_allocation(&id).is_some() {
            return Err(HostError::Conflict(format!(
                "allocation {id:?} already exists"
            )));
        }
        let name = req
            .build_config
            .unwrap_or_else(|| self.active_config.clone());
        if self.cfg.build_config(&name).is_none() {
            return Err(HostError::BadRequest(format!(
                "unknown build configuration {name:?}"
            )));
        }
        let now = Instant::now();
        let i = match req.server_id {
            Some(sid) => {
                let i = self.slot_by_id(sid)?;
                let s = &self.slots[i];
                if let Some(a) = &s.allocation {
                    return Err(HostError::Conflict(format!(
                        "server {sid} is already allocated ({})",
                        a.id
                    )));
                }
                if s.backoff {
                    return Err(HostError::Conflict(format!(
                        "server {sid} is in crash backoff; start it first"
                    )));
                }
                i
            }
            None => {
                let rank = |s: &Slot| -> Option<u8> {
                    if s.allocation.is_some()
                        || s.backoff
                        || s.reserved_until.is_some_and(|t| t > now)
                    {
                        return None;
                    }
                    Some(match &s.proc {
                        Some(p) if p.stopping.is_none() && p.build_config == name && p.answered => {
                            0
                        }
                        Some(p) if p.stopping.is_none() && p.build_config == name => 1,
                        None => 2,
                        Some(p) if p.stopping.is_some() => 3,
                        Some(_) => 4,
                    })
                };
                self.slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| rank(s).map(|r| (r, i)))
                    .min()
                    .map(|(_, i)| i)
                    .ok_or_else(|| {
                        HostError::Conflict("no server available for allocation".into())
                    })?
            }
        };
        self.allocate_slot(
            i,
            Allocation {
                id,
                build_config: name,
                payload: req.payload,
                allocated_at_ms: unix_ms(),
                labels: req.labels,
                annotations: req.annotations,
            },
        );
        Ok(self.allocation_view(i).expect("just allocated"))
    }

    fn allocate_slot(&mut self, i: usize, a: Allocation) {
        let (id, name) = (a.id.clone(), a.build_config.clone());
        if self.machine == MachineState::Stopped {
            self.machine = MachineState::Running;
            self.last_busy = Instant::now();
            self.log(None, "machine started again for an allocation".into());
        }
        let sid = self.slots[i].server_id;
        let slot = &mut self.slots[i];
        slot.reserved_until = None;
        slot.record.sdk_ready = false;
        slot.record.generation += 1;
        slot.allocation = Some(a);
        slot.want_config = name.clone();
        self.write_payload(i);
        self.write_server_json(i);
        self.log(
            Some(sid),
            format!("allocated {id} (build configuration {name})"),
        );
        self.ensure_config(i);
    }

    /// Makes the slot run its wanted build configuration: start it, or
    /// restart it when it runs another one.
    fn ensure_config(&mut self, i: usize) {
        let want = self.slots[i].want_config.clone();
        let id = self.slots[i].server_id;
        match self.slots[i].proc.as_mut() {
            None => self.start(i),
            Some(p) if p.stopping.is_some() => {
                if p.stopping != Some(StopReason::Shutdown) {
                    p.stopping = Some(StopReason::Restart);
                }
            }
            Some(p) if p.build_config != want => {
                let old = p.build_config.clone();
                self.log(
                    Some(id),
                    format!("runs build configuration {old}, needs {want}: restarting"),
                );
                self.stop(i, StopReason::Restart);
            }
            Some(_) => {}
        }
    }

    /// Ends an allocation; the slot goes back to the pool.
    pub fn deallocate(&mut self, id: &str) -> Result<Option<AllocationView>, HostError> {
        let i = self.find_allocation(id).ok_or_else(|| no_allocation(id))?;
        let view = self.allocation_view(i);
        let sid = self.slots[i].server_id;
        self.slots[i].allocation = None;
        self.write_payload(i);
        self.slots[i].want_config = self.active_config.clone();
        self.write_server_json(i);
        self.log(Some(sid), format!("deallocated {id}"));
        if self.slots[i].backoff {
            self.slots[i].backoff = false;
            self.slots[i].crashes.clear();
            self.log(Some(sid), "crash backoff cleared".into());
        }
        if self.wants_running_idle(i) {
            self.ensure_config(i);
        } else {
            self.stop(i, StopReason::Deallocated);
        }
        Ok(view)
    }

    /// Stops a server; refused when it is allocated.
    pub fn stop_server(&mut self, id: u64) -> Result<ServerView, HostError> {
        let i = self.slot_by_id(id)?;
        if let Some(a) = &self.slots[i].allocation {
            let msg = format!(
                "server {id} is allocated ({}); stopping an allocated server is refused: deallocate it instead",
                a.id
            );
            let log = format!("refused manual stop: allocated to {}", a.id);
            self.log(Some(id), log);
            return Err(HostError::Conflict(msg));
        }
        self.slots[i].start_at = None;
        if self.slots[i].proc.is_some() {
            self.stop(i, StopReason::Manual);
        }
        Ok(self.server_view(i))
    }

    /// Starts a server, clearing its crash backoff.
    pub fn start_server(&mut self, id: u64) -> Result<ServerView, HostError> {
        let i = self.slot_by_id(id)?;
        self.refuse_when_shutting_down()?;
        self.wake_machine("machine started again by a manual server start");
        if self.slots[i].backoff {
            self.slots[i].backoff = false;
            self.slots[i].crashes.clear();
            self.log(Some(id), "crash backoff cleared by a manual start".into());
        }
        self.ensure_config(i);
        Ok(self.server_view(i))
    }

    /// Keeps a server running for `duration_ms`.
    pub fn hold(&mut self, id: u64, duration_ms: u64) -> Result<ServerView, HostError> {
        let i = self.slot_by_id(id)?;
        positive_duration(duration_ms)?;
        self.slots[i].held_until = Some(Instant::now() + Duration::from_millis(duration_ms));
        self.log(Some(id), format!("held for {duration_ms} ms"));
        if self.slots[i].proc.is_none() && !self.slots[i].backoff && !self.shutting_down {
            self.wake_machine("machine started again");
            self.start(i);
        }
        Ok(self.server_view(i))
    }

    fn wake_machine(&mut self, why: &str) {
        if self.machine == MachineState::Stopped {
            self.machine = MachineState::Running;
            self.last_busy = Instant::now();
            self.log(None, why.into());
        }
    }

    /// Reserves a server (a given one, or the best free one) for
    /// `duration_ms`.
    pub fn reserve(
        &mut self,
        duration_ms: u64,
        server_id: Option<u64>,
    ) -> Result<ServerView, HostError> {
        positive_duration(duration_ms)?;
        let now = Instant::now();
        let i = match server_id {
            Some(sid) => {
                let i = self.slot_by_id(sid)?;
                if self.slots[i].allocation.is_some() {
                    return Err(HostError::Conflict(format!("server {sid} is allocated")));
                }
                i
            }
            None => self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.allocation.is_none()
                        && !s.backoff
                        && s.reserved_until.is_none_or(|t| t <= now)
                })
                .min_by_key(|(i, s)| (!s.running(), *i))
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    HostError::Conflict("no server available for a reservation".into())
                })?,
        };
        if self.slots[i].backoff {
            return Err(HostError::Conflict("the server is in crash backoff".into()));
        }
        let sid = self.slots[i].server_id;
        self.slots[i].reserved_until = Some(now + Duration::from_millis(duration_ms));
        self.log(Some(sid), format!("reserved for {duration_ms} ms"));
        if self.slots[i].proc.is_none() && !self.shutting_down {
            self.wake_machine("machine started again");
            self.start(i);
        }
        Ok(self.server_view(i))
    }

    /// Releases a reservation.
    pub fn unreserve(&mut self, id: u64) -> Result<ServerView, HostError> {
        let i = self.slot_by_id(id)?;
        if self.slots[i].reserved_until.take().is_none() {
            return Err(HostError::NotFound(format!("server {id} is not reserved")));
        }
        self.log(Some(id), "reservation released".into());
        self.after_release(i);
        Ok(self.server_view(i))
    }

    /// Changes the active build configuration (HOST-6).
    pub fn set_build_config(&mut self, name: &str) -> Result<(), HostError> {
        if self.cfg.build_config(name).is_none() {
            return Err(HostError::BadRequest(format!(
                "unknown build configuration {name:?}"
            )));
        }
        let old = std::mem::replace(&mut self.active_config, name.to_owned());
        self.log(
            None,
            format!("active build configuration changed from {old} to {name}"),
        );
        for i in 0..self.slots.len() {
            if self.slots[i].allocation.is_some() {
                continue;
            }
            self.slots[i].want_config = name.to_owned();
            if self.slots[i].proc.is_some() {
                self.ensure_config(i);
            } else {
                self.write_server_json(i);
            }
        }
        Ok(())
    }

    /// Stops every server; the supervisor exits when they are reaped.
    pub fn shutdown(&mut self, why: &str) {
        if self.shutting_down {
            return;
        }
        self.log(None, format!("shutting down: {why}; stopping every server"));
        self.shutting_down = true;
        for i in 0..self.slots.len() {
            self.slots[i].start_at = None;
            self.stop(i, StopReason::Shutdown);
        }
    }

    // ----- the Agones SDK of a slot ------------------------------------------------

    /// The gRPC and REST ports of slot `i`'s SDK server, when `[agones]`
    /// is configured.
    pub fn sdk_ports(&self, i: usize) -> Option<(u16, u16)> {
        let a = self.cfg.agones.as_ref()?;
        Some((
            a.grpc_port_range[0] + i as u16,
            a.http_port_range[0] + i as u16,
        ))
    }

    fn sdk_slot(&mut self, i: usize) -> Result<&mut Slot, HostError> {
        let s = self
            .slots
            .get_mut(i)
            .ok_or_else(|| HostError::NotFound(format!("no slot {i}")))?;
        if !s.running() {
            return Err(HostError::Conflict(format!(
                "server {} has no running process",
                s.server_id
            )));
        }
        Ok(s)
    }

    /// `Ready`: the server is ready for an allocation. Called while
    /// allocated, it ends the allocation and the process stays (Agones'
    /// way of reusing a server).
    pub fn sdk_ready(&mut self, i: usize) -> Result<(), HostError> {
        let s = self.sdk_slot(i)?;
        let id = s.server_id;
        let first = !s.record.sdk_ready;
        s.record.sdk_ready = true;
        s.record.generation += 1;
        s.reserved_until = None;
        if let Some(a) = s.allocation.take() {
            self.log(
                Some(id),
                format!("Ready through the SDK: allocation {} ends", a.id),
            );
            self.write_payload(i);
            self.slots[i].want_config = self.active_config.clone();
            self.write_server_json(i);
        } else if first {
            self.log(Some(id), "Ready through the SDK".into());
        }
        Ok(())
    }

    /// `Health`: one ping.
    pub fn sdk_health(&mut self, i: usize) -> Result<(), HostError> {
        let s = self.sdk_slot(i)?;
        s.record.last_health = Some(Instant::now());
        if s.unhealthy && s.proc.as_ref().is_some_and(|p| p.stopping.is_none()) {
            s.unhealthy = false;
        }
        Ok(())
    }

    /// `Allocate`: the server allocates itself (an allocation named
    /// `sdk-<server id>-<n>`); nothing when it is allocated already.
    pub fn sdk_allocate(&mut self, i: usize) -> Result<(), HostError> {
        self.refuse_when_shutting_down()?;
        let s = self.sdk_slot(i)?;
        if s.allocation.is_some() {
            return Ok(());
        }
        let name = s
            .proc
            .as_ref()
            .map(|p| p.build_config.clone())
            .unwrap_or_else(|| s.want_config.clone());
        let id = format!("sdk-{}-{}", s.server_id, s.starts);
        let id = if self.find_allocation(&id).is_some() {
            format!("{id}-{}", unix_ms())
        } else {
            id
        };
        self.allocate_slot(
            i,
            Allocation {
                id,
                build_config: name,
                payload: None,
                allocated_at_ms: unix_ms(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// `Reserve(seconds)`: held back from allocations for that long; 0
    /// means until allocated. Nothing while allocated.
    pub fn sdk_reserve(&mut self, i: usize, seconds: i64) -> Result<(), HostError> {
        if seconds < 0 {
            return Err(HostError::BadRequest(format!(
                "cannot reserve for {seconds} seconds"
            )));
        }
        let s = self.sdk_slot(i)?;
        if s.allocation.is_some() {
            return Ok(());
        }
        let id = s.server_id;
        // "Until allocated" is ten years: far enough, and no overflow.
        let d = if seconds == 0 {
            Duration::from_secs(10 * 365 * 86_400)
        } else {
            Duration::from_secs(seconds as u64)
        };
        // Ready again by itself when the reservation ends, as on Agones.
        s.reserved_until = Some(Instant::now() + d);
        s.record.generation += 1;
        let how = if seconds == 0 {
            "until allocated".to_string()
        } else {
            format!("for {seconds} s")
        };
        self.log(Some(id), format!("reserved {how} through the SDK"));
        Ok(())
    }

    /// `Shutdown`: the server is done; it is stopped, and the slot ends
    /// like after an exit with code 0.
    pub fn sdk_shutdown(&mut self, i: usize) -> Result<(), HostError> {
        let id = self.sdk_slot(i)?.server_id;
        self.log(Some(id), "Shutdown through the SDK".into());
        self.stop(i, StopReason::SdkShutdown);
        Ok(())
    }

    /// `SetLabel`.
    pub fn sdk_set_label(&mut self, i: usize, key: &str, value: &str) -> Result<(), HostError> {
        self.sdk_slot(i)?.record.set_label(key, value)
    }

    /// `SetAnnotation`.
    pub fn sdk_set_annotation(
        &mut self,
        i: usize,
        key: &str,
        value: &str,
    ) -> Result<(), HostError> {
        self.sdk_slot(i)?.record.set_annotation(key, value)
    }

    /// `GetCounter`.
    pub fn sdk_counter(&mut self, i: usize, name: &str) -> Result<Counter, HostError> {
        self.sdk_slot(i)?.record.counter(name)
    }

    /// `UpdateCounter`.
    pub fn sdk_update_counter(
        &mut self,
        i: usize,
        name: &str,
        count: Option<i64>,
        capacity: Option<i64>,
        diff: i64,
    ) -> Result<Counter, HostError> {
        self.sdk_slot(i)?
            .record
            .update_counter(name, count, capacity, diff)
    }

    /// `GetList`.
    pub fn sdk_list(&mut self, i: usize, name: &str) -> Result<List, HostError> {
        self.sdk_slot(i)?.record.list(name)
    }

    /// `UpdateList`.
    pub fn sdk_update_list(
        &mut self,
        i: usize,
        name: &str,
        capacity: Option<i64>,
        values: Option<Vec<String>>,
    ) -> Result<List, HostError> {
        self.sdk_slot(i)?.record.update_list(name, capacity, values)
    }

    /// `AddListValue`.
    pub fn sdk_add_list_value(
        &mut self,
        i: usize,
        name: &str,
        value: &str,
    ) -> Result<List, HostError> {
        self.sdk_slot(i)?.record.add_list_value(name, value)
    }

    /// `RemoveListValue`.
    pub fn sdk_remove_list_value(
        &mut self,
        i: usize,
        name: &str,
        value: &str,
    ) -> Result<List, HostError> {
        self.sdk_slot(i)?.record.remove_list_value(name, value)
    }

    /// Slot `i` as Agones' `GameServer` shows it (`None` for no such slot).
    pub fn game_server(&self, i: usize) -> Option<GameServerView> {
        let s = self.slots.get(i)?;
        let bc_name = s
            .proc
            .as_ref()
            .map(|p| p.build_config.clone())
            .unwrap_or_else(|| s.want_config.clone());
        let bc = self.bc(&bc_name);
        let (port, _) = self.ports(i, bc);
        let mut labels = s.record.labels.clone();
        let mut annotations = s.record.annotations.clone();
        if let Some(a) = &s.allocation {
            labels.extend(a.labels.clone());
            annotations.extend(a.annotations.clone());
            annotations.insert(ANNOTATION_ALLOCATION_ID.into(), a.id.clone());
            if let Some(p) = &a.payload {
                let text = match p {
                    Value::String(t) => t.clone(),
                    v => v.to_string(),
                };
                annotations.insert(ANNOTATION_ALLOCATION_PAYLOAD.into(), text);
            }
        }
        let gen = s.proc.as_ref().map_or(0, |p| p.gen);
        Some(GameServerView {
            name: format!("{}-{}", self.cfg.fleet.id, s.server_id),
            namespace: self.cfg.fleet.region_id.clone(),
            uid: format!("{}-{}-{gen}", self.cfg.fleet.machine_id, s.server_id),
            generation: s.record.generation,
            creation_timestamp: (s.started_ms / 1000) as i64,
            labels,
            annotations,
            state: s.state(bc.query().is_some(), bc.sdk_ready),
            address: self.cfg.fleet.ip.clone(),
            ipv6: self.cfg.fleet.ipv6.clone(),
            port,
            health_period_seconds: (self.cfg.health.interval_ms / 1000).max(1) as i32,
            health_failure_threshold: self.cfg.health.failure_threshold as i32,
            health_initial_delay_seconds: (self.cfg.health.startup_grace_ms / 1000) as i32,
            counters: s.record.counters.clone(),
            lists: s.record.lists.clone(),
        })
    }

    /// The number of slots.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    // ----- the task --------------------------------------------------------------

    /// Provisions the slots in `work` (their folders, `server.json`) and
    /// starts the servers that should run.
    pub fn provision(
        cfg: Arc<Config>,
        work: &Path,
        api: SocketAddr,
    ) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let mut slots = Vec::new();
        for i in 0..cfg.slot_count() {
            let server_id = cfg.fleet.first_server_id + i as u64;
            let dir = work.join(format!("server-{server_id}"));
            let log_dir = dir.join("logs");
            crate::files::create_private_dir(&log_dir)?;
            slots.push(Slot {
                index: i,
                server_id,
                dir,
                log_dir,
                want_config: cfg.fleet.build_config.clone(),
                proc: None,
                start_at: None,
                allocation: None,
                reserved_until: None,
                held_until: None,
                backoff: false,
                unhealthy: false,
                crashes: VecDeque::new(),
                query_failures: VecDeque::new(),
                memory_failures: VecDeque::new(),
                starts: 0,
                last_exit: None,
                record: GameServerRecord::new(cfg.agones.as_ref().map_or(0, |a| a.player_capacity)),
                started_ms: 0,
            });
        }
        let mut sup = Supervisor {
            active_config: cfg.fleet.build_config.clone(),
            cfg: cfg.clone(),
            slots,
            events: VecDeque::new(),
            event_seq: 0,
            started: now,
            machine: MachineState::Running,
            last_busy: now,
            shutting_down: false,
            next_gen: 0,
            self_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("netz-host")),
            tx,
            internal: Some(rx),
        };
        sup.log(
            None,
            format!(
                "provisioned {} server slots in {} (control API on http://{api})",
                sup.slots.len(),
                work.display()
            ),
        );
        for i in 0..sup.slots.len() {
            sup.write_payload(i);
            sup.write_server_json(i);
            if cfg.fleet.start_on_provision {
                sup.start(i);
            }
        }
        Ok(sup)
    }

    /// Runs the supervisor until it is told to shut down (a job calling
    /// [`Supervisor::shutdown`], SIGTERM or SIGINT) and every child is
    /// stopped and reaped.
    pub async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut rx = self.internal.take().expect("run is called once");
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut sigint =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(ev) = rx.recv() => match ev {
                    Internal::Exited { slot, gen, info } => self.on_exit(slot, gen, info),
                    Internal::Health { slot, gen, query_ok, rss_kb } => self.on_health(slot, gen, query_ok, rss_kb),
                },
                Some(job) = jobs.recv() => job(&mut self),
                _ = tick.tick() => self.tick(),
                Some(_) = async { match sigterm.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    self.shutdown("SIGTERM");
                }
                Some(_) = async { match sigint.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    self.shutdown("SIGINT");
                }
            }
            if self.shutting_down && self.slots.iter().all(|s| s.proc.is_none()) {
                break;
            }
        }
        self.log(
            None,
            "every server stopped and reaped; supervisor exiting".into(),
        );
    }
}

fn no_allocation(id: &str) -> HostError {
    HostError::NotFound(format!("no allocation with id {id:?}"))
}

fn positive_duration(ms: u64) -> Result<(), HostError> {
    if ms == 0 {
        Err(HostError::BadRequest(
            "duration_ms must be greater than zero".into(),
        ))
    } else {
        Ok(())
    }
}

/// Checks an allocation id: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`,
/// so that it stands in a URL path and a file unchanged.
pub fn validate_allocation_id(id: &str) -> Result<(), HostError> {
    if id.is_empty() {
        return Err(HostError::BadRequest(
            "allocation_id must not be empty".into(),
        ));
    }
    if id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(HostError::BadRequest(format!(
            "allocation_id {id:?} is invalid: use 1 to 128 characters of A-Z a-z 0-9 - _ . :"
        )));
    }
    Ok(())
}
