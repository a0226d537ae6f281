//! A game world for measuring interest management: one server masters a
//! square world of units spread uniformly over it, a fixed share of them
//! walk every tick, and every other station is a client whose player looks
//! at a circle covering a fixed share of the world.
//!
//! The same world runs with the units spatially relevant (a client holds
//! only the units in its area) or always relevant (every client holds
//! every unit), so the two can be measured side by side. The stations are
//! sans-IO stations wired in memory ([`Mesh`]): deterministic, no latency,
//! and only the stations' own work is measured.
//!
//! One tick is what a server running at 20 Hz does: it moves the walking
//! units, calls [`Station::update`](netz_core::Station::update) on each of
//! them (a server that knows what moved does not scan the whole world with
//! `update_all`), and 50 ms of virtual time pass, in 5 ms steps, so that
//! acknowledgements and heartbeats go out as they would.

use crate::classes::{registry, Unit};
use crate::mesh::Mesh;
use netz_core::interest::{ClassInterest, Position, StationInterest};
use netz_core::{DOHandle, Event, ProcessType, Ref, StationConfig, Topology};
use std::time::Duration;

/// The side of the square world, in world units.
pub const SIDE: f32 = 10_000.0;
/// The virtual time of one tick (a 20 Hz server).
pub const TICK: Duration = Duration::from_millis(50);
/// The steps a tick's virtual time passes in.
const STEP: Duration = Duration::from_millis(5);
/// How far a walking unit goes in one tick, by default (100 units a
/// second at 20 Hz).
pub const SPEED: f32 = 5.0;
/// The leave radius over the enter radius.
pub const HYSTERESIS: f32 = 1.1;

/// Which stations the units are relevant to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// A client holds the units in its area ([`ClassInterest::spatial_by`]).
    Spatial,
    /// Every client holds every unit (no class policy, the default).
    Always,
}

impl Policy {
    /// A short name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Spatial => "spatial",
            Policy::Always => "always",
        }
    }
}

/// The shape of a world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldConfig {
    /// Stations in all: one server and `stations - 1` clients.
    pub stations: usize,
    /// Units in the world, all mastered by the server.
    pub objects: usize,
    /// The share of the units that walk every tick.
    pub moving: f64,
    /// The share of the world's area a client's enter radius covers.
    pub interest: f64,
    /// How far a walking unit goes in one tick.
    pub speed: f32,
    /// Spatial or always relevant.
    pub policy: Policy,
    /// Seeds the placement of units and areas.
    pub seed: u64,
}

impl WorldConfig {
    /// `stations` stations and `objects` units, 1 % of them walking and
    /// each client's area covering 1 % of the world.
    pub fn new(stations: usize, objects: usize, policy: Policy) -> WorldConfig {
        WorldConfig {
            stations,
            objects,
            moving: 0.01,
            interest: 0.01,
            speed: SPEED,
            policy,
            seed: 7,
        }
    }

    /// The leave radius of a client's area.
    pub fn leave(&self) -> f32 {
        self.enter() * HYSTERESIS
    }

    /// The enter radius of a client's area.
    pub fn enter(&self) -> f32 {
        SIDE * (self.interest / std::f64::consts::PI).sqrt() as f32
    }

    /// How many units walk.
    pub fn movers(&self) -> usize {
        ((self.objects as f64 * self.moving).round() as usize).min(self.objects)
    }
}

/// A small deterministic random source (xorshift64*).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

/// What the ticks measured by [`World::measure`] cost, per tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickCost {
    /// Ticks measured.
    pub ticks: usize,
    /// Wall time of a whole tick (every station, on one thread), µs.
    pub tick_micros: f64,
    /// The server's time in its calls, µs.
    pub server_micros: f64,
    /// A client's time in its calls, mean over the clients, µs.
    pub client_micros: f64,
    /// Bytes the server sent (UDP payloads).
    pub server_bytes: f64,
    /// Bytes a client received, mean over the clients.
    pub client_bytes: f64,
    /// Dataset updates a client applied, mean over the clients.
    pub client_updates: f64,
    /// Units that entered or left a client's relevance, all clients.
    pub interest_changes: f64,
}

impl TickCost {
    /// The time of a whole tick shared out over the stations, µs.
    pub fn per_station_micros(&self, stations: usize) -> f64 {
        self.tick_micros / stations.max(1) as f64
    }
}

/// A server, its clients and the world of units.
pub struct World {
    cfg: WorldConfig,
    mesh: Mesh,
    /// The centre of each station's area (the server's is unused).
    centers: Vec<Position>,
    /// The walking units.
    movers: Vec<Ref<Unit>>,
    mover_handles: Vec<DOHandle>,
    tick: u64,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("cfg", &self.cfg)
            .field("tick", &self.tick)
            .finish()
    }
}

impl World {
    /// Builds the session, declares the clients' areas, publishes the units
    /// and waits until every client holds what is relevant to it (checked:
    /// each client holds exactly the units within its enter radius, or every
    /// unit when they are always relevant).
    pub fn new(cfg: WorldConfig) -> World {
        assert!(cfg.stations >= 2, "a server and at least one client");
        let configs = (0..cfg.stations)
            .map(|i| {
                let (process, token) = if i == 0 {
                    (ProcessType::Server, "server".to_string())
                } else {
                    (ProcessType::Client, format!("client-{i}"))
                };
                StationConfig {
                    seed: i as u64 + 1,
                    topology: Topology::ClientServer,
                    ..StationConfig::new(process, token)
                }
            })
            .collect();
        let mut mesh = Mesh::with_configs(configs, registry());
        let enter = cfg.enter();
        let leave = cfg.leave();
        if cfg.policy == Policy::Spatial {
            for i in 0..cfg.stations {
                mesh.with(i, |st, now| {
                    st.set_interest_cell_size(enter);
                    st.set_class_interest(
                        now,
                        ClassInterest::spatial_by(|u: &Unit| Position::new(u.motion.x, u.motion.y)),
                    )
                    .expect("Unit is registered");
                });
            }
        }
        let mut rng = Rng::new(cfg.seed);
        // Each player stands where its whole area lies inside the world.
        let mut centers = vec![Position::default()];
        for i in 1..cfg.stations {
            let c = Position::new(
                rng.range(leave, SIDE - leave),
                rng.range(leave, SIDE - leave),
            );
            centers.push(c);
            mesh.with(i, |st, now| {
                st.set_interest(now, StationInterest::new().with_area(c, enter, leave))
                    .expect("in the session");
            });
        }
        mesh.settle();
        let movers = cfg.movers();
        let mut places = Vec::with_capacity(cfg.objects);
        let mut refs = Vec::with_capacity(movers);
        let batch = 1000;
        for k in 0..cfg.objects {
            let mut unit = Unit::default();
            unit.motion.x = rng.range(0.0, SIDE);
            unit.motion.y = rng.range(0.0, SIDE);
            unit.motion.hp = 100;
            if k < movers {
                let a = rng.range(0.0, std::f32::consts::TAU);
                unit.motion.vx = cfg.speed * a.cos();
                unit.motion.vy = cfg.speed * a.sin();
            }
            places.push(Position::new(unit.motion.x, unit.motion.y));
            let r = mesh.with_quiet(0, |st, now| st.publish(now, unit).expect("published"));
            if k < movers {
                refs.push(r);
            }
            if k % batch == batch - 1 {
                mesh.pump();
                mesh.settle();
            }
        }
        mesh.pump();
        mesh.settle();
        for (i, c) in centers.iter().enumerate().skip(1) {
            let want = match cfg.policy {
                Policy::Always => cfg.objects,
                Policy::Spatial => places.iter().filter(|p| p.distance(*c) <= enter).count(),
            };
            assert_eq!(
                mesh.station(i).select::<Unit>().len(),
                want,
                "client {i} holds the units relevant to it"
            );
        }
        for i in 0..cfg.stations {
            assert_eq!(
                mesh.station(i).stats().send_queue_limited,
                0,
                "no message was dropped"
            );
        }
        let mover_handles = refs.iter().map(|r| r.handle()).collect();
        mesh.keep_events(true);
        World {
            cfg,
            mesh,
            centers,
            movers: refs,
            mover_handles,
            tick: 0,
        }
    }

    /// The shape of this world.
    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// The stations.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// The centre of station `i`'s area (a client's).
    pub fn center(&self, i: usize) -> Position {
        self.centers[i]
    }

    /// The walking units, as the server masters them.
    pub fn movers(&self) -> &[Ref<Unit>] {
        &self.movers
    }

    /// One tick: the walking units take a step (turning back at the edge of
    /// the world), the server sends their updates, 50 ms of virtual time
    /// pass. Returns how many units entered or left a client's relevance.
    pub fn tick(&mut self) -> usize {
        self.tick += 1;
        for r in &self.movers {
            r.with(|u| {
                let m = &mut u.motion;
                m.x += m.vx;
                m.y += m.vy;
                if !(0.0..=SIDE).contains(&m.x) {
                    m.vx = -m.vx;
                    m.x = m.x.clamp(0.0, SIDE);
                }
                if !(0.0..=SIDE).contains(&m.y) {
                    m.vy = -m.vy;
                    m.y = m.y.clamp(0.0, SIDE);
                }
            });
        }
        let hs = &self.mover_handles;
        self.mesh.with_quiet(0, |st, now| {
            for h in hs {
                st.update(now, *h).expect("the server masters the unit");
            }
        });
        self.mesh.pump();
        let steps = (TICK.as_micros() / STEP.as_micros()) as usize;
        for _ in 0..steps {
            self.mesh.advance(STEP);
        }
        // A backlog the congestion control paces goes out before the next
        // tick (it does not happen at these sizes).
        for _ in 0..10_000 {
            if (0..self.mesh.len()).all(|i| self.mesh.station(i).is_idle()) {
                break;
            }
            self.mesh.advance(STEP);
        }
        self.mesh
            .take_events()
            .iter()
            .filter(|(i, e)| *i == 0 && matches!(e, Event::InterestChanged { .. }))
            .count()
    }

    /// Runs `ticks` ticks and reports what one cost, on average.
    pub fn measure(&mut self, ticks: usize) -> TickCost {
        let n = self.mesh.len();
        let clients = (n - 1) as f64;
        let server_cpu = self.mesh.cpu(0);
        let client_cpu: Duration = (1..n).map(|i| self.mesh.cpu(i)).sum();
        let server_sent = self.mesh.sent(0);
        let client_received: u64 = (1..n).map(|i| self.mesh.received(i)).sum();
        let applied =
            |m: &Mesh| -> u64 { (1..n).map(|i| m.station(i).stats().updates_applied).sum() };
        let applied0 = applied(&self.mesh);
        self.mesh.set_timing(true);
        let mut changes = 0;
        let start = std::time::Instant::now();
        for _ in 0..ticks {
            changes += self.tick();
        }
        let wall = start.elapsed();
        self.mesh.set_timing(false);
        let t = ticks.max(1) as f64;
        let client_cpu = (1..n).map(|i| self.mesh.cpu(i)).sum::<Duration>() - client_cpu;
        TickCost {
            ticks,
            tick_micros: wall.as_secs_f64() * 1e6 / t,
            server_micros: (self.mesh.cpu(0) - server_cpu).as_secs_f64() * 1e6 / t,
            client_micros: client_cpu.as_secs_f64() * 1e6 / t / clients,
            server_bytes: (self.mesh.sent(0) - server_sent) as f64 / t,
            client_bytes: ((1..n).map(|i| self.mesh.received(i)).sum::<u64>() - client_received)
                as f64
                / t
                / clients,
            client_updates: (applied(&self.mesh) - applied0) as f64 / t / clients,
            interest_changes: changes as f64 / t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(policy: Policy) -> World {
        World::new(WorldConfig {
            // Fast walkers cross the clients' borders often.
            speed: 150.0,
            moving: 0.05,
            ..WorldConfig::new(5, 2000, policy)
        })
    }

    #[test]
    fn a_client_holds_the_walkers_near_it_and_none_far_away() {
        let mut w = small(Policy::Spatial);
        let (enter, leave) = (w.config().enter(), w.config().leave());
        let mut changes = 0;
        for _ in 0..60 {
            changes += w.tick();
            for i in 1..w.mesh().len() {
                let st = w.mesh().station(i);
                for m in w.movers() {
                    let (p, held) = {
                        let u = m.lock();
                        (
                            Position::new(u.motion.x, u.motion.y),
                            st.contains(m.handle()),
                        )
                    };
                    let d = p.distance(w.center(i));
                    if d <= enter {
                        assert!(held, "client {i} misses a walker {d} away");
                    }
                    if d > leave {
                        assert!(!held, "client {i} holds a walker {d} away");
                    }
                    if held {
                        let dup = st.get::<Unit>(m.handle()).expect("a duplica");
                        let q = dup.with(|u| Position::new(u.motion.x, u.motion.y));
                        assert_eq!(q, p, "the duplica is up to date");
                    }
                }
            }
        }
        assert!(changes > 0, "walkers entered and left");
        let cost = w.measure(5);
        assert!(cost.client_updates < w.config().movers() as f64);
    }

    #[test]
    fn always_relevant_walkers_reach_every_client_every_tick() {
        let mut w = small(Policy::Always);
        let cost = w.measure(5);
        assert_eq!(cost.client_updates, w.config().movers() as f64);
        assert_eq!(cost.interest_changes, 0.0);
        assert!(cost.client_bytes > 0.0 && cost.server_bytes > cost.client_bytes);
    }
}
