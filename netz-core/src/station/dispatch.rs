//! Incoming messages to the part that owns them.
//!
//! Every station message that arrived (on a link, relayed, or from this
//! station to itself) comes through [`Station::handle_msg`], which hands it
//! to the handler of the part that owns it. This is the one place to add a
//! message kind: its wire form in `wire.rs`, its arm here, its handler in
//! its part.

use super::*;

impl Station {
    /// Handles `msg`, sent by `origin` (already checked to speak for itself,
    /// or vouched for by a server that relayed it).
    pub(super) fn handle_msg(&mut self, origin: StationId, msg: Msg) {
        trace!(station = %self.membership.id, from = %origin, msg = msg.name(), handle = ?msg.handle(), "recv");
        let Some(msg) = self.keep_successor_word(origin, msg) else {
            return;
        };
        if !self.may_send(origin, &msg) {
            self.refuse(msg.name(), origin, "not entitled to send it");
            return;
        }
        if self.store.system_lock > 0 && needs_unlocked(&msg) {
            self.store.deferred.push(Deferred::Msg(origin, msg));
            return;
        }
        match msg {
            // Connectionless only: never on a link.
            Msg::JoinRequest { .. }
            | Msg::JoinDenied { .. }
            | Msg::JoinAccepted { .. }
            | Msg::JoinChallenge { .. }
            | Msg::JoinKeys { .. } => self.stats.bad_messages += 1,
            // Admission.
            Msg::JoinForward {
                nonce,
                addr,
                process_type,
                token,
                topology,
                connect,
                classes,
                salt,
            } => self.on_join_forward(
                origin,
                JoinAsk {
                    nonce,
                    addr,
                    process_type,
                    token,
                    topology,
                    connect: connect.0,
                    classes: classes.0,
                    salt,
                },
            ),
            Msg::JoinKeysForward {
                nonce,
                addr,
                sealed,
            } => self.on_join_keys_forward(origin, nonce, addr, sealed),
            Msg::JoinDenyForward {
                nonce,
                addr,
                reason,
            } => self.on_join_deny_forward(origin, nonce, addr, reason),
            Msg::LinkKeys {
                station,
                send,
                recv,
            } => self.on_link_keys(origin, station, send, recv),
            // Membership and election.
            Msg::StationJoined(info) => self.on_station_joined(origin, info),
            Msg::Leaving => self.on_leaving(origin),
            Msg::StationGone { id, failed } => self.on_station_gone(origin, id, failed),
            Msg::ReportFailure { id } => self.on_report_failure(origin, id),
            Msg::NewSessionMaster { failed } => self.on_new_session_master(origin, failed),
            // Store.
            Msg::RecoveryDone { id } => self.on_recovery_done(origin, id),
            Msg::Holding { id, held } => self.on_holding(origin, id, held),
            Msg::StillMember { id } => self.on_still_member(origin, id),
            Msg::Create {
                handle,
                master,
                data,
            } => {
                self.on_create(origin, handle, master, &data.0);
                self.note_full_state(origin, handle, &data.0);
            }
            Msg::Delete { handle } => self.on_delete(origin, handle),
            Msg::DuplicaRemoved { handle } => self.change_dup_set(handle, origin, false, origin),
            Msg::DuplicaHeld { handle } => self.on_duplica_held(origin, handle),
            Msg::MasterChanged { handle, master } => self.on_master_changed(origin, handle, master),
            Msg::Migrate {
                handle,
                data,
                dup_set,
            } => self.on_migrate(origin, handle, data, dup_set),
            // Replication.
            Msg::Update { handle, data } => self.on_update(origin, handle, &data.0),
            Msg::Updates { items } => {
                for (handle, data) in items {
                    self.on_update(origin, handle, &data.0);
                }
            }
            Msg::UpdateBatch { data } => self.on_update_batch(origin, &data.0),
            Msg::LatestBatch { data } => self.on_latest_batch(origin, &data.0),
            // Calls.
            Msg::Rmc {
                call,
                handle,
                method,
                flags,
                args,
                reply,
                substream,
            } => self.on_rmc(
                origin, call, handle, method, flags, args.0, reply, substream,
            ),
            Msg::RmcReply {
                call,
                outcome,
                result,
                master_hint,
            } => self.on_rmc_reply(
                origin,
                call,
                Outcome::from_wire(outcome),
                result.0,
                master_hint,
            ),
            Msg::Action {
                handle,
                method,
                args,
                forward,
            } => self.on_action(origin, handle, method, args, forward),
            // Migration.
            Msg::Offline { drain_ms } => self.on_offline(origin, drain_ms),
            Msg::MigrateRequest => self.on_migrate_request(origin),
            Msg::MigrateRefused { reason } => self.on_migrate_refused(origin, reason),
            Msg::Handover { station } => self.on_handover(origin, station),
            Msg::HandoverAck { station, accepted } => {
                self.on_handover_ack(origin, station, accepted)
            }
            Msg::MigrateGo { to } => self.on_migrate_go(origin, to),
            Msg::Reconnect => self.on_reconnect(origin),
            Msg::Welcome => self.on_welcome(origin),
            Msg::Reattach { station, relay } => self.on_reattach(origin, station, relay),
            Msg::Kick { reason } => self.on_kick(origin, reason),
            // Rooms.
            Msg::RoomRequest {
                request,
                by,
                room,
                op,
            } => self.on_room_request(origin, request, by, room, op),
            Msg::RoomReply {
                request,
                room,
                code,
                message,
                room_id,
            } => self.on_room_reply(request, room, code, message, room_id),
            Msg::RoomAdopt { room, epoch } => self.on_room_adopt(origin, room, epoch),
            Msg::RoomMigrateStart { room, epoch } => self.on_room_migrate_start(room, epoch),
            Msg::RoomMigrateComplete {
                room,
                epoch,
                success,
                room_id,
                code,
                message,
            } => self.on_room_migrate_complete(room, epoch, success, room_id, code, message),
            // Interest.
            Msg::Interest { groups, area } => self.on_interest(origin, groups, area),
            Msg::NotRelevant { handle } => self.on_not_relevant(origin, handle),
            // A refused message's number: nothing to do.
            Msg::Withheld => {}
        }
    }
}

/// Who may send a message kind. [`Station::handle_msg`] checks the rule
/// against the authenticated origin before the handler runs; handlers
/// whose rule is `Handler` check the sender against their own state (and
/// every handler checks what depends on the object or the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    /// Nobody: the kind never travels on a link.
    Nobody,
    /// The session master (elected, never claimed).
    SessionMaster,
    /// A server of the session.
    Server,
    /// A station that may take join requests: any member in a mesh, a
    /// server in a client-server session.
    Contact,
    /// Any member, about itself (its own duplicas, its own calls, its own
    /// requests); the pipeline's checks judge the rest.
    Member,
    /// The handler decides, from its part's state.
    Handler,
}

/// The authority table: who may send each message kind.
///
/// | kind | who | and what the handler checks |
/// |---|---|---|
/// | JoinRequest, JoinDenied, JoinAccepted, JoinChallenge, JoinKeys | nobody (connectionless only) | |
/// | JoinForward | a contact | the same token, rate and capacity checks as a direct request |
/// | JoinKeysForward | the session master | only for a request this station forwarded, to the address it came from |
/// | JoinDenyForward, LinkKeys, StationJoined, StationGone, RecoveryDone | the session master | LinkKeys, StationJoined and Reattach from a station whose takeover this one refused, and its Create, MasterChanged and Delete of objects held here (its recovery) and RecoveryDone, are kept (at most 256 KiB) and heard only if this station follows it (`keep_successor_word`) |
/// | Holding | any member | at the session master only, once per member and gone station, while its recovery waits for the members' answers; only objects the gone station masters here, each taken by the rule for a new master's own word once its old master is gone (`on_holding`) |
/// | StillMember | the session master | the station it names is a member this station saw declared gone: this station excludes itself; otherwise nothing |
/// | ReportFailure | any member | declared failed only when it is the sender's own client (the sender relays it); about a station the session master no longer counts, the sender alone is told it is gone (also when it never counted it); about a member the session master hears, as it hears the sender, that member alone is told the session counts the sender (`StillMember`). The reporting server holds whatever that client sends on its link from then on until the verdict (dropped if it is declared gone) |
/// | Leaving | any member | about itself |
/// | NewSessionMaster | handler | the sender is the one this station's own view of the election picks, and every station it names as failed has been silent here; a client cannot see the others' silence and takes its server's word: a server passes a takeover on to its clients only from the session master it follows, keeps the others and passes them on (in that station's name, with the members' `StationJoined`) once it follows it, and tells a client it welcomes whom it follows |
/// | Create | handler | a new object is created by its sender, or re-discovered by its master; an existing duplica's master changes only with its old master's word or the session master's recovery |
/// | Delete | handler | the object's master, or the session master (a station object only from its master while its station is a member here) |
/// | DuplicaRemoved | any member | about its own duplica |
/// | DuplicaHeld | any member | about its own duplica: a station that lacks the object answers the sender alone with `Delete` (its duplica names this station master, which nobody can be now); the master answers a station of the object's duplica set alone with its state (`Create`, within the link's queue limit and budget); nothing else |
/// | MasterChanged | handler | the object's current master hands it over, or the session master recovers it, or the new master names itself once the old one is gone (up to four stations' claims wait per object); one naming the receiver comes only from the session master (a hand-over whose `Migrate` died with its failed old master), taken while the receiver's copy names a gone master |
/// | Migrate | handler | the object's current master |
/// | Update, Updates, UpdateBatch | handler | the object's master (per object); a change of an object not held here is asked for from its sender (`DuplicaHeld`, once a failure timeout per object, at most 1,024 remembered) |
/// | LatestBatch | handler | the object's master (per object); only states newer than the duplica's apply |
/// | Rmc | any member | the pipeline's checks |
/// | RmcReply | handler | the station the call was sent to |
/// | Action | handler | to the master: any member; to duplicas: the object's master |
/// | Offline, Handover, HandoverAck, RoomAdopt, RoomMigrateStart, RoomMigrateComplete | a server | |
/// | RoomReply | a server | only for a request that waits here (not answered yet, not timed out) |
/// | MigrateRequest, Reconnect | handler | a client this server relays (or adopted) |
/// | MigrateRefused, MigrateGo, Kick, Welcome | handler | this client's server |
/// | Reattach | handler | at the session master: a server, the client's by its record (or naming the server its record names already: it took the client itself); a server handing on a client the session master declared gone is told of its departure again, alone; the client's own server handing it to a server declared gone since makes the client gone too; elsewhere: the session master (a server ignores its word that a client it relays and is linked to went elsewhere: that is of an earlier move), or the client's own server by this station's record, naming a server other than this one (heard at once, even from a successor whose takeover this station refused). A server tells it again to each new session master until the session master's own `Reattach` comes back |
/// | RoomRequest | handler | the requester itself, or a server passing it on |
/// | Interest | any member | about itself (its own interest); a well-formed area, bounded groups |
/// | NotRelevant | handler | the object's master |
/// | Withheld | any member | (a no-op that keeps a refused message's number) |
///
/// `Probe` datagrams (after a partition) are a packet kind, not a message:
/// their rule (only from a voter this station declared failed, authentic
/// under that link's keys or from its last address) is in `partition.rs`.
fn sender_rule(msg: &Msg) -> Sender {
    match msg {
        Msg::JoinRequest { .. }
        | Msg::JoinDenied { .. }
        | Msg::JoinAccepted { .. }
        | Msg::JoinChallenge { .. }
        | Msg::JoinKeys { .. } => Sender::Nobody,
        Msg::JoinForward { .. } => Sender::Contact,
        Msg::JoinDenyForward { .. }
        | Msg::JoinKeysForward { .. }
        | Msg::LinkKeys { .. }
        | Msg::StationJoined(_)
        | Msg::StationGone { .. }
        | Msg::RecoveryDone { .. }
        | Msg::StillMember { .. } => Sender::SessionMaster,
        Msg::Offline { .. }
        | Msg::Handover { .. }
        | Msg::HandoverAck { .. }
        | Msg::RoomReply { .. }
        | Msg::RoomAdopt { .. }
        | Msg::RoomMigrateStart { .. }
        | Msg::RoomMigrateComplete { .. } => Sender::Server,
        Msg::Leaving
        | Msg::ReportFailure { .. }
        | Msg::DuplicaRemoved { .. }
        | Msg::DuplicaHeld { .. }
        | Msg::Rmc { .. }
        | Msg::Interest { .. }
        | Msg::Holding { .. }
        | Msg::Withheld => Sender::Member,
        Msg::NewSessionMaster { .. }
        | Msg::Create { .. }
        | Msg::Delete { .. }
        | Msg::MasterChanged { .. }
        | Msg::Migrate { .. }
        | Msg::Update { .. }
        | Msg::Updates { .. }
        | Msg::UpdateBatch { .. }
        | Msg::LatestBatch { .. }
        | Msg::RmcReply { .. }
        | Msg::Action { .. }
        | Msg::MigrateRequest
        | Msg::MigrateRefused { .. }
        | Msg::MigrateGo { .. }
        | Msg::Reconnect
        | Msg::Welcome
        | Msg::Reattach { .. }
        | Msg::Kick { .. }
        | Msg::RoomRequest { .. }
        | Msg::NotRelevant { .. } => Sender::Handler,
    }
}

impl Station {
    /// Whether `origin` may send `msg` at all (the table above); this
    /// station's own messages always may.
    fn may_send(&self, origin: StationId, msg: &Msg) -> bool {
        if origin == self.membership.id {
            return !matches!(sender_rule(msg), Sender::Nobody);
        }
        let is_server = self.process_type_of(origin) == Some(ProcessType::Server);
        match sender_rule(msg) {
            Sender::Nobody => false,
            Sender::SessionMaster => origin == self.membership.session_master,
            Sender::Server => is_server,
            Sender::Contact => self.cfg.topology == Topology::Mesh || is_server,
            Sender::Member => self.membership.members.contains_key(&origin),
            Sender::Handler => true,
        }
    }

    /// Drops a message `origin` had no right to send: counted per kind,
    /// logged once per kind.
    pub(super) fn refuse(&mut self, kind: &'static str, origin: StationId, why: &'static str) {
        self.stats.unauthorized_messages += 1;
        *self.stats.unauthorized_by_kind.entry(kind).or_default() += 1;
        if self.refusals_logged.insert(kind) {
            debug!(station = %self.membership.id, from = %origin, msg = kind, why, "message refused");
        }
    }
}

/// Whether `msg` waits while the system lock is held (it would migrate or
/// remove an object).
fn needs_unlocked(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Delete { .. }
            | Msg::MasterChanged { .. }
            | Msg::Migrate { .. }
            | Msg::StationGone { .. }
            | Msg::RecoveryDone { .. }
            | Msg::RoomAdopt { .. }
            | Msg::NotRelevant { .. }
    )
}
