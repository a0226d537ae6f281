//! netz's sequential RMC between two sans-IO stations wired in memory (no
//! sockets, no runtime): the core's own cost of a round trip, for
//! profiling it: `cargo run --release --example core_rmc -- [CALLS]`.
//! Virtual time moves on by 10 µs per call, about a loopback round trip.

use netz_bench::classes::{registry, Unit};
use netz_bench::mesh::Mesh;
use netz_core::RmcContext;
use std::time::{Duration, Instant};

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut mesh = Mesh::new(2, registry());
    let h = mesh
        .with(0, |st, now| st.publish(now, Unit::default()))
        .expect("published")
        .handle();
    mesh.settle();
    let ctx: RmcContext<i32> = RmcContext::on_master();
    let start = Instant::now();
    for i in 0..calls as i32 {
        mesh.with(1, |st, _| st.object::<Unit>(h).call_ping(&ctx, i));
        assert!(ctx.is_complete(), "call {i} completed");
        mesh.advance(Duration::from_micros(10));
    }
    let took = start.elapsed();
    println!(
        "core round trip {:.3} µs ({} datagrams per call)",
        took.as_secs_f64() * 1e6 / calls as f64,
        mesh.datagrams as f64 / calls as f64
    );
}
