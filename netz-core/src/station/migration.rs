//! Scale-in, client migration and handover.

use super::*;

/// Scale-in and migration state.
#[derive(Default)]
pub(super) struct Migrations {
    /// Servers that announced a scale-in.
    pub(super) offline: BTreeSet<StationId>,
    /// This server's scale-in.
    pub(super) scale_in: Option<ScaleIn>,
    /// This client's migration to another server.
    pub(super) client: Option<Migration>,
    /// Clients this server hands over to other servers.
    pub(super) handovers: BTreeMap<StationId, Handover>,
    /// Clients this server handed over whose `Reattach` the session master
    /// has not confirmed yet (by its own `Reattach` to everyone): client ->
    /// the server it went to. Told again to each new session master
    /// ([`Station::retell_reattaches`]).
    pub(super) reattaching: BTreeMap<StationId, StationId>,
}

/// A server's scale-in.
pub(super) struct ScaleIn {
    pub(super) deadline: Instant,
    /// Set when the drain is over: clients still attached were told to go,
    /// and the server leaves once its links are idle or at this instant.
    pub(super) kicked_until: Option<Instant>,
}

/// A client's migration to another server.
pub(super) enum MigrationPhase {
    /// Waiting until the old server acknowledged everything we sent.
    WaitIdle,
    /// `MigrateRequest` sent; waiting for `MigrateGo`.
    Requested,
    /// Switched to the new server; waiting for its `Welcome`.
    Switched { to: StationId },
}

pub(super) struct Migration {
    pub(super) phase: MigrationPhase,
    /// Messages sent by the application during the migration, in order.
    pub(super) held: Vec<(u8, Envelope)>,
}

/// A server handing one of its clients over to another server.
pub(super) struct Handover {
    pub(super) target: StationId,
    pub(super) tried: Vec<StationId>,
    pub(super) accepted: bool,
    /// Marks of this server's links when the client asked: everything the
    /// client sent before was relayed once they are passed.
    pub(super) marks: Vec<(StationId, Vec<u64>)>,
}

impl Station {
    /// The server a client of a client-server session is attached to.
    pub fn relay(&self) -> Option<StationId> {
        (self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && self.membership.relay.is_some())
        .then_some(self.membership.relay)
    }

    /// The servers that announced a scale-in and are still in the session.
    pub fn offline_servers(&self) -> Vec<StationId> {
        self.migration.offline.iter().copied().collect()
    }

    /// Whether this server is scaling in (see [`Station::scale_in`]).
    pub fn is_offline(&self) -> bool {
        self.migration.offline.contains(&self.membership.id)
    }

    /// Whether this client is migrating (between `send_migrate` and
    /// [`Event::Reconnected`] or [`Event::MigrateFailed`]).
    pub fn is_migrating(&self) -> bool {
        self.migration.client.is_some()
    }

    /// The clients this server relays, sorted.
    pub fn attached_clients(&self) -> Vec<StationId> {
        self.membership
            .members
            .values()
            .filter(|m| {
                m.info.process_type == ProcessType::Client
                    && m.info.relay == Some(self.membership.id)
                    && m.info.id != self.membership.id
            })
            .map(|m| m.info.id)
            .collect()
    }

    /// Scales this server in (Diarkis: the server goes offline): it tells
    /// every station ([`Event::Offline`]; its clients should call
    /// [`Station::send_migrate`]), hands its masters to the surviving
    /// servers with ChangeMasterStation (rooms and their objects stay until
    /// their owner moves them with [`Station::send_migrate_room`]), refuses
    /// joins and new rooms, and leaves the session once no client and no
    /// room is left, or when `drain` is over: rooms still here then move by
    /// themselves and clients still here are disconnected with a reason.
    pub fn scale_in(&mut self, now: Instant, drain: Duration) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.membership.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        if self.cfg.topology != Topology::ClientServer
            || self.cfg.process_type != ProcessType::Server
        {
            return Err(StationError::NotAServer);
        }
        if self.migration.scale_in.is_some() {
            return Ok(());
        }
        debug!(station = %self.membership.id, ?drain, "scaling in");
        self.migration.scale_in = Some(ScaleIn {
            deadline: now + drain,
            kicked_until: None,
        });
        self.migration.offline.insert(self.membership.id);
        let drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX);
        self.broadcast(&Msg::Offline { drain_ms }, &[]);
        self.events.push_back(Event::Offline {
            server: self.membership.id,
            ours: false,
            drain,
        });
        self.evacuate();
        self.drain_local();
        self.progress_migrations();
        self.drain_local();
        Ok(())
    }

    /// Moves this client to another server (Diarkis `SendMigrate`), usually
    /// after [`Event::Offline`]. The cluster picks the server; the client
    /// keeps its station id, objects and duplicas. Reported by
    /// [`Event::MigrateDisconnected`], then [`Event::Reconnected`] (or
    /// [`Event::MigrateFailed`]). Everything the application sends in
    /// between is held and sent after the switch, exactly once and in order.
    pub fn send_migrate(&mut self, now: Instant) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.membership.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        if self.cfg.topology != Topology::ClientServer
            || self.cfg.process_type != ProcessType::Client
        {
            return Err(StationError::NotAClient);
        }
        if self.migration.client.is_some() {
            return Err(StationError::AlreadyMigrating);
        }
        debug!(station = %self.membership.id, from = %self.membership.relay, "migrating");
        self.migration.client = Some(Migration {
            phase: MigrationPhase::WaitIdle,
            held: Vec::new(),
        });
        self.progress_migrations();
        self.drain_local();
        Ok(())
    }

    /// The least loaded server that can take clients or objects.
    pub(super) fn pick_server(
        &self,
        exclude: &[StationId],
        extra: &BTreeMap<StationId, usize>,
    ) -> Option<StationId> {
        let candidates = self.membership.members.values().filter(|m| {
            let id = m.info.id;
            m.info.process_type == ProcessType::Server
                && id != self.membership.id
                && !m.silent
                && !self.migration.offline.contains(&id)
                && !self.membership.gone.contains(&id)
                && !exclude.contains(&id)
        });
        candidates
            .map(|m| {
                let id = m.info.id;
                let clients = self
                    .membership
                    .members
                    .values()
                    .filter(|c| c.info.relay == Some(id))
                    .count();
                let pending = self
                    .migration
                    .handovers
                    .values()
                    .filter(|h| h.target == id)
                    .count();
                (clients + pending + extra.get(&id).copied().unwrap_or(0), id)
            })
            .min()
            .map(|(_, id)| id)
    }

    /// Hands every master of this scaling-in server to the survivors,
    /// except rooms and their objects, station and well-known objects.
    pub(super) fn evacuate(&mut self) {
        if self.store.system_lock > 0 {
            return;
        }
        let in_rooms: BTreeSet<DOHandle> = self
            .hosted_rooms()
            .into_iter()
            .flat_map(|r| r.objects.into_iter().chain(std::iter::once(r.handle)))
            .collect();
        let mut assigned: BTreeMap<StationId, usize> = BTreeMap::new();
        for h in self.masters() {
            if h.class_id() == ClassId::STATION || h.is_well_known() || in_rooms.contains(&h) {
                continue;
            }
            let Some(to) = self.pick_server(&[], &assigned) else {
                return;
            };
            if self.migrate_inner(h, to).is_ok() {
                debug!(station = %self.membership.id, object = ?h, to = %to, "object handed over");
                *assigned.entry(to).or_default() += 1;
            }
        }
    }

    pub(super) fn progress_migrations(&mut self) {
        if !self.is_in_session() {
            return;
        }
        // A client waits until the old server acknowledged everything.
        if matches!(
            self.migration.client,
            Some(Migration {
                phase: MigrationPhase::WaitIdle,
                ..
            })
        ) {
            let idle = self
                .membership
                .members
                .get(&self.membership.relay)
                .and_then(|m| m.link.as_ref())
                .is_none_or(|l| l.is_idle());
            if idle {
                if let Some(m) = self.migration.client.as_mut() {
                    m.phase = MigrationPhase::Requested;
                }
                let relay = self.membership.relay;
                self.send_now(relay, Msg::MigrateRequest);
            }
        }
        // A server switches a client once what it relayed for it arrived.
        let ready: Vec<StationId> = self
            .migration
            .handovers
            .iter()
            .filter(|(_, h)| {
                h.accepted
                    && h.marks.iter().all(|(id, mark)| {
                        self.membership
                            .members
                            .get(id)
                            .and_then(|m| m.link.as_ref())
                            .is_none_or(|l| l.is_acked_through(mark))
                    })
            })
            .map(|(c, _)| *c)
            .collect();
        for c in ready {
            self.complete_handover(c);
        }
        self.progress_scale_in();
    }

    pub(super) fn progress_scale_in(&mut self) {
        if !matches!(self.membership.state, State::InSession) {
            return;
        }
        let Some(sc) = &self.migration.scale_in else {
            return;
        };
        let now = self.now;
        match sc.kicked_until {
            None => {
                let attached = self.attached_clients();
                let rooms = self.hosted_rooms();
                let empty =
                    attached.is_empty() && rooms.is_empty() && self.migration.handovers.is_empty();
                if !empty && now < sc.deadline {
                    return;
                }
                debug!(station = %self.membership.id, clients = attached.len(), rooms = rooms.len(), "drain over");
                for r in rooms {
                    if let Some(to) = self.pick_server(&[], &BTreeMap::new()) {
                        self.migrate_room_to(r.handle, to);
                    }
                }
                self.evacuate();
                self.migration.handovers.clear();
                for c in attached {
                    self.send(
                        c,
                        SYSTEM_STREAM,
                        Msg::Kick {
                            reason: KICK_REASON.into(),
                        },
                    );
                }
                let until = now + self.cfg.failure_timeout;
                if let Some(sc) = self.migration.scale_in.as_mut() {
                    sc.kicked_until = Some(until);
                }
            }
            Some(until) => {
                let idle = self
                    .membership
                    .members
                    .values()
                    .filter_map(|m| m.link.as_ref())
                    .all(|l| l.is_idle());
                if idle || now >= until {
                    debug!(station = %self.membership.id, "scaled in: leaving");
                    self.migration.scale_in = None;
                    let _ = self.leave(now);
                }
            }
        }
    }

    /// Re-points `station`'s relay, linking or unlinking this station.
    pub(super) fn set_relay(&mut self, station: StationId, relay: StationId) {
        let Some(m) = self.membership.members.get_mut(&station) else {
            return;
        };
        if m.info.relay == Some(relay) {
            return;
        }
        m.info.relay = Some(relay);
        let info = m.info.clone();
        // It moved: a report this server made of it no longer stands (the
        // session master goes by the relay it records).
        self.drop_report(station);
        let direct = self.direct_link_to(&info);
        let now = self.now;
        let until = now + self.cfg.failure_timeout;
        let tcfg = self.tcfg.clone();
        // A link to it that still lingers (it moved away a moment ago) is
        // taken up again: its other end lingers too, and would take a new
        // link's packets for old ones.
        let lingering = if direct {
            self.take_closing(station)
        } else {
            None
        };
        let Some(m) = self.membership.members.get_mut(&station) else {
            return;
        };
        if direct {
            if m.link.is_none() {
                m.link = Some(lingering.unwrap_or_else(|| Link::new(tcfg, now)));
                m.silent = false;
            }
        } else if let Some(link) = m.link.take() {
            self.routing
                .closing
                .push(Closing::new(&info, link, until, false));
        }
        self.link_changed(station);
    }

    pub(super) fn on_offline(&mut self, origin: StationId, drain_ms: u64) {
        if self
            .membership
            .members
            .get(&origin)
            .is_none_or(|m| m.info.process_type != ProcessType::Server)
        {
            self.stats.bad_messages += 1;
            return;
        }
        if !self.migration.offline.insert(origin) {
            return;
        }
        let ours = self.cfg.process_type == ProcessType::Client && self.membership.relay == origin;
        debug!(station = %self.membership.id, server = %origin, ours, "server offline");
        self.events.push_back(Event::Offline {
            server: origin,
            ours,
            drain: Duration::from_millis(drain_ms),
        });
    }

    pub(super) fn on_migrate_request(&mut self, origin: StationId) {
        let Some(m) = self.membership.members.get(&origin) else {
            return;
        };
        if m.info.process_type != ProcessType::Client || m.info.relay != Some(self.membership.id) {
            self.stats.bad_messages += 1;
            return;
        }
        if self.migration.handovers.contains_key(&origin) {
            return;
        }
        let Some(to) = self.pick_server(&[], &BTreeMap::new()) else {
            self.send(
                origin,
                SYSTEM_STREAM,
                Msg::MigrateRefused {
                    reason: "no other server can take the client".into(),
                },
            );
            return;
        };
        let marks = self
            .membership
            .members
            .iter()
            .filter(|(id, _)| **id != origin)
            .filter_map(|(id, m)| m.link.as_ref().map(|l| (*id, l.reliable_mark())))
            .collect();
        debug!(station = %self.membership.id, client = %origin, to = %to, "handing over");
        self.migration.handovers.insert(
            origin,
            Handover {
                target: to,
                tried: vec![to],
                accepted: false,
                marks,
            },
        );
        self.send(to, SYSTEM_STREAM, Msg::Handover { station: origin });
    }

    pub(super) fn on_handover(&mut self, origin: StationId, station: StationId) {
        let from_server = self
            .membership
            .members
            .get(&origin)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        let is_client = self
            .membership
            .members
            .get(&station)
            .is_some_and(|m| m.info.process_type == ProcessType::Client);
        if !from_server || !is_client {
            self.stats.bad_messages += 1;
            return;
        }
        let accepted = self.cfg.process_type == ProcessType::Server
            && self.migration.scale_in.is_none()
            && matches!(self.membership.state, State::InSession);
        if accepted {
            // It comes back: what this server told of its going is over.
            self.migration.reattaching.remove(&station);
            self.set_relay(station, self.membership.id);
        }
        self.send(
            origin,
            SYSTEM_STREAM,
            Msg::HandoverAck { station, accepted },
        );
    }

    pub(super) fn on_handover_ack(
        &mut self,
        origin: StationId,
        station: StationId,
        accepted: bool,
    ) {
        let Some(h) = self.migration.handovers.get_mut(&station) else {
            return;
        };
        if h.target != origin {
            return;
        }
        if accepted {
            h.accepted = true;
            return;
        }
        let tried = h.tried.clone();
        match self.pick_server(&tried, &BTreeMap::new()) {
            Some(to) => {
                if let Some(h) = self.migration.handovers.get_mut(&station) {
                    h.target = to;
                    h.tried.push(to);
                }
                self.send(to, SYSTEM_STREAM, Msg::Handover { station });
            }
            None => {
                self.migration.handovers.remove(&station);
                self.send(
                    station,
                    SYSTEM_STREAM,
                    Msg::MigrateRefused {
                        reason: "no other server accepted the client".into(),
                    },
                );
            }
        }
    }

    pub(super) fn complete_handover(&mut self, client: StationId) {
        let Some(h) = self.migration.handovers.remove(&client) else {
            return;
        };
        let to = h.target;
        if !self.membership.members.contains_key(&client) {
            return;
        }
        if !self.membership.members.contains_key(&to) {
            self.send(
                client,
                SYSTEM_STREAM,
                Msg::MigrateRefused {
                    reason: "the new server went away".into(),
                },
            );
            return;
        }
        // On the old link, after everything else sent to the client.
        self.send(client, SYSTEM_STREAM, Msg::MigrateGo { to });
        self.set_relay(client, to);
        debug!(station = %self.membership.id, client = %client, to = %to, "client handed over");
        if self.is_session_master() {
            self.apply_reattach(client, to);
        } else {
            self.migration.reattaching.insert(client, to);
            let master = self.membership.session_master;
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::Reattach {
                    station: client,
                    relay: to,
                },
            );
        }
    }

    /// Takes the lingering link to `station` out of the closing (or
    /// dormant) ones, if there is one.
    fn take_closing(&mut self, station: StationId) -> Option<Link> {
        let dormant = self.routing.dormant.remove(&station);
        let mut link = match self.routing.closing.iter().position(|c| c.id == station) {
            Some(i) => {
                let c = self.routing.closing.remove(i);
                self.routing.closing.retain(|c| c.id != station);
                c.link
            }
            None => dormant?,
        };
        link.revive(self.now);
        Some(link)
    }

    /// This server follows a new session master (or is it): the hand-overs
    /// the last one did not confirm are told to it. A session master that
    /// goes (a scale-in, a failure) may not have passed the word on, and
    /// the others would go on reaching the client through the server it
    /// left, or not at all once that one is gone. The new session master
    /// checks it as any `Reattach`: from the client's server by its own
    /// record (or to itself, when it took the client).
    pub(super) fn retell_reattaches(&mut self) {
        let members = &self.membership.members;
        self.migration.reattaching.retain(|client, to| {
            members.contains_key(to)
                && members
                    .get(client)
                    .is_some_and(|m| m.info.relay == Some(*to))
        });
        let told: Vec<(StationId, StationId)> = self
            .migration
            .reattaching
            .iter()
            .map(|(c, to)| (*c, *to))
            .collect();
        if self.is_session_master() {
            self.migration.reattaching.clear();
            for (station, relay) in told {
                self.apply_reattach(station, relay);
            }
            return;
        }
        let master = self.membership.session_master;
        for (station, relay) in told {
            debug!(station = %self.membership.id, client = %station, to = %relay, master = %master, "hand-over told again");
            self.send(master, SYSTEM_STREAM, Msg::Reattach { station, relay });
        }
    }

    /// Session master: `station` is relayed by `relay` now; tells everyone.
    pub(super) fn apply_reattach(&mut self, station: StationId, relay: StationId) {
        self.set_relay(station, relay);
        self.broadcast(&Msg::Reattach { station, relay }, &[station]);
    }

    pub(super) fn on_reattach(&mut self, origin: StationId, station: StationId, relay: StationId) {
        // Only a client of a client-server session has a relay, and only a
        // server relays.
        let relay_ok = self
            .membership
            .members
            .get(&relay)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        let current = self
            .membership
            .members
            .get(&station)
            .and_then(|m| (m.info.process_type == ProcessType::Client).then_some(m.info.relay));
        if self.is_session_master()
            && current.is_none()
            && relay_ok
            && self.membership.gone.contains(&station)
        {
            // A server handed on a client this session master declared
            // gone: it missed that word (it refused this session master's
            // takeover then, or the client was its own and not asked
            // about). It is told again, alone.
            self.refuse("Reattach", origin, "the client is gone");
            self.retell_departure(origin, station, true);
            return;
        }
        if self.is_session_master()
            && current == Some(Some(origin))
            && self.membership.gone.contains(&relay)
            && !self.membership.members.contains_key(&relay)
        {
            // The client's server handed it to a server declared gone
            // before this word came: it left its server for nobody, and
            // nothing reaches it any more.
            self.refuse("Reattach", origin, "the client's new server is gone");
            self.declare_gone(station, true);
            return;
        }
        if self.cfg.topology != Topology::ClientServer
            || station == self.membership.id
            || !relay_ok
            || current.is_none()
        {
            self.refuse("Reattach", origin, "not a client's relay to a server");
            return;
        }
        if self.is_session_master() {
            // Only the server the client is attached to hands it over (the
            // session master may be the adopting server: then it already
            // relays the client).
            if current == Some(Some(origin)) || current == Some(Some(relay)) {
                self.apply_reattach(station, relay);
            } else {
                self.refuse("Reattach", origin, "not the client's server");
            }
        } else if origin == self.membership.session_master {
            let me = self.membership.id;
            let linked = self
                .membership
                .members
                .get(&station)
                .is_some_and(|m| m.link.is_some());
            if current == Some(Some(me)) && relay != me && linked {
                // A client this server relays leaves it only by its own
                // hand-over, which re-points the client first: the session
                // master's word that it went elsewhere is of an earlier
                // move, overtaken by the client's coming back here (the
                // word of that follows). Taking it would drop the link the
                // client is reconnecting on.
                debug!(station = %me, client = %station, to = %relay, "stale reattach ignored");
                return;
            }
            if relay != me {
                // Its word on a client this server handed over (or on
                // where it went next) came: nothing to tell again.
                self.migration.reattaching.remove(&station);
            }
            self.set_relay(station, relay);
        } else if current == Some(Some(origin)) && relay != self.membership.id {
            // The client's own server by this station's record tells where
            // it handed the client (the session master passes that word on,
            // but a session master this station refused, or one that went
            // before passing it, may not): it already carries everything
            // this station sends the client, so its word risks nothing. It
            // cannot make this station the client's relay: a server takes
            // a client only by its own `Handover`.
            self.set_relay(station, relay);
        } else {
            self.refuse("Reattach", origin, "not the session master");
        }
    }

    pub(super) fn on_migrate_go(&mut self, origin: StationId, to: StationId) {
        let requested = matches!(
            self.migration.client,
            Some(Migration {
                phase: MigrationPhase::Requested,
                ..
            })
        );
        if !requested
            || origin != self.membership.relay
            || !self.membership.members.contains_key(&to)
        {
            self.stats.bad_messages += 1;
            return;
        }
        let from = self.membership.relay;
        self.membership.relay = to;
        let now = self.now;
        let until = now + self.cfg.failure_timeout;
        if let Some(me) = self.membership.members.get_mut(&self.membership.id) {
            me.info.relay = Some(to);
        }
        let lingering = self.take_closing(to);
        if let Some(m) = self.membership.members.get_mut(&from) {
            if let Some(link) = m.link.take() {
                // What the old server still sends us is handled.
                self.routing
                    .closing
                    .push(Closing::new(&m.info, link, until, true));
            }
        }
        let tcfg = self.tcfg.clone();
        if let Some(m) = self.membership.members.get_mut(&to) {
            // The new server's link from a moment ago, if it lingers.
            m.link = Some(lingering.unwrap_or_else(|| Link::new(tcfg, now)));
            m.silent = false;
        }
        self.link_changed(from);
        self.link_changed(to);
        if let Some(m) = self.migration.client.as_mut() {
            m.phase = MigrationPhase::Switched { to };
        }
        debug!(station = %self.membership.id, from = %from, to = %to, "switched server");
        self.events
            .push_back(Event::MigrateDisconnected { from, to });
        self.send_now(to, Msg::Reconnect);
    }

    pub(super) fn on_welcome(&mut self, origin: StationId) {
        let switched = matches!(
            self.migration.client,
            Some(Migration { phase: MigrationPhase::Switched { to }, .. }) if to == origin
        );
        if !switched {
            self.stats.bad_messages += 1;
            return;
        }
        self.end_migration();
        debug!(station = %self.membership.id, server = %origin, "reconnected");
        self.events.push_back(Event::Reconnected { server: origin });
    }

    pub(super) fn on_migrate_refused(&mut self, origin: StationId, reason: String) {
        if self.migration.client.is_none() || origin != self.membership.relay {
            self.stats.bad_messages += 1;
            return;
        }
        self.end_migration();
        self.events.push_back(Event::MigrateFailed { reason });
    }

    /// The migration is over (done or refused): what the application sent
    /// meanwhile goes out, in order for each station; what is for the
    /// server goes first, up to its first word that moves or deletes an
    /// object. The server checks what it passes on against its own store
    /// (see [`Station::referee`]): an object announced to it meanwhile (a
    /// server that joined since) must be there before its announcement to
    /// the others, or the server refuses that one; what this client said
    /// to the others before a hand-over or a deletion must still pass
    /// while it masters the object there.
    fn end_migration(&mut self) {
        if let Some(m) = self.migration.client.take() {
            let server = self.membership.relay;
            let mut moves = false;
            let (first, then): (Vec<_>, Vec<_>) = m.held.into_iter().partition(|(_, env)| {
                if env.dest != server || moves {
                    return false;
                }
                moves = matches!(
                    env.msg,
                    Msg::Delete { .. } | Msg::MasterChanged { .. } | Msg::Migrate { .. }
                );
                !moves
            });
            for (substream, env) in first.into_iter().chain(then) {
                self.send_envelope(substream, env);
            }
        }
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `Reconnect`: a migrating client links to its new server.
    pub(super) fn on_reconnect(&mut self, origin: StationId) {
        if self
            .membership
            .members
            .get(&origin)
            .and_then(|m| m.info.relay)
            == Some(self.membership.id)
        {
            self.send_now(origin, Msg::Welcome);
            // The client may have missed a takeover its old server did not
            // follow: it learns whom this one follows.
            let master = self.membership.session_master;
            if master == self.membership.id {
                self.send_now(origin, Msg::NewSessionMaster { failed: Vec::new() });
            } else {
                self.vouch_takeover(master, Vec::new(), Some(origin));
            }
        } else {
            self.stats.bad_messages += 1;
        }
    }

    /// `Kick`: the server disconnects this client.
    pub(super) fn on_kick(&mut self, origin: StationId, reason: String) {
        if self.cfg.process_type == ProcessType::Client && origin == self.membership.relay {
            self.close(&reason);
        } else {
            self.stats.bad_messages += 1;
        }
    }
}
