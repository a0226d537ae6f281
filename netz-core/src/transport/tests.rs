//! Deterministic tests of the transport over a simulated lossy network.

#![allow(clippy::needless_range_loop)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::Instant;

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
struct NetParams {
    loss_percent: u64,
    duplicate_percent: u64,
    delay: Duration,
    /// Extra uniformly random delay, which reorders datagrams.
    jitter: Duration,
}

impl NetParams {
    fn clean(delay_ms: u64) -> Self {
        NetParams {
            loss_percent: 0,
            duplicate_percent: 0,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
        }
    }
    fn hostile(loss_percent: u64) -> Self {
        NetParams {
            loss_percent,
            duplicate_percent: 10,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
        }
    }
}

/// (arrival time, tie breaker, destination, datagram)
type InTransit = (Instant, u64, usize, Vec<u8>);

/// Two links joined by a lossy, duplicating, reordering channel on a virtual clock.
struct Sim {
    now: Instant,
    links: [Link; 2],
    alive: [bool; 2],
    config: Arc<TransportConfig>,
    net: NetParams,
    rng: Rng,
    /// (arrival time, tie breaker, destination, datagram)
    in_transit: BinaryHeap<Reverse<InTransit>>,
    counter: u64,
    datagrams_sent: u64,
    /// Every datagram produced, when recording.
    recorded: Option<Vec<Vec<u8>>>,
}

const HEADERS: [PacketHeader; 2] = [
    PacketHeader {
        kind: PacketKind::Link,
        session: 0xABCD,
        sender: 1,
        receiver: 2,
    },
    PacketHeader {
        kind: PacketKind::Link,
        session: 0xABCD,
        sender: 2,
        receiver: 1,
    },
];

impl Sim {
    fn new(config: TransportConfig, net: NetParams, seed: u64) -> Sim {
        let config = Arc::new(config);
        Sim {
            now: Instant::ZERO,
            links: [
                Link::new(config.clone(), Instant::ZERO),
                Link::new(config.clone(), Instant::ZERO),
            ],
            alive: [true, true],
            config,
            net,
            rng: Rng(seed),
            in_transit: BinaryHeap::new(),
            counter: 0,
            datagrams_sent: 0,
            recorded: None,
        }
    }

    fn flush(&mut self) {
        for from in 0..2 {
            if !self.alive[from] {
                continue;
            }
            loop {
                let mut buf = Vec::new();
                HEADERS[from].encode(&mut buf);
                let header_len = buf.len();
                if !self.links[from].poll_packet(self.now, &mut buf) {
                    assert_eq!(
                        buf.len(),
                        header_len,
                        "buf changed although nothing was sent"
                    );
                    break;
                }
                assert!(
                    buf.len() <= self.config.max_datagram_size,
                    "datagram of {} bytes",
                    buf.len()
                );
                assert!(buf.len() > header_len);
                self.datagrams_sent += 1;
                if let Some(rec) = &mut self.recorded {
                    rec.push(buf.clone());
                }
                if self.rng.chance(self.net.loss_percent) {
                    continue;
                }
                let copies = if self.rng.chance(self.net.duplicate_percent) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let jitter = self.rng.below(self.net.jitter.as_micros() as u64 + 1);
                    let at = self.now + self.net.delay + Duration::from_micros(jitter);
                    self.counter += 1;
                    self.in_transit
                        .push(Reverse((at, self.counter, 1 - from, buf.clone())));
                }
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut t = self.in_transit.peek().map(|Reverse((at, ..))| *at);
        for i in 0..2 {
            if self.alive[i] {
                if let Some(timeout) = self.links[i].poll_timeout() {
                    t = Some(t.map_or(timeout, |t| t.min(timeout)));
                }
            }
        }
        t
    }

    /// Advance to the next event (not beyond `limit`) and process it.
    fn step(&mut self, limit: Instant) {
        self.flush();
        let next = self.next_event().unwrap_or(limit).min(limit);
        assert!(next >= self.now);
        self.now = next;
        while self
            .in_transit
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= self.now)
        {
            let Reverse((_, _, to, datagram)) = self.in_transit.pop().unwrap();
            if !self.alive[to] {
                continue;
            }
            let (header, payload) = PacketHeader::decode(&datagram).unwrap();
            assert_eq!(header, HEADERS[1 - to]);
            match self.links[to].handle_packet(self.now, payload) {
                Ok(()) | Err(PacketError::ReassemblyLimit) => {}
                Err(e) => panic!("genuine packet rejected: {e}"),
            }
        }
        for i in 0..2 {
            if self.alive[i] && self.links[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.links[i].handle_timeout(self.now);
            }
        }
        self.flush();
    }

    fn run_until(&mut self, until: Instant) {
        let mut steps = 0u64;
        while self.now < until {
            self.step(until);
            steps += 1;
            assert!(steps < 10_000_000, "simulation does not advance");
        }
    }

    fn run_until_idle(&mut self, deadline: Instant) {
        while !(self.links[0].is_idle() && self.links[1].is_idle()) {
            assert!(
                self.now < deadline,
                "links still busy at {:?}\n{}\n{}\n{:?}\n{:?}",
                self.now,
                self.links[0].debug_state(),
                self.links[1].debug_state(),
                self.links[0].stats(),
                self.links[1].stats()
            );
            self.step(deadline);
        }
    }

    fn drain(&mut self, side: usize) -> Vec<Delivered> {
        std::iter::from_fn(|| self.links[side].poll_message()).collect()
    }
}

/// A recognisable message: sub-stream, index, then a pattern.
fn message(tag: u8, index: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len.max(5));
    m.push(tag);
    m.extend_from_slice(&index.to_le_bytes());
    let mut x = index.wrapping_mul(2_654_435_761) ^ u32::from(tag);
    while m.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        m.push(x as u8);
    }
    m
}

fn message_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0 => 5_000,
        1..=40 => 5 + rng.below(20) as usize,
        _ => 5 + rng.below(300) as usize,
    }
}

/// Sends ticks of reliable traffic in both directions and checks exactly-once in-order delivery.
fn reliable_roundtrip(net: NetParams, seed: u64, ticks: u32, per_tick: u32) -> Sim {
    let mut sim = Sim::new(TransportConfig::default(), net, seed);
    let substreams = sim.config.substreams;
    let mut sent: [Vec<Vec<Vec<u8>>>; 2] =
        std::array::from_fn(|_| vec![Vec::new(); substreams as usize]);
    let mut received: [Vec<Vec<Vec<u8>>>; 2] =
        std::array::from_fn(|_| vec![Vec::new(); substreams as usize]);
    let mut rng = Rng(seed ^ 0x5555);
    let mut index = 0u32;
    for tick in 0..ticks {
        for side in 0..2 {
            for _ in 0..per_tick {
                let s = rng.below(u64::from(substreams)) as u8;
                let len = if index % 997 == 500 {
                    100_000
                } else {
                    message_len(&mut rng)
                };
                let m = message(s, index, len);
                index += 1;
                sim.links[side].send_reliable(s, &m).unwrap();
                sent[side][s as usize].push(m);
            }
        }
        sim.run_until(Instant::from_millis(u64::from(tick + 1) * 16));
        for side in 0..2 {
            for d in sim.drain(side) {
                let Channel::Reliable(s) = d.channel else {
                    panic!("unexpected channel")
                };
                received[1 - side][s as usize].push(d.data);
            }
        }
    }
    sim.run_until_idle(sim.now + Duration::from_secs(60));
    for side in 0..2 {
        for d in sim.drain(side) {
            let Channel::Reliable(s) = d.channel else {
                panic!("unexpected channel")
            };
            received[1 - side][s as usize].push(d.data);
        }
    }
    for side in 0..2 {
        for s in 0..substreams as usize {
            assert_eq!(
                sent[side][s].len(),
                received[side][s].len(),
                "side {side} sub-stream {s}: count"
            );
            assert!(
                sent[side][s] == received[side][s],
                "side {side} sub-stream {s}: content or order"
            );
        }
    }
    sim
}

#[test]
fn reliable_in_order_exactly_once_under_10_percent_loss() {
    let sim = reliable_roundtrip(NetParams::hostile(10), 1, 120, 20);
    let stats = sim.links[0].stats();
    assert!(stats.retransmissions > 0);
    assert!(stats.reliable_delivered > 2000);
}

#[test]
fn reliable_in_order_exactly_once_under_30_percent_loss() {
    let sim = reliable_roundtrip(NetParams::hostile(30), 2, 120, 20);
    for link in &sim.links {
        assert!(link.stats().duplicate_packets > 0);
        assert!(link.stats().packets_lost > 0);
    }
}

#[test]
fn reliable_on_a_clean_network_needs_no_retransmission() {
    let sim = reliable_roundtrip(NetParams::clean(10), 3, 60, 30);
    for link in &sim.links {
        assert_eq!(link.stats().retransmissions, 0);
        assert_eq!(link.stats().packets_lost, 0);
    }
}

#[test]
fn one_mebibyte_message_is_fragmented_and_reassembled() {
    let mut sim = Sim::new(TransportConfig::default(), NetParams::hostile(10), 4);
    let big = message(1, 7, 1 << 20);
    sim.links[0].send_reliable(1, &big).unwrap();
    sim.links[0].send_reliable(1, b"after").unwrap();
    sim.run_until_idle(Instant::from_secs_for_test(60));
    let got = sim.drain(1);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Delivered {
            channel: Channel::Reliable(1),
            data: big
        }
    );
    assert_eq!(got[1].data, b"after");
}

#[test]
fn send_errors() {
    let config = TransportConfig::default();
    let max = config.max_message_size;
    let mut link = Link::new(Arc::new(config), Instant::ZERO);
    assert_eq!(link.send_reliable(4, b"x"), Err(SendError::BadSubstream(4)));
    assert_eq!(
        link.send_reliable(255, b"x"),
        Err(SendError::BadSubstream(255))
    );
    let huge = vec![0u8; max + 1];
    assert_eq!(
        link.send_reliable(0, &huge),
        Err(SendError::TooLarge { size: max + 1, max })
    );
    assert_eq!(
        link.send_unreliable(&huge),
        Err(SendError::TooLarge { size: max + 1, max })
    );
    assert!(link.is_idle());
    link.send_reliable(3, &huge[..max]).unwrap();
    link.send_unreliable(&huge[..max]).unwrap();
    assert!(!link.is_idle());
}

#[test]
fn unreliable_messages_are_never_duplicated() {
    let mut net = NetParams::hostile(15);
    net.duplicate_percent = 30;
    let mut sim = Sim::new(TransportConfig::default(), net, 5);
    let count = 3000u32;
    for i in 0..count {
        let len = if i % 50 == 0 { 5_000 } else { 20 };
        sim.links[0].send_unreliable(&message(9, i, len)).unwrap();
        if i % 25 == 0 {
            sim.run_until(sim.now + Duration::from_millis(5));
        }
    }
    sim.run_until(sim.now + Duration::from_secs(1));
    let mut seen = vec![false; count as usize];
    let mut delivered = 0;
    for d in sim.drain(1) {
        assert_eq!(d.channel, Channel::Unreliable);
        let index = u32::from_le_bytes(d.data[1..5].try_into().unwrap());
        let len = if index % 50 == 0 { 5_000 } else { 20 };
        assert_eq!(d.data, message(9, index, len), "content intact");
        assert!(!seen[index as usize], "message {index} delivered twice");
        seen[index as usize] = true;
        delivered += 1;
    }
    assert!(
        delivered < count,
        "with 15% loss some messages must be lost"
    );
    assert!(delivered > count / 2, "most messages arrive: {delivered}");
    assert!(
        seen.iter().step_by(50).any(|&s| s),
        "some fragmented messages arrive"
    );
    assert!(sim.links[1].stats().duplicate_packets > 0);
}

#[test]
fn small_datagrams_are_respected() {
    let config = TransportConfig {
        max_datagram_size: 120,
        ..TransportConfig::default()
    };
    let mut sim = Sim::new(config, NetParams::hostile(10), 6);
    let mut sent = Vec::new();
    for i in 0..300u32 {
        let m = message(0, i, 5 + (i as usize * 7) % 400);
        sim.links[0].send_reliable(0, &m).unwrap();
        sim.links[0].send_unreliable(&m).unwrap();
        sent.push(m);
    }
    sim.run_until_idle(Instant::from_secs_for_test(60));
    let got: Vec<_> = sim
        .drain(1)
        .into_iter()
        .filter(|d| d.channel == Channel::Reliable(0))
        .map(|d| d.data)
        .collect();
    assert!(got == sent);
}

#[test]
fn heartbeats_keep_an_idle_link_fresh_and_silence_is_detectable() {
    let net = NetParams::clean(10);
    let mut sim = Sim::new(TransportConfig::default(), net, 7);
    let interval = sim.config.heartbeat_interval;
    let freshness = interval + net.delay + Duration::from_millis(1);
    for t in 1..=50u64 {
        sim.run_until(Instant::from_millis(t * 100));
        for link in &sim.links {
            assert!(
                sim.now - link.last_received() <= freshness,
                "stale at {:?}",
                sim.now
            );
        }
    }
    assert!(sim.links[0].stats().pings_sent >= 20);
    let rtt = sim.links[0].rtt();
    assert!(
        rtt >= Duration::from_millis(19) && rtt <= Duration::from_millis(22),
        "rtt {rtt:?}"
    );

    // The peer goes silent: its packets stop, so last_received stops moving.
    sim.alive[1] = false;
    let stopped = sim.now;
    sim.run_until(stopped + Duration::from_secs(3));
    let last = sim.links[0].last_received();
    assert!(
        last <= stopped + net.delay,
        "last_received {last:?} moved after the peer stopped"
    );
    assert!(sim.now - last >= Duration::from_millis(2900));
    // Pings continue (at least while the link lives) and the timer never spins.
    assert!(sim.links[0]
        .poll_timeout()
        .is_some_and(|t| t + Duration::from_secs(1) > sim.now));
}

#[test]
fn loss_causes_retransmission_and_rtt_converges() {
    let net = NetParams {
        loss_percent: 10,
        duplicate_percent: 0,
        delay: Duration::from_millis(25),
        jitter: Duration::ZERO,
    };
    let mut sim = Sim::new(TransportConfig::default(), net, 8);
    for i in 0..2000u32 {
        sim.links[0]
            .send_reliable((i % 4) as u8, &message(0, i, 100))
            .unwrap();
        if i % 20 == 0 {
            sim.run_until(sim.now + Duration::from_millis(10));
        }
    }
    sim.run_until_idle(sim.now + Duration::from_secs(30));
    assert_eq!(sim.drain(1).len(), 2000);
    let stats = sim.links[0].stats();
    assert!(stats.packets_lost > 0);
    assert!(stats.retransmissions > 0);
    assert!(stats.rtt_samples > 50);
    let rtt = sim.links[0].rtt();
    assert!(
        rtt >= Duration::from_millis(48) && rtt <= Duration::from_millis(56),
        "rtt {rtt:?}"
    );
}

#[test]
fn send_window_limits_unacknowledged_packets() {
    let config = TransportConfig {
        max_unacked_packets: 8,
        ..TransportConfig::default()
    };
    let mut link = Link::new(Arc::new(config), Instant::ZERO);
    for i in 0..100u32 {
        link.send_reliable(0, &message(0, i, 1000)).unwrap();
    }
    let mut packets = 0;
    loop {
        let mut buf = Vec::new();
        if !link.poll_packet(Instant::ZERO, &mut buf) {
            break;
        }
        packets += 1;
    }
    assert_eq!(packets, 8);
}

#[test]
fn small_messages_are_coalesced() {
    let mut link = Link::new(Arc::new(TransportConfig::default()), Instant::ZERO);
    for i in 0..100u32 {
        link.send_reliable((i % 4) as u8, &message(0, i, 10))
            .unwrap();
        link.send_unreliable(&message(1, i, 10)).unwrap();
    }
    let mut packets = 0;
    loop {
        let mut buf = Vec::new();
        HEADERS[0].encode(&mut buf);
        if !link.poll_packet(Instant::ZERO, &mut buf) {
            break;
        }
        packets += 1;
    }
    assert!(packets <= 3, "{packets} packets for 200 tiny messages");
}

#[test]
fn header_roundtrip_and_rejection() {
    let headers = [
        PacketHeader {
            kind: PacketKind::Link,
            session: 0,
            sender: 0,
            receiver: 0,
        },
        PacketHeader {
            kind: PacketKind::Connectionless,
            session: u32::MAX,
            sender: 300,
            receiver: 1 << 20,
        },
        PacketHeader {
            kind: PacketKind::Link,
            session: 7,
            sender: u32::MAX,
            receiver: u32::MAX,
        },
    ];
    for h in headers {
        let mut buf = Vec::new();
        h.encode(&mut buf);
        assert_eq!(buf.len(), h.encoded_len());
        assert!(buf.len() <= PacketHeader::MAX_SIZE);
        buf.extend_from_slice(b"rest");
        let (decoded, rest) = PacketHeader::decode(&buf).unwrap();
        assert_eq!(decoded, h);
        assert_eq!(rest, b"rest");
        for cut in 0..h.encoded_len() {
            assert_eq!(
                PacketHeader::decode(&buf[..cut]),
                Err(PacketError::Truncated),
                "cut at {cut}"
            );
        }
    }
    let mut buf = Vec::new();
    headers[1].encode(&mut buf);
    let mut bad = buf.clone();
    bad[0] = b'X';
    assert_eq!(PacketHeader::decode(&bad), Err(PacketError::BadMagic));
    // Other versions (older builds too) are refused.
    for other in [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
        let mut bad = buf.clone();
        bad[1] = other;
        assert_eq!(
            PacketHeader::decode(&bad),
            Err(PacketError::UnsupportedVersion(other))
        );
    }
    let mut bad = buf.clone();
    bad[2] = 9;
    assert_eq!(
        PacketHeader::decode(&bad),
        Err(PacketError::UnknownPacketKind(9))
    );
    // A session id beyond 32 bits.
    let bad = [
        MAGIC,
        PROTOCOL_VERSION,
        0,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0x7F,
        0,
        0,
    ];
    assert!(matches!(
        PacketHeader::decode(&bad),
        Err(PacketError::Malformed(_))
    ));
}

trait ForTest {
    fn from_secs_for_test(secs: u64) -> Instant;
}

impl ForTest for Instant {
    fn from_secs_for_test(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }
}

mod hostile_and_timing;
