//! Join requests on the receiving side: tokens, approval, admission.

use super::*;

/// The highest station id a session gives out: a handle names its creator
/// in 24 bits.
const MAX_STATION_ID: u32 = 0x00FF_FFFF;
/// Why a join is refused once every station id was given out.
const IDS_USED_UP: &str = "the session has given out every station id (2^24 - 1)";

/// Join requests on their way: the session master's pending decisions,
/// and which request (by address and nonce) was handled already.
#[derive(Default)]
pub(super) struct Admission {
    /// The join-dedup table: the nonce of the last request handled (admitted,
    /// forwarded or decided) per joiner address, so retries are not handled twice.
    pub(super) join_dedup: HashMap<SocketAddr, u64>,
    /// Of those, the requests this station passed on, by joiner address:
    /// the session master they went to. A retry goes on again once that
    /// station is no longer the session master (it went away before it
    /// answered), or is taken up here if this station is now.
    pub(super) forwards: HashMap<SocketAddr, StationId>,
    /// Joins whose approval was postponed (`PostponeDecision`).
    pub(super) pending: BTreeMap<StationId, PendingJoin>,
    /// The key of this station's challenge cookies, drawn from the
    /// station's random sequence when first needed.
    cookie_key: Option<crate::crypto::Key>,
    /// While joining: the cookie the contact challenged us with.
    pub(super) join_cookie: [u8; 16],
    /// This station's classes, as a joiner's are compared with them.
    pub(super) classes: Vec<crate::compat::ClassDesc>,
    /// With security on, at a contact: the `JoinKeys` of joiners admitted
    /// through it and not heard from yet (request nonce, sealed body), sent
    /// again when their request is.
    pub(super) join_keys: HashMap<SocketAddr, (u64, Vec<u8>)>,
}

impl Admission {
    /// Forgets the request from `addr`: its entry in the join-dedup table
    /// and where it was passed on.
    pub(super) fn forget(&mut self, addr: SocketAddr) {
        self.join_dedup.remove(&addr);
        self.forwards.remove(&addr);
    }
}

/// A join request as the station that decides it sees it.
pub(super) struct JoinAsk {
    pub(super) nonce: u64,
    /// The joiner's address, as its contact saw it.
    pub(super) addr: SocketAddr,
    pub(super) process_type: ProcessType,
    pub(super) token: String,
    pub(super) topology: Topology,
    /// The sealed connect token.
    pub(super) connect: Vec<u8>,
    pub(super) classes: Vec<u8>,
    /// The joiner's salt for its link keys.
    pub(super) salt: [u8; 16],
}

impl Admission {
    /// No joins yet, for a station whose classes are `classes`.
    pub(super) fn with_classes(classes: Vec<crate::compat::ClassDesc>) -> Admission {
        Admission {
            classes,
            ..Admission::default()
        }
    }
}

/// How long a challenge cookie is valid: its time bucket (and the one before).
const COOKIE_BUCKET_MS: u64 = 10_000;

/// Why a joiner whose token admitted a current member is refused.
pub(super) const TOKEN_IN_USE: &str = "the connect token is in use";

/// The longest reason a `JoinDenied` carries, in bytes.
pub(super) const MAX_DENY_REASON: usize = 200;

/// Cuts `reason` to [`MAX_DENY_REASON`] bytes, on a character boundary.
pub(super) fn truncate_reason(reason: &mut String) {
    if reason.len() > MAX_DENY_REASON {
        let mut end = MAX_DENY_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
}

/// The unspecified address of `addr`'s family: an address withheld.
fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

pub(super) struct PendingJoin {
    pub(super) nonce: u64,
    pub(super) info: StationInfo,
    pub(super) contact: StationId,
}

impl Station {
    pub(super) fn handle_connectionless(&mut self, from: SocketAddr, msg: Msg) {
        match msg {
            Msg::JoinRequest {
                nonce,
                process_type,
                token,
                topology,
                connect,
                cookie,
                classes,
                salt,
            } => {
                if !matches!(self.membership.state, State::InSession) {
                    self.stats.unknown_sender += 1;
                    return;
                }
                // The token first: a flood of bad tokens is refused without
                // using up the rate that real joiners need.
                let verdict = self.vet_token(&connect.0, process_type);
                if verdict.is_ok() && !self.allow_join_from(from) {
                    return;
                }
                // Nothing but a challenge goes to an address that has not
                // shown that it receives there.
                if !self.cookie_valid(from, nonce, &cookie) {
                    let cookie = self.cookie_for(from, nonce, self.cookie_bucket());
                    self.send_connectionless(from, &Msg::JoinChallenge { nonce, cookie });
                    return;
                }
                // A refused token is answered once the address is proven:
                // the joiner learns why instead of timing out.
                if let Err(e) = verdict {
                    self.send_connectionless(
                        from,
                        &Msg::JoinDenied {
                            nonce,
                            reason: e.reason().into(),
                        },
                    );
                    return;
                }
                if self.migration.scale_in.is_some() {
                    self.send_connectionless(
                        from,
                        &Msg::JoinDenied {
                            nonce,
                            reason: OFFLINE_REASON.into(),
                        },
                    );
                    return;
                }
                self.on_join_request(
                    self.membership.id,
                    JoinAsk {
                        nonce,
                        addr: from,
                        process_type,
                        token,
                        topology,
                        connect: connect.0,
                        classes: classes.0,
                        salt,
                    },
                );
            }
            Msg::JoinKeys { nonce: n, sealed } => {
                let joining =
                    matches!(&self.membership.state, State::Joining { nonce, .. } if *nonce == n);
                let accepted = joining
                    && self
                        .sec
                        .as_mut()
                        .and_then(|sec| sec.accept_join_keys(n, &sealed.0))
                        .is_some();
                if !accepted {
                    self.stats.join_messages_refused += 1;
                }
            }
            Msg::JoinChallenge { nonce: n, cookie } => {
                let retry = match &self.membership.state {
                    State::Joining { nonce, contact, .. } if *nonce == n && *contact == from => {
                        Some(*contact)
                    }
                    _ => None,
                };
                match retry {
                    Some(contact) if self.admission.join_cookie != cookie => {
                        self.admission.join_cookie = cookie;
                        self.send_join_request(contact, n);
                    }
                    Some(_) => {}
                    None => self.stats.bad_messages += 1,
                }
            }
            Msg::JoinDenied { nonce: n, reason } => {
                if let State::Joining { nonce, contact, .. } = &self.membership.state {
                    if *nonce == n && *contact == from {
                        self.membership.state = State::Idle;
                        self.events
                            .push_back(Event::JoinFailed(super::join::join_denied_error(reason)));
                        return;
                    }
                }
                self.stats.bad_messages += 1;
            }
            _ => self.stats.bad_messages += 1,
        }
    }

    fn cookie_bucket(&self) -> u64 {
        self.now.as_micros() / 1000 / COOKIE_BUCKET_MS
    }

    /// The challenge cookie of a request with `nonce` from `addr` in time
    /// bucket `bucket`: a MAC under this station's cookie key, so that
    /// nothing needs to be kept per address.
    fn cookie_for(&mut self, addr: SocketAddr, nonce: u64, bucket: u64) -> [u8; 16] {
        let key = match self.admission.cookie_key {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                for chunk in k.chunks_mut(8) {
                    chunk.copy_from_slice(&self.next_random().to_le_bytes());
                }
                self.admission.cookie_key = Some(k);
                k
            }
        };
        crate::crypto::challenge_cookie(&key, addr, nonce, bucket)
    }

    /// Whether `cookie` is the one this station gave `addr` for `nonce`
    /// in this time bucket or the one before.
    fn cookie_valid(&mut self, addr: SocketAddr, nonce: u64, cookie: &[u8; 16]) -> bool {
        if *cookie == [0; 16] {
            return false;
        }
        let bucket = self.cookie_bucket();
        let now = self.cookie_for(addr, nonce, bucket);
        let before = self.cookie_for(addr, nonce, bucket.wrapping_sub(1));
        crate::crypto::ct_eq(&now, cookie) | crate::crypto::ct_eq(&before, cookie)
    }

    /// Charges a join request from `from` to the join-rate limit; false
    /// (counted) if the limit is reached.
    pub(super) fn allow_join_from(&mut self, from: SocketAddr) -> bool {
        if self
            .limit_state
            .allow_join(&self.cfg.limits, from, self.now)
        {
            return true;
        }
        self.stats.join_rate_limited += 1;
        self.limit_state
            .hit(crate::limits::Limit::JoinRate, self.membership.id);
        false
    }

    /// With security on, whether a join request's connect token may be
    /// handled (checked fully where the token key is known, for its form
    /// elsewhere); counts the refusals.
    pub(super) fn vet_token(
        &mut self,
        connect: &[u8],
        process_type: ProcessType,
    ) -> Result<(), crate::crypto::TokenError> {
        let Some(sec) = &self.sec else {
            return Ok(());
        };
        let verdict = if sec.can_open_tokens() {
            sec.open_token(connect, process_type, self.now).map(|_| ())
        } else if connect.len() == crate::crypto::SEALED_TOKEN_LEN {
            Ok(())
        } else {
            Err(crate::crypto::TokenError::Invalid)
        };
        if let Err(e) = verdict {
            self.count_token_error(e);
        }
        verdict
    }

    fn count_token_error(&mut self, e: crate::crypto::TokenError) {
        match e {
            crate::crypto::TokenError::Expired => self.stats.token_expired += 1,
            _ => self.stats.token_rejected += 1,
        }
    }

    /// A join request reached this station (directly, or forwarded by `contact`).
    pub(super) fn on_join_request(&mut self, contact: StationId, ask: JoinAsk) {
        let JoinAsk {
            nonce,
            addr,
            process_type,
            token,
            topology,
            connect,
            classes,
            salt,
        } = ask;
        // Already admitted (a retry of a request whose answer is on its way).
        if let Some(id) = self.membership.addrs.get(&addr).copied() {
            if self.admission.join_dedup.get(&addr) == Some(&nonce) {
                // Its `JoinKeys` may have been lost: the retry gets it again.
                if let Some((n, sealed)) = self.admission.join_keys.get(&addr) {
                    if *n == nonce {
                        let msg = Msg::JoinKeys {
                            nonce,
                            sealed: Bytes(sealed.clone()),
                        };
                        self.send_connectionless(addr, &msg);
                    }
                }
                return;
            }
            // With security on, a request from a member's address is not
            // taken as a restart: anyone can replay one with a new nonce.
            if self.sec.is_some() {
                return;
            }
            // The station at that address may have restarted, but anyone
            // can send a request from its address: only a member that
            // failure detection already finds silent is taken as gone.
            let silent = self.membership.members.get(&id).is_some_and(|m| m.silent);
            if self.is_session_master() && id != self.membership.id && silent {
                self.declare_gone(id, true);
            } else {
                self.stats.join_restarts_refused += 1;
                return;
            }
        }
        if self.admission.join_dedup.get(&addr) == Some(&nonce) {
            match self.admission.forwards.get(&addr) {
                Some(&to) if to != self.membership.session_master => {
                    self.admission.forget(addr);
                    self.stats.joins_forwarded_again += 1;
                }
                _ => return,
            }
        }
        if !self.join_capacity() {
            return;
        }
        if !self.is_session_master() {
            self.admission.join_dedup.insert(addr, nonce);
            let master = self.membership.session_master;
            self.admission.forwards.insert(addr, master);
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::JoinForward {
                    nonce,
                    addr,
                    process_type,
                    token,
                    topology,
                    connect: Bytes(connect),
                    classes: Bytes(classes),
                    salt,
                },
            );
            return;
        }
        // With security on, the token must open here and be in use by no
        // current member.
        let mut joiner_keys = None;
        if let Some(sec) = &self.sec {
            match sec.open_token(&connect, process_type, self.now) {
                Ok((grant, c2s, s2c)) => {
                    if sec.spent(&connect) {
                        let e = crate::crypto::TokenError::AlreadyUsed;
                        self.count_token_error(e);
                        self.deny_join(contact, nonce, addr, e.reason().into());
                        return;
                    }
                    let members = &self.membership.members;
                    let pending = &self.admission.pending;
                    if sec.client_in_use(grant.client_id, |id| {
                        members.contains_key(&id) || pending.contains_key(&id)
                    }) {
                        self.stats.token_rejected += 1;
                        self.deny_join(contact, nonce, addr, TOKEN_IN_USE.into());
                        return;
                    }
                    if grant.address.is_some_and(|a| a != addr) {
                        let e = crate::crypto::TokenError::WrongAddress;
                        self.count_token_error(e);
                        self.deny_join(contact, nonce, addr, e.reason().into());
                        return;
                    }
                    joiner_keys = Some((c2s, s2c, grant));
                }
                Err(e) => {
                    self.count_token_error(e);
                    self.deny_join(contact, nonce, addr, e.reason().into());
                    return;
                }
            }
        }
        // Refusals that need no id: a station of another topology, classes
        // that would be misread.
        if topology != self.cfg.topology {
            self.deny_join(contact, nonce, addr, super::join::TOPOLOGY_REASON.into());
            return;
        }
        if self.membership.next_station_id > MAX_STATION_ID {
            // A handle names its creator in 24 bits: no id beyond that.
            self.deny_join(contact, nonce, addr, IDS_USED_UP.into());
            return;
        }
        if let Err(why) = crate::compat::check(&self.admission.classes, &classes) {
            debug!(station = %self.membership.id, %addr, %why, "incompatible classes");
            self.deny_join(
                contact,
                nonce,
                addr,
                format!("{}{why}", crate::compat::INCOMPATIBLE),
            );
            return;
        }
        self.admission.join_dedup.insert(addr, nonce);
        let id = StationId(self.membership.next_station_id);
        self.membership.next_station_id += 1;
        let relay = (self.cfg.topology == Topology::ClientServer
            && process_type == ProcessType::Client)
            .then_some(contact);
        let info = StationInfo {
            id,
            process_type,
            token,
            addr,
            relay,
        };
        if self.migration.offline.contains(&contact) {
            self.deny_join(contact, nonce, addr, OFFLINE_REASON.into());
            return;
        }
        if self.cfg.topology == Topology::ClientServer
            && process_type == ProcessType::Client
            && self
                .membership
                .members
                .get(&contact)
                .is_none_or(|m| m.info.process_type != ProcessType::Server)
        {
            self.deny_join(
                contact,
                nonce,
                addr,
                "clients must join through a server".into(),
            );
            return;
        }
        let stations = self.stations();
        let mut op = self.make_op(
            OperationDetail::JoinSession(JoinSessionOperation {
                joining: info.clone(),
                stations,
                state: ApprovalState::Unknown,
                reason: None,
            }),
            id,
            self.membership.id,
            None,
        );
        op.origin_type = Some(process_type);
        let Some(op) = self.run_op(op, None, false, |st, op| {
            if let (Some(f), Some(j)) = (
                st.hooks.join_approval.as_mut(),
                op.downcast_mut::<JoinSessionOperation>(),
            ) {
                f(j);
            }
        }) else {
            self.deny_join(
                contact,
                nonce,
                addr,
                "rejected by the SafetyExecutive".into(),
            );
            return;
        };
        let Some(j) = op.downcast::<JoinSessionOperation>() else {
            return;
        };
        let session_tag = self.membership.session_tag;
        if let (Some(sec), Some((c2s, s2c, grant))) = (self.sec.as_mut(), joiner_keys) {
            let mix = crate::crypto::JoinMix {
                joiner_salt: salt,
                master_salt: [0; 16],
                session_tag,
                joiner: id,
                session_id: 0,
            };
            sec.remember_joiner(mix, nonce, c2s, s2c, grant.client_id);
            // Spent now, while pending too: a replay is not another join.
            sec.spend_token(&connect, grant.expires_at_ms, self.now);
        }
        match j.state {
            ApprovalState::Denied => {
                if let Some(sec) = self.sec.as_mut() {
                    sec.forget_joiner(id);
                }
                let reason = j
                    .reason
                    .clone()
                    .unwrap_or_else(|| "denied by the join approval callback".into());
                self.deny_join(contact, nonce, addr, reason);
            }
            ApprovalState::Pending => {
                self.admission.pending.insert(
                    id,
                    PendingJoin {
                        nonce,
                        info: info.clone(),
                        contact,
                    },
                );
                self.events.push_back(Event::JoinPending { station: info });
            }
            _ => self.admit(contact, nonce, info),
        }
    }

    /// Whether another join may be started: bounds the joins pending a
    /// decision and the requests forwarded but not yet answered.
    pub(super) fn join_capacity(&mut self) -> bool {
        let max = self.cfg.limits.max_pending_joins.max(1);
        if self.admission.join_dedup.len() >= max {
            // Keep the entries of admitted stations (they filter retries);
            // forget unanswered ones (their retries are forwarded again).
            let addrs = &self.membership.addrs;
            self.admission
                .join_dedup
                .retain(|a, _| addrs.contains_key(a));
            if self.admission.join_dedup.len() > max.saturating_mul(64) {
                self.admission.join_dedup.clear();
            }
            let dedup = &self.admission.join_dedup;
            self.admission.forwards.retain(|a, _| dedup.contains_key(a));
        }
        let unanswered = self
            .admission
            .join_dedup
            .keys()
            .filter(|a| !self.membership.addrs.contains_key(a))
            .count();
        // Admitted stations never heard from count too: a ghost (admitted
        // from a spoofed address) holds its place until it is dropped.
        let unheard = self
            .membership
            .members
            .values()
            .filter(|m| m.link.is_some() && !m.heard)
            .count();
        if self.admission.pending.len() >= max || unanswered + unheard >= max {
            self.stats.pending_joins_limited += 1;
            self.limit_state
                .hit(crate::limits::Limit::PendingJoins, self.membership.id);
            return false;
        }
        true
    }

    /// Decides a join whose approval was postponed (`PostponeDecision`).
    pub fn decide_join(
        &mut self,
        now: Instant,
        station: StationId,
        approve: bool,
    ) -> Result<(), StationError> {
        self.advance(now);
        let p = self
            .admission
            .pending
            .remove(&station)
            .ok_or(StationError::NoPendingJoin(station))?;
        if approve {
            self.admit(p.contact, p.nonce, p.info);
        } else {
            if let Some(sec) = self.sec.as_mut() {
                sec.forget_joiner(station);
            }
            self.deny_join(
                p.contact,
                p.nonce,
                p.info.addr,
                "denied by the join approval callback".into(),
            );
        }
        self.drain_local();
        Ok(())
    }

    pub(super) fn deny_join(
        &mut self,
        contact: StationId,
        nonce: u64,
        addr: SocketAddr,
        reason: String,
    ) {
        let mut reason = reason;
        truncate_reason(&mut reason);
        debug!(station = %self.membership.id, %addr, %reason, "join denied");
        self.admission.forget(addr);
        if contact == self.membership.id {
            self.send_connectionless(addr, &Msg::JoinDenied { nonce, reason });
        } else {
            self.send(
                contact,
                SYSTEM_STREAM,
                Msg::JoinDenyForward {
                    nonce,
                    addr,
                    reason,
                },
            );
        }
    }

    /// Admits an approved station (JoinStation, 14.3.1.9).
    pub(super) fn admit(&mut self, contact: StationId, nonce: u64, info: StationInfo) {
        debug!(station = %self.membership.id, joiner = %info.id, "admitting");
        // The rest of the joiner's key mix goes first, by its contact.
        if let Some(sealed) = self.sec.as_ref().and_then(|s| s.join_keys_for(info.id)) {
            if contact == self.membership.id {
                self.send_join_keys(info.addr, nonce, sealed);
            } else {
                self.send(
                    contact,
                    SYSTEM_STREAM,
                    Msg::JoinKeysForward {
                        nonce,
                        addr: info.addr,
                        sealed: Bytes(sealed),
                    },
                );
            }
        }
        self.send_link_keys(&info);
        self.add_member(info.clone(), None);
        let members = self
            .stations()
            .into_iter()
            .map(|m| self.shown_to(&m, &info))
            .collect();
        let accepted = Msg::JoinAccepted {
            nonce,
            id: info.id,
            session_master: self.membership.id,
            session: self.membership.session_tag,
            members,
        };
        let others: Vec<StationInfo> = self
            .membership
            .members
            .values()
            .filter(|m| m.info.id != self.membership.id && m.info.id != info.id)
            .map(|m| m.info.clone())
            .collect();
        for to in others {
            let shown = self.shown_to(&info, &to);
            self.send(to.id, SYSTEM_STREAM, Msg::StationJoined(shown));
        }
        self.send(info.id, SYSTEM_STREAM, accepted);
        // The station object is published here, then migrates to the
        // joiner; it reaches every member, so it carries no token.
        let h = self.publish_station_object(&StationInfo {
            token: String::new(),
            ..info.clone()
        });
        let op = self.make_op(
            OperationDetail::JoinStation(JoinStationOperation {
                station: info.clone(),
            }),
            self.membership.id,
            info.id,
            None,
        );
        let joiner = info.id;
        self.run_op(op, None, false, |st, _| {
            st.discover_all_for(joiner);
            let _ = st.migrate_inner(h, joiner);
        });
        self.events.push_back(Event::StationJoined(info));
    }

    /// What station `to` learns about `info` (privacy): its own entry
    /// whole; no one else's identification token (it stays with the
    /// session master, which approves joins); and in a client-server
    /// session, a client's address only if `to` is a server (clients and
    /// tools never link to other clients).
    pub(super) fn shown_to(&self, info: &StationInfo, to: &StationInfo) -> StationInfo {
        if info.id == to.id {
            return info.clone();
        }
        let mut shown = StationInfo {
            token: String::new(),
            ..info.clone()
        };
        if self.cfg.topology == Topology::ClientServer
            && info.process_type == ProcessType::Client
            && to.process_type != ProcessType::Server
        {
            shown.addr = unspecified_like(info.addr);
        }
        shown
    }

    /// With security on, at the session master: installs our keys for the
    /// joiner and sends every member that may link to it the keys of that
    /// link (before `StationJoined`, on the same ordered stream).
    pub(super) fn send_link_keys(&mut self, info: &StationInfo) {
        let Some(sec) = self.sec.as_mut() else {
            return;
        };
        if let Some((send, recv)) = sec.link_keys_for(info.id, self.membership.id) {
            sec.install(info.id, &send, &recv);
        }
        let client_server = self.cfg.topology == Topology::ClientServer;
        let mut out = Vec::new();
        for (id, m) in &self.membership.members {
            if *id == self.membership.id || *id == info.id {
                continue;
            }
            if client_server
                && m.info.process_type == ProcessType::Client
                && info.process_type == ProcessType::Client
            {
                continue;
            }
            if let Some((send, recv)) = sec.link_keys_for(info.id, *id) {
                out.push((*id, send, recv));
            }
        }
        for (id, send, recv) in out {
            self.send(
                id,
                SYSTEM_STREAM,
                Msg::LinkKeys {
                    station: info.id,
                    send,
                    recv,
                },
            );
        }
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `JoinForward`: a contact station passes on a join request.
    pub(super) fn on_join_forward(&mut self, origin: StationId, ask: JoinAsk) {
        let (nonce, addr) = (ask.nonce, ask.addr);
        // Only a member that may be a contact forwards: in a client-server
        // session, a server; the request gets the checks of a direct one.
        let may_contact = self.membership.members.get(&origin).is_some_and(|m| {
            self.cfg.topology != Topology::ClientServer
                || m.info.process_type == ProcessType::Server
        });
        if !may_contact || origin == self.membership.id {
            self.stats.join_messages_refused += 1;
            return;
        }
        if self.is_session_master() {
            if let Err(e) = self.vet_token(&ask.connect, ask.process_type) {
                // The contact validated the joiner's address: it may be told.
                self.deny_join(origin, nonce, addr, e.reason().into());
                return;
            }
            if !self.allow_join_from(addr) {
                return;
            }
            self.on_join_request(origin, ask);
        } else {
            self.stats.bad_messages += 1;
        }
    }

    /// `JoinDenyForward`: the session master refuses a joiner that asked here.
    ///
    /// Only from the session master, and only for a request this station
    /// forwarded and that is still unanswered: it is never a reflector
    /// towards an address nobody asked from. The reason is cut to
    /// [`MAX_DENY_REASON`] bytes.
    pub(super) fn on_join_deny_forward(
        &mut self,
        origin: StationId,
        nonce: u64,
        addr: SocketAddr,
        mut reason: String,
    ) {
        let forwarded = self.admission.join_dedup.get(&addr) == Some(&nonce)
            && !self.membership.addrs.contains_key(&addr);
        if origin != self.membership.session_master || origin == self.membership.id || !forwarded {
            self.stats.join_messages_refused += 1;
            return;
        }
        self.admission.forget(addr);
        truncate_reason(&mut reason);
        self.send_connectionless(addr, &Msg::JoinDenied { nonce, reason });
    }

    /// `JoinKeysForward`: the session master admitted a joiner that asked
    /// here; its `JoinKeys` goes on to it.
    ///
    /// Only from the session master, only for the request this station
    /// forwarded from `addr`, and only the fixed-size body: it is no
    /// reflector either.
    pub(super) fn on_join_keys_forward(
        &mut self,
        origin: StationId,
        nonce: u64,
        addr: SocketAddr,
        sealed: Bytes,
    ) {
        let forwarded = self.admission.join_dedup.get(&addr) == Some(&nonce);
        if origin != self.membership.session_master
            || origin == self.membership.id
            || !forwarded
            || sealed.0.len() != crate::crypto::JOIN_KEYS_LEN
        {
            self.stats.join_messages_refused += 1;
            return;
        }
        self.send_join_keys(addr, nonce, sealed.0);
    }

    /// Sends `JoinKeys` to the joiner at `addr` and keeps it for the
    /// joiner's retries.
    fn send_join_keys(&mut self, addr: SocketAddr, nonce: u64, sealed: Vec<u8>) {
        let msg = Msg::JoinKeys {
            nonce,
            sealed: Bytes(sealed.clone()),
        };
        self.send_connectionless(addr, &msg);
        let max = self.cfg.limits.max_pending_joins.max(1);
        if self.admission.join_keys.len() >= max {
            // Keep those of admitted stations never heard from.
            let (addrs, members) = (&self.membership.addrs, &self.membership.members);
            self.admission.join_keys.retain(|a, _| {
                addrs
                    .get(a)
                    .and_then(|id| members.get(id))
                    .is_some_and(|m| !m.heard)
            });
            if self.admission.join_keys.len() >= max.saturating_mul(64) {
                self.admission.join_keys.clear();
            }
        }
        self.admission.join_keys.insert(addr, (nonce, sealed));
    }
}

impl Station {
    /// `LinkKeys`: the session master hands this station the keys of its
    /// link with `station`.
    pub(super) fn on_link_keys(
        &mut self,
        origin: StationId,
        station: StationId,
        send: [u8; 32],
        recv: [u8; 32],
    ) {
        match self.sec.as_mut() {
            Some(sec)
                if origin == self.membership.session_master && station != self.membership.id =>
            {
                sec.install(station, &send, &recv);
            }
            _ => self.stats.bad_messages += 1,
        }
    }
}

/// A join message as a member could send it over its authenticated link:
/// for tests that attack from inside (a cheating member with a valid token).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub enum ForgedJoinMsg {
    /// `JoinForward` of a request from `addr`.
    Forward {
        /// The request's nonce.
        nonce: u64,
        /// The joiner's address it names.
        addr: SocketAddr,
        /// The process type asked for.
        process_type: ProcessType,
    },
    /// `JoinDenyForward` towards `addr`.
    DenyForward {
        /// The request's nonce.
        nonce: u64,
        /// Where the `JoinDenied` would go.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// `JoinKeysForward` towards `addr`.
    KeysForward {
        /// The request's nonce.
        nonce: u64,
        /// Where the `JoinKeys` would go.
        addr: SocketAddr,
    },
}

impl Station {
    /// Handles `msg` as if member `from` had sent it on its authenticated
    /// link (tests that attack from inside).
    #[doc(hidden)]
    pub fn deliver_forged_join_msg(&mut self, now: Instant, from: StationId, msg: ForgedJoinMsg) {
        self.advance(now);
        let msg = match msg {
            ForgedJoinMsg::Forward {
                nonce,
                addr,
                process_type,
            } => Msg::JoinForward {
                nonce,
                addr,
                process_type,
                token: String::new(),
                topology: self.cfg.topology,
                connect: Bytes(Vec::new()),
                classes: Bytes(Vec::new()),
                salt: [0; 16],
            },
            ForgedJoinMsg::DenyForward {
                nonce,
                addr,
                reason,
            } => Msg::JoinDenyForward {
                nonce,
                addr,
                reason,
            },
            ForgedJoinMsg::KeysForward { nonce, addr } => Msg::JoinKeysForward {
                nonce,
                addr,
                sealed: Bytes(vec![0; crate::crypto::JOIN_KEYS_LEN]),
            },
        };
        self.handle_msg(from, msg);
        self.drain_local();
    }
}
