//! Datagrams in, packets out: decoding, authentication and the links.

use super::*;

impl Station {
    /// The next datagram to send.
    ///
    /// Connectionless datagrams go first, then the packets of every link
    /// in order (members by id, closing links, a joiner's provisional
    /// links). One pass over the links builds all their packets at once;
    /// later calls hand them out until the pass is used up.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.advance(now);
        if let Some(t) = self.routing.transmits.pop_front() {
            self.stats.datagrams_sent += 1;
            return Some(t);
        }
        if self.routing.packets.is_empty() && self.may_build(now) {
            self.build_packets(now);
        }
        let t = self.routing.packets.pop_front()?;
        self.stats.datagrams_sent += 1;
        Some(t)
    }

    /// Whether [`Station::build_packets`] may find a packet to build: a
    /// link changed or came due, a link is closing, or a join is under way
    /// (provisional links). Otherwise a pass would visit nothing.
    fn may_build(&self, now: Instant) -> bool {
        !self.link_timers.ready.is_empty()
            || self.link_timers.due_links(now).next().is_some()
            || !self.routing.closing.is_empty()
            || matches!(self.membership.state, State::Joining { .. })
    }

    /// Takes back the buffer of a datagram the driver sent (a
    /// [`Transmit`]'s `contents`), for a packet built later: a driver that
    /// hands back what it sent spares an allocation per datagram. Keeps a
    /// few; the others are dropped.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.routing.spare.len() < MAX_SPARE_BUFFERS
            && buf.capacity() <= 2 * self.tcfg.max_datagram_size
        {
            buf.clear();
            self.routing.spare.push(buf);
        }
    }

    /// Builds every packet every link has to send now into `routing.packets`.
    fn build_packets(&mut self, now: Instant) {
        let mut b = PacketBuilder {
            scratch: &mut self.routing.scratch,
            spare: &mut self.routing.spare,
            sec: &mut self.sec,
            session: self.membership.session_tag,
            me: self.membership.id.0,
            now,
            out: &mut self.routing.packets,
        };
        // The links something happened to, and those whose time has come.
        let mut ids = std::mem::take(&mut self.link_timers.visit);
        ids.clear();
        ids.extend(self.link_timers.ready.iter().copied());
        ids.extend(self.link_timers.due_links(now));
        ids.sort_unstable();
        ids.dedup();
        for id in &ids {
            if let Some(m) = self.membership.members.get_mut(id) {
                if let Some(link) = m.link.as_mut() {
                    b.drain(*id, m.info.addr, link);
                }
            }
        }
        for c in self.routing.closing.iter_mut() {
            b.drain(c.id, c.addr, &mut c.link);
        }
        if let State::Joining { provisional, .. } = &mut self.membership.state {
            for (addr, (sender, link)) in provisional.iter_mut() {
                b.drain(StationId(*sender), *addr, link);
            }
        }
        for id in &ids {
            self.link_drained(*id);
        }
        self.link_timers.visit = ids;
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.advance(now);
        self.stats.datagrams_received += 1;
        let Ok((header, payload)) = PacketHeader::decode(datagram) else {
            self.stats.malformed_datagrams += 1;
            return;
        };
        match header.kind {
            PacketKind::Connectionless => {
                let Ok(msg) = postcard::from_bytes::<Msg>(payload) else {
                    self.stats.malformed_datagrams += 1;
                    return;
                };
                self.handle_connectionless(from, msg);
            }
            PacketKind::Link => {
                let (header, resolved) = match self.resolve_joiner(from, header) {
                    Some(h) => (h, true),
                    None => (header, false),
                };
                self.handle_sealed_link_packet(from, header, resolved, datagram, payload);
            }
            PacketKind::Probe => self.handle_probe(from, header, datagram, payload),
        }
        self.drain_local();
        if self.migration.client.is_some()
            || !self.migration.handovers.is_empty()
            || self.migration.scale_in.is_some()
        {
            self.progress_migrations();
            self.drain_local();
        }
    }

    pub(super) fn handle_sealed_link_packet(
        &mut self,
        from: SocketAddr,
        header: PacketHeader,
        resolved: bool,
        datagram: &[u8],
        payload: &[u8],
    ) {
        match self.sec.as_mut() {
            None => self.handle_link_packet(from, header, resolved, payload),
            Some(sec) => {
                let hlen = datagram.len() - payload.len();
                let peer = StationId(header.sender);
                match sec.open(peer, &datagram[..hlen], payload) {
                    Ok(plain) => self.handle_link_packet(from, header, resolved, &plain),
                    Err(crate::crypto::OpenError::Replayed) => self.stats.replayed += 1,
                    Err(crate::crypto::OpenError::Unauthentic) => self.stats.auth_failed += 1,
                }
            }
        }
    }

    pub(super) fn handle_link_packet(
        &mut self,
        from: SocketAddr,
        header: PacketHeader,
        resolved: bool,
        payload: &[u8],
    ) {
        let now = self.now;
        if let State::Joining {
            provisional, early, ..
        } = &mut self.membership.state
        {
            let receivers = &mut self.membership.provisional_receivers;
            if provisional.is_empty() {
                receivers.clear();
            }
            // Packets for a station that was at this address before name
            // an older id than the packets for this one (ids only grow):
            // the newest receiver's link is kept, the older ones dropped
            // with what they brought.
            match receivers.get(&from) {
                Some(&r) if header.receiver < r => {
                    self.stats.unknown_sender += 1;
                    return;
                }
                Some(&r) if header.receiver > r => {
                    // The peer may have taken what the dropped link sent
                    // for this station's: the new one numbers on.
                    if let Some((_, old)) = provisional.remove(&from) {
                        provisional.insert(from, (header.sender, old.successor(now)));
                        receivers.insert(from, header.receiver);
                    }
                    early.retain(|(a, _, _)| *a != from);
                }
                _ => {}
            }
            if !provisional.contains_key(&from) {
                if provisional.len() >= MAX_PROVISIONAL_LINKS {
                    self.stats.unknown_sender += 1;
                    return;
                }
                provisional.insert(from, (header.sender, Link::new(self.tcfg.clone(), now)));
                receivers.insert(from, header.receiver);
            }
            let Some((_, link)) = provisional.get_mut(&from) else {
                return;
            };
            if link.handle_packet(now, payload).is_err() {
                self.stats.malformed_datagrams += 1;
                return;
            }
            let mut got = Vec::new();
            while let Some(d) = link.poll_message() {
                let substream = delivered_substream(d.channel);
                match Envelope::decode(&d.data) {
                    Some(env) => got.push((substream, env)),
                    None => self.stats.bad_messages += 1,
                }
            }
            let mut accepted = None;
            for (substream, env) in got {
                if matches!(env.msg, Msg::JoinAccepted { .. }) && accepted.is_none() {
                    accepted = Some((substream, env));
                } else if early.len() < self.cfg.limits.max_early_messages {
                    early.push((from, substream, env));
                } else {
                    self.stats.early_messages_limited += 1;
                    self.limit_state
                        .hit(crate::limits::Limit::EarlyMessages, self.membership.id);
                }
            }
            if let Some((substream, env)) = accepted {
                // The acceptance names this station's id: links built from
                // packets to another id were the links of a station that
                // was here before.
                let me = header.receiver;
                for (a, (_, link)) in provisional.iter_mut() {
                    if receivers.get(a).is_some_and(|r| *r != me) {
                        *link = link.successor(now);
                    }
                }
                early.retain(|(a, _, _)| receivers.get(a).is_none_or(|r| *r == me));
                receivers.clear();
                // Links to stations the acceptance does not list yet wait
                // for their announcement, with what came on them.
                // (The accepting station is listed where it has itself, and
                // linked where its answer came from.)
                // A link whose packets name another sender than the member
                // listed at its address is of a station that came to that
                // address after it (ids only grow): it waits as well.
                let listed: BTreeMap<SocketAddr, u32> = match &env.msg {
                    Msg::JoinAccepted { members, .. } => {
                        members.iter().map(|m| (m.addr, m.id.0)).collect()
                    }
                    _ => BTreeMap::new(),
                };
                let spare = &mut self.membership.spare_links;
                spare.clear();
                let unlisted: Vec<SocketAddr> = provisional
                    .iter()
                    .filter(|(a, (sender, _))| {
                        **a != from
                            && listed
                                .get(*a)
                                .is_none_or(|id| *sender != 0 && *sender > *id)
                    })
                    .map(|(a, _)| *a)
                    .collect();
                for a in unlisted {
                    if let Some((sender, link)) = provisional.remove(&a) {
                        let came: Vec<(u8, Envelope)> = early
                            .iter()
                            .filter(|(from, _, _)| *from == a)
                            .map(|(_, s, e)| (*s, e.clone()))
                            .collect();
                        early.retain(|(from, _, _)| *from != a);
                        spare.insert(
                            a,
                            SpareLink {
                                sender,
                                link,
                                early: came,
                            },
                        );
                    }
                }
                self.on_join_accepted(from, header.sender, substream, env);
            }
            return;
        }
        if !self.is_in_session() {
            self.stats.unknown_sender += 1;
            return;
        }
        if header.session != self.membership.session_tag {
            self.stats.wrong_session += 1;
            return;
        }
        if header.receiver != self.membership.id.0 {
            // For a station that was at this address before (its peers'
            // links to it linger to flush): not for this station's links.
            self.stats.unknown_sender += 1;
            return;
        }
        let sender = StationId(header.sender);
        let linked = self
            .membership
            .members
            .get(&sender)
            .is_some_and(|m| m.link.is_some() && m.info.addr == from);
        if !linked {
            if let Some(c) = self
                .routing
                .closing
                .iter_mut()
                .find(|c| c.id == sender && c.addr == from)
            {
                if c.link.handle_packet(now, payload).is_err() {
                    self.stats.malformed_datagrams += 1;
                    return;
                }
                let mut got = Vec::new();
                while let Some(d) = c.link.poll_message() {
                    got.push(d);
                }
                let (deliver, relays) = (c.deliver, c.relays);
                for d in got {
                    let substream = delivered_substream(d.channel);
                    match Envelope::decode(&d.data) {
                        // Only acknowledgements matter now, and what it
                        // passes on to clients (numbered, so never twice),
                        // unless the link is a migrating client's old
                        // server's: all of it is handled.
                        Some(env) if deliver || env.seq != 0 => {
                            self.route(sender, relays, substream, env)
                        }
                        Some(_) => {}
                        None => self.stats.bad_messages += 1,
                    }
                }
                return;
            }
        }
        let Some(m) = self.membership.members.get_mut(&sender) else {
            self.stats.unknown_sender += 1;
            return;
        };
        if sender == self.membership.id || (m.info.addr != from && resolved) {
            self.stats.unknown_sender += 1;
            return;
        }
        let moved = m.info.addr != from;
        let Some(link) = m.link.as_mut() else {
            self.stats.unknown_sender += 1;
            return;
        };
        if moved {
            // The peer's address changed (NAT rebinding, another network):
            // the link follows once a packet from the new address is
            // authentic (sealed under the link's key, with security on) or
            // carries the session's tag (without), and is the newest the
            // link has seen; a late or replayed one is dropped and moves
            // nothing.
            if !link.is_newest(payload) || !self.follow_address(sender, from) {
                self.stats.unknown_sender += 1;
                return;
            }
        }
        let Some(m) = self.membership.members.get_mut(&sender) else {
            return;
        };
        let Some(link) = m.link.as_mut() else {
            return;
        };
        if link.handle_packet(now, payload).is_err() {
            self.stats.malformed_datagrams += 1;
            self.link_changed(sender);
            return;
        }
        if m.silent {
            m.silent = false;
        }
        if !resolved {
            m.heard = true;
        }
        // A message handled here may lead to another packet's handling
        // (which then finds the list taken and uses a new one).
        let mut got = std::mem::take(&mut self.routing.delivered);
        while let Some(d) = link.poll_message() {
            got.push(d);
        }
        let relays = m.info.process_type == ProcessType::Server;
        self.link_changed(sender);
        for d in got.drain(..) {
            let substream = delivered_substream(d.channel);
            let Some(env) = Envelope::decode(&d.data) else {
                self.stats.bad_messages += 1;
                continue;
            };
            if let Some(r) = self.membership.reported.get_mut(&sender) {
                // A client reported silent: its word waits for the verdict.
                self.stats.reported_client_messages += 1;
                if r.held.len() < self.cfg.limits.max_early_messages {
                    r.held.push((substream, env));
                }
                continue;
            }
            self.route(sender, relays, substream, env);
        }
        self.routing.delivered = got;
    }
}

impl Station {
    /// Moves member `id`'s link to `addr`, where its newest packet came
    /// from; false if another member is known at `addr`.
    fn follow_address(&mut self, id: StationId, addr: SocketAddr) -> bool {
        if self
            .membership
            .addrs
            .get(&addr)
            .is_some_and(|other| *other != id && self.membership.members.contains_key(other))
        {
            return false;
        }
        let Some(m) = self.membership.members.get_mut(&id) else {
            return false;
        };
        let old = std::mem::replace(&mut m.info.addr, addr);
        if self.membership.addrs.get(&old) == Some(&id) {
            self.membership.addrs.remove(&old);
        }
        self.membership.addrs.insert(addr, id);
        self.stats.address_changes += 1;
        debug!(station = %self.membership.id, peer = %id, %old, new = %addr, "peer address changed");
        self.events
            .push_back(Event::PeerAddressChanged { station: id, addr });
        true
    }
}

/// Builds the packets of links (headers, frames, seals) into a queue.
struct PacketBuilder<'a> {
    /// Where packets are built, so that an idle link allocates nothing; a
    /// fresh buffer replaces one that is handed out.
    scratch: &'a mut Vec<u8>,
    /// Buffers of datagrams sent before, handed back by the driver.
    spare: &'a mut Vec<Vec<u8>>,
    sec: &'a mut Option<crate::crypto::SecurityState>,
    session: u32,
    me: u32,
    now: Instant,
    out: &'a mut VecDeque<Transmit>,
}

impl PacketBuilder<'_> {
    /// Every packet `link` (to `peer` at `addr`) has to send now.
    fn drain(&mut self, peer: StationId, addr: SocketAddr, link: &mut Link) {
        while link.may_send(self.now) {
            self.scratch.clear();
            PacketHeader {
                kind: PacketKind::Link,
                session: self.session,
                sender: self.me,
                receiver: peer.0,
            }
            .encode(self.scratch);
            let header_len = self.scratch.len();
            if !link.poll_packet(self.now, self.scratch) {
                return;
            }
            // A copy of the packet's size (room for the seal's counter and
            // tag when security is on); the buffer is built in again.
            let extra = if self.sec.is_some() { SEAL_OVERHEAD } else { 0 };
            let mut buf = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.scratch.len() + extra));
            buf.clear();
            buf.extend_from_slice(self.scratch);
            if seal(self.sec, peer, &mut buf, header_len) {
                self.out.push_back(Transmit {
                    destination: addr,
                    contents: buf,
                });
            }
        }
    }
}

/// How many sent datagrams' buffers a station keeps for later packets.
const MAX_SPARE_BUFFERS: usize = 8;

/// What sealing adds to a link datagram: the counter (8 bytes) and the
/// AEAD tag (16).
const SEAL_OVERHEAD: usize = 24;

/// Seals a link datagram for `peer` when security is on; false if it must
/// not be sent (no key for the peer).
pub(super) fn seal(
    sec: &mut Option<crate::crypto::SecurityState>,
    peer: StationId,
    buf: &mut Vec<u8>,
    header_len: usize,
) -> bool {
    match sec {
        None => true,
        Some(sec) => sec.seal(peer, buf, header_len),
    }
}
