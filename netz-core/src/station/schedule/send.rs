//! The scheduler's batches on the wire: reliable `UpdateBatch`es and
//! latest-state batches, and what a latest state too big for one takes.

use super::*;

impl Station {
    /// Sends reliable batches of `items` to `dest`.
    pub(super) fn send_reliable_batches(
        &mut self,
        dest: StationId,
        items: Vec<Chosen>,
        max: usize,
    ) {
        let mut w = BatchWriter::reliable();
        for (h, _, it) in items {
            let shape = match self.sched.shapes.get(&h.class_id()) {
                Some(s) => s.clone(),
                None => continue,
            };
            if w.len() > 0 && w.size() + it.shape.len() + it.fields.len() + 4 > max {
                let full = std::mem::replace(&mut w, BatchWriter::reliable());
                self.send_update_batch(dest, full);
            }
            w.push(h, 0, &shape, &it);
        }
        self.send_update_batch(dest, w);
    }

    /// Sends a reliable batch to `dest`.
    pub(in crate::station) fn send_update_batch(&mut self, dest: StationId, w: BatchWriter) {
        match w.len() {
            0 => {}
            n => {
                self.stats.updates_sent += n as u64;
                let data = w.finish();
                self.send(dest, SYSTEM_STREAM, Msg::UpdateBatch { data: Bytes(data) });
            }
        }
    }

    /// A latest-state update too large for one datagram: it goes on the
    /// reliable sub-stream, and the next ones wait until it is acknowledged.
    pub(super) fn send_latest_reliably(
        &mut self,
        hop: StationId,
        dest: StationId,
        handle: DOHandle,
        v: u64,
        it: Item,
    ) {
        let Some(shape) = self.sched.shapes.get(&handle.class_id()).cloned() else {
            return;
        };
        let mut w = BatchWriter::latest(self.sched.version);
        w.push(handle, v, &shape, &it);
        self.stats.latest_updates_sent += 1;
        self.stats.updates_sent += 1;
        self.send(
            dest,
            SYSTEM_STREAM,
            Msg::LatestBatch {
                data: Bytes(w.finish()),
            },
        );
        let mark = self.hop_mark(hop);
        if let Some(p) = self
            .sched
            .dests
            .get_mut(&dest)
            .and_then(|x| x.objects.get_mut(&handle))
        {
            p.inflight = 0;
            p.confirm = Some(Confirm {
                hop,
                mark,
                base: Some(v),
            });
        }
    }

    /// Sends latest-state batches of `items` to `dest` through `hop`.
    pub(super) fn send_latest(
        &mut self,
        hop: StationId,
        dest: StationId,
        items: Vec<Chosen>,
        max: usize,
    ) {
        let base = self.sched.version;
        let mut w = BatchWriter::latest(base);
        let mut carried = Vec::new();
        for (h, v, it) in items {
            let shape = match self.sched.shapes.get(&h.class_id()) {
                Some(s) => s.clone(),
                None => continue,
            };
            if w.len() > 0 && w.size() + it.shape.len() + it.fields.len() + 4 > max {
                let full = std::mem::replace(&mut w, BatchWriter::latest(base));
                self.send_latest_batch(hop, dest, full, std::mem::take(&mut carried));
            }
            w.push(h, v, &shape, &it);
            carried.push((h, v));
        }
        self.send_latest_batch(hop, dest, w, carried);
    }

    pub(super) fn send_latest_batch(
        &mut self,
        hop: StationId,
        dest: StationId,
        w: BatchWriter,
        items: Vec<(DOHandle, u64)>,
    ) {
        if w.len() == 0 {
            return;
        }
        let n = w.len() as u64;
        let env = Envelope {
            seq: 0,
            origin: self.membership.id,
            dest: if dest == hop { StationId::NONE } else { dest },
            msg: Msg::LatestBatch {
                data: Bytes(w.finish()),
            },
        };
        let bytes = env.encode();
        let now = self.now;
        let token = self
            .membership
            .members
            .get_mut(&hop)
            .and_then(|m| m.link.as_mut())
            .and_then(|l| l.send_unreliable_tracked(&bytes).ok());
        let Some(token) = token else {
            // Not sent: the states wait for the next flush.
            if let Some(d) = self.sched.dests.get_mut(&dest) {
                for (h, v) in &items {
                    if let Some(p) = d.objects.get_mut(h) {
                        if p.inflight == *v {
                            p.inflight = 0;
                        }
                    }
                }
            }
            return;
        };
        self.link_changed(hop);
        self.stats.latest_updates_sent += n;
        self.stats.updates_sent += n;
        let Some(lb) = self.sched.links.get_mut(&hop) else {
            return;
        };
        if lb.inflight.contains_key(&token) {
            // The link was made anew: what the old one carried is unknown.
            lb.inflight.clear();
        }
        while lb.inflight.len() >= MAX_INFLIGHT {
            lb.inflight.pop_first();
        }
        lb.inflight.insert(
            token,
            Sent {
                dest,
                at: now,
                items,
            },
        );
    }
}
