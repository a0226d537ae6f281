//! Rooms: creation, membership, properties and migration.

use super::*;

/// A station's room bookkeeping (the rooms themselves are objects in the store).
pub(super) struct Rooms {
    /// Per room: the last migration epoch whose start was reported.
    pub(super) started: HashMap<DOHandle, u32>,
    /// Per room: the last migration epoch whose completion was reported.
    pub(super) completed: HashMap<DOHandle, u32>,
    /// The serial of the next room id this server hands out.
    pub(super) next_serial: u32,
    /// The id of this station's next room request.
    pub(super) next_request: u64,
    /// This station's room requests that wait for their answer, by id.
    pub(super) pending: BTreeMap<u64, PendingRoomRequest>,
    /// Their deadlines, soonest first.
    pub(super) deadlines: BTreeSet<(Instant, u64)>,
}

/// A room request waiting for its answer.
pub(super) struct PendingRoomRequest {
    /// The room (null for a create).
    room: DOHandle,
    /// The station it went to.
    dest: StationId,
    /// When it fails with [`RoomError::TIMEOUT`].
    deadline: Instant,
}

impl Default for Rooms {
    fn default() -> Rooms {
        Rooms {
            started: HashMap::new(),
            completed: HashMap::new(),
            next_serial: 1,
            next_request: 1,
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl Station {
    /// Rooms hosted here, with the objects that move with them.
    pub(super) fn hosted_rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .store
            .entries
            .iter()
            .filter(|(h, e)| h.class_id() == ClassId::ROOM && e.master == self.membership.id)
            .filter_map(|(h, _)| self.get::<RoomObject>(*h).map(|r| r.lock().info(*h)))
            .collect();
        v.sort_by_key(|r| r.handle);
        v
    }

    /// Every room of the session, by handle.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .store
            .entries
            .keys()
            .filter(|h| h.class_id() == ClassId::ROOM)
            .filter_map(|h| self.room(*h))
            .collect();
        v.sort_by_key(|r| r.handle);
        v
    }

    /// One room.
    pub fn room(&self, room: DOHandle) -> Option<RoomInfo> {
        if room.class_id() != ClassId::ROOM {
            return None;
        }
        self.get::<RoomObject>(room).map(|r| r.lock().info(room))
    }

    /// The room with id `id`.
    pub fn room_by_id(&self, id: &str) -> Option<RoomInfo> {
        self.rooms().into_iter().find(|r| r.id == id)
    }

    pub(super) fn room_request(
        &mut self,
        now: Instant,
        room: DOHandle,
        op: RoomOp,
    ) -> Result<u64, StationError> {
        self.advance(now);
        if !self.is_in_session() {
            return Err(StationError::NotInSession);
        }
        let dest = match op {
            RoomOp::Create { .. } => {
                if self.cfg.process_type == ProcessType::Server {
                    self.membership.id
                } else if let Some(r) = self.relay() {
                    r
                } else {
                    self.membership
                        .members
                        .values()
                        .filter(|m| m.info.process_type == ProcessType::Server)
                        .map(|m| m.info.id)
                        .min()
                        .unwrap_or(self.membership.session_master)
                }
            }
            _ => {
                if room.class_id() != ClassId::ROOM {
                    return Err(StationError::NoSuchRoom(room));
                }
                self.master_of(room).ok_or(StationError::NoSuchRoom(room))?
            }
        };
        // A migration is answered by `RoomMigrateComplete`; every other
        // request by its `RoomResult`, which comes for certain: the answer,
        // or a failure when it is overdue or its server goes.
        let answered = !matches!(op, RoomOp::Migrate);
        let limit = self.cfg.limits.max_room_requests_in_flight;
        if answered && self.rooms.pending.len() >= limit {
            return Err(StationError::TooManyRoomRequests(limit));
        }
        let request = self.rooms.next_request;
        self.rooms.next_request += 1;
        let by = self.membership.id;
        if answered {
            let deadline = self.now + self.cfg.rmc_timeout;
            self.rooms.pending.insert(
                request,
                PendingRoomRequest {
                    room,
                    dest,
                    deadline,
                },
            );
            self.rooms.deadlines.insert((deadline, request));
        }
        self.send(
            dest,
            SYSTEM_STREAM,
            Msg::RoomRequest {
                request,
                by,
                room,
                op,
            },
        );
        self.drain_local();
        Ok(request)
    }

    /// Asks the server (this client's, or this server) to host a new room
    /// owned by this station. Answered by [`Event::RoomResult`] with the new
    /// room's handle and id; returns the request id.
    pub fn create_room(
        &mut self,
        now: Instant,
        properties: Vec<(String, String)>,
    ) -> Result<u64, StationError> {
        self.room_request(now, DOHandle::NULL, RoomOp::Create { properties })
    }

    /// Joins a room (answered by [`Event::RoomResult`]).
    pub fn join_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        self.room_request(now, room, RoomOp::Join)
    }

    /// Leaves a room; when the owner leaves, the lowest remaining member
    /// becomes the owner (answered by [`Event::RoomResult`]).
    pub fn leave_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        self.room_request(now, room, RoomOp::Leave)
    }

    /// Sets a property of a room this station is a member of (answered by
    /// [`Event::RoomResult`]).
    pub fn set_room_property(
        &mut self,
        now: Instant,
        room: DOHandle,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<u64, StationError> {
        let op = RoomOp::SetProperty {
            key: key.into(),
            value: value.into(),
        };
        self.room_request(now, room, op)
    }

    /// Moves a room to another server (Diarkis `SendMigrateRoom`). Only the
    /// room's owner may: anyone else gets [`StationError::NotRoomOwner`].
    /// Every member sees [`Event::RoomMigrateStart`], then
    /// [`Event::RoomMigrateComplete`] with the room's new id; members,
    /// properties and room objects move with it.
    pub fn send_migrate_room(&mut self, now: Instant, room: DOHandle) -> Result<u64, StationError> {
        let info = self.room(room).ok_or(StationError::NoSuchRoom(room))?;
        if info.owner != self.membership.id {
            return Err(StationError::NotRoomOwner {
                room_id: info.id,
                owner: info.owner,
            });
        }
        self.room_request(now, room, RoomOp::Migrate)
    }

    /// Makes master `object` a room object of `room` (both mastered here,
    /// on the room's server): it moves with the room.
    pub fn attach_to_room(
        &mut self,
        now: Instant,
        room: DOHandle,
        object: DOHandle,
    ) -> Result<(), StationError> {
        self.advance(now);
        let r = self
            .get::<RoomObject>(room)
            .ok_or(StationError::NoSuchRoom(room))?;
        for h in [room, object] {
            if self.master_of(h) != Some(self.membership.id) {
                return Err(StationError::NotMaster(h));
            }
        }
        {
            let mut g = r.lock();
            if !g.data.objects.contains(&object.0) {
                g.data.objects.push(object.0);
            }
        }
        self.update(now, room)?;
        Ok(())
    }

    pub(super) fn new_room_id(&mut self) -> String {
        let n = self.rooms.next_serial;
        self.rooms.next_serial += 1;
        format!("room-{}-{}", self.membership.id.0, n)
    }

    pub(super) fn on_room_request(
        &mut self,
        origin: StationId,
        request: u64,
        by: StationId,
        room: DOHandle,
        op: RoomOp,
    ) {
        // The requester itself, or a server passing its request on.
        let forwarded = self
            .membership
            .members
            .get(&origin)
            .is_some_and(|m| m.info.process_type == ProcessType::Server);
        if by != origin && !forwarded {
            self.stats.bad_messages += 1;
            return;
        }
        let reply = |st: &mut Station, room: DOHandle, r: Result<String, RoomError>| {
            let (code, message, room_id) = match r {
                Ok(id) => (0, String::new(), id),
                Err(e) => (e.code, e.message, String::new()),
            };
            st.send(
                by,
                SYSTEM_STREAM,
                Msg::RoomReply {
                    request,
                    room,
                    code,
                    message,
                    room_id,
                },
            );
        };
        if let Err(why) = self.room_quota(by, room, &op) {
            self.stats.rooms_limited += 1;
            let e = RoomError::new(RoomError::LIMIT, why);
            if matches!(op, RoomOp::Create { .. }) {
                reply(self, DOHandle::NULL, Err(e));
            } else {
                reply(self, room, Err(e));
            }
            return;
        }
        if let RoomOp::Create { mut properties } = op {
            if self.cfg.process_type != ProcessType::Server {
                let e = RoomError::new(RoomError::NO_SERVER, "rooms are hosted by servers");
                reply(self, DOHandle::NULL, Err(e));
                return;
            }
            if self.migration.scale_in.is_some() {
                let e = RoomError::new(
                    RoomError::SERVER_OFFLINE,
                    "the server is going offline (scale-in) and takes no new rooms",
                );
                reply(self, DOHandle::NULL, Err(e));
                return;
            }
            properties.sort();
            properties.dedup_by(|a, b| a.0 == b.0);
            let id = self.new_room_id();
            let mut data = RoomData::default();
            data.id = id.clone();
            data.server = self.membership.id.0;
            data.owner = by.0;
            data.members = vec![by.0];
            data.properties = properties;
            let obj = RoomObject { data };
            let handle = self.store.allocate(ClassId::ROOM, self.membership.id);
            let cell = new_cell(obj, handle, self.membership.id, self.membership.id);
            self.add_master(handle, cell, true);
            self.discover_all(handle);
            debug!(station = %self.membership.id, room = %id, owner = %by, "room created");
            reply(self, handle, Ok(id));
            return;
        }
        let Some(master) = self
            .store
            .entries
            .get(&room)
            .filter(|_| room.class_id() == ClassId::ROOM)
            .map(|e| e.master)
        else {
            let e = RoomError::new(RoomError::NO_SUCH_ROOM, format!("no room {room:?}"));
            if matches!(op, RoomOp::Migrate) {
                self.send_room_failure(by, room, String::new(), e);
            } else {
                reply(self, room, Err(e));
            }
            return;
        };
        if master != self.membership.id {
            // The room moved: pass the request on.
            self.send(
                master,
                SYSTEM_STREAM,
                Msg::RoomRequest {
                    request,
                    by,
                    room,
                    op,
                },
            );
            return;
        }
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let room_id = r.lock().data.id.clone();
        match op {
            RoomOp::Create { .. } => {}
            RoomOp::Join => {
                {
                    let mut g = r.lock();
                    if !g.data.members.contains(&by.0) {
                        g.data.members.push(by.0);
                        g.data.members.sort();
                    }
                }
                let _ = self.update(self.now, room);
                reply(self, room, Ok(room_id));
            }
            RoomOp::Leave => {
                self.remove_room_member(room, by);
                reply(self, room, Ok(room_id));
            }
            RoomOp::SetProperty { key, value } => {
                let member = r.lock().data.members.contains(&by.0);
                if !member {
                    let e = RoomError::new(
                        RoomError::NOT_MEMBER,
                        format!("only members of room {room_id} may set its properties"),
                    );
                    reply(self, room, Err(e));
                    return;
                }
                {
                    let mut g = r.lock();
                    let props = &mut g.data.properties;
                    match props.iter_mut().find(|(k, _)| *k == key) {
                        Some(p) => p.1 = value,
                        None => {
                            props.push((key, value));
                            props.sort();
                        }
                    }
                }
                let _ = self.update(self.now, room);
                reply(self, room, Ok(room_id));
            }
            RoomOp::Migrate => {
                let owner = StationId(r.lock().data.owner);
                if owner != by {
                    let e = RoomError::new(
                        RoomError::NOT_OWNER,
                        format!("only the room owner ({owner}) may migrate room {room_id}"),
                    );
                    self.send_room_failure(by, room, room_id, e);
                    return;
                }
                match self.pick_server(&[], &BTreeMap::new()) {
                    Some(to) => self.migrate_room_to(room, to),
                    None => {
                        let e = RoomError::new(
                            RoomError::NO_SERVER,
                            "no other server can take the room",
                        );
                        self.send_room_failure(by, room, room_id, e);
                    }
                }
            }
        }
    }

    pub(super) fn send_room_failure(
        &mut self,
        to: StationId,
        room: DOHandle,
        room_id: String,
        e: RoomError,
    ) {
        self.send(
            to,
            SYSTEM_STREAM,
            Msg::RoomMigrateComplete {
                room,
                epoch: 0,
                success: false,
                room_id,
                code: e.code,
                message: e.message,
            },
        );
    }

    /// Moves a room hosted here, and its objects, to server `to`.
    pub(super) fn migrate_room_to(&mut self, room: DOHandle, to: StationId) {
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let (members, objects, epoch, room_id) = {
            let g = r.lock();
            (
                g.data.members.clone(),
                g.data.objects.clone(),
                g.data.migrations + 1,
                g.data.id.clone(),
            )
        };
        debug!(station = %self.membership.id, room = %room_id, to = %to, "room migrating");
        for m in &members {
            self.send(
                StationId(*m),
                SYSTEM_STREAM,
                Msg::RoomMigrateStart { room, epoch },
            );
        }
        if let Err(err) = self.migrate_inner(room, to) {
            let e = RoomError::new(
                RoomError::NO_SERVER,
                format!("the room did not move: {err}"),
            );
            for m in members {
                self.send(
                    StationId(m),
                    SYSTEM_STREAM,
                    Msg::RoomMigrateComplete {
                        room,
                        epoch,
                        success: false,
                        room_id: room_id.clone(),
                        code: e.code,
                        message: e.message.clone(),
                    },
                );
            }
            return;
        }
        for o in objects {
            let _ = self.migrate_inner(DOHandle(o), to);
        }
        self.send(to, SYSTEM_STREAM, Msg::RoomAdopt { room, epoch });
    }

    pub(super) fn on_room_adopt(&mut self, origin: StationId, room: DOHandle, epoch: u32) {
        if self.master_of(room) != Some(self.membership.id) {
            self.stats.bad_messages += 1;
            return;
        }
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        let id = self.new_room_id();
        let members = {
            let mut g = r.lock();
            g.data.id = id.clone();
            g.data.server = self.membership.id.0;
            g.data.migrations = epoch;
            g.data.members.clone()
        };
        let _ = self.update(self.now, room);
        debug!(station = %self.membership.id, room = %id, from = %origin, "room adopted");
        let message = format!("room moved from {origin} to {}", self.membership.id);
        for m in members {
            self.send(
                StationId(m),
                SYSTEM_STREAM,
                Msg::RoomMigrateComplete {
                    room,
                    epoch,
                    success: true,
                    room_id: id.clone(),
                    code: 0,
                    message: message.clone(),
                },
            );
        }
    }

    pub(super) fn remove_room_member(&mut self, room: DOHandle, member: StationId) {
        let Some(r) = self.get::<RoomObject>(room) else {
            return;
        };
        {
            let mut g = r.lock();
            g.data.members.retain(|m| *m != member.0);
            if g.data.owner == member.0 {
                // The owner is gone: the lowest remaining member takes over.
                g.data.owner = g.data.members.first().copied().unwrap_or(0);
            }
        }
        let _ = self.update(self.now, room);
    }

    /// A station left: rooms hosted here forget it (and find a new owner),
    /// and this station's requests to it fail.
    pub(super) fn room_member_gone(&mut self, id: StationId) {
        for r in self.hosted_rooms() {
            if r.members.contains(&id) || r.owner == id {
                self.remove_room_member(r.handle, id);
            }
        }
        self.fail_room_requests(
            |p| p.dest == id,
            RoomError::UNREACHABLE,
            &format!("station {id}, which the request went to, left the session"),
        );
    }

    /// The soonest deadline of a room request.
    pub(super) fn room_request_deadline(&self) -> Option<Instant> {
        self.rooms.deadlines.first().map(|(at, _)| *at)
    }

    /// Room requests whose answer is overdue fail with
    /// [`RoomError::TIMEOUT`].
    pub(super) fn expire_room_requests(&mut self) {
        let now = self.now;
        self.fail_room_requests(
            |p| p.deadline <= now,
            RoomError::TIMEOUT,
            "no answer within the RMC timeout",
        );
    }

    /// Fails, in the order they were made, the pending room requests
    /// `which` picks: each gets its [`Event::RoomResult`].
    pub(super) fn fail_room_requests(
        &mut self,
        which: impl Fn(&PendingRoomRequest) -> bool,
        code: u16,
        message: &str,
    ) {
        let failed: Vec<u64> = self
            .rooms
            .pending
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(r, _)| *r)
            .collect();
        for request in failed {
            if let Some(p) = self.rooms.pending.remove(&request) {
                self.rooms.deadlines.remove(&(p.deadline, request));
                self.events.push_back(Event::RoomResult {
                    request,
                    room: p.room,
                    result: Err(RoomError::new(code, message)),
                });
            }
        }
    }
}

// ---- message handlers (dispatched by `Station::handle_msg`)
impl Station {
    /// `RoomReply`: the answer to a room request.
    pub(super) fn on_room_reply(
        &mut self,
        request: u64,
        room: DOHandle,
        code: u16,
        message: String,
        room_id: String,
    ) {
        // Only the answer to a request that waits here counts: a late one
        // (after its timeout) or one never asked for is dropped.
        let Some(p) = self.rooms.pending.remove(&request) else {
            self.stats.unmatched_room_replies += 1;
            return;
        };
        self.rooms.deadlines.remove(&(p.deadline, request));
        let result = if code == 0 {
            Ok(room_id)
        } else {
            Err(RoomError::new(code, message))
        };
        self.events.push_back(Event::RoomResult {
            request,
            room,
            result,
        });
    }

    /// `RoomMigrateStart`: a room starts moving.
    pub(super) fn on_room_migrate_start(&mut self, room: DOHandle, epoch: u32) {
        if !self.is_room(room) {
            self.stats.unknown_object += 1;
            return;
        }
        let started = self.rooms.started.entry(room).or_insert(0);
        if epoch > *started {
            *started = epoch;
            self.events.push_back(Event::RoomMigrateStart { room });
        }
    }

    /// `RoomMigrateComplete`: a room moved (or did not).
    pub(super) fn on_room_migrate_complete(
        &mut self,
        room: DOHandle,
        epoch: u32,
        success: bool,
        room_id: String,
        code: u16,
        message: String,
    ) {
        if success && !self.is_room(room) {
            self.stats.unknown_object += 1;
            return;
        }
        if success {
            if self.rooms.completed.get(&room).is_some_and(|e| *e >= epoch) {
                return;
            }
            self.rooms.completed.insert(room, epoch);
            // The start may have taken a slower path: report it first.
            let started = self.rooms.started.entry(room).or_insert(0);
            if *started < epoch {
                *started = epoch;
                self.events.push_back(Event::RoomMigrateStart { room });
            }
        }
        self.events.push_back(Event::RoomMigrateComplete {
            room,
            success,
            room_id,
            error_code: code,
            message,
        });
    }
}

// ---- room quotas
impl Station {
    /// Whether `room` is a room in the store.
    fn is_room(&self, room: DOHandle) -> bool {
        room.class_id() == ClassId::ROOM && self.store.entries.contains_key(&room)
    }

    /// Whether a room request of `by` stays within the room quotas.
    fn room_quota(&self, by: StationId, room: DOHandle, op: &RoomOp) -> Result<(), String> {
        let limits = &self.cfg.limits;
        let too_big = |k: &str, v: &str| k.len() + v.len() > limits.max_room_property_bytes;
        match op {
            RoomOp::Create { properties } => {
                let owned = self.hosted_rooms().iter().filter(|r| r.owner == by).count();
                if owned >= limits.max_rooms_per_station {
                    return Err(format!(
                        "station {by} owns {owned} rooms here already (at most {})",
                        limits.max_rooms_per_station
                    ));
                }
                if properties.len() > limits.max_room_properties {
                    return Err(format!(
                        "a room has at most {} properties",
                        limits.max_room_properties
                    ));
                }
                if properties.iter().any(|(k, v)| too_big(k, v)) {
                    return Err(format!(
                        "a room property has at most {} bytes",
                        limits.max_room_property_bytes
                    ));
                }
            }
            RoomOp::SetProperty { key, value } => {
                if too_big(key, value) {
                    return Err(format!(
                        "a room property has at most {} bytes",
                        limits.max_room_property_bytes
                    ));
                }
                if let Some(info) = self.room(room) {
                    let new = !info.properties.iter().any(|(k, _)| k == key);
                    if new && info.properties.len() >= limits.max_room_properties {
                        return Err(format!(
                            "a room has at most {} properties",
                            limits.max_room_properties
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
