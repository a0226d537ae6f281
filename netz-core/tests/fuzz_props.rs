//! Stable, bounded versions of the `cargo fuzz` targets in `fuzz/`: random
//! inputs from a seeded generator through the same entry points
//! (`netz_core::fuzzing`). Any input a fuzzer found crashing is kept below
//! as a regression test.
use netz_core::fuzzing::{decode_datagram, station_sequence};
use netz_core::sim::Rng;
use netz_core::transport::{PacketHeader, PacketKind};

#[test]
fn datagram_decode_never_panics() {
    let mut rng = Rng::new(0xDA7A);
    for i in 0..20_000u32 {
        let bytes = match i % 4 {
            0 => {
                let len = rng.gen_range(0..1500usize);
                rng.gen_bytes(len)
            }
            1 | 2 => {
                // A valid header, then garbage (link frames or a message).
                let mut b = Vec::new();
                PacketHeader {
                    kind: if i % 4 == 1 {
                        PacketKind::Link
                    } else {
                        PacketKind::Connectionless
                    },
                    session: rng.next_u32(),
                    sender: rng.gen_range(0..5u32),
                    receiver: rng.gen_range(0..5u32),
                }
                .encode(&mut b);
                // Small frame type bytes make valid-looking frames likely.
                let len = rng.gen_range(0..300usize);
                for _ in 0..len {
                    let v = if rng.gen_bool(0.5) {
                        rng.gen_range(0..8u32) as u8
                    } else {
                        rng.next_u32() as u8
                    };
                    b.push(v);
                }
                b
            }
            _ => {
                // Short inputs: every branch of the varint and header parsers.
                let len = rng.gen_range(0..12usize);
                rng.gen_bytes(len)
            }
        };
        decode_datagram(&bytes);
    }
}

#[test]
fn station_sequence_never_panics() {
    let mut rng = Rng::new(0x57A7);
    for _ in 0..200 {
        let len = rng.gen_range(0..2000usize);
        let data = rng.gen_bytes(len);
        station_sequence(&data);
    }
}

#[test]
fn fuzz_regressions() {
    // Inputs the fuzz targets once crashed on (none so far besides these
    // edge cases, kept to pin the behaviour).
    decode_datagram(&[]);
    decode_datagram(&[0x4E, netz_core::transport::PROTOCOL_VERSION, 0]);
    station_sequence(&[]);
    station_sequence(&[0x00, 0xFF, 0xFF]);
}

#[test]
fn inside_regressions() {
    // Inputs the `inside` target found.
    let crash: &[u8] = &[
        0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34,
        0x34, 0x26, 0x0, 0x0, 0x0, 0x34, 0x6f, 0x6b, 0x21, 0x3, 0x6d, 0x7b, 0x6f, 0x2e, 0x0, 0x0,
        0x99, 0x3a, 0x6f, 0x3, 0x7, 0x7,
    ];
    netz_core::fuzzing::inside_session(crash);
}
