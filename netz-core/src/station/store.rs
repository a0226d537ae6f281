//! The DO store and its operations.

use super::*;

/// The DO store: every object this station holds, master or duplica.
pub(super) struct Store {
    pub(super) entries: crate::fasthash::FastMap<DOHandle, Entry>,
    /// The serial of the next object this station creates.
    pub(super) next_serial: u32,
    /// NetZ `Scheduler::SystemLock` depth.
    pub(super) system_lock: u32,
    /// What waits for the system lock to be released.
    pub(super) deferred: Vec<Deferred>,
    /// Objects whose new master named itself before the old master's word
    /// arrived: what it sent is held until then (see
    /// [`Station::master_change_rule`]).
    pub(super) pending_master: BTreeMap<DOHandle, PendingClaims>,
    /// Objects deleted before they arrived here (a new master deleted an
    /// object its old master's announcement of had not brought yet), by
    /// when: a late announcement of one is refused.
    pub(super) deleted_early: BTreeMap<DOHandle, Instant>,
    /// Master changes an object's master announced for a station not
    /// announced here yet (its `StationJoined` takes another path): they
    /// wait for it (see [`Station::member_announced`]).
    pub(super) awaiting_member: Vec<AwaitingMember>,
    /// Objects handed to this station, from whom and when: if the old
    /// master fails soon after, what it announced just before (the object
    /// to a new duplica) may be lost with it, so they are announced again
    /// (see [`Station::reannounce_handed_from`]).
    pub(super) handed_from: BTreeMap<DOHandle, (StationId, Instant)>,
    /// The session master: hand-overs it saw announced by the old master,
    /// with the new master and when (see [`Station::saw_hand_over`]).
    pub(super) handed_seen: BTreeMap<DOHandle, (StationId, StationId, Instant)>,
    /// Changes of duplicas refused from a station not (yet) their master
    /// here, and when (see [`Station::note_refused_change`]).
    pub(super) refused_changes: BTreeMap<DOHandle, (StationId, Instant)>,
    /// Objects this station lacks whose changes came, with when it asked
    /// the sender for them (see [`Station::ask_for_missing_object`]).
    pub(super) asked_missing: BTreeMap<DOHandle, (StationId, Instant)>,
    /// Duplicas held here whose stations said (`DuplicaHeld`) they name
    /// this station their master, with when: should this station drop
    /// the object, they are told (see [`Station::on_duplica_held`]).
    pub(super) named_master_by: BTreeMap<DOHandle, (Vec<StationId>, Instant)>,
    /// The session master: recoveries of gone stations' objects that wait
    /// for the members' answers (see [`Station::start_census`]).
    pub(super) censuses: BTreeMap<StationId, super::census::Census>,
}

/// A master change to a station not announced yet, from who sent it.
pub(super) struct AwaitingMember {
    pub(super) station: StationId,
    pub(super) origin: StationId,
    pub(super) msg: Msg,
    pub(super) since: Instant,
}

/// A master change announced by the new master alone, and what it sent
/// for the object meanwhile.
pub(super) struct PendingMaster {
    pub(super) master: StationId,
    pub(super) since: Instant,
    pub(super) held: Vec<Msg>,
    pub(super) bytes: usize,
}

/// The claims waiting for one object, first come first: in a split view
/// another station's claim (a would-be session master's recovery) may
/// wait when the real new master names itself; the old master's word
/// decides between them.
#[derive(Default)]
pub(super) struct PendingClaims(pub(super) Vec<PendingMaster>);

impl PendingClaims {
    /// Whether `master` has a claim waiting.
    pub(super) fn has(&self, master: StationId) -> bool {
        self.0.iter().any(|p| p.master == master)
    }

    /// When the oldest claim came.
    pub(super) fn since(&self) -> Option<Instant> {
        self.0.iter().map(|p| p.since).min()
    }
}

/// What a station may do about a claimed change of an object's master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MasterRule {
    /// Believe it.
    Yes,
    /// It is so already.
    Already,
    /// Wait for the old master's word (or its departure).
    Hold,
    /// Wait for the new master's announcement: the old master (or the
    /// session master) names a station admitted after what reached here.
    Await,
    /// Refuse it.
    No,
}

/// What a held master change may keep of what its claimed master sends.
pub(super) const MAX_HELD_FOR_NEW_MASTER: usize = 64 * 1024;
/// How many deletions of objects not in the store yet are remembered.
const MAX_DELETED_EARLY: usize = 256;
/// How many claims about objects not in the store yet are held at once
/// (each holds at most [`MAX_HELD_FOR_NEW_MASTER`] bytes).
const MAX_CLAIMS_BEFORE_CREATE: usize = 64;
/// How many master changes to stations not announced yet wait at once.
pub(super) const MAX_AWAITING_MEMBER: usize = 64;

impl Store {
    /// The handle the next object of `class` created by station `me` gets.
    pub(super) fn next_handle(&self, class: ClassId, me: StationId) -> DOHandle {
        DOHandle::new(class, me, self.next_serial)
    }

    /// Takes the next handle of `class` for an object station `me` creates.
    pub(super) fn allocate(&mut self, class: ClassId, me: StationId) -> DOHandle {
        let h = self.next_handle(class, me);
        self.next_serial += 1;
        h
    }

    /// The Rust type of the class of `handle` (`()` for a class not registered).
    pub(super) fn type_of(registry: &Registry, handle: DOHandle) -> TypeId {
        registry
            .entry(handle.class_id())
            .map(|c| c.type_id)
            .unwrap_or(TypeId::of::<()>())
    }

    pub(super) fn new(seed: u64) -> Store {
        Store {
            entries: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(seed)),
            next_serial: 1,
            system_lock: 0,
            deferred: Vec::new(),
            pending_master: BTreeMap::new(),
            deleted_early: BTreeMap::new(),
            awaiting_member: Vec::new(),
            handed_from: BTreeMap::new(),
            handed_seen: BTreeMap::new(),
            refused_changes: BTreeMap::new(),
            asked_missing: BTreeMap::new(),
            named_master_by: BTreeMap::new(),
            censuses: BTreeMap::new(),
        }
    }
}

pub(super) struct Entry {
    pub(super) cell: Arc<dyn ErasedCell>,
    pub(super) master: StationId,
    pub(super) dup_set: BTreeSet<StationId>,
    pub(super) snapshot: Vec<Vec<Vec<u8>>>,
    pub(super) type_id: TypeId,
}

pub(super) enum Deferred {
    Msg(StationId, Msg),
    /// Fault recovery of an object whose master failed (true) or left.
    Recover(DOHandle, StationId, bool),
}

impl Station {
    /// Publishes `object` as a master (AddToStore, 14.3.1.1) and duplicates it
    /// to every station of the session.
    pub fn publish<T: DoClass>(&mut self, now: Instant, object: T) -> Result<Ref<T>, StationError> {
        self.advance(now);
        if !self.is_in_session() {
            return Err(StationError::NotInSession);
        }
        let class = self
            .registry
            .class_id::<T>()
            .ok_or(StationError::UnknownClass(T::CLASS_NAME))?;
        let handle = self.store.next_handle(class, self.membership.id);
        // The SafetyExecutive is consulted before the object exists.
        let probe = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: true }),
            self.membership.id,
            self.membership.id,
            Some(handle),
        );
        if !self
            .hooks
            .is_trusted(self.membership.id, self.membership.id)
            && !self.hooks.check(&probe, &self.store)
        {
            self.hooks.rejected(&probe);
            self.stats.operations_rejected += 1;
            return Err(StationError::Rejected);
        }
        self.store.allocate(class, self.membership.id);
        let cell = new_cell(object, handle, self.membership.id, self.membership.id);
        self.add_master(handle, cell.clone(), true);
        self.discover_all(handle);
        self.drain_local();
        Ref::from_erased(cell).ok_or(StationError::NoSuchObject(handle))
    }

    pub(super) fn add_master(
        &mut self,
        handle: DOHandle,
        cell: Arc<dyn ErasedCell>,
        checked: bool,
    ) {
        let op = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: true }),
            self.membership.id,
            self.membership.id,
            Some(handle),
        );
        let type_id = Store::type_of(&self.registry, handle);
        let trust = self.hooks.trust_local;
        if checked {
            // Checked by the caller already.
            self.hooks.trust_local = true;
        }
        let c2 = cell.clone();
        self.run_op(op, Some(cell.clone()), true, |st, _| {
            reset_revisions(&c2);
            c2.with_dyn(&mut |o| o.init_do());
            let snapshot = c2.snapshot_fields();
            c2.meta().in_store.store(true, Ordering::Release);
            st.store.entries.insert(
                handle,
                Entry {
                    cell: c2.clone(),
                    master: st.membership.id,
                    dup_set: BTreeSet::new(),
                    snapshot,
                    type_id,
                },
            );
        });
        self.hooks.trust_local = trust;
        self.object_event(Event::ObjectAdded {
            handle,
            master: true,
        });
    }

    /// Sends master `handle` to every station that lacks it (ChangeDupSet).
    pub(super) fn discover_all(&mut self, handle: DOHandle) {
        if self.interest.has_policy(handle.class_id()) {
            // Only where it is relevant (interest management).
            self.reevaluate_object(handle);
            return;
        }
        let ids: Vec<StationId> = self
            .membership
            .members
            .keys()
            .copied()
            .filter(|i| *i != self.membership.id)
            .collect();
        for id in ids {
            self.change_dup_set(handle, id, true, self.membership.id);
        }
    }

    /// Sends every local master to a new station.
    pub(super) fn discover_all_for(&mut self, station: StationId) {
        self.send_interest_to(station);
        for h in self.masters() {
            if self
                .store
                .entries
                .get(&h)
                .is_some_and(|e| !e.dup_set.contains(&station))
                && self.relevant(h, station)
            {
                self.change_dup_set(h, station, true, self.membership.id);
            }
        }
    }

    /// ChangeDupSet on a master (14.3.1.3).
    pub(super) fn change_dup_set(
        &mut self,
        handle: DOHandle,
        station: StationId,
        addition: bool,
        origin: StationId,
    ) {
        let Some(e) = self.store.entries.get(&handle) else {
            return;
        };
        if e.master != self.membership.id
            || station == self.membership.id
            || e.dup_set.contains(&station) == addition
        {
            return;
        }
        if addition {
            // The newcomer gets what the other duplicas have: changes not
            // sent yet go to them first (they may be undone before the
            // next update, which would then send nothing).
            let _ = self.update(self.now, handle);
        }
        let Some(e) = self.store.entries.get(&handle) else {
            return;
        };
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::ChangeDupSet(ChangeDupSetOperation { addition, station }),
            origin,
            station,
            Some(handle),
        );
        self.run_op(op, Some(cell.clone()), true, |st, _| {
            if addition {
                let (data, version) = st.full_state(handle, &cell);
                st.send(
                    station,
                    SYSTEM_STREAM,
                    Msg::Create {
                        handle,
                        master: st.membership.id,
                        data: Bytes(data),
                    },
                );
                if let Some(e) = st.store.entries.get_mut(&handle) {
                    e.dup_set.insert(station);
                }
                st.sched_dup_added(handle, station, version);
            } else if let Some(e) = st.store.entries.get_mut(&handle) {
                e.dup_set.remove(&station);
                st.sched_dup_removed(handle, station);
            }
        });
    }

    pub(super) fn add_duplica(
        &mut self,
        handle: DOHandle,
        master: StationId,
        cell: Arc<dyn ErasedCell>,
        data: Option<&[u8]>,
        origin: StationId,
    ) {
        let mut op = self.make_op(
            OperationDetail::AddToStore(AddToStoreOperation { as_master: false }),
            origin,
            self.membership.id,
            Some(handle),
        );
        if let Some(data) = data {
            op = op.with_datasets(data);
        }
        let type_id = Store::type_of(&self.registry, handle);
        let c2 = cell.clone();
        let mut bad = false;
        let done = self.run_op(op, Some(cell), true, |st, _| {
            if let Some(data) = data {
                bad = apply_datasets(&c2, data).is_none();
            }
            c2.with_dyn(&mut |o| o.init_do());
            c2.meta().in_store.store(true, Ordering::Release);
            st.store.entries.insert(
                handle,
                Entry {
                    cell: c2.clone(),
                    master,
                    dup_set: BTreeSet::new(),
                    snapshot: Vec::new(),
                    type_id,
                },
            );
        });
        if bad {
            self.stats.bad_messages += 1;
        }
        if done.is_some() {
            self.object_event(Event::ObjectAdded {
                handle,
                master: false,
            });
        }
    }

    /// RemoveFromStore (14.3.1.2). `notify`: a master tells its duplicas.
    pub(super) fn remove_from_store(
        &mut self,
        handle: DOHandle,
        origin: StationId,
        reason: RemoveReason,
        notify: bool,
    ) -> bool {
        let Some(e) = self.store.entries.get(&handle) else {
            return false;
        };
        trace!(station = %self.membership.id, %handle, %origin, ?reason, master = %e.master, "object removed");
        let cell = e.cell.clone();
        let was_master = e.master == self.membership.id;
        let op = self.make_op(
            OperationDetail::RemoveFromStore(RemoveFromStoreOperation { was_master, reason }),
            origin,
            self.membership.id,
            Some(handle),
        );
        let done = self.run_op(op, Some(cell.clone()), true, |st, _| {
            if let Some(e) = st.store.entries.remove(&handle) {
                if notify {
                    let targets: Vec<StationId> = if was_master {
                        e.dup_set.iter().copied().collect()
                    } else {
                        Vec::new()
                    };
                    for t in targets {
                        st.send(t, SYSTEM_STREAM, Msg::Delete { handle });
                    }
                }
                // Stations whose duplicas name this one their master
                // (a hand-over whose `Migrate` never came) lose the object
                // with it: nobody masters it.
                if let Some((named, _)) = st.store.named_master_by.remove(&handle) {
                    for t in named {
                        if st.membership.members.contains_key(&t) {
                            st.send(t, SYSTEM_STREAM, Msg::Delete { handle });
                        }
                    }
                }
                cell.meta().in_store.store(false, Ordering::Release);
                st.sched_forget(handle);
                st.rooms.started.remove(&handle);
                st.rooms.completed.remove(&handle);
                st.store.pending_master.remove(&handle);
            }
        });
        if done.is_some() {
            self.object_event(Event::ObjectRemoved(handle));
        }
        done.is_some()
    }

    /// NetZ `DeleteMainRef`: deletes a master and its duplicas.
    pub fn delete_main_ref(&mut self, now: Instant, handle: DOHandle) -> Result<(), StationError> {
        self.advance(now);
        let e = self
            .store
            .entries
            .get(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != self.membership.id {
            return Err(StationError::NotMaster(handle));
        }
        if self.store.system_lock > 0 {
            return Err(StationError::SystemLocked);
        }
        let ok = self.remove_from_store(handle, self.membership.id, RemoveReason::Deleted, true);
        self.drain_local();
        if ok {
            Ok(())
        } else {
            Err(StationError::Rejected)
        }
    }

    /// Migrates master `handle` to `to` (ChangeMasterStation, 14.3.1.4).
    ///
    /// A station that is leaving hands nothing over
    /// ([`StationError::NotInSession`]): what it masters goes to the
    /// session master's recovery once it is gone.
    pub fn migrate(
        &mut self,
        now: Instant,
        handle: DOHandle,
        to: StationId,
    ) -> Result<(), StationError> {
        self.advance(now);
        if self.store.system_lock > 0 {
            return Err(StationError::SystemLocked);
        }
        let r = self.migrate_inner(handle, to);
        self.drain_local();
        r
    }

    pub(super) fn migrate_inner(
        &mut self,
        handle: DOHandle,
        to: StationId,
    ) -> Result<(), StationError> {
        let e = self
            .store
            .entries
            .get(&handle)
            .ok_or(StationError::NoSuchObject(handle))?;
        if e.master != self.membership.id {
            return Err(StationError::NotMaster(handle));
        }
        if to == self.membership.id {
            return Ok(());
        }
        if matches!(self.membership.state, State::Leaving { .. }) {
            return Err(StationError::NotInSession);
        }
        if !self.membership.members.contains_key(&to) {
            return Err(StationError::NoSuchStation(to));
        }
        if !e.dup_set.contains(&to) {
            self.change_dup_set(handle, to, true, self.membership.id);
        }
        // Changes not sent yet go to the duplicas first: the new master
        // takes what its copy holds for what every duplica holds.
        self.update(self.now, handle)?;
        let Some(e) = self.store.entries.get(&handle) else {
            return Err(StationError::NoSuchObject(handle));
        };
        let mut dup_set: Vec<StationId> = e.dup_set.iter().copied().filter(|s| *s != to).collect();
        let told = dup_set.clone();
        dup_set.push(self.membership.id);
        let data = encode_datasets(&e.cell);
        self.flush_reliable_now(handle);
        if self.change_master(handle, to, self.membership.id) {
            // The old master's word: the duplicas believe the new master's
            // own announcement only with it.
            for s in told {
                self.send(s, SYSTEM_STREAM, Msg::MasterChanged { handle, master: to });
            }
            self.send(
                to,
                SYSTEM_STREAM,
                Msg::Migrate {
                    handle,
                    data: Bytes(data),
                    dup_set,
                },
            );
            Ok(())
        } else {
            Err(StationError::Rejected)
        }
    }

    /// ChangeMasterStation on the local copy; returns whether it ran.
    pub(super) fn change_master(
        &mut self,
        handle: DOHandle,
        new_master: StationId,
        origin: StationId,
    ) -> bool {
        let Some(e) = self.store.entries.get(&handle) else {
            return false;
        };
        let old_master = e.master;
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::ChangeMasterStation(ChangeMasterStationOperation {
                old_master,
                new_master,
            }),
            origin,
            new_master,
            Some(handle),
        );
        let done = self.run_op(op, Some(cell.clone()), true, |st, _| {
            cell.meta().master.store(new_master.0, Ordering::Release);
            if old_master == st.membership.id || new_master == st.membership.id {
                st.sched_forget(handle);
            }
            if let Some(e) = st.store.entries.get_mut(&handle) {
                e.master = new_master;
                if new_master == st.membership.id {
                    e.snapshot = cell.snapshot_fields();
                    reset_revisions(&cell);
                } else {
                    e.dup_set.clear();
                    e.snapshot = Vec::new();
                }
            }
        });
        if done.is_some() {
            self.object_event(Event::MasterChanged {
                handle,
                master: new_master,
            });
            self.ask_for_missed_changes(handle, new_master);
        }
        done.is_some()
    }

    /// FaultRecovery (14.3.1.5) of one object on the session master.
    /// `station_failed`: the master station was declared failed (false: it left).
    pub(super) fn fault_recover(
        &mut self,
        handle: DOHandle,
        failed: StationId,
        station_failed: bool,
    ) {
        if self.store.system_lock > 0 {
            self.store
                .deferred
                .push(Deferred::Recover(handle, failed, station_failed));
            return;
        }
        let Some(e) = self.store.entries.get(&handle) else {
            return;
        };
        if e.master != failed {
            return;
        }
        let cell = e.cell.clone();
        let op = self.make_op(
            OperationDetail::FaultRecovery(FaultRecoveryOperation {
                failed_station: failed,
                station_failed,
                approved: None,
            }),
            self.membership.id,
            self.membership.id,
            Some(handle),
        );
        let well_known = handle.is_well_known();
        let c2 = cell.clone();
        let done = self.run_op(op, Some(cell), false, |st, op| {
            let mut approved = false;
            let loss = if station_failed {
                MasterLoss::Failed
            } else {
                MasterLoss::Left
            };
            c2.with_dyn(&mut |o| approved = o.approve_recovery(loss));
            let approved = approved || well_known;
            if let Some(fr) = op.downcast_mut::<FaultRecoveryOperation>() {
                fr.approved = Some(approved);
            }
            if approved {
                if st.change_master(handle, st.membership.id, st.membership.id) {
                    // Re-discover: every station gets the new master's state.
                    st.discover_all(handle);
                }
            } else {
                st.remove_from_store(handle, st.membership.id, RemoveReason::FaultRecovery, false);
                st.broadcast(&Msg::Delete { handle }, &[failed]);
            }
        });
        if done.is_none() {
            // Rejected: nobody may keep an object without a master.
            self.remove_from_store(
                handle,
                self.membership.id,
                RemoveReason::FaultRecovery,
                false,
            );
            self.broadcast(&Msg::Delete { handle }, &[failed]);
        }
    }

    pub(super) fn on_create(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        master: StationId,
        data: &[u8],
    ) {
        if master != origin {
            self.refuse("Create", origin, "names another station as master");
            return;
        }
        if !self.membership.members.contains_key(&master) {
            // From a station that left (its link lingers to flush): its
            // objects were dealt with already, nobody would master this.
            self.refuse("Create", origin, "its master is not in the session");
            return;
        }
        if self.store.entries.contains_key(&handle) {
            match self.master_change_rule(origin, handle, master) {
                MasterRule::Yes => {
                    if self.change_master(handle, master, origin) {
                        self.master_confirmed(handle, master);
                    }
                }
                MasterRule::Already => {}
                MasterRule::Hold if origin == self.membership.session_master => {
                    // The session master's announcement with its whole
                    // state: a recovery after the old master failed while
                    // handing the object over (this station believes the
                    // new master, which never got it and follows the
                    // recovery too; one that got it yields to it).
                    if self.change_master(handle, master, origin) {
                        self.master_confirmed(handle, master);
                    }
                }
                MasterRule::Hold => {
                    let msg = Msg::Create {
                        handle,
                        master,
                        data: Bytes(data.to_vec()),
                    };
                    self.hold_for_new_master(handle, master, Some(msg));
                    return;
                }
                MasterRule::No | MasterRule::Await => {
                    self.refuse("Create", origin, "not entitled to master the object");
                    return;
                }
            }
            self.on_update(origin, handle, data);
            return;
        }
        if let Some(t) = self.store.deleted_early.remove(&handle) {
            if self.now < t + self.cfg.failure_timeout * 2 {
                self.refuse("Create", origin, "an object deleted already");
                return;
            }
        }
        // A new object: not a well-known one (those exist from the start),
        // not one in this station's own id space that it never created.
        let forged_well_known = handle.is_well_known() && origin != self.membership.session_master;
        let forged_own = handle.creator() == self.membership.id
            && handle.serial() >= self.store.next_serial
            && !handle.is_well_known();
        if forged_well_known || forged_own {
            self.refuse("Create", origin, "a handle the sender cannot have");
            return;
        }
        let Some(entry) = self.registry.entry(handle.class_id()) else {
            self.stats.unknown_class += 1;
            return;
        };
        let cell = (entry.factory)(handle, self.membership.id, master);
        self.add_duplica(handle, master, cell, Some(data), origin);
        if !self.store.entries.contains_key(&handle) {
            // Refused by the SafetyExecutive: the master forgets us.
            self.send(master, SYSTEM_STREAM, Msg::DuplicaRemoved { handle });
        } else if self
            .store
            .pending_master
            .get(&handle)
            .is_some_and(|p| p.has(master))
        {
            // Its master claimed it before this announcement arrived.
            self.master_confirmed(handle, master);
        }
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `RecoveryDone`: every object of a gone station was dealt with.
    pub(super) fn on_recovery_done(&mut self, origin: StationId, id: StationId) {
        if origin != self.membership.session_master {
            return;
        }
        self.remove_orphans_of(id, origin);
    }

    /// Removes the objects gone station `id` still masters here: nobody
    /// recovered them (`origin` says so).
    pub(super) fn remove_orphans_of(&mut self, id: StationId, origin: StationId) {
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

    /// `handle` was deleted before this station had it: a late
    /// announcement of it is refused (kept two failure timeouts, at most
    /// [`MAX_DELETED_EARLY`]).
    pub(super) fn note_deleted_early(&mut self, handle: DOHandle) {
        let now = self.now;
        let keep = self.cfg.failure_timeout * 2;
        let early = &mut self.store.deleted_early;
        early.retain(|_, t| now < *t + keep);
        if early.len() < MAX_DELETED_EARLY {
            early.insert(handle, now);
        }
    }

    /// `Delete`: the object is deleted.
    pub(super) fn on_delete(&mut self, origin: StationId, handle: DOHandle) {
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            // Its announcement may still be on its way (the object was
            // handed over and deleted at once): it is refused when it comes.
            if self.membership.members.contains_key(&origin) {
                self.note_deleted_early(handle);
            }
            return;
        };
        let from_gone =
            |(from, _): &(StationId, Instant)| !self.membership.members.contains_key(from);
        if e.master == self.membership.id
            && origin == self.membership.session_master
            && self.store.handed_from.get(&handle).is_some_and(from_gone)
        {
            // Handed over by a station the session master had declared
            // failed already: its recovery deleted the object everywhere.
            self.remove_from_store(handle, origin, RemoveReason::Deleted, true);
            return;
        }
        if e.master == self.membership.id
            || (origin != e.master && origin != self.membership.session_master)
        {
            // From a new master whose claim waits for the old one's word.
            if !self.hold_if_pending(origin, handle, Msg::Delete { handle }) {
                self.refuse("Delete", origin, "not the object's master");
            }
            return;
        }
        if handle.class_id() == ClassId::STATION
            && origin != e.master
            && self.membership.members.contains_key(&e.master)
        {
            // A station object goes with its station's departure: the
            // session master's recovery of a station this one still counts
            // (a word of a session master of a side it left) is not heard.
            self.refuse("Delete", origin, "the station object of a member");
            return;
        }
        self.remove_from_store(handle, origin, RemoveReason::Deleted, false);
    }

    /// `MasterChanged`: the master of an object moved.
    pub(super) fn on_master_changed(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        master: StationId,
    ) {
        let Some(e) = self.store.entries.get(&handle) else {
            if origin == self.membership.session_master
                && master == self.membership.id
                && origin != master
            {
                self.disown_lost_hand_over(handle);
                return;
            }
            // The new master's word can come before the old master's
            // announcement of a new object: it waits for it.
            let entries = &self.store.entries;
            let claims = self
                .store
                .pending_master
                .keys()
                .filter(|h| !entries.contains_key(h))
                .count();
            if origin == master
                && self.membership.members.contains_key(&master)
                && (self.store.pending_master.contains_key(&handle)
                    || claims < MAX_CLAIMS_BEFORE_CREATE)
            {
                self.hold_for_new_master(handle, master, None);
            } else {
                self.stats.unknown_object += 1;
                // Its master's announcement may have been lost on the way
                // (a server that could not check it refused it): the
                // master sends it if it counts this station a duplica.
                self.ask_for_missing_object(handle, master);
            }
            return;
        };
        let me = self.membership.id;
        if master == me && origin != me {
            // Nobody hands an object over with a `MasterChanged` to its
            // new master (that one gets the `Migrate`): this is the session
            // master's word of a hand-over whose old master failed before
            // its `Migrate` came (`tell_lost_hand_overs`). It counts only
            // while this station's copy still names a gone master; a copy
            // naming a live one (this station handed it on since, say to
            // the session master, whose word is older) keeps it.
            let old_gone = self.membership.gone.contains(&e.master)
                || !self.membership.members.contains_key(&e.master);
            if e.master == me || (origin == self.membership.session_master && !old_gone) {
                debug!(station = %me, object = ?handle, "a stale word of a lost hand-over ignored");
                return;
            }
            if origin != self.membership.session_master {
                self.refuse(
                    "MasterChanged",
                    origin,
                    "only the session master names the receiver",
                );
                return;
            }
        }
        if origin == e.master
            && e.master != self.membership.id
            && self.membership.gone.contains(&master)
            && !self.membership.members.contains_key(&master)
        {
            // Its master handed it to a station that has gone since:
            // nobody masters it now, and it goes the way of that
            // station's objects (the session master recovers it).
            if self.change_master(handle, master, origin) {
                if self.is_session_master() {
                    self.fault_recover(handle, master, true);
                } else {
                    self.believe_claims_after(master);
                }
            }
            return;
        }
        match self.master_change_rule(origin, handle, master) {
            MasterRule::Yes => {
                let old = e.master;
                if self.change_master(handle, master, origin) {
                    if master == self.membership.id {
                        // The session master says this station masters
                        // it (its old master's hand-over was lost with
                        // it): its duplicas are found again.
                        self.discover_all(handle);
                    } else if origin == old {
                        self.saw_hand_over(handle, old, master);
                    }
                    self.master_confirmed(handle, master);
                }
            }
            MasterRule::Already => {}
            MasterRule::Hold => self.hold_for_new_master(handle, master, None),
            MasterRule::Await => {
                self.await_member(master, origin, Msg::MasterChanged { handle, master })
            }
            MasterRule::No => {
                // A station this one is told will master the object may
                // move it on before its claim is confirmed here: the word
                // waits with the claim.
                if !self.hold_if_pending(origin, handle, Msg::MasterChanged { handle, master }) {
                    self.refuse("MasterChanged", origin, "not entitled to move the object")
                }
            }
        }
    }

    /// `Migrate`: the old master hands an object over to this station.
    pub(super) fn on_migrate(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        data: Bytes,
        dup_set: Vec<StationId>,
    ) {
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            return;
        };
        if origin == self.membership.id || e.master == self.membership.id {
            self.refuse("Migrate", origin, "not the object's master");
            return;
        }
        if e.master != origin {
            // From a later master of a chain of hand-overs whose claim
            // waits for the word that made it the master: it waits with it
            // (or for the old master's departure).
            let msg = Msg::Migrate {
                handle,
                data,
                dup_set,
            };
            if !self.hold_if_pending(origin, handle, msg) {
                self.refuse("Migrate", origin, "not the object's master");
            }
            return;
        }
        let cell = e.cell.clone();
        if self.change_master(handle, self.membership.id, origin) {
            apply_datasets(&cell, &data.0);
            self.store.pending_master.remove(&handle);
            let set: BTreeSet<StationId> = dup_set
                .into_iter()
                .filter(|s| *s != self.membership.id && self.membership.members.contains_key(s))
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
            let now = self.now;
            let keep = 3 * self.cfg.failure_timeout;
            let h = &mut self.store.handed_from;
            h.retain(|_, (_, at)| now < *at + keep);
            if h.len() < MAX_HANDED_FROM {
                h.insert(handle, (origin, now));
            }
            self.discover_all(handle);
        }
    }

    /// Station `gone` failed: the objects it handed to this station a
    /// little before are announced again, whole, to their duplicas (its
    /// last announcements of them, or of a duplica it added just before
    /// the hand-over, may have gone with it; a duplica that has the
    /// object takes the announcement as an update of the same state).
    pub(super) fn reannounce_handed_from(&mut self, gone: StationId) {
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let me = self.membership.id;
        let handles: Vec<DOHandle> = self
            .store
            .handed_from
            .iter()
            .filter(|(_, (from, at))| *from == gone && now < *at + keep)
            .map(|(h, _)| *h)
            .collect();
        for handle in handles {
            let Some(e) = self.store.entries.get(&handle) else {
                continue;
            };
            if e.master != me {
                continue;
            }
            let cell = e.cell.clone();
            let dups: Vec<StationId> = e.dup_set.iter().copied().filter(|d| *d != gone).collect();
            let (data, _) = self.full_state(handle, &cell);
            for d in dups {
                self.send(
                    d,
                    SYSTEM_STREAM,
                    Msg::Create {
                        handle,
                        master: me,
                        data: Bytes(data.clone()),
                    },
                );
            }
        }
    }
}

/// How many recent hand-overs a station remembers (see
/// [`Store::handed_from`]).
const MAX_HANDED_FROM: usize = 4096;

/// A master's datasets are at their declared revision (what it writes is
/// everything this build knows).
fn reset_revisions(cell: &Arc<dyn ErasedCell>) {
    cell.with_dyn(&mut |o| {
        for i in 0..o.dataset_count() {
            if let Some(d) = o.dataset_mut(i) {
                let r = d.declared_revision();
                d.set_received_revision(r);
            }
        }
    });
}
