//! Join approval (14.3.4): 4 players with a password, tool stations exempt.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::time::Duration;

/// The 14.3.4 callback: at most 4 players (tool stations do not count), and
/// only with the right password; tools are always let in.
fn check_joining_processes(op: &mut JoinSessionOperation) {
    let players = op
        .stations()
        .iter()
        .filter(|s| s.process_type() != ProcessType::Tool)
        .count();
    let joining = op.joining_station().clone();
    if joining.process_type() == ProcessType::Tool {
        op.approve();
        return;
    }
    if players < 4 && joining.identification_token() == "CorrectPassword" {
        op.approve();
        return;
    }
    op.deny();
}

fn session() -> Cluster {
    let mut c = Cluster::start(
        SimConfig::seeded(4),
        registry(),
        vec![StationConfig::new(ProcessType::Client, "CorrectPassword")],
    )
    .unwrap();
    c.station_mut(0)
        .register_join_approval_callback(check_joining_processes);
    c
}

#[test]
fn four_players_with_password_and_tools_exempt() {
    let mut c = session();
    assert!(matches!(
        c.join(StationConfig::new(ProcessType::Client, "wrong"), 0),
        Err(JoinError::Denied(_))
    ));
    for _ in 0..3 {
        c.join(
            StationConfig::new(ProcessType::Client, "CorrectPassword"),
            0,
        )
        .unwrap();
    }
    // Tool stations join (even without the password) and do not count.
    c.join(StationConfig::new(ProcessType::Tool, "monitor"), 0)
        .unwrap();
    assert_eq!(c.station(0).stations().len(), 5);
    let fifth = c.join(
        StationConfig::new(ProcessType::Client, "CorrectPassword"),
        0,
    );
    match fifth {
        Err(JoinError::Denied(reason)) => assert!(reason.contains("denied"), "{reason}"),
        other => panic!("a fifth player must be denied: {other:?}"),
    }
    c.join(StationConfig::new(ProcessType::Tool, "debugger"), 0)
        .unwrap();
    assert!(!c.station(1).is_in_session() && !c.station(6).is_in_session());
    // Every admitted station sees the same membership.
    for i in [0, 2, 3, 4, 5, 7] {
        assert_eq!(c.station(i).stations().len(), 6, "station {i}");
    }
}

#[test]
fn postponed_decision_then_approve() {
    let mut c = Cluster::start(
        SimConfig::seeded(5),
        registry(),
        vec![StationConfig::new(ProcessType::Server, "s")],
    )
    .unwrap();
    c.station_mut(0)
        .register_join_approval_callback(|op| op.postpone_decision());
    let st = Station::new(StationConfig::new(ProcessType::Client, "late"), registry());
    let addr = c.sim.add_node(st);
    c.addrs.push(addr);
    let now = c.now();
    let contact = c.addrs[0];
    c.sim.node_mut(addr).join(now, addr, contact).unwrap();
    let mut pending = None;
    c.run_until(Duration::from_secs(1), |_| false);
    for e in c.events(0) {
        if let Event::JoinPending { station } = e {
            pending = Some(station.id);
        }
    }
    let id = pending.expect("a pending join");
    assert!(!c.station(1).is_in_session());
    let now = c.now();
    c.station_mut(0).decide_join(now, id, true).unwrap();
    assert!(c.run_until(Duration::from_secs(2), |c| c.station(1).is_in_session()));
    assert_eq!(c.station(1).id(), id);
    assert_eq!(
        c.station_mut(0).decide_join(now, id, true),
        Err(StationError::NoPendingJoin(id))
    );
}

#[test]
fn a_join_to_nobody_times_out() {
    let mut c = Cluster::start(
        SimConfig::seeded(6),
        registry(),
        vec![StationConfig::new(ProcessType::Server, "s")],
    )
    .unwrap();
    let st = Station::new(
        StationConfig {
            join_timeout: Duration::from_secs(1),
            ..StationConfig::new(ProcessType::Client, "x")
        },
        registry(),
    );
    let addr = c.sim.add_node(st);
    let now = c.now();
    c.sim
        .node_mut(addr)
        .join(now, addr, "127.0.0.1:9".parse().unwrap())
        .unwrap();
    c.sim.run_for(Duration::from_secs(2));
    let events: Vec<_> = std::iter::from_fn(|| c.sim.node_mut(addr).poll_event()).collect();
    assert!(
        events.contains(&Event::JoinFailed(JoinError::TimedOut)),
        "{events:?}"
    );
}

#[test]
fn joins_through_any_server_succeed_at_once_on_a_lossy_network() {
    // A joiner acknowledges what it receives before it knows its id: when
    // the packet carrying its acceptance is lost, the session hears those
    // acknowledgements, resends it promptly and never mistakes the joiner
    // for a silent station (which would admit it a second time).
    let cs = |p: ProcessType, token: &str| StationConfig {
        topology: Topology::ClientServer,
        ..StationConfig::new(p, token)
    };
    for seed in 0..30 {
        let sim = SimConfig {
            latency: Duration::from_millis(3),
            jitter: Duration::from_millis(3),
            loss: 0.2,
            duplicate: 0.02,
            reorder: 0.05,
            ..SimConfig::seeded(seed)
        };
        let mut c = Cluster::start(
            sim,
            registry(),
            vec![cs(ProcessType::Server, "s0"), cs(ProcessType::Server, "s1")],
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        for k in 0..4 {
            c.join(cs(ProcessType::Client, &format!("c{k}")), k % 2)
                .unwrap_or_else(|e| panic!("seed {seed}, client {k}: {e:?}"));
        }
        c.run_for(Duration::from_millis(500));
        // Six stations, each admitted once: ids 1..=6, no ghost.
        for i in c.live() {
            let ids: Vec<u32> = c.station(i).stations().iter().map(|s| s.id.0).collect();
            assert_eq!(
                ids,
                (1..=6).collect::<Vec<u32>>(),
                "seed {seed}, station {i}"
            );
        }
    }
}

#[test]
fn a_join_forwarded_to_a_session_master_that_goes_away_is_answered_by_its_successor() {
    // The contact forwards the request to the session master, which is
    // gone before it answers (crashed, or left a moment ago): the joiner's
    // retries must reach the next session master, not be dropped as
    // repeats of a request already passed on.
    for (seed, leaves) in [(31, false), (32, true)] {
        let cs = |p: ProcessType, token: &str| StationConfig {
            topology: Topology::ClientServer,
            ..StationConfig::new(p, token)
        };
        let mut c = Cluster::start(
            SimConfig::seeded(seed),
            registry(),
            vec![cs(ProcessType::Server, "s0"), cs(ProcessType::Server, "s1")],
        )
        .unwrap();
        let (s0, s1) = (c.addrs[0], c.addrs[1]);
        // s1 does not hear s0 go until its failure detection says so.
        c.sim.block(&[s0], &[s1]);
        if leaves {
            let now = c.now();
            c.station_mut(0).leave(now).unwrap();
            c.run_for(Duration::from_millis(50));
        }
        c.sim.crash(s0);
        let st = Station::new(cs(ProcessType::Server, "s2"), registry());
        let addr = c.sim.add_node(st);
        let now = c.now();
        c.sim.node_mut(addr).join(now, addr, s1).unwrap();
        let mut joined = None;
        c.sim.run_until_cond(Duration::from_secs(8), |sim| {
            while let Some(e) = sim.node_mut(addr).poll_event() {
                match e {
                    Event::Joined { id, session_master } => joined = Some(Ok((id, session_master))),
                    Event::JoinFailed(e) => joined = Some(Err(e)),
                    _ => {}
                }
            }
            joined.is_some()
        });
        let s1_id = c.station(1).id();
        let (id, master) = joined
            .unwrap_or_else(|| panic!("seed {seed}: no answer"))
            .unwrap_or_else(|e| panic!("seed {seed}, leaves {leaves}: {e:?}"));
        assert_eq!(master, s1_id, "seed {seed}");
        assert_eq!(c.station(1).session_master(), s1_id);
        assert!(c.station(1).stations().iter().any(|s| s.id == id));
        assert!(
            c.station(1).stats().joins_forwarded_again >= 1,
            "seed {seed}"
        );
    }
}
