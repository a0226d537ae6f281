//! Every room request is answered: by its server, or with a failure when
//! the answer is overdue or the server goes; answers nobody waits for are
//! dropped.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::forge::{self, Forged};
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

/// Three servers of a mesh, with a short RMC timeout (which room requests
/// share); station 0 hosts a room.
fn mesh_with_room(rmc_timeout: Duration) -> (Cluster, DOHandle) {
    let cfgs = (0..3)
        .map(|i| {
            let mut c = StationConfig::new(ProcessType::Server, format!("s{i}"));
            c.rmc_timeout = rmc_timeout;
            c
        })
        .collect();
    let mut c = Cluster::start(SimConfig::seeded(11), registry(), cfgs).unwrap();
    let now = c.now();
    let req = c.station_mut(0).create_room(now, Vec::new()).unwrap();
    c.run_for(Duration::from_millis(300));
    let room = c
        .events(0)
        .into_iter()
        .find_map(|e| match e {
            Event::RoomResult {
                request,
                room,
                result: Ok(_),
            } if request == req => Some(room),
            _ => None,
        })
        .expect("the room was created");
    (c, room)
}

/// The results of room requests among `events`: (request, error code, or
/// 0 for success).
fn results(events: &[Event]) -> Vec<(u64, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RoomResult {
                request, result, ..
            } => Some((*request, result.as_ref().err().map_or(0, |e| e.code))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_whose_server_fails_is_answered_with_a_failure() {
    let (mut c, room) = mesh_with_room(Duration::from_secs(30));
    c.run_for(Duration::from_millis(300));
    c.events(1);
    // The room's server fails before the request reaches it.
    c.sim.isolate(c.addrs[0]);
    let now = c.now();
    let req = c.station_mut(1).join_room(now, room).unwrap();
    c.run_for(Duration::from_millis(100));
    let server = c.station(0).id();
    c.crash(0);
    let gone = c.run_until(Duration::from_secs(10), |c| {
        !c.station(1).stations().iter().any(|m| m.id == server)
    });
    assert!(gone, "station 1 never found the room's server gone");
    c.run_for(Duration::from_millis(100));
    assert_eq!(results(&c.events(1)), vec![(req, RoomError::UNREACHABLE)]);
}

#[test]
fn a_request_without_an_answer_fails_at_the_timeout_and_a_late_answer_is_dropped() {
    let timeout = Duration::from_millis(400);
    let (mut c, room) = mesh_with_room(timeout);
    c.run_for(Duration::from_millis(300));
    c.events(1);
    // The room's server hears nothing from station 1 for a while (less
    // than the failure timeout): the request is delivered late, and so is
    // its answer.
    c.sim.block(&[c.addrs[1]], &[c.addrs[0]]);
    let now = c.now();
    let req = c.station_mut(1).join_room(now, room).unwrap();
    c.run_for(timeout - Duration::from_millis(50));
    assert_eq!(results(&c.events(1)), vec![], "answered before its timeout");
    c.run_for(Duration::from_millis(100));
    assert_eq!(results(&c.events(1)), vec![(req, RoomError::TIMEOUT)]);
    c.sim.heal();
    c.run_for(Duration::from_secs(1));
    // The server did carry it out; its answer came after the failure and
    // is not reported twice.
    assert!(c
        .station(0)
        .room(room)
        .unwrap()
        .members
        .contains(&c.station(1).id()));
    assert_eq!(results(&c.events(1)), vec![]);
    assert_eq!(c.station(1).stats().unmatched_room_replies, 1);
}

#[test]
fn a_request_of_a_station_that_leaves_fails_when_it_leaves() {
    let (mut c, room) = mesh_with_room(Duration::from_secs(30));
    c.run_for(Duration::from_millis(300));
    c.events(2);
    c.sim.isolate(c.addrs[2]);
    let now = c.now();
    let req = c.station_mut(2).join_room(now, room).unwrap();
    let now = c.now();
    c.station_mut(2).leave(now).unwrap();
    c.run_for(Duration::from_secs(5));
    assert_eq!(results(&c.events(2)), vec![(req, RoomError::UNREACHABLE)]);
}

#[test]
fn room_requests_in_flight_are_bounded() {
    let (mut c, room) = mesh_with_room(Duration::from_secs(30));
    c.sim.isolate(c.addrs[1]);
    let limit = netz_core::limits::Limits::default().max_room_requests_in_flight;
    let now = c.now();
    for k in 0..limit {
        c.station_mut(1)
            .set_room_property(now, room, format!("k{k}"), "v")
            .unwrap();
    }
    assert_eq!(
        c.station_mut(1).set_room_property(now, room, "one", "more"),
        Err(StationError::TooManyRoomRequests(limit))
    );
}

#[test]
fn a_room_answer_nobody_asked_for_is_dropped() {
    // A server member makes up an answer to a request the station never
    // made: no result is reported.
    let (mut c, room) = mesh_with_room(Duration::from_secs(30));
    c.run_for(Duration::from_millis(300));
    c.events(1);
    let dest = c.station(1).id();
    let now = c.now();
    assert!(forge::send_as(
        c.station_mut(2),
        now,
        dest,
        Forged::RoomReply {
            request: 1,
            room,
            code: 0,
            room_id: "room-2-1".into(),
        },
    ));
    c.run_for(Duration::from_millis(300));
    assert_eq!(results(&c.events(1)), vec![]);
    assert_eq!(c.station(1).stats().unmatched_room_replies, 1);
}
