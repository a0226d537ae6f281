//! What a game server asks through its Agones SDK server.

use super::*;

impl Supervisor {
    /// The gRPC and REST ports of slot `i`'s SDK server, when `[agones]`
    /// is configured.
    pub fn sdk_ports(&self, i: usize) -> Option<(u16, u16)> {
        let a = self.cfg.agones.as_ref()?;
        Some((
            a.grpc_port_range[0] + i as u16,
            a.http_port_range[0] + i as u16,
        ))
    }

    pub(super) fn sdk_slot(&mut self, i: usize) -> Result<&mut Slot, HostError> {
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
        if let Some(p) = s.proc.as_mut() {
            p.ready = true;
        }
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
}
