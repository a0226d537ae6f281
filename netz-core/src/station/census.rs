//! The session master's census before it recovers a gone station's
//! objects.
//!
//! A station declared gone may have handed an object over just before:
//! its `Migrate` can reach the new master after the session master
//! decided that the station is gone (the session master suspected it
//! falsely, or the word of the hand-over died with it). Recovering the
//! object at once would give it two masters until the recovery's word
//! reaches the new one. So the session master tells everyone the station
//! is gone (`StationGone`), and each member answers what that station
//! handed it (`Holding`): a member takes nothing from a station it counts
//! gone, so once every member answered, no hand-over is in flight. The
//! objects claimed go to their new masters; the others are recovered then
//! (a member that does not answer within the failure timeout is not
//! waited for if it is silent here, and goes the same way; one still
//! heard is waited for up to three failure timeouts: its answer is on its
//! way over a lossy link).

use super::*;

/// A recovery that waits for the members' answers.
pub(super) struct Census {
    /// Whether the station failed (or left).
    failed: bool,
    /// The gone station's objects the session master recovers.
    objects: Vec<DOHandle>,
    /// The members whose answer has not come.
    waiting: BTreeSet<StationId>,
    /// When the recovery looks again at who has not answered.
    deadline: Instant,
    /// When the recovery goes on without any of them.
    last: Instant,
}

impl Station {
    /// Session master: `id` is gone (the members were told); its
    /// `objects` are recovered once every member answered what `id`
    /// handed it, or after the failure timeout.
    pub(super) fn start_census(&mut self, id: StationId, failed: bool, objects: Vec<DOHandle>) {
        let me = self.membership.id;
        let waiting: BTreeSet<StationId> = self
            .membership
            .members
            .keys()
            .copied()
            .filter(|s| *s != me && *s != id)
            .collect();
        let census = Census {
            failed,
            objects,
            waiting,
            deadline: self.now + self.cfg.failure_timeout,
            last: self.now + 3 * self.cfg.failure_timeout,
        };
        self.store.censuses.insert(id, census);
        self.census_progress(id);
    }

    /// Recovers what `id`'s census held back if nobody is waited for.
    fn census_progress(&mut self, id: StationId) {
        let done = self
            .store
            .censuses
            .get(&id)
            .is_some_and(|c| c.waiting.is_empty() || self.now >= c.last);
        if done {
            self.finish_census(id);
        }
    }

    /// The recovery of `id`'s objects no member claimed, and the word that
    /// it is done.
    fn finish_census(&mut self, id: StationId) {
        let Some(c) = self.store.censuses.remove(&id) else {
            return;
        };
        if !self.is_session_master() {
            // A successor recovers what it finds without a master.
            return;
        }
        for h in c.objects {
            self.fault_recover(h, id, c.failed);
        }
        // A hand-over's `Migrate` may have died with a failed station, or
        // come after the word that a leaving one left (and been refused).
        self.tell_lost_hand_overs(id);
        self.broadcast(&Msg::RecoveryDone { id }, &[]);
    }

    /// `gone` left the session: no census waits for its answer.
    pub(super) fn census_member_gone(&mut self, gone: StationId) {
        let ids: Vec<StationId> = self
            .store
            .censuses
            .iter_mut()
            .filter_map(|(id, c)| c.waiting.remove(&gone).then_some(*id))
            .collect();
        for id in ids {
            self.census_progress(id);
        }
    }

    /// The censuses whose time ran out go on without the members that did
    /// not answer and are silent here; one still heard (its answer is on
    /// its way over a lossy link) is waited for, every half failure
    /// timeout, until three failure timeouts passed.
    pub(super) fn expire_censuses(&mut self) {
        let now = self.now;
        let due: Vec<StationId> = self
            .store
            .censuses
            .iter()
            .filter(|(_, c)| now >= c.deadline)
            .map(|(id, _)| *id)
            .collect();
        let heard: BTreeSet<StationId> = self
            .membership
            .members
            .iter()
            .filter(|(_, m)| !m.silent)
            .map(|(id, _)| *id)
            .collect();
        let again = now + self.cfg.failure_timeout / 2;
        for id in due {
            let wait = self.store.censuses.get_mut(&id).is_some_and(|c| {
                c.waiting.retain(|s| heard.contains(s));
                let wait = !c.waiting.is_empty() && now < c.last;
                if wait {
                    c.deadline = again.min(c.last);
                }
                wait
            });
            if !wait {
                self.finish_census(id);
            }
        }
    }

    /// The soonest census deadline.
    pub(super) fn census_deadline(&self) -> Option<Instant> {
        self.store.censuses.values().map(|c| c.deadline).min()
    }

    /// A member, on the session master's `StationGone` of `id`: the
    /// objects it masters that `id` handed it a little before.
    pub(super) fn answer_census(&mut self, master: StationId, id: StationId) {
        let me = self.membership.id;
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let held: Vec<DOHandle> = self
            .store
            .handed_from
            .iter()
            .filter(|(h, (from, at))| {
                *from == id
                    && now < *at + keep
                    && self.store.entries.get(h).is_some_and(|e| e.master == me)
            })
            .map(|(h, _)| *h)
            .collect();
        self.send(master, SYSTEM_STREAM, Msg::Holding { id, held });
    }

    /// `Holding`: `origin` answers the census of `id`. Only the session
    /// master takes it, once per member, while the census waits; of the
    /// objects named, only those `id` masters here, each by the rule for
    /// a new master's own word once the old master is gone (which any
    /// member's `MasterChanged` could invoke as well): the others learn
    /// it from the session master.
    pub(super) fn on_holding(&mut self, origin: StationId, id: StationId, held: Vec<DOHandle>) {
        if !self.is_session_master() {
            // An answer to a predecessor, or to nobody: nothing.
            return;
        }
        let Some(c) = self.store.censuses.get_mut(&id) else {
            // Late, or a departure told again: the recovery is done.
            return;
        };
        if !c.waiting.remove(&origin) {
            // Its second answer (the departure was told it again), or a
            // station that joined since: nothing.
            return;
        }
        let objects: BTreeSet<DOHandle> = c.objects.iter().copied().collect();
        let claimed: BTreeSet<DOHandle> =
            held.into_iter().filter(|h| objects.contains(h)).collect();
        let mut taken = BTreeSet::new();
        for h in claimed {
            let master_gone = self.store.entries.get(&h).is_some_and(|e| e.master == id);
            if !master_gone {
                // Its new master's own word came first.
                taken.insert(h);
            } else if self.change_master(h, origin, origin) {
                self.master_confirmed(h, origin);
                self.broadcast(
                    &Msg::MasterChanged {
                        handle: h,
                        master: origin,
                    },
                    &[origin],
                );
                taken.insert(h);
            }
        }
        if let Some(c) = self.store.censuses.get_mut(&id) {
            c.objects.retain(|h| !taken.contains(h));
        }
        self.census_progress(id);
    }
}
