//! Sessions of real `netz-station` processes on loopback: kill -9 a station
//! (the session master, or a client) mid-session and check that the
//! survivors agree on the new session master and on every object of the
//! dead station: taken over with its last acknowledged state when its class
//! approves fault recovery, removed otherwise.

mod common;

use common::{Proc, ScoreLine, WAIT};
use std::collections::BTreeMap;

/// Starts a session creator and `clients` joiners, each publishing `publish` scores.
fn session(clients: &[(&str, &str)], publish: &str) -> Vec<Proc> {
    let server = Proc::start(
        "server",
        &[
            "--create",
            "--type",
            "server",
            "--token",
            "server",
            "--publish",
            publish,
        ],
    );
    let contact = server.addr.clone();
    let mut all = vec![server];
    for (kind, token) in clients {
        let n = if *kind == "tool" { "0" } else { publish };
        all.push(Proc::start(
            token,
            &[
                "--join",
                &contact,
                "--type",
                kind,
                "--token",
                token,
                "--publish",
                n,
            ],
        ));
    }
    all
}

/// Waits until every station sees `n` stations and `objects` scores.
fn settle(all: &mut [Proc], n: usize, objects: usize) {
    for p in all.iter_mut() {
        p.until("the whole session", |p| {
            p.status().stations.len() == n && p.scores().len() == objects
        });
    }
}

/// Sets new values on `owner`'s masters and waits until every other
/// station has them: the last acknowledged state.
fn update_and_ack(all: &mut [Proc], owner: usize) -> BTreeMap<u64, i64> {
    let mine: Vec<ScoreLine> = {
        let id = all[owner].id;
        all[owner]
            .scores()
            .into_iter()
            .filter(|s| s.master == id)
            .collect()
    };
    let mut want = BTreeMap::new();
    for (i, s) in mine.iter().enumerate() {
        let v = 1000 + i as i64 * 7;
        all[owner].send(&format!("set {} {v}", s.handle));
        let ok = all[owner].expect(|l| l == "ok" || l.starts_with("err"));
        assert_eq!(ok, "ok");
        want.insert(s.handle, v);
    }
    for p in all.iter_mut() {
        p.until("the updated values", |p| {
            let got = p.scores();
            want.iter()
                .all(|(h, v)| got.iter().any(|s| s.handle == *h && s.value == *v))
        });
    }
    want
}

/// Checks, on every survivor, the session master, the membership, and the
/// dead station's objects; returns the survivors' common view.
fn check_recovery(
    survivors: &mut [Proc],
    dead: &[ScoreLine],
    acked: &BTreeMap<u64, i64>,
    master: u32,
) -> Vec<ScoreLine> {
    let ids: Vec<u32> = {
        let mut v: Vec<u32> = survivors.iter().map(|p| p.id).collect();
        v.sort();
        v
    };
    let mut views = Vec::new();
    for p in survivors.iter_mut() {
        p.until("the recovered session", |p| {
            let st = p.status();
            if st.master != master || st.stations != ids {
                return false;
            }
            let got = p.scores();
            dead.iter().all(|d| {
                let now = got.iter().find(|s| s.handle == d.handle);
                if d.recover {
                    now.is_some_and(|s| s.master == master && s.value == acked[&d.handle])
                } else {
                    now.is_none()
                }
            })
        });
        views.push(p.scores());
    }
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v, &views[0], "survivor {i} disagrees");
    }
    views.remove(0)
}

#[test]
fn killing_the_session_master_process_hands_the_session_over() {
    let mut all = session(
        &[
            ("client", "alice"),
            ("client", "bob"),
            ("client", "carol"),
            ("tool", "monitor"),
        ],
        "2",
    );
    // 4 publishers x 2 scores, 5 stations.
    settle(&mut all, 5, 8);
    assert_eq!(
        all.iter().map(|p| p.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let acked = update_and_ack(&mut all, 0);
    let dead: Vec<ScoreLine> = all[0]
        .scores()
        .into_iter()
        .filter(|s| s.master == 1)
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead.iter().filter(|s| s.recover).count(), 1);

    let mut server = all.remove(0);
    server.kill();
    // The lowest surviving id takes the session over.
    let view = check_recovery(&mut all, &dead, &acked, 2);
    assert_eq!(view.len(), 7);
    for p in all.iter_mut() {
        // (Only the new master reports `session-master`; the others see it in `status`.)
        assert!(p.saw("event station-failed id=1"), "{}", p.name);
    }

    // The recovered object answers RMCs from its new master.
    let recovered = dead.iter().find(|s| s.recover).unwrap();
    let want = acked[&recovered.handle] + 5;
    all[2].send(&format!("add {} 5", recovered.handle));
    let r = all[2].expect(|l| l.starts_with("rmc "));
    assert_eq!(r, format!("rmc outcome=Success result={want}"));

    for p in all.iter_mut() {
        p.send("quit");
        assert_eq!(p.wait_exit(), Some(0), "{}", p.name);
    }
}

#[test]
fn killing_a_client_process_recovers_or_removes_its_objects() {
    let mut all = session(&[("client", "alice"), ("client", "bob")], "4");
    settle(&mut all, 3, 12);
    let acked = update_and_ack(&mut all, 1);
    let dead: Vec<ScoreLine> = all[1]
        .scores()
        .into_iter()
        .filter(|s| s.master == 2)
        .collect();
    assert_eq!(dead.len(), 4);

    let mut alice = all.remove(1);
    alice.kill();
    let view = check_recovery(&mut all, &dead, &acked, 1);
    assert_eq!(view.len(), 10);
    for p in all.iter_mut() {
        assert!(p.saw("event station-failed id=2"), "{}", p.name);
    }
    // Joining again after the crash works, with a new id.
    let contact = all[0].addr.clone();
    let again = Proc::start("alice-again", &["--join", &contact, "--token", "alice"]);
    assert_eq!(again.id, 4);
    all.push(again);
    settle(&mut all, 3, 10);
}

#[test]
fn the_binary_reports_clear_errors_and_never_outlives_its_parent() {
    let mut server = Proc::start("server", &["--create", "--deny", "mallory"]);

    // A port already in use.
    let mut p = Proc::spawn("busy", &["--bind", &server.addr, "--create"]);
    let l = p.expect(|l| l.starts_with("error"));
    assert!(l.contains("already in use"), "{l}");
    assert_eq!(p.wait_exit(), Some(2));

    // A wrong address.
    let mut p = Proc::spawn("typo", &["--join", "localhost"]);
    let l = p.expect(|l| l.starts_with("error"));
    assert!(l.contains("not an address"), "{l}");
    assert_eq!(p.wait_exit(), Some(2));
    let mut p = Proc::spawn("port0", &["--join", "127.0.0.1:0"]);
    let l = p.expect(|l| l.starts_with("error"));
    assert!(l.contains("invalid address"), "{l}");
    assert_eq!(p.wait_exit(), Some(2));

    // A refused join.
    let mut p = Proc::spawn("mallory", &["--join", &server.addr, "--token", "mallory"]);
    let l = p.expect(|l| l.starts_with("error"));
    assert!(l.contains("denied") && l.contains("mallory"), "{l}");
    assert_eq!(p.wait_exit(), Some(2));

    // Nobody answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut p = Proc::spawn("lonely", &["--join", &addr, "--join-ms", "300"]);
    let l = p.expect(|l| l.starts_with("error"));
    assert!(l.contains("no answer"), "{l}");
    assert_eq!(p.wait_exit(), Some(2));

    // When its parent goes (stdin closes), a station exits on its own.
    let mut child = Proc::start("child", &["--join", &server.addr]);
    drop(child.stdin_handle());
    assert_eq!(child.wait_exit(), Some(0));
    server.until("the child's failure", |s| s.status().stations == [1]);
    let _ = WAIT;
}
