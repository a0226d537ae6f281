//! Dataset updates: sending changes and applying them.
//!
//! A master's `update` compares its datasets with the snapshot of what it
//! sent last. The changed fields of reliable datasets go at once to every
//! duplica station whose link has no budget (`Update`, or for
//! `update_all` one `UpdateBatch` of about a datagram per station); the
//! rest (reliable changes for links with a budget, and every latest-state
//! change) wait in the scheduler (`schedule.rs`), which sends them as
//! `UpdateBatch` and `LatestBatch`.

use super::*;
use crate::dataset_codec::{decode_batch, BatchWriter, Item, Shape};
use crate::object::Delivery;

impl Station {
    /// Sends the changed fields of master `handle` to its duplicas
    /// (UpdateDataSet on each duplica). Returns whether anything changed.
    ///
    /// Reliable datasets go at once to the stations whose link has no
    /// budget; latest-state datasets, and everything for links with a
    /// budget, go as the scheduler allows, from the next
    /// [`Station::handle_timeout`] on ([`Station::poll_timeout`] says it is
    /// due at once).
    pub fn update(&mut self, now: Instant, handle: DOHandle) -> Result<bool, StationError> {
        self.advance(now);
        let id = self.membership.id;
        let e = self
            .store
            .entries
            .get(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != id {
            return Err(StationError::NotMaster(handle));
        }
        let cell = e.cell.clone();
        let shape = self.shape_of(handle, &cell);
        let Some(e) = self.store.entries.get_mut(&handle) else {
            return Ok(false);
        };
        let Some(masks) = diff(&cell, &mut e.snapshot) else {
            return Ok(false);
        };
        let mut now_targets = Vec::new();
        let reliable = self.record_changes(handle, &shape, &masks, &mut now_targets);
        if let Some(reliable) = reliable.filter(|_| !now_targets.is_empty()) {
            if let Some(e) = self.store.entries.get(&handle) {
                if let Some(delta) = encode_from_snapshot(&e.snapshot, &shape, &reliable) {
                    self.stats.updates_sent += now_targets.len() as u64;
                    self.multicast(
                        &now_targets,
                        SYSTEM_STREAM,
                        Msg::Update {
                            handle,
                            data: Bytes(delta),
                        },
                    );
                }
            }
        }
        self.end_update_call();
        self.interest_after_update(&[handle]);
        // What waits in the scheduler goes at the next `handle_timeout`
        // (due at once): the updates of many `update` calls in one input
        // go together.
        Ok(true)
    }

    /// [`Station::update`] for every local master; returns how many changed.
    /// The changes of many objects for one station travel together, in
    /// batches of about a datagram each (`UpdateBatch`: one header, then
    /// per object its handle as the difference to the one before and the
    /// changed fields).
    pub fn update_all(&mut self, now: Instant) -> usize {
        self.advance(now);
        let id = self.membership.id;
        let mut changed = 0;
        let mut moved = Vec::new();
        let max = self.tcfg.max_datagram_size.saturating_sub(100).max(256);
        let mut per_station: BTreeMap<StationId, BatchWriter> = BTreeMap::new();
        let mut targets = Vec::new();
        for handle in self.masters() {
            let Some(e) = self.store.entries.get(&handle) else {
                continue;
            };
            if e.master != id {
                continue;
            }
            let cell = e.cell.clone();
            let shape = self.shape_of(handle, &cell);
            let Some(e) = self.store.entries.get_mut(&handle) else {
                continue;
            };
            let Some(masks) = diff(&cell, &mut e.snapshot) else {
                continue;
            };
            changed += 1;
            moved.push(handle);
            targets.clear();
            let Some(reliable) = self.record_changes(handle, &shape, &masks, &mut targets) else {
                continue;
            };
            let Some(e) = self.store.entries.get(&handle) else {
                continue;
            };
            let Some(item) = Item::from_snapshot(&e.snapshot, &shape, &reliable) else {
                continue;
            };
            for &t in &targets {
                let w = per_station.entry(t).or_insert_with(BatchWriter::reliable);
                if w.len() > 0 && w.size() + item.max_len() > max {
                    let full = std::mem::replace(w, BatchWriter::reliable());
                    self.send_update_batch(t, full);
                }
                if let Some(w) = per_station.get_mut(&t) {
                    w.push(handle, 0, &shape, &item);
                }
            }
        }
        for (t, w) in per_station {
            self.send_update_batch(t, w);
        }
        self.end_update_call();
        self.interest_after_update(&moved);
        if self.sched.due.is_some() {
            self.flush_updates();
        }
        changed
    }

    /// Sorts the changes `masks` of master `handle`: latest-state ones and
    /// reliable ones for links with a budget go to the scheduler; returns
    /// the reliable ones to send now, and in `now_targets` the stations to
    /// send them to.
    fn record_changes(
        &mut self,
        handle: DOHandle,
        shape: &Shape,
        masks: &[u64],
        now_targets: &mut Vec<StationId>,
    ) -> Option<Vec<u64>> {
        let mut reliable = Vec::with_capacity(masks.len());
        let mut latest = Vec::new();
        for (i, &m) in masks.iter().enumerate() {
            let is_latest = shape
                .datasets
                .get(i)
                .is_some_and(|d| d.delivery == Delivery::Latest);
            if is_latest {
                if latest.is_empty() {
                    latest.resize(masks.len(), 0);
                }
                latest[i] = m;
                reliable.push(0);
            } else {
                reliable.push(m);
            }
        }
        let any_reliable = reliable.iter().any(|m| *m != 0);
        let any_latest = latest.iter().any(|m| *m != 0);
        let targets: Vec<StationId> = self
            .store
            .entries
            .get(&handle)
            .map(|e| e.dup_set.iter().copied().collect())
            .unwrap_or_default();
        if any_latest {
            self.record_latest(handle, shape, &latest, &targets);
        }
        if !any_reliable {
            return None;
        }
        if !self.any_budget() {
            now_targets.extend_from_slice(&targets);
            return Some(reliable);
        }
        let mut later = Vec::new();
        for &t in &targets {
            let hop = self.next_hop(t).unwrap_or(t);
            if self.budgeted(hop) {
                later.push(t);
            } else {
                now_targets.push(t);
            }
        }
        if !later.is_empty() {
            self.record_reliable(handle, &reliable, &later);
        }
        Some(reliable)
    }

    /// The full state of master `handle` for a new duplica (with its
    /// latest-state version when it has latest-state datasets).
    pub(super) fn full_state(
        &mut self,
        handle: DOHandle,
        cell: &Arc<dyn ErasedCell>,
    ) -> (Vec<u8>, Option<u64>) {
        let shape = self.shape_of(handle, cell);
        let version = self.state_version(handle, &shape);
        (encode_datasets_versioned(cell, version), version)
    }

    /// A full state arrived (`Create`) from `origin`: if it is the
    /// object's master now, the duplica's latest-state datasets hold the
    /// version it carries.
    pub(super) fn note_full_state(&mut self, origin: StationId, handle: DOHandle, data: &[u8]) {
        let Some(version) = trailing_version(data) else {
            return;
        };
        if self
            .store
            .entries
            .get(&handle)
            .is_some_and(|e| e.master == origin && origin != self.membership.id)
        {
            self.applied_full(handle, origin, version);
        }
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
                self.ask_for_missing_object(handle, origin);
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
                self.note_refused_change(handle, origin);
            }
            return;
        }
        let cell = e.cell.clone();
        self.apply_update(origin, handle, cell, data);
    }

    /// Runs UpdateDataSet with `data` on duplica `handle` (its master,
    /// `origin`, was checked); returns whether it was applied.
    fn apply_update(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        cell: Arc<dyn ErasedCell>,
        data: &[u8],
    ) -> bool {
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
        let done = self.run_op(op, Some(cell), true, |_, _| {
            ok = apply_datasets(&c2, data).is_some()
        });
        if ok {
            self.stats.updates_applied += 1;
        } else {
            self.stats.bad_messages += 1;
        }
        ok && done.is_some()
    }

    /// `UpdateBatch`: reliable updates of several objects of `origin`.
    pub(super) fn on_update_batch(&mut self, origin: StationId, data: &[u8]) {
        let registry = self.registry.clone();
        let batch = decode_batch(data, false, |c| registry.entry(ClassId(c)).is_some());
        if batch.malformed {
            self.stats.bad_messages += 1;
        }
        for item in &batch.items {
            if let Some(msg) = item.message(|_| true) {
                self.on_update(origin, item.handle, &msg);
            }
        }
    }

    /// `LatestBatch`: latest states of several objects of `origin`; each
    /// dataset's state is applied only when it is newer than the one the
    /// duplica has.
    pub(super) fn on_latest_batch(&mut self, origin: StationId, data: &[u8]) {
        let registry = self.registry.clone();
        let batch = decode_batch(data, true, |c| registry.entry(ClassId(c)).is_some());
        if batch.malformed {
            self.stats.bad_messages += 1;
        }
        for item in &batch.items {
            let handle = item.handle;
            let Some(e) = self.store.entries.get(&handle) else {
                self.stats.unknown_object += 1;
                self.ask_for_missing_object(handle, origin);
                continue;
            };
            if e.master != origin || e.master == self.membership.id {
                let held = self
                    .store
                    .pending_master
                    .get(&handle)
                    .is_some_and(|p| p.has(origin));
                if held {
                    let single = single_batch(item);
                    self.hold_for_new_master(
                        handle,
                        origin,
                        Some(Msg::LatestBatch {
                            data: Bytes(single),
                        }),
                    );
                } else {
                    // (Not noted as a missed change: its master sends a
                    // latest state again until it is acknowledged.)
                    self.refuse("LatestBatch", origin, "not the object's master");
                }
                continue;
            }
            let cell = e.cell.clone();
            let version = item.version;
            let mut stale = 0;
            let mut fresh = Vec::new();
            for p in &item.parts {
                if self.is_newer(handle, origin, p.index, version) {
                    fresh.push(p.index);
                } else {
                    stale += 1;
                }
            }
            self.stats.latest_stale_dropped += stale;
            let Some(msg) = item.message(|p| fresh.contains(&p.index)) else {
                continue;
            };
            if self.apply_update(origin, handle, cell, &msg) {
                self.stats.latest_updates_applied += 1;
                for i in fresh {
                    self.applied(handle, origin, i, version);
                }
            }
        }
        self.prune_received();
    }
}

/// A latest-state batch of `item` alone (to hold it for a master change).
fn single_batch(item: &crate::dataset_codec::BatchItem<'_>) -> Vec<u8> {
    latest_batch_of(&[item])
}

/// A latest-state batch of `items` (decoded from one batch, in its order).
pub(super) fn latest_batch_of(items: &[&crate::dataset_codec::BatchItem<'_>]) -> Vec<u8> {
    let base = items.iter().map(|i| i.version).max().unwrap_or(0);
    let mut w = BatchWriter::latest(base);
    for item in items {
        // The shape of its class as the items of that class here name it.
        let class = item.handle.class_id();
        let mut shape = Shape {
            datasets: Vec::new(),
        };
        for other in items.iter().filter(|o| o.handle.class_id() == class) {
            for p in &other.parts {
                while shape.datasets.len() <= p.index {
                    shape.datasets.push(crate::dataset_codec::DsShape {
                        delivery: Delivery::Latest,
                        revision: 0,
                        bits: Vec::new(),
                    });
                }
                shape.datasets[p.index].revision = p.revision;
            }
        }
        w.push(item.handle, item.version, &shape, &Item::raw(&item.parts));
    }
    w.finish()
}
