//! Members that cheat: an authenticated station sends well-formed messages
//! it has no right to send. Each is dropped, counted, and changes nothing.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::forge::{self, Forged};
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

fn mesh(n: usize) -> Cluster {
    let cfgs = (0..n)
        .map(|i| StationConfig::new(ProcessType::Server, format!("s{i}")))
        .collect();
    Cluster::start(SimConfig::seeded(3), registry(), cfgs).unwrap()
}

fn client_server(clients: usize) -> Cluster {
    let mut cfgs = vec![{
        let mut c = StationConfig::new(ProcessType::Server, "server");
        c.topology = Topology::ClientServer;
        c
    }];
    for i in 0..clients {
        let mut c = StationConfig::new(ProcessType::Client, format!("c{i}"));
        c.topology = Topology::ClientServer;
        cfgs.push(c);
    }
    Cluster::start(SimConfig::seeded(5), registry(), cfgs).unwrap()
}

fn forge(c: &mut Cluster, by: usize, to: usize, msg: Forged) {
    let dest = c.station(to).id();
    let now = c.now();
    assert!(forge::send_as(c.station_mut(by), now, dest, msg));
}

fn refused(c: &Cluster, i: usize) -> u64 {
    c.station(i).stats().unauthorized_messages
}

#[test]
fn a_member_cannot_make_itself_session_master() {
    // Station 2 is the lowest id after the real session master: the one a
    // claim that the master failed would make master, if claims were believed.
    let mut c = mesh(4);
    let master = c.station(0).id();
    // Told to everyone but the real master (who would contradict it).
    for to in [2, 3] {
        forge(
            &mut c,
            1,
            to,
            Forged::NewSessionMaster {
                failed: vec![master],
            },
        );
    }
    c.run_for(Duration::from_millis(500));
    for i in [0, 2, 3] {
        assert_eq!(c.station(i).session_master(), master, "station {i}");
    }
    for i in [2, 3] {
        assert!(refused(&c, i) >= 1, "station {i} counted the claim");
    }
    assert!(c.station(0).is_session_master());
    assert_eq!(c.station(3).stations().len(), 4, "nobody was declared gone");
}

#[test]
fn a_member_cannot_take_over_an_object_with_master_changed() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    let cheater = c.station(1).id();
    for to in [0, 2] {
        forge(
            &mut c,
            1,
            to,
            Forged::MasterChanged {
                handle: h,
                master: cheater,
            },
        );
    }
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(0).master_of(h), Some(c.station(0).id()));
    assert_eq!(c.station(2).master_of(h), Some(c.station(0).id()));
    assert!(refused(&c, 0) >= 1, "the real master refused it");
    // The duplica waits for the real master's word, which never comes, and
    // forgets the claim.
    c.run_for(Duration::from_secs(4));
    assert_eq!(c.station(2).master_of(h), Some(c.station(0).id()));
    assert_eq!(c.station(2).bookkeeping().pending_masters, 0);
}

#[test]
fn a_member_saying_it_holds_a_duplica_changes_nothing_but_its_own() {
    // `DuplicaHeld` asks the named master about the sender's own duplica:
    // to the master or a duplica it is no news; about an object the
    // receiver lacks, the sender alone is told it is deleted.
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    for to in [0, 2] {
        forge(&mut c, 1, to, Forged::DuplicaHeld { handle: h });
    }
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        assert!(c.station(i).contains(h), "station {i}");
        assert_eq!(c.station(i).master_of(h), Some(c.station(0).id()));
    }
    // An object station 2 does not have: it answers the cheater alone,
    // whose own duplica of the real object stays.
    let unknown = c.station(2).stats().unknown_object;
    let none = DOHandle::new(h.class_id(), c.station(2).id(), 9_999);
    forge(&mut c, 1, 2, Forged::DuplicaHeld { handle: none });
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(2).stats().unknown_object, unknown + 1);
    for i in 0..3 {
        assert!(c.station(i).contains(h), "station {i}");
    }
}

#[test]
fn a_refused_successors_word_is_kept_bounded_and_not_heard() {
    // A cheating server claims the session (naming the live session master
    // failed): refused. What it then says as session master is kept, in
    // case the victim follows it later, but within 256 KiB, and it is
    // never heard while the victim follows the real session master.
    let server = |t: &str| {
        let mut c = StationConfig::new(ProcessType::Server, t);
        c.topology = Topology::ClientServer;
        c
    };
    let mut c = Cluster::start(
        SimConfig::seeded(9),
        registry(),
        vec![server("s1"), server("s2"), server("s3")],
    )
    .unwrap();
    let mut cc = StationConfig::new(ProcessType::Client, "c4");
    cc.topology = Topology::ClientServer;
    let client = c.join(cc, 2).unwrap();
    c.run_for(Duration::from_millis(300));
    let [master, cheat, victim] = [0, 1, 2].map(|i| c.station(i).id());
    let id = c.station(client).id();
    forge(
        &mut c,
        1,
        2,
        Forged::NewSessionMaster {
            failed: vec![master],
        },
    );
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.station(2).session_master(), master);
    for _ in 0..120 {
        for _ in 0..1000 {
            forge(
                &mut c,
                1,
                2,
                Forged::Reattach {
                    station: id,
                    relay: cheat,
                },
            );
        }
        c.run_for(Duration::from_millis(20));
    }
    c.run_for(Duration::from_millis(300));
    let kept = c.station(2).bookkeeping().successor_bytes;
    assert!(kept > 0 && kept <= 256 * 1024, "kept {kept}");
    assert!(c
        .station(2)
        .stats()
        .unauthorized_by_kind
        .contains_key("Reattach"));
    assert_eq!(c.station(2).station_info(id).unwrap().relay, Some(victim));
    assert_eq!(c.station(client).relay(), Some(victim));
    assert_eq!(c.station(2).session_master(), master);
}

#[test]
fn a_create_for_an_existing_duplica_does_not_switch_its_master() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    let data = forge::datasets_of(c.station(2), h).unwrap();
    let cheater = c.station(1).id();
    forge(
        &mut c,
        1,
        2,
        Forged::Create {
            handle: h,
            master: cheater,
            data,
        },
    );
    c.run_for(Duration::from_secs(4));
    assert_eq!(c.station(2).master_of(h), Some(c.station(0).id()));
    assert_eq!(c.station(2).bookkeeping().pending_masters, 0);
    // The real master's updates still arrive.
    c.station(0).get::<Counter>(h).unwrap().lock().data.value = 9;
    let now = c.now();
    c.station_mut(0).update(now, h).unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().data.value, 9);
}

#[test]
fn a_migrate_from_a_non_master_changes_nothing() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    // The cheater's own object gives it well-formed dataset bytes to send.
    let fake = c
        .station_mut(1)
        .publish(now, Counter::new(666, "evil"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    let data = forge::datasets_of(c.station(1), fake).unwrap();
    let ids: Vec<StationId> = (0..3).map(|i| c.station(i).id()).collect();
    for to in [0, 2] {
        forge(
            &mut c,
            1,
            to,
            Forged::Migrate {
                handle: h,
                data: data.clone(),
                dup_set: ids.clone(),
            },
        );
    }
    c.run_for(Duration::from_millis(300));
    for i in [0, 2] {
        assert_eq!(c.station(i).master_of(h), Some(ids[0]), "station {i}");
        let v = c.station(i).get::<Counter>(h).unwrap();
        assert_eq!(
            v.lock().data.value,
            1,
            "station {i} kept the master's value"
        );
    }
    // A claim may wait for the old master's word a while (a later master
    // of a chain of hand-overs); none comes, and it is refused.
    let wait = c.station(0).config().failure_timeout * 2;
    c.run_for(wait + Duration::from_millis(100));
    for i in [0, 2] {
        assert_eq!(c.station(i).master_of(h), Some(ids[0]), "station {i}");
        assert_eq!(c.station(i).get::<Counter>(h).unwrap().lock().data.value, 1);
    }
    assert!(refused(&c, 0) >= 1 && refused(&c, 2) >= 1);
}

#[test]
fn rmc_replies_are_believed_only_from_the_called_station() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(c
        .station_mut(2)
        .object::<Counter>(h)
        .call(&ctx, ADD, &(1i64,)));
    // The forged reply travels one hop, the real one two: it comes first.
    for call in 0..4 {
        forge(
            &mut c,
            1,
            2,
            Forged::RmcReply {
                call,
                outcome: Outcome::Success,
                result: postcard::to_allocvec(&999i64).unwrap(),
                master_hint: StationId::NONE,
            },
        );
    }
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), Some(6));
    assert!(refused(&c, 2) >= 1);
}

#[test]
fn an_action_on_duplicas_is_believed_only_from_the_master() {
    let mut c = mesh(3);
    let now = c.now();
    let h = c
        .station_mut(0)
        .publish(now, Counter::new(5, "x"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(200));
    forge(
        &mut c,
        1,
        2,
        Forged::Action {
            handle: h,
            method: BUMP.0,
            args: postcard::to_allocvec(&(7i64,)).unwrap(),
            forward: false,
        },
    );
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.station(2).get::<Counter>(h).unwrap().lock().bumps, 0);
    assert!(refused(&c, 2) >= 1);
}

#[test]
fn a_client_cannot_close_a_station_or_delete_its_objects() {
    let mut c = client_server(3);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "b"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let victim = c.station(2).id();
    forge(
        &mut c,
        1,
        3,
        Forged::StationGone {
            id: victim,
            failed: true,
        },
    );
    forge(&mut c, 1, 3, Forged::Delete { handle: h });
    c.run_for(Duration::from_millis(300));
    assert!(c.station(3).contains(h));
    assert_eq!(c.station(3).stations().len(), 4);
    assert!(refused(&c, 3) + refused(&c, 0) >= 2);
}

#[test]
fn an_operation_the_server_rejects_reaches_no_client() {
    // The dedicated server referees: its SafetyExecutive refuses objects
    // published by client 1, and what it refuses it does not relay.
    let mut c = client_server(3);
    let cheat = c.station(1).id();
    c.station_mut(0).register_custom_operation_check(move |op| {
        !(op.get_type() == OperationKind::AddToStore && op.origin() == cheat)
    });
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(5, "alice"))
        .unwrap()
        .handle();
    let ok = c
        .station_mut(2)
        .publish(now, Counter::new(6, "bob"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(500));
    assert!(!c.station(0).contains(h), "the server refused it");
    for i in [2, 3] {
        assert!(
            !c.station(i).contains(h),
            "client {i} never got the refused object"
        );
        assert!(
            c.station(i).contains(ok) || i == 2,
            "other objects still arrive"
        );
    }
    assert!(c.station(3).contains(ok));
    assert!(c.station(0).stats().operations_rejected >= 2);
}

#[test]
fn a_client_cannot_update_anothers_object_through_the_server() {
    let mut c = client_server(3);
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(5, "bob"))
        .unwrap()
        .handle();
    let fake = c
        .station_mut(1)
        .publish(now, Counter::new(666, "evil"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(400));
    let data = forge::datasets_of(c.station(1), fake).unwrap();
    forge(
        &mut c,
        1,
        3,
        Forged::Update {
            handle: h,
            data: data.clone(),
        },
    );
    forge(&mut c, 1, 0, Forged::Update { handle: h, data });
    c.run_for(Duration::from_millis(300));
    for i in [0, 3] {
        assert_eq!(
            c.station(i).get::<Counter>(h).unwrap().lock().data.value,
            5,
            "station {i}"
        );
    }
    assert!(refused(&c, 0) >= 2, "the server counted both");
}

#[test]
fn rooms_and_their_properties_are_bounded_per_client() {
    let mut c = client_server(1);
    let limits = netz_core::limits::Limits::default();
    for request in 0..200 {
        let properties = if request == 0 {
            (0..300)
                .map(|k| (format!("k{k}"), "v".repeat(10)))
                .collect()
        } else {
            vec![("mode".to_string(), "duel".to_string())]
        };
        forge(
            &mut c,
            1,
            0,
            Forged::CreateRoom {
                request,
                properties,
            },
        );
    }
    c.run_for(Duration::from_millis(500));
    let rooms = c.station(0).rooms();
    assert_eq!(
        rooms.len(),
        limits.max_rooms_per_station,
        "{} rooms",
        rooms.len()
    );
    let room = rooms[0].handle;
    for k in 0..200u64 {
        forge(
            &mut c,
            1,
            0,
            Forged::SetRoomProperty {
                request: 1000 + k,
                room,
                key: format!("key{k}"),
                value: "x".repeat(if k == 0 { 5000 } else { 8 }),
            },
        );
    }
    c.run_for(Duration::from_millis(500));
    let r = c.station(0).room(room).unwrap();
    assert!(
        r.properties.len() <= limits.max_room_properties,
        "{}",
        r.properties.len()
    );
    assert!(r
        .properties
        .iter()
        .all(|(k, v)| k.len() + v.len() <= limits.max_room_property_bytes));
    assert!(c.station(0).stats().rooms_limited > 100);
}

#[test]
fn room_migration_reports_for_unknown_rooms_are_not_remembered() {
    let mut c = client_server(2);
    for k in 0..5000u64 {
        forge(
            &mut c,
            0,
            1,
            Forged::RoomMigrateStart {
                room: DOHandle((3u64 << 56) | (k + 1)),
                epoch: 1,
            },
        );
    }
    c.run_for(Duration::from_millis(500));
    assert!(c.station(1).bookkeeping().room_reports <= 64);
}

fn with_tool() -> Cluster {
    let mut c = client_server(2);
    let mut cfg = StationConfig::new(ProcessType::Tool, "tool");
    cfg.topology = Topology::ClientServer;
    c.join(cfg, 0).unwrap();
    c.run_for(Duration::from_millis(300));
    c
}

#[test]
fn a_tool_cannot_speak_for_another_station_through_a_server() {
    // Only a server relays for others; a tool speaks for itself alone.
    let mut c = with_tool();
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(5, "a"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let victim = c.station(1).id();
    let dest = c.station(2).id();
    let now = c.now();
    assert!(forge::send_envelope_as(
        c.station_mut(3),
        now,
        victim,
        dest,
        0,
        Forged::Delete { handle: h },
    ));
    c.run_for(Duration::from_millis(300));
    assert!(c.station(2).contains(h), "the forged delete reached no one");
    assert!(refused(&c, 0) + c.station(0).stats().bad_messages >= 1);
}

#[test]
fn a_message_numbered_at_the_end_of_the_range_is_dropped() {
    // A client numbers what it sends to another client; a number far ahead
    // (here the last one) is refused instead of held and overflowing.
    let mut c = client_server(2);
    let from = c.station(1).id();
    let dest = c.station(2).id();
    let now = c.now();
    let h = c
        .station_mut(1)
        .publish(now, Counter::new(5, "a"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    assert!(forge::send_envelope_as(
        c.station_mut(1),
        now,
        from,
        dest,
        u64::MAX,
        Forged::Action {
            handle: h,
            method: BUMP.0,
            args: postcard::to_allocvec(&(1i64,)).unwrap(),
            forward: false,
        },
    ));
    c.run_for(Duration::from_secs(8));
    assert!(c.station(2).is_in_session());
    assert_eq!(c.station(2).bookkeeping().held_in_order, 0);
    assert!(refused(&c, 2) >= 1);
}

#[test]
fn the_inside_fuzzer_finds_nothing_in_a_few_hundred_runs() {
    // The property version of the cargo-fuzz target `inside`.
    let mut rng = netz_core::sim::Rng::new(17);
    for run in 0..300u32 {
        let len = rng.gen_range(1..400usize);
        let data: Vec<u8> = (0..len).map(|_| rng.gen_range(0..=255u8)).collect();
        let mut data = data;
        data[0] = (run % 2) as u8;
        netz_core::fuzzing::inside_session(&data);
    }
}

#[test]
fn a_session_gives_out_no_station_id_its_handles_cannot_name() {
    // A handle names its creator in 24 bits: the last id is 2^24 - 1, and
    // a joiner after it is refused instead of colliding with station 1's.
    let mut c = mesh(1);
    forge::set_next_station_id(c.station_mut(0), 0x00FF_FFFF);
    let i = c
        .join(StationConfig::new(ProcessType::Server, "last"), 0)
        .unwrap();
    assert_eq!(c.station(i).id(), StationId(0x00FF_FFFF));
    let now = c.now();
    let h = c
        .station_mut(i)
        .publish(now, Counter::new(1, "x"))
        .unwrap()
        .handle();
    assert_eq!(h.creator(), StationId(0x00FF_FFFF));
    let err = c
        .join(StationConfig::new(ProcessType::Server, "one too many"), 0)
        .unwrap_err();
    assert!(
        matches!(&err, JoinError::Denied(r) if r.contains("every station id")),
        "{err:?}"
    );
}

#[test]
fn a_server_re_points_only_its_own_clients_and_never_to_the_receiver() {
    // A server's word of where its client went is heard from it directly
    // (not only through the session master), but only for its own client
    // by the receiver's record, and never naming the receiver.
    let server = |t: &str| {
        let mut c = StationConfig::new(ProcessType::Server, t);
        c.topology = Topology::ClientServer;
        c
    };
    let mut c = Cluster::start(
        SimConfig::seeded(11),
        registry(),
        vec![server("s1"), server("s2"), server("s3")],
    )
    .unwrap();
    let mut cc = StationConfig::new(ProcessType::Client, "c4");
    cc.topology = Topology::ClientServer;
    let client = c.join(cc, 1).unwrap();
    c.run_for(Duration::from_millis(300));
    let [sm, own, other] = [0, 1, 2].map(|i| c.station(i).id());
    let id = c.station(client).id();
    assert_eq!(c.station(client).relay(), Some(own));
    // Another server says the client is now its own.
    let before = refused(&c, 1);
    forge(
        &mut c,
        2,
        1,
        Forged::Reattach {
            station: id,
            relay: other,
        },
    );
    c.run_for(Duration::from_millis(100));
    assert_eq!(refused(&c, 1), before + 1);
    assert_eq!(c.station(1).station_info(id).unwrap().relay, Some(own));
    // The client's own server tries to make the receiver its relay.
    let before = refused(&c, 2);
    forge(
        &mut c,
        1,
        2,
        Forged::Reattach {
            station: id,
            relay: other,
        },
    );
    c.run_for(Duration::from_millis(100));
    assert_eq!(refused(&c, 2), before + 1);
    assert_eq!(c.station(2).station_info(id).unwrap().relay, Some(own));
    // Its word that the client went to the session master is heard; what
    // the receiver sends the client still arrives (the session master
    // passes it on to the client's real server).
    forge(
        &mut c,
        1,
        2,
        Forged::Reattach {
            station: id,
            relay: sm,
        },
    );
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.station(2).station_info(id).unwrap().relay, Some(sm));
    let now = c.now();
    let h = c
        .station_mut(2)
        .publish(now, Counter::new(3, "x"))
        .unwrap()
        .handle();
    assert!(c.run_until(Duration::from_secs(1), |c| c.station(client).contains(h)));
    assert_eq!(c.station(client).relay(), Some(own));
}

#[test]
fn a_server_passes_on_the_changes_of_a_batch_whose_other_items_it_refuses() {
    // Client 1 sends one batch of changes: of its own object, and of a
    // duplica of client 2's (a cheat, or a stale item of an object it
    // handed away just before). Its server refuses the item that is not
    // the client's own and passes the others on.
    let mut c = client_server(3);
    let now = c.now();
    let own = c
        .station_mut(1)
        .publish(now, Counter::new(5, "alice"))
        .unwrap();
    let other = c
        .station_mut(2)
        .publish(now, Counter::new(6, "bob"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(400));
    own.lock().data.value = 7;
    c.station(1)
        .get::<Counter>(other)
        .unwrap()
        .lock()
        .data
        .value = 666;
    let data = forge::update_batch_of(c.station(1), &[own.handle(), other]);
    let before = refused(&c, 0);
    forge(&mut c, 1, 3, Forged::UpdateBatch { data });
    c.run_for(Duration::from_millis(300));
    let at3 = |h| c.station(3).get::<Counter>(h).unwrap().lock().data.value;
    assert_eq!(at3(own.handle()), 7, "the client's own change passed");
    assert_eq!(at3(other), 6, "the other's object is untouched");
    assert_eq!(refused(&c, 0), before + 1, "the server counted the item");
}

#[test]
fn a_member_takes_nothing_by_a_census_answer_it_was_not_asked_for() {
    // `Holding` answers the session master's census of a gone station.
    // Sent unasked (no census), to a station that is not the session
    // master, or naming objects the gone station never mastered, it moves
    // nothing.
    let mut c = mesh(4);
    let now = c.now();
    let own = c
        .station_mut(1)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    let lost = c
        .station_mut(2)
        .publish(now, Counter::recovering(true))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(300));
    let (sm, one, two) = (c.station(0).id(), c.station(1).id(), c.station(2).id());
    let claim = |id, held: Vec<DOHandle>| Forged::Holding { id, held };
    forge(&mut c, 3, 0, claim(one, vec![own]));
    forge(&mut c, 3, 1, claim(two, vec![lost]));
    c.run_for(Duration::from_millis(200));
    for i in 0..4 {
        assert_eq!(c.station(i).master_of(own), Some(one), "station {i}");
        assert_eq!(c.station(i).master_of(lost), Some(two), "station {i}");
    }
    // Station 2 fails; in the census of its objects the cheat claims
    // another station's object in its name.
    c.crash(2);
    let gone = c.run_until(Duration::from_secs(5), |c| {
        c.station(0).station_info(two).is_none()
    });
    assert!(gone);
    forge(&mut c, 3, 0, claim(two, vec![own]));
    c.run_for(Duration::from_secs(3));
    for i in [0, 1, 3] {
        assert_eq!(c.station(i).master_of(own), Some(one), "station {i}");
        assert_eq!(c.station(i).master_of(lost), Some(sm), "station {i}");
    }
}

#[test]
fn a_member_cannot_make_another_exclude_itself() {
    // `StillMember` (the session counts a station) makes a station that
    // saw that station declared gone exclude itself: only the session
    // master's word counts. A cheat that sends it itself, or reports a
    // healthy member silent to draw the session master's word about
    // itself, ends nobody.
    let mut c = mesh(4);
    c.run_for(Duration::from_millis(300));
    let two = crash_until_gone(&mut c, 2);
    let before = refused(&c, 1);
    forge(&mut c, 3, 1, Forged::StillMember { id: two });
    c.run_for(Duration::from_millis(300));
    assert_eq!(refused(&c, 1), before + 1, "refused from a member");
    // Reported twice, a failure timeout apart: the session master tells
    // station 1 the session counts the cheat, which station 1 counts.
    let one = c.station(1).id();
    let ft = c.station(0).config().failure_timeout;
    forge(&mut c, 3, 0, Forged::ReportFailure { id: one });
    c.run_for(ft + Duration::from_millis(100));
    forge(&mut c, 3, 0, Forged::ReportFailure { id: one });
    c.run_for(Duration::from_secs(1));
    for i in [0, 1, 3] {
        assert!(c.station(i).is_in_session(), "station {i} is in session");
        assert_eq!(c.station(i).stations().len(), 3, "station {i}");
    }
}

#[test]
fn a_client_that_claims_an_object_cannot_change_it_through_its_server() {
    // A client names itself the master of another's object: the server
    // (and every receiver) holds the claim, waiting for the old master's
    // word, and passes the client's changes of it on for the receivers to
    // check (they hold them with their claims). The word never comes: the
    // claims expire and the changes with them, everywhere.
    let mut c = client_server(3);
    let now = c.now();
    let other = c
        .station_mut(2)
        .publish(now, Counter::new(6, "bob"))
        .unwrap()
        .handle();
    c.run_for(Duration::from_millis(400));
    let cheat = c.station(1).id();
    let owner = c.station(2).id();
    for to in [0, 3] {
        let claim = Forged::MasterChanged {
            handle: other,
            master: cheat,
        };
        forge(&mut c, 1, to, claim);
    }
    c.run_for(Duration::from_millis(100));
    c.station(1)
        .get::<Counter>(other)
        .unwrap()
        .lock()
        .data
        .value = 666;
    let data = forge::update_batch_of(c.station(1), &[other]);
    forge(&mut c, 1, 3, Forged::UpdateBatch { data });
    c.run_for(c.station(0).config().failure_timeout * 3);
    for i in [0, 2, 3] {
        let st = c.station(i);
        assert_eq!(st.master_of(other), Some(owner), "station {i}");
        let v = st.get::<Counter>(other).unwrap().lock().data.value;
        assert_eq!(v, 6, "station {i} kept the owner's state");
        assert_eq!(st.bookkeeping().pending_masters, 0, "station {i}");
    }
}

#[test]
fn a_station_object_goes_only_with_its_station() {
    // A station object lives as long as its station is a member: a
    // `Delete` of it from anyone but its master, even the session master
    // (a word of the session master of a side this station left), is
    // refused while the station is a member here.
    let mut c = mesh(3);
    c.run_for(Duration::from_millis(300));
    let one = c.station(1).id();
    let of_one = c
        .station(2)
        .objects()
        .into_iter()
        .find(|h| h.class_id() == ClassId::STATION && c.station(2).master_of(*h) == Some(one))
        .expect("station 1's station object at station 2");
    let before = refused(&c, 2);
    forge(&mut c, 0, 2, Forged::Delete { handle: of_one });
    c.run_for(Duration::from_millis(300));
    assert!(c.station(2).objects().contains(&of_one), "kept");
    assert_eq!(refused(&c, 2), before + 1, "refused and counted");
    // With its station gone, it goes.
    let _ = crash_until_gone(&mut c, 1);
    c.run_for(Duration::from_secs(2));
    assert!(!c.station(2).objects().contains(&of_one), "gone with it");
}
