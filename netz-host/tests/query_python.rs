//! The query responder against a client written apart from it, in
//! another language (`tests/python/query_client.py`), over UDP on
//! loopback: A2S with its challenges and a split A2S_RULES reply, SQP with
//! every chunk over several packets. Skipped (with a note) when `python3`
//! is not installed.

use std::process::Command;

use netz_host::sdk::{QueryInfo, QueryPlayer, QueryServer, QueryTeam, QueryType};
use serde_json::Value;

fn python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn query(proto: &str, server: &QueryServer) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/query_client.py");
    let addr = server.local_addr();
    let out = Command::new("timeout")
        .args(["20", "python3", script, proto, &addr.ip().to_string()])
        .arg(addr.port().to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn server(protocol: QueryType) -> QueryServer {
    let info = QueryInfo {
        name: "py".into(),
        map: "docks".into(),
        game_type: "duel".into(),
        build_id: "1".into(),
        players: 0,
        max_players: 12,
        port: 7000,
    };
    let s = QueryServer::bind("127.0.0.1:0".parse().unwrap(), protocol, info).unwrap();
    let players: Vec<QueryPlayer> = (0..40)
        .map(|i| QueryPlayer {
            name: format!("player-{i:02}-with-a-long-name-for-the-packet"),
            score: i - 5,
            seconds: 60 + i as u32,
        })
        .collect();
    s.set_players(players.len() as u16);
    s.update_details(|d| {
        d.players = players;
        d.rules = (0..60)
            .map(|i| (format!("rule_{i:02}"), "x".repeat(20 + i)))
            .collect();
        d.teams = vec![QueryTeam {
            name: "red".into(),
            score: 3,
        }];
    });
    s
}

#[test]
fn an_independent_python_client_reads_a2s_and_sqp() {
    if !python() {
        eprintln!("python3 not installed: the independent client was not run");
        return;
    }
    let a = query("a2s", &server(QueryType::A2s));
    assert_eq!(a["name"], "py");
    assert_eq!(a["map"], "docks");
    assert_eq!(
        (a["players"].as_u64(), a["max_players"].as_u64()),
        (Some(40), Some(12))
    );
    assert_eq!(a["player_list"].as_array().unwrap().len(), 40);
    assert_eq!(a["player_list"][0]["score"], -5);
    assert_eq!(a["rules"].as_object().unwrap().len(), 60);
    assert_eq!(a["rules"]["rule_59"], "x".repeat(79));

    let s = query("sqp", &server(QueryType::Sqp));
    assert!(s["packets"].as_u64().unwrap() > 1, "{s}");
    assert_eq!(
        (s["players"].as_u64(), s["max_players"].as_u64()),
        (Some(40), Some(12))
    );
    let pl = s["player_list"].as_array().unwrap();
    assert_eq!(pl.len(), 40);
    assert_eq!(pl[1]["name"], "player-01-with-a-long-name-for-the-packet");
    assert_eq!(pl[1]["time"], 61);
    assert_eq!(s["rules"]["rule_00"], "x".repeat(20));
    assert_eq!(s["teams"][0]["name"], "red");
    assert_eq!(s["teams"][0]["score"], 3);
}
