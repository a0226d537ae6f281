//! netz side by side with the wire's floor (a bare tokio UDP ping-pong) and
//! a peer RPC stack (tarpc over loopback TCP with bincode), measured
//! interleaved in one run, plus dataset replication, fault recovery,
//! memory, migration and interest management (spatial against always
//! relevant) and bandwidth budgets with latest-state datasets (on the
//! deterministic simulator). Prints one Markdown table and writes it to
//! `BENCHMARKS.md` at the repository root. Sections of their own, each a marked block of
//! `BENCHMARKS.md` with an SVG chart in `docs/bench/`: the floors of the
//! sequential round trip on both tokio runtimes (`netz_bench::floors`), the
//! simulator's scaling series (`netz_bench::scaling`) and, with the `peers`
//! feature, naia and renet side by side (`netz_bench::peers`).
//!
//! ```text
//! cd bench && cargo run --release --bin compare            # full run, writes ../BENCHMARKS.md
//! cd bench && cargo run --release --bin compare -- --quick --no-write
//! cd bench && cargo run --release --bin compare -- --only interest   # one section, printed only
//! cd bench && cargo run --release --bin compare -- --only budget     # budgets, latest state, wire sizes
//! cd bench && cargo run --release --bin compare -- --only floors --update   # rewrites its block
//! cd bench && cargo run --release --features peers --bin compare -- --peers
//! ```

use futures::stream::{FuturesUnordered, StreamExt};
use netz_bench::alloc::{self, CountingAlloc};
use netz_bench::budget::{self as budgets, quantile, BudgetRun, PositionCost};
use netz_bench::classes::{registry, Motion, Unit};
use netz_bench::interest::{self, Policy, TickCost, World, WorldConfig};
use netz_bench::memory::{self, MemoryReport};
use netz_bench::socket::{CountingSocket, WireCounter};
use netz_bench::stats::Summary;
use netz_bench::{floors, scaling, sections};
use netz_core::{DOHandle, Event, ProcessType, Ref, RmcContext, StationId, Topology};
use netz_net::{NetConfig, NetStation};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::server::Channel as _;
use tokio::net::UdpSocket;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ------------------------------------------------------------------ options

struct Opts {
    rounds: usize,
    seq_calls: usize,
    inflight_calls: usize,
    inflight: usize,
    tick_rounds: usize,
    ticks: usize,
    recovery_rounds: usize,
    migrations: usize,
    memory_objects: usize,
    interest_objects: usize,
    interest_rounds: usize,
    interest_ticks: usize,
    budget_ticks: u32,
    current_thread: bool,
    only: Option<String>,
    out: Option<PathBuf>,
    floor_calls: usize,
    scaling_ticks: usize,
    /// A partial run updates its marked blocks of `BENCHMARKS.md` in place.
    update: bool,
    /// Measure the peers (naia, renet) too.
    peers: bool,
}

/// What `--help` prints.
const USAGE: &str =
    "usage: compare [--quick] [--no-write] [--out PATH] [--rounds N] [--current-thread]
               [--only rmc|replication|recovery|migration|memory|interest|budget|floors|scaling|peers]
               [--update] [--peers]

A full run (no --only) measures every section (the peers only with --peers)
and rewrites BENCHMARKS.md (or --out PATH) and the charts in docs/bench/
beside it, keeping the notes below the notes marker and any marked block
(<!-- begin NAME --> ... <!-- end NAME -->) of a section it did not measure.

A partial run (--only SECTION) prints only the rows it measured and never
rewrites the file; with --update it replaces in place the marked blocks of
the sections it measured (floors, scaling, peers) and writes their charts,
leaving every other line as it was. The rows of the main table
(rmc, replication, recovery, migration, memory, interest) are only ever
written by a full run.

--peers needs the peers feature: cargo run --release --features peers --bin compare -- --peers";

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            rounds: 7,
            seq_calls: 3000,
            inflight_calls: 20_000,
            inflight: 64,
            tick_rounds: 5,
            ticks: 100,
            recovery_rounds: 5,
            migrations: 10,
            memory_objects: 100_000,
            interest_objects: 100_000,
            interest_rounds: 5,
            interest_ticks: 20,
            budget_ticks: 400,
            current_thread: false,
            only: None,
            out: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md")),
            floor_calls: 3000,
            scaling_ticks: 5,
            update: false,
            peers: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    o.rounds = 3;
                    o.seq_calls = 500;
                    o.inflight_calls = 4000;
                    o.tick_rounds = 3;
                    o.ticks = 20;
                    o.recovery_rounds = 2;
                    o.migrations = 3;
                    o.memory_objects = 10_000;
                    o.interest_objects = 10_000;
                    o.interest_rounds = 3;
                    o.interest_ticks = 10;
                    o.floor_calls = 500;
                    o.scaling_ticks = 2;
                    o.budget_ticks = 100;
                }
                "--no-write" => o.out = None,
                "--current-thread" => o.current_thread = true,
                "--only" => o.only = args.next(),
                "--update" => o.update = true,
                "--peers" => o.peers = true,
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--out" => o.out = args.next().map(PathBuf::from),
                "--rounds" => {
                    o.rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(o.rounds)
                }
                // `cargo bench` passes `--bench` to every target.
                "--bench" => {}
                other => {
                    eprintln!("unknown argument {other}");
                    eprintln!("{USAGE}");
                    std::process::exit(2);
                }
            }
        }
        o
    }

    /// Whether this run measures `section`.
    fn runs(&self, section: &str) -> bool {
        match self.only.as_deref() {
            Some(s) => s == section,
            None => section != "peers" || self.peers,
        }
    }
}

// ------------------------------------------------------------------ the floor

/// A bare tokio UDP echo pair on loopback.
struct Udp {
    client: UdpSocket,
    server: SocketAddr,
    payload: usize,
}

impl Udp {
    async fn start(payload: usize) -> Udp {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        let server_addr = server.local_addr().expect("udp addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        client.connect(server_addr).await.expect("udp connect");
        Udp {
            client,
            server: server_addr,
            payload,
        }
    }

    /// Mean round trip of `n` sequential pings, in µs.
    async fn sequential(&self, n: usize) -> f64 {
        let mut msg = vec![0u8; self.payload.max(4)];
        let mut buf = vec![0u8; 2048];
        let start = Instant::now();
        for i in 0..n {
            msg[..4].copy_from_slice(&(i as u32).to_le_bytes());
            self.client.send(&msg).await.expect("udp send");
            loop {
                let got = self.client.recv(&mut buf).await.expect("udp recv");
                if got >= 4 && buf[..4] == msg[..4] {
                    break;
                }
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    }

    /// Pings per second with `window` in flight, `n` in all.
    async fn inflight(&self, n: usize, window: usize) -> f64 {
        let msg = vec![0u8; self.payload.max(4)];
        let mut buf = vec![0u8; 2048];
        let start = Instant::now();
        let mut sent = 0;
        let mut got = 0;
        while sent < window.min(n) {
            self.client.send(&msg).await.expect("udp send");
            sent += 1;
        }
        while got < n {
            // A lost datagram on loopback would stall the window: give up
            // on it after a while and send a replacement.
            match tokio::time::timeout(Duration::from_millis(200), self.client.recv(&mut buf)).await
            {
                Ok(r) => {
                    r.expect("udp recv");
                    got += 1;
                }
                Err(_) => {
                    sent -= 1;
                }
            }
            if sent < n {
                self.client.send(&msg).await.expect("udp send");
                sent += 1;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

// ------------------------------------------------------------------ the peer

#[tarpc::service]
trait Echo {
    /// Returns its argument.
    async fn ping(x: i32) -> i32;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn ping(self, _: tarpc::context::Context, x: i32) -> i32 {
        x
    }
}

async fn start_tarpc() -> EchoClient {
    use tarpc::tokio_serde::formats::Bincode;
    let mut listener = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
        .await
        .expect("tarpc listen");
    listener.config_mut().max_frame_length(1 << 20);
    let addr = listener.local_addr();
    tokio::spawn(async move {
        while let Some(Ok(transport)) = listener.next().await {
            let channel = tarpc::server::BaseChannel::with_defaults(transport);
            tokio::spawn(
                channel
                    .execute(EchoServer.serve())
                    .for_each(|f| async move {
                        tokio::spawn(f);
                    }),
            );
        }
    });
    let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default)
        .await
        .expect("tarpc connect");
    EchoClient::new(tarpc::client::Config::default(), transport).spawn()
}

async fn tarpc_sequential(client: &EchoClient, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let r = client
            .ping(tarpc::context::current(), i as i32)
            .await
            .expect("tarpc call");
        assert_eq!(r, i as i32);
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn tarpc_inflight(client: &EchoClient, n: usize, window: usize) -> f64 {
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut issued = 0;
    let mut done = 0;
    let call = |i: usize| {
        let c = client.clone();
        async move { c.ping(tarpc::context::current(), i as i32).await }
    };
    while issued < window.min(n) {
        pending.push(call(issued));
        issued += 1;
    }
    while let Some(r) = pending.next().await {
        r.expect("tarpc call");
        done += 1;
        if issued < n {
            pending.push(call(issued));
            issued += 1;
        }
    }
    assert_eq!(done, n);
    n as f64 / start.elapsed().as_secs_f64()
}

// ------------------------------------------------------------------ netz

async fn bind(
    process: ProcessType,
    token: &str,
    cfg: impl FnOnce(NetConfig) -> NetConfig,
    counter: Arc<WireCounter>,
) -> NetStation {
    let socket = CountingSocket::bind("127.0.0.1:0".parse().expect("addr"), counter)
        .await
        .expect("netz bind");
    NetStation::with_socket(socket, cfg(NetConfig::new(process, token)), registry())
        .expect("netz station")
}

/// Two netz stations; `target` is a unit mastered by `server`.
struct NetzPair {
    server: NetStation,
    client: NetStation,
    target: DOHandle,
    client_wire: Arc<WireCounter>,
}

async fn start_netz() -> NetzPair {
    let client_wire = Arc::new(WireCounter::default());
    let server = bind(ProcessType::Server, "server", |c| c, Default::default()).await;
    server.create_session().expect("session");
    let client = bind(ProcessType::Client, "client", |c| c, client_wire.clone()).await;
    client.join(server.local_addr()).await.expect("join");
    let target = server.publish(Unit::default()).expect("publish").handle();
    assert!(
        client
            .wait_until(Duration::from_secs(5), |st| st.contains(target))
            .await,
        "the unit reached the client"
    );
    NetzPair {
        server,
        client,
        target,
        client_wire,
    }
}

impl NetzPair {
    async fn sequential(&self, n: usize) -> f64 {
        let ctx: RmcContext<i32> = RmcContext::on_master();
        let h = self.target;
        let start = Instant::now();
        for i in 0..n {
            let i = i as i32;
            self.client
                .call(&ctx, |st| st.object::<Unit>(h).call_ping(&ctx, i))
                .await
                .expect("netz call");
            assert_eq!(ctx.result(), Some(i));
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    }

    async fn inflight(&self, n: usize, window: usize) -> f64 {
        let h = self.target;
        let call = |i: usize| {
            let client = self.client.clone();
            async move {
                let ctx: RmcContext<i32> = RmcContext::on_master();
                let i = i as i32;
                client
                    .call(&ctx, |st| st.object::<Unit>(h).call_ping(&ctx, i))
                    .await
                    .expect("netz call");
                ctx.result() == Some(i)
            }
        };
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        let mut issued = 0;
        while issued < window.min(n) {
            pending.push(call(issued));
            issued += 1;
        }
        while let Some(ok) = pending.next().await {
            assert!(ok, "netz call returned its argument");
            if issued < n {
                pending.push(call(issued));
                issued += 1;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    }

    /// Mean size of the datagrams the caller sends for sequential calls.
    async fn request_size(&self) -> usize {
        let (b0, d0) = self.client_wire.get();
        self.sequential(200).await;
        let (b1, d1) = self.client_wire.get();
        ((b1 - b0) as f64 / (d1 - d0).max(1) as f64).round() as usize
    }
}

// ------------------------------------------------------------------ RMC rows

#[derive(Default)]
struct Rmc {
    payload: usize,
    udp_seq: Vec<f64>,
    netz_seq: Vec<f64>,
    tarpc_seq: Vec<f64>,
    udp_inflight: Vec<f64>,
    netz_inflight: Vec<f64>,
    tarpc_inflight: Vec<f64>,
}

fn measure_rmc(o: &Opts) -> Rmc {
    let rt = if o.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async {
        let netz = start_netz().await;
        let payload = netz.request_size().await;
        let udp = Udp::start(payload).await;
        let tarpc = start_tarpc().await;
        let _ = udp.server;
        // Warm every path up.
        udp.sequential(200).await;
        netz.sequential(200).await;
        tarpc_sequential(&tarpc, 200).await;
        let mut r = Rmc {
            payload,
            ..Rmc::default()
        };
        for round in 0..o.rounds {
            eprint!("\rRMC round {}/{}   ", round + 1, o.rounds);
            // Rotate the order so that no contender always runs first.
            for k in 0..3 {
                match (round + k) % 3 {
                    0 => {
                        r.udp_seq.push(udp.sequential(o.seq_calls).await);
                        r.udp_inflight
                            .push(udp.inflight(o.inflight_calls, o.inflight).await);
                    }
                    1 => {
                        r.netz_seq.push(netz.sequential(o.seq_calls).await);
                        r.netz_inflight
                            .push(netz.inflight(o.inflight_calls, o.inflight).await);
                    }
                    _ => {
                        r.tarpc_seq
                            .push(tarpc_sequential(&tarpc, o.seq_calls).await);
                        r.tarpc_inflight
                            .push(tarpc_inflight(&tarpc, o.inflight_calls, o.inflight).await);
                    }
                }
            }
        }
        eprintln!();
        drop(netz.server);
        r
    })
}

// ------------------------------------------------------------------ datasets

struct Replication {
    duplicas: usize,
    objects: usize,
    /// Field updates per second delivered to each duplica station.
    per_duplica: Vec<f64>,
    /// Wire bytes the master sent per object update.
    wire_per_update: Vec<f64>,
    postcard: usize,
}

fn measure_replication(o: &Opts) -> Replication {
    let duplicas = 8;
    let objects = 1000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let wire = Arc::new(WireCounter::default());
        let master = bind(ProcessType::Server, "master", |c| c, wire.clone()).await;
        master.create_session().expect("session");
        let mut dups = Vec::new();
        for i in 0..duplicas {
            let d = bind(
                ProcessType::Server,
                &format!("dup{i}"),
                |c| c,
                Default::default(),
            )
            .await;
            d.join(master.local_addr()).await.expect("join");
            dups.push(d);
        }
        let refs: Vec<Ref<Unit>> = (0..objects)
            .map(|_| master.publish(Unit::default()).expect("publish"))
            .collect();
        for d in &dups {
            assert!(
                d.wait_until(Duration::from_secs(30), |st| st.duplicas().len() > objects)
                    .await,
                "every unit reached every duplica station"
            );
        }
        let mut tick = 0u32;
        let mut r = Replication {
            duplicas,
            objects,
            per_duplica: Vec::new(),
            wire_per_update: Vec::new(),
            postcard: 0,
        };
        // One warm-up round, then the measured ones.
        for round in 0..=o.tick_rounds {
            eprint!("\rreplication round {round}/{}   ", o.tick_rounds);
            let (b0, _) = wire.get();
            let start = Instant::now();
            for _ in 0..o.ticks {
                tick += 1;
                for u in &refs {
                    u.with(|u| u.motion.step(tick));
                }
                let targets: Vec<u64> = dups
                    .iter()
                    .map(|d| d.stats().updates_applied + objects as u64)
                    .collect();
                let sent = master.update_all();
                assert_eq!(sent, objects);
                let waits = dups.iter().zip(&targets).map(|(d, &t)| {
                    d.wait_until(Duration::from_secs(30), move |st| {
                        st.stats().updates_applied >= t
                    })
                });
                for ok in futures::future::join_all(waits).await {
                    assert!(ok, "every update reached every duplica station");
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let (b1, _) = wire.get();
            if round == 0 {
                continue;
            }
            let updates = (o.ticks * objects) as f64;
            r.per_duplica.push(updates * Motion::FIELDS as f64 / secs);
            r.wire_per_update
                .push((b1 - b0) as f64 / (updates * duplicas as f64));
        }
        eprintln!();
        r.postcard = refs[0].with(|u| u.motion.postcard_len());
        r
    })
}

// ------------------------------------------------------------------ recovery

struct Recovery {
    heartbeat: Duration,
    failure_timeout: Duration,
    objects: usize,
    /// Crash to detection (the session master's `StationFailed`), ms.
    detect: Vec<f64>,
    /// Detection to every survivor holding every object as master or duplica
    /// of the new master, ms.
    recover: Vec<f64>,
}

fn measure_recovery(o: &Opts) -> Recovery {
    let heartbeat = Duration::from_millis(50);
    let failure_timeout = Duration::from_millis(300);
    let objects = 100;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = move |c: NetConfig| {
        c.heartbeat_interval(heartbeat)
            .failure_timeout(failure_timeout)
    };
    rt.block_on(async {
        let mut r = Recovery {
            heartbeat,
            failure_timeout,
            objects,
            detect: Vec::new(),
            recover: Vec::new(),
        };
        for round in 0..o.recovery_rounds {
            eprint!("\rrecovery round {}/{}   ", round + 1, o.recovery_rounds);
            let master = bind(ProcessType::Server, "sm", cfg, Default::default()).await;
            master.create_session().expect("session");
            let mut survivors = vec![master.clone()];
            for i in 0..2 {
                let s = bind(
                    ProcessType::Server,
                    &format!("s{i}"),
                    cfg,
                    Default::default(),
                )
                .await;
                s.join(master.local_addr()).await.expect("join");
                survivors.push(s);
            }
            let victim = bind(ProcessType::Server, "victim", cfg, Default::default()).await;
            victim.join(master.local_addr()).await.expect("join");
            let victim_id = victim.id();
            let handles: Vec<DOHandle> = (0..objects)
                .map(|_| victim.publish(Unit::default()).expect("publish").handle())
                .collect();
            for s in &survivors {
                let hs = handles.clone();
                assert!(
                    s.wait_until(Duration::from_secs(10), move |st| hs
                        .iter()
                        .all(|h| st.contains(*h)))
                        .await,
                    "every unit reached every station"
                );
            }
            let sm = master.id();
            let mut events = master.events();
            // Let heartbeats flow for a while, then crash: the driver stops
            // and the socket closes without a word.
            tokio::time::sleep(heartbeat * 2).await;
            let crash = Instant::now();
            drop(victim);
            let detected = tokio::spawn(async move {
                events
                    .wait_for(failure_timeout * 10, |e| {
                        matches!(e, Event::StationFailed(id) if *id == victim_id).then(Instant::now)
                    })
                    .await
            });
            let waits = survivors.iter().map(|s| {
                let hs = handles.clone();
                async move {
                    let ok = s
                        .wait_until(failure_timeout * 10, move |st| {
                            hs.iter().all(|h| st.master_of(*h) == Some(sm))
                        })
                        .await;
                    (ok, Instant::now())
                }
            });
            let done = futures::future::join_all(waits).await;
            let detected = detected.await.ok().flatten();
            let (Some(detected), true) = (detected, done.iter().all(|(ok, _)| *ok)) else {
                eprintln!("recovery round {round} did not complete");
                continue;
            };
            let last = done.iter().map(|(_, t)| *t).max().unwrap_or(detected);
            r.detect
                .push(detected.duration_since(crash).as_secs_f64() * 1e3);
            r.recover
                .push(last.saturating_duration_since(detected).as_secs_f64() * 1e3);
            let _: StationId = sm;
        }
        eprintln!();
        r
    })
}

// ------------------------------------------------------------------ migration

struct Migration {
    /// `send_migrate` to `Event::Reconnected`, ms.
    blackout: Vec<f64>,
    failed: usize,
    /// Migrations after which the client had another server.
    moved: usize,
}

/// A client of a client-server session with three servers migrates from
/// server to server; each blackout runs from `send_migrate` to the
/// client's `Event::Reconnected` (Diarkis `OnConnect(reconnect = true)`).
fn measure_migration(o: &Opts) -> Migration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cs = |c: NetConfig| c.topology(Topology::ClientServer);
    rt.block_on(async {
        let mut r = Migration {
            blackout: Vec::new(),
            failed: 0,
            moved: 0,
        };
        let s0 = bind(ProcessType::Server, "s0", cs, Default::default()).await;
        s0.create_session().expect("session");
        let mut servers = vec![s0.clone()];
        for i in 1..3 {
            let s = bind(
                ProcessType::Server,
                &format!("s{i}"),
                cs,
                Default::default(),
            )
            .await;
            s.join(s0.local_addr()).await.expect("join");
            servers.push(s);
        }
        let client = bind(ProcessType::Client, "c", cs, Default::default()).await;
        client.join(servers[1].local_addr()).await.expect("join");
        let unit = client.publish(Unit::default()).expect("publish").handle();
        for s in &servers {
            assert!(
                s.wait_until(Duration::from_secs(5), |st| st.contains(unit))
                    .await,
                "the client's unit reached every server"
            );
        }
        for round in 0..o.migrations {
            eprint!("\rmigration {}/{}   ", round + 1, o.migrations);
            let mut events = client.events();
            let before = client.read(|st| st.relay());
            let start = Instant::now();
            if client.with(|st, now| st.send_migrate(now)).is_err() {
                r.failed += 1;
                continue;
            }
            let outcome = events
                .wait_for(Duration::from_secs(10), |e| match e {
                    Event::Reconnected { .. } => Some(Some(Instant::now())),
                    Event::MigrateFailed { .. } => Some(None),
                    _ => None,
                })
                .await
                .flatten();
            match outcome {
                Some(t) => r.blackout.push(t.duration_since(start).as_secs_f64() * 1e3),
                None => r.failed += 1,
            }
            if client.read(|st| st.relay()) != before {
                r.moved += 1;
            }
            // Let the new link settle before the next move.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!();
        r
    })
}

// ------------------------------------------------------------------ interest

/// The stations of the headline interest world.
const INTEREST_STATIONS: usize = 64;

/// One world of the interest series, both policies.
struct InterestPoint {
    stations: usize,
    objects: usize,
    spatial: TickCost,
    always: TickCost,
}

struct Interest {
    stations: usize,
    objects: usize,
    /// Per round, side by side in the same world shape.
    spatial: Vec<TickCost>,
    always: Vec<TickCost>,
    /// Stations 8 → 64 at `objects`, then objects 10 % → 100 % at 64
    /// stations.
    series: Vec<InterestPoint>,
}

fn build_world(stations: usize, objects: usize, policy: Policy) -> World {
    let start = Instant::now();
    let w = World::new(WorldConfig::new(stations, objects, policy));
    eprintln!(
        "interest: {} world of {stations} stations and {objects} units built in {:.1} s",
        policy.name(),
        start.elapsed().as_secs_f64()
    );
    w
}

/// Spatial interest against always relevant: one server masters the
/// world, 1 % of the units walk each tick, each client's area covers 1 %
/// of the world (see `netz_bench::interest`). The headline pair is measured
/// round by round, alternating which goes first; the series once each.
fn measure_interest(o: &Opts) -> Interest {
    let objects = o.interest_objects;
    let mut r = Interest {
        stations: INTEREST_STATIONS,
        objects,
        spatial: Vec::new(),
        always: Vec::new(),
        series: Vec::new(),
    };
    let points = [
        (8, objects),
        (16, objects),
        (32, objects),
        (INTEREST_STATIONS, objects),
        (INTEREST_STATIONS, objects / 10),
        (INTEREST_STATIONS, objects * 3 / 10),
    ];
    for (stations, k) in points {
        let mut spatial = build_world(stations, k, Policy::Spatial);
        let mut always = build_world(stations, k, Policy::Always);
        spatial.measure(3);
        always.measure(3);
        let headline = stations == INTEREST_STATIONS && k == objects;
        let rounds = if headline { o.interest_rounds } else { 1 };
        let (mut s, mut a) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            eprint!("\rinterest {stations}x{k} round {}/{rounds}   ", round + 1);
            if round % 2 == 0 {
                s.push(spatial.measure(o.interest_ticks));
                a.push(always.measure(o.interest_ticks));
            } else {
                a.push(always.measure(o.interest_ticks));
                s.push(spatial.measure(o.interest_ticks));
            }
        }
        eprintln!();
        r.series.push(InterestPoint {
            stations,
            objects: k,
            spatial: median_cost(&s),
            always: median_cost(&a),
        });
        if headline {
            r.spatial = s;
            r.always = a;
        }
    }
    r
}

/// The round with the median tick time.
fn median_cost(costs: &[TickCost]) -> TickCost {
    let mut v = costs.to_vec();
    v.sort_by(|a, b| a.tick_micros.total_cmp(&b.tick_micros));
    v[v.len() / 2]
}

// ------------------------------------------------------------------ budgets

/// The budget section: budgets with priorities, latest state against
/// reliable under loss, the wire size of updates, quantized positions.
struct Budget {
    run: Option<BudgetRun>,
    loss: f64,
    loss_stations: usize,
    loss_objects: usize,
    latest_ages: Vec<f64>,
    reliable_ages: Vec<f64>,
    wire: Option<(f64, usize)>,
    positions: Option<[PositionCost; 3]>,
}

impl Budget {
    fn empty() -> Budget {
        Budget {
            run: None,
            loss: 0.2,
            loss_stations: 4,
            loss_objects: 200,
            latest_ages: Vec::new(),
            reliable_ages: Vec::new(),
            wire: None,
            positions: None,
        }
    }
}

fn measure_budget(o: &Opts) -> Budget {
    let mut b = Budget::empty();
    let t = std::time::Instant::now();
    eprintln!(
        "budget: 1000 objects, 8 stations, 64000 B/s, {} ticks",
        o.budget_ticks
    );
    b.run = Some(budgets::budget(8, 1000, 64_000, o.budget_ticks));
    eprintln!("budget: latest state and reliable at 20 % loss");
    b.latest_ages = budgets::ages_under_loss(
        true,
        b.loss_stations,
        b.loss_objects,
        o.budget_ticks,
        b.loss,
    );
    b.reliable_ages = budgets::ages_under_loss(
        false,
        b.loss_stations,
        b.loss_objects,
        o.budget_ticks,
        b.loss,
    );
    eprintln!("budget: wire bytes per update");
    b.wire = Some(budgets::wire_per_update(8, 1000, 40));
    b.positions = Some(budgets::positions(1000, 40));
    eprintln!("budget: done in {:.1} s", t.elapsed().as_secs_f64());
    b
}

fn budget_rows(t: &mut String, b: &Budget) {
    if let Some(run) = &b.run {
        let bps = Summary::of(&run.bytes_per_second);
        let ratio: Vec<f64> = run
            .bytes_per_second
            .iter()
            .map(|v| v / run.budget as f64)
            .collect();
        let _ = writeln!(
            t,
            "| Budget: bytes/s the master sends each station (1 master, {} stations, {} objects changing every tick at 20 Hz, latest state, budget per link; simulator, {:.0} s) | {} | budget: {} B/s | {}× | ≤ 1× (+ one datagram) | {} |",
            run.stations,
            run.objects,
            run.seconds,
            fmt_s(bps, 0),
            run.budget,
            fmt_s(Summary::of(&ratio), 3),
            met(bps.max <= run.budget as f64 + 1200.0 / run.seconds)
        );
        for c in &run.classes {
            let _ = writeln!(
                t,
                "| … staleness (age of the state a station holds), priority gain {} ({} objects), p50 / p99, ms | {:.0} / {:.0} | – | – | – | – |",
                c.gain,
                c.objects,
                quantile(&c.ages_ms, 0.5),
                quantile(&c.ages_ms, 0.99),
            );
        }
    }
    if !b.latest_ages.is_empty() {
        let (l50, l99) = (
            quantile(&b.latest_ages, 0.5),
            quantile(&b.latest_ages, 0.99),
        );
        let (r50, r99) = (
            quantile(&b.reliable_ages, 0.5),
            quantile(&b.reliable_ages, 0.99),
        );
        let _ = writeln!(
            t,
            "| Latest state vs reliable at {:.0} % loss: age of the newest state at the receiver, p50 / p99, ms ({} objects, {} stations, 20 Hz, 20 ms latency; simulator) | {:.0} / {:.0} | reliable: {:.0} / {:.0} | reliable / latest at p99 = {:.2}× | – | – |",
            b.loss * 100.0,
            b.loss_objects,
            b.loss_stations,
            l50,
            l99,
            r50,
            r99,
            r99 / l99
        );
    }
    if let Some((wire, postcard)) = b.wire {
        let ratio = wire / postcard as f64;
        let _ = writeln!(
            t,
            "| Wire bytes per object update, `UpdateBatch` (1000 units × 8 stations, every field changes; simulator, every datagram counted) | {:.1} | postcard of the changed fields: {} B | {:.2}× | ≤ 1.15× | {} |",
            wire,
            postcard,
            ratio,
            met(ratio <= 1.15)
        );
    }
    if let Some([q3, q2, plain]) = b.positions {
        let _ = writeln!(
            t,
            "| Quantized position (17 bits a coordinate, 2 km at 1.5 cm): bits of a 3D / 2D position, and wire bytes per update (latest state, 1000 objects, one station) | 3D: {} bits, {:.1} B; 2D: {} bits, {:.1} B | three `f32`: {} bits, {:.1} B | 3D / three `f32` = {:.2}× | – | – |",
            q3.field_bits,
            q3.wire_bytes,
            q2.field_bits,
            q2.wire_bytes,
            plain.field_bits,
            plain.wire_bytes,
            q3.wire_bytes / plain.wire_bytes
        );
    }
}

// ------------------------------------------------------------------ report

fn fmt_s(s: Summary, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

fn fmt_big(s: Summary) -> String {
    let f = |v: f64| {
        if v >= 1e6 {
            format!("{:.2} M", v / 1e6)
        } else if v >= 1e3 {
            format!("{:.1} k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    };
    format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
}

fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Summary {
    let v: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
    Summary::of(&v)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "missed"
    }
}

fn lock_version(name: &str) -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .unwrap_or_default();
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|i| {
            let rest = &lock[i + needle.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown rustc".into());
    format!(
        "{cpu}, {cores} cores available, Linux {kernel}, {rustc}; netz {}, tokio {}, tarpc {}",
        lock_version("netz"),
        lock_version("tokio"),
        lock_version("tarpc")
    )
}

fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[allow(clippy::too_many_arguments)]
fn report(
    o: &Opts,
    rmc: &Rmc,
    rep: &Replication,
    rec: &Recovery,
    mig: &Migration,
    mem: &MemoryReport,
    int: &Interest,
    bud: &Budget,
) -> String {
    let mut t = String::new();
    let udp_seq = Summary::of(&rmc.udp_seq);
    let netz_seq = Summary::of(&rmc.netz_seq);
    let tarpc_seq = Summary::of(&rmc.tarpc_seq);
    let vs_udp = paired(&rmc.netz_seq, &rmc.udp_seq, |n, u| n / u);
    let vs_tarpc = paired(&rmc.tarpc_seq, &rmc.netz_seq, |tp, n| tp / n);
    let udp_inf = Summary::of(&rmc.udp_inflight);
    let netz_inf = Summary::of(&rmc.netz_inflight);
    let tarpc_inf = Summary::of(&rmc.tarpc_inflight);
    let inf_vs_tarpc = paired(&rmc.netz_inflight, &rmc.tarpc_inflight, |n, tp| n / tp);
    let inf_vs_udp = paired(&rmc.netz_inflight, &rmc.udp_inflight, |n, u| n / u);
    let per_dup = Summary::of(&rep.per_duplica);
    let aggregate: Vec<f64> = rep
        .per_duplica
        .iter()
        .map(|v| v * rep.duplicas as f64)
        .collect();
    let aggregate = Summary::of(&aggregate);
    let wire = Summary::of(&rep.wire_per_update);
    let overhead: Vec<f64> = rep
        .wire_per_update
        .iter()
        .map(|w| w / rep.postcard as f64)
        .collect();
    let overhead = Summary::of(&overhead);
    let detect = Summary::of(&rec.detect);
    let recover = Summary::of(&rec.recover);
    let hb_ms = rec.heartbeat.as_secs_f64() * 1e3;
    let ft_ms = rec.failure_timeout.as_secs_f64() * 1e3;
    let rec_ratio: Vec<f64> = rec.recover.iter().map(|v| v / hb_ms).collect();
    let rec_ratio = Summary::of(&rec_ratio);
    let det_ratio: Vec<f64> = rec.detect.iter().map(|v| v / ft_ms).collect();
    let det_ratio = Summary::of(&det_ratio);

    let _ = writeln!(
        t,
        "| Measurement | netz | Reference | Ratio | Target | Target met |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    if o.runs("rmc") {
        let _ = writeln!(
            t,
            "| RMC round trip (i32), sequential, µs | {} | UDP ping-pong of {} B: {} | netz / UDP = {}× | ≤ 1.5× | {} |",
            fmt_s(netz_seq, 1),
            rmc.payload,
            fmt_s(udp_seq, 1),
            fmt_s(vs_udp, 2),
            met(vs_udp.median <= 1.5)
        );
        let _ = writeln!(
            t,
            "| RMC round trip (i32), sequential, µs | {} | tarpc (TCP, bincode): {} | tarpc / netz = {}× | ≥ 3× | {} |",
            fmt_s(netz_seq, 1),
            fmt_s(tarpc_seq, 1),
            fmt_s(vs_tarpc, 2),
            met(vs_tarpc.median >= 3.0)
        );
        let _ = writeln!(
            t,
            "| RMC throughput, {} in flight, calls/s | {} | tarpc: {} | netz / tarpc = {}× | ≥ 1.5× | {} |",
            o.inflight,
            fmt_big(netz_inf),
            fmt_big(tarpc_inf),
            fmt_s(inf_vs_tarpc, 2),
            met(inf_vs_tarpc.median >= 1.5)
        );
        let _ = writeln!(
            t,
            "| RMC throughput, {} in flight, calls/s | {} | UDP ping-pong, one datagram per call: {} | netz / UDP = {}× | – | – |",
            o.inflight,
            fmt_big(netz_inf),
            fmt_big(udp_inf),
            fmt_s(inf_vs_udp, 2),
        );
    }
    if o.runs("replication") {
        let _ = writeln!(
            t,
            "| Dataset field updates delivered per second, per duplica station (1 master, {} duplica stations, {} units × {} fields every tick, one core) | {} | 1 M | {}× | ≥ 1× | {} |",
            rep.duplicas,
            rep.objects,
            Motion::FIELDS,
            fmt_big(per_dup),
            fmt_s(Summary { median: per_dup.median / 1e6, min: per_dup.min / 1e6, max: per_dup.max / 1e6 }, 2),
            met(per_dup.median >= 1e6)
        );
        let _ = writeln!(
            t,
            "| … the same, all {} duplica stations together | {} | 1 M | {}× | – | – |",
            rep.duplicas,
            fmt_big(aggregate),
            fmt_s(
                Summary {
                    median: aggregate.median / 1e6,
                    min: aggregate.min / 1e6,
                    max: aggregate.max / 1e6
                },
                2
            ),
        );
        let _ = writeln!(
            t,
            "| Wire bytes per object update (master → duplica, UDP payload) | {} | postcard of the changed fields: {} B | {}× | ≤ 1.15× | {} |",
            fmt_s(wire, 1),
            rep.postcard,
            fmt_s(overhead, 2),
            met(overhead.median <= 1.15)
        );
    }
    if o.runs("recovery") {
        let _ = writeln!(
            t,
            "| Fault detection: crash → session master's StationFailed, ms | {} | failure timeout: {ft_ms:.0} ms | {}× | (by design ≈ 1×) | – |",
            fmt_s(detect, 1),
            fmt_s(det_ratio, 2),
        );
        let _ = writeln!(
            t,
            "| Recovery: detection → every survivor has all {} units under the new master, ms | {} | heartbeat interval: {hb_ms:.0} ms | {}× | ≤ 1× | {} |",
            rec.objects,
            fmt_s(recover, 1),
            fmt_s(rec_ratio, 2),
            met(rec_ratio.median <= 1.0)
        );
    }
    if o.runs("memory") {
        let _ = writeln!(
            t,
            "| Heap per duplica at {} objects, netz bookkeeping, B | {:.0} | 256 B | {:.2}× | ≤ 1× | {} |",
            mem.objects,
            mem.duplica,
            mem.duplica / 256.0,
            met(mem.duplica <= 256.0)
        );
        let _ = writeln!(
            t,
            "| Heap per master at {} objects (one duplica station), B | {:.0} | alone in the session: {:.0} B | – | – | – |",
            mem.objects, mem.master, mem.master_alone
        );
    }
    if o.runs("migration") {
        let blackout = Summary::of(&mig.blackout);
        let _ = writeln!(
            t,
            "| Migration blackout: `send_migrate` → `Event::Reconnected` (`on_connect(reconnect = true)`), ms | {} | {} migrations, {} to another server, {} failed | – | – | – |",
            fmt_s(blackout, 2),
            mig.blackout.len() + mig.failed,
            mig.moved,
            mig.failed
        );
    }
    if o.runs("interest") {
        let cpu = |v: &[TickCost]| -> Vec<f64> {
            v.iter()
                .map(|c| c.per_station_micros(int.stations))
                .collect()
        };
        let bytes = |v: &[TickCost]| -> Vec<f64> { v.iter().map(|c| c.client_bytes).collect() };
        let (s_cpu, a_cpu) = (cpu(&int.spatial), cpu(&int.always));
        let (s_b, a_b) = (bytes(&int.spatial), bytes(&int.always));
        let _ = writeln!(
            t,
            "| Interest management: per-tick CPU per station, spatial vs always-relevant ({} stations, {} objects, 1% moving, ~1% interest), µs | {} | always relevant: {} | always / spatial = {}× | – | – |",
            int.stations,
            int.objects,
            fmt_s(Summary::of(&s_cpu), 1),
            fmt_s(Summary::of(&a_cpu), 1),
            fmt_s(paired(&a_cpu, &s_cpu, |a, s| a / s), 1),
        );
        let _ = writeln!(
            t,
            "| Interest management: bytes per client station per tick, spatial vs always-relevant (same worlds) | {} | always relevant: {} | always / spatial = {}× | – | – |",
            fmt_s(Summary::of(&s_b), 0),
            fmt_s(Summary::of(&a_b), 0),
            fmt_s(paired(&a_b, &s_b, |a, s| a / s), 1),
        );
    }
    if o.runs("budget") {
        budget_rows(&mut t, bud);
    }
    t
}

/// The interest series as two Markdown tables: stations growing at the
/// headline's object count, objects growing at its station count.
fn interest_table(int: &Interest) -> String {
    let mut t = String::new();
    let by_stations: Vec<&InterestPoint> = int
        .series
        .iter()
        .filter(|p| p.objects == int.objects)
        .collect();
    let mut by_objects: Vec<&InterestPoint> = int
        .series
        .iter()
        .filter(|p| p.stations == int.stations)
        .collect();
    by_objects.sort_by_key(|p| p.objects);
    for (title, points) in [
        (format!("{} objects", int.objects), by_stations),
        (format!("{} stations", int.stations), by_objects),
    ] {
        let _ = writeln!(t, "\nAt {title}:\n");
        let _ = writeln!(
            t,
            "| Stations | Objects | CPU per station per tick, spatial, µs | always relevant, µs | always / spatial | bytes per client per tick, spatial | always relevant | always / spatial | server's share of a tick, spatial / always relevant, ms |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
        for p in points {
            let (s, a) = (&p.spatial, &p.always);
            let (sc, ac) = (
                s.per_station_micros(p.stations),
                a.per_station_micros(p.stations),
            );
            let _ = writeln!(
                t,
                "| {} | {} | {sc:.1} | {ac:.1} | {:.1}× | {:.0} | {:.0} | {:.1}× | {:.2} / {:.2} |",
                p.stations,
                p.objects,
                ac / sc,
                s.client_bytes,
                a.client_bytes,
                a.client_bytes / s.client_bytes,
                s.server_micros / 1e3,
                a.server_micros / 1e3,
            );
        }
    }
    t
}

fn markdown(
    o: &Opts,
    table: &str,
    rmc: &Rmc,
    rec: &Recovery,
    mem: &MemoryReport,
    int: &Interest,
) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# netz benchmarks\n");
    let _ = writeln!(
        m,
        "Measured on {} by `cd bench && cargo run --release --bin compare{}` ({}).\n",
        today(),
        if o.current_thread {
            " -- --current-thread"
        } else {
            ""
        },
        machine()
    );
    let _ = writeln!(
        m,
        "Every row is measured in the same run; RMC contenders are interleaved \
         round by round ({} rounds, order rotated). Figures are the median, with the \
         minimum and maximum in parentheses; ratios are taken within each round, \
         then summarized the same way.\n",
        o.rounds
    );
    m.push_str(table);
    let _ = writeln!(m, "\n## How each row is measured\n");
    let _ = writeln!(
        m,
        "- **RMC round trip**: two `netz_net::NetStation`s on 127.0.0.1 in one \
         process (tokio, {}); the client calls `Unit::ping(i32) -> i32` \
         on the server's master with `NetStation::call`, {} calls per round, one \
         after the other. The floor is a tokio `UdpSocket` ping-pong of the same \
         datagram size as netz's requests ({} B), on the same runtime. The peer is \
         tarpc with its bincode codec over TCP on loopback, the same echo service. \
         Throughput rows keep {} calls in flight ({} calls per round).",
        if o.current_thread {
            "one current-thread runtime"
        } else {
            "2 worker threads"
        },
        o.seq_calls,
        rmc.payload,
        o.inflight,
        o.inflight_calls
    );
    let _ = writeln!(
        m,
        "- **Dataset replication**: one master and 8 duplica stations, all nine \
         `NetStation`s on one current-thread tokio runtime (one core). Every tick \
         moves all 1,000 units (every field of their `Motion` dataset changes), \
         calls `update_all` and waits until every duplica station applied every \
         update. Wire bytes are the UDP payloads the master sent (link headers, \
         frames, acknowledgements it piggybacks and heartbeats included), divided \
         by the object updates sent; the reference is the postcard size of the \
         seven changed fields."
    );
    let _ = writeln!(
        m,
        "- **Fault recovery**: four stations, heartbeat {} ms, failure timeout \
         {} ms; one station publishing {} units is dropped (its driver stops, its \
         socket closes). Detection is the session master's `StationFailed` event; \
         recovery ends when every survivor sees the session master as the master \
         of every unit.",
        rec.heartbeat.as_millis(),
        rec.failure_timeout.as_millis(),
        rec.objects
    );
    let _ = writeln!(
        m,
        "- **Memory**: a counting global allocator charges each station's heap \
         use to it; {} units are published on one station and replicated to \
         another, every message delivered and acknowledged, and the net bytes each \
         station kept are divided by the object count, minus the user object \
         itself ({} B).",
        mem.objects, mem.user_object
    );
    let _ = writeln!(
        m,
        "- **Migration blackout**: a client-server session of three servers and \
         one client (with one published unit) on loopback; the client calls \
         `send_migrate` {} times, and each blackout runs until its \
         `Event::Reconnected`.",
        o.migrations
    );
    let _ = writeln!(
        m,
        "- **Interest management**: {} sans-IO stations wired in memory (no \
         latency), a client-server session: one server masters {} units spread \
         uniformly over a square world of {:.0} × {:.0} units and 1 % of them \
         walk {} units a tick; each of the other {} stations is a client whose \
         player stands still, its area of interest covering 1 % of the world \
         (enter radius {:.0}, leave radius {:.0}). A tick (20 Hz) moves the \
         walkers, calls `Station::update` on each and lets 50 ms of virtual \
         time pass in 5 ms steps. Spatial: `ClassInterest::spatial_by` the \
         unit's position, a client holds only the units in its area; always \
         relevant: no class policy, every client holds every unit. CPU per \
         station is the whole session's tick (every station on one thread) \
         divided by the stations; bytes are the UDP payloads a client \
         received per tick (updates, entering units, heartbeats and \
         acknowledgements), the mean over the clients. {} rounds of {} ticks, \
         the two worlds alternating which goes first; ratios per round. The \
         series below, one round each (the headline world's row is its median \
         round):",
        int.stations,
        int.objects,
        interest::SIDE,
        interest::SIDE,
        interest::SPEED,
        int.stations.saturating_sub(1),
        WorldConfig::new(int.stations, int.objects, Policy::Spatial).enter(),
        WorldConfig::new(int.stations, int.objects, Policy::Spatial).enter() * interest::HYSTERESIS,
        o.interest_rounds,
        o.interest_ticks,
    );
    m.push_str(&interest_table(int));
    let _ = writeln!(
        m,
        "\n- **Budgets and latest state** (netz-core's deterministic \
         simulator, virtual time: the figures are the protocol's): one master \
         publishes 1,000 movers whose latest-state track (x, y, z, tick) changes \
         every 50 ms tick, to 8 stations; each of its links has a budget of \
         64,000 B/s; 10 % of the movers have priority gain 16, 30 % gain 4, 60 % \
         gain 1. Bytes are every datagram the master sent a station over the \
         measured ticks; staleness is the age of the state a station holds \
         (now minus when the master made it), sampled every other tick for \
         every mover and station in the middle of every other tick. Under loss: 200 movers, 4 stations, 20 % of \
         the datagrams lost, no budget, the same track as latest state and as \
         a reliable dataset. Wire bytes per update: `Unit`'s `Motion` (seven \
         fields, 26 B of postcard) through `update_all`, every datagram the \
         master sent (headers, acknowledgements, heartbeats) over the updates. \
         Quantized positions: 17 bits a coordinate, a dataset changing alone."
    );
    let _ = writeln!(
        m,
        "\nThe criterion benches of the sans-IO core (`cd bench && cargo bench`) \
         cover the pipeline, RMC dispatch, dataset encoding, the scaling series \
         and interest management; \
         see [README.md](README.md#benchmarks)."
    );
    m
}

/// Everything after this line of `BENCHMARKS.md` is kept when the file is
/// written again.
const NOTES_MARKER: &str = "<!-- notes: kept when compare rewrites this file -->";

fn main() {
    let o = Opts::parse();
    let run = |section: &str| o.runs(section);
    let mem = if run("memory") {
        alloc::set_enabled(true);
        eprintln!("memory: {} objects", o.memory_objects);
        let m = memory::measure(o.memory_objects);
        alloc::set_enabled(false);
        m
    } else {
        alloc::set_enabled(false);
        MemoryReport {
            objects: 0,
            master_alone: f64::NAN,
            master: f64::NAN,
            duplica: f64::NAN,
            user_object: 0,
        }
    };
    let rmc = if run("rmc") {
        measure_rmc(&o)
    } else {
        Rmc::default()
    };
    let rep = if run("replication") {
        measure_replication(&o)
    } else {
        Replication {
            duplicas: 8,
            objects: 0,
            per_duplica: Vec::new(),
            wire_per_update: Vec::new(),
            postcard: 26,
        }
    };
    let rec = if run("recovery") {
        measure_recovery(&o)
    } else {
        Recovery {
            heartbeat: Duration::from_millis(50),
            failure_timeout: Duration::from_millis(300),
            objects: 0,
            detect: Vec::new(),
            recover: Vec::new(),
        }
    };
    let mig = if run("migration") {
        measure_migration(&o)
    } else {
        Migration {
            blackout: Vec::new(),
            failed: 0,
            moved: 0,
        }
    };
    let int = if run("interest") {
        measure_interest(&o)
    } else {
        Interest {
            stations: INTEREST_STATIONS,
            objects: o.interest_objects,
            spatial: Vec::new(),
            always: Vec::new(),
            series: Vec::new(),
        }
    };
    let bud = if run("budget") {
        measure_budget(&o)
    } else {
        Budget::empty()
    };
    let extra = measure_extra(&o);
    let main_table = MAIN_SECTIONS.iter().any(|s| o.runs(s));
    let table = if main_table {
        report(&o, &rmc, &rep, &rec, &mig, &mem, &int, &bud)
    } else {
        String::new()
    };
    if main_table {
        println!("{table}");
    }
    if !int.series.is_empty() {
        println!("{}", interest_table(&int));
    }
    for b in &extra.blocks {
        println!("{}", b.1);
    }
    let Some(path) = &o.out else { return };
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let md = if o.only.is_none() {
        let mut md = markdown(&o, &table, &rmc, &rec, &mem, &int);
        for (name, content) in &extra.blocks {
            md.push('\n');
            md.push_str(&sections::block(name, content));
        }
        // Blocks of sections this run did not measure, then the
        // hand-written notes after the marker, survive a rerun.
        let notes = old.find(NOTES_MARKER).unwrap_or(old.len());
        for name in sections::names(&old[..notes]) {
            if !extra.blocks.iter().any(|b| b.0 == name) {
                if let Some(b) = sections::get(&old, &name) {
                    md.push('\n');
                    md.push_str(b);
                }
            }
        }
        if notes < old.len() {
            md.push('\n');
            md.push_str(&old[notes..]);
        }
        md
    } else if o.update && !extra.blocks.is_empty() {
        let mut md = old;
        for (name, content) in &extra.blocks {
            md = sections::replace_block(&md, name, content, NOTES_MARKER);
        }
        md
    } else {
        eprintln!("a partial run writes nothing (see --update in --help)");
        return;
    };
    match std::fs::write(path, md) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    let dir = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(CHART_DIR);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }
    for (file, svg) in &extra.charts {
        let p = dir.join(file);
        match std::fs::write(&p, svg) {
            Ok(()) => eprintln!("wrote {}", p.display()),
            Err(e) => eprintln!("cannot write {}: {e}", p.display()),
        }
    }
}

// ------------------------------------------------------------------ blocks

/// The sections whose rows are in the main table.
const MAIN_SECTIONS: [&str; 7] = [
    "rmc",
    "replication",
    "recovery",
    "migration",
    "memory",
    "interest",
    "budget",
];

/// Where the charts go, relative to `BENCHMARKS.md`.
const CHART_DIR: &str = "docs/bench";

/// The marked blocks (name, Markdown) and charts (file name, SVG) of the
/// sections outside the main table.
#[derive(Default)]
struct Extra {
    blocks: Vec<(String, String)>,
    charts: Vec<(String, String)>,
}

/// How a block says when and how it was measured.
fn provenance(o: &Opts, section: &str, load: &str) -> String {
    format!(
        "Measured on {} by `cd bench && cargo run --release{} --bin compare -- --only {section}{}` ({}; load average {load} before, {} after).",
        today(),
        if section == "peers" { " --features peers" } else { "" },
        if o.rounds != 7 || o.floor_calls != 3000 { " --quick" } else { "" },
        machine(),
        sections::load_average(),
    )
}

fn measure_extra(o: &Opts) -> Extra {
    let mut x = Extra::default();
    if o.runs("floors") {
        let load = sections::load_average();
        let f = floors::measure(o.rounds, o.floor_calls);
        x.blocks.push(("floors".into(), floors_block(o, &f, &load)));
        x.charts.push(("rmc_latency_cdf.svg".into(), f.cdf_svg()));
    }
    if o.runs("scaling") {
        let load = sections::load_average();
        let points = scaling::measure(o.scaling_ticks);
        let mut m = String::new();
        let _ = writeln!(m, "## Scaling: the cost of a tick\n");
        let _ = writeln!(m, "{}\n", provenance(o, "scaling", &load));
        let _ = writeln!(
            m,
            "netz-core's network simulator (5 ms latency, no loss, every station on \
             one thread): one master changes every field of its units each tick and \
             the tick runs until every duplica station applied every update; the \
             median of {} ticks per point. Stations 2 → 64 at 1,000 units, then units \
             1,000 → 100,000 at 4 stations.\n",
            o.scaling_ticks
        );
        m.push_str(&scaling::table(&points));
        let _ = writeln!(
            m,
            "\n![cost of a tick vs stations]({CHART_DIR}/scaling_stations.svg)\n\
             ![cost of a tick vs units]({CHART_DIR}/scaling_objects.svg)"
        );
        let server = scaling::server_series(o.rounds.min(5), 10);
        let _ = writeln!(
            m,
            "\n### A server's own cost per tick vs its clients\n\n\
             One server masters 1,000 units that all walk every tick, always relevant, so \
             every client receives the same world; the stations are wired in memory \
             and each station's calls are timed on their own (the same harness as the \
             interest rows). The median of {} rounds of 10 ticks per point.\n",
            o.rounds.min(5)
        );
        m.push_str(&scaling::server_table(&server));
        x.blocks.push(("scaling".into(), m));
        x.charts.push((
            "scaling_stations.svg".into(),
            scaling::stations_svg(&points),
        ));
        x.charts
            .push(("scaling_objects.svg".into(), scaling::objects_svg(&points)));
    }
    if o.runs("peers") {
        measure_peers(o, &mut x);
    }
    x
}

#[cfg(feature = "peers")]
fn measure_peers(o: &Opts, x: &mut Extra) {
    let load = sections::load_average();
    let p = netz_bench::peers::measure(o.rounds.min(5), o.ticks.min(50), 20);
    let mut m = String::new();
    let _ = writeln!(m, "## Peers: naia and renet side by side\n");
    let _ = writeln!(m, "{}\n", provenance(o, "peers", &load));
    let _ = writeln!(
        m,
        "Replication: the scenario of the table's replication rows written for \
         each (1 server, 8 clients, 1,000 entities × 7 fields changing every \
         tick, loopback), the server on one thread and the 8 clients on \
         another; each tick waits until every client applied every entity's \
         update. netz: `NetStation`s on a current-thread runtime per thread; \
         naia 0.24 with its native UDP transport (0.25 cannot connect, see the \
         notes), a loop per thread (a pass that found nothing sleeps 20 µs). \
         Wire bytes: the UDP payloads the server sent per entity \
         update delivered; CPU: each thread's on-CPU time per delivered field \
         update (the clients' thread for all 8 clients together); heap: the \
         counting allocator, one server and one client on one thread. \
         Messages: batches of reliable ordered `i32` messages from a client to \
         a server on loopback, one thread (netz: one-way RMCs; renet 2: its \
         `ReliableOrdered` channel over plain UDP sockets, no netcode \
         encryption). naia's UDP client binds the address of the host's \
         default route, so these rows were measured in a network namespace \
         whose only route is the loopback (see the notes). Medians of the \
         rounds (minimum–maximum).\n"
    );
    m.push_str(&p.tables());
    let _ = writeln!(
        m,
        "\n![wire bytes per entity update, netz and naia]({CHART_DIR}/peers_bytes_per_update.svg)"
    );
    x.blocks.push(("peers".into(), m));
    x.charts
        .push(("peers_bytes_per_update.svg".into(), p.bytes_svg()));
}

#[cfg(not(feature = "peers"))]
fn measure_peers(_: &Opts, _: &mut Extra) {
    eprintln!(
        "the peers are not built: cargo run --release --features peers --bin compare -- --peers"
    );
}

fn floors_block(o: &Opts, f: &floors::Floors, load: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "## Floors: sequential round trips on this machine\n");
    let _ = writeln!(m, "{}\n", provenance(o, "floors", load));
    let _ = writeln!(
        m,
        "A strict ping-pong of one {} B datagram (the size of netz's RMC request) \
         on 127.0.0.1, against netz's sequential RMC (`NetStation::call` of \
         `Unit::ping(i32)`, two stations in one process). Each runtime runs on a \
         thread of its own for the whole run and the calling task is spawned on \
         it; std sockets run the echo server on a thread of its own. {} rounds of \
         {} calls per contender, the order rotated round by round, every call \
         timed. Mean: the median of the rounds' means (minimum–maximum); p50 and \
         p99 of every call of every round; the means' ratios per round against \
         the fastest floor of the same runtime kind and against the fastest floor \
         of any kind, then the same ratios of the p50s (on a loaded machine a \
         round's mean takes every stall of its thread; the p50 does not).\n",
        f.payload, o.rounds, f.calls
    );
    m.push_str(&f.table());
    let _ = writeln!(
        m,
        "\n![RMC latency distribution against the floors]({CHART_DIR}/rmc_latency_cdf.svg)"
    );
    m
}
