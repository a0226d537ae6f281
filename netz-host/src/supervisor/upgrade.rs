//! A rolling upgrade: the fleet moves to another build configuration while
//! its servers host live sessions.
//!
//! For every server running another build configuration (an old server)
//! the supervisor starts a server of the new one (its replacement) in a
//! free slot, which joins the old server's session (`join_args`), waits
//! until it is ready (it joined), then scales the old server in: SIGTERM,
//! the game drains (its clients, rooms and objects move to the other
//! servers of the session) and exits 0. At most `max_surge` replacements
//! start ahead of the drains and at most `max_draining` old servers drain
//! at once. With no free slot, an old server whose session has another
//! server drains first and its replacement starts in its slot. A server
//! still there `drain_timeout_ms` after its SIGTERM is killed.
//!
//! A replacement that cannot start, exits or is not ready within
//! `ready_timeout_ms` stops the roll: no further old server is scaled in,
//! the ones draining finish, the active build configuration goes back to
//! the old one, and the status says what failed. One roll at a time: a
//! second one is refused (409) while one is under way.

use super::cluster::Join;
use super::*;

mod steps;

/// How often a rolling upgrade looks at a new server that has not said it
/// is ready (the health probe, when it is the sign of readiness), and how
/// often a server waiting to join a session retries.
pub(super) const PROBE: Duration = Duration::from_millis(250);

/// What `POST /upgrade` asks for.
#[derive(Debug, Clone, Default)]
pub struct UpgradeRequest {
    /// The build configuration to roll out.
    pub build_config: String,
    /// Old servers draining at once (default 1).
    pub max_draining: Option<usize>,
    /// New servers started ahead of the drains, in free slots (default 1);
    /// 0 drains an old server first and starts its replacement in its slot.
    pub max_surge: Option<usize>,
    /// From an old server's SIGTERM to its SIGKILL, in ms (default: its
    /// build configuration's `drain_ms` plus `stop_grace_ms`, or
    /// `stop_grace_ms`).
    pub drain_timeout_ms: Option<u64>,
    /// How long a new server may take to start and say it is ready, in ms
    /// (default `health.startup_grace_ms`).
    pub ready_timeout_ms: Option<u64>,
}

/// Where a rolling upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradePhase {
    /// New servers are starting and joining; none is draining.
    Starting,
    /// Old servers are draining.
    Draining,
    /// Something failed: no further old server is scaled in; the ones
    /// draining finish.
    Stopping,
    /// Every old server was replaced.
    Done,
    /// It stopped on a failure.
    Failed,
}

impl UpgradePhase {
    /// The name used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradePhase::Starting => "starting",
            UpgradePhase::Draining => "draining",
            UpgradePhase::Stopping => "stopping",
            UpgradePhase::Done => "done",
            UpgradePhase::Failed => "failed",
        }
    }
}

/// An old server in a rolling upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldServerState {
    /// Still serving; its turn has not come (or the roll stopped first).
    Serving,
    /// Scaling in: SIGTERM sent, not exited yet.
    Draining,
    /// Drained and exited with code 0.
    Drained,
    /// Still running at its drain deadline: killed.
    Killed,
    /// Exited otherwise while draining.
    Failed,
    /// Ended outside the roll (its session ended, it was stopped, it
    /// crashed and came back with another build).
    Gone,
}

impl OldServerState {
    /// The name used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OldServerState::Serving => "serving",
            OldServerState::Draining => "draining",
            OldServerState::Drained => "drained",
            OldServerState::Killed => "killed",
            OldServerState::Failed => "failed",
            OldServerState::Gone => "gone",
        }
    }

    /// Whether the roll scaled it in (so it needs a replacement).
    fn scaled_in(self) -> bool {
        matches!(
            self,
            OldServerState::Drained | OldServerState::Killed | OldServerState::Failed
        )
    }
}

/// A new server in a rolling upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewServerState {
    /// Started; it has not said it is ready (joined) yet.
    Starting,
    /// Ready: it joined the session.
    Joined,
    /// Could not start, exited, or was not ready in time.
    Failed,
}

impl NewServerState {
    /// The name used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NewServerState::Starting => "starting",
            NewServerState::Joined => "joined",
            NewServerState::Failed => "failed",
        }
    }
}

/// The new server replacing an old one.
#[derive(Debug, Clone)]
pub struct ReplacementView {
    /// Its server id.
    pub server_id: u64,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// Where it is.
    pub state: NewServerState,
    /// The address of the session's server it was told to join.
    pub joined_through: String,
    /// When it started, Unix ms.
    pub started_at_ms: u64,
    /// When it said it was ready, Unix ms.
    pub joined_at_ms: Option<u64>,
}

/// An old server and its replacement.
#[derive(Debug, Clone)]
pub struct UpgradeServerView {
    /// The old server's id.
    pub server_id: u64,
    /// The build configuration it ran.
    pub build_config: String,
    /// Where it is.
    pub state: OldServerState,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// Its session (see [`ServerView::cluster`]).
    pub cluster: u64,
    /// When its SIGTERM went out, Unix ms.
    pub drain_started_at_ms: Option<u64>,
    /// When it is (was) killed if still running, Unix ms.
    pub drain_deadline_ms: Option<u64>,
    /// How it ended.
    pub exit: Option<String>,
    /// The new server taking its place, once started.
    pub replacement: Option<ReplacementView>,
}

/// Counts over a roll's servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpgradeCounts {
    /// Old servers to replace.
    pub total: usize,
    /// New servers started.
    pub started: usize,
    /// New servers that joined (ready).
    pub joined: usize,
    /// Old servers draining now.
    pub draining: usize,
    /// Old servers no longer serving the old build (drained, killed, or
    /// gone by themselves).
    pub done: usize,
    /// New servers that failed, and old servers that exited with an error
    /// while draining.
    pub failed: usize,
}

/// A rolling upgrade as the API shows it.
#[derive(Debug, Clone)]
pub struct UpgradeView {
    /// Numbered from 1 since the supervisor started.
    pub id: u64,
    /// Where it is.
    pub phase: UpgradePhase,
    /// The build configuration the fleet ran.
    pub from: String,
    /// The one it rolls out.
    pub to: String,
    /// Old servers draining at once at most.
    pub max_draining: usize,
    /// New servers started ahead of the drains at most.
    pub max_surge: usize,
    /// From SIGTERM to SIGKILL of an old server, ms.
    pub drain_timeout_ms: u64,
    /// Time a new server has to be ready, ms.
    pub ready_timeout_ms: u64,
    /// When it started, Unix ms.
    pub started_at_ms: u64,
    /// When it ended, Unix ms.
    pub finished_at_ms: Option<u64>,
    /// Counts.
    pub counts: UpgradeCounts,
    /// Every old server with its replacement.
    pub servers: Vec<UpgradeServerView>,
    /// What went wrong, in order.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
struct New {
    slot: usize,
    id: u64,
    gen: u64,
    state: NewServerState,
    started: Instant,
    started_at_ms: u64,
    joined_at_ms: Option<u64>,
    through: String,
}

#[derive(Debug, Clone)]
struct Entry {
    slot: usize,
    id: u64,
    build_config: String,
    gen: u64,
    pid: u32,
    cluster: u64,
    state: OldServerState,
    drain_started_at_ms: Option<u64>,
    drain_deadline_ms: Option<u64>,
    exit: Option<String>,
    new: Option<New>,
    /// The old server's allocation, kept for a replacement started in
    /// place until it is ready.
    held: Option<Allocation>,
}

/// The supervisor's record of a roll.
#[derive(Debug, Clone)]
pub(super) struct Upgrade {
    id: u64,
    from: String,
    pub(super) to: String,
    max_draining: usize,
    max_surge: usize,
    drain_timeout: Duration,
    ready_timeout: Duration,
    started_at_ms: u64,
    finished_at_ms: Option<u64>,
    failed: bool,
    errors: Vec<String>,
    entries: Vec<Entry>,
}

impl Upgrade {
    /// Whether it has not ended.
    pub(super) fn in_flight(&self) -> bool {
        self.finished_at_ms.is_none()
    }

    fn phase(&self) -> UpgradePhase {
        match (self.finished_at_ms.is_some(), self.failed) {
            (true, true) => UpgradePhase::Failed,
            (true, false) => UpgradePhase::Done,
            (false, true) => UpgradePhase::Stopping,
            _ if self.draining() > 0 => UpgradePhase::Draining,
            _ => UpgradePhase::Starting,
        }
    }

    fn draining(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state == OldServerState::Draining)
            .count()
    }

    fn starting(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| {
                e.new
                    .as_ref()
                    .is_some_and(|n| n.state == NewServerState::Starting)
            })
            .count()
    }

    /// Old servers of session `cluster` draining.
    fn draining_in(&self, cluster: u64) -> usize {
        self.entries
            .iter()
            .filter(|e| e.cluster == cluster && e.state == OldServerState::Draining)
            .count()
    }

    /// New servers joining session `cluster`.
    fn starting_in(&self, cluster: u64) -> usize {
        self.entries
            .iter()
            .filter(|e| {
                e.cluster == cluster
                    && e.new
                        .as_ref()
                        .is_some_and(|n| n.state == NewServerState::Starting)
            })
            .count()
    }

    fn counts(&self) -> UpgradeCounts {
        let news = || self.entries.iter().filter_map(|e| e.new.as_ref());
        UpgradeCounts {
            total: self.entries.len(),
            started: news().count(),
            joined: news().filter(|n| n.state == NewServerState::Joined).count(),
            draining: self.draining(),
            done: self
                .entries
                .iter()
                .filter(|e| {
                    matches!(
                        e.state,
                        OldServerState::Drained | OldServerState::Killed | OldServerState::Gone
                    )
                })
                .count(),
            failed: news().filter(|n| n.state == NewServerState::Failed).count()
                + self
                    .entries
                    .iter()
                    .filter(|e| e.state == OldServerState::Failed)
                    .count(),
        }
    }
}

fn bad(msg: impl Into<String>) -> HostError {
    HostError::BadRequest(msg.into())
}

impl Supervisor {
    /// The running or last rolling upgrade.
    pub fn upgrade_status(&self) -> Result<UpgradeView, HostError> {
        let u = self.upgrade.as_ref().ok_or_else(|| {
            HostError::NotFound("no rolling upgrade has run since the supervisor started".into())
        })?;
        let pid_of = |slot: usize, gen: u64| {
            self.slots[slot]
                .proc
                .as_ref()
                .filter(|p| p.gen == gen)
                .map(|p| p.pid)
        };
        let servers = u
            .entries
            .iter()
            .map(|e| UpgradeServerView {
                server_id: e.id,
                build_config: e.build_config.clone(),
                state: e.state,
                pid: pid_of(e.slot, e.gen),
                cluster: e.cluster,
                drain_started_at_ms: e.drain_started_at_ms,
                drain_deadline_ms: e.drain_deadline_ms,
                exit: e.exit.clone(),
                replacement: e.new.as_ref().map(|n| ReplacementView {
                    server_id: n.id,
                    pid: pid_of(n.slot, n.gen),
                    state: n.state,
                    joined_through: n.through.clone(),
                    started_at_ms: n.started_at_ms,
                    joined_at_ms: n.joined_at_ms,
                }),
            })
            .collect();
        Ok(UpgradeView {
            id: u.id,
            phase: u.phase(),
            from: u.from.clone(),
            to: u.to.clone(),
            max_draining: u.max_draining,
            max_surge: u.max_surge,
            drain_timeout_ms: u.drain_timeout.as_millis() as u64,
            ready_timeout_ms: u.ready_timeout.as_millis() as u64,
            started_at_ms: u.started_at_ms,
            finished_at_ms: u.finished_at_ms,
            counts: u.counts(),
            servers,
            errors: u.errors.clone(),
        })
    }

    /// Starts a rolling upgrade to `req.build_config` (see the module
    /// docs). Refused while one is under way (409), for a request that
    /// cannot work (400: an unknown build configuration, zero limits, a
    /// drain deadline shorter than the old servers' `drain_ms`, a new
    /// build configuration without `join_args`), and when no slot is free
    /// and a server is alone in its session (409).
    pub fn start_upgrade(&mut self, req: UpgradeRequest) -> Result<UpgradeView, HostError> {
        self.refuse_when_shutting_down()?;
        if let Some(u) = self.upgrade.as_ref().filter(|u| u.in_flight()) {
            return Err(HostError::Conflict(format!(
                "rolling upgrade {} to {} is under way ({}); one runs at a time: wait for it to end (GET /upgrade)",
                u.id,
                u.to,
                u.phase().as_str()
            )));
        }
        let to = req.build_config.trim().to_owned();
        if to.is_empty() {
            return Err(bad("build_config must not be empty"));
        }
        let Some(bc) = self.cfg.build_config(&to).cloned() else {
            return Err(bad(format!("unknown build configuration {to:?}")));
        };
        let max_draining = req.max_draining.unwrap_or(1);
        if max_draining == 0 {
            return Err(bad("max_draining must be at least 1"));
        }
        let max_surge = req.max_surge.unwrap_or(1);
        let ready_ms = req
            .ready_timeout_ms
            .unwrap_or(self.cfg.health.startup_grace_ms);
        if ready_ms == 0 {
            return Err(bad("ready_timeout_ms must be greater than zero"));
        }
        let old: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .proc
                    .as_ref()
                    .is_some_and(|p| p.stopping.is_none() && p.build_config != to)
            })
            .collect();
        let grace = self.cfg.fleet.stop_grace_ms;
        let longest_drain = old
            .iter()
            .filter_map(|&i| {
                let p = self.slots[i].proc.as_ref()?;
                self.bc(&p.build_config)
                    .drain_ms
                    .map(|d| (d, p.build_config.clone()))
            })
            .max();
        let drain_ms = match (req.drain_timeout_ms, &longest_drain) {
            (Some(0), _) => return Err(bad("drain_timeout_ms must be greater than zero")),
            (Some(d), Some((longest, name))) if d < *longest => {
                return Err(bad(format!(
                    "drain_timeout_ms {d} is shorter than the drain_ms {longest} of build configuration {name}: \
                     its servers would be killed before their drain ends and tells the clients still there why"
                )))
            }
            (Some(d), _) => d,
            (None, Some((longest, _))) => longest.saturating_add(grace),
            (None, None) => grace,
        };
        if old.is_empty() && to == self.active_config {
            return Err(HostError::Conflict(format!(
                "{to} is the active build configuration and every running server runs it: nothing to upgrade"
            )));
        }
        if !old.is_empty() && bc.join_args.is_empty() {
            return Err(bad(format!(
                "build configuration {to} has no join_args: its servers could not join the running sessions, \
                 so no client could move to them"
            )));
        }
        let free = (0..self.slots.len())
            .filter(|&i| self.upgrade_free(i, None))
            .count();
        if free == 0 || max_surge == 0 {
            if let Some(&alone) = old.iter().find(|&&i| {
                let c = self.cluster_of(i);
                !(0..self.slots.len()).any(|j| j != i && self.serving(j) && self.cluster_of(j) == c)
            }) {
                let why = if max_surge == 0 {
                    "max_surge is 0".to_string()
                } else {
                    "no slot is free for a server of the new build".to_string()
                };
                return Err(HostError::Conflict(format!(
                    "{why}, and server {} is alone in its session: its clients would have nowhere to go. \
                     Free a slot (stop an idle server, or raise usage.max_servers or the machine's resources)",
                    self.slots[alone].server_id
                )));
            }
        }
        self.next_upgrade += 1;
        let from = std::mem::replace(&mut self.active_config, to.clone());
        let entries = old
            .iter()
            .map(|&i| {
                let p = self.slots[i].proc.as_ref().expect("running");
                Entry {
                    slot: i,
                    id: self.slots[i].server_id,
                    build_config: p.build_config.clone(),
                    gen: p.gen,
                    pid: p.pid,
                    cluster: p.cluster,
                    state: OldServerState::Serving,
                    drain_started_at_ms: None,
                    drain_deadline_ms: None,
                    exit: None,
                    new: None,
                    held: None,
                }
            })
            .collect();
        let u = Upgrade {
            id: self.next_upgrade,
            from: from.clone(),
            to: to.clone(),
            max_draining,
            max_surge,
            drain_timeout: Duration::from_millis(drain_ms),
            ready_timeout: Duration::from_millis(ready_ms),
            started_at_ms: unix_ms(),
            finished_at_ms: None,
            failed: false,
            errors: Vec::new(),
            entries,
        };
        let msg = format!(
            "rolling upgrade {} started: {from} -> {to}, {} servers to replace, at most {max_draining} draining \
             and {max_surge} starting ahead, drain deadline {drain_ms} ms, ready within {ready_ms} ms",
            u.id,
            old.len()
        );
        self.upgrade = Some(u);
        self.log_kind(None, Some("UpgradeStarted"), msg);
        for i in 0..self.slots.len() {
            if self.slots[i].proc.is_none() && self.slots[i].allocation.is_none() {
                self.slots[i].want_config = to.clone();
                self.write_server_json(i);
            }
        }
        self.upgrade_step();
        self.upgrade_status()
    }

    /// Whether a roll is under way.
    pub(in crate::supervisor) fn upgrade_in_flight(&self) -> bool {
        self.upgrade.as_ref().is_some_and(|u| u.in_flight())
    }

    /// Whether a roll waits for slot `i`'s server to say it is ready.
    pub(in crate::supervisor) fn upgrade_waits_for(&self, i: usize) -> bool {
        self.upgrade.as_ref().is_some_and(|u| {
            u.in_flight()
                && u.entries.iter().any(|e| {
                    e.new
                        .as_ref()
                        .is_some_and(|n| n.slot == i && n.state == NewServerState::Starting)
                })
        })
    }

    /// Whether slot `i` can take a new server now: nothing runs or is
    /// planned there, it is not allocated, reserved, held or in backoff.
    /// `own` is the slot of the old server being replaced, which may keep
    /// its allocation for its replacement.
    fn upgrade_free(&self, i: usize, own: Option<usize>) -> bool {
        let s = &self.slots[i];
        let now = Instant::now();
        s.proc.is_none()
            && s.start_at.is_none()
            && !s.backoff
            && (s.allocation.is_none() || own == Some(i))
            && s.reserved_until.is_none_or(|t| t <= now)
            && s.held_until.is_none_or(|t| t <= now)
            && !self.upgrade.as_ref().is_some_and(|u| {
                // Kept for the replacement of the server drained there.
                u.entries.iter().any(|e| {
                    e.slot == i && own != Some(i) && e.state.scaled_in() && e.new.is_none()
                })
            })
    }
}
