//! A2S_PLAYER / A2S_RULES (challenge, split replies) and SQP's ServerRules,
//! PlayerInfo and TeamInfo, byte by byte; then over UDP on IPv4 and IPv6,
//! and from the test server running under netz-host.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use netz_host::sdk::a2s::{self, A2sInfo, A2sPlayer, A2sResponder};
use netz_host::sdk::sqp::{self, SqpExtras, SqpRecords, SqpResponder, SqpServerInfo, SqpValue};
use netz_host::sdk::{GameServer, QueryPlayer, ServerJson};

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

#[test]
fn a2s_player_reply_is_byte_exact() {
    let players = [
        A2sPlayer {
            index: 0,
            name: "ab".into(),
            score: -2,
            duration: 1.5,
        },
        A2sPlayer {
            index: 1,
            name: "c".into(),
            score: 7,
            duration: 0.0,
        },
    ];
    let mut want = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44, 2];
    want.extend_from_slice(&[
        0, b'a', b'b', 0, 0xFE, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC0, 0x3F,
    ]);
    want.extend_from_slice(&[1, b'c', 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    let got = a2s::encode_players(&players);
    assert_eq!(got, want);
    assert_eq!(a2s::decode_players(&got).unwrap(), players);
}

#[test]
fn a2s_rules_reply_is_byte_exact() {
    let rules = vec![("mp".to_string(), "1".to_string()), ("x".into(), "".into())];
    let want = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x45, 2, 0, b'm', b'p', 0, b'1', 0, b'x', 0, 0,
    ];
    let got = a2s::encode_rules(&rules);
    assert_eq!(got, want);
    assert_eq!(a2s::decode_rules(&got).unwrap(), rules);
}

#[test]
fn a2s_player_and_rules_requests_get_a_challenge_first() {
    let r = A2sResponder::new();
    let info = A2sInfo::default();
    let players = [A2sPlayer {
        index: 0,
        name: "p".into(),
        score: 1,
        duration: 2.0,
    }];
    let rules = vec![("k".to_string(), "v".to_string())];
    for (kind, reply_kind) in [(0x55u8, 0x44u8), (0x56, 0x45)] {
        // FF FF FF FF U/V FF FF FF FF: asks for a challenge.
        let ask = [0xFF, 0xFF, 0xFF, 0xFF, kind, 0xFF, 0xFF, 0xFF, 0xFF];
        let c = r.respond_all(&ask, peer(), &info, &players, &rules);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), 9);
        assert_eq!(&c[0][..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
        let mut req = ask[..5].to_vec();
        req.extend_from_slice(&c[0][5..9]);
        let got = r.respond_all(&req, peer(), &info, &players, &rules);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][4], reply_kind);
        // The challenge is the peer's: another peer is challenged again.
        let other: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        assert_eq!(
            r.respond_all(&req, other, &info, &players, &rules)[0][4],
            0x41
        );
    }
    assert_eq!(
        a2s::decode_players(
            &r.respond_all(
                &{
                    let mut q = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x55];
                    q.extend_from_slice(&r.challenge_for(peer()).to_le_bytes());
                    q
                },
                peer(),
                &info,
                &players,
                &rules
            )[0]
        )
        .unwrap(),
        players
    );
    // Garbage and unknown types get nothing.
    assert!(r
        .respond_all(
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x57, 0, 0, 0, 0],
            peer(),
            &info,
            &players,
            &rules
        )
        .is_empty());
    assert!(r
        .respond_all(&[0xFF; 3], peer(), &info, &players, &rules)
        .is_empty());
}

#[test]
fn a2s_replies_over_1400_bytes_are_split() {
    let rules: Vec<(String, String)> = (0..100)
        .map(|i| (format!("rule_{i:03}"), "v".repeat(30)))
        .collect();
    let whole = a2s::encode_rules(&rules);
    assert!(whole.len() > 1400);
    let parts = a2s::split(&whole, 0x1234_5678);
    assert_eq!(parts.len(), whole.len().div_ceil(1400 - 12));
    for (n, p) in parts.iter().enumerate() {
        assert!(p.len() <= 1400, "part of {} bytes", p.len());
        assert_eq!(&p[..4], &[0xFE, 0xFF, 0xFF, 0xFF]);
        assert_eq!(&p[4..8], &0x1234_5678i32.to_le_bytes());
        assert_eq!(p[8] as usize, parts.len());
        assert_eq!(p[9] as usize, n);
        assert_eq!(u16::from_le_bytes([p[10], p[11]]), 1400);
    }
    // The first part carries the reply's own header.
    assert_eq!(&parts[0][12..17], &[0xFF, 0xFF, 0xFF, 0xFF, 0x45]);
    let mut shuffled = parts.clone();
    shuffled.reverse();
    assert_eq!(a2s::reassemble(&shuffled).unwrap(), Some(whole.clone()));
    assert_eq!(a2s::reassemble(&parts[..1]).unwrap(), None);
    // A short reply is not split.
    assert_eq!(a2s::split(&whole[..100], 1), vec![whole[..100].to_vec()]);
}

fn sqp_query(r: &SqpResponder, chunks: u8) -> Vec<u8> {
    let c = r.challenge_for(peer());
    sqp::encode_query_request(c, chunks)
}

#[test]
fn sqp_rules_players_and_teams_chunks_are_byte_exact() {
    let r = SqpResponder::new();
    let info = SqpServerInfo::default();
    let extras = SqpExtras {
        rules: vec![
            ("a".into(), SqpValue::Byte(0x80)),
            ("bb".into(), SqpValue::Str("on".into())),
        ],
        players: SqpRecords {
            fields: vec!["name".into(), "score".into()],
            records: vec![
                vec![SqpValue::Str("p".into()), SqpValue::U32(5)],
                vec![SqpValue::Str("q".into()), SqpValue::U32(6)],
            ],
        },
        teams: SqpRecords {
            fields: vec!["t".into()],
            records: vec![vec![SqpValue::U16(0x0102)]],
        },
    };
    let c = r.challenge_for(peer()).to_be_bytes();
    let header = |len: u16| {
        let mut h = vec![0x01, c[0], c[1], c[2], c[3], 0x00, 0x01, 0x00, 0x00];
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    // ServerRules: u32 length, then name, type, value.
    let rules_chunk = [
        0, 0, 0, 11, 1, b'a', 0, 0x80, 2, b'b', b'b', 4, 2, b'o', b'n',
    ];
    let got = r.respond_all(&sqp_query(&r, 0x02), peer(), &info, &extras);
    assert_eq!(got, vec![[header(15), rules_chunk.to_vec()].concat()]);
    // PlayerInfo: u32 length, u16 count, u8 field count, (name, type)*,
    // then the values of each player.
    let players_chunk = [
        0, 0, 0, 28, 0, 2, 2, 4, b'n', b'a', b'm', b'e', 4, 5, b's', b'c', b'o', b'r', b'e', 2, 1,
        b'p', 0, 0, 0, 5, 1, b'q', 0, 0, 0, 6,
    ];
    let got = r.respond_all(&sqp_query(&r, 0x04), peer(), &info, &extras);
    assert_eq!(got, vec![[header(32), players_chunk.to_vec()].concat()]);
    // TeamInfo: the same layout.
    let teams_chunk = [0, 0, 0, 8, 0, 1, 1, 1, b't', 1, 0x01, 0x02];
    let got = r.respond_all(&sqp_query(&r, 0x08), peer(), &info, &extras);
    assert_eq!(got, vec![[header(12), teams_chunk.to_vec()].concat()]);
    // All four, in bit order, decode back.
    let all = r.respond_all(&sqp_query(&r, 0x0F), peer(), &info, &extras);
    let d = sqp::decode_full_response(&all, 0x0F).unwrap();
    assert_eq!(d.info, Some(info.clone()));
    assert_eq!(d.rules, Some(extras.rules.clone()));
    assert_eq!(d.players, Some(extras.players.clone()));
    assert_eq!(d.teams, Some(extras.teams.clone()));
    // No players: a count of 0 and nothing else (what go-svrquery skips).
    let none = SqpExtras::default();
    let got = r.respond_all(&sqp_query(&r, 0x04), peer(), &info, &none);
    assert_eq!(got, vec![[header(6), vec![0, 0, 0, 2, 0, 0]].concat()]);
    // A wrong challenge is still ignored.
    let wrong = sqp::encode_query_request(r.challenge_for(peer()) ^ 1, 0x0F);
    assert!(r.respond_all(&wrong, peer(), &info, &extras).is_empty());
}

#[test]
fn sqp_replies_over_one_packet_are_numbered_packets() {
    let r = SqpResponder::new();
    let players = SqpRecords {
        fields: vec!["name".into()],
        records: (0..200)
            .map(|i| vec![SqpValue::Str(format!("player number {i:04}"))])
            .collect(),
    };
    let extras = SqpExtras {
        players: players.clone(),
        ..SqpExtras::default()
    };
    let packets = r.respond_all(
        &sqp_query(&r, 0x05),
        peer(),
        &SqpServerInfo::default(),
        &extras,
    );
    assert!(packets.len() > 1);
    let last = (packets.len() - 1) as u8;
    for (n, p) in packets.iter().enumerate() {
        assert!(p.len() <= sqp::MAX_PACKET);
        assert_eq!((p[7], p[8]), (n as u8, last));
        assert_eq!(u16::from_be_bytes([p[9], p[10]]) as usize, p.len() - 11);
    }
    let mut shuffled = packets.clone();
    shuffled.swap(0, 1);
    let d = sqp::decode_full_response(&shuffled, 0x05).unwrap();
    assert_eq!(d.players, Some(players));
}

fn slot_json(dir: &std::path::Path, query_type: &str, ipv6: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("map".to_string(), "harbour".to_string());
    vars.insert("maxPlayers".to_string(), "24".to_string());
    let sj = ServerJson {
        server_id: 9,
        ip: "127.0.0.1".into(),
        ipv6: ipv6.into(),
        port: 7777,
        query_port: port,
        query_type: query_type.into(),
        variables: vars,
        ..ServerJson::default()
    };
    let path = dir.join("server.json");
    sj.write_atomic(&path).unwrap();
    path
}

#[test]
fn the_query_port_answers_on_ipv4_and_ipv6_with_players_and_rules() {
    let base = std::env::temp_dir().join(format!("netz-host-query-{}", std::process::id()));
    for q in ["a2s", "sqp"] {
        // A free IPv4 port may be taken on ::1: try a few.
        let server = (0..20)
            .find_map(|_| GameServer::open(slot_json(&base.join(q), q, "::1")).ok())
            .expect("a query port free on 127.0.0.1 and ::1");
        let qs = server.query.as_ref().unwrap();
        assert_eq!(qs.local_addrs().len(), 2);
        let v6 = qs.local_addrs()[1];
        assert!(v6.is_ipv6());
        server.set_player_list(vec![QueryPlayer {
            name: "ana".into(),
            score: 3,
            seconds: 10,
        }]);
        server.set_rules(vec![("mode".into(), "ctf".into())]);
        let t = Duration::from_secs(5);
        for addr in qs.local_addrs() {
            if q == "a2s" {
                let info = a2s::query(*addr, t).unwrap();
                assert_eq!((info.players, info.max_players), (1, 24));
                assert_eq!(info.map, "harbour");
                let p = a2s::query_players(*addr, t).unwrap();
                assert_eq!(p.len(), 1);
                assert_eq!((p[0].name.as_str(), p[0].score), ("ana", 3));
                assert_eq!(
                    a2s::query_rules(*addr, t).unwrap(),
                    vec![("mode".into(), "ctf".into())]
                );
            } else {
                let d = sqp::query_chunks(*addr, 0x0F, t).unwrap();
                let info = d.info.unwrap();
                assert_eq!((info.current_players, info.max_players), (1, 24));
                assert_eq!(info.map, "harbour");
                let p = d.players.unwrap();
                assert_eq!(p.records[0][0], SqpValue::Str("ana".into()));
                assert_eq!(
                    d.rules.unwrap(),
                    vec![("mode".into(), SqpValue::Str("ctf".into()))]
                );
                assert_eq!(d.teams.unwrap().records.len(), 0);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn the_test_server_reports_players_capacity_and_map() {
    use common::{Fleet, Opts};
    use serde_json::json;
    let f = Fleet::start("querydata", 43600, Opts::default());
    let s = f.wait_server(1, "ready", |s| s["state"] == "Ready");
    let addr: SocketAddr = format!("127.0.0.1:{}", s["query_port"]).parse().unwrap();
    let t = Duration::from_secs(5);
    let info = sqp::query(addr, t).unwrap();
    assert_eq!(info.current_players, 0);
    assert_eq!(
        info.max_players,
        netz_host::test_server::DEFAULT_MAX_PLAYERS
    );
    assert_eq!(info.map, netz_host::test_server::DEFAULT_MAP);
    assert!(!info.build_id.is_empty() && !info.game_type.is_empty());
    f.allocate("m-q", json!({}));
    f.wait_until("a player", |_| {
        sqp::query(addr, t).is_ok_and(|i| i.current_players == 1)
    });
    let d = sqp::query_chunks(addr, 0x06, t).unwrap();
    assert_eq!(
        d.players.unwrap().records[0][0],
        SqpValue::Str("player-of-m-q".into())
    );
    assert!(d
        .rules
        .unwrap()
        .contains(&("allocation".into(), SqpValue::Str("m-q".into()))));
}
