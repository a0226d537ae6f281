//! Server migration with real `netz-station` processes on loopback
//! (MIG-1..4): three servers, clients spread over them; one server scales
//! in on SIGTERM, its clients migrate, its room and objects survive, and
//! no reliable message is lost or duplicated. A server killed without
//! warning is a plain disconnect for its clients.

mod common;

use common::{Proc, ScoreLine};

const CS: &[&str] = &["--topology", "client-server"];

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn server(name: &str, contact: Option<&str>, extra: &[&str]) -> Proc {
    let mut args: Vec<&str> = match contact {
        None => vec!["--create"],
        Some(c) => vec!["--join", c],
    };
    args.extend_from_slice(&["--type", "server", "--token", name]);
    args.extend_from_slice(CS);
    args.extend_from_slice(extra);
    Proc::start(name, &args)
}

fn client(name: &str, contact: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--join", contact, "--token", name];
    args.extend_from_slice(CS);
    args.extend_from_slice(extra);
    Proc::start(name, &args)
}

/// One `room` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoomLine {
    handle: u64,
    id: String,
    server: u32,
    owner: u32,
    members: String,
    props: String,
    objects: usize,
}

fn rooms(p: &mut Proc) -> Vec<RoomLine> {
    p.send("rooms");
    let mut out = Vec::new();
    loop {
        let l = p.expect(|l| l.starts_with("room ") || l == "end");
        if l == "end" {
            return out;
        }
        out.push(RoomLine {
            handle: field(&l, "handle").parse().unwrap(),
            id: field(&l, "id").into(),
            server: field(&l, "server").parse().unwrap(),
            owner: field(&l, "owner").parse().unwrap(),
            members: field(&l, "members").into(),
            props: field(&l, "props").into(),
            objects: field(&l, "objects").parse().unwrap(),
        });
    }
}

fn ok(p: &mut Proc, cmd: &str) -> String {
    p.send(cmd);
    let l = p.expect(|l| {
        l == "ok" || l.starts_with("err") || l.starts_with("room-ok") || l.starts_with("room-")
    });
    assert!(!l.starts_with("err"), "{}: {cmd}: {l}", p.name);
    l
}

#[test]
fn scaling_in_a_server_process_moves_its_clients_room_and_objects() {
    let s1 = server("s1", None, &["--publish", "2", "--recover", "none"]);
    let contact = s1.addr.clone();
    let mut s2 = server(
        "s2",
        Some(&contact),
        &["--publish", "2", "--recover", "none", "--drain-ms", "4000"],
    );
    let s3 = server(
        "s3",
        Some(&contact),
        &["--publish", "2", "--recover", "none"],
    );
    let one = ["--publish", "1", "--recover", "none"];
    let (a1, b1) = (client("a1", &s1.addr, &one), client("b1", &s1.addr, &one));
    let mut a2 = client("a2", &s2.addr, &one);
    let mut b2 = client("b2", &s2.addr, &one);
    let ignore = ["--publish", "1", "--recover", "none", "--migrate", "ignore"];
    let mut z2 = client("z2", &s2.addr, &ignore);
    let a3 = client("a3", &s3.addr, &one);
    let b3 = client("b3", &s3.addr, &one);
    let mut all = vec![s1, s3, a1, b1, a3, b3];
    for p in all.iter_mut().chain([&mut s2, &mut a2, &mut b2, &mut z2]) {
        p.until("the whole cluster", |p| {
            p.status().stations.len() == 10 && p.scores().len() == 13
        });
    }
    // A room on s2, owned by a2, with members on s2 and s3, a property and
    // a room object (one of s2's scores).
    let l = ok(&mut a2, "room-create map=harbour");
    assert!(l.starts_with("room-created"), "{l}");
    let room: u64 = field(&l, "handle").parse().unwrap();
    let old_id = field(&l, "id").to_string();
    for p in [&mut b2, &mut all[4]] {
        p.until("the room", |p| rooms(p).len() == 1);
        ok(p, &format!("room-join {room}"));
    }
    ok(&mut a2, &format!("room-set {room} mode ctf"));
    let s2_scores: Vec<ScoreLine> = s2
        .scores()
        .into_iter()
        .filter(|s| s.master == s2.id)
        .collect();
    assert_eq!(s2_scores.len(), 2);
    ok(
        &mut s2,
        &format!("room-attach {room} {}", s2_scores[0].handle),
    );
    // Only the owner may migrate the room.
    b2.send(&format!("room-migrate {room}"));
    let l = b2.expect(|l| l == "ok" || l.starts_with("err"));
    assert!(l.contains("only the room owner"), "{l}");
    let before = {
        let r = &mut all[4];
        r.until("the room's members", |p| {
            rooms(p)
                .first()
                .is_some_and(|r| r.members.split(',').count() == 3 && r.objects == 1)
        });
        rooms(r).remove(0)
    };
    assert_eq!(before.server, s2.id);
    assert_eq!(before.owner, a2.id);
    assert_eq!(before.props, "map=harbour;mode=ctf");

    // a2 sends reliable messages to a3's score through the whole migration.
    let inbox = all[4]
        .scores()
        .into_iter()
        .find(|s| s.master == all[4].id)
        .unwrap()
        .handle;
    ok(&mut a2, &format!("spam {inbox} 300 5"));
    std::thread::sleep(std::time::Duration::from_millis(200));

    s2.terminate();
    s2.expect(|l| l == "scaling-in");
    for p in [&mut a2, &mut b2] {
        p.expect(|l| l == "event offline server=2 ours=true");
        p.expect(|l| l.starts_with("event migrate-disconnected from=2 "));
        let l = p.expect(|l| l.starts_with("event reconnected "));
        assert_ne!(field(&l, "server"), "2");
    }
    // The room's members see the room move, with its new id (for a2 and
    // b2, before or after their own reconnection: the two are independent).
    let mut new_id = None;
    for p in [&mut a2, &mut b2, &mut all[4]] {
        let start = format!("event room-migrate-start handle={room}");
        p.seen_or_expect(|l| l == start);
        let l = p.seen_or_expect(|l| {
            l.starts_with(&format!("event room-migrate-complete handle={room} "))
        });
        assert!(p.position(&start) < p.position(&l), "{}", p.name);
        assert_eq!(field(&l, "success"), "true", "{l}");
        let id = field(&l, "id").to_string();
        assert_ne!(id, old_id);
        assert_eq!(new_id.get_or_insert(id.clone()), &id);
    }
    let new_id = new_id.unwrap();
    // The client that ignored `offline` is disconnected when the drain ends.
    z2.expect(|l| l == "event offline server=2 ours=true");
    let l = z2.expect(|l| l.starts_with("event disconnected"));
    assert!(l.contains("drain timeout ended"), "{l}");
    assert_eq!(s2.wait_exit(), Some(0));
    a2.expect(|l| l.starts_with("spam-done"));

    all.push(a2);
    all.push(b2);
    let mut ids: Vec<u32> = all.iter().map(|p| p.id).collect();
    ids.sort();
    for p in all.iter_mut() {
        p.until("the cluster without s2", |p| {
            let st = p.status();
            st.stations == ids
                && p.scores().iter().all(|s| s.master != 2)
                && rooms(p).first().is_some_and(|r| r.id == new_id)
        });
        let line = p
            .log
            .iter()
            .find(|l| l.starts_with("event disconnected"))
            .cloned();
        assert_eq!(line, None, "{}", p.name);
        // s2's scores were migrated, not recovered (recover=none): same values.
        let scores = p.scores();
        for s in &s2_scores {
            let now = scores.iter().find(|x| x.handle == s.handle).unwrap();
            assert!(now.master == 1 || now.master == 3, "{now:?}");
            assert_eq!(now.value, s.value);
        }
        let r = rooms(p).remove(0);
        assert_eq!(r.handle, room);
        assert_eq!(r.owner, before.owner);
        assert_eq!(r.members, before.members);
        assert_eq!(r.props, before.props);
        assert_eq!(r.objects, 1);
        assert!(r.server == 1 || r.server == 3, "{r:?}");
        let attached = scores
            .iter()
            .find(|x| x.handle == s2_scores[0].handle)
            .unwrap();
        assert_eq!(attached.master, r.server);
    }
    // Every message arrived once, in order.
    let want: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let a3 = &mut all[4];
    a3.send(&format!("seen {inbox}"));
    let l = a3.expect(|l| l.starts_with("seen "));
    assert_eq!(field(&l, "values"), want.join(","));
    for p in all.iter_mut() {
        p.send("quit");
        assert_eq!(p.wait_exit(), Some(0), "{}", p.name);
    }
}

#[test]
fn a_server_process_killed_without_warning_is_a_plain_disconnect() {
    let s1 = server("s1", None, &[]);
    let mut s2 = server("s2", Some(&s1.addr), &[]);
    let mut a2 = client("a2", &s2.addr, &[]);
    let mut a1 = client("a1", &s1.addr, &[]);
    for p in [&mut a1, &mut a2] {
        p.until("the cluster", |p| p.status().stations.len() == 4);
    }
    s2.kill();
    let l = a2.expect(|l| l.starts_with("event disconnected"));
    assert_eq!(
        l,
        "event disconnected reason=lost the connection to the server"
    );
    a1.expect(|l| l == "event station-failed id=2");
    for l in a1.log.iter().chain(&a2.log) {
        assert!(
            !l.contains("offline") && !l.contains("migrate") && !l.contains("reconnected"),
            "{l}"
        );
    }
}
