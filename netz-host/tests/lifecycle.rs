//! The lifecycle (HOST-1..8) with the real `netz-host` binary and real
//! test game-server processes on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{alive, pid_of, Fleet, Opts};
use netz_host::sdk;
use serde_json::{json, Value};

fn ready(v: &Value) -> bool {
    v["state"] == "Ready" && v["process"] == "running"
}

#[test]
fn allocation_starts_server_and_updates_server_json() {
    let f = Fleet::start(
        "alloc",
        41000,
        Opts {
            start_on_provision: false,
            ..Opts::default()
        },
    );
    let s = f.server(1);
    assert_eq!(s["state"], "Shutdown");
    assert_eq!(s["pid"], Value::Null);
    assert_eq!(f.server_json(1).allocated_uuid, "");

    let a = f.allocate("match-1", json!({ "payload": { "map": "arena" } }));
    assert_eq!(a["server_id"], 1);
    assert_eq!(a["port"], 41000);
    assert_eq!(a["query_port"], 41010);
    let sj = f.server_json(1);
    assert_eq!(sj.allocated_uuid, "match-1");
    assert_eq!(
        (sj.port, sj.query_port, sj.query_type.as_str()),
        (41000, 41010, "sqp")
    );
    assert_eq!(sj.fleet_id, "alloc");
    assert_eq!(sj.variables.get("marker").map(String::as_str), Some("sqp"));
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(f.slot_dir(1).join("server.json")).unwrap())
            .unwrap();
    assert_eq!(raw["port"], "41000", "numbers are written as strings");
    let payload = sdk::read_payload(f.slot_dir(1).join("server.json"))
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({ "map": "arena" })
    );

    let s = f.wait_server(1, "allocated server running", |s| {
        s["state"] == "Allocated" && s["process"] == "running"
    });
    assert!(alive(pid_of(&s).unwrap()));
    f.wait_until("the game server to see its allocation", |f| {
        f.status(1)["allocation"] == "match-1"
    });
    // The server answers SQP on its query port.
    let q: SocketAddr = "127.0.0.1:41010".parse().unwrap();
    f.wait_until("an SQP answer", |_| {
        sdk::sqp::query(q, Duration::from_millis(300)).is_ok()
    });
    assert_eq!(f.ok("GET", "/allocations/match-1", None)["server_id"], 1);
    assert_eq!(
        f.ok("GET", "/allocations", None).as_array().unwrap().len(),
        1
    );

    // Bad requests get clear errors.
    let (code, v) = f.api(
        "POST",
        "/allocations",
        Some(json!({ "allocation_id": "match-1" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already exists"));
    let big = "x".repeat(10 * 1024 + 1);
    let (code, v) = f.api(
        "POST",
        "/allocations",
        Some(json!({ "allocation_id": "m2", "payload": big })),
    );
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("10240"));
    let (code, v) = f.api(
        "POST",
        "/allocations",
        Some(json!({ "allocation_id": "m3", "build_config": "nope" })),
    );
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("nope"));
    let (code, v) = f.api("POST", "/allocations", Some(json!({ "id": "m4" })));
    assert_eq!(code, 400);
    assert!(
        v["error"].as_str().unwrap().contains("bad request body"),
        "{v}"
    );
    let (code, _) = f.api(
        "POST",
        "/allocations",
        Some(json!({ "allocation_id": "m5" })),
    );
    assert_eq!(code, 409, "no free server left");
    let (code, _) = f.api("GET", "/allocations/unknown", None);
    assert_eq!(code, 404);
    let (code, _) = f.api("GET", "/servers/99", None);
    assert_eq!(code, 404);
    let (code, v) = f.api("GET", "/nothing", None);
    assert_eq!(code, 404, "{v}");
    let (code, _) = f.api("DELETE", "/servers", None);
    assert_eq!(code, 405);

    // Deallocation with start-on-provision off stops the server.
    f.ok("DELETE", "/allocations/match-1", None);
    assert_eq!(f.server_json(1).allocated_uuid, "");
    assert!(sdk::read_payload(f.slot_dir(1).join("server.json"))
        .unwrap()
        .is_none());
    f.wait_server(1, "server stopped after deallocation", |s| {
        s["state"] == "Shutdown"
    });
}

#[test]
fn exit_zero_deallocates_and_readies_the_slot() {
    let f = Fleet::start("exit0", 41100, Opts::default());
    let s = f.wait_server(1, "ready", ready);
    let first = pid_of(&s).unwrap();
    f.allocate("m-exit", json!({}));
    f.wait_until("allocation seen", |f| f.status(1)["allocation"] == "m-exit");
    f.command(1, "exit0");
    let s = f.wait_server(1, "restarted and ready", |s| {
        ready(s) && pid_of(s) != Some(first) && s["allocation_id"].is_null()
    });
    assert_eq!(s["last_exit"], "exit code 0");
    assert_eq!(f.server_json(1).allocated_uuid, "");
    let (code, _) = f.api("GET", "/allocations/m-exit", None);
    assert_eq!(code, 404);
    assert!(f.events().contains("deallocated m-exit after exit 0"));
    assert!(!alive(first));
}

#[test]
fn crash_restarts_with_the_same_allocation_id() {
    let f = Fleet::start("crash", 41200, Opts::default());
    f.wait_server(1, "ready", ready);
    f.allocate("m-crash", json!({}));
    f.wait_until("allocation seen", |f| {
        f.status(1)["allocation"] == "m-crash"
    });
    let before = pid_of(&f.server(1)).unwrap();
    f.command(1, "crash");
    let s = f.wait_server(1, "restart after the crash", |s| {
        s["process"] == "running" && pid_of(s).is_some_and(|p| p != before)
    });
    assert_eq!(s["allocation_id"], "m-crash");
    assert_eq!(s["state"], "Allocated");
    assert_eq!(s["last_exit"], "exit code 3");
    assert_eq!(s["recent_crashes"], 1);
    assert_eq!(f.server_json(1).allocated_uuid, "m-crash");
    let new_pid = pid_of(&s).unwrap();
    f.wait_until("the new process sees the allocation", |f| {
        let st = f.status(1);
        st["pid"].as_u64() == Some(new_pid) && st["allocation"] == "m-crash"
    });
    assert!(f.events().contains("crashed (exit code 3)"));
}

#[test]
fn repeated_crashes_engage_backoff() {
    let f = Fleet::start(
        "backoff",
        41300,
        Opts {
            build_config: "crashy",
            ..Opts::default()
        },
    );
    f.wait_server(1, "ready", ready);
    f.allocate("m-loop", json!({}));
    let s = f.wait_server(1, "crash backoff", |s| s["state"] == "Error");
    assert_eq!(s["backoff"], true);
    assert_eq!(s["process"], "stopped");
    assert_eq!(s["allocation_id"], "m-loop");
    assert_eq!(s["recent_crashes"], 3);
    assert!(f.events().contains("crash backoff engaged"));
    // No more restarts while backed off.
    std::thread::sleep(Duration::from_millis(500));
    let again = f.server(1);
    assert_eq!(again["starts"], s["starts"]);
    assert_eq!(again["process"], "stopped");
    // Deallocating clears the backoff and readies the slot.
    f.ok("DELETE", "/allocations/m-loop", None);
    f.wait_server(1, "ready after deallocation", ready);
}

#[test]
fn hung_server_is_restarted() {
    let f = Fleet::start("hang", 41400, Opts::default());
    let s = f.wait_server(1, "ready", ready);
    let before = pid_of(&s).unwrap();
    f.allocate("m-hang", json!({}));
    f.command(1, "hang");
    let s = f.wait_server(1, "restart after the hang", |s| {
        s["process"] == "running" && pid_of(s).is_some_and(|p| p != before)
    });
    assert_eq!(
        s["allocation_id"], "m-hang",
        "a malfunction restart keeps the allocation"
    );
    let ev = f.events();
    assert!(ev.contains("no answer to the query protocol"), "{ev}");
    assert!(ev.contains("malfunction"), "{ev}");
    assert!(!alive(before));
}

#[test]
fn memory_over_limit_is_restarted() {
    let f = Fleet::start("memory", 41500, Opts::default());
    let s = f.wait_server(1, "ready", ready);
    let before = pid_of(&s).unwrap();
    f.command(1, "grow:128");
    f.wait_server(1, "restart after memory overuse", |s| {
        s["process"] == "running" && pid_of(s).is_some_and(|p| p != before)
    });
    let ev = f.events();
    assert!(ev.contains("over the limit of 65536 KiB"), "{ev}");
    assert!(ev.contains("memory over the limit in 3 checks"), "{ev}");
}

#[test]
fn build_configuration_change_restarts_with_the_new_one() {
    let f = Fleet::start(
        "buildcfg",
        41600,
        Opts {
            slots: 2,
            ..Opts::default()
        },
    );
    f.wait_server(1, "ready", ready);
    f.wait_server(2, "ready", ready);
    let old2 = pid_of(&f.server(2)).unwrap();
    // An allocation that asks for another configuration restarts its server.
    let a = f.allocate("m-a2s", json!({ "build_config": "a2s", "server_id": 1 }));
    assert_eq!(a["query_port"], 41630);
    let s = f.wait_server(1, "server 1 on a2s", |s| {
        ready_alloc(s) && s["build_config"] == "a2s"
    });
    assert_eq!(s["query_type"], "a2s");
    let sj = f.server_json(1);
    assert_eq!((sj.query_type.as_str(), sj.query_port), ("a2s", 41630));
    assert_eq!(sj.variables["marker"], "a2s");
    let q: SocketAddr = "127.0.0.1:41630".parse().unwrap();
    f.wait_until("an A2S answer", |_| {
        sdk::a2s::query(q, Duration::from_millis(300)).is_ok()
    });
    // Changing the active configuration restarts unallocated servers.
    assert_eq!(
        f.ok("PUT", "/build-config", Some(json!({ "name": "a2s" })))["name"],
        "a2s"
    );
    let s2 = f.wait_server(2, "server 2 on a2s", |s| {
        ready(s) && s["build_config"] == "a2s"
    });
    assert_ne!(pid_of(&s2), Some(old2));
    assert_eq!(f.status(2)["marker"], "a2s");
    let (code, v) = f.api("PUT", "/build-config", Some(json!({ "name": "missing" })));
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("missing"));
    assert!(f.events().contains("needs a2s: restarting"));
}

fn ready_alloc(s: &Value) -> bool {
    s["state"] == "Allocated" && s["process"] == "running"
}

#[test]
fn single_session_flow_and_idle_machine_stop() {
    let f = Fleet::start(
        "single",
        41700,
        Opts {
            start_on_provision: false,
            build_config: "single",
            idle_ttl_ms: Some(1500),
            ..Opts::default()
        },
    );
    assert_eq!(f.server(1)["state"], "Shutdown");
    f.allocate("session-1", json!({}));
    f.wait_until("the session to start", |f| {
        f.status(1)["allocation"] == "session-1"
    });
    // The server exits 0 after its session: deallocated, slot ready, not restarted.
    let s = f.wait_server(1, "deallocated after exit 0", |s| {
        s["allocation_id"].is_null() && s["process"] == "stopped"
    });
    assert_eq!(s["state"], "Shutdown");
    assert_eq!(s["last_exit"], "exit code 0");
    assert_eq!(f.server_json(1).allocated_uuid, "");
    // A second session works the same way.
    f.allocate("session-2", json!({}));
    f.wait_server(1, "second session over", |s| {
        s["allocation_id"].is_null() && s["process"] == "stopped"
    });
    assert_eq!(f.server(1)["starts"], 2);
    // Idle for longer than the TTL: the machine is stopped.
    f.wait_until("machine stopped", |f| {
        f.ok("GET", "/machine", None)["state"] == "stopped"
    });
    assert!(f.events().contains("machine stopped"));
}

#[test]
fn multi_session_flow_resets_state_between_sessions() {
    let mut f = Fleet::start(
        "multi",
        41800,
        Opts {
            idle_ttl_ms: Some(2000),
            ..Opts::default()
        },
    );
    let s = f.wait_server(1, "ready", ready);
    let pid = pid_of(&s).unwrap();
    for (n, id) in ["s-1", "s-2", "s-3"].iter().enumerate() {
        f.allocate(id, json!({}));
        f.wait_until("session start seen", |f| {
            let st = f.status(1);
            st["allocation"] == *id && st["sessions"] == n as u64 + 1
        });
        f.ok("DELETE", &format!("/allocations/{id}"), None);
        f.wait_until("state reset seen", |f| {
            f.status(1)["resets"] == n as u64 + 1
        });
        assert!(f.status(1)["allocation"].is_null());
    }
    // The same process served every session.
    assert_eq!(pid_of(&f.server(1)), Some(pid));
    assert_eq!(f.server(1)["starts"], 1);
    // Idle longer than the TTL: every server stopped, machine stopped.
    f.wait_until("machine stopped", |f| {
        f.ok("GET", "/machine", None)["state"] == "stopped"
    });
    f.wait_server(1, "server stopped", |s| s["process"] == "stopped");
    assert!(!alive(pid));
    // An allocation starts the machine again.
    f.allocate("s-4", json!({}));
    f.wait_server(1, "allocated again", ready_alloc);
    assert_eq!(f.ok("GET", "/machine", None)["state"], "running");
    assert!(f.shutdown().success());
}

#[test]
fn reservation_and_hold() {
    let f = Fleet::start(
        "reserve",
        41900,
        Opts {
            slots: 2,
            start_on_provision: false,
            ..Opts::default()
        },
    );
    // A reservation starts the server and keeps it from other allocations.
    let r = f.ok(
        "POST",
        "/reservations",
        Some(json!({ "server_id": 1, "duration_ms": 60000 })),
    );
    assert_eq!(r["state"], "Reserved");
    f.wait_server(1, "reserved server running", |s| {
        s["process"] == "running" && s["state"] == "Reserved"
    });
    let a = f.allocate("other", json!({}));
    assert_eq!(
        a["server_id"], 2,
        "an untargeted allocation skips the reserved server"
    );
    let a = f.allocate("target", json!({ "server_id": 1 }));
    assert_eq!(
        a["server_id"], 1,
        "a targeted allocation takes the reserved server"
    );
    assert!(f.server(1)["reserved_for_ms"].is_null());
    f.ok("DELETE", "/allocations/target", None);
    f.ok("DELETE", "/allocations/other", None);
    // A short reservation expires by itself.
    f.ok(
        "POST",
        "/reservations",
        Some(json!({ "server_id": 1, "duration_ms": 300 })),
    );
    f.wait_server(1, "reservation expiry", |s| {
        s["state"] == "Shutdown" && s["process"] == "stopped"
    });
    // Unreserve releases at once.
    f.ok(
        "POST",
        "/reservations",
        Some(json!({ "duration_ms": 60000 })),
    );
    let reserved: Vec<Value> = f
        .ok("GET", "/servers", None)
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "Reserved")
        .cloned()
        .collect();
    assert_eq!(reserved.len(), 1);
    let id = reserved[0]["server_id"].as_u64().unwrap();
    f.ok("DELETE", &format!("/reservations/{id}"), None);
    f.wait_server(id, "released", |s| s["state"] == "Shutdown");
    let (code, _) = f.api("DELETE", &format!("/reservations/{id}"), None);
    assert_eq!(code, 404);
    let (code, v) = f.api("POST", "/reservations", Some(json!({ "duration_ms": 0 })));
    assert_eq!(code, 400, "{v}");
    // A hold keeps a server running for a while, then lets it go.
    let h = f.ok(
        "POST",
        "/servers/2/hold",
        Some(json!({ "duration_ms": 1500 })),
    );
    assert!(h["held_for_ms"].as_u64().unwrap() > 0);
    f.wait_server(2, "held server ready", ready);
    f.wait_server(2, "hold expiry", |s| s["process"] == "stopped");
    assert!(f.events().contains("hold expired"));
}

#[test]
fn stopping_an_allocated_server_is_refused() {
    let f = Fleet::start("stop", 42000, Opts::default());
    f.wait_server(1, "ready", ready);
    f.allocate("m-stop", json!({}));
    let (code, v) = f.api("POST", "/servers/1/stop", None);
    assert_eq!(code, 409);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("refused") && msg.contains("deallocate"),
        "{msg}"
    );
    assert_eq!(f.server(1)["process"], "running");
    f.ok("DELETE", "/allocations/m-stop", None);
    let pid = pid_of(&f.server(1)).unwrap();
    f.ok("POST", "/servers/1/stop", None);
    let s = f.wait_server(1, "stopped", |s| s["process"] == "stopped");
    assert_eq!(s["state"], "Shutdown");
    assert!(!alive(pid));
    // It stays stopped (no automatic restart) until started again.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.server(1)["process"], "stopped");
    f.ok("POST", "/servers/1/start", None);
    f.wait_server(1, "ready again", ready);
}

#[test]
fn cli_subcommands_call_the_api() {
    let f = Fleet::start("cli", 42100, Opts::default());
    f.wait_server(1, "ready", ready);
    let exe = env!("CARGO_BIN_EXE_netz-host");
    let api = f.addr.to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe)
            .arg("--api")
            .arg(&api)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["allocate", "--id", "cli-1", "--payload", "hello"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"allocation_id\": \"cli-1\""), "{out}");
    assert_eq!(
        sdk::read_payload(f.slot_dir(1).join("server.json"))
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    let (code, out, _) = run(&["allocations"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("cli-1"));
    let (code, _, err) = run(&["stop", "1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("deallocate it instead"), "{err}");
    let (code, _, _) = run(&["deallocate", "cli-1"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = run(&["servers", "1"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"server_id\": 1"));
    let (code, out, _) = run(&["build-config"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("sqp"));
    let (code, _, err) = run(&["frobnicate"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown command"));
    let (code, _, err) = run(&["reserve", "--for-ms", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--for-ms"));
    let (code, _, _) = run(&["shutdown"]);
    assert_eq!(code, Some(0));
}

#[test]
fn shutdown_stops_and_reaps_every_child() {
    let mut f = Fleet::start(
        "shutdown",
        42200,
        Opts {
            slots: 2,
            ..Opts::default()
        },
    );
    let p1 = pid_of(&f.wait_server(1, "ready", ready)).unwrap();
    let p2 = pid_of(&f.wait_server(2, "ready", ready)).unwrap();
    f.allocate("m-shut", json!({}));
    // SIGTERM the supervisor like a service manager would.
    let sup = f.child_pid();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(sup.to_string())
        .status()
        .unwrap();
    let st = f.shutdown();
    assert!(st.success(), "{st}");
    assert!(!alive(p1) && !alive(p2), "children left behind");
    let log = f.log();
    assert!(log.contains("every server stopped and reaped"), "{log}");
}

/// Sends `request` as it is, with the Host and Authorization headers a
/// legitimate client sends added after its first line.
fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let token = netz_host::api::token_for(addr).expect("the supervisor's token");
    let request = match request.windows(2).position(|w| w == b"\r\n") {
        Some(p) => {
            let mut r = request[..p + 2].to_vec();
            r.extend_from_slice(
                format!("Host: {addr}\r\nAuthorization: Bearer {token}\r\n").as_bytes(),
            );
            r.extend_from_slice(&request[p + 2..]);
            r
        }
        None => request.to_vec(),
    };
    s.write_all(&request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn malformed_http_requests_get_clear_errors() {
    let f = Fleet::start(
        "http",
        42300,
        Opts {
            start_on_provision: false,
            ..Opts::default()
        },
    );
    let r = raw_http(
        f.addr,
        b"POST /allocations HTTP/1.1\r\nContent-Length: 9\r\n\r\n{not json",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("not valid JSON"), "{r}");
    let r = raw_http(
        f.addr,
        b"POST /allocations HTTP/1.1\r\nContent-Length: 999999\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let r = raw_http(f.addr, b"garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = raw_http(
        f.addr,
        b"POST /allocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 411"), "{r}");
    let r = raw_http(f.addr, b"GET /machine HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("\"state\":\"running\""), "{r}");
    let (code, v) = f.api("POST", "/servers/abc/stop", None);
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("not a number"));
}

#[test]
fn servers_do_not_outlive_a_killed_supervisor() {
    let mut f = Fleet::start(
        "killed",
        42400,
        Opts {
            slots: 2,
            ..Opts::default()
        },
    );
    let p1 = pid_of(&f.wait_server(1, "ready", ready)).unwrap();
    let p2 = pid_of(&f.wait_server(2, "ready", ready)).unwrap();
    f.kill_supervisor();
    let deadline = std::time::Instant::now() + common::WAIT;
    while alive(p1) || alive(p2) {
        assert!(
            std::time::Instant::now() < deadline,
            "servers outlived the supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
