//! Budgets, latest-state datasets and the size of updates on the wire,
//! measured on netz-core's deterministic simulator (virtual time: the
//! figures are the protocol's, not the machine's).

use crate::classes::{replication_registry, Motion, Mover, Positions, ReliableMover, Unit};
use netz::prelude::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// The game's tick.
pub const TICK: Duration = Duration::from_millis(50);

/// One priority class of [`BudgetRun`].
#[derive(Debug, Clone)]
pub struct PriorityClass {
    /// Its gain.
    pub gain: f32,
    /// How many objects it has.
    pub objects: usize,
    /// The age of the state each station held of each of its objects
    /// (now minus when the master made it), sampled in the middle of
    /// every other tick, milliseconds.
    pub ages_ms: Vec<f64>,
}

/// What [`budget`] measured.
#[derive(Debug, Clone)]
pub struct BudgetRun {
    /// Stations holding duplicas.
    pub stations: usize,
    /// Objects, all changing every tick.
    pub objects: usize,
    /// The budget of each of the master's links, bytes per second.
    pub budget: u64,
    /// How long the measurement ran, virtual seconds.
    pub seconds: f64,
    /// Bytes per second the master sent each station (every datagram).
    pub bytes_per_second: Vec<f64>,
    /// The classes, highest gain first.
    pub classes: Vec<PriorityClass>,
}

fn servers(n: usize, budget: Option<u64>) -> Vec<StationConfig> {
    (0..n)
        .map(|i| StationConfig {
            seed: 1 + i as u64,
            link_budget: if i == 0 { budget } else { None },
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect()
}

fn bytes(c: &Cluster, from: SocketAddr, to: SocketAddr) -> u64 {
    c.sim
        .deliveries()
        .iter()
        .filter(|d| d.from == from && d.to == to)
        .map(|d| d.data.len() as u64)
        .sum()
}

fn publish<T: DoClass + Default>(c: &mut Cluster, n: usize) -> Vec<Ref<T>> {
    let now = c.now();
    let refs: Vec<Ref<T>> = (0..n)
        .map(|_| {
            c.station_mut(0)
                .publish(now, T::default())
                .expect("publish")
        })
        .collect();
    let stations = c.addrs.len();
    let all = c.run_until(Duration::from_secs(600), |c| {
        (1..stations).all(|i| refs.iter().all(|r| c.station(i).contains(r.handle())))
    });
    assert!(all, "every object reached every station");
    c.run_for(Duration::from_secs(1));
    refs
}

/// Moves every mover to tick `t`.
fn step_movers(movers: &[Ref<Mover>], t: u32) {
    for (k, m) in movers.iter().enumerate() {
        let mut m = m.lock();
        m.track.x = k as f32 + t as f32 * 0.25;
        m.track.y = -(t as f32) * 0.5;
        m.track.z = (t % 100) as f32;
        m.track.tick = t;
    }
}

/// `objects` movers on one master, all moving every tick, replicated to
/// `stations` stations under a budget of `budget` bytes per second on
/// each link; priority classes of gain 16 (10 % of the objects), 4 (30 %)
/// and 1 (60 %). Runs `ticks` ticks after a warm-up of 40.
pub fn budget(stations: usize, objects: usize, budget: u64, ticks: u32) -> BudgetRun {
    let mut c = Cluster::start(
        SimConfig {
            latency: Duration::from_millis(10),
            ..SimConfig::seeded(21)
        },
        replication_registry(),
        servers(stations + 1, Some(budget)),
    )
    .expect("session");
    let movers = publish::<Mover>(&mut c, objects);
    let shares = [(16.0f32, 0.1), (4.0, 0.3), (1.0, 0.6)];
    let mut bounds = Vec::new();
    let mut start = 0;
    for (gain, share) in shares {
        let n = ((objects as f64) * share).round() as usize;
        let end = (start + n).min(objects);
        for m in &movers[start..end] {
            c.station_mut(0).set_priority(m.handle(), gain);
        }
        bounds.push((gain, start, end));
        start = end;
    }
    let mut made = vec![c.now()];
    let mut classes: Vec<PriorityClass> = bounds
        .iter()
        .map(|(gain, s, e)| PriorityClass {
            gain: *gain,
            objects: e - s,
            ages_ms: Vec::new(),
        })
        .collect();
    let warm = 40;
    for t in 1..=warm + ticks {
        if t == warm + 1 {
            c.sim.set_recording(true);
        }
        step_movers(&movers, t);
        made.push(c.now());
        let now = c.now();
        c.station_mut(0).update_all(now);
        c.run_for(TICK / 2);
        if t > warm && t % 2 == 0 {
            let now = c.now();
            for i in 1..=stations {
                for (class, (_, s, e)) in classes.iter_mut().zip(&bounds) {
                    for m in &movers[*s..*e] {
                        let d = c.station(i).get::<Mover>(m.handle()).expect("duplica");
                        let held = d.lock().track.tick as usize;
                        let age = now.saturating_duration_since(made[held]);
                        class.ages_ms.push(age.as_secs_f64() * 1e3);
                    }
                }
            }
        }
        c.run_for(TICK / 2);
    }
    let seconds = f64::from(ticks) * TICK.as_secs_f64();
    let bytes_per_second = (1..=stations)
        .map(|i| bytes(&c, c.addrs[0], c.addrs[i]) as f64 / seconds)
        .collect();
    BudgetRun {
        stations,
        objects,
        budget,
        seconds,
        bytes_per_second,
        classes,
    }
}

/// The age of the newest state at the receivers, milliseconds, sampled in
/// the middle of every other tick: `objects` objects moving every tick for `ticks` ticks
/// on one master, `stations` stations, `loss` of the datagrams lost (20 ms
/// latency, 5 ms jitter, no budget); latest state or reliable.
pub fn ages_under_loss(
    latest: bool,
    stations: usize,
    objects: usize,
    ticks: u32,
    loss: f64,
) -> Vec<f64> {
    let mut c = Cluster::start(
        SimConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..SimConfig::seeded(22)
        },
        replication_registry(),
        servers(stations + 1, None),
    )
    .expect("session");
    let mut ages = Vec::new();
    let mut made = vec![c.now()];
    if latest {
        let movers = publish::<Mover>(&mut c, objects);
        c.sim.set_config(SimConfig {
            loss,
            ..c.sim.config().clone()
        });
        for t in 1..=ticks {
            step_movers(&movers, t);
            made.push(c.now());
            let now = c.now();
            c.station_mut(0).update_all(now);
            c.run_for(TICK / 2);
            if t > 20 && t % 2 == 0 {
                let now = c.now();
                for i in 1..=stations {
                    for m in &movers {
                        let d = c.station(i).get::<Mover>(m.handle()).expect("duplica");
                        let held = d.lock().track.tick as usize;
                        ages.push(now.saturating_duration_since(made[held]).as_secs_f64() * 1e3);
                    }
                }
            }
            c.run_for(TICK / 2);
        }
    } else {
        let movers = publish::<ReliableMover>(&mut c, objects);
        c.sim.set_config(SimConfig {
            loss,
            ..c.sim.config().clone()
        });
        for t in 1..=ticks {
            for (k, m) in movers.iter().enumerate() {
                let mut m = m.lock();
                m.track.x = k as f32 + t as f32 * 0.25;
                m.track.y = -(t as f32) * 0.5;
                m.track.z = (t % 100) as f32;
                m.track.tick = t;
            }
            made.push(c.now());
            let now = c.now();
            c.station_mut(0).update_all(now);
            c.run_for(TICK / 2);
            if t > 20 && t % 2 == 0 {
                let now = c.now();
                for i in 1..=stations {
                    for m in &movers {
                        let d = c
                            .station(i)
                            .get::<ReliableMover>(m.handle())
                            .expect("duplica");
                        let held = d.lock().track.tick as usize;
                        ages.push(now.saturating_duration_since(made[held]).as_secs_f64() * 1e3);
                    }
                }
            }
            c.run_for(TICK / 2);
        }
    }
    ages
}

/// Wire bytes per object update of [`Unit`]'s `Motion` (every field
/// changes), `update_all` to `stations` stations, `objects` units, no
/// loss: every datagram the master sent them (headers, acknowledgements
/// and heartbeats included) over the updates. Returns it and the postcard
/// size of the changed fields.
pub fn wire_per_update(stations: usize, objects: usize, ticks: u32) -> (f64, usize) {
    let mut c = Cluster::start(
        SimConfig::seeded(23),
        replication_registry(),
        servers(stations + 1, None),
    )
    .expect("session");
    let units = publish::<Unit>(&mut c, objects);
    c.sim.set_recording(true);
    for t in 1..=ticks {
        for u in &units {
            u.with(|u| u.motion.step(t));
        }
        let now = c.now();
        assert_eq!(c.station_mut(0).update_all(now), objects);
        c.run_for(TICK);
    }
    let total: u64 = (1..=stations)
        .map(|i| bytes(&c, c.addrs[0], c.addrs[i]))
        .sum();
    let updates = (objects * stations) as f64 * f64::from(ticks);
    let postcard = units[0].with(|u| u.motion.postcard_len());
    let _ = Motion::FIELDS;
    (total as f64 / updates, postcard)
}

/// What a position costs on the wire.
#[derive(Debug, Clone, Copy)]
pub struct PositionCost {
    /// Bits of the fields (what the quantization leaves).
    pub field_bits: u32,
    /// Wire bytes per object update (one station, `update_all`, every
    /// datagram the master sent).
    pub wire_bytes: f64,
}

/// The wire cost of one position update: a 3D position of 3 x 17
/// quantized bits, a 2D one of 2 x 17, and three plain `f32`s, each
/// measured alone (only that dataset changes) over `objects` objects and
/// `ticks` ticks to one station.
pub fn positions(objects: usize, ticks: u32) -> [PositionCost; 3] {
    let mut out = [PositionCost {
        field_bits: 0,
        wire_bytes: 0.0,
    }; 3];
    for (kind, slot) in out.iter_mut().enumerate() {
        let mut c = Cluster::start(
            SimConfig::seeded(24),
            replication_registry(),
            servers(2, None),
        )
        .expect("session");
        let ps = publish::<Positions>(&mut c, objects);
        c.sim.set_recording(true);
        for t in 1..=ticks {
            for (k, p) in ps.iter().enumerate() {
                let v = (k as f32 * 0.37 + t as f32 * 1.91) % 1900.0 - 950.0;
                let mut p = p.lock();
                match kind {
                    0 => (p.q3.x, p.q3.y, p.q3.z) = (v, -v, v * 0.5),
                    1 => (p.q2.x, p.q2.y) = (v, -v),
                    _ => (p.plain.x, p.plain.y, p.plain.z) = (v, -v, v * 0.5),
                }
            }
            let now = c.now();
            c.station_mut(0).update_all(now);
            c.run_for(TICK);
        }
        let total = bytes(&c, c.addrs[0], c.addrs[1]);
        slot.wire_bytes = total as f64 / (objects as f64 * f64::from(ticks));
        slot.field_bits = [51, 34, 96][kind];
    }
    out
}

/// The `q`-quantile (0..=1) of `v` (NaN when empty).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    s[i]
}
