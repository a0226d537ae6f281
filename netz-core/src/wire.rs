//! Station-level messages. Each travels inside a transport message as
//! postcard: `(seq, origin, destination, Msg)` (see [`Envelope`]).

use crate::config::Topology;
use crate::ids::StationInfo;
use crate::ids::{DOHandle, ProcessType, StationId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Bytes that serialize as one length-prefixed blob (not element by element).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Every message stations exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Msg {
    /// Connectionless: a station asks to join.
    JoinRequest {
        nonce: u64,
        process_type: ProcessType,
        token: String,
        topology: Topology,
        /// The sealed connect token (empty without security).
        connect: Bytes,
        /// The joiner's classes (see `compat`), checked by the session master.
        classes: Bytes,
        /// This join's fresh salt, mixed into the joiner's link keys.
        salt: [u8; 16],
        /// The contact's challenge cookie for this address (zeros until
        /// the contact sent one: see `JoinChallenge`); last in the request.
        cookie: [u8; 16],
    },
    /// Connectionless: the join was refused.
    JoinDenied { nonce: u64, reason: String },
    /// Contact station -> session master: a join request it received.
    JoinForward {
        nonce: u64,
        addr: SocketAddr,
        process_type: ProcessType,
        token: String,
        topology: Topology,
        connect: Bytes,
        /// The joiner's classes.
        classes: Bytes,
        /// The joiner's salt.
        salt: [u8; 16],
    },
    /// Session master -> contact: refuse the joiner at `addr`.
    JoinDenyForward {
        nonce: u64,
        addr: SocketAddr,
        reason: String,
    },
    /// Session master -> joiner: welcome.
    JoinAccepted {
        nonce: u64,
        id: StationId,
        session_master: StationId,
        session: u32,
        members: Vec<StationInfo>,
    },
    /// Session master -> members: a new station.
    StationJoined(StationInfo),
    /// Session master -> a member, before `StationJoined`: the keys of the
    /// member's link with `station` (member -> station, station -> member).
    LinkKeys {
        station: StationId,
        send: [u8; 32],
        recv: [u8; 32],
    },
    /// A station leaves gracefully.
    Leaving,
    /// Session master -> members: a station is out of the session.
    StationGone { id: StationId, failed: bool },
    /// Session master -> members: every object of a gone station was dealt with.
    RecoveryDone { id: StationId },
    /// Server -> session master: a client of mine went silent.
    ReportFailure { id: StationId },
    /// The sender took over as session master after these stations failed.
    NewSessionMaster { failed: Vec<StationId> },
    /// Master -> station: create (or refresh) a duplica.
    Create {
        handle: DOHandle,
        master: StationId,
        data: Bytes,
    },
    /// Master (or session master) -> duplicas: the object is deleted.
    Delete { handle: DOHandle },
    /// Duplica -> master: the duplica left the store.
    DuplicaRemoved { handle: DOHandle },
    /// Master -> duplicas: dataset changes.
    Update { handle: DOHandle, data: Bytes },
    /// Master station -> a duplica station: the dataset changes of several
    /// objects at once, one dataset message each (understood; `update_all`
    /// sends `UpdateBatch`).
    Updates { items: Vec<(DOHandle, Bytes)> },
    /// New master -> duplicas: the master moved.
    MasterChanged { handle: DOHandle, master: StationId },
    /// Old master -> new master: take the master over.
    Migrate {
        handle: DOHandle,
        data: Bytes,
        dup_set: Vec<StationId>,
    },
    /// An RMC.
    Rmc {
        call: u64,
        handle: DOHandle,
        method: u16,
        flags: u16,
        args: Bytes,
        reply: bool,
        substream: u8,
    },
    /// The reply to an RMC.
    RmcReply {
        call: u64,
        outcome: u8,
        result: Bytes,
        master_hint: StationId,
    },
    /// An action; `forward` asks the master to run it on every duplica.
    Action {
        handle: DOHandle,
        method: u16,
        args: Bytes,
        forward: bool,
    },
    /// Server -> everyone: I scale in; I leave when my drain ends.
    Offline { drain_ms: u64 },
    /// Client -> its server, once everything it sent was acknowledged:
    /// move me to another server.
    MigrateRequest,
    /// Server -> client: the migration cannot be done.
    MigrateRefused { reason: String },
    /// Old server -> new server: adopt this client (relay it from now on).
    Handover { station: StationId },
    /// New server -> old server: the answer to a `Handover`.
    HandoverAck { station: StationId, accepted: bool },
    /// Old server -> client: everything you sent has reached the next hop;
    /// switch to `to` now.
    MigrateGo { to: StationId },
    /// Client -> new server, on the new link.
    Reconnect,
    /// New server -> client: the answer to `Reconnect`.
    Welcome,
    /// Old server -> session master, then session master -> everyone:
    /// `station` is relayed by `relay` from now on.
    Reattach {
        station: StationId,
        relay: StationId,
    },
    /// Server -> client: you are disconnected.
    Kick { reason: String },
    /// A room request of station `by` (`room` is NULL for a create).
    RoomRequest {
        request: u64,
        by: StationId,
        room: DOHandle,
        op: RoomOp,
    },
    /// The answer to a room request.
    RoomReply {
        request: u64,
        room: DOHandle,
        code: u16,
        message: String,
        room_id: String,
    },
    /// Old room server -> new room server, after the room's `Migrate`:
    /// take the room over under a new id and tell its members.
    RoomAdopt { room: DOHandle, epoch: u32 },
    /// Room server -> members: the room starts moving.
    RoomMigrateStart { room: DOHandle, epoch: u32 },
    /// New room server -> members (or room server -> requester, on failure).
    RoomMigrateComplete {
        room: DOHandle,
        epoch: u32,
        success: bool,
        room_id: String,
        code: u16,
        message: String,
    },
    /// Connectionless, contact -> joiner: prove that you receive at your
    /// address; send the request again with this cookie.
    JoinChallenge { nonce: u64, cookie: [u8; 16] },
    /// Connectionless, contact -> joiner, with security on: the rest of
    /// what the joiner's link keys derive from (its id, the session tag,
    /// the session master's salt), sealed for the joiner alone; sent before
    /// anything on a link and again for each retry of the request.
    JoinKeys { nonce: u64, sealed: Bytes },
    /// Session master -> contact: pass `JoinKeys` on to the joiner at `addr`.
    JoinKeysForward {
        nonce: u64,
        addr: SocketAddr,
        sealed: Bytes,
    },
    /// A station -> every station: what it is interested in (its groups,
    /// its area as centre x, y, enter and leave radii).
    Interest {
        groups: Vec<u32>,
        area: Option<(f32, f32, f32, f32)>,
    },
    /// Master -> a duplica: the object is no longer relevant to you.
    NotRelevant { handle: DOHandle },
    /// Server -> a client, in place of a message of another client the
    /// server refused: it keeps the refused message's number, so the
    /// receiver's order has no gap; nothing else happens.
    Withheld,
    /// Master station -> a duplica station, reliable: the changes of
    /// reliable datasets of several objects (see `dataset_codec`'s batches).
    UpdateBatch { data: Bytes },
    /// Master station -> a duplica station, on the unreliable channel (or
    /// reliably when too large for a datagram): the latest states of
    /// latest-state datasets of several objects, with their versions.
    LatestBatch { data: Bytes },
    /// A duplica station -> the station it names the object's master, once
    /// the old master of a recent hand-over failed: the sender holds a
    /// duplica (the hand-over's `Migrate` may have died with the old
    /// master, and the new master never had the object).
    DuplicaHeld { handle: DOHandle },
    /// A member -> the session master, on its `StationGone` of `id`: the
    /// objects the sender masters that `id` handed it a little before (a
    /// hand-over the session master may not have heard of). The session
    /// master recovers `id`'s other objects once every member answered.
    Holding { id: StationId, held: Vec<DOHandle> },
    /// The session master -> a member another member (`id`) reported
    /// silent, while the session master hears both: the session counts
    /// `id`. A station that saw `id` declared gone is out of step with the
    /// session and excludes itself.
    StillMember { id: StationId },
}

/// What a room request asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum RoomOp {
    Create { properties: Vec<(String, String)> },
    Join,
    Leave,
    SetProperty { key: String, value: String },
    Migrate,
}

impl Msg {
    /// The object the message is about, if one (for traces).
    pub(crate) fn handle(&self) -> Option<DOHandle> {
        match self {
            Msg::Create { handle, .. }
            | Msg::Delete { handle }
            | Msg::DuplicaRemoved { handle }
            | Msg::Update { handle, .. }
            | Msg::MasterChanged { handle, .. }
            | Msg::Migrate { handle, .. }
            | Msg::Rmc { handle, .. }
            | Msg::Action { handle, .. }
            | Msg::NotRelevant { handle }
            | Msg::DuplicaHeld { handle } => Some(*handle),
            _ => None,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Msg::JoinRequest { .. } => "JoinRequest",
            Msg::JoinDenied { .. } => "JoinDenied",
            Msg::JoinChallenge { .. } => "JoinChallenge",
            Msg::JoinKeys { .. } => "JoinKeys",
            Msg::JoinKeysForward { .. } => "JoinKeysForward",
            Msg::JoinForward { .. } => "JoinForward",
            Msg::JoinDenyForward { .. } => "JoinDenyForward",
            Msg::JoinAccepted { .. } => "JoinAccepted",
            Msg::StationJoined(_) => "StationJoined",
            Msg::LinkKeys { .. } => "LinkKeys",
            Msg::Leaving => "Leaving",
            Msg::StationGone { .. } => "StationGone",
            Msg::RecoveryDone { .. } => "RecoveryDone",
            Msg::Holding { .. } => "Holding",
            Msg::StillMember { .. } => "StillMember",
            Msg::ReportFailure { .. } => "ReportFailure",
            Msg::NewSessionMaster { .. } => "NewSessionMaster",
            Msg::Create { .. } => "Create",
            Msg::Delete { .. } => "Delete",
            Msg::DuplicaRemoved { .. } => "DuplicaRemoved",
            Msg::DuplicaHeld { .. } => "DuplicaHeld",
            Msg::Update { .. } => "Update",
            Msg::Updates { .. } => "Updates",
            Msg::MasterChanged { .. } => "MasterChanged",
            Msg::Migrate { .. } => "Migrate",
            Msg::Rmc { .. } => "Rmc",
            Msg::RmcReply { .. } => "RmcReply",
            Msg::Action { .. } => "Action",
            Msg::Offline { .. } => "Offline",
            Msg::MigrateRequest => "MigrateRequest",
            Msg::MigrateRefused { .. } => "MigrateRefused",
            Msg::Handover { .. } => "Handover",
            Msg::HandoverAck { .. } => "HandoverAck",
            Msg::MigrateGo { .. } => "MigrateGo",
            Msg::Reconnect => "Reconnect",
            Msg::Welcome => "Welcome",
            Msg::Reattach { .. } => "Reattach",
            Msg::Kick { .. } => "Kick",
            Msg::Interest { .. } => "Interest",
            Msg::NotRelevant { .. } => "NotRelevant",
            Msg::Withheld => "Withheld",
            Msg::UpdateBatch { .. } => "UpdateBatch",
            Msg::LatestBatch { .. } => "LatestBatch",
            Msg::RoomRequest { .. } => "RoomRequest",
            Msg::RoomReply { .. } => "RoomReply",
            Msg::RoomAdopt { .. } => "RoomAdopt",
            Msg::RoomMigrateStart { .. } => "RoomMigrateStart",
            Msg::RoomMigrateComplete { .. } => "RoomMigrateComplete",
        }
    }
}

/// A message with its end-to-end addressing (relays forward by `dest`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// For messages to a client of a client-server session: the message's
    /// number among those `origin` sent to `dest` on its sub-stream, from 1,
    /// which keeps them in order and once only while the client's server
    /// changes. 0 otherwise. First, so that one encoding serves every
    /// number (see [`Envelope::renumbered`]).
    pub seq: u64,
    pub origin: StationId,
    pub dest: StationId,
    pub msg: Msg,
}

impl Envelope {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Room for a small message at once: growing from nothing costs a
        // reallocation at every doubling.
        postcard::to_extend(self, Vec::with_capacity(64)).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Envelope> {
        postcard::from_bytes(bytes).ok()
    }

    /// `encoded` (an envelope encoded with `seq` 0) with `seq` set.
    pub(crate) fn renumbered(encoded: &[u8], seq: u64) -> Vec<u8> {
        let rest = encoded.get(1..).unwrap_or_default();
        let mut out = Vec::with_capacity(rest.len() + 4);
        put_varint(&mut out, seq);
        out.extend_from_slice(rest);
        out
    }
}

/// Appends `v` as a LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint from the front of `input`.
pub(crate) fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(b & 0x7f).checked_shl(7 * i)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_and_garbage() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut s = &b[..];
            assert_eq!(get_varint(&mut s), Some(v));
            assert!(s.is_empty());
        }
        let mut s: &[u8] = &[0xff; 12];
        assert_eq!(get_varint(&mut s), None);
    }

    #[test]
    fn bytes_encode_compactly() {
        let e = Envelope {
            seq: 0,
            origin: StationId(1),
            dest: StationId(2),
            msg: Msg::Update {
                handle: DOHandle(5),
                data: Bytes(vec![7; 10]),
            },
        };
        let b = e.encode();
        assert!(b.len() < 20, "{}", b.len());
        let d = Envelope::decode(&b).unwrap();
        assert!(matches!(d.msg, Msg::Update { data, .. } if data.0 == vec![7; 10]));
        // Renumbering an encoding equals encoding with the number.
        for seq in [1u64, 127, 128, 1 << 40] {
            let numbered = Envelope { seq, ..e.clone() }.encode();
            assert_eq!(Envelope::renumbered(&b, seq), numbered);
            assert_eq!(Envelope::decode(&numbered).unwrap().seq, seq);
        }
    }
}
