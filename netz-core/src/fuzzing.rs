//! Entry points for fuzzing: the `cargo fuzz` targets in `fuzz/` and the
//! property tests in `netz-core/tests/fuzz_props.rs` both call these, so
//! that a crash found by one is reproduced by the other.
//!
//! Each function takes arbitrary bytes and must never panic, hang or grow
//! memory without bound, whatever the bytes are.

use crate::cluster::Cluster;
use crate::ids::ProcessType;
use crate::session::StationConfig;
use crate::sim::SimConfig;
use crate::transport::{Link, PacketHeader, PacketKind, TransportConfig};
use crate::wire::{Envelope, Msg};
use crate::{Instant, Registry};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Decodes `data` as every kind of datagram netz parses: the packet
/// header, link frames (fed to a fresh link), a connectionless message and
/// an envelope.
pub fn decode_datagram(data: &[u8]) {
    if let Ok((header, payload)) = PacketHeader::decode(data) {
        assert!(header.encoded_len() <= data.len());
        match header.kind {
            PacketKind::Link => {
                let now = Instant::from_millis(1);
                let mut link = Link::new(Arc::new(TransportConfig::default()), now);
                if link.handle_packet(now, payload).is_ok() {
                    while let Some(d) = link.poll_message() {
                        let _ = Envelope::decode(&d.data);
                    }
                    let mut buf = Vec::new();
                    let _ = link.poll_packet(now, &mut buf);
                }
            }
            _ => {
                let _ = postcard::from_bytes::<Msg>(payload);
            }
        }
    }
    if let Some(env) = Envelope::decode(data) {
        // What decodes re-encodes.
        let again = env.encode();
        assert!(Envelope::decode(&again).is_some());
    }
}

/// Real traffic of a small session, captured once, used as seeds to mutate.
fn traffic() -> &'static Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    static TRAFFIC: OnceLock<Vec<(SocketAddr, SocketAddr, Vec<u8>)>> = OnceLock::new();
    TRAFFIC.get_or_init(|| {
        let mut c = session();
        c.sim.set_recording(true);
        let joiner = StationConfig::new(ProcessType::Client, "late");
        let _ = c.join(joiner, 0);
        c.run_for(Duration::from_millis(300));
        c.sim
            .take_deliveries()
            .into_iter()
            .map(|d| (d.from, d.to, d.data))
            .collect()
    })
}

fn session() -> Cluster {
    let registry = Arc::new(Registry::new());
    let configs = vec![
        StationConfig::new(ProcessType::Server, "server"),
        StationConfig::new(ProcessType::Client, "client"),
    ];
    match Cluster::start(SimConfig::seeded(7), registry, configs) {
        Ok(c) => c,
        Err(e) => panic!("the fuzzing session must start: {e}"),
    }
}

/// A small reader over the fuzzer's bytes; reads past the end give zeros.
struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head.to_vec()
    }
}

/// Runs a session of two stations (a server, the session master, and a
/// client) and feeds the server and the client a sequence of datagrams and
/// timeouts read from `data`: raw bytes, mutated and replayed real traffic,
/// valid headers with garbage, datagrams from strangers, join requests, and
/// time passing. Stations may leave the session (forged messages in clear can
/// do that) but must never panic.
pub fn station_sequence(data: &[u8]) {
    let real = traffic();
    let mut c = session();
    let member = c.addrs[1];
    let server = c.addrs[0];
    let mut input = Input { bytes: data };
    let mut steps = 0;
    while !input.bytes.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let target = if op & 0x80 == 0 { 0 } else { 1 };
        let from = match (op >> 4) & 0x3 {
            0 => {
                if target == 0 {
                    member
                } else {
                    server
                }
            }
            1 => SocketAddr::from(([127, 0, 0, 1], 9000 + u16::from(input.u8() & 7))),
            2 => SocketAddr::from(([10, 0, 0, input.u8()], input.u16())),
            _ => c.addrs[usize::from(input.u8() & 1)],
        };
        let datagram = match op & 0x0F {
            0 => {
                let len = usize::from(input.u8()) * 5;
                input.take(len)
            }
            1 | 2 if !real.is_empty() => {
                let (_, _, bytes) = &real[usize::from(input.u16()) % real.len()];
                let mut bytes = bytes.clone();
                let flips = input.u8() % 4;
                for _ in 0..flips {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = usize::from(input.u16()) % bytes.len();
                    bytes[at] ^= 1 << (input.u8() % 8);
                }
                if op & 0x0F == 2 {
                    let cut = usize::from(input.u16()) % (bytes.len() + 1);
                    bytes.truncate(cut);
                }
                bytes
            }
            3 => {
                let mut b = Vec::new();
                PacketHeader {
                    kind: if input.u8() & 1 == 0 {
                        PacketKind::Link
                    } else {
                        PacketKind::Connectionless
                    },
                    session: u32::from(input.u16()),
                    sender: u32::from(input.u8() % 4),
                    receiver: u32::from(input.u8() % 4),
                }
                .encode(&mut b);
                let len = usize::from(input.u8());
                b.extend(input.take(len));
                b
            }
            4..=7 => {
                let ms = u64::from(input.u8()) * u64::from(1 + (op & 0x0F) - 4);
                c.run_for(Duration::from_millis(ms));
                continue;
            }
            _ if !real.is_empty() => {
                // A replay of real traffic, as sent.
                let (_, _, bytes) = &real[usize::from(input.u16()) % real.len()];
                bytes.clone()
            }
            _ => continue,
        };
        let now = c.now();
        let st = c.station_mut(target);
        st.handle_datagram(now, from, &datagram);
        while st.poll_transmit(now).is_some() {}
        while st.poll_event().is_some() {}
        // The core's deadline is never in the past by more than it reports.
        let _ = st.poll_timeout();
    }
    c.run_for(Duration::from_millis(500));
    for i in 0..2 {
        let st = c.station(i);
        assert!(st.stats().datagrams_received >= st.stats().malformed_datagrams);
    }
}
