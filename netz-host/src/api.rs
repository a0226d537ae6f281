//! The control API: a small HTTP/1.1 JSON server on loopback, and a
//! blocking client used by the CLI and the tests.
//!
//! Endpoints (bodies and replies are JSON; errors are
//! `{"error": "..."}` with a 4xx/5xx status):
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /machine` | machine state, active build configuration |
//! | `GET /servers`, `GET /servers/{id}` | server slots |
//! | `POST /servers/{id}/start` | start a server (clears crash backoff) |
//! | `POST /servers/{id}/stop` | stop a server; refused (409) when allocated |
//! | `POST /servers/{id}/hold` `{"duration_ms"}` | keep a server running for a time |
//! | `GET /allocations`, `GET /allocations/{id}` | allocations |
//! | `POST /allocations` `{"allocation_id", "build_config"?, "payload"?, "server_id"?}` | allocate |
//! | `DELETE /allocations/{id}` | deallocate |
//! | `POST /reservations` `{"duration_ms", "server_id"?}` | reserve a server |
//! | `DELETE /reservations/{server_id}` | release a reservation |
//! | `GET /build-config`, `PUT /build-config` `{"name"}` | active build configuration |
//! | `GET /events` | the transition log |
//! | `POST /shutdown` | stop every server and exit |

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::supervisor::ApiRequest;

/// Largest request body accepted (the allocation payload limit is checked
/// separately and is smaller).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;

/// Accepts connections until the task is aborted. `open` counts the
/// connections still being answered, so that the supervisor can let the
/// last replies (the answer to `POST /shutdown`, say) go out before it exits.
pub async fn serve(
    listener: TcpListener,
    to_core: mpsc::UnboundedSender<ApiRequest>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tx = to_core.clone();
        open.fetch_add(1, Ordering::SeqCst);
        let open = open.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), connection(stream, tx)).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

async fn write_response(stream: &mut AsyncTcpStream, code: u16, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status_text(code),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn connection(mut stream: AsyncTcpStream, tx: mpsc::UnboundedSender<ApiRequest>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return write_response(
                &mut stream,
                400,
                &json!({"error": "request head too large"}),
            )
            .await;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return write_response(
            &mut stream,
            400,
            &json!({"error": "malformed request line"}),
        )
        .await;
    };
    if !version.starts_with("HTTP/1.") {
        return write_response(
            &mut stream,
            400,
            &json!({"error": "only HTTP/1.x is supported"}),
        )
        .await;
    }
    let mut content_length = 0usize;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                match v.trim().parse() {
                    Ok(n) => content_length = n,
                    Err(_) => {
                        return write_response(
                            &mut stream,
                            400,
                            &json!({"error": "bad Content-Length"}),
                        )
                        .await
                    }
                }
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                return write_response(
                    &mut stream,
                    411,
                    &json!({"error": "chunked bodies are not supported; send Content-Length"}),
                )
                .await;
            }
        }
    }
    if content_length > MAX_BODY {
        return write_response(
            &mut stream,
            413,
            &json!({"error": format!("request body of {content_length} bytes is over the {MAX_BODY} byte limit")}),
        )
        .await;
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(content_length);
    let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return write_response(
                    &mut stream,
                    400,
                    &json!({"error": format!("body is not valid JSON: {e}")}),
                )
                .await
            }
        }
    };
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let (reply_tx, reply_rx) = oneshot::channel();
    let req = ApiRequest {
        method: method.to_ascii_uppercase(),
        path,
        body,
        reply: reply_tx,
    };
    if tx.send(req).is_err() {
        return write_response(
            &mut stream,
            503,
            &json!({"error": "the supervisor is stopping"}),
        )
        .await;
    }
    match reply_rx.await {
        Ok((code, v)) => write_response(&mut stream, code, &v).await,
        Err(_) => {
            write_response(
                &mut stream,
                503,
                &json!({"error": "the supervisor is stopping"}),
            )
            .await
        }
    }
}

/// Errors from the API client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the supervisor.
    #[error("cannot reach the netz-host control API at {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The reply was not HTTP/JSON.
    #[error("bad reply from the control API: {0}")]
    BadReply(String),
}

/// Sends one request and returns the status code and JSON body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    let connect = |source| ClientError::Connect { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(connect)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(connect)?;
    s.set_write_timeout(Some(Duration::from_secs(15)))
        .map_err(connect)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(connect)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(connect)?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ClientError::BadReply("no header end".into()))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ClientError::BadReply(format!("bad status line: {head:?}")))?;
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| ClientError::BadReply(e.to_string()))?
    };
    Ok((code, v))
}
