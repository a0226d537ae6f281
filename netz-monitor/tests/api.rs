//! The monitor's JSON API against a live session of stations on loopback.

mod common;

use common::*;
use netz_core::{MethodId, Outcome, ProcessType, RmcContext, Topology};
use netz_monitor::{join_as_tool, serve_with, MonitorError, MonitorOptions, ToolOptions};
use std::time::Duration;

fn fast() -> MonitorOptions {
    MonitorOptions {
        sample_interval: Duration::from_millis(100),
    }
}

fn tool_options() -> ToolOptions {
    ToolOptions {
        heartbeat: Some((Duration::from_millis(100), Duration::from_millis(800))),
        ..ToolOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_stations_objects_values_migrations_and_failures() {
    let mut stations = session(
        &[
            (ProcessType::Server, "alpha"),
            (ProcessType::Client, "bravo"),
            (ProcessType::Client, "charlie"),
        ],
        Topology::Mesh,
    )
    .await;
    let c = stations.pop().unwrap();
    let (a, b) = (&stations[0], &stations[1]);
    let obj = a
        .publish(Counter {
            tally: Tally {
                count: 42,
                label: "hi".into(),
                ..Tally::default()
            },
        })
        .unwrap();
    let h = obj.handle();
    let hs = serde_json::json!(h.0.to_string());

    let tool = join_as_tool(a.local_addr(), registry(), tool_options())
        .await
        .unwrap();
    let monitor = serve_with(tool.clone(), "127.0.0.1:0".parse().unwrap(), fast())
        .await
        .unwrap();
    let addr = monitor.local_addr();
    assert!(monitor.url().starts_with("http://127.0.0.1:"));

    // The session: four stations (the monitor's Tool among them), the master, links.
    let s = poll_json(addr, "/api/session", |v| {
        v["stations"].as_array().unwrap().len() == 4 && v["links"].as_array().unwrap().len() == 3
    })
    .await;
    assert_eq!(s["session_master"], a.id().0);
    assert_eq!(s["self_id"], tool.id().0);
    assert_eq!(s["process_type"], "tool");
    assert_eq!(s["topology"], "mesh");
    let me = s["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["is_self"] == true)
        .unwrap();
    assert_eq!(me["process_type"], "tool");
    let master_row = s["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["is_session_master"] == true)
        .unwrap();
    // Identification tokens (the names) stay with the session master: a
    // tool station sees its own only.
    assert_eq!(master_row["name"], "");
    assert_eq!(me["name"], "netz-monitor");
    assert_eq!(master_row["process_type"], "server");
    // Each link shows its congestion window (the transport's, in bytes).
    for l in s["links"].as_array().unwrap() {
        assert!(l["cwnd"].as_u64().unwrap() > 0, "{l}");
        assert!(l["bytes_in_flight"].is_u64() && l["congestion_events"].is_u64());
    }
    assert_eq!(master_row["addr"], a.local_addr().to_string());

    // The object: in the table, searchable, with its values.
    let objs = poll_json(addr, "/api/objects?q=counter", |v| {
        v.as_array().unwrap().iter().any(|o| o["handle"] == hs)
    })
    .await;
    let o = objs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["handle"] == hs)
        .unwrap();
    assert_eq!(o["class"], "Counter");
    assert_eq!(o["master"], a.id().0);
    assert_eq!(o["is_master"], false);
    assert!(
        o["dup_set"].is_null(),
        "a duplica does not know the dup set"
    );
    let (_, none) = get_json(addr, "/api/objects?q=nothing-like-this").await;
    assert_eq!(none.as_array().unwrap().len(), 0);
    let (_, by_master) = get_json(addr, &format!("/api/objects?q=S{}", a.id().0)).await;
    assert!(by_master
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["master"] == a.id().0));
    assert!(by_master
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["handle"] == hs));

    let (status, d) = get_json(addr, &format!("/api/objects/{}", h.0)).await;
    assert_eq!(status, 200, "{d}");
    let fields = &d["datasets"][0]["fields"];
    assert_eq!(d["datasets"][0]["name"], "Tally");
    assert_eq!(fields[0]["name"], "count");
    assert_eq!(fields[0]["hex"], "2a");
    assert_eq!(fields[0]["guess"], "42 (signed: 21)");
    assert_eq!(fields[1]["hex"], "026869");
    assert_eq!(fields[1]["guess"], "\"hi\"");
    // The same object by its printed name.
    let (status, d2) = get_json(
        addr,
        &format!("/api/objects/{}", h.to_string().replace('/', "%2F")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(d2["object"]["handle"], hs);

    // An update on the master shows in the values.
    obj.with(|c| c.tally.count = 300);
    a.update_all();
    poll_json(addr, &format!("/api/objects/{}", h.0), |v| {
        v["datasets"][0]["fields"][0]["hex"] == "ac02"
    })
    .await;

    // Classes: the Counter is mastered on alpha and duplicated everywhere else.
    let classes = poll_json(addr, "/api/classes", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|c| c["class"] == "Counter")
    })
    .await;
    let counter = classes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "Counter")
        .unwrap();
    assert_eq!(counter["objects"], 1);
    for p in counter["per_station"].as_array().unwrap() {
        let on_a = p["station"] == a.id().0;
        assert_eq!(p["masters"], u64::from(on_a), "{p}");
        assert_eq!(p["duplicas"], u64::from(!on_a), "{p}");
    }

    // A migration: the new master shows, and the log says so.
    migrate(a, h, b.id());
    poll_json(addr, "/api/objects", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|o| o["handle"] == hs && o["master"] == b.id().0)
    })
    .await;
    let ev = poll_json(addr, "/api/events", |v| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "migration" && e["handle"] == hs)
    })
    .await;
    let next = ev["next"].as_u64().unwrap();
    assert!(next > 0);
    let (_, later) = get_json(addr, &format!("/api/events?since={next}")).await;
    assert!(later["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["seq"].as_u64().unwrap() >= next));

    // The tool calls an RMC now and then: the history shows its round trip.
    for _ in 0..3 {
        let ctx: RmcContext<()> = RmcContext::on_master();
        let outcome = tool
            .call(&ctx, |st| {
                st.object::<Counter>(h).call(&ctx, MethodId(0), &())
            })
            .await;
        assert!(matches!(outcome, Ok(Outcome::Success)), "{outcome:?}");
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    // History: samples every 100 ms, with the stations counted.
    let hist = poll_json(addr, "/api/history", |v| {
        v["samples"].as_array().unwrap().len() >= 3
            && v["samples"].as_array().unwrap().iter().any(|s| {
                s["rmcs_answered"].as_u64().unwrap() > 0 && s["rmc_ms"].as_f64().unwrap() > 0.0
            })
    })
    .await;
    assert_eq!(hist["interval_ms"], 100);
    let samples = hist["samples"].as_array().unwrap();
    assert_eq!(samples.last().unwrap()["stations"], 4);
    let t: Vec<u64> = samples
        .iter()
        .map(|s| s["t_ms"].as_u64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");

    // A station crashing (dropped without leaving): the log shows the failure.
    let charlie = c.id();
    drop(c);
    let ev = poll_json(addr, "/api/events", |v| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "failed" && e["station"] == charlie.0)
    })
    .await;
    assert!(ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "present" && e["station"] == a.id().0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let stations = session(&[(ProcessType::Server, "solo")], Topology::Mesh).await;
    let monitor = serve_with(stations[0].clone(), "127.0.0.1:0".parse().unwrap(), fast())
        .await
        .unwrap();
    let addr = monitor.local_addr();
    for (path, status, why) in [
        ("/api/objects/banana", 400, "bad handle"),
        ("/api/objects/0xzz", 400, "bad handle"),
        ("/api/objects/12345", 404, "no object"),
        ("/api/objects/DO(200:9%2F9)", 404, "no object"),
        ("/api/events?since=yesterday", 400, "bad query"),
        ("/api/objects?limit=-3", 400, "bad query"),
        ("/api/nothing", 404, "no such page"),
    ] {
        let (s, v) = get_json(addr, path).await;
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{path}: {v}");
    }
    // The embedded page and its files.
    let (s, html) = get(addr, "/").await;
    assert_eq!(s, 200);
    assert!(html.contains("<title>netz monitor</title>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from outside"
    );
    let (s, js) = get(addr, "/app.js").await;
    assert_eq!(s, 200);
    assert!(js.contains("EventSource"));
    // The served station is the master here: it knows the dup sets of its objects.
    let h = stations[0].publish(Counter::default()).unwrap().handle();
    let hs = serde_json::json!(h.0.to_string());
    let objs = poll_json(addr, "/api/objects", |v| {
        v.as_array().unwrap().iter().any(|o| o["handle"] == hs)
    })
    .await;
    let o = objs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["handle"] == hs)
        .unwrap();
    assert_eq!(o["is_master"], true);
    assert_eq!(o["dup_set"], serde_json::json!([]));
    let (_, only) = get_json(addr, "/api/objects?class=Counter&limit=1").await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    // Only loopback addresses are served.
    let err = serve_with(stations[0].clone(), "0.0.0.0:0".parse().unwrap(), fast())
        .await
        .unwrap_err();
    assert!(matches!(err, MonitorError::NotLoopback(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_sends_updates() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stations = session(
        &[(ProcessType::Server, "one"), (ProcessType::Client, "two")],
        Topology::Mesh,
    )
    .await;
    let monitor = serve_with(stations[0].clone(), "127.0.0.1:0".parse().unwrap(), fast())
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(monitor.local_addr())
        .await
        .unwrap();
    s.write_all(b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut updates = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(data) = line.strip_prefix("data: ") {
                updates.push(serde_json::from_str::<serde_json::Value>(data).unwrap());
                if updates.len() == 3 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("three updates in time");
    assert_eq!(
        updates[0]["session"]["stations"].as_array().unwrap().len(),
        2
    );
    assert_eq!(updates[0]["session"]["session_master"], stations[0].id().0);
    assert!(
        updates[0]["events"].as_array().unwrap().len() >= 2,
        "the first brings the log"
    );
    assert_eq!(
        updates[2]["events"].as_array().unwrap().len(),
        0,
        "later ones only news"
    );
    assert!(updates[2]["sample"]["t_ms"].as_u64() > updates[1]["sample"]["t_ms"].as_u64());
}
