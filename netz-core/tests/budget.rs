//! Bandwidth budgets per link: what fits goes, most important first; the
//! rest accumulates priority and goes later; RMCs never wait for datasets.
use netz_core::cluster::Cluster;
use netz_core::interest::{ClassInterest, Position, StationInterest};
use netz_core::session::Topology;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    /// How `Pos` travels in this test's thread.
    static MODE: Cell<Delivery> = const { Cell::new(Delivery::Latest) };
}

/// Where a unit is and the tick that put it there.
#[derive(Default, Clone, Debug)]
struct Pos {
    x: f32,
    y: f32,
    tick: u32,
    received: u8,
    /// The ticks of the states applied here.
    applied: Vec<u32>,
}

impl DataSet for Pos {
    fn name(&self) -> &'static str {
        "Pos"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["x", "y", "tick"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 0]
    }
    fn encode_field(&self, i: usize, out: &mut Vec<u8>) {
        match i {
            0 => encode_value(&self.x, out),
            1 => encode_value(&self.y, out),
            _ => encode_value(&self.tick, out),
        }
    }
    fn decode_field(&mut self, i: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match i {
            0 => self.x = decode_value(input, "x")?,
            1 => self.y = decode_value(input, "y")?,
            _ => self.tick = decode_value(input, "tick")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, r: u8) {
        self.received = r
    }
    fn delivery(&self) -> Delivery {
        MODE.with(Cell::get)
    }
    fn operation_end(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::UpdateDataSet {
            self.applied.push(self.tick);
        }
    }
}

#[derive(Default, Debug)]
struct Unit {
    pos: Pos,
}

const ECHO: MethodId = MethodId(0);

impl DoClass for Unit {
    const CLASS_NAME: &'static str = "Unit";
    const METHODS: &'static [MethodInfo] = &[MethodInfo {
        name: "echo",
        kind: MethodKind::Rmc,
    }];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Self::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.pos as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.pos as &mut dyn DataSet)
    }
    fn dispatch(
        &mut self,
        _call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        match method {
            ECHO => {
                let (n,): (u32,) =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                Ok(postcard::to_allocvec(&n).unwrap())
            }
            m => Err(DispatchError::UnknownMethod(m)),
        }
    }
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Unit>().unwrap();
    Arc::new(r)
}

/// A master (station 0, with `budget` on each of its links) and `dests`
/// stations, with `objects` units published on the master.
fn world(
    net: SimConfig,
    dests: usize,
    objects: usize,
    budget: Option<u64>,
) -> (Cluster, Vec<Ref<Unit>>) {
    let mut cfgs = vec![StationConfig {
        link_budget: budget,
        seed: 1,
        ..StationConfig::new(ProcessType::Server, "master")
    }];
    for i in 0..dests {
        cfgs.push(StationConfig {
            seed: 10 + i as u64,
            ..StationConfig::new(ProcessType::Server, format!("d{i}"))
        });
    }
    let mut c = Cluster::start(net, registry(), cfgs).unwrap();
    let now = c.now();
    let units: Vec<Ref<Unit>> = (0..objects)
        .map(|_| c.station_mut(0).publish(now, Unit::default()).unwrap())
        .collect();
    assert!(c.run_until(Duration::from_secs(30), |c| (1..=dests)
        .all(|i| units.iter().all(|u| c.station(i).contains(u.handle())))));
    c.run_for(Duration::from_millis(500));
    (c, units)
}

/// One 20 Hz tick: every unit moves, the master updates, 50 ms pass.
fn tick(c: &mut Cluster, units: &[Ref<Unit>], t: u32) {
    for (k, u) in units.iter().enumerate() {
        let mut u = u.lock();
        u.pos.x = k as f32 + t as f32 * 0.5;
        u.pos.y = t as f32;
        u.pos.tick = t;
    }
    let now = c.now();
    c.station_mut(0).update_all(now);
    c.run_for(Duration::from_millis(50));
}

/// How many ticks behind the master station `i`'s copy of each unit is.
fn lags(c: &Cluster, i: usize, units: &[Ref<Unit>], t: u32) -> Vec<u32> {
    units
        .iter()
        .map(|u| {
            let d = c.station(i).get::<Unit>(u.handle()).unwrap();
            let tick = d.lock().pos.tick;
            t - tick
        })
        .collect()
}

fn mean(v: &[u32]) -> f64 {
    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len().max(1) as f64
}

/// Bytes of the datagrams `from` sent to `to` that were recorded.
fn bytes(c: &Cluster, from: SocketAddr, to: SocketAddr) -> u64 {
    c.sim
        .deliveries()
        .iter()
        .filter(|d| d.from == from && d.to == to)
        .map(|d| d.data.len() as u64)
        .sum()
}

#[test]
fn under_a_budget_every_object_is_sent_and_bytes_stay_within_it() {
    for mode in [Delivery::Latest, Delivery::Reliable] {
        MODE.with(|m| m.set(mode));
        let budget = 16_000;
        let (mut c, units) = world(SimConfig::seeded(1), 3, 200, Some(budget));
        for t in 1..=20 {
            tick(&mut c, &units, t);
        }
        // Measured over 9 s of ticks, once the backlog of the start is there.
        c.sim.set_recording(true);
        for t in 21..=200 {
            tick(&mut c, &units, t);
        }
        let secs = 180.0 * 0.05;
        for i in 1..=3 {
            let sent = bytes(&c, c.addrs[0], c.addrs[i]);
            let allowed = budget as f64 * secs + 1200.0;
            assert!(
                sent as f64 <= allowed,
                "{mode:?}: station {i} got {sent} B in {secs} s (budget {budget} B/s)"
            );
            assert!(
                sent as f64 > 0.8 * budget as f64 * secs,
                "{mode:?}: the budget is used: {sent}"
            );
            // No unit starves: every one reached every station many times.
            for u in &units {
                let d = c.station(i).get::<Unit>(u.handle()).unwrap();
                let n = d.lock().pos.applied.iter().filter(|t| **t > 20).count();
                assert!(
                    n >= 5,
                    "{mode:?}: {:?} reached station {i} {n} times",
                    u.handle()
                );
            }
        }
        // Once the units stop, every station gets their last state.
        assert!(
            c.run_until(Duration::from_secs(10), |c| (1..=3).all(|i| lags(
                c, i, &units, 200
            )
            .iter()
            .all(|l| *l == 0)))
        );
    }
    MODE.with(|m| m.set(Delivery::Latest));
}

#[test]
fn high_priority_objects_are_fresher_than_low_priority_ones() {
    let (mut c, units) = world(SimConfig::seeded(2), 2, 200, Some(16_000));
    for u in &units[..100] {
        c.station_mut(0).set_priority(u.handle(), 8.0);
    }
    let (mut high, mut low) = (Vec::new(), Vec::new());
    for t in 1..=200 {
        tick(&mut c, &units, t);
        if t > 40 {
            for i in 1..=2 {
                let l = lags(&c, i, &units, t);
                high.extend_from_slice(&l[..100]);
                low.extend_from_slice(&l[100..]);
            }
        }
    }
    let (h, l) = (mean(&high), mean(&low));
    assert!(h * 2.0 < l, "high priority {h:.2} ticks behind, low {l:.2}");
    // The low ones still go: none waits forever.
    assert!(
        low.iter().max().copied().unwrap_or(0) < 100,
        "{:?}",
        low.iter().max()
    );
}

#[test]
fn closer_objects_of_a_spatial_class_go_first() {
    let cs = |p: ProcessType, t: &str, seed: u64, budget: Option<u64>| StationConfig {
        topology: Topology::ClientServer,
        seed,
        link_budget: budget,
        ..StationConfig::new(p, t)
    };
    let mut c = Cluster::start(
        SimConfig::seeded(3),
        registry(),
        vec![
            cs(ProcessType::Server, "srv", 1, Some(6_000)),
            cs(ProcessType::Client, "player", 2, None),
        ],
    )
    .unwrap();
    let now = c.now();
    c.station_mut(0)
        .set_class_interest::<Unit>(
            now,
            ClassInterest::spatial_by(|u: &Unit| Position::new(u.pos.x, 0.0)),
        )
        .unwrap();
    c.station_mut(1)
        .set_interest(
            now,
            StationInterest::new().with_area(Position::new(0.0, 0.0), 500.0, 600.0),
        )
        .unwrap();
    // Units in a row from the player out to the edge of its area; they
    // do not move, only their tick changes.
    let units: Vec<Ref<Unit>> = (0..100)
        .map(|k| {
            let mut u = Unit::default();
            u.pos.x = k as f32 * 4.9;
            c.station_mut(0).publish(now, u).unwrap()
        })
        .collect();
    assert!(c.run_until(Duration::from_secs(10), |c| units
        .iter()
        .all(|u| c.station(1).contains(u.handle()))));
    let (mut near, mut far) = (Vec::new(), Vec::new());
    for t in 1..=200 {
        for u in &units {
            u.lock().pos.tick = t;
        }
        let now = c.now();
        c.station_mut(0).update_all(now);
        c.run_for(Duration::from_millis(50));
        if t > 40 {
            let l = lags(&c, 1, &units, t);
            near.extend_from_slice(&l[..20]);
            far.extend_from_slice(&l[80..]);
        }
    }
    let (n, f) = (mean(&near), mean(&far));
    assert!(n * 1.5 < f, "near {n:.2} ticks behind, far {f:.2}");
}

#[test]
fn rmcs_do_not_wait_for_the_datasets_of_a_full_budget() {
    let (mut c, units) = world(SimConfig::seeded(4), 1, 300, Some(8_000));
    for t in 1..=10 {
        tick(&mut c, &units, t);
    }
    let dest = c.station(1).id();
    assert!(c.station(0).stats().budgets[&dest].deferred > 100);
    // Station 1 calls the master while the master's link to it is full of
    // waiting updates: the reply does not queue behind them.
    let ctx: RmcContext<u32> = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Unit>(units[0].handle())
        .call(&ctx, ECHO, &(7u32,)));
    let mut t = 10;
    while !ctx.is_complete() && t < 14 {
        t += 1;
        tick(&mut c, &units, t);
    }
    assert_eq!(ctx.result(), Some(7));
    assert!(c.station(0).stats().budgets[&dest].deferred > 100);
}

#[test]
fn the_congestion_window_holds_updates_back_when_the_path_is_slower_than_the_budget() {
    let net = SimConfig {
        bandwidth: Some(20_000),
        queue_bytes: 16 << 10,
        ..SimConfig::seeded(5)
    };
    let (mut c, units) = world(net, 1, 200, Some(1_000_000));
    let mut most_queued = 0;
    for t in 1..=200 {
        tick(&mut c, &units, t);
        for l in c.station(0).link_views() {
            most_queued = most_queued.max(l.queued_bytes);
        }
    }
    // What the path cannot take waits in the scheduler, not in the link.
    assert!(most_queued <= 2400, "{most_queued} bytes queued on a link");
    let s = c.sim.stats();
    assert!(
        s.dropped_queue * 20 < s.sent,
        "{} of {} datagrams dropped at the bottleneck",
        s.dropped_queue,
        s.sent
    );
    assert!(
        c.run_until(Duration::from_secs(20), |c| lags(c, 1, &units, 200)
            .iter()
            .all(|l| *l == 0))
    );
}

#[test]
fn a_class_send_rate_caps_updates_per_station() {
    let (mut c, units) = world(SimConfig::seeded(6), 2, 10, None);
    c.station_mut(0)
        .set_class_send_rate::<Unit>(Some(5.0))
        .unwrap();
    let before: Vec<usize> = units
        .iter()
        .map(|u| {
            c.station(1)
                .get::<Unit>(u.handle())
                .unwrap()
                .lock()
                .pos
                .applied
                .len()
        })
        .collect();
    for t in 1..=40 {
        tick(&mut c, &units, t);
    }
    for (u, b) in units.iter().zip(before) {
        let d = c.station(1).get::<Unit>(u.handle()).unwrap();
        let n = d.lock().pos.applied.len() - b;
        // 2 s at 5 Hz.
        assert!((8..=11).contains(&n), "{n} updates in 2 s");
    }
    assert!(
        c.run_until(Duration::from_secs(2), |c| lags(c, 2, &units, 40)
            .iter()
            .all(|l| *l == 0))
    );
}

#[test]
fn a_budget_set_for_one_link_leaves_the_others_alone() {
    MODE.with(|m| m.set(Delivery::Reliable));
    let (mut c, units) = world(SimConfig::seeded(7), 2, 100, None);
    let (one, two) = (c.station(1).id(), c.station(2).id());
    c.station_mut(0).set_link_budget(one, Some(6_000));
    assert_eq!(c.station(0).link_budget(one), Some(6_000));
    assert_eq!(c.station(0).link_budget(two), None);
    let applied = |c: &Cluster, i: usize| -> usize {
        units
            .iter()
            .map(|u| {
                let d = c.station(i).get::<Unit>(u.handle()).unwrap();
                let n = d.lock().pos.applied.iter().filter(|t| **t > 0).count();
                n
            })
            .sum()
    };
    for t in 1..=60 {
        tick(&mut c, &units, t);
    }
    // Every change reached station 2; station 1 got merged ones.
    assert_eq!(applied(&c, 2), 60 * 100);
    assert!(applied(&c, 1) < 60 * 100 / 2, "{}", applied(&c, 1));
    let figures = c.station(0).stats().budgets[&one].clone();
    assert_eq!(figures.budget, Some(6_000));
    assert!(figures.deferred > 0 && figures.queued_priority > 0);
    assert!(figures.oldest_deferred > Duration::ZERO);
    assert!(
        figures.bytes_per_second <= 6_000 + 1200,
        "{} B/s",
        figures.bytes_per_second
    );
    assert!(c
        .station(0)
        .link_views()
        .iter()
        .any(|l| l.budget == Some(6_000)));
    // Back to the configuration's (none): the rest goes at once.
    c.station_mut(0).reset_link_budget(one);
    for t in 61..=62 {
        tick(&mut c, &units, t);
    }
    assert!(
        c.run_until(Duration::from_secs(2), |c| lags(c, 1, &units, 62)
            .iter()
            .all(|l| *l == 0))
    );
    MODE.with(|m| m.set(Delivery::Latest));
}
