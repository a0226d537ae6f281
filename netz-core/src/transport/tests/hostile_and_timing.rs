//! Transport tests, continued: hostile bytes, keep-alives, bulk transfers.

use super::*;

#[test]
fn hostile_bytes_never_panic() {
    // Collect genuine datagrams to mutate.
    let mut sim = Sim::new(TransportConfig::default(), NetParams::hostile(20), 9);
    sim.recorded = Some(Vec::new());
    for i in 0..200u32 {
        sim.links[0]
            .send_reliable(
                (i % 4) as u8,
                &message(0, i, if i % 40 == 0 { 3000 } else { 30 }),
            )
            .unwrap();
        sim.links[1]
            .send_unreliable(&message(1, i, if i % 40 == 0 { 3000 } else { 30 }))
            .unwrap();
        if i % 10 == 0 {
            sim.run_until(sim.now + Duration::from_millis(7));
        }
    }
    sim.run_until(sim.now + Duration::from_secs(1));
    let valid = sim.recorded.take().unwrap();
    assert!(valid.len() > 50);

    let config = Arc::new(TransportConfig {
        max_reassembly_bytes: 64 << 10,
        ..TransportConfig::default()
    });
    // A victim that has sent some packets, so acks can refer to them.
    let fresh_victim = |now: Instant| {
        let mut victim = Link::new(config.clone(), now);
        for i in 0..12u32 {
            victim
                .send_reliable((i % 4) as u8, &message(0, i, 300))
                .unwrap();
        }
        while victim.poll_packet(now, &mut Vec::new()) {}
        victim
    };
    let mut victim = fresh_victim(Instant::ZERO);
    let mut totals = LinkStats::default();

    let mut rng = Rng(10);
    let mut now = Instant::ZERO;
    let mut buf = Vec::new();
    for round in 0..100_000u32 {
        buf.clear();
        match round % 5 {
            4 => {
                // Structurally plausible frames with extreme field values.
                let extreme = |rng: &mut Rng, buf: &mut Vec<u8>| {
                    let v = match rng.below(6) {
                        0 => 0,
                        1 => rng.below(4),
                        2 => rng.below(300),
                        3 => 1 << 62,
                        4 => u64::MAX - rng.below(3),
                        _ => rng.next(),
                    };
                    codec::write_varint(buf, v);
                };
                extreme(&mut rng, &mut buf);
                for _ in 0..1 + rng.below(4) {
                    let kind = 1 + rng.below(5) as u8;
                    buf.push(kind);
                    if kind == 0x03 {
                        buf.push(rng.below(5) as u8);
                    }
                    for _ in 0..rng.below(7) {
                        extreme(&mut rng, &mut buf);
                    }
                    let len = rng.below(8) as usize;
                    buf.extend((0..len).map(|_| rng.next() as u8));
                }
            }
            0 => {
                let len = rng.below(40) as usize;
                buf.extend((0..len).map(|_| rng.next() as u8));
            }
            1 => {
                // Random bytes behind a valid header and a plausible frame type.
                HEADERS[0].encode(&mut buf);
                buf.push(rng.below(4) as u8);
                buf.push(1 + rng.below(6) as u8);
                let len = rng.below(40) as usize;
                buf.extend((0..len).map(|_| rng.next() as u8));
            }
            2 => {
                // Truncated genuine datagram.
                let d = &valid[rng.below(valid.len() as u64) as usize];
                buf.extend_from_slice(&d[..rng.below(d.len() as u64 + 1) as usize]);
            }
            _ => {
                // Mutated genuine datagram.
                let d = &valid[rng.below(valid.len() as u64) as usize];
                buf.extend_from_slice(d);
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf[at] = match rng.below(3) {
                        0 => rng.next() as u8,
                        1 => 0xFF,
                        _ => buf[at] ^ (1 << rng.below(8)),
                    };
                }
            }
        }
        let _ = PacketHeader::decode(&buf);
        let payload = match PacketHeader::decode(&buf) {
            Ok((_, payload)) => payload,
            Err(_) => &buf[..],
        };
        let _ = victim.handle_packet(now, payload);
        if round % 128 == 127 {
            // Packet numbers seen so far would make most later inputs duplicates.
            let s = victim.stats();
            totals.malformed_dropped += s.malformed_dropped;
            totals.packets_received += s.packets_received;
            totals.duplicate_packets += s.duplicate_packets;
            totals.reliable_delivered += s.reliable_delivered;
            totals.unreliable_delivered += s.unreliable_delivered;
            victim = fresh_victim(now);
        }
        if round % 64 == 0 {
            now += Duration::from_millis(3);
            victim.handle_timeout(now);
            let mut out = Vec::new();
            HEADERS[1].encode(&mut out);
            while victim.poll_packet(now, &mut out) {
                assert!(out.len() <= config.max_datagram_size);
                out.truncate(HEADERS[1].encoded_len());
            }
            while victim.poll_message().is_some() {}
        }
    }
    assert!(totals.malformed_dropped > 20_000, "{totals:?}");
    assert!(totals.packets_received > 5_000, "{totals:?}");
    assert!(totals.unreliable_delivered > 1000, "{totals:?}");
}

#[test]
fn claimed_huge_lengths_are_rejected() {
    let mut link = Link::new(Arc::new(TransportConfig::default()), Instant::ZERO);
    // Reliable frame claiming 4 GB of data.
    let mut p = vec![0];
    p.extend_from_slice(&[0x03, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 1, 2, 3]);
    assert!(link.handle_packet(Instant::ZERO, &p).is_err());
    // Unreliable fragment claiming 4 billion fragments.
    let p = [1, 0x05, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 42];
    assert_eq!(link.handle_packet(Instant::ZERO, &p), Ok(()));
    // ACK with a range count of 2^60 and nothing behind it.
    let p = [
        2, 0x02, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0,
    ];
    assert!(link.handle_packet(Instant::ZERO, &p).is_err());
    assert!(link.poll_message().is_none());
}

#[test]
fn extreme_numbers_do_not_overflow() {
    let mut link = Link::new(Arc::new(TransportConfig::default()), Instant::ZERO);
    let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    // Largest packet number, then one more packet.
    let mut p = max.to_vec();
    p.push(0x01);
    assert!(link.handle_packet(Instant::ZERO, &p).is_err());
    let p = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x01];
    assert_eq!(link.handle_packet(Instant::ZERO, &p), Ok(()));
    assert_eq!(link.handle_packet(Instant::ZERO, &[0, 0x01]), Ok(()));
    // Unreliable fragment id and reliable sequence number at the maximum.
    for (i, frame) in [[0x05u8, 2, 0, 2], [0x05, 0, 1, 2], [0x03, 0, 0, 0]]
        .iter()
        .enumerate()
    {
        let mut p = vec![1 + i as u8, frame[0]];
        if frame[0] == 0x05 {
            p.extend_from_slice(&max);
            p.extend_from_slice(&[frame[2], frame[3], 1, 7]);
        } else {
            p.push(0);
            p.extend_from_slice(&max);
            p.extend_from_slice(&[3, 9]);
        }
        assert_eq!(link.handle_packet(Instant::ZERO, &p), Ok(()), "frame {i}");
    }
    // The two fragments of message u64::MAX complete it.
    let d = link.poll_message().unwrap();
    assert_eq!(
        d,
        Delivered {
            channel: Channel::Unreliable,
            data: vec![7, 7]
        }
    );
    assert!(link.poll_message().is_none());
    let mut buf = Vec::new();
    assert!(link.poll_packet(Instant::ZERO, &mut buf));
}

#[test]
fn reassembly_budget_refuses_out_of_order_data_without_acking_it() {
    let config = Arc::new(TransportConfig {
        max_reassembly_bytes: 10_000,
        ..TransportConfig::default()
    });
    let mut sender = Link::new(config.clone(), Instant::ZERO);
    let mut receiver = Link::new(config.clone(), Instant::ZERO);
    for i in 0..40u32 {
        sender.send_reliable(0, &message(0, i, 1000)).unwrap();
    }
    let mut packets = Vec::new();
    loop {
        let mut buf = Vec::new();
        if !sender.poll_packet(Instant::ZERO, &mut buf) {
            break;
        }
        packets.push(buf);
    }
    assert!(packets.len() >= 40);
    // Lose the first packet: everything else is out of order and the budget runs out.
    let mut refused = 0;
    for p in &packets[1..] {
        match receiver.handle_packet(Instant::ZERO, p) {
            Ok(()) => {}
            Err(PacketError::ReassemblyLimit) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 20);
    assert!(receiver.poll_message().is_none());
    // Now everything is delivered through ordinary retransmission.
    let mut now = Instant::ZERO;
    let mut delivered = Vec::new();
    let mut links = [sender, receiver];
    for _ in 0..2000 {
        now += Duration::from_millis(5);
        for i in 0..2 {
            links[i].handle_timeout(now);
            loop {
                let mut buf = Vec::new();
                if !links[i].poll_packet(now, &mut buf) {
                    break;
                }
                let _ = links[1 - i].handle_packet(now, &buf);
            }
        }
        delivered.extend(std::iter::from_fn(|| links[1].poll_message()));
        if links[0].is_idle() {
            break;
        }
    }
    assert!(links[0].is_idle());
    let expected: Vec<_> = (0..40).map(|i| message(0, i, 1000)).collect();
    assert!(delivered.into_iter().map(|d| d.data).collect::<Vec<_>>() == expected);
}

#[test]
fn tight_reassembly_budget_still_makes_progress() {
    let config = TransportConfig {
        max_reassembly_bytes: 3_000,
        ..TransportConfig::default()
    };
    let mut sim = Sim::new(config, NetParams::hostile(25), 11);
    let mut rng = Rng(12);
    let mut sent = vec![Vec::new(); 4];
    for i in 0..3000u32 {
        let s = rng.below(4) as usize;
        let m = message(s as u8, i, message_len(&mut rng).min(2_000));
        sim.links[0].send_reliable(s as u8, &m).unwrap();
        sent[s].push(m);
        if i % 100 == 0 {
            sim.run_until(sim.now + Duration::from_millis(10));
        }
    }
    sim.run_until_idle(sim.now + Duration::from_secs(120));
    let mut got = vec![Vec::new(); 4];
    for d in sim.drain(1) {
        let Channel::Reliable(s) = d.channel else {
            panic!("unexpected channel")
        };
        got[s as usize].push(d.data);
    }
    assert!(got == sent);
    assert!(sim.links[1].stats().reassembly_dropped > 0);
}

#[test]
fn nothing_to_send_leaves_buffer_untouched() {
    let mut link = Link::new(Arc::new(TransportConfig::default()), Instant::ZERO);
    let mut buf = vec![1, 2, 3];
    assert!(!link.poll_packet(Instant::ZERO, &mut buf));
    assert_eq!(buf, [1, 2, 3]);
    // After the heartbeat interval, a ping goes out.
    let t = link.poll_timeout().unwrap();
    assert_eq!(t, Instant::from_millis(200));
    link.handle_timeout(t);
    assert!(link.poll_packet(t, &mut buf));
    assert!(!link.poll_packet(t, &mut buf));
    assert_eq!(link.stats().pings_sent, 1);
}

#[test]
fn a_reliable_mark_is_passed_once_the_peer_acknowledged_everything_before_it() {
    let mut sim = Sim::new(TransportConfig::default(), NetParams::hostile(20), 9);
    let empty = sim.links[0].reliable_mark();
    assert!(sim.links[0].is_acked_through(&empty));
    for i in 0..50u32 {
        sim.links[0]
            .send_reliable((i % 4) as u8, &message(1, i, 3000))
            .unwrap();
    }
    let mark = sim.links[0].reliable_mark();
    assert!(!sim.links[0].is_acked_through(&mark));
    // Messages queued after the mark do not hold it back.
    sim.links[0].send_reliable(2, &message(2, 99, 10)).unwrap();
    sim.run_until_idle(sim.now + Duration::from_secs(60));
    assert!(sim.links[0].is_acked_through(&mark));
    assert!(sim.links[0].is_acked_through(&sim.links[0].reliable_mark()));
    assert_eq!(sim.drain(1).len(), 51);
}

#[test]
fn unacknowledged_messages_can_be_taken_back_whole_and_in_order() {
    // Cut the link at many moments of a lossy transfer of small and
    // fragmented messages: whatever the peer did not deliver is among the
    // messages the sender can take back, whole and in queueing order.
    for seed in 0..40u64 {
        let mut sim = Sim::new(TransportConfig::default(), NetParams::hostile(25), seed);
        let substreams = sim.config.substreams;
        let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); usize::from(substreams)];
        for i in 0..60u32 {
            let s = (i % u32::from(substreams)) as u8;
            let len = if i % 7 == 0 {
                4000
            } else {
                20 + (i as usize * 13) % 300
            };
            let m = message(s, i, len);
            sim.links[0].send_reliable(s, &m).unwrap();
            sent[usize::from(s)].push(m);
        }
        let cut = sim.now + Duration::from_millis(20 + seed * 7);
        sim.run_until(cut);
        let taken = sim.links[0].unacked_messages();
        let mut delivered: Vec<Vec<Vec<u8>>> = vec![Vec::new(); usize::from(substreams)];
        for d in sim.drain(1) {
            if let Channel::Reliable(s) = d.channel {
                delivered[usize::from(s)].push(d.data);
            }
        }
        let mut back: Vec<Vec<Vec<u8>>> = vec![Vec::new(); usize::from(substreams)];
        for (s, m) in taken {
            back[usize::from(s)].push(m);
        }
        for s in 0..usize::from(substreams) {
            // Taken back: a suffix of what was sent, in order...
            let n = back[s].len();
            assert!(n <= sent[s].len(), "seed {seed}");
            let first = sent[s].len() - n;
            assert_eq!(back[s], sent[s][first..], "seed {seed} sub-stream {s}");
            // ...and everything before it was delivered to the peer (which
            // delivers a prefix of what was sent, maybe more than `first`).
            assert!(delivered[s].len() >= first, "seed {seed} sub-stream {s}");
            assert_eq!(delivered[s], sent[s][..delivered[s].len()], "seed {seed}");
        }
        if seed == 0 {
            assert!(sim.links[0].unacked_messages().len() > 5, "cut too late");
        }
    }
}

// ------------------------------------------------------- congestion control

/// Sends `n` reliable messages of `len` bytes from side 0 and runs the
/// link until both sides are idle.
fn bulk(config: TransportConfig, net: NetParams, seed: u64, n: u32, len: usize) -> Sim {
    let mut sim = Sim::new(config, net, seed);
    for i in 0..n {
        sim.links[0]
            .send_reliable((i % 4) as u8, &message(0, i, len))
            .unwrap();
    }
    sim.run_until_idle(sim.now + Duration::from_secs(120));
    assert_eq!(sim.drain(1).len(), n as usize);
    sim
}

#[test]
fn the_first_window_goes_at_once_and_nothing_more_before_an_ack() {
    let config = TransportConfig {
        initial_window: 12_000,
        ..TransportConfig::default()
    };
    let mut link = Link::new(Arc::new(config), Instant::ZERO);
    for i in 0..100u32 {
        link.send_reliable(0, &message(0, i, 1000)).unwrap();
    }
    let mut sent = 0;
    let mut now = Instant::ZERO;
    // The first window goes at once, but for the pacer's last datagram,
    // which it lets go at the instant the link says.
    for _ in 0..2 {
        loop {
            let mut buf = Vec::new();
            HEADERS[0].encode(&mut buf);
            if !link.poll_packet(now, &mut buf) {
                break;
            }
            sent += buf.len();
        }
        let next = link.poll_timeout().unwrap();
        assert!(next > now);
        now = next;
    }
    // The window is overshot by less than one datagram.
    assert!((12_000..13_200).contains(&sent), "{sent} bytes sent");
    assert_eq!(link.stats().cwnd, 12_000);
    assert_eq!(link.stats().bytes_in_flight, sent as u64);
    // Window-limited: the next deadline is the heartbeat, not the pacer.
    assert!(!link.may_send(Instant::from_millis(50)));
    assert!(
        now >= Instant::from_millis(200),
        "a window-limited link waits for acks"
    );
}

#[test]
fn slow_start_grows_the_window_on_a_clean_path() {
    let config = TransportConfig {
        initial_window: 12_000,
        ..TransportConfig::default()
    };
    let sim = bulk(config, NetParams::clean(10), 1, 2000, 1000);
    let s = sim.links[0].stats();
    assert!(s.cwnd > 12_000, "{s:?}");
    assert_eq!(s.congestion_events, 0);
    assert_eq!(s.packets_lost, 0);
    assert!(s.paced > 0, "a growing window is paced: {s:?}");
    assert_eq!(s.bytes_in_flight, 0);
    assert_eq!(s.retransmit_backlog, 0);
}

#[test]
fn loss_halves_the_window_once_per_recovery_period() {
    let config = TransportConfig {
        initial_window: 12_000,
        ..TransportConfig::default()
    };
    let mut net = NetParams::clean(10);
    net.loss_percent = 3;
    let sim = bulk(config, net, 5, 2000, 1000);
    let s = sim.links[0].stats();
    assert!(s.packets_lost > 0);
    assert!(s.congestion_events > 0);
    // Several packets lost in one window make one event.
    assert!(s.congestion_events < s.packets_lost, "{s:?}");
    // The window stays far below the send window's bound.
    assert!(s.cwnd < 512 * 1200 / 4, "{s:?}");
    assert!(s.cwnd >= 2 * 1200);
}

#[test]
fn without_congestion_control_only_the_send_window_limits() {
    let config = TransportConfig {
        congestion_control: false,
        initial_window: 2_400,
        ..TransportConfig::default()
    };
    let mut link = Link::new(Arc::new(config), Instant::ZERO);
    for i in 0..100u32 {
        link.send_reliable(0, &message(0, i, 1000)).unwrap();
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
    assert!(packets >= 90, "{packets} packets");
    assert_eq!(link.stats().paced, 0);
}

#[test]
fn one_byte_fragments_are_charged_what_holding_them_costs() {
    // 5,000 one-byte fragments of one unreliable message hold far more
    // than 5,000 bytes; a 10,000-byte reassembly budget does not take them.
    let config = Arc::new(TransportConfig {
        max_reassembly_bytes: 10_000,
        ..TransportConfig::default()
    });
    let mut link = Link::new(config, Instant::ZERO);
    let count = 5_000u32;
    let mut pn = 0u64;
    let mut index = 0u32;
    while index < count {
        let mut p = Vec::new();
        codec::write_varint(&mut p, pn);
        for _ in 0..100 {
            if index == count {
                break;
            }
            p.push(0x05);
            codec::write_varint(&mut p, 0);
            codec::write_varint(&mut p, u64::from(index));
            codec::write_varint(&mut p, u64::from(count));
            codec::write_varint(&mut p, 1);
            p.push(index as u8);
            index += 1;
        }
        assert_eq!(link.handle_packet(Instant::ZERO, &p), Ok(()));
        pn += 1;
    }
    assert!(link.poll_message().is_none(), "the message was held whole");
    assert!(link.reassembly_bytes() <= 10_000);
    assert!(link.stats().unreliable_expired >= 1);
}

#[test]
fn tracked_unreliable_messages_report_their_fate_once_and_are_never_resent() {
    let mut sim = Sim::new(TransportConfig::default(), NetParams::hostile(20), 21);
    let count = 2000u32;
    let mut tokens = Vec::new();
    for i in 0..count {
        let len = 20 + (i as usize % 7) * 10;
        tokens.push(
            sim.links[0]
                .send_unreliable_tracked(&message(4, i, len))
                .unwrap(),
        );
        // Reliable traffic beside it, now and then.
        if i % 40 == 0 {
            sim.links[0].send_reliable(1, &message(5, i, 300)).unwrap();
        }
        if i % 10 == 0 {
            sim.run_until(sim.now + Duration::from_millis(3));
        }
    }
    sim.run_until(sim.now + Duration::from_secs(5));
    let mut fate = vec![None; count as usize];
    while let Some((token, acked)) = sim.links[0].poll_outcome() {
        let i = tokens
            .iter()
            .position(|t| *t == token)
            .expect("a token that was given out");
        assert!(fate[i].is_none(), "token {token} reported twice");
        fate[i] = Some(acked);
    }
    let missing: Vec<usize> = (0..count as usize).filter(|i| fate[*i].is_none()).collect();
    assert!(
        missing.is_empty(),
        "no fate for {} messages, first {:?}; {} now {:?}",
        missing.len(),
        missing.first(),
        sim.links[0].debug_state(),
        sim.now
    );
    let mut seen = vec![false; count as usize];
    for d in sim.drain(1) {
        if d.channel != Channel::Unreliable {
            continue;
        }
        let index = u32::from_le_bytes(d.data[1..5].try_into().unwrap()) as usize;
        assert!(!seen[index], "message {index} delivered twice");
        seen[index] = true;
    }
    for i in 0..count as usize {
        if fate[i] == Some(true) {
            assert!(
                seen[i],
                "message {i} reported acknowledged but never delivered"
            );
        }
    }
    let lost = fate.iter().filter(|f| **f == Some(false)).count();
    assert!(lost > 0 && lost < count as usize / 2, "lost {lost}");
    let s = sim.links[0].stats();
    assert_eq!(s.tracked_acked + s.tracked_lost, u64::from(count));
    // A message that cannot go whole in one packet is refused.
    let max = sim.links[0].max_tracked_message();
    assert!(sim.links[0]
        .send_unreliable_tracked(&vec![0; max + 1])
        .is_err());
    assert!(sim.links[0].send_unreliable_tracked(&vec![0; max]).is_ok());
    sim.run_until(sim.now + Duration::from_secs(2));
    assert!(sim.links[0].poll_outcome().is_some());
}

#[test]
fn tracked_messages_wait_for_the_congestion_window() {
    let config = TransportConfig {
        initial_window: 2400,
        ..TransportConfig::default()
    };
    let mut sim = Sim::new(config, NetParams::clean(50), 3);
    for i in 0..40u32 {
        sim.links[0]
            .send_unreliable_tracked(&message(6, i, 500))
            .unwrap();
    }
    assert!(sim.links[0].send_allowance() < 2400);
    sim.flush();
    // Two datagrams' worth of window: the rest waits for acknowledgements.
    assert!(sim.datagrams_sent <= 3, "sent {}", sim.datagrams_sent);
    sim.run_until(sim.now + Duration::from_secs(5));
    assert_eq!(sim.drain(1).len(), 40);
    assert_eq!(sim.links[0].stats().tracked_acked, 40);
}
