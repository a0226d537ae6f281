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

/// A server migration or room migration event (client-server sessions):
/// one of `Event::Offline`, `MigrateDisconnected`, `Reconnected`,
/// `MigrateFailed`, `RoomMigrateStart`, `RoomMigrateComplete` or
/// `RoomResult`, as the station reported it.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct MigrationEvent(pub Event);

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
