//! Unity Server Query Protocol (SQP, UDP, big-endian).
//!
//! A client first sends a ChallengeRequest (`00` + four zero bytes) and gets
//! a ChallengeResponse (`00` + `u32` challenge). It then sends QueryRequests
//! (`01` + challenge + `u16` version + `u8` requested chunks): ServerInfo
//! (bit 0x01), ServerRules (0x02), PlayerInfo (0x04) and TeamInfo (0x08),
//! laid out as go-svrquery (the reference client Unity names) reads them:
//! every chunk starts with its `u32` length; rules are `name, type, value`
//! triples; players and teams are a `u16` count, a field header (`u8`
//! count, then `name, type` pairs) and the values of each record in header
//! order. Replies over [`MAX_PACKET`] bytes go out as several packets whose
//! payloads, put together in packet order, are the chunks.
//! [`SqpResponder::respond_all`] answers all four; [`SqpResponder::respond`]
//! knows only ServerInfo and leaves the other chunks out. A QueryRequest
//! with a wrong challenge is **ignored** (no reply), as is any malformed
//! packet. Challenges are derived from the peer's address with a keyed hash.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::udp::{client_socket, recv_until};

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
/// Bytes of a QueryResponse header: type, challenge, version, packet
/// number, last packet number, payload length.
pub const RESPONSE_HEADER_LEN: usize = 11;

/// A value of a rule or of a player's or team's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqpValue {
    /// Type 0.
    Byte(u8),
    /// Type 1.
    U16(u16),
    /// Type 2.
    U32(u32),
    /// Type 3.
    U64(u64),
    /// Type 4: a `u8` length and at most 255 bytes.
    Str(String),
}

impl SqpValue {
    /// The type code on the wire.
    pub fn type_code(&self) -> u8 {
        match self {
            SqpValue::Byte(_) => 0,
            SqpValue::U16(_) => 1,
            SqpValue::U32(_) => 2,
            SqpValue::U64(_) => 3,
            SqpValue::Str(_) => 4,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SqpValue::Byte(v) => out.push(*v),
            SqpValue::U16(v) => out.extend_from_slice(&v.to_be_bytes()),
            SqpValue::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
            SqpValue::U64(v) => out.extend_from_slice(&v.to_be_bytes()),
            SqpValue::Str(s) => put_str(out, s),
        }
    }
}

/// Records with named, typed fields: the PlayerInfo and TeamInfo chunks.
/// Every record has one value per field, of the field's type; records that
/// do not are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqpRecords {
    /// Field names (each record's values are in this order).
    pub fields: Vec<String>,
    /// The records.
    pub records: Vec<Vec<SqpValue>>,
}

/// What a full reply carries besides ServerInfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqpExtras {
    /// ServerRules: name and value.
    pub rules: Vec<(String, SqpValue)>,
    /// PlayerInfo.
    pub players: SqpRecords,
    /// TeamInfo.
    pub teams: SqpRecords,
}

/// A decoded QueryResponse: the chunks that were in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqpResponse {
    /// ServerInfo.
    pub info: Option<SqpServerInfo>,
    /// ServerRules.
    pub rules: Option<Vec<(String, SqpValue)>>,
    /// PlayerInfo.
    pub players: Option<SqpRecords>,
    /// TeamInfo.
    pub teams: Option<SqpRecords>,
}

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
    /// A field says something the rest contradicts.
    #[error("malformed SQP packet: {0}")]
    Malformed(&'static str),
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

fn with_length(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes the ServerRules chunk, with its `u32` length prefix.
pub fn encode_server_rules(rules: &[(String, SqpValue)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, v) in rules {
        put_str(&mut body, name);
        body.push(v.type_code());
        v.encode(&mut body);
    }
    with_length(body)
}

/// Encodes a PlayerInfo or TeamInfo chunk, with its `u32` length prefix.
/// The field types are those of the first record; records of other types
/// or lengths are left out, and so are all records when there are no
/// fields (go-svrquery refuses records without fields).
pub fn encode_records(r: &SqpRecords) -> Vec<u8> {
    let types: Option<Vec<u8>> = r
        .records
        .first()
        .map(|rec| rec.iter().map(SqpValue::type_code).collect());
    let good: Vec<&Vec<SqpValue>> = match &types {
        Some(t) if !r.fields.is_empty() && t.len() == r.fields.len() && r.fields.len() <= 255 => r
            .records
            .iter()
            .filter(|rec| rec.iter().map(SqpValue::type_code).eq(t.iter().copied()))
            .take(u16::MAX as usize)
            .collect(),
        _ => Vec::new(),
    };
    let mut body = Vec::new();
    body.extend_from_slice(&(good.len() as u16).to_be_bytes());
    if let (false, Some(types)) = (good.is_empty(), types) {
        body.push(r.fields.len() as u8);
        for (name, t) in r.fields.iter().zip(types) {
            put_str(&mut body, name);
            body.push(t);
        }
        for rec in good {
            for v in rec {
                v.encode(&mut body);
            }
        }
    }
    with_length(body)
}

/// Encodes the reply to a query for `chunks` as one or more packets of at
/// most [`MAX_PACKET`] bytes (at most 256; what does not fit is cut off).
pub fn encode_full_response(
    challenge: u32,
    chunks: u8,
    info: &SqpServerInfo,
    extras: &SqpExtras,
) -> Vec<Vec<u8>> {
    let mut payload = Vec::new();
    if chunks & SERVER_INFO != 0 {
        payload.extend_from_slice(&encode_server_info(info));
    }
    if chunks & SERVER_RULES != 0 {
        payload.extend_from_slice(&encode_server_rules(&extras.rules));
    }
    if chunks & PLAYER_INFO != 0 {
        payload.extend_from_slice(&encode_records(&extras.players));
    }
    if chunks & TEAM_INFO != 0 {
        payload.extend_from_slice(&encode_records(&extras.teams));
    }
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload
            .chunks(MAX_PACKET - RESPONSE_HEADER_LEN)
            .take(256)
            .collect()
    };
    let last = (pieces.len() - 1) as u8;
    pieces
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut out = Vec::with_capacity(RESPONSE_HEADER_LEN + p.len());
            out.push(QUERY);
            out.extend_from_slice(&challenge.to_be_bytes());
            out.extend_from_slice(&VERSION.to_be_bytes());
            out.push(n as u8);
            out.push(last);
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
            out
        })
        .collect()
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SqpError> {
        let end = self.pos.checked_add(n).ok_or(SqpError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(SqpError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SqpError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SqpError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SqpError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, SqpError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn str(&mut self) -> Result<String, SqpError> {
        let n = self.u8()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn value(&mut self, t: u8) -> Result<SqpValue, SqpError> {
        Ok(match t {
            0 => SqpValue::Byte(self.u8()?),
            1 => SqpValue::U16(self.u16()?),
            2 => SqpValue::U32(self.u32()?),
            3 => SqpValue::U64(self.u64()?),
            4 => SqpValue::Str(self.str()?),
            _ => return Err(SqpError::Malformed("unknown value type")),
        })
    }
    /// A chunk: its length, then a cursor over exactly its bytes.
    fn chunk(&mut self) -> Result<Cursor<'a>, SqpError> {
        let n = self.u32()? as usize;
        Ok(Cursor {
            buf: self.take(n)?,
            pos: 0,
        })
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn decode_records(mut c: Cursor<'_>) -> Result<SqpRecords, SqpError> {
    let count = c.u16()?;
    let mut out = SqpRecords::default();
    if count == 0 {
        return Ok(out);
    }
    let nfields = c.u8()?;
    if nfields == 0 {
        return Err(SqpError::Malformed("records without fields"));
    }
    let mut types = Vec::new();
    for _ in 0..nfields {
        out.fields.push(c.str()?);
        types.push(c.u8()?);
    }
    for _ in 0..count {
        let rec = types
            .iter()
            .map(|t| c.value(*t))
            .collect::<Result<Vec<_>, _>>()?;
        out.records.push(rec);
    }
    Ok(out)
}

/// Decodes the packets of one QueryResponse (in any order) for the
/// `chunks` that were asked for, as go-svrquery does.
pub fn decode_full_response(packets: &[Vec<u8>], chunks: u8) -> Result<SqpResponse, SqpError> {
    let mut pieces: Vec<Option<&[u8]>> = Vec::new();
    for p in packets {
        let mut c = Cursor { buf: p, pos: 0 };
        let kind = c.u8()?;
        if kind != QUERY {
            return Err(SqpError::WrongType(kind));
        }
        c.take(6)?;
        let (n, last) = (c.u8()? as usize, c.u8()? as usize);
        let len = c.u16()? as usize;
        if n > last || (!pieces.is_empty() && pieces.len() != last + 1) {
            return Err(SqpError::Malformed("packet numbers do not fit"));
        }
        pieces.resize(last + 1, None);
        pieces[n] = Some(c.take(len)?);
    }
    if pieces.is_empty() || pieces.iter().any(Option::is_none) {
        return Err(SqpError::Truncated);
    }
    let payload: Vec<u8> = pieces.into_iter().flatten().flatten().copied().collect();
    let mut c = Cursor {
        buf: &payload,
        pos: 0,
    };
    let mut r = SqpResponse::default();
    if c.done() {
        return Ok(r);
    }
    if chunks & SERVER_INFO != 0 {
        let mut k = c.chunk()?;
        r.info = Some(SqpServerInfo {
            current_players: k.u16()?,
            max_players: k.u16()?,
            server_name: k.str()?,
            game_type: k.str()?,
            build_id: k.str()?,
            map: k.str()?,
            port: k.u16()?,
        });
    }
    if chunks & SERVER_RULES != 0 {
        let mut k = c.chunk()?;
        let mut rules = Vec::new();
        while !k.done() {
            let name = k.str()?;
            let t = k.u8()?;
            rules.push((name, k.value(t)?));
        }
        r.rules = Some(rules);
    }
    if chunks & PLAYER_INFO != 0 {
        r.players = Some(decode_records(c.chunk()?)?);
    }
    if chunks & TEAM_INFO != 0 {
        r.teams = Some(decode_records(c.chunk()?)?);
    }
    Ok(r)
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
    /// Only ServerInfo is known here; other requested chunks are left out
    /// (see [`SqpResponder::respond_all`]).
    pub fn respond(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        info: &SqpServerInfo,
    ) -> Option<Vec<u8>> {
        match self.check(packet, peer)? {
            None => Some(encode_challenge_response(self.challenge_for(peer))),
            Some((challenge, chunks)) => Some(encode_query_response(challenge, chunks, info)),
        }
    }

    /// The datagrams answering `packet` from `peer`, every requested chunk
    /// included; none when the packet is malformed, asks for another
    /// version, or carries a wrong challenge.
    pub fn respond_all(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        info: &SqpServerInfo,
        extras: &SqpExtras,
    ) -> Vec<Vec<u8>> {
        match self.check(packet, peer) {
            None => Vec::new(),
            Some(None) => vec![encode_challenge_response(self.challenge_for(peer))],
            Some(Some((challenge, chunks))) => {
                encode_full_response(challenge, chunks, info, extras)
            }
        }
    }

    /// `None`: drop; `Some(None)`: a challenge request; `Some(Some(..))`:
    /// a valid query for these chunks.
    #[allow(clippy::option_option)]
    fn check(&self, packet: &[u8], peer: SocketAddr) -> Option<Option<(u32, u8)>> {
        match parse_request(packet)? {
            SqpRequest::Challenge => Some(None),
            SqpRequest::Query {
                challenge,
                version,
                chunks,
            } => {
                if version != VERSION || challenge != self.challenge_for(peer) {
                    return None;
                }
                Some(Some((challenge, chunks)))
            }
        }
    }
}

/// Queries an SQP server for its ServerInfo: challenge round trip, then the
/// query. Every receive is bounded by `timeout` overall.
pub fn query(server: SocketAddr, timeout: Duration) -> io::Result<SqpServerInfo> {
    query_chunks(server, SERVER_INFO, timeout)?
        .info
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ServerInfo chunk"))
}

/// Queries an SQP server for `chunks` (bits [`SERVER_INFO`],
/// [`SERVER_RULES`], [`PLAYER_INFO`], [`TEAM_INFO`]), gathering every
/// packet of the reply.
pub fn query_chunks(server: SocketAddr, chunks: u8, timeout: Duration) -> io::Result<SqpResponse> {
    let bad = |e: SqpError| io::Error::new(io::ErrorKind::InvalidData, e);
    let sock = client_socket(server)?;
    let deadline = Instant::now() + timeout;
    sock.send(&encode_challenge_request())?;
    let c = recv_until(&sock, deadline, "SQP")?;
    if c.len() != 5 || c[0] != CHALLENGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad SQP challenge response",
        ));
    }
    let challenge = u32::from_be_bytes([c[1], c[2], c[3], c[4]]);
    sock.send(&encode_query_request(challenge, chunks))?;
    let mut packets = Vec::new();
    loop {
        let p = recv_until(&sock, deadline, "SQP")?;
        let last = *p.get(8).ok_or_else(|| bad(SqpError::Truncated))? as usize;
        packets.push(p);
        if packets.len() > last {
            return decode_full_response(&packets, chunks).map_err(bad);
        }
    }
}
