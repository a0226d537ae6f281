//! Garbage in: random, truncated and mutated datagrams, strangers, unknown
//! classes. Everything is dropped and counted; nothing panics; the session
//! keeps working.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::{Rng, SimConfig};
use netz_core::transport::{PacketHeader, PacketKind};
use netz_core::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn many_random_datagrams_are_dropped_and_counted() {
    let mut c = Cluster::start(
        SimConfig::seeded(21),
        registry(),
        vec![
            StationConfig::new(ProcessType::Server, "s"),
            StationConfig::new(ProcessType::Client, "c"),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "target"))
        .unwrap()
        .handle();
    // Capture real traffic to mutate.
    c.sim.set_recording(true);
    for _ in 0..20 {
        let ctx: RmcContext<i64> = RmcContext::on_master();
        c.station_mut(1)
            .object::<Counter>(h)
            .call(&ctx, ADD, &(1i64,));
        c.run_for(Duration::from_millis(20));
    }
    let real: Vec<Vec<u8>> = c
        .sim
        .take_deliveries()
        .into_iter()
        .map(|d| d.data)
        .collect();
    assert!(!real.is_empty());
    let member: SocketAddr = c.addrs[1];
    let stranger: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    let mut rng = Rng::new(5);
    let before = c.station(0).stats().clone();
    let n = 60_000;
    for i in 0..n {
        let bytes = match i % 6 {
            0 => {
                let len = rng.gen_range(0..1400usize);
                rng.gen_bytes(len)
            }
            1 => {
                let r = &real[rng.below(real.len() as u64) as usize];
                r[..rng.gen_range(0..r.len())].to_vec()
            }
            2 => {
                let mut r = real[rng.below(real.len() as u64) as usize].clone();
                for _ in 0..rng.gen_range(1..4usize) {
                    let k = rng.below(r.len() as u64) as usize;
                    r[k] ^= 1 << rng.below(8);
                }
                r
            }
            3 => {
                // A valid header, then garbage.
                let mut b = Vec::new();
                let kind = if rng.gen_bool(0.5) {
                    PacketKind::Link
                } else {
                    PacketKind::Connectionless
                };
                PacketHeader {
                    kind,
                    session: rng.next_u32(),
                    sender: 2,
                    receiver: 1,
                }
                .encode(&mut b);
                let len = rng.gen_range(0..200usize);
                b.extend(rng.gen_bytes(len));
                b
            }
            4 => real[rng.below(real.len() as u64) as usize].clone(), // replays from a stranger
            _ => Vec::new(),
        };
        let from = if i % 6 == 4 || rng.gen_bool(0.3) {
            stranger
        } else {
            member
        };
        let now = c.now();
        c.station_mut(0).handle_datagram(now, from, &bytes);
        while c.station_mut(0).poll_transmit(now).is_some() {}
    }
    let after = c.station(0).stats().clone();
    let dropped = (after.malformed_datagrams - before.malformed_datagrams)
        + (after.unknown_sender - before.unknown_sender)
        + (after.wrong_session - before.wrong_session)
        + (after.bad_messages - before.bad_messages);
    assert!(
        dropped > (n as u64) / 2,
        "most garbage is counted as dropped: {after:?}"
    );
    assert!(after.unknown_sender > before.unknown_sender);
    assert!(after.malformed_datagrams > before.malformed_datagrams);
    // The session still works.
    c.run_for(Duration::from_millis(200));
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    assert!(c.wait(&ctx, Duration::from_secs(3)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(c.station(1).session_master(), StationId(1));
}

#[test]
fn objects_of_an_unknown_class_are_dropped_and_counted() {
    let mut c = Cluster::start(
        SimConfig::seeded(22),
        registry(),
        vec![StationConfig::new(ProcessType::Server, "s")],
    )
    .unwrap();
    // Another build without the Avatar class.
    let mut old = Registry::new();
    old.register::<Counter>().unwrap();
    let i = c
        .join_with_registry(
            StationConfig::new(ProcessType::Client, "old"),
            Arc::new(old),
            0,
        )
        .unwrap();
    let now = c.now();
    let avatar = c.station_mut(0).publish(now, Avatar).unwrap().handle();
    let counter = c
        .station_mut(0)
        .publish(now, Counter::new(3, "k"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    assert!(!c.station(i).contains(avatar));
    assert!(c.station(i).contains(counter));
    assert_eq!(c.station(i).stats().unknown_class, 1);
    // An RMC on an object the target does not have.
    let ctx: RmcContext<()> = RmcContext::with_target(c.station(i).id(), true);
    assert!(c
        .station_mut(0)
        .object::<Avatar>(avatar)
        .call(&ctx, MethodId(0), &()));
    assert!(c.wait(&ctx, Duration::from_secs(1)));
    assert_eq!(ctx.outcome(), Outcome::TargetObjectNotFound);
}

#[test]
fn invalid_call_contexts_are_refused_without_sending() {
    let mut c = Cluster::start(
        SimConfig::seeded(23),
        registry(),
        vec![
            StationConfig::new(ProcessType::Server, "s"),
            StationConfig::new(ProcessType::Client, "c"),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::default())
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    // Two targets without OneWayCall.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    ctx.set_flag(RmcFlag::CallOnLocalStation);
    assert!(!c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    assert_eq!(ctx.outcome(), Outcome::ErrorInvalidContext);
    // CallOnDuplicas from a duplica.
    let ctx: RmcContext<()> = RmcContext::new();
    ctx.set_flag(RmcFlag::OneWayCall);
    ctx.set_flag(RmcFlag::CallOnDuplicas);
    assert!(!c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    // A station that is not in the session.
    let ctx: RmcContext<i64> = RmcContext::with_target(StationId(77), true);
    assert!(!c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    assert_eq!(ctx.outcome(), Outcome::StationUnreachable);
    // One-way to every neighbour, on a returning RMC: the value is ignored.
    let ctx: RmcContext<i64> = RmcContext::new();
    ctx.set_flag(RmcFlag::OneWayCall);
    ctx.set_flag(RmcFlag::CallOnNeighbouringStations);
    assert!(c
        .station_mut(1)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(5i64,)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), None);
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(0).get::<Counter>(h).unwrap().lock().data.value, 5);
    // Cancel and timeout.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &());
    ctx.cancel();
    c.run_for(Duration::from_millis(200));
    assert_eq!(ctx.outcome(), Outcome::Cancelled);
    assert_eq!(ctx.result(), None);
}
