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
//! derive from the token of the station that joined later, J, and the id of
//! the other, M: `J -> M` is `kdf(client_to_server_J, M)`, `M -> J` is
//! `kdf(server_to_client_J, M)`, where `kdf` is the XChaCha20 keystream
//! under the key with the label and the id as nonce. The joiner derives the
//! keys for every station listed in its `JoinAccepted`; the session master
//! opens the token and sends each member the keys of its link with the
//! joiner (`LinkKeys`, on the member's own authenticated link) before it
//! announces the joiner. In a client-server session clients never link to
//! each other and get no keys for one another. Servers relay, so they see
//! the keys sent to their clients: servers are trusted with that.
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

/// A 256-bit key.
pub type Key = [u8; 32];

/// Bytes a sealed datagram adds to a clear one: the counter and the tag.
pub const DATAGRAM_OVERHEAD: usize = 8 + 16;

const TOKEN_VERSION: u8 = 1;
const TOKEN_PLAIN_LEN: usize = 1 + 8 + 1 + 8 + 32 + 32;
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
}

impl TokenError {
    /// The reason a refused joiner is told.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Invalid => "the connect token is invalid",
            TokenError::Expired => "the connect token expired",
            TokenError::WrongProcessType => "the connect token is for another process type",
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
        let grant = TokenGrant {
            client_id: u64_at(1),
            process_type,
            expires_at_ms: u64_at(10),
        };
        let mut c2s = [0u8; 32];
        c2s.copy_from_slice(&plain[18..50]);
        let mut s2c = [0u8; 32];
        s2c.copy_from_slice(&plain[50..82]);
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
}

impl SecurityConfig {
    /// For a station that admits joiners: knows the token key.
    pub fn authority(token_key: Key, protocol_id: u64) -> SecurityConfig {
        SecurityConfig {
            protocol_id,
            token_key: Some(token_key),
            connect_token: None,
            clock_origin_ms: 0,
        }
    }

    /// For a station that joins with `token`.
    pub fn joiner(token: ConnectToken, protocol_id: u64) -> SecurityConfig {
        SecurityConfig {
            protocol_id,
            token_key: None,
            connect_token: Some(token),
            clock_origin_ms: 0,
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
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    next_send: u64,
    window: ReplayWindow,
}

impl PeerKeys {
    fn new(send: &Key, recv: &Key) -> PeerKeys {
        PeerKeys {
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

/// The keys of a station's links and what it needs to admit joiners.
pub(crate) struct SecurityState {
    pub(crate) cfg: SecurityConfig,
    issuer: Option<TokenIssuer>,
    peers: HashMap<StationId, PeerKeys>,
    /// At the session master: keys of joiners admitted or pending.
    joiners: HashMap<StationId, (Key, Key, u64)>,
    /// Whether keys may be derived on demand from our own token (while joining).
    derive_on_demand: bool,
}

impl SecurityState {
    pub(crate) fn new(cfg: SecurityConfig) -> SecurityState {
        let issuer = cfg
            .token_key
            .as_ref()
            .map(|k| TokenIssuer::new(k, cfg.protocol_id));
        SecurityState {
            cfg,
            issuer,
            peers: HashMap::new(),
            joiners: HashMap::new(),
            derive_on_demand: false,
        }
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
    /// process type. Stations without the token key report `Invalid`.
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
        Ok((grant, c2s, s2c))
    }

    /// Whether a current member other than `except` joined with `client_id`.
    pub(crate) fn client_in_use(&self, client_id: u64, alive: impl Fn(StationId) -> bool) -> bool {
        self.joiners
            .iter()
            .any(|(id, (_, _, c))| *c == client_id && alive(*id))
    }

    pub(crate) fn remember_joiner(&mut self, id: StationId, c2s: Key, s2c: Key, client_id: u64) {
        self.joiners.insert(id, (c2s, s2c, client_id));
    }

    pub(crate) fn forget_joiner(&mut self, id: StationId) {
        self.joiners.remove(&id);
    }

    /// At the session master, when `joiner` is admitted: installs our keys
    /// for it and returns, for member `member`, (member -> joiner,
    /// joiner -> member).
    pub(crate) fn link_keys_for(&self, joiner: StationId, member: StationId) -> Option<(Key, Key)> {
        let (c2s, s2c, _) = self.joiners.get(&joiner)?;
        Some((
            kdf(s2c, b"netzlink", &id_input(member)),
            kdf(c2s, b"netzlink", &id_input(member)),
        ))
    }

    /// Installs the keys of our link with `peer`.
    pub(crate) fn install(&mut self, peer: StationId, send: &Key, recv: &Key) {
        self.peers.insert(peer, PeerKeys::new(send, recv));
    }

    /// While joining: derive keys for any sender from our own token.
    pub(crate) fn set_joining(&mut self, on: bool) {
        self.derive_on_demand = on;
    }

    /// Derives and installs the keys of our link with `peer` from our own
    /// token (we joined after it).
    pub(crate) fn derive_own(&mut self, peer: StationId) {
        if self.peers.contains_key(&peer) {
            // Never restart a send counter under the same key.
            return;
        }
        if let Some(t) = &self.cfg.connect_token {
            let send = kdf(&t.client_to_server, b"netzlink", &id_input(peer));
            let recv = kdf(&t.server_to_client, b"netzlink", &id_input(peer));
            self.install(peer, &send, &recv);
        }
    }

    /// Drops the keys of peers for which `keep` is false.
    pub(crate) fn retain(&mut self, keep: impl Fn(StationId) -> bool) {
        self.peers.retain(|id, _| keep(*id));
        self.joiners.retain(|id, _| keep(*id));
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
            let Some(t) = &self.cfg.connect_token else {
                return Err(OpenError::Unauthentic);
            };
            let recv = kdf(&t.server_to_client, b"netzlink", &id_input(peer));
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

fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(&[7u8; 32], 42)
    }

    fn grant(expires: u64) -> TokenGrant {
        TokenGrant {
            client_id: 9,
            process_type: ProcessType::Client,
            expires_at_ms: expires,
        }
    }

    #[test]
    fn tokens_open_and_expire() {
        let i = issuer();
        let t = i.issue(&grant(1000), [3u8; 24]);
        assert_eq!(t.sealed.len(), SEALED_TOKEN_LEN);
        let (g, c2s, s2c) = i.open(&t.sealed, 999).unwrap();
        assert_eq!(g, grant(1000));
        assert_eq!((c2s, s2c), (t.client_to_server, t.server_to_client));
        assert_ne!(c2s, s2c);
        assert_eq!(i.open(&t.sealed, 1000), Err(TokenError::Expired));
        let mut bad = t.sealed.clone();
        bad[40] ^= 1;
        assert_eq!(i.open(&bad, 0), Err(TokenError::Invalid));
        assert_eq!(
            TokenIssuer::new(&[7u8; 32], 43).open(&t.sealed, 0),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            TokenIssuer::new(&[8u8; 32], 42).open(&t.sealed, 0),
            Err(TokenError::Invalid)
        );
        let other = i.issue(&grant(1000), [4u8; 24]);
        assert_ne!(other.client_to_server, t.client_to_server);
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        for c in [5u64, 3, 4, 300, 299, 100] {
            assert!(w.check(c), "{c}");
            w.mark(c);
            assert!(!w.check(c), "{c}");
        }
        assert!(!w.check(40), "too old");
        assert!(w.check(298));
        w.mark(1000);
        assert!(!w.check(300));
        assert!(w.check(999));
        for c in 1001..1400 {
            w.mark(c);
        }
        assert!(!w.check(1399));
        assert!(w.check(1400));
        assert!(!w.check(1399 - 255));
        assert!(!w.check(1399 - 256));
    }

    #[test]
    fn datagrams_seal_open_and_refuse_tampering() {
        let i = issuer();
        let t = i.issue(&grant(1000), [5u8; 24]);
        let mut master = SecurityState::new(SecurityConfig::authority([7u8; 32], 42));
        let mut joiner = SecurityState::new(SecurityConfig::joiner(t.clone(), 42));
        let (g, c2s, s2c) = master
            .open_token(&t.sealed, ProcessType::Client, Instant::ZERO)
            .unwrap();
        master.remember_joiner(StationId(5), c2s, s2c, g.client_id);
        let (send, recv) = master.link_keys_for(StationId(5), StationId(1)).unwrap();
        master.install(StationId(5), &send, &recv);
        joiner.set_joining(true);
        let header = [0x4E, crate::transport::PROTOCOL_VERSION, 0, 9, 1, 0];
        let mut d = header.to_vec();
        d.extend_from_slice(b"hello");
        assert!(master.seal(StationId(5), &mut d, header.len()));
        let body = d[header.len()..].to_vec();
        assert_eq!(joiner.open(StationId(1), &header, &body).unwrap(), b"hello");
        assert_eq!(
            joiner.open(StationId(1), &header, &body),
            Err(OpenError::Replayed)
        );
        let mut d = header.to_vec();
        d.extend_from_slice(b"second");
        assert!(master.seal(StationId(5), &mut d, header.len()));
        let body = d[header.len()..].to_vec();
        let mut flipped = body.clone();
        flipped[10] ^= 0x20;
        assert_eq!(
            joiner.open(StationId(1), &header, &flipped),
            Err(OpenError::Unauthentic)
        );
        let mut other_header = header;
        other_header[3] = 8;
        assert_eq!(
            joiner.open(StationId(1), &other_header, &body),
            Err(OpenError::Unauthentic)
        );
        assert_eq!(
            joiner.open(StationId(1), &header, &body).unwrap(),
            b"second"
        );
        // And back.
        let mut d = header.to_vec();
        d.extend_from_slice(b"ack");
        assert!(joiner.seal(StationId(1), &mut d, header.len()));
        assert_eq!(
            master
                .open(StationId(5), &header, &d[header.len()..])
                .unwrap(),
            b"ack"
        );
        assert_eq!(
            master.open(StationId(6), &header, &d[header.len()..]),
            Err(OpenError::Unauthentic)
        );
    }
}
