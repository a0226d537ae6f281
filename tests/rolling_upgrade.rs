//! A rolling upgrade with real OS processes on loopback: two servers of
//! build v1 and six clients with rooms, objects and reliable actions; two
//! servers of build v2 join; the v1 servers get SIGTERM one at a time.
//! Afterwards every client is on a v2 server with its station id, every
//! object and room survived with its state (v2 reads v1 data as revision 0,
//! the new field not valid), every reliable message arrived once and in
//! order, and no client saw `on_disconnect(false)` (the example's `roll`
//! checks all of it and fails with what went wrong).
//!
//! The test binary is its own child processes (`--role ...`), so it runs
//! without the libtest harness.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/rolling_upgrade.rs"]
mod rolling_upgrade;

use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--role") {
        return rolling_upgrade::main();
    }
    // Bounded: a stuck roll ends the process, and its children end with
    // their stdin.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("rolling upgrade: no result within 60 s");
        std::process::exit(1);
    });
    let t0 = Instant::now();
    let figures = match rolling_upgrade::roll() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rolling upgrade failed: {e}");
            return ExitCode::from(1);
        }
    };
    assert_eq!(figures.clients, 6, "{figures:?}");
    assert_eq!(figures.lost, 0, "{figures:?}");
    assert!(
        figures.blackout_median <= figures.blackout_max,
        "{figures:?}"
    );
    assert!(
        figures.blackout_max < Duration::from_secs(10),
        "{figures:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    println!("test rolling_upgrade ... ok ({figures:?})");
    ExitCode::SUCCESS
}
