//! Server migration on scale-in (MIG-1..4), deterministically simulated: a
//! cluster of three servers with clients spread over them; one server scales
//! in, its clients move with one call, its objects and rooms survive.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn cs(process_type: ProcessType, token: &str) -> StationConfig {
    StationConfig {
        topology: Topology::ClientServer,
        ..StationConfig::new(process_type, token)
    }
}

fn lossy(seed: u64) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(3),
        jitter: Duration::from_millis(3),
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.05,
        ..SimConfig::seeded(seed)
    }
}

/// Three servers (indexes 0, 1, 2) and two clients per server; returns the
/// clients' indexes per server.
fn world(sim: SimConfig) -> (Cluster, Vec<Vec<usize>>) {
    let mut c = Cluster::start(
        sim,
        registry(),
        vec![
            cs(ProcessType::Server, "s0"),
            cs(ProcessType::Server, "s1"),
            cs(ProcessType::Server, "s2"),
        ],
    )
    .unwrap();
    let mut clients = vec![Vec::new(); 3];
    for (s, list) in clients.iter_mut().enumerate() {
        for k in 0..2 {
            let i = c
                .join(cs(ProcessType::Client, &format!("c{s}{k}")), s)
                .unwrap();
            list.push(i);
        }
    }
    c.run_for(Duration::from_millis(300));
    (c, clients)
}

/// A short name of the events the migration tests look at.
fn name(e: &Event) -> Option<String> {
    Some(match e {
        Event::Offline { ours: true, .. } => "offline".into(),
        Event::Offline { ours: false, .. } => "offline-elsewhere".into(),
        Event::MigrateDisconnected { .. } => "disconnect(reconnect=true)".into(),
        Event::Reconnected { .. } => "connect(reconnect=true)".into(),
        Event::MigrateFailed { .. } => "migrate-failed".into(),
        Event::Disconnected { reason } => format!("disconnect: {reason}"),
        Event::RoomMigrateStart { .. } => "room-migrate-start".into(),
        Event::RoomMigrateComplete {
            success, room_id, ..
        } => format!("room-migrate-complete success={success} id={room_id}"),
        _ => return None,
    })
}

/// What each station saw, and how clients react to `Offline`.
#[derive(Default)]
struct Driver {
    log: BTreeMap<usize, Vec<String>>,
    events: BTreeMap<usize, Vec<Event>>,
    /// Clients that ignore `Offline`.
    ignore: Vec<usize>,
    /// Room owners that also move their room on `Offline`: (client, room).
    room_owners: Vec<(usize, DOHandle)>,
}

impl Driver {
    fn step(&mut self, c: &mut Cluster, d: Duration) {
        c.run_for(d);
        for i in c.live() {
            for e in c.events(i) {
                if let Event::Offline { ours: true, .. } = e {
                    if !self.ignore.contains(&i) {
                        let now = c.now();
                        c.station_mut(i).send_migrate(now).unwrap();
                        for (owner, room) in self.room_owners.clone() {
                            if owner == i {
                                c.station_mut(i).send_migrate_room(now, room).unwrap();
                            }
                        }
                    }
                }
                if let Some(n) = name(&e) {
                    self.log.entry(i).or_default().push(n);
                }
                self.events.entry(i).or_default().push(e);
            }
        }
    }

    fn run(&mut self, c: &mut Cluster, total: Duration, mut done: impl FnMut(&Cluster) -> bool) {
        let end = c.now() + total;
        while c.now() < end {
            self.step(c, Duration::from_millis(2));
            if done(c) {
                return;
            }
        }
        panic!("not done in {total:?}: {:#?}", self.log);
    }

    fn log(&self, i: usize) -> Vec<String> {
        self.log.get(&i).cloned().unwrap_or_default()
    }
}

const MIGRATED: [&str; 3] = [
    "offline",
    "disconnect(reconnect=true)",
    "connect(reconnect=true)",
];

#[test]
fn scaling_in_a_server_moves_its_clients_and_its_objects() {
    let (mut c, clients) = world(lossy(1));
    // Every station publishes a counter that fault recovery would *not*
    // keep: surviving means it was migrated.
    let mut objects = Vec::new();
    for i in 0..c.addrs.len() {
        let now = c.now();
        let h = c
            .station_mut(i)
            .publish(now, Counter::new(100 + i as i64, "x"))
            .unwrap()
            .handle();
        objects.push((i, h));
    }
    c.run_for(Duration::from_millis(500));
    let leaving = c.station(1).id();
    let movers = clients[1].clone();
    let mover_ids: Vec<StationId> = movers.iter().map(|i| c.station(*i).id()).collect();
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(10))
        .unwrap();
    // No new client through the leaving server.
    let mut d = Driver::default();
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(1).is_closed()
    });
    d.step(&mut c, Duration::from_secs(2));

    for &i in &movers {
        assert_eq!(d.log(i), MIGRATED, "client {i}");
        let relay = c.station(i).relay().unwrap();
        assert_ne!(relay, leaving);
        assert!(!c.station(i).is_closed());
    }
    for &i in clients[0].iter().chain(&clients[2]) {
        assert_eq!(d.log(i), ["offline-elsewhere"], "client {i}");
    }
    // Everyone agrees on the members and on the migrated clients' servers.
    for i in c.live().into_iter().filter(|i| *i != 1) {
        let st = c.station(i);
        assert_eq!(st.stations().len(), 8, "station {i}");
        assert!(st.station_info(leaving).is_none());
        for (&m, id) in movers.iter().zip(&mover_ids) {
            assert_eq!(
                st.station_info(*id).unwrap().relay,
                c.station(m).relay(),
                "station {i} about {id}"
            );
        }
        // Every object survived with its value; the leaving server's is
        // mastered elsewhere, the clients' stayed with them.
        for &(owner, h) in &objects {
            if owner == 1 {
                let m = st.master_of(h).unwrap();
                assert!(m != leaving && m.is_some(), "{h:?} on {i}");
            } else {
                assert_eq!(st.master_of(h), Some(c.station(owner).id()));
            }
            let v = st.get::<Counter>(h).unwrap().lock().data.value;
            assert_eq!(v, 100 + owner as i64);
        }
    }
    // A migrated client still calls RMCs and publishes, through its new server.
    let (_, far) = objects[clients[2][0]];
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(movers[0])
        .object::<Counter>(far)
        .call(&ctx, ADD, &(5i64,)));
    assert!(c.wait(&ctx, Duration::from_secs(3)));
    assert_eq!(ctx.result(), Some(100 + clients[2][0] as i64 + 5));
}

#[test]
fn reliable_messages_sent_while_migrating_arrive_exactly_once_in_order() {
    // Every seed is a different interleaving of the hand-over with the
    // loss, duplication and reordering of the network.
    for seed in 0..40 {
        reliable_run(seed);
    }
}

fn reliable_run(seed: u64) {
    let (mut c, clients) = world(lossy(seed));
    // A harsher network once everyone is in.
    c.sim.set_config(SimConfig {
        loss: 0.15,
        reorder: 0.2,
        ..lossy(seed)
    });
    let sender = clients[1][0];
    let receiver = clients[2][1];
    let now = c.now();
    let target = c
        .station_mut(receiver)
        .publish(now, Counter::new(0, "inbox"))
        .unwrap()
        .handle();
    let on_server = c
        .station_mut(0)
        .publish(now, Counter::new(0, "server inbox"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(500));
    let mut d = Driver::default();
    let mut sent = 0i64;
    let mut calls = Vec::new();
    let mut send = |c: &mut Cluster, sent: &mut i64| {
        *sent += 1;
        let st = c.station_mut(sender);
        assert!(st
            .object::<Counter>(target)
            .action_on_master(BUMP, &(*sent,)));
        assert!(st
            .object::<Counter>(on_server)
            .action_on_master(BUMP, &(*sent,)));
        let ctx: RmcContext<i64> = RmcContext::on_master();
        ctx.set_sub_stream_id(2);
        assert!(st.object::<Counter>(target).call(&ctx, ADD, &(1i64,)));
        calls.push(ctx);
    };
    for _ in 0..20 {
        send(&mut c, &mut sent);
        d.step(&mut c, Duration::from_millis(3));
    }
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(10))
        .unwrap();
    // Keep sending every few milliseconds through the whole migration.
    let mut after = 0;
    while after < 40 {
        send(&mut c, &mut sent);
        d.step(&mut c, Duration::from_millis(3));
        if d.log(sender).len() == 3 {
            after += 1;
        }
        assert!(c.now() < Instant::from_millis(60_000), "{:#?}", d.log);
    }
    assert_eq!(d.log(sender), MIGRATED);
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(1).is_closed() && calls.iter().all(|x| x.is_complete())
    });
    d.step(&mut c, Duration::from_secs(2));
    let want: Vec<i64> = (1..=sent).collect();
    // On the masters, and on every duplica (actions run on master then duplicas).
    for h in [target, on_server] {
        for i in c.live().into_iter().filter(|i| *i != 1) {
            let r = c
                .station(i)
                .get::<Counter>(h)
                .unwrap_or_else(|| panic!("no {h:?} on station {i}"));
            assert_eq!(r.lock().seen, want, "{h:?} on station {i}");
        }
    }
    assert!(calls.iter().all(|x| x.outcome() == Outcome::Success));
    // Nothing was given up on: every message got through.
    for i in c.live() {
        assert_eq!(c.station(i).stats().sequence_gaps, 0, "station {i}");
    }
    assert_eq!(
        c.station(receiver)
            .get::<Counter>(target)
            .unwrap()
            .lock()
            .data
            .value,
        sent
    );
}

#[test]
fn a_client_that_ignores_offline_is_disconnected_when_the_drain_ends() {
    let (mut c, clients) = world(SimConfig::seeded(3));
    let stubborn = clients[1][0];
    let polite = clients[1][1];
    let stubborn_id = c.station(stubborn).id();
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(2))
        .unwrap();
    let mut d = Driver {
        ignore: vec![stubborn],
        ..Default::default()
    };
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(1).is_closed()
    });
    d.step(&mut c, Duration::from_secs(3));
    assert_eq!(d.log(polite), MIGRATED);
    let log = d.log(stubborn);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], "offline");
    assert!(
        log[1].starts_with("disconnect: ") && log[1].contains("drain timeout ended"),
        "{log:?}"
    );
    assert!(c.station(stubborn).is_closed());
    for i in [0, 2, polite] {
        assert!(c.station(i).station_info(stubborn_id).is_none(), "{i}");
    }
}

#[test]
fn a_server_killed_without_warning_falls_back_to_fault_recovery() {
    let (mut c, clients) = world(SimConfig::seeded(4));
    let now = c.now();
    let kept = c
        .station_mut(1)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    let lost = c
        .station_mut(1)
        .publish(now, Counter::recovering(false))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    c.crash(1);
    let mut d = Driver::default();
    d.run(&mut c, Duration::from_secs(20), |c| {
        clients[1].iter().all(|i| c.station(*i).is_closed())
            && c.station(0).station_info(StationId(2)).is_none()
    });
    d.step(&mut c, Duration::from_secs(2));
    for &i in &clients[1] {
        assert_eq!(
            d.log(i),
            ["disconnect: lost the connection to the server"],
            "client {i}"
        );
    }
    for i in [0, 2, clients[0][0], clients[2][0]] {
        assert!(d.log(i).is_empty(), "{i}: {:?}", d.log(i));
        assert_eq!(c.station(i).master_of(kept), Some(c.station(0).id()));
        assert!(!c.station(i).contains(lost));
    }
}

#[test]
fn an_offline_server_refuses_new_clients_and_rooms() {
    let (mut c, clients) = world(SimConfig::seeded(5));
    let stays = clients[1][0];
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(5))
        .unwrap();
    c.run_for(Duration::from_millis(100));
    let err = c.join(cs(ProcessType::Client, "late"), 1).unwrap_err();
    assert!(
        matches!(&err, JoinError::Denied(r) if r.contains("going offline")),
        "{err:?}"
    );
    let now = c.now();
    let req = c.station_mut(stays).create_room(now, Vec::new()).unwrap();
    let mut d = Driver {
        ignore: vec![stays],
        ..Default::default()
    };
    d.run(&mut c, Duration::from_secs(2), |_| true);
    d.step(&mut c, Duration::from_millis(200));
    let got = d.events[&stays].iter().find_map(|e| match e {
        Event::RoomResult {
            request, result, ..
        } if *request == req => Some(result.clone()),
        _ => None,
    });
    let err = got.unwrap().unwrap_err();
    assert_eq!(err.code, RoomError::SERVER_OFFLINE);
    // Joining through a server that stays works.
    c.join(cs(ProcessType::Client, "late"), 2).unwrap();
}

/// Creates a room owned by client `owner`, with `others` as members, a
/// property, and a room object on the room's server `server`.
fn room_setup(
    c: &mut Cluster,
    d: &mut Driver,
    owner: usize,
    others: &[usize],
    server: usize,
) -> (DOHandle, DOHandle) {
    let now = c.now();
    let req = c
        .station_mut(owner)
        .create_room(now, vec![("map".into(), "harbour".into())])
        .unwrap();
    let mut room = None;
    d.run(c, Duration::from_secs(2), |_| true);
    for _ in 0..100 {
        d.step(c, Duration::from_millis(5));
        room = d.events.get(&owner).and_then(|v| {
            v.iter().find_map(|e| match e {
                Event::RoomResult {
                    request,
                    room,
                    result: Ok(_),
                } if *request == req => Some(*room),
                _ => None,
            })
        });
        if room.is_some() {
            break;
        }
    }
    let room = room.expect("room created");
    let everyone: Vec<usize> = c.live();
    d.run(c, Duration::from_secs(2), |c| {
        everyone.iter().all(|i| c.station(*i).room(room).is_some())
    });
    for &o in others {
        let now = c.now();
        c.station_mut(o).join_room(now, room).unwrap();
    }
    let now = c.now();
    c.station_mut(owner)
        .set_room_property(now, room, "mode", "ctf")
        .unwrap();
    let obj = c
        .station_mut(server)
        .publish(now, Counter::new(42, "room object"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    let now = c.now();
    c.station_mut(server)
        .attach_to_room(now, room, obj)
        .unwrap();
    d.step(c, Duration::from_millis(300));
    (room, obj)
}

#[test]
fn a_room_moves_with_its_members_properties_and_objects_when_its_owner_asks() {
    let (mut c, clients) = world(lossy(8));
    let (owner, member, far) = (clients[1][0], clients[1][1], clients[2][0]);
    let mut d = Driver::default();
    let (room, obj) = room_setup(&mut c, &mut d, owner, &[member, far], 1);
    let before = c.station(far).room(room).unwrap();
    assert_eq!(before.server, c.station(1).id());
    assert_eq!(before.owner, c.station(owner).id());
    assert_eq!(before.members.len(), 3);
    // Only the owner may migrate the room.
    let now = c.now();
    let err = c
        .station_mut(member)
        .send_migrate_room(now, room)
        .unwrap_err();
    assert!(matches!(err, StationError::NotRoomOwner { .. }), "{err}");
    assert!(err.to_string().contains("only the room owner"), "{err}");

    d.room_owners.push((owner, room));
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(10))
        .unwrap();
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(1).is_closed()
    });
    d.step(&mut c, Duration::from_secs(1));

    let after = c.station(far).room(room).unwrap();
    assert_ne!(after.id, before.id, "a new room id");
    assert_ne!(after.server, before.server);
    assert_eq!(after.migrations, 1);
    let complete = format!("room-migrate-complete success=true id={}", after.id);
    for i in [owner, member, far] {
        let log: Vec<String> = d
            .log(i)
            .into_iter()
            .filter(|l| l.starts_with("room-"))
            .collect();
        assert_eq!(log, ["room-migrate-start", complete.as_str()], "member {i}");
    }
    for i in c.live().into_iter().filter(|i| *i != 1) {
        let r = c.station(i).room(room).unwrap();
        assert_eq!(r.id, after.id);
        assert_eq!(r.owner, before.owner);
        assert_eq!(r.members, before.members);
        assert_eq!(
            r.properties,
            [
                ("map".to_string(), "harbour".to_string()),
                ("mode".to_string(), "ctf".to_string())
            ]
        );
        assert_eq!(c.station(i).master_of(obj), Some(after.server));
        assert_eq!(
            c.station(i).get::<Counter>(obj).unwrap().lock().data.value,
            42
        );
    }
}

#[test]
fn a_room_whose_owner_never_comes_back_moves_anyway_and_gets_a_new_owner() {
    let (mut c, clients) = world(SimConfig::seeded(9));
    let (owner, member) = (clients[1][0], clients[0][0]);
    let mut d = Driver {
        ignore: vec![owner],
        ..Default::default()
    };
    let (room, obj) = room_setup(&mut c, &mut d, owner, &[member], 1);
    let now = c.now();
    c.station_mut(1)
        .scale_in(now, Duration::from_secs(2))
        .unwrap();
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(1).is_closed()
    });
    d.step(&mut c, Duration::from_secs(3));
    let r = c.station(member).room(room).unwrap();
    assert_eq!(r.owner, c.station(member).id());
    assert_eq!(r.members, [c.station(member).id()]);
    assert_ne!(r.server, c.station(1).id());
    assert_eq!(c.station(member).master_of(obj), Some(r.server));
    let log: Vec<String> = d
        .log(member)
        .into_iter()
        .filter(|l| l.starts_with("room-"))
        .collect();
    assert_eq!(
        log,
        [
            "room-migrate-start".to_string(),
            format!("room-migrate-complete success=true id={}", r.id)
        ]
    );
    assert!(c.station(owner).is_closed());
}

#[test]
fn the_session_master_can_scale_in_too() {
    let (mut c, clients) = world(lossy(12));
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(7, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    c.station_mut(0)
        .scale_in(now, Duration::from_secs(10))
        .unwrap();
    let mut d = Driver::default();
    d.run(&mut c, Duration::from_secs(20), |c| {
        c.station(0).is_closed()
    });
    d.step(&mut c, Duration::from_secs(3));
    for &i in &clients[0] {
        assert_eq!(d.log(i), MIGRATED, "client {i}");
    }
    let master = c.station(1).id();
    for i in c.live().into_iter().filter(|i| *i != 0) {
        let st = c.station(i);
        assert_eq!(st.session_master(), master, "station {i}");
        assert_eq!(st.stations().len(), 8, "station {i}");
        let m = st.master_of(h).unwrap();
        assert!(m == c.station(1).id() || m == c.station(2).id());
        assert_eq!(st.get::<Counter>(h).unwrap().lock().data.value, 7);
    }
    // The new session master admits clients.
    c.join(cs(ProcessType::Client, "late"), 2).unwrap();
}
