//! The wire format does not change by accident: traffic of a small session,
//! captured once and checked in as bytes (`tests/data/*.hex`), still decodes
//! with today's code, every message encodes back to the same bytes, and the
//! same scenario run today sends exactly the same datagrams.
//!
//! To capture anew after a deliberate change of the wire format (and a new
//! `PROTOCOL_VERSION`): `NETZ_WRITE_CAPTURE=1 cargo test -p netz-core --test wire_capture`.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::fuzzing::{dissect_capture, CapturedDatagram};
use netz_core::session::Topology;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

/// A session of a server and two clients: joins, a published object, a
/// dataset update, an RMC with its reply, actions, and a graceful leave.
fn scenario(topology: Topology) -> Vec<CapturedDatagram> {
    let cfg = |p, t: &str| {
        let mut c = StationConfig::new(p, t);
        c.topology = topology;
        c
    };
    let mut c = Cluster::start(
        SimConfig::seeded(11),
        registry(),
        vec![cfg(ProcessType::Server, "s")],
    )
    .unwrap();
    c.sim.set_recording(true);
    c.join(cfg(ProcessType::Client, "a"), 0).unwrap();
    c.join(cfg(ProcessType::Client, "b"), 0).unwrap();
    let now = c.now();
    let r = c.station_mut(1).publish(now, Counter::new(5, "x")).unwrap();
    let h = r.handle();
    c.run_for(Duration::from_millis(200));
    r.lock().data.value = 42;
    let now = c.now();
    assert!(c.station_mut(1).update(now, h).unwrap());
    c.run_for(Duration::from_millis(200));
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(8i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.result(), Some(50));
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .action_on_master(BUMP, &(3i64,)));
    c.run_for(Duration::from_millis(200));
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    c.run_for(Duration::from_millis(500));
    c.sim
        .take_deliveries()
        .into_iter()
        .map(|d| (d.from, d.to, d.data))
        .collect()
}

fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.hex"))
}

fn to_text(capture: &[CapturedDatagram]) -> String {
    let mut out = String::new();
    for (from, to, data) in capture {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{from} {to} {hex}\n"));
    }
    out
}

fn from_text(text: &str) -> Vec<CapturedDatagram> {
    text.lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let from = parts.next().unwrap().parse().unwrap();
            let to = parts.next().unwrap().parse().unwrap();
            let hex = parts.next().unwrap();
            let data = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (from, to, data)
        })
        .collect()
}

fn check(name: &str, topology: Topology) {
    let now = scenario(topology);
    if std::env::var_os("NETZ_WRITE_CAPTURE").is_some() {
        std::fs::write(path(name), to_text(&now)).unwrap();
    }
    let captured = from_text(&std::fs::read_to_string(path(name)).unwrap());
    assert!(captured.len() > 50, "{} datagrams", captured.len());
    let kinds = dissect_capture(&captured).unwrap_or_else(|e| panic!("{name}: {e}"));
    for kind in [
        "JoinRequest",
        "JoinAccepted",
        "StationJoined",
        "Create",
        "Rmc",
        "RmcReply",
        "Leaving",
    ] {
        assert!(kinds.contains(&kind), "{name}: no {kind} in {kinds:?}");
    }
    // Today's code sends the very same bytes in the same scenario.
    assert_eq!(
        now.len(),
        captured.len(),
        "{name}: the number of datagrams changed"
    );
    for (i, (a, b)) in now.iter().zip(&captured).enumerate() {
        assert_eq!(a, b, "{name}: datagram {i} differs");
    }
}

#[test]
fn a_mesh_session_sends_the_bytes_captured_before() {
    check("mesh_v2", Topology::Mesh);
}

#[test]
fn a_client_server_session_sends_the_bytes_captured_before() {
    check("client_server_v2", Topology::ClientServer);
}
