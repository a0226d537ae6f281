//! The join approval example of the NetZ manual (14.3.4): the game allows
//! four players, each with the secret password; tool stations (such as an
//! object monitor) are always approved and not counted as players.
//!
//! Run with `cargo run --example join_approval` (in the simulator, stepped
//! deterministically) or `cargo run --example join_approval -- --net` (the
//! same stations as `NetStation`s on loopback UDP sockets).
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use netz::JoinSessionOperation;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Prints a line and records it for [`run`]'s caller.
fn say(line: impl Into<String>) {
    let line = line.into();
    println!("{line}");
    LINES.with(|l| l.borrow_mut().push(line));
}

/// The most players in a game.
pub const MAX_PLAYERS: usize = 4;
/// The secret password players join with (their identification token).
pub const PASSWORD: &str = "CorrectPassword";

/// `void CheckJoiningProcesses(JoinSessionOperation* pOperation)`.
pub fn check_joining_processes(op: &mut JoinSessionOperation) {
    // Count the players, skipping tool stations (e.g. an object monitor);
    // the joining station counts too.
    let players = op
        .stations()
        .iter()
        .filter(|s| s.process_type() != ProcessType::Tool)
        .count()
        + 1;
    let joining = op.joining_station();
    // Approve the join if the maximum number of players has not been
    // reached and the joining player supplied the correct password.
    if players <= MAX_PLAYERS && joining.identification_token() == PASSWORD {
        op.approve();
        return;
    }
    // Always approve tool processes (a release build might want a password
    // for them as well).
    if joining.process_type() == ProcessType::Tool {
        op.approve();
        return;
    }
    op.deny();
}

/// Runs the example; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut c = Cluster::start(
        SimConfig::seeded(12),
        Arc::new(Registry::new()),
        vec![StationConfig::new(ProcessType::Client, PASSWORD)],
    )
    .expect("session");
    c.station_mut(0)
        .register_join_approval_callback(check_joining_processes);
    say("player 1 created the session");
    for (name, process_type, token) in JOINERS {
        let result = c.join(StationConfig::new(process_type, token), 0);
        match result {
            Ok(i) => say(format!(
                "{name} ({process_type:?}, token {token:?}): approved as {}",
                c.station(i).id()
            )),
            Err(e) => say(format!(
                "{name} ({process_type:?}, token {token:?}): refused: {e}"
            )),
        }
    }
    let st = c.station(0);
    let players = st
        .stations()
        .iter()
        .filter(|s| s.process_type() != ProcessType::Tool)
        .count();
    say(format!(
        "session: {} stations, {players} players",
        st.stations().len()
    ));
    LINES.with(|l| l.borrow().clone())
}

/// The stations that ask to join, in order: name, process type, token.
const JOINERS: [(&str, ProcessType, &str); 7] = [
    ("player 2", ProcessType::Client, PASSWORD),
    ("player 3", ProcessType::Client, "WrongPassword"),
    ("player 3", ProcessType::Client, PASSWORD),
    ("monitor", ProcessType::Tool, ""),
    ("player 4", ProcessType::Client, PASSWORD),
    ("player 5", ProcessType::Client, PASSWORD),
    ("debugger", ProcessType::Tool, ""),
];

/// [`run`] over the network: the same stations on loopback UDP sockets,
/// with the same approval callback on the session's creator.
pub fn run_net() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let registry = Arc::new(Registry::new());
        let any = "127.0.0.1:0".parse().expect("an address");
        let creator = NetStation::bind(
            any,
            NetConfig::new(ProcessType::Client, PASSWORD),
            registry.clone(),
        )
        .await
        .expect("bind");
        creator.with(|st, _| st.register_join_approval_callback(check_joining_processes));
        creator.create_session().expect("session");
        say("player 1 created the session");
        let mut joined = Vec::new();
        for (name, process_type, token) in JOINERS {
            let station =
                NetStation::bind(any, NetConfig::new(process_type, token), registry.clone())
                    .await
                    .expect("bind");
            match station.join(creator.local_addr()).await {
                Ok((id, _)) => {
                    say(format!(
                        "{name} ({process_type:?}, token {token:?}): approved as {id}"
                    ));
                    joined.push(station);
                }
                Err(e) => {
                    say(format!(
                        "{name} ({process_type:?}, token {token:?}): refused: {e}"
                    ));
                    station.shutdown().await;
                }
            }
        }
        let (stations, players) = creator.read(|st| {
            let players = st
                .stations()
                .iter()
                .filter(|s| s.process_type() != ProcessType::Tool)
                .count();
            (st.stations().len(), players)
        });
        say(format!("session: {stations} stations, {players} players"));
        for s in joined {
            s.shutdown().await;
        }
        creator.shutdown().await;
    });
    LINES.with(|l| l.borrow().clone())
}

#[allow(dead_code)]
fn main() {
    if std::env::args().any(|a| a == "--net") {
        run_net();
    } else {
        run();
    }
}
