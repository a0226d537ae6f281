//! Bandwidth: a game chooses how each dataset travels, which objects
//! matter most, and how many bytes a second each link may carry.
//!
//! A server masters a fleet of 200 ships for three clients. A ship's place
//! is latest state (a lost update is never sent again, the next one
//! carries the newer place) with quantized coordinates; its cargo is
//! reliable. Every link of the server has a budget of 6,000 B/s, far
//! less than the fleet's updates need: the ten flagships have ten times
//! the priority of the others, and every ship is sent at most 10 times a
//! second. The clients run on a network losing 10 % of the datagrams.
//!
//! Run with `cargo run --example budget`.
use netz::cluster::Cluster;
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

/// Where a ship is: latest state, each coordinate 16 bits of a 4 km square.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Place {
    /// East-west, metres.
    #[quantize(min = -2000.0, max = 2000.0, bits = 16)]
    pub x: f32,
    /// North-south, metres.
    #[quantize(min = -2000.0, max = 2000.0, bits = 16)]
    pub y: f32,
    /// The tick of this place.
    pub tick: u32,
}

/// What a ship carries: every change arrives, in order.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Cargo {
    /// Tons aboard.
    pub tons: u32,
}

/// A ship of the fleet.
#[doclass]
#[derive(Default)]
pub struct Ship {
    /// Its place (latest state).
    #[dataset]
    pub place: Place,
    /// Its cargo (reliable).
    #[dataset]
    pub cargo: Cargo,
}

#[doclass]
impl Ship {}

const SHIPS: usize = 200;
const FLAGSHIPS: usize = 10;
const BUDGET: u64 = 6_000;
const TICKS: u32 = 80;

/// Runs the fleet for five seconds of virtual time; returns what it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    registry.register::<Ship>().expect("Ship registers");
    let cfg = |p, name: &str, seed| StationConfig {
        topology: Topology::ClientServer,
        seed,
        ..StationConfig::new(p, name)
    };
    let server = StationConfig {
        // Every link of the server: 6,000 B/s of dataset updates at most.
        link_budget: Some(BUDGET),
        ..cfg(ProcessType::Server, "server", 1)
    };
    let net = SimConfig {
        loss: 0.1,
        latency: Duration::from_millis(15),
        ..SimConfig::seeded(5)
    };
    let clients = (0..3).map(|i| cfg(ProcessType::Client, &format!("client{i}"), 10 + i));
    let mut c = Cluster::start(
        net,
        Arc::new(registry),
        std::iter::once(server).chain(clients).collect(),
    )
    .expect("session");
    let now = c.now();
    let fleet: Vec<Ref<Ship>> = (0..SHIPS)
        .map(|_| {
            c.station_mut(0)
                .publish(now, Ship::default())
                .expect("publish")
        })
        .collect();
    let st = c.station_mut(0);
    // The flagships matter most; no ship goes more than 10 times a second.
    for f in &fleet[..FLAGSHIPS] {
        st.set_priority(f.handle(), 10.0);
    }
    st.set_class_send_rate::<Ship>(Some(10.0))
        .expect("Ship is registered");
    c.run_for(Duration::from_secs(2));
    let mut lag = [0f64; 2];
    let mut samples = [0usize; 2];
    for t in 1..=TICKS {
        for (k, s) in fleet.iter().enumerate() {
            let mut s = s.lock();
            s.place.x = (k as f32 * 13.0 + t as f32 * 2.0) % 3000.0 - 1500.0;
            s.place.y = (k as f32 * 7.0) % 3000.0 - 1500.0;
            s.place.tick = t;
            if t % 20 == 0 {
                s.cargo.tons += 1;
            }
        }
        let now = c.now();
        c.station_mut(0).update_all(now);
        c.run_for(Duration::from_millis(50));
        for i in 1..=3 {
            for (k, s) in fleet.iter().enumerate() {
                let d = c
                    .station(i)
                    .get::<Ship>(s.handle())
                    .expect("every ship everywhere");
                let behind = t - d.lock().place.tick;
                let class = usize::from(k >= FLAGSHIPS);
                lag[class] += f64::from(behind);
                samples[class] += 1;
            }
        }
    }
    let st = c.station(0);
    for l in st.link_views() {
        say(format!(
            "link to {}: budget {} B/s, sending {} B/s, {} updates waiting, the oldest for {} ms",
            l.peer,
            l.budget.unwrap_or(0),
            l.bytes_per_second,
            l.deferred_updates,
            l.oldest_deferred.as_millis()
        ));
    }
    let within = st
        .link_views()
        .iter()
        .all(|l| l.bytes_per_second <= BUDGET + 1200);
    say(format!("every link within its budget: {within}"));
    let (flag, rest) = (lag[0] / samples[0] as f64, lag[1] / samples[1] as f64);
    say(format!(
        "flagships {flag:.1} ticks behind, the other ships {rest:.1}: flagships fresher: {}",
        flag < rest
    ));
    c.run_for(Duration::from_secs(3));
    let all = (1..=3).all(|i| {
        fleet.iter().all(|s| {
            let d = c.station(i).get::<Ship>(s.handle()).expect("ship");
            let (d, s) = (d.lock(), s.lock());
            d.place.tick == TICKS && d.cargo.tons == s.cargo.tons
        })
    });
    say(format!(
        "once the fleet stops, every client holds its last state: {all}"
    ));
    say("done");
    LINES.with(|l| l.borrow().clone())
}

#[allow(dead_code)]
fn main() {
    run();
}
