//! Byte-exact tests of the query protocols with hand-made packets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use netz_host::sdk::a2s::{self, A2sInfo, A2sResponder};
use netz_host::sdk::sqp::{self, SqpResponder, SqpServerInfo};
use netz_host::sdk::{QueryInfo, QueryServer, QueryType};

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

/// `FF FF FF FF 54 "Source Engine Query\0"`, built by hand.
fn a2s_request() -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x54];
    v.extend_from_slice(b"Source Engine Query");
    v.push(0x00);
    assert_eq!(v.len(), 25);
    v
}

fn sample_a2s() -> A2sInfo {
    A2sInfo {
        protocol: 17,
        name: "netz".into(),
        map: "dust".into(),
        folder: "cs".into(),
        game: "Game".into(),
        app_id: 10,
        players: 3,
        max_players: 16,
        bots: 1,
        server_type: b'd',
        environment: b'l',
        visibility: 0,
        vac: 1,
        version: "1.0".into(),
        game_port: Some(27015),
        steam_id: Some(0x0102030405060708),
        relay: Some((27020, "tv".into())),
        keywords: Some("a,b".into()),
        game_id: Some(0x1112131415161718),
    }
}

#[rustfmt::skip]
fn sample_a2s_bytes() -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x49, 17];
    v.extend_from_slice(b"netz\0dust\0cs\0Game\0");
    v.extend_from_slice(&[0x0A, 0x00]);             // app id 10, little-endian
    v.extend_from_slice(&[3, 16, 1, b'd', b'l', 0, 1]);
    v.extend_from_slice(b"1.0\0");
    v.push(0xF1);                                    // EDF: 0x80|0x40|0x20|0x10|0x01
    v.extend_from_slice(&[0x87, 0x69]);              // game port 27015
    v.extend_from_slice(&[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]); // steam id
    v.extend_from_slice(&[0x8C, 0x69]);              // relay port 27020
    v.extend_from_slice(b"tv\0");
    v.extend_from_slice(b"a,b\0");
    v.extend_from_slice(&[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]); // game id
    v
}

#[test]
fn a2s_info_encoding_is_byte_exact() {
    assert_eq!(a2s::encode_info(&sample_a2s()), sample_a2s_bytes());
    assert_eq!(a2s::decode_info(&sample_a2s_bytes()).unwrap(), sample_a2s());
}

#[test]
fn a2s_info_without_extra_data_has_zero_flag() {
    let info = A2sInfo {
        name: "s".into(),
        environment: b'w',
        ..A2sInfo::default()
    };
    let mut expected = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x49, 17];
    expected.extend_from_slice(b"s\0\0\0\0");
    expected.extend_from_slice(&[0, 0, 0, 0, 0, b'd', b'w', 0, 0, 0, 0x00]);
    assert_eq!(a2s::encode_info(&info), expected);
}

#[test]
fn a2s_challenge_round_trip() {
    let r = A2sResponder::new();
    let info = sample_a2s();
    // No challenge: the reply is FF FF FF FF 41 + i32.
    let c = r.respond(&a2s_request(), peer(), &info).unwrap();
    assert_eq!(c.len(), 9);
    assert_eq!(&c[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
    // Resend with the challenge appended (29 bytes).
    let mut req = a2s_request();
    req.extend_from_slice(&c[5..9]);
    assert_eq!(req.len(), 29);
    assert_eq!(r.respond(&req, peer(), &info).unwrap(), sample_a2s_bytes());
    // A wrong challenge gets a challenge again.
    let mut bad = a2s_request();
    let wrong = i32::from_le_bytes([c[5], c[6], c[7], c[8]]).wrapping_add(1);
    bad.extend_from_slice(&wrong.to_le_bytes());
    assert_eq!(r.respond(&bad, peer(), &info).unwrap(), c);
    // Another peer gets another challenge; garbage gets nothing.
    let other: SocketAddr = "127.0.0.1:50001".parse().unwrap();
    assert_eq!(r.respond(&req, other, &info).unwrap()[4], 0x41);
    assert_eq!(r.respond(b"\xFF\xFF\xFF\xFFVxxxx", peer(), &info), None);
    assert_eq!(r.respond(&a2s_request()[..20], peer(), &info), None);
}

#[test]
fn a2s_reply_fits_one_packet() {
    let info = A2sInfo {
        name: "n".repeat(1000),
        map: "m".repeat(1000),
        keywords: Some("k".repeat(1000)),
        game_port: Some(1),
        ..A2sInfo::default()
    };
    let bytes = a2s::encode_info(&info);
    assert!(bytes.len() <= a2s::MAX_PACKET, "{} bytes", bytes.len());
    let back = a2s::decode_info(&bytes).unwrap();
    assert_eq!(back.game_port, Some(1));
    assert!(back.name.len() + back.map.len() + back.keywords.unwrap().len() < 1400);
}

fn example_info() -> SqpServerInfo {
    SqpServerInfo {
        current_players: 5,
        max_players: 10,
        server_name: "my server".into(),
        game_type: "ctf".into(),
        build_id: "1".into(),
        map: "map".into(),
        port: 1025,
    }
}

#[rustfmt::skip]
fn example_response(c: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0x01];
    v.extend_from_slice(&c);
    v.extend_from_slice(&[0x00, 0x01, 0x00, 0x00, 0x00, 0x1e]);
    v.extend_from_slice(&[0x00, 0x00, 0x00, 0x1a, 0x00, 0x05, 0x00, 0x0a]);
    v.push(9); v.extend_from_slice(b"my server");
    v.push(3); v.extend_from_slice(b"ctf");
    v.push(1); v.extend_from_slice(b"1");
    v.push(3); v.extend_from_slice(b"map");
    v.extend_from_slice(&[0x04, 0x01]);
    v
}

#[test]
fn sqp_example_from_the_protocol_description() {
    let request = [0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x01];
    assert_eq!(
        sqp::parse_request(&request),
        Some(sqp::SqpRequest::Query {
            challenge: 0x100,
            version: 1,
            chunks: 0x01
        })
    );
    assert_eq!(sqp::encode_query_request(0x100, 0x01), request);
    let expected = example_response([0x00, 0x00, 0x01, 0x00]);
    assert_eq!(
        sqp::encode_query_response(0x100, 0x01, &example_info()),
        expected
    );
    assert_eq!(
        sqp::decode_query_response(&expected).unwrap(),
        (0x100, example_info())
    );
}

#[test]
fn sqp_challenge_round_trip() {
    let r = SqpResponder::new();
    let info = example_info();
    let c = r
        .respond(&[0x00, 0x00, 0x00, 0x00, 0x00], peer(), &info)
        .unwrap();
    assert_eq!(c.len(), 5);
    assert_eq!(c[0], 0x00);
    let ch = [c[1], c[2], c[3], c[4]];
    let query = [0x01, ch[0], ch[1], ch[2], ch[3], 0x00, 0x01, 0x01];
    assert_eq!(
        r.respond(&query, peer(), &info).unwrap(),
        example_response(ch)
    );
    // A wrong challenge is ignored.
    let wrong = [0x01, ch[0] ^ 0xFF, ch[1], ch[2], ch[3], 0x00, 0x01, 0x01];
    assert_eq!(r.respond(&wrong, peer(), &info), None);
    // So are unknown versions and malformed packets.
    let v2 = [0x01, ch[0], ch[1], ch[2], ch[3], 0x00, 0x02, 0x01];
    assert_eq!(r.respond(&v2, peer(), &info), None);
    assert_eq!(r.respond(&[0x01, 0x00], peer(), &info), None);
    assert_eq!(r.respond(&[0x07, 0, 0, 0, 0], peer(), &info), None);
    // Chunks other than ServerInfo are left out: packet length 0.
    let rules = [0x01, ch[0], ch[1], ch[2], ch[3], 0x00, 0x01, 0x02];
    let mut empty = vec![0x01];
    empty.extend_from_slice(&ch);
    empty.extend_from_slice(&[0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(r.respond(&rules, peer(), &info).unwrap(), empty);
}

#[test]
fn sqp_long_strings_are_capped_at_255_bytes() {
    let info = SqpServerInfo {
        server_name: "x".repeat(400),
        ..example_info()
    };
    let bytes = sqp::encode_query_response(1, 0x01, &info);
    assert!(bytes.len() <= sqp::MAX_PACKET);
    assert_eq!(
        sqp::decode_query_response(&bytes)
            .unwrap()
            .1
            .server_name
            .len(),
        255
    );
}

fn info() -> QueryInfo {
    QueryInfo {
        name: "udp test".into(),
        map: "arena".into(),
        game_type: "duel".into(),
        build_id: "7".into(),
        players: 2,
        max_players: 8,
        port: 4000,
    }
}

#[test]
fn query_server_answers_sqp_over_udp() {
    let server = QueryServer::bind("127.0.0.1:0".parse().unwrap(), QueryType::Sqp, info()).unwrap();
    let got = sqp::query(server.local_addr(), Duration::from_secs(5)).unwrap();
    assert_eq!(got.server_name, "udp test");
    assert_eq!(
        (got.current_players, got.max_players, got.port),
        (2, 8, 4000)
    );
    server.set_players(3);
    let got = sqp::query(server.local_addr(), Duration::from_secs(5)).unwrap();
    assert_eq!(got.current_players, 3);
    server.set_responding(false);
    assert!(sqp::query(server.local_addr(), Duration::from_millis(300)).is_err());
}

#[test]
fn query_server_answers_a2s_over_udp_with_challenge() {
    let server = QueryServer::bind("127.0.0.1:0".parse().unwrap(), QueryType::A2s, info()).unwrap();
    // By hand: the first request gets a challenge.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&a2s_request(), server.local_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(n, 9);
    assert_eq!(&buf[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
    let mut req = a2s_request();
    req.extend_from_slice(&buf[5..9]);
    sock.send_to(&req, server.local_addr()).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let got = a2s::decode_info(&buf[..n]).unwrap();
    assert_eq!(got.name, "udp test");
    assert_eq!(
        (got.players, got.max_players, got.game_port),
        (2, 8, Some(4000))
    );
    // And through the client helper.
    let got = a2s::query(server.local_addr(), Duration::from_secs(5)).unwrap();
    assert_eq!(got.map, "arena");
}
