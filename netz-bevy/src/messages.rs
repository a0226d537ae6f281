//! The Bevy messages the plugin writes: the session's and the objects'
//! events, in the order the station reported them.
//!
//! Read them with `MessageReader<M>` in any system after
//! [`NetzSet::Receive`](crate::NetzSet::Receive) (they are written in
//! `PreUpdate` and, for what the frame's own calls caused, in `PostUpdate`;
//! Bevy keeps a message for two frames).

use crate::objects::Role;
use bevy_ecs::entity::Entity;
use bevy_ecs::message::Message;
use netz_core::{DOHandle, Event, JoinError, Outcome, StationId, StationInfo};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// This station is in the session: it created it (`created`, and it is the
/// session master) or its join was accepted.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct SessionJoined {
    /// This station's id.
    pub id: StationId,
    /// The session master.
    pub session_master: StationId,
    /// Whether this station created the session.
    pub created: bool,
}

/// Joining the session failed.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct JoinFailed(pub JoinError);

/// Another station joined the session.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct StationJoined(pub StationInfo);

/// A station left the session gracefully.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StationLeft(pub StationId);

/// A station was declared failed (silent for the failure timeout); the
/// session master now recovers its objects.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StationFailed(pub StationId);

/// The session master changed.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionMasterChanged {
    /// The new session master.
    pub new_master: StationId,
}

/// This station is no longer in the session.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct Disconnected {
    /// Why.
    pub reason: String,
}

/// An object entered the local store and has an entity now.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectDiscovered {
    /// Its entity.
    pub entity: Entity,
    /// Its handle.
    pub handle: DOHandle,
    /// Master or duplica.
    pub role: Role,
}

/// An object left the local store; its entity is despawned.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRemoved {
    /// The entity it had (despawned by now).
    pub entity: Entity,
    /// Its handle.
    pub handle: DOHandle,
}

/// An object's master moved (migration or fault recovery).
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMasterChanged {
    /// Its entity.
    pub entity: Entity,
    /// Its handle.
    pub handle: DOHandle,
    /// The station holding the master now.
    pub master: StationId,
    /// The local copy's role now.
    pub role: Role,
}

/// A server migration or room migration event (client-server sessions; see
/// the README's "Server migration").
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationEvent {
    /// A server scales in (Diarkis `OnOffline`): a client whose server it
    /// is (`ours`) should call [`Netz::send_migrate`](crate::Netz::send_migrate).
    Offline {
        /// The server going away.
        server: StationId,
        /// Whether it is this client's server.
        ours: bool,
        /// How long it waits for its clients.
        drain: Duration,
    },
    /// This client left its old server and moves to `to` (Diarkis
    /// `OnDisconnect(isReconnect = true)`): not the game's disconnect path.
    Disconnected {
        /// The server left.
        from: StationId,
        /// The server the client moves to.
        to: StationId,
    },
    /// This client is on its new server, with its id, objects and
    /// duplicas intact (Diarkis `OnConnect(reconnect = true)`).
    Reconnected {
        /// The new server.
        server: StationId,
    },
    /// A migration could not be done; the client stays on its server.
    Failed {
        /// Why.
        reason: String,
    },
    /// A room this station is a member of starts moving.
    RoomStarted {
        /// The room.
        room: DOHandle,
    },
    /// A room migration ended.
    RoomCompleted {
        /// The room.
        room: DOHandle,
        /// Whether the room moved.
        success: bool,
        /// The room's id from now on (its old id when it failed).
        room_id: String,
        /// 0, or one of the `RoomError` codes.
        error_code: u16,
        /// What happened, for people.
        message: String,
    },
}

impl MigrationEvent {
    /// The migration event of a station event, if it is one.
    pub fn from_event(event: &Event) -> Option<Self> {
        Some(match event {
            Event::Offline {
                server,
                ours,
                drain,
            } => MigrationEvent::Offline {
                server: *server,
                ours: *ours,
                drain: *drain,
            },
            Event::MigrateDisconnected { from, to } => MigrationEvent::Disconnected {
                from: *from,
                to: *to,
            },
            Event::Reconnected { server } => MigrationEvent::Reconnected { server: *server },
            Event::MigrateFailed { reason } => MigrationEvent::Failed {
                reason: reason.clone(),
            },
            Event::RoomMigrateStart { room } => MigrationEvent::RoomStarted { room: *room },
            Event::RoomMigrateComplete {
                room,
                success,
                room_id,
                error_code,
                message,
            } => MigrationEvent::RoomCompleted {
                room: *room,
                success: *success,
                room_id: room_id.clone(),
                error_code: *error_code,
                message: message.clone(),
            },
            _ => return None,
        })
    }
}

/// Every event the station reported, unchanged (for what the typed messages
/// do not cover).
#[derive(Message, Clone, Debug, PartialEq)]
pub struct NetzEvent(pub Event);

/// The id of a call made through [`Netz`](crate::Netz).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A call made through [`Netz`](crate::Netz) completed.
#[derive(Message, Clone, Debug)]
pub struct RmcCompleted {
    /// The call, as [`Netz::rmc`](crate::Netz::rmc) returned it.
    pub call: CallId,
    /// The entity of the called object.
    pub entity: Entity,
    /// The called object.
    pub handle: DOHandle,
    /// How the call ended.
    pub outcome: Outcome,
    value: Option<Arc<dyn Any + Send + Sync>>,
}

impl RmcCompleted {
    pub(crate) fn new(
        call: CallId,
        entity: Entity,
        handle: DOHandle,
        outcome: Outcome,
        value: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Self {
        RmcCompleted {
            call,
            entity,
            handle,
            outcome,
            value,
        }
    }

    /// The RMC's return value, when it succeeded and returns an `R`.
    pub fn value<R: 'static>(&self) -> Option<&R> {
        self.value.as_deref()?.downcast_ref::<R>()
    }
}
