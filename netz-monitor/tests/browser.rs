//! The monitor page in a real headless browser (chromium over the Chrome
//! DevTools Protocol): it must show the session's known state, follow a
//! migration live, and look right (a screenshot is saved).
//!
//! Skipped, loudly, only when no chromium can be found (`.ci/run` installs
//! Debian's). `NETZ_CHROMIUM` names another browser binary;
//! `NETZ_MONITOR_SCREENSHOT` a path to copy the screenshot to.

mod common;

use base64::Engine;
use common::*;
use futures_util::{SinkExt, StreamExt};
use netz_core::{ProcessType, Topology};
use netz_monitor::{join_as_tool, serve_with, MonitorOptions, ToolOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETZ_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The browser process: killed and reaped on every path, its profile removed.
struct Browser {
    child: tokio::process::Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Reap it so that no zombie stays behind.
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn launch(exe: &PathBuf) -> (Browser, String) {
    let profile = std::env::temp_dir().join(format!("netz-monitor-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1400,1200",
            "about:blank",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the browser");
    let stderr = child.stderr.take().expect("stderr");
    let browser = Browser { child, profile };
    let mut lines = BufReader::new(stderr).lines();
    let find = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(i) = line.find("ws://") {
                return Some(line[i..].trim().to_string());
            }
        }
        None
    };
    let ws = tokio::time::timeout(Duration::from_secs(15), find)
        .await
        .ok()
        .flatten()
        .expect("the browser prints its DevTools address");
    // Keep draining stderr so the browser never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (browser, ws)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools client: one command at a time.
struct Cdp {
    ws: Ws,
    next: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to the browser");
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(t)) = m else { continue };
                let v: Value = serde_json::from_str(&t).expect("DevTools JSON");
                if v["id"] == id {
                    return v;
                }
            }
            panic!("the browser closed the connection");
        };
        let v = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer"));
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// Evaluates `expr` in the page; it must return a JSON string.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        let s = r["result"]["value"].as_str().unwrap_or("null").to_string();
        serde_json::from_str(&s).unwrap_or(Value::Null)
    }
}

/// What the page shows, read from its DOM.
const READ_PAGE: &str = r##"JSON.stringify({
  updates: Number(document.body.dataset.updates),
  live: document.getElementById("live").textContent,
  stations: Number(document.getElementById("station-count").textContent),
  master: document.getElementById("session-master").textContent,
  nodes: document.querySelectorAll("#graph g.node").length,
  masterNodes: [...document.querySelectorAll("#graph g.node.master")].map(g => g.dataset.station),
  relays: document.querySelectorAll("#graph line.relay").length,
  links: document.querySelectorAll("#links tbody tr[data-peer]").length,
  objects: [...document.querySelectorAll("#objects tbody tr[data-handle]")].map(r => [r.dataset.handle, Number(r.dataset.master)]),
  log: [...document.querySelectorAll("#log li")].map(li => li.dataset.kind),
  detail: document.getElementById("detail").textContent
})"##;

async fn wait_page(cdp: &mut Cdp, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = cdp.eval(READ_PAGE).await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed {what}; it shows {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_headless_browser_shows_the_session_and_follows_a_migration() {
    let Some(exe) = find_browser() else {
        eprintln!(
            "SKIPPED the browser test: no chromium found (install Debian's `chromium`, or set NETZ_CHROMIUM)"
        );
        return;
    };
    let started = std::time::Instant::now();
    // A client-server session: two servers, three clients, and the monitor's Tool.
    let stations = session(
        &[
            (ProcessType::Server, "eu-1"),
            (ProcessType::Server, "eu-2"),
            (ProcessType::Client, "ann"),
            (ProcessType::Client, "bob"),
            (ProcessType::Client, "cat"),
        ],
        Topology::ClientServer,
    )
    .await;
    let (s1, s2) = (&stations[0], &stations[1]);
    let mut handles = Vec::new();
    for (i, s) in stations.iter().enumerate() {
        let obj = s
            .publish(Counter {
                tally: Tally {
                    count: 10 * i as u32,
                    label: format!("player {i}"),
                    ..Tally::default()
                },
            })
            .unwrap();
        handles.push(obj);
    }
    let moved = handles[0].handle();
    let moved_key = json!(moved.0.to_string());
    // Some traffic for the charts.
    let game = {
        let (s, objs) = (stations.clone(), handles.clone());
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_millis(50));
            loop {
                t.tick().await;
                for (st, o) in s.iter().zip(&objs) {
                    if o.is_master() {
                        o.with(|c| c.tally.count += 1);
                        st.update_all();
                    }
                }
            }
        })
    };
    let tool = join_as_tool(
        s1.local_addr(),
        registry(),
        ToolOptions {
            name: "monitor".into(),
            topology: Topology::ClientServer,
            heartbeat: Some((Duration::from_millis(100), Duration::from_millis(800))),
            ..ToolOptions::default()
        },
    )
    .await
    .unwrap();
    let monitor = serve_with(
        tool.clone(),
        "127.0.0.1:0".parse().unwrap(),
        MonitorOptions {
            sample_interval: Duration::from_millis(250),
        },
    )
    .await
    .unwrap();
    let n = stations.len() + 1;
    assert!(
        tool.wait_until(WAIT, |st| st.stations().len() == n
            && st.objects().len() >= 5 + 2)
            .await
    );

    let (browser, ws_url) = launch(&exe).await;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("connect to DevTools");
    let mut cdp = Cdp {
        ws,
        next: 0,
        session: None,
    };
    let target = cdp
        .call("Target.createTarget", json!({ "url": "about:blank" }))
        .await;
    let attached = cdp
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )
        .await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1400, "height": 1360, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    cdp.call("Page.enable", json!({})).await;
    cdp.call("Page.navigate", json!({ "url": monitor.url() }))
        .await;

    // The session as known: six stations, S1 the session master, relays drawn.
    let master = s1.id();
    let v = wait_page(&mut cdp, "the session", |v| {
        v["stations"] == n
            && v["nodes"] == n
            && v["master"] == format!("S{}", master.0)
            && v["objects"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r[0] == moved_key && r[1] == master.0))
    })
    .await;
    assert_eq!(v["live"], "live");
    assert_eq!(v["masterNodes"], json!([master.0.to_string()]));
    assert!(
        v["relays"].as_u64().unwrap() >= 3,
        "clients are drawn with their relay: {v}"
    );
    assert!(v["links"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["log"].as_array().unwrap().iter().any(|k| k == "present"));
    let updates_before = v["updates"].as_u64().unwrap();

    // A migration, followed live without reloading the page.
    migrate(s1, moved, s2.id());
    let v = wait_page(&mut cdp, "the migration", |v| {
        v["objects"]
            .as_array()
            .is_some_and(|o| o.iter().any(|r| r[0] == moved_key && r[1] == s2.id().0))
            && v["log"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "migration")
    })
    .await;
    assert!(v["updates"].as_u64().unwrap() > updates_before);

    // Selecting the object shows its datasets.
    cdp.eval(&format!(
        r#"(document.querySelector('#objects tr[data-handle="{}"]').click(), "null")"#,
        moved.0
    ))
    .await;
    wait_page(&mut cdp, "the object's datasets", |v| {
        let d = v["detail"].as_str().unwrap_or("");
        d.contains("Tally") && d.contains("count") && d.contains("player 0")
    })
    .await;

    // Let the charts fill a little, then take the picture.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shot = cdp
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor.png");
    std::fs::write(&out, &png).unwrap();
    if let Some(copy) = std::env::var_os("NETZ_MONITOR_SCREENSHOT") {
        std::fs::write(copy, &png).unwrap();
    }
    println!(
        "screenshot {} ({} bytes); the test took {:.1} s",
        out.display(),
        png.len(),
        started.elapsed().as_secs_f64()
    );
    game.abort();
    drop(cdp);
    drop(browser);
    drop(monitor);
}
