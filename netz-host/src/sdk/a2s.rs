//! Valve A2S server queries (UDP, little-endian): A2S_INFO, A2S_PLAYER and
//! A2S_RULES, with the challenge step (Valve added it to A2S_INFO in
//! December 2020; A2S_PLAYER and A2S_RULES always had it) and the Source
//! split-packet format for replies over [`MAX_PACKET`] bytes.
//!
//! A request is `FF FF FF FF 54 "Source Engine Query\0"` (25 bytes). This
//! responder always asks for a challenge first: a request without a challenge,
//! or with a wrong one, is answered with `FF FF FF FF 41` + `i32` challenge.
//! The client resends the request with that challenge appended (29 bytes) and
//! gets the `FF FF FF FF 49` info reply. Challenges are derived from the
//! peer's address with a keyed hash, so the responder keeps no per-client
//! state.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::udp::{client_socket, recv_until};

/// The header every connectionless packet starts with.
pub const HEADER: [u8; 4] = [0xFF; 4];
/// Request type byte of A2S_INFO (`'T'`).
pub const INFO_REQUEST: u8 = 0x54;
/// Response type byte of A2S_INFO (`'I'`).
pub const INFO_RESPONSE: u8 = 0x49;
/// Request type byte of A2S_PLAYER (`'U'`).
pub const PLAYER_REQUEST: u8 = 0x55;
/// Response type byte of A2S_PLAYER (`'D'`).
pub const PLAYER_RESPONSE: u8 = 0x44;
/// Request type byte of A2S_RULES (`'V'`).
pub const RULES_REQUEST: u8 = 0x56;
/// Response type byte of A2S_RULES (`'E'`).
pub const RULES_RESPONSE: u8 = 0x45;
/// The header of one part of a split reply (`-2` as a little-endian i32).
pub const SPLIT_HEADER: [u8; 4] = [0xFE, 0xFF, 0xFF, 0xFF];
/// Bytes of a split part's header: `-2`, id (i32), total (u8), number (u8),
/// part size (u16).
pub const SPLIT_HEADER_LEN: usize = 12;
/// Most parts a split reply has (larger replies lose their last entries).
pub const MAX_PARTS: usize = 32;
/// Response type byte of a challenge (`'A'`).
pub const CHALLENGE_RESPONSE: u8 = 0x41;
/// The payload of an A2S_INFO request, with its terminating NUL.
pub const QUERY_STRING: &[u8] = b"Source Engine Query\0";
/// Largest reply this responder sends (one packet).
pub const MAX_PACKET: usize = 1400;

/// Length of a request without a challenge.
pub const REQUEST_LEN: usize = 25;
/// Length of a request that carries a challenge.
pub const REQUEST_WITH_CHALLENGE_LEN: usize = 29;

/// The fields of an A2S_INFO reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A2sInfo {
    /// Protocol version of the server (17 for current Source games).
    pub protocol: u8,
    /// Server name.
    pub name: String,
    /// Current map.
    pub map: String,
    /// Game folder.
    pub folder: String,
    /// Full game name.
    pub game: String,
    /// Steam application id (0 when not on Steam).
    pub app_id: u16,
    /// Players on the server.
    pub players: u8,
    /// Player capacity.
    pub max_players: u8,
    /// Bots on the server.
    pub bots: u8,
    /// `b'd'` dedicated, `b'l'` non-dedicated, `b'p'` relay.
    pub server_type: u8,
    /// `b'l'` Linux, `b'w'` Windows, `b'm'` macOS.
    pub environment: u8,
    /// 1 when a password is needed, 0 otherwise.
    pub visibility: u8,
    /// 1 when VAC secured, 0 otherwise.
    pub vac: u8,
    /// Game version string.
    pub version: String,
    /// Extra data (flag 0x80): game port.
    pub game_port: Option<u16>,
    /// Extra data (flag 0x10): the server's Steam id.
    pub steam_id: Option<u64>,
    /// Extra data (flag 0x40): relay (SourceTV) port and name.
    pub relay: Option<(u16, String)>,
    /// Extra data (flag 0x20): keywords / tags.
    pub keywords: Option<String>,
    /// Extra data (flag 0x01): 64-bit game id.
    pub game_id: Option<u64>,
}

impl Default for A2sInfo {
    fn default() -> Self {
        A2sInfo {
            protocol: 17,
            name: String::new(),
            map: String::new(),
            folder: String::new(),
            game: String::new(),
            app_id: 0,
            players: 0,
            max_players: 0,
            bots: 0,
            server_type: b'd',
            environment: local_environment(),
            visibility: 0,
            vac: 0,
            version: String::new(),
            game_port: None,
            steam_id: None,
            relay: None,
            keywords: None,
            game_id: None,
        }
    }
}

/// The environment byte for the operating system this code runs on.
pub fn local_environment() -> u8 {
    if cfg!(target_os = "windows") {
        b'w'
    } else if cfg!(target_os = "macos") {
        b'm'
    } else {
        b'l'
    }
}

/// Errors from decoding an A2S packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum A2sError {
    /// The packet ended before a field was complete.
    #[error("A2S packet truncated")]
    Truncated,
    /// The packet does not start with the expected header and type.
    #[error("not the expected A2S reply (type byte {0:#04x})")]
    WrongType(u8),
    /// The parts of a split reply do not fit together.
    #[error("bad split A2S reply: {0}")]
    BadSplit(&'static str),
}

/// One player of an A2S_PLAYER reply.
#[derive(Debug, Clone, PartialEq)]
pub struct A2sPlayer {
    /// Index of the entry (0 for most servers).
    pub index: u8,
    /// Player name.
    pub name: String,
    /// Score.
    pub score: i32,
    /// Seconds connected.
    pub duration: f32,
}

fn clean(s: &str) -> String {
    s.replace('\0', "")
}

fn truncate_to(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn encoded_len(info: &A2sInfo) -> usize {
    let mut n = 5 + 1;
    n += info.name.len() + 1 + info.map.len() + 1 + info.folder.len() + 1 + info.game.len() + 1;
    n += 2 + 7 + info.version.len() + 1 + 1;
    if info.game_port.is_some() {
        n += 2;
    }
    if info.steam_id.is_some() {
        n += 8;
    }
    if let Some((_, name)) = &info.relay {
        n += 2 + name.len() + 1;
    }
    if let Some(k) = &info.keywords {
        n += k.len() + 1;
    }
    if info.game_id.is_some() {
        n += 8;
    }
    n
}

/// Encodes an A2S_INFO reply. Strings lose NUL bytes, and long strings are
/// truncated (keywords first, then name, map, game, folder, version, relay
/// name) so that the reply fits in [`MAX_PACKET`] bytes.
pub fn encode_info(info: &A2sInfo) -> Vec<u8> {
    let mut info = info.clone();
    info.name = clean(&info.name);
    info.map = clean(&info.map);
    info.folder = clean(&info.folder);
    info.game = clean(&info.game);
    info.version = clean(&info.version);
    info.keywords = info.keywords.as_deref().map(clean);
    if let Some((_, n)) = &mut info.relay {
        *n = clean(n);
    }
    let mut excess = encoded_len(&info).saturating_sub(MAX_PACKET);
    {
        let mut fields: Vec<&mut String> = Vec::new();
        if let Some(k) = info.keywords.as_mut() {
            fields.push(k);
        }
        fields.push(&mut info.name);
        fields.push(&mut info.map);
        fields.push(&mut info.game);
        fields.push(&mut info.folder);
        fields.push(&mut info.version);
        if let Some((_, n)) = info.relay.as_mut() {
            fields.push(n);
        }
        for f in fields {
            if excess == 0 {
                break;
            }
            let before = f.len();
            truncate_to(f, before.saturating_sub(excess));
            excess -= before - f.len();
        }
    }
    let mut out = Vec::with_capacity(encoded_len(&info));
    out.extend_from_slice(&HEADER);
    out.push(INFO_RESPONSE);
    out.push(info.protocol);
    for s in [&info.name, &info.map, &info.folder, &info.game] {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(&info.app_id.to_le_bytes());
    out.extend_from_slice(&[
        info.players,
        info.max_players,
        info.bots,
        info.server_type,
        info.environment,
        info.visibility,
        info.vac,
    ]);
    out.extend_from_slice(info.version.as_bytes());
    out.push(0);
    let mut edf = 0u8;
    if info.game_port.is_some() {
        edf |= 0x80;
    }
    if info.steam_id.is_some() {
        edf |= 0x10;
    }
    if info.relay.is_some() {
        edf |= 0x40;
    }
    if info.keywords.is_some() {
        edf |= 0x20;
    }
    if info.game_id.is_some() {
        edf |= 0x01;
    }
    out.push(edf);
    if let Some(p) = info.game_port {
        out.extend_from_slice(&p.to_le_bytes());
    }
    if let Some(id) = info.steam_id {
        out.extend_from_slice(&id.to_le_bytes());
    }
    if let Some((port, name)) = &info.relay {
        out.extend_from_slice(&port.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    if let Some(k) = &info.keywords {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
    }
    if let Some(id) = info.game_id {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], A2sError> {
        let end = self.pos.checked_add(n).ok_or(A2sError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(A2sError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, A2sError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, A2sError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], A2sError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, A2sError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn cstr(&mut self) -> Result<String, A2sError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(A2sError::Truncated)?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
}

/// Decodes an A2S_INFO reply (`FF FF FF FF 49 ...`).
pub fn decode_info(packet: &[u8]) -> Result<A2sInfo, A2sError> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    if r.bytes(4)? != HEADER {
        return Err(A2sError::WrongType(0));
    }
    let kind = r.u8()?;
    if kind != INFO_RESPONSE {
        return Err(A2sError::WrongType(kind));
    }
    let mut info = A2sInfo {
        protocol: r.u8()?,
        name: r.cstr()?,
        map: r.cstr()?,
        folder: r.cstr()?,
        game: r.cstr()?,
        app_id: r.u16()?,
        players: r.u8()?,
        max_players: r.u8()?,
        bots: r.u8()?,
        server_type: r.u8()?,
        environment: r.u8()?,
        visibility: r.u8()?,
        vac: r.u8()?,
        version: r.cstr()?,
        ..A2sInfo::default()
    };
    if r.pos < packet.len() {
        let edf = r.u8()?;
        if edf & 0x80 != 0 {
            info.game_port = Some(r.u16()?);
        }
        if edf & 0x10 != 0 {
            info.steam_id = Some(r.u64()?);
        }
        if edf & 0x40 != 0 {
            let port = r.u16()?;
            info.relay = Some((port, r.cstr()?));
        }
        if edf & 0x20 != 0 {
            info.keywords = Some(r.cstr()?);
        }
        if edf & 0x01 != 0 {
            info.game_id = Some(r.u64()?);
        }
    }
    Ok(info)
}

/// Encodes an A2S_PLAYER reply (`FF FF FF FF 44`, count, then index,
/// name, score and duration of each player); at most 255 players.
pub fn encode_players(players: &[A2sPlayer]) -> Vec<u8> {
    let players = &players[..players.len().min(255)];
    let mut out = Vec::new();
    out.extend_from_slice(&HEADER);
    out.push(PLAYER_RESPONSE);
    out.push(players.len() as u8);
    for p in players {
        out.push(p.index);
        out.extend_from_slice(clean(&p.name).as_bytes());
        out.push(0);
        out.extend_from_slice(&p.score.to_le_bytes());
        out.extend_from_slice(&p.duration.to_le_bytes());
    }
    out
}

/// Decodes an A2S_PLAYER reply.
pub fn decode_players(packet: &[u8]) -> Result<Vec<A2sPlayer>, A2sError> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    expect_type(&mut r, PLAYER_RESPONSE)?;
    let n = r.u8()?;
    (0..n)
        .map(|_| {
            Ok(A2sPlayer {
                index: r.u8()?,
                name: r.cstr()?,
                score: i32::from_le_bytes(r.array()?),
                duration: f32::from_le_bytes(r.array()?),
            })
        })
        .collect()
}

/// Encodes an A2S_RULES reply (`FF FF FF FF 45`, `u16` count, then name and
/// value of each rule).
pub fn encode_rules(rules: &[(String, String)]) -> Vec<u8> {
    let rules = &rules[..rules.len().min(u16::MAX as usize)];
    let mut out = Vec::new();
    out.extend_from_slice(&HEADER);
    out.push(RULES_RESPONSE);
    out.extend_from_slice(&(rules.len() as u16).to_le_bytes());
    for (k, v) in rules {
        for s in [k, v] {
            out.extend_from_slice(clean(s).as_bytes());
            out.push(0);
        }
    }
    out
}

/// Decodes an A2S_RULES reply.
pub fn decode_rules(packet: &[u8]) -> Result<Vec<(String, String)>, A2sError> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    expect_type(&mut r, RULES_RESPONSE)?;
    let n = r.u16()?;
    (0..n).map(|_| Ok((r.cstr()?, r.cstr()?))).collect()
}

fn expect_type(r: &mut Reader<'_>, kind: u8) -> Result<(), A2sError> {
    if r.bytes(4)? != HEADER {
        return Err(A2sError::WrongType(0));
    }
    let k = r.u8()?;
    if k != kind {
        return Err(A2sError::WrongType(k));
    }
    Ok(())
}

/// Cuts a reply into datagrams: itself when it fits in [`MAX_PACKET`]
/// bytes, else Source split parts (`FE FF FF FF`, `id`, total, number,
/// part size, then a piece of the reply), at most [`MAX_PARTS`] of them.
pub fn split(reply: &[u8], id: i32) -> Vec<Vec<u8>> {
    if reply.len() <= MAX_PACKET {
        return vec![reply.to_vec()];
    }
    let piece = MAX_PACKET - SPLIT_HEADER_LEN;
    let pieces: Vec<&[u8]> = reply.chunks(piece).take(MAX_PARTS).collect();
    let total = pieces.len() as u8;
    pieces
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut out = Vec::with_capacity(SPLIT_HEADER_LEN + p.len());
            out.extend_from_slice(&SPLIT_HEADER);
            // The high bit would mean bzip2; ids stay below it.
            out.extend_from_slice(&(id & 0x7FFF_FFFF).to_le_bytes());
            out.push(total);
            out.push(n as u8);
            out.extend_from_slice(&(MAX_PACKET as u16).to_le_bytes());
            out.extend_from_slice(p);
            out
        })
        .collect()
}

/// Puts split parts (in any order) back together; `Ok(None)` while parts
/// are missing. A single (unsplit) reply is returned as it is.
pub fn reassemble(parts: &[Vec<u8>]) -> Result<Option<Vec<u8>>, A2sError> {
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    if first.get(..4) == Some(&HEADER[..]) {
        return Ok(Some(first.clone()));
    }
    let mut pieces: Vec<Option<&[u8]>> = Vec::new();
    let mut id = None;
    for p in parts {
        if p.len() < SPLIT_HEADER_LEN || p[..4] != SPLIT_HEADER {
            return Err(A2sError::BadSplit("not a split part"));
        }
        let this = i32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        if *id.get_or_insert(this) != this {
            return Err(A2sError::BadSplit("parts of two replies"));
        }
        let (total, n) = (p[8] as usize, p[9] as usize);
        if total == 0 || n >= total || (!pieces.is_empty() && pieces.len() != total) {
            return Err(A2sError::BadSplit("part numbers do not fit"));
        }
        pieces.resize(total, None);
        pieces[n] = Some(&p[SPLIT_HEADER_LEN..]);
    }
    if pieces.iter().any(Option::is_none) {
        return Ok(None);
    }
    Ok(Some(
        pieces.into_iter().flatten().flatten().copied().collect(),
    ))
}

/// Builds an A2S_PLAYER (`kind` [`PLAYER_REQUEST`]) or A2S_RULES
/// ([`RULES_REQUEST`]) request; `-1` asks for a challenge.
pub fn encode_challenged_request(kind: u8, challenge: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.extend_from_slice(&HEADER);
    out.push(kind);
    out.extend_from_slice(&challenge.to_le_bytes());
    out
}

/// Builds an A2S_INFO request, with the challenge appended when given.
pub fn encode_request(challenge: Option<i32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(REQUEST_WITH_CHALLENGE_LEN);
    out.extend_from_slice(&HEADER);
    out.push(INFO_REQUEST);
    out.extend_from_slice(QUERY_STRING);
    if let Some(c) = challenge {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out
}

/// Builds a challenge reply (`FF FF FF FF 41` + `i32`).
pub fn encode_challenge(challenge: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.extend_from_slice(&HEADER);
    out.push(CHALLENGE_RESPONSE);
    out.extend_from_slice(&challenge.to_le_bytes());
    out
}

/// Answers A2S requests; stateless apart from a random key.
#[derive(Debug, Default)]
pub struct A2sResponder {
    keys: RandomState,
}

impl A2sResponder {
    /// A responder with a fresh random challenge key.
    pub fn new() -> Self {
        A2sResponder::default()
    }

    /// The challenge a given peer must echo back.
    pub fn challenge_for(&self, peer: SocketAddr) -> i32 {
        self.keys.hash_one(peer) as i32
    }

    /// Returns the reply to an A2S_INFO request `packet` from `peer`: a
    /// challenge when the request has no challenge or a wrong one, the info
    /// reply when the challenge matches, and nothing for anything else
    /// (see [`A2sResponder::respond_all`] for A2S_PLAYER and A2S_RULES).
    pub fn respond(&self, packet: &[u8], peer: SocketAddr, info: &A2sInfo) -> Option<Vec<u8>> {
        if packet.len() < REQUEST_LEN
            || packet[..4] != HEADER
            || packet[4] != INFO_REQUEST
            || &packet[5..REQUEST_LEN] != QUERY_STRING
        {
            return None;
        }
        let expected = self.challenge_for(peer);
        if packet.len() == REQUEST_WITH_CHALLENGE_LEN {
            let mut c = [0u8; 4];
            c.copy_from_slice(&packet[REQUEST_LEN..]);
            if i32::from_le_bytes(c) == expected {
                return Some(encode_info(info));
            }
        }
        Some(encode_challenge(expected))
    }

    /// Answers A2S_INFO, A2S_PLAYER and A2S_RULES: the datagrams to send
    /// back (a challenge, one reply, or the parts of a split reply), none
    /// for anything else.
    pub fn respond_all(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        info: &A2sInfo,
        players: &[A2sPlayer],
        rules: &[(String, String)],
    ) -> Vec<Vec<u8>> {
        if let Some(r) = self.respond(packet, peer, info) {
            return split(&r, self.challenge_for(peer));
        }
        if packet.len() != 9 || packet[..4] != HEADER {
            return Vec::new();
        }
        let expected = self.challenge_for(peer);
        let given = i32::from_le_bytes([packet[5], packet[6], packet[7], packet[8]]);
        let reply = match packet[4] {
            PLAYER_REQUEST | RULES_REQUEST if given != expected => encode_challenge(expected),
            PLAYER_REQUEST => encode_players(players),
            RULES_REQUEST => encode_rules(rules),
            _ => return Vec::new(),
        };
        split(&reply, expected)
    }
}

/// Sends `request`, follows a challenge if one comes back, and returns the
/// whole (reassembled) reply.
fn exchange(
    server: SocketAddr,
    timeout: Duration,
    request: impl Fn(Option<i32>) -> Vec<u8>,
) -> io::Result<Vec<u8>> {
    let sock = client_socket(server)?;
    let deadline = Instant::now() + timeout;
    sock.send(&request(None))?;
    let mut parts = Vec::new();
    let mut challenges = 0;
    loop {
        let p = recv_until(&sock, deadline, "A2S")?;
        if p.len() == 9 && p[..4] == HEADER && p[4] == CHALLENGE_RESPONSE && challenges < 3 {
            challenges += 1;
            let c = i32::from_le_bytes([p[5], p[6], p[7], p[8]]);
            sock.send(&request(Some(c)))?;
            continue;
        }
        parts.push(p);
        let bad = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        if let Some(whole) = reassemble(&parts).map_err(bad)? {
            return Ok(whole);
        }
    }
}

/// Queries an A2S server: sends the request, follows a challenge if one
/// comes back, and decodes the info reply. Every receive is bounded by
/// `timeout`.
pub fn query(server: SocketAddr, timeout: Duration) -> io::Result<A2sInfo> {
    let r = exchange(server, timeout, encode_request)?;
    decode_info(&r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Asks an A2S server for its players (A2S_PLAYER, with the challenge).
pub fn query_players(server: SocketAddr, timeout: Duration) -> io::Result<Vec<A2sPlayer>> {
    let r = exchange(server, timeout, |c| {
        encode_challenged_request(PLAYER_REQUEST, c.unwrap_or(-1))
    })?;
    decode_players(&r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Asks an A2S server for its rules (A2S_RULES, with the challenge).
pub fn query_rules(server: SocketAddr, timeout: Duration) -> io::Result<Vec<(String, String)>> {
    let r = exchange(server, timeout, |c| {
        encode_challenged_request(RULES_REQUEST, c.unwrap_or(-1))
    })?;
    decode_rules(&r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
