//! The receiving side of latest states: which versions a duplica has
//! applied, so that only newer ones are.

use super::*;

impl Station {
    /// What a duplica applied of latest-state updates from `master`: the
    /// newest version per dataset (reset when the master changed).
    pub(in crate::station) fn received_versions(
        &mut self,
        handle: DOHandle,
        master: StationId,
    ) -> &mut Vec<u64> {
        let r = self
            .sched
            .received
            .entry(handle)
            .or_insert_with(|| Received {
                master,
                versions: Vec::new(),
            });
        if r.master != master {
            r.master = master;
            r.versions.clear();
        }
        &mut r.versions
    }

    /// Whether a latest-state update of dataset `index` of `handle` at
    /// `version` from `master` is newer than what was applied.
    pub(in crate::station) fn is_newer(
        &mut self,
        handle: DOHandle,
        master: StationId,
        index: usize,
        version: u64,
    ) -> bool {
        let v = self.received_versions(handle, master);
        v.get(index).is_none_or(|have| version > *have)
    }

    /// Records that `version` of dataset `index` of `handle` was applied.
    pub(in crate::station) fn applied(
        &mut self,
        handle: DOHandle,
        master: StationId,
        index: usize,
        version: u64,
    ) {
        let v = self.received_versions(handle, master);
        if v.len() <= index {
            v.resize(index + 1, 0);
        }
        v[index] = v[index].max(version);
    }

    /// A full state of `handle` from `master` at `version`: every dataset
    /// holds that version now.
    pub(in crate::station) fn applied_full(
        &mut self,
        handle: DOHandle,
        master: StationId,
        version: u64,
    ) {
        let n = self
            .store
            .entries
            .get(&handle)
            .map(|e| {
                let mut n = 0;
                e.cell.with_dyn(&mut |o| n = o.dataset_count());
                n
            })
            .unwrap_or(0);
        let v = self.received_versions(handle, master);
        v.clear();
        v.resize(n, version);
    }

    /// How many duplicas' latest-state versions are remembered.
    pub(in crate::station) fn sched_received_len(&self) -> usize {
        self.sched.received.len()
    }

    /// Forgets the versions of objects no longer in the store, now and then.
    pub(in crate::station) fn prune_received(&mut self) {
        if self.sched.received.len() > 2 * self.store.entries.len() + 1024 {
            let entries = &self.store.entries;
            self.sched.received.retain(|h, _| entries.contains_key(h));
        }
    }
}
