//! A live web monitor for netz sessions.
//!
//! The monitor serves one page, on a loopback address, that shows a session
//! as the station serving it sees it, updated every half second over
//! server-sent events: the stations as a graph (process type, id, address,
//! the session master, relay edges in a client-server session), each link's
//! RTT, loss and bytes per second, per class the masters and duplicas of
//! every station, a searchable table of objects with their datasets'
//! current values, charts of the last five minutes and an event log. The
//! HTML, CSS and JavaScript are embedded in the binary; the page loads
//! nothing from outside.
//!
//! Two ways to run it:
//!
//! - [`join_as_tool`] + [`serve`], or the `netz-monitor` binary: a Tool
//!   station joins the session (with a connect token when security is on)
//!   and serves the page. It needs no game code, but it holds duplicas only
//!   of the classes its registry knows: a game that wants its own objects'
//!   datasets in the page builds its monitor with its registry (call
//!   [`join_as_tool`] with it).
//! - [`serve`] on any existing [`NetStation`]: a dedicated server's
//!   operator serves the same page for the server itself (link figures are
//!   then the server's own links).
//!
//! ```no_run
//! # async fn demo(station: netz_net::NetStation) -> Result<(), netz_monitor::MonitorError> {
//! let monitor = netz_monitor::serve(station.clone(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("monitor: {}", monitor.url());
//! # Ok(()) }
//! ```
//!
//! # The JSON API
//!
//! The page is one client of a JSON API; scripts and tests are others.
//! Every endpoint answers `GET`; errors are a status with
//! `{"error": "why"}` (400 for a bad handle or query, 404 for an unknown
//! object or path). Station ids are numbers (`3` is `S3`); times are
//! milliseconds.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `/api/session` | [`api::SessionJson`]: `self_id`, `self_addr`, `process_type`, `in_session`, `session_master`, `topology` (`mesh` / `client_server`), `uptime_ms`, `stations` ([`api::StationJson`]: `id`, `process_type`, `name`, `addr`, `relay`, `is_session_master`, `is_self`), `links` ([`api::LinkJson`]: `from`, `peer`, `rtt_ms`, `loss_pct`, `bytes_in_per_s`, `bytes_out_per_s`, packet and byte counters, `cwnd`, `bytes_in_flight`, `congestion_events`, `queued_bytes`, `last_heard_ms`, `silent`), `stats` ([`api::StatsJson`]) and `rmcs_in_flight` ([`api::RmcJson`]) |
//! | `/api/objects?q=&class=&limit=` | a list of [`api::ObjectJson`]: `handle` (the 64-bit number as a decimal string), `name` (`DO(class:creator/serial)`), `class_id`, `class`, `master`, `is_master`, `dup_set` (on the master's station, else `null`), `datasets`, `last_update_ms_ago`; `q` searches name, class, handle and master (`S2`), `class` keeps one class (name or id) |
//! | `/api/objects/{handle}` | [`api::ObjectDetailJson`]: `object` and `datasets` ([`api::DatasetJson`]: `name`, `revision`, `fields` ([`api::FieldJson`]: `name`, `hex`, `len`, `guess`)); the handle as that number, `0x`-hex or `DO(c:s%2Fn)` (the slash percent-encoded) |
//! | `/api/classes` | a list of [`api::ClassJson`]: `class_id`, `class`, `objects`, `per_station` ([`api::ClassCountJson`]: `station`, `masters`, `duplicas`) |
//! | `/api/history` | [`api::HistoryJson`]: `interval_ms` and `samples` ([`Sample`]: `t_ms`, `bytes_in_per_s`, `bytes_out_per_s`, `ops_per_s`, `rtt_ms`, `rmc_ms`, `rmcs_answered`, `rmc_oldest_ms`, `rmcs_in_flight`, `loss_pct`, `stations`) |
//! | `/api/events?since=N` | [`api::EventsJson`]: `next` and `events` ([`LogEntry`]: `seq`, `t_ms`, `kind`, `text`, `station`, `handle`) |
//! | `/api/live` | `text/event-stream`: an `update` event after every sample, its data an [`api::LiveJson`] (`session`, `classes`, `objects`, `object_count`, `sample`, and the `events` logged since the previous update) |
//!
//! Link figures are those of the station serving the page: a Tool station
//! in a mesh links to every station, in a client-server session to its
//! server only. Congestion windows and bandwidth budgets are not shown:
//! netz's transport has none yet.

mod collect;
mod server;
mod token;

pub mod api;

pub use collect::{LogEntry, Sample};
pub use token::{decode_token, encode_token};

use collect::Collector;
use netz_core::crypto::{ConnectToken, SecurityConfig};
use netz_core::{ProcessType, Registry, StationConfig, StationId, Topology};
use netz_net::{NetConfig, NetError, NetStation};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The page is served on loopback addresses only (it has no access control).
    #[error("the monitor serves on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    /// The HTTP address could not be had.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The station could not bind or join.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// How the monitor samples.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Time between samples (and live updates). Default 500 ms.
    pub sample_interval: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            sample_interval: Duration::from_millis(500),
        }
    }
}

/// A running monitor: its HTTP server and sampling tasks. Dropping it stops them.
#[derive(Debug)]
pub struct MonitorServer {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl MonitorServer {
    /// The address the page is served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving.
    pub fn stop(self) {}
}

impl Drop for MonitorServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves the monitor page for `station` on `addr` (a loopback address;
/// port 0 picks a free one) with the default options. Must be called in a
/// tokio runtime; the page keeps being served until the returned
/// [`MonitorServer`] is dropped.
pub async fn serve(station: NetStation, addr: SocketAddr) -> Result<MonitorServer, MonitorError> {
    serve_with(station, addr, MonitorOptions::default()).await
}

/// [`serve`] with options.
pub async fn serve_with(
    station: NetStation,
    addr: SocketAddr,
    options: MonitorOptions,
) -> Result<MonitorServer, MonitorError> {
    if !addr.ip().is_loopback() {
        return Err(MonitorError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MonitorError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MonitorError::Listen { addr, source })?;
    let interval = options.sample_interval.max(Duration::from_millis(50));
    let collector = Arc::new(Collector::new(interval));
    let (tick_tx, tick_rx) = watch::channel(0u64);

    // What is there already goes in the log first.
    station.read(|st| {
        for s in st.stations() {
            let master = if s.id == st.session_master() {
                ", session master"
            } else {
                ""
            };
            collector.log(
                "present",
                format!(
                    "S{} is in the session: {} {:?} at {}{master}",
                    s.id.0,
                    api::process_type_name(s.process_type),
                    s.token,
                    s.addr
                ),
                Some(s.id),
                None,
            );
        }
        collector.sample(st);
    });

    let mut events = station.events();
    let (c, s) = (collector.clone(), station.clone());
    let event_task = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let name = |id: StationId| {
                s.read(|st| {
                    st.station_info(id)
                        .map(|i| {
                            format!(
                                "S{} ({} {:?})",
                                id.0,
                                api::process_type_name(i.process_type),
                                i.token
                            )
                        })
                        .unwrap_or_else(|| format!("S{}", id.0))
                })
            };
            c.on_event(&e, name);
        }
    });

    let (c, s) = (collector.clone(), station.clone());
    let sample_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            s.read(|st| c.sample(st));
            tick_tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    });

    let ctx = Arc::new(server::Ctx {
        station,
        collector,
        tick: tick_rx,
    });
    let app = server::router(ctx);
    let http_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("monitor HTTP server stopped: {e}");
        }
    });
    Ok(MonitorServer {
        addr: local,
        tasks: vec![http_task, sample_task, event_task],
    })
}

/// How a Tool station joins a session to watch it.
#[derive(Clone, Debug)]
pub struct ToolOptions {
    /// The identification token (name) it joins with. Default `"netz-monitor"`.
    pub name: String,
    /// The session's topology (a station must join with the session's). Default mesh.
    pub topology: Topology,
    /// With security on: the Tool's connect token and the game's protocol id.
    pub token: Option<(ConnectToken, u64)>,
    /// The UDP address to bind. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Heartbeat interval and failure timeout; default the core's.
    pub heartbeat: Option<(Duration, Duration)>,
}

impl Default for ToolOptions {
    fn default() -> Self {
        ToolOptions {
            name: "netz-monitor".into(),
            topology: Topology::Mesh,
            token: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat: None,
        }
    }
}

/// Binds a Tool station and joins the session at `contact` with it (with
/// the connect token of `options` when the session is secured). The
/// registry decides which classes' objects the station holds duplicas of.
pub async fn join_as_tool(
    contact: SocketAddr,
    registry: Arc<Registry>,
    options: ToolOptions,
) -> Result<NetStation, MonitorError> {
    let security = options.token.map(|(token, protocol_id)| {
        SecurityConfig::joiner(token, protocol_id).with_clock_origin_ms(unix_ms())
    });
    let station_cfg = StationConfig {
        topology: options.topology,
        security,
        ..StationConfig::new(ProcessType::Tool, options.name)
    };
    let mut cfg = NetConfig::from(station_cfg);
    if let Some((heartbeat, failure)) = options.heartbeat {
        cfg = cfg.heartbeat_interval(heartbeat).failure_timeout(failure);
    }
    let station = NetStation::bind(options.bind, cfg, registry).await?;
    station.join(contact).await?;
    Ok(station)
}

/// The Unix time in milliseconds (the token clock's origin for a driver
/// whose clock starts now).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
