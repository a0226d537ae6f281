use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::{Instant, Transmit};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A node that records what it receives, answers `ping…` with `pong…` when
/// `echo` is set, fires timers, and optionally pings peers periodically.
#[derive(Debug, Default)]
struct TestNode {
    outbox: VecDeque<Transmit>,
    received: Received,
    timers: Vec<Instant>,
    fired: Vec<Instant>,
    echo: bool,
    polls: u64,
    periodic: Option<(Duration, Vec<SocketAddr>)>,
    counter: u32,
}

impl TestNode {
    fn echo() -> Self {
        TestNode {
            echo: true,
            ..TestNode::default()
        }
    }

    /// Pings every peer every `period`, starting at time zero.
    fn pinger(period: Duration, peers: Vec<SocketAddr>) -> Self {
        TestNode {
            echo: true,
            timers: vec![Instant::ZERO],
            periodic: Some((period, peers)),
            ..TestNode::default()
        }
    }

    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        self.outbox.push_back(Transmit {
            destination: to,
            contents: data.to_vec(),
        });
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.received.iter().map(|r| r.2.clone()).collect()
    }
}

impl SimNode for TestNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.received.push((now, from, data.to_vec()));
        if self.echo {
            if let Some(rest) = data.strip_prefix(b"ping") {
                let mut reply = b"pong".to_vec();
                reply.extend_from_slice(rest);
                self.send(from, &reply);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        self.timers.retain(|&t| t > now);
        if let Some((period, peers)) = self.periodic.clone() {
            for peer in peers {
                let mut msg = b"ping".to_vec();
                msg.extend_from_slice(&self.counter.to_le_bytes());
                self.send(peer, &msg);
            }
            self.counter += 1;
            self.timers.push(now + period);
        }
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.polls += 1;
        self.outbox.pop_front()
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.polls += 1;
        self.timers.iter().copied().min()
    }
}

/// A misbehaving node whose timeout is always in the past.
#[derive(Debug, Default)]
struct StaleNode {
    timeouts: Vec<Instant>,
}

impl SimNode for StaleNode {
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _data: &[u8]) {}
    fn handle_timeout(&mut self, now: Instant) {
        self.timeouts.push(now);
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(Instant::ZERO)
    }
}

/// Every datagram is accounted for exactly once.
fn assert_accounted<N: SimNode>(sim: &Sim<N>) {
    let s = sim.stats();
    assert_eq!(
        s.sent + s.duplicated,
        s.lost
            + s.dropped_mtu
            + s.dropped_partition
            + s.delivered
            + s.dropped_crashed
            + s.to_unknown_address
            + sim.in_flight() as u64,
        "{s:?}"
    );
}

fn two_nodes(config: SimConfig) -> (Sim<TestNode>, SocketAddr, SocketAddr) {
    let mut sim = Sim::new(config);
    let a = sim.add_node(TestNode::echo());
    let b = sim.add_node(TestNode::echo());
    (sim, a, b)
}

// ------------------------------------------------------------------- rng

#[test]
fn rng_same_seed_same_sequence() {
    let mut a = Rng::new(12345);
    let mut b = Rng::new(12345);
    for _ in 0..1000 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    let mut c = Rng::new(12346);
    let a: Vec<u64> = (0..8).map(|_| Rng::new(12345).next_u64()).collect();
    let c: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
    assert_ne!(a, c);
    // Seed zero is fine (no all-zero state).
    let mut z = Rng::new(0);
    assert!((0..4).map(|_| z.next_u64()).any(|x| x != 0));
}

#[test]
fn rng_matches_reference_vectors() {
    // splitmix64 from state 0, and xoshiro256** from state [1, 2, 3, 4], as
    // published with the reference implementations.
    let mut sm = 0u64;
    assert_eq!(super::rng::splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
    let mut rng = Rng::from_state([1, 2, 3, 4]);
    let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
    assert_eq!(got, vec![11520, 0, 1509978240, 1215971899390074240]);
}

#[test]
fn rng_gen_f64_in_unit_interval() {
    let mut rng = Rng::new(1);
    let mut sum = 0.0;
    for _ in 0..10_000 {
        let x = rng.gen_f64();
        assert!((0.0..1.0).contains(&x));
        sum += x;
    }
    let mean = sum / 10_000.0;
    assert!((0.47..0.53).contains(&mean), "mean {mean}");
    assert!(!rng.gen_bool(0.0));
    assert!(rng.gen_bool(1.0));
    assert!(!rng.gen_bool(f64::NAN));
    assert!(rng.gen_bool(7.0));
}

#[test]
fn rng_gen_range_bounds() {
    let mut rng = Rng::new(2);
    for _ in 0..2000 {
        let x = rng.gen_range(10..20u32);
        assert!((10..20).contains(&x));
        let y = rng.gen_range(-5..=5i32);
        assert!((-5..=5).contains(&y));
        let z = rng.gen_range(i64::MIN..i64::MAX);
        assert!(z < i64::MAX);
        let f = rng.gen_range(1.5..2.5);
        assert!((1.5..2.5).contains(&f));
        let u = rng.gen_range(0..3usize);
        assert!(u < 3);
    }
    // Full inclusive domains.
    let _ = rng.gen_range(0..=u64::MAX);
    let _ = rng.gen_range(i64::MIN..=i64::MAX);
    let _ = rng.gen_range(0..=u8::MAX);
    // Empty ranges yield their start instead of panicking.
    assert_eq!(rng.gen_range(7..7u64), 7);
    #[allow(clippy::reversed_empty_ranges)]
    let r = rng.gen_range(9..=3i8);
    assert_eq!(r, 9);
    assert_eq!(rng.gen_range(2.0..1.0), 2.0);
    assert!(rng.gen_range(f64::NAN..1.0).is_nan());
    assert_eq!(rng.below(0), 0);
}

#[test]
fn rng_gen_range_roughly_uniform() {
    let mut rng = Rng::new(3);
    let mut counts = [0u32; 6];
    for _ in 0..60_000 {
        counts[rng.gen_range(0..6usize)] += 1;
    }
    for c in counts {
        assert!((9_400..10_600).contains(&c), "{counts:?}");
    }
    let mut all_u8 = [false; 256];
    for _ in 0..20_000 {
        all_u8[usize::from(rng.gen_range(0..=u8::MAX))] = true;
    }
    assert!(all_u8.iter().all(|&b| b));
}

#[test]
fn rng_helpers() {
    let mut rng = Rng::new(4);
    let mut v: Vec<u32> = (0..50).collect();
    rng.shuffle(&mut v);
    assert_ne!(v, (0..50).collect::<Vec<_>>());
    let mut sorted = v.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert!(rng.choose::<u8>(&[]).is_none());
    assert!(v.contains(rng.choose(&v).unwrap()));
    let bytes = rng.gen_bytes(13);
    assert_eq!(bytes.len(), 13);
    let mut f1 = Rng::new(5).fork();
    let mut f2 = Rng::new(5).fork();
    assert_eq!(f1.next_u64(), f2.next_u64());
}

// --------------------------------------------------------------- topology

#[test]
fn add_node_assigns_sequential_addresses() {
    let mut sim: Sim<TestNode> = Sim::new(SimConfig::default());
    let explicit: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    sim.add_node_at(explicit, TestNode::default());
    let a = sim.add_node(TestNode::default());
    let b = sim.add_node(TestNode::default());
    assert_eq!(a, "127.0.0.1:40002".parse().unwrap());
    assert_eq!(b, "127.0.0.1:40003".parse().unwrap());
    assert_eq!(sim.addrs(), vec![explicit, a, b]);
    assert!(sim.contains(a));
    assert!(sim.get("127.0.0.1:1".parse().unwrap()).is_none());
    assert_eq!(sim.iter().count(), 3);

    let mut fresh: Sim<TestNode> = Sim::new(SimConfig::default());
    assert_eq!(
        fresh.add_node(TestNode::default()),
        "127.0.0.1:40000".parse().unwrap()
    );
}

#[test]
#[should_panic(expected = "already lives")]
fn add_node_at_taken_address_panics() {
    let mut sim: Sim<TestNode> = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode::default());
    sim.add_node_at(a, TestNode::default());
}

#[test]
fn boxed_nodes_mix_types() {
    let mut sim: Sim<Box<dyn SimNode>> = Sim::new(SimConfig::default());
    let a = sim.add_node(Box::new(TestNode::echo()));
    let b = sim.add_node(Box::new(StaleNode::default()));
    assert_eq!(sim.addrs(), vec![a, b]);
    sim.run_for(ms(10));
    assert_eq!(sim.stats().timeouts, 1);
}

// --------------------------------------------------------------- latency

#[test]
fn latency_is_applied_exactly() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        latency: ms(7),
        ..SimConfig::default()
    });
    sim.run_for(ms(3));
    sim.node_mut(a).send(b, b"ping1");
    sim.run_for(ms(100));
    assert_eq!(
        sim.node(b).received,
        vec![(at_ms(10), a, b"ping1".to_vec())]
    );
    assert_eq!(
        sim.node(a).received,
        vec![(at_ms(17), b, b"pong1".to_vec())]
    );
    assert_eq!(sim.stats().sent, 2);
    assert_eq!(sim.stats().delivered, 2);
    assert_accounted(&sim);
}

#[test]
fn jitter_stays_within_bounds() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        seed: 9,
        latency: ms(5),
        jitter: ms(3),
        ..SimConfig::default()
    });
    for _ in 0..500 {
        sim.node_mut(a).send(b, b"x");
    }
    sim.run_for(ms(100));
    let times: Vec<Instant> = sim.node(b).received.iter().map(|r| r.0).collect();
    assert_eq!(times.len(), 500);
    assert!(times.iter().all(|&t| t >= at_ms(5) && t < at_ms(8)));
    let distinct: std::collections::BTreeSet<_> = times.iter().collect();
    assert!(distinct.len() > 100);
    // Arrivals are handled in time order.
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn link_latency_override() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode::default());
    let b = sim.add_node(TestNode::default());
    let c = sim.add_node(TestNode::default());
    sim.set_link_latency(b, a, ms(50));
    sim.node_mut(a).send(b, b"slow");
    sim.node_mut(a).send(c, b"fast");
    sim.run_for(ms(100));
    assert_eq!(sim.node(b).received[0].0, at_ms(50));
    assert_eq!(sim.node(c).received[0].0, at_ms(5));
    sim.clear_link(a, b);
    sim.node_mut(b).send(a, b"back");
    sim.run_for(ms(100));
    assert_eq!(sim.node(a).received[0].0, at_ms(105));
}

// ---------------------------------------------------------- loss, dup, reorder

#[test]
fn loss_rate_is_approximately_configured() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        seed: 11,
        loss: 0.3,
        ..SimConfig::default()
    });
    let n = 10_000;
    for _ in 0..n {
        sim.node_mut(a).send(b, b"x");
    }
    sim.run_for(ms(100));
    let lost = sim.stats().lost;
    assert!((2_700..3_300).contains(&lost), "lost {lost}");
    assert_eq!(sim.node(b).received.len() as u64, n - lost);
    assert_accounted(&sim);
}

#[test]
fn link_loss_override_is_per_link() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode::default());
    let b = sim.add_node(TestNode::default());
    let c = sim.add_node(TestNode::default());
    sim.set_link_loss(b, a, 1.0);
    for _ in 0..100 {
        sim.node_mut(a).send(b, b"x");
        sim.node_mut(a).send(c, b"x");
        sim.node_mut(b).send(a, b"x");
    }
    sim.run_for(ms(10));
    assert!(sim.node(b).received.is_empty());
    assert!(sim.node(a).received.is_empty());
    assert_eq!(sim.node(c).received.len(), 100);
    assert_eq!(sim.stats().lost, 200);
    // Out-of-range link loss is clamped.
    sim.set_link_loss(a, b, -3.0);
    sim.node_mut(a).send(b, b"x");
    sim.run_for(ms(10));
    assert_eq!(sim.node(b).received.len(), 1);
    assert_accounted(&sim);
}

#[test]
fn duplication_delivers_extra_copies() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        seed: 12,
        duplicate: 0.25,
        jitter: ms(2),
        ..SimConfig::default()
    });
    let n = 4_000u32;
    for i in 0..n {
        sim.node_mut(a).send(b, &i.to_le_bytes());
    }
    sim.run_for(ms(100));
    let dup = sim.stats().duplicated;
    assert!((800..1_200).contains(&dup), "duplicated {dup}");
    assert_eq!(sim.node(b).received.len() as u64, u64::from(n) + dup);
    // Some payload really arrives twice.
    let mut payloads = sim.node(b).payloads();
    payloads.sort();
    assert!(payloads.windows(2).any(|w| w[0] == w[1]));
    assert_accounted(&sim);
}

#[test]
fn reordering_happens_only_when_configured() {
    fn arrival_order(reorder: f64) -> (Vec<u32>, u64) {
        let (mut sim, a, b) = two_nodes(SimConfig {
            seed: 13,
            reorder,
            ..SimConfig::default()
        });
        for i in 0..200u32 {
            sim.node_mut(a).send(b, &i.to_le_bytes());
        }
        sim.run_for(ms(100));
        let order = sim
            .node(b)
            .payloads()
            .iter()
            .map(|p| u32::from_le_bytes(p[..4].try_into().unwrap()))
            .collect();
        (order, sim.stats().reordered)
    }
    let (calm, reordered) = arrival_order(0.0);
    assert_eq!(calm, (0..200).collect::<Vec<_>>());
    assert_eq!(reordered, 0);
    let (shaken, reordered) = arrival_order(0.3);
    assert_eq!(shaken.len(), 200);
    assert!(shaken.windows(2).any(|w| w[0] > w[1]), "no reordering");
    assert!((30..90).contains(&reordered), "reordered {reordered}");
}

// ------------------------------------------------------------ determinism

type Received = Vec<(Instant, SocketAddr, Vec<u8>)>;

fn chaotic_trace(seed: u64) -> (Vec<Delivery>, SimStats, Vec<Received>) {
    let mut sim = Sim::new(SimConfig {
        seed,
        latency: ms(4),
        jitter: ms(3),
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.2,
        reorder_delay: ms(10),
        mtu: 1500,
        ..SimConfig::default()
    });
    sim.set_recording(true);
    let addrs: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 40000 + i)))
        .collect();
    for (i, &addr) in addrs.iter().enumerate() {
        let peers = addrs.iter().copied().filter(|&p| p != addr).collect();
        let added = sim.add_node(TestNode::pinger(ms(3 + i as u64), peers));
        assert_eq!(added, addr);
    }
    sim.run_for(ms(150));
    let received = sim.iter().map(|(_, n)| n.received.clone()).collect();
    assert_accounted(&sim);
    (sim.take_deliveries(), sim.stats().clone(), received)
}

#[test]
fn same_seed_gives_identical_trace() {
    let (t1, s1, r1) = chaotic_trace(77);
    let (t2, s2, r2) = chaotic_trace(77);
    assert!(t1.len() > 300, "{}", t1.len());
    assert_eq!(t1, t2);
    assert_eq!(s1, s2);
    assert_eq!(r1, r2);
    assert!(s1.lost > 0 && s1.duplicated > 0 && s1.reordered > 0);
    assert!(t1.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn different_seed_gives_different_trace() {
    let (t1, _, _) = chaotic_trace(77);
    let (t2, _, _) = chaotic_trace(78);
    assert_ne!(t1, t2);
}

#[test]
fn recording_can_be_toggled() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"one");
    sim.run_for(ms(10));
    assert!(sim.deliveries().is_empty());
    sim.set_recording(true);
    sim.node_mut(a).send(b, b"two");
    sim.run_for(ms(10));
    assert_eq!(
        sim.deliveries(),
        &[Delivery {
            at: at_ms(15),
            from: a,
            to: b,
            data: b"two".to_vec()
        }]
    );
}

// ------------------------------------------------------------------- drops

#[test]
fn mtu_drops_oversized_datagrams() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        mtu: 100,
        ..SimConfig::default()
    });
    sim.node_mut(a).send(b, &[0; 100]);
    sim.node_mut(a).send(b, &[1; 101]);
    sim.run_for(ms(10));
    assert_eq!(sim.node(b).payloads(), vec![vec![0; 100]]);
    assert_eq!(sim.stats().dropped_mtu, 1);
    assert_eq!(sim.stats().delivered, 1);
    assert_accounted(&sim);
}

#[test]
fn datagrams_to_unknown_address_are_counted() {
    let (mut sim, a, _) = two_nodes(SimConfig::default());
    sim.node_mut(a)
        .send("10.0.0.1:9".parse().unwrap(), b"anyone?");
    sim.run_for(ms(10));
    assert_eq!(sim.stats().to_unknown_address, 1);
    assert_eq!(sim.stats().delivered, 0);
    assert_accounted(&sim);
}

#[test]
fn partition_blocks_until_heal() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode::default());
    let b = sim.add_node(TestNode::default());
    let c = sim.add_node(TestNode::default());
    sim.partition(&[a], &[b, c]);
    sim.node_mut(a).send(b, b"1");
    sim.node_mut(b).send(a, b"2");
    sim.node_mut(b).send(c, b"3");
    sim.run_for(ms(10));
    assert!(sim.node(a).received.is_empty());
    assert!(sim.node(b).received.is_empty());
    assert_eq!(sim.node(c).payloads(), vec![b"3".to_vec()]);
    assert_eq!(sim.stats().dropped_partition, 2);

    sim.heal();
    sim.node_mut(a).send(b, b"4");
    sim.node_mut(b).send(a, b"5");
    sim.run_for(ms(10));
    assert_eq!(sim.node(b).payloads(), vec![b"4".to_vec()]);
    assert_eq!(sim.node(a).payloads(), vec![b"5".to_vec()]);

    sim.isolate(c);
    sim.node_mut(a).send(c, b"6");
    sim.node_mut(a).send(b, b"7");
    sim.run_for(ms(10));
    assert_eq!(sim.node(c).received.len(), 1);
    assert_eq!(sim.node(b).received.len(), 2);
    assert_accounted(&sim);
}

#[test]
fn partition_drops_datagrams_in_flight() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"doomed");
    sim.run_for(ms(1));
    assert_eq!(sim.in_flight(), 1);
    sim.partition(&[b], &[a]);
    sim.run_for(ms(10));
    assert!(sim.node(b).received.is_empty());
    assert_eq!(sim.stats().dropped_partition, 1);
    assert_accounted(&sim);
}

// ------------------------------------------------------------------ crashes

#[test]
fn crash_stops_delivery_and_polling() {
    let mut sim = Sim::new(SimConfig::default());
    let b_addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let a = sim.add_node(TestNode::pinger(ms(3), vec![b_addr]));
    let b = sim.add_node(TestNode::echo());
    assert_eq!(b, b_addr);
    sim.run_for(ms(20));
    assert!(!sim.node(b).received.is_empty());
    assert!(!sim.node(a).received.is_empty());

    sim.crash(b);
    assert!(sim.is_crashed(b));
    let polls = sim.node(b).polls;
    let got = sim.node(b).received.len();
    let pongs_at_crash = sim.node(a).received.len();
    sim.run_for(ms(50));
    assert_eq!(sim.node(b).polls, polls, "crashed node was polled");
    assert_eq!(sim.node(b).received.len(), got);
    assert!(sim.stats().dropped_crashed >= 15);
    // At most the pongs already on the wire still reach `a`.
    assert!(sim.node(a).received.len() <= pongs_at_crash + 2);
    let last_pong = sim.node(a).received.last().unwrap().0;
    assert!(last_pong <= at_ms(20) + ms(5));
    assert_accounted(&sim);
}

#[test]
fn restart_brings_fresh_node() {
    let mut sim = Sim::new(SimConfig::default());
    let b_addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let a = sim.add_node(TestNode::pinger(ms(3), vec![b_addr]));
    let b = sim.add_node(TestNode::echo());
    sim.run_for(ms(20));
    sim.crash(b);
    sim.run_for(ms(20));
    let pongs_before = sim.node(a).received.len();

    sim.restart(b, TestNode::echo());
    assert!(!sim.is_crashed(b));
    assert!(sim.node(b).received.is_empty());
    sim.run_for(ms(20));
    let got = &sim.node(b).received;
    assert!(!got.is_empty());
    assert!(got.iter().all(|r| r.0 > at_ms(40)));
    assert!(sim.node(a).received.len() > pongs_before);

    // Restarting a live node loses what is in flight to it.
    sim.node_mut(a).send(b, b"lost in restart");
    sim.run_for(ms(1));
    let dropped = sim.stats().dropped_crashed;
    sim.restart(b, TestNode::echo());
    assert!(sim.stats().dropped_crashed > dropped);
    sim.run_for(ms(10));
    assert!(!sim
        .node(b)
        .payloads()
        .contains(&b"lost in restart".to_vec()));
    assert_accounted(&sim);
}

#[test]
fn datagrams_in_flight_at_crash_are_lost_but_later_ones_reach_the_restarted_node() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"before crash");
    sim.run_for(ms(1));
    sim.crash(b);
    assert_eq!(sim.stats().dropped_crashed, 1);
    assert_eq!(sim.in_flight(), 0);
    sim.node_mut(a).send(b, b"while crashed");
    sim.run_for(ms(1));
    sim.restart(b, TestNode::default());
    sim.run_for(ms(10));
    assert_eq!(
        sim.node(b).received,
        vec![(at_ms(6), a, b"while crashed".to_vec())]
    );
    assert_accounted(&sim);
}

#[test]
fn crashed_node_drops_arrivals() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.crash(b);
    sim.node_mut(a).send(b, b"x");
    sim.run_for(ms(10));
    assert_eq!(sim.stats().dropped_crashed, 1);
    assert!(sim.node(b).received.is_empty());
    // Crashing twice is harmless.
    sim.crash(b);
    assert!(sim.is_crashed(b));
    assert_accounted(&sim);
}

// ----------------------------------------------------------------- running

#[test]
fn step_returns_false_when_idle() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    assert!(!sim.step());
    assert_eq!(sim.now(), Instant::ZERO);
    // Transmits queued between steps are drained by the next step.
    sim.node_mut(a).send(b, b"ping");
    assert!(sim.step());
    assert_eq!(sim.now(), at_ms(5));
    assert_eq!(sim.node(b).received.len(), 1);
    assert!(sim.step());
    assert_eq!(sim.now(), at_ms(10));
    assert_eq!(sim.node(a).received.len(), 1);
    assert!(!sim.step());
    assert_eq!(sim.now(), at_ms(10));
}

#[test]
fn run_until_handles_events_up_to_and_including_deadline() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"ping");
    sim.run_until(at_ms(4));
    assert_eq!(sim.now(), at_ms(4));
    assert!(sim.node(b).received.is_empty());
    sim.run_until(at_ms(5));
    assert_eq!(sim.now(), at_ms(5));
    assert_eq!(sim.node(b).received.len(), 1);
    // The reply is not due yet.
    assert!(sim.node(a).received.is_empty());
    // The clock never goes backwards.
    sim.run_until(at_ms(2));
    assert_eq!(sim.now(), at_ms(5));
    sim.run_for(ms(5));
    assert_eq!(sim.now(), at_ms(10));
    assert_eq!(sim.node(a).received.len(), 1);
    sim.run_for(ms(7));
    assert_eq!(sim.now(), at_ms(17));
    assert_eq!(sim.next_event_time(), None);
}

#[test]
fn run_until_cond_stops_when_true_or_at_max() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"ping");
    let ok = sim.run_until_cond(ms(100), |s| !s.node(a).received.is_empty());
    assert!(ok);
    assert_eq!(sim.now(), at_ms(10));

    let mut checks = 0;
    let ok = sim.run_until_cond(ms(30), |s| {
        checks += 1;
        s.node(b).received.len() > 1
    });
    assert!(!ok);
    assert_eq!(sim.now(), at_ms(40));
    assert_eq!(checks, 2, "checked before the first step and at the end");

    // Already true: no step at all.
    sim.node_mut(a).send(b, b"x");
    assert!(sim.run_until_cond(ms(30), |_| true));
    assert_eq!(sim.now(), at_ms(40));
}

#[test]
fn run_until_idle_reports_quiescence() {
    let (mut sim, a, b) = two_nodes(SimConfig::default());
    sim.node_mut(a).send(b, b"ping");
    assert!(sim.run_until_idle(ms(100)));
    assert_eq!(sim.now(), at_ms(10));

    let mut busy = Sim::new(SimConfig::default());
    let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    busy.add_node(TestNode::pinger(ms(3), vec![peer]));
    busy.add_node(TestNode::echo());
    assert!(!busy.run_until_idle(ms(50)));
    assert_eq!(busy.now(), at_ms(50));
}

#[test]
fn timeouts_fire_at_the_right_time() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode {
        timers: vec![at_ms(10), at_ms(3), at_ms(10)],
        ..TestNode::default()
    });
    sim.run_for(ms(5));
    assert_eq!(sim.node(a).fired, vec![at_ms(3)]);
    sim.node_mut(a).timers.push(at_ms(7));
    // A timer already in the past fires at the current time.
    sim.node_mut(a).timers.push(at_ms(1));
    sim.run_for(ms(20));
    assert_eq!(
        sim.node(a).fired,
        vec![at_ms(3), at_ms(5), at_ms(7), at_ms(10)]
    );
    assert_eq!(sim.stats().timeouts, 4);
    assert_eq!(sim.now(), at_ms(25));
}

#[test]
fn periodic_timer_drives_pings() {
    let mut sim = Sim::new(SimConfig::default());
    let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let a = sim.add_node(TestNode::pinger(ms(4), vec![peer]));
    let b = sim.add_node(TestNode::echo());
    sim.run_for(ms(21));
    assert_eq!(
        sim.node(a).fired,
        vec![
            at_ms(0),
            at_ms(4),
            at_ms(8),
            at_ms(12),
            at_ms(16),
            at_ms(20)
        ]
    );
    let arrivals: Vec<Instant> = sim.node(b).received.iter().map(|r| r.0).collect();
    assert_eq!(
        arrivals,
        vec![at_ms(5), at_ms(9), at_ms(13), at_ms(17), at_ms(21)]
    );
    // Still on the wire: the ping sent at 20 ms and the pongs sent at 17 and
    // 21 ms (an arrival at the deadline is handled and its answer sent).
    assert_eq!(sim.in_flight(), 3);
}

#[test]
fn expired_timeout_is_handled_without_hanging() {
    let mut sim: Sim<StaleNode> = Sim::new(SimConfig::default());
    let a = sim.add_node(StaleNode::default());
    assert!(sim.step());
    assert_eq!(sim.node(a).timeouts, vec![Instant::ZERO]);
    // Still claims a past timeout, but was just woken at this instant.
    assert!(!sim.step());
    sim.run_for(ms(10));
    assert_eq!(sim.now(), at_ms(10));
    sim.run_for(ms(10));
    // Woken at most once per distinct clock value.
    assert_eq!(sim.node(a).timeouts, vec![Instant::ZERO, at_ms(10)]);
    assert_eq!(sim.now(), at_ms(20));
}

#[test]
fn simultaneous_events_are_ordered_deterministically() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node(TestNode::default());
    let b = sim.add_node(TestNode {
        timers: vec![at_ms(5)],
        ..TestNode::default()
    });
    let c = sim.add_node(TestNode::default());
    sim.set_recording(true);
    sim.node_mut(c).send(b, b"from c");
    sim.node_mut(a).send(b, b"from a");
    sim.run_for(ms(10));
    // Arrivals in send order (nodes drained in insertion order), before the
    // timeout due at the same instant.
    assert_eq!(
        sim.node(b).payloads(),
        vec![b"from a".to_vec(), b"from c".to_vec()]
    );
    assert_eq!(sim.node(b).fired, vec![at_ms(5)]);
    assert_eq!(sim.stats().timeouts, 1);
    assert_eq!(sim.deliveries().len(), 2);
}

// ------------------------------------------------------------ configuration

#[test]
fn probabilities_are_clamped_or_rejected() {
    let bad = SimConfig {
        loss: 5.0,
        duplicate: f64::NAN,
        reorder: -1.0,
        ..SimConfig::default()
    };
    assert_eq!(
        bad.validate(),
        Err(SimConfigError::Probability {
            field: "loss",
            value: 5.0
        })
    );
    assert!(Sim::<TestNode>::try_new(bad.clone()).is_err());
    assert!(SimConfig {
        duplicate: f64::NAN,
        ..SimConfig::default()
    }
    .validate()
    .is_err());
    assert!(SimConfig::seeded(3).validate().is_ok());

    let (mut sim, a, b) = two_nodes(bad);
    assert_eq!(sim.config().loss, 1.0);
    assert_eq!(sim.config().duplicate, 0.0);
    assert_eq!(sim.config().reorder, 0.0);
    sim.node_mut(a).send(b, b"x");
    sim.run_for(ms(10));
    assert_eq!(sim.stats().lost, 1);

    sim.set_config(SimConfig {
        loss: -0.5,
        seed: 999,
        ..SimConfig::default()
    });
    assert_eq!(sim.config().loss, 0.0);
    assert_eq!(sim.config().seed, 0);
    sim.node_mut(a).send(b, b"y");
    sim.run_for(ms(10));
    assert_eq!(sim.node(b).received.len(), 1);
}

#[test]
fn huge_durations_saturate() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        latency: Duration::MAX,
        jitter: Duration::MAX,
        reorder: 1.0,
        reorder_delay: Duration::MAX,
        ..SimConfig::default()
    });
    sim.node_mut(a).send(b, b"x");
    sim.run_for(ms(10));
    assert_eq!(sim.in_flight(), 1);
    assert_eq!(sim.next_event_time(), Some(Instant::from_micros(u64::MAX)));
}

// ------------------------------------------------------- bandwidth and queue

#[test]
fn a_link_with_a_bandwidth_serializes_datagrams_one_after_the_other() {
    let (mut sim, a, b) = two_nodes(SimConfig::seeded(1));
    // 100 KB/s: 1000 bytes take 10 ms on the link, then 5 ms of latency.
    sim.set_link_bandwidth(a, b, 100_000, 64 << 10);
    for _ in 0..5 {
        sim.node_mut(a).send(b, &[7u8; 1000]);
    }
    sim.run_for(ms(1));
    assert_eq!(sim.queued_bytes(a, b), 4900);
    assert_eq!(sim.queued_bytes(b, a), 0);
    sim.run_for(ms(100));
    let times: Vec<Instant> = sim.node(b).received.iter().map(|r| r.0).collect();
    assert_eq!(
        times,
        vec![at_ms(15), at_ms(25), at_ms(35), at_ms(45), at_ms(55)]
    );
    assert_eq!(sim.stats().dropped_queue, 0);
    assert_eq!(sim.stats().max_queue_bytes, 5000);
    // A datagram sent once the link is idle again waits for nobody.
    let now = sim.now();
    sim.node_mut(a).send(b, &[8u8; 1000]);
    sim.run_for(ms(100));
    assert_eq!(sim.node(b).received.last().unwrap().0, now + ms(15));
}

#[test]
fn a_full_queue_drops_the_tail_and_each_direction_has_its_own() {
    let (mut sim, a, b) = two_nodes(SimConfig::seeded(2));
    sim.set_link_bandwidth(a, b, 100_000, 3000);
    for i in 0..10u8 {
        sim.node_mut(a).send(b, &[i; 1000]);
        sim.node_mut(b).send(a, &[i; 500]);
    }
    sim.run_for(ms(200));
    // Three datagrams of 1000 bytes fit in 3000; the rest are dropped.
    let got: Vec<u8> = sim.node(b).received.iter().map(|r| r.2[0]).collect();
    assert_eq!(got, vec![0, 1, 2]);
    // The other direction holds six of 500 bytes.
    let pongs = sim
        .node(a)
        .received
        .iter()
        .filter(|r| r.2.len() == 500)
        .count();
    assert_eq!(pongs, 6);
    assert_eq!(sim.stats().dropped_queue, 7 + 4);
    assert!(sim.stats().max_queue_bytes <= 3000);
}

#[test]
fn the_configured_bandwidth_applies_to_every_link() {
    let (mut sim, a, b) = two_nodes(SimConfig {
        bandwidth: Some(1_000_000),
        queue_bytes: 10_000,
        ..SimConfig::seeded(3)
    });
    for _ in 0..3 {
        sim.node_mut(a).send(b, &[1u8; 1000]);
    }
    sim.run_for(ms(50));
    let times: Vec<Instant> = sim.node(b).received.iter().map(|r| r.0).collect();
    assert_eq!(times, vec![at_ms(6), at_ms(7), at_ms(8)]);
}
