//! The stations of the session and the links to them.

use super::*;

/// Who is in the session: this station's id and state, the members with
/// their links, the session master.
pub(super) struct Membership {
    pub(super) id: StationId,
    pub(super) state: State,
    pub(super) local_addr: Option<SocketAddr>,
    pub(super) session_tag: u32,
    pub(super) session_master: StationId,
    pub(super) members: BTreeMap<StationId, Member>,
    pub(super) addrs: HashMap<SocketAddr, StationId>,
    /// A client of a client-server session: the server it is attached to.
    pub(super) relay: StationId,
    /// The session master: the id the next admitted station gets.
    pub(super) next_station_id: u32,
    /// Stations declared failed or gone (never admitted again by id).
    pub(super) gone: BTreeSet<StationId>,
    /// While joining: the receiver id the packets of each provisional link
    /// named (a station restarted on the address of a member gets the
    /// packets meant for that member too, naming its old id).
    pub(super) provisional_receivers: BTreeMap<SocketAddr, u32>,
    /// A joiner's provisional links to stations its acceptance did not
    /// list (admitted after it), with what came on them: taken when the
    /// session master announces them (the peer's link numbered its
    /// packets with those; a new link would look old to it).
    pub(super) spare_links: BTreeMap<SocketAddr, SpareLink>,
    /// The last station whose takeover as session master was refused here
    /// (this station did not see the old one gone yet).
    pub(super) refused_takeover: Option<StationId>,
    /// The successor this station picked when its session master was
    /// lost, while its `NewSessionMaster` has not come, and until when it
    /// is waited for (see [`Station::check_takeover`]).
    pub(super) unconfirmed_master: Option<(StationId, Instant)>,
    /// The objects each station that went mastered here then, and when
    /// it went (kept at least a minute): the session master tells them
    /// again to a member that reports the station silent later (it missed
    /// the recovery), and a new session master to every member (the old
    /// one's word may have gone with it).
    pub(super) recovered: BTreeMap<StationId, (Instant, Vec<DOHandle>)>,
    /// A server: the takeovers it kept from its clients (it did not
    /// follow them), by the station that took over, with the stations
    /// that station named failed: passed on if this server follows it
    /// later (see [`Station::pass_on_takeover`]).
    pub(super) withheld: BTreeMap<StationId, Vec<StationId>>,
    /// What the station in `refused_takeover` said as session master
    /// (`StationJoined`, `LinkKeys`, `Reattach`) while this station did not
    /// follow it, with the bytes it takes: heard once this station follows
    /// it (see [`Station::hear_successor_words`]).
    pub(super) successor_words: Vec<(StationId, Msg)>,
    pub(super) successor_bytes: usize,
    /// A server of a client-server session: its own clients it reported
    /// silent to the session master (which declares them failed on that
    /// word), with when, and what each sent since on its link. The client
    /// may be heard again, but the session master is recovering its
    /// objects: what it says now (a hand-over, a change) would contend
    /// with that recovery, so it waits for the verdict; it is dropped when
    /// the client is declared gone; if no verdict came in twice the
    /// failure timeout the client is reported again while still silent,
    /// and what it sent is passed on once it was heard again (see
    /// [`Station::release_reported`]).
    pub(super) reported: BTreeMap<StationId, Reported>,
    /// Members silent here that this station reported to the session
    /// master (not being it), with when: reported again every two failure
    /// timeouts while silent (the session master that heard the first
    /// report may have judged by a view it no longer has).
    pub(super) silence_reported: BTreeMap<StationId, Instant>,
    /// The session master: reports of a member's silence from another
    /// member while it hears both, by (reporter, reported), with when
    /// (at most 1,024; see [`Station::on_report_failure`]).
    pub(super) silence_heard: BTreeMap<(StationId, StationId), Instant>,
    /// The session master: members told again of a station they sent
    /// something for that is not in the session, by (member, station),
    /// with when (see [`Station::tell_relay_departure`]).
    pub(super) departures_told: BTreeMap<(StationId, StationId), Instant>,
}

/// What a reported client sent since its report (see
/// [`Membership::reported`]).
pub(super) struct Reported {
    pub(super) at: Instant,
    pub(super) held: Vec<(u8, Envelope)>,
}

impl Membership {
    pub(super) fn new() -> Membership {
        Membership {
            id: StationId::NONE,
            state: State::Idle,
            local_addr: None,
            session_tag: 0,
            session_master: StationId::NONE,
            members: BTreeMap::new(),
            addrs: HashMap::new(),
            relay: StationId::NONE,
            next_station_id: 2,
            gone: BTreeSet::new(),
            provisional_receivers: BTreeMap::new(),
            refused_takeover: None,
            unconfirmed_master: None,
            recovered: BTreeMap::new(),
            withheld: BTreeMap::new(),
            successor_words: Vec::new(),
            successor_bytes: 0,
            spare_links: BTreeMap::new(),
            reported: BTreeMap::new(),
            silence_reported: BTreeMap::new(),
            silence_heard: BTreeMap::new(),
            departures_told: BTreeMap::new(),
        }
    }
}

/// See [`Membership::spare_links`]: the peer's id, the link, and the
/// messages that came on it (sub-stream, envelope).
pub(super) struct SpareLink {
    pub(super) sender: u32,
    pub(super) link: Link,
    pub(super) early: Vec<(u8, Envelope)>,
}

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
        provisional: BTreeMap<SocketAddr, (u32, Link)>,
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
        if info.id == self.membership.id {
            return false;
        }
        match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => match (self.cfg.process_type, info.process_type) {
                (ProcessType::Client, _) => info.id == self.membership.relay,
                (_, ProcessType::Client) => info.relay == Some(self.membership.id),
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
        let id = info.id;
        self.interest_member_added(&info);
        // Every station keeps above the ids it saw, so that a successor as
        // session master never gives out one again (a station's handles
        // carry its id, and its objects can outlive it).
        self.membership.next_station_id = self.membership.next_station_id.max(id.0 + 1);
        self.membership.addrs.insert(info.addr, info.id);
        self.membership.gone.remove(&info.id);
        self.membership.members.insert(
            info.id,
            Member {
                info,
                link,
                silent: false,
                heard: false,
            },
        );
        self.link_changed(id);
    }

    /// Leaves the session gracefully: masters are handed to the session
    /// master's fault recovery, and the station closes once that is done.
    pub fn leave(&mut self, now: Instant) -> Result<(), StationError> {
        self.advance(now);
        if !matches!(self.membership.state, State::InSession) {
            return Err(StationError::NotInSession);
        }
        self.update_all(now);
        self.broadcast(&Msg::Leaving, &[]);
        self.membership.state = State::Leaving {
            deadline: now + self.cfg.failure_timeout,
        };
        Ok(())
    }

    pub(super) fn close(&mut self, reason: &str) {
        if matches!(self.membership.state, State::Closed) {
            return;
        }
        let handles = self.objects();
        for h in handles {
            self.remove_from_store(h, self.membership.id, RemoveReason::SessionLeft, false);
        }
        let calls: Vec<u64> = self.calls.pending.keys().copied().collect();
        for c in calls {
            if let Some(p) = self.calls.pending.remove(&c) {
                self.complete_call(&p, Outcome::StationUnreachable, None);
            }
        }
        self.calls.deadlines.clear();
        self.fail_room_requests(
            |_| true,
            RoomError::UNREACHABLE,
            &format!("this station left the session: {reason}"),
        );
        self.migration.client = None;
        self.migration.handovers.clear();
        self.migration.scale_in = None;
        self.membership.state = State::Closed;
        // A closed station's links fall silent (their peers would otherwise
        // keep hearing its acknowledgements and heartbeats and never find
        // it gone); what must still go out lingers in `routing.closing`.
        let linked: Vec<StationId> = self
            .membership
            .members
            .iter()
            .filter(|(_, m)| m.link.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in linked {
            if let Some(m) = self.membership.members.get_mut(&id) {
                m.link = None;
            }
            self.link_changed(id);
        }
        self.events.push_back(Event::Disconnected {
            reason: reason.into(),
        });
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `StationJoined`: the session master admitted a station.
    pub(super) fn on_station_joined(&mut self, origin: StationId, info: StationInfo) {
        if origin != self.membership.session_master || info.id == self.membership.id {
            self.stats.bad_messages += 1;
            return;
        }
        if self
            .membership
            .members
            .get(&info.id)
            .is_some_and(|m| m.info.addr == info.addr)
        {
            // Known already (a new session master announces every member).
            return;
        }
        if self.membership.gone.contains(&info.id) {
            // Gone for good (an announcement that crossed its departure).
            return;
        }
        let op = self.make_op(
            OperationDetail::JoinStation(JoinStationOperation {
                station: info.clone(),
            }),
            origin,
            info.id,
            None,
        );
        let id = info.id;
        let i2 = info.clone();
        let spare = self
            .membership
            .spare_links
            .remove(&info.addr)
            .filter(|s| s.sender == id.0);
        trace!(station = %self.membership.id, joined = %id, spare = spare.is_some(), spares = self.membership.spare_links.len(), "station announced");
        let (link, early) = match spare {
            Some(s) => (Some(s.link), s.early),
            None => (None, Vec::new()),
        };
        self.run_op(op, None, false, |st, _| {
            st.add_member(i2, link);
            st.discover_all_for(id);
        });
        self.events.push_back(Event::StationJoined(info));
        let relays = self.process_type_of(id) == Some(ProcessType::Server);
        for (substream, env) in early {
            self.route(id, relays, substream, env);
        }
        self.member_announced(id);
        let mine = |e: &(Instant, StationId, u8, Envelope)| e.3.origin == id || e.3.dest == id;
        if self.routing.early_relayed.iter().any(mine) {
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.routing.early_relayed)
                .into_iter()
                .partition(mine);
            self.routing.early_relayed = later;
            self.recount_early();
            for (_, hop, substream, env) in now {
                let relays = self.process_type_of(hop) == Some(ProcessType::Server);
                self.route(hop, relays, substream, env);
            }
        }
    }
}
