//! An Agones-compatible SDK server per slot: the gRPC services
//! `agones.dev.sdk.SDK` and `agones.dev.sdk.beta.SDK` (Counters and Lists),
//! and the REST gateway paths of Agones' SDK sidecar, on loopback ports
//! the game server finds in `AGONES_SDK_GRPC_PORT` / `AGONES_SDK_HTTP_PORT`.
//!
//! Each call maps onto the supervisor's lifecycle: `Ready` (ready for an
//! allocation; while allocated, the allocation ends and the process stays),
//! `Health` (a second health source besides the query protocol),
//! `Allocate` (self-allocation), `Reserve` (0 = until allocated),
//! `Shutdown` (the exit-0 path: deallocated, slot ready), labels and
//! annotations (prefixed `agones.dev/sdk-`), `GetGameServer` /
//! `WatchGameServer` (states named as Agones names them, the allocation's
//! metadata among labels and annotations), the predefined `players`
//! counter and list, and the alpha player tracking
//! (`agones.dev.sdk.alpha.SDK`, kept in that list).

// tonic's generated traits return `Result<_, tonic::Status>`; its size is
// not ours to choose.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::api::{parse_head, percent_decode};
use crate::error::HostError;
use crate::gameserver::{Counter, List, PLAYERS};
use crate::supervisor::{GameServerView, Handle, Supervisor};

/// The generated gRPC types.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `agones.dev.sdk`.
    pub mod sdk {
        tonic::include_proto!("agones.dev.sdk");
    }
    /// `agones.dev.sdk.alpha`.
    pub mod alpha {
        tonic::include_proto!("agones.dev.sdk.alpha");
    }
    /// `agones.dev.sdk.beta`.
    pub mod beta {
        tonic::include_proto!("agones.dev.sdk.beta");
    }
}

use proto::sdk::game_server::{spec, status, ObjectMeta, Spec, Status as GsStatus};
use proto::sdk::{Empty, GameServer, KeyValue};

/// How often `WatchGameServer` looks for a change.
const WATCH_POLL: Duration = Duration::from_millis(50);

/// The SDK of one slot.
#[derive(Clone, Debug)]
pub struct SlotSdk {
    handle: Handle,
    slot: usize,
}

fn to_status(e: HostError) -> Status {
    match e {
        HostError::BadRequest(m) => Status::invalid_argument(m),
        HostError::NotFound(m) => Status::not_found(m),
        HostError::Conflict(m) => Status::failed_precondition(m),
        HostError::AlreadyExists(m) => Status::already_exists(m),
        HostError::OutOfRange(m) => Status::out_of_range(m),
        HostError::TooLarge(m) => Status::resource_exhausted(m),
        HostError::Unavailable(m) => Status::unavailable(m),
    }
}

fn stopping() -> HostError {
    HostError::Unavailable("the supervisor is stopping".into())
}

impl SlotSdk {
    /// The SDK of slot `slot`.
    pub fn new(handle: Handle, slot: usize) -> SlotSdk {
        SlotSdk { handle, slot }
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Supervisor, usize) -> Result<R, HostError> + Send + 'static,
    ) -> Result<R, HostError> {
        let i = self.slot;
        self.handle
            .call(move |s| f(s, i))
            .await
            .unwrap_or_else(|| Err(stopping()))
    }

    async fn game_server(&self) -> Result<GameServer, HostError> {
        self.call(|s, i| {
            s.game_server(i)
                .map(|g| to_proto(&g))
                .ok_or_else(|| HostError::NotFound(format!("no slot {i}")))
        })
        .await
    }

    /// A channel of the GameServer: the current one, then each change,
    /// until the receiver goes away or the supervisor stops.
    fn watch(&self) -> tokio::sync::mpsc::Receiver<Result<GameServer, HostError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let gs = me.game_server().await;
                let failed = gs.is_err();
                if last.as_ref() != Some(&gs) {
                    if tx.send(gs.clone()).await.is_err() {
                        return;
                    }
                    last = Some(gs);
                }
                if failed {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        rx
    }
}

/// Agones' `GameServer` message for a slot.
pub fn to_proto(g: &GameServerView) -> GameServer {
    let map = |m: &std::collections::BTreeMap<String, String>| -> HashMap<String, String> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let players = g.lists.get(PLAYERS);
    let mut addresses = vec![status::Address {
        r#type: "InternalIP".into(),
        address: g.address.clone(),
    }];
    if !g.ipv6.is_empty() {
        addresses.push(status::Address {
            r#type: "InternalIP".into(),
            address: g.ipv6.clone(),
        });
    }
    GameServer {
        object_meta: Some(ObjectMeta {
            name: g.name.clone(),
            namespace: g.namespace.clone(),
            uid: g.uid.clone(),
            resource_version: g.generation.to_string(),
            generation: g.generation as i64,
            creation_timestamp: g.creation_timestamp,
            deletion_timestamp: 0,
            annotations: map(&g.annotations),
            labels: map(&g.labels),
        }),
        spec: Some(Spec {
            health: Some(spec::Health {
                disabled: false,
                period_seconds: g.health_period_seconds,
                failure_threshold: g.health_failure_threshold,
                initial_delay_seconds: g.health_initial_delay_seconds,
            }),
        }),
        status: Some(GsStatus {
            state: g.state.as_str().into(),
            address: g.address.clone(),
            ports: vec![status::Port {
                name: "default".into(),
                port: g.port as i32,
            }],
            players: Some(status::PlayerStatus {
                count: players.map_or(0, |l| l.values.len() as i64),
                capacity: players.map_or(0, |l| l.capacity),
                ids: players.map(|l| l.values.clone()).unwrap_or_default(),
            }),
            counters: g
                .counters
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        status::CounterStatus {
                            count: c.count,
                            capacity: c.capacity,
                        },
                    )
                })
                .collect(),
            lists: g
                .lists
                .iter()
                .map(|(k, l)| {
                    (
                        k.clone(),
                        status::ListStatus {
                            capacity: l.capacity,
                            values: l.values.clone(),
                        },
                    )
                })
                .collect(),
            addresses,
        }),
    }
}

fn counter_proto(name: &str, c: Counter) -> proto::beta::Counter {
    proto::beta::Counter {
        name: name.into(),
        count: c.count,
        capacity: c.capacity,
    }
}

fn list_proto(name: &str, l: List) -> proto::beta::List {
    proto::beta::List {
        name: name.into(),
        capacity: l.capacity,
        values: l.values,
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

fn reply<T>(r: Result<T, HostError>) -> GrpcResult<T> {
    r.map(Response::new).map_err(to_status)
}

#[tonic::async_trait]
impl proto::sdk::sdk_server::Sdk for SlotSdk {
    async fn ready(&self, _: Request<Empty>) -> GrpcResult<Empty> {
        reply(self.call(|s, i| s.sdk_ready(i)).await.map(|_| Empty {}))
    }

    async fn allocate(&self, _: Request<Empty>) -> GrpcResult<Empty> {
        reply(self.call(|s, i| s.sdk_allocate(i)).await.map(|_| Empty {}))
    }

    async fn shutdown(&self, _: Request<Empty>) -> GrpcResult<Empty> {
        reply(self.call(|s, i| s.sdk_shutdown(i)).await.map(|_| Empty {}))
    }

    async fn health(&self, req: Request<Streaming<Empty>>) -> GrpcResult<Empty> {
        let mut stream = req.into_inner();
        while stream.message().await?.is_some() {
            self.call(|s, i| s.sdk_health(i)).await.map_err(to_status)?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn get_game_server(&self, _: Request<Empty>) -> GrpcResult<GameServer> {
        reply(self.game_server().await)
    }

    type WatchGameServerStream = ReceiverStream<Result<GameServer, Status>>;

    async fn watch_game_server(
        &self,
        _: Request<Empty>,
    ) -> GrpcResult<Self::WatchGameServerStream> {
        let mut rx = self.watch();
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(gs) = rx.recv().await {
                if tx.send(gs.map_err(to_status)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }

    async fn set_label(&self, req: Request<KeyValue>) -> GrpcResult<Empty> {
        let kv = req.into_inner();
        reply(
            self.call(move |s, i| s.sdk_set_label(i, &kv.key, &kv.value))
                .await
                .map(|_| Empty {}),
        )
    }

    async fn set_annotation(&self, req: Request<KeyValue>) -> GrpcResult<Empty> {
        let kv = req.into_inner();
        reply(
            self.call(move |s, i| s.sdk_set_annotation(i, &kv.key, &kv.value))
                .await
                .map(|_| Empty {}),
        )
    }

    async fn reserve(&self, req: Request<proto::sdk::Duration>) -> GrpcResult<Empty> {
        let secs = req.into_inner().seconds;
        reply(
            self.call(move |s, i| s.sdk_reserve(i, secs))
                .await
                .map(|_| Empty {}),
        )
    }
}

#[tonic::async_trait]
impl proto::beta::sdk_server::Sdk for SlotSdk {
    async fn get_counter(
        &self,
        req: Request<proto::beta::GetCounterRequest>,
    ) -> GrpcResult<proto::beta::Counter> {
        let name = req.into_inner().name;
        reply(
            self.call(move |s, i| s.sdk_counter(i, &name).map(|c| counter_proto(&name, c)))
                .await,
        )
    }

    async fn update_counter(
        &self,
        req: Request<proto::beta::UpdateCounterRequest>,
    ) -> GrpcResult<proto::beta::Counter> {
        let u = req
            .into_inner()
            .counter_update_request
            .ok_or_else(|| Status::invalid_argument("counterUpdateRequest is required"))?;
        reply(
            self.call(move |s, i| {
                s.sdk_update_counter(i, &u.name, u.count, u.capacity, u.count_diff)
                    .map(|c| counter_proto(&u.name, c))
            })
            .await,
        )
    }

    async fn get_list(
        &self,
        req: Request<proto::beta::GetListRequest>,
    ) -> GrpcResult<proto::beta::List> {
        let name = req.into_inner().name;
        reply(
            self.call(move |s, i| s.sdk_list(i, &name).map(|l| list_proto(&name, l)))
                .await,
        )
    }

    async fn update_list(
        &self,
        req: Request<proto::beta::UpdateListRequest>,
    ) -> GrpcResult<proto::beta::List> {
        let r = req.into_inner();
        let list = r
            .list
            .ok_or_else(|| Status::invalid_argument("list is required"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Status::invalid_argument("update_mask is required"));
        }
        let capacity = paths
            .iter()
            .any(|p| p == "capacity")
            .then_some(list.capacity);
        let values = paths.iter().any(|p| p == "values").then_some(list.values);
        if let Some(p) = paths.iter().find(|p| *p != "capacity" && *p != "values") {
            return Err(Status::invalid_argument(format!(
                "update_mask path {p:?} is not a field of List"
            )));
        }
        let name = list.name;
        reply(
            self.call(move |s, i| {
                s.sdk_update_list(i, &name, capacity, values)
                    .map(|l| list_proto(&name, l))
            })
            .await,
        )
    }

    async fn add_list_value(
        &self,
        req: Request<proto::beta::AddListValueRequest>,
    ) -> GrpcResult<proto::beta::List> {
        let r = req.into_inner();
        reply(
            self.call(move |s, i| {
                s.sdk_add_list_value(i, &r.name, &r.value)
                    .map(|l| list_proto(&r.name, l))
            })
            .await,
        )
    }

    async fn remove_list_value(
        &self,
        req: Request<proto::beta::RemoveListValueRequest>,
    ) -> GrpcResult<proto::beta::List> {
        let r = req.into_inner();
        reply(
            self.call(move |s, i| {
                s.sdk_remove_list_value(i, &r.name, &r.value)
                    .map(|l| list_proto(&r.name, l))
            })
            .await,
        )
    }
}

/// Agones' alpha player tracking, kept in the `players` list.
#[tonic::async_trait]
impl proto::alpha::sdk_server::Sdk for SlotSdk {
    async fn player_connect(
        &self,
        req: Request<proto::alpha::PlayerId>,
    ) -> GrpcResult<proto::alpha::Bool> {
        let id = req.into_inner().player_id;
        let r = self
            .call(move |s, i| match s.sdk_add_list_value(i, PLAYERS, &id) {
                Ok(_) => Ok(true),
                Err(HostError::AlreadyExists(_)) => Ok(false),
                Err(e) => Err(e),
            })
            .await;
        reply(r.map(|b| proto::alpha::Bool { bool: b }))
    }

    async fn player_disconnect(
        &self,
        req: Request<proto::alpha::PlayerId>,
    ) -> GrpcResult<proto::alpha::Bool> {
        let id = req.into_inner().player_id;
        let r = self
            .call(move |s, i| match s.sdk_remove_list_value(i, PLAYERS, &id) {
                Ok(_) => Ok(true),
                Err(HostError::NotFound(m)) if m.contains("is not in list") => Ok(false),
                Err(e) => Err(e),
            })
            .await;
        reply(r.map(|b| proto::alpha::Bool { bool: b }))
    }

    async fn set_player_capacity(
        &self,
        req: Request<proto::alpha::Count>,
    ) -> GrpcResult<proto::alpha::Empty> {
        let n = req.into_inner().count;
        let r = self
            .call(move |s, i| s.sdk_update_list(i, PLAYERS, Some(n), None))
            .await;
        reply(r.map(|_| proto::alpha::Empty {}))
    }

    async fn get_player_capacity(
        &self,
        _: Request<proto::alpha::Empty>,
    ) -> GrpcResult<proto::alpha::Count> {
        let r = self.call(|s, i| s.sdk_list(i, PLAYERS)).await;
        reply(r.map(|l| proto::alpha::Count { count: l.capacity }))
    }

    async fn get_player_count(
        &self,
        _: Request<proto::alpha::Empty>,
    ) -> GrpcResult<proto::alpha::Count> {
        let r = self.call(|s, i| s.sdk_list(i, PLAYERS)).await;
        reply(r.map(|l| proto::alpha::Count {
            count: l.values.len() as i64,
        }))
    }

    async fn is_player_connected(
        &self,
        req: Request<proto::alpha::PlayerId>,
    ) -> GrpcResult<proto::alpha::Bool> {
        let id = req.into_inner().player_id;
        let r = self.call(|s, i| s.sdk_list(i, PLAYERS)).await;
        reply(r.map(|l| proto::alpha::Bool {
            bool: l.values.contains(&id),
        }))
    }

    async fn get_connected_players(
        &self,
        _: Request<proto::alpha::Empty>,
    ) -> GrpcResult<proto::alpha::PlayerIdList> {
        let r = self.call(|s, i| s.sdk_list(i, PLAYERS)).await;
        reply(r.map(|l| proto::alpha::PlayerIdList { list: l.values }))
    }
}

/// Binds slot `slot`'s gRPC and REST ports on loopback.
pub async fn bind(grpc_port: u16, http_port: u16) -> std::io::Result<(TcpListener, TcpListener)> {
    let lo = std::net::Ipv4Addr::LOCALHOST;
    let grpc = TcpListener::bind(SocketAddr::from((lo, grpc_port))).await?;
    let http = TcpListener::bind(SocketAddr::from((lo, http_port))).await?;
    Ok((grpc, http))
}

/// Serves one slot's SDK on the two listeners until the task is aborted.
pub async fn serve(sdk: SlotSdk, grpc: TcpListener, http: TcpListener) {
    let grpc_server = tonic::transport::Server::builder()
        .add_service(proto::sdk::sdk_server::SdkServer::new(sdk.clone()))
        .add_service(proto::alpha::sdk_server::SdkServer::new(sdk.clone()))
        .add_service(proto::beta::sdk_server::SdkServer::new(sdk.clone()))
        .serve_with_incoming(TcpListenerStream::new(grpc));
    let rest = serve_rest(sdk, http);
    let (r, ()) = tokio::join!(grpc_server, rest);
    if let Err(e) = r {
        tracing::warn!("Agones SDK gRPC server ended: {e}");
    }
}

// ----- the REST gateway ----------------------------------------------------------

/// REST connections one slot's SDK answers at the same time (watch
/// streams count); more are refused.
const MAX_REST_CONNECTIONS: usize = 32;

async fn serve_rest(sdk: SlotSdk, listener: TcpListener) {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if open.load(std::sync::atomic::Ordering::SeqCst) >= MAX_REST_CONNECTIONS {
            tokio::spawn(async move {
                let msg = json!({"code": 8, "message": "too many connections to the SDK"});
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    write_json(&mut stream, 503, &msg),
                )
                .await;
            });
            continue;
        }
        open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (sdk, open) = (sdk.clone(), open.clone());
        tokio::spawn(async move {
            rest_connection(stream, sdk).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// Agones' REST gateway (grpc-gateway) writes int64 as strings and takes
/// either.
fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_int(n: i64) -> Value {
    Value::String(n.to_string())
}

/// The JSON form of a GameServer, as Agones' REST gateway writes it.
pub fn game_server_json(g: &GameServer) -> Value {
    let meta = g.object_meta.clone().unwrap_or_default();
    let health = g.spec.and_then(|s| s.health).unwrap_or_default();
    let st = g.status.clone().unwrap_or_default();
    let players = st.players.clone().unwrap_or_default();
    json!({
        "object_meta": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resource_version": meta.resource_version,
            "generation": json_int(meta.generation),
            "creation_timestamp": json_int(meta.creation_timestamp),
            "deletion_timestamp": json_int(meta.deletion_timestamp),
            "annotations": meta.annotations,
            "labels": meta.labels,
        },
        "spec": { "health": {
            "disabled": health.disabled,
            "period_seconds": health.period_seconds,
            "failure_threshold": health.failure_threshold,
            "initial_delay_seconds": health.initial_delay_seconds,
        }},
        "status": {
            "state": st.state,
            "address": st.address,
            "addresses": st.addresses.iter().map(|a| json!({"type": a.r#type, "address": a.address})).collect::<Vec<_>>(),
            "ports": st.ports.iter().map(|p| json!({"name": p.name, "port": p.port})).collect::<Vec<_>>(),
            "players": {
                "count": json_int(players.count),
                "capacity": json_int(players.capacity),
                "ids": players.ids,
            },
            "counters": st.counters.iter().map(|(k, c)| (k.clone(), json!({"count": json_int(c.count), "capacity": json_int(c.capacity)}))).collect::<serde_json::Map<_, _>>(),
            "lists": st.lists.iter().map(|(k, l)| (k.clone(), json!({"capacity": json_int(l.capacity), "values": l.values}))).collect::<serde_json::Map<_, _>>(),
        }
    })
}

fn counter_json(name: &str, c: Counter) -> Value {
    json!({"name": name, "count": json_int(c.count), "capacity": json_int(c.capacity)})
}

fn list_json(name: &str, l: List) -> Value {
    json!({"name": name, "capacity": json_int(l.capacity), "values": l.values})
}

fn http_code(e: &HostError) -> (u16, i32) {
    match e {
        HostError::BadRequest(_) => (400, 3),
        HostError::NotFound(_) => (404, 5),
        HostError::Conflict(_) => (400, 9),
        HostError::AlreadyExists(_) => (409, 6),
        HostError::OutOfRange(_) => (400, 11),
        HostError::TooLarge(_) => (429, 8),
        HostError::Unavailable(_) => (503, 14),
    }
}

async fn write_json(stream: &mut TcpStream, code: u16, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if code < 300 { "OK" } else { "Error" },
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn error_json(e: &HostError) -> (u16, Value) {
    let (status, code) = http_code(e);
    (
        status,
        json!({"code": code, "message": e.to_string(), "details": []}),
    )
}

async fn rest_connection(mut stream: TcpStream, sdk: SlotSdk) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            if buf.len() > 16 * 1024 {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        Some(head_end)
    };
    let Ok(Some(head_end)) = tokio::time::timeout(Duration::from_secs(10), read).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let h = match parse_head(&head) {
        Ok(h) => h,
        Err(r) => {
            return write_json(
                &mut stream,
                r.status,
                &json!({"code": 3, "message": r.message}),
            )
            .await
        }
    };
    if let Some(o) = &h.origin {
        let msg = format!("requests from web pages (Origin {o:?}) are refused");
        return write_json(&mut stream, 403, &json!({"code": 7, "message": msg})).await;
    }
    if let Some(host) = h.host.as_deref().filter(|h| !loopback_host(h)) {
        // A page that rebound its DNS name to 127.0.0.1 still sends that name.
        let msg = format!("Host {host:?} is not a loopback name");
        return write_json(&mut stream, 403, &json!({"code": 7, "message": msg})).await;
    }
    let mut body = buf[head_end + 4..].to_vec();
    let read_body = async {
        while body.len() < h.content_length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), read_body).await,
        Ok(true)
    ) {
        return;
    }
    body.truncate(h.content_length);
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("body is not valid JSON: {e}");
                return write_json(&mut stream, 400, &json!({"code": 3, "message": msg})).await;
            }
        }
    };
    let path = h.target.split('?').next().unwrap_or_default().to_owned();
    if h.method == "GET" && path == "/watch/gameserver" {
        return watch_rest(stream, sdk).await;
    }
    let (code, v) = match rest_call(&sdk, &h.method, &path, body).await {
        Ok(v) => (200, v),
        Err(e) => error_json(&e),
    };
    write_json(&mut stream, code, &v).await;
}

/// Whether a `Host` header names loopback (`localhost`, `127.0.0.1` or
/// `[::1]`, with or without a port).
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// `GET /watch/gameserver`: newline-delimited `{"result": GameServer}`
/// objects, in chunked encoding, as grpc-gateway streams them.
async fn watch_rest(mut stream: TcpStream, sdk: SlotSdk) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut rx = sdk.watch();
    while let Some(gs) = rx.recv().await {
        let line = match gs {
            Ok(g) => json!({ "result": game_server_json(&g) }),
            Err(e) => json!({ "error": error_json(&e).1 }),
        }
        .to_string()
            + "\n";
        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
}

fn field<'a>(body: &'a Value, snake: &str, camel: &str) -> Option<&'a Value> {
    body.get(snake).or_else(|| body.get(camel))
}

fn text(body: &Value, key: &str) -> Result<String, HostError> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HostError::BadRequest(format!("{key:?} (a string) is required")))
}

async fn rest_call(
    sdk: &SlotSdk,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value, HostError> {
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| percent_decode(p).map_err(|r| HostError::BadRequest(r.message)))
        .collect::<Result<_, _>>()?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let empty = || json!({});
    match (method, parts.as_slice()) {
        ("POST", ["ready"]) => sdk.call(|s, i| s.sdk_ready(i)).await.map(|_| empty()),
        ("POST", ["allocate"]) => sdk.call(|s, i| s.sdk_allocate(i)).await.map(|_| empty()),
        ("POST", ["shutdown"]) => sdk.call(|s, i| s.sdk_shutdown(i)).await.map(|_| empty()),
        ("POST", ["health"]) => sdk.call(|s, i| s.sdk_health(i)).await.map(|_| empty()),
        ("GET", ["gameserver"]) => sdk.game_server().await.map(|g| game_server_json(&g)),
        ("PUT", ["metadata", which @ ("label" | "annotation")]) => {
            let (k, v) = (text(&body, "key")?, text(&body, "value")?);
            let label = *which == "label";
            sdk.call(move |s, i| {
                if label {
                    s.sdk_set_label(i, &k, &v)
                } else {
                    s.sdk_set_annotation(i, &k, &v)
                }
            })
            .await
            .map(|_| empty())
        }
        ("POST", ["reserve"]) => {
            let secs = match body.get("seconds") {
                None => 0,
                Some(v) => int64(v).ok_or_else(|| {
                    HostError::BadRequest("\"seconds\" must be an integer".into())
                })?,
            };
            sdk.call(move |s, i| s.sdk_reserve(i, secs))
                .await
                .map(|_| empty())
        }
        ("GET", ["v1beta1", "counters", name]) => {
            let name = name.to_string();
            sdk.call(move |s, i| s.sdk_counter(i, &name).map(|c| counter_json(&name, c)))
                .await
        }
        ("PATCH", ["v1beta1", "counters", name]) => {
            let name = name.to_string();
            let num = |k: &str, c: &str| -> Result<Option<i64>, HostError> {
                match field(&body, k, c) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => int64(v)
                        .map(Some)
                        .ok_or_else(|| HostError::BadRequest(format!("{k:?} must be an integer"))),
                }
            };
            let (count, capacity) = (num("count", "count")?, num("capacity", "capacity")?);
            let diff = num("count_diff", "countDiff")?.unwrap_or(0);
            sdk.call(move |s, i| {
                s.sdk_update_counter(i, &name, count, capacity, diff)
                    .map(|c| counter_json(&name, c))
            })
            .await
        }
        ("GET", ["v1beta1", "lists", name]) => {
            let name = name.to_string();
            sdk.call(move |s, i| s.sdk_list(i, &name).map(|l| list_json(&name, l)))
                .await
        }
        ("PATCH", ["v1beta1", "lists", name]) => {
            let name = name.to_string();
            let capacity = match body.get("capacity") {
                None | Some(Value::Null) => None,
                Some(v) => Some(int64(v).ok_or_else(|| {
                    HostError::BadRequest("\"capacity\" must be an integer".into())
                })?),
            };
            let values = match body.get("values") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| {
                            HostError::BadRequest("\"values\" must be strings".into())
                        })?,
                ),
                Some(_) => return Err(HostError::BadRequest("\"values\" must be a list".into())),
            };
            sdk.call(move |s, i| {
                s.sdk_update_list(i, &name, capacity, values)
                    .map(|l| list_json(&name, l))
            })
            .await
        }
        ("POST", ["v1beta1", "lists", action]) => {
            let (name, add) = if let Some(n) = action.strip_suffix(":addValue") {
                (n.to_string(), true)
            } else if let Some(n) = action.strip_suffix(":removeValue") {
                (n.to_string(), false)
            } else {
                return Err(HostError::NotFound(format!(
                    "no such path: {method} {path}"
                )));
            };
            let value = text(&body, "value")?;
            sdk.call(move |s, i| {
                if add {
                    s.sdk_add_list_value(i, &name, &value)
                } else {
                    s.sdk_remove_list_value(i, &name, &value)
                }
                .map(|l| list_json(&name, l))
            })
            .await
        }
        _ => Err(HostError::NotFound(format!(
            "no such path: {method} {path}"
        ))),
    }
}
