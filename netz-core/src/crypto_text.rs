//! Bytes and printable text forms of connect tokens and keys: methods of
//! [`ConnectToken`] and functions re-exported at the crate root.

use crate::crypto::{ConnectToken, Key, SEALED_TOKEN_LEN};

/// Why the bytes or text of a token or key could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// The text does not start with the expected prefix (`netz-token-1:` or `netz-key:`).
    #[error("the text does not start with `{0}`")]
    Prefix(&'static str),
    /// A character is not a hexadecimal digit, or the count is odd.
    #[error("the text is not hexadecimal after its prefix")]
    NotHex,
    /// The bytes have the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// What was read.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        got: usize,
    },
}

/// The text form's prefix of a connect token.
const TOKEN_TEXT_PREFIX: &str = "netz-token-1:";
/// The text form's prefix of a key.
const KEY_TEXT_PREFIX: &str = "netz-key:";
/// Length of [`ConnectToken::to_bytes`].
pub const CONNECT_TOKEN_LEN: usize = SEALED_TOKEN_LEN + 32 + 32 + 8;

fn to_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

fn from_hex(text: &str) -> Result<Vec<u8>, TokenFormatError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(TokenFormatError::NotHex),
    };
    let bytes = text.trim().as_bytes();
    if bytes.len() % 2 != 0 {
        return Err(TokenFormatError::NotHex);
    }
    bytes
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

impl ConnectToken {
    /// The token as bytes (sealed part, the two keys, the expiry), to hand
    /// to its holder; [`ConnectToken::from_bytes`] reads them back. They
    /// hold the holder's keys in clear: deliver them over a secure channel.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CONNECT_TOKEN_LEN);
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(&self.client_to_server);
        out.extend_from_slice(&self.server_to_client);
        out.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        out
    }

    /// Reads [`ConnectToken::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ConnectToken, TokenFormatError> {
        if bytes.len() != CONNECT_TOKEN_LEN {
            return Err(TokenFormatError::Length {
                what: "a connect token",
                expected: CONNECT_TOKEN_LEN,
                got: bytes.len(),
            });
        }
        let (sealed, rest) = bytes.split_at(SEALED_TOKEN_LEN);
        let mut client_to_server = [0u8; 32];
        client_to_server.copy_from_slice(&rest[..32]);
        let mut server_to_client = [0u8; 32];
        server_to_client.copy_from_slice(&rest[32..64]);
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&rest[64..72]);
        Ok(ConnectToken {
            sealed: sealed.to_vec(),
            client_to_server,
            server_to_client,
            expires_at_ms: u64::from_le_bytes(expiry),
        })
    }

    /// The token as printable text (`netz-token-1:` and hexadecimal), for a
    /// command line, an environment variable or a JSON field;
    /// [`ConnectToken::from_text`] (or `str::parse`) reads it back. Like
    /// the bytes, it holds the holder's keys.
    pub fn to_text(&self) -> String {
        let bytes = self.to_bytes();
        let mut out = String::with_capacity(TOKEN_TEXT_PREFIX.len() + 2 * bytes.len());
        out.push_str(TOKEN_TEXT_PREFIX);
        to_hex(&bytes, &mut out);
        out
    }

    /// Reads [`ConnectToken::to_text`] (surrounding white space is ignored).
    pub fn from_text(text: &str) -> Result<ConnectToken, TokenFormatError> {
        let hex = text
            .trim()
            .strip_prefix(TOKEN_TEXT_PREFIX)
            .ok_or(TokenFormatError::Prefix(TOKEN_TEXT_PREFIX))?;
        ConnectToken::from_bytes(&from_hex(hex)?)
    }
}

impl std::str::FromStr for ConnectToken {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectToken::from_text(s)
    }
}

/// A key as printable text (`netz-key:` and hexadecimal), e.g. to give the
/// token key to a server process; [`key_from_text`] reads it back.
pub fn key_to_text(key: &Key) -> String {
    let mut out = String::with_capacity(KEY_TEXT_PREFIX.len() + 64);
    out.push_str(KEY_TEXT_PREFIX);
    to_hex(key, &mut out);
    out
}

/// Reads [`key_to_text`] (surrounding white space is ignored).
pub fn key_from_text(text: &str) -> Result<Key, TokenFormatError> {
    let hex = text
        .trim()
        .strip_prefix(KEY_TEXT_PREFIX)
        .ok_or(TokenFormatError::Prefix(KEY_TEXT_PREFIX))?;
    key_from_bytes(&from_hex(hex)?)
}

/// A key from exactly 32 bytes.
pub fn key_from_bytes(bytes: &[u8]) -> Result<Key, TokenFormatError> {
    Key::try_from(bytes).map_err(|_| TokenFormatError::Length {
        what: "a key",
        expected: 32,
        got: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{TokenGrant, TokenIssuer};
    use crate::ProcessType;

    fn token() -> ConnectToken {
        let issuer = TokenIssuer::new(&[7; 32], 42);
        let grant = TokenGrant {
            client_id: 9,
            process_type: ProcessType::Client,
            expires_at_ms: 123_456,
            session: 0,
            address: None,
        };
        issuer.issue(&grant, [3; 24])
    }

    #[test]
    fn tokens_and_keys_round_trip_through_bytes_and_text() {
        let t = token();
        assert_eq!(t.to_bytes().len(), CONNECT_TOKEN_LEN);
        assert_eq!(ConnectToken::from_bytes(&t.to_bytes()), Ok(t.clone()));
        let text = t.to_text();
        assert!(text.starts_with("netz-token-1:"));
        assert!(text.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(format!(" {text}\n").parse::<ConnectToken>(), Ok(t.clone()));
        // The token read back still opens under the issuer's key.
        let issuer = TokenIssuer::new(&[7; 32], 42);
        let back = ConnectToken::from_text(&text).unwrap();
        assert_eq!(issuer.open(&back.sealed, 0).unwrap().0.client_id, 9);
        let key = [0xA5; 32];
        assert_eq!(key_from_text(&key_to_text(&key)), Ok(key));
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        let text = token().to_text();
        assert_eq!(
            ConnectToken::from_text(&text[1..]),
            Err(TokenFormatError::Prefix("netz-token-1:"))
        );
        assert_eq!(
            ConnectToken::from_text(&text[..text.len() - 1]),
            Err(TokenFormatError::NotHex)
        );
        assert_eq!(
            ConnectToken::from_text(&text.replace('a', "g")),
            Err(TokenFormatError::NotHex)
        );
        assert!(matches!(
            ConnectToken::from_text(&text[..text.len() - 2]),
            Err(TokenFormatError::Length { got, .. }) if got == CONNECT_TOKEN_LEN - 1
        ));
        assert_eq!(
            key_from_text("netz-key:abcd"),
            Err(TokenFormatError::Length {
                what: "a key",
                expected: 32,
                got: 2
            })
        );
        assert_eq!(
            key_from_text("netz-token-1:00"),
            Err(TokenFormatError::Prefix("netz-key:"))
        );
    }
}
