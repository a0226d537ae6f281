//! A UDP query responder thread and the [`GameServer`] convenience type.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::a2s::{A2sInfo, A2sPlayer, A2sResponder};
use super::server_json::{server_json_path, AllocationWatcher, QueryType, ServerJson};
use super::sqp::{SqpExtras, SqpRecords, SqpResponder, SqpServerInfo, SqpValue};

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

/// A player as the query protocols report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPlayer {
    /// Name.
    pub name: String,
    /// Score.
    pub score: i32,
    /// Seconds connected.
    pub seconds: u32,
}

/// A team as SQP's TeamInfo reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTeam {
    /// Name.
    pub name: String,
    /// Score.
    pub score: i32,
}

/// What the query protocols report besides [`QueryInfo`]: A2S_PLAYER and
/// SQP PlayerInfo, A2S_RULES and SQP ServerRules, SQP TeamInfo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryDetails {
    /// The players.
    pub players: Vec<QueryPlayer>,
    /// Rules: name and value.
    pub rules: Vec<(String, String)>,
    /// Teams.
    pub teams: Vec<QueryTeam>,
}

impl QueryDetails {
    fn to_a2s_players(&self) -> Vec<A2sPlayer> {
        self.players
            .iter()
            .map(|p| A2sPlayer {
                index: 0,
                name: p.name.clone(),
                score: p.score,
                duration: p.seconds as f32,
            })
            .collect()
    }

    fn to_sqp(&self) -> SqpExtras {
        // SQP has no signed type: scores are sent as their u32 bit pattern.
        SqpExtras {
            rules: self
                .rules
                .iter()
                .map(|(k, v)| (k.clone(), SqpValue::Str(v.clone())))
                .collect(),
            players: SqpRecords {
                fields: vec!["name".into(), "score".into(), "time".into()],
                records: self
                    .players
                    .iter()
                    .map(|p| {
                        vec![
                            SqpValue::Str(p.name.clone()),
                            SqpValue::U32(p.score as u32),
                            SqpValue::U32(p.seconds),
                        ]
                    })
                    .collect(),
            },
            teams: SqpRecords {
                fields: vec!["name".into(), "score".into()],
                records: self
                    .teams
                    .iter()
                    .map(|t| vec![SqpValue::Str(t.name.clone()), SqpValue::U32(t.score as u32)])
                    .collect(),
            },
        }
    }
}

struct Shared {
    info: Mutex<QueryInfo>,
    details: Mutex<QueryDetails>,
    responding: AtomicBool,
    stop: AtomicBool,
}

/// Answers A2S or SQP on one or more UDP sockets (IPv4 and IPv6, say)
/// from background threads, until dropped.
pub struct QueryServer {
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for QueryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryServer")
            .field("local_addrs", &self.local_addrs)
            .finish()
    }
}

impl QueryServer {
    /// Binds `addr` and starts answering `protocol` queries with `info`.
    pub fn bind(addr: SocketAddr, protocol: QueryType, info: QueryInfo) -> io::Result<QueryServer> {
        QueryServer::bind_all(&[addr], protocol, info)
    }

    /// Binds every address of `addrs` (at least one) and answers on each.
    pub fn bind_all(
        addrs: &[SocketAddr],
        protocol: QueryType,
        info: QueryInfo,
    ) -> io::Result<QueryServer> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to answer queries on",
            ));
        }
        let shared = Arc::new(Shared {
            info: Mutex::new(info),
            details: Mutex::new(QueryDetails::default()),
            responding: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let mut sockets = Vec::new();
        for a in addrs {
            let sock = UdpSocket::bind(a)?;
            sock.set_read_timeout(Some(Duration::from_millis(100)))?;
            sockets.push(sock);
        }
        let mut server = QueryServer {
            shared: shared.clone(),
            local_addrs: Vec::new(),
            threads: Vec::new(),
        };
        for sock in sockets {
            server.local_addrs.push(sock.local_addr()?);
            let s2 = shared.clone();
            server.threads.push(
                std::thread::Builder::new()
                    .name("netz-query".into())
                    .spawn(move || serve(sock, protocol, s2))?,
            );
        }
        Ok(server)
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every bound address.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Changes the players, rules and teams reported.
    pub fn update_details(&self, f: impl FnOnce(&mut QueryDetails)) {
        let mut g = self
            .shared
            .details
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f(&mut g);
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
        for t in self.threads.drain(..) {
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
        let details = shared
            .details
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let replies = match protocol {
            QueryType::A2s => a2s.respond_all(
                &buf[..n],
                peer,
                &info.to_a2s(),
                &details.to_a2s_players(),
                &details.rules,
            ),
            QueryType::Sqp => sqp.respond_all(&buf[..n], peer, &info.to_sqp(), &details.to_sqp()),
        };
        for r in replies {
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
                let mut addrs = vec![SocketAddr::new(ip, config.query_port)];
                if let Ok(v6) = config.ipv6.trim().parse::<std::net::Ipv6Addr>() {
                    addrs.push(SocketAddr::new(IpAddr::V6(v6), config.query_port));
                }
                let var = |k: &str| config.variables.get(k).cloned().unwrap_or_default();
                let info = QueryInfo {
                    name: match var("serverName") {
                        n if n.is_empty() => format!("netz server {}", config.server_id),
                        n => n,
                    },
                    map: var("map"),
                    game_type: var("gameType"),
                    build_id: var("buildID"),
                    players: 0,
                    max_players: var("maxPlayers").parse().unwrap_or(0),
                    port: config.port,
                };
                Some(QueryServer::bind_all(&addrs, q, info)?)
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

    /// Changes what queries report (map, capacity, ...).
    pub fn update_info(&self, f: impl FnOnce(&mut QueryInfo)) {
        if let Some(q) = &self.query {
            q.update(f);
        }
    }

    /// Sets the players reported by A2S_PLAYER and SQP PlayerInfo; the
    /// player count follows.
    pub fn set_player_list(&self, players: Vec<QueryPlayer>) {
        if let Some(q) = &self.query {
            q.set_players(players.len().min(u16::MAX as usize) as u16);
            q.update_details(|d| d.players = players);
        }
    }

    /// Sets the rules reported by A2S_RULES and SQP ServerRules.
    pub fn set_rules(&self, rules: Vec<(String, String)>) {
        if let Some(q) = &self.query {
            q.update_details(|d| d.rules = rules);
        }
    }
}
