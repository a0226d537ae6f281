//! Latest-state datasets: unreliable updates that carry the fields changed
//! since the state the receiver acknowledged, applied only when newer.
use netz_core::cluster::Cluster;
use netz_core::interest::{ClassInterest, Position, StationInterest};
use netz_core::session::Topology;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

thread_local! {
    /// How `Pos` travels in this test's thread.
    static MODE: Cell<Delivery> = const { Cell::new(Delivery::Latest) };
}

/// A shared log of the operation hooks that ran.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

thread_local! {
    static LOG: std::cell::RefCell<Option<Log>> = const { std::cell::RefCell::new(None) };
}

fn log(s: String) {
    LOG.with(|l| {
        if let Some(l) = &*l.borrow() {
            l.0.lock().unwrap().push(s)
        }
    })
}

/// Where a unit is: x, y and the tick that put it there; a build of
/// revision 1 (`with_z`) also has z.
#[derive(Default, Clone, Debug)]
struct Pos<const Z: bool> {
    x: f32,
    y: f32,
    tick: u32,
    z: f32,
    received: u8,
    /// The ticks of the updates applied here, in order.
    applied: Vec<u32>,
}

impl<const Z: bool> DataSet for Pos<Z> {
    fn name(&self) -> &'static str {
        "Pos"
    }
    fn field_names(&self) -> &'static [&'static str] {
        if Z {
            &["x", "y", "tick", "z"]
        } else {
            &["x", "y", "tick"]
        }
    }
    fn field_revisions(&self) -> &'static [u8] {
        if Z {
            &[0, 0, 0, 1]
        } else {
            &[0, 0, 0]
        }
    }
    fn encode_field(&self, i: usize, out: &mut Vec<u8>) {
        match i {
            0 => encode_value(&self.x, out),
            1 => encode_value(&self.y, out),
            2 => encode_value(&self.tick, out),
            _ => encode_value(&self.z, out),
        }
    }
    fn decode_field(&mut self, i: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match i {
            0 => self.x = decode_value(input, "x")?,
            1 => self.y = decode_value(input, "y")?,
            2 => self.tick = decode_value(input, "tick")?,
            _ => self.z = decode_value(input, "z")?,
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
    fn operation_begin(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::UpdateDataSet {
            log(format!("{} Pos::OperationBegin", op.local_station()));
        }
    }
    fn operation_end(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::UpdateDataSet {
            self.applied.push(self.tick);
            log(format!("{} Pos::OperationEnd", op.local_station()));
        }
    }
}

/// A reliable dataset beside it: hit points.
#[derive(Default, Clone, Debug)]
struct Hp {
    hp: i32,
    received: u8,
}

impl DataSet for Hp {
    fn name(&self) -> &'static str {
        "Hp"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["hp"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0]
    }
    fn encode_field(&self, _: usize, out: &mut Vec<u8>) {
        encode_value(&self.hp, out)
    }
    fn decode_field(&mut self, _: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        self.hp = decode_value(input, "hp")?;
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, r: u8) {
        self.received = r
    }
}

#[derive(Default, Debug)]
struct Unit<const Z: bool> {
    pos: Pos<Z>,
    hp: Hp,
}

impl<const Z: bool> DoClass for Unit<Z> {
    const CLASS_NAME: &'static str = "Unit";
    const CLASS_ID: Option<u8> = Some(120);
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Self::default()
    }
    fn dataset_count(&self) -> usize {
        2
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        match i {
            0 => Some(&self.pos),
            1 => Some(&self.hp),
            _ => None,
        }
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        match i {
            0 => Some(&mut self.pos),
            1 => Some(&mut self.hp),
            _ => None,
        }
    }
    fn operation_begin(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::UpdateDataSet {
            log(format!("{} DO::OperationBegin", op.local_station()));
        }
    }
    fn operation_end(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::UpdateDataSet {
            log(format!("{} DO::OperationEnd", op.local_station()));
        }
    }
    fn approve_fault_recovery(&mut self) -> bool {
        true
    }
}

type U = Unit<false>;

fn registry<const Z: bool>() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Unit<Z>>().unwrap();
    Arc::new(r)
}

fn lossy(seed: u64, loss: f64) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        loss,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(30),
        ..SimConfig::seeded(seed)
    }
}

fn servers(n: usize) -> Vec<StationConfig> {
    (0..n)
        .map(|i| StationConfig {
            seed: 100 + i as u64,
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect()
}

/// Where unit `k` is at tick `t`.
fn place(k: usize, t: u32) -> (f32, f32) {
    (k as f32 * 10.0 + t as f32, (t % 17) as f32 - k as f32)
}

/// One game tick on station `i`: every unit of `handles` it masters moves.
fn tick(c: &mut Cluster, i: usize, handles: &[DOHandle], t: u32) {
    for (k, h) in handles.iter().enumerate() {
        if let Some(r) = c.station(i).get::<U>(*h) {
            if r.is_master() {
                let (x, y) = place(k, t);
                let mut u = r.lock();
                u.pos.x = x;
                u.pos.y = y;
                u.pos.tick = t;
            }
        }
    }
    let now = c.now();
    c.station_mut(i).update_all(now);
    c.run_for(Duration::from_millis(20));
}

/// Whether every station of `on` holds the newest state of every unit.
fn converged(c: &Cluster, on: &[usize], handles: &[DOHandle], t: u32) -> bool {
    on.iter().all(|&i| {
        handles.iter().enumerate().all(|(k, h)| {
            c.station(i).get::<U>(*h).is_some_and(|r| {
                let u = r.lock();
                (u.pos.x, u.pos.y, u.pos.tick) == (place(k, t).0, place(k, t).1, t)
            })
        })
    })
}

/// Every duplica applied its states in the order they were made (a full
/// state again after a change of master may repeat the newest).
fn assert_in_order(c: &Cluster, on: &[usize], handles: &[DOHandle]) {
    assert_ordered(c, on, handles, false)
}

fn assert_ordered(c: &Cluster, on: &[usize], handles: &[DOHandle], strictly: bool) {
    for &i in on {
        for h in handles {
            let r = c.station(i).get::<U>(*h).unwrap();
            if r.is_master() {
                continue;
            }
            let u = r.lock();
            assert!(
                u.pos
                    .applied
                    .windows(2)
                    .all(|w| w[0] < w[1] || (!strictly && w[0] == w[1])),
                "station {i} applied {h:?} out of order: {:?}",
                u.pos.applied
            );
        }
    }
}

fn master_retransmissions(c: &Cluster, i: usize) -> u64 {
    c.station(i)
        .link_views()
        .iter()
        .map(|l| l.retransmissions)
        .sum()
}

/// Four stations at `loss`, 30 units on station 1 moving every tick for
/// 150 ticks with `Pos` travelling as `mode`.
fn moving(mode: Delivery, loss: f64) -> (Cluster, Vec<DOHandle>, u64) {
    MODE.with(|m| m.set(mode));
    let mut c = Cluster::start(lossy(7, loss), registry::<false>(), servers(4)).unwrap();
    let now = c.now();
    let handles: Vec<DOHandle> = (0..30)
        .map(|_| {
            c.station_mut(1)
                .publish(now, U::default())
                .unwrap()
                .handle()
        })
        .collect();
    assert!(c.run_until(Duration::from_secs(10), |c| (0..4)
        .all(|i| handles.iter().all(|h| c.station(i).contains(*h)))));
    c.run_for(Duration::from_secs(1));
    let before = master_retransmissions(&c, 1);
    for t in 1..=150 {
        tick(&mut c, 1, &handles, t);
    }
    let during = master_retransmissions(&c, 1) - before;
    (c, handles, during)
}

#[test]
fn a_latest_state_dataset_converges_under_20_percent_loss_without_resending_stale_states() {
    let (mut c, handles, retransmitted) = moving(Delivery::Latest, 0.2);
    // Nothing reliable was sent while the units moved: no lost state was
    // ever sent again.
    assert_eq!(retransmitted, 0, "retransmissions while moving");
    let all = [0, 2, 3];
    assert!(
        c.run_until(Duration::from_secs(5), |c| converged(
            c, &all, &handles, 150
        )),
        "every duplica holds the newest state"
    );
    assert_ordered(&c, &all, &handles, true);
    let sent = c.station(1).stats().latest_updates_sent;
    // At most one update per change and station, and a few more for the
    // newest states that were lost once the units stopped.
    assert!(sent <= 150 * 30 * 3 + 30 * 3 * 10, "sent {sent}");
    let mut stale = 0;
    let mut applied = 0;
    for i in all {
        stale += c.station(i).stats().latest_stale_dropped;
        applied += c.station(i).stats().latest_updates_applied;
    }
    assert!(stale > 0, "reordered old states arrive and are dropped");
    // Lost updates are not made up for: far fewer applied than changes.
    assert!(applied < 150 * 30 * 3, "applied {applied}");
    assert_eq!(c.station(1).stats().latest_stale_dropped, 0);
    MODE.with(|m| m.set(Delivery::Latest));
}

#[test]
fn a_reliable_dataset_still_delivers_every_update_in_order() {
    let (mut c, handles, retransmitted) = moving(Delivery::Reliable, 0.2);
    assert!(retransmitted > 0);
    let all = [0, 2, 3];
    assert!(c.run_until(Duration::from_secs(30), |c| converged(
        c, &all, &handles, 150
    )));
    for i in all {
        for h in &handles {
            let r = c.station(i).get::<U>(*h).unwrap();
            let ticks = r.lock().pos.applied.clone();
            assert_eq!(ticks, (1..=150).collect::<Vec<u32>>(), "station {i}");
        }
        assert_eq!(c.station(i).stats().latest_updates_applied, 0);
    }
    MODE.with(|m| m.set(Delivery::Latest));
}

#[test]
fn reliable_and_latest_datasets_of_one_object_each_keep_their_guarantees() {
    let mut c = Cluster::start(lossy(3, 0.2), registry::<false>(), servers(3)).unwrap();
    let now = c.now();
    let r = c.station_mut(0).publish(now, U::default()).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_secs(1));
    for t in 1..=100u32 {
        {
            let mut u = r.lock();
            u.pos.tick = t;
            u.hp.hp = t as i32;
        }
        let now = c.now();
        assert!(c.station_mut(0).update(now, h).unwrap());
        c.run_for(Duration::from_millis(15));
    }
    assert!(c.run_until(Duration::from_secs(30), |c| (1..3).all(|i| {
        let u = c.station(i).get::<U>(h).unwrap();
        let u = u.lock();
        (u.pos.tick, u.hp.hp) == (100, 100)
    })));
    for i in 1..3 {
        let u = c.station(i).get::<U>(h).unwrap();
        let u = u.lock();
        // Every reliable update applied, each with the latest state that
        // was newer by then.
        assert!(u.pos.applied.windows(2).all(|w| w[0] <= w[1]));
        assert!(c.station(i).stats().updates_applied >= 100);
    }
}

#[test]
fn late_joiners_and_objects_entering_relevance_get_the_full_state_first() {
    let mut c = Cluster::start(lossy(11, 0.2), registry::<false>(), servers(2)).unwrap();
    let now = c.now();
    let handles: Vec<DOHandle> = (0..10)
        .map(|_| {
            c.station_mut(0)
                .publish(now, U::default())
                .unwrap()
                .handle()
        })
        .collect();
    for t in 1..=30 {
        tick(&mut c, 0, &handles, t);
    }
    // A station joins while the units move: Create carries each unit's
    // state, and the latest states follow it.
    let late = c
        .join(
            StationConfig {
                seed: 77,
                ..StationConfig::new(ProcessType::Server, "late")
            },
            0,
        )
        .unwrap();
    for t in 31..=60 {
        tick(&mut c, 0, &handles, t);
    }
    assert!(c.run_until(Duration::from_secs(5), |c| converged(
        c,
        &[1, late],
        &handles,
        60
    )));
    assert_in_order(&c, &[1, late], &handles);

    // Interest management: units are relevant to clients near them.
    let mut c = Cluster::start(
        lossy(12, 0.2),
        registry::<false>(),
        vec![
            StationConfig::new(ProcessType::Server, "srv"),
            StationConfig::new(ProcessType::Client, "near"),
        ],
    )
    .unwrap();
    let now = c.now();
    c.station_mut(0)
        .set_class_interest::<U>(
            now,
            ClassInterest::spatial_by(|u: &U| Position::new(u.pos.x, u.pos.y)),
        )
        .unwrap();
    c.station_mut(1)
        .set_interest(
            now,
            StationInterest::new().with_area(Position::new(1000.0, 0.0), 50.0, 60.0),
        )
        .unwrap();
    let handles: Vec<DOHandle> = (0..5)
        .map(|_| {
            c.station_mut(0)
                .publish(now, U::default())
                .unwrap()
                .handle()
        })
        .collect();
    c.run_for(Duration::from_millis(500));
    assert!(handles.iter().all(|h| !c.station(1).contains(*h)));
    // They walk towards the client's area and into it.
    for t in 1..=1000 {
        tick(&mut c, 0, &handles, t);
        if t > 990 {
            break;
        }
    }
    let inside: Vec<DOHandle> = handles
        .iter()
        .enumerate()
        .filter(|(k, _)| (place(*k, 991).0 - 1000.0).abs() < 40.0)
        .map(|(_, h)| *h)
        .collect();
    assert!(!inside.is_empty());
    assert!(
        c.run_until(Duration::from_secs(5), |c| inside.iter().all(|h| {
            let k = handles.iter().position(|x| x == h).unwrap();
            c.station(1).get::<U>(*h).is_some_and(|r| {
                let u = r.lock();
                (u.pos.x, u.pos.tick) == (place(k, 991).0, 991)
            })
        }))
    );
}

#[test]
fn latest_states_survive_migration_and_fault_recovery() {
    let mut c = Cluster::start(
        SimConfig {
            loss: 0.1,
            ..lossy(5, 0.1)
        },
        registry::<false>(),
        servers(4),
    )
    .unwrap();
    let now = c.now();
    let handles: Vec<DOHandle> = (0..8)
        .map(|_| {
            c.station_mut(1)
                .publish(now, U::default())
                .unwrap()
                .handle()
        })
        .collect();
    for t in 1..=20 {
        tick(&mut c, 1, &handles, t);
    }
    // The master moves to station 2, which goes on moving the units.
    let to = c.station(2).id();
    for h in &handles {
        let now = c.now();
        c.station_mut(1).migrate(now, *h, to).unwrap();
    }
    assert!(c.run_until(Duration::from_secs(5), |c| handles
        .iter()
        .all(|h| (0..4).all(|i| c.station(i).master_of(*h) == Some(to)))));
    for t in 21..=50 {
        tick(&mut c, 2, &handles, t);
    }
    assert!(c.run_until(Duration::from_secs(5), |c| converged(
        c,
        &[0, 1, 3],
        &handles,
        50
    )));
    assert_in_order(&c, &[0, 1, 3], &handles);
    // Station 2 fails: the session master takes the units over.
    c.crash(2);
    let sm = c.station(0).id();
    assert!(
        c.run_until(Duration::from_secs(10), |c| handles.iter().all(|h| [
            0, 1, 3
        ]
        .iter()
        .all(|&i| c.station(i).master_of(*h) == Some(sm))))
    );
    for t in 51..=80 {
        tick(&mut c, 0, &handles, t);
    }
    assert!(c.run_until(Duration::from_secs(5), |c| converged(
        c,
        &[1, 3],
        &handles,
        80
    )));
    assert_in_order(&c, &[1, 3], &handles);
}

#[test]
fn revisions_and_operation_hooks_hold_on_the_latest_path() {
    let l = Log::default();
    LOG.with(|x| *x.borrow_mut() = Some(l.clone()));
    // An older build (no z) masters the unit; a newer build holds a duplica.
    let mut c = Cluster::start(SimConfig::seeded(2), registry::<false>(), servers(1)).unwrap();
    let newer = c
        .join_with_registry(
            StationConfig::new(ProcessType::Server, "v2"),
            registry::<true>(),
            0,
        )
        .unwrap();
    let now = c.now();
    let r = c.station_mut(0).publish(now, U::default()).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    l.0.lock().unwrap().clear();
    {
        let mut u = r.lock();
        u.pos.x = 3.5;
        u.pos.tick = 1;
    }
    let now = c.now();
    c.station_mut(0).update(now, h).unwrap();
    c.run_for(Duration::from_millis(300));
    let d = c.station(newer).get::<Unit<true>>(h).unwrap();
    {
        let u = d.lock();
        assert_eq!((u.pos.x, u.pos.tick), (3.5, 1));
        assert_eq!(u.pos.revision(), 0);
        assert!(u.pos.is_valid("x"));
        assert!(
            !u.pos.is_valid("z"),
            "z is newer than the sender's revision"
        );
    }
    let id = c.station(newer).id();
    let lines: Vec<String> =
        l.0.lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(&id.to_string()))
            .cloned()
            .collect();
    assert_eq!(
        lines,
        vec![
            format!("{id} Pos::OperationBegin"),
            format!("{id} DO::OperationBegin"),
            format!("{id} Pos::OperationEnd"),
            format!("{id} DO::OperationEnd"),
        ]
    );
    // The newer build masters one: the older build ignores z.
    let now = c.now();
    let r2 = c
        .station_mut(newer)
        .publish(now, Unit::<true>::default())
        .unwrap();
    c.run_for(Duration::from_millis(300));
    {
        let mut u = r2.lock();
        u.pos.y = 9.0;
        u.pos.z = 4.0;
        u.pos.tick = 2;
    }
    let now = c.now();
    c.station_mut(newer).update(now, r2.handle()).unwrap();
    c.run_for(Duration::from_millis(300));
    let old = c.station(0).get::<U>(r2.handle()).unwrap();
    let u = old.lock();
    assert_eq!((u.pos.y, u.pos.tick, u.pos.revision()), (9.0, 2, 1));
    LOG.with(|x| *x.borrow_mut() = None);
}

#[test]
fn a_cheating_member_cannot_push_latest_states_of_objects_it_does_not_master() {
    let mut c = Cluster::start(SimConfig::seeded(4), registry::<false>(), servers(3)).unwrap();
    let now = c.now();
    let r = c.station_mut(0).publish(now, U::default()).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(300));
    // Station 2 holds a duplica; it claims a state of its own far in the future.
    let d = c.station(2).get::<U>(h).unwrap();
    d.lock().pos.x = 666.0;
    let forged = netz_core::forge::latest_batch_of(c.station(2), &[h], u64::MAX);
    let to = c.station(1).id();
    let now = c.now();
    assert!(netz_core::forge::send_as(
        c.station_mut(2),
        now,
        to,
        netz_core::forge::Forged::LatestBatch { data: forged }
    ));
    // And garbage.
    for n in 0..50u8 {
        let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
        let now = c.now();
        netz_core::forge::send_as(
            c.station_mut(2),
            now,
            to,
            netz_core::forge::Forged::LatestBatch { data },
        );
    }
    c.run_for(Duration::from_millis(300));
    let st = c.station(1);
    assert_eq!(st.stats().unauthorized_by_kind.get("LatestBatch"), Some(&1));
    assert!(st.bookkeeping().latest_versions <= 1);
    assert!(st.stats().bad_messages > 0);
    assert_eq!(st.get::<U>(h).unwrap().lock().pos.x, 0.0);
    // The real master's next state still applies.
    r.lock().pos.x = 1.0;
    let now = c.now();
    c.station_mut(0).update(now, h).unwrap();
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(1).get::<U>(h).unwrap().lock().pos.x, 1.0);
}

#[test]
fn a_server_passes_on_the_latest_states_of_a_batch_whose_other_items_it_refuses() {
    // A client's latest-state batch names its own object and another
    // client's: its server refuses the second item alone.
    let cs = |p: ProcessType, t: &str| StationConfig {
        topology: Topology::ClientServer,
        ..StationConfig::new(p, t)
    };
    let mut c = Cluster::start(
        SimConfig::seeded(6),
        registry::<false>(),
        vec![
            cs(ProcessType::Server, "srv"),
            cs(ProcessType::Client, "a"),
            cs(ProcessType::Client, "b"),
            cs(ProcessType::Client, "c"),
        ],
    )
    .unwrap();
    let now = c.now();
    let own = c.station_mut(1).publish(now, U::default()).unwrap();
    let other = c
        .station_mut(2)
        .publish(now, U::default())
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(400));
    own.lock().pos.x = 2.5;
    c.station(1).get::<U>(other).unwrap().lock().pos.x = 666.0;
    let data = netz_core::forge::latest_batch_of(c.station(1), &[own.handle(), other], 1 << 40);
    let to = c.station(3).id();
    let now = c.now();
    assert!(netz_core::forge::send_as(
        c.station_mut(1),
        now,
        to,
        netz_core::forge::Forged::LatestBatch { data }
    ));
    c.run_for(Duration::from_millis(300));
    let x = |h| c.station(3).get::<U>(h).unwrap().lock().pos.x;
    assert_eq!(x(own.handle()), 2.5, "the client's own state passed");
    assert_eq!(x(other), 0.0, "the other's object is untouched");
    let srv = c.station(0).stats();
    assert_eq!(srv.unauthorized_by_kind.get("LatestBatch"), Some(&1));
}

#[test]
fn latest_states_reach_clients_through_their_server() {
    let cs = |p: ProcessType, t: &str, seed: u64| StationConfig {
        topology: Topology::ClientServer,
        seed,
        ..StationConfig::new(p, t)
    };
    let mut c = Cluster::start(
        lossy(9, 0.2),
        registry::<false>(),
        vec![
            cs(ProcessType::Server, "srv", 1),
            cs(ProcessType::Client, "a", 2),
            cs(ProcessType::Client, "b", 3),
        ],
    )
    .unwrap();
    let now = c.now();
    // Client a masters units; client b sees them through the server.
    let handles: Vec<DOHandle> = (0..6)
        .map(|_| {
            c.station_mut(1)
                .publish(now, U::default())
                .unwrap()
                .handle()
        })
        .collect();
    for t in 1..=60 {
        tick(&mut c, 1, &handles, t);
    }
    assert!(c.run_until(Duration::from_secs(10), |c| converged(
        c,
        &[0, 2],
        &handles,
        60
    )));
    assert_in_order(&c, &[0, 2], &handles);
}
