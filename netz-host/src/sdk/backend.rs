//! One small interface for a game server, whoever hosts it: netz-host's
//! own flow (`server.json`, the allocation watcher, the query protocols)
//! or an Agones SDK server (Agones' sidecar on Kubernetes, or the one
//! netz-host runs per slot). [`connect`] picks the backend from the
//! environment, so the same binary runs under both.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::query::{GameServer, QueryPlayer};
use super::server_json::{server_json_path, AllocationEvent, AllocationTracker, ENV_SERVER_JSON};

/// `AGONES_SDK_HTTP_PORT`: the Agones SDK's REST port (default 9358).
pub const ENV_AGONES_HTTP_PORT: &str = "AGONES_SDK_HTTP_PORT";
/// `AGONES_SDK_GRPC_PORT`: the Agones SDK's gRPC port (default 9357).
pub const ENV_AGONES_GRPC_PORT: &str = "AGONES_SDK_GRPC_PORT";
/// `NETZ_HOST_SDK`: `netz-host` or `agones` forces a backend.
pub const ENV_BACKEND: &str = "NETZ_HOST_SDK";
/// The annotation naming the allocation (netz-host sets it; on Kubernetes
/// the allocation is named by the GameServer's uid and generation).
pub const ANNOTATION_ALLOCATION_ID: &str = "netz.dev/allocation-id";

/// Which backend [`connect`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `server.json`, the allocation watcher and the query protocols.
    NetzHost,
    /// An Agones SDK server, through its REST gateway.
    Agones,
}

/// What a game server tells its host, and learns from it.
pub trait HostSdk: Send {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// The server is ready for players (netz-host's own flow: implied by
    /// answering the query protocol, so nothing to send).
    fn ready(&mut self) -> io::Result<()>;
    /// A health ping; call it every few seconds.
    fn health(&mut self) -> io::Result<()>;
    /// The next allocation change, if any (does not wait).
    fn poll(&mut self) -> io::Result<Option<AllocationEvent>>;
    /// The players on the server (query protocols, or Agones' `players`
    /// list).
    fn set_players(&mut self, players: &[String]) -> io::Result<()>;
    /// A label on the hosting record (Agones; netz-host's own flow has no
    /// labels and ignores it).
    fn set_label(&mut self, key: &str, value: &str) -> io::Result<()>;
    /// The server is done. With netz-host's own flow, exit with code 0
    /// after this; with Agones the host stops the process.
    fn shutdown(&mut self) -> io::Result<()>;
}

/// Chooses the backend from the environment: `NETZ_HOST_SDK` when set;
/// else netz-host's own flow when `NETZ_SERVER_JSON` is set (netz-host
/// sets it), else Agones when `AGONES_SDK_HTTP_PORT` or
/// `AGONES_SDK_GRPC_PORT` is set (Agones sets them), else netz-host's
/// flow with `./server.json`.
pub fn choose_backend() -> Backend {
    match std::env::var(ENV_BACKEND).as_deref() {
        Ok("agones") => return Backend::Agones,
        Ok("netz-host") => return Backend::NetzHost,
        _ => {}
    }
    if std::env::var_os(ENV_SERVER_JSON).is_some() {
        Backend::NetzHost
    } else if std::env::var_os(ENV_AGONES_HTTP_PORT).is_some()
        || std::env::var_os(ENV_AGONES_GRPC_PORT).is_some()
    {
        Backend::Agones
    } else {
        Backend::NetzHost
    }
}

/// Connects to the backend [`choose_backend`] names.
pub fn connect() -> io::Result<Box<dyn HostSdk>> {
    Ok(match choose_backend() {
        Backend::NetzHost => Box::new(NetzHostSdk::open(server_json_path())?),
        Backend::Agones => {
            let port = std::env::var(ENV_AGONES_HTTP_PORT)
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(9358);
            Box::new(AgonesSdk::new(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                port,
            ))))
        }
    })
}

/// netz-host's own flow behind [`HostSdk`].
#[derive(Debug)]
pub struct NetzHostSdk {
    /// The slot's `server.json`, watcher and query responder.
    pub server: GameServer,
}

impl NetzHostSdk {
    /// Opens the slot whose `server.json` is at `path`.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<NetzHostSdk> {
        Ok(NetzHostSdk {
            server: GameServer::open(path)?,
        })
    }
}

impl HostSdk for NetzHostSdk {
    fn backend(&self) -> Backend {
        Backend::NetzHost
    }
    fn ready(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn health(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn poll(&mut self) -> io::Result<Option<AllocationEvent>> {
        Ok(self.server.watcher.poll())
    }
    fn set_players(&mut self, players: &[String]) -> io::Result<()> {
        self.server.set_player_list(
            players
                .iter()
                .map(|p| QueryPlayer {
                    name: p.clone(),
                    ..QueryPlayer::default()
                })
                .collect(),
        );
        Ok(())
    }
    fn set_label(&mut self, _key: &str, _value: &str) -> io::Result<()> {
        Ok(())
    }
    fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An Agones SDK server behind [`HostSdk`], through its REST gateway.
#[derive(Debug)]
pub struct AgonesSdk {
    addr: SocketAddr,
    tracker: AllocationTracker,
}

impl AgonesSdk {
    /// Talks to the REST gateway at `addr`.
    pub fn new(addr: SocketAddr) -> AgonesSdk {
        AgonesSdk {
            addr,
            tracker: AllocationTracker::default(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> io::Result<Value> {
        let (code, v) = crate::http_client::request(self.addr, method, path, &[], Some(&body))
            .map_err(io::Error::other)?;
        if (200..300).contains(&code) {
            Ok(v)
        } else {
            Err(io::Error::other(format!(
                "Agones SDK {method} {path}: {code} {}",
                v.get("message").and_then(Value::as_str).unwrap_or("")
            )))
        }
    }

    /// The GameServer as the SDK's REST gateway shows it.
    pub fn game_server(&self) -> io::Result<Value> {
        self.call("GET", "/gameserver", Value::Null)
    }
}

impl HostSdk for AgonesSdk {
    fn backend(&self) -> Backend {
        Backend::Agones
    }
    fn ready(&mut self) -> io::Result<()> {
        self.call("POST", "/ready", json!({})).map(drop)
    }
    fn health(&mut self) -> io::Result<()> {
        self.call("POST", "/health", json!({})).map(drop)
    }
    fn poll(&mut self) -> io::Result<Option<AllocationEvent>> {
        if let Some(e) = self.tracker.take_pending() {
            return Ok(Some(e));
        }
        let gs = self.game_server()?;
        let allocated = gs["status"]["state"] == "Allocated";
        let meta = &gs["object_meta"];
        let now = allocated.then(|| {
            meta["annotations"][ANNOTATION_ALLOCATION_ID]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        meta["uid"].as_str().unwrap_or(""),
                        meta["generation"].as_str().unwrap_or("")
                    )
                })
        });
        Ok(self.tracker.observe(now))
    }
    fn set_players(&mut self, players: &[String]) -> io::Result<()> {
        self.call(
            "PATCH",
            "/v1beta1/lists/players",
            json!({ "values": players }),
        )
        .map(drop)
    }
    fn set_label(&mut self, key: &str, value: &str) -> io::Result<()> {
        self.call(
            "PUT",
            "/metadata/label",
            json!({ "key": key, "value": value }),
        )
        .map(drop)
    }
    fn shutdown(&mut self) -> io::Result<()> {
        self.call("POST", "/shutdown", json!({})).map(drop)
    }
}
