//! Test harness: runs the real `netz-host` binary with the test game server
//! on loopback, and always stops and reaps it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netz_host::sdk::ServerJson;
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Opts {
    pub slots: u32,
    pub start_on_provision: bool,
    pub build_config: &'static str,
    pub idle_ttl_ms: Option<u64>,
    pub max_connections: Option<usize>,
    /// Appended to the generated config (an `[agones]` section, more
    /// builds and build configurations).
    pub extra_config: String,
    /// `fleet.stop_grace_ms`.
    pub stop_grace_ms: u64,
    /// `health.interval_ms`.
    pub health_interval_ms: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            slots: 1,
            start_on_provision: true,
            build_config: "sqp",
            idle_ttl_ms: None,
            max_connections: None,
            extra_config: String::new(),
            stop_grace_ms: 1000,
            health_interval_ms: 200,
        }
    }
}

pub struct Fleet {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

fn config_text(name: &str, dir: &std::path::Path, base: u16, o: &Opts) -> String {
    let exe = env!("CARGO_BIN_EXE_netz-test-server");
    let idle = o
        .idle_ttl_ms
        .map(|t| format!("idle_ttl_ms = {t}"))
        .unwrap_or_default();
    let mut s = format!(
        r#"
[fleet]
id = "{name}"
build_config = "{bc}"
start_on_provision = {sop}
stop_grace_ms = {grace}
work_dir = "{dir}"
{idle}

[control]
listen = "127.0.0.1:0"
{maxc}

[machine]
cpu_cores = {slots}
memory_mb = {mem}

[usage]
cpu_cores = 1
memory_mb = 64

[health]
interval_ms = {interval}
failure_threshold = 3
failure_window_ms = 10000
query_timeout_ms = 300
startup_grace_ms = 4000

[crash]
max_crashes = 3
window_ms = 30000
restart_delay_ms = 100

[[builds]]
name = "test"
executable = "{exe}"
"#,
        bc = o.build_config,
        grace = o.stop_grace_ms,
        interval = o.health_interval_ms,
        maxc = o
            .max_connections
            .map(|n| format!("max_connections = {n}"))
            .unwrap_or_default(),
        sop = o.start_on_provision,
        dir = dir.display(),
        slots = o.slots,
        mem = 64 * o.slots,
    );
    let configs: [(&str, &str, &str); 4] = [
        ("sqp", "sqp", ""),
        ("a2s", "a2s", ""),
        (
            "single",
            "sqp",
            r#""--single-session", "--session-ms", "300""#,
        ),
        ("crashy", "sqp", r#""--crash-on-allocation""#),
    ];
    for (i, (cname, q, args)) in configs.iter().enumerate() {
        let p = base + 20 * i as u16;
        s.push_str(&format!(
            r#"
[[build_configs]]
name = "{cname}"
build = "test"
args = [{args}]
query_type = "{q}"
port_range = [{p}, {pe}]
query_port_range = [{qp}, {qe}]
variables = {{ marker = "{cname}" }}
"#,
            pe = p + 9,
            qp = p + 10,
            qe = p + 19,
        ));
    }
    s.push_str(&o.extra_config);
    s
}

impl Fleet {
    /// Starts a supervisor. `base` picks a port block of 80 ports that no
    /// other test uses.
    pub fn start(name: &str, base: u16, opts: Opts) -> Fleet {
        let dir =
            std::env::temp_dir().join(format!("netz-host-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("fleet.toml");
        std::fs::write(&cfg, config_text(name, &dir.join("work"), base, &opts)).unwrap();
        let log = std::fs::File::create(dir.join("supervisor.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_netz-host"))
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn netz-host");
        let mut fleet = Fleet {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            dir,
        };
        let addr_file = fleet.dir.join("work").join("api-addr");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(t) = std::fs::read_to_string(&addr_file) {
                if let Ok(a) = t.trim().parse() {
                    fleet.addr = a;
                    break;
                }
            }
            if let Some(Ok(Some(st))) = fleet.child.as_mut().map(|c| c.try_wait()) {
                panic!("netz-host exited early ({st}):\n{}", fleet.log());
            }
            assert!(
                Instant::now() < deadline,
                "netz-host did not start:\n{}",
                fleet.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fleet
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("supervisor.log")).unwrap_or_default()
    }

    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        netz_host::api::request(self.addr, method, path, body.as_ref()).expect("API reachable")
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.api(method, path, body);
        assert!((200..300).contains(&code), "{method} {path} -> {code} {v}");
        v
    }

    pub fn server(&self, id: u64) -> Value {
        self.ok("GET", &format!("/servers/{id}"), None)
    }

    pub fn allocate(&self, id: &str, extra: Value) -> Value {
        let mut body = json!({ "allocation_id": id });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        self.ok("POST", "/allocations", Some(body))
    }

    pub fn slot_dir(&self, id: u64) -> PathBuf {
        self.dir.join("work").join(format!("server-{id}"))
    }

    pub fn server_json(&self, id: u64) -> ServerJson {
        ServerJson::read(self.slot_dir(id).join("server.json")).unwrap()
    }

    /// The test server's own status file.
    pub fn status(&self, id: u64) -> Value {
        std::fs::read_to_string(self.slot_dir(id).join("test-status.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Tells the test server in slot `id` to do something.
    pub fn command(&self, id: u64, cmd: &str) {
        netz_host::sdk::write_atomic(&self.slot_dir(id).join("test-command"), cmd.as_bytes())
            .unwrap();
    }

    pub fn events(&self) -> String {
        let v = self.ok("GET", "/events", None);
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}\n",
                    e["server_id"],
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Polls `f` until it holds or the timeout passes (then panics with
    /// the supervisor's view).
    pub fn wait_until(&self, what: &str, mut f: impl FnMut(&Fleet) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\nservers: {}\nevents:\n{}",
                    self.ok("GET", "/servers", None),
                    self.events()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_server(&self, id: u64, what: &str, mut f: impl FnMut(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        self.wait_until(what, |fl| {
            last = fl.server(id);
            f(&last)
        });
        last
    }

    /// Stops the supervisor through the API and waits for it to exit.
    pub fn shutdown(&mut self) -> std::process::ExitStatus {
        let _ = netz_host::api::request(self.addr, "POST", "/shutdown", None);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("netz-host did not exit after shutdown:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the supervisor (no chance to clean up) and reaps it.
    pub fn kill_supervisor(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn child_pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = netz_host::api::request(self.addr, "POST", "/shutdown", None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Last resort; the test servers exit by themselves when their
        // parent goes away.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn pid_of(v: &Value) -> Option<u64> {
    v["pid"].as_u64()
}
