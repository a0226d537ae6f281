//! Bounded resources: join floods, RMCs in flight, send queues. A limit
//! reached drops and counts; the session keeps working.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::limits::Limits;
use netz_core::sim::SimConfig;
use netz_core::transport::{PacketHeader, PacketKind};
use netz_core::*;
use std::net::SocketAddr;
use std::time::Duration;

fn cfg(p: ProcessType, token: &str, limits: &Limits) -> StationConfig {
    StationConfig {
        limits: limits.clone(),
        ..StationConfig::new(p, token)
    }
}

#[test]
fn join_flood_from_spoofed_sources_is_rate_limited() {
    let limits = Limits {
        join_attempts_per_second: 2,
        join_burst: 4,
        join_attempts_per_second_total: 20,
        ..Limits::default()
    };
    let mut c = Cluster::start(
        SimConfig::seeded(3),
        registry(),
        vec![
            cfg(ProcessType::Server, "s", &limits),
            cfg(ProcessType::Client, "a", &limits),
        ],
    )
    .unwrap();
    // Capture a real join request.
    c.sim.set_recording(true);
    c.join(cfg(ProcessType::Client, "b", &limits), 0).unwrap();
    let server = c.addrs[0];
    let request = c
        .sim
        .take_deliveries()
        .into_iter()
        .find(|d| {
            d.to == server
                && PacketHeader::decode(&d.data)
                    .is_ok_and(|(h, _)| h.kind == PacketKind::Connectionless)
        })
        .expect("a join request")
        .data;
    let before = c.station(0).stats().clone();
    // 5000 replays from 5000 addresses, within one second, then 2000 from
    // a single address.
    for i in 0..7000u32 {
        let from: SocketAddr = if i < 5000 {
            SocketAddr::from(([10, (i / 250) as u8, (i % 250) as u8, 1], 5000))
        } else {
            SocketAddr::from(([10, 99, 0, 1], 5000))
        };
        let now = c.now();
        c.station_mut(0).handle_datagram(now, from, &request);
        while c.station_mut(0).poll_transmit(now).is_some() {}
        if i % 50 == 0 {
            c.run_for(Duration::from_millis(10));
        }
    }
    let after = c.station(0).stats().clone();
    let elapsed_s = 7000 / 50 * 10 / 1000 + 1;
    let allowed = 2 * 20 + 20 * elapsed_s as usize;
    assert!(after.join_rate_limited - before.join_rate_limited >= 7000 - allowed as u64);
    // The session holds at most the stations admitted within the limit.
    assert!(
        c.station(0).stations().len() <= 3 + allowed,
        "{}",
        c.station(0).stations().len()
    );
    // Ghost stations never answer: they are dropped after the failure
    // timeout, and the real members keep working.
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.station(0).stations().len(), 3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "target"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(100));
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(2i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(3)));
    assert_eq!(ctx.outcome(), Outcome::Success);
}

#[test]
fn rmcs_in_flight_are_bounded() {
    let limits = Limits {
        max_rmcs_in_flight: 4,
        ..Limits::default()
    };
    let mut c = Cluster::start(
        SimConfig::seeded(4),
        registry(),
        vec![
            cfg(ProcessType::Server, "s", &limits),
            cfg(ProcessType::Client, "a", &limits),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "target"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(100));
    let ctxs: Vec<RmcContext<i64>> = (0..10).map(|_| RmcContext::on_master()).collect();
    let sent = ctxs
        .iter()
        .filter(|ctx| {
            c.station_mut(1)
                .object::<Counter>(h)
                .call(ctx, ADD, &(1i64,))
        })
        .count();
    assert_eq!(sent, 4);
    assert_eq!(c.station(1).stats().rmcs_limited, 6);
    for ctx in &ctxs[4..] {
        assert_eq!(ctx.outcome(), Outcome::StationUnreachable);
    }
    for ctx in &ctxs[..4] {
        assert!(c.wait(ctx, Duration::from_secs(3)));
        assert_eq!(ctx.outcome(), Outcome::Success);
    }
    // Room again once they completed.
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Counter>(h).call(&ctx, GET, &()));
    assert!(c.wait(&ctx, Duration::from_secs(3)));
    assert_eq!(ctx.result(), Some(5));
}

#[test]
fn send_queue_to_an_unreachable_peer_is_bounded() {
    let limits = Limits {
        max_queued_bytes_per_link: 64 << 10,
        ..Limits::default()
    };
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![
            cfg(ProcessType::Server, "s", &limits),
            cfg(ProcessType::Client, "a", &limits),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(1, "mine"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(100));
    // Cut the two stations apart: once the send window is full, one-way
    // calls pile up in the queue until its cap.
    let (a, b) = (c.addrs[0], c.addrs[1]);
    c.sim.partition(&[a], &[b]);
    let mut refused = 0;
    for _ in 0..2000 {
        let ctx: RmcContext<()> = RmcContext::with_target(StationId(1), false);
        ctx.set_flag(RmcFlag::OneWayCall);
        let st = c.station_mut(1);
        Invoker::invoke_rmc(st, h, BUMP, vec![7u8; 4000], ctx.shared(), false);
        let now = c.now();
        while c.station_mut(1).poll_transmit(now).is_some() {}
        if c.station(1).stats().send_queue_limited > refused {
            refused = c.station(1).stats().send_queue_limited;
        }
    }
    assert!(refused > 1000, "{:?}", c.station(1).stats());
}
