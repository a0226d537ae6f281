//! Congestion control on a thin path: a bulk transfer over a simulated link
//! of 100 KB/s with 5% loss, in virtual time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use netz_core::sim::{Sim, SimConfig, SimNode};
use netz_core::transport::{Link, PacketHeader, PacketKind, TransportConfig};
use netz_core::{Instant, Transmit};

/// One end of a link: the sender keeps its queue full, the receiver counts.
struct End {
    link: Link,
    peer: SocketAddr,
    header: PacketHeader,
    /// Keep at least this many bytes queued (0: a receiver).
    backlog: usize,
    message: usize,
    delivered_bytes: u64,
}

impl End {
    fn new(config: &Arc<TransportConfig>, peer: SocketAddr, me: u32, backlog: usize) -> End {
        End {
            link: Link::new(config.clone(), Instant::ZERO),
            peer,
            header: PacketHeader {
                kind: PacketKind::Link,
                session: 1,
                sender: me,
                receiver: 3 - me,
            },
            backlog,
            message: 1000,
            delivered_bytes: 0,
        }
    }
}

impl SimNode for End {
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &[u8]) {
        let Ok((_, payload)) = PacketHeader::decode(data) else {
            return;
        };
        let _ = self.link.handle_packet(now, payload);
        while let Some(d) = self.link.poll_message() {
            self.delivered_bytes += d.data.len() as u64;
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        while self.link.queued_bytes() < self.backlog {
            self.link
                .send_reliable(0, &vec![0x5a; self.message])
                .unwrap();
        }
        if !self.link.may_send(now) {
            return None;
        }
        let mut buf = Vec::new();
        self.header.encode(&mut buf);
        if !self.link.poll_packet(now, &mut buf) {
            return None;
        }
        Some(Transmit {
            destination: self.peer,
            contents: buf,
        })
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.link.poll_timeout()
    }
}

const RATE: u64 = 100_000;
const QUEUE: usize = 32 << 10;

#[derive(Debug)]
struct Figures {
    goodput: f64,
    retransmissions: u64,
    packets_sent: u64,
    congestion_events: u64,
    mean_cwnd: f64,
    max_cwnd: u64,
    max_bytes_in_flight: u64,
    max_retransmit_backlog: u64,
    max_sim_queue: u64,
    dropped_queue: u64,
    lost: u64,
}

fn bulk(seed: u64, secs: u64, config: TransportConfig) -> Figures {
    let config = Arc::new(config);
    let mut sim: Sim<End> = Sim::new(SimConfig {
        loss: 0.05,
        ..SimConfig::seeded(seed)
    });
    let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    sim.add_node_at(a, End::new(&config, b, 1, 64 << 10));
    sim.add_node_at(b, End::new(&config, a, 2, 0));
    sim.set_link_bandwidth(a, b, RATE, QUEUE);
    let mut cwnd_sum = 0u64;
    let mut samples = 0u64;
    let mut figures = Figures {
        goodput: 0.0,
        retransmissions: 0,
        packets_sent: 0,
        congestion_events: 0,
        mean_cwnd: 0.0,
        max_cwnd: 0,
        max_bytes_in_flight: 0,
        max_retransmit_backlog: 0,
        max_sim_queue: 0,
        dropped_queue: 0,
        lost: 0,
    };
    // The first second is the start; the figures are of the rest.
    sim.run_for(Duration::from_secs(1));
    let start_bytes = sim.node(b).delivered_bytes;
    for _ in 0..secs * 100 {
        sim.run_for(Duration::from_millis(10));
        let s = sim.node(a).link.stats();
        cwnd_sum += s.cwnd;
        samples += 1;
        figures.max_cwnd = figures.max_cwnd.max(s.cwnd);
        figures.max_bytes_in_flight = figures.max_bytes_in_flight.max(s.bytes_in_flight);
        figures.max_retransmit_backlog = figures.max_retransmit_backlog.max(s.retransmit_backlog);
        figures.max_sim_queue = figures.max_sim_queue.max(sim.queued_bytes(a, b));
    }
    let s = sim.node(a).link.stats();
    let delivered = sim.node(b).delivered_bytes - start_bytes;
    figures.goodput = delivered as f64 / (RATE * secs) as f64;
    figures.retransmissions = s.retransmissions;
    figures.packets_sent = s.packets_sent;
    figures.congestion_events = s.congestion_events;
    figures.mean_cwnd = cwnd_sum as f64 / samples as f64;
    figures.dropped_queue = sim.stats().dropped_queue;
    figures.lost = sim.stats().lost;
    figures
}

#[test]
fn a_thin_lossy_link_carries_a_bulk_transfer_near_its_capacity() {
    for seed in [1, 2, 3] {
        let f = bulk(seed, 30, TransportConfig::default());
        println!("seed {seed}: {f:?}");
        assert!(
            f.goodput >= 0.70,
            "goodput {:.1}%: {f:?}",
            f.goodput * 100.0
        );
        // Bounded: the link's data in flight and backlog, and the queue.
        assert!(f.max_bytes_in_flight <= 64 << 10, "{f:?}");
        assert!(f.max_retransmit_backlog <= 64, "{f:?}");
        assert!(f.max_sim_queue <= QUEUE as u64);
        assert!(f.congestion_events > 0);
        // The window tracks the path instead of filling the send window.
        assert!(f.mean_cwnd < (QUEUE as f64) * 2.0, "{f:?}");
    }
}

#[test]
fn without_congestion_control_the_same_link_is_flooded() {
    let f = bulk(
        1,
        10,
        TransportConfig {
            congestion_control: false,
            ..TransportConfig::default()
        },
    );
    println!("without congestion control: {f:?}");
    let with = bulk(1, 10, TransportConfig::default());
    println!("with congestion control: {with:?}");
    // The queue overflows far more often without a window.
    assert!(
        f.dropped_queue > with.dropped_queue * 2,
        "{f:?} vs {with:?}"
    );
}
