//! What the control API asks of the supervisor: views, allocations,
//! starting and stopping servers, reservations, the build configuration.

use super::*;

impl Supervisor {
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

    pub(super) fn find_allocation(&self, id: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.allocation.as_ref().is_some_and(|a| a.id == id))
    }

    // ----- operations ----------------------------------------------------------

    pub(super) fn refuse_when_shutting_down(&self) -> Result<(), HostError> {
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

    pub(super) fn allocate_slot(&mut self, i: usize, a: Allocation) {
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
    pub(super) fn ensure_config(&mut self, i: usize) {
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

    pub(super) fn wake_machine(&mut self, why: &str) {
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
        if let Some(u) = self.upgrade.as_ref().filter(|u| u.in_flight()) {
            return Err(HostError::Conflict(format!(
                "a rolling upgrade to {} is under way; wait for it to end (GET /upgrade)",
                u.to
            )));
        }
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
        self.upgrade_abort(&format!("the supervisor is shutting down ({why})"));
        self.shutting_down = true;
        for i in 0..self.slots.len() {
            self.slots[i].start_at = None;
            self.stop(i, StopReason::Shutdown);
        }
    }

    // ----- the Agones SDK of a slot ------------------------------------------------
}
