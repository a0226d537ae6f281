//! Authenticated, encrypted datagrams and connect tokens.
//!
//! # Model
//!
//! The session's authority (the game's backend, a matchmaker, or the
//! session master itself) holds a secret *token key*. For every station
//! allowed to join it issues a [`ConnectToken`] with [`TokenIssuer::issue`]:
//! a [`TokenGrant`] (client id, process type, expiry) and two fresh keys,
//! `client_to_server` and `server_to_client`, sealed with XChaCha20-Poly1305
//! under the token key, plus the same two keys in clear for the joiner
//! (delivered out of band, over the matchmaker's TLS say).
//!
//! The joiner sends the sealed token in its join request. Stations that
//! know the token key (the session master, and servers so that they can
//! reject bad tokens before forwarding) open it, check its expiry against
//! the token clock ([`SecurityConfig::clock_origin_ms`] plus the station's
//! `now`) and that the requested process type is the granted one. A
//! missing, forged or expired token is dropped and counted.
//!
//! # Link keys
//!
//! Every link between two stations A and B has one key per direction. They
//! derive from the token of the station that joined later, J, from fresh
//! randomness of both sides of that join, from the session and from the id
//! of the other, M. J draws a 16-byte *joiner salt* for each join and sends
//! it in its request; the session master, when it admits J, draws a 16-byte
//! *master salt*. J's key bases are
//! `base = kdf(kdf(kdf(key_J, "netzjsal", joiner salt), "netzmsal", master
//! salt), "netzjoin", (session tag, J's id, session id))` for each of
//! `client_to_server_J` and `server_to_client_J`, and the link keys are
//! `J -> M = kdf(base_c2s, "netzlink", M)`, `M -> J = kdf(base_s2c,
//! "netzlink", M)`, where `kdf` is the XChaCha20 keystream under the key
//! with the label and the input as nonce. The master salt reaches J in a
//! small connectionless `JoinKeys` message, sealed under a key only J and
//! the session master can derive (`kdf(server_to_client_J, "netzhand",
//! joiner salt)`) with a random nonce, together with J's id and the session
//! tag. A station id is never given out twice in a session, and the salts
//! are fresh on each side, so two joins never share a link key: a token
//! used again (by a restarted station, by a replay of its request, in
//! another session) never repeats a (key, nonce) pair, whichever side's
//! randomness is poor. Randomness for salts comes from
//! [`SecurityConfig::entropy`], which netz-net fills from the operating
//! system.
//!
//! The joiner derives the keys for every station listed in its
//! `JoinAccepted`; the session master sends each member the keys of its
//! link with the joiner (`LinkKeys`, on the member's own authenticated
//! link) before it announces the joiner. In a client-server session
//! clients never link to each other and get no keys for one another.
//! Servers relay, so they see the keys sent to their clients: servers are
//! trusted with that.
//!
//! # Tokens
//!
//! A token admits one station once within its lifetime: the session master
//! remembers the tokens it admitted until they expire and refuses them
//! again ("the connect token was already used"), whether the request comes
//! from a restarted station or from a replay. A token may be bound to one
//! session ([`TokenGrant::session`], compared with
//! [`SecurityConfig::session_id`]) and to the joiner's address
//! ([`TokenGrant::address`]).
//!
//! # Datagrams
//!
//! With security on, a link datagram is the packet header (in clear), an
//! 8-byte little-endian packet counter, then the link payload sealed with
//! ChaCha20-Poly1305 under the sender's key for that peer; the header and
//! the counter are the associated data and the counter is the nonce. The
//! receiver keeps a 256-packet replay window per peer. A datagram with no
//! key for its sender (spoofed), a bad tag (forged or modified) or a counter
//! seen before or left behind by the window (replayed) is dropped and
//! counted before anything else looks at it.

use crate::ids::{ProcessType, StationId};
use crate::Instant;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305, XNonce};
use std::collections::HashMap;
use std::net::SocketAddr;

/// A 256-bit key.
pub type Key = [u8; 32];

/// Bytes a sealed datagram adds to a clear one: the counter and the tag.
pub const DATAGRAM_OVERHEAD: usize = 8 + 16;

const TOKEN_VERSION: u8 = 2;
/// Version, client id, process type, expiry, session, address (family, ip,
/// port), the two keys.
const TOKEN_PLAIN_LEN: usize = 1 + 8 + 1 + 8 + 8 + (1 + 16 + 2) + 32 + 32;
/// Length of a sealed `JoinKeys` body: nonce, plaintext, tag.
pub(crate) const JOIN_KEYS_LEN: usize = 24 + JOIN_KEYS_PLAIN_LEN + 16;
const JOIN_KEYS_PLAIN_LEN: usize = 8 + 4 + 4 + 16 + 8;
/// Length of a sealed token: nonce, plaintext, tag.
pub const SEALED_TOKEN_LEN: usize = 24 + TOKEN_PLAIN_LEN + 16;

/// What a connect token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The authority's id of the player or process (for logs and to keep
    /// one token from admitting two stations at once).
    pub client_id: u64,
    /// The process type the holder may join as.
    pub process_type: ProcessType,
    /// The token clock's time (milliseconds) after which the token is refused.
    pub expires_at_ms: u64,
    /// The session the token is for (compared with
    /// [`SecurityConfig::session_id`] of the admitting station); 0 for any
    /// session of the game.
    pub session: u64,
    /// The only address the holder may join from (as the contact station
    /// sees it), where the game knows it; `None` for any address.
    pub address: Option<SocketAddr>,
}

impl TokenGrant {
    /// A grant for `client_id` as `process_type` until `expires_at_ms`, for
    /// any session of the game and any address.
    pub fn new(client_id: u64, process_type: ProcessType, expires_at_ms: u64) -> TokenGrant {
        TokenGrant {
            client_id,
            process_type,
            expires_at_ms,
            session: 0,
            address: None,
        }
    }

    /// Binds the grant to session `session` (see [`TokenGrant::session`]).
    pub fn for_session(mut self, session: u64) -> TokenGrant {
        self.session = session;
        self
    }

    /// Binds the grant to the joiner's address (see [`TokenGrant::address`]).
    pub fn from_address(mut self, address: SocketAddr) -> TokenGrant {
        self.address = Some(address);
        self
    }
}

/// A connect token as its holder keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectToken {
    /// The sealed part, sent in the join request; opaque to the holder.
    pub sealed: Vec<u8>,
    /// The holder's key material for its links (sealed inside too).
    pub client_to_server: Key,
    /// The peers' key material for their links to the holder.
    pub server_to_client: Key,
    /// When it expires, on the token clock (milliseconds).
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for ConnectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectToken")
            .field("sealed_len", &self.sealed.len())
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Issues and opens connect tokens under the token key.
#[derive(Clone)]
pub struct TokenIssuer {
    seal: XChaCha20Poly1305,
    derive_c2s: Key,
    derive_s2c: Key,
    protocol_id: u64,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("protocol_id", &self.protocol_id)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// It does not open under the token key (forged, damaged, another game).
    Invalid,
    /// It opened but expired.
    Expired,
    /// It opened but grants another process type than the one asked for.
    WrongProcessType,
    /// It opened but is for another session.
    WrongSession,
    /// It opened but is for another address.
    WrongAddress,
    /// It admitted a station before (a token admits once).
    AlreadyUsed,
}

impl TokenError {
    /// The reason a refused joiner is told.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Invalid => "the connect token is invalid",
            TokenError::Expired => "the connect token expired",
            TokenError::WrongProcessType => "the connect token is for another process type",
            TokenError::WrongSession => "the connect token is for another session",
            TokenError::WrongAddress => "the connect token is for another address",
            TokenError::AlreadyUsed => "the connect token was already used",
        }
    }
}

/// The XChaCha20 keystream under `key` for the nonce made of `label` and
/// `input`: a pseudo-random function of `(key, label, input)`.
fn kdf(key: &Key, label: &[u8; 8], input: &[u8; 16]) -> Key {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(label);
    nonce[8..].copy_from_slice(input);
    stream(key, &nonce)
}

/// The first 32 bytes of the XChaCha20 keystream under `key` and `nonce`.
fn stream(key: &Key, nonce: &[u8; 24]) -> Key {
    let cipher = XChaCha20Poly1305::new(key.into());
    let stream = cipher
        .encrypt(XNonce::from_slice(nonce), [0u8; 32].as_slice())
        .unwrap_or_default();
    let mut out = [0u8; 32];
    if stream.len() >= 32 {
        out.copy_from_slice(&stream[..32]);
    }
    out
}

/// A join challenge cookie: a MAC under `key` over the joiner's address,
/// its request's nonce and a time bucket.
pub(crate) fn challenge_cookie(
    key: &Key,
    addr: std::net::SocketAddr,
    nonce: u64,
    bucket: u64,
) -> [u8; 16] {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    let k = kdf(key, b"netzcook", &ip);
    let mut input = [0u8; 16];
    input[..2].copy_from_slice(&addr.port().to_le_bytes());
    input[2..8].copy_from_slice(&bucket.to_le_bytes()[..6]);
    input[8..].copy_from_slice(&nonce.to_le_bytes());
    let full = kdf(&k, b"netzcoo2", &input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Compares two byte strings in time that does not depend on where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn id_input(id: StationId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&id.0.to_le_bytes());
    b
}

/// An optional address in 19 bytes: family (0 none, 4, 6), the IPv6 (or
/// IPv4-mapped) address, the port.
fn encode_addr(addr: Option<SocketAddr>) -> [u8; 19] {
    let mut b = [0u8; 19];
    if let Some(a) = addr {
        let (family, ip) = match a.ip() {
            std::net::IpAddr::V4(v4) => (4, v4.to_ipv6_mapped().octets()),
            std::net::IpAddr::V6(v6) => (6, v6.octets()),
        };
        b[0] = family;
        b[1..17].copy_from_slice(&ip);
        b[17..].copy_from_slice(&a.port().to_le_bytes());
    }
    b
}

fn decode_addr(b: &[u8]) -> Option<Option<SocketAddr>> {
    if b.len() != 19 {
        return None;
    }
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[1..17]);
    let v6 = std::net::Ipv6Addr::from(ip);
    let port = u16::from_le_bytes([b[17], b[18]]);
    match b[0] {
        0 => Some(None),
        4 => Some(Some(SocketAddr::new(v6.to_ipv4_mapped()?.into(), port))),
        6 => Some(Some(SocketAddr::new(v6.into(), port))),
        _ => None,
    }
}

/// What a join mixes into the joiner's key bases besides its token's keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JoinMix {
    /// The joiner's fresh randomness (in its request).
    pub(crate) joiner_salt: [u8; 16],
    /// The session master's fresh randomness (in `JoinKeys`).
    pub(crate) master_salt: [u8; 16],
    /// The session's tag.
    pub(crate) session_tag: u32,
    /// The id the joiner was given.
    pub(crate) joiner: StationId,
    /// The game's session id ([`SecurityConfig::session_id`]).
    pub(crate) session_id: u64,
}

impl JoinMix {
    /// The key base that `key` (one of the token's two keys) gives for this join.
    fn base(&self, key: &Key) -> Key {
        let a = kdf(key, b"netzjsal", &self.joiner_salt);
        let b = kdf(&a, b"netzmsal", &self.master_salt);
        let mut t = [0u8; 16];
        t[..4].copy_from_slice(&self.session_tag.to_le_bytes());
        t[4..8].copy_from_slice(&self.joiner.0.to_le_bytes());
        t[8..].copy_from_slice(&self.session_id.to_le_bytes());
        kdf(&b, b"netzjoin", &t)
    }
}

/// The key that seals a joiner's `JoinKeys`: only the joiner and whoever
/// opened its token can derive it.
fn handshake_key(s2c: &Key, joiner_salt: &[u8; 16]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new((&kdf(s2c, b"netzhand", joiner_salt)).into())
}

const JOIN_KEYS_AAD: &[u8; 8] = b"netzjkey";

impl TokenIssuer {
    /// An issuer for `token_key`; `protocol_id` names the game (a token of
    /// another game does not open).
    pub fn new(token_key: &Key, protocol_id: u64) -> TokenIssuer {
        let mut pid = [0u8; 16];
        pid[..8].copy_from_slice(&protocol_id.to_le_bytes());
        let seal_key = kdf(token_key, b"netzseal", &pid);
        TokenIssuer {
            seal: XChaCha20Poly1305::new((&seal_key).into()),
            derive_c2s: kdf(token_key, b"netz-c2s", &pid),
            derive_s2c: kdf(token_key, b"netz-s2c", &pid),
            protocol_id,
        }
    }

    fn aad(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(b"netztokn");
        a[8..].copy_from_slice(&self.protocol_id.to_le_bytes());
        a
    }

    /// Issues a token for `grant`. `random` must be fresh random bytes
    /// (the core has no random source: the caller draws them, e.g. from the
    /// operating system); it is the token's nonce and the keys derive from it.
    pub fn issue(&self, grant: &TokenGrant, random: [u8; 24]) -> ConnectToken {
        let c2s = stream(&self.derive_c2s, &random);
        let s2c = stream(&self.derive_s2c, &random);
        let mut plain = Vec::with_capacity(TOKEN_PLAIN_LEN);
        plain.push(TOKEN_VERSION);
        plain.extend_from_slice(&grant.client_id.to_le_bytes());
        plain.push(ProcessType::code(grant.process_type));
        plain.extend_from_slice(&grant.expires_at_ms.to_le_bytes());
        plain.extend_from_slice(&grant.session.to_le_bytes());
        plain.extend_from_slice(&encode_addr(grant.address));
        plain.extend_from_slice(&c2s);
        plain.extend_from_slice(&s2c);
        let aad = self.aad();
        let sealed = self
            .seal
            .encrypt(
                XNonce::from_slice(&random),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(SEALED_TOKEN_LEN);
        out.extend_from_slice(&random);
        out.extend_from_slice(&sealed);
        ConnectToken {
            sealed: out,
            client_to_server: c2s,
            server_to_client: s2c,
            expires_at_ms: grant.expires_at_ms,
        }
    }

    /// Opens a sealed token and checks it against the token clock `now_ms`.
    pub fn open(&self, sealed: &[u8], now_ms: u64) -> Result<(TokenGrant, Key, Key), TokenError> {
        if sealed.len() != SEALED_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let (nonce, body) = sealed.split_at(24);
        let aad = self.aad();
        let plain = self
            .seal
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| TokenError::Invalid)?;
        if plain.len() != TOKEN_PLAIN_LEN || plain[0] != TOKEN_VERSION {
            return Err(TokenError::Invalid);
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&plain[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let process_type = ProcessType::from_code(plain[9]).ok_or(TokenError::Invalid)?;
        let address = decode_addr(&plain[26..45]).ok_or(TokenError::Invalid)?;
        let grant = TokenGrant {
            client_id: u64_at(1),
            process_type,
            expires_at_ms: u64_at(10),
            session: u64_at(18),
            address,
        };
        let mut c2s = [0u8; 32];
        c2s.copy_from_slice(&plain[45..77]);
        let mut s2c = [0u8; 32];
        s2c.copy_from_slice(&plain[77..109]);
        if now_ms >= grant.expires_at_ms {
            return Err(TokenError::Expired);
        }
        Ok((grant, c2s, s2c))
    }
}

/// Security settings of a station, part of [`crate::StationConfig`].
///
/// With security on, every station but the session's creator needs a
/// connect token to join, whatever its process type (tools too), and
/// every link datagram is sealed.
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// Names the game; tokens of another protocol id do not open.
    pub protocol_id: u64,
    /// The token key, on stations that admit or vet joiners (the session
    /// master and servers). `None` on clients.
    pub token_key: Option<Key>,
    /// This station's token, to join a session (`None` on the station
    /// that creates the session).
    pub connect_token: Option<ConnectToken>,
    /// The token clock's time in milliseconds at the station's
    /// `Instant::ZERO`: token expiry is checked against
    /// `clock_origin_ms + now`. Drivers whose clock starts at zero when
    /// they start set it to the Unix time then (the simulator leaves it 0).
    pub clock_origin_ms: u64,
    /// The game's name for this session (a match id, say), mixed into
    /// link keys; tokens bound to another session ([`TokenGrant::session`])
    /// are refused. 0 when the game does not name sessions.
    pub session_id: u64,
    /// Secret randomness for the salts of joins and the nonces of
    /// `JoinKeys`. netz-net fills it from the operating system whatever the
    /// caller put here; all zeros (the simulator) means: derived from the
    /// station's seed, reproducible and not secret.
    pub entropy: Key,
}

impl SecurityConfig {
    /// For a station that admits joiners: knows the token key.
    pub fn authority(token_key: Key, protocol_id: u64) -> SecurityConfig {
        SecurityConfig {
            protocol_id,
            token_key: Some(token_key),
            connect_token: None,
            clock_origin_ms: 0,
            session_id: 0,
            entropy: [0; 32],
        }
    }

    /// For a station that joins with `token`.
    pub fn joiner(token: ConnectToken, protocol_id: u64) -> SecurityConfig {
        SecurityConfig {
            protocol_id,
            token_key: None,
            connect_token: Some(token),
            clock_origin_ms: 0,
            session_id: 0,
            entropy: [0; 32],
        }
    }

    /// Adds a connect token (a server that joins and also vets joiners).
    pub fn with_token(mut self, token: ConnectToken) -> SecurityConfig {
        self.connect_token = Some(token);
        self
    }

    /// Sets [`SecurityConfig::clock_origin_ms`].
    pub fn with_clock_origin_ms(mut self, ms: u64) -> SecurityConfig {
        self.clock_origin_ms = ms;
        self
    }

    /// Sets [`SecurityConfig::session_id`].
    pub fn with_session_id(mut self, session_id: u64) -> SecurityConfig {
        self.session_id = session_id;
        self
    }
}

/// Replay protection: the highest counter seen and a 256-bit window below it.
#[derive(Clone, Debug, Default)]
struct ReplayWindow {
    highest: Option<u64>,
    bits: [u64; 4],
}

impl ReplayWindow {
    const SIZE: u64 = 256;

    fn check(&self, counter: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if counter > h => true,
            Some(h) => {
                let back = h - counter;
                back < Self::SIZE && self.bits[(back / 64) as usize] & (1 << (back % 64)) == 0
            }
        }
    }

    fn mark(&mut self, counter: u64) {
        match self.highest {
            Some(h) if counter <= h => {
                let back = h - counter;
                if back < Self::SIZE {
                    self.bits[(back / 64) as usize] |= 1 << (back % 64);
                }
            }
            _ => {
                let shift = self.highest.map_or(Self::SIZE, |h| counter - h);
                self.shift(shift);
                self.bits[0] |= 1;
                self.highest = Some(counter);
            }
        }
    }

    fn shift(&mut self, n: u64) {
        if n >= Self::SIZE {
            self.bits = [0; 4];
            return;
        }
        let words = (n / 64) as usize;
        let bits = (n % 64) as u32;
        let old = self.bits;
        for i in (0..4).rev() {
            let mut v = 0u64;
            if i >= words {
                v = old[i - words] << bits;
                if bits > 0 && i > words {
                    v |= old[i - words - 1] >> (64 - bits);
                }
            }
            self.bits[i] = v;
        }
    }
}

struct PeerKeys {
    /// Fingerprints of the send and receive keys (tests).
    fingerprints: (u64, u64),
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    next_send: u64,
    window: ReplayWindow,
}

impl PeerKeys {
    fn new(send: &Key, recv: &Key) -> PeerKeys {
        PeerKeys {
            fingerprints: (key_fingerprint(send), key_fingerprint(recv)),
            send: ChaCha20Poly1305::new(send.into()),
            recv: ChaCha20Poly1305::new(recv.into()),
            next_send: 0,
            window: ReplayWindow::default(),
        }
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// No key for the sender, or the tag did not verify.
    Unauthentic,
    /// The counter was seen before or is too old.
    Replayed,
}

/// At the session master: what it keeps of a joiner it admitted or is
/// admitting.
struct Joiner {
    /// The joiner's key bases (see the module docs).
    c2s: Key,
    s2c: Key,
    client_id: u64,
    /// The sealed `JoinKeys` body for the joiner.
    join_keys: Vec<u8>,
}

/// The keys of a station's links and what it needs to admit joiners.
pub(crate) struct SecurityState {
    pub(crate) cfg: SecurityConfig,
    issuer: Option<TokenIssuer>,
    peers: HashMap<StationId, PeerKeys>,
    /// At the session master: joiners admitted or pending.
    joiners: HashMap<StationId, Joiner>,
    /// At the session master: the tokens that admitted a station (by their
    /// nonce), with their expiry on the token clock.
    used_tokens: HashMap<[u8; 24], u64>,
    /// Whether keys may be derived on demand from our own token (while joining).
    derive_on_demand: bool,
    /// While joining: this join's salt.
    join_salt: [u8; 16],
    /// Our key bases, once `JoinKeys` told us the rest of the mix.
    bases: Option<(Key, Key)>,
    /// The secret of the salt generator, and how many were drawn.
    random_key: Key,
    random_count: u64,
}

impl SecurityState {
    /// The state for `cfg`; `seed` stands in for missing entropy.
    pub(crate) fn new(cfg: SecurityConfig, seed: u64) -> SecurityState {
        let issuer = cfg
            .token_key
            .as_ref()
            .map(|k| TokenIssuer::new(k, cfg.protocol_id));
        let random_key = if cfg.entropy == [0; 32] {
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&seed.to_le_bytes());
            kdf(&[0x5a; 32], b"netzseed", &s)
        } else {
            kdf(&cfg.entropy, b"netzrkey", &[0; 16])
        };
        SecurityState {
            cfg,
            issuer,
            peers: HashMap::new(),
            joiners: HashMap::new(),
            used_tokens: HashMap::new(),
            derive_on_demand: false,
            join_salt: [0; 16],
            bases: None,
            random_key,
            random_count: 0,
        }
    }

    /// 32 fresh bytes from the salt generator.
    fn fresh(&mut self) -> [u8; 32] {
        self.random_count += 1;
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&self.random_count.to_le_bytes());
        kdf(&self.random_key, b"netzrand", &input)
    }

    /// A fresh 16-byte salt.
    pub(crate) fn fresh_salt(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.fresh()[..16]);
        out
    }

    /// The token clock at `now`.
    pub(crate) fn now_ms(&self, now: Instant) -> u64 {
        self.cfg
            .clock_origin_ms
            .saturating_add(now.as_micros() / 1000)
    }

    pub(crate) fn can_open_tokens(&self) -> bool {
        self.issuer.is_some()
    }

    /// The sealed token to send in a join request.
    pub(crate) fn own_token(&self) -> Vec<u8> {
        self.cfg
            .connect_token
            .as_ref()
            .map(|t| t.sealed.clone())
            .unwrap_or_default()
    }

    /// Opens a joiner's token (see [`TokenIssuer::open`]); also checks the
    /// process type and the session. Stations without the token key report
    /// `Invalid`. Whether it was spent is [`SecurityState::spent`]'s.
    pub(crate) fn open_token(
        &self,
        sealed: &[u8],
        process_type: ProcessType,
        now: Instant,
    ) -> Result<(TokenGrant, Key, Key), TokenError> {
        let issuer = self.issuer.as_ref().ok_or(TokenError::Invalid)?;
        let (grant, c2s, s2c) = issuer.open(sealed, self.now_ms(now))?;
        if grant.process_type != process_type {
            return Err(TokenError::WrongProcessType);
        }
        if grant.session != 0 && grant.session != self.cfg.session_id {
            return Err(TokenError::WrongSession);
        }
        Ok((grant, c2s, s2c))
    }

    /// Whether a current member other than `except` joined with `client_id`.
    pub(crate) fn client_in_use(&self, client_id: u64, alive: impl Fn(StationId) -> bool) -> bool {
        self.joiners
            .iter()
            .any(|(id, j)| j.client_id == client_id && alive(*id))
    }

    /// At the session master, when it gives joiner `mix.joiner` its id:
    /// draws the master salt, derives the joiner's key bases and seals its
    /// `JoinKeys` (for the join request with `nonce`).
    pub(crate) fn remember_joiner(
        &mut self,
        mut mix: JoinMix,
        nonce: u64,
        c2s: Key,
        s2c: Key,
        client_id: u64,
    ) {
        mix.master_salt = self.fresh_salt();
        mix.session_id = self.cfg.session_id;
        let mut plain = Vec::with_capacity(JOIN_KEYS_PLAIN_LEN);
        plain.extend_from_slice(&nonce.to_le_bytes());
        plain.extend_from_slice(&mix.joiner.0.to_le_bytes());
        plain.extend_from_slice(&mix.session_tag.to_le_bytes());
        plain.extend_from_slice(&mix.master_salt);
        plain.extend_from_slice(&mix.session_id.to_le_bytes());
        let mut xnonce = [0u8; 24];
        xnonce.copy_from_slice(&self.fresh()[..24]);
        let sealed = handshake_key(&s2c, &mix.joiner_salt)
            .encrypt(
                XNonce::from_slice(&xnonce),
                Payload {
                    msg: &plain,
                    aad: JOIN_KEYS_AAD,
                },
            )
            .unwrap_or_default();
        let mut join_keys = xnonce.to_vec();
        join_keys.extend_from_slice(&sealed);
        self.joiners.insert(
            mix.joiner,
            Joiner {
                c2s: mix.base(&c2s),
                s2c: mix.base(&s2c),
                client_id,
                join_keys,
            },
        );
    }

    /// The sealed `JoinKeys` body for `joiner`.
    pub(crate) fn join_keys_for(&self, joiner: StationId) -> Option<Vec<u8>> {
        self.joiners.get(&joiner).map(|j| j.join_keys.clone())
    }

    /// At the session master: the token `sealed` admitted a station; it is
    /// refused from now on until it expires. Expired entries are dropped.
    pub(crate) fn spend_token(&mut self, sealed: &[u8], expires_at_ms: u64, now: Instant) {
        let now_ms = self.now_ms(now);
        self.used_tokens.retain(|_, exp| *exp > now_ms);
        self.used_tokens.insert(token_id(sealed), expires_at_ms);
    }

    /// Whether the token `sealed` admitted a station before.
    pub(crate) fn spent(&self, sealed: &[u8]) -> bool {
        self.used_tokens.contains_key(&token_id(sealed))
    }

    /// How many spent tokens the session master remembers.
    pub(crate) fn spent_tokens(&self) -> usize {
        self.used_tokens.len()
    }

    pub(crate) fn forget_joiner(&mut self, id: StationId) {
        self.joiners.remove(&id);
    }

    /// At the session master, when `joiner` is admitted: installs our keys
    /// for it and returns, for member `member`, (member -> joiner,
    /// joiner -> member).
    pub(crate) fn link_keys_for(&self, joiner: StationId, member: StationId) -> Option<(Key, Key)> {
        let j = self.joiners.get(&joiner)?;
        Some((
            kdf(&j.s2c, b"netzlink", &id_input(member)),
            kdf(&j.c2s, b"netzlink", &id_input(member)),
        ))
    }

    /// Installs the keys of our link with `peer`.
    pub(crate) fn install(&mut self, peer: StationId, send: &Key, recv: &Key) {
        self.peers.insert(peer, PeerKeys::new(send, recv));
    }

    /// While joining: derive keys for any sender from our own token, once
    /// `JoinKeys` arrived. Starting a join draws a fresh salt.
    pub(crate) fn set_joining(&mut self, on: bool) {
        self.derive_on_demand = on;
        if on {
            self.join_salt = self.fresh_salt();
            self.bases = None;
        }
    }

    /// This join's salt (in the join request).
    pub(crate) fn join_salt(&self) -> [u8; 16] {
        self.join_salt
    }

    /// While joining: opens the session master's `JoinKeys` for our request
    /// `nonce` and takes our key bases from it. Returns our id and the
    /// session tag, or `None` if it is not authentic or not for this join.
    pub(crate) fn accept_join_keys(&mut self, nonce: u64, body: &[u8]) -> Option<(StationId, u32)> {
        if !self.derive_on_demand || body.len() != JOIN_KEYS_LEN {
            return None;
        }
        let t = self.cfg.connect_token.as_ref()?;
        let (xnonce, sealed) = body.split_at(24);
        let plain = handshake_key(&t.server_to_client, &self.join_salt)
            .decrypt(
                XNonce::from_slice(xnonce),
                Payload {
                    msg: sealed,
                    aad: JOIN_KEYS_AAD,
                },
            )
            .ok()?;
        if plain.len() != JOIN_KEYS_PLAIN_LEN {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([plain[i], plain[i + 1], plain[i + 2], plain[i + 3]]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&plain[..8]);
        if u64::from_le_bytes(n) != nonce {
            return None;
        }
        let mut master_salt = [0u8; 16];
        master_salt.copy_from_slice(&plain[16..32]);
        let mut sid = [0u8; 8];
        sid.copy_from_slice(&plain[32..40]);
        let mix = JoinMix {
            joiner_salt: self.join_salt,
            master_salt,
            session_tag: u32_at(12),
            joiner: StationId(u32_at(8)),
            session_id: u64::from_le_bytes(sid),
        };
        if self.bases.is_none() {
            self.bases = Some((mix.base(&t.client_to_server), mix.base(&t.server_to_client)));
        }
        Some((mix.joiner, mix.session_tag))
    }

    /// The keys of our link with `peer`, from our own key bases (we joined
    /// after it): (send, recv).
    fn own_keys(&self, peer: StationId) -> Option<(Key, Key)> {
        let (c2s, s2c) = self.bases.as_ref()?;
        Some((
            kdf(c2s, b"netzlink", &id_input(peer)),
            kdf(s2c, b"netzlink", &id_input(peer)),
        ))
    }

    /// Derives and installs the keys of our link with `peer` from our own
    /// key bases (we joined after it).
    pub(crate) fn derive_own(&mut self, peer: StationId) {
        if self.peers.contains_key(&peer) {
            // Never restart a send counter under the same key.
            return;
        }
        if let Some((send, recv)) = self.own_keys(peer) {
            self.install(peer, &send, &recv);
        }
    }

    /// Drops the keys of peers for which `keep` is false.
    pub(crate) fn retain(&mut self, keep: impl Fn(StationId) -> bool) {
        self.peers.retain(|id, _| keep(*id));
        self.joiners.retain(|id, _| keep(*id));
    }

    /// Per peer, the fingerprints of the link's send and receive keys.
    pub(crate) fn key_fingerprints(&self) -> Vec<(StationId, u64, u64)> {
        let mut v: Vec<_> = self
            .peers
            .iter()
            .map(|(id, k)| (*id, k.fingerprints.0, k.fingerprints.1))
            .collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len() + self.joiners.len()
    }

    /// Seals the link payload that follows the `header_len`-byte header in
    /// `datagram`, in place. False if there is no key for `peer`.
    pub(crate) fn seal(
        &mut self,
        peer: StationId,
        datagram: &mut Vec<u8>,
        header_len: usize,
    ) -> bool {
        let Some(k) = self.peers.get_mut(&peer) else {
            return false;
        };
        let counter = k.next_send;
        k.next_send += 1;
        let payload = datagram.split_off(header_len);
        datagram.extend_from_slice(&counter.to_le_bytes());
        let Ok(sealed) = k.send.encrypt(
            &nonce(counter),
            Payload {
                msg: &payload,
                aad: datagram,
            },
        ) else {
            return false;
        };
        datagram.extend_from_slice(&sealed);
        true
    }

    /// Opens a sealed link payload; `header` is the datagram's header bytes.
    pub(crate) fn open(
        &mut self,
        peer: StationId,
        header: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        if body.len() < DATAGRAM_OVERHEAD {
            return Err(OpenError::Unauthentic);
        }
        let (ctr, sealed) = body.split_at(8);
        let mut c = [0u8; 8];
        c.copy_from_slice(ctr);
        let counter = u64::from_le_bytes(c);
        let mut aad = Vec::with_capacity(header.len() + 8);
        aad.extend_from_slice(header);
        aad.extend_from_slice(ctr);
        if !self.peers.contains_key(&peer) && self.derive_on_demand {
            // Try the keys our token gives for this sender; keep them only
            // if the datagram is authentic.
            let Some((_, recv)) = self.own_keys(peer) else {
                return Err(OpenError::Unauthentic);
            };
            let cipher = ChaCha20Poly1305::new((&recv).into());
            let plain = cipher
                .decrypt(
                    &nonce(counter),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| OpenError::Unauthentic)?;
            self.derive_own(peer);
            if let Some(k) = self.peers.get_mut(&peer) {
                k.window.mark(counter);
            }
            return Ok(plain);
        }
        let k = self.peers.get_mut(&peer).ok_or(OpenError::Unauthentic)?;
        // Authenticity first: a modified copy of an old datagram counts as
        // forged, an exact copy as replayed.
        let plain = k
            .recv
            .decrypt(
                &nonce(counter),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Unauthentic)?;
        if !k.window.check(counter) {
            return Err(OpenError::Replayed);
        }
        k.window.mark(counter);
        Ok(plain)
    }
}

/// A token's identity: its nonce (the random bytes it was issued with).
fn token_id(sealed: &[u8]) -> [u8; 24] {
    let mut id = [0u8; 24];
    if sealed.len() >= 24 {
        id.copy_from_slice(&sealed[..24]);
    }
    id
}

/// The first 8 bytes of a key's keystream: names a key in tests without
/// showing it.
pub(crate) fn key_fingerprint(key: &Key) -> u64 {
    let f = kdf(key, b"netzfing", &[0; 16]);
    u64::from_le_bytes([f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]])
}

fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
