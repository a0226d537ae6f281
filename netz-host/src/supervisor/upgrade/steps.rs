//! The moves of a rolling upgrade: starting replacements, scaling old
//! servers in, noting what became of them, failing and ending the roll.

use super::*;

impl Supervisor {
    /// Stops the roll: no further old server is scaled in; new servers not
    /// ready yet are stopped; the old build configuration is active again.
    /// `server`: the new server that failed, if one did.
    fn upgrade_fail(&mut self, server: Option<u64>, why: String) {
        let Some(u) = self.upgrade.as_mut() else {
            return;
        };
        if !u.in_flight() {
            return;
        }
        u.errors.push(why.clone());
        let kind = server.map(|_| "UpgradeServerFailed");
        if u.failed {
            self.log_kind(server, kind, why);
            return;
        }
        u.failed = true;
        let from = u.from.clone();
        let (id, to) = (u.id, u.to.clone());
        let mut stop = Vec::new();
        for e in u.entries.iter_mut() {
            if let Some(n) = e
                .new
                .as_mut()
                .filter(|n| n.state == NewServerState::Starting)
            {
                n.state = NewServerState::Failed;
                stop.push(n.slot);
            }
        }
        self.log_kind(server, kind, why.clone());
        self.log(
            None,
            format!(
                "rolling upgrade {id} to {to} stops: {why}; no further server is scaled in, \
                 {from} is the active build configuration again"
            ),
        );
        for j in stop {
            self.slots[j].start_at = None;
            self.stop(j, StopReason::Manual);
        }
        self.active_config = from.clone();
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            let idle = s.proc.as_ref().is_none_or(|p| p.stopping.is_some());
            if s.allocation.is_none() && idle && s.want_config == to {
                s.want_config = from.clone();
                self.write_server_json(i);
            }
        }
        self.upgrade_step();
    }

    /// Ends the roll at once (the supervisor is shutting down).
    pub(in crate::supervisor) fn upgrade_abort(&mut self, why: &str) {
        if !self.upgrade_in_flight() {
            return;
        }
        self.upgrade_fail(None, why.to_owned());
        if let Some(u) = self.upgrade.as_mut().filter(|u| u.in_flight()) {
            u.finished_at_ms = Some(unix_ms());
            let msg = format!("rolling upgrade {} failed: {why}", u.id);
            self.log_kind(None, Some("UpgradeFailed"), msg);
        }
    }

    /// Slot `i`'s process `gen` ended: a new server of the roll that had
    /// not said it was ready fails the roll. Returns whether it was one.
    pub(in crate::supervisor) fn upgrade_replacement_exited(
        &mut self,
        i: usize,
        gen: u64,
        info: ExitInfo,
    ) -> bool {
        let Some(u) = self.upgrade.as_mut().filter(|u| u.in_flight()) else {
            return false;
        };
        let Some(n) = u
            .entries
            .iter_mut()
            .filter_map(|e| e.new.as_mut())
            .find(|n| n.slot == i && n.gen == gen && n.state == NewServerState::Starting)
        else {
            return false;
        };
        n.state = NewServerState::Failed;
        let (id, to) = (n.id, u.to.clone());
        self.slots[i].start_at = None;
        // What it said last, so the roll's error tells why.
        let said: Vec<String> = ["stderr.log", "stdout.log"]
            .iter()
            .filter_map(|f| crate::files::last_line(&self.slots[i].log_dir.join(f)))
            .map(|l| format!("{l:?}"))
            .collect();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!("; its last output: {}", said.join(", "))
        };
        self.upgrade_fail(
            Some(id),
            format!("new server {id} ({to}) ended ({info}) before it was ready{said}"),
        );
        true
    }

    /// Slot `i`'s process `gen` ended: when the roll was draining it, its
    /// state says how it ended.
    pub(in crate::supervisor) fn upgrade_old_exited(&mut self, i: usize, gen: u64, info: ExitInfo) {
        let sid = self.slots[i].server_id;
        let Some(u) = self.upgrade.as_mut().filter(|u| u.in_flight()) else {
            return;
        };
        let deadline = u.drain_timeout.as_millis();
        let Some(e) = u
            .entries
            .iter_mut()
            .find(|e| e.slot == i && e.gen == gen && e.state == OldServerState::Draining)
        else {
            return;
        };
        e.exit = Some(info.to_string());
        let bc = e.build_config.clone();
        let (state, kind, msg) = if info.success() {
            (
                OldServerState::Drained,
                "UpgradeServerDrained",
                format!("old server {sid} ({bc}) drained and exited with code 0"),
            )
        } else if info.signal == Some(libc::SIGKILL) {
            (
                OldServerState::Killed,
                "UpgradeServerKilled",
                format!(
                    "old server {sid} ({bc}) was still running at its drain deadline \
                     ({deadline} ms after SIGTERM): killed"
                ),
            )
        } else {
            (
                OldServerState::Failed,
                "UpgradeServerFailed",
                format!("old server {sid} ({bc}) ended ({info}) while draining"),
            )
        };
        e.state = state;
        if state != OldServerState::Drained {
            u.errors.push(msg.clone());
        }
        self.log_kind(Some(sid), Some(kind), msg);
    }

    /// Slot `i`'s server scaled in and exited: its allocation follows its
    /// session to the replacement (or waits for one started in place), and
    /// the slot stays free for the roll.
    pub(in crate::supervisor) fn after_scale_in(&mut self, i: usize) {
        let sid = self.slots[i].server_id;
        let found = self
            .upgrade
            .as_ref()
            .filter(|u| u.in_flight())
            .and_then(|u| {
                let k = u
                    .entries
                    .iter()
                    .rposition(|e| e.slot == i && e.state.scaled_in())?;
                let e = &u.entries[k];
                Some((k, e.new.as_ref().map(|n| n.slot)))
            });
        // The new build, or the old one again after a failure.
        let to = self.active_config.clone();
        let Some((k, heir)) = found else {
            // Not (or no longer) the roll's: an idle slot as after any stop.
            self.slots[i].want_config = self.active_config.clone();
            if let Some(a) = self.slots[i].allocation.as_mut() {
                a.build_config = self.active_config.clone();
            }
            self.write_server_json(i);
            if self.slots[i].allocation.is_some() || self.wants_running_idle(i) {
                self.ensure_config(i);
            }
            return;
        };
        if let Some(a) = self.slots[i].allocation.take() {
            self.write_payload(i);
            match heir.filter(|&j| self.slots[j].allocation.is_none()) {
                Some(j) => self.give_allocation(j, a, sid),
                None => {
                    self.log(
                        Some(sid),
                        format!(
                            "allocation {} waits for the server that replaces this one",
                            a.id
                        ),
                    );
                    if let Some(u) = self.upgrade.as_mut() {
                        u.entries[k].held = Some(a);
                    }
                }
            }
        }
        self.slots[i].want_config = to;
        self.write_server_json(i);
        self.upgrade_step();
    }

    /// Puts the allocation of old server `from` on slot `j`'s server, which
    /// joined its session.
    pub(in crate::supervisor) fn give_allocation(
        &mut self,
        j: usize,
        mut a: Allocation,
        from: u64,
    ) {
        a.build_config = self.slots[j]
            .proc
            .as_ref()
            .map_or_else(|| self.active_config.clone(), |p| p.build_config.clone());
        let (aid, id) = (a.id.clone(), self.slots[j].server_id);
        self.slots[j].want_config = a.build_config.clone();
        self.slots[j].allocation = Some(a);
        self.slots[j].record.generation += 1;
        self.write_payload(j);
        self.write_server_json(j);
        self.log(
            Some(id),
            format!(
                "allocation {aid} moved here from server {from}, whose session this server joined"
            ),
        );
    }

    /// Starts entry `k`'s replacement in slot `j`, joining through `join`.
    fn start_replacement(&mut self, k: usize, j: usize, join: Join) -> Result<(), String> {
        let u = self.upgrade.as_ref().expect("a roll");
        let to = u.to.clone();
        let old_id = u.entries[k].id;
        let through = join.addr.clone();
        let slot = &mut self.slots[j];
        slot.want_config = to.clone();
        slot.join_to = Some(join);
        if let Some(a) = slot.allocation.as_mut() {
            a.build_config = to.clone();
        }
        self.start(j);
        self.slots[j].join_to = None;
        let sid = self.slots[j].server_id;
        let Some(p) = self.slots[j].proc.as_mut() else {
            self.slots[j].start_at = None;
            let why = self.slots[j]
                .start_error
                .clone()
                .unwrap_or_else(|| "it did not start".into());
            if let Some(u) = self.upgrade.as_mut() {
                u.entries[k].new = Some(New {
                    slot: j,
                    id: sid,
                    gen: 0,
                    state: NewServerState::Failed,
                    started: Instant::now(),
                    started_at_ms: unix_ms(),
                    joined_at_ms: None,
                    through,
                });
            }
            return Err(format!(
                "new server {sid} ({to}) could not start (and is not restarted): {why}"
            ));
        };
        p.next_check = Instant::now() + self.cfg.health_interval().min(PROBE);
        let (gen, pid) = (p.gen, p.pid);
        let u = self.upgrade.as_mut().expect("a roll");
        u.entries[k].new = Some(New {
            slot: j,
            id: sid,
            gen,
            state: NewServerState::Starting,
            started: Instant::now(),
            started_at_ms: unix_ms(),
            joined_at_ms: None,
            through: through.clone(),
        });
        self.log_kind(
            Some(sid),
            Some("UpgradeServerStarted"),
            format!("new server {sid} ({to}) started as pid {pid} to replace server {old_id}, joining through {through}"),
        );
        Ok(())
    }

    /// Scales entry `k`'s old server in.
    fn drain(&mut self, k: usize) {
        let u = self.upgrade.as_mut().expect("a roll");
        let grace = u.drain_timeout;
        let e = &mut u.entries[k];
        let now = unix_ms();
        e.state = OldServerState::Draining;
        e.drain_started_at_ms = Some(now);
        e.drain_deadline_ms = Some(now + grace.as_millis() as u64);
        let (i, id, pid, bc) = (e.slot, e.id, e.pid, e.build_config.clone());
        let to = match &e.new {
            Some(n) => format!("server {} joined its session", n.id),
            None => "its session has other servers; its replacement starts in its slot".into(),
        };
        self.log_kind(
            Some(id),
            Some("UpgradeServerDraining"),
            format!(
                "old server {id} ({bc}, pid {pid}) scales in ({to}): SIGTERM, killed after {} ms",
                grace.as_millis()
            ),
        );
        self.stop_with_grace(i, StopReason::ScaleIn, grace);
    }

    /// Moves the roll on: notes what happened to its servers, starts
    /// replacements, scales old servers in, ends it.
    pub(in crate::supervisor) fn upgrade_step(&mut self) {
        if !self.upgrade_in_flight() {
            return;
        }
        self.upgrade_observe();
        let Some(u) = self.upgrade.as_ref() else {
            return;
        };
        if u.failed {
            if u.draining() == 0 {
                self.upgrade_finish();
            }
            return;
        }
        // Replacements: in place of an old server scaled in already, or
        // ahead of the drains in a free slot.
        for k in 0..self.upgrade.as_ref().map_or(0, |u| u.entries.len()) {
            let u = self.upgrade.as_ref().expect("a roll");
            if u.failed {
                return;
            }
            let e = &u.entries[k];
            if e.new.is_some() {
                continue;
            }
            let in_place = e.state.scaled_in();
            if !in_place && (e.state != OldServerState::Serving || u.starting() >= u.max_surge) {
                continue;
            }
            // A session changes members one way at a time: no server
            // joins it while one of it drains.
            if u.draining_in(e.cluster) > 0 {
                continue;
            }
            let (own, cluster, to) = (e.slot, e.cluster, u.to.clone());
            let slot = if in_place && self.upgrade_free(own, Some(own)) {
                Some(own)
            } else {
                (0..self.slots.len()).find(|&j| self.upgrade_free(j, None))
            };
            let Some(j) = slot else {
                continue;
            };
            let prefer = (!in_place).then_some(own);
            let Some(join) = self.member_to_join(cluster, Some(j), prefer, &to) else {
                continue;
            };
            if let Err(why) = self.start_replacement(k, j, join) {
                let id = self.slots[j].server_id;
                self.upgrade_fail(Some(id), why);
                return;
            }
        }
        // Drains: an old server whose replacement joined; else, with no
        // slot to start one in, one whose session has another server.
        loop {
            let u = self.upgrade.as_ref().expect("a roll");
            if u.draining() >= u.max_draining {
                break;
            }
            // ... and none of it drains while a server joins it.
            let ready = u.entries.iter().position(|e| {
                e.state == OldServerState::Serving
                    && e.new
                        .as_ref()
                        .is_some_and(|n| n.state == NewServerState::Joined)
                    && u.starting_in(e.cluster) == 0
            });
            if let Some(k) = ready {
                self.drain(k);
                continue;
            }
            let idle = u.starting() == 0
                && u.draining() == 0
                && !u
                    .entries
                    .iter()
                    .any(|e| e.state.scaled_in() && e.new.is_none());
            let no_slot =
                u.max_surge == 0 || !(0..self.slots.len()).any(|j| self.upgrade_free(j, None));
            if !(idle && no_slot) {
                break;
            }
            let waiting: Vec<&Entry> = u
                .entries
                .iter()
                .filter(|e| e.state == OldServerState::Serving && e.new.is_none())
                .collect();
            let first = waiting.iter().find(|e| {
                let c = Some(e.cluster);
                (0..self.slots.len())
                    .any(|j| j != e.slot && self.serving(j) && self.cluster_of(j) == c)
            });
            match first {
                Some(e) => {
                    let k = u
                        .entries
                        .iter()
                        .position(|x| x.slot == e.slot && x.gen == e.gen)
                        .expect("an entry");
                    self.drain(k);
                }
                None => {
                    // Nothing moves, nothing can: unless a server is still
                    // coming up, the roll is stuck.
                    if let Some(e) = waiting.iter().find(|e| self.serving(e.slot)) {
                        let id = e.id;
                        self.upgrade_fail(
                            None,
                            format!(
                                "no slot is free for a server of the new build and server {id} is alone in its \
                                 session: nothing can replace it"
                            ),
                        );
                        return;
                    }
                    break;
                }
            }
        }
        self.upgrade_check_end();
    }

    /// Notes old servers that went by themselves, new servers that became
    /// ready or ran out of time.
    fn upgrade_observe(&mut self) {
        let now = Instant::now();
        let Some(u) = self.upgrade.as_ref() else {
            return;
        };
        let mut gone = Vec::new();
        let mut joined = Vec::new();
        let mut late = Vec::new();
        let mut moved = Vec::new();
        for (k, e) in u.entries.iter().enumerate() {
            if e.state == OldServerState::Serving {
                let s = &self.slots[e.slot];
                match &s.proc {
                    Some(p) if p.build_config == e.build_config => {
                        if p.gen != e.gen && p.stopping.is_none() {
                            moved.push((k, p.gen, p.pid, p.cluster));
                        }
                    }
                    None if s.start_at.is_some() => {}
                    _ => gone.push(k),
                }
            }
            if let Some(n) = e
                .new
                .as_ref()
                .filter(|n| n.state == NewServerState::Starting)
            {
                let current = self.slots[n.slot]
                    .proc
                    .as_ref()
                    .is_some_and(|p| p.gen == n.gen);
                if current && self.serving(n.slot) {
                    joined.push(k);
                } else if now.duration_since(n.started) > u.ready_timeout {
                    late.push(k);
                }
            }
        }
        let u = self.upgrade.as_mut().expect("a roll");
        for (k, gen, pid, cluster) in moved {
            let e = &mut u.entries[k];
            (e.gen, e.pid, e.cluster) = (gen, pid, cluster);
        }
        let mut logs = Vec::new();
        for k in gone {
            let e = &mut u.entries[k];
            e.state = OldServerState::Gone;
            logs.push((
                e.id,
                "UpgradeServerGone",
                format!(
                    "old server {} ({}) ended outside the roll; nothing to drain",
                    e.id, e.build_config
                ),
            ));
        }
        let mut handed = Vec::new();
        for &k in &joined {
            let e = &mut u.entries[k];
            if let (Some(a), Some(n)) = (e.held.take(), e.new.as_ref()) {
                handed.push((n.slot, a, e.id));
            }
            if let Some(n) = e.new.as_mut() {
                n.state = NewServerState::Joined;
                n.joined_at_ms = Some(unix_ms());
                logs.push((
                    n.id,
                    "UpgradeServerJoined",
                    format!(
                        "new server {} ({}) is ready: it joined the session through {}",
                        n.id, u.to, n.through
                    ),
                ));
            }
        }
        let ready_ms = u.ready_timeout.as_millis();
        let late: Vec<(u64, String)> = late
            .into_iter()
            .filter_map(|k| {
                let n = u.entries[k].new.as_ref()?;
                Some((
                    n.id,
                    format!(
                        "new server {} ({}) did not say it was ready within {ready_ms} ms",
                        n.id, u.to
                    ),
                ))
            })
            .collect();
        for (id, kind, msg) in logs {
            self.log_kind(Some(id), Some(kind), msg);
        }
        for (j, a, from) in handed {
            self.give_allocation(j, a, from);
        }
        for (id, why) in late {
            self.upgrade_fail(Some(id), why);
        }
    }

    fn upgrade_check_end(&mut self) {
        let Some(u) = self.upgrade.as_ref().filter(|u| u.in_flight()) else {
            return;
        };
        let over = u.entries.iter().all(|e| {
            e.state != OldServerState::Serving
                && e.state != OldServerState::Draining
                && match &e.new {
                    Some(n) => n.state == NewServerState::Joined,
                    None => !e.state.scaled_in(),
                }
        });
        if over {
            self.upgrade_finish();
        }
    }

    /// The roll is over: idle slots get the servers they should run.
    fn upgrade_finish(&mut self) {
        let Some(u) = self.upgrade.as_mut().filter(|u| u.in_flight()) else {
            return;
        };
        u.finished_at_ms = Some(unix_ms());
        let c = u.counts();
        let secs = (u
            .finished_at_ms
            .unwrap_or(0)
            .saturating_sub(u.started_at_ms)) as f64
            / 1000.0;
        let (kind, msg) = if u.failed {
            (
                "UpgradeFailed",
                format!(
                    "rolling upgrade {} to {} failed after {secs:.1} s: {}; {} of {} old servers replaced, \
                     the others serve on with {}",
                    u.id,
                    u.to,
                    u.errors.first().map_or("", String::as_str),
                    c.done,
                    c.total,
                    u.from
                ),
            )
        } else {
            (
                "UpgradeDone",
                format!(
                    "rolling upgrade {} done in {secs:.1} s: {} old servers replaced by {} servers of {}",
                    u.id, c.total, c.joined, u.to
                ),
            )
        };
        self.log_kind(None, Some(kind), msg);
        // An allocation whose replacement never came back goes back to its
        // slot (started again below).
        let held: Vec<(usize, Allocation)> = self
            .upgrade
            .as_mut()
            .map(|u| {
                u.entries
                    .iter_mut()
                    .filter_map(|e| Some((e.slot, e.held.take()?)))
                    .collect()
            })
            .unwrap_or_default();
        for (i, a) in held {
            if self.slots[i].allocation.is_none() {
                self.slots[i].allocation = Some(a);
                self.write_payload(i);
            }
        }
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.proc.is_some() || s.start_at.is_some() {
                continue;
            }
            if s.allocation.is_some() {
                if let Some(a) = self.slots[i].allocation.as_mut() {
                    a.build_config = self.active_config.clone();
                }
                self.slots[i].want_config = self.active_config.clone();
                self.ensure_config(i);
            } else if self.wants_running_idle(i) {
                self.slots[i].want_config = self.active_config.clone();
                self.start(i);
            }
        }
    }
}
