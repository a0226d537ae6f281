//! The supervisor: slots, processes, allocations and the lifecycle rules
//! (HOST-1..8). One task owns all state; the control API, child watchers
//! and health probes talk to it through a channel.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::config::{BuildConfiguration, Config};
use crate::process::{rss_kb, supervise_child, ExitInfo, ProcControl};
use crate::sdk::{self, QueryType, ServerJson};

/// Largest allocation payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024;
/// How often the supervisor looks at timers (restarts, expiries, checks).
const TICK: Duration = Duration::from_millis(25);
/// Events kept for the API.
const MAX_EVENTS: usize = 2000;

/// An API request handed to the supervisor task.
#[derive(Debug)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: String,
    /// Path without query string.
    pub path: String,
    /// Parsed JSON body (`Null` when empty).
    pub body: Value,
    /// Where the `(status, body)` reply goes.
    pub reply: oneshot::Sender<(u16, Value)>,
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

    fn state(&self, has_query: bool) -> &'static str {
        if self.backoff {
            "Error"
        } else if self.unhealthy {
            "Unhealthy"
        } else if self.allocation.is_some() {
            "Allocated"
        } else if self.reserved_until.is_some() {
            "Reserved"
        } else {
            match &self.proc {
                Some(p) if p.stopping.is_none() => {
                    if p.answered || !has_query {
                        "Ready"
                    } else {
                        "Scheduled"
                    }
                }
                Some(p) if p.stopping == Some(StopReason::Restart) => "Scheduled",
                _ if self.start_at.is_some() => "Scheduled",
                _ => "Shutdown",
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

struct Core {
    cfg: Arc<Config>,
    active_config: String,
    slots: Vec<Slot>,
    events: VecDeque<Value>,
    event_seq: u64,
    started: Instant,
    machine: MachineState,
    last_busy: Instant,
    shutting_down: bool,
    next_gen: u64,
    self_exe: PathBuf,
    tx: mpsc::UnboundedSender<Internal>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn err(status: u16, msg: impl Into<String>) -> (u16, Value) {
    (status, json!({ "error": msg.into() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateBody {
    allocation_id: String,
    #[serde(default)]
    build_config: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    server_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    duration_ms: u64,
    #[serde(default)]
    server_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationBody {
    duration_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildConfigBody {
    name: String,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, (u16, Value)> {
    let b = if body.is_null() {
        json!({})
    } else {
        body.clone()
    };
    serde_json::from_value(b).map_err(|e| err(400, format!("bad request body: {e}")))
}

impl Core {
    fn log(&mut self, server: Option<u64>, msg: String) {
        match server {
            Some(id) => tracing::info!(server = id, "{msg}"),
            None => tracing::info!("{msg}"),
        }
        self.event_seq += 1;
        self.events.push_back(json!({
            "seq": self.event_seq,
            "time_ms": unix_ms(),
            "server_id": server,
            "message": msg,
        }));
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
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        crate::process::die_with_parent(&mut cmd);
        let log_file = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(s.log_dir.join(name))
        };
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
                if let Some(a) = self.slots[i].allocation.take() {
                    self.log(Some(id), format!("deallocated {} after exit 0", a.id));
                    self.write_payload(i);
                }
                self.slots[i].want_config = self.active_config.clone();
                self.write_server_json(i);
                self.slots[i].unhealthy = false;
                if self.wants_running_idle(i) {
                    self.start(i);
                }
                let id = self.slots[i].server_id;
                self.log(Some(id), "slot ready".into());
            }
            None => {
                self.log(Some(id), format!("pid {} crashed ({info})", p.pid));
                self.record_crash(i, format!("crash ({info})"));
            }
        }
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
        p.check_in_flight = false;
        p.next_check = now + cfg.health_interval();
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
        if let Some(p) = self.slots[i].proc.as_mut() {
            p.check_in_flight = true;
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

    // ----- API -------------------------------------------------------------

    fn server_view(&self, i: usize) -> Value {
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
            Some(p) if p.stopping.is_some() => "stopping",
            Some(_) => "running",
            None if s.start_at.is_some() => "restart-pending",
            None => "stopped",
        };
        json!({
            "server_id": s.server_id,
            "slot": s.index,
            "state": s.state(bc.query().is_some()),
            "process": process,
            "pid": s.proc.as_ref().map(|p| p.pid),
            "build_config": bc_name,
            "ip": self.cfg.fleet.ip,
            "port": port,
            "query_port": if bc.query().is_some() { Some(qport) } else { None },
            "query_type": bc.query().map(|q| q.as_str()),
            "allocation_id": s.allocation.as_ref().map(|a| a.id.clone()),
            "reserved_for_ms": remaining(s.reserved_until),
            "held_for_ms": remaining(s.held_until),
            "backoff": s.backoff,
            "recent_crashes": s.crashes.len(),
            "starts": s.starts,
            "last_exit": s.last_exit,
            "memory_kb": s.proc.as_ref().and_then(|p| p.rss_kb),
            "dir": s.dir.to_string_lossy(),
        })
    }

    fn allocation_view(&self, i: usize) -> Option<Value> {
        let s = &self.slots[i];
        let a = s.allocation.as_ref()?;
        let bc = self.bc(&a.build_config);
        let (port, qport) = self.ports(i, bc);
        Some(json!({
            "allocation_id": a.id,
            "server_id": s.server_id,
            "build_config": a.build_config,
            "ip": self.cfg.fleet.ip,
            "port": port,
            "query_port": if bc.query().is_some() { Some(qport) } else { None },
            "payload": a.payload,
            "allocated_at_ms": a.allocated_at_ms,
            "state": s.state(bc.query().is_some()),
        }))
    }

    fn slot_by_id(&self, id: &str) -> Result<usize, (u16, Value)> {
        let n: u64 = id
            .parse()
            .map_err(|_| err(400, format!("server id {id:?} is not a number")))?;
        self.slots
            .iter()
            .position(|s| s.server_id == n)
            .ok_or_else(|| err(404, format!("no server with id {n}")))
    }

    fn machine_view(&self) -> Value {
        json!({
            "state": match self.machine { MachineState::Running => "running", MachineState::Stopped => "stopped" },
            "shutting_down": self.shutting_down,
            "fleet_id": self.cfg.fleet.id,
            "machine_id": self.cfg.fleet.machine_id,
            "slots": self.slots.len(),
            "active_build_config": self.active_config,
            "start_on_provision": self.cfg.fleet.start_on_provision,
            "uptime_ms": self.started.elapsed().as_millis() as u64,
        })
    }

    fn handle(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let result = match (method, parts.as_slice()) {
            ("GET", ["machine"]) | ("GET", []) => Ok((200, self.machine_view())),
            ("GET", ["servers"]) => Ok((
                200,
                Value::Array((0..self.slots.len()).map(|i| self.server_view(i)).collect()),
            )),
            ("GET", ["servers", id]) => self.slot_by_id(id).map(|i| (200, self.server_view(i))),
            ("POST", ["servers", id, "stop"]) => self.api_stop(id),
            ("POST", ["servers", id, "start"]) => self.api_start(id),
            ("POST", ["servers", id, "hold"]) => self.api_hold(id, body),
            ("GET", ["allocations"]) => Ok((
                200,
                Value::Array(
                    (0..self.slots.len())
                        .filter_map(|i| self.allocation_view(i))
                        .collect(),
                ),
            )),
            ("GET", ["allocations", id]) => self
                .find_allocation(id)
                .and_then(|i| self.allocation_view(i))
                .map(|v| (200, v))
                .ok_or_else(|| err(404, format!("no allocation with id {id:?}"))),
            ("POST", ["allocations"]) => self.api_allocate(body),
            ("DELETE", ["allocations", id]) => self.api_deallocate(id),
            ("POST", ["reservations"]) => self.api_reserve(body),
            ("DELETE", ["reservations", id]) => self.api_unreserve(id),
            ("GET", ["build-config"]) => Ok((200, json!({ "name": self.active_config }))),
            ("PUT", ["build-config"]) | ("POST", ["build-config"]) => self.api_build_config(body),
            ("GET", ["events"]) => Ok((200, Value::Array(self.events.iter().cloned().collect()))),
            ("POST", ["shutdown"]) => {
                self.shutdown("shutdown requested through the API");
                Ok((202, json!({ "shutting_down": true })))
            }
            (
                _,
                ["machine" | "servers" | "allocations" | "reservations" | "build-config" | "events"
                | "shutdown", ..],
            ) => Err(err(405, format!("method {method} not allowed on {path}"))),
            _ => Err(err(404, format!("no such endpoint: {method} {path}"))),
        };
        result.unwrap_or_else(|e| e)
    }

    fn find_allocation(&self, id: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.allocation.as_ref().is_some_and(|a| a.id == id))
    }

    fn api_allocate(&mut self, body: &Value) -> Result<(u16, Value), (u16, Value)> {
        if self.shutting_down {
            return Err(err(503, "the supervisor is shutting down"));
        }
        let b: AllocateBody = parse_body(body)?;
        let id = b.allocation_id.trim().to_owned();
        if id.is_empty() {
            return Err(err(400, "allocation_id must not be empty"));
        }
        if id.len() > 128 || id.chars().any(|c| c.is_control()) {
            return Err(err(
                400,
                "allocation_id must be at most 128 printable characters",
            ));
        }
        if let Some(p) = &b.payload {
            let n = match p {
                Value::String(s) => s.len(),
                v => v.to_string().len(),
            };
            if n > MAX_PAYLOAD_BYTES {
                return Err(err(
                    413,
                    format!("allocation payload is {n} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes (10 KB)"),
                ));
            }
        }
        if self.find_allocation(&id).is_some() {
            return Err(err(409, format!("allocation {id:?} already exists")));
        }
        let name = b.build_config.unwrap_or_else(|| self.active_config.clone());
        if self.cfg.build_config(&name).is_none() {
            return Err(err(400, format!("unknown build configuration {name:?}")));
        }
        let now = Instant::now();
        let i = match b.server_id {
            Some(sid) => {
                let i = self.slot_by_id(&sid.to_string())?;
                let s = &self.slots[i];
                if let Some(a) = &s.allocation {
                    return Err(err(
                        409,
                        format!("server {sid} is already allocated ({})", a.id),
                    ));
                }
                if s.backoff {
                    return Err(err(
                        409,
                        format!("server {sid} is in crash backoff; start it first"),
                    ));
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
                    .ok_or_else(|| err(409, "no server available for allocation"))?
            }
        };
        if self.machine == MachineState::Stopped {
            self.machine = MachineState::Running;
            self.last_busy = now;
            self.log(None, "machine started again for an allocation".into());
        }
        let sid = self.slots[i].server_id;
        let slot = &mut self.slots[i];
        slot.reserved_until = None;
        slot.allocation = Some(Allocation {
            id: id.clone(),
            build_config: name.clone(),
            payload: b.payload,
            allocated_at_ms: unix_ms(),
        });
        slot.want_config = name.clone();
        self.write_payload(i);
        self.write_server_json(i);
        self.log(
            Some(sid),
            format!("allocated {id} (build configuration {name})"),
        );
        self.ensure_config(i);
        Ok((201, self.allocation_view(i).unwrap_or(Value::Null)))
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

    fn api_deallocate(&mut self, id: &str) -> Result<(u16, Value), (u16, Value)> {
        let i = self
            .find_allocation(id)
            .ok_or_else(|| err(404, format!("no allocation with id {id:?}")))?;
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
        Ok((200, json!({ "deallocated": view })))
    }

    fn api_stop(&mut self, id: &str) -> Result<(u16, Value), (u16, Value)> {
        let i = self.slot_by_id(id)?;
        let sid = self.slots[i].server_id;
        if let Some(a) = &self.slots[i].allocation {
            let msg = format!(
                "server {sid} is allocated ({}); stopping an allocated server is refused: deallocate it instead",
                a.id
            );
            self.log(
                Some(sid),
                format!("refused manual stop: allocated to {}", a.id),
            );
            return Err(err(409, msg));
        }
        self.slots[i].start_at = None;
        if self.slots[i].proc.is_some() {
            self.stop(i, StopReason::Manual);
        }
        Ok((202, self.server_view(i)))
    }

    fn api_start(&mut self, id: &str) -> Result<(u16, Value), (u16, Value)> {
        let i = self.slot_by_id(id)?;
        if self.shutting_down {
            return Err(err(503, "the supervisor is shutting down"));
        }
        let sid = self.slots[i].server_id;
        if self.machine == MachineState::Stopped {
            self.machine = MachineState::Running;
            self.last_busy = Instant::now();
            self.log(
                None,
                "machine started again by a manual server start".into(),
            );
        }
        if self.slots[i].backoff {
            self.slots[i].backoff = false;
            self.slots[i].crashes.clear();
            self.log(Some(sid), "crash backoff cleared by a manual start".into());
        }
        self.ensure_config(i);
        Ok((202, self.server_view(i)))
    }

    fn api_hold(&mut self, id: &str, body: &Value) -> Result<(u16, Value), (u16, Value)> {
        let i = self.slot_by_id(id)?;
        let b: DurationBody = parse_body(body)?;
        if b.duration_ms == 0 {
            return Err(err(400, "duration_ms must be greater than zero"));
        }
        let sid = self.slots[i].server_id;
        self.slots[i].held_until = Some(Instant::now() + Duration::from_millis(b.duration_ms));
        self.log(Some(sid), format!("held for {} ms", b.duration_ms));
        if self.slots[i].proc.is_none() && !self.slots[i].backoff && !self.shutting_down {
            self.wake_machine();
            self.start(i);
        }
        Ok((200, self.server_view(i)))
    }

    fn wake_machine(&mut self) {
        if self.machine == MachineState::Stopped {
            self.machine = MachineState::Running;
            self.last_busy = Instant::now();
            self.log(None, "machine started again".into());
        }
    }

    fn api_reserve(&mut self, body: &Value) -> Result<(u16, Value), (u16, Value)> {
        let b: ReserveBody = parse_body(body)?;
        if b.duration_ms == 0 {
            return Err(err(400, "duration_ms must be greater than zero"));
        }
        let now = Instant::now();
        let i = match b.server_id {
            Some(sid) => {
                let i = self.slot_by_id(&sid.to_string())?;
                if self.slots[i].allocation.is_some() {
                    return Err(err(409, format!("server {sid} is allocated")));
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
                .ok_or_else(|| err(409, "no server available for a reservation"))?,
        };
        if self.slots[i].backoff {
            return Err(err(409, "the server is in crash backoff"));
        }
        let sid = self.slots[i].server_id;
        self.slots[i].reserved_until = Some(now + Duration::from_millis(b.duration_ms));
        self.log(Some(sid), format!("reserved for {} ms", b.duration_ms));
        if self.slots[i].proc.is_none() && !self.shutting_down {
            self.wake_machine();
            self.start(i);
        }
        Ok((200, self.server_view(i)))
    }

    fn api_unreserve(&mut self, id: &str) -> Result<(u16, Value), (u16, Value)> {
        let i = self.slot_by_id(id)?;
        let sid = self.slots[i].server_id;
        if self.slots[i].reserved_until.take().is_none() {
            return Err(err(404, format!("server {sid} is not reserved")));
        }
        self.log(Some(sid), "reservation released".into());
        self.after_release(i);
        Ok((200, self.server_view(i)))
    }

    fn api_build_config(&mut self, body: &Value) -> Result<(u16, Value), (u16, Value)> {
        let b: BuildConfigBody = parse_body(body)?;
        if self.cfg.build_config(&b.name).is_none() {
            return Err(err(
                400,
                format!("unknown build configuration {:?}", b.name),
            ));
        }
        let old = std::mem::replace(&mut self.active_config, b.name.clone());
        self.log(
            None,
            format!(
                "active build configuration changed from {old} to {}",
                b.name
            ),
        );
        for i in 0..self.slots.len() {
            if self.slots[i].allocation.is_some() {
                continue;
            }
            self.slots[i].want_config = b.name.clone();
            if self.slots[i].proc.is_some() {
                self.ensure_config(i);
            } else {
                self.write_server_json(i);
            }
        }
        Ok((200, json!({ "name": self.active_config })))
    }

    fn shutdown(&mut self, why: &str) {
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
}

/// Errors from running the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Setting up the work folder failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding the control API failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the supervisor until it is told to shut down (API `shutdown`,
/// SIGTERM or SIGINT). Every child is stopped and reaped before this
/// returns.
///
/// On Linux children also get SIGKILL if the thread polling this future
/// dies, so run it with `block_on` (as the binary does) or on a runtime
/// worker, not on a short-lived thread.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    let work = cfg.work_dir();
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let listener = tokio::net::TcpListener::bind(cfg.control.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.control.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(io(&work))?;
    let addr_file = work.join("api-addr");
    sdk::write_atomic(&addr_file, addr.to_string().as_bytes()).map_err(io(&addr_file))?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (api_tx, mut api_rx) = mpsc::unbounded_channel::<ApiRequest>();
    let now = Instant::now();
    let mut slots = Vec::new();
    for i in 0..cfg.slot_count() {
        let server_id = cfg.fleet.first_server_id + i as u64;
        let dir = work.join(format!("server-{server_id}"));
        let log_dir = dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
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
        });
    }
    let mut core = Core {
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
    };
    core.log(
        None,
        format!(
            "provisioned {} server slots in {} (control API on http://{addr})",
            core.slots.len(),
            work.display()
        ),
    );
    for i in 0..core.slots.len() {
        core.write_payload(i);
        core.write_server_json(i);
        if cfg.fleet.start_on_provision {
            core.start(i);
        }
    }

    let open_connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api_task = tokio::spawn(crate::api::serve(
        listener,
        api_tx,
        open_connections.clone(),
    ));
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(ev) = rx.recv() => match ev {
                Internal::Exited { slot, gen, info } => core.on_exit(slot, gen, info),
                Internal::Health { slot, gen, query_ok, rss_kb } => core.on_health(slot, gen, query_ok, rss_kb),
            },
            Some(req) = api_rx.recv() => {
                let r = core.handle(&req.method, &req.path, &req.body);
                let _ = req.reply.send(r);
            }
            _ = tick.tick() => core.tick(),
            Some(_) = async { match sigterm.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                core.shutdown("SIGTERM");
            }
            Some(_) = async { match sigint.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                core.shutdown("SIGINT");
            }
        }
        if core.shutting_down && core.slots.iter().all(|s| s.proc.is_none()) {
            break;
        }
    }
    core.log(
        None,
        "every server stopped and reaped; supervisor exiting".into(),
    );
    api_task.abort();
    // Requests that came too late are answered 503 at once.
    drop(api_rx);
    // Replies already decided (the one to `POST /shutdown` among them) are
    // written before the runtime, and with it their tasks, goes away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while open_connections.load(std::sync::atomic::Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = std::fs::remove_file(&addr_file);
    Ok(())
}
