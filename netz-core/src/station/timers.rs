//! Every deadline of the station, and what runs when one passes.

use super::*;

impl Station {
    /// When [`Station::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        if !self.routing.local_queue.is_empty() || !self.routing.transmits.is_empty() {
            consider(self.now);
        }
        for m in self.membership.members.values() {
            if let Some(link) = &m.link {
                if let Some(x) = link.poll_timeout() {
                    consider(x);
                }
                if !m.silent {
                    consider(link.last_received() + self.cfg.failure_timeout);
                }
            }
        }
        for c in &self.routing.closing {
            consider(c.until);
            if let Some(x) = c.link.poll_timeout() {
                consider(x.min(c.until));
            }
        }
        if let Some(sc) = &self.migration.scale_in {
            consider(sc.kicked_until.unwrap_or(sc.deadline));
        }
        for o in self.routing.seq_in.values() {
            if let Some(t) = o.since {
                consider(t + self.gap_timeout());
            }
        }
        if let Some((d, _)) = self.calls.deadlines.first() {
            consider(*d);
        }
        for p in &self.calls.postponed {
            consider(p.due);
        }
        match &self.membership.state {
            State::Joining {
                deadline,
                next_send,
                provisional,
                ..
            } => {
                consider(*deadline);
                consider(*next_send);
                for (_, l) in provisional.values() {
                    if let Some(x) = l.poll_timeout() {
                        consider(x);
                    }
                }
            }
            State::Leaving { deadline } => consider(*deadline),
            _ => {}
        }
        t
    }

    /// Time passes: retransmissions, heartbeats, failure detection, RMC
    /// timeouts, postponed calls, join retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        for m in self.membership.members.values_mut() {
            if let Some(link) = m.link.as_mut() {
                link.handle_timeout(now);
            }
        }
        self.routing.closing.retain_mut(|c| {
            c.link.handle_timeout(now);
            now < c.until
        });
        let keep = self.cfg.failure_timeout;
        self.routing.early_relayed.retain(|e| now < e.0 + keep);
        let wait = self.gap_timeout();
        let expired: Vec<(StationId, u8)> = self
            .routing
            .seq_in
            .iter()
            .filter(|(_, o)| o.since.is_some_and(|t| now >= t + wait))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.skip_gap(key);
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
        let silent: Vec<StationId> = self
            .membership
            .members
            .iter()
            .filter(|(_, m)| {
                !m.silent
                    && m.link
                        .as_ref()
                        .is_some_and(|l| now >= l.last_received() + self.cfg.failure_timeout)
            })
            .map(|(id, _)| *id)
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
