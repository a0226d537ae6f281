//! Incoming messages to the part that owns them.

use super::*;

impl Station {
    pub(super) fn handle_msg(&mut self, origin: StationId, msg: Msg) {
        trace!(station = %self.membership.id, from = %origin, msg = msg.name(), "recv");
        if self.store.system_lock > 0 && self.needs_unlocked(&msg) {
            self.store.deferred.push(Deferred::Msg(origin, msg));
            return;
        }
        match msg {
            Msg::JoinRequest { .. } | Msg::JoinDenied { .. } | Msg::JoinAccepted { .. } => {
                self.stats.bad_messages += 1
            }
            Msg::JoinForward {
                nonce,
                addr,
                process_type,
                token,
                topology,
                connect,
            } => {
                if self.is_session_master() {
                    self.on_join_request(
                        origin,
                        nonce,
                        addr,
                        process_type,
                        token,
                        topology,
                        connect.0,
                    );
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::JoinDenyForward {
                nonce,
                addr,
                reason,
            } => {
                self.admission.join_dedup.remove(&addr);
                self.send_connectionless(addr, &Msg::JoinDenied { nonce, reason });
            }
            Msg::LinkKeys {
                station,
                send,
                recv,
            } => match self.sec.as_mut() {
                Some(sec)
                    if origin == self.membership.session_master
                        && station != self.membership.id =>
                {
                    sec.install(station, &send, &recv);
                }
                _ => self.stats.bad_messages += 1,
            },
            Msg::StationJoined(info) => {
                if origin != self.membership.session_master || info.id == self.membership.id {
                    self.stats.bad_messages += 1;
                    return;
                }
                let op = self.make_op(
                    OperationDetail::JoinStation(JoinStationOperation {
                        station: info.clone(),
                    }),
                    origin,
                    info.id,
                    None,
                );
                let id = info.id;
                let i2 = info.clone();
                self.run_op(op, None, false, |st, _| {
                    st.add_member(i2, None);
                    st.discover_all_for(id);
                });
                self.events.push_back(Event::StationJoined(info));
                let mine =
                    |e: &(Instant, StationId, u8, Envelope)| e.3.origin == id || e.3.dest == id;
                if self.routing.early_relayed.iter().any(mine) {
                    let (now, later): (Vec<_>, Vec<_>) =
                        std::mem::take(&mut self.routing.early_relayed)
                            .into_iter()
                            .partition(mine);
                    self.routing.early_relayed = later;
                    for (_, hop, substream, env) in now {
                        let hop_is_client = self.process_type_of(hop) == Some(ProcessType::Client);
                        self.route(hop, hop_is_client, substream, env);
                    }
                }
            }
            Msg::Leaving => {
                if origin == self.membership.session_master {
                    if let Some(m) = self.membership.members.get_mut(&origin) {
                        m.silent = true;
                    }
                    self.master_lost(origin);
                    if self.is_session_master() {
                        self.declare_gone(origin, false);
                    }
                } else if self.is_session_master() {
                    self.declare_gone(origin, false);
                }
            }
            Msg::StationGone { id, failed } => {
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
                }
            }
            Msg::RecoveryDone { id } => {
                if origin != self.membership.session_master {
                    return;
                }
                // Objects nobody recovered have no master any more.
                let orphans: Vec<DOHandle> = self
                    .store
                    .entries
                    .iter()
                    .filter(|(_, e)| e.master == id)
                    .map(|(h, _)| *h)
                    .collect();
                for h in orphans {
                    self.remove_from_store(h, origin, RemoveReason::FaultRecovery, false);
                }
            }
            Msg::ReportFailure { id } => {
                if self.is_session_master()
                    && self
                        .membership
                        .members
                        .get(&id)
                        .is_some_and(|m| m.info.relay == Some(origin))
                {
                    self.declare_gone(id, true);
                }
            }
            Msg::NewSessionMaster { failed } => {
                if !self.membership.members.contains_key(&origin) {
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
                if self.membership.session_master != origin {
                    self.membership.session_master = origin;
                    self.events
                        .push_back(Event::SessionMasterChanged { new_master: origin });
                }
            }
            Msg::Create {
                handle,
                master,
                data,
            } => self.on_create(origin, handle, master, &data.0),
            Msg::Delete { handle } => {
                let Some(e) = self.store.entries.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if e.master == self.membership.id
                    || (origin != e.master && origin != self.membership.session_master)
                {
                    self.stats.bad_messages += 1;
                    return;
                }
                self.remove_from_store(handle, origin, RemoveReason::Deleted, false);
            }
            Msg::DuplicaRemoved { handle } => self.change_dup_set(handle, origin, false, origin),
            Msg::Update { handle, data } => self.on_update(origin, handle, &data.0),
            Msg::Updates { items } => {
                for (handle, data) in items {
                    self.on_update(origin, handle, &data.0);
                }
            }
            Msg::MasterChanged { handle, master } => {
                let Some(e) = self.store.entries.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if origin != master || e.master == master {
                    return;
                }
                self.change_master(handle, master, origin);
            }
            Msg::Migrate {
                handle,
                data,
                dup_set,
            } => {
                if !self.store.entries.contains_key(&handle) {
                    self.stats.unknown_object += 1;
                    return;
                }
                if let Some(e) = self.store.entries.get(&handle) {
                    apply_datasets(&e.cell, &data.0);
                }
                if self.change_master(handle, self.membership.id, origin) {
                    let set: BTreeSet<StationId> = dup_set
                        .into_iter()
                        .filter(|s| {
                            *s != self.membership.id && self.membership.members.contains_key(s)
                        })
                        .collect();
                    if let Some(e) = self.store.entries.get_mut(&handle) {
                        e.dup_set = set.clone();
                    }
                    for s in set {
                        self.send(
                            s,
                            SYSTEM_STREAM,
                            Msg::MasterChanged {
                                handle,
                                master: self.membership.id,
                            },
                        );
                    }
                    let me = self.membership.id;
                    self.discover_all_for_handle(handle, me);
                }
            }
            Msg::Rmc {
                call,
                handle,
                method,
                flags,
                args,
                reply,
                substream,
            } => {
                self.on_rmc(
                    origin, call, handle, method, flags, args.0, reply, substream,
                );
            }
            Msg::RmcReply {
                call,
                outcome,
                result,
                master_hint,
            } => self.on_rmc_reply(call, Outcome::from_wire(outcome), result.0, master_hint),
            Msg::Action {
                handle,
                method,
                args,
                forward,
            } => {
                let Some(e) = self.store.entries.get(&handle) else {
                    self.stats.unknown_object += 1;
                    return;
                };
                if forward && e.master != self.membership.id {
                    // The master moved: pass it on.
                    let m = e.master;
                    self.send(
                        m,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method,
                            args,
                            forward,
                        },
                    );
                    return;
                }
                let op = self.make_call_op(origin, handle, method, true);
                self.execute_call(op, 0, false, handle, args.0, SYSTEM_STREAM, forward);
            }
            Msg::Offline { drain_ms } => self.on_offline(origin, drain_ms),
            Msg::MigrateRequest => self.on_migrate_request(origin),
            Msg::MigrateRefused { reason } => self.on_migrate_refused(origin, reason),
            Msg::Handover { station } => self.on_handover(origin, station),
            Msg::HandoverAck { station, accepted } => {
                self.on_handover_ack(origin, station, accepted)
            }
            Msg::MigrateGo { to } => self.on_migrate_go(origin, to),
            Msg::Reconnect => {
                if self
                    .membership
                    .members
                    .get(&origin)
                    .and_then(|m| m.info.relay)
                    == Some(self.membership.id)
                {
                    self.send_now(origin, Msg::Welcome);
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::Welcome => self.on_welcome(origin),
            Msg::Reattach { station, relay } => self.on_reattach(origin, station, relay),
            Msg::Kick { reason } => {
                if self.cfg.process_type == ProcessType::Client && origin == self.membership.relay {
                    self.close(&reason);
                } else {
                    self.stats.bad_messages += 1;
                }
            }
            Msg::RoomRequest {
                request,
                by,
                room,
                op,
            } => self.on_room_request(origin, request, by, room, op),
            Msg::RoomReply {
                request,
                room,
                code,
                message,
                room_id,
            } => {
                let result = if code == 0 {
                    Ok(room_id)
                } else {
                    Err(RoomError::new(code, message))
                };
                self.events.push_back(Event::RoomResult {
                    request,
                    room,
                    result,
                });
            }
            Msg::RoomAdopt { room, epoch } => self.on_room_adopt(origin, room, epoch),
            Msg::RoomMigrateStart { room, epoch } => {
                let started = self.rooms.started.entry(room).or_insert(0);
                if epoch > *started {
                    *started = epoch;
                    self.events.push_back(Event::RoomMigrateStart { room });
                }
            }
            Msg::RoomMigrateComplete {
                room,
                epoch,
                success,
                room_id,
                code,
                message,
            } => {
                if success {
                    if self.rooms.completed.get(&room).is_some_and(|e| *e >= epoch) {
                        return;
                    }
                    self.rooms.completed.insert(room, epoch);
                    // The start may have taken a slower path: report it first.
                    let started = self.rooms.started.entry(room).or_insert(0);
                    if *started < epoch {
                        *started = epoch;
                        self.events.push_back(Event::RoomMigrateStart { room });
                    }
                }
                self.events.push_back(Event::RoomMigrateComplete {
                    room,
                    success,
                    room_id,
                    error_code: code,
                    message,
                });
            }
        }
    }
}
