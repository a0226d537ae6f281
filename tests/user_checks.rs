//! Checks that judge and methods that read the store: a server refuses a
//! Player that takes another's name (from its incoming datasets), an RMC
//! whose arguments are out of bounds, and an Arena RMC reads two Players.
#![allow(missing_docs)]
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use netz::Topology;
use std::sync::Arc;
use std::time::Duration;

#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub x: f32,
    pub y: f32,
}

#[doclass]
#[derive(Default)]
pub struct Player {
    #[dataset]
    pub profile: Profile,
}

#[doclass]
impl Player {}

#[doclass]
#[derive(Default)]
pub struct Arena {
    pub shots: u32,
}

#[doclass]
impl Arena {
    /// The distance between two players, read from the local store.
    #[rmc]
    pub fn distance(&mut self, call: &mut CallContext<'_>, a: DOHandle, b: DOHandle) -> f32 {
        let (Some(a), Some(b)) = (call.get::<Player>(a), call.get::<Player>(b)) else {
            return -1.0;
        };
        let (ax, ay) = a.with(|p| (p.profile.x, p.profile.y));
        let (bx, by) = b.with(|p| (p.profile.x, p.profile.y));
        ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt()
    }

    /// How many players the arena sees (the arena itself is not one).
    #[rmc]
    pub fn players(&mut self, call: &mut CallContext<'_>) -> u32 {
        assert!(
            call.get::<Arena>(call.handle()).is_none(),
            "the called object is self"
        );
        call.select::<Player>().len() as u32
    }

    #[rmc]
    pub fn shoot(&mut self, _target: u32, _power: f32) -> bool {
        self.shots += 1;
        true
    }
}

fn player(name: &str, x: f32, y: f32) -> Player {
    let mut p = Player::default();
    p.profile.name = name.into();
    p.profile.x = x;
    p.profile.y = y;
    p
}

/// A server and three clients, client-server.
fn session() -> Cluster {
    let mut r = Registry::new();
    r.register::<Player>().unwrap();
    r.register::<Arena>().unwrap();
    let mut cfgs = vec![StationConfig::new(ProcessType::Server, "server")];
    for i in 0..3 {
        cfgs.push(StationConfig::new(ProcessType::Client, format!("c{i}")));
    }
    for c in &mut cfgs {
        c.topology = Topology::ClientServer;
    }
    Cluster::start(SimConfig::seeded(11), Arc::new(r), cfgs).unwrap()
}

fn names(c: &Cluster, i: usize) -> Vec<String> {
    let st = c.station(i);
    let mut v: Vec<String> = st
        .objects()
        .into_iter()
        .filter_map(|h| st.get::<Player>(h))
        .map(|p| p.lock().profile.name.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn a_server_refuses_a_player_that_takes_another_s_name() {
    let mut c = session();
    c.station_mut(0).register_operation_check(|op, store| {
        if op.get_type() != OperationKind::AddToStore {
            return true;
        }
        let Some(new) = op.incoming::<Player>() else {
            return true;
        };
        !store.select::<Player>().iter().any(|p| {
            Some(p.handle()) != op.associated_do() && p.lock().profile.name == new.profile.name
        })
    });
    let now = c.now();
    c.station_mut(1)
        .publish(now, player("alice", 0.0, 0.0))
        .unwrap();
    c.run_for(Duration::from_millis(300));
    for i in 0..4 {
        assert_eq!(names(&c, i), ["alice"], "station {i}");
    }
    let rejected = c.station(0).stats().operations_rejected;
    let now = c.now();
    c.station_mut(2)
        .publish(now, player("alice", 1.0, 1.0))
        .unwrap();
    c.station_mut(2)
        .publish(now, player("bob", 2.0, 2.0))
        .unwrap();
    // The server passes on a placeholder for the refused message's number,
    // so bob follows at once (no waiting for a gap to time out).
    c.run_for(Duration::from_millis(300));
    // The impostor stays on its own station; nobody else sees it.
    assert_eq!(names(&c, 2), ["alice", "alice", "bob"]);
    for i in [0, 1, 3] {
        assert_eq!(names(&c, i), ["alice", "bob"], "station {i}");
    }
    assert!(c.station(0).stats().operations_rejected > rejected);
    assert!(c.events(0).iter().any(|e| matches!(
        e,
        Event::OperationRejected {
            kind: "AddToStoreOperation",
            ..
        }
    )));
}

#[test]
fn a_check_judges_an_rmc_by_its_arguments() {
    let mut c = session();
    c.station_mut(0).register_operation_check(|op, _| {
        if !op.is_a::<Arena>() || op.get_type() != OperationKind::CallMethod {
            return true;
        }
        match op.arguments::<(u32, f32)>() {
            Some((_, power)) => power <= 10.0,
            None => true,
        }
    });
    let now = c.now();
    let arena = c.station_mut(0).publish(now, Arena::default()).unwrap();
    let h = arena.handle();
    c.run_for(Duration::from_millis(300));
    let ok = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Arena>(h).call_shoot(&ok, 7, 3.0));
    assert!(c.wait(&ok, Duration::from_secs(2)));
    assert_eq!(ok.outcome(), Outcome::Success);
    assert_eq!(ok.result(), Some(true));
    let cheat = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Arena>(h)
        .call_shoot(&cheat, 7, 99.0));
    assert!(c.wait(&cheat, Duration::from_secs(2)));
    assert_eq!(cheat.outcome(), Outcome::RejectedBySafetyExecutive);
    assert_eq!(arena.lock().shots, 1);
}

#[test]
fn an_arena_rmc_reads_two_players_from_the_store() {
    let mut c = session();
    let now = c.now();
    let arena = c.station_mut(0).publish(now, Arena::default()).unwrap();
    let a = c
        .station_mut(1)
        .publish(now, player("a", 0.0, 0.0))
        .unwrap();
    let b = c
        .station_mut(2)
        .publish(now, player("b", 3.0, 4.0))
        .unwrap();
    c.run_for(Duration::from_millis(300));
    let ctx = RmcContext::on_master();
    let (ha, hb) = (a.handle(), b.handle());
    assert!(c
        .station_mut(3)
        .object::<Arena>(arena.handle())
        .call_distance(&ctx, ha, hb));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), Some(5.0));
    let ctx = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Arena>(arena.handle())
        .call_players(&ctx));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.result(), Some(2));
}
