//! Messages made by hand, for tests that play a cheating member.
//!
//! A real station sends them to `dest` on its own authenticated links, as
//! if its own code had: the receiver sees a member with every right a
//! member has, and nothing more. Tests use this to show that each message
//! kind is believed only from those entitled to send it.

use crate::ids::{DOHandle, StationId};
use crate::rmc::Outcome;
use crate::wire::{Bytes, Msg, RoomOp};
use crate::{Instant, Station};

/// A message a cheating member may send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Forged {
    /// "I took over as session master after these failed."
    NewSessionMaster {
        /// The stations it claims failed.
        failed: Vec<StationId>,
    },
    /// "Station `id` is out of the session."
    StationGone {
        /// The station.
        id: StationId,
        /// Failed (or left).
        failed: bool,
    },
    /// "Station `id` went silent here."
    ReportFailure {
        /// The station it reports.
        id: StationId,
    },
    /// "The master of `handle` is `master` now."
    MasterChanged {
        /// The object.
        handle: DOHandle,
        /// Its claimed master.
        master: StationId,
    },
    /// "Take the master of `handle` over, with these datasets."
    Migrate {
        /// The object.
        handle: DOHandle,
        /// Dataset bytes (see [`datasets_of`]).
        data: Vec<u8>,
        /// The duplica set it hands over.
        dup_set: Vec<StationId>,
    },
    /// "Create a duplica of `handle`, mastered by `master`."
    Create {
        /// The object.
        handle: DOHandle,
        /// Its claimed master.
        master: StationId,
        /// Dataset bytes.
        data: Vec<u8>,
    },
    /// "I hold a duplica of `handle` naming you its master."
    DuplicaHeld {
        /// The object.
        handle: DOHandle,
    },
    /// "`handle` is deleted."
    Delete {
        /// The object.
        handle: DOHandle,
    },
    /// "The datasets of `handle` changed."
    Update {
        /// The object.
        handle: DOHandle,
        /// Dataset bytes.
        data: Vec<u8>,
    },
    /// "The latest states of these objects" (see [`latest_batch_of`]).
    LatestBatch {
        /// The batch's bytes.
        data: Vec<u8>,
    },
    /// "The reliable changes of these objects".
    UpdateBatch {
        /// The batch's bytes.
        data: Vec<u8>,
    },
    /// An action on `handle`.
    Action {
        /// The object.
        handle: DOHandle,
        /// The method id.
        method: u16,
        /// Postcard arguments.
        args: Vec<u8>,
        /// Asks the master to run it on every duplica.
        forward: bool,
    },
    /// The reply to call `call`.
    RmcReply {
        /// The call id.
        call: u64,
        /// Its outcome.
        outcome: Outcome,
        /// Postcard result.
        result: Vec<u8>,
        /// Where the master is said to be.
        master_hint: StationId,
    },
    /// "`station` is relayed by `relay` from now on."
    Reattach {
        /// The client.
        station: StationId,
        /// Its claimed relay.
        relay: StationId,
    },
    /// A request to create a room with `properties`.
    CreateRoom {
        /// The request id.
        request: u64,
        /// The room's properties.
        properties: Vec<(String, String)>,
    },
    /// A request to set a property of `room`.
    SetRoomProperty {
        /// The request id.
        request: u64,
        /// The room.
        room: DOHandle,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Room server -> requester: the answer to room request `request`.
    RoomReply {
        /// The request id.
        request: u64,
        /// The room.
        room: DOHandle,
        /// 0, or a `RoomError` code.
        code: u16,
        /// The room id.
        room_id: String,
    },
    /// Room server -> members: a room starts moving.
    RoomMigrateStart {
        /// The room.
        room: DOHandle,
        /// Its migration epoch.
        epoch: u32,
    },
    /// "`id` handed me these objects" (a census answer).
    Holding {
        /// The gone station.
        id: StationId,
        /// The objects claimed.
        held: Vec<DOHandle>,
    },
    /// "The session counts `id`" (the session master's answer to a
    /// report of silence).
    StillMember {
        /// The reporting station.
        id: StationId,
    },
    /// Any message, postcard-encoded as the wire has it (for fuzzing);
    /// bytes that do not decode are not sent.
    Raw(Vec<u8>),
}

impl Forged {
    fn into_msg(self, by: StationId) -> Option<Msg> {
        Some(match self {
            Forged::NewSessionMaster { failed } => Msg::NewSessionMaster { failed },
            Forged::StationGone { id, failed } => Msg::StationGone { id, failed },
            Forged::ReportFailure { id } => Msg::ReportFailure { id },
            Forged::MasterChanged { handle, master } => Msg::MasterChanged { handle, master },
            Forged::Migrate {
                handle,
                data,
                dup_set,
            } => Msg::Migrate {
                handle,
                data: Bytes(data),
                dup_set,
            },
            Forged::Create {
                handle,
                master,
                data,
            } => Msg::Create {
                handle,
                master,
                data: Bytes(data),
            },
            Forged::Delete { handle } => Msg::Delete { handle },
            Forged::DuplicaHeld { handle } => Msg::DuplicaHeld { handle },
            Forged::Update { handle, data } => Msg::Update {
                handle,
                data: Bytes(data),
            },
            Forged::LatestBatch { data } => Msg::LatestBatch { data: Bytes(data) },
            Forged::UpdateBatch { data } => Msg::UpdateBatch { data: Bytes(data) },
            Forged::Action {
                handle,
                method,
                args,
                forward,
            } => Msg::Action {
                handle,
                method,
                args: Bytes(args),
                forward,
            },
            Forged::RmcReply {
                call,
                outcome,
                result,
                master_hint,
            } => Msg::RmcReply {
                call,
                outcome: outcome.to_wire(),
                result: Bytes(result),
                master_hint,
            },
            Forged::Reattach { station, relay } => Msg::Reattach { station, relay },
            Forged::CreateRoom {
                request,
                properties,
            } => Msg::RoomRequest {
                request,
                by,
                room: DOHandle::NULL,
                op: RoomOp::Create { properties },
            },
            Forged::SetRoomProperty {
                request,
                room,
                key,
                value,
            } => Msg::RoomRequest {
                request,
                by,
                room,
                op: RoomOp::SetProperty { key, value },
            },
            Forged::RoomReply {
                request,
                room,
                code,
                room_id,
            } => Msg::RoomReply {
                request,
                room,
                code,
                message: String::new(),
                room_id,
            },
            Forged::RoomMigrateStart { room, epoch } => Msg::RoomMigrateStart { room, epoch },
            Forged::Holding { id, held } => Msg::Holding { id, held },
            Forged::StillMember { id } => Msg::StillMember { id },
            Forged::Raw(bytes) => postcard::from_bytes(&bytes).ok()?,
        })
    }
}

/// Sends `msg` from `st` to `dest` (relayed as any message of `st` would
/// be); returns whether it was queued.
pub fn send_as(st: &mut Station, now: Instant, dest: StationId, msg: Forged) -> bool {
    let by = st.id();
    match msg.into_msg(by) {
        Some(m) => st.forge_send(now, dest, m),
        None => false,
    }
}

/// The dataset bytes of a local object, as a `Create` carries them.
pub fn datasets_of(st: &Station, handle: DOHandle) -> Option<Vec<u8>> {
    st.forge_datasets(handle)
}

/// A latest-state batch with every field of every dataset of the local
/// objects `handles` (master or duplica), all at `version`.
pub fn latest_batch_of(st: &Station, handles: &[DOHandle], version: u64) -> Vec<u8> {
    st.forge_latest_batch(handles, version)
}

/// A reliable batch (`UpdateBatch`) with every field of every dataset of
/// the local objects `handles` (master or duplica).
pub fn update_batch_of(st: &Station, handles: &[DOHandle]) -> Vec<u8> {
    st.forge_update_batch(handles)
}

/// Sends `msg` from `st` to `dest` in an envelope that claims `origin` and
/// carries the number `seq`, as a relay would pass it on (what a cheating
/// relay, or a client numbering its own messages, may try).
pub fn send_envelope_as(
    st: &mut Station,
    now: Instant,
    origin: StationId,
    dest: StationId,
    seq: u64,
    msg: Forged,
) -> bool {
    let by = st.id();
    match msg.into_msg(by) {
        Some(m) => st.forge_envelope(now, origin, dest, seq, m),
        None => false,
    }
}

/// Sets the id the session master gives the next joiner (tests of what
/// happens when a long session runs out of ids).
pub fn set_next_station_id(st: &mut Station, next: u32) {
    st.forge_next_station_id(next);
}

/// Per peer with a link key, fingerprints of this station's send and
/// receive keys for that link (names keys without showing them: tests that
/// check that no two links share a key).
pub fn link_key_fingerprints(st: &Station) -> Vec<(StationId, u64, u64)> {
    st.forge_key_fingerprints()
}

/// How many spent connect tokens the station (a session master) remembers.
pub fn spent_tokens(st: &Station) -> usize {
    st.forge_spent_tokens()
}
