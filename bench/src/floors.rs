//! The floors a user of UDP could reach on this machine, next to netz's
//! sequential RMC on the same runtimes.
//!
//! Contenders, each a strict ping-pong (one datagram out, wait for its echo)
//! of the size of netz's RMC request, on 127.0.0.1:
//!
//! - [`Contender::StdBlocking`]: blocking `std::net::UdpSocket`s, the echo
//!   server on a thread of its own;
//! - [`Contender::StdSpinning`]: the same with non-blocking sockets that
//!   spin on `recv` (no sleeping in the kernel, one core each);
//! - [`Contender::TokioCurrentThread`] / [`Contender::TokioMultiThread`]:
//!   tokio `UdpSocket`s, client and echo tasks on one current-thread runtime
//!   / on a multi-thread runtime of 2 workers;
//! - [`Contender::NetzCurrentThread`] / [`Contender::NetzMultiThread`]: two
//!   `NetStation`s on those runtimes, the client calling `Unit::ping(i32)`
//!   on the server's master with `NetStation::call`.
//!
//! Each runtime lives on a thread of its own for the whole run (so the
//! stations' heartbeats keep flowing while another contender is measured);
//! the calling task is spawned on the runtime. Every call is timed on its
//! own, so a round gives its mean and the pooled samples give percentiles
//! and the latency distribution.

use crate::classes::{registry, Unit};
use crate::socket::{CountingSocket, WireCounter};
use crate::stats::{Percentiles, Summary};
use netz_core::{DOHandle, ProcessType, RmcContext};
use netz_net::{NetConfig, NetStation};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a ping waits for its echo before it is sent again (a datagram
/// lost on loopback would otherwise stall the run).
const RESEND: Duration = Duration::from_millis(200);

/// What runs the contender's I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Plain threads and blocking or spinning sockets.
    Threads,
    /// A tokio current-thread runtime (everything on one thread).
    CurrentThread,
    /// A tokio multi-thread runtime with 2 workers.
    MultiThread,
}

impl Runtime {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Threads => "std threads",
            Runtime::CurrentThread => "tokio current-thread",
            Runtime::MultiThread => "tokio multi-thread (2 workers)",
        }
    }
}

/// One contender of the floors section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// Blocking std sockets.
    StdBlocking,
    /// Non-blocking std sockets spinning on `recv`.
    StdSpinning,
    /// tokio sockets on a current-thread runtime.
    TokioCurrentThread,
    /// tokio sockets on a multi-thread runtime.
    TokioMultiThread,
    /// netz's sequential RMC on a current-thread runtime.
    NetzCurrentThread,
    /// netz's sequential RMC on a multi-thread runtime.
    NetzMultiThread,
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 6] = [
        Contender::StdBlocking,
        Contender::StdSpinning,
        Contender::TokioCurrentThread,
        Contender::TokioMultiThread,
        Contender::NetzCurrentThread,
        Contender::NetzMultiThread,
    ];

    /// What it is, for tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Contender::StdBlocking => "UDP ping-pong, blocking std sockets",
            Contender::StdSpinning => "UDP ping-pong, std sockets spinning on recv",
            Contender::TokioCurrentThread => "UDP ping-pong, tokio current-thread",
            Contender::TokioMultiThread => "UDP ping-pong, tokio multi-thread",
            Contender::NetzCurrentThread => "netz RMC, tokio current-thread",
            Contender::NetzMultiThread => "netz RMC, tokio multi-thread",
        }
    }

    /// The runtime it runs on.
    pub fn runtime(self) -> Runtime {
        match self {
            Contender::StdBlocking | Contender::StdSpinning => Runtime::Threads,
            Contender::TokioCurrentThread | Contender::NetzCurrentThread => Runtime::CurrentThread,
            Contender::TokioMultiThread | Contender::NetzMultiThread => Runtime::MultiThread,
        }
    }

    /// Whether it is netz (not a floor).
    pub fn is_netz(self) -> bool {
        matches!(
            self,
            Contender::NetzCurrentThread | Contender::NetzMultiThread
        )
    }
}

/// What one contender measured over the run.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The mean round trip of each round, µs.
    pub rounds: Vec<f64>,
    /// Every call's round trip, µs, over all rounds.
    pub samples: Vec<f64>,
}

/// The floors section's figures.
#[derive(Debug, Clone)]
pub struct Floors {
    /// The datagram size of every ping (netz's RMC request), bytes.
    pub payload: usize,
    /// Calls per round and contender.
    pub calls: usize,
    /// One series per contender, in [`Contender::ALL`]'s order.
    pub series: Vec<(Contender, Series)>,
}

impl Floors {
    /// The series of `c`.
    pub fn get(&self, c: Contender) -> &Series {
        &self
            .series
            .iter()
            .find(|(k, _)| *k == c)
            .expect("every contender is measured")
            .1
    }

    /// Per round, `c`'s mean divided by the fastest floor's mean of that
    /// round among the floors accepted by `which`.
    pub fn ratio(&self, c: Contender, which: impl Fn(Contender) -> bool) -> Summary {
        let mine = &self.get(c).rounds;
        let ratios: Vec<f64> = (0..mine.len())
            .map(|r| {
                let best = Contender::ALL
                    .iter()
                    .filter(|k| !k.is_netz() && which(**k))
                    .map(|k| self.get(*k).rounds[r])
                    .fold(f64::INFINITY, f64::min);
                mine[r] / best
            })
            .collect();
        Summary::of(&ratios)
    }

    /// `c`'s round means against the fastest floor of its own runtime kind.
    pub fn vs_own_kind(&self, c: Contender) -> Summary {
        self.ratio(c, |k| k.runtime() == c.runtime())
    }

    /// `c`'s round means against the fastest floor of any kind.
    pub fn vs_fastest(&self, c: Contender) -> Summary {
        self.ratio(c, |_| true)
    }

    /// The percentiles of `c`'s pooled samples.
    pub fn percentiles(&self, c: Contender) -> Percentiles {
        Percentiles::of(&self.get(c).samples)
    }

    /// `c`'s pooled p50 divided by the lowest pooled p50 of the floors
    /// accepted by `which`.
    pub fn p50_ratio(&self, c: Contender, which: impl Fn(Contender) -> bool) -> f64 {
        let best = Contender::ALL
            .iter()
            .filter(|k| !k.is_netz() && which(**k))
            .map(|k| self.percentiles(*k).p50)
            .fold(f64::INFINITY, f64::min);
        self.percentiles(c).p50 / best
    }

    /// The floor (not netz) with the lowest median round mean.
    pub fn fastest_floor(&self) -> Contender {
        Contender::ALL
            .into_iter()
            .filter(|c| !c.is_netz())
            .min_by(|a, b| {
                Summary::of(&self.get(*a).rounds)
                    .median
                    .total_cmp(&Summary::of(&self.get(*b).rounds).median)
            })
            .expect("floors exist")
    }
}

// ------------------------------------------------------------------ std

/// A std echo server on a thread of its own; stops when dropped.
struct StdEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StdEcho {
    fn start(spin: bool) -> StdEcho {
        let socket = StdUdp::bind("127.0.0.1:0").expect("udp bind");
        let addr = socket.local_addr().expect("udp addr");
        if spin {
            socket.set_nonblocking(true).expect("non-blocking");
        } else {
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("read timeout");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(_) => {}
                }
            }
        });
        StdEcho {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StdEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A std client of a [`StdEcho`], blocking or spinning like it.
struct StdClient {
    socket: StdUdp,
    spin: bool,
    _echo: StdEcho,
}

impl StdClient {
    fn start(spin: bool) -> StdClient {
        let echo = StdEcho::start(spin);
        let socket = StdUdp::bind("127.0.0.1:0").expect("udp bind");
        socket.connect(echo.addr).expect("udp connect");
        if spin {
            socket.set_nonblocking(true).expect("non-blocking");
        } else {
            socket.set_read_timeout(Some(RESEND)).expect("read timeout");
        }
        StdClient {
            socket,
            spin,
            _echo: echo,
        }
    }

    fn pingpong(&self, payload: usize, n: usize, out: &mut Vec<f64>) {
        let mut msg = vec![0u8; payload.max(4)];
        let mut buf = [0u8; 2048];
        for i in 0..n {
            msg[..4].copy_from_slice(&(i as u32).to_le_bytes());
            let start = Instant::now();
            let mut sent = start;
            let _ = self.socket.send(&msg);
            loop {
                match self.socket.recv(&mut buf) {
                    Ok(got) if got >= 4 && buf[..4] == msg[..4] => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if !self.spin || sent.elapsed() > RESEND {
                            sent = Instant::now();
                            let _ = self.socket.send(&msg);
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    Err(_) => {}
                }
            }
            out.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
}

// ------------------------------------------------------------------ tokio

/// A tokio ping-pong pair on the current runtime.
struct TokioPair {
    client: tokio::net::UdpSocket,
}

impl TokioPair {
    async fn start() -> TokioPair {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("udp bind");
        let addr = server.local_addr().expect("udp addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("udp bind");
        client.connect(addr).await.expect("udp connect");
        TokioPair { client }
    }

    async fn pingpong(&self, payload: usize, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        let mut msg = vec![0u8; payload.max(4)];
        let mut buf = vec![0u8; 2048];
        for i in 0..n {
            msg[..4].copy_from_slice(&(i as u32).to_le_bytes());
            let start = Instant::now();
            self.client.send(&msg).await.expect("udp send");
            // No timer: a floor pays for nothing it does not need (nothing
            // is lost on loopback at one datagram in flight).
            loop {
                let got = self.client.recv(&mut buf).await.expect("udp recv");
                if got >= 4 && buf[..4] == msg[..4] {
                    break;
                }
            }
            out.push(start.elapsed().as_secs_f64() * 1e6);
        }
        out
    }
}

// ------------------------------------------------------------------ netz

/// Two netz stations; `target` is a unit mastered by `server`.
struct NetzPair {
    _server: NetStation,
    client: NetStation,
    target: DOHandle,
    client_wire: Arc<WireCounter>,
    server_wire: Arc<WireCounter>,
}

async fn bind(process: ProcessType, token: &str, counter: Arc<WireCounter>) -> NetStation {
    let socket = CountingSocket::bind("127.0.0.1:0".parse().expect("addr"), counter)
        .await
        .expect("netz bind");
    NetStation::with_socket(socket, NetConfig::new(process, token), registry())
        .expect("netz station")
}

impl NetzPair {
    async fn start() -> NetzPair {
        let client_wire = Arc::new(WireCounter::default());
        let server_wire = Arc::new(WireCounter::default());
        let server = bind(ProcessType::Server, "server", server_wire.clone()).await;
        server.create_session().expect("session");
        let client = bind(ProcessType::Client, "client", client_wire.clone()).await;
        client.join(server.local_addr()).await.expect("join");
        let target = server.publish(Unit::default()).expect("publish").handle();
        assert!(
            client
                .wait_until(Duration::from_secs(5), |st| st.contains(target))
                .await,
            "the unit reached the client"
        );
        NetzPair {
            _server: server,
            client,
            target,
            client_wire,
            server_wire,
        }
    }

    async fn sequential(&self, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        let ctx: RmcContext<i32> = RmcContext::on_master();
        let h = self.target;
        for i in 0..n {
            let i = i as i32;
            let start = Instant::now();
            self.client
                .call(&ctx, |st| st.object::<Unit>(h).call_ping(&ctx, i))
                .await
                .expect("netz call");
            out.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(ctx.result(), Some(i));
        }
        out
    }

    /// Datagrams both stations sent so far.
    fn datagrams(&self) -> u64 {
        self.client_wire.get().1 + self.server_wire.get().1
    }

    /// Mean size of the datagrams the caller sends for sequential calls.
    async fn request_size(&self) -> usize {
        let (b0, d0) = self.client_wire.get();
        self.sequential(200).await;
        let (b1, d1) = self.client_wire.get();
        ((b1 - b0) as f64 / (d1 - d0).max(1) as f64).round() as usize
    }
}

// ------------------------------------------------------------------ hosts

enum Cmd {
    Tokio(usize, usize, mpsc::Sender<Vec<f64>>),
    Netz(usize, mpsc::Sender<Vec<f64>>),
    Datagrams(mpsc::Sender<Vec<f64>>),
}

/// A tokio runtime on a thread of its own, running a ping-pong pair and a
/// netz pair, measuring on request.
struct Host {
    tx: tokio::sync::mpsc::UnboundedSender<Cmd>,
    thread: Option<JoinHandle<()>>,
    /// netz's request size on this runtime.
    payload: usize,
}

impl Host {
    fn start(multi: bool) -> Host {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = if multi { "floor-mt" } else { "floor-ct" };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = if multi {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                }
                .expect("runtime");
                rt.block_on(async move {
                    let netz = Arc::new(NetzPair::start().await);
                    let udp = Arc::new(TokioPair::start().await);
                    let payload = {
                        let n = netz.clone();
                        tokio::spawn(async move { n.request_size().await })
                            .await
                            .expect("measuring task")
                    };
                    let _ = ready_tx.send(payload);
                    while let Some(cmd) = rx.recv().await {
                        match cmd {
                            Cmd::Tokio(payload, n, reply) => {
                                let u = udp.clone();
                                let v = tokio::spawn(async move { u.pingpong(payload, n).await })
                                    .await
                                    .expect("measuring task");
                                let _ = reply.send(v);
                            }
                            Cmd::Datagrams(reply) => {
                                let _ = reply.send(vec![netz.datagrams() as f64]);
                            }
                            Cmd::Netz(n, reply) => {
                                let z = netz.clone();
                                let v = tokio::spawn(async move { z.sequential(n).await })
                                    .await
                                    .expect("measuring task");
                                let _ = reply.send(v);
                            }
                        }
                    }
                });
            })
            .expect("a thread for the runtime");
        let payload = ready_rx.recv().expect("the runtime's thread started");
        Host {
            tx,
            thread: Some(thread),
            payload,
        }
    }

    fn run(&self, make: impl FnOnce(mpsc::Sender<Vec<f64>>) -> Cmd) -> Vec<f64> {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(make(reply)).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Measures every contender: a warm-up of 200 calls each, then `rounds`
/// rounds of `calls` calls each, the order rotated round by round.
pub fn measure(rounds: usize, calls: usize) -> Floors {
    let ct = Host::start(false);
    let mt = Host::start(true);
    let payload = ct.payload.max(mt.payload);
    let blocking = StdClient::start(false);
    let spinning = StdClient::start(true);
    let run = |c: Contender, n: usize| -> Vec<f64> {
        match c {
            Contender::StdBlocking => {
                let mut v = Vec::with_capacity(n);
                blocking.pingpong(payload, n, &mut v);
                v
            }
            Contender::StdSpinning => {
                let mut v = Vec::with_capacity(n);
                spinning.pingpong(payload, n, &mut v);
                v
            }
            Contender::TokioCurrentThread => ct.run(|r| Cmd::Tokio(payload, n, r)),
            Contender::TokioMultiThread => mt.run(|r| Cmd::Tokio(payload, n, r)),
            Contender::NetzCurrentThread => ct.run(|r| Cmd::Netz(n, r)),
            Contender::NetzMultiThread => mt.run(|r| Cmd::Netz(n, r)),
        }
    };
    for c in Contender::ALL {
        run(c, 200);
    }
    let mut series: Vec<(Contender, Series)> = Contender::ALL
        .iter()
        .map(|c| (*c, Series::default()))
        .collect();
    for round in 0..rounds {
        eprint!("\rfloors round {}/{rounds}   ", round + 1);
        for k in 0..Contender::ALL.len() {
            let i = (round + k) % Contender::ALL.len();
            let v = run(Contender::ALL[i], calls);
            let s = &mut series[i].1;
            s.rounds.push(v.iter().sum::<f64>() / v.len().max(1) as f64);
            s.samples.extend(v);
        }
    }
    eprintln!();
    Floors {
        payload,
        calls,
        series,
    }
}

fn fmt_summary(s: Summary, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

impl Floors {
    /// The floors as a Markdown table: per contender the mean round trip
    /// (median of the rounds, with their minimum and maximum), the pooled
    /// p50 and p99, the ratios of the means per round against the fastest
    /// floor of the same runtime kind and against the fastest floor of any
    /// kind, and the same two ratios of the pooled p50s (which a stall of
    /// the thread in one round does not move).
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| Round trip of {} B, sequential | Runtime | Mean, µs | p50, µs | p99, µs | mean / fastest floor of its runtime | mean / fastest floor overall | p50 / fastest floor of its runtime | p50 / fastest floor overall |",
            self.payload
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
        for c in Contender::ALL {
            let s = self.get(c);
            let p = self.percentiles(c);
            let own = self.vs_own_kind(c);
            let all = self.vs_fastest(c);
            let name = if c.is_netz() {
                format!("**{}**", c.name())
            } else {
                c.name().to_string()
            };
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {:.1} | {:.1} | {}× | {}× | {:.2}× | {:.2}× |",
                c.runtime().name(),
                fmt_summary(Summary::of(&s.rounds), 1),
                p.p50,
                p.p99,
                fmt_summary(own, 2),
                fmt_summary(all, 2),
                self.p50_ratio(c, |k| k.runtime() == c.runtime()),
                self.p50_ratio(c, |_| true),
            );
        }
        t
    }
}

impl Floors {
    /// The latency distributions of netz and the floors as an SVG chart, up
    /// to the 99th percentile.
    pub fn cdf_svg(&self) -> String {
        use crate::charts::{cdf_chart, Axis};
        let order = [
            Contender::NetzCurrentThread,
            Contender::TokioCurrentThread,
            Contender::NetzMultiThread,
            Contender::TokioMultiThread,
            Contender::StdBlocking,
            Contender::StdSpinning,
        ];
        let sets: Vec<(String, &[f64], bool)> = order
            .iter()
            .map(|c| {
                let short = match c {
                    Contender::NetzCurrentThread => "netz, current-thread",
                    Contender::TokioCurrentThread => "UDP, tokio current-thread",
                    Contender::NetzMultiThread => "netz, multi-thread",
                    Contender::TokioMultiThread => "UDP, tokio multi-thread",
                    Contender::StdBlocking => "UDP, blocking std",
                    Contender::StdSpinning => "UDP, spinning std",
                };
                (short.to_string(), &self.get(*c).samples[..], !c.is_netz())
            })
            .collect();
        cdf_chart(
            &format!(
                "RMC round trip vs UDP ping-pong ({} B), loopback",
                self.payload
            ),
            &Axis::log("round trip, µs"),
            &sets,
            0.99,
        )
    }
}

/// Only netz's and tokio's ping-pongs on one runtime (multi-thread or
/// current-thread), `rounds` rounds of `calls` calls each: the mean round
/// trips of netz and of the tokio floor per round, µs, and the datagrams
/// netz sent per call, for profiling and quick comparisons.
pub fn netz_and_tokio(multi: bool, rounds: usize, calls: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let host = Host::start(multi);
    let payload = host.payload;
    host.run(|r| Cmd::Netz(200, r));
    host.run(|r| Cmd::Tokio(payload, 200, r));
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mut netz, mut tokio) = (Vec::new(), Vec::new());
    let mut datagrams = 0.0;
    for _ in 0..rounds {
        let d0 = host.run(Cmd::Datagrams)[0];
        netz.push(mean(host.run(|r| Cmd::Netz(calls, r))));
        datagrams += host.run(Cmd::Datagrams)[0] - d0;
        tokio.push(mean(host.run(|r| Cmd::Tokio(payload, calls, r))));
    }
    (netz, tokio, datagrams / (rounds * calls).max(1) as f64)
}
