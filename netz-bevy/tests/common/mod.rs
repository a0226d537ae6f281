//! What the app tests share: classes, apps stepped by hand, and a log of
//! the messages each app saw.
#![allow(dead_code)]

use bevy_app::{App, Update};
use bevy_ecs::message::{Message, MessageReader};
use bevy_ecs::prelude::*;
use bevy_ecs::system::RunSystemOnce;
use netz::prelude::*;
use netz_bevy::{Netz, NetzAppExt, NetzClass, NetzClock, NetzEntities, NetzPlugin, NetzSession};
use std::time::Duration;

/// Where a player stands.
#[dataset]
#[derive(Component, Default, Clone, Debug, PartialEq)]
pub struct Position {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// How healthy a player is.
#[dataset]
#[derive(Component, Default, Clone, Debug, PartialEq)]
pub struct Health {
    /// Hit points.
    pub hp: i32,
}

/// A player: taken over by the session when its station fails.
#[doclass]
#[derive(Default)]
pub struct Player {
    /// Replicated position.
    #[dataset]
    pub position: Position,
    /// Replicated health.
    #[dataset]
    pub health: Health,
}

#[doclass]
impl Player {
    /// Heals by `n`; returns the new hit points.
    #[rmc]
    pub fn heal(&mut self, n: i32) -> i32 {
        self.health.hp += n;
        self.health.hp
    }

    /// Moves the player to `x`, on the master and every duplica.
    #[action]
    pub fn teleport(&mut self, x: f32) {
        self.position.x = x;
    }

    /// Players outlive their station.
    fn approve_fault_recovery(&mut self) -> bool {
        true
    }
}

impl NetzClass for Player {
    type Datasets = (Position, Health);
}

/// A bullet: removed when its station fails (the default).
#[doclass]
#[derive(Default)]
pub struct Bullet {
    /// Replicated position.
    #[dataset]
    pub position: Position,
}

#[doclass]
impl Bullet {}

impl NetzClass for Bullet {
    type Datasets = (Position,);
}

/// How big the arena is.
#[dataset]
#[derive(Component, Default, Clone, Debug, PartialEq)]
pub struct Size {
    /// The side, in metres.
    pub side: i32,
}

/// The arena: one well-known object, mastered by the session master.
#[doclass]
#[derive(Default)]
pub struct Arena {
    /// Replicated.
    #[dataset]
    pub size: Size,
}

#[doclass]
impl Arena {}

impl NetzClass for Arena {
    type Datasets = (Size,);
}

/// Every message of type `M` an app saw, in order.
#[derive(Resource)]
pub struct Seen<M>(pub Vec<M>);

impl<M> Default for Seen<M> {
    fn default() -> Self {
        Seen(Vec::new())
    }
}

fn collect<M: Message + Clone>(mut reader: MessageReader<M>, mut seen: ResMut<Seen<M>>) {
    seen.0.extend(reader.read().cloned());
}

/// Records every message of type `M` into `Seen<M>`.
pub fn record<M: Message + Clone>(app: &mut App) {
    app.init_resource::<Seen<M>>()
        .add_systems(Update, collect::<M>);
}

/// A station configuration with a short failure timeout.
pub fn config(process_type: ProcessType, token: &str) -> StationConfig {
    let mut c = StationConfig::new(process_type, token);
    c.failure_timeout = Duration::from_millis(400);
    c.rmc_timeout = Duration::from_secs(2);
    c
}

/// An app with the plugin, the test classes and the message logs.
pub fn app_with(plugin: NetzPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(plugin.with_clock(NetzClock::stepped(Duration::from_millis(10))))
        .register_netz_class::<Player>()
        .register_netz_class::<Bullet>()
        .register_netz_well_known::<Arena>(1);
    record::<netz_bevy::ObjectDiscovered>(&mut app);
    record::<netz_bevy::ObjectRemoved>(&mut app);
    record::<netz_bevy::ObjectMasterChanged>(&mut app);
    record::<netz_bevy::StationFailed>(&mut app);
    record::<netz_bevy::StationLeft>(&mut app);
    record::<netz_bevy::SessionMasterChanged>(&mut app);
    record::<netz_bevy::JoinFailed>(&mut app);
    record::<netz_bevy::RmcCompleted>(&mut app);
    app
}

/// A server app that creates the session; returns it and its address.
pub fn server() -> (App, std::net::SocketAddr) {
    let plugin =
        NetzPlugin::create(config(ProcessType::Server, "server"), "127.0.0.1:0").expect("bind");
    let addr = plugin.local_addr();
    (app_with(plugin), addr)
}

/// A client app that joins the session at `contact`.
pub fn client(token: &str, contact: std::net::SocketAddr) -> App {
    app_with(
        NetzPlugin::join(config(ProcessType::Client, token), "127.0.0.1:0", contact).expect("bind"),
    )
}

/// Steps every app once per frame until `done` holds (at most `frames`
/// frames); returns whether it did.
pub fn step_until(
    apps: &mut [&mut App],
    frames: usize,
    mut done: impl FnMut(&mut [&mut App]) -> bool,
) -> bool {
    for _ in 0..frames {
        for app in apps.iter_mut() {
            app.update();
        }
        if done(apps) {
            return true;
        }
    }
    false
}

/// Steps every app `frames` times.
pub fn step(apps: &mut [&mut App], frames: usize) {
    step_until(apps, frames, |_| false);
}

/// Whether every app is in the session and sees `n` stations.
pub fn all_joined(apps: &mut [&mut App], n: usize) -> bool {
    apps.iter().all(|a| {
        let s = a.world().resource::<NetzSession>();
        s.in_session && s.stations.len() == n
    })
}

/// The session's id of an app's station.
pub fn local_id(app: &App) -> StationId {
    app.world().resource::<NetzSession>().local
}

/// Publishes `object` from a system of `app`; returns its handle.
pub fn publish<T: DoClass + Sync>(app: &mut App, object: T) -> DOHandle {
    let mut object = Some(object);
    app.world_mut()
        .run_system_once(move |mut netz: Netz| {
            let object = object.take().expect("runs once");
            netz.publish(object).expect("publish").handle()
        })
        .expect("system ran")
}

/// The entity of `handle` in `app`, if it has one.
pub fn entity(app: &App, handle: DOHandle) -> Option<Entity> {
    app.world().resource::<NetzEntities>().get(handle)
}

/// Component `C` of the entity of `handle` in `app`.
pub fn component<C: Component + Clone>(app: &App, handle: DOHandle) -> Option<C> {
    let e = entity(app, handle)?;
    app.world().get::<C>(e).cloned()
}
