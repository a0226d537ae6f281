//! A rolling upgrade that drops no player: build v1 and build v2 of a small
//! game share one client-server session while the servers are replaced.
//!
//! ```text
//! cargo run --example rolling_upgrade              # the whole roll, as OS processes on loopback
//! cargo run --example rolling_upgrade -- --role server --build v1|v2 [--join ADDR]
//!     [--port N] [--drain-ms N] [--command-file PATH]
//! cargo run --example rolling_upgrade -- --role client --join ADDR [--stay]
//! ```
//!
//! A server binds `127.0.0.1:N` (any port without `--port`), drains for
//! `--drain-ms` (10000) when SIGTERM scales it in, and reads its commands
//! from stdin, or from `--command-file` when a host runs it (the file is
//! read and removed; replies go to stdout). A client with `--stay` does
//! not migrate when its server goes offline: the server's drain ends with
//! it disconnected, told why (`closed reason=...`).
//!
//! - Build v1: `dataset Stats { int64 score; };`, classes `Player` (one per
//!   client, with the action `ping`) and `Flag` (one per server, attached to
//!   a room), the RMC `get_score`.
//! - Build v2: `dataset Stats { int64 score; REVISION = 1; int32 level; };`
//!   and the RMC `get_level` appended last: v2 reads v1 data as revision 0,
//!   where `level` is not valid.
//!
//! The roll: two v1 servers, six clients (two rooms, a flag per server, a
//! player per client, every client pinging its neighbour's player with
//! reliable actions); two v2 servers join the same session, then the v1
//! servers get SIGTERM one at a time: each goes offline, its clients
//! migrate keeping their station ids, rooms migrate with their owners,
//! objects hand over, the server exits 0. The clients end on v2 servers;
//! the example checks ids, objects, rooms and every message, and prints the
//! blackout of each client and the totals. Every child is killed and reaped
//! on every path.

use netz::prelude::*;
use netz::{DOHandle, Event, Topology};
use netz_net::{Callbacks, NetConfig, NetStation, RoomMigrateComplete};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Build v1 of the game.
pub mod v1 {
    use netz::prelude::*;

    /// `dataset Stats { int64 score; };`
    #[dataset]
    #[derive(Default, Clone, Debug)]
    pub struct Stats {
        /// Field 0, revision 0.
        pub score: i64,
    }

    /// A player, published by its client.
    #[doclass]
    #[derive(Default)]
    pub struct Player {
        /// Dataset 0.
        #[dataset]
        pub stats: Stats,
        /// Every `ping` received here (on the master), in order.
        pub inbox: Vec<i64>,
    }

    #[doclass]
    impl Player {
        /// Method id 0.
        #[rmc]
        pub fn get_score(&self) -> i64 {
            self.stats.score
        }
        /// Method id 1: a reliable message to the player's master.
        #[action]
        pub fn ping(&mut self, n: i64) {
            self.inbox.push(n);
        }
    }

    /// A flag, published by a server and attached to a room.
    #[doclass]
    #[derive(Default)]
    pub struct Flag {
        /// Dataset 0.
        #[dataset]
        pub stats: Stats,
    }

    #[doclass]
    impl Flag {
        /// Method id 0.
        #[rmc]
        pub fn get_score(&self) -> i64 {
            self.stats.score
        }
    }

    /// Build v1's classes, in registration order.
    pub fn registry() -> Registry {
        let mut r = Registry::new();
        r.register::<Player>().expect("Player");
        r.register::<Flag>().expect("Flag");
        r
    }
}

/// Build v2: a dataset field with a higher revision, an RMC appended last.
pub mod v2 {
    use netz::prelude::*;

    /// `dataset Stats { int64 score; REVISION = 1; int32 level; };`
    #[dataset]
    #[derive(Default, Clone, Debug)]
    pub struct Stats {
        /// Field 0, revision 0.
        pub score: i64,
        /// Field 1, revision 1: new in v2.
        #[revision(1)]
        pub level: i32,
    }

    /// A player, published by its client.
    #[doclass]
    #[derive(Default)]
    pub struct Player {
        /// Dataset 0.
        #[dataset]
        pub stats: Stats,
        /// Every `ping` received here (on the master), in order.
        pub inbox: Vec<i64>,
    }

    #[doclass]
    impl Player {
        /// Method id 0.
        #[rmc]
        pub fn get_score(&self) -> i64 {
            self.stats.score
        }
        /// Method id 1.
        #[action]
        pub fn ping(&mut self, n: i64) {
            self.inbox.push(n);
        }
        /// Method id 2: appended by v2.
        #[rmc]
        pub fn get_level(&self) -> i32 {
            self.stats.level
        }
    }

    /// A flag, published by a server and attached to a room.
    #[doclass]
    #[derive(Default)]
    pub struct Flag {
        /// Dataset 0.
        #[dataset]
        pub stats: Stats,
    }

    #[doclass]
    impl Flag {
        /// Method id 0.
        #[rmc]
        pub fn get_score(&self) -> i64 {
            self.stats.score
        }
        /// Method id 1: appended by v2.
        #[rmc]
        pub fn get_level(&self) -> i32 {
            self.stats.level
        }
    }

    /// Build v2's classes, in registration order.
    pub fn registry() -> Registry {
        let mut r = Registry::new();
        r.register::<Player>().expect("Player");
        r.register::<Flag>().expect("Flag");
        r
    }
}

/// How many reliable pings each client sends through the roll.
const PINGS: i64 = 500;
/// The pause between two pings.
const PING_MS: u64 = 10;
/// How long a scaling-in server waits for its clients (unless
/// `--drain-ms` says otherwise).
const DRAIN: Duration = Duration::from_secs(10);

fn cs(pt: ProcessType, name: &str, drain: Duration) -> NetConfig {
    NetConfig::new(pt, name)
        .topology(Topology::ClientServer)
        .drain_timeout(drain)
}

/// The lines of a command file: it is read and removed whenever it is
/// there (written whole by the one who sends the commands). The lines end
/// when the parent process goes away (as stdin would).
fn file_lines(path: std::path::PathBuf) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            let _ = std::fs::remove_file(&path);
            for line in text.lines() {
                if tx.send(line.to_owned()).is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    rx
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

fn handle(w: Option<&str>) -> Option<DOHandle> {
    w.and_then(|w| w.parse().ok()).map(DOHandle)
}

fn print_rooms(station: &NetStation) {
    for r in station.rooms() {
        let members: Vec<String> = r.members.iter().map(|m| m.0.to_string()).collect();
        let props: Vec<String> = r
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "room handle={} id={} server={} owner={} members={} props={} objects={}",
            r.handle.0,
            r.id,
            r.server.0,
            r.owner.0,
            members.join(","),
            props.join(";"),
            r.objects.len()
        );
    }
    println!("end");
}

// ------------------------------------------------------------ server role

/// Lists every object as this build sees it: `obj class=.. handle=..
/// master=.. score=.. rev=.. level_valid=..`.
macro_rules! objects {
    ($st:expr, $m:ident, $valid:expr) => {{
        let mut out = Vec::new();
        for r in $st.select::<$m::Player>() {
            let g = r.lock();
            out.push(format!(
                "obj class=Player handle={} master={} score={} rev={} level_valid={}",
                r.handle().0,
                r.master_station().0,
                g.stats.score,
                g.stats.revision(),
                $valid(&g.stats)
            ));
        }
        for r in $st.select::<$m::Flag>() {
            let g = r.lock();
            out.push(format!(
                "obj class=Flag handle={} master={} score={} rev={} level_valid={}",
                r.handle().0,
                r.master_station().0,
                g.stats.score,
                g.stats.revision(),
                $valid(&g.stats)
            ));
        }
        out
    }};
}

/// How a server runs: `--role server --build v1|v2 [--join ADDR] [--port
/// N] [--drain-ms N] [--command-file PATH]`.
struct ServerOpts {
    v2: bool,
    contact: Option<SocketAddr>,
    port: u16,
    drain: Duration,
    commands: Option<std::path::PathBuf>,
}

/// One server; publishes a flag; SIGTERM scales it in; exits 0 once it
/// left the cluster.
async fn server(o: ServerOpts) -> ExitCode {
    let (v2, contact, drain) = (o.v2, o.contact, o.drain);
    let build = if v2 { "v2" } else { "v1" };
    let registry = Arc::new(if v2 { v2::registry() } else { v1::registry() });
    let at = SocketAddr::from(([127, 0, 0, 1], o.port));
    let s = match NetStation::bind(at, cs(ProcessType::Server, build, drain), registry).await {
        Ok(s) => s,
        Err(e) => {
            println!("error {e}");
            return ExitCode::from(2);
        }
    };
    let mut events = s.events();
    let joined = match contact {
        None => s.create_session().map(|_| ()),
        Some(c) => s.join(c).await.map(|_| ()),
    };
    if let Err(e) = joined {
        println!("error {e}");
        return ExitCode::from(2);
    }
    let me = s.id();
    let flag = if v2 {
        s.publish(v2::Flag {
            stats: v2::Stats {
                score: 100 * me.0 as i64,
                level: 2,
                ..Default::default()
            },
        })
        .map(|r| r.handle())
    } else {
        s.publish(v1::Flag {
            stats: v1::Stats {
                score: 100 * me.0 as i64,
                ..Default::default()
            },
        })
        .map(|r| r.handle())
    };
    let flag = match flag {
        Ok(h) => h,
        Err(e) => {
            println!("error {e}");
            return ExitCode::from(2);
        }
    };
    println!("ready addr={} id={} flag={}", s.local_addr(), me.0, flag.0);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut stdin = match o.commands {
        Some(f) => file_lines(f),
        None => stdin_lines(),
    };
    let mut scaling_in = false;
    loop {
        tokio::select! {
            _ = term.recv(), if !scaling_in => {
                match s.scale_in(drain) {
                    Ok(()) => { scaling_in = true; println!("scaling-in"); }
                    Err(e) => println!("err scale-in: {e}"),
                }
            }
            e = events.recv() => match e {
                Some(Event::Disconnected { reason }) => {
                    println!("left reason={reason}");
                    break;
                }
                Some(_) => {}
                None => break,
            },
            line = stdin.recv() => {
                let Some(line) = line else { break };
                let mut w = line.split_whitespace();
                match w.next() {
                    Some("objects") => {
                        let lines = s.read(|st| if v2 {
                            objects!(st, v2, |d: &v2::Stats| d.is_level_valid().to_string())
                        } else {
                            objects!(st, v1, |_: &v1::Stats| "-".to_string())
                        });
                        for l in lines { println!("{l}"); }
                        println!("end");
                    }
                    Some("attach") => match handle(w.next()) {
                        Some(room) => match s.with(|st, now| st.attach_to_room(now, room, flag)) {
                            Ok(()) => println!("ok"),
                            Err(e) => println!("err {e}"),
                        },
                        None => println!("err usage: attach ROOM"),
                    },
                    Some("rooms") => print_rooms(&s),
                    Some("quit") => break,
                    _ => println!("err unknown command"),
                }
            }
        }
    }
    s.shutdown().await;
    ExitCode::SUCCESS
}

// ------------------------------------------------------------ client role

/// The client's callbacks: migrate on `on_offline` (unless it stays),
/// count the disconnects, measure the blackout.
struct Game {
    offline_at: Option<Instant>,
    migrations: u32,
    blackout: Duration,
    stay: bool,
}

impl Callbacks for Game {
    fn on_offline(&mut self, station: &NetStation) {
        if self.stay {
            println!("offline staying");
            return;
        }
        self.offline_at = Some(Instant::now());
        if let Err(e) = station.send_migrate() {
            println!("err migrate: {e}");
        }
        let me = station.id();
        for r in station.rooms().into_iter().filter(|r| r.owner == me) {
            if let Err(e) = station.send_migrate_room(r.handle) {
                println!("err room-migrate: {e}");
            }
        }
    }
    fn on_connect(&mut self, station: &NetStation, reconnect: bool) {
        if !reconnect {
            return;
        }
        let us = self.offline_at.take().map_or(0, |t| {
            let d = t.elapsed();
            self.blackout += d;
            d.as_micros()
        });
        self.migrations += 1;
        println!(
            "migrated server={} blackout_us={us}",
            station.relay().map_or(0, |s| s.0)
        );
    }
    fn on_disconnect(&mut self, _station: &NetStation, is_reconnect: bool) {
        if !is_reconnect {
            println!("on-disconnect reconnect=false");
        }
    }
    fn on_migrate_failed(&mut self, _station: &NetStation, reason: &str) {
        println!("migrate-failed reason={reason}");
    }
    fn on_room_migrate_complete(&mut self, _station: &NetStation, e: &RoomMigrateComplete) {
        println!(
            "room-migrated id={} success={} code={}",
            e.room_id, e.success, e.error_code
        );
    }
}

/// A room this client owns whose server goes offline moves, wherever the
/// client itself is (its own server's going offline is `on_offline`'s):
/// with several old servers a room can have moved onto one that scales in
/// later, while its owner went elsewhere. A room that lands on a server
/// already offline moves again.
async fn rooms_off_offline_servers(c: NetStation) {
    let mut events = c.events();
    let mut offline = std::collections::BTreeSet::new();
    while let Some(e) = events.recv().await {
        let moved = match e {
            // Our own server's: `on_offline` moves our rooms with us.
            Event::Offline { server, ours, .. } => {
                offline.insert(server);
                if ours {
                    continue;
                }
                None
            }
            Event::RoomMigrateComplete {
                room,
                success: true,
                ..
            } => Some(room),
            _ => continue,
        };
        let me = c.id();
        for r in c.rooms() {
            let ours = r.owner == me && moved.is_none_or(|h| h == r.handle);
            if ours && offline.contains(&r.server) {
                if let Err(e) = c.send_migrate_room(r.handle) {
                    println!("err room-migrate: {e}");
                }
            }
        }
    }
}

/// `--role client --join ADDR [--stay]`: one v1 client; publishes its
/// player.
async fn client(contact: SocketAddr, stay: bool) -> ExitCode {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let c = match NetStation::bind(
        any,
        cs(ProcessType::Client, "player", DRAIN),
        Arc::new(v1::registry()),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            println!("error {e}");
            return ExitCode::from(2);
        }
    };
    c.set_callbacks(Game {
        offline_at: None,
        migrations: 0,
        blackout: Duration::ZERO,
        stay,
    });
    if let Err(e) = c.join(contact).await {
        println!("error {e}");
        return ExitCode::from(2);
    }
    let me = c.id();
    let player = match c.publish(v1::Player {
        stats: v1::Stats {
            score: 10 * me.0 as i64,
            ..Default::default()
        },
        inbox: Vec::new(),
    }) {
        Ok(r) => r.handle(),
        Err(e) => {
            println!("error {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "ready id={} server={} player={}",
        me.0,
        c.relay().map_or(0, |s| s.0),
        player.0
    );
    let watch = c.clone();
    tokio::spawn(async move {
        if let Some(reason) = watch.wait_closed(Duration::from_secs(24 * 3600)).await {
            println!("closed reason={reason}");
        }
    });
    if !stay {
        tokio::spawn(rooms_off_offline_servers(c.clone()));
    }
    let mut stdin = stdin_lines();
    while let Some(line) = stdin.recv().await {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("status") => {
                let (n, objs) = c.read(|st| {
                    (
                        st.stations().len(),
                        st.select::<v1::Player>().len() + st.select::<v1::Flag>().len(),
                    )
                });
                println!(
                    "status id={} server={} stations={n} objects={objs}",
                    me.0,
                    c.relay().map_or(0, |s| s.0)
                );
            }
            Some(cmd @ ("room-create" | "room-join")) => {
                let mut events = c.events();
                let sent = if cmd == "room-create" {
                    c.create_room(vec![("map".into(), format!("m{}", me.0))])
                } else {
                    match handle(w.next()) {
                        Some(h) => c.join_room(h),
                        None => {
                            println!("err usage: room-join ROOM");
                            continue;
                        }
                    }
                };
                let req = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        println!("err {e}");
                        continue;
                    }
                };
                let got = events
                    .wait_for(Duration::from_secs(10), |e| match e {
                        Event::RoomResult {
                            request,
                            room,
                            result,
                        } if *request == req => Some((*room, result.clone())),
                        _ => None,
                    })
                    .await;
                match got {
                    Some((room, Ok(id))) => println!("room-ok handle={} id={id}", room.0),
                    Some((_, Err(e))) => println!("err {e}"),
                    None => println!("err no answer"),
                }
            }
            Some("ping") => {
                let Some(h) = handle(w.next()) else {
                    println!("err usage: ping PLAYER");
                    continue;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let mut sent = 0;
                    for i in 1..=PINGS {
                        if c.with(|st, _| st.object::<v1::Player>(h).ping_on_master(i)) {
                            sent += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(PING_MS)).await;
                    }
                    println!("ping-done sent={sent}");
                });
                println!("ok");
            }
            Some("inbox") => {
                let v = c.read(|st| st.get::<v1::Player>(player).map(|p| p.lock().inbox.clone()));
                let v: Vec<String> = v
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x.to_string())
                    .collect();
                println!("inbox values={}", v.join(","));
            }
            Some("rooms") => print_rooms(&c),
            Some("quit") => break,
            _ => println!("err unknown command"),
        }
    }
    c.shutdown().await;
    ExitCode::SUCCESS
}

// ------------------------------------------------------------ the roll

/// A line-oriented process of the roll, server or client: commands go in,
/// lines come out. [`Proc`] is one; a host that runs the servers (see
/// `netz-host/tests/rolling_upgrade.rs`) brings its own.
pub trait Peer {
    /// Its name in messages.
    fn name(&self) -> &str;
    /// Its station id (from its `ready` line).
    fn id(&self) -> u32;
    /// Sends one command line.
    fn send(&mut self, line: &str);
    /// Its next output line, waiting at most `within`.
    fn recv(&mut self, within: Duration) -> Option<String>;
    /// The lines it printed that nobody asked for.
    fn log(&mut self) -> &mut Vec<String>;

    /// The next line matching `f` (earlier lines go to the log).
    fn expect(&mut self, f: &dyn Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(l) if f(&l) => return Ok(l),
                Some(l) => self.log().push(l),
                None => return Err(format!("{}: no expected line in {WAIT:?}", self.name())),
            }
        }
    }

    /// Sends `cmd` and collects the lines up to `end`.
    fn list(&mut self, cmd: &str) -> Result<Vec<String>, String> {
        self.send(cmd);
        let mut out = Vec::new();
        loop {
            let l =
                self.expect(&|l| l == "end" || l.starts_with("obj ") || l.starts_with("room "))?;
            if l == "end" {
                return Ok(out);
            }
            out.push(l);
        }
    }

    /// A client's `status` line.
    fn status(&mut self) -> Result<String, String> {
        self.send("status");
        self.expect(&|l| l.starts_with("status "))
    }
}

/// A child process of the example, with its output as lines.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    log: Vec<String>,
    id: u32,
    addr: String,
}

/// How long the roll waits for any one line.
pub const WAIT: Duration = Duration::from_secs(20);

impl Proc {
    /// Starts this program with `args` and waits for its `ready` line.
    pub fn start(name: &str, args: &[&str]) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: {e}"))?;
        let out = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Proc {
            name: name.into(),
            child,
            stdin,
            rx,
            log: Vec::new(),
            id: 0,
            addr: String::new(),
        };
        let ready = p.expect(&|l| l.starts_with("ready") || l.starts_with("error"))?;
        if ready.starts_with("error") {
            return Err(format!("{name}: {ready}"));
        }
        p.id = field(&ready, "id").parse().unwrap_or(0);
        p.addr = field(&ready, "addr").into();
        p.log.push(ready);
        Ok(p)
    }

    /// Its game address (a server's).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Peer for Proc {
    fn name(&self) -> &str {
        &self.name
    }
    fn id(&self) -> u32 {
        self.id
    }
    fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
        }
    }
    fn recv(&mut self, within: Duration) -> Option<String> {
        self.rx.recv_timeout(within).ok()
    }
    fn log(&mut self) -> &mut Vec<String> {
        &mut self.log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=value` in a line.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

/// Polls `f` until it holds, for up to [`WAIT`].
pub fn until(what: &str, mut f: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("timed out waiting for {what}"))
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn median(v: &mut [u128]) -> u128 {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The figures of a roll.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Clients carried over.
    pub clients: usize,
    /// Median over the clients of the longest blackout (offline to
    /// reconnected on the new server).
    pub blackout_median: Duration,
    /// The longest blackout of any client.
    pub blackout_max: Duration,
    /// From starting the v2 servers to the last client on a v2 server.
    pub roll: Duration,
    /// Reliable messages lost.
    pub lost: usize,
}

/// The v1 session the roll carries over: six clients with their players,
/// two rooms with a flag each, every client pinging its neighbour.
pub struct Session {
    /// The clients, in the order they joined.
    pub clients: Vec<Proc>,
    ids: Vec<u32>,
    before: Vec<String>,
    v1_objects: Vec<String>,
    stations: usize,
}

impl Session {
    /// Six clients on the two v1 servers `old` (game addresses `addrs`),
    /// three on each; two rooms, each owned by a client of one server,
    /// joined by another, with that server's flag attached; then every
    /// client starts pinging its neighbour's player.
    pub fn populate(old: &mut [&mut dyn Peer], addrs: &[String]) -> Result<Session, String> {
        let mut clients = Vec::new();
        for i in 0..6 {
            let addr = &addrs[i % addrs.len()];
            let mut c = Proc::start(
                &format!("client-{i}"),
                &["--role", "client", "--join", addr],
            )?;
            c.name = format!("client S{}", c.id);
            clients.push(c);
        }
        let (n, objs) = (old.len() + clients.len(), old.len() + clients.len());
        for c in clients.iter_mut() {
            until("the whole v1 session", || {
                let s = c.status()?;
                Ok(field(&s, "stations") == n.to_string()
                    && field(&s, "objects") == objs.to_string())
            })?;
        }
        for k in 0..2 {
            clients[k].list("rooms")?;
            clients[k].send("room-create");
            let l = clients[k].expect(&|l| l.starts_with("room-ok") || l.starts_with("err"))?;
            check(l.starts_with("room-ok"), format!("room-create: {l}"))?;
            let room: u64 = field(&l, "handle").parse().unwrap_or(0);
            let j = k + 2;
            until("the room on the joiner", || {
                Ok(!clients[j].list("rooms")?.is_empty())
            })?;
            // The room reaches the joiner's server and the joiner in
            // either order: retry a join the server did not know yet.
            let mut last = String::new();
            until("the room join", || {
                clients[j].send(&format!("room-join {room}"));
                last = clients[j].expect(&|l| l.starts_with("room-ok") || l.starts_with("err"))?;
                Ok(last.starts_with("room-ok"))
            })
            .map_err(|e| format!("{e}: {last}"))?;
            let server = &mut old[k % old.len()];
            server.send(&format!("attach {room}"));
            let l = server.expect(&|l| l == "ok" || l.starts_with("err"))?;
            check(l == "ok", format!("attach: {l}"))?;
        }
        let mut before = Vec::new();
        until("both rooms with members and flags", || {
            let r = clients[5].list("rooms")?;
            let ok = r.len() == 2
                && r.iter().all(|l| {
                    field(l, "objects") == "1" && field(l, "members").split(',').count() == 2
                });
            if ok {
                before = r;
            }
            Ok(ok)
        })?;
        let v1_objects = old[0].list("objects")?;
        check(v1_objects.len() == objs, format!("{v1_objects:?}"))?;
        let ids: Vec<u32> = clients.iter().map(|c| c.id).collect();
        let players: Vec<String> = clients
            .iter()
            .map(|c| field(&c.log[0], "player").to_string())
            .collect();
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(&format!("ping {}", players[(i + 1) % players.len()]));
            c.expect(&|l| l == "ok")?;
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(Session {
            clients,
            ids,
            before,
            v1_objects,
            stations: n,
        })
    }

    /// Waits until every client sees `more` stations more than at the
    /// start (the new servers that joined).
    pub fn wait_stations(&mut self, more: usize) -> Result<(), String> {
        let want = (self.stations + more).to_string();
        for c in self.clients.iter_mut() {
            until("the v2 servers on every client", || {
                Ok(field(&c.status()?, "stations") == want)
            })?;
        }
        Ok(())
    }

    /// Waits until every client is on one of the servers `new_ids`.
    pub fn wait_on(&mut self, new_ids: &[u32]) -> Result<(), String> {
        for c in self.clients.iter_mut() {
            until("every client on a v2 server", || {
                let s = c.status()?;
                Ok(new_ids
                    .iter()
                    .any(|id| field(&s, "server") == id.to_string()))
            })?;
        }
        Ok(())
    }

    /// Checks what survived the roll, `new0` being a v2 server and
    /// `new_ids` every v2 server: station ids, migrations without
    /// `on_disconnect(false)`, every ping once and in order, objects with
    /// their state (read as revision 0 by v2), rooms with owner, members,
    /// properties and flag, on v2. Then tells the clients to quit.
    pub fn verify(
        mut self,
        new0: &mut dyn Peer,
        new_ids: &[u32],
        roll: Duration,
    ) -> Result<Figures, String> {
        let clients = &mut self.clients;
        let mut blackouts = Vec::new();
        let mut lost = 0usize;
        let want: Vec<String> = (1..=PINGS).map(|i| i.to_string()).collect();
        let want = want.join(",");
        let mut sent = Vec::new();
        for c in clients.iter_mut() {
            let done = c.expect(&|l| l.starts_with("ping-done"))?;
            sent.push(field(&done, "sent").parse::<i64>().unwrap_or(0));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let sent = sent[(i + sent.len() - 1) % sent.len()];
            let s = c.status()?;
            check(
                field(&s, "id") == self.ids[i].to_string(),
                format!("{}: station id changed: {s}", c.name),
            )?;
            let mut worst = 0;
            let mut sum = 0;
            let mut hops = 0;
            for l in c.log.iter().filter(|l| l.starts_with("migrated ")) {
                let us: u128 = field(l, "blackout_us").parse().unwrap_or(0);
                worst = worst.max(us);
                sum += us;
                hops += 1;
            }
            check(hops > 0, format!("{} never migrated", c.name))?;
            blackouts.push(worst);
            check(
                !c.log.iter().any(|l| l.starts_with("on-disconnect")),
                format!("{} saw on_disconnect(false)", c.name),
            )?;
            // The last pings may still be on their way.
            let mut l = String::new();
            let _ = until("the last pings", || {
                c.send("inbox");
                l = c.expect(&|l| l.starts_with("inbox "))?;
                Ok(field(&l, "values").split(',').count() >= PINGS as usize)
            });
            let got = field(&l, "values");
            let n_got = got.split(',').filter(|v| !v.is_empty()).count();
            lost += (PINGS as usize).saturating_sub(n_got);
            if got != want {
                let seen: Vec<i64> = got.split(',').filter_map(|v| v.parse().ok()).collect();
                let missing: Vec<i64> = (1..=PINGS).filter(|i| !seen.contains(i)).collect();
                return Err(format!(
                    "{}: pings not once and in order: {n_got} of {PINGS} arrived ({sent} sent), \
                     missing {missing:?}, in order: {}",
                    c.name,
                    seen.windows(2).all(|w| w[0] < w[1])
                ));
            }
            println!(
                "client S{}: on S{} (v2), {hops} migration(s), blackout {:.1} ms (worst {:.1} ms), \
                 {PINGS} of {PINGS} pings in order",
                c.id,
                field(&s, "server"),
                sum as f64 / 1000.0,
                worst as f64 / 1000.0
            );
        }
        // Objects and rooms, as a v2 server sees them.
        let after = new0.list("objects")?;
        let v1_objects = &self.v1_objects;
        // The v1 objects and the flags of the v2 servers.
        check(
            after.len() == v1_objects.len() + new_ids.len(),
            format!("objects after: {after:?}"),
        )?;
        for b in v1_objects {
            let h = field(b, "handle");
            let a = after
                .iter()
                .find(|a| field(a, "handle") == h)
                .ok_or_else(|| format!("object {h} lost"))?;
            check(
                field(a, "score") == field(b, "score"),
                format!("state changed: {b} -> {a}"),
            )?;
            // What a v1 station wrote reads as revision 0 on v2. An object
            // handed to a v2 server is at v2's revision there (a master
            // writes everything its build knows), and a duplica that got
            // its whole state again from that master (it asked, having
            // missed changes while its view of the master lagged) reads
            // the same.
            let v1_data = field(a, "rev") == "0" && field(a, "level_valid") == "false";
            let from_v2_master = field(a, "rev") == "1"
                && field(a, "level_valid") == "true"
                && new_ids
                    .iter()
                    .any(|id| field(a, "master") == id.to_string());
            check(
                v1_data || from_v2_master,
                format!("v2 should read v1 data as revision 0: {a}"),
            )?;
            if field(a, "class") == "Flag" {
                check(
                    new_ids
                        .iter()
                        .any(|id| field(a, "master") == id.to_string()),
                    format!("flag not handed over to v2: {a}"),
                )?;
            }
        }
        let v2_flags = after
            .iter()
            .filter(|a| {
                let h = field(a, "handle");
                !v1_objects.iter().any(|b| field(b, "handle") == h)
            })
            .filter(|a| field(a, "rev") == "1" && field(a, "level_valid") == "true")
            .count();
        check(
            v2_flags == new_ids.len(),
            format!("v2 flags at revision 1: {after:?}"),
        )?;
        println!(
            "objects: {} of {} survived with their state; v2 reads what v1 wrote as revision 0, level not valid",
            v1_objects.len(),
            v1_objects.len()
        );
        let now = clients[5].list("rooms")?;
        check(now.len() == self.before.len(), format!("rooms: {now:?}"))?;
        for (b, a) in self.before.iter().zip(&now) {
            for k in ["handle", "owner", "members", "props", "objects"] {
                check(
                    field(a, k) == field(b, k),
                    format!("room changed: {b} -> {a}"),
                )?;
            }
            check(
                new_ids
                    .iter()
                    .any(|id| field(a, "server") == id.to_string()),
                format!("room not on v2: {a}"),
            )?;
        }
        println!(
            "rooms: {} of {} migrated to v2 with owner, members, properties and flag",
            now.len(),
            self.before.len()
        );
        let max = blackouts.iter().copied().max().unwrap_or(0);
        let med = median(&mut blackouts);
        println!(
            "rolling upgrade v1 -> v2: {} clients kept their station ids; blackout median {:.1} ms, \
             max {:.1} ms; roll {:.2} s; reliable messages lost: {lost}",
            clients.len(),
            med as f64 / 1000.0,
            max as f64 / 1000.0,
            roll.as_secs_f64()
        );
        for c in clients.iter_mut() {
            c.send("quit");
        }
        Ok(Figures {
            clients: clients.len(),
            blackout_median: Duration::from_micros(med as u64),
            blackout_max: Duration::from_micros(max as u64),
            roll,
            lost,
        })
    }
}

/// The whole roll; its checks fail it with what went wrong. Every child is
/// killed and reaped when its [`Proc`] drops, on every path.
pub fn roll() -> Result<Figures, String> {
    let mut old = vec![Proc::start("v1-a", &["--role", "server", "--build", "v1"])?];
    let contact = old[0].addr.clone();
    old.push(Proc::start(
        "v1-b",
        &["--role", "server", "--build", "v1", "--join", &contact],
    )?);
    println!(
        "build v1: servers S{} and S{} on {contact}",
        old[0].id, old[1].id
    );
    let addrs: Vec<String> = old.iter().map(|p| p.addr.clone()).collect();
    let mut session = {
        let mut peers: Vec<&mut dyn Peer> = old.iter_mut().map(|p| p as &mut dyn Peer).collect();
        Session::populate(&mut peers, &addrs)?
    };

    // The roll.
    let t0 = Instant::now();
    let mut new = Vec::new();
    for name in ["v2-a", "v2-b"] {
        new.push(Proc::start(
            name,
            &["--role", "server", "--build", "v2", "--join", &contact],
        )?);
    }
    let new_ids: Vec<u32> = new.iter().map(|s| s.id).collect();
    println!(
        "build v2: servers S{} and S{} joined the session",
        new_ids[0], new_ids[1]
    );
    session.wait_stations(new.len())?;
    for s in old.iter_mut() {
        let t = Instant::now();
        s.terminate();
        s.expect(&|l| l == "scaling-in")?;
        let code = s.wait_exit(DRAIN + Duration::from_secs(10));
        check(code == Some(0), format!("{} exited with {code:?}", s.name))?;
        println!(
            "S{} (v1): SIGTERM -> scaled in -> exit 0 in {} ms",
            s.id,
            t.elapsed().as_millis()
        );
    }
    session.wait_on(&new_ids)?;
    let total = t0.elapsed();
    let figures = session.verify(&mut new[0], &new_ids, total)?;
    println!("done");
    for p in new.iter_mut() {
        p.send("quit");
    }
    Ok(figures)
}

/// The example's entry: the roll, or one of its processes (`--role`).
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `RUST_LOG=netz_core=debug` traces a process on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let join = arg("--join").map(|a| a.parse::<SocketAddr>());
    match (arg("--role").as_deref(), join) {
        (None, _) => match roll() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                println!("rolling upgrade failed: {e}");
                ExitCode::from(1)
            }
        },
        (_, Some(Err(e))) => {
            eprintln!("--join: {e}");
            ExitCode::from(2)
        }
        (Some("server"), join) => {
            let v2 = match arg("--build").as_deref() {
                Some("v1") => false,
                Some("v2") => true,
                _ => {
                    eprintln!("--build must be v1 or v2");
                    return ExitCode::from(2);
                }
            };
            let num = |k: &str, default: u64| match arg(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| format!("{k}: {v:?} is not a number")),
            };
            let (port, drain) = match (
                num("--port", 0),
                num("--drain-ms", DRAIN.as_millis() as u64),
            ) {
                (Ok(p), Ok(d)) if p <= u16::MAX as u64 && d > 0 => (p as u16, d),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
                _ => {
                    eprintln!("--port must be a port and --drain-ms more than 0");
                    return ExitCode::from(2);
                }
            };
            rt().block_on(server(ServerOpts {
                v2,
                contact: join.and_then(Result::ok),
                port,
                drain: Duration::from_millis(drain),
                commands: arg("--command-file").map(std::path::PathBuf::from),
            }))
        }
        (Some("client"), Some(Ok(contact))) => {
            let stay = args.iter().any(|a| a == "--stay");
            rt().block_on(client(contact, stay))
        }
        _ => {
            eprintln!(
                "usage: rolling_upgrade [--role server --build v1|v2 [--join ADDR] [--port N] [--drain-ms N] \
                 [--command-file PATH] | --role client --join ADDR [--stay]]"
            );
            ExitCode::from(2)
        }
    }
}
