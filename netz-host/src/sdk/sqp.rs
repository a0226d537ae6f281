//! Unity Server Query Protocol (SQP, UDP, big-endian).
//!
//! A client first sends a ChallengeRequest (`00` + four zero bytes) and gets
//! a ChallengeResponse (`00` + `u32` challenge). It then sends QueryRequests
//! (`01` + challenge + `u16` version + `u8` requested chunks). This responder
//! answers the ServerInfo chunk (bit 0x01); the other chunk bits are accepted
//! and left out of the reply. A QueryRequest with a wrong challenge is
//! **ignored** (no reply), as is any malformed packet. Challenges are derived
//! from the peer's address with a keyed hash.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Packet type of a challenge request / response.
pub const CHALLENGE: u8 = 0x00;
/// Packet type of a query request / response.
pub const QUERY: u8 = 0x01;
/// The protocol version this module speaks.
pub const VERSION: u16 = 1;
/// Chunk bit: ServerInfo.
pub const SERVER_INFO: u8 = 0x01;
/// Chunk bit: ServerRules.
pub const SERVER_RULES: u8 = 0x02;
/// Chunk bit: PlayerInfo.
pub const PLAYER_INFO: u8 = 0x04;
/// Chunk bit: TeamInfo.
pub const TEAM_INFO: u8 = 0x08;
/// Largest packet of the protocol.
pub const MAX_PACKET: usize = 1472;

/// The ServerInfo chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqpServerInfo {
    /// Players on the server.
    pub current_players: u16,
    /// Player capacity.
    pub max_players: u16,
    /// Server name.
    pub server_name: String,
    /// Game type / mode.
    pub game_type: String,
    /// Build id.
    pub build_id: String,
    /// Current map.
    pub map: String,
    /// Game port.
    pub port: u16,
}

/// Errors from decoding SQP packets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqpError {
    /// The packet ended before a field was complete.
    #[error("SQP packet truncated")]
    Truncated,
    /// Unexpected packet type.
    #[error("unexpected SQP packet type {0:#04x}")]
    WrongType(u8),
}

/// A parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqpRequest {
    /// `00` + 4 bytes.
    Challenge,
    /// `01` + challenge + version + chunks.
    Query {
        /// The challenge the client echoes.
        challenge: u32,
        /// Protocol version requested.
        version: u16,
        /// Requested chunk bits.
        chunks: u8,
    },
}

/// Parses a request packet; `None` for anything malformed.
pub fn parse_request(p: &[u8]) -> Option<SqpRequest> {
    match *p.first()? {
        CHALLENGE if p.len() == 5 => Some(SqpRequest::Challenge),
        QUERY if p.len() == 8 => Some(SqpRequest::Query {
            challenge: u32::from_be_bytes([p[1], p[2], p[3], p[4]]),
            version: u16::from_be_bytes([p[5], p[6]]),
            chunks: p[7],
        }),
        _ => None,
    }
}

/// `00` + four zero bytes.
pub fn encode_challenge_request() -> Vec<u8> {
    vec![CHALLENGE, 0, 0, 0, 0]
}

/// `00` + `u32` challenge.
pub fn encode_challenge_response(challenge: u32) -> Vec<u8> {
    let mut v = vec![CHALLENGE];
    v.extend_from_slice(&challenge.to_be_bytes());
    v
}

/// `01` + challenge + version + chunks.
pub fn encode_query_request(challenge: u32, chunks: u8) -> Vec<u8> {
    let mut v = vec![QUERY];
    v.extend_from_slice(&challenge.to_be_bytes());
    v.extend_from_slice(&VERSION.to_be_bytes());
    v.push(chunks);
    v
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut cut = s.len().min(255);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push(cut as u8);
    out.extend_from_slice(&s.as_bytes()[..cut]);
}

/// Encodes the ServerInfo chunk, with its `u32` length prefix.
pub fn encode_server_info(info: &SqpServerInfo) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&info.current_players.to_be_bytes());
    body.extend_from_slice(&info.max_players.to_be_bytes());
    put_str(&mut body, &info.server_name);
    put_str(&mut body, &info.game_type);
    put_str(&mut body, &info.build_id);
    put_str(&mut body, &info.map);
    body.extend_from_slice(&info.port.to_be_bytes());
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes a single-packet QueryResponse for the requested chunks (only the
/// ServerInfo chunk is produced; other bits are left out).
pub fn encode_query_response(challenge: u32, chunks: u8, info: &SqpServerInfo) -> Vec<u8> {
    let mut payload = Vec::new();
    if chunks & SERVER_INFO != 0 {
        payload.extend_from_slice(&encode_server_info(info));
    }
    let mut out = vec![QUERY];
    out.extend_from_slice(&challenge.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.push(0); // current packet
    out.push(0); // last packet
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a QueryResponse whose ServerInfo chunk was requested.
pub fn decode_query_response(p: &[u8]) -> Result<(u32, SqpServerInfo), SqpError> {
    let get = |range: std::ops::Range<usize>| p.get(range).ok_or(SqpError::Truncated);
    let kind = *p.first().ok_or(SqpError::Truncated)?;
    if kind != QUERY {
        return Err(SqpError::WrongType(kind));
    }
    let h = get(0..11)?;
    let challenge = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let mut pos = 11 + 4; // skip the chunk length
    get(11..15)?;
    let u16_at = |pos: usize| -> Result<u16, SqpError> {
        let b = get(pos..pos + 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    };
    let current_players = u16_at(pos)?;
    let max_players = u16_at(pos + 2)?;
    pos += 4;
    let mut strings = Vec::new();
    for _ in 0..4 {
        let len = *p.get(pos).ok_or(SqpError::Truncated)? as usize;
        let s = get(pos + 1..pos + 1 + len)?;
        strings.push(String::from_utf8_lossy(s).into_owned());
        pos += 1 + len;
    }
    let port = u16_at(pos)?;
    let mut it = strings.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok((
        challenge,
        SqpServerInfo {
            current_players,
            max_players,
            server_name: next(),
            game_type: next(),
            build_id: next(),
            map: next(),
            port,
        },
    ))
}

/// Answers SQP requests; stateless apart from a random key.
#[derive(Debug, Default)]
pub struct SqpResponder {
    keys: RandomState,
}

impl SqpResponder {
    /// A responder with a fresh random challenge key.
    pub fn new() -> Self {
        SqpResponder::default()
    }

    /// The challenge handed to a given peer.
    pub fn challenge_for(&self, peer: SocketAddr) -> u32 {
        self.keys.hash_one(peer) as u32
    }

    /// The reply to `packet` from `peer`, or `None` when the packet is
    /// malformed, asks for another version, or carries a wrong challenge.
    pub fn respond(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        info: &SqpServerInfo,
    ) -> Option<Vec<u8>> {
        match parse_request(packet)? {
            SqpRequest::Challenge => Some(encode_challenge_response(self.challenge_for(peer))),
            SqpRequest::Query {
                challenge,
                version,
                chunks,
            } => {
                if version != VERSION || challenge != self.challenge_for(peer) {
                    return None;
                }
                Some(encode_query_response(challenge, chunks, info))
            }
        }
    }
}

/// Queries an SQP server for its ServerInfo: challenge round trip, then the
/// query. Every receive is bounded by `timeout` overall.
pub fn query(server: SocketAddr, timeout: Duration) -> io::Result<SqpServerInfo> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().expect("valid address")
    } else {
        "127.0.0.1:0".parse().expect("valid address")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; MAX_PACKET];
    let mut recv = |sock: &UdpSocket| -> io::Result<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "SQP query timed out",
            ));
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    };
    sock.send(&encode_challenge_request())?;
    let c = recv(&sock)?;
    if c.len() != 5 || c[0] != CHALLENGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad SQP challenge response",
        ));
    }
    let challenge = u32::from_be_bytes([c[1], c[2], c[3], c[4]]);
    sock.send(&encode_query_request(challenge, SERVER_INFO))?;
    let r = recv(&sock)?;
    let (_, info) =
        decode_query_response(&r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(info)
}
