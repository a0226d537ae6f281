//! The control API refuses what it should: requests without the token,
//! from web pages or under another Host, duplicate lengths, odd ids, too
//! many connections; and the supervisor's files do not follow links.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Fleet, Opts};
use netz_host::api;
use serde_json::json;

fn send(addr: SocketAddr, request: &str) -> (String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (out, t.elapsed())
}

fn idle() -> Opts {
    Opts {
        start_on_provision: false,
        ..Opts::default()
    }
}

#[test]
fn requests_without_the_token_or_from_browsers_are_refused() {
    let f = Fleet::start("auth", 43000, idle());
    let token = api::token_for(f.addr).expect("token left for this user");
    let work = f.dir.join("work");
    // The token file in the work folder is the same token, private.
    let file = work.join("api-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "api-token mode {mode:o}");
    let mode = std::fs::metadata(&work).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "work folder mode {mode:o}");

    let (code, v) = api::request_with_token(f.addr, None, "POST", "/shutdown", None).unwrap();
    assert_eq!(code, 401, "{v}");
    let (code, _) = api::request_with_token(f.addr, Some("0000"), "GET", "/servers", None).unwrap();
    assert_eq!(code, 401);
    // What a web page's fetch() sends: an Origin (and the page cannot set
    // the token anyway).
    let (r, _) = send(
        f.addr,
        &format!(
            "POST /shutdown HTTP/1.1\r\nHost: {}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n",
            f.addr
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // DNS rebinding: the browser sends the attacker's host name.
    let (r, _) = send(
        f.addr,
        &format!(
            "GET /allocations HTTP/1.1\r\nHost: evil.example:{}\r\nAuthorization: Bearer {token}\r\n\r\n",
            f.addr.port()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // localhost with the right port and the token is fine.
    let (r, _) = send(
        f.addr,
        &format!(
            "GET /machine HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {token}\r\n\r\n",
            f.addr.port()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Nothing was shut down by the refused requests.
    assert_eq!(f.ok("GET", "/machine", None)["shutting_down"], false);
}

#[test]
fn duplicate_or_conflicting_content_lengths_are_refused_at_once() {
    let f = Fleet::start("lengths", 43100, idle());
    let token = api::token_for(f.addr).unwrap();
    for lengths in [
        "Content-Length: 2\r\nContent-Length: 40",
        "Content-Length: 2\r\ncontent-length: 2",
    ] {
        let (r, took) = send(
            f.addr,
            &format!(
                "POST /reservations HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n{lengths}\r\n\r\n{{}}",
                f.addr
            ),
        );
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains("Content-Length"), "{r}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    let (r, _) = send(
        f.addr,
        &format!(
            "GET /machine HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Length: -1\r\n\r\n",
            f.addr
        ),
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[test]
fn odd_allocation_ids_get_a_clear_400_and_paths_are_percent_decoded() {
    let f = Fleet::start("ids", 43200, idle());
    for id in ["has space", "a/b", "q?x", "50%", "", "ü", &"x".repeat(129)] {
        let (code, v) = f.api("POST", "/allocations", Some(json!({ "allocation_id": id })));
        assert_eq!(code, 400, "{id:?}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("allocation_id"),
            "{v}"
        );
    }
    assert_eq!(f.ok("GET", "/allocations", None), json!([]));
    // A valid id is found under its percent-encoded spelling too, and a
    // query string is refused rather than cut off.
    f.allocate("m-1:a.b_c", json!({}));
    let a = f.ok("GET", "/allocations/m%2D1%3Aa.b_c", None);
    assert_eq!(a["allocation_id"], "m-1:a.b_c");
    let (code, _) = f.api("GET", "/allocations/m-1:a.b_c?x", None);
    assert_eq!(code, 400);
    let (code, _) = f.api("GET", "/allocations/m%zz", None);
    assert_eq!(code, 400);
    let (code, _) = f.api("DELETE", "/allocations/m%2D1%3Aa.b_c", None);
    assert_eq!(code, 200);
    assert_eq!(f.ok("GET", "/allocations", None), json!([]));
}

#[test]
fn connections_over_the_limit_are_refused_and_served_again_later() {
    let f = Fleet::start(
        "connlimit",
        43300,
        Opts {
            start_on_provision: false,
            max_connections: Some(3),
            ..Opts::default()
        },
    );
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(f.addr).unwrap())
        .collect();
    // Let the supervisor accept them.
    std::thread::sleep(Duration::from_millis(200));
    let (code, v) = f.api("GET", "/machine", None);
    assert_eq!(code, 503, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("too many connections"));
    drop(idle);
    f.wait_until("connections freed", |f| {
        f.api("GET", "/machine", None).0 == 200
    });
}

#[test]
fn files_in_slot_folders_are_not_written_through_symbolic_links() {
    let f = Fleet::start("symlinks", 43400, idle());
    let outside = f.dir.join("outside.txt");
    std::fs::write(&outside, "untouched").unwrap();
    let slot = f.slot_dir(1);
    for name in [
        "logs/stdout.log",
        "logs/stderr.log",
        "allocation-payload.json",
    ] {
        let _ = std::fs::remove_file(slot.join(name));
        std::os::unix::fs::symlink(&outside, slot.join(name)).unwrap();
    }
    // The host may not have written server.json yet.
    let _ = std::fs::remove_file(slot.join("server.json"));
    std::os::unix::fs::symlink(&outside, slot.join("server.json")).unwrap();
    f.allocate("through-links", json!({ "payload": "secret" }));
    f.wait_server(1, "running", |s| s["process"] == "running");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    // server.json and the payload were replaced by real files.
    for name in ["server.json", "allocation-payload.json"] {
        let meta = std::fs::symlink_metadata(slot.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is still a link");
    }
    assert_eq!(f.server_json(1).allocated_uuid, "through-links");
}

#[test]
fn the_default_work_folder_is_private_to_the_user() {
    let cfg = netz_host::Config::parse(
        r#"
[fleet]
id = "defaults"
build_config = "b"
[machine]
cpu_cores = 1
memory_mb = 64
[usage]
cpu_cores = 1
memory_mb = 64
[[builds]]
name = "x"
executable = "/bin/true"
[[build_configs]]
name = "b"
build = "x"
port_range = [9000, 9001]
"#,
    )
    .unwrap();
    let w = cfg.work_dir();
    assert!(
        w.starts_with(netz_host::files::state_dir()),
        "{}",
        w.display()
    );
    assert!(!w.starts_with("/tmp/netz-host/"), "{}", w.display());
}
