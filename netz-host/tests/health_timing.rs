//! Health probes start every `interval_ms`, not every interval plus the
//! query timeout.

mod common;

use common::{Fleet, Opts};

#[test]
fn probes_of_a_mute_server_come_every_interval() {
    // interval 200 ms, query timeout 300 ms (see common): a probe is sent
    // every max(interval, timeout) = 300 ms; before the fix they came every
    // interval + timeout = 500 ms.
    let f = Fleet::start("probes", 43500, Opts::default());
    f.wait_server(1, "ready", |s| s["state"] == "Ready");
    f.command(1, "mute");
    let mut times = Vec::new();
    f.wait_until("three failed probes", |f| {
        let v = f.ok("GET", "/events", None);
        times = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("health check failed")
            })
            .map(|e| e["time_ms"].as_u64().unwrap())
            .collect::<Vec<u64>>();
        times.len() >= 3
    });
    // Load on the machine only stretches gaps, so the shortest one tells.
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).take(2).collect();
    let shortest = *gaps.iter().min().unwrap();
    assert!(
        (250..480).contains(&shortest),
        "gaps between probes {gaps:?} ms"
    );
}
