//! Every deadline of the station, and what runs when one passes.

use super::*;

impl Station {
    /// When [`Station::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        if !self.local_queue.is_empty() || !self.transmits.is_empty() {
            consider(self.now);
        }
        for m in self.members.values() {
            if let Some(link) = &m.link {
                if let Some(x) = link.poll_timeout() {
                    consider(x);
                }
                if !m.silent {
                    consider(link.last_received() + self.cfg.failure_timeout);
                }
            }
        }
        for c in &self.closing {
            consider(c.until);
            if let Some(x) = c.link.poll_timeout() {
                consider(x.min(c.until));
            }
        }
        if let Some(sc) = &self.scale_in {
            consider(sc.kicked_until.unwrap_or(sc.deadline));
        }
        for o in self.seq_in.values() {
            if let Some(t) = o.since {
                consider(t + self.gap_timeout());
            }
        }
        if let Some((d, _)) = self.call_deadlines.first() {
            consider(*d);
        }
        for p in &self.postponed {
            consider(p.due);
        }
        match &self.state {
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
        for m in self.members.values_mut() {
            if let Some(link) = m.link.as_mut() {
                link.handle_timeout(now);
            }
        }
        self.closing.retain_mut(|c| {
            c.link.handle_timeout(now);
            now < c.until
        });
        let keep = self.cfg.failure_timeout;
        self.early_relayed.retain(|e| now < e.0 + keep);
        let wait = self.gap_timeout();
        let expired: Vec<(StationId, u8)> = self
            .seq_in
            .iter()
            .filter(|(_, o)| o.since.is_some_and(|t| now >= t + wait))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.skip_gap(key);
        }
        if let Some(sec) = self.sec.as_mut() {
            let known = self.members.len() + self.closing.len() + self.pending_joins.len();
            if matches!(self.state, State::InSession) && sec.peer_count() > 2 * known + 8 {
                let (members, closing, pending) =
                    (&self.members, &self.closing, &self.pending_joins);
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
        } = &mut self.state
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
            self.state = State::Idle;
            self.events
                .push_back(Event::JoinFailed(JoinError::TimedOut));
        }
        if let Some((contact, nonce)) = resend {
            self.send_join_request(contact, nonce);
        }
        if let State::Leaving { deadline } = self.state {
            // Closed once every station acknowledged our goodbye (or at the deadline).
            let hop = self.next_hop(self.session_master);
            let delivered = hop
                .and_then(|h| self.members.get(&h))
                .and_then(|m| m.link.as_ref())
                .is_none_or(|l| l.is_idle());
            if delivered || now >= deadline {
                self.close("left the session");
            }
        }
        // Failure detection.
        let silent: Vec<StationId> = self
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
            if let Some(m) = self.members.get_mut(&id) {
                m.silent = true;
            }
            self.peer_silent(id);
        }
        // RMC timeouts.
        while let Some(&(d, call)) = self.call_deadlines.first() {
            if d > now {
                break;
            }
            self.call_deadlines.pop_first();
            if let Some(p) = self.calls.remove(&call) {
                self.complete_call(&p, Outcome::TimedOut, None);
            }
        }
        // Postponed calls.
        if self.postponed.iter().any(|p| p.due <= now) {
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.postponed)
                .into_iter()
                .partition(|p| p.due <= now);
            self.postponed = rest;
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
