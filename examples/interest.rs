//! Interest management: players walk through a large world and each
//! station holds duplicas only of what is near its player.
//!
//! A server masters the world's props (scattered over 2000 x 2000 units);
//! every client masters its player and declares an area of interest around
//! it (enter at 150 units, leave beyond 180). The masters keep the duplica
//! sets: a prop or a player entering a client's area is discovered there, one
//! leaving is removed. The server sees everything (it referees and recovers;
//! it also holds the station and session objects).
//!
//! Run with `cargo run --example interest`.
use netz::cluster::Cluster;
use netz::interest::{ClassInterest, Position, Positioned, StationInterest};
use netz::prelude::*;
use netz::sim::SimConfig;
use netz::Topology;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Prints a line and records it for [`run`]'s caller.
fn say(line: impl Into<String>) {
    let line = line.into();
    println!("{line}");
    LINES.with(|l| l.borrow_mut().push(line));
}

/// Where something is.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Place {
    /// East-west.
    pub x: f32,
    /// North-south.
    pub y: f32,
}

/// A prop of the world, mastered by the server.
#[doclass]
#[derive(Default)]
pub struct Prop {
    /// Its place.
    #[dataset]
    pub place: Place,
}

#[doclass]
impl Prop {}

/// A player, mastered by its client.
#[doclass]
#[derive(Default)]
pub struct Player {
    /// Its place.
    #[dataset]
    pub place: Place,
}

#[doclass]
impl Player {}

impl Positioned for Prop {
    fn position(&self) -> Position {
        Position::new(self.place.x, self.place.y)
    }
}

impl Positioned for Player {
    fn position(&self) -> Position {
        Position::new(self.place.x, self.place.y)
    }
}

const PROPS: usize = 400;
const CLIENTS: usize = 4;
const ENTER: f32 = 150.0;
const LEAVE: f32 = 180.0;

/// Runs the example; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    registry.register::<Prop>().expect("register Prop");
    registry.register::<Player>().expect("register Player");
    let mut cfgs = vec![StationConfig::new(ProcessType::Server, "server")];
    for i in 0..CLIENTS {
        cfgs.push(StationConfig::new(ProcessType::Client, format!("p{i}")));
    }
    for c in cfgs.iter_mut() {
        c.topology = Topology::ClientServer;
    }
    let mut c = Cluster::start(SimConfig::seeded(3), Arc::new(registry), cfgs).expect("session");
    let n = CLIENTS + 1;
    for i in 0..n {
        let now = c.now();
        let st = c.station_mut(i);
        st.set_interest_cell_size(ENTER);
        st.set_class_interest(now, ClassInterest::<Prop>::spatial())
            .expect("Prop interest");
        st.set_class_interest(now, ClassInterest::<Player>::spatial())
            .expect("Player interest");
    }
    // The props, on a jittered grid over the world.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f32 / 10_000.0
    };
    for k in 0..PROPS {
        let (gx, gy) = ((k % 20) as f32, (k / 20) as f32);
        let mut prop = Prop::default();
        prop.place.x = gx * 100.0 + rand() * 60.0;
        prop.place.y = gy * 100.0 + rand() * 60.0;
        let now = c.now();
        c.station_mut(0).publish(now, prop).expect("publish prop");
    }
    // The players start in the four corners and walk toward the middle.
    let starts = [
        (100.0, 100.0),
        (1900.0, 100.0),
        (100.0, 1900.0),
        (1900.0, 1900.0),
    ];
    let mut players = Vec::new();
    for (i, (x, y)) in starts.iter().enumerate() {
        let mut player = Player::default();
        player.place.x = *x;
        player.place.y = *y;
        let now = c.now();
        let p = c
            .station_mut(i + 1)
            .publish(now, player)
            .expect("publish player");
        c.station_mut(i + 1)
            .set_interest(
                now,
                StationInterest::new().with_area(Position::new(*x, *y), ENTER, LEAVE),
            )
            .expect("interest");
        players.push(p);
    }
    c.run_for(Duration::from_millis(300));
    say(format!(
        "{PROPS} props, {CLIENTS} players; the server holds {} objects",
        c.station(0).objects().len()
    ));
    let mut most = 0;
    for step in 0..=9 {
        if step > 0 {
            for (i, p) in players.iter().enumerate() {
                let pos = {
                    let mut g = p.lock();
                    g.place.x += (1000.0 - g.place.x) / 3.0;
                    g.place.y += (1000.0 - g.place.y) / 3.0;
                    Position::new(g.place.x, g.place.y)
                };
                let now = c.now();
                let st = c.station_mut(i + 1);
                st.update(now, p.handle()).expect("update");
                st.set_interest(now, StationInterest::new().with_area(pos, ENTER, LEAVE))
                    .expect("interest");
            }
            c.run_for(Duration::from_millis(300));
        }
        let counts: Vec<String> = (1..n)
            .map(|i| {
                let st = c.station(i);
                format!(
                    "{}: {} props {} players",
                    st.id(),
                    st.select::<Prop>().len(),
                    st.select::<Player>().len()
                )
            })
            .collect();
        say(format!("step {step}: {}", counts.join(", ")));
        for i in 1..n {
            most = most.max(c.station(i).select::<Prop>().len());
        }
    }
    say(format!("the most props any client held: {most} of {PROPS}"));
    say("done");
    LINES.with(|l| l.borrow().clone())
}

#[allow(dead_code)]
fn main() {
    run();
}
