//! After a partition heals: which side of a split session lives on.
//!
//! A partition (or any silence longer than the failure timeout between
//! stations that both live) splits a session in two: each side declares the
//! other failed, elects a session master among its own and recovers the
//! other's objects. Both would then accept calls on objects the other side
//! masters too. So every station remembers the stations declared failed
//! for [`StationConfig::partition_memory`] and, while it does, sends each
//! of them a small probe every half failure timeout (a `Probe` datagram:
//! its session master; sealed under the link's keys, which are kept for
//! this, with security on; from the address the station was at, with the
//! session's tag, without). A live station of the other side answers the
//! same way, and once probes come in, each station compares the sides:
//!
//! **The side with more of the session's voters lives on; on a tie, the
//! side whose session master has the lower id.** Voters are the stations
//! that may be session master (every station of a mesh, the servers of a
//! client-server session) and were in the session before the split (ids
//! below the first id the session could have given out after it): a
//! station counts its own side from its members, and the other side from
//! the distinct stations whose authentic probes named the same session
//! master within the last two probe intervals — never from what a probe
//! claims. Every station of the losing side reports [`Event::Excluded`]
//! and closes (dropping its masters and duplicas); the winners keep
//! everything they hold. The comparison is made again every probe interval
//! while probes come, so a lost probe only delays it.
//!
//! Authority: a probe is believed only from a voter this station
//! remembers as declared failed, authentic under the keys of the link the
//! two had (with security on) or from its last address with the
//! session's tag (without), and only while this station is in the
//! session. A cheating member that made itself be declared failed can
//! count as one station of a side of its own: it can end a side of one
//! voter with a higher session master id, nothing larger.

use super::*;

/// How many stations declared failed a station remembers at most.
const MAX_DEPARTED: usize = 256;

/// A station declared failed, remembered for the probes.
pub(super) struct Departed {
    addr: SocketAddr,
    /// The id the session would have given out next when it was declared
    /// failed: the voters of this station's own side below it are those
    /// the other side knew.
    first_new_id: u32,
    /// When it is forgotten.
    until: Instant,
}

/// What a probe said, and when.
struct Heard {
    master: StationId,
    at: Instant,
}

/// The partition rule's state: the stations declared failed, the probes
/// heard from them, and when the next probes go.
#[derive(Default)]
pub(super) struct Partition {
    departed: BTreeMap<StationId, Departed>,
    heard: BTreeMap<StationId, Heard>,
    next_probe: Option<Instant>,
    decide_at: Option<Instant>,
}

impl Partition {
    /// Whether `id`'s keys are still needed (its probes are opened with
    /// them).
    pub(super) fn remembers(&self, id: StationId) -> bool {
        self.departed.contains_key(&id)
    }

    /// The soonest deadline of the rule, if any.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let forget = self.departed.values().map(|d| d.until).min();
        [self.next_probe, self.decide_at, forget]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The body of a `Probe` datagram (after the packet header, sealed with
/// security on).
#[derive(serde::Serialize, serde::Deserialize)]
struct ProbeBody {
    /// The session master of the sender's side.
    master: u32,
}

impl Station {
    fn probe_interval(&self) -> Duration {
        (self.cfg.failure_timeout / 2).max(Duration::from_millis(1))
    }

    /// Whether stations of `info`'s kind take part in the rule.
    fn voter(&self, info: &StationInfo) -> bool {
        self.eligible_master(info)
    }

    /// Station `id` (at `info`) was declared failed: remembered for the
    /// probes, when both it and this station are voters.
    pub(super) fn remember_departed(&mut self, info: &StationInfo) {
        let me_voter = match self.cfg.topology {
            Topology::Mesh => true,
            Topology::ClientServer => self.cfg.process_type == ProcessType::Server,
        };
        if self.cfg.partition_memory.is_zero() || !self.voter(info) || !me_voter {
            return;
        }
        let (now, interval) = (self.now, self.probe_interval());
        let first_new_id = self
            .membership
            .members
            .keys()
            .map(|id| id.0 + 1)
            .chain([self.membership.next_station_id, self.membership.id.0 + 1])
            .max()
            .unwrap_or(u32::MAX);
        let p = &mut self.partition;
        if p.departed.len() >= MAX_DEPARTED {
            let oldest = p
                .departed
                .iter()
                .min_by_key(|(_, d)| d.until)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                p.departed.remove(&id);
            }
        }
        p.departed.insert(
            info.id,
            Departed {
                addr: info.addr,
                first_new_id,
                until: now + self.cfg.partition_memory,
            },
        );
        if p.next_probe.is_none() {
            p.next_probe = Some(now + interval);
        }
    }

    /// Timer: probes go out, the sides are compared, old records go.
    pub(super) fn partition_timeout(&mut self) {
        let now = self.now;
        if !self.is_in_session() {
            self.partition = Partition::default();
            return;
        }
        self.partition.departed.retain(|_, d| now < d.until);
        let members = &self.membership.members;
        // A station back at the address under another id is a member now.
        self.partition.departed.retain(|id, d| {
            !members.contains_key(id) && !self.membership.addrs.contains_key(&d.addr)
        });
        let keep = 2 * self.probe_interval();
        self.partition
            .heard
            .retain(|id, h| now < h.at + keep && self.partition.departed.contains_key(id));
        if self.partition.decide_at.is_some_and(|t| t <= now) {
            self.partition.decide_at = None;
            if self.decide_partition() {
                return;
            }
            if !self.partition.heard.is_empty() {
                self.partition.decide_at = Some(now + self.probe_interval());
            }
        }
        if self.partition.departed.is_empty() {
            self.partition = Partition::default();
            return;
        }
        if self.partition.next_probe.is_some_and(|t| t <= now) {
            self.partition.next_probe = Some(now + self.probe_interval());
            let to: Vec<(StationId, SocketAddr)> = self
                .partition
                .departed
                .iter()
                .map(|(id, d)| (*id, d.addr))
                .collect();
            for (id, addr) in to {
                self.send_probe(id, addr);
            }
        }
    }

    fn send_probe(&mut self, to: StationId, addr: SocketAddr) {
        let mut buf = Vec::with_capacity(48);
        PacketHeader {
            kind: PacketKind::Probe,
            session: self.membership.session_tag,
            sender: self.membership.id.0,
            receiver: to.0,
        }
        .encode(&mut buf);
        let header_len = buf.len();
        let body = ProbeBody {
            master: self.membership.session_master.0,
        };
        let Ok(bytes) = postcard::to_allocvec(&body) else {
            return;
        };
        buf.extend_from_slice(&bytes);
        if io::seal(&mut self.sec, to, &mut buf, header_len) {
            self.stats.probes_sent += 1;
            self.routing.transmits.push_back(Transmit {
                destination: addr,
                contents: buf,
            });
        }
    }

    /// A `Probe` datagram arrived (see the module's authority rule).
    pub(super) fn handle_probe(
        &mut self,
        from: SocketAddr,
        header: PacketHeader,
        datagram: &[u8],
        payload: &[u8],
    ) {
        let sender = StationId(header.sender);
        let known = self.partition.departed.get(&sender);
        let trusted_addr = known.is_some_and(|d| d.addr == from);
        if !self.is_in_session()
            || known.is_none()
            || header.receiver != self.membership.id.0
            || header.session != self.membership.session_tag
            || (self.sec.is_none() && !trusted_addr)
        {
            self.stats.probes_dropped += 1;
            return;
        }
        let plain = match self.sec.as_mut() {
            None => payload.to_vec(),
            Some(sec) => {
                let hlen = datagram.len() - payload.len();
                match sec.open(sender, &datagram[..hlen], payload) {
                    Ok(p) => p,
                    Err(_) => {
                        self.stats.probes_dropped += 1;
                        return;
                    }
                }
            }
        };
        let Ok(body) = postcard::from_bytes::<ProbeBody>(&plain) else {
            self.stats.probes_dropped += 1;
            return;
        };
        self.stats.probes_received += 1;
        let now = self.now;
        let first = self.partition.heard.is_empty();
        self.partition.heard.insert(
            sender,
            Heard {
                master: StationId(body.master),
                at: now,
            },
        );
        if first && self.partition.decide_at.is_none() {
            // Wait a probe interval and a little: every live station of the
            // other side sends one in that time.
            let wait = self.probe_interval() + self.probe_interval() / 4;
            self.partition.decide_at = Some(now + wait);
            // And it learns of this side at once.
            if let Some(d) = self.partition.departed.get(&sender) {
                let addr = d.addr;
                self.send_probe(sender, addr);
            }
        }
    }

    /// Compares this station's side with every other side it heard from;
    /// true if this side lost (the station is closed then).
    fn decide_partition(&mut self) -> bool {
        let mut sides: BTreeMap<StationId, BTreeSet<StationId>> = BTreeMap::new();
        for (id, h) in &self.partition.heard {
            sides.entry(h.master).or_default().insert(*id);
        }
        let own_master = self.membership.session_master;
        for (master, probers) in sides {
            if master == own_master || self.membership.members.contains_key(&master) {
                // Not another side (a station that has not heard yet).
                continue;
            }
            let floor = probers
                .iter()
                .filter_map(|p| self.partition.departed.get(p))
                .map(|d| d.first_new_id)
                .min()
                .unwrap_or(u32::MAX);
            let own = self
                .membership
                .members
                .values()
                .filter(|m| {
                    m.info.id.0 < floor
                        && !self.membership.gone.contains(&m.info.id)
                        && (!m.silent || m.info.id == self.membership.id)
                        && self.voter(&m.info)
                })
                .count()
                + usize::from(
                    !self.membership.members.contains_key(&self.membership.id)
                        && self.membership.id.0 < floor,
                );
            let other = probers.len();
            let lost = other > own || (other == own && master < own_master);
            debug!(
                station = %self.membership.id, %master, other, own, lost,
                "a split of the session heard from"
            );
            if lost {
                let reason = format!(
                    "the session was split and lived on without this station: the other side had {other} of its stations (session master {master}), this side {own} (session master {own_master})"
                );
                self.exclude(&reason);
                return true;
            }
        }
        false
    }
}
