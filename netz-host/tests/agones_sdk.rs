//! netz-host's Agones SDK server, driven by a game server built on the
//! official `agones` crate (this test binary itself, started by netz-host
//! with `NETZ_AGONES_TEST_GAME=1`), by plain HTTP on the REST paths, and
//! through `netz_host::sdk`'s backend trait.
//!
//! The binary has its own `main` (it is also the game server), and runs its
//! tests one after the other.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::{Fleet, Opts};
use netz_host::http_client;
use netz_host::sdk::{self, AllocationEvent, HostSdk};
use serde_json::{json, Value};

const GAME_ENV: &str = "NETZ_AGONES_TEST_GAME";
const COMMAND: &str = "agones-command";
const WATCHED: &str = "agones-watch.json";

// ----- the game server ----------------------------------------------------------

/// A game server written against the official Agones SDK only. It takes
/// commands from the file `agones-command` in its working folder and
/// writes every GameServer `WatchGameServer` gives it to `agones-watch.json`.
fn game() -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let parent = std::os::unix::process::parent_id();
        let mut sdk = match agones::Sdk::new(None, Some(Duration::from_secs(5))).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot connect to the Agones SDK: {e}");
                return 1;
            }
        };
        let health = sdk.health_check();
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h2 = healthy.clone();
        tokio::spawn(async move {
            loop {
                if h2.load(std::sync::atomic::Ordering::SeqCst) && health.send(()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut watcher = sdk.clone();
        tokio::spawn(async move {
            let Ok(mut stream) = watcher.watch_gameserver().await else {
                return;
            };
            let mut states: Vec<String> = Vec::new();
            while let Ok(Some(gs)) = stream.message().await {
                let st = gs.status.clone().unwrap_or_default();
                let meta = gs.object_meta.clone().unwrap_or_default();
                if states.last() != Some(&st.state) {
                    states.push(st.state.clone());
                }
                let lists: serde_json::Map<String, Value> = st
                    .lists
                    .iter()
                    .map(|(k, l)| (k.clone(), json!(l.values)))
                    .collect();
                let v = json!({
                    "states": states,
                    "state": st.state,
                    "labels": meta.labels,
                    "annotations": meta.annotations,
                    "lists": lists,
                    "players": st.players.map(|p| p.count),
                });
                let _ = netz_host::sdk::write_atomic(Path::new(WATCHED), v.to_string().as_bytes());
            }
        });
        let mut beta = sdk.beta().clone();
        let mut alpha = sdk.alpha().clone();
        loop {
            if std::os::unix::process::parent_id() != parent {
                return 0;
            }
            if let Ok(cmd) = std::fs::read_to_string(COMMAND) {
                let _ = std::fs::remove_file(COMMAND);
                let cmd = cmd.trim().to_owned();
                let r = match cmd.split_once(':') {
                    None if cmd == "ready" => sdk.ready().await.map_err(|e| e.to_string()),
                    None if cmd == "allocate" => sdk.allocate().await.map_err(|e| e.to_string()),
                    None if cmd == "shutdown" => sdk.shutdown().await.map_err(|e| e.to_string()),
                    None if cmd == "nohealth" => {
                        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    }
                    Some(("reserve", s)) => {
                        let secs = s.parse().unwrap_or(1);
                        sdk.reserve(Duration::from_secs(secs))
                            .await
                            .map_err(|e| e.to_string())
                    }
                    Some(("label", kv)) => {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        sdk.set_label(k, v).await.map_err(|e| e.to_string())
                    }
                    Some(("player", name)) => beta
                        .append_list_value("players", name)
                        .await
                        .map_err(|e| e.to_string()),
                    Some(("connect", name)) => match alpha.player_connect(name).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("PlayerConnect returned false".into()),
                        Err(e) => Err(e.to_string()),
                    },
                    Some(("connect-again", name)) => match alpha.player_connect(name).await {
                        Ok(false) => Ok(()),
                        other => Err(format!("PlayerConnect of a connected player: {other:?}")),
                    },
                    Some(("disconnect", name)) => match alpha.player_disconnect(name).await {
                        Ok(true) => Ok(()),
                        other => Err(format!("PlayerDisconnect: {other:?}")),
                    },
                    Some(("alpha-count", n)) => match alpha.get_player_count().await {
                        Ok(c) if c.to_string() == n => Ok(()),
                        other => Err(format!("GetPlayerCount: {other:?}")),
                    },
                    Some(("count", n)) => beta
                        .increment_counter("players", n.parse().unwrap_or(1))
                        .await
                        .map_err(|e| e.to_string()),
                    _ => Err(format!("unknown command {cmd:?}")),
                };
                let _ = std::fs::write(
                    "agones-result",
                    match r {
                        Ok(()) => format!("{cmd}: ok"),
                        Err(e) => format!("{cmd}: {e}"),
                    },
                );
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
}

// ----- the tests ----------------------------------------------------------------

/// The `[agones]` section (ports `base + 80 ..= base + 89`) and the
/// `agones` build configuration (game ports `base + 90 ..= base + 94`),
/// then `extra`.
fn agones_config(base: u16, extra: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        r#"
[agones]
grpc_port_range = [{g}, {ge}]
http_port_range = [{h}, {he}]
player_capacity = 8

[[builds]]
name = "agones-game"
executable = "{exe}"

[[build_configs]]
name = "agones"
build = "agones-game"
sdk_ready = true
env = {{ {GAME_ENV} = "1" }}
port_range = [{p}, {pe}]
{extra}
"#,
        g = base + 80,
        ge = base + 84,
        h = base + 85,
        he = base + 89,
        p = base + 90,
        pe = base + 94,
        exe = exe.display(),
    )
}

fn watched(f: &Fleet) -> Value {
    std::fs::read_to_string(f.slot_dir(1).join(WATCHED))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn tell(f: &Fleet, cmd: &str) {
    let _ = std::fs::remove_file(f.slot_dir(1).join("agones-result"));
    sdk::write_atomic(&f.slot_dir(1).join(COMMAND), cmd.as_bytes()).unwrap();
    let mut result = String::new();
    f.wait_until(&format!("the game ran {cmd:?}"), |f| {
        result = std::fs::read_to_string(f.slot_dir(1).join("agones-result")).unwrap_or_default();
        !result.is_empty()
    });
    assert_eq!(result, format!("{cmd}: ok"));
}

fn official_agones_crate_game_runs_under_netz_host() {
    let base = 44000;
    let f = Fleet::start(
        "agones-game",
        base,
        Opts {
            build_config: "agones",
            extra_config: agones_config(base, ""),
            ..Opts::default()
        },
    );
    // Running, but Scheduled until the game says Ready.
    let s = f.wait_server(1, "running", |s| s["process"] == "running");
    let first_pid = s["pid"].as_u64().unwrap();
    f.wait_until("the game watching", |f| watched(f)["state"] == "Scheduled");
    assert_eq!(f.server(1)["state"], "Scheduled");
    tell(&f, "ready");
    f.wait_server(1, "Ready", |s| s["state"] == "Ready");
    f.wait_until("Ready seen", |f| watched(f)["state"] == "Ready");

    // Reserve for a second, then Ready again by itself.
    tell(&f, "reserve:1");
    f.wait_server(1, "Reserved", |s| s["state"] == "Reserved");
    f.wait_until("Reserved seen", |f| watched(f)["state"] == "Reserved");
    f.wait_server(1, "Ready again after the reservation", |s| {
        s["state"] == "Ready" && s["reserved_for_ms"].is_null()
    });
    f.wait_until("Ready seen again", |f| {
        watched(f)["states"] == json!(["Scheduled", "Ready", "Reserved", "Ready"])
    });

    // An allocation made through netz-host's API, with Agones' metadata.
    f.ok(
        "POST",
        "/allocations",
        Some(json!({
            "allocation_id": "m-agones",
            "payload": "hello",
            "metadata": { "labels": { "mode": "ctf" }, "annotations": { "party": "7" } },
        })),
    );
    f.wait_until("Allocated seen with its metadata", |f| {
        let w = watched(f);
        w["state"] == "Allocated"
            && w["labels"]["mode"] == "ctf"
            && w["annotations"]["party"] == "7"
            && w["annotations"]["netz.dev/allocation-id"] == "m-agones"
            && w["annotations"]["netz.dev/allocation-payload"] == "hello"
    });
    // The same process: an allocation does not restart an SDK game.
    assert_eq!(f.server(1)["pid"].as_u64(), Some(first_pid));

    // Labels and players through Counters & Lists.
    tell(&f, "label:phase=playing");
    tell(&f, "player:alice");
    tell(&f, "player:bob");
    f.wait_until("labels and players seen", |f| {
        let w = watched(f);
        w["labels"]["agones.dev/sdk-phase"] == "playing"
            && w["lists"]["players"] == json!(["alice", "bob"])
            && w["players"] == 2
    });
    assert_eq!(f.server(1)["players"], 2);
    tell(&f, "count:3");
    // The alpha player tracking keeps the same list.
    tell(&f, "alpha-count:2");
    tell(&f, "connect:carol");
    tell(&f, "connect-again:carol");
    tell(&f, "disconnect:alice");
    tell(&f, "alpha-count:2");
    f.wait_until("the alpha calls seen in the list", |f| {
        watched(f)["lists"]["players"] == json!(["bob", "carol"])
    });

    // Shutdown: the allocation ends, the slot gets a fresh server (the
    // game is stopped before it can write its result, so none is awaited).
    sdk::write_atomic(&f.slot_dir(1).join(COMMAND), b"shutdown").unwrap();
    let s = f.wait_server(1, "a fresh server", |s| {
        s["process"] == "running" && s["pid"].as_u64() != Some(first_pid)
    });
    assert!(s["allocation_id"].is_null(), "{s}");
    assert_eq!(f.ok("GET", "/allocations", None), json!([]));
    let events = f.events();
    assert!(events.contains("Shutdown through the SDK"), "{events}");
    assert!(
        events.contains("deallocated m-agones after Shutdown through the SDK"),
        "{events}"
    );
    assert!(f.server_json(1).allocated_uuid.is_empty());

    // The SDK's Health pings are a health source: when they stop, the
    // server is stopped and restarted.
    f.wait_until("the new game watching", |f| {
        watched(f)["states"] == json!(["Scheduled"])
    });
    tell(&f, "ready");
    f.wait_server(1, "Ready", |s| s["state"] == "Ready");
    let pid = f.server(1)["pid"].as_u64();
    tell(&f, "nohealth");
    f.wait_until("a restart for missing Health pings", |f| {
        f.events().contains("no Health ping through the SDK") && f.server(1)["pid"].as_u64() != pid
    });
}

fn sdk_port(base: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, base + 85))
}

fn rest(base: u16, method: &str, path: &str, body: Value) -> (u16, Value) {
    http_client::request(sdk_port(base), method, path, &[], Some(&body)).unwrap()
}

fn rest_paths_answer_plain_http() {
    let base = 44100;
    let f = Fleet::start(
        "agones-rest",
        base,
        Opts {
            extra_config: agones_config(base, ""),
            ..Opts::default()
        },
    );
    // The normal test server (server.json and SQP) runs in the slot; its
    // SDK server answers too, and both views agree.
    f.wait_server(1, "ready", |s| s["state"] == "Ready");
    let (code, v) = rest(base, "POST", "/ready", json!({}));
    assert_eq!((code, v), (200, json!({})));
    let (code, gs) = rest(base, "GET", "/gameserver", Value::Null);
    assert_eq!(code, 200);
    assert_eq!(gs["status"]["state"], "Ready");
    assert_eq!(gs["status"]["address"], "127.0.0.1");
    assert_eq!(gs["status"]["ports"][0]["port"], f.server(1)["port"]);
    assert_eq!(gs["status"]["counters"]["players"]["capacity"], "8");
    assert_eq!(gs["object_meta"]["name"], "agones-rest-1");

    let (code, _) = rest(
        base,
        "PUT",
        "/metadata/label",
        json!({"key": "a", "value": "b"}),
    );
    assert_eq!(code, 200);
    let (code, _) = rest(
        base,
        "PUT",
        "/metadata/annotation",
        json!({"key": "n", "value": "1"}),
    );
    assert_eq!(code, 200);
    let (code, v) = rest(
        base,
        "PUT",
        "/metadata/label",
        json!({"key": "a b", "value": "b"}),
    );
    assert_eq!(code, 400, "{v}");
    let (_, gs) = rest(base, "GET", "/gameserver", Value::Null);
    assert_eq!(gs["object_meta"]["labels"]["agones.dev/sdk-a"], "b");
    assert_eq!(gs["object_meta"]["annotations"]["agones.dev/sdk-n"], "1");

    // Lists and counters.
    let (code, v) = rest(
        base,
        "POST",
        "/v1beta1/lists/players:addValue",
        json!({"value": "x"}),
    );
    assert_eq!((code, &v["values"]), (200, &json!(["x"])));
    let (code, _) = rest(
        base,
        "POST",
        "/v1beta1/lists/players:addValue",
        json!({"value": "x"}),
    );
    assert_eq!(code, 409);
    let (code, v) = rest(
        base,
        "POST",
        "/v1beta1/lists/players:removeValue",
        json!({"value": "x"}),
    );
    assert_eq!((code, &v["values"]), (200, &json!([])));
    let (code, v) = rest(
        base,
        "PATCH",
        "/v1beta1/lists/players",
        json!({"values": ["p", "q", "p"]}),
    );
    assert_eq!((code, &v["values"]), (200, &json!(["p", "q"])));
    assert_eq!(f.server(1)["players"], 2);
    let (code, v) = rest(
        base,
        "PATCH",
        "/v1beta1/counters/players",
        json!({"countDiff": "2"}),
    );
    assert_eq!((code, &v["count"]), (200, &json!("2")));
    let (code, v) = rest(
        base,
        "PATCH",
        "/v1beta1/counters/players",
        json!({"countDiff": 7}),
    );
    assert_eq!(code, 400, "over the capacity: {v}");
    let (code, v) = rest(base, "GET", "/v1beta1/counters/players", Value::Null);
    assert_eq!((code, &v["count"]), (200, &json!("2")));
    let (code, _) = rest(base, "GET", "/v1beta1/counters/nope", Value::Null);
    assert_eq!(code, 404);

    // The watch stream, as chunked newline-delimited JSON.
    let raw = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(sdk_port(base)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /watch/gameserver HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        while !String::from_utf8_lossy(&got).contains("\"result\"") {
            let n = s.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "watch stream ended: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("\"result\""), "{raw}");

    // A web page may not use it.
    let out = http_client::request(
        sdk_port(base),
        "POST",
        "/shutdown",
        &["Origin: http://evil.example".to_string()],
        None,
    )
    .unwrap();
    assert_eq!(out.0, 403);
    // Nor one that rebound its name to 127.0.0.1 (it sends its own Host).
    let raw = http_client::raw_request(
        sdk_port(base),
        b"GET /gameserver HTTP/1.1\r\nHost: evil.example:9358\r\n\r\n",
    )
    .unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&raw)
    );

    // Reserve(0): until allocated; then a self-allocation.
    let (code, _) = rest(base, "POST", "/reserve", json!({"seconds": "0"}));
    assert_eq!(code, 200);
    f.wait_server(1, "Reserved", |s| s["state"] == "Reserved");
    let (code, _) = rest(base, "POST", "/allocate", json!({}));
    assert_eq!(code, 200);
    let s = f.wait_server(1, "Allocated", |s| s["state"] == "Allocated");
    let id = s["allocation_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sdk-1-"), "{id}");
    // netz-host's own flow sees the same allocation.
    assert_eq!(f.server_json(1).allocated_uuid, id);
    f.wait_until("the test server saw it", |f| {
        f.status(1)["allocation"] == id.as_str()
    });
    let (_, gs) = rest(base, "GET", "/gameserver", Value::Null);
    assert_eq!(gs["status"]["state"], "Allocated");
    assert_eq!(
        gs["object_meta"]["annotations"]["netz.dev/allocation-id"],
        id.as_str()
    );

    // The backend trait over the REST gateway agrees with server.json.
    let mut agones = sdk::AgonesSdk::new(sdk_port(base));
    assert_eq!(agones.backend(), sdk::Backend::Agones);
    assert_eq!(
        agones.poll().unwrap(),
        Some(AllocationEvent::Allocated(id.clone()))
    );
    agones.set_label("via", "trait").unwrap();
    agones.set_players(&["z".into()]).unwrap();
    assert_eq!(f.server(1)["players"], 1);
    let gs = agones.game_server().unwrap();
    assert_eq!(gs["object_meta"]["labels"]["agones.dev/sdk-via"], "trait");
    agones.ready().unwrap(); // Ready while allocated ends the allocation.
    f.wait_server(1, "unallocated", |s| s["allocation_id"].is_null());
    assert_eq!(
        agones.poll().unwrap(),
        Some(AllocationEvent::Deallocated(id.clone()))
    );
    assert!(f.server_json(1).allocated_uuid.is_empty());

    // Unknown paths and bad bodies.
    assert_eq!(rest(base, "GET", "/nothing", Value::Null).0, 404);
    assert_eq!(
        rest(base, "POST", "/reserve", json!({"seconds": "soon"})).0,
        400
    );
}

fn the_backend_comes_from_the_environment() {
    // netz-host sets NETZ_SERVER_JSON; Agones sets AGONES_SDK_*_PORT.
    let vars = [
        sdk::ENV_BACKEND,
        "NETZ_SERVER_JSON",
        sdk::ENV_AGONES_HTTP_PORT,
        sdk::ENV_AGONES_GRPC_PORT,
    ];
    for v in vars {
        std::env::remove_var(v);
    }
    assert_eq!(sdk::choose_backend(), sdk::Backend::NetzHost);
    std::env::set_var(sdk::ENV_AGONES_GRPC_PORT, "9357");
    assert_eq!(sdk::choose_backend(), sdk::Backend::Agones);
    std::env::set_var("NETZ_SERVER_JSON", "/nonexistent/server.json");
    assert_eq!(sdk::choose_backend(), sdk::Backend::NetzHost);
    std::env::set_var(sdk::ENV_BACKEND, "agones");
    assert_eq!(sdk::choose_backend(), sdk::Backend::Agones);
    for v in vars {
        std::env::remove_var(v);
    }
    // The netz-host backend follows server.json.
    let dir = std::env::temp_dir().join(format!("netz-host-backend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.json");
    let mut sj = sdk::ServerJson {
        server_id: 3,
        port: 7000,
        ..sdk::ServerJson::default()
    };
    sj.write_atomic(&path).unwrap();
    let mut b = sdk::NetzHostSdk::open(&path).unwrap();
    assert_eq!(b.backend(), sdk::Backend::NetzHost);
    assert_eq!(b.poll().unwrap(), None);
    sj.allocated_uuid = "m-1".into();
    sj.write_atomic(&path).unwrap();
    assert_eq!(
        b.poll().unwrap(),
        Some(AllocationEvent::Allocated("m-1".into()))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_game_without_an_sdk_runs_wrapped() {
    let base = 44200;
    let extra = format!(
        r#"
[[builds]]
name = "wrapper"
executable = "{host}"
args = ["wrap", "--ready-line", "test server", "--", "{game}"]

[[build_configs]]
name = "wrapped"
build = "wrapper"
sdk_ready = true
env = {{ NETZ_HOST_SDK = "agones" }}
port_range = [{p}, {pe}]
"#,
        host = env!("CARGO_BIN_EXE_netz-host"),
        game = env!("CARGO_BIN_EXE_netz-test-server"),
        p = base + 95,
        pe = base + 99,
    );
    let f = Fleet::start(
        "agones-wrap",
        base,
        Opts {
            build_config: "wrapped",
            extra_config: agones_config(base, &extra),
            ..Opts::default()
        },
    );
    // Ready only through the SDK (sdk_ready): the wrapper said it when the
    // game printed its ready line.
    let s = f.wait_server(1, "Ready", |s| s["state"] == "Ready");
    assert!(f.events().contains("Ready through the SDK"));
    let first = s["pid"].as_u64();
    f.allocate("m-wrap", json!({}));
    f.wait_until("the game saw it", |f| f.status(1)["allocation"] == "m-wrap");
    // The game ends its session with exit 0; the wrapper tells the host.
    f.command(1, "exit0");
    let s = f.wait_server(1, "a fresh server", |s| {
        s["process"] == "running" && s["pid"].as_u64() != first
    });
    assert!(s["allocation_id"].is_null(), "{s}");
    let events = f.events();
    assert!(events.contains("deallocated m-wrap after"), "{events}");
}

fn main() {
    if std::env::var_os(GAME_ENV).is_some() {
        std::process::exit(game());
    }
    let tests: [(&str, fn()); 4] = [
        (
            "a_game_without_an_sdk_runs_wrapped",
            a_game_without_an_sdk_runs_wrapped,
        ),
        (
            "the_backend_comes_from_the_environment",
            the_backend_comes_from_the_environment,
        ),
        ("rest_paths_answer_plain_http", rest_paths_answer_plain_http),
        (
            "official_agones_crate_game_runs_under_netz_host",
            official_agones_crate_game_runs_under_netz_host,
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
        std::process::exit(1);
    }
    println!("test result: ok.");
}
