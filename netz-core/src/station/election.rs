//! Silence, failure, and the new session master.

use super::claims::insert_recent;
use super::*;

/// How many (member, station) pairs the session master remembers of the
/// reports of silence it heard and the departures it told relaying
/// members ([`Membership::silence_heard`], [`Membership::departures_told`]).
const MAX_PAIRS: usize = 1024;

impl Station {
    pub(super) fn peer_silent(&mut self, id: StationId) {
        debug!(station = %self.membership.id, peer = %id, "peer silent");
        if !self.is_in_session() || id == self.membership.id {
            return;
        }
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && id == self.membership.relay
        {
            self.close("lost the connection to the server");
            return;
        }
        if id == self.membership.session_master {
            self.master_lost(id);
        } else if self.is_session_master() {
            self.declare_gone(id, true);
        } else {
            // The session master decides; it may have declared the station
            // gone already, in a word this station missed (or refused while
            // its view differed), and then says so again to this station.
            let master = self.membership.session_master;
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
            let at = self.now;
            self.membership.silence_reported.insert(id, at);
            // It believes this server about its own client: from now on
            // the client's words wait for the verdict.
            let me = self.membership.id;
            let own_client = self.membership.members.get(&id).is_some_and(|m| {
                m.info.process_type == ProcessType::Client && m.info.relay == Some(me)
            });
            if self.cfg.topology == Topology::ClientServer && own_client {
                let at = self.now;
                self.membership
                    .reported
                    .entry(id)
                    .or_insert_with(|| Reported {
                        at,
                        held: Vec::new(),
                    });
            }
        }
    }

    /// Reported clients (see [`Membership::reported`]) whose verdict has
    /// not come in twice the failure timeout: the session master did not
    /// take the word (its view of the client differs). One still silent is
    /// reported again; for one heard since, what it sent meanwhile goes on,
    /// in order.
    pub(super) fn release_reported(&mut self, now: Instant) {
        let wait = 2 * self.cfg.failure_timeout;
        let due: Vec<StationId> = self
            .membership
            .reported
            .iter()
            .filter(|(_, r)| now >= r.at + wait)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let silent = self.membership.members.get(&id).is_some_and(|m| m.silent);
            let master = self.membership.session_master;
            if silent && master != self.membership.id {
                // Still not heard: the session master may not have known
                // yet that the client is this server's (a move whose word
                // came after the report). It is told again.
                self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
                if let Some(r) = self.membership.reported.get_mut(&id) {
                    r.at = now;
                }
                continue;
            }
            self.drop_report(id);
        }
    }

    /// Members still silent here two failure timeouts after this station
    /// last reported them are reported again to the session master; the
    /// records of members heard again, or gone, are dropped.
    pub(super) fn report_silence_again(&mut self, now: Instant) {
        let wait = 2 * self.cfg.failure_timeout;
        let members = &self.membership.members;
        self.membership
            .silence_reported
            .retain(|id, _| members.get(id).is_some_and(|m| m.silent));
        let master = self.membership.session_master;
        if master == self.membership.id || !self.is_in_session() {
            self.membership.silence_reported.clear();
            return;
        }
        let due: Vec<StationId> = self
            .membership
            .silence_reported
            .iter()
            .filter(|(id, at)| now >= **at + wait && **id != master)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
            self.membership.silence_reported.insert(id, now);
        }
    }

    /// Forgets the report of client `id` (see [`Membership::reported`]):
    /// what it sent since goes on, in order, if it is still a member.
    pub(super) fn drop_report(&mut self, id: StationId) {
        let Some(r) = self.membership.reported.remove(&id) else {
            return;
        };
        if !self.membership.members.contains_key(&id) {
            return;
        }
        for (substream, env) in r.held {
            self.route(id, false, substream, env);
        }
    }

    /// Reports to a new session master every member silent here: those
    /// its view lacks are gone here too (see [`Station::on_report_failure`]).
    fn report_silent_members(&mut self) {
        let me = self.membership.id;
        let silent: Vec<StationId> = self
            .membership
            .members
            .iter()
            .filter(|(id, m)| **id != me && m.silent)
            .map(|(id, _)| *id)
            .collect();
        let master = self.membership.session_master;
        if master == me {
            return;
        }
        // And the clients reported before whose verdict has not come (the
        // old session master may have gone before it gave it).
        let reported: Vec<StationId> = self
            .membership
            .reported
            .keys()
            .copied()
            .filter(|id| !silent.contains(id))
            .collect();
        for id in silent.into_iter().chain(reported) {
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
        }
    }

    /// Time jumped by `gap`, longer than the failure timeout, since this
    /// station was last run. A station with a link keeps timers far sooner
    /// than that (heartbeats, silence), so it was not run when it should
    /// have been (a stopped process, a suspended machine, a stalled
    /// runtime): its peers heard nothing for longer than the failure
    /// timeout and have declared it failed. It does not take the silence
    /// it finds for theirs, elect itself and live on in a session of its
    /// own: it reports that it was excluded and closes.
    pub(super) fn check_stall(&mut self, gap: Duration) {
        let me = self.membership.id;
        let linked = self
            .membership
            .members
            .values()
            .any(|m| m.info.id != me && m.link.is_some());
        if !linked {
            return;
        }
        let reason = format!(
            "this station was not run for {} ms, longer than the failure timeout ({} ms): the session has declared it failed",
            gap.as_millis(),
            self.cfg.failure_timeout.as_millis()
        );
        debug!(station = %me, gap_ms = gap.as_millis() as u64, "excluded after a stall");
        self.exclude(&reason);
    }

    /// This station learned that the session lives on without it (see
    /// [`Station::check_stall`] and the partition rule): it reports
    /// [`Event::Excluded`], tells the clients it relays why, drops what it
    /// held and closes. Only the links to those clients linger, to carry
    /// that word.
    pub(super) fn exclude(&mut self, reason: &str) {
        self.stats.exclusions += 1;
        self.events.push_back(Event::Excluded {
            reason: reason.to_owned(),
        });
        let me = self.membership.id;
        let clients: Vec<StationId> = self
            .membership
            .members
            .values()
            .filter(|m| m.info.relay == Some(me) && m.info.process_type == ProcessType::Client)
            .map(|m| m.info.id)
            .collect();
        for c in &clients {
            self.send(
                *c,
                SYSTEM_STREAM,
                Msg::Kick {
                    reason: reason.to_owned(),
                },
            );
        }
        let until = self.now + self.cfg.failure_timeout;
        for c in &clients {
            if let Some(m) = self.membership.members.get_mut(c) {
                if let Some(link) = m.link.take() {
                    let info = m.info.clone();
                    self.routing
                        .closing
                        .push(Closing::new(&info, link, until, false));
                }
            }
            self.link_changed(*c);
        }
        self.close(reason);
        self.partition = Default::default();
    }

    pub(super) fn eligible_master(&self, info: &StationInfo) -> bool {
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => info.process_type == ProcessType::Server,
        }
    }

    /// The session master is gone: the lowest surviving eligible id takes over.
    pub(super) fn master_lost(&mut self, old: StationId) {
        self.membership.gone.insert(old);
        let candidate = self
            .membership
            .members
            .values()
            .filter(|m| {
                !(self.membership.gone.contains(&m.info.id)
                    || (m.silent && m.info.id != self.membership.id))
                    && self.eligible_master(&m.info)
            })
            .map(|m| m.info.id)
            .min();
        debug!(station = %self.membership.id, old = %old, ?candidate, "session master lost");
        if candidate == Some(self.membership.id) {
            self.become_session_master();
        } else if let Some(c) = candidate {
            if self.membership.session_master != c {
                self.membership.session_master = c;
                if self.membership.refused_takeover == Some(c) {
                    // It took over already (this station, hearing `old`
                    // still, refused it then, and what its recovery said
                    // of `old`): it tells that again.
                    self.membership.refused_takeover = None;
                    self.membership.unconfirmed_master = None;
                    self.hear_successor_words(c);
                    if !self.membership.members.contains_key(&old) {
                        self.send(c, SYSTEM_STREAM, Msg::ReportFailure { id: old });
                    }
                    self.ask_departures(c);
                    self.retell_reattaches();
                } else {
                    let until = self.now + 2 * self.cfg.failure_timeout;
                    self.membership.unconfirmed_master = Some((c, until));
                }
                self.events
                    .push_back(Event::SessionMasterChanged { new_master: c });
                self.report_silent_members();
                self.pass_on_takeover(c);
            }
        }
    }

    /// The successor this station picked when its session master was
    /// lost has not said it took over in twice the failure timeout, though
    /// it lives (linked, not silent): it follows another session master,
    /// one this station counted failed (a loss burst or a partial cut made
    /// the stations suspect different peers). This station's view has
    /// split from the session's, whose messages it refuses: it reports
    /// [`Event::Excluded`] and closes, as a station declared failed would
    /// (the session declares it so once it falls silent).
    pub(super) fn check_takeover(&mut self) {
        let Some((c, until)) = self.membership.unconfirmed_master else {
            return;
        };
        if self.now < until {
            return;
        }
        self.membership.unconfirmed_master = None;
        if !self.is_in_session() || self.membership.session_master != c {
            return;
        }
        let live = self
            .membership
            .members
            .get(&c)
            .is_some_and(|m| !m.silent && m.link.is_some());
        if !live {
            return;
        }
        let reason = format!(
            "station {c}, which this station took for the new session master, did not take over: the session follows a session master this station counted failed"
        );
        debug!(station = %self.membership.id, successor = %c, "excluded: the successor never took over");
        self.exclude(&reason);
    }

    pub(super) fn become_session_master(&mut self) {
        self.membership.session_master = self.membership.id;
        self.membership.unconfirmed_master = None;
        self.membership.withheld.clear();
        // The old session master may have admitted stations whose word
        // never reached this one (it failed just after): the ids it could
        // have given out since (its pending joins, and its join rate over
        // a failure timeout; at most 4,096) are skipped, so that none is
        // given twice.
        let limits = &self.cfg.limits;
        let unannounced = limits.max_pending_joins as f64
            + f64::from(limits.join_attempts_per_second_total)
                * self.cfg.failure_timeout.as_secs_f64();
        let margin = unannounced.ceil().min(4096.0) as u32;
        let known = self
            .membership
            .members
            .keys()
            .map(|i| i.0 + 1)
            .max()
            .unwrap_or(2);
        // And two sides of a split that each elect a session master from
        // the same view give out ids of their own: each skips a further
        // 4,096 ids per step of its own id (modulo 64), so that a station
        // of one side never shares an id with a joiner of the other (the
        // objects a station holds of one would name the other master).
        let side = (self.membership.id.0 % 64).saturating_mul(4096);
        self.membership.next_station_id = self
            .membership
            .next_station_id
            .max(known.saturating_add(margin).saturating_add(side));
        let failed: Vec<StationId> = self
            .membership
            .gone
            .iter()
            .copied()
            .filter(|g| self.membership.members.contains_key(g))
            .collect();
        let silent: Vec<StationId> = self
            .membership
            .members
            .iter()
            .filter(|(i, m)| m.silent && **i != self.membership.id)
            .map(|(i, _)| *i)
            .collect();
        self.broadcast(
            &Msg::NewSessionMaster {
                failed: failed.clone(),
            },
            &failed,
        );
        self.events.push_back(Event::SessionMasterChanged {
            new_master: self.membership.id,
        });
        // And its own clients it reported silent to its predecessor, whose
        // verdict had not come (it may have reached others).
        let reported: Vec<StationId> = self.membership.reported.keys().copied().collect();
        // And clients whose server is gone: the departure was declared by
        // a predecessor that went before it declared them (nobody links
        // to them, so no silence would).
        let members = &self.membership.members;
        let orphans: Vec<StationId> = members
            .values()
            .filter(|m| {
                m.info.process_type == ProcessType::Client
                    && m.info.relay.is_some_and(|r| !members.contains_key(&r))
            })
            .map(|m| m.info.id)
            .collect();
        for f in failed
            .into_iter()
            .chain(silent)
            .chain(reported)
            .chain(orphans)
        {
            if self.membership.members.contains_key(&f) {
                self.declare_gone(f, true);
            }
        }
        // A station the old session master admitted just before it went
        // may not have been announced to everyone: every member is
        // announced again (those who know it already ignore it).
        let infos: Vec<StationInfo> = self
            .membership
            .members
            .values()
            .filter(|m| m.info.id != self.membership.id)
            .map(|m| m.info.clone())
            .collect();
        for to in &infos {
            for info in infos.iter().filter(|i| i.id != to.id) {
                let shown = self.shown_to(info, to);
                self.send(to.id, SYSTEM_STREAM, Msg::StationJoined(shown));
            }
        }
        // Objects of stations that went while no session master could
        // recover them (the one before went too) are recovered now (those
        // of the stations declared gone just above wait for their census).
        let censuses = &self.store.censuses;
        let mut orphaned: Vec<(StationId, DOHandle)> = self
            .store
            .entries
            .iter()
            .filter(|(_, e)| {
                e.master != self.membership.id
                    && !self.membership.members.contains_key(&e.master)
                    && !censuses.contains_key(&e.master)
            })
            .map(|(h, e)| (e.master, *h))
            .collect();
        orphaned.sort();
        for &(m, h) in &orphaned {
            self.fault_recover(h, m, true);
        }
        let owners: BTreeSet<StationId> = orphaned.into_iter().map(|(m, _)| m).collect();
        for id in owners {
            self.broadcast(&Msg::RecoveryDone { id }, &[]);
        }
        self.retell_recent_departures();
        self.retell_reattaches();
    }

    /// Session master only: station `id` is out (failed or left).
    pub(super) fn declare_gone(&mut self, id: StationId, failed: bool) {
        if !self.membership.members.contains_key(&id) || id == self.membership.id {
            return;
        }
        debug!(station = %self.membership.id, gone = %id, failed, "declaring station gone");
        self.membership.gone.insert(id);
        // Clients relayed by a gone server are unreachable too.
        let orphans: Vec<StationId> = self
            .membership
            .members
            .values()
            .filter(|m| m.info.relay == Some(id) && m.info.process_type == ProcessType::Client)
            .map(|m| m.info.id)
            .collect();
        // The station object first (14.3.1.10), then the station, then its objects.
        let mastered: Vec<DOHandle> = {
            let mut v: Vec<_> = self
                .store
                .entries
                .iter()
                .filter(|(_, e)| e.master == id)
                .map(|(h, _)| *h)
                .collect();
            v.sort_by_key(|h| (h.class_id() != ClassId::STATION, *h));
            v
        };
        self.remember_recovered(id, &mastered);
        let (station_objs, others): (Vec<_>, Vec<_>) = mastered
            .into_iter()
            .partition(|h| h.class_id() == ClassId::STATION);
        for h in station_objs {
            self.fault_recover(h, id, failed);
        }
        // A station that left gracefully is told too (its link lingers to flush).
        let except: &[StationId] = if failed { &[id] } else { &[] };
        self.broadcast(&Msg::StationGone { id, failed }, except);
        self.station_gone(id, failed);
        // The others once every member said what `id` handed it.
        self.start_census(id, failed, others);
        for o in orphans {
            self.declare_gone(o, true);
        }
    }

    /// Every station: `id` leaves the session (LeaveStation, 14.3.1.10).
    pub(super) fn station_gone(&mut self, id: StationId, failed: bool) {
        if !self.membership.members.contains_key(&id) {
            return;
        }
        self.membership.gone.insert(id);
        if failed {
            if let Some(info) = self.membership.members.get(&id).map(|m| m.info.clone()) {
                self.remember_departed(&info);
            }
            self.ask_after_lost_hand_overs(id);
        }
        if !self.is_session_master() {
            // For the day this station is session master and a member
            // missed this (`retell_recent_departures`).
            let mastered: Vec<DOHandle> = self
                .store
                .entries
                .iter()
                .filter(|(_, e)| e.master == id)
                .map(|(h, _)| *h)
                .collect();
            self.remember_recovered(id, &mastered);
        }
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
            let removed = st.membership.members.remove(&id);
            st.membership.reported.remove(&id);
            st.interest_station_gone(id);
            st.link_changed(id);
            if let Some(m) = removed {
                if st.membership.addrs.get(&m.info.addr) == Some(&id) {
                    st.membership.addrs.remove(&m.info.addr);
                }
                st.admission.forget(m.info.addr);
                st.routing.seq_out.retain(|(dest, _), _| *dest != id);
                st.routing.seq_in.retain(|(origin, _), _| *origin != id);
                if let Some(link) = &m.link {
                    resend = link.unacked_messages();
                }
                if let (false, Some(link)) = (failed, m.link) {
                    let until = st.now + st.cfg.failure_timeout;
                    st.routing
                        .closing
                        .push(Closing::new(&m.info, link, until, false));
                }
            }
            let calls: Vec<u64> = st
                .calls
                .pending
                .iter()
                .filter(|(_, c)| c.target == id)
                .map(|(k, _)| *k)
                .collect();
            for c in calls {
                if let Some(p) = st.calls.pending.remove(&c) {
                    st.calls.deadlines.remove(&(p.deadline, c));
                    st.complete_call(&p, Outcome::StationUnreachable, None);
                }
            }
            let masters: Vec<DOHandle> = st
                .store
                .entries
                .iter()
                .filter(|(_, e)| e.master == st.membership.id && e.dup_set.contains(&id))
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
                    if env.seq != 0
                        && env.dest != id
                        && self.membership.members.contains_key(&env.dest) =>
                {
                    self.send_envelope(substream, env);
                }
                _ => {}
            }
        }
        self.believe_claims_after(id);
        self.expire_pending_masters();
        self.migration.offline.remove(&id);
        self.migration.handovers.remove(&id);
        self.migration
            .reattaching
            .retain(|client, to| *client != id && *to != id);
        // Clients this server was handing to the gone one, before it
        // answered: another server is asked, or the client is refused.
        let stranded: Vec<StationId> = self
            .migration
            .handovers
            .iter()
            .filter(|(_, h)| h.target == id && !h.accepted)
            .map(|(c, _)| *c)
            .collect();
        for c in stranded {
            self.on_handover_ack(id, c, false);
        }
        self.room_member_gone(id);
        // No census waits for its answer.
        self.census_member_gone(id);
        if failed && self.cfg.topology == Topology::Mesh {
            // (Mesh only: in client-server, where clients' copies pass
            // through their servers, the same re-announcement made two
            // seeds of the long swarm run fail that passed without it.)
            self.reannounce_handed_from(id);
        }
        self.events.push_back(if failed {
            Event::StationFailed(id)
        } else {
            Event::StationLeft(id)
        });
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && id == self.membership.relay
        {
            // Its server went with its link (this client heard it from
            // another, say the server it just moved from): nothing
            // reaches it any more, and no silence would tell it.
            self.close(if failed {
                "the session declared the server failed"
            } else {
                "the server left the session"
            });
        }
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `Leaving`: a station leaves gracefully.
    pub(super) fn on_leaving(&mut self, origin: StationId) {
        if self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client
            && origin == self.membership.relay
        {
            // Nothing reaches this client any more (nobody else links to it).
            self.close("the server left the session");
            return;
        }
        if origin == self.membership.session_master {
            if let Some(m) = self.membership.members.get_mut(&origin) {
                m.silent = true;
            }
            self.link_changed(origin);
            self.master_lost(origin);
            if self.is_session_master() {
                self.declare_gone(origin, false);
            } else if self.membership.session_master != origin {
                // The new session master says so to everyone, but its
                // word may have come first and been refused (this station
                // did not know yet): the station left, here too; when the
                // new session master's word was refused, so was its
                // recovery's end, and what the station mastered that
                // nobody recovered goes with it (what the new session
                // master recovered comes back whole).
                self.station_gone(origin, false);
                let refused = self.membership.refused_takeover.take();
                if refused == Some(self.membership.session_master) {
                    self.remove_orphans_of(origin, self.membership.id);
                }
            }
        } else if self.is_session_master() {
            self.declare_gone(origin, false);
        }
    }

    /// `StationGone`: the session master says a station is out.
    pub(super) fn on_station_gone(&mut self, origin: StationId, id: StationId, failed: bool) {
        if origin != self.membership.session_master {
            self.stats.bad_messages += 1;
            return;
        }
        if id == self.membership.id {
            self.close(if failed {
                "declared failed by the session master"
            } else {
                "left the session"
            });
        } else {
            self.station_gone(id, failed);
            self.answer_census(origin, id);
        }
    }

    /// `ReportFailure`: a member says a station went silent there.
    ///
    /// Believed (the station declared failed) only from the server that
    /// relays it, about its own client. About a station this session
    /// master no longer counts, the sender alone is told it is gone (what
    /// it missed of the session master's word); about any other station,
    /// nothing: the session master judges silence by its own links.
    pub(super) fn on_report_failure(&mut self, origin: StationId, id: StationId) {
        if !self.is_session_master() || id == self.membership.id {
            return;
        }
        match self.membership.members.get(&id) {
            Some(m) if m.info.relay == Some(origin) => self.declare_gone(id, true),
            Some(m) => {
                // Both are heard here. Reported again (a station asks
                // about every member once, on following a new session
                // master; one still silent there is reported every two
                // failure timeouts), the station that cannot hear the
                // other is told the session counts the sender: it may have
                // seen it declared failed by a session master of a side
                // the session did not follow.
                let heard = |m: &Member| !m.silent && m.link.is_some();
                if heard(m) && self.membership.members.get(&origin).is_some_and(heard) {
                    let now = self.now;
                    let ft = self.cfg.failure_timeout;
                    let seen = &mut self.membership.silence_heard;
                    let again = seen
                        .get(&(origin, id))
                        .is_some_and(|at| now >= *at + ft && now < *at + 4 * ft);
                    let fresh = |at: &Instant| now < *at + 4 * ft;
                    insert_recent(seen, MAX_PAIRS, (origin, id), now, fresh);
                    if again {
                        self.send(id, SYSTEM_STREAM, Msg::StillMember { id: origin });
                    }
                }
            }
            None if self.membership.gone.contains(&id) => self.retell_departure(origin, id, true),
            None => self.tell_unknown_departure(origin, id),
        }
    }

    /// Session master: `to` counts station `id`, which this session
    /// master never counted (a joiner admitted by a session master whose
    /// word about it this one never heard, or a station of a side that
    /// split off and was ended): for this session it is not a member, and
    /// `to` is told so, alone. Nothing of `id`'s was recovered here: the
    /// recovery's end is told at once (what `to` holds of `id`'s goes).
    fn tell_unknown_departure(&mut self, to: StationId, id: StationId) {
        if id == StationId::NONE || !self.membership.members.contains_key(&to) {
            return;
        }
        self.send(to, SYSTEM_STREAM, Msg::StationGone { id, failed: true });
        self.send(to, SYSTEM_STREAM, Msg::RecoveryDone { id });
    }

    /// Session master: member `to` sent something for station `id`, which
    /// is not in the session: `to` is told it went (as if it had reported
    /// it silent; for a departure, once two failure timeouts passed since
    /// it was declared), at most once a failure timeout per pair (1,024
    /// pairs).
    pub(super) fn tell_relay_departure(&mut self, to: StationId, id: StationId) {
        let now = self.now;
        let ft = self.cfg.failure_timeout;
        let fresh = |at: &Instant| now < *at + ft;
        if self
            .membership
            .departures_told
            .get(&(to, id))
            .is_some_and(fresh)
        {
            return;
        }
        let gone = self.membership.gone.contains(&id);
        // Not while the word of the departure may still be on its way
        // (what is sent to a station that just went is for everyone).
        let recent = |(at, _): &(Instant, Vec<DOHandle>)| now < *at + 2 * ft;
        if gone && self.membership.recovered.get(&id).is_none_or(recent) {
            return;
        }
        let told = &mut self.membership.departures_told;
        if !insert_recent(told, MAX_PAIRS, (to, id), now, fresh) {
            return;
        }
        if gone {
            self.retell_departure(to, id, false);
        } else {
            self.tell_unknown_departure(to, id);
        }
    }

    /// `StillMember`: the session master hears station `id` (which says
    /// this station is silent there). If this station saw `id` declared
    /// gone, by a session master of a side of a split that the session
    /// did not follow, its view of the session can no longer be mended:
    /// it reports that it was excluded and closes. A member it counts, or
    /// a station it never heard of, changes nothing.
    pub(super) fn on_still_member(&mut self, origin: StationId, id: StationId) {
        if origin != self.membership.session_master || origin == self.membership.id {
            self.stats.bad_messages += 1;
            return;
        }
        if self.membership.members.contains_key(&id) || !self.membership.gone.contains(&id) {
            return;
        }
        self.exclude(&format!(
            "the session master counts station {id}, which this station saw declared gone: this station followed the other side of a split"
        ));
    }

    /// What station `id` mastered when it went, kept for
    /// [`StationConfig::partition_memory`] (at least a minute), for a
    /// member that missed the recovery.
    fn remember_recovered(&mut self, id: StationId, mastered: &[DOHandle]) {
        let now = self.now;
        let keep = self.cfg.partition_memory.max(Duration::from_secs(60));
        let r = &mut self.membership.recovered;
        r.retain(|_, (at, _)| now < *at + keep);
        if r.len() >= 256 {
            if let Some(oldest) = r.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
                r.remove(&oldest);
            }
        }
        r.insert(id, (now, mastered.to_vec()));
    }

    /// A new session master: the stations that went in the last three
    /// failure timeouts are told again to every member, with where each
    /// of their objects is now. The old session master's word about them
    /// may have gone with it (a member cut off just then, or a goodbye
    /// whose last messages did not leave); those who heard it ignore this.
    fn retell_recent_departures(&mut self) {
        let now = self.now;
        let window = self.cfg.failure_timeout * 3;
        let recent: Vec<StationId> = self
            .membership
            .recovered
            .iter()
            .filter(|(id, (at, _))| {
                now.saturating_duration_since(*at) <= window
                    && !self.membership.members.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        if recent.is_empty() {
            return;
        }
        let me = self.membership.id;
        let members: Vec<StationId> = self
            .membership
            .members
            .keys()
            .copied()
            .filter(|m| *m != me)
            .collect();
        for to in members {
            for &id in &recent {
                self.retell_departure(to, id, false);
            }
        }
    }

    /// Session master: `to` missed that station `id` went (and what the
    /// recovery did): it is told again, alone, with where each of the
    /// station's objects is now. With `deletes`, an object this station
    /// no longer holds was deleted (this station recovered it); without,
    /// it is left to the recovery's end.
    pub(super) fn retell_departure(&mut self, to: StationId, id: StationId, deletes: bool) {
        if !self.membership.gone.contains(&id) {
            return;
        }
        self.send(to, SYSTEM_STREAM, Msg::StationGone { id, failed: true });
        let handles = self
            .membership
            .recovered
            .get(&id)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for h in handles {
            let msg = match self.store.entries.get(&h) {
                Some(e) if e.master != id => Msg::MasterChanged {
                    handle: h,
                    master: e.master,
                },
                Some(_) => continue,
                None if deletes => Msg::Delete { handle: h },
                None => continue,
            };
            self.send(to, SYSTEM_STREAM, msg);
        }
        // While the recovery waits for the members' answers, its end is
        // told to all when it comes.
        if !self.store.censuses.contains_key(&id) {
            self.send(to, SYSTEM_STREAM, Msg::RecoveryDone { id });
        }
    }

    /// `NewSessionMaster`: the sender took over as session master.
    ///
    /// Believed only when this station's own view agrees: the sender is
    /// eligible, every station it names as failed has been silent here for
    /// at least half the failure timeout (or is gone, or is not linked to
    /// this station), and with those out the election picks the sender.
    pub(super) fn on_new_session_master(&mut self, origin: StationId, failed: Vec<StationId>) {
        let Some(m) = self.membership.members.get(&origin) else {
            self.refuse("NewSessionMaster", origin, "not a member");
            return;
        };
        if !self.eligible_master(&m.info) {
            self.refuse("NewSessionMaster", origin, "not eligible");
            return;
        }
        let now = self.now;
        let suspect_after = self.cfg.failure_timeout / 2;
        let suspected = |id: &StationId| match self.membership.members.get(id) {
            None => true,
            Some(m) => {
                m.silent
                    || self.membership.gone.contains(id)
                    || m.link
                        .as_ref()
                        .is_none_or(|l| now >= l.last_received() + suspect_after)
            }
        };
        // A client hears the others only through its server, which passes
        // a takeover on only if it follows it (`withholds_takeover`): the
        // server's judgement is the client's.
        let vouched = self.cfg.topology == Topology::ClientServer
            && self.cfg.process_type == ProcessType::Client;
        if failed.contains(&self.membership.id) || !(vouched || failed.iter().all(suspected)) {
            self.refuse("NewSessionMaster", origin, "names a live station as failed");
            self.membership.refused_takeover = Some(origin);
            return;
        }
        let candidate = self
            .membership
            .members
            .values()
            .filter(|m| {
                let id = m.info.id;
                !(self.membership.gone.contains(&id)
                    || failed.contains(&id)
                    || (m.silent && id != self.membership.id))
                    && self.eligible_master(&m.info)
            })
            .map(|m| m.info.id)
            .min();
        if !vouched
            && candidate != Some(origin)
            && !(self.is_session_master() && origin > self.membership.id)
        {
            self.refuse("NewSessionMaster", origin, "not the one the election picks");
            self.membership.refused_takeover = Some(origin);
            return;
        }
        if self.is_session_master() && origin > self.membership.id {
            // Two takeovers: the lower id wins; tell the other.
            self.broadcast(
                &Msg::NewSessionMaster {
                    failed: failed.clone(),
                },
                &[],
            );
            return;
        }
        for f in &failed {
            self.membership.gone.insert(*f);
        }
        // This station picked `origin` on its own when its session master
        // was lost, and may have refused `origin`'s words before (it
        // followed the old one then).
        let was_unconfirmed = self
            .membership
            .unconfirmed_master
            .is_some_and(|(c, _)| c == origin);
        if was_unconfirmed {
            self.membership.unconfirmed_master = None;
        }
        self.membership.withheld.remove(&origin);
        let old = self.membership.session_master;
        if old != origin {
            self.membership.session_master = origin;
            self.events
                .push_back(Event::SessionMasterChanged { new_master: origin });
        }
        let was_refused = self.membership.refused_takeover == Some(origin);
        if was_refused {
            self.hear_successor_words(origin);
        }
        self.report_silent_members();
        self.retell_reattaches();
        if ((vouched || was_refused) && old != origin) || was_unconfirmed {
            // While it followed another session master (or refused this
            // one) this station may have refused departures: the new one
            // tells it again of each station it counts and the new one
            // does not (`on_report_failure`).
            self.ask_departures(origin);
        }
    }
}

/// How many bytes of a refused successor's words a station keeps
/// ([`Membership::successor_words`]).
const MAX_SUCCESSOR_BYTES: usize = 256 * 1024;

impl Station {
    /// A station that refused `origin`'s takeover (it still heard the old
    /// session master) keeps what `origin` says as session master of the
    /// session's members: the stations it admits, their keys, the clients
    /// it moves. If this station follows it later it hears them then
    /// ([`Station::hear_successor_words`]); before, a station admitted
    /// meanwhile stayed unknown here, and a session master this station
    /// became later could give its id to another. Returns the message when
    /// it is not kept.
    pub(super) fn keep_successor_word(&mut self, origin: StationId, msg: Msg) -> Option<Msg> {
        // A `Reattach` from the client's own server by this station's
        // record is heard at once ([`Station::on_reattach`]).
        let own_client = |station: &StationId| {
            self.membership
                .members
                .get(station)
                .is_some_and(|m| m.info.relay == Some(origin))
        };
        let kept = match &msg {
            Msg::StationJoined(_) | Msg::LinkKeys { .. } => true,
            Msg::Reattach { station, .. } => !own_client(station),
            // What it says of objects held here: its recovery of a failed
            // station's objects (the old master may hand one to this
            // station meanwhile; it yields the moment it follows), or
            // their deletion when the recovery was not approved, and the
            // end of a recovery (what still names the gone station goes).
            Msg::MasterChanged { handle, .. }
            | Msg::Create { handle, .. }
            | Msg::Delete { handle } => self.store.entries.contains_key(handle),
            Msg::RecoveryDone { .. } => true,
            _ => false,
        };
        if !kept
            || self.membership.refused_takeover != Some(origin)
            || origin == self.membership.session_master
            || self.is_session_master()
        {
            return Some(msg);
        }
        let size = postcard::to_allocvec(&msg).map_or(usize::MAX, |v| v.len());
        let m = &mut self.membership;
        if m.successor_bytes.saturating_add(size) > MAX_SUCCESSOR_BYTES {
            self.refuse(msg.name(), origin, "too much kept from a refused successor");
            return None;
        }
        m.successor_bytes += size;
        m.successor_words.push((origin, msg));
        None
    }

    /// This station now follows `master`: what it kept of `master`'s word
    /// while it refused its takeover is heard now, in the order it came
    /// (what others said is dropped).
    pub(super) fn hear_successor_words(&mut self, master: StationId) {
        let words = std::mem::take(&mut self.membership.successor_words);
        self.membership.successor_bytes = 0;
        for (origin, msg) in words {
            if origin == master && self.membership.session_master == master {
                self.handle_msg(origin, msg);
            }
        }
    }

    /// After following a session master this station may have refused
    /// departures from (its takeover was refused here, or a client follows
    /// its server's word): it asks about every station it counts, and the
    /// session master tells it again of each one it no longer counts
    /// ([`Station::on_report_failure`]). Its own server, the session master
    /// and the clients it relays are not asked about.
    pub(super) fn ask_departures(&mut self, master: StationId) {
        let me = self.membership.id;
        let relay = self.membership.relay;
        let counted: Vec<StationId> = self
            .membership
            .members
            .values()
            .filter(|m| {
                let id = m.info.id;
                let my_client =
                    m.info.process_type == ProcessType::Client && m.info.relay == Some(me);
                !([me, relay, master].contains(&id) || my_client)
            })
            .map(|m| m.info.id)
            .collect();
        // And the masters of objects held here that are gone: the session
        // master's word on their recovery was refused here meanwhile.
        let members = &self.membership.members;
        let gone_masters: BTreeSet<StationId> = self
            .store
            .entries
            .values()
            .map(|e| e.master)
            .filter(|m| *m != me && !members.contains_key(m))
            .collect();
        for id in counted.into_iter().chain(gone_masters) {
            self.send(master, SYSTEM_STREAM, Msg::ReportFailure { id });
        }
    }
}
