//! A station process stopped (SIGSTOP) for longer than the failure timeout
//! and then continued (SIGCONT), in a mesh and in a client-server session:
//! the others declare it failed and recover its objects; it learns that it
//! was excluded instead of living on as a session of its own, and no
//! object ends up with two masters.

mod common;

use common::Proc;
use std::collections::BTreeMap;
use std::time::Duration;

fn start(name: &str, topology: &str, kind: &str, join: Option<&str>) -> Proc {
    let mut args = vec!["--topology", topology, "--type", kind, "--token", name];
    args.extend(["--publish", "2"]);
    match join {
        Some(c) => args.extend(["--join", c]),
        None => args.push("--create"),
    }
    Proc::start(name, &args)
}

/// Each handle's master as every station in `procs` sees it.
fn masters(procs: &mut [&mut Proc]) -> Vec<BTreeMap<u64, u32>> {
    procs
        .iter_mut()
        .map(|p| {
            p.scores()
                .into_iter()
                .map(|s| (s.handle, s.master))
                .collect()
        })
        .collect()
}

/// Freezes `frozen` for 2.5 s (the failure timeout is 1 s), continues it,
/// and checks what everyone ends up with.
fn freeze_and_continue(frozen: &mut Proc, others: &mut [&mut Proc]) {
    let n = others.len() + 1;
    for p in others.iter_mut() {
        p.until("the whole session", |p| {
            p.status().stations.len() == n && p.scores().len() == 2 * n
        });
    }
    let id = frozen.id;
    frozen.signal("STOP");
    for p in others.iter_mut() {
        p.until("the frozen station failed", |p| {
            !p.status().stations.contains(&id)
        });
    }
    std::thread::sleep(Duration::from_millis(1500));
    frozen.signal("CONT");
    let line = frozen.seen_or_expect(|l| l.starts_with("event excluded"));
    assert!(line.contains("failure timeout"), "{line}");
    frozen.seen_or_expect(|l| l.starts_with("event disconnected"));
    assert!(
        !frozen
            .log
            .iter()
            .any(|l| *l == format!("event session-master id={id}")),
        "it elected itself: {:#?}",
        frozen.log
    );
    // Give it time to do harm if it were to: past another failure timeout.
    std::thread::sleep(Duration::from_millis(1200));
    for p in others.iter_mut() {
        assert!(
            !p.status().stations.contains(&id),
            "{}: the frozen station is back",
            p.name
        );
    }
    // The survivors agree on every object's master, and none is the
    // frozen station; it holds nothing.
    let seen = masters(others);
    for m in &seen {
        assert!(m.values().all(|&master| master != id), "{seen:?}");
    }
    for w in seen.windows(2) {
        assert_eq!(w[0], w[1], "the survivors disagree");
    }
    assert!(frozen.scores().is_empty(), "it kept duplicas");
}

#[test]
fn a_frozen_mesh_member_is_excluded() {
    let mut a = start("a", "mesh", "client", None);
    let contact = a.addr.clone();
    let mut b = start("b", "mesh", "client", Some(&contact));
    let mut c = start("c", "mesh", "client", Some(&contact));
    freeze_and_continue(&mut b, &mut [&mut a, &mut c]);
}

#[test]
fn a_frozen_session_master_is_excluded() {
    let mut a = start("a", "mesh", "client", None);
    let contact = a.addr.clone();
    let mut b = start("b", "mesh", "client", Some(&contact));
    let mut c = start("c", "mesh", "client", Some(&contact));
    freeze_and_continue(&mut a, &mut [&mut b, &mut c]);
}

#[test]
fn a_frozen_client_server_server_is_excluded() {
    // Two servers; the client is on the second. The session master is
    // frozen: the second server takes over, the client stays.
    let mut s1 = start("s1", "client-server", "server", None);
    let contact = s1.addr.clone();
    let mut s2 = start("s2", "client-server", "server", Some(&contact));
    let second = s2.addr.clone();
    let mut client = start("client", "client-server", "client", Some(&second));
    freeze_and_continue(&mut s1, &mut [&mut s2, &mut client]);
}
