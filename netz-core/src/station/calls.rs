//! RMCs and actions: pending calls, execution, replies.

use super::*;

/// RMCs this station is waiting for, and CallMethod operations it postponed.
pub(super) struct Calls {
    pub(super) pending: crate::fasthash::FastMap<u64, PendingCall>,
    /// `(deadline, call id)` of every pending call, soonest first.
    pub(super) deadlines: BTreeSet<(Instant, u64)>,
    pub(super) next_call: u64,
    pub(super) postponed: Vec<Postponed>,
    /// The targets of the call being sent, kept between calls so that
    /// sending one allocates no list.
    pub(super) targets: Vec<StationId>,
    /// The re-entrancy guard: how many calls are executing right now (a
    /// call that calls another runs it at once; queued local messages wait
    /// until the outermost one returns).
    pub(super) reentrancy: u32,
}

impl Calls {
    pub(super) fn new(seed: u64) -> Calls {
        Calls {
            pending: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(seed)),
            deadlines: BTreeSet::new(),
            next_call: 1,
            postponed: Vec::new(),
            targets: Vec::new(),
            reentrancy: 0,
        }
    }
}

pub(super) struct PendingCall {
    pub(super) shared: Arc<RmcShared>,
    pub(super) generation: u64,
    pub(super) target: StationId,
    pub(super) deadline: Instant,
    pub(super) handle: DOHandle,
    pub(super) method: u16,
    /// The arguments, for a retry (empty when the flags allow none).
    pub(super) args: Vec<u8>,
    pub(super) flags: u16,
    pub(super) substream: u8,
    pub(super) retries: u32,
    /// When the call was first sent.
    pub(super) sent: Instant,
}

pub(super) struct Postponed {
    pub(super) due: Instant,
    pub(super) op: Operation,
    pub(super) call: u64,
    pub(super) reply: bool,
    pub(super) handle: DOHandle,
    pub(super) args: Vec<u8>,
    pub(super) substream: u8,
    pub(super) forward: bool,
}

impl Station {
    pub(super) fn make_call_op(
        &self,
        origin: StationId,
        handle: DOHandle,
        method: u16,
        is_action: bool,
    ) -> Operation {
        self.make_op(
            OperationDetail::CallMethod(CallMethodOperation {
                method: MethodId(method),
                attempt: 1,
                user_context: None,
                postpone: None,
                is_action,
            }),
            origin,
            self.membership.id,
            Some(handle),
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_rmc(
        &mut self,
        origin: StationId,
        call: u64,
        handle: DOHandle,
        method: u16,
        flags: u16,
        args: Vec<u8>,
        reply: bool,
        substream: u8,
    ) {
        let fail = |st: &mut Station, outcome: Outcome, hint: StationId| {
            if reply {
                st.reply_failure(origin, substream, call, outcome, hint);
            }
        };
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            fail(self, Outcome::TargetObjectNotFound, StationId::NONE);
            return;
        };
        let master = e.master;
        if (bits::has(flags, RmcFlag::TargetObjectMustBeMaster)
            || bits::has(flags, RmcFlag::TargetObjectMustHaveAuthority))
            && master != self.membership.id
        {
            fail(self, Outcome::TargetValidationFailure, master);
            return;
        }
        let op = self.make_call_op(origin, handle, method, false);
        self.execute_call(op, call, reply, handle, args, substream, false);
    }

    /// Runs a CallMethod operation (an RMC, or an action when `op` says so).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn execute_call(
        &mut self,
        op: Operation,
        call: u64,
        reply: bool,
        handle: DOHandle,
        args: Vec<u8>,
        substream: u8,
        forward: bool,
    ) {
        let origin = op.origin;
        let op = if op.payload.is_none() {
            op.with_arguments(&args)
        } else {
            op
        };
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            if reply {
                self.reply_failure(
                    origin,
                    substream,
                    call,
                    Outcome::TargetObjectNotFound,
                    StationId::NONE,
                );
            }
            return;
        };
        let cell = e.cell.clone();
        let methods = self
            .registry
            .entry(handle.class_id())
            .map(|c| c.methods)
            .unwrap_or(&[]);
        let method = match &op.detail {
            OperationDetail::CallMethod(c) => c.method,
            _ => return,
        };
        let is_action = matches!(&op.detail, OperationDetail::CallMethod(c) if c.is_action);
        let known = methods
            .get(method.0 as usize)
            .is_some_and(|m| (m.kind == MethodKind::Action) == is_action);
        if !known {
            self.stats.unknown_method += 1;
            if reply {
                self.reply_failure(
                    origin,
                    substream,
                    call,
                    Outcome::ErrorRMCDispatchFailed,
                    StationId::NONE,
                );
            }
            return;
        }
        let mut result: Result<Vec<u8>, DispatchError> = Err(DispatchError::UnknownMethod(method));
        let now = self.now;
        let c2 = cell.clone();
        self.calls.reentrancy += 1;
        self.hooks.busy.push(handle);
        let done = self.run_op(op, Some(cell), false, |st, op| {
            c2.with_dyn(&mut |o: &mut dyn DoDyn| {
                let mut ctx = CallContext {
                    invoker: st,
                    op,
                    handle,
                    now,
                };
                result = o.dispatch(&mut ctx, method, &args);
            });
        });
        self.hooks.busy.pop();
        self.calls.reentrancy -= 1;
        self.stats.calls_executed += 1;
        let Some(mut op) = done else {
            if reply {
                self.reply_failure(
                    origin,
                    substream,
                    call,
                    Outcome::RejectedBySafetyExecutive,
                    StationId::NONE,
                );
            }
            return;
        };
        if let Some(delay) = op.downcast_mut::<CallMethodOperation>().and_then(|c| {
            let d = c.postpone.take();
            if d.is_some() {
                c.attempt += 1;
            }
            d
        }) {
            if self.calls.postponed.len() >= self.cfg.limits.max_postponed_calls {
                self.stats.postponed_limited += 1;
                self.limit_state
                    .hit(crate::limits::Limit::PostponedCalls, self.membership.id);
                return;
            }
            self.calls.postponed.push(Postponed {
                due: self.now + delay,
                op,
                call,
                reply,
                handle,
                args,
                substream,
                forward,
            });
            return;
        }
        if is_action {
            if forward
                || (origin == self.membership.id
                    && self
                        .store
                        .entries
                        .get(&handle)
                        .is_some_and(|e| e.master == self.membership.id)
                    && call == u64::MAX)
            {
                self.action_to_duplicas(handle, method, &args);
            }
            return;
        }
        if reply {
            let (outcome, bytes) = match result {
                Ok(b) => (Outcome::Success, b),
                Err(DispatchError::UnknownMethod(_)) => {
                    self.stats.unknown_method += 1;
                    (Outcome::ErrorRMCDispatchFailed, Vec::new())
                }
                Err(_) => (Outcome::ErrorInvalidArguments, Vec::new()),
            };
            self.send(
                origin,
                substream,
                Msg::RmcReply {
                    call,
                    outcome: outcome.to_wire(),
                    result: Bytes(bytes),
                    master_hint: StationId::NONE,
                },
            );
        }
    }

    ///
    /// Believed only from the station the call was sent to; a retry goes to
    /// the master this station's store knows, never to whoever the reply
    /// names.
    pub(super) fn on_rmc_reply(
        &mut self,
        origin: StationId,
        call: u64,
        outcome: Outcome,
        result: Vec<u8>,
        hint: StationId,
    ) {
        match self.calls.pending.get(&call) {
            Some(p) if p.target == origin => {}
            Some(_) => {
                self.refuse("RmcReply", origin, "not the station the call went to");
                return;
            }
            None => return,
        }
        let Some(mut p) = self.calls.pending.remove(&call) else {
            return;
        };
        self.calls.deadlines.remove(&(p.deadline, call));
        let known_master = self.master_of(p.handle);
        let hint = match known_master {
            Some(m) if m == hint || (m != p.target && hint.is_some()) => m,
            _ => StationId::NONE,
        };
        if outcome == Outcome::TargetValidationFailure
            && bits::has(p.flags, RmcFlag::RetryOnTargetValidationFailure)
            && p.retries < self.cfg.max_rmc_retries
            && hint.is_some()
            && self.membership.members.contains_key(&hint)
        {
            p.retries += 1;
            p.target = hint;
            let msg = Msg::Rmc {
                call,
                handle: p.handle,
                method: p.method,
                flags: p.flags,
                args: Bytes(p.args.clone()),
                reply: true,
                substream: p.substream,
            };
            let substream = p.substream;
            self.calls.deadlines.insert((p.deadline, call));
            self.calls.pending.insert(call, p);
            self.send(hint, substream, msg);
            return;
        }
        self.complete_call(&p, outcome, Some(result));
    }

    pub(super) fn complete_call(
        &mut self,
        p: &PendingCall,
        outcome: Outcome,
        result: Option<Vec<u8>>,
    ) {
        if p.shared.complete(p.generation, outcome, result) {
            if outcome == Outcome::Success {
                let took = self.now.saturating_duration_since(p.sent);
                self.stats.rmc_round_trips += 1;
                self.stats.rmc_round_trip_micros +=
                    u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            }
            self.events.push_back(Event::RmcCompleted { outcome });
        }
    }
}

impl Station {
    /// Sends an action of master `handle` to each of its duplicas.
    fn action_to_duplicas(&mut self, handle: DOHandle, method: MethodId, args: &[u8]) {
        let targets: Vec<StationId> = self
            .store
            .entries
            .get(&handle)
            .map(|e| e.dup_set.iter().copied().collect())
            .unwrap_or_default();
        for t in targets {
            let msg = Msg::Action {
                handle,
                method: method.0,
                args: Bytes(args.to_vec()),
                forward: false,
            };
            self.send(t, SYSTEM_STREAM, msg);
        }
    }

    /// Answers call `call` of `origin` with a failure (no result); `hint`
    /// names the master when the target was not it.
    pub(super) fn reply_failure(
        &mut self,
        origin: StationId,
        substream: u8,
        call: u64,
        outcome: Outcome,
        hint: StationId,
    ) {
        let msg = Msg::RmcReply {
            call,
            outcome: outcome.to_wire(),
            result: Bytes::default(),
            master_hint: hint,
        };
        self.send(origin, substream, msg);
    }
}

impl Station {
    /// [`Invoker::invoke_rmc`] with `targets`, an empty list to fill.
    fn invoke_rmc_to(
        &mut self,
        targets: &mut Vec<StationId>,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        ctx: &Arc<RmcShared>,
        returns: bool,
    ) -> bool {
        if !self.is_in_session() {
            {
                refuse(ctx, Outcome::StationUnreachable);
                return false;
            };
        }
        let (flags, explicit, substream) = {
            let g = ctx.lock();
            (g.flags, g.target, g.substream)
        };
        let one_way = bits::has(flags, RmcFlag::OneWayCall);
        let master = self.store.entries.get(&handle).map(|e| e.master);
        if let Some(t) = explicit {
            targets.push(t);
        }
        if bits::has(flags, RmcFlag::CallOnMaster) {
            match master {
                Some(m) => targets.push(m),
                None => {
                    refuse(ctx, Outcome::TargetObjectNotFound);
                    return false;
                }
            }
        }
        if bits::has(flags, RmcFlag::CallOnLocalStation) {
            targets.push(self.membership.id);
        }
        let on_dups = bits::has(flags, RmcFlag::CallOnDuplicas);
        let on_neigh = bits::has(flags, RmcFlag::CallOnNeighbouringStations);
        if one_way {
            if on_dups {
                match self.store.entries.get(&handle) {
                    Some(e) if e.master == self.membership.id => {
                        targets.extend(e.dup_set.iter().copied())
                    }
                    _ => {
                        refuse(ctx, Outcome::ErrorInvalidContext);
                        return false;
                    }
                }
            }
            if on_neigh {
                targets.extend(
                    self.membership
                        .members
                        .keys()
                        .copied()
                        .filter(|i| *i != self.membership.id),
                );
            }
        } else if on_dups || on_neigh || targets.len() != 1 {
            {
                refuse(ctx, Outcome::ErrorInvalidContext);
                return false;
            };
        }
        if bits::has(flags, RmcFlag::RetryOnTargetValidationFailure) && returns && !one_way {
            {
                refuse(ctx, Outcome::ErrorInvalidContext);
                return false;
            };
        }
        targets.sort();
        targets.dedup();
        if targets
            .iter()
            .any(|t| !self.membership.members.contains_key(t))
        {
            {
                refuse(ctx, Outcome::StationUnreachable);
                return false;
            };
        }
        let generation = ctx.begin();
        if one_way {
            for &t in targets.iter() {
                self.send(
                    t,
                    substream,
                    Msg::Rmc {
                        call: 0,
                        handle,
                        method: method.0,
                        flags,
                        args: Bytes(args.clone()),
                        reply: false,
                        substream,
                    },
                );
            }
            ctx.complete(generation, Outcome::Success, None);
            self.drain_local();
            return true;
        }
        if self.calls.pending.len() >= self.cfg.limits.max_rmcs_in_flight {
            self.stats.rmcs_limited += 1;
            self.limit_state
                .hit(crate::limits::Limit::RmcsInFlight, self.membership.id);
            {
                refuse(ctx, Outcome::StationUnreachable);
                return false;
            };
        }
        let target = targets[0];
        let call = self.calls.next_call;
        self.calls.next_call += 1;
        let deadline = self.now + self.cfg.rmc_timeout;
        self.calls.pending.insert(
            call,
            PendingCall {
                shared: ctx.clone(),
                generation,
                target,
                deadline,
                handle,
                method: method.0,
                // Kept only for a retry at the master a refusal names.
                args: if bits::has(flags, RmcFlag::RetryOnTargetValidationFailure) {
                    args.clone()
                } else {
                    Vec::new()
                },
                flags,
                substream,
                retries: 0,
                sent: self.now,
            },
        );
        self.calls.deadlines.insert((deadline, call));
        let sent = self.send(
            target,
            substream,
            Msg::Rmc {
                call,
                handle,
                method: method.0,
                flags,
                args: Bytes(args),
                reply: true,
                substream,
            },
        );
        if !sent {
            if let Some(p) = self.calls.pending.remove(&call) {
                self.calls.deadlines.remove(&(deadline, call));
                self.complete_call(&p, Outcome::StationUnreachable, None);
            }
            return false;
        }
        self.drain_local();
        true
    }
}

impl Station {
    /// Wakes every task awaiting a call this station has in flight
    /// ([`crate::rmc::RmcContext::completion`]) without completing the
    /// calls: for a driver that stops, whose waiting callers then poll
    /// again and find out. Changes nothing in the station.
    pub fn wake_waiting_calls(&self) {
        for p in self.calls.pending.values() {
            p.shared.wake_waiting();
        }
    }
}

impl Invoker for Station {
    fn invoke_rmc(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        ctx: &Arc<RmcShared>,
        returns: bool,
    ) -> bool {
        // A call made while executing one (re-entrancy) finds the list
        // taken and uses a new one.
        let mut targets = std::mem::take(&mut self.calls.targets);
        targets.clear();
        let sent = self.invoke_rmc_to(&mut targets, handle, method, args, ctx, returns);
        self.calls.targets = targets;
        sent
    }

    fn invoke_action(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        target: ActionTarget,
    ) -> bool {
        let Some(e) = self.store.entries.get(&handle) else {
            return false;
        };
        let master = e.master;
        let is_master = master == self.membership.id;
        let sent = match target {
            ActionTarget::Master => {
                if is_master {
                    let op = self.make_call_op(self.membership.id, handle, method.0, true);
                    // The master runs it, then every duplica does.
                    self.execute_call(op, 0, false, handle, args, SYSTEM_STREAM, true);
                    true
                } else {
                    self.send(
                        master,
                        SYSTEM_STREAM,
                        Msg::Action {
                            handle,
                            method: method.0,
                            args: Bytes(args),
                            forward: true,
                        },
                    )
                }
            }
            ActionTarget::Duplicas => {
                if !is_master {
                    return false;
                }
                self.action_to_duplicas(handle, method, &args);
                true
            }
        };
        self.drain_local();
        sent
    }

    fn local_station(&self) -> StationId {
        self.membership.id
    }

    fn store_view(&self) -> Option<crate::pipeline::StoreView<'_>> {
        Some(Station::store_view(self))
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `Action`: run an action (and, with `forward`, pass it to every duplica).
    pub(super) fn on_action(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        method: u16,
        args: Bytes,
        forward: bool,
    ) {
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            return;
        };
        if !forward && origin != e.master {
            // To the duplicas only from the master (to the master, anyone).
            self.refuse(
                "Action",
                origin,
                "an action on duplicas not from the master",
            );
            return;
        }
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
}

/// Completes a call that was not sent with `outcome`, at once.
fn refuse(shared: &Arc<RmcShared>, outcome: Outcome) {
    let g = shared.begin();
    shared.complete(g, outcome, None);
}
