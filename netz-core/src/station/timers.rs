//! Every deadline of the station, and what runs when one passes.

use super::*;

/// One source of deadlines. [`Station::poll_timeout`] is the soonest of
/// them and [`Station::handle_timeout`] runs those that are due, both from
/// the same enumeration ([`Station::for_each_timer`]), so that they cannot
/// disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Local messages or connectionless datagrams are waiting: at once.
    Pending,
    /// A member's link: retransmission, delayed acknowledgement, heartbeat.
    Link(StationId),
    /// A member that has been silent for the failure timeout.
    Silence(StationId),
    /// A closing link: its own timers, and when it is dropped.
    Closing,
    /// The scale-in's drain, or the grace after kicking the last clients.
    ScaleIn,
    /// A gap in a sender's numbering that is given up on.
    Gap(StationId, u8),
    /// The soonest RMC timeout.
    Rmc,
    /// A postponed call.
    Postponed,
    /// Joining: the join timeout, the next retry, a provisional link.
    Join,
    /// Leaving: the deadline for the goodbye to be acknowledged.
    Leave,
    /// A new master's claim that waits for the old master's word expires.
    PendingMaster,
    /// Dataset updates wait for the budget, a send rate or the path.
    Replication,
    /// Probes to stations declared failed, the comparison of the sides.
    Partition,
    /// The successor picked as session master has not taken over yet.
    Takeover,
    /// The soonest deadline of a room request.
    RoomRequest,
    /// A recovery stops waiting for the members' answers.
    Census,
}

/// The timer table of the members' links: each link's own deadline
/// (retransmission, delayed acknowledgement, heartbeat) and its failure
/// deadline, kept in order; and the links that may have something to send
/// because something happened to them. With it, an input, a timeout and a
/// poll cost what is due, not a visit of every link.
///
/// Both deadlines move later with most packets (a failure deadline with
/// every packet received); an entry in the order is left where it was
/// (earlier than its deadline) and moved only when it comes due or the
/// deadline moves earlier: an early wake-up now and then instead of a
/// removal and an insertion per packet. A link whose entry comes early has
/// nothing due and does nothing.
#[derive(Default)]
pub(super) struct LinkTimers {
    link: BTreeSet<(Instant, StationId)>,
    silence: BTreeSet<(Instant, StationId)>,
    cached: crate::fasthash::FastMap<StationId, Deadlines>,
    /// Links changed since they were last drained.
    pub(super) ready: BTreeSet<StationId>,
    /// The ids of the links a poll visits (kept, so a poll allocates none).
    pub(super) visit: Vec<StationId>,
}

/// One link's deadlines, and where each is in the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Deadlines {
    link: Option<Instant>,
    silence: Option<Instant>,
    /// The link deadline's entry in the order: at or before `link`.
    link_entry: Option<Instant>,
    /// The failure deadline's entry in the order: at or before `silence`.
    silence_entry: Option<Instant>,
}

/// Where deadline `new` of link `id` goes in `order`, its entry now at
/// `entry`: a later deadline leaves the entry where it is.
fn place(
    order: &mut BTreeSet<(Instant, StationId)>,
    id: StationId,
    entry: Option<Instant>,
    new: Option<Instant>,
) -> Option<Instant> {
    match (entry, new) {
        (Some(e), Some(n)) if e <= n => Some(e),
        (e, n) => {
            if let Some(e) = e {
                order.remove(&(e, id));
            }
            if let Some(n) = n {
                order.insert((n, id));
            }
            n
        }
    }
}

/// An entry that came due before its deadline moves to the deadline.
fn resync(
    order: &mut BTreeSet<(Instant, StationId)>,
    id: StationId,
    entry: &mut Option<Instant>,
    deadline: Option<Instant>,
) {
    if let (Some(e), Some(d)) = (*entry, deadline) {
        if e < d {
            order.remove(&(e, id));
            order.insert((d, id));
            *entry = Some(d);
        }
    }
}

impl LinkTimers {
    fn set(&mut self, id: StationId, link: Option<Instant>, silence: Option<Instant>) {
        let old = self.cached.get(&id).copied().unwrap_or(Deadlines {
            link: None,
            silence: None,
            link_entry: None,
            silence_entry: None,
        });
        if old.link == link && old.silence == silence {
            return;
        }
        let link_entry = place(&mut self.link, id, old.link_entry, link);
        let silence_entry = place(&mut self.silence, id, old.silence_entry, silence);
        if link.is_some() || silence.is_some() {
            self.cached.insert(
                id,
                Deadlines {
                    link,
                    silence,
                    link_entry,
                    silence_entry,
                },
            );
        } else {
            self.cached.remove(&id);
        }
    }

    /// Link `id`'s entries came due: each moves to the deadline it stands
    /// for, when that is later.
    fn resync(&mut self, id: StationId) {
        if let Some(d) = self.cached.get_mut(&id) {
            resync(&mut self.link, id, &mut d.link_entry, d.link);
            resync(&mut self.silence, id, &mut d.silence_entry, d.silence);
        }
    }

    /// Links whose own deadline is at or before `now`.
    pub(super) fn due_links(&self, now: Instant) -> impl Iterator<Item = StationId> + '_ {
        self.link
            .iter()
            .take_while(move |(t, _)| *t <= now)
            .map(|(_, id)| *id)
    }
}

impl Station {
    /// Member `id`'s link changed (a packet arrived, a message was queued,
    /// time passed, it was made or dropped): its timers are read again and
    /// it may have something to send.
    pub(super) fn link_changed(&mut self, id: StationId) {
        self.sched_link_changed(id);
        self.refresh_link_timers(id);
        if self.link_timers.cached.contains_key(&id) {
            self.link_timers.ready.insert(id);
        } else {
            self.link_timers.ready.remove(&id);
        }
    }

    /// Member `id`'s link sent all it had: its timers are read again.
    pub(super) fn link_drained(&mut self, id: StationId) {
        self.refresh_link_timers(id);
        self.link_timers.ready.remove(&id);
    }

    fn refresh_link_timers(&mut self, id: StationId) {
        let (link, silence) = self.link_deadlines(id);
        self.link_timers.set(id, link, silence);
    }

    /// Member `id`'s link deadline and failure deadline, read from the link.
    fn link_deadlines(&self, id: StationId) -> (Option<Instant>, Option<Instant>) {
        match self.membership.members.get(&id) {
            Some(Member {
                link: Some(link),
                silent,
                ..
            }) => (
                link.poll_timeout(),
                (!silent).then(|| link.last_received() + self.cfg.failure_timeout),
            ),
            _ => (None, None),
        }
    }

    /// Debug builds: the table agrees with the links.
    #[cfg(debug_assertions)]
    fn check_link_timers(&self) {
        for (id, m) in &self.membership.members {
            let want = self.link_deadlines(*id);
            let have = self
                .link_timers
                .cached
                .get(id)
                .map_or((None, None), |d| (d.link, d.silence));
            debug_assert_eq!(
                have, want,
                "the timer table of link {id} is stale ({})",
                m.info.addr
            );
            if let Some(d) = self.link_timers.cached.get(id) {
                debug_assert!(
                    d.link_entry.is_some() == d.link.is_some()
                        && d.link_entry <= d.link
                        && d.silence_entry.is_some() == d.silence.is_some()
                        && d.silence_entry <= d.silence,
                    "an entry of link {id} is after its deadline"
                );
            }
        }
        debug_assert!(self
            .link_timers
            .cached
            .keys()
            .all(|id| self.membership.members.contains_key(id)));
    }

    /// Calls `f` with every deadline the station has, and its source.
    /// With `due_by`, every deadline at or before it; without, at least the
    /// soonest of each source (enough for the soonest of all).
    pub(super) fn for_each_timer(
        &self,
        due_by: Option<Instant>,
        mut f: impl FnMut(Timer, Instant),
    ) {
        if !self.routing.local_queue.is_empty()
            || !self.routing.transmits.is_empty()
            || !self.routing.packets.is_empty()
        {
            f(Timer::Pending, self.now);
        }
        let table = &self.link_timers;
        match due_by {
            Some(d) => {
                for &(at, id) in table.link.iter().take_while(|(t, _)| *t <= d) {
                    f(Timer::Link(id), at);
                }
                for &(at, id) in table.silence.iter().take_while(|(t, _)| *t <= d) {
                    f(Timer::Silence(id), at);
                }
            }
            None => {
                if let Some(&(at, id)) = table.link.first() {
                    f(Timer::Link(id), at);
                }
                if let Some(&(at, id)) = table.silence.first() {
                    f(Timer::Silence(id), at);
                }
            }
        }
        for c in &self.routing.closing {
            f(Timer::Closing, c.until);
            if let Some(x) = c.link.poll_timeout() {
                f(Timer::Closing, x.min(c.until));
            }
        }
        if let Some(sc) = &self.migration.scale_in {
            f(Timer::ScaleIn, sc.kicked_until.unwrap_or(sc.deadline));
        }
        for (key, o) in &self.routing.seq_in {
            if let Some(t) = o.since {
                f(Timer::Gap(key.0, key.1), t + self.gap_timeout());
            }
        }
        if let Some((d, _)) = self.calls.deadlines.first() {
            f(Timer::Rmc, *d);
        }
        for p in &self.calls.postponed {
            f(Timer::Postponed, p.due);
        }
        if let Some(at) = self.pending_master_deadline() {
            f(Timer::PendingMaster, at);
        }
        if let Some(at) = self.sched.due {
            f(Timer::Replication, at);
        }
        if let Some(at) = self.partition.deadline() {
            f(Timer::Partition, at);
        }
        if let Some((_, at)) = self.membership.unconfirmed_master {
            f(Timer::Takeover, at);
        }
        if let Some(at) = self.room_request_deadline() {
            f(Timer::RoomRequest, at);
        }
        if let Some(at) = self.census_deadline() {
            f(Timer::Census, at);
        }
        match &self.membership.state {
            State::Joining {
                deadline,
                next_send,
                provisional,
                ..
            } => {
                f(Timer::Join, *deadline);
                f(Timer::Join, *next_send);
                for (_, l) in provisional.values() {
                    if let Some(x) = l.poll_timeout() {
                        f(Timer::Join, x);
                    }
                }
            }
            State::Leaving { deadline } => f(Timer::Leave, *deadline),
            _ => {}
        }
    }

    /// When [`Station::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        #[cfg(debug_assertions)]
        self.check_link_timers();
        let mut soonest: Option<Instant> = None;
        self.for_each_timer(None, |_, at| {
            soonest = Some(soonest.map_or(at, |t| t.min(at)));
        });
        soonest
    }

    /// Time passes: retransmissions, heartbeats, failure detection, RMC
    /// timeouts, postponed calls, join retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        let mut due = Vec::new();
        self.for_each_timer(Some(now), |timer, at| {
            if at <= now {
                due.push(timer);
            }
        });
        // In the order of the members (by id), as a visit of every link would.
        due.sort_by_key(|t| match t {
            Timer::Link(id) | Timer::Silence(id) => (0, *id),
            _ => (1, StationId::NONE),
        });
        for timer in &due {
            if let Timer::Link(id) = *timer {
                if let Some(link) = self
                    .membership
                    .members
                    .get_mut(&id)
                    .and_then(|m| m.link.as_mut())
                {
                    link.handle_timeout(now);
                }
                self.link_changed(id);
            }
        }
        self.expire_closing(now);
        if !self.membership.reported.is_empty() {
            self.release_reported(now);
        }
        if !self.membership.silence_reported.is_empty() {
            self.report_silence_again(now);
        }
        let keep = self.cfg.failure_timeout;
        let before = self.routing.early_relayed.len();
        self.routing.early_relayed.retain(|e| now < e.0 + keep);
        if self.routing.early_relayed.len() != before {
            self.recount_early();
        }
        if due.contains(&Timer::PendingMaster) {
            self.expire_pending_masters();
        }
        if due.contains(&Timer::Replication) {
            self.flush_updates();
        }
        if due.contains(&Timer::Partition) {
            self.partition_timeout();
        }
        if due.contains(&Timer::Takeover) {
            self.check_takeover();
        }
        if due.contains(&Timer::RoomRequest) {
            self.expire_room_requests();
        }
        if due.contains(&Timer::Census) {
            self.expire_censuses();
        }
        for timer in &due {
            if let Timer::Gap(origin, substream) = *timer {
                self.skip_gap((origin, substream));
            }
        }
        if let Some(sec) = self.sec.as_mut() {
            let known = self.membership.members.len()
                + self.routing.closing.len()
                + self.admission.pending.len();
            if matches!(self.membership.state, State::InSession) && sec.peer_count() > 2 * known + 8
            {
                let (members, closing, pending, partition) = (
                    &self.membership.members,
                    &self.routing.closing,
                    &self.admission.pending,
                    &self.partition,
                );
                sec.retain(|id| {
                    members.contains_key(&id)
                        || partition.remembers(id)
                        || pending.contains_key(&id)
                        || closing.iter().any(|c| c.id == id)
                });
            }
        }
        // Join retries.
        let mut join_failed = false;
        let mut resend = None;
        if let State::Joining {
            contact,
            nonce,
            deadline,
            next_send,
            provisional,
            ..
        } = &mut self.membership.state
        {
            for (_, l) in provisional.values_mut() {
                l.handle_timeout(now);
            }
            if now >= *deadline {
                join_failed = true;
            } else if now >= *next_send {
                *next_send = now + self.cfg.join_retry;
                resend = Some((*contact, *nonce));
            }
        }
        if join_failed {
            self.membership.state = State::Idle;
            self.events
                .push_back(Event::JoinFailed(JoinError::TimedOut));
        }
        if let Some((contact, nonce)) = resend {
            self.send_join_request(contact, nonce);
        }
        if let State::Leaving { deadline } = self.membership.state {
            // Closed once every station acknowledged our goodbye (or at the deadline).
            let hop = self.next_hop(self.membership.session_master);
            let delivered = hop
                .and_then(|h| self.membership.members.get(&h))
                .and_then(|m| m.link.as_ref())
                .is_none_or(|l| l.is_idle());
            if delivered || now >= deadline {
                self.close("left the session");
            }
        }
        // Failure detection.
        let silent: Vec<StationId> = due
            .iter()
            .filter_map(|timer| match timer {
                Timer::Silence(id) => Some(*id),
                _ => None,
            })
            .filter(|id| {
                self.membership.members.get(id).is_some_and(|m| {
                    !m.silent
                        && m.link
                            .as_ref()
                            .is_some_and(|l| now >= l.last_received() + self.cfg.failure_timeout)
                })
            })
            .collect();
        // Entries that came due early (their deadline moved later since)
        // move to their deadline.
        for timer in &due {
            if let Timer::Link(id) | Timer::Silence(id) = *timer {
                self.link_timers.resync(id);
            }
        }
        for id in silent {
            if let Some(m) = self.membership.members.get_mut(&id) {
                m.silent = true;
            }
            self.link_changed(id);
            self.peer_silent(id);
        }
        // RMC timeouts.
        while let Some(&(d, call)) = self.calls.deadlines.first() {
            if d > now {
                break;
            }
            self.calls.deadlines.pop_first();
            if let Some(p) = self.calls.pending.remove(&call) {
                self.complete_call(&p, Outcome::TimedOut, None);
            }
        }
        // Postponed calls.
        if self.calls.postponed.iter().any(|p| p.due <= now) {
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.calls.postponed)
                .into_iter()
                .partition(|p| p.due <= now);
            self.calls.postponed = rest;
            for p in due {
                self.execute_call(
                    p.op,
                    p.call,
                    p.reply,
                    p.handle,
                    p.args,
                    p.substream,
                    p.forward,
                );
            }
        }
        self.drain_local();
        self.progress_migrations();
        self.drain_local();
    }
}
