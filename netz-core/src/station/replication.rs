//! Dataset updates: sending changes and applying them.

use super::*;

impl Station {
    /// Sends the changed fields of master `handle` to its duplicas
    /// (UpdateDataSet on each duplica). Returns whether anything changed.
    pub fn update(&mut self, now: Instant, handle: DOHandle) -> Result<bool, StationError> {
        self.advance(now);
        let id = self.membership.id;
        let e = self
            .store
            .entries
            .get_mut(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != id {
            return Err(StationError::NotMaster(handle));
        }
        let Some(delta) = encode_delta(&e.cell, &mut e.snapshot) else {
            return Ok(false);
        };
        let targets: Vec<StationId> = e.dup_set.iter().copied().collect();
        self.stats.updates_sent += targets.len() as u64;
        self.multicast(
            &targets,
            SYSTEM_STREAM,
            Msg::Update {
                handle,
                data: Bytes(delta),
            },
        );
        self.interest_after_update(&[handle]);
        Ok(true)
    }

    /// [`Station::update`] for every local master; returns how many changed.
    /// The changes of many objects for one station travel together, in
    /// messages of about a datagram each.
    pub fn update_all(&mut self, now: Instant) -> usize {
        self.advance(now);
        let id = self.membership.id;
        let mut changed = 0;
        let mut moved = Vec::new();
        let mut per_station: BTreeMap<StationId, Vec<(DOHandle, Bytes)>> = BTreeMap::new();
        for handle in self.masters() {
            let Some(e) = self.store.entries.get_mut(&handle) else {
                continue;
            };
            if e.master != id {
                continue;
            }
            let Some(delta) = encode_delta(&e.cell, &mut e.snapshot) else {
                continue;
            };
            changed += 1;
            moved.push(handle);
            for t in e.dup_set.iter() {
                per_station
                    .entry(*t)
                    .or_default()
                    .push((handle, Bytes(delta.clone())));
            }
        }
        let budget = self.tcfg.max_datagram_size.saturating_sub(100).max(256);
        for (t, items) in per_station {
            self.stats.updates_sent += items.len() as u64;
            let mut batch = Vec::new();
            let mut size = 0;
            for (handle, data) in items {
                let len = data.0.len() + 8;
                if !batch.is_empty() && size + len > budget {
                    self.send_updates(t, std::mem::take(&mut batch));
                    size = 0;
                }
                size += len;
                batch.push((handle, data));
            }
            self.send_updates(t, batch);
        }
        self.interest_after_update(&moved);
        changed
    }

    pub(super) fn send_updates(&mut self, to: StationId, mut items: Vec<(DOHandle, Bytes)>) {
        let msg = match items.len() {
            0 => return,
            1 => {
                let Some((handle, data)) = items.pop() else {
                    return;
                };
                Msg::Update { handle, data }
            }
            _ => Msg::Updates { items },
        };
        self.send(to, SYSTEM_STREAM, msg);
    }

    pub(super) fn on_update(&mut self, origin: StationId, handle: DOHandle, data: &[u8]) {
        let Some(e) = self.store.entries.get(&handle) else {
            // From a new master whose claim waits for the object.
            let msg = Msg::Update {
                handle,
                data: Bytes(data.to_vec()),
            };
            if !self.hold_if_pending(origin, handle, msg) {
                self.stats.unknown_object += 1;
            }
            return;
        };
        if e.master != origin || e.master == self.membership.id {
            let msg = Msg::Update {
                handle,
                data: Bytes(data.to_vec()),
            };
            if !self.hold_if_pending(origin, handle, msg) {
                self.refuse("Update", origin, "not the object's master");
            }
            return;
        }
        let cell = e.cell.clone();
        let revision = peek_revision(data);
        let op = self
            .make_op(
                OperationDetail::UpdateDataSet(UpdateDataSetOperation { revision }),
                origin,
                self.membership.id,
                Some(handle),
            )
            .with_datasets(data);
        let c2 = cell.clone();
        let mut ok = true;
        self.run_op(op, Some(cell), true, |_, _| {
            ok = apply_datasets(&c2, data).is_some()
        });
        if ok {
            self.stats.updates_applied += 1;
        } else {
            self.stats.bad_messages += 1;
        }
    }
}
