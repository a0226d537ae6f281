//! Silence, failure, and the new session master.

use super::*;

impl Station {
    pub(super) fn peer_silent(&mut self, id: StationId) {
        debug!(station = %self.id, peer = %id, "peer silent");
        if !self.is_in_session() || id == self.id {
            return;
        }
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && id == self.relay
        {
            self.close("lost the connection to the server");
            return;
        }
        if id == self.session_master {
            self.master_lost(id);
        } else if self.is_session_master() {
            self.declare_gone(id, true);
        } else if self
            .members
            .get(&id)
            .is_some_and(|m| m.info.relay == Some(self.id))
        {
            let master = self.session_master;
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
        }
    }

    pub(super) fn eligible_master(&self, info: &StationInfo) -> bool {
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => info.process_type == ProcessType::Server,
        }
    }

    /// The session master is gone: the lowest surviving eligible id takes over.
    pub(super) fn master_lost(&mut self, old: StationId) {
        self.gone.insert(old);
        let candidate = self
            .members
            .values()
            .filter(|m| {
                !(self.gone.contains(&m.info.id) || (m.silent && m.info.id != self.id))
                    && self.eligible_master(&m.info)
            })
            .map(|m| m.info.id)
            .min();
        debug!(station = %self.id, old = %old, ?candidate, "session master lost");
        if candidate == Some(self.id) {
            self.become_session_master();
        } else if let Some(c) = candidate {
            if self.session_master != c {
                self.session_master = c;
                self.events
                    .push_back(Event::SessionMasterChanged { new_master: c });
            }
        }
    }

    pub(super) fn become_session_master(&mut self) {
        self.session_master = self.id;
        self.next_station_id = self
            .next_station_id
            .max(self.members.keys().map(|i| i.0 + 1).max().unwrap_or(2));
        let failed: Vec<StationId> = self
            .gone
            .iter()
            .copied()
            .filter(|g| self.members.contains_key(g))
            .collect();
        let silent: Vec<StationId> = self
            .members
            .iter()
            .filter(|(i, m)| m.silent && **i != self.id)
            .map(|(i, _)| *i)
            .collect();
        self.broadcast(
            &Msg::NewSessionMaster {
                failed: failed.clone(),
            },
            &failed,
        );
        self.events.push_back(Event::SessionMasterChanged {
            new_master: self.id,
        });
        for f in failed.into_iter().chain(silent) {
            if self.members.contains_key(&f) {
                self.declare_gone(f, true);
            }
        }
    }

    /// Session master only: station `id` is out (failed or left).
    pub(super) fn declare_gone(&mut self, id: StationId, failed: bool) {
        if !self.members.contains_key(&id) || id == self.id {
            return;
        }
        debug!(station = %self.id, gone = %id, failed, "declaring station gone");
        self.gone.insert(id);
        // Clients relayed by a gone server are unreachable too.
        let orphans: Vec<StationId> = self
            .members
            .values()
            .filter(|m| m.info.relay == Some(id))
            .map(|m| m.info.id)
            .collect();
        // The station object first (14.3.1.10), then the station, then its objects.
        let mastered: Vec<DOHandle> = {
            let mut v: Vec<_> = self
                .store
                .iter()
                .filter(|(_, e)| e.master == id)
                .map(|(h, _)| *h)
                .collect();
            v.sort_by_key(|h| (h.class_id() != ClassId::STATION, *h));
            v
        };
        let (station_objs, others): (Vec<_>, Vec<_>) = mastered
            .into_iter()
            .partition(|h| h.class_id() == ClassId::STATION);
        for h in station_objs {
            self.fault_recover(h, id);
        }
        // A station that left gracefully is told too (its link lingers to flush).
        let except: &[StationId] = if failed { &[id] } else { &[] };
        self.broadcast(&Msg::StationGone { id, failed }, except);
        self.station_gone(id, failed);
        for h in others {
            self.fault_recover(h, id);
        }
        self.broadcast(&Msg::RecoveryDone { id }, &[]);
        for o in orphans {
            self.declare_gone(o, true);
        }
    }

    /// Every station: `id` leaves the session (LeaveStation, 14.3.1.10).
    pub(super) fn station_gone(&mut self, id: StationId, failed: bool) {
        if !self.members.contains_key(&id) {
            return;
        }
        self.gone.insert(id);
        let op = self.make_op(
            OperationDetail::LeaveStation(LeaveStationOperation {
                station: id,
                failed,
            }),
            id,
            id,
            None,
        );
        let mut resend = Vec::new();
        self.run_op(op, None, false, |st, _| {
            if let Some(m) = st.members.remove(&id) {
                if st.addrs.get(&m.info.addr) == Some(&id) {
                    st.addrs.remove(&m.info.addr);
                }
                st.forwarded.remove(&m.info.addr);
                st.seq_out.retain(|(dest, _), _| *dest != id);
                st.seq_in.retain(|(origin, _), _| *origin != id);
                if let Some(link) = &m.link {
                    resend = link.unacked_messages();
                }
                if let (false, Some(link)) = (failed, m.link) {
                    let until = st.now + st.cfg.failure_timeout;
                    st.closing.push(Closing {
                        id,
                        addr: m.info.addr,
                        link,
                        until,
                        deliver: false,
                        client: m.info.process_type == ProcessType::Client,
                    });
                }
            }
            let calls: Vec<u64> = st
                .calls
                .iter()
                .filter(|(_, c)| c.target == id)
                .map(|(k, _)| *k)
                .collect();
            for c in calls {
                if let Some(p) = st.calls.remove(&c) {
                    st.call_deadlines.remove(&(p.deadline, c));
                    st.complete_call(&p, Outcome::StationUnreachable, None);
                }
            }
            let masters: Vec<DOHandle> = st
                .store
                .iter()
                .filter(|(_, e)| e.master == st.id && e.dup_set.contains(&id))
                .map(|(h, _)| *h)
                .collect();
            for h in masters {
                st.change_dup_set(h, id, false, id);
            }
        });
        // What it was to pass on to clients and may not have: another way
        // (numbered, so the clients drop what did arrive).
        for (substream, bytes) in resend {
            match Envelope::decode(&bytes) {
                Some(env)
                    if env.seq != 0 && env.dest != id && self.members.contains_key(&env.dest) =>
                {
                    self.send_envelope(substream, env);
                }
                _ => {}
            }
        }
        self.offline.remove(&id);
        self.handovers.remove(&id);
        self.room_member_gone(id);
        self.events.push_back(if failed {
            Event::StationFailed(id)
        } else {
            Event::StationLeft(id)
        });
    }
}
