//! netz in Bevy: duplicated objects as entities of a Bevy world.
//!
//! [`NetzPlugin`] puts one netz station into an [`App`].
//! Every object of the station's store (master or duplica) is an entity
//! with a [`NetzObject`] component (handle, role, master station); the
//! datasets of its class are components, kept equal to the object both
//! ways; the session's and the objects' events are Bevy messages; and the
//! [`Netz`] system parameter calls RMCs and actions on an entity's object.
//!
//! ```
//! use bevy_app::{App, Update};
//! use bevy_ecs::prelude::*;
//! use netz::prelude::*;
//! use netz_bevy::prelude::*;
//!
//! #[dataset]
//! #[derive(Component, Default, Clone, Debug, PartialEq)]
//! pub struct Position { pub x: f32, pub y: f32 }
//!
//! #[doclass]
//! #[derive(Default)]
//! pub struct Player { #[dataset] pub position: Position }
//! #[doclass]
//! impl Player {}
//!
//! impl NetzClass for Player { type Datasets = (Position,); }
//!
//! fn walk(mut q: Query<(&NetzObject, &mut Position)>) {
//!     for (obj, mut p) in &mut q {
//!         if obj.is_master() { p.x += 1.0; } // reaches every duplica
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let mut app = App::new();
//! app.add_plugins(NetzPlugin::create(StationConfig::default(), "127.0.0.1:0")?)
//!     .register_netz_class::<Player>()
//!     .add_systems(Update, walk);
//! app.update(); // the station starts and creates the session
//! assert!(app.world().resource::<NetzSession>().is_session_master());
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **The sans-IO core in the schedule, no runtime.** The plugin owns a
//!   [`netz_core::Station`] and a non-blocking [`std::net::UdpSocket`]. In
//!   `PreUpdate` ([`NetzSet::Receive`]) it reads the [`NetzClock`], feeds
//!   every waiting datagram to the station and lets time pass
//!   (`handle_timeout`); in `PostUpdate` ([`NetzSet::Send`]) it sends the
//!   dataset updates and every datagram `poll_transmit` gives. The tokio
//!   driver (`netz-net`) on a runtime of its own was the other choice; it
//!   would put the station behind a lock shared with another thread, so
//!   systems could not touch objects without locking, the world would see
//!   the network at arbitrary points of the frame, and every Bevy app
//!   would carry a tokio runtime. With the core in the schedule, the
//!   network is read once per frame at a known point and a frame is
//!   deterministic given its datagrams and its clock.
//! - **Time.** The [`NetzClock`] resource maps a Bevy-side clock to
//!   [`netz_core::Instant`], read once per frame: the machine's monotonic
//!   clock by default, a fixed step per frame for tests and lock-step games.
//! - **Objects as entities.** Entities are spawned on `ObjectAdded` and
//!   despawned on `ObjectRemoved`; `MasterChanged` updates
//!   [`NetzObject::role`]. A class registered with
//!   [`NetzAppExt::register_netz_class`] names the dataset types that become
//!   components ([`NetzClass::Datasets`]); a `#[dataset]` struct that
//!   derives `Component` and `Default` is one. The copy between a component
//!   and the object's dataset goes field by field through the dataset's own
//!   encoding (postcard), so it needs neither `Clone` nor `PartialEq` and
//!   compares exactly what travels on the wire. Each component remembers
//!   the encoding of every field as last synchronised ([`DatasetLink`]):
//!   - in `PreUpdate` ([`NetzSet::SyncIn`]), a field whose object value
//!     changed (a received update, a method run on the object) is copied
//!     into the component, and only if the component does not hold that
//!     value already, so Bevy's change detection fires exactly when the
//!     value changed; a duplica's local edits of a field last until the
//!     master changes that field;
//!   - in `PostUpdate` ([`NetzSet::SyncOut`]), a master's component that
//!     changed (`Changed<D>`) writes the fields that differ into the
//!     object, which is then sent with [`netz_core::Station::update`]. When
//!     a system changes a field of the component and a method changes the
//!     same field of the object in the same frame, the component wins.
//! - **The session** is the [`NetzSession`] resource (id, session master,
//!   stations) and messages: [`SessionJoined`], [`JoinFailed`],
//!   [`StationJoined`], [`StationLeft`], [`StationFailed`],
//!   [`SessionMasterChanged`], [`Disconnected`], [`ObjectDiscovered`],
//!   [`ObjectRemoved`], [`ObjectMasterChanged`], [`MigrationEvent`], and
//!   every station event unchanged as [`NetzEvent`].
//! - **Which objects to look at.** The core reports no "this object
//!   changed" event, so the plugin registers an operation callback (priority
//!   1024, after everything else) for the operations that change an
//!   object's datasets (UpdateDataSet, CallMethod, ChangeMasterStation) and
//!   looks only at those objects in the next input stage
//!   ([`TouchedObjects`]), plus those the game wrote through
//!   [`NetzRef::write`]; an idle frame costs nothing per object.
//! - **Calls.** [`Netz::rmc`] takes a closure that makes the call on the
//!   class's generated proxy (`call_*` stubs) with an [`RmcContext`]; the
//!   plugin watches the context and writes an [`RmcCompleted`] message with
//!   the outcome and the typed value. [`Netz::track`] and
//!   [`CallCompletion`] are the adapter point for call handles made another
//!   way: [`FutureCall`] polls a future once per frame, so a call API that
//!   returns futures (typed async calls) needs no runtime either.
//!
//! The core stays engine-agnostic: nothing in `netz-core` or `netz-net`
//! knows Bevy.
//!
//! [`RmcContext`]: netz_core::RmcContext
pub mod calls;
pub mod clock;
pub mod messages;
pub mod objects;
pub mod station;

pub use bevy_app;
pub use bevy_ecs;
pub use calls::{CallCompletion, FutureCall, Netz, NetzError, PendingRmc};
pub use clock::NetzClock;
pub use messages::*;
pub use objects::{
    DatasetComponent, DatasetComponents, DatasetLink, NetzAppExt, NetzClass, NetzEntities,
    NetzObject, NetzRef, Role,
};
pub use station::{NetzSession, NetzSocket, NetzStation, PendingUpdates, Start, TouchedObjects};

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_ecs::schedule::{IntoScheduleConfigs, SystemSet};
use netz_core::StationConfig;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Mutex;

/// The names a Bevy game needs besides Bevy's own.
pub mod prelude {
    pub use crate::{
        CallId, Netz, NetzAppExt, NetzClass, NetzClock, NetzEntities, NetzEvent, NetzObject,
        NetzPlugin, NetzRef, NetzSession, NetzSet, ObjectDiscovered, ObjectMasterChanged,
        ObjectRemoved, RmcCompleted, Role, SessionJoined, StationFailed, StationJoined,
        StationLeft,
    };
    pub use netz_core::{
        DOHandle, DoClass, Outcome, ProcessType, RmcContext, StationConfig, StationId,
    };
}

/// The plugin's system sets, in the order they run.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetzSet {
    /// `PreUpdate`: datagrams in, timeouts, events to entities and messages.
    Receive,
    /// `PreUpdate`, after `Receive`: objects to dataset components.
    SyncIn,
    /// `PostUpdate`: changed master components to objects.
    SyncOut,
    /// `PostUpdate`, after `SyncOut`: updates, events of the frame's calls,
    /// datagrams out, completed calls.
    Send,
}

/// Puts a netz station into an app (see the [crate docs](crate)).
///
/// The socket is bound when the plugin is made (so its address is known at
/// once); the station starts in the first frame, after every class was
/// registered.
pub struct NetzPlugin {
    config: StationConfig,
    start: Start,
    socket: Mutex<Option<UdpSocket>>,
    local_addr: SocketAddr,
    clock: Option<NetzClock>,
}

impl std::fmt::Debug for NetzPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetzPlugin")
            .field("start", &self.start)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl NetzPlugin {
    /// A station bound to `bind` that enters a session as `start` says.
    pub fn new(
        config: StationConfig,
        bind: impl ToSocketAddrs,
        start: Start,
    ) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(bind)?;
        let local_addr = socket.local_addr()?;
        Ok(NetzPlugin {
            config,
            start,
            socket: Mutex::new(Some(socket)),
            local_addr,
            clock: None,
        })
    }

    /// A station that creates a session (it becomes the session master).
    pub fn create(config: StationConfig, bind: impl ToSocketAddrs) -> std::io::Result<Self> {
        Self::new(config, bind, Start::Create)
    }

    /// A station that joins the session of the station at `contact`.
    pub fn join(
        config: StationConfig,
        bind: impl ToSocketAddrs,
        contact: SocketAddr,
    ) -> std::io::Result<Self> {
        Self::new(config, bind, Start::Join(contact))
    }

    /// Uses `clock` instead of the machine's clock.
    pub fn with_clock(mut self, clock: NetzClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Plugin for NetzPlugin {
    fn build(&self, app: &mut App) {
        let socket = self
            .socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a NetzPlugin is added to one app only");
        let socket = NetzSocket::new(socket).expect("a non-blocking UDP socket");
        app.insert_resource(socket)
            .insert_resource(NetzStation::new(self.config.clone(), self.start.clone()))
            .insert_resource(self.clock.clone().unwrap_or_default())
            .init_resource::<objects::NetzClasses>()
            .init_resource::<NetzEntities>()
            .init_resource::<NetzSession>()
            .init_resource::<PendingUpdates>()
            .init_resource::<TouchedObjects>()
            .init_resource::<calls::PendingCalls>()
            .add_message::<SessionJoined>()
            .add_message::<JoinFailed>()
            .add_message::<StationJoined>()
            .add_message::<StationLeft>()
            .add_message::<StationFailed>()
            .add_message::<SessionMasterChanged>()
            .add_message::<Disconnected>()
            .add_message::<MigrationEvent>()
            .add_message::<NetzEvent>()
            .add_message::<ObjectDiscovered>()
            .add_message::<ObjectRemoved>()
            .add_message::<ObjectMasterChanged>()
            .add_message::<RmcCompleted>()
            .configure_sets(PreUpdate, (NetzSet::Receive, NetzSet::SyncIn).chain())
            .configure_sets(PostUpdate, (NetzSet::SyncOut, NetzSet::Send).chain())
            .add_systems(
                PreUpdate,
                (
                    station::receive,
                    station::process_events,
                    station::collect_touched,
                    station::poll_calls,
                )
                    .chain()
                    .in_set(NetzSet::Receive),
            )
            .add_systems(
                PostUpdate,
                (
                    station::send_updates,
                    station::process_events,
                    station::transmit,
                    station::poll_calls,
                )
                    .chain()
                    .in_set(NetzSet::Send),
            );
    }
}
