//! The `World.UpdateWeather` action of the NetZ manual (14.2) on three
//! stations: the session master's event loop toggles the fog with the local
//! methods `EnableFog` / `DisableFog` (plain Rust calls on the master) and runs
//! `UpdateWeather_OnDuplicas` so every duplica updates its weather; a client
//! then runs `UpdateWeather_OnMaster`, which runs on the master and on every
//! duplica.
//!
//! Run with `cargo run --example weather`.
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
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

/// The replicated weather.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Weather {
    /// Whether there is fog.
    pub fog: bool,
}

/// The game world (well-known: it exists on every station from the start).
#[doclass]
#[derive(Default)]
pub struct World {
    /// The replicated weather.
    #[dataset]
    pub weather: Weather,
    /// This station's scene: whether it renders fog (the manual's `DemoScene::m_bEnableFog`).
    pub scene_fog: bool,
    /// How often `UpdateWeather` ran here.
    pub updates: u32,
}

#[doclass]
impl World {
    /// The manual's `void UpdateWeather()`: brings the local scene in line
    /// with the weather (here the fog state travels as the argument).
    #[action(name = "UpdateWeather")]
    pub fn update_weather(&mut self, call: &mut CallContext<'_>, fog: bool) {
        self.weather.fog = fog;
        self.scene_fog = fog;
        self.updates += 1;
        say(format!(
            "  {}: UpdateWeather -> fog {}",
            call.local_station(),
            if fog { "on" } else { "off" }
        ));
    }

    /// Turns the fog on (a local method of the master).
    pub fn enable_fog(&mut self) {
        self.weather.fog = true;
        self.scene_fog = true;
    }

    /// Turns the fog off (a local method of the master).
    pub fn disable_fog(&mut self) {
        self.weather.fog = false;
        self.scene_fog = false;
    }
}

/// Runs the example; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    let class = registry
        .register_well_known::<World>(1)
        .expect("register World");
    let world = DOHandle::well_known(class, 0);
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        Arc::new(registry),
        vec![
            StationConfig::new(ProcessType::Server, "host"),
            StationConfig::new(ProcessType::Client, "a"),
            StationConfig::new(ProcessType::Client, "b"),
        ],
    )
    .expect("session");
    c.run_for(Duration::from_millis(200));

    for frame in 1..=2 {
        // The session master's event loop, as in the manual.
        let master = (0..3)
            .find(|&i| c.station(i).is_session_master())
            .expect("master");
        let r = c.station(master).get::<World>(world).expect("world");
        if r.is_master() {
            let fog = {
                let mut w = r.lock();
                if !w.scene_fog {
                    w.enable_fog();
                } else {
                    w.disable_fog();
                }
                w.scene_fog
            };
            say(format!(
                "frame {frame}: {} (master) turns the fog {}; UpdateWeather_OnDuplicas",
                c.station(master).id(),
                if fog { "on" } else { "off" }
            ));
            let sent = c
                .station_mut(master)
                .object::<World>(world)
                .update_weather_on_duplicas(fog);
            say(format!("  sent={sent}"));
        }
        c.run_for(Duration::from_millis(200));
        report(&c, world);
    }

    say("a client runs UpdateWeather_OnMaster (fog on)".to_string());
    let sent = c
        .station_mut(1)
        .object::<World>(world)
        .update_weather_on_master(true);
    say(format!("  sent={sent}"));
    c.run_for(Duration::from_millis(300));
    report(&c, world);

    let refused = c
        .station_mut(2)
        .object::<World>(world)
        .update_weather_on_duplicas(false);
    say(format!(
        "a duplica's station may not run UpdateWeather_OnDuplicas: sent={refused}"
    ));
    LINES.with(|l| l.borrow().clone())
}

fn report(c: &Cluster, world: DOHandle) {
    for i in 0..3 {
        let w = c.station(i).get::<World>(world).expect("world");
        let g = w.lock();
        say(format!(
            "  {} ({}): scene fog {}, {} updates",
            c.station(i).id(),
            if w.is_master() { "master" } else { "duplica" },
            if g.scene_fog { "on" } else { "off" },
            g.updates
        ));
    }
}

#[allow(dead_code)]
fn main() {
    run();
}
