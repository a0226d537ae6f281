//! The joiner's side of a join: the request, the acceptance.

use super::*;

impl Station {
    /// A station that is still joining does not know its id nor the
    /// session's tag, and sends its acknowledgements and heartbeats without
    /// them: they are taken as its own when they come from the address of a
    /// member just admitted, so that its links see it alive and learn what
    /// it received.
    pub(super) fn resolve_joiner(
        &self,
        from: SocketAddr,
        mut header: PacketHeader,
    ) -> Option<PacketHeader> {
        if header.sender != StationId::NONE.0
            || header.session != 0
            || !matches!(self.membership.state, State::InSession)
        {
            return None;
        }
        if let Some(&id) = self.membership.addrs.get(&from) {
            // Only a member never heard from: a station that restarted on
            // the address of one that is still a member is not taken for it.
            if id != self.membership.id
                && self
                    .membership
                    .members
                    .get(&id)
                    .is_some_and(|m| m.link.is_some() && !m.heard)
            {
                header.sender = id.0;
                header.session = self.membership.session_tag;
                return Some(header);
            }
        }
        None
    }

    /// Creates a session; this station becomes its master (id 1).
    pub fn create_session(
        &mut self,
        now: Instant,
        local_addr: SocketAddr,
    ) -> Result<(), JoinError> {
        self.advance(now);
        if !matches!(self.membership.state, State::Idle) {
            return Err(JoinError::AlreadyInSession);
        }
        self.membership.local_addr = Some(local_addr);
        self.membership.id = StationId(1);
        self.membership.session_master = self.membership.id;
        self.membership.next_station_id = 2;
        self.membership.session_tag = (self.next_random() as u32) | 1;
        let info = StationInfo {
            id: self.membership.id,
            process_type: self.cfg.process_type,
            token: self.cfg.token.clone(),
            addr: local_addr,
            relay: None,
        };
        self.membership.members.insert(
            self.membership.id,
            Member {
                info: info.clone(),
                link: None,
                silent: false,
                heard: false,
            },
        );
        self.membership.state = State::InSession;
        self.events.push_back(Event::SessionCreated {
            id: self.membership.id,
        });
        debug!(station = %self.membership.id, "session created");
        for h in self.registry.well_known_handles() {
            self.add_well_known(h, true);
        }
        // Station objects reach every member: they carry no token.
        self.publish_station_object(&StationInfo {
            token: String::new(),
            ..info
        });
        self.drain_local();
        Ok(())
    }

    /// Starts joining the session that the station at `contact` belongs to.
    /// Completion is reported by `Event::Joined` or `Event::JoinFailed`.
    pub fn join(
        &mut self,
        now: Instant,
        local_addr: SocketAddr,
        contact: SocketAddr,
    ) -> Result<(), JoinError> {
        self.advance(now);
        if !matches!(self.membership.state, State::Idle) {
            return Err(JoinError::AlreadyInSession);
        }
        self.membership.local_addr = Some(local_addr);
        let nonce = self.next_random();
        self.admission.join_cookie = [0; 16];
        if let Some(sec) = self.sec.as_mut() {
            sec.set_joining(true);
        }
        self.membership.state = State::Joining {
            contact,
            nonce,
            deadline: now + self.cfg.join_timeout,
            next_send: now + self.cfg.join_retry,
            provisional: BTreeMap::new(),
            early: Vec::new(),
        };
        self.send_join_request(contact, nonce);
        Ok(())
    }

    pub(super) fn send_join_request(&mut self, contact: SocketAddr, nonce: u64) {
        let msg = Msg::JoinRequest {
            nonce,
            process_type: self.cfg.process_type,
            token: self.cfg.token.clone(),
            topology: self.cfg.topology,
            connect: Bytes(self.sec.as_ref().map(|s| s.own_token()).unwrap_or_default()),
            cookie: self.admission.join_cookie,
            classes: Bytes(crate::compat::encode(&self.registry)),
            salt: self.sec.as_ref().map(|s| s.join_salt()).unwrap_or_default(),
        };
        self.send_connectionless(contact, &msg);
    }

    pub(super) fn on_join_accepted(
        &mut self,
        from: SocketAddr,
        sender: u32,
        substream: u8,
        env: Envelope,
    ) {
        let (seq, origin) = (env.seq, env.origin);
        let Msg::JoinAccepted {
            nonce: n,
            id,
            session_master,
            session,
            members,
        } = env.msg
        else {
            return;
        };
        // Only the answer to our own request: anyone who does not know its
        // nonce (a stranger, or a replay of an older join's answer) is ignored.
        if !matches!(&self.membership.state, State::Joining { nonce, .. } if *nonce == n) {
            self.stats.join_messages_refused += 1;
            return;
        }
        let State::Joining {
            provisional, early, ..
        } = std::mem::replace(&mut self.membership.state, State::InSession)
        else {
            return;
        };
        self.membership.id = id;
        self.membership.session_master = session_master;
        self.membership.session_tag = session;
        // In a client-server session a client's relay is the station it reached.
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
        {
            self.membership.relay = StationId(sender);
        }
        let mut provisional = provisional;
        if let Some(sec) = self.sec.as_mut() {
            sec.set_joining(false);
            for info in &members {
                if info.id != id {
                    sec.derive_own(info.id);
                }
            }
        }
        for mut info in members {
            // The station that accepted us is reached where its datagrams
            // come from (a NAT, a proxy, a forwarded port), not at the
            // address it has of itself.
            if info.id.0 == sender && info.addr != from {
                debug!(station = %id, peer = %info.id, listed = %info.addr, seen = %from, "the accepting station as seen on the wire");
                info.addr = from;
            }
            if info.id == id {
                self.membership.members.insert(
                    id,
                    Member {
                        info,
                        link: None,
                        silent: false,
                        heard: false,
                    },
                );
                continue;
            }
            let link = provisional.remove(&info.addr).map(|(_, l)| l);
            self.add_member(info, link);
        }
        debug!(station = %self.membership.id, master = %session_master, "joined");
        self.events.push_back(Event::Joined { id, session_master });
        for h in self.registry.well_known_handles() {
            self.add_well_known(h, false);
        }
        // The acceptance came first in its sender's order.
        if seq != 0 {
            self.routing
                .seq_in
                .insert((origin, substream), InOrder::expecting(seq + 1));
        }
        for (addr, substream, env) in early {
            if let Some(&sid) = self.membership.addrs.get(&addr) {
                let relays = self.process_type_of(sid) == Some(ProcessType::Server);
                self.route(sid, relays, substream, env);
            }
        }
    }
}

/// The reason a session gives a joiner of another topology.
pub(super) const TOPOLOGY_REASON: &str = "the session uses a different topology";

/// The error a joiner reports for a `JoinDenied` with `reason`: the
/// reasons the core itself gives map to their own variants.
pub(super) fn join_denied_error(reason: String) -> JoinError {
    if reason == TOPOLOGY_REASON {
        JoinError::TopologyMismatch
    } else if let Some(why) = reason.strip_prefix(crate::compat::INCOMPATIBLE) {
        JoinError::IncompatibleClasses(why.to_string())
    } else {
        JoinError::Denied(reason)
    }
}

// ---- the objects every station has from the start
impl Station {
    /// Adds well-known object `h` (the session object): the master here
    /// when this station creates the session, a duplica of the session
    /// master's otherwise.
    pub(super) fn add_well_known(&mut self, h: DOHandle, master: bool) {
        let Some(entry) = self.registry.entry(h.class_id()) else {
            return;
        };
        let m = if master {
            self.membership.id
        } else {
            self.membership.session_master
        };
        let cell = (entry.factory)(h, self.membership.id, m);
        if master {
            self.add_master(h, cell, true);
        } else if !self.store.entries.contains_key(&h) {
            self.add_duplica(h, m, cell, None, m);
        }
    }

    /// Publishes the station object of `info` (mastered here at first).
    pub(super) fn publish_station_object(&mut self, info: &StationInfo) -> DOHandle {
        let handle = self.store.allocate(ClassId::STATION, self.membership.id);
        let obj = StationObject {
            data: StationData::new(info),
        };
        let cell = new_cell(obj, handle, self.membership.id, self.membership.id);
        self.add_master(handle, cell, true);
        self.discover_all(handle);
        handle
    }
}
