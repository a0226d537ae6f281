//! A text form of [`ConnectToken`] so that a token issued by the session's
//! authority can be handed to the monitor in a file or an argument.
//!
//! The form is `netz-token:1:<sealed>:<client_to_server>:<server_to_client>:<expires_at_ms>`
//! with the three byte strings in lowercase hex.

use netz_core::crypto::{ConnectToken, Key};

const PREFIX: &str = "netz-token:1:";

/// Writes `token` in its text form.
pub fn encode_token(token: &ConnectToken) -> String {
    format!(
        "{PREFIX}{}:{}:{}:{}",
        to_hex(&token.sealed),
        to_hex(&token.client_to_server),
        to_hex(&token.server_to_client),
        token.expires_at_ms
    )
}

/// Reads a token's text form (surrounding white space is ignored).
pub fn decode_token(text: &str) -> Result<ConnectToken, String> {
    let rest = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("a token starts with {PREFIX:?}"))?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [sealed, c2s, s2c, expires] = parts[..] else {
        return Err(format!(
            "a token has 4 parts after the prefix, this one {}",
            parts.len()
        ));
    };
    let key = |s: &str, what: &str| -> Result<Key, String> {
        from_hex(s)?
            .try_into()
            .map_err(|_| format!("the {what} key is not 32 bytes"))
    };
    Ok(ConnectToken {
        sealed: from_hex(sealed)?,
        client_to_server: key(c2s, "client-to-server")?,
        server_to_client: key(s2c, "server-to-client")?,
        expires_at_ms: expires
            .parse()
            .map_err(|_| format!("bad expiry {expires:?}"))?,
    })
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("hex of odd length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netz_core::crypto::{TokenGrant, TokenIssuer};
    use netz_core::ProcessType;

    #[test]
    fn token_text_round_trips_and_bad_text_is_refused() {
        let t = TokenIssuer::new(&[9; 32], 7).issue(
            &TokenGrant {
                client_id: 3,
                process_type: ProcessType::Tool,
                expires_at_ms: 123_456,
                session: 0,
                address: None,
            },
            [5; 24],
        );
        let text = encode_token(&t);
        assert_eq!(decode_token(&format!("  {text}\n")).unwrap(), t);
        assert!(decode_token("nope").is_err());
        assert!(decode_token(&text.replace(":123456", ":x")).is_err());
        assert!(decode_token(&format!("{PREFIX}00:11:22")).is_err());
        assert!(decode_token(&format!(
            "{PREFIX}0:{}:{}:1",
            "a".repeat(64),
            "b".repeat(64)
        ))
        .is_err());
        assert!(decode_token(&format!(
            "{PREFIX}00:{}:{}:1",
            "a".repeat(62),
            "b".repeat(64)
        ))
        .is_err());
    }
}
