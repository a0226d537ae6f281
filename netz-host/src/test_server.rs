//! A test game server used by the tests and the example fleet. It uses the
//! [`crate::sdk`] like a real server would, and can be told to misbehave.
//!
//! Options: `--single-session` (exit 0 after each session),
//! `--session-ms N` (length of a single session, default 300),
//! `--crash-on-allocation` (exit with code 3 whenever it is allocated).
//!
//! Commands are written to the file `test-command` next to `server.json`;
//! the server reads and deletes it: `exit0`, `crash` (exit code 3),
//! `hang` (stop answering anything), `mute` (stop answering queries),
//! `grow:<MiB>` (allocate and touch that much memory).
//!
//! It writes `test-status.json` next to `server.json`: pid, current
//! allocation, sessions started, state resets, and the `marker` custom
//! variable of its build configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::sdk::{AllocationEvent, GameServer, QueryPlayer};

/// Player capacity the test server reports unless `server.json` has a
/// `maxPlayers` variable.
pub const DEFAULT_MAX_PLAYERS: u16 = 16;
/// Map the test server reports unless `server.json` has a `map` variable.
pub const DEFAULT_MAP: &str = "netz-test-arena";

/// Name of the command file in the slot folder.
pub const COMMAND_FILE: &str = "test-command";
/// Name of the status file in the slot folder.
pub const STATUS_FILE: &str = "test-status.json";

/// Runs the test server with command-line `args` (without the program
/// name). Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let mut single_session = false;
    let mut crash_on_allocation = false;
    let mut session = Duration::from_millis(300);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--single-session" => single_session = true,
            "--crash-on-allocation" => crash_on_allocation = true,
            "--session-ms" => match it.next().and_then(|v| v.parse().ok()) {
                Some(ms) => session = Duration::from_millis(ms),
                None => {
                    eprintln!("--session-ms needs a number of milliseconds");
                    return 2;
                }
            },
            other => {
                eprintln!("unknown option {other:?}");
                return 2;
            }
        }
    }
    let mut server = match GameServer::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let dir = server
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let marker = server
        .config
        .variables
        .get("marker")
        .cloned()
        .unwrap_or_default();
    server.update_info(|i| {
        if i.max_players == 0 {
            i.max_players = DEFAULT_MAX_PLAYERS;
        }
        if i.map.is_empty() {
            i.map = DEFAULT_MAP.into();
        }
        if i.game_type.is_empty() {
            i.game_type = "netz-test".into();
        }
        if i.build_id.is_empty() {
            i.build_id = env!("CARGO_PKG_VERSION").into();
        }
    });
    server.set_rules(vec![("marker".into(), marker.clone())]);
    let parent = std::os::unix::process::parent_id();
    let mut sessions = 0u32;
    let mut resets = 0u32;
    let mut session_end: Option<Instant> = None;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    let mut hung = false;
    let mut dirty = true;
    println!(
        "test server {} up (pid {})",
        server.config.server_id,
        std::process::id()
    );
    loop {
        if std::os::unix::process::parent_id() != parent {
            // The supervisor is gone: do not linger as an orphan.
            return 0;
        }
        if hung {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        while let Some(ev) = server.watcher.poll() {
            dirty = true;
            match ev {
                AllocationEvent::Allocated(id) => {
                    println!("allocated {id}");
                    if crash_on_allocation {
                        eprintln!("crashing on allocation {id}");
                        return 3;
                    }
                    sessions += 1;
                    server.set_player_list(vec![QueryPlayer {
                        name: format!("player-of-{id}"),
                        score: 0,
                        seconds: 0,
                    }]);
                    server.set_rules(vec![
                        ("marker".into(), marker.clone()),
                        ("allocation".into(), id.clone()),
                    ]);
                    if single_session {
                        session_end = Some(Instant::now() + session);
                    }
                }
                AllocationEvent::Deallocated(id) => {
                    println!("deallocated {id}: resetting state");
                    resets += 1;
                    server.set_player_list(Vec::new());
                    server.set_rules(vec![("marker".into(), marker.clone())]);
                    session_end = None;
                }
            }
        }
        if session_end.is_some_and(|t| Instant::now() >= t) {
            println!("session over: exiting with code 0");
            return 0;
        }
        let cmd_path = dir.join(COMMAND_FILE);
        if let Ok(cmd) = std::fs::read_to_string(&cmd_path) {
            let _ = std::fs::remove_file(&cmd_path);
            let cmd = cmd.trim();
            println!("command {cmd:?}");
            match cmd {
                "exit0" => return 0,
                "crash" => return 3,
                "hang" => {
                    if let Some(q) = &server.query {
                        q.set_responding(false);
                    }
                    hung = true;
                }
                "mute" => {
                    if let Some(q) = &server.query {
                        q.set_responding(false);
                    }
                }
                c => {
                    if let Some(mb) = c
                        .strip_prefix("grow:")
                        .and_then(|m| m.parse::<usize>().ok())
                    {
                        hoard.push(std::hint::black_box(vec![1u8; mb * 1024 * 1024]));
                    }
                }
            }
        }
        if dirty {
            dirty = false;
            let status = json!({
                "pid": std::process::id(),
                "allocation": server.watcher.current(),
                "sessions": sessions,
                "resets": resets,
                "marker": marker,
            });
            let _ = crate::sdk::write_atomic(&dir.join(STATUS_FILE), status.to_string().as_bytes());
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}
