//! The netz demo: a session of station processes on loopback.
//!
//! `cargo run --release --example demo` starts one server, three clients and
//! one tool station, each a separate OS process (this same program, started
//! again with a hidden `--role` argument), publishes objects declared with
//! the DSL, runs RMCs and actions, kills the server with SIGKILL to show
//! fault recovery and session-master takeover, and tells the story with
//! timings. No outside service is needed; every process is reaped.
//!
//! Security is on: the server process also plays the game's backend. It
//! draws a token key from the OS, and issues a connect token for each
//! station before it starts (`issue ROLE NAME`); the station gets it as text
//! in its environment and joins with it, and every link datagram is sealed.

use netz::crypto::{ConnectToken, TokenIssuer};
use netz::net::security::{new_token_key, TokenIssuerExt};
use netz::prelude::*;
use netz::Event;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------ the game

/// The scoreboard's replicated state.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Board {
    /// The round being played.
    pub round: u32,
    /// Best score per player, best first.
    pub scores: Vec<(String, i64)>,
}

/// One scoreboard for the whole session, published by the server.
#[doclass]
#[derive(Default)]
pub struct Scoreboard {
    /// Replicated to every station.
    #[dataset]
    pub board: Board,
    /// Announcements heard here (local, not replicated).
    pub heard: Vec<String>,
}

#[doclass]
impl Scoreboard {
    /// Records a score; returns the player's rank (an RMC with a return value).
    #[rmc]
    pub fn submit(&mut self, player: &str, points: i64) -> u32 {
        let scores = &mut self.board.scores;
        match scores.iter_mut().find(|(p, _)| p == player) {
            Some(entry) => entry.1 = entry.1.max(points),
            None => scores.push((player.to_string(), points)),
        }
        scores.sort_by_key(|s| std::cmp::Reverse(s.1));
        1 + scores.iter().position(|(p, _)| p == player).unwrap_or(0) as u32
    }

    /// An announcement: runs on the master, then on every duplica.
    #[action]
    pub fn announce(&mut self, text: &str) {
        self.heard.push(text.to_string());
    }

    /// The session keeps the scoreboard when its master's station fails.
    fn approve_fault_recovery(&self) -> bool {
        true
    }
}

/// A crate's replicated state.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Loot {
    /// What is inside.
    pub item: String,
    /// Whether the crate outlives the station that owns it.
    pub persistent: bool,
}

/// A crate lying in the world.
#[doclass]
#[derive(Default)]
pub struct Crate {
    /// Replicated to every station.
    #[dataset]
    pub loot: Loot,
}

#[doclass]
impl Crate {
    /// Only persistent crates are taken over when their master fails.
    fn approve_fault_recovery(&self) -> bool {
        self.loot.persistent
    }
}

/// A player's replicated state.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Body {
    /// The player's name.
    pub name: String,
    /// Health points.
    pub hp: i32,
}

/// A player's avatar, published by its client. When the client's process
/// dies, its avatar goes with it (the default fault recovery).
#[doclass]
#[derive(Default)]
pub struct Avatar {
    /// Replicated to every station.
    #[dataset]
    pub body: Body,
}

#[doclass]
impl Avatar {
    /// Takes damage on the master; returns the health left.
    #[rmc]
    pub fn hit(&mut self, damage: i32) -> i32 {
        self.body.hp -= damage;
        self.body.hp
    }
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Scoreboard>().expect("register Scoreboard");
    r.register::<Crate>().expect("register Crate");
    r.register::<Avatar>().expect("register Avatar");
    Arc::new(r)
}

/// The game's protocol id: tokens of another game do not open.
const GAME: u64 = 0x6e65_747a_6465_6d6f;
/// Where a station process finds its connect token (text form).
const TOKEN_ENV: &str = "NETZ_DEMO_CONNECT_TOKEN";

const HEARTBEAT: Duration = Duration::from_millis(100);
const FAILURE_TIMEOUT: Duration = Duration::from_millis(1000);
const WAIT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        return station_process(&args[i + 1..]);
    }
    // --hold: keep the session (and its monitor page) open at the end until Enter.
    let hold = args.iter().any(|a| a == "--hold");
    if hold {
        std::env::set_var("NETZ_DEMO_HOLD", "1");
    }
    let mut children = Children(Vec::new());
    let code = match story(&mut children, hold) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("\nthe demo failed: {e}");
            ExitCode::FAILURE
        }
    };
    // Whatever happened, every child is killed (if still running) and reaped.
    drop(children);
    code
}

// ------------------------------------------------------ a station process

/// `demo --role server|client|tool NAME [CONTACT]`: one station, driven by
/// commands on stdin; answers and events go to stdout.
fn station_process(args: &[String]) -> ExitCode {
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=netz_core=debug), on stderr.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("error {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        // With --hold the session stays open for a person to look: no time limit then.
        let limit = if std::env::var_os("NETZ_DEMO_HOLD").is_some() {
            86_400
        } else {
            120
        };
        match tokio::time::timeout(Duration::from_secs(limit), station_main(args)).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                println!("error {e}");
                ExitCode::FAILURE
            }
            Err(_) => ExitCode::FAILURE,
        }
    });
    rt.shutdown_background();
    code
}

async fn station_main(args: &[String]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (role, name) = (args[0].as_str(), args[1].clone());
    let process_type = role.parse().unwrap_or(ProcessType::Client);
    let mut config = NetConfig::new(process_type, name.clone())
        .heartbeat_interval(HEARTBEAT)
        .failure_timeout(FAILURE_TIMEOUT)
        .join_timeout(Duration::from_millis(500));
    // The session's creator is the backend: it holds the token key. Every
    // other station joins with the token the backend issued for it.
    let mut issuer = None;
    if args.get(2).is_none() {
        let key = new_token_key()?;
        issuer = Some(TokenIssuer::new(&key, GAME));
        config = config.secure_authority(key, GAME);
    } else {
        let text = std::env::var(TOKEN_ENV).map_err(|_| format!("{TOKEN_ENV} is not set"))?;
        config = config.secure_joiner(ConnectToken::from_text(&text)?, GAME);
    }
    let station = NetStation::bind("127.0.0.1:0".parse()?, config, registry()).await?;
    let mut events = station.events();
    let started = Instant::now();
    match args.get(2) {
        None => {
            let id = station.create_session()?;
            println!("ready addr={} id={} ms=0", station.local_addr(), id.0);
        }
        Some(contact) => {
            let (id, _) = station.join(contact.parse::<SocketAddr>()?).await?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            println!("ready addr={} id={} ms={ms:.1}", station.local_addr(), id.0);
        }
    }
    // The tool station serves the live monitor page while it runs.
    let _monitor = match role {
        "tool" => {
            let m = netz_monitor::serve(station.clone(), "127.0.0.1:0".parse()?).await?;
            println!("monitor url={}", m.url());
            Some(m)
        }
        _ => None,
    };
    let mut stdin = stdin_lines();
    // The game loop: send what changed on our masters 20 times a second.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            line = stdin.recv() => match line {
                Some(line) => {
                    if line.trim() == "quit" {
                        break;
                    }
                    let reply = command(&station, issuer.as_ref(), &name, line.trim()).await;
                    println!("{reply}");
                }
                // The parent is gone: stop at once.
                None => return Ok(()),
            },
            e = events.recv() => match e {
                Some(Event::StationFailed(id)) => println!("event failed id={}", id.0),
                Some(Event::StationLeft(id)) => println!("event left id={}", id.0),
                Some(Event::SessionMasterChanged { new_master }) => {
                    println!("event session-master id={}", new_master.0)
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {
                station.update_all();
            }
        }
    }
    station.leave().await?;
    println!("left");
    Ok(())
}

fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn board_of(st: &Station) -> Option<Ref<Scoreboard>> {
    st.select::<Scoreboard>().into_iter().next()
}

/// Runs one command of the parent; returns the reply line.
async fn command(
    station: &NetStation,
    issuer: Option<&TokenIssuer>,
    name: &str,
    line: &str,
) -> String {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "issue" => {
            // The backend's job: a token for one station, valid one minute.
            let Some(issuer) = issuer else {
                return "err this station is not the backend".into();
            };
            let process_type = match rest.split(' ').next() {
                Some("server") => ProcessType::Server,
                Some("tool") => ProcessType::Tool,
                _ => ProcessType::Client,
            };
            let client_id = station.read(|st| st.stations().len() as u64) + 100;
            match issuer.issue_for(client_id, process_type, Duration::from_secs(60)) {
                Ok(t) => format!("token {}", t.to_text()),
                Err(e) => format!("err {e}"),
            }
        }
        "publish-world" => {
            let board = station.publish(Scoreboard::default());
            let gold = station.publish(Crate {
                loot: Loot {
                    item: "gold".into(),
                    persistent: true,
                    ..Default::default()
                },
            });
            let smoke = station.publish(Crate {
                loot: Loot {
                    item: "smoke".into(),
                    persistent: false,
                    ..Default::default()
                },
            });
            match (board, gold, smoke) {
                (Ok(_), Ok(_), Ok(_)) => "ok".into(),
                _ => "err publish".into(),
            }
        }
        "publish-avatar" => {
            let avatar = Avatar {
                body: Body {
                    name: name.into(),
                    hp: 100,
                    ..Default::default()
                },
            };
            match station.publish(avatar) {
                Ok(_) => "ok".into(),
                Err(e) => format!("err {e}"),
            }
        }
        "census" => station.read(|st| {
            let mut avatars: Vec<String> = st
                .select::<Avatar>()
                .iter()
                .map(|a| a.lock().body.name.clone())
                .collect();
            avatars.sort();
            let mut crates: Vec<String> = st
                .select::<Crate>()
                .iter()
                .map(|c| format!("{}@{}", c.lock().loot.item, c.master_station().0))
                .collect();
            crates.sort();
            let ids: Vec<String> = st.stations().iter().map(|s| s.id.0.to_string()).collect();
            let board = board_of(st)
                .map(|b| {
                    let g = b.lock();
                    let leader = g.board.scores.first().map_or("-", |s| s.0.as_str());
                    format!(
                        "{}@{}:round{}:{leader}",
                        b.handle().0,
                        b.master_station().0,
                        g.board.round
                    )
                })
                .unwrap_or_else(|| "-".into());
            format!(
                "census master={} stations={} avatars={} crates={} board={board} masters={} duplicas={}",
                st.session_master().0,
                ids.join(","),
                avatars.join(","),
                crates.join(","),
                st.masters().len(),
                st.duplicas().len(),
            )
        }),
        "submit" => {
            let points: i64 = rest.parse().unwrap_or(0);
            let ctx = RmcContext::on_master();
            let started = Instant::now();
            let outcome = station
                .call(&ctx, |st| match board_of(st) {
                    Some(b) => st
                        .object::<Scoreboard>(b.handle())
                        .call_submit(&ctx, name, points),
                    None => false,
                })
                .await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match (outcome, ctx.result()) {
                (Ok(Outcome::Success), Some(rank)) => format!("rank {rank} ms={ms:.1}"),
                (outcome, _) => format!("err {outcome:?}"),
            }
        }
        "hit" => {
            let (target, damage) = rest.split_once(' ').unwrap_or((rest, "0"));
            let damage: i32 = damage.parse().unwrap_or(0);
            let ctx = RmcContext::on_master();
            let started = Instant::now();
            let outcome = station
                .call(&ctx, |st| {
                    let avatar = st
                        .select::<Avatar>()
                        .into_iter()
                        .find(|a| a.lock().body.name == target);
                    match avatar {
                        Some(a) => st.object::<Avatar>(a.handle()).call_hit(&ctx, damage),
                        None => false,
                    }
                })
                .await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match (outcome, ctx.result()) {
                (Ok(Outcome::Success), Some(hp)) => format!("hp {hp} ms={ms:.1}"),
                (outcome, _) => format!("err {outcome:?}"),
            }
        }
        "announce" => {
            let sent = station.with(|st, _| {
                let h = board_of(st)?.handle();
                Some(st.object::<Scoreboard>(h).announce_on_master(rest))
            });
            if sent == Some(true) {
                "ok".into()
            } else {
                "err not sent".into()
            }
        }
        "heard" => station.read(|st| {
            let heard = board_of(st).map(|b| b.lock().heard.join("|"));
            format!("heard {}", heard.unwrap_or_default())
        }),
        "next-round" => station.with(|st, now| {
            let Some(b) = board_of(st) else {
                return "err no scoreboard".into();
            };
            b.lock().board.round += 1;
            match st.update(now, b.handle()) {
                Ok(_) => "ok".into(),
                Err(e) => format!("err {e}"),
            }
        }),
        _ => format!("err unknown command {cmd}"),
    }
}

// -------------------------------------------------------- the storyteller

/// A station process and what it printed, each line with its arrival time.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    id: u32,
    addr: String,
}

/// Every child process; dropping it kills and reaps them all.
struct Children(Vec<Proc>);

impl Drop for Children {
    fn drop(&mut self) {
        for p in &mut self.0 {
            p.stdin.take();
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// The storyteller's errors are sentences.
type Result<T> = std::result::Result<T, String>;

impl Proc {
    fn spawn(role: &str, name: &str, contact: Option<&str>, token: Option<&str>) -> Result<Proc> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.args(["--role", role, name]);
        match token {
            Some(t) => cmd.env(TOKEN_ENV, t),
            None => cmd.env_remove(TOKEN_ENV),
        };
        if let Some(c) = contact {
            cmd.arg(c);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name: name.into(),
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            id: 0,
            addr: String::new(),
        })
    }

    /// The first line from index `from` on that matches, with its arrival time.
    fn wait_line(&mut self, from: usize, pred: impl Fn(&str) -> bool) -> Result<(Instant, String)> {
        let deadline = Instant::now() + WAIT;
        let mut i = from;
        loop {
            while i < self.seen.len() {
                if pred(&self.seen[i].1) {
                    return Ok(self.seen[i].clone());
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if l.1.starts_with("error") {
                        return Err(format!("{}: {}", self.name, l.1));
                    }
                    self.seen.push(l)
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{} did not answer in time", self.name))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{} exited unexpectedly", self.name))
                }
            }
        }
    }

    /// Sends a command and returns its reply (the first line starting with one of `prefixes`).
    fn ask(&mut self, cmd: &str, prefixes: &[&str]) -> Result<String> {
        let from = self.seen.len();
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{cmd}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{}: {e}", self.name))?;
        let (_, l) = self.wait_line(from, |l| {
            prefixes.iter().any(|p| l.starts_with(p)) || l.starts_with("err")
        })?;
        if l.starts_with("err") {
            return Err(format!("{}: `{cmd}` failed: {l}", self.name));
        }
        Ok(l)
    }

    fn field(line: &str, key: &str) -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    }

    /// Polls `census` until `ok` holds on it.
    fn census_until(&mut self, ok: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.ask("census", &["census"])?;
            if ok(&c) {
                return Ok(c);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} never reached the expected state: {c}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Story {
    start: Instant,
}

impl Story {
    fn say(&self, text: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs_f64();
        println!("[{t:7.3}s] {}", text.as_ref());
    }
    fn chapter(&self, title: &str) {
        println!("\n== {title}");
    }
}

/// Asks the server process, the game's backend, for a connect token.
fn server_token(children: &mut Children, role: &str, name: &str) -> Result<String> {
    let server = children.0.first_mut().ok_or("no server")?;
    let line = server.ask(&format!("issue {role} {name}"), &["token "])?;
    Ok(line.trim_start_matches("token ").to_string())
}

fn story(children: &mut Children, hold: bool) -> Result<()> {
    let s = Story {
        start: Instant::now(),
    };
    println!("netz demo: one session of five station processes on 127.0.0.1, no outside services.");
    println!(
        "(heartbeat every {} ms; a station silent for {} ms is declared failed)",
        HEARTBEAT.as_millis(),
        FAILURE_TIMEOUT.as_millis()
    );

    s.chapter("1. A session of processes");
    let mut server = Proc::spawn("server", "server", None, None)?;
    let (_, ready) = server.wait_line(0, |l| l.starts_with("ready"))?;
    server.id = Proc::field(&ready, "id").parse().unwrap_or(0);
    server.addr = Proc::field(&ready, "addr");
    let contact = server.addr.clone();
    s.say(format!(
        "server  (pid {}) created the session at {contact}: station {}, the session master",
        server.child.id(),
        server.id
    ));
    server.ask("publish-world", &["ok"])?;
    s.say("server  published a Scoreboard and two Crates: `gold` (persistent) and `smoke` (not)");
    children.0.push(server);
    s.say("security on: the server, also the game's backend, issues a connect token to each station it admits; every link datagram is sealed");

    for (role, name) in [
        ("client", "alice"),
        ("client", "bob"),
        ("client", "carol"),
        ("tool", "monitor"),
    ] {
        let token = server_token(children, role, name)?;
        let mut p = Proc::spawn(role, name, Some(&contact), Some(&token))?;
        let (_, ready) = p.wait_line(0, |l| l.starts_with("ready"))?;
        p.id = Proc::field(&ready, "id").parse().unwrap_or(0);
        s.say(format!(
            "{name:<7} (pid {}, {role}) joined as station {} in {} ms",
            p.child.id(),
            p.id,
            Proc::field(&ready, "ms")
        ));
        if role == "client" {
            p.ask("publish-avatar", &["ok"])?;
        }
        if role == "tool" {
            let (_, line) = p.wait_line(0, |l| l.starts_with("monitor url="))?;
            s.say(format!(
                "{name:<7} serves the live monitor page at {} (pass --hold to keep it open at the end)",
                Proc::field(&line, "url")
            ));
        }
        children.0.push(p);
    }
    s.say("alice, bob and carol each published their Avatar");
    {
        // A token sealed under another key does not open: the join is refused.
        let forged = new_token_key()
            .and_then(|k| {
                TokenIssuer::new(&k, GAME).issue_for(
                    666,
                    ProcessType::Client,
                    Duration::from_secs(60),
                )
            })
            .map_err(|e| e.to_string())?
            .to_text();
        let mut mallory = Children(vec![Proc::spawn(
            "client",
            "mallory",
            Some(&contact),
            Some(&forged),
        )?]);
        match mallory.0[0].wait_line(0, |l| l.starts_with("ready")) {
            Err(e) if e.contains("join failed") => {}
            Err(e) => return Err(e),
            Ok(_) => return Err("mallory joined with a forged token".into()),
        }
        s.say("mallory (a token forged under another key) was turned away: her join got no answer");
    }
    let monitor = 4;
    let c = children.0[monitor].census_until(|c| {
        Proc::field(c, "stations") == "1,2,3,4,5"
            && Proc::field(c, "avatars").split(',').count() == 3
            && Proc::field(c, "crates").split(',').count() == 2
    })?;
    s.say(format!(
        "monitor (a tool station) sees all 5 stations and holds {} duplicas: the avatars of {}, \
         crates {}, the scoreboard, and the core's station and session objects",
        Proc::field(&c, "duplicas"),
        Proc::field(&c, "avatars").replace(',', ", "),
        Proc::field(&c, "crates")
            .replace("@1", "")
            .replace(',', " and ")
            + " (mastered by station 1)",
    ));

    s.chapter("2. Remote method calls, with return values");
    for (i, points) in [(1, 120), (2, 90), (3, 150)] {
        let p = &mut children.0[i];
        let r = p.ask(&format!("submit {points}"), &["rank"])?;
        s.say(format!(
            "{:<7} calls scoreboard.submit(\"{}\", {points}) on its master, station 1: rank {} ({} ms)",
            p.name,
            p.name,
            r.split_whitespace().nth(1).unwrap_or("?"),
            Proc::field(&r, "ms")
        ));
    }
    let r = children.0[3].ask("hit bob 15", &["hp"])?;
    s.say(format!(
        "carol   calls bob's avatar.hit(15) on bob's process: bob has {} hp left ({} ms)",
        r.split_whitespace().nth(1).unwrap_or("?"),
        Proc::field(&r, "ms")
    ));

    s.chapter("3. An action, run on the master and every duplica");
    children.0[0].ask("announce round 1 is over", &["ok"])?;
    s.say("server  calls scoreboard.announce_on_master(\"round 1 is over\")");
    let mut who = Vec::new();
    for p in children.0.iter_mut() {
        let deadline = Instant::now() + WAIT;
        loop {
            let h = p.ask("heard", &["heard"])?;
            if h.contains("round 1 is over") {
                who.push(p.name.clone());
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{} never heard the announcement", p.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    s.say(format!("heard on every station: {}", who.join(", ")));

    s.chapter("4. Dataset updates");
    let sent = Instant::now();
    children.0[0].ask("next-round", &["ok"])?;
    for p in children.0.iter_mut() {
        p.census_until(|c| Proc::field(c, "board").ends_with(":round1:carol"))?;
    }
    s.say(format!(
        "server  starts round 1 on the scoreboard's master; all 5 stations have it {:.1} ms later",
        sent.elapsed().as_secs_f64() * 1000.0
    ));

    s.chapter("5. kill -9 the session master");
    let mut server = children.0.remove(0);
    let pid = server.child.id();
    let killed = Instant::now();
    server.child.kill().map_err(|e| e.to_string())?;
    let status = server.child.wait().map_err(|e| e.to_string())?;
    s.say(format!(
        "SIGKILL to the server process (pid {pid}, station 1): {status}; no goodbye was sent"
    ));
    drop(server);
    let mut first = None;
    for p in children.0.iter_mut() {
        let (at, _) = p.wait_line(0, |l| l == "event failed id=1")?;
        let after = at.saturating_duration_since(killed);
        first = Some(first.map_or(after, |f: Duration| f.min(after)));
    }
    s.say(format!(
        "the survivors noticed the silence and declared station 1 failed ({:.2} s after the kill)",
        first.unwrap_or_default().as_secs_f64()
    ));
    for p in children.0.iter_mut() {
        p.census_until(|c| {
            Proc::field(c, "master") == "2"
                && Proc::field(c, "stations") == "2,3,4,5"
                && Proc::field(c, "crates") == "gold@2"
                && Proc::field(c, "board").contains("@2:")
        })?;
    }
    s.say(format!(
        "all four survivors agree: alice (station 2, the lowest id left) is the new session master ({:.2} s after the kill)",
        killed.elapsed().as_secs_f64()
    ));
    let c = children.0[3].ask("census", &["census"])?;
    let board = Proc::field(&c, "board");
    s.say(format!(
        "the Scoreboard was taken over by station 2 with its last state (round {}, {} leading): its class approves fault recovery",
        board.split(":round").nth(1).and_then(|r| r.split(':').next()).unwrap_or("?"),
        board.rsplit(':').next().unwrap_or("?"),
    ));
    s.say("crate `gold` (persistent) was taken over by station 2; crate `smoke` was removed everywhere");
    s.say(format!(
        "avatars still in the world: {} (their stations are alive)",
        Proc::field(&c, "avatars").replace(',', ", ")
    ));

    s.chapter("6. The session goes on");
    let r = children.0[1].ask("submit 200", &["rank"])?;
    s.say(format!(
        "bob     calls scoreboard.submit(\"bob\", 200) on its new master, station 2: rank {} ({} ms)",
        r.split_whitespace().nth(1).unwrap_or("?"),
        Proc::field(&r, "ms")
    ));
    let r = children.0[0].ask("hit carol 40", &["hp"])?;
    s.say(format!(
        "alice   calls carol's avatar.hit(40): carol has {} hp left ({} ms)",
        r.split_whitespace().nth(1).unwrap_or("?"),
        Proc::field(&r, "ms")
    ));

    if hold {
        println!("\nholding the session open for the monitor page; press Enter to end the demo");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    s.chapter("7. Goodbye");
    let mut order: Vec<usize> = (0..children.0.len()).rev().collect();
    order.retain(|i| *i != 0);
    order.push(0);
    for i in order {
        let p = &mut children.0[i];
        let from = p.seen.len();
        if let Some(stdin) = p.stdin.as_mut() {
            let _ = writeln!(stdin, "quit").and_then(|_| stdin.flush());
        }
        p.wait_line(from, |l| l == "left")?;
        p.stdin.take();
        let status = wait_exit(&mut p.child)?;
        s.say(format!(
            "{:<7} left the session gracefully and exited ({status})",
            p.name
        ));
    }
    println!(
        "\nDone in {:.2} s: 5 station processes started, 1 killed with SIGKILL, 4 left gracefully; every process reaped.",
        s.start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn wait_exit(child: &mut Child) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err("a station did not exit in time".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
