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
        trace!(station = %self.membership.id, from = %origin, msg = msg.name(), "recv");
        if self.store.system_lock > 0 && needs_unlocked(&msg) {
            self.store.deferred.push(Deferred::Msg(origin, msg));
            return;
        }
        match msg {
            // Connectionless only: never on a link.
            Msg::JoinRequest { .. }
            | Msg::JoinDenied { .. }
            | Msg::JoinAccepted { .. }
            | Msg::JoinChallenge { .. } => self.stats.bad_messages += 1,
            // Admission.
            Msg::JoinForward {
                nonce,
                addr,
                process_type,
                token,
                topology,
                connect,
            } => self.on_join_forward(origin, nonce, addr, process_type, token, topology, connect),
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
            Msg::Create {
                handle,
                master,
                data,
            } => self.on_create(origin, handle, master, &data.0),
            Msg::Delete { handle } => self.on_delete(origin, handle),
            Msg::DuplicaRemoved { handle } => self.change_dup_set(handle, origin, false, origin),
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
            } => self.on_rmc_reply(call, Outcome::from_wire(outcome), result.0, master_hint),
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
    )
}
