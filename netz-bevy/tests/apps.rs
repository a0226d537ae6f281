//! Real Bevy apps stepped by hand (`app.update()`), one station each, on
//! loopback sockets: objects become entities, components follow the
//! master, RMCs from systems complete with their value, and a failed
//! station's objects are recovered or despawned.
#![allow(missing_docs)]

mod common;

use bevy_app::Update;
use bevy_ecs::prelude::*;
use bevy_ecs::system::RunSystemOnce;
use common::*;
use netz::prelude::*;
use netz_bevy::{
    Netz, NetzObject, ObjectMasterChanged, ObjectRemoved, RmcCompleted, Role, SessionMasterChanged,
    StationFailed, StationLeft,
};

#[test]
fn an_object_published_on_the_master_appears_as_an_entity_with_its_components() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));

    let handle = publish(
        &mut server,
        Player {
            position: Position {
                x: 3.0,
                y: -1.5,
                ..Default::default()
            },
            health: Health {
                hp: 70,
                ..Default::default()
            },
        },
    );
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));

    // The duplica's entity carries the object's handle, its role and both datasets.
    let e = entity(&client, handle).unwrap();
    let obj = *client.world().get::<NetzObject>(e).unwrap();
    assert_eq!(obj.handle, handle);
    assert_eq!(obj.role, Role::Duplica);
    assert_eq!(obj.master, local_id(&server));
    let p = component::<Position>(&client, handle).unwrap();
    assert_eq!((p.x, p.y), (3.0, -1.5));
    assert_eq!(component::<Health>(&client, handle).unwrap().hp, 70);
    // The master has its own entity, as master.
    let m = entity(&server, handle).unwrap();
    assert_eq!(
        server.world().get::<NetzObject>(m).unwrap().role,
        Role::Master
    );
    assert_eq!(component::<Health>(&server, handle).unwrap().hp, 70);
}

/// How often the duplica's `Changed` filters fired, and the last values seen.
#[derive(Resource, Default)]
struct Changes {
    position: u32,
    health: u32,
    last_x: f32,
}

fn count_changes(
    mut changes: ResMut<Changes>,
    positions: Query<&Position, Changed<Position>>,
    healths: Query<&Health, Changed<Health>>,
) {
    for p in &positions {
        changes.position += 1;
        changes.last_x = p.x;
    }
    changes.health += healths.iter().count() as u32;
}

/// The master's game logic: moves every master player by `Step` along x.
#[derive(Resource, Default)]
struct Step(f32);

fn walk(step: Res<Step>, mut q: Query<(&NetzObject, &mut Position)>) {
    if step.0 == 0.0 {
        return;
    }
    for (obj, mut p) in &mut q {
        if obj.is_master() {
            p.x += step.0;
        }
    }
}

#[test]
fn a_change_of_a_master_component_reaches_the_duplica_and_fires_change_detection_once() {
    let (mut server, addr) = server();
    server.init_resource::<Step>().add_systems(Update, walk);
    let mut client = client("a", addr);
    client
        .init_resource::<Changes>()
        .add_systems(Update, count_changes);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));

    let handle = publish(
        &mut server,
        Player {
            health: Health {
                hp: 10,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));
    step(&mut [&mut server, &mut client], 10);
    // Spawned once: `Added` counts as changed, then nothing changes.
    let before = (
        client.world().resource::<Changes>().position,
        client.world().resource::<Changes>().health,
    );
    assert_eq!(before, (1, 1));

    // One frame of movement on the master.
    server.world_mut().resource_mut::<Step>().0 = 2.5;
    server.update();
    server.world_mut().resource_mut::<Step>().0 = 0.0;
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        component::<Position>(a[1], handle).is_some_and(|p| p.x == 2.5)
    }));
    step(&mut [&mut server, &mut client], 10);
    let c = client.world().resource::<Changes>();
    assert_eq!(c.position, 2, "the position changed once on the duplica");
    assert_eq!(c.last_x, 2.5);
    assert_eq!(
        c.health, 1,
        "the health did not change, so no change detection"
    );

    // The master's object itself follows its component.
    let on_master = server
        .world()
        .resource::<netz_bevy::NetzEntities>()
        .get(handle)
        .unwrap();
    let r = server
        .world()
        .get::<netz_bevy::NetzRef<Player>>(on_master)
        .unwrap();
    assert_eq!(r.0.lock().position.x, 2.5);

    // Writing the same value again is no change on the wire nor on the duplica.
    let e = entity(&server, handle).unwrap();
    server.world_mut().get_mut::<Position>(e).unwrap().x = 2.5;
    step(&mut [&mut server, &mut client], 20);
    assert_eq!(client.world().resource::<Changes>().position, 2);
}

/// The client's game logic: heals the first player it sees, once.
#[derive(Resource, Default)]
struct Healed(Option<netz_bevy::CallId>);

fn heal_first_player(
    mut healed: ResMut<Healed>,
    mut netz: Netz,
    players: Query<Entity, With<netz_bevy::NetzRef<Player>>>,
) {
    if healed.0.is_some() {
        return;
    }
    if let Some(e) = players.iter().next() {
        let call = netz
            .rmc::<Player, i32>(e, |p, ctx| p.call_heal(ctx, 5))
            .expect("call sent");
        healed.0 = Some(call.call);
    }
}

#[test]
fn an_rmc_from_a_system_completes_with_its_value() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(
        &mut server,
        Player {
            health: Health {
                hp: 100,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));

    client
        .init_resource::<Healed>()
        .add_systems(Update, heal_first_player);
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        !a[1].world().resource::<Seen<RmcCompleted>>().0.is_empty()
    }));
    let call = client.world().resource::<Healed>().0.expect("called");
    let done = client.world().resource::<Seen<RmcCompleted>>().0[0].clone();
    assert_eq!(done.call, call);
    assert_eq!(done.handle, handle);
    assert_eq!(done.entity, entity(&client, handle).unwrap());
    assert_eq!(done.outcome, Outcome::Success);
    assert_eq!(done.value::<i32>(), Some(&105));
    assert_eq!(done.value::<i64>(), None, "the value has the RMC's type");

    // The RMC changed the master's object: its component and the duplica's follow.
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        component::<Health>(a[1], handle).is_some_and(|h| h.hp == 105)
    }));
    assert_eq!(component::<Health>(&server, handle).unwrap().hp, 105);
}

#[test]
fn a_failed_station_s_objects_are_recovered_or_despawned_per_approve_fault_recovery() {
    let (mut server, addr) = server();
    let mut a = client("a", addr);
    let mut b = client("b", addr);
    assert!(step_until(&mut [&mut server, &mut a, &mut b], 300, |x| {
        all_joined(x, 3)
    }));
    let a_id = local_id(&a);
    let player = publish(
        &mut a,
        Player {
            health: Health {
                hp: 42,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let bullet = publish(
        &mut a,
        Bullet {
            position: Position {
                x: 9.0,
                ..Default::default()
            },
        },
    );
    assert!(step_until(&mut [&mut server, &mut a, &mut b], 100, |x| {
        [player, bullet]
            .iter()
            .all(|h| entity(x[0], *h).is_some() && entity(x[2], *h).is_some())
    }));
    let server_bullet = entity(&server, bullet).unwrap();

    // The client is killed: its app (and socket) is dropped without leaving.
    drop(a);
    let server_id = local_id(&server);
    assert!(step_until(&mut [&mut server, &mut b], 200, |x| {
        x.iter().all(|app| {
            entity(app, bullet).is_none()
                && app
                    .world()
                    .get::<NetzObject>(entity(app, player).unwrap())
                    .unwrap()
                    .master
                    == server_id
        })
    }));

    // The session master saw the failure, took the player over as master
    // (its components intact) and removed the bullet (its entity despawned).
    assert_eq!(
        server.world().resource::<Seen<StationFailed>>().0,
        vec![StationFailed(a_id)]
    );
    let p = entity(&server, player).unwrap();
    assert_eq!(
        server.world().get::<NetzObject>(p).unwrap().role,
        Role::Master
    );
    assert_eq!(component::<Health>(&server, player).unwrap().hp, 42);
    assert!(
        server.world().get_entity(server_bullet).is_err(),
        "bullet despawned"
    );
    let removed = &server.world().resource::<Seen<ObjectRemoved>>().0;
    assert_eq!(
        removed.iter().map(|r| r.handle).collect::<Vec<_>>(),
        vec![bullet]
    );
    let moved = &server.world().resource::<Seen<ObjectMasterChanged>>().0;
    assert!(
        moved
            .iter()
            .any(|m| m.handle == player && m.role == Role::Master),
        "{moved:?}"
    );
    // The other client keeps a duplica, now of the server's master.
    let q = entity(&b, player).unwrap();
    assert_eq!(b.world().get::<NetzObject>(q).unwrap().role, Role::Duplica);
    assert_eq!(component::<Health>(&b, player).unwrap().hp, 42);

    // The recovered master is live: its component changes reach the duplica.
    server.world_mut().get_mut::<Health>(p).unwrap().hp = 43;
    assert!(step_until(&mut [&mut server, &mut b], 50, |x| {
        component::<Health>(x[1], player).is_some_and(|h| h.hp == 43)
    }));
}

/// How often the duplica's position changed, and to what.
#[derive(Resource, Default)]
struct Moves(Vec<f32>);

fn record_moves(mut moves: ResMut<Moves>, q: Query<&Position, Changed<Position>>) {
    moves.0.extend(q.iter().map(|p| p.x));
}

#[test]
fn an_action_from_a_system_runs_on_the_master_and_moves_every_copy() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    client
        .init_resource::<Moves>()
        .add_systems(Update, record_moves);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(&mut server, Player::default());
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));

    // A client system runs `teleport` on the master, which runs it on every duplica.
    let e = entity(&client, handle).unwrap();
    client
        .world_mut()
        .run_system_once(move |mut netz: Netz| {
            netz.action::<Player>(e, |p| p.teleport_on_master(7.0))
        })
        .unwrap()
        .expect("action sent");
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        component::<Position>(a[0], handle).is_some_and(|p| p.x == 7.0)
            && component::<Position>(a[1], handle).is_some_and(|p| p.x == 7.0)
    }));
    step(&mut [&mut server, &mut client], 10);
    // Spawned at 0, then one change to 7 (the action on the duplica and the
    // master's update carry the same value: no second change).
    assert_eq!(client.world().resource::<Moves>().0, vec![0.0, 7.0]);

    // The class is checked: a player is not a bullet.
    let wrong = client
        .world_mut()
        .run_system_once(move |mut netz: Netz| netz.action::<Bullet>(e, |_| true))
        .unwrap();
    assert!(
        matches!(wrong, Err(netz_bevy::NetzError::WrongClass { .. })),
        "{wrong:?}"
    );
}

#[test]
fn well_known_objects_are_entities_on_every_station() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    step(&mut [&mut server, &mut client], 5);
    for (app, role) in [(&mut server, Role::Master), (&mut client, Role::Duplica)] {
        let world = app.world_mut();
        let mut q = world.query::<(&NetzObject, &netz_bevy::NetzRef<Arena>, &Size)>();
        let found: Vec<Role> = q.iter(world).map(|(o, _, _)| o.role).collect();
        assert_eq!(found, vec![role]);
    }
}

#[test]
fn a_station_that_leaves_is_seen_leaving_and_its_objects_are_recovered() {
    let (mut server, addr) = server();
    let mut a = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut a], 200, |x| all_joined(
        x, 2
    )));
    let a_id = local_id(&a);
    let player = publish(&mut a, Player::default());
    let bullet = publish(&mut a, Bullet::default());
    assert!(step_until(&mut [&mut server, &mut a], 100, |x| {
        entity(x[0], player).is_some() && entity(x[0], bullet).is_some()
    }));
    a.world_mut()
        .run_system_once(|mut netz: Netz| netz.leave())
        .unwrap()
        .expect("leave");
    assert!(step_until(&mut [&mut server, &mut a], 100, |x| {
        entity(x[0], bullet).is_none()
            && x[0]
                .world()
                .get::<NetzObject>(entity(x[0], player).unwrap())
                .unwrap()
                .role
                == Role::Master
    }));
    assert_eq!(
        server.world().resource::<Seen<StationLeft>>().0,
        vec![StationLeft(a_id)]
    );
    assert!(server
        .world()
        .resource::<Seen<StationFailed>>()
        .0
        .is_empty());
}

#[test]
fn when_the_session_master_fails_the_lowest_station_takes_over() {
    let (mut server, addr) = server();
    let mut a = client("a", addr);
    let mut b = client("b", addr);
    assert!(step_until(&mut [&mut server, &mut a, &mut b], 300, |x| {
        all_joined(x, 3)
    }));
    let a_id = local_id(&a);
    assert!(a_id < local_id(&b));
    drop(server);
    assert!(step_until(&mut [&mut a, &mut b], 300, |x| {
        x.iter().all(|app| {
            app.world()
                .resource::<netz_bevy::NetzSession>()
                .session_master
                == a_id
        })
    }));
    for app in [&a, &b] {
        let seen = &app.world().resource::<Seen<SessionMasterChanged>>().0;
        assert_eq!(seen, &vec![SessionMasterChanged { new_master: a_id }]);
    }
    assert!(a
        .world()
        .resource::<netz_bevy::NetzSession>()
        .is_session_master());
    // The arena, mastered by the failed session master, is recovered by the new one.
    assert!(step_until(&mut [&mut a, &mut b], 100, |x| {
        let world = x[0].world_mut();
        let mut q = world.query::<(&NetzObject, &netz_bevy::NetzRef<Arena>)>();
        q.iter(world).any(|(o, _)| o.role == Role::Master)
    }));
}

#[test]
fn deleting_a_master_from_a_system_despawns_its_entity_everywhere() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(&mut client, Bullet::default());
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[0], handle).is_some()
    }));
    let (on_server, on_client) = (
        entity(&server, handle).unwrap(),
        entity(&client, handle).unwrap(),
    );
    client
        .world_mut()
        .run_system_once(move |mut netz: Netz| netz.delete(on_client))
        .unwrap()
        .expect("delete");
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        a.iter().all(|app| entity(app, handle).is_none())
    }));
    assert!(server.world().get_entity(on_server).is_err());
    assert!(client.world().get_entity(on_client).is_err());
    for app in [&server, &client] {
        let removed = &app.world().resource::<Seen<ObjectRemoved>>().0;
        assert_eq!(
            removed.iter().map(|r| r.entity).collect::<Vec<_>>().len(),
            1
        );
    }
}

#[test]
fn a_join_nobody_answers_fails_with_a_message() {
    // An address on loopback where nobody listens any more.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config(ProcessType::Client, "lost");
    cfg.join_timeout = std::time::Duration::from_millis(300);
    let mut app = app_with(netz_bevy::NetzPlugin::join(cfg, "127.0.0.1:0", dead).unwrap());
    assert!(step_until(&mut [&mut app], 100, |a| {
        !a[0]
            .world()
            .resource::<Seen<netz_bevy::JoinFailed>>()
            .0
            .is_empty()
    }));
    assert_eq!(
        app.world().resource::<Seen<netz_bevy::JoinFailed>>().0,
        vec![netz_bevy::JoinFailed(netz_core::JoinError::TimedOut)]
    );
    assert!(!app.world().resource::<netz_bevy::NetzSession>().in_session);
}

#[test]
fn an_rmc_that_fails_completes_with_its_outcome_and_no_value() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(&mut server, Player::default());
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));

    // On the client's own duplica, with "the target must be the master".
    let e = entity(&client, handle).unwrap();
    let me = local_id(&client);
    let pending = client
        .world_mut()
        .run_system_once(move |mut netz: Netz| {
            let ctx = RmcContext::<i32>::with_target(me, true);
            ctx.set_flag(RmcFlag::TargetObjectMustBeMaster);
            netz.rmc_with::<Player, i32>(e, ctx, |p, ctx| p.call_heal(ctx, 1))
        })
        .unwrap()
        .expect("call sent");
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        !a[1].world().resource::<Seen<RmcCompleted>>().0.is_empty()
    }));
    let done = client.world().resource::<Seen<RmcCompleted>>().0[0].clone();
    assert_eq!(done.call, pending.call);
    assert_eq!(done.outcome, Outcome::TargetValidationFailure);
    assert_eq!(done.value::<i32>(), None);
    // The polled context agrees with the message.
    assert_eq!(pending.context.outcome(), Outcome::TargetValidationFailure);
    assert_eq!(
        component::<Health>(&client, handle).unwrap().hp,
        0,
        "nothing ran"
    );
}

#[test]
fn a_call_future_tracked_from_a_system_completes_as_a_message() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(
        &mut server,
        Player {
            health: Health {
                hp: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));

    // A call made on the station directly, watched through its future.
    let e = entity(&client, handle).unwrap();
    let tracked = client
        .world_mut()
        .run_system_once(move |mut netz: Netz| {
            let ctx = RmcContext::<i32>::on_master();
            let st = netz.station().expect("started");
            assert!(st.object::<Player>(handle).call_heal(&ctx, 2));
            let result = ctx.clone();
            netz.track(
                e,
                handle,
                netz_bevy::FutureCall::new(ctx.completion(), move |outcome| {
                    let value = result.result().map(|v| {
                        std::sync::Arc::new(v) as std::sync::Arc<dyn std::any::Any + Send + Sync>
                    });
                    (outcome, value)
                }),
            )
        })
        .unwrap();
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        !a[1].world().resource::<Seen<RmcCompleted>>().0.is_empty()
    }));
    let done = client.world().resource::<Seen<RmcCompleted>>().0[0].clone();
    assert_eq!(done.call, tracked);
    assert_eq!(done.outcome, Outcome::Success);
    assert_eq!(done.value::<i32>(), Some(&3));
}

/// A client's reaction to its server scaling in: migrate at once.
fn migrate_when_offline(mut seen: MessageReader<netz_bevy::MigrationEvent>, mut netz: Netz) {
    for m in seen.read() {
        if let netz_bevy::MigrationEvent::Offline { ours: true, .. } = m {
            netz.send_migrate().expect("migrate");
        }
    }
}

#[test]
fn a_client_whose_server_scales_in_migrates_from_a_system_and_keeps_its_objects() {
    let cs = |process_type, token| {
        let mut c = config(process_type, token);
        c.topology = netz::Topology::ClientServer;
        c
    };
    let first =
        netz_bevy::NetzPlugin::create(cs(ProcessType::Server, "s1"), "127.0.0.1:0").unwrap();
    let first_addr = first.local_addr();
    let mut s1 = app_with(first);
    let second =
        netz_bevy::NetzPlugin::join(cs(ProcessType::Server, "s2"), "127.0.0.1:0", first_addr)
            .unwrap();
    let second_addr = second.local_addr();
    let mut s2 = app_with(second);
    assert!(step_until(&mut [&mut s1, &mut s2], 200, |a| all_joined(
        a, 2
    )));
    let mut c = app_with(
        netz_bevy::NetzPlugin::join(cs(ProcessType::Client, "c"), "127.0.0.1:0", second_addr)
            .unwrap(),
    );
    record::<netz_bevy::MigrationEvent>(&mut c);
    c.add_systems(Update, migrate_when_offline);
    assert!(step_until(&mut [&mut s1, &mut s2, &mut c], 300, |a| {
        all_joined(a, 3)
    }));
    let (id1, id2, me) = (local_id(&s1), local_id(&s2), local_id(&c));
    let player = publish(&mut c, Player::default());
    assert!(step_until(&mut [&mut s1, &mut s2, &mut c], 100, |a| {
        entity(a[0], player).is_some()
    }));

    s2.world_mut()
        .run_system_once(|mut netz: Netz| netz.scale_in(std::time::Duration::from_secs(2)))
        .unwrap()
        .expect("scale in");
    assert!(step_until(&mut [&mut s1, &mut s2, &mut c], 300, |a| {
        a[2].world()
            .resource::<Seen<netz_bevy::MigrationEvent>>()
            .0
            .iter()
            .any(|m| matches!(m, netz_bevy::MigrationEvent::Reconnected { .. }))
    }));
    let seen = &c.world().resource::<Seen<netz_bevy::MigrationEvent>>().0;
    assert!(
        matches!(seen[0], netz_bevy::MigrationEvent::Offline { server, ours: true, .. } if server == id2),
        "{seen:?}"
    );
    assert_eq!(
        seen[1],
        netz_bevy::MigrationEvent::Disconnected { from: id2, to: id1 }
    );
    assert_eq!(
        seen[2],
        netz_bevy::MigrationEvent::Reconnected { server: id1 }
    );

    // Same station, same objects: the client's master still updates the duplica on s1.
    assert_eq!(local_id(&c), me);
    let e = entity(&c, player).unwrap();
    c.world_mut().get_mut::<Position>(e).unwrap().y = 4.0;
    assert!(step_until(&mut [&mut s1, &mut s2, &mut c], 100, |a| {
        component::<Position>(a[0], player).is_some_and(|p| p.y == 4.0)
    }));
}

#[test]
fn apps_on_the_machine_clock_replicate_too() {
    // The default clock: the machine's monotonic time, read once per frame.
    let cfg = |pt, token| {
        let mut c = config(pt, token);
        c.failure_timeout = std::time::Duration::from_secs(5);
        c
    };
    let plugin =
        netz_bevy::NetzPlugin::create(cfg(ProcessType::Server, "s"), "127.0.0.1:0").unwrap();
    let addr = plugin.local_addr();
    let mut server = bevy_app::App::new();
    server.add_plugins(plugin);
    netz_bevy::NetzAppExt::register_netz_class::<Player>(&mut server);
    let mut client = bevy_app::App::new();
    client.add_plugins(
        netz_bevy::NetzPlugin::join(cfg(ProcessType::Client, "c"), "127.0.0.1:0", addr).unwrap(),
    );
    netz_bevy::NetzAppExt::register_netz_class::<Player>(&mut client);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut handle = None;
    loop {
        server.update();
        client.update();
        if handle.is_none() && all_joined(&mut [&mut server, &mut client], 2) {
            handle = Some(publish(
                &mut server,
                Player {
                    health: Health {
                        hp: 8,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ));
        }
        if let Some(h) = handle {
            if component::<Health>(&client, h).is_some_and(|x| x.hp == 8) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no duplica within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let now = client.world().resource::<netz_bevy::NetzClock>().now();
    assert!(now > netz::Instant::ZERO, "the machine's clock moved");
}

#[test]
fn a_master_object_written_directly_through_netz_ref_reaches_its_components_and_duplicas() {
    let (mut server, addr) = server();
    let mut client = client("a", addr);
    assert!(step_until(&mut [&mut server, &mut client], 200, |a| {
        all_joined(a, 2)
    }));
    let handle = publish(&mut server, Player::default());
    assert!(step_until(&mut [&mut server, &mut client], 100, |a| {
        entity(a[1], handle).is_some()
    }));
    step(&mut [&mut server, &mut client], 5);

    let e = entity(&server, handle).unwrap();
    server
        .world_mut()
        .get_mut::<netz_bevy::NetzRef<Player>>(e)
        .unwrap()
        .write()
        .health
        .hp = 77;
    assert!(step_until(&mut [&mut server, &mut client], 50, |a| {
        component::<Health>(a[0], handle).is_some_and(|h| h.hp == 77)
            && component::<Health>(a[1], handle).is_some_and(|h| h.hp == 77)
    }));
}

/// A class holding two datasets of one type.
#[doclass]
#[derive(Default)]
pub struct Segment {
    /// One end.
    #[dataset]
    pub from: Position,
    /// The other end.
    #[dataset]
    pub to: Position,
}

#[doclass]
impl Segment {}

impl netz_bevy::NetzClass for Segment {
    type Datasets = (Position, Position);
}

#[test]
#[should_panic(expected = "is listed twice in NetzClass::Datasets")]
fn a_dataset_type_listed_twice_is_refused_at_registration() {
    let plugin =
        netz_bevy::NetzPlugin::create(config(ProcessType::Server, "s"), "127.0.0.1:0").unwrap();
    let mut app = bevy_app::App::new();
    app.add_plugins(plugin);
    netz_bevy::NetzAppExt::register_netz_class::<Segment>(&mut app);
}
