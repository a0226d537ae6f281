//! A UDP query responder thread and the [`GameServer`] convenience type.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::a2s::{A2sInfo, A2sResponder};
use super::server_json::{server_json_path, AllocationWatcher, QueryType, ServerJson};
use super::sqp::{SqpResponder, SqpServerInfo};

/// What a server reports through its query protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryInfo {
    /// Server name.
    pub name: String,
    /// Current map.
    pub map: String,
    /// Game type / mode (SQP) and game name (A2S).
    pub game_type: String,
    /// Build id (SQP) and version (A2S).
    pub build_id: String,
    /// Players on the server.
    pub players: u16,
    /// Player capacity.
    pub max_players: u16,
    /// Game port.
    pub port: u16,
}

impl QueryInfo {
    fn to_a2s(&self) -> A2sInfo {
        A2sInfo {
            name: self.name.clone(),
            map: self.map.clone(),
            folder: self.game_type.clone(),
            game: self.game_type.clone(),
            players: self.players.min(255) as u8,
            max_players: self.max_players.min(255) as u8,
            version: self.build_id.clone(),
            game_port: Some(self.port),
            ..A2sInfo::default()
        }
    }

    fn to_sqp(&self) -> SqpServerInfo {
        SqpServerInfo {
            current_players: self.players,
            max_players: self.max_players,
            server_name: self.name.clone(),
            game_type: self.game_type.clone(),
            build_id: self.build_id.clone(),
            map: self.map.clone(),
            port: self.port,
        }
    }
}

struct Shared {
    info: Mutex<QueryInfo>,
    responding: AtomicBool,
    stop: AtomicBool,
}

/// Answers A2S_INFO or SQP on a UDP socket from a background thread, until
/// dropped.
pub struct QueryServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for QueryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl QueryServer {
    /// Binds `addr` and starts answering `protocol` queries with `info`.
    pub fn bind(addr: SocketAddr, protocol: QueryType, info: QueryInfo) -> io::Result<QueryServer> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let local_addr = sock.local_addr()?;
        let shared = Arc::new(Shared {
            info: Mutex::new(info),
            responding: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netz-query".into())
            .spawn(move || serve(sock, protocol, s2))?;
        Ok(QueryServer {
            shared,
            local_addr,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the reported player count.
    pub fn set_players(&self, players: u16) {
        self.update(|i| i.players = players);
    }

    /// Changes the reported information.
    pub fn update(&self, f: impl FnOnce(&mut QueryInfo)) {
        let mut g = self.shared.info.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
    }

    /// Stops (false) or resumes (true) answering queries.
    pub fn set_responding(&self, on: bool) {
        self.shared.responding.store(on, Ordering::SeqCst);
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UdpSocket, protocol: QueryType, shared: Arc<Shared>) {
    let a2s = A2sResponder::new();
    let sqp = SqpResponder::new();
    let mut buf = [0u8; 2048];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        if !shared.responding.load(Ordering::SeqCst) {
            continue;
        }
        let info = shared
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let reply = match protocol {
            QueryType::A2s => a2s.respond(&buf[..n], peer, &info.to_a2s()),
            QueryType::Sqp => sqp.respond(&buf[..n], peer, &info.to_sqp()),
        };
        if let Some(r) = reply {
            let _ = sock.send_to(&r, peer);
        }
    }
}

/// Everything a game server needs from its slot: the `server.json`
/// contents, an allocation watcher, and (when the build configuration names
/// a query protocol) a running query responder on the query port.
#[derive(Debug)]
pub struct GameServer {
    /// Path of `server.json`.
    pub path: PathBuf,
    /// The contents of `server.json` at start.
    pub config: ServerJson,
    /// Reports allocations and deallocations.
    pub watcher: AllocationWatcher,
    /// The query responder, when a query type is configured.
    pub query: Option<QueryServer>,
}

impl GameServer {
    /// Reads `server.json` from `NETZ_SERVER_JSON` (or the working
    /// directory), and starts the query responder on `ip:queryPort`.
    pub fn from_env() -> io::Result<GameServer> {
        GameServer::open(server_json_path())
    }

    /// Like [`GameServer::from_env`] with an explicit path.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<GameServer> {
        let path = path.into();
        let config = ServerJson::read(&path)?;
        let query = match config.query_type() {
            Some(q) => {
                let ip: IpAddr = config.ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
                let info = QueryInfo {
                    name: format!("netz server {}", config.server_id),
                    port: config.port,
                    ..QueryInfo::default()
                };
                Some(QueryServer::bind(
                    SocketAddr::new(ip, config.query_port),
                    q,
                    info,
                )?)
            }
            None => None,
        };
        let watcher = AllocationWatcher::new(path.clone(), Duration::from_millis(50));
        Ok(GameServer {
            path,
            config,
            watcher,
            query,
        })
    }

    /// Sets the player count reported to queries.
    pub fn set_players(&self, players: u16) {
        if let Some(q) = &self.query {
            q.set_players(players);
        }
    }
}
