//! netz-host's rolling upgrade with real processes on loopback: the game
//! of `examples/rolling_upgrade.rs` (this test binary itself, `--role`)
//! runs as netz-host's servers of build configurations `v1` and `v2`
//! (under `netz-host wrap`, which says `Ready` through netz-host's Agones
//! SDK once the server joined its session), and as clients started here.
//!
//! - `upgrade_through_the_api`: two v1 servers in one session, six
//!   clients with rooms, objects and reliable pings; `POST /upgrade` to v2;
//!   afterwards every client is on a v2 server with its station id, objects
//!   and rooms kept their state, every ping arrived once and in order, no
//!   client saw `on_disconnect(false)`, and `GET /upgrade` says done with
//!   the right counts; the events tell each step.
//! - `failures_stop_the_roll`: a new build whose executable does not exist
//!   (through the CLI) and one that exits at once stop the roll: the old
//!   servers serve on, the status says why; then the CLI rolls to v2.
//! - `the_drain_deadline_and_bad_requests`: 4xx for bad requests, 409 for a
//!   second roll and for a build configuration change while one runs; a
//!   client that does not migrate is told why when its server's drain ends.
//! - `a_wrapped_server_drains_on_sigterm_within_the_grace`: what an Agones
//!   Fleet's RollingUpdate does to an old GameServer (SIGTERM, SIGKILL after
//!   the grace period): the server under `netz-host wrap` on the Agones SDK
//!   drains its clients to the new server and exits 0 before the grace ends.
//!
//! The binary has its own `main` (it is also the game), runs its tests one
//! after the other, and ends itself (and the supervisors it started, whose
//! servers go with them) if they take too long.

mod common;

#[allow(dead_code)]
#[path = "../../examples/rolling_upgrade.rs"]
mod game;

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Fleet, Opts};
use game::{field, Peer, Proc, Session};
use serde_json::{json, Value};

/// Supervisors started, killed if the tests run out of time.
static SUPERVISORS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The whole binary's time limit.
const LIMIT: Duration = Duration::from_secs(300);

// ----- the fleet -------------------------------------------------------------------

/// `[agones]` (ports `base + 80 ..= base + 89`), the game's build and the
/// build configurations `v1` (game ports `base + 90 ..`), `v1long` (v1
/// without `drain_ms`: the game drains for its default 10 s), `v2` (`base +
/// 95 ..`), `nojoin` (v2 without `join_args`), `missing` (no such
/// executable) and `quits` (says why on stderr and exits 3 at once).
fn game_config(base: u16, drain_ms: u64) -> String {
    let host = env!("CARGO_BIN_EXE_netz-host");
    let me = std::env::current_exe().unwrap();
    let bc = |name: &str, build: &str, p: u16, join: bool, drain: bool| {
        format!(
            r#"
[[build_configs]]
name = "{name}"
build = "game"
args = ["--build", "{build}", "--port", "{{port}}", {drain_arg}"--command-file", "{{slot_dir}}/command"]
{join}
{drain_key}
sdk_ready = true
env = {{ NETZ_HOST_SDK = "agones" }}
port_range = [{p}, {pe}]
"#,
            join = if join {
                r#"join_args = ["--join", "{join}"]"#
            } else {
                ""
            },
            drain_arg = if drain {
                r#""--drain-ms", "{drain_ms}", "#
            } else {
                ""
            },
            drain_key = if drain {
                format!("drain_ms = {drain_ms}")
            } else {
                String::new()
            },
            pe = p + 4,
        )
    };
    format!(
        r#"
[agones]
grpc_port_range = [{g}, {ge}]
http_port_range = [{h}, {he}]

[[builds]]
name = "game"
executable = "{host}"
args = ["wrap", "--ready-line", "ready ", "--", "{me}", "--role", "server"]

[[builds]]
name = "missing"
executable = "netz-no-such-game-server"

[[builds]]
name = "false"
executable = "sh"
args = ["-c", "echo the map is missing >&2; exit 3"]
{v1}{v1long}{v2}{nojoin}
[[build_configs]]
name = "missing"
build = "missing"
join_args = ["--join", "{{join}}"]
port_range = [{m}, {me_}]

[[build_configs]]
name = "quits"
build = "false"
join_args = ["--join", "{{join}}"]
port_range = [{q}, {qe}]
"#,
        g = base + 80,
        ge = base + 84,
        h = base + 85,
        he = base + 89,
        me = me.display(),
        v1 = bc("v1", "v1", base + 90, true, true),
        v1long = bc("v1long", "v1", base + 90, true, false),
        v2 = bc("v2", "v2", base + 95, true, true),
        nojoin = bc("nojoin", "v2", base + 95, false, true),
        m = base + 70,
        me_ = base + 74,
        q = base + 75,
        qe = base + 79,
    )
}

fn fleet(name: &str, base: u16, drain_ms: u64, stop_grace_ms: u64) -> Fleet {
    fleet_of(name, base, 4, "v1", drain_ms, stop_grace_ms)
}

fn fleet_of(
    name: &str,
    base: u16,
    slots: u32,
    build_config: &'static str,
    drain_ms: u64,
    stop_grace_ms: u64,
) -> Fleet {
    let f = Fleet::start(
        name,
        base,
        Opts {
            slots,
            start_on_provision: false,
            build_config,
            extra_config: game_config(base, drain_ms),
            stop_grace_ms,
            // `netz-host wrap` pings Health every second.
            health_interval_ms: 2000,
            ..Opts::default()
        },
    );
    SUPERVISORS.lock().unwrap().push(f.child_pid());
    f
}

fn start_server(f: &Fleet, id: u64) -> Value {
    f.ok("POST", &format!("/servers/{id}/start"), None);
    f.wait_server(id, "a ready server", |s| {
        s["state"] == "Ready" && s["process"] == "running"
    })
}

/// Polls `GET /upgrade` until the roll ends.
fn wait_upgrade(f: &Fleet) -> Value {
    let mut last = Value::Null;
    f.wait_until("the rolling upgrade to end", |f| {
        last = f.ok("GET", "/upgrade", None);
        last["phase"] == "done" || last["phase"] == "failed"
    });
    last
}

fn kinds(f: &Fleet) -> Vec<String> {
    f.ok("GET", "/events", None)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

fn count(kinds: &[String], k: &str) -> usize {
    kinds.iter().filter(|x| *x == k).count()
}

/// Runs the CLI against `f`, at most a minute.
fn cli(f: &Fleet, args: &[&str]) -> (i32, String, String) {
    let addr = f.addr.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netz-host"))
        .args(["--api", &addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netz-host {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, out, err)
}

// ----- a server of the fleet as a peer of the roll ---------------------------------------

/// The game server netz-host runs in a slot: commands go to its command
/// file, its lines come from its `stdout.log`.
struct SlotServer {
    name: String,
    dir: PathBuf,
    offset: u64,
    partial: String,
    lines: VecDeque<String>,
    log: Vec<String>,
    id: u32,
    addr: String,
}

impl SlotServer {
    /// The server now running in slot `server_id`: it printed its `ready`
    /// line before it said `Ready` (its last one in the log).
    fn attach(f: &Fleet, server_id: u64) -> SlotServer {
        let dir = f.slot_dir(server_id);
        let path = dir.join("logs").join("stdout.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let at = text
            .rfind("\nready ")
            .map(|p| p + 1)
            .or_else(|| text.starts_with("ready ").then_some(0))
            .unwrap_or_else(|| panic!("no ready line of server {server_id}: {text}"));
        let line_end = text[at..].find('\n').map_or(text.len(), |e| at + e + 1);
        let ready = text[at..line_end].trim().to_owned();
        SlotServer {
            name: format!("server {server_id}"),
            dir,
            offset: line_end as u64,
            partial: String::new(),
            lines: VecDeque::new(),
            id: field(&ready, "id").parse().unwrap_or(0),
            addr: field(&ready, "addr").to_owned(),
            log: vec![ready],
        }
    }

    fn read_more(&mut self) {
        let Ok(mut file) = std::fs::File::open(self.dir.join("logs").join("stdout.log")) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = String::new();
        if let Ok(n) = file.read_to_string(&mut buf) {
            self.offset += n as u64;
            self.partial.push_str(&buf);
            while let Some(p) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=p).collect();
                self.lines.push_back(line.trim_end().to_owned());
            }
        }
    }
}

impl Peer for SlotServer {
    fn name(&self) -> &str {
        &self.name
    }
    fn id(&self) -> u32 {
        self.id
    }
    fn send(&mut self, line: &str) {
        let path = self.dir.join("command");
        let deadline = Instant::now() + Duration::from_secs(5);
        while path.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        netz_host::sdk::write_atomic(&path, format!("{line}\n").as_bytes()).unwrap();
    }
    fn recv(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.lines.pop_front() {
                return Some(l);
            }
            self.read_more();
            if self.lines.is_empty() {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    fn log(&mut self) -> &mut Vec<String> {
        &mut self.log
    }
}

fn wait_line(p: &mut dyn Peer, what: &str, f: &dyn Fn(&str) -> bool) -> String {
    if let Some(l) = p.log().iter().find(|l| f(l)) {
        return l.clone();
    }
    p.expect(f)
        .unwrap_or_else(|e| panic!("{what}: {e}; lines: {:?}", p.log()))
}

// ----- the tests --------------------------------------------------------------------

fn upgrade_through_the_api() {
    let f = fleet("roll-api", 45000, 4000, 1000);
    let s1 = start_server(&f, 1);
    assert_eq!(
        s1["joined"],
        Value::Null,
        "the first server creates the session"
    );
    let s2 = start_server(&f, 2);
    assert_eq!(s2["joined"], "127.0.0.1:45090", "{s2}");
    assert_eq!(s2["cluster"], s1["cluster"], "one session");
    // Server 1 hosts a match: the allocation follows its session.
    f.allocate("match-1", json!({ "server_id": 1 }));
    let mut old = [SlotServer::attach(&f, 1), SlotServer::attach(&f, 2)];
    let addrs: Vec<String> = old.iter().map(|s| s.addr.clone()).collect();
    assert_eq!(addrs, ["127.0.0.1:45090", "127.0.0.1:45091"]);
    let mut session = {
        let mut peers: Vec<&mut dyn Peer> = old.iter_mut().map(|p| p as &mut dyn Peer).collect();
        Session::populate(&mut peers, &addrs).unwrap()
    };

    let t0 = Instant::now();
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "max_draining": 1, "ready_timeout_ms": 20000 })),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("v1"), Some("v2"))
    );
    assert_eq!(v["counts"]["total"], 2, "{v}");
    let st = wait_upgrade(&f);
    let roll = t0.elapsed();
    assert_eq!(st["phase"], "done", "{st}");
    assert_eq!(
        st["counts"],
        json!({ "total": 2, "started": 2, "joined": 2, "draining": 0, "done": 2, "failed": 0 }),
        "{st}"
    );
    assert_eq!(st["errors"], json!([]), "{st}");
    assert!(st["finished_at_ms"].as_u64() >= st["started_at_ms"].as_u64());
    let servers = st["servers"].as_array().unwrap();
    let mut new_servers = Vec::new();
    for s in servers {
        assert_eq!(s["state"], "drained", "{st}");
        assert_eq!(s["exit"], "exit code 0", "{st}");
        assert!(s["drain_deadline_ms"].as_u64() > s["drain_started_at_ms"].as_u64());
        let r = &s["replacement"];
        assert_eq!(r["state"], "joined", "{st}");
        new_servers.push(r["server_id"].as_u64().unwrap());
    }
    // Each replacement joined the session through the server it replaced.
    assert_eq!(
        servers[0]["replacement"]["joined_through"],
        "127.0.0.1:45090"
    );
    assert_eq!(
        servers[1]["replacement"]["joined_through"],
        "127.0.0.1:45091"
    );
    let mut new: Vec<SlotServer> = new_servers
        .iter()
        .map(|&id| {
            let s = f.server(id);
            assert_eq!(s["build_config"], "v2", "{s}");
            assert_eq!(s["cluster"], s1["cluster"], "the same session: {s}");
            SlotServer::attach(&f, id)
        })
        .collect();
    let new_ids: Vec<u32> = new.iter().map(|s| s.id).collect();
    session.wait_on(&new_ids).unwrap();
    let figures = session.verify(&mut new[0], &new_ids, roll).unwrap();
    assert_eq!(figures.clients, 6);
    assert_eq!(figures.lost, 0, "{figures:?}");
    assert!(figures.blackout_median <= figures.blackout_max);
    // The old servers scaled in and stayed down; v2 is the fleet's build.
    for id in [1, 2] {
        let s = f.server(id);
        assert_eq!(
            (s["process"].as_str(), s["last_exit"].as_str()),
            (Some("stopped"), Some("exit code 0")),
            "{s}"
        );
    }
    for s in &mut old {
        wait_line(s, "the old server scaled in", &|l| l == "scaling-in");
    }
    assert_eq!(f.ok("GET", "/machine", None)["active_build_config"], "v2");
    let a = f.ok("GET", "/allocations/match-1", None);
    assert_eq!(
        (a["server_id"].as_u64(), a["build_config"].as_str()),
        (Some(new_servers[0]), Some("v2")),
        "{a}"
    );
    let k = kinds(&f);
    for (kind, n) in [
        ("UpgradeStarted", 1),
        ("UpgradeServerStarted", 2),
        ("UpgradeServerJoined", 2),
        ("UpgradeServerDraining", 2),
        ("UpgradeServerDrained", 2),
        ("UpgradeDone", 1),
        ("UpgradeFailed", 0),
    ] {
        assert_eq!(count(&k, kind), n, "{kind} in {k:?}");
    }
    let first_drain = k.iter().position(|x| x == "UpgradeServerDraining").unwrap();
    let first_join = k.iter().position(|x| x == "UpgradeServerJoined").unwrap();
    assert!(
        first_join < first_drain,
        "no old server drains before a new one joined: {k:?}"
    );
    println!(
        "figures through netz-host: {} clients, blackout median {:.1} ms, max {:.1} ms, roll {:.2} s \
         (POST /upgrade to done), reliable messages lost {}",
        figures.clients,
        figures.blackout_median.as_secs_f64() * 1000.0,
        figures.blackout_max.as_secs_f64() * 1000.0,
        roll.as_secs_f64(),
        figures.lost
    );
}

fn failures_stop_the_roll() {
    let f = fleet("roll-fail", 45100, 4000, 1000);
    start_server(&f, 1);
    start_server(&f, 2);
    let pids = |f: &Fleet| [f.server(1)["pid"].clone(), f.server(2)["pid"].clone()];
    let before = pids(&f);
    let s1 = SlotServer::attach(&f, 1);
    let mut client = Proc::start("client", &["--role", "client", "--join", &s1.addr]).unwrap();
    let old_server = field(&client.status().unwrap(), "server").to_owned();

    // A new build whose executable does not exist, through the CLI.
    let (code, out, err) = cli(&f, &["upgrade", "--build", "missing", "--wait"]);
    assert_eq!(code, 1, "{out}{err}");
    let st: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(st["phase"], "failed", "{st}");
    let errors = st["errors"].to_string();
    assert!(
        errors.contains("could not start") && errors.contains("netz-no-such-game-server"),
        "{st}"
    );
    assert_eq!(st["counts"]["failed"], 1, "{st}");
    assert_eq!(st["counts"]["draining"], 0, "{st}");
    assert_eq!(st["counts"]["done"], 0, "{st}");
    let (code, out, _) = cli(&f, &["upgrade-status"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"phase\": \"failed\""), "{out}");

    // A new build that exits at once, through the API.
    let (code, v) = f.api("POST", "/upgrade", Some(json!({ "build_config": "quits" })));
    assert_eq!(code, 202, "{v}");
    let st = wait_upgrade(&f);
    assert_eq!(st["phase"], "failed", "{st}");
    // The error says how it ended and what it said last.
    let errors = st["errors"].to_string();
    assert!(
        errors.contains("ended (exit code 3) before it was ready")
            && errors.contains("the map is missing"),
        "{st}"
    );
    assert_eq!(st["servers"][0]["state"], "serving", "{st}");

    // The old servers serve on, with the old build, untouched.
    assert_eq!(pids(&f), before);
    for id in [1, 2] {
        let s = f.server(id);
        assert_eq!(
            (s["state"].as_str(), s["build_config"].as_str()),
            (Some("Ready"), Some("v1")),
            "{s}"
        );
    }
    assert_eq!(f.ok("GET", "/machine", None)["active_build_config"], "v1");
    let k = kinds(&f);
    assert_eq!(count(&k, "UpgradeServerDraining"), 0, "{k:?}");
    assert_eq!(count(&k, "UpgradeFailed"), 2, "{k:?}");
    let s = client.status().unwrap();
    assert_eq!(field(&s, "server"), old_server, "{s}");

    // Then the CLI rolls the fleet to v2.
    let (code, out, err) = cli(
        &f,
        &[
            "upgrade",
            "--build",
            "v2",
            "--ready-timeout-ms",
            "20000",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("draining"), "progress on stderr: {err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["phase"], "done", "{st}");
    assert_eq!(st["counts"]["done"], 2, "{st}");
    let new_ids: Vec<u32> = st["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SlotServer::attach(&f, s["replacement"]["server_id"].as_u64().unwrap()).id)
        .collect();
    let id = client.id();
    game::until("the client on v2", || {
        let s = client.status()?;
        Ok(new_ids.iter().any(|n| field(&s, "server") == n.to_string())
            && field(&s, "id") == id.to_string())
    })
    .unwrap();
    assert!(
        !client.log().iter().any(|l| l.starts_with("on-disconnect")),
        "{:?}",
        client.log()
    );
}

fn the_drain_deadline_and_bad_requests() {
    let f = fleet("roll-deadline", 45200, 1500, 1000);
    let (code, v) = f.api("GET", "/upgrade", None);
    assert_eq!(code, 404, "{v}");
    start_server(&f, 1);
    let s1 = SlotServer::attach(&f, 1);
    let bad: [(Value, &str); 9] = [
        (Value::Null, "missing field `build_config`"),
        (
            json!({ "build_config": "v2", "surprise": 1 }),
            "unknown field `surprise`",
        ),
        (json!({ "build_config": 2 }), "bad request body"),
        (json!({ "build_config": "" }), "must not be empty"),
        (
            json!({ "build_config": "nope" }),
            "unknown build configuration \"nope\"",
        ),
        (
            json!({ "build_config": "v2", "max_draining": 0 }),
            "max_draining",
        ),
        (
            json!({ "build_config": "v2", "max_draining": -1 }),
            "bad request body",
        ),
        (
            json!({ "build_config": "v2", "drain_timeout_ms": 100 }),
            "shorter than the drain_ms 1500",
        ),
        (json!({ "build_config": "nojoin" }), "no join_args"),
    ];
    for (body, want) in bad {
        let b = (!body.is_null()).then_some(body.clone());
        let (code, v) = f.api("POST", "/upgrade", b);
        assert_eq!(code, 400, "{body} -> {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body} -> {v}");
    }
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "ready_timeout_ms": 0 })),
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = f.api("POST", "/upgrade", Some(json!({ "build_config": "v1" })));
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("nothing to upgrade"),
        "{v}"
    );
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "max_surge": 0 })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("alone in its session"),
        "{v}"
    );
    let (code, _) = f.api("DELETE", "/upgrade", None);
    assert_eq!(code, 405);
    let (code, _) = f.api("PUT", "/upgrade", Some(json!({ "build_config": "v2" })));
    assert_eq!(code, 405);
    let token = netz_host::api::token_for(f.addr).unwrap();
    let raw = format!(
        "POST /upgrade HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\n\r\n{{nope",
        f.addr
    );
    let out = netz_host::api::raw_request(f.addr, raw.as_bytes()).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 400") && out.contains("not valid JSON"),
        "{out}"
    );
    let (code, _, _) = cli(&f, &["upgrade"]);
    assert_eq!(code, 2, "the CLI needs --build");
    let (code, _, err) = cli(&f, &["upgrade", "--build", "v2", "--max-draining", "many"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        f.ok("GET", "/machine", None)["active_build_config"],
        "v1",
        "nothing started"
    );

    // One client migrates, one stays: the old server drains until its
    // drain_ms ends, then tells the one left why.
    let mut mover = Proc::start("mover", &["--role", "client", "--join", &s1.addr]).unwrap();
    let mut stayer = Proc::start(
        "stayer",
        &["--role", "client", "--join", &s1.addr, "--stay"],
    )
    .unwrap();
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "ready_timeout_ms": 20000, "drain_timeout_ms": 15000 })),
    );
    assert_eq!(code, 202, "{v}");
    let mut st = Value::Null;
    f.wait_until("the old server draining", |f| {
        st = f.ok("GET", "/upgrade", None);
        st["phase"] == "draining"
    });
    assert!(st["deadline_ms"].as_u64().is_some(), "{st}");
    // While the stayer holds the drain, a second roll and a build
    // configuration change are refused.
    let (code, v) = f.api("POST", "/upgrade", Some(json!({ "build_config": "v2" })));
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("under way"), "{v}");
    let (code, v) = f.api("PUT", "/build-config", Some(json!({ "name": "v1" })));
    assert_eq!(code, 409, "{v}");
    let st = wait_upgrade(&f);
    assert_eq!(st["phase"], "done", "{st}");
    assert_eq!(st["servers"][0]["state"], "drained", "{st}");
    let closed = wait_line(&mut stayer, "the stayer told why", &|l| {
        l.starts_with("closed reason=")
    });
    assert!(
        closed.contains("drain timeout ended before the client migrated"),
        "{closed}"
    );
    assert!(stayer.log().iter().any(|l| l == "offline staying"));
    let new_id = SlotServer::attach(
        &f,
        st["servers"][0]["replacement"]["server_id"]
            .as_u64()
            .unwrap(),
    )
    .id;
    game::until("the mover on v2", || {
        Ok(field(&mover.status()?, "server") == new_id.to_string())
    })
    .unwrap();
    assert!(!mover.log().iter().any(|l| l.starts_with("on-disconnect")));
}

fn drain_first_without_a_free_slot() {
    // Two slots, both serving v1 in one session: no room for a new server
    // until an old one has drained into the other.
    let f = fleet_of("roll-inplace", 45400, 2, "v1", 4000, 1000);
    start_server(&f, 1);
    start_server(&f, 2);
    f.allocate("match-2", json!({ "server_id": 1 }));
    let s1 = SlotServer::attach(&f, 1);
    let s2 = SlotServer::attach(&f, 2);
    let mut clients: Vec<Proc> = [&s1.addr, &s2.addr]
        .iter()
        .enumerate()
        .map(|(i, a)| Proc::start(&format!("c{i}"), &["--role", "client", "--join", a]).unwrap())
        .collect();
    let ids: Vec<String> = clients.iter().map(|c| c.id().to_string()).collect();
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "ready_timeout_ms": 20000 })),
    );
    assert_eq!(code, 202, "{v}");
    let st = wait_upgrade(&f);
    assert_eq!(st["phase"], "done", "{st}");
    assert_eq!(st["counts"]["joined"], 2, "{st}");
    for (i, s) in st["servers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(s["state"], "drained", "{st}");
        // Each replacement started in the slot its old server left.
        assert_eq!(s["replacement"]["server_id"], i as u64 + 1, "{st}");
        assert!(
            s["replacement"]["started_at_ms"].as_u64() >= s["drain_started_at_ms"].as_u64(),
            "{st}"
        );
    }
    let a = f.ok("GET", "/allocations/match-2", None);
    assert_eq!(
        (a["server_id"].as_u64(), a["build_config"].as_str()),
        (Some(1), Some("v2")),
        "{a}"
    );
    let new_ids: Vec<String> = [1, 2]
        .iter()
        .map(|&id| SlotServer::attach(&f, id).id.to_string())
        .collect();
    for (c, id) in clients.iter_mut().zip(&ids) {
        game::until("the client on v2", || {
            let s = c.status()?;
            Ok(new_ids.iter().any(|n| field(&s, "server") == n) && field(&s, "id") == id)
        })
        .unwrap();
        assert!(
            !c.log().iter().any(|l| l.starts_with("on-disconnect")),
            "{:?}",
            c.log()
        );
    }
    // And back to v1 the same way.
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v1", "ready_timeout_ms": 20000 })),
    );
    assert_eq!(code, 202, "{v}");
    let st = wait_upgrade(&f);
    assert_eq!(st["phase"], "done", "{st}");
    // max_surge 0 drains first even with a free slot: refused while a
    // server is alone in its session.
    f.ok("POST", "/servers/2/stop", None);
    f.wait_server(2, "server 2 stopped", |s| s["process"] == "stopped");
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "max_surge": 0 })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_surge is 0"),
        "{v}"
    );
}

fn a_server_past_its_drain_deadline_is_killed() {
    // v1long has no drain_ms: its servers drain for the game's 10 s, longer
    // than this roll's drain deadline.
    let f = fleet_of("roll-kill", 45500, 4, "v1long", 4000, 1000);
    start_server(&f, 1);
    let s1 = SlotServer::attach(&f, 1);
    let _stayer = Proc::start(
        "stayer",
        &["--role", "client", "--join", &s1.addr, "--stay"],
    )
    .unwrap();
    let (code, v) = f.api(
        "POST",
        "/upgrade",
        Some(json!({ "build_config": "v2", "ready_timeout_ms": 20000, "drain_timeout_ms": 1500 })),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["drain_timeout_ms"], 1500);
    let st = wait_upgrade(&f);
    assert_eq!(st["phase"], "done", "the roll goes on: {st}");
    let s = &st["servers"][0];
    assert_eq!(s["state"], "killed", "{st}");
    assert_eq!(s["exit"], "signal 9", "{st}");
    assert!(st["errors"].to_string().contains("drain deadline"), "{st}");
    assert_eq!(count(&kinds(&f), "UpgradeServerKilled"), 1);
}

fn a_wrapped_server_drains_on_sigterm_within_the_grace() {
    // The grace stands for terminationGracePeriodSeconds; the game's drain
    // (drain_ms) is shorter, as deploy/agones/ has it.
    let f = fleet("agones-grace", 45300, 8000, 10_000);
    start_server(&f, 1);
    let stderr = std::fs::read_to_string(f.slot_dir(1).join("logs").join("stderr.log")).unwrap();
    assert!(stderr.contains("Agones backend"), "{stderr}");
    let s1 = SlotServer::attach(&f, 1);
    let mut clients: Vec<Proc> = (0..3)
        .map(|i| Proc::start(&format!("c{i}"), &["--role", "client", "--join", &s1.addr]).unwrap())
        .collect();
    // A GameServer of the new template: server 2 runs v2 and joins the
    // session (join_args). Its `Ready` ends the allocation that started
    // it, as on Agones; the process stays.
    f.allocate(
        "new-template",
        json!({ "build_config": "v2", "server_id": 2 }),
    );
    let s = f.wait_server(2, "the new server ready", |s| {
        s["state"] == "Ready" && s["process"] == "running"
    });
    assert_eq!(
        (s["build_config"].as_str(), s["joined"].as_str()),
        (Some("v2"), Some("127.0.0.1:45390")),
        "{s}"
    );
    let s2 = SlotServer::attach(&f, 2);
    for c in &mut clients {
        game::until("the new server seen", || {
            Ok(field(&c.status()?, "stations") == "5")
        })
        .unwrap();
    }
    // What Kubernetes does to an old GameServer: SIGTERM, SIGKILL after
    // the grace.
    let pid = f.server(1)["pid"].as_u64().unwrap();
    f.ok("POST", "/servers/1/stop", None);
    let s = f.wait_server(1, "the old server gone", |s| s["process"] == "stopped");
    assert_eq!(
        s["last_exit"], "exit code 0",
        "drained and exited before the SIGKILL: {s}"
    );
    assert!(!common::alive(pid));
    for c in &mut clients {
        game::until("the client on the new server", || {
            Ok(field(&c.status()?, "server") == s2.id.to_string())
        })
        .unwrap();
        assert!(
            c.log().iter().any(|l| l.starts_with("migrated ")),
            "{:?}",
            c.log()
        );
        assert!(
            !c.log().iter().any(|l| l.starts_with("on-disconnect")),
            "{:?}",
            c.log()
        );
    }
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--role") {
        return game::main();
    }
    std::thread::spawn(|| {
        std::thread::sleep(LIMIT);
        eprintln!("rolling_upgrade: the tests did not end within {LIMIT:?}");
        for pid in SUPERVISORS.lock().map(|v| v.clone()).unwrap_or_default() {
            netz_host::process::signal_pid(pid, libc::SIGKILL);
        }
        std::process::exit(1);
    });
    let tests: [(&str, fn()); 6] = [
        ("upgrade_through_the_api", upgrade_through_the_api),
        ("failures_stop_the_roll", failures_stop_the_roll),
        (
            "the_drain_deadline_and_bad_requests",
            the_drain_deadline_and_bad_requests,
        ),
        (
            "drain_first_without_a_free_slot",
            drain_first_without_a_free_slot,
        ),
        (
            "a_server_past_its_drain_deadline_is_killed",
            a_server_past_its_drain_deadline_is_killed,
        ),
        (
            "a_wrapped_server_drains_on_sigterm_within_the_grace",
            a_wrapped_server_drains_on_sigterm_within_the_grace,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let list = std::env::args().any(|a| a == "--list");
    let mut failed = 0;
    for (name, f) in tests {
        if !filters.is_empty() && !filters.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        if list {
            println!("{name}: test");
            continue;
        }
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    if failed > 0 {
        println!("test result: FAILED. {failed} failed");
        return ExitCode::from(1);
    }
    if !list {
        println!("test result: ok");
    }
    ExitCode::SUCCESS
}
