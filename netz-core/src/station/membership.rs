//! The stations of the session and the links to them.

use super::*;

pub(super) struct Member {
    pub(super) info: StationInfo,
    pub(super) link: Option<Link>,
    pub(super) silent: bool,
    /// Whether a packet naming it as sender arrived (before, a joiner
    /// sends without its id: see `Station::resolve_joiner`).
    pub(super) heard: bool,
}

pub(super) enum State {
    Idle,
    Joining {
        contact: SocketAddr,
        nonce: u64,
        deadline: Instant,
        next_send: Instant,
        provisional: HashMap<SocketAddr, (u32, Link)>,
        early: Vec<(SocketAddr, u8, Envelope)>,
    },
    InSession,
    Leaving {
        deadline: Instant,
    },
    Closed,
}

impl Station {
    pub(super) fn direct_link_to(&self, info: &StationInfo) -> bool {
        if info.id == self.id {
            return false;
        }
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => match (self.cfg.process_type, info.process_type) {
                (ProcessType::Client, _) => info.id == self.relay,
                (_, ProcessType::Client) => info.relay == Some(self.id),
                _ => true,
            },
        }
    }

    pub(super) fn add_member(&mut self, info: StationInfo, link: Option<Link>) {
        let link = if self.direct_link_to(&info) {
            Some(link.unwrap_or_else(|| Link::new(self.tcfg.clone(), self.now)))
        } else {
            None
        };
        self.addrs.insert(info.addr, info.id);
        self.gone.remove(&info.id);
        self.members.insert(
            info.id,
            Member {
                info,
                link,
                silent: false,
                heard: false,
            },
        );
    }

    /// Leaves the session gracefully: masters are handed to the session
    /// master's fault recovery, and the station closes once that is done.
    pub fn leave(&mut self, now: Instant) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        self.update_all(now);
        self.broadcast(&Msg::Leaving, &[]);
        self.state = State::Leaving {
            deadline: now + self.cfg.failure_timeout,
        };
        Ok(())
    }

    pub(super) fn close(&mut self, reason: &str) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let handles = self.objects();
        for h in handles {
            self.remove_from_store(h, self.id, RemoveReason::SessionLeft, false);
        }
        let calls: Vec<u64> = self.calls.keys().copied().collect();
        for c in calls {
            if let Some(p) = self.calls.remove(&c) {
                self.complete_call(&p, Outcome::StationUnreachable, None);
            }
        }
        self.call_deadlines.clear();
        self.migration = None;
        self.handovers.clear();
        self.scale_in = None;
        self.state = State::Closed;
        self.events.push_back(Event::Disconnected {
            reason: reason.into(),
        });
    }
}
