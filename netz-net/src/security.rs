//! Security in a few lines: keys and connect tokens drawn from the
//! operating system's random source, on the Unix-time token clock the
//! driver uses.
//!
//! The game's backend (or the process that creates the session) holds the
//! token key and issues one token per station allowed to join; stations
//! turn security on with [`crate::NetConfig::secure_authority`] (they admit
//! joiners) or [`crate::NetConfig::secure_joiner`] (they join with a
//! token). Tokens and keys travel as bytes or text
//! ([`netz_core::crypto::ConnectToken::to_text`], [`netz_core::key_to_text`]).
//!
//! ```
//! use netz_core::ProcessType;
//! use netz_net::security::{new_token_key, TokenIssuerExt};
//! use netz_net::NetConfig;
//! use netz_core::crypto::TokenIssuer;
//! use std::time::Duration;
//!
//! const GAME: u64 = 0x4e45_545a;
//! let key = new_token_key().unwrap();
//! let issuer = TokenIssuer::new(&key, GAME);
//! let token = issuer
//!     .issue_for(7, ProcessType::Client, Duration::from_secs(60))
//!     .unwrap();
//! // The token reaches the client as text, over the backend's own channel.
//! let text = token.to_text();
//! let server = NetConfig::new(ProcessType::Server, "server").secure_authority(key, GAME);
//! let client = NetConfig::new(ProcessType::Client, "alice")
//!     .secure_joiner(text.parse().unwrap(), GAME);
//! assert!(server.station.security.is_some() && client.station.security.is_some());
//! ```

use crate::error::NetError;
use netz_core::crypto::{ConnectToken, Key, TokenGrant, TokenIssuer};
use netz_core::ProcessType;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], NetError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| NetError::Random(e.to_string()))?;
    Ok(out)
}

/// A fresh token key from the operating system's random source.
pub fn new_token_key() -> Result<Key, NetError> {
    random_bytes::<32>()
}

/// The token clock: milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// [`TokenIssuer`] helpers that draw the token's randomness from the
/// operating system and date it on the Unix-time token clock.
pub trait TokenIssuerExt {
    /// Issues a token for player or process `client_id`, joining as
    /// `process_type`, valid for `valid_for` from now.
    fn issue_for(
        &self,
        client_id: u64,
        process_type: ProcessType,
        valid_for: Duration,
    ) -> Result<ConnectToken, NetError>;
}

impl TokenIssuerExt for TokenIssuer {
    fn issue_for(
        &self,
        client_id: u64,
        process_type: ProcessType,
        valid_for: Duration,
    ) -> Result<ConnectToken, NetError> {
        let valid_ms = u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX);
        let grant = TokenGrant {
            client_id,
            process_type,
            expires_at_ms: unix_ms().saturating_add(valid_ms),
            session: 0,
            address: None,
        };
        Ok(self.issue(&grant, random_bytes::<24>()?))
    }
}
