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

/// Environment variable holding the game address of the session a server
/// is to join (also `{join}` in its arguments); unset when it creates one.
pub const ENV_JOIN: &str = "NETZ_JOIN";
/// Environment variable holding the build configuration's `drain_ms`.
pub const ENV_DRAIN_MS: &str = "NETZ_DRAIN_MS";
/// Largest allocation payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024;
/// How often the supervisor looks at timers (restarts, expiries, checks).
const TICK: Duration = Duration::from_millis(25);
/// Events kept for the API.
const MAX_EVENTS: usize = 2000;

/// Work handed to the supervisor task: it runs with the whole state and
/// nothing else runs meanwhile.
pub type Job = Box<dyn FnOnce(&mut Supervisor) + Send>;

mod agones;
mod cluster;
mod control;
mod upgrade;
mod views;

pub use views::{AllocateRequest, AllocationView, Event, GameServerView, MachineView, ServerView};

pub use upgrade::{
    NewServerState, OldServerState, ReplacementView, UpgradeCounts, UpgradePhase, UpgradeRequest,
    UpgradeServerView, UpgradeView,
};

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

pub use crate::sdk::ANNOTATION_ALLOCATION_ID;
/// The annotation of an allocated GameServer that holds its payload.
pub const ANNOTATION_ALLOCATION_PAYLOAD: &str = "netz.dev/allocation-payload";

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
    /// A rolling upgrade scales the server in: it drains and exits.
    ScaleIn,
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
    /// Said it is ready once (answered its query protocol, called the
    /// SDK's `Ready`, or has no way to say it).
    ready: bool,
    /// The session it is in (see [`ServerView::cluster`]).
    cluster: u64,
    /// The address it was told to join.
    joined: Option<String>,
}

#[derive(Debug, Clone)]
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
    /// The session the next process joins, chosen by a rolling upgrade.
    join_to: Option<cluster::Join>,
    /// The server a start waits for (to be ready, to join its session).
    waiting_for: Option<u64>,
    /// Why the last start failed.
    start_error: Option<String>,
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
    /// The running or last rolling upgrade.
    upgrade: Option<upgrade::Upgrade>,
    next_upgrade: u64,
    next_cluster: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Supervisor {
    fn log(&mut self, server: Option<u64>, msg: String) {
        self.log_kind(server, None, msg);
    }

    fn log_kind(&mut self, server: Option<u64>, kind: Option<&'static str>, msg: String) {
        match (server, kind) {
            (Some(id), Some(k)) => tracing::info!(server = id, kind = k, "{msg}"),
            (Some(id), None) => tracing::info!(server = id, "{msg}"),
            (None, Some(k)) => tracing::info!(kind = k, "{msg}"),
            (None, None) => tracing::info!("{msg}"),
        }
        self.event_seq += 1;
        self.events.push_back(Event {
            seq: self.event_seq,
            time_ms: unix_ms(),
            server_id: server,
            kind,
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
        let join = match self.contact(i, &bc) {
            cluster::Contact::Wait(other) => {
                self.wait_to_join(i, other);
                return;
            }
            cluster::Contact::Create => None,
            cluster::Contact::Join(j) => Some(j),
        };
        self.slots[i].waiting_for = None;
        let build = self.cfg.build(&bc.build).expect("validated build").clone();
        let (port, qport) = self.ports(i, &bc);
        let s = &self.slots[i];
        let sj = s.dir.join(sdk::FILE_NAME);
        let join_addr = join.as_ref().map_or("", |j| j.addr.as_str());
        let drain_ms = bc.drain_ms.map(|d| d.to_string()).unwrap_or_default();
        let subst = |a: &str| {
            a.replace("{port}", &port.to_string())
                .replace("{query_port}", &qport.to_string())
                .replace("{server_id}", &s.server_id.to_string())
                .replace("{server_json}", &sj.to_string_lossy())
                .replace("{log_dir}", &s.log_dir.to_string_lossy())
                .replace("{slot_dir}", &s.dir.to_string_lossy())
                .replace("{join}", join_addr)
                .replace("{drain_ms}", &drain_ms)
        };
        let join_args: &[String] = if join.is_some() { &bc.join_args } else { &[] };
        let exe = if build.executable == "{self}" {
            self.self_exe.clone()
        } else {
            PathBuf::from(&build.executable)
        };
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(build.args.iter().map(|a| subst(a)))
            .args(bc.args.iter().map(|a| subst(a)))
            .args(join_args.iter().map(|a| subst(a)))
            .envs(&bc.env)
            .env(sdk::ENV_SERVER_JSON, &sj)
            .envs(join.iter().map(|j| (ENV_JOIN, j.addr.clone())))
            .envs(bc.drain_ms.iter().map(|d| (ENV_DRAIN_MS, d.to_string())))
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
                let what = format!("cannot start {} ({name}): {e}", exe.display());
                self.slots[i].start_error = Some(what.clone());
                self.log(Some(server_id), what);
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
        slot.start_error = None;
        let cluster = match &join {
            Some(j) => j.cluster,
            None => {
                self.next_cluster += 1;
                self.next_cluster
            }
        };
        let joined = join.as_ref().map(|j| j.addr.clone());
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
            ready: bc.query().is_none() && !bc.sdk_ready,
            cluster,
            joined: joined.clone(),
        });
        let alloc = slot
            .allocation
            .as_ref()
            .map(|a| format!(", allocation {}", a.id))
            .unwrap_or_default();
        let how = match (&join, joined) {
            (Some(j), Some(addr)) => {
                format!(", joining the session of server {} at {addr}", j.server)
            }
            _ => String::new(),
        };
        self.log(
            Some(server_id),
            format!("started pid {pid} with build configuration {name}{alloc}{how}"),
        );
    }

    fn stop(&mut self, i: usize, reason: StopReason) {
        let grace = Duration::from_millis(self.cfg.fleet.stop_grace_ms);
        self.stop_with_grace(i, reason, grace);
    }

    /// Stops slot `i`'s server: SIGTERM, then SIGKILL after `grace`.
    fn stop_with_grace(&mut self, i: usize, reason: StopReason, grace: Duration) {
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
        self.upgrade_old_exited(i, gen, info);
        if self.upgrade_replacement_exited(i, gen, info) {
            self.log(
                Some(id),
                format!(
                    "pid {} of a rolling upgrade's new server ended ({info})",
                    p.pid
                ),
            );
            return;
        }
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
            Some(StopReason::ScaleIn) => {
                self.log(
                    Some(id),
                    format!("pid {} stopped ({info}) after scaling in", p.pid),
                );
                self.after_scale_in(i);
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
            if let Some(p) = self.slots[i].proc.as_mut() {
                p.ready = true;
            }
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
        self.upgrade_step();
        if self.slots.iter().any(|s| !s.idle(now)) || self.upgrade_in_flight() {
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
        let interval = if !p.answered && self.upgrade_waits_for(i) {
            // A rolling upgrade waits for this server: look sooner.
            cfg.health_interval().min(upgrade::PROBE)
        } else {
            cfg.health_interval()
        };
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
            cluster: s.proc.as_ref().map(|p| p.cluster),
            joined: s.proc.as_ref().and_then(|p| p.joined.clone()),
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
                join_to: None,
                waiting_for: None,
                start_error: None,
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
            upgrade: None,
            next_upgrade: 0,
            next_cluster: 0,
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
