//! The dedicated server as referee: what a client sends to others passes
//! the server's own checks first.
//!
//! In a client-server session everything a client sends to another station
//! goes through its server. Before passing it on, the server checks it the
//! way the receivers would, against its own store (a client publishes only
//! in its own name and updates, moves or deletes only what it masters), and
//! runs its SafetyExecutive and the user's checks on the operation it
//! carries. What it refuses goes nowhere; a refused RMC is answered
//! `RejectedBySafetyExecutive`.

use super::*;

/// An operation a relayed message carries: its detail, its object, whether
/// the structural rule holds, and its payload.
type Checked = (OperationDetail, DOHandle, bool, Option<Payload>);

impl Station {
    /// Whether the message `env` a client sent (through this server) to
    /// another station may be passed on. A batch of updates passes on
    /// with the items that pass (as `Updates`), the others refused: one
    /// stale item (an object the client handed away or deleted just
    /// before) does not take the changes of its other objects with it.
    pub(super) fn referee(&mut self, substream: u8, env: &mut Envelope) -> bool {
        let origin = env.origin;
        let master_of = |st: &Station, h: DOHandle| st.store.entries.get(&h).map(|e| e.master);
        // The client named itself the object's master here and the old
        // master's word has not come yet (the claim waits): its changes
        // to the others are theirs to check, as each holds the claim too.
        let claims = |st: &Station, h: DOHandle| {
            st.store
                .pending_master
                .get(&h)
                .is_some_and(|c| c.0.iter().any(|p| p.master == origin))
        };
        let checked = match &env.msg {
            Msg::Create {
                handle,
                master,
                data,
            } => {
                let own = *master == origin
                    && match master_of(self, *handle) {
                        Some(m) => m == origin,
                        None => handle.creator() == origin && !handle.is_well_known(),
                    };
                let op = OperationDetail::AddToStore(AddToStoreOperation { as_master: false });
                (
                    op,
                    *handle,
                    own,
                    Some(Payload::Datasets(data.0.as_slice().into())),
                )
            }
            Msg::Update { handle, data } => {
                let revision = peek_revision(&data.0);
                let op = OperationDetail::UpdateDataSet(UpdateDataSetOperation { revision });
                let payload = Some(Payload::Datasets(data.0.as_slice().into()));
                // Not here yet: its announcement to this server comes later
                // in the client's order (each receiver checks its own).
                let own =
                    master_of(self, *handle).is_none_or(|m| m == origin) || claims(self, *handle);
                (op, *handle, own, payload)
            }
            Msg::Updates { items } => {
                for (handle, data) in items {
                    let revision = peek_revision(&data.0);
                    let op = OperationDetail::UpdateDataSet(UpdateDataSetOperation { revision });
                    let mastered = master_of(self, *handle).is_none_or(|m| m == origin)
                        || claims(self, *handle);
                    let payload = Some(Payload::Datasets(data.0.as_slice().into()));
                    let checked = (op, *handle, mastered, payload);
                    if !self.referee_op("Updates", checked, origin, env.dest) {
                        return false;
                    }
                }
                return true;
            }
            Msg::UpdateBatch { data } | Msg::LatestBatch { data } => {
                let latest = matches!(env.msg, Msg::LatestBatch { .. });
                let kind = env.msg.name();
                let registry = self.registry.clone();
                let batch = crate::dataset_codec::decode_batch(&data.0, latest, |c| {
                    registry.entry(ClassId(c)).is_some()
                });
                if batch.malformed {
                    self.stats.bad_messages += 1;
                    return false;
                }
                let mut passed = Vec::new();
                let mut passed_items = Vec::new();
                let mut refused = false;
                for item in &batch.items {
                    let Some(msg) = item.message(|_| true) else {
                        continue;
                    };
                    let revision = peek_revision(&msg);
                    let op = OperationDetail::UpdateDataSet(UpdateDataSetOperation { revision });
                    // As for `Update`: an object not here (yet, or any
                    // more) is each receiver's to check.
                    let mastered = master_of(self, item.handle).is_none_or(|m| m == origin)
                        || claims(self, item.handle);
                    let payload = Some(Payload::Datasets(msg.as_slice().into()));
                    let checked = (op, item.handle, mastered, payload);
                    if self.referee_op(kind, checked, origin, env.dest) {
                        passed.push((item.handle, Bytes(msg)));
                        passed_items.push(item);
                    } else {
                        refused = true;
                    }
                }
                if !refused {
                    return true;
                }
                if passed.is_empty() {
                    return false;
                }
                env.msg = if latest {
                    let data = super::replication::latest_batch_of(&passed_items);
                    Msg::LatestBatch { data: Bytes(data) }
                } else {
                    Msg::Updates { items: passed }
                };
                return true;
            }
            Msg::Delete { handle } => {
                let op = OperationDetail::RemoveFromStore(RemoveFromStoreOperation {
                    was_master: false,
                    reason: RemoveReason::Deleted,
                });
                // Gone here already: the client's deletion addressed to
                // this server came first (each receiver checks its own).
                let own = master_of(self, *handle).is_none_or(|m| m == origin);
                (op, *handle, own, None)
            }
            Msg::MasterChanged { handle, .. } | Msg::Migrate { handle, .. } => {
                let new_master = match &env.msg {
                    Msg::MasterChanged { master, .. } => *master,
                    _ => env.dest,
                };
                let old_master = master_of(self, *handle).unwrap_or(StationId::NONE);
                let op = OperationDetail::ChangeMasterStation(ChangeMasterStationOperation {
                    old_master,
                    new_master,
                });
                // The client's word to this server comes first and is
                // applied here before its words to the others are relayed:
                // the move this server already holds passes too.
                // A hand-over to a station that has gone since passes too:
                // its receivers recover the object (the hand-over is
                // believed only from the master they know).
                // Neither does one of an object this server does not hold
                // yet (its announcement comes later in the client's order).
                let ok = old_master == origin
                    || new_master == origin
                    || (old_master == new_master && old_master.is_some())
                    || !self.membership.members.contains_key(&new_master)
                    || !old_master.is_some();
                (op, *handle, ok, None)
            }
            Msg::Rmc {
                call,
                handle,
                method,
                reply,
                args,
                ..
            } => {
                let op = call_detail(*method, false);
                let payload = Some(Payload::Arguments(args.0.as_slice().into()));
                if !self.referee_op("Rmc", (op, *handle, true, payload), origin, env.dest) {
                    if *reply {
                        let outcome = Outcome::RejectedBySafetyExecutive;
                        self.reply_failure(origin, substream, *call, outcome, StationId::NONE);
                    }
                    return false;
                }
                return true;
            }
            Msg::Action {
                handle,
                method,
                forward,
                args,
            } => {
                let op = call_detail(*method, true);
                let ok = *forward || master_of(self, *handle) == Some(origin);
                let payload = Some(Payload::Arguments(args.0.as_slice().into()));
                (op, *handle, ok, payload)
            }
            _ => return true,
        };
        self.referee_op(env.msg.name(), checked, origin, env.dest)
    }

    /// Checks one operation a client's message carries (its detail, object,
    /// whether the structural rule holds, and its payload): the structural
    /// rule, then the SafetyExecutive and the user's checks.
    fn referee_op(
        &mut self,
        kind: &'static str,
        (detail, handle, structural, payload): Checked,
        origin: StationId,
        target: StationId,
    ) -> bool {
        if !structural {
            self.refuse(kind, origin, "a client acting on what is not its own");
            return false;
        }
        let mut op = self.make_op(detail, origin, target, Some(handle));
        op.payload = payload;
        if self.hooks.is_trusted(origin, self.membership.id) || self.hooks.check(&op, &self.store) {
            return true;
        }
        debug!(station = %self.membership.id, op = op.class_name(), %origin, "relayed operation rejected");
        self.hooks.rejected(&op);
        self.stats.operations_rejected += 1;
        self.events.push_back(Event::OperationRejected {
            kind: op.class_name(),
            origin,
        });
        false
    }
}

/// A CallMethod operation's detail, as its first attempt.
fn call_detail(method: u16, is_action: bool) -> OperationDetail {
    OperationDetail::CallMethod(CallMethodOperation {
        method: MethodId(method),
        attempt: 1,
        user_context: None,
        postpone: None,
        is_action,
    })
}
