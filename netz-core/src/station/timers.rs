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
}

impl Station {
    /// Calls `f` with every deadline the station has, and its source.
    pub(super) fn for_each_timer(&self, mut f: impl FnMut(Timer, Instant)) {
        if !self.routing.local_queue.is_empty() || !self.routing.transmits.is_empty() {
            f(Timer::Pending, self.now);
        }
        for (id, m) in &self.membership.members {
            if let Some(link) = &m.link {
                if let Some(x) = link.poll_timeout() {
                    f(Timer::Link(*id), x);
                }
                if !m.silent {
                    f(
                        Timer::Silence(*id),
                        link.last_received() + self.cfg.failure_timeout,
                    );
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
        let mut soonest: Option<Instant> = None;
        self.for_each_timer(|_, at| {
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
        self.for_each_timer(|timer, at| {
            if at <= now {
                due.push(timer);
            }
        });
        for timer in &due {
            if let Timer::Link(id) = timer {
                if let Some(link) = self
                    .membership
                    .members
                    .get_mut(id)
                    .and_then(|m| m.link.as_mut())
                {
                    link.handle_timeout(now);
                }
            }
        }
        self.routing.closing.retain_mut(|c| {
            c.link.handle_timeout(now);
            now < c.until
        });
        let keep = self.cfg.failure_timeout;
        self.routing.early_relayed.retain(|e| now < e.0 + keep);
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
                let (members, closing, pending) = (
                    &self.membership.members,
                    &self.routing.closing,
                    &self.admission.pending,
                );
                sec.retain(|id| {
                    members.contains_key(&id)
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
        for id in silent {
            if let Some(m) = self.membership.members.get_mut(&id) {
                m.silent = true;
            }
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
