//! Who may change an object's master, and the claims that wait: a new
//! master's word that came before the old master's, a hand-over to a
//! station not announced yet, and the hand-overs the session master saw
//! whose old master failed before its `Migrate` reached the new one.

use super::store::{MAX_AWAITING_MEMBER, MAX_HELD_FOR_NEW_MASTER};
use super::*;

impl Station {
    /// Whether `origin` may make `master` the master of `handle` here: the
    /// current master may hand it over, the session master may recover it,
    /// and the new master's own word counts once the old master is gone;
    /// before that it waits for the old master's.
    pub(super) fn master_change_rule(
        &self,
        origin: StationId,
        handle: DOHandle,
        master: StationId,
    ) -> MasterRule {
        let Some(e) = self.store.entries.get(&handle) else {
            return MasterRule::No;
        };
        if e.master == self.membership.id {
            // Ours: only the session master's recovery takes it (it
            // believes our predecessor failed before its word reached us).
            let recovery = origin == self.membership.session_master && master == origin;
            return if recovery {
                MasterRule::Yes
            } else {
                MasterRule::No
            };
        }
        if e.master == master {
            return MasterRule::Already;
        }
        if !self.membership.members.contains_key(&master) {
            // The master hands it (or the session master gives it) to a
            // station admitted since, whose announcement has not reached
            // this station yet: its word waits for it.
            let entitled = origin == e.master
                || (origin == self.membership.session_master && origin != master);
            return if entitled && !self.membership.gone.contains(&master) {
                MasterRule::Await
            } else {
                MasterRule::No
            };
        }
        if origin == e.master {
            return MasterRule::Yes;
        }
        let old_gone = self.membership.gone.contains(&e.master)
            || !self.membership.members.contains_key(&e.master);
        // The session master's claim for itself waits like any other (its
        // word can overtake the old master's last messages); a recovery
        // comes after the old master's departure, which was told first.
        // While its own claim waits and the old master lives, its word
        // moving the object on is a hand-over by that claimant, not a
        // recovery: it waits with the claim (`hold_if_pending`), so that
        // what the old master sent before its hand-over still counts.
        let claimant = self
            .store
            .pending_master
            .get(&handle)
            .is_some_and(|p| p.has(origin));
        if origin == self.membership.session_master && origin != master && claimant && !old_gone {
            return MasterRule::No;
        }
        if origin == self.membership.session_master && origin != master {
            return MasterRule::Yes;
        }
        if origin != master {
            return MasterRule::No;
        }
        if old_gone {
            MasterRule::Yes
        } else {
            MasterRule::Hold
        }
    }

    /// Holds a master change `master` announced for itself, with `msg`
    /// (what it sent for the object) when there is one.
    pub(super) fn hold_for_new_master(
        &mut self,
        handle: DOHandle,
        master: StationId,
        msg: Option<Msg>,
    ) {
        let now = self.now;
        let claims = &mut self.store.pending_master.entry(handle).or_default().0;
        let i = match claims.iter().position(|p| p.master == master) {
            Some(i) => i,
            None if claims.len() < MAX_CLAIMS_PER_OBJECT => {
                claims.push(PendingMaster {
                    master,
                    since: now,
                    held: Vec::new(),
                    bytes: 0,
                });
                claims.len() - 1
            }
            None => {
                self.refuse(
                    "MasterChanged",
                    master,
                    "too many claims for the same object",
                );
                return;
            }
        };
        let p = &mut claims[i];
        if let Some(msg) = msg {
            let size = postcard::experimental::serialized_size(&msg).unwrap_or(usize::MAX);
            if p.bytes.saturating_add(size) > MAX_HELD_FOR_NEW_MASTER {
                self.refuse(
                    msg.name(),
                    master,
                    "too much held for an unconfirmed master",
                );
                return;
            }
            p.bytes += size;
            p.held.push(msg);
        }
    }

    /// What `origin` sent for `handle` while its claim to master it waits.
    /// Returns false when it is not the pending claimant.
    pub(super) fn hold_if_pending(
        &mut self,
        origin: StationId,
        handle: DOHandle,
        msg: Msg,
    ) -> bool {
        if self
            .store
            .pending_master
            .get(&handle)
            .is_some_and(|p| p.has(origin))
        {
            self.hold_for_new_master(handle, origin, Some(msg));
            true
        } else {
            false
        }
    }

    /// Keeps `msg` from `origin`, a master change to `station`, until
    /// `station` is announced here.
    pub(super) fn await_member(&mut self, station: StationId, origin: StationId, msg: Msg) {
        if self.store.awaiting_member.len() >= MAX_AWAITING_MEMBER {
            self.refuse(msg.name(), origin, "too many changes wait for a station");
            return;
        }
        let since = self.now;
        self.store.awaiting_member.push(AwaitingMember {
            station,
            origin,
            msg,
            since,
        });
    }

    /// `station` was announced here: the master changes to it that waited
    /// for it are handled now (from senders still in the session).
    pub(super) fn member_announced(&mut self, station: StationId) {
        if !self
            .store
            .awaiting_member
            .iter()
            .any(|a| a.station == station)
        {
            return;
        }
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.store.awaiting_member)
            .into_iter()
            .partition(|a| a.station == station);
        self.store.awaiting_member = later;
        for a in now {
            if self.membership.members.contains_key(&a.origin) {
                self.handle_msg(a.origin, a.msg);
            }
        }
    }

    /// `handle`'s master changed to `master` here: what a pending claim of
    /// `master` held is handled now; the pending claims of others are
    /// dropped.
    pub(super) fn master_confirmed(&mut self, handle: DOHandle, master: StationId) {
        if let Some(claims) = self.store.pending_master.remove(&handle) {
            // The others' changes go unheard: should one master the object
            // here later after all (what `master` held may move it on), it
            // is asked for its state (`ask_for_missed_changes`).
            for p in claims.0.iter().filter(|p| p.master != master) {
                if !p.held.is_empty() {
                    self.note_refused_change(handle, p.master);
                }
            }
            for p in claims.0 {
                if p.master == master {
                    for msg in p.held {
                        self.handle_msg(master, msg);
                    }
                }
            }
        }
    }

    /// `gone` left the session: the claims held for the objects it
    /// mastered here are believed now (the new master's own word counts
    /// once the old master is gone), with what they held. The old master's
    /// last changes before its hand-over may have died with it (its own
    /// word of the hand-over did: it would have confirmed the claim), so
    /// the duplica asks the new master for its state (`DuplicaHeld`).
    pub(super) fn believe_claims_after(&mut self, gone: StationId) {
        let mut claims: Vec<(DOHandle, StationId)> = self
            .store
            .pending_master
            .iter()
            .filter(|(h, _)| self.store.entries.get(h).is_some_and(|e| e.master == gone))
            .filter_map(|(h, claims)| {
                // The first claimant still in the session.
                claims
                    .0
                    .iter()
                    .find(|p| self.membership.members.contains_key(&p.master))
                    .map(|p| (*h, p.master))
            })
            .collect();
        claims.sort();
        let me = self.membership.id;
        for (h, m) in claims {
            if self.change_master(h, m, m) {
                self.master_confirmed(h, m);
                // (What its claim held may have moved it on already.)
                let now_master = self.store.entries.get(&h).map(|e| e.master);
                if let Some(to) = now_master.filter(|to| *to != me) {
                    self.send(to, SYSTEM_STREAM, Msg::DuplicaHeld { handle: h });
                }
            }
        }
    }

    /// Forgets pending claims older than twice the failure timeout, and
    /// those whose old master is gone (the session master's recovery
    /// decides about its objects). Claims about objects not here yet wait
    /// for them until they expire (removing an object drops its claim).
    pub(super) fn expire_pending_masters(&mut self) {
        let now = self.now;
        let keep = self.cfg.failure_timeout * 2;
        let entries = &self.store.entries;
        let members = &self.membership.members;
        let mut expired = Vec::new();
        let mut ask = Vec::new();
        let mut dropped_changes = Vec::new();
        self.store.pending_master.retain(|h, claims| {
            claims.0.retain(|p| {
                let fresh = now < p.since + keep;
                if !fresh {
                    expired.push(p.master);
                    if !p.held.is_empty() {
                        dropped_changes.push((*h, p.master));
                    }
                    if !entries.contains_key(h) && members.contains_key(&p.master) {
                        ask.push((*h, p.master));
                    }
                }
                fresh
            });
            !claims.0.is_empty()
                && entries
                    .get(h)
                    .is_none_or(|e| members.contains_key(&e.master))
        });
        // A claim nobody confirmed in time was one it had no right to make.
        for claimant in expired {
            self.refuse("MasterClaim", claimant, "no word of the old master came");
        }
        // Its changes go unheard: should the claimant master the object
        // here later after all (the old master's word came late), it is
        // asked for its state (`ask_for_missed_changes`).
        for (handle, claimant) in dropped_changes {
            if self.store.entries.contains_key(&handle) {
                self.note_refused_change(handle, claimant);
            }
        }
        // A new master counts this station among an object's duplicas, yet
        // the object never came (the old master sent it on a path that
        // died: to a server that took this client over and went before it
        // arrived). The claimant is asked: a master that counts this
        // station sends its whole state (`on_duplica_held`); one that does
        // not, nothing; one that lacks it, `Delete`.
        for (handle, master) in ask {
            if !self.store.entries.contains_key(&handle) {
                self.send(master, SYSTEM_STREAM, Msg::DuplicaHeld { handle });
            }
        }
        // A change to a station never announced in time names none.
        let mut stale = Vec::new();
        self.store.awaiting_member.retain(|a| {
            let fresh = now < a.since + keep;
            if !fresh {
                stale.push(a.origin);
            }
            fresh
        });
        for origin in stale {
            self.refuse(
                "MasterChanged",
                origin,
                "its new master was never announced",
            );
        }
    }

    /// When the oldest pending claim expires.
    pub(super) fn pending_master_deadline(&self) -> Option<Instant> {
        let keep = self.cfg.failure_timeout * 2;
        let claims = self.store.pending_master.values().filter_map(|p| p.since());
        let awaiting = self.store.awaiting_member.iter().map(|a| a.since);
        claims.chain(awaiting).min().map(|since| since + keep)
    }
}

/// How many stations' claims to master one object wait at once (see
/// [`PendingClaims`]).
const MAX_CLAIMS_PER_OBJECT: usize = 4;

/// How many refused changes a station remembers (see
/// [`Store::refused_changes`]).
const MAX_REFUSED_CHANGES: usize = 1024;

/// How many objects a station remembers asking for (see
/// [`Store::asked_missing`]).
const MAX_ASKED_MISSING: usize = 1024;

/// Puts `value` for `key` into a bounded map of recent entries, whose
/// stale ones (those `fresh` rejects) are swept only when it is full
/// (readers check the age): a flood of remote input costs no sweep per
/// message. Returns whether it was kept (a full map keeps no new key).
pub(super) fn insert_recent<K: Ord, V>(
    map: &mut BTreeMap<K, V>,
    max: usize,
    key: K,
    value: V,
    fresh: impl Fn(&V) -> bool,
) -> bool {
    if map.len() >= max && !map.contains_key(&key) {
        map.retain(|_, v| fresh(v));
    }
    let kept = map.len() < max || map.contains_key(&key);
    if kept {
        map.insert(key, value);
    }
    kept
}

/// How many hand-overs the session master remembers (see
/// [`Store::handed_seen`]).
const MAX_HANDED_SEEN: usize = 4096;

impl Station {
    /// This station saw `from`, the master of `handle`, hand it to `to`:
    /// kept three failure timeouts, in case `from` fails before its
    /// `Migrate` reaches `to` ([`Station::tell_lost_hand_overs`],
    /// [`Station::ask_after_lost_hand_overs`]).
    pub(super) fn saw_hand_over(&mut self, handle: DOHandle, from: StationId, to: StationId) {
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let seen = &mut self.store.handed_seen;
        insert_recent(
            seen,
            MAX_HANDED_SEEN,
            handle,
            (from, to, now),
            |(_, _, at)| now < *at + keep,
        );
    }

    /// The objects `gone` handed over a little before that this station
    /// holds, still naming the station they went to (another live one) as
    /// master, with that station.
    fn recent_hand_overs_from(&self, gone: StationId) -> Vec<(DOHandle, StationId)> {
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let me = self.membership.id;
        self.store
            .handed_seen
            .iter()
            .filter(|(h, (from, to, at))| {
                *from == gone
                    && now < *at + keep
                    && *to != me
                    && self.membership.members.contains_key(to)
                    && self.store.entries.get(h).is_some_and(|e| e.master == *to)
            })
            .map(|(h, (_, to, _))| (*h, *to))
            .collect()
    }

    /// The session master declares `gone` failed: each object `gone`
    /// handed over a little before, still mastered by the station it went
    /// to as far as this station knows, is told to that station (its
    /// `Migrate` may have died with `gone`, a client's in its server:
    /// everyone else names the new master, which would not know it is the
    /// master). The new master takes the session master's word for its
    /// own duplica, and announces it again; one that had it already
    /// ignores it.
    pub(super) fn tell_lost_hand_overs(&mut self, gone: StationId) {
        let told = self.recent_hand_overs_from(gone);
        self.store
            .handed_seen
            .retain(|_, (from, _, _)| *from != gone);
        let me = self.membership.id;
        for (handle, to) in told {
            // A client's server referees what the client sends: it hears
            // first (on the same link, ahead of the word it passes on) that
            // the client masters the object, or it would refuse the
            // client's announcement of it to the others.
            let relay = self
                .membership
                .members
                .get(&to)
                .filter(|m| m.info.process_type == ProcessType::Client)
                .and_then(|m| m.info.relay)
                .filter(|r| *r != me && self.membership.members.contains_key(r));
            if let Some(r) = relay {
                self.send(r, SYSTEM_STREAM, Msg::MasterChanged { handle, master: to });
            }
            self.send(to, SYSTEM_STREAM, Msg::MasterChanged { handle, master: to });
        }
    }

    /// `gone` failed: for each object it handed over a little before
    /// that this station holds a duplica of, naming the station it went
    /// to as master, that station is told (`DuplicaHeld`). If the
    /// hand-over's `Migrate` died with `gone` (a client's, in its
    /// server) and the new master never had the object, nobody masters
    /// the duplica: the new master answers with `Delete`.
    pub(super) fn ask_after_lost_hand_overs(&mut self, gone: StationId) {
        let asked = self.recent_hand_overs_from(gone);
        for (handle, to) in asked {
            self.send(to, SYSTEM_STREAM, Msg::DuplicaHeld { handle });
        }
    }

    /// `DuplicaHeld`: `origin` holds a duplica of `handle` naming this
    /// station its master. One that lacks the object answers `origin`
    /// alone with `Delete` (which it takes from the master it names); the
    /// master answers a station of the object's duplica set with its whole
    /// state (the duplica missed changes: [`Station::ask_for_missed_changes`]);
    /// anything else is no news (a master does not send its state to a
    /// station that merely asks: that would pass interest and rooms by).
    pub(super) fn on_duplica_held(&mut self, origin: StationId, handle: DOHandle) {
        let me = self.membership.id;
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            self.send(origin, SYSTEM_STREAM, Msg::Delete { handle });
            return;
        };
        if e.master != me && e.master != origin {
            // A duplica here too, of a master the sender no longer names
            // (the hand-over to this station whose `Migrate` may yet come,
            // or died with the old master): if this station drops the
            // object, the sender is told, as it would be now.
            let now = self.now;
            let keep = 3 * self.cfg.failure_timeout;
            let mut named = self
                .store
                .named_master_by
                .get(&handle)
                .filter(|(_, at)| now < *at + keep)
                .map(|(v, _)| v.clone())
                .unwrap_or_default();
            if !named.contains(&origin) && named.len() < 8 {
                named.push(origin);
            }
            insert_recent(
                &mut self.store.named_master_by,
                MAX_REFUSED_CHANGES,
                handle,
                (named, now),
                |(_, at)| now < *at + keep,
            );
            return;
        }
        if e.master != me || !e.dup_set.contains(&origin) {
            return;
        }
        let cell = e.cell.clone();
        // As for a new duplica (`change_dup_set`): changes not sent yet go
        // first, and what waited for this one is covered by the state.
        let _ = self.update(self.now, handle);
        let (data, version) = self.full_state(handle, &cell);
        self.send(
            origin,
            SYSTEM_STREAM,
            Msg::Create {
                handle,
                master: me,
                data: Bytes(data),
            },
        );
        self.sched_dup_added(handle, origin, version);
    }

    /// A change of duplica `handle` from `origin`, which is not its master
    /// here, was refused: kept three failure timeouts, in case `origin`
    /// is its master after all and this station learns so late (its view
    /// of the session split from the others' for a while).
    pub(super) fn note_refused_change(&mut self, handle: DOHandle, origin: StationId) {
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let refused = &mut self.store.refused_changes;
        insert_recent(
            refused,
            MAX_REFUSED_CHANGES,
            handle,
            (origin, now),
            |(_, at)| now < *at + keep,
        );
    }

    /// A change of `handle`, which this station lacks, came from `origin`:
    /// `origin` is asked for it (`DuplicaHeld`), once a failure timeout
    /// (again at once when another station is named: it moved).
    /// A master that counts this station among the object's duplicas
    /// sends its whole state (its announcement was lost on the way: a
    /// server that could not check it refused it); one that does not,
    /// nothing; one that lacks it, `Delete`. An object deleted here just
    /// before is not asked for.
    pub(super) fn ask_for_missing_object(&mut self, handle: DOHandle, origin: StationId) {
        let now = self.now;
        let keep = self.cfg.failure_timeout;
        if origin == self.membership.id
            || !self.membership.members.contains_key(&origin)
            || self.store.deleted_early.contains_key(&handle)
        {
            return;
        }
        let asked = &mut self.store.asked_missing;
        if asked
            .get(&handle)
            .is_some_and(|(to, at)| *to == origin && now < *at + keep)
        {
            return;
        }
        if !insert_recent(
            asked,
            MAX_ASKED_MISSING,
            handle,
            (origin, now),
            |(_, at)| now < *at + keep,
        ) {
            return;
        }
        self.stats.missing_objects_asked += 1;
        self.send(origin, SYSTEM_STREAM, Msg::DuplicaHeld { handle });
    }

    /// `handle`'s master is `master` here now: if a change from `master`
    /// was refused a little before, this duplica missed it, and asks
    /// `master` for its state (`DuplicaHeld`).
    pub(super) fn ask_for_missed_changes(&mut self, handle: DOHandle, master: StationId) {
        if master == self.membership.id {
            self.store.refused_changes.remove(&handle);
            return;
        }
        let now = self.now;
        let keep = 3 * self.cfg.failure_timeout;
        let missed = self
            .store
            .refused_changes
            .get(&handle)
            .is_some_and(|(from, at)| *from == master && now < *at + keep);
        if missed {
            self.store.refused_changes.remove(&handle);
            self.send(master, SYSTEM_STREAM, Msg::DuplicaHeld { handle });
        }
    }

    /// The session master tells this station it masters `handle`, an
    /// object whose old master failed before its `Migrate` (and here, its
    /// announcement) came: the others name this station its master, and
    /// nobody has its master's state. It is deleted everywhere, as the
    /// recovery of a failed station's object the session master holds no
    /// duplica of deletes it; a late announcement of it is refused here.
    pub(super) fn disown_lost_hand_over(&mut self, handle: DOHandle) {
        debug!(station = %self.membership.id, object = ?handle, "a lost hand-over of an object never received: deleted");
        self.note_deleted_early(handle);
        self.broadcast(&Msg::Delete { handle }, &[]);
    }
}
