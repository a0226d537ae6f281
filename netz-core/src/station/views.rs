//! Read-only views of the station for monitoring tools.

use super::*;

impl Station {
    /// Every live link of this station with its transport figures (RTT,
    /// loss, bytes, queue), by peer id. Read-only; for monitoring tools.
    pub fn link_views(&self) -> Vec<crate::views::LinkView> {
        self.membership
            .members
            .iter()
            .filter_map(|(id, m)| {
                let link = m.link.as_ref()?;
                let s = link.stats();
                let b = self.stats.budgets.get(id).cloned().unwrap_or_default();
                Some(crate::views::LinkView {
                    peer: *id,
                    addr: m.info.addr,
                    rtt: link.rtt(),
                    rto: link.rto(),
                    rtt_samples: s.rtt_samples,
                    packets_sent: s.packets_sent,
                    packets_received: s.packets_received,
                    packets_lost: s.packets_lost,
                    retransmissions: s.retransmissions,
                    bytes_sent: s.bytes_sent,
                    bytes_received: s.bytes_received,
                    packets_in_flight: link.packets_in_flight(),
                    rttvar: s.rttvar,
                    cwnd: s.cwnd,
                    bytes_in_flight: s.bytes_in_flight,
                    congestion_events: s.congestion_events,
                    retransmit_backlog: s.retransmit_backlog,
                    queued_bytes: link.queued_bytes(),
                    last_received_ago: self.now.saturating_duration_since(link.last_received()),
                    silent: m.silent,
                    budget: self.link_budget(*id),
                    bytes_per_second: b.bytes_per_second,
                    deferred_updates: b.deferred,
                    queued_priority: b.queued_priority,
                    oldest_deferred: b.oldest_deferred,
                })
            })
            .collect()
    }

    /// One object of the store: class, master, duplica set (on the
    /// master). `None` for a handle not in the store.
    pub fn object_view(&self, handle: DOHandle) -> Option<crate::views::ObjectView> {
        let e = self.store.entries.get(&handle)?;
        let mut dataset_count = 0;
        e.cell.with_dyn(&mut |o| dataset_count = o.dataset_count());
        Some(crate::views::ObjectView {
            handle,
            class_id: handle.class_id(),
            class_name: self.registry.class_name(handle.class_id()),
            master: e.master,
            is_master: e.master == self.membership.id,
            dup_set: (e.master == self.membership.id).then(|| e.dup_set.iter().copied().collect()),
            dataset_count,
        })
    }

    /// [`Station::object_view`] of every object in the store, by handle.
    pub fn object_views(&self) -> Vec<crate::views::ObjectView> {
        self.objects()
            .into_iter()
            .filter_map(|h| self.object_view(h))
            .collect()
    }

    /// The current values of an object's datasets, each field as its wire
    /// encoding. `None` for a handle not in the store.
    pub fn dataset_views(&self, handle: DOHandle) -> Option<Vec<crate::views::DatasetView>> {
        let e = self.store.entries.get(&handle)?;
        let mut out = Vec::new();
        e.cell.with_dyn(&mut |o| {
            for i in 0..o.dataset_count() {
                let Some(d) = o.dataset(i) else { continue };
                let names = d.field_names();
                let revisions = d.field_revisions();
                let fields = names
                    .iter()
                    .take(crate::object::MAX_DATASET_FIELDS)
                    .enumerate()
                    .map(|(f, name)| {
                        let mut bytes = Vec::new();
                        d.encode_field(f, &mut bytes);
                        crate::views::FieldView {
                            name,
                            valid_from_revision: revisions.get(f).copied().unwrap_or(0),
                            bytes,
                        }
                    })
                    .collect();
                out.push(crate::views::DatasetView {
                    name: d.name(),
                    revision: d.received_revision(),
                    fields,
                });
            }
        });
        Some(out)
    }

    /// The RMCs this station sent and still waits for, oldest first.
    pub fn rmc_views(&self) -> Vec<crate::views::RmcView> {
        let mut v: Vec<_> = self
            .calls
            .pending
            .values()
            .map(|p| {
                let sent = Instant::from_micros(
                    p.deadline
                        .as_micros()
                        .saturating_sub(self.cfg.rmc_timeout.as_micros() as u64),
                );
                let method_name = self
                    .registry
                    .entry(p.handle.class_id())
                    .and_then(|c| c.methods.get(usize::from(p.method)))
                    .map(|m| m.name);
                crate::views::RmcView {
                    handle: p.handle,
                    method: p.method,
                    method_name,
                    target: p.target,
                    age: self.now.saturating_duration_since(sent),
                    retries: p.retries,
                }
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.age));
        v
    }
}

impl Station {
    /// The sizes of the tables remote input can grow.
    pub fn bookkeeping(&self) -> crate::views::Bookkeeping {
        crate::views::Bookkeeping {
            room_reports: self.rooms.started.len() + self.rooms.completed.len(),
            early_relayed: self.routing.early_relayed.len(),
            early_relayed_bytes: self.routing.early_relayed_bytes,
            held_in_order: self.routing.seq_in.values().map(|o| o.held.len()).sum(),
            pending_masters: self.store.pending_master.len() + self.store.awaiting_member.len(),
            pending_calls: self.calls.pending.len(),
            postponed_calls: self.calls.postponed.len(),
            latest_versions: self.sched_received_len(),
            successor_bytes: self.membership.successor_bytes,
            hand_overs_seen: self.store.handed_seen.len(),
            refused_changes: self.store.refused_changes.len(),
            missing_asked: self.store.asked_missing.len(),
        }
    }
}

impl Station {
    /// Whether nothing reliable waits to be sent or acknowledged on any
    /// link, and nothing is queued to go out.
    pub fn is_idle(&self) -> bool {
        self.routing.local_queue.is_empty()
            && self.routing.transmits.is_empty()
            && self.routing.packets.is_empty()
            && self
                .membership
                .members
                .values()
                .filter_map(|m| m.link.as_ref())
                .all(|l| l.is_idle())
            && self.routing.closing.iter().all(|c| c.link.is_idle())
    }
}
