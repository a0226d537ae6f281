//! The join approval example of the NetZ manual (14.3.4): the game allows
//! four players, each with the secret password; tool stations (such as an
//! object monitor) are always approved and not counted as players.
//!
//! Run with `cargo run --example join_approval`.
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
    let joiners = [
        ("player 2", ProcessType::Client, PASSWORD),
        ("player 3", ProcessType::Client, "WrongPassword"),
        ("player 3", ProcessType::Client, PASSWORD),
        ("monitor", ProcessType::Tool, ""),
        ("player 4", ProcessType::Client, PASSWORD),
        ("player 5", ProcessType::Client, PASSWORD),
        ("debugger", ProcessType::Tool, ""),
    ];
    for (name, process_type, token) in joiners {
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

#[allow(dead_code)]
fn main() {
    run();
}
