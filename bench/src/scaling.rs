//! How the cost of a tick grows with stations and objects, in netz-core's
//! network simulator (`netz_core::cluster::Cluster`, 5 ms latency, no
//! loss): one master changes every field of K units and the updates reach
//! N - 1 duplica stations. The criterion bench `scaling` and the
//! comparison program's scaling series both use it.

use crate::classes::{registry, Unit};
use netz_core::cluster::Cluster;
use netz_core::{DOHandle, ProcessType, Ref, StationConfig};
use std::time::{Duration, Instant};

/// `n` server stations in one session, seeded for repeatability.
pub fn cluster(n: usize) -> Cluster {
    let configs = (0..n)
        .map(|i| StationConfig {
            seed: i as u64 + 1,
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect();
    Cluster::start(Default::default(), registry(), configs).expect("cluster starts")
}

/// Drops every station's pending events.
pub fn drain(c: &mut Cluster) {
    for i in 0..c.addrs.len() {
        while c.station_mut(i).poll_event().is_some() {}
    }
}

fn applied(c: &Cluster) -> u64 {
    (1..c.addrs.len())
        .map(|i| c.station(i).stats().updates_applied)
        .sum()
}

/// A master with `objects` units on station 0, duplicated on every other
/// station.
pub struct World {
    c: Cluster,
    refs: Vec<Ref<Unit>>,
    handles: Vec<DOHandle>,
    tick: u32,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("stations", &self.c.addrs.len())
            .field("objects", &self.refs.len())
            .finish()
    }
}

impl World {
    /// Publishes the units and runs until every duplica exists.
    pub fn new(stations: usize, objects: usize) -> World {
        let mut c = cluster(stations);
        let mut refs = Vec::with_capacity(objects);
        for _ in 0..objects {
            let now = c.now();
            refs.push(
                c.station_mut(0)
                    .publish(now, Unit::default())
                    .expect("published"),
            );
        }
        let want = objects * (stations - 1);
        c.run_until(Duration::from_secs(600), |c| {
            (1..c.addrs.len())
                .map(|i| c.station(i).duplicas().len())
                .sum::<usize>()
                >= want
        });
        drain(&mut c);
        let handles = refs.iter().map(|r| r.handle()).collect();
        World {
            c,
            refs,
            handles,
            tick: 0,
        }
    }

    /// Stations in the session.
    pub fn stations(&self) -> usize {
        self.c.addrs.len()
    }

    /// Units the master publishes.
    pub fn objects(&self) -> usize {
        self.refs.len()
    }

    /// Changes every unit, sends the updates and runs until all arrived.
    pub fn tick(&mut self) {
        self.tick += 1;
        let tick = self.tick;
        for r in &self.refs {
            r.with(|u| u.motion.step(tick));
        }
        let before = applied(&self.c);
        let now = self.c.now();
        let st = self.c.station_mut(0);
        for h in &self.handles {
            st.update(now, *h).expect("update");
        }
        let want = before + (self.handles.len() * (self.c.addrs.len() - 1)) as u64;
        let done = self
            .c
            .run_until(Duration::from_secs(60), |c| applied(c) >= want);
        assert!(done, "every update was delivered");
        drain(&mut self.c);
    }

    /// The median wall time of `ticks` ticks, µs (after one untimed tick).
    pub fn measure(&mut self, ticks: usize) -> f64 {
        self.tick();
        let mut v: Vec<f64> = (0..ticks.max(1))
            .map(|_| {
                let start = Instant::now();
                self.tick();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// One point of a scaling series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Stations in the session (one master, the rest duplica stations).
    pub stations: usize,
    /// Units changing every tick.
    pub objects: usize,
    /// The median tick, µs of wall time for the whole session.
    pub tick_micros: f64,
}

impl Point {
    /// Wall time per delivered field update, µs.
    pub fn per_field_update(&self) -> f64 {
        self.tick_micros
            / (self.objects * (self.stations - 1) * crate::classes::Motion::FIELDS) as f64
    }
}

/// The stations of the series over stations, at 1,000 units.
pub const STATIONS: [usize; 6] = [2, 4, 8, 16, 32, 64];
/// The units of the series over objects, at 4 stations.
pub const OBJECTS: [usize; 4] = [1_000, 10_000, 30_000, 100_000];

/// Both series, `ticks` timed ticks per point: stations 2 → 64 at 1,000
/// units, then units 1,000 → 100,000 at 4 stations.
pub fn measure(ticks: usize) -> Vec<Point> {
    let mut out = Vec::new();
    let shapes = STATIONS
        .iter()
        .map(|&s| (s, 1_000))
        .chain(OBJECTS.iter().filter(|&&k| k != 1_000).map(|&k| (4, k)));
    for (stations, objects) in shapes {
        eprint!("\rscaling {stations} stations x {objects} units   ");
        let mut w = World::new(stations, objects);
        let tick_micros = w.measure(ticks);
        out.push(Point {
            stations,
            objects,
            tick_micros,
        });
    }
    eprintln!();
    out
}

/// The cost of a tick against the stations (at 1,000 units) as an SVG
/// chart, with the cost per delivered field update.
pub fn stations_svg(points: &[Point]) -> String {
    series_svg(
        points
            .iter()
            .filter(|p| p.objects == 1_000)
            .map(|p| (p.stations as f64, p)),
        "stations (one master, the rest duplica stations)",
        "Cost of a tick vs stations (1,000 units, every field changes)",
    )
}

/// The cost of a tick against the units (at 4 stations) as an SVG chart.
pub fn objects_svg(points: &[Point]) -> String {
    series_svg(
        points
            .iter()
            .filter(|p| p.stations == 4)
            .map(|p| (p.objects as f64, p)),
        "units changing every tick",
        "Cost of a tick vs units (4 stations, every field changes)",
    )
}

fn series_svg<'a>(points: impl Iterator<Item = (f64, &'a Point)>, x: &str, title: &str) -> String {
    use crate::charts::{line_chart, Axis, Line};
    let mut pts: Vec<(f64, &Point)> = points.collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lines = vec![
        Line {
            name: "tick, ms".into(),
            points: pts.iter().map(|(x, p)| (*x, p.tick_micros / 1e3)).collect(),
            dashed: false,
        },
        Line {
            name: "per field update, µs".into(),
            points: pts
                .iter()
                .map(|(x, p)| (*x, p.per_field_update()))
                .collect(),
            dashed: true,
        },
    ];
    line_chart(
        title,
        &Axis::log(x),
        &Axis::log("wall time (simulator, one thread)"),
        &lines,
    )
}

/// The series as a Markdown table.
pub fn table(points: &[Point]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| Stations | Units | Tick, ms | per delivered field update, µs |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    for p in points {
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {:.3} |",
            p.stations,
            p.objects,
            p.tick_micros / 1e3,
            p.per_field_update()
        );
    }
    t
}

/// The clients of the server series.
pub const CLIENTS: [usize; 6] = [2, 4, 8, 16, 32, 64];

/// One point of the server series: a server's own CPU per tick with
/// `clients` clients that each hold the same world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerPoint {
    /// Clients of the server.
    pub clients: usize,
    /// The server's own CPU per tick (median of the rounds), µs.
    pub server_micros: f64,
    /// A client's own CPU per tick (mean over the clients, median of the
    /// rounds), µs.
    pub client_micros: f64,
}

/// A server's own CPU per tick against its clients: one server masters
/// 1,000 units that all walk every tick, always relevant, so every client
/// receives the same world; stations wired in memory
/// (`crate::interest::World`), each station's calls timed on their own.
/// `rounds` rounds of `ticks` ticks per point, after 3 ticks of warm-up.
pub fn server_series(rounds: usize, ticks: usize) -> Vec<ServerPoint> {
    use crate::interest::{Policy, World as Field, WorldConfig};
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    CLIENTS
        .iter()
        .map(|&clients| {
            eprint!("\rserver with {clients} clients   ");
            let mut w = Field::new(WorldConfig {
                moving: 1.0,
                ..WorldConfig::new(clients + 1, 1_000, Policy::Always)
            });
            w.measure(3);
            let costs: Vec<_> = (0..rounds.max(1)).map(|_| w.measure(ticks)).collect();
            ServerPoint {
                clients,
                server_micros: median(costs.iter().map(|c| c.server_micros).collect()),
                client_micros: median(costs.iter().map(|c| c.client_micros).collect()),
            }
        })
        .collect()
}

/// The server series as a Markdown table, with the linearity target:
/// with 64 clients at most 1.25 × 32 × the cost with 2.
pub fn server_table(points: &[ServerPoint]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| Clients | Server's CPU per tick, µs | per client, µs | a client's CPU per tick, µs |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    for p in points {
        let _ = writeln!(
            t,
            "| {} | {:.1} | {:.1} | {:.1} |",
            p.clients,
            p.server_micros,
            p.server_micros / p.clients as f64,
            p.client_micros
        );
    }
    let at = |n: usize| {
        points
            .iter()
            .find(|p| p.clients == n)
            .map(|p| p.server_micros)
    };
    if let (Some(two), Some(sixty_four)) = (at(2), at(64)) {
        let ratio = sixty_four / (32.0 * two);
        let _ = writeln!(
            t,
            "\nWith 64 clients the server's tick costs {:.2}× 32 × its cost with 2 (target ≤ 1.25×: {}).",
            ratio,
            if ratio <= 1.25 { "**met**" } else { "missed" }
        );
    }
    t
}
