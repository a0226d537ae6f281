//! One idle simulated second of N stations, timed (for profiling).
use netz_bench::classes::registry;
use netz_core::cluster::Cluster;
use netz_core::{ProcessType, StationConfig};
use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let configs = (0..n)
        .map(|i| StationConfig {
            seed: i as u64 + 1,
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect();
    let t = Instant::now();
    let mut c = Cluster::start(Default::default(), registry(), configs).expect("cluster starts");
    println!("setup {:?}", t.elapsed());
    for round in 0..5 {
        let before = c.sim.stats().delivered;
        let t = Instant::now();
        c.run_for(Duration::from_secs(1));
        for i in 0..n {
            while c.station_mut(i).poll_event().is_some() {}
        }
        println!(
            "second {round}: {:?}, {} datagrams",
            t.elapsed(),
            c.sim.stats().delivered - before
        );
    }
}
