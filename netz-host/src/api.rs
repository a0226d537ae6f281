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
//! | `POST /allocations` `{"allocation_id", "build_config"?, "payload"?, "server_id"?, "metadata"?: {"labels", "annotations"}}` | allocate |
//! | `DELETE /allocations/{id}` | deallocate |
//! | `POST /reservations` `{"duration_ms", "server_id"?}` | reserve a server |
//! | `DELETE /reservations/{server_id}` | release a reservation |
//! | `GET /build-config`, `PUT /build-config` `{"name"}` | active build configuration (restarts idle servers at once; refused, 409, during a rolling upgrade) |
//! | `POST /upgrade` `{"build_config", "max_draining"?, "max_surge"?, "drain_timeout_ms"?, "ready_timeout_ms"?}` | start a rolling upgrade (202); 409 while one is under way |
//! | `GET /upgrade` | the running or last rolling upgrade: phase, builds, counts, each server, errors |
//! | `GET /events` | the transition log |
//! | `POST /shutdown` | stop every server and exit |
//!
//! Every request carries `Authorization: Bearer <token>`; the token is
//! generated at start into `<work_dir>/api-token` (mode 0600) and into
//! [`crate::files::token_file_for`] of the listening address, where the CLI
//! of the same user finds it. The `Host` header must name the loopback
//! address the API listens on, and a request with an `Origin` header (a
//! browser's) is refused, so neither a web page nor DNS rebinding reaches
//! the API. Path segments are percent-decoded; allocation ids are limited
//! to `A-Z a-z 0-9 - _ . :` (see [`crate::supervisor::validate_allocation_id`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};

use crate::supervisor::{
    AllocateRequest, AllocationView, Event, Handle, HostError, MachineView, OldServerState,
    ServerView, Supervisor, UpgradeRequest, UpgradeView,
};

/// Largest request body accepted (the allocation payload limit is checked
/// separately and is smaller).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take, from accept to the reply.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may use the API.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bearer token every request must carry.
    pub token: String,
    /// The address the API listens on (the `Host` header must name it).
    pub listen: SocketAddr,
    /// Connections answered at the same time.
    pub max_connections: usize,
}

/// Accepts connections until the task is aborted. `open` counts the
/// connections still being answered, so that the supervisor can let the
/// last replies (the answer to `POST /shutdown`, say) go out before it exits.
pub async fn serve(listener: TcpListener, handle: Handle, access: Access, open: Arc<AtomicUsize>) {
    let access = Arc::new(access);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if open.load(Ordering::SeqCst) >= access.max_connections {
            // Answered at once, without reading: the slot is not taken.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    write_response(
                        &mut stream,
                        503,
                        &json!({"error": "too many connections to the control API"}),
                    ),
                )
                .await;
            });
            continue;
        }
        let handle = handle.clone();
        let access = access.clone();
        open.fetch_add(1, Ordering::SeqCst);
        let open = open.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(CONNECTION_TIMEOUT, connection(stream, handle, &access)).await;
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
        401 => "Unauthorized",
        403 => "Forbidden",
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
    let auth = if code == 401 {
        "WWW-Authenticate: Bearer\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        status_text(code),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A refusal: the status and the message of `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// What was wrong.
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

impl From<HostError> for Refusal {
    fn from(e: HostError) -> Refusal {
        let status = match e {
            HostError::BadRequest(_) => 400,
            HostError::NotFound(_) => 404,
            HostError::Conflict(_) | HostError::AlreadyExists(_) | HostError::OutOfRange(_) => 409,
            HostError::TooLarge(_) => 413,
            HostError::Unavailable(_) => 503,
        };
        refuse(status, e.to_string())
    }
}

/// The parts of a request head the API uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, upper case.
    pub method: String,
    /// The request target as sent (path and maybe a query string).
    pub target: String,
    /// `Content-Length` (0 when absent).
    pub content_length: usize,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

/// Parses a request head (without the blank line). A second
/// `Content-Length`, `Host` or `Authorization` is refused whatever its
/// value, as is any `Transfer-Encoding`.
pub fn parse_head(head: &str) -> Result<RequestHead, Refusal> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(refuse(400, "only HTTP/1.x is supported"));
    }
    let mut h = RequestHead {
        method: method.to_ascii_uppercase(),
        target: target.to_owned(),
        content_length: 0,
        host: None,
        origin: None,
        authorization: None,
    };
    let mut seen_length = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(refuse(400, format!("malformed header line {line:?}")));
        };
        let (k, v) = (k.trim(), v.trim());
        let once = |slot: &mut Option<String>, name: &str| {
            if slot.is_some() {
                return Err(refuse(400, format!("more than one {name} header")));
            }
            *slot = Some(v.to_owned());
            Ok(())
        };
        if k.eq_ignore_ascii_case("content-length") {
            if seen_length {
                return Err(refuse(
                    400,
                    "more than one Content-Length header (duplicate or conflicting lengths are refused)",
                ));
            }
            seen_length = true;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse(400, "bad Content-Length"));
            }
            h.content_length = v.parse().map_err(|_| refuse(400, "bad Content-Length"))?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err(refuse(
                411,
                "chunked bodies are not supported; send Content-Length",
            ));
        } else if k.eq_ignore_ascii_case("host") {
            once(&mut h.host, "Host")?;
        } else if k.eq_ignore_ascii_case("origin") {
            once(&mut h.origin, "Origin")?;
        } else if k.eq_ignore_ascii_case("authorization") {
            once(&mut h.authorization, "Authorization")?;
        }
    }
    if h.content_length > MAX_BODY {
        return Err(refuse(
            413,
            format!(
                "request body of {} bytes is over the {MAX_BODY} byte limit",
                h.content_length
            ),
        ));
    }
    Ok(h)
}

/// Whether a `Host` header names the API itself: the listening address,
/// or `localhost` with its port.
fn host_allowed(host: &str, listen: SocketAddr) -> bool {
    let port = listen.port();
    let named: Vec<String> = vec![
        listen.to_string(),
        format!("localhost:{port}"),
        match listen {
            SocketAddr::V4(_) => format!("127.0.0.1:{port}"),
            SocketAddr::V6(_) => format!("[::1]:{port}"),
        },
    ];
    named.iter().any(|n| n.eq_ignore_ascii_case(host))
}

/// Checks who sent the request: the Host header, no Origin, the token.
pub fn check_access(h: &RequestHead, access: &Access) -> Result<(), Refusal> {
    match &h.host {
        Some(host) if host_allowed(host, access.listen) => {}
        Some(host) => {
            return Err(refuse(
                403,
                format!("Host {host:?} is not this API's address"),
            ))
        }
        None => return Err(refuse(400, "a Host header is required")),
    }
    if let Some(o) = &h.origin {
        return Err(refuse(
            403,
            format!("requests from web pages (Origin {o:?}) are refused"),
        ));
    }
    let given = h
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), access.token.as_bytes()) => Ok(()),
        Some(_) => Err(refuse(401, "wrong API token")),
        None => Err(refuse(
            401,
            "missing API token: send Authorization: Bearer <token of <work_dir>/api-token>",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn connection(mut stream: AsyncTcpStream, handle: Handle, access: &Access) {
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
    let parsed = parse_head(&head).and_then(|h| check_access(&h, access).map(|_| h));
    let h = match parsed {
        Ok(h) => h,
        Err(r) => return write_response(&mut stream, r.status, &json!({"error": r.message})).await,
    };
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < h.content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(h.content_length);
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
    let (code, reply) = match route(&h.method, &h.target) {
        Err(r) => (r.status, json!({ "error": r.message })),
        Ok(route) => match handle.call(move |s| execute(s, route, &body)).await {
            Some(r) => r,
            None => (503, json!({"error": "the supervisor is stopping"})),
        },
    };
    write_response(&mut stream, code, &reply).await;
}

// ----- routing -----------------------------------------------------------------

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /machine`.
    Machine,
    /// `GET /servers`.
    Servers,
    /// `GET /servers/{id}`.
    Server(u64),
    /// `POST /servers/{id}/start`.
    Start(u64),
    /// `POST /servers/{id}/stop`.
    Stop(u64),
    /// `POST /servers/{id}/hold`.
    Hold(u64),
    /// `GET /allocations`.
    Allocations,
    /// `GET /allocations/{id}`.
    Allocation(String),
    /// `POST /allocations`.
    Allocate,
    /// `DELETE /allocations/{id}`.
    Deallocate(String),
    /// `POST /reservations`.
    Reserve,
    /// `DELETE /reservations/{server_id}`.
    Unreserve(u64),
    /// `GET /build-config`.
    GetBuildConfig,
    /// `PUT /build-config`.
    SetBuildConfig,
    /// `GET /events`.
    Events,
    /// `POST /upgrade`.
    StartUpgrade,
    /// `GET /upgrade`.
    GetUpgrade,
    /// `POST /shutdown`.
    Shutdown,
}

/// Decodes `%XX` escapes of one path segment; malformed escapes and
/// non-UTF-8 results are refused.
pub fn percent_decode(segment: &str) -> Result<String, Refusal> {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| refuse(400, format!("bad percent escape in {segment:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| refuse(400, format!("{segment:?} is not UTF-8")))
}

/// Percent-encodes one path segment (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn server_id(s: &str) -> Result<u64, Refusal> {
    s.parse()
        .map_err(|_| refuse(400, format!("server id {s:?} is not a number")))
}

/// Maps a method and request target onto a [`Route`]. Query strings are
/// refused (no endpoint takes one), segments are percent-decoded.
pub fn route(method: &str, target: &str) -> Result<Route, Refusal> {
    if target.contains('?') || target.contains('#') {
        return Err(refuse(
            400,
            format!("no endpoint takes a query string ({target:?}); percent-encode ? and # in ids"),
        ));
    }
    if !target.starts_with('/') {
        return Err(refuse(
            400,
            format!("request target {target:?} is not a path"),
        ));
    }
    let parts = target
        .split('/')
        .filter(|p| !p.is_empty())
        .map(percent_decode)
        .collect::<Result<Vec<String>, Refusal>>()?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(match (method, parts.as_slice()) {
        ("GET", ["machine"]) | ("GET", []) => Route::Machine,
        ("GET", ["servers"]) => Route::Servers,
        ("GET", ["servers", id]) => Route::Server(server_id(id)?),
        ("POST", ["servers", id, "stop"]) => Route::Stop(server_id(id)?),
        ("POST", ["servers", id, "start"]) => Route::Start(server_id(id)?),
        ("POST", ["servers", id, "hold"]) => Route::Hold(server_id(id)?),
        ("GET", ["allocations"]) => Route::Allocations,
        ("GET", ["allocations", id]) => Route::Allocation((*id).to_owned()),
        ("POST", ["allocations"]) => Route::Allocate,
        ("DELETE", ["allocations", id]) => Route::Deallocate((*id).to_owned()),
        ("POST", ["reservations"]) => Route::Reserve,
        ("DELETE", ["reservations", id]) => Route::Unreserve(server_id(id)?),
        ("GET", ["build-config"]) => Route::GetBuildConfig,
        ("PUT", ["build-config"]) | ("POST", ["build-config"]) => Route::SetBuildConfig,
        ("GET", ["events"]) => Route::Events,
        ("POST", ["upgrade"]) => Route::StartUpgrade,
        ("GET", ["upgrade"]) => Route::GetUpgrade,
        ("POST", ["shutdown"]) => Route::Shutdown,
        (
            _,
            ["machine" | "servers" | "allocations" | "reservations" | "build-config" | "events"
            | "shutdown" | "upgrade", ..],
        ) => {
            return Err(refuse(
                405,
                format!("method {method} not allowed on {target}"),
            ))
        }
        _ => return Err(refuse(404, format!("no such endpoint: {method} {target}"))),
    })
}

// ----- request bodies ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateBody {
    allocation_id: String,
    #[serde(default)]
    build_config: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    server_id: Option<u64>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// Agones' allocation metadata: what the allocated GameServer gets.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetadataBody {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    duration_ms: u64,
    #[serde(default)]
    server_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationBody {
    duration_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildConfigBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeBody {
    build_config: String,
    #[serde(default, alias = "max_unavailable")]
    max_draining: Option<usize>,
    #[serde(default)]
    max_surge: Option<usize>,
    #[serde(default)]
    drain_timeout_ms: Option<u64>,
    #[serde(default)]
    ready_timeout_ms: Option<u64>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, Refusal> {
    let b = if body.is_null() {
        json!({})
    } else {
        body.clone()
    };
    serde_json::from_value(b).map_err(|e| refuse(400, format!("bad request body: {e}")))
}

/// Runs a route on the supervisor and renders the reply.
pub fn execute(s: &mut Supervisor, route: Route, body: &Value) -> (u16, Value) {
    let r: Result<(u16, Value), Refusal> = (|| {
        Ok(match route {
            Route::Machine => (200, machine_json(&s.machine())),
            Route::Servers => (
                200,
                Value::Array(s.servers().iter().map(server_json).collect()),
            ),
            Route::Server(id) => (200, server_json(&s.server(id)?)),
            Route::Stop(id) => (202, server_json(&s.stop_server(id)?)),
            Route::Start(id) => (202, server_json(&s.start_server(id)?)),
            Route::Hold(id) => {
                let b: DurationBody = parse_body(body)?;
                (200, server_json(&s.hold(id, b.duration_ms)?))
            }
            Route::Allocations => (
                200,
                Value::Array(s.allocations().iter().map(allocation_json).collect()),
            ),
            Route::Allocation(id) => (200, allocation_json(&s.allocation(&id)?)),
            Route::Allocate => {
                let b: AllocateBody = parse_body(body)?;
                let meta = b.metadata.unwrap_or_default();
                let a = s.allocate(AllocateRequest {
                    allocation_id: b.allocation_id,
                    build_config: b.build_config,
                    payload: b.payload,
                    server_id: b.server_id,
                    labels: meta.labels,
                    annotations: meta.annotations,
                })?;
                (201, allocation_json(&a))
            }
            Route::Deallocate(id) => {
                let view = s.deallocate(&id)?;
                (
                    200,
                    json!({ "deallocated": view.as_ref().map(allocation_json) }),
                )
            }
            Route::Reserve => {
                let b: ReserveBody = parse_body(body)?;
                (200, server_json(&s.reserve(b.duration_ms, b.server_id)?))
            }
            Route::Unreserve(id) => (200, server_json(&s.unreserve(id)?)),
            Route::GetBuildConfig => (200, json!({ "name": s.active_build_config() })),
            Route::SetBuildConfig => {
                let b: BuildConfigBody = parse_body(body)?;
                s.set_build_config(&b.name)?;
                (200, json!({ "name": s.active_build_config() }))
            }
            Route::Events => (
                200,
                Value::Array(s.events().iter().map(event_json).collect()),
            ),
            Route::StartUpgrade => {
                let b: UpgradeBody = parse_body(body)?;
                let v = s.start_upgrade(UpgradeRequest {
                    build_config: b.build_config,
                    max_draining: b.max_draining,
                    max_surge: b.max_surge,
                    drain_timeout_ms: b.drain_timeout_ms,
                    ready_timeout_ms: b.ready_timeout_ms,
                })?;
                (202, upgrade_json(&v))
            }
            Route::GetUpgrade => (200, upgrade_json(&s.upgrade_status()?)),
            Route::Shutdown => {
                s.shutdown("shutdown requested through the API");
                (202, json!({ "shutting_down": true }))
            }
        })
    })();
    r.unwrap_or_else(|e| (e.status, json!({ "error": e.message })))
}

// ----- JSON views ----------------------------------------------------------------

/// A server slot as JSON.
pub fn server_json(v: &ServerView) -> Value {
    json!({
        "server_id": v.server_id,
        "slot": v.slot,
        "state": v.state.as_str(),
        "process": v.process.as_str(),
        "pid": v.pid,
        "build_config": v.build_config,
        "ip": v.ip,
        "port": v.port,
        "query_port": v.query_port,
        "query_type": v.query_type.map(|q| q.as_str()),
        "allocation_id": v.allocation_id,
        "reserved_for_ms": v.reserved_for_ms,
        "held_for_ms": v.held_for_ms,
        "backoff": v.backoff,
        "recent_crashes": v.recent_crashes,
        "starts": v.starts,
        "last_exit": v.last_exit,
        "memory_kb": v.memory_kb,
        "dir": v.dir.to_string_lossy(),
        "players": v.players,
        "cluster": v.cluster,
        "joined": v.joined,
    })
}

/// An allocation as JSON.
pub fn allocation_json(a: &AllocationView) -> Value {
    json!({
        "allocation_id": a.allocation_id,
        "server_id": a.server_id,
        "build_config": a.build_config,
        "ip": a.ip,
        "port": a.port,
        "query_port": a.query_port,
        "payload": a.payload,
        "allocated_at_ms": a.allocated_at_ms,
        "state": a.state.as_str(),
    })
}

/// The machine as JSON.
pub fn machine_json(m: &MachineView) -> Value {
    json!({
        "state": if m.running { "running" } else { "stopped" },
        "shutting_down": m.shutting_down,
        "fleet_id": m.fleet_id,
        "machine_id": m.machine_id,
        "slots": m.slots,
        "active_build_config": m.active_build_config,
        "start_on_provision": m.start_on_provision,
        "uptime_ms": m.uptime_ms,
    })
}

/// An event as JSON.
pub fn event_json(e: &Event) -> Value {
    json!({
        "seq": e.seq,
        "time_ms": e.time_ms,
        "server_id": e.server_id,
        "kind": e.kind,
        "message": e.message,
    })
}

/// A rolling upgrade as JSON.
pub fn upgrade_json(u: &UpgradeView) -> Value {
    let servers: Vec<Value> = u
        .servers
        .iter()
        .map(|s| {
            json!({
                "server_id": s.server_id,
                "build_config": s.build_config,
                "state": s.state.as_str(),
                "pid": s.pid,
                "cluster": s.cluster,
                "drain_started_at_ms": s.drain_started_at_ms,
                "drain_deadline_ms": s.drain_deadline_ms,
                "exit": s.exit,
                "replacement": s.replacement.as_ref().map(|r| json!({
                    "server_id": r.server_id,
                    "pid": r.pid,
                    "state": r.state.as_str(),
                    "joined_through": r.joined_through,
                    "started_at_ms": r.started_at_ms,
                    "joined_at_ms": r.joined_at_ms,
                })),
            })
        })
        .collect();
    let c = &u.counts;
    json!({
        "id": u.id,
        "phase": u.phase.as_str(),
        "from": u.from,
        "to": u.to,
        "max_draining": u.max_draining,
        "max_surge": u.max_surge,
        "drain_timeout_ms": u.drain_timeout_ms,
        "ready_timeout_ms": u.ready_timeout_ms,
        "started_at_ms": u.started_at_ms,
        "finished_at_ms": u.finished_at_ms,
        "deadline_ms": u
            .servers
            .iter()
            .filter(|s| s.state == OldServerState::Draining)
            .filter_map(|s| s.drain_deadline_ms)
            .min(),
        "counts": {
            "total": c.total,
            "started": c.started,
            "joined": c.joined,
            "draining": c.draining,
            "done": c.done,
            "failed": c.failed,
        },
        "servers": servers,
        "errors": u.errors,
    })
}

// ----- client ----------------------------------------------------------------------

pub use crate::http_client::{raw_request, ClientError};

/// The token of the supervisor listening on `addr`, as it left it for the
/// same user (see [`crate::files::token_file_for`]).
pub fn token_for(addr: SocketAddr) -> Option<String> {
    read_token(&crate::files::token_file_for(addr))
}

/// Reads a token file (trimmed); `None` when it cannot be read.
pub fn read_token(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Sends one request and returns the status code and JSON body. The token
/// is the one [`token_for`] finds for `addr`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    request_with_token(addr, token_for(addr).as_deref(), method, path, body)
}

/// Like [`request`] with an explicit token (`None`: send none).
pub fn request_with_token(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    let headers: Vec<String> = token
        .map(|t| format!("Authorization: Bearer {t}"))
        .into_iter()
        .collect();
    crate::http_client::request(addr, method, path, &headers, body)
}
