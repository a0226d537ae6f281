//! A blocking HTTP/1.1 JSON client for loopback services: the control
//! API's CLI and the game side's Agones REST backend.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Errors from a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the service.
    #[error("cannot reach {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The reply was not HTTP/JSON.
    #[error("bad reply from {addr}: {message}")]
    BadReply {
        /// The address.
        addr: SocketAddr,
        /// What was wrong.
        message: String,
    },
}

/// Sends one request (with `headers`, each `Name: value`, and a JSON body)
/// and returns the status code and JSON body of the reply.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let out = raw_request(addr, req.as_bytes())?;
    let bad = |message: String| ClientError::BadReply { addr, message };
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end".into()))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line: {head:?}")))?;
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| bad(e.to_string()))?
    };
    Ok((code, v))
}

/// Sends `bytes` as they are and returns everything the server answers
/// until it closes the connection.
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
    let connect = |source| ClientError::Connect { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(connect)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(connect)?;
    s.set_write_timeout(Some(Duration::from_secs(15)))
        .map_err(connect)?;
    s.write_all(bytes).map_err(connect)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(connect)?;
    Ok(out)
}
