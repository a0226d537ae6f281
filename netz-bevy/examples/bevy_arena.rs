//! An arena of three headless Bevy apps in one process, each with its own
//! netz station on a loopback socket: a server and the clients `ann` and
//! `bob`, in a client-server session (the clients talk only to the server,
//! which relays between them).
//!
//! - The server publishes the scoreboard; each client publishes its avatar
//!   and a shot, and moves them every frame in an ordinary Bevy system that
//!   changes their `Body` component. Every app prints what it sees: objects
//!   discovered, avatars moving, objects removed, masters changing.
//! - Each client calls the scoreboard's RMC `add_points` from a system and
//!   prints the total it returns (a `RmcCompleted` message).
//! - `bob` is killed (its app is dropped without leaving). The server
//!   declares it failed and recovers its objects per
//!   `approve_fault_recovery`: the avatar is taken over (the server's
//!   entity becomes the master), the shot is removed (its entities are
//!   despawned everywhere).
//!
//! The apps are stepped by hand (`app.update()`), with clocks that move
//! 16 ms per frame, so the run is the same on a loaded machine.
//! (`bevy::MinimalPlugins` lives in the `bevy` crate, whose 0.20 release
//! needs a newer Rust than this workspace; the apps add bevy_app's
//! `TaskPoolPlugin`, and need no runner as they are stepped by hand.)
//!
//! Run with `cargo run -p netz-bevy --example bevy_arena`.
use bevy_app::{App, TaskPoolPlugin, Update};
use bevy_ecs::prelude::*;
use netz::prelude::*;
use netz::Topology;
use netz_bevy::{
    Netz, NetzAppExt, NetzClass, NetzClock, NetzEntities, NetzObject, NetzPlugin, NetzRef,
    NetzSession, ObjectDiscovered, ObjectMasterChanged, ObjectRemoved, RmcCompleted, Role,
    StationFailed, StationJoined,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Prints a line and records it for [`run`]'s caller.
fn say(line: String) {
    println!("{line}");
    LINES.with(|l| l.borrow_mut().push(line));
}

/// What moves: a name and a position.
#[dataset]
#[derive(Component, Default, Clone, Debug, PartialEq)]
pub struct Body {
    /// Who or what.
    pub name: String,
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// The running total of points.
#[dataset]
#[derive(Component, Default, Clone, Debug, PartialEq)]
pub struct Score {
    /// Points so far.
    pub total: i64,
}

/// A player's avatar: it outlives its station.
#[doclass]
#[derive(Default)]
pub struct Avatar {
    /// Replicated.
    #[dataset]
    pub body: Body,
}

#[doclass]
impl Avatar {
    /// The session keeps avatars whose station failed.
    fn approve_fault_recovery(&mut self) -> bool {
        true
    }
}

impl NetzClass for Avatar {
    type Datasets = (Body,);
}

/// A shot in flight: it dies with its station (the default).
#[doclass]
#[derive(Default)]
pub struct Shot {
    /// Replicated.
    #[dataset]
    pub body: Body,
}

#[doclass]
impl Shot {}

impl NetzClass for Shot {
    type Datasets = (Body,);
}

/// The scoreboard, mastered by the server.
#[doclass]
#[derive(Default)]
pub struct Scoreboard {
    /// Replicated.
    #[dataset]
    pub score: Score,
}

#[doclass]
impl Scoreboard {
    /// Adds `n` points; returns the new total.
    #[rmc]
    pub fn add_points(&mut self, n: i64) -> i64 {
        self.score.total += n;
        self.score.total
    }
}

impl NetzClass for Scoreboard {
    type Datasets = (Score,);
}

/// The app's name, for what it prints.
#[derive(Resource)]
struct Name(&'static str);

/// The app's frame number.
#[derive(Resource, Default)]
struct Frame(u64);

/// Prints the messages of the frame.
#[allow(clippy::too_many_arguments)]
fn report(
    name: Res<Name>,
    mut frame: ResMut<Frame>,
    mut joined: MessageReader<StationJoined>,
    mut failed: MessageReader<StationFailed>,
    mut discovered: MessageReader<ObjectDiscovered>,
    mut removed: MessageReader<ObjectRemoved>,
    mut moved: MessageReader<ObjectMasterChanged>,
    mut done: MessageReader<RmcCompleted>,
    bodies: Query<(&NetzObject, &Body)>,
    session: Res<NetzSession>,
    mut names: Local<HashMap<DOHandle, String>>,
) {
    frame.0 += 1;
    let who = name.0;
    for (obj, body) in &bodies {
        names.insert(obj.handle, body.name.clone());
    }
    for j in joined.read() {
        say(format!("[{who}] station {} joined", j.0.id));
    }
    for f in failed.read() {
        say(format!("[{who}] station {} failed", f.0));
    }
    for d in discovered.read() {
        let what = bodies
            .get(d.entity)
            .map(|(_, b)| b.name.clone())
            .unwrap_or_else(|_| "the scoreboard".to_string());
        say(format!("[{who}] discovered {what} as {:?}", d.role));
    }
    for r in removed.read() {
        let what = names.get(&r.handle).cloned().unwrap_or_default();
        say(format!("[{who}] removed {what} (entity despawned)"));
    }
    for m in moved.read() {
        let what = bodies
            .get(m.entity)
            .map(|(_, b)| b.name.clone())
            .unwrap_or_default();
        say(format!(
            "[{who}] {what} is now mastered by station {} ({:?} here)",
            m.master, m.role
        ));
    }
    for d in done.read() {
        say(format!(
            "[{who}] add_points -> {:?} {:?}",
            d.outcome,
            d.value::<i64>()
        ));
    }
    if frame.0.is_multiple_of(20) && session.in_session {
        let mut seen: Vec<String> = bodies
            .iter()
            .map(|(o, b)| {
                let role = if o.role == Role::Master { "*" } else { "" };
                format!("{}{role}@{:.0}", b.name, b.x)
            })
            .collect();
        seen.sort();
        if !seen.is_empty() {
            say(format!(
                "[{who}] frame {}: sees {}",
                frame.0,
                seen.join(" ")
            ));
        }
    }
}

/// Moves every master body one unit east per frame.
fn walk(mut q: Query<(&NetzObject, &mut Body)>) {
    for (obj, mut body) in &mut q {
        if obj.is_master() {
            body.x += 1.0;
        }
    }
}

/// Whether this client published its objects and asked for points.
#[derive(Resource, Default)]
struct Client {
    published: bool,
    scored: bool,
}

/// A client's game logic: once in the session, publish an avatar and a
/// shot; once the scoreboard is there, score.
fn play(
    name: Res<Name>,
    session: Res<NetzSession>,
    mut state: ResMut<Client>,
    mut netz: Netz,
    boards: Query<Entity, With<NetzRef<Scoreboard>>>,
) {
    if !session.in_session {
        return;
    }
    if !state.published {
        state.published = true;
        let body = |what: &str, y| Body {
            name: format!("{}'s {what}", name.0),
            y,
            ..Default::default()
        };
        netz.publish(Avatar {
            body: body("avatar", 0.0),
        })
        .expect("publish the avatar");
        netz.publish(Shot {
            body: body("shot", 1.0),
        })
        .expect("publish the shot");
    }
    if let (false, Some(board)) = (state.scored, boards.iter().next()) {
        state.scored = true;
        netz.rmc::<Scoreboard, i64>(board, |b, ctx| b.call_add_points(ctx, 5))
            .expect("call add_points");
    }
}

fn station_config(process_type: ProcessType, token: &str) -> StationConfig {
    let mut c = StationConfig::new(process_type, token);
    // Clients talk only to the server, which relays between them.
    c.topology = Topology::ClientServer;
    c.failure_timeout = Duration::from_millis(500);
    c
}

fn app(name: &'static str, plugin: NetzPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((
        TaskPoolPlugin::default(),
        plugin.with_clock(NetzClock::stepped(Duration::from_millis(16))),
    ))
    .register_netz_class::<Avatar>()
    .register_netz_class::<Shot>()
    .register_netz_class::<Scoreboard>()
    .insert_resource(Name(name))
    .init_resource::<Frame>()
    .add_systems(Update, (report, walk));
    app
}

fn step(apps: &mut [&mut App], frames: usize, mut done: impl FnMut(&[&mut App]) -> bool) {
    for _ in 0..frames {
        for a in apps.iter_mut() {
            a.update();
        }
        if done(apps) {
            return;
        }
    }
    panic!("the arena did not get there in {frames} frames");
}

/// Steps every app `n` times.
fn frames(apps: &mut [&mut App], n: usize) {
    for _ in 0..n {
        for a in apps.iter_mut() {
            a.update();
        }
    }
}

/// The scoreboard's total as `app` sees it.
fn total(app: &App) -> Option<i64> {
    let world = app.world();
    let mut q = world.try_query::<&Score>()?;
    q.iter(world).next().map(|s| s.total)
}

fn bodies(app: &App) -> Vec<(String, Role, StationId)> {
    let world = app.world();
    let entities = world.resource::<NetzEntities>();
    let mut out = Vec::new();
    for (obj, body) in world
        .try_query::<(&NetzObject, &Body)>()
        .expect("registered")
        .iter(world)
    {
        if entities.get(obj.handle).is_some() {
            out.push((body.name.clone(), obj.role, obj.master));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs the arena; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let plugin = NetzPlugin::create(station_config(ProcessType::Server, "server"), "127.0.0.1:0")
        .expect("bind the server");
    let contact = plugin.local_addr();
    let mut server = app("server", plugin);
    let mut ann = app(
        "ann",
        NetzPlugin::join(
            station_config(ProcessType::Client, "ann"),
            "127.0.0.1:0",
            contact,
        )
        .expect("bind ann"),
    );
    let mut bob = app(
        "bob",
        NetzPlugin::join(
            station_config(ProcessType::Client, "bob"),
            "127.0.0.1:0",
            contact,
        )
        .expect("bind bob"),
    );
    for a in [&mut ann, &mut bob] {
        a.init_resource::<Client>().add_systems(Update, play);
    }
    // The server publishes the scoreboard as soon as it runs.
    server.add_systems(
        Update,
        |session: Res<NetzSession>, mut netz: Netz, mut done: Local<bool>| {
            if session.in_session && !*done {
                *done = true;
                netz.publish(Scoreboard::default())
                    .expect("publish the scoreboard");
            }
        },
    );

    say("-- the arena fills".to_string());
    step(&mut [&mut server, &mut ann, &mut bob], 500, |apps| {
        apps.iter().all(|a| bodies(a).len() == 4)
            && apps
                .iter()
                .skip(1)
                .all(|a| a.world().resource::<Client>().scored)
    });
    // Let the avatars run and the points arrive.
    step(&mut [&mut server, &mut ann, &mut bob], 500, |apps| {
        apps.iter().all(|a| total(a) == Some(10))
    });
    frames(&mut [&mut server, &mut ann, &mut bob], 40);
    for (who, a) in [("server", &server), ("ann", &ann), ("bob", &bob)] {
        say(format!("[{who}] the scoreboard shows {:?}", total(a)));
    }
    let bob_id = bob.world().resource::<NetzSession>().local;

    say(format!("-- bob (station {bob_id}) is killed"));
    drop(bob);
    step(&mut [&mut server, &mut ann], 500, |apps| {
        apps.iter().all(|a| {
            let b = bodies(a);
            b.len() == 3
                && b.iter()
                    .any(|(n, _, m)| n == "bob's avatar" && *m != bob_id)
        })
    });
    frames(&mut [&mut server, &mut ann], 40);
    for (who, a) in [("server", &server), ("ann", &ann)] {
        for (name, role, master) in bodies(a) {
            say(format!(
                "[{who}] at the end: {name} {role:?} (master {master})"
            ));
        }
    }
    LINES.with(|l| l.borrow().clone())
}

fn main() {
    run();
}
