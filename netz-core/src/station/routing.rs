//! Sending, relaying and in-order delivery of envelopes.

use super::*;

/// What goes out and what passes through: the local queue, connectionless
/// datagrams, links that are closing, relays waiting for a `StationJoined`,
/// and the numbering of messages to clients.
pub(super) struct Routing {
    /// Messages from this station to itself, handled after the current input.
    pub(super) local_queue: VecDeque<(StationId, Msg)>,
    /// Links of stations that left gracefully (or stopped being direct
    /// peers), kept briefly so that the last acknowledgements and messages
    /// still go out.
    pub(super) closing: Vec<Closing>,
    /// Links of a client and a server it moved away from, once their time
    /// to close is up, kept (not driven) while the peer is in the session:
    /// if the client comes back, both ends take the same link up again
    /// (each end's closing link runs out at its own time, and one end
    /// taking up its old link while the other made a new one lost
    /// everything sent on it).
    pub(super) dormant: BTreeMap<StationId, Link>,
    /// Messages a server relays from or to a station whose `StationJoined`
    /// has not arrived yet (it took another path): (received, hop, sub-stream).
    pub(super) early_relayed: Vec<(Instant, StationId, u8, Envelope)>,
    /// The encoded size of `early_relayed`.
    pub(super) early_relayed_bytes: usize,
    /// Client-server sessions: the number of the last message this station
    /// sent to a client, per (client, sub-stream).
    pub(super) seq_out: crate::fasthash::FastMap<(StationId, u8), u64>,
    /// A client: messages to it in each sender's order, per (sender,
    /// sub-stream); they may take two paths while a server hands it over.
    pub(super) seq_in: BTreeMap<(StationId, u8), InOrder>,
    /// Connectionless datagrams ready to go.
    pub(super) transmits: VecDeque<Transmit>,
    /// Link packets built by the last pass over the links, not handed out yet.
    pub(super) packets: VecDeque<Transmit>,
    /// Where packets are built; a packet leaves as a copy of its exact
    /// size, and the buffer stays.
    pub(super) scratch: Vec<u8>,
    /// The messages a member's link delivered from one packet, kept so that
    /// a packet allocates no list.
    pub(super) delivered: Vec<crate::transport::Delivered>,
    /// Buffers of sent datagrams the driver handed back
    /// ([`Station::recycle`]), for the next packets.
    pub(super) spare: Vec<Vec<u8>>,
}

impl Routing {
    pub(super) fn new(seed: u64) -> Routing {
        Routing {
            local_queue: VecDeque::new(),
            closing: Vec::new(),
            dormant: BTreeMap::new(),
            early_relayed: Vec::new(),
            early_relayed_bytes: 0,
            seq_out: crate::fasthash::FastMap::with_hasher(crate::fasthash::SeededState(seed)),
            seq_in: BTreeMap::new(),
            transmits: VecDeque::new(),
            packets: VecDeque::new(),
            scratch: Vec::new(),
            delivered: Vec::new(),
            spare: Vec::new(),
        }
    }
}

/// A link kept after its station stopped being a direct peer, so that the
/// last acknowledgements and retransmissions still go out.
pub(super) struct Closing {
    pub(super) id: StationId,
    pub(super) addr: SocketAddr,
    pub(super) link: Link,
    pub(super) until: Instant,
    /// Whether messages still arriving on it are handled (the old server's
    /// link of a migrating client) or dropped.
    pub(super) deliver: bool,
    /// Whether the peer is a server (which may relay for others; anyone
    /// else speaks only for itself).
    pub(super) relays: bool,
}

impl Closing {
    /// The link to `info`'s station, kept until `until`; what still arrives
    /// on it is handled when `deliver`.
    pub(super) fn new(info: &StationInfo, link: Link, until: Instant, deliver: bool) -> Closing {
        Closing {
            id: info.id,
            addr: info.addr,
            link,
            until,
            deliver,
            relays: info.process_type == ProcessType::Server,
        }
    }
}

impl Station {
    /// Drives the closing links and drops those whose time is up; the
    /// links of stations still in the session and no longer linked (a
    /// client and the server it left) are kept dormant instead.
    pub(super) fn expire_closing(&mut self, now: Instant) {
        for mut c in std::mem::take(&mut self.routing.closing) {
            c.link.handle_timeout(now);
            if now < c.until {
                self.routing.closing.push(c);
            } else if self
                .membership
                .members
                .get(&c.id)
                .is_some_and(|m| m.link.is_none())
            {
                self.routing.dormant.insert(c.id, c.link);
            }
        }
        let members = &self.membership.members;
        self.routing
            .dormant
            .retain(|id, _| members.contains_key(id));
    }
}

/// A client's receiving order for one (sender, sub-stream).
pub(super) struct InOrder {
    /// The number of the next message to handle.
    pub(super) next: u64,
    /// Messages that arrived ahead of `next`.
    pub(super) held: BTreeMap<u64, Envelope>,
    /// Since when the oldest gap has not moved.
    pub(super) since: Option<Instant>,
}

impl InOrder {
    /// Nothing held; `next` is the number of the next message to handle.
    pub(super) fn expecting(next: u64) -> InOrder {
        InOrder {
            next,
            held: BTreeMap::new(),
            since: None,
        }
    }
}

/// The sub-stream a delivered message came on (the unreliable channel
/// counts as the system stream).
pub(super) fn delivered_substream(channel: crate::transport::Channel) -> u8 {
    match channel {
        crate::transport::Channel::Reliable(s) => s,
        _ => SYSTEM_STREAM,
    }
}

/// How many takeovers a server keeps from its clients, and how many
/// failed stations of each (see [`Membership::withheld`]).
const MAX_WITHHELD: usize = 16;
const MAX_WITHHELD_FAILED: usize = 256;

/// Messages a client holds back per sender behind a gap before it gives up
/// on the gap.
pub(super) const MAX_HELD_IN_ORDER: usize = 4096;

impl Station {
    /// Keeps a relayed message for a station not known yet, within the
    /// count and byte bounds.
    fn keep_early(&mut self, hop: StationId, substream: u8, env: Envelope) {
        let size = postcard::experimental::serialized_size(&env).unwrap_or(usize::MAX);
        if self.routing.early_relayed.len() >= MAX_EARLY_RELAYED
            || self.routing.early_relayed_bytes.saturating_add(size) > MAX_EARLY_RELAYED_BYTES
        {
            self.stats.early_messages_limited += 1;
            return;
        }
        trace!(station = %self.membership.id, origin = %env.origin, dest = %env.dest, msg = env.msg.name(), "relayed message kept for a station not known yet");
        self.routing.early_relayed_bytes += size;
        self.routing
            .early_relayed
            .push((self.now, hop, substream, env));
    }

    /// Counts the bytes of the relayed messages kept again (after some left).
    pub(super) fn recount_early(&mut self) {
        self.routing.early_relayed_bytes = self
            .routing
            .early_relayed
            .iter()
            .map(|e| postcard::experimental::serialized_size(&e.3).unwrap_or(0))
            .sum();
    }

    /// Whether this server keeps from its client a takeover it does not
    /// follow itself: a client hears the rest of the session only through
    /// its server, so it cannot tell whether the stations a
    /// `NewSessionMaster` names as failed are silent; its server can, and
    /// passes the word on only from the session master it follows (the
    /// server's own copy comes first: [`Station::broadcast`]).
    fn withholds_takeover(&mut self, env: &Envelope) -> bool {
        let Msg::NewSessionMaster { failed } = &env.msg else {
            return false;
        };
        if self.cfg.process_type != ProcessType::Server
            || env.origin == self.membership.session_master
        {
            return false;
        }
        let w = &mut self.membership.withheld;
        if w.contains_key(&env.origin) || w.len() < MAX_WITHHELD {
            let failed: Vec<StationId> = failed.iter().copied().take(MAX_WITHHELD_FAILED).collect();
            w.insert(env.origin, failed);
        }
        true
    }

    /// A server follows `master` as session master now, by its own view
    /// (its silence, a departure): a takeover of `master` it kept from
    /// its clients goes to them now, in `master`'s name (a client takes
    /// its server's word for who sent what it relays).
    pub(super) fn pass_on_takeover(&mut self, master: StationId) {
        let Some(failed) = self.membership.withheld.remove(&master) else {
            return;
        };
        self.vouch_takeover(master, failed, None);
    }

    /// Tells this server's clients (or only `to`) that `master` leads the
    /// session, naming `failed` gone, and who is in it (what the session
    /// master said while the client followed another may have been
    /// refused): unnumbered, in `master`'s name.
    pub(super) fn vouch_takeover(
        &mut self,
        master: StationId,
        failed: Vec<StationId>,
        to: Option<StationId>,
    ) {
        let me = self.membership.id;
        let clients: Vec<StationId> = self
            .membership
            .members
            .values()
            .filter(|m| m.info.relay == Some(me) && m.info.process_type == ProcessType::Client)
            .filter(|m| m.link.is_some() && to.is_none_or(|t| t == m.info.id))
            .map(|m| m.info.id)
            .collect();
        let infos: Vec<StationInfo> = self
            .membership
            .members
            .values()
            .map(|m| m.info.clone())
            .collect();
        for c in clients {
            let Some(to) = infos.iter().find(|i| i.id == c).cloned() else {
                continue;
            };
            let msgs = std::iter::once(Msg::NewSessionMaster {
                failed: failed.clone(),
            })
            .chain(
                infos
                    .iter()
                    .filter(|i| i.id != c && i.id != master)
                    .map(|i| Msg::StationJoined(self.shown_to(i, &to))),
            );
            for msg in msgs.collect::<Vec<_>>() {
                let env = Envelope {
                    seq: 0,
                    origin: master,
                    dest: c,
                    msg,
                };
                self.send_envelope(SYSTEM_STREAM, env);
            }
        }
    }

    /// Handles an envelope that arrived from `hop` (a server when
    /// `relays`): only a server of a client-server session speaks for
    /// others; what is for another station is passed on (a server checks
    /// what its clients send first: [`Station::referee`]). Relays change
    /// only on the session master's word (`Reattach`), so they cannot be
    /// made to loop.
    pub(super) fn route(&mut self, hop: StationId, relays: bool, substream: u8, mut env: Envelope) {
        let relays = relays && self.cfg.topology == Topology::ClientServer;
        let origin_ok =
            env.origin == hop || (relays && self.membership.members.contains_key(&env.origin));
        if !origin_ok {
            // A server may relay what a new client sent before the session
            // master's `StationJoined` for it reached us: keep it briefly.
            let early = relays
                && !self.membership.members.contains_key(&env.origin)
                && !self.membership.gone.contains(&env.origin);
            if early {
                self.keep_early(hop, substream, env);
            } else {
                self.stats.bad_messages += 1;
            }
            return;
        }
        if env.dest.is_some() && env.dest != self.membership.id {
            if self.membership.members.contains_key(&env.dest) {
                let refused = if env.origin == hop && !relays {
                    !self.referee(substream, &mut env)
                } else {
                    self.withholds_takeover(&env)
                };
                if refused {
                    if env.seq == 0 {
                        return;
                    }
                    // Its number goes on, so the receiver's order has no gap.
                    env.msg = Msg::Withheld;
                }
                self.stats.relayed += 1;
                let (dest, origin) = (env.dest, env.origin);
                if !self.send_envelope(substream, env) {
                    debug!(station = %self.membership.id, %origin, %dest, "relayed message dropped: no route");
                }
            } else if self.is_session_master() && self.membership.members.contains_key(&hop) {
                // The session master admits every station: one it does not
                // count is not in the session, and the sender, which still
                // counts it, is told (a client of another server reports
                // no silence to anyone).
                self.stats.unknown_sender += 1;
                self.tell_relay_departure(hop, env.dest);
            } else if self.cfg.topology == Topology::ClientServer
                && !self.membership.gone.contains(&env.dest)
            {
                // For a new client whose `StationJoined` took another path.
                self.keep_early(hop, substream, env);
            } else {
                self.stats.unknown_sender += 1;
            }
            return;
        }
        if env.seq != 0 {
            self.handle_in_order(substream, env);
        } else {
            self.handle_msg(env.origin, env.msg);
        }
    }

    /// A numbered message to this client: handled in its sender's order,
    /// once; those ahead of a gap wait for it (see [`Envelope::seq`]).
    pub(super) fn handle_in_order(&mut self, substream: u8, env: Envelope) {
        let now = self.now;
        let key = (env.origin, substream);
        let order = self
            .routing
            .seq_in
            .entry(key)
            .or_insert_with(|| InOrder::expecting(1));
        if env.seq < order.next || order.held.contains_key(&env.seq) {
            self.stats.duplicate_messages += 1;
            return;
        }
        if env.seq - order.next > 4 * MAX_HELD_IN_ORDER as u64 {
            // Far beyond anything a sender can have outstanding.
            self.refuse(
                env.msg.name(),
                env.origin,
                "numbered far ahead of its sender",
            );
            return;
        }
        if env.seq > order.next {
            order.held.insert(env.seq, env);
            order.since.get_or_insert(now);
            if order.held.len() > MAX_HELD_IN_ORDER {
                self.skip_gap(key);
            }
            return;
        }
        order.next += 1;
        let mut ready = vec![env];
        Self::take_ready(order, &mut ready, now);
        for e in ready {
            self.handle_msg(e.origin, e.msg);
        }
    }

    /// Moves the messages that are next in order out of `order.held`.
    pub(super) fn take_ready(order: &mut InOrder, ready: &mut Vec<Envelope>, now: Instant) {
        while let Some(e) = order.held.remove(&order.next) {
            order.next += 1;
            ready.push(e);
        }
        order.since = (!order.held.is_empty()).then_some(now);
    }

    /// Gives up on the gap in front of the messages held for `key`.
    pub(super) fn skip_gap(&mut self, key: (StationId, u8)) {
        let now = self.now;
        let Some(order) = self.routing.seq_in.get_mut(&key) else {
            return;
        };
        let Some(&first) = order.held.keys().next() else {
            return;
        };
        self.stats.sequence_gaps += first - order.next;
        debug!(station = %self.membership.id, from = %key.0, missing = first - order.next, "gave up on a gap");
        order.next = first;
        let mut ready = Vec::new();
        Self::take_ready(order, &mut ready, now);
        for e in ready {
            self.handle_msg(e.origin, e.msg);
        }
    }

    /// How long a client waits for a gap in a sender's messages to fill:
    /// long enough for a server that left to be noticed and what it did
    /// not pass on to come another way.
    pub(super) fn gap_timeout(&self) -> Duration {
        self.cfg.failure_timeout * 2
    }

    pub(super) fn next_hop(&self, dest: StationId) -> Option<StationId> {
        let m = self.membership.members.get(&dest)?;
        if m.link.is_some() {
            return Some(dest);
        }
        if self.cfg.topology == Topology::ClientServer {
            if self.cfg.process_type == ProcessType::Client {
                return self
                    .membership
                    .members
                    .get(&self.membership.relay)
                    .filter(|r| r.link.is_some())
                    .map(|_| self.membership.relay);
            }
            let r = m.info.relay?;
            return self
                .membership
                .members
                .get(&r)
                .filter(|r| r.link.is_some())
                .map(|_| r);
        }
        None
    }

    /// Sends `env` towards its destination. A message of this station to a
    /// client of a client-server session gets its number (see
    /// [`Envelope::seq`]); relayed ones keep theirs.
    pub(super) fn send_envelope(&mut self, substream: u8, mut env: Envelope) -> bool {
        let Some(hop) = self.next_hop(env.dest) else {
            return false;
        };
        let substream = self.substream(substream);
        let numbered =
            (env.seq == 0 && env.origin == self.membership.id && self.sequenced(env.dest))
                .then(|| self.next_seq(env.dest, substream));
        if let Some(n) = numbered {
            env.seq = n;
        }
        let sent = self.send_bytes(hop, substream, env.encode());
        if let (true, Some(n)) = (sent, numbered) {
            self.routing.seq_out.insert((env.dest, substream), n);
        }
        sent
    }

    /// The sub-stream a message on `substream` travels on.
    pub(super) fn substream(&self, substream: u8) -> u8 {
        if substream < self.tcfg.substreams {
            substream
        } else {
            SYSTEM_STREAM
        }
    }

    /// Whether messages to `dest` are numbered: it is a client of a
    /// client-server session, whose server may change under them.
    pub(super) fn sequenced(&self, dest: StationId) -> bool {
        self.cfg.topology == Topology::ClientServer
            && self
                .membership
                .members
                .get(&dest)
                .is_some_and(|m| m.info.process_type == ProcessType::Client)
    }

    /// The number the next message to `dest` on `substream` gets (taken
    /// only once it was queued).
    pub(super) fn next_seq(&self, dest: StationId, substream: u8) -> u64 {
        self.routing
            .seq_out
            .get(&(dest, substream))
            .copied()
            .unwrap_or(0)
            + 1
    }

    /// Queues an encoded envelope on the link to `hop`, within the queue limit.
    /// Queues `bytes` (a slice is copied, a `Vec` taken over) on the link
    /// to `hop`.
    pub(super) fn send_bytes(
        &mut self,
        hop: StationId,
        substream: u8,
        bytes: impl AsRef<[u8]> + Into<Vec<u8>>,
    ) -> bool {
        let substream = self.substream(substream);
        match self
            .membership
            .members
            .get_mut(&hop)
            .and_then(|m| m.link.as_mut())
        {
            Some(link) => {
                if link.queued_bytes() + bytes.as_ref().len()
                    > self.cfg.limits.max_queued_bytes_per_link
                {
                    self.stats.send_queue_limited += 1;
                    self.limit_state
                        .hit(crate::limits::Limit::QueuedBytes, self.membership.id);
                    return false;
                }
                let sent = link.send_reliable_owned(substream, bytes.into()).is_ok();
                self.link_changed(hop);
                sent
            }
            None => false,
        }
    }

    /// Sends one message to several stations, encoding it once for every
    /// station with a direct link (addressed to "the hop": no destination).
    pub(super) fn multicast(&mut self, targets: &[StationId], substream: u8, msg: Msg) {
        if self.migration.client.is_some() {
            for &t in targets {
                self.send(t, substream, msg.clone());
            }
            return;
        }
        let me = self.membership.id;
        let substream = self.substream(substream);
        let mut direct: Option<Vec<u8>> = None;
        for &t in targets {
            if t != me
                && self
                    .membership
                    .members
                    .get(&t)
                    .is_some_and(|m| m.link.is_some())
            {
                let bytes = direct.get_or_insert_with(|| {
                    Envelope {
                        seq: 0,
                        origin: me,
                        dest: StationId::NONE,
                        msg: msg.clone(),
                    }
                    .encode()
                });
                if self.sequenced(t) {
                    let n = self.next_seq(t, substream);
                    let numbered = Envelope::renumbered(bytes, n);
                    if self.send_bytes(t, substream, numbered) {
                        self.routing.seq_out.insert((t, substream), n);
                    }
                } else {
                    self.send_bytes(t, substream, bytes.as_slice());
                }
            } else {
                self.send(t, substream, msg.clone());
            }
        }
    }

    /// Sends `msg` to `dest` (itself included: queued locally).
    pub(super) fn send(&mut self, dest: StationId, substream: u8, msg: Msg) -> bool {
        if dest == self.membership.id {
            self.routing
                .local_queue
                .push_back((self.membership.id, msg));
            return true;
        }
        trace!(station = %self.membership.id, to = %dest, msg = msg.name(), handle = ?msg.handle(), "send");
        let env = Envelope {
            seq: 0,
            origin: self.membership.id,
            dest,
            msg,
        };
        if let Some(m) = self.migration.client.as_mut() {
            // Held until the new server welcomes us, then sent in order.
            m.held.push((substream, env));
            return true;
        }
        self.send_envelope(substream, env)
    }

    /// Sends `msg` at once, even while migrating (the migration's own messages).
    pub(super) fn send_now(&mut self, dest: StationId, msg: Msg) -> bool {
        trace!(station = %self.membership.id, to = %dest, msg = msg.name(), handle = ?msg.handle(), "send");
        let env = Envelope {
            seq: 0,
            origin: self.membership.id,
            dest,
            msg,
        };
        self.send_envelope(SYSTEM_STREAM, env)
    }

    /// Sends `msg` to every member but those in `except`.
    ///
    /// Servers come first: a server passes a client's copy on only once
    /// it handled its own (see [`Station::withholds_takeover`]).
    pub(super) fn broadcast(&mut self, msg: &Msg, except: &[StationId]) {
        let mut ids: Vec<StationId> = self
            .membership
            .members
            .keys()
            .copied()
            .filter(|i| *i != self.membership.id && !except.contains(i))
            .collect();
        ids.sort_by_key(|i| self.process_type_of(*i) == Some(ProcessType::Client));
        self.multicast(&ids, SYSTEM_STREAM, msg.clone());
    }

    pub(super) fn send_connectionless(&mut self, to: SocketAddr, msg: &Msg) {
        let mut buf = Vec::new();
        PacketHeader {
            kind: PacketKind::Connectionless,
            session: self.membership.session_tag,
            sender: self.membership.id.0,
            receiver: 0,
        }
        .encode(&mut buf);
        if let Ok(b) = postcard::to_extend(msg, buf) {
            self.routing.transmits.push_back(Transmit {
                destination: to,
                contents: b,
            });
        }
    }

    pub(super) fn drain_local(&mut self) {
        if self.calls.reentrancy > 0 {
            return;
        }
        let mut guard = 0;
        while let Some((origin, msg)) = self.routing.local_queue.pop_front() {
            self.handle_msg(origin, msg);
            guard += 1;
            if guard > 100_000 {
                break;
            }
        }
    }
}
