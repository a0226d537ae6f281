//! Server migration: the Diarkis `server_migration` sample, in netz.
//!
//! ```text
//! cargo run --example server_migration                  # the whole story, one process, loopback
//! cargo run --example server_migration -- --cluster     # the companion: three server processes;
//!                                                       # scales in the first once a client is on it
//! cargo run --example server_migration -- <serverAddr> <uid> <clientKey>
//!                                                       # the sample client: connects, waits for a
//!                                                       # migration, prints each callback, exits
//! cargo run --release --example server_migration -- --bench 200
//!                                                       # median time from send_migrate to
//!                                                       # on_connect(reconnect = true)
//! ```
//!
//! Run the companion in one terminal and the client, with the first address
//! the companion prints, in another. The client creates a room (it is its
//! owner), so it moves the room too: on `on_offline` it calls
//! `send_migrate()` and `send_migrate_room()`, exactly like the sample's
//! `OnOffline`.

use netz::{DOHandle, Event, ProcessType, Registry, Topology};
use netz_net::{Callbacks, NetConfig, NetStation, RoomMigrateComplete};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

// ------------------------------------------------------------ the sample

/// What the sample's callbacks tell the main task.
#[derive(Debug, PartialEq)]
enum Note {
    Reconnected,
    RoomMoved,
    Disconnected,
}

/// The sample: `DiarkisUdpServerMigrationSample` and
/// `DiarkisRoomServerMigrationSample` in one.
struct Sample {
    name: String,
    lines: Arc<Mutex<Vec<String>>>,
    room: Arc<Mutex<Option<DOHandle>>>,
    migration_started: bool,
    room_migration_started: bool,
    notes: mpsc::UnboundedSender<Note>,
}

impl Sample {
    fn print(&self, line: String) {
        let line = format!("{}: {line}", self.name);
        println!("{line}");
        self.lines.lock().unwrap().push(line);
    }
}

impl Callbacks for Sample {
    fn on_connect(&mut self, station: &NetStation, reconnect: bool) {
        // Called when connecting to the server first, and when reconnecting
        // by the migration.
        let server = station.relay().map_or(0, |s| s.0);
        self.print(format!(
            "Connected to server S{server} reconnect={reconnect}"
        ));
        if self.migration_started && reconnect {
            self.print("the migration is completed".into());
            let _ = self.notes.send(Note::Reconnected);
        }
        self.migration_started = false;
    }

    fn on_disconnect(&mut self, _station: &NetStation, is_reconnect: bool) {
        self.print(format!("Disconnected from server reconnect={is_reconnect}"));
        if is_reconnect {
            // netz reconnects by itself: nothing to do, and above all the
            // application's normal disconnect path must not run here.
            return;
        }
        let _ = self.notes.send(Note::Disconnected);
    }

    fn on_offline(&mut self, station: &NetStation) {
        self.print("OnOffline is called".into());
        // The server scales in. Migrate when it suits the game; the sample
        // does it at once.
        if let Err(e) = station.send_migrate() {
            self.print(format!("SendMigrate failed: {e}"));
        }
        self.migration_started = true;
        // Only the room's owner may migrate the room.
        let room = *self.room.lock().unwrap();
        if let Some(room) = room {
            let owner = station.rooms().into_iter().find(|r| r.handle == room);
            if owner.is_some_and(|r| r.owner == station.id()) {
                match station.send_migrate_room(room) {
                    Ok(_) => self.print("SendMigrateRoom".into()),
                    Err(e) => self.print(format!("SendMigrateRoom failed: {e}")),
                }
            }
        }
    }

    fn on_migrate_failed(&mut self, _station: &NetStation, reason: &str) {
        self.print(format!("the migration failed: {reason}"));
    }

    fn on_room_migrate_start(&mut self, _station: &NetStation, _room: DOHandle) {
        self.print("The room migration is started...".into());
        self.room_migration_started = true;
    }

    fn on_room_migrate_complete(&mut self, _station: &NetStation, e: &RoomMigrateComplete) {
        if !e.success {
            self.print(format!(
                "Failed to Migrate. error code={} message={}",
                e.error_code, e.message
            ));
            return;
        }
        self.print(format!(
            "The room migration is completed... success={}, RoomID={}",
            e.success, e.room_id
        ));
        if self.room_migration_started {
            let _ = self.notes.send(Note::RoomMoved);
        }
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new())
}

fn server_config(name: &str, drain: Duration) -> NetConfig {
    NetConfig::new(ProcessType::Server, name)
        .topology(Topology::ClientServer)
        .drain_timeout(drain)
}

/// Connects the sample client to `server`, creates its room, and waits
/// until it migrated (and moved its room), or was disconnected.
async fn sample_client(
    server: SocketAddr,
    uid: &str,
    client_key: &str,
    lines: Arc<Mutex<Vec<String>>>,
    wait: Duration,
) -> Result<(), String> {
    let config = NetConfig::new(ProcessType::Client, format!("{uid}:{client_key}"))
        .topology(Topology::ClientServer);
    let station = NetStation::bind("127.0.0.1:0".parse().unwrap(), config, registry())
        .await
        .map_err(|e| e.to_string())?;
    let (notes, mut rx) = mpsc::unbounded_channel();
    let room = Arc::new(Mutex::new(None));
    station.set_callbacks(Sample {
        name: format!("client {uid}"),
        lines: lines.clone(),
        room: room.clone(),
        migration_started: false,
        room_migration_started: false,
        notes,
    });
    station.join(server).await.map_err(|e| e.to_string())?;
    let mut events = station.events();
    let request = station
        .create_room(vec![("map".into(), "harbour".into())])
        .map_err(|e| e.to_string())?;
    let created = events
        .wait_for(Duration::from_secs(5), |e| match e {
            Event::RoomResult {
                request: r,
                room,
                result: Ok(id),
            } if *r == request => Some((*room, id.clone())),
            _ => None,
        })
        .await;
    if let Some((handle, id)) = &created {
        *room.lock().unwrap() = Some(*handle);
        let line = format!("client {uid}: created room {id} (its owner)");
        println!("{line}");
        lines.lock().unwrap().push(line);
    }
    let line = format!("client {uid}: waiting for a migration...");
    println!("{line}");
    lines.lock().unwrap().push(line);
    let (mut reconnected, mut room_moved) = (false, created.is_none());
    let deadline = tokio::time::Instant::now() + wait;
    while !(reconnected && room_moved) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Note::Reconnected)) => reconnected = true,
            Ok(Some(Note::RoomMoved)) => room_moved = true,
            Ok(Some(Note::Disconnected)) | Ok(None) => return Err("disconnected".into()),
            Err(_) => return Err("no migration in time".into()),
        }
    }
    let me = station.id();
    for r in station.rooms() {
        let line = format!(
            "client {uid}: room {} is on S{}; owner S{}{}; members {:?}; properties {:?}",
            r.id,
            r.server.0,
            r.owner.0,
            if r.owner == me { " (me)" } else { "" },
            r.members.iter().map(|m| m.0).collect::<Vec<_>>(),
            r.properties
        );
        println!("{line}");
        lines.lock().unwrap().push(line);
    }
    station.shutdown().await;
    Ok(())
}

// ------------------------------------------------------------ the whole story

/// The whole story in one process on loopback: three servers, the sample
/// client on the first, which then scales in. Returns what was printed.
pub fn run() -> Vec<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(story())
}

async fn story() -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let say = |s: String| {
        println!("{s}");
        lines.lock().unwrap().push(s);
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let drain = Duration::from_secs(5);
    let mut servers = Vec::new();
    for i in 1..=3 {
        let s = NetStation::bind(any, server_config(&format!("server{i}"), drain), registry())
            .await
            .expect("bind");
        if i == 1 {
            s.create_session().expect("create");
        } else {
            s.join(
                servers
                    .iter()
                    .map(|s: &NetStation| s.local_addr())
                    .next()
                    .unwrap(),
            )
            .await
            .expect("join");
        }
        say(format!("server {i}: S{} on {}", s.id().0, s.local_addr()));
        servers.push(s);
    }
    let first = servers[0].clone();
    let addr = first.local_addr();
    let client = tokio::spawn(sample_client(
        addr,
        "1111",
        "AAAA",
        lines.clone(),
        Duration::from_secs(30),
    ));
    let attached = first
        .wait_until(Duration::from_secs(10), |st| {
            !st.attached_clients().is_empty()
        })
        .await;
    assert!(attached, "the client never reached server 1");
    // Let the client create its room, then scale server 1 in.
    let t0 = Instant::now();
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.ends_with("waiting for a migration..."))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the client never got ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say(format!("server 1: scale-in (drain {drain:?})"));
    first.scale_in(drain).expect("scale in");
    let reason = first.wait_closed(drain + Duration::from_secs(10)).await;
    say(format!(
        "server 1: left the cluster ({})",
        reason.unwrap_or_else(|| "still there".into())
    ));
    match client.await {
        Ok(Ok(())) => say("client 1111: done".into()),
        Ok(Err(e)) => say(format!("client 1111: {e}")),
        Err(e) => say(format!("client 1111: {e}")),
    }
    for s in servers.into_iter().skip(1) {
        s.shutdown().await;
    }
    let out = lines.lock().unwrap().clone();
    out
}

// ------------------------------------------------------------ measurement

/// Migrates one client back and forth between two servers `n` times and
/// prints the time from `send_migrate` to `on_connect(reconnect = true)`.
async fn bench(n: usize) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = NetStation::bind(any, server_config("a", Duration::from_secs(10)), registry())
        .await
        .expect("bind");
    a.create_session().expect("create");
    let b = NetStation::bind(any, server_config("b", Duration::from_secs(10)), registry())
        .await
        .expect("bind");
    b.join(a.local_addr()).await.expect("join");
    let config = NetConfig::new(ProcessType::Client, "bench").topology(Topology::ClientServer);
    let c = NetStation::bind(any, config, registry())
        .await
        .expect("bind");
    c.join(a.local_addr()).await.expect("join");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let mut events = c.events();
        let t0 = Instant::now();
        c.send_migrate().expect("send_migrate");
        let got = events
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, Event::Reconnected { .. }).then_some(())
            })
            .await;
        assert!(got.is_some(), "no reconnect");
        times.push(t0.elapsed());
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{n} migrations on loopback, send_migrate -> on_connect(reconnect = true): \
         median {:.0} us, p90 {:.0} us, min {:.0} us, max {:.0} us",
        us(times[n / 2]),
        us(times[n * 9 / 10]),
        us(times[0]),
        us(times[n - 1])
    );
    c.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

// ------------------------------------------------------------ processes

/// `--server create|CONTACT`: one server process; SIGTERM scales it in.
async fn server_process(contact: Option<SocketAddr>) -> ExitCode {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let s = match NetStation::bind(
        any,
        server_config("server", Duration::from_secs(10)),
        registry(),
    )
    .await
    {
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
    println!("ready addr={} id={}", s.local_addr(), s.id().0);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let (tx, mut stdin) = mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lines() {}
        let _ = tx.send(());
    });
    let me = s.id();
    loop {
        tokio::select! {
            _ = term.recv() => {
                println!("scale-in: offline, draining for up to 10 s");
                let _ = s.scale_in_default();
            }
            e = events.recv() => match e {
                Some(Event::StationJoined(info)) if info.relay == Some(me) => {
                    println!("client-attached id={}", info.id.0)
                }
                Some(Event::Disconnected { reason }) => {
                    println!("left the cluster: {reason}");
                    break;
                }
                Some(_) => {}
                None => break,
            },
            _ = stdin.recv() => break,
        }
    }
    ExitCode::SUCCESS
}

fn spawn_server(contact: Option<&str>) -> (Child, Receiver<String>, String) {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.arg("--server").arg(contact.unwrap_or("create"));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| "error no answer".into());
    let addr = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or("")
        .to_string();
    (child, rx, addr)
}

/// `--cluster`: three server processes; scales in the first once a client
/// is attached to it, then stops everything.
fn cluster() -> ExitCode {
    let (first, first_rx, addr) = spawn_server(None);
    if addr.is_empty() {
        eprintln!("server 1 did not start");
        return ExitCode::from(1);
    }
    let mut children = vec![first];
    for _ in 0..2 {
        let (c, _rx, a) = spawn_server(Some(&addr));
        println!("server started on {a}");
        children.push(c);
    }
    println!("server 1 on {addr}; now run, in another terminal:");
    println!("  cargo run --example server_migration -- {addr} 1111 AAAA");
    let code = (|| {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match first_rx.recv_timeout(left) {
                Ok(l) if l.starts_with("client-attached") => {
                    println!("server 1: {l}");
                    break;
                }
                Ok(l) => println!("server 1: {l}"),
                Err(_) => {
                    println!("no client came");
                    return ExitCode::from(1);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        println!("scaling server 1 in (SIGTERM)");
        let pid = children[0].id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        while let Ok(l) = first_rx.recv_timeout(Duration::from_secs(30)) {
            println!("server 1: {l}");
        }
        let status = children[0].wait();
        println!("server 1 exited: {status:?}");
        std::thread::sleep(Duration::from_secs(2));
        ExitCode::SUCCESS
    })();
    for c in children.iter_mut() {
        drop(c.stdin.take());
        let _ = c.kill();
        let _ = c.wait();
    }
    code
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    match args.first().map(String::as_str) {
        None => {
            let lines = run();
            let ok = lines.iter().any(|l| l.ends_with("client 1111: done"));
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Some("--server") => {
            let contact = args.get(1).and_then(|a| a.parse().ok());
            rt().block_on(server_process(contact))
        }
        Some("--cluster") => cluster(),
        Some("--bench") => {
            let n = args
                .get(1)
                .and_then(|a| a.parse().ok())
                .unwrap_or(200usize)
                .max(1);
            rt().block_on(bench(n));
            ExitCode::SUCCESS
        }
        Some(addr) => {
            let (Ok(server), Some(uid), Some(key)) =
                (addr.parse::<SocketAddr>(), args.get(1), args.get(2))
            else {
                eprintln!("usage: server_migration [<serverAddr> <uid> <clientKey> | --cluster | --bench N]");
                return ExitCode::from(2);
            };
            let lines = Arc::new(Mutex::new(Vec::new()));
            let r = rt().block_on(sample_client(
                server,
                uid,
                key,
                lines,
                Duration::from_secs(600),
            ));
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
