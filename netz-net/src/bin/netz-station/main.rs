//! `netz-station`: one netz station per process, on a UDP socket.
//!
//! ```text
//! netz-station --bind ADDR (--create | --join CONTACT) [options]
//!   --type server|client|tool   process type (default client)
//!   --token TOKEN               identification token (default: the type)
//!   --publish N                 publish N `Score` objects once in the session
//!   --recover all|none|even     which of them the session takes over when
//!                               this station fails (default even: 0, 2, ...)
//!   --deny TOKEN                (session creator) refuse joins with this token
//!   --heartbeat-ms N --failure-ms N --rmc-ms N --join-ms N   timeouts
//!   --lifetime-s N              exit after N seconds whatever happens (default 300)
//!   --topology mesh|client-server   the session's topology (default mesh)
//!   --drain-ms N                (server) drain timeout of a scale-in (default 10000)
//!   --migrate auto|ignore       (client) on `offline`, migrate at once and
//!                               move the rooms it owns (auto, the default),
//!                               or do nothing and be disconnected when the
//!                               drain ends (ignore)
//!   --token-key KEY             security on: the token key (`netz-key:..`, or
//!                               `new` to draw one from the OS and print it as
//!                               `token-key key=..`); this station admits joiners
//!   --connect-token TOKEN       security on: join with this connect token
//!                               (`netz-token-1:..`); `-` reads it from the
//!                               environment variable NETZ_CONNECT_TOKEN
//!   --protocol-id N             the game's protocol id for security (default 1)
//!   --help                      prints this and exits 0
//! ```
//!
//! With a token key, the command `issue TYPE CLIENT_ID SECONDS` answers
//! `token value=netz-token-1:..`: a connect token for a station of TYPE.
//!
//! SIGTERM makes a server scale in (a client leaves and exits); the process
//! exits 0 once the server has left the session.
//!
//! It prints one line per fact on stdout (`ready addr=..`, `created id=..`,
//! `joined id=.. master=..`, `published handle=.. value=.. recover=..`,
//! `event ..`, answers to commands) and reads commands on stdin, one a line:
//!
//! - `status` → `status id=I master=M stations=1,2,3 objects=N relay=R`
//! - `scores` → one `score handle=H master=M value=V owner=O recover=B`
//!   line per `Score` object, then `end`
//! - `set H V` → sets master `H`'s value and sends the update → `ok` / `err ..`
//! - `add H N` → RMC `add(N)` on `H`'s master → `rmc outcome=.. result=..`
//! - `bump H N` → action `bump(N)` on `H`'s master → `ok` / `err ..`
//! - `seen H` → `seen handle=H values=1,2,3`: the `bump` arguments seen here
//! - `spam H N MS` → sends actions `bump(1..=N)` to `H`'s master, one every
//!   MS ms, in the background → `spam-done sent=N`
//! - `scale-in [MS]` → (server) scales in → `ok` / `err ..`
//! - `migrate` → (client) migrates to another server → `ok` / `err ..`
//! - `room-create K=V..` → `room-created handle=H id=ID` / `err ..`
//! - `room-join H`, `room-set H K V` → `room-ok id=ID` / `err ..`
//! - `room-migrate H` → `ok` / `err ..` (only the owner may)
//! - `room-attach R H` → (the room's server) makes master `H` a room object
//!   of room `R` → `ok` / `err ..`
//! - `rooms` → one `room handle=H id=ID server=S owner=O members=1,2
//!   props=K=V;K=V objects=N` line per room, then `end`
//! - `leave` → leaves the session gracefully → `left`
//! - `quit` → leaves if in a session, then exits 0
//!
//! It exits at once when stdin closes (so it never outlives its parent).
//! A bind or join error prints `error ..` and exits with status 2.

mod score;

use netz_core::rmc::RmcContext;
use netz_core::{DOHandle, Event, ProcessType};
use netz_net::{wait_rmc, NetConfig, NetStation};
use score::{registry, Score, ADD, BUMP};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

/// What `--help` prints.
const USAGE: &str = "\
usage: netz-station --bind ADDR (--create | --join CONTACT) [options]
  --type server|client|tool   process type (default client)
  --token TOKEN               identification token (default: the type)
  --publish N                 publish N `Score` objects once in the session
  --recover all|none|even     which of them the session takes over when this
                              station fails (default even: 0, 2, ...)
  --deny TOKEN                (session creator) refuse joins with this token
  --heartbeat-ms N --failure-ms N --rmc-ms N --join-ms N   timeouts
  --lifetime-s N              exit after N seconds whatever happens (default 300)
  --topology mesh|client-server   the session's topology (default mesh)
  --drain-ms N                (server) drain timeout of a scale-in (default 10000)
  --migrate auto|ignore       (client) on `offline`: migrate at once (auto) or not
  --token-key KEY|new         security on: the token key (netz-key:..); `new` draws
                              one from the OS and prints `token-key key=..`
  --connect-token TOKEN|-     security on: join with this token (netz-token-1:..);
                              `-` reads it from NETZ_CONNECT_TOKEN
  --protocol-id N             the game's protocol id for security (default 1)
  --help                      print this and exit

Commands on stdin, one a line: status, scores, set H V, add H N, bump H N, seen H,
spam H N MS, scale-in [MS], migrate, room-create K=V.., room-join H, room-set H K V,
room-migrate H, room-attach R H, rooms, issue TYPE CLIENT_ID SECONDS, leave, quit.
";

/// Lines of stdin, read on a thread of their own; the channel closes at EOF.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
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

struct Args {
    bind: SocketAddr,
    create: bool,
    join: Option<SocketAddr>,
    process_type: ProcessType,
    token: Option<String>,
    publish: usize,
    recover: String,
    deny: Option<String>,
    heartbeat_ms: u64,
    failure_ms: u64,
    rmc_ms: u64,
    join_ms: u64,
    lifetime_s: u64,
    drain_ms: u64,
    migrate: bool,
    topology: netz_core::Topology,
    token_key: Option<String>,
    connect_token: Option<String>,
    protocol_id: u64,
    help: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bind: "127.0.0.1:0".parse().map_err(|_| "default address")?,
        create: false,
        join: None,
        process_type: ProcessType::Client,
        token: None,
        publish: 0,
        recover: "even".into(),
        deny: None,
        heartbeat_ms: 200,
        failure_ms: 1500,
        rmc_ms: 10_000,
        join_ms: 5000,
        lifetime_s: 300,
        drain_ms: 10_000,
        migrate: true,
        topology: netz_core::Topology::Mesh,
        token_key: None,
        connect_token: None,
        protocol_id: 1,
        help: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--create" {
            a.create = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            a.help = true;
            return Ok(a);
        }
        const WITH_VALUE: &[&str] = &[
            "--bind",
            "--join",
            "--type",
            "--token",
            "--publish",
            "--recover",
            "--deny",
            "--heartbeat-ms",
            "--failure-ms",
            "--rmc-ms",
            "--join-ms",
            "--lifetime-s",
            "--drain-ms",
            "--topology",
            "--migrate",
            "--token-key",
            "--connect-token",
            "--protocol-id",
        ];
        if !WITH_VALUE.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag} (see --help)"));
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        let addr = |v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|_| format!("{flag}: `{v}` is not an address like 127.0.0.1:4000"))
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--bind" => a.bind = addr(&value)?,
            "--join" => a.join = Some(addr(&value)?),
            "--type" => a.process_type = value.parse().map_err(|e| format!("--type: {e}"))?,
            "--token" => a.token = Some(value),
            "--publish" => a.publish = num(&value)? as usize,
            "--recover" => {
                if !["all", "none", "even"].contains(&value.as_str()) {
                    return Err(format!("--recover: `{value}` is not all, none or even"));
                }
                a.recover = value
            }
            "--deny" => a.deny = Some(value),
            "--heartbeat-ms" => a.heartbeat_ms = num(&value)?,
            "--failure-ms" => a.failure_ms = num(&value)?,
            "--rmc-ms" => a.rmc_ms = num(&value)?,
            "--join-ms" => a.join_ms = num(&value)?,
            "--lifetime-s" => a.lifetime_s = num(&value)?,
            "--drain-ms" => a.drain_ms = num(&value)?,
            "--topology" => {
                a.topology = match value.as_str() {
                    "mesh" => netz_core::Topology::Mesh,
                    "client-server" => netz_core::Topology::ClientServer,
                    _ => {
                        return Err(format!(
                            "--topology: `{value}` is not mesh or client-server"
                        ))
                    }
                }
            }
            "--migrate" => {
                a.migrate = match value.as_str() {
                    "auto" => true,
                    "ignore" => false,
                    _ => return Err(format!("--migrate: `{value}` is not auto or ignore")),
                }
            }
            "--token-key" => a.token_key = Some(value),
            "--connect-token" => a.connect_token = Some(value),
            "--protocol-id" => a.protocol_id = num(&value)?,
            _ => return Err(format!("unknown option {flag} (see --help)")),
        }
    }
    if a.create == a.join.is_some() {
        return Err("give exactly one of --create and --join CONTACT".into());
    }
    Ok(a)
}

/// Turns security on as `--token-key` / `--connect-token` ask; returns the
/// token issuer of a station that holds the key.
fn secure(
    mut config: NetConfig,
    a: &Args,
) -> Result<(NetConfig, Option<netz_core::crypto::TokenIssuer>), String> {
    let mut issuer = None;
    if let Some(k) = &a.token_key {
        let key = if k == "new" {
            let key = netz_net::security::new_token_key().map_err(|e| e.to_string())?;
            println!("token-key key={}", netz_core::key_to_text(&key));
            key
        } else {
            netz_core::key_from_text(k).map_err(|e| format!("--token-key: {e}"))?
        };
        issuer = Some(netz_core::crypto::TokenIssuer::new(&key, a.protocol_id));
        config = config.secure_authority(key, a.protocol_id);
    }
    if let Some(t) = &a.connect_token {
        let text = if t == "-" {
            std::env::var("NETZ_CONNECT_TOKEN")
                .map_err(|_| "--connect-token -: NETZ_CONNECT_TOKEN is not set".to_string())?
        } else {
            t.clone()
        };
        let token = netz_core::crypto::ConnectToken::from_text(&text)
            .map_err(|e| format!("--connect-token: {e}"))?;
        config = config.secure_joiner(token, a.protocol_id);
    }
    Ok((config, issuer))
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    println!("error {msg}");
    eprintln!("netz-station: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) if a.help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let lifetime = Duration::from_secs(args.lifetime_s);
    rt.block_on(async move {
        match tokio::time::timeout(lifetime, run(args)).await {
            Ok(code) => code,
            Err(_) => fail("lifetime over"),
        }
    })
}

async fn run(a: Args) -> ExitCode {
    let token = a
        .token
        .clone()
        .unwrap_or_else(|| a.process_type.as_str().into());
    let config = NetConfig::new(a.process_type, token.clone())
        .heartbeat_interval(Duration::from_millis(a.heartbeat_ms))
        .failure_timeout(Duration::from_millis(a.failure_ms))
        .rmc_timeout(Duration::from_millis(a.rmc_ms))
        .join_timeout(Duration::from_millis(a.join_ms))
        .drain_timeout(Duration::from_millis(a.drain_ms))
        .topology(a.topology);
    let (config, issuer) = match secure(config, &a) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let station = match NetStation::bind(a.bind, config, registry()).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut events = station.events();
    println!("ready addr={}", station.local_addr());
    if a.create {
        if let Some(deny) = a.deny.clone() {
            station.with(|st, _| {
                st.register_join_approval_callback(move |op| {
                    if op.joining_station().token == deny {
                        op.deny_with_reason(format!("token `{deny}` is not welcome"));
                    }
                })
            });
        }
        match station.create_session() {
            Ok(id) => println!("created id={}", id.0),
            Err(e) => return fail(e),
        }
    } else if let Some(contact) = a.join {
        match station.join(contact).await {
            Ok((id, master)) => println!("joined id={} master={}", id.0, master.0),
            Err(e) => return fail(e),
        }
    }
    for i in 0..a.publish {
        let recover = match a.recover.as_str() {
            "all" => true,
            "none" => false,
            _ => i % 2 == 0,
        };
        let value = (i as i64 + 1) * 10;
        match station.publish(Score::new(value, &token, recover)) {
            Ok(r) => println!(
                "published handle={} value={value} recover={recover}",
                r.handle().0
            ),
            Err(e) => println!("err publish: {e}"),
        }
    }
    let mut stdin = stdin_lines();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut scaling_in = false;
    let mut migrating_since = None;
    loop {
        tokio::select! {
            line = stdin.recv() => match line {
                Some(line) => {
                    let line = line.trim();
                    if line == "migrate" {
                        migrating_since = Some(std::time::Instant::now());
                    }
                    if line.starts_with("scale-in") {
                        scaling_in = true;
                    }
                    if let Some(rest) = line.strip_prefix("issue") {
                        issue(issuer.as_ref(), rest);
                        continue;
                    }
                    if !command(&station, line).await {
                        break;
                    }
                }
                // The parent is gone: exit at once, like a crash.
                _ => return ExitCode::SUCCESS,
            },
            _ = term.recv() => {
                if a.process_type == ProcessType::Server {
                    match station.scale_in_default() {
                        Ok(()) => {
                            scaling_in = true;
                            println!("scaling-in");
                        }
                        Err(e) => println!("err scale-in: {e}"),
                    }
                } else {
                    break;
                }
            }
            e = events.recv() => match e {
                Some(e) => {
                    print_event(&e, &mut migrating_since);
                    match &e {
                        Event::Offline { ours: true, .. } if a.migrate => {
                            migrating_since = Some(std::time::Instant::now());
                            match station.send_migrate() {
                                Ok(()) => println!("migrating"),
                                Err(e) => println!("err migrate: {e}"),
                            }
                            let me = station.id();
                            for r in station.rooms().into_iter().filter(|r| r.owner == me) {
                                match station.send_migrate_room(r.handle) {
                                    Ok(_) => println!("migrating-room handle={}", r.handle.0),
                                    Err(e) => println!("err room-migrate: {e}"),
                                }
                            }
                        }
                        Event::Disconnected { .. } if scaling_in => break,
                        _ => {}
                    }
                }
                None => break,
            },
        }
    }
    station.shutdown().await;
    println!("bye");
    ExitCode::SUCCESS
}

fn print_event(e: &Event, migrating_since: &mut Option<std::time::Instant>) {
    match e {
        Event::Offline { server, ours, .. } => {
            println!("event offline server={} ours={ours}", server.0)
        }
        Event::MigrateDisconnected { from, to } => {
            println!("event migrate-disconnected from={} to={}", from.0, to.0)
        }
        Event::Reconnected { server } => {
            let us = migrating_since
                .take()
                .map(|t| t.elapsed().as_micros())
                .unwrap_or(0);
            println!("event reconnected server={} elapsed_us={us}", server.0)
        }
        Event::MigrateFailed { reason } => println!("event migrate-failed reason={reason}"),
        Event::RoomMigrateStart { room } => {
            println!("event room-migrate-start handle={}", room.0)
        }
        Event::RoomMigrateComplete {
            room,
            success,
            room_id,
            error_code,
            message,
        } => println!(
            "event room-migrate-complete handle={} success={success} id={room_id} code={error_code} message={message}",
            room.0
        ),
        Event::StationJoined(info) => println!(
            "event station-joined id={} type={} token={}",
            info.id.0,
            info.process_type.as_str(),
            info.token
        ),
        Event::StationLeft(id) => println!("event station-left id={}", id.0),
        Event::StationFailed(id) => println!("event station-failed id={}", id.0),
        Event::SessionMasterChanged { new_master } => {
            println!("event session-master id={}", new_master.0)
        }
        Event::ObjectAdded { handle, master } => {
            println!("event object-added handle={} master={master}", handle.0)
        }
        Event::ObjectRemoved(h) => println!("event object-removed handle={}", h.0),
        Event::MasterChanged { handle, master } => {
            println!(
                "event master-changed handle={} master={}",
                handle.0, master.0
            )
        }
        Event::Disconnected { reason } => println!("event disconnected reason={reason}"),
        Event::Excluded { reason } => println!("event excluded reason={reason}"),
        Event::PeerAddressChanged { station, addr } => {
            println!("event address-changed id={} addr={addr}", station.0)
        }
        _ => {}
    }
}

fn handle_arg(s: Option<&str>) -> Option<DOHandle> {
    s?.parse().ok().map(DOHandle)
}

/// Runs one command; returns false to stop.
/// `issue TYPE CLIENT_ID SECONDS`: a connect token from this station's key.
fn issue(issuer: Option<&netz_core::crypto::TokenIssuer>, args: &str) {
    use netz_net::security::TokenIssuerExt;
    let Some(issuer) = issuer else {
        println!("err issue: this station has no token key (--token-key)");
        return;
    };
    let w: Vec<&str> = args.split_whitespace().collect();
    let process_type = match w.first().copied() {
        Some("server") => ProcessType::Server,
        Some("client") => ProcessType::Client,
        Some("tool") => ProcessType::Tool,
        _ => {
            println!("err usage: issue server|client|tool CLIENT_ID SECONDS");
            return;
        }
    };
    let (Some(Ok(client_id)), Some(Ok(secs))) = (
        w.get(1).map(|v| v.parse::<u64>()),
        w.get(2).map(|v| v.parse::<u64>()),
    ) else {
        println!("err usage: issue server|client|tool CLIENT_ID SECONDS");
        return;
    };
    match issuer.issue_for(client_id, process_type, Duration::from_secs(secs)) {
        Ok(t) => println!("token value={}", t.to_text()),
        Err(e) => println!("err issue: {e}"),
    }
}

async fn command(station: &NetStation, line: &str) -> bool {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("status") => {
            let s = station.read(|st| {
                let ids: Vec<String> = st.stations().iter().map(|i| i.id.0.to_string()).collect();
                format!(
                    "status id={} master={} stations={} objects={} relay={}",
                    st.id().0,
                    st.session_master().0,
                    ids.join(","),
                    st.select::<Score>().len(),
                    st.relay().map_or(0, |r| r.0)
                )
            });
            println!("{s}");
        }
        Some("scores") => {
            let mut lines = station.read(|st| {
                st.select::<Score>()
                    .into_iter()
                    .map(|r| {
                        let d = r.lock().data.clone();
                        (
                            r.handle(),
                            format!(
                                "score handle={} master={} value={} owner={} recover={}",
                                r.handle().0,
                                r.master_station().0,
                                d.value,
                                d.owner,
                                d.recover
                            ),
                        )
                    })
                    .collect::<Vec<_>>()
            });
            lines.sort();
            for (_, l) in lines {
                println!("{l}");
            }
            println!("end");
        }
        Some("set") => {
            let (Some(h), Some(v)) = (
                handle_arg(words.next()),
                words.next().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                println!("err usage: set HANDLE VALUE");
                return true;
            };
            let r = station.with(|st, now| {
                let r = st
                    .get::<Score>(h)
                    .ok_or(netz_core::StationError::NoSuchObject(h))?;
                r.lock().data.value = v;
                st.update(now, h)
            });
            match r {
                Ok(_) => println!("ok"),
                Err(e) => println!("err {e}"),
            }
        }
        Some("add") => {
            let (Some(h), Some(n)) = (
                handle_arg(words.next()),
                words.next().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                println!("err usage: add HANDLE N");
                return true;
            };
            let ctx: RmcContext<i64> = RmcContext::on_master();
            if !station.with(|st, _| st.object::<Score>(h).call(&ctx, ADD, &(n,))) {
                println!("err the call was not sent");
                return true;
            }
            let outcome = wait_rmc(&ctx, Duration::from_secs(30)).await;
            match ctx.result() {
                Some(r) => println!("rmc outcome={outcome:?} result={r}"),
                None => println!("rmc outcome={outcome:?}"),
            }
        }
        Some("bump") => {
            let (Some(h), Some(n)) = (
                handle_arg(words.next()),
                words.next().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                println!("err usage: bump HANDLE N");
                return true;
            };
            if station.with(|st, _| st.object::<Score>(h).action_on_master(BUMP, &(n,))) {
                println!("ok");
            } else {
                println!("err the action was not sent");
            }
        }
        Some("seen") => {
            let Some(h) = handle_arg(words.next()) else {
                println!("err usage: seen HANDLE");
                return true;
            };
            let seen = station.read(|st| st.get::<Score>(h).map(|r| r.lock().seen.clone()));
            match seen {
                Some(v) => {
                    let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    println!("seen handle={} values={}", h.0, v.join(","));
                }
                None => println!("err no object {}", h.0),
            }
        }
        Some("spam") => {
            let (Some(h), Some(n), Some(ms)) = (
                handle_arg(words.next()),
                words.next().and_then(|v| v.parse::<i64>().ok()),
                words.next().and_then(|v| v.parse::<u64>().ok()),
            ) else {
                println!("err usage: spam HANDLE N MS");
                return true;
            };
            let station = station.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                for i in 1..=n {
                    if station.with(|st, _| st.object::<Score>(h).action_on_master(BUMP, &(i,))) {
                        sent += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                println!("spam-done sent={sent}");
            });
            println!("ok");
        }
        Some("scale-in") => {
            let r = match words.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(ms) => station.scale_in(Duration::from_millis(ms)),
                None => station.scale_in_default(),
            };
            match r {
                Ok(()) => println!("ok"),
                Err(e) => println!("err {e}"),
            }
        }
        Some("migrate") => match station.send_migrate() {
            Ok(()) => println!("ok"),
            Err(e) => println!("err {e}"),
        },
        Some("room-create") => {
            let props: Vec<(String, String)> = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut events = station.events();
            match station.create_room(props) {
                Ok(req) => {
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
                        Some((room, Ok(id))) => println!("room-created handle={} id={id}", room.0),
                        Some((_, Err(e))) => println!("err {e}"),
                        None => println!("err no answer"),
                    }
                }
                Err(e) => println!("err {e}"),
            }
        }
        Some(cmd @ ("room-join" | "room-set")) => {
            let Some(h) = handle_arg(words.next()) else {
                println!("err usage: {cmd} HANDLE [KEY VALUE]");
                return true;
            };
            let mut events = station.events();
            let sent = if cmd == "room-join" {
                station.join_room(h)
            } else {
                let (k, v) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                station.set_room_property(h, k, v)
            };
            match sent {
                Ok(req) => {
                    let got = events
                        .wait_for(Duration::from_secs(10), |e| match e {
                            Event::RoomResult {
                                request, result, ..
                            } if *request == req => Some(result.clone()),
                            _ => None,
                        })
                        .await;
                    match got {
                        Some(Ok(id)) => println!("room-ok id={id}"),
                        Some(Err(e)) => println!("err {e}"),
                        None => println!("err no answer"),
                    }
                }
                Err(e) => println!("err {e}"),
            }
        }
        Some("room-attach") => {
            let (Some(room), Some(obj)) = (handle_arg(words.next()), handle_arg(words.next()))
            else {
                println!("err usage: room-attach ROOM OBJECT");
                return true;
            };
            match station.with(|st, now| st.attach_to_room(now, room, obj)) {
                Ok(()) => println!("ok"),
                Err(e) => println!("err {e}"),
            }
        }
        Some("room-migrate") => {
            let Some(h) = handle_arg(words.next()) else {
                println!("err usage: room-migrate HANDLE");
                return true;
            };
            match station.send_migrate_room(h) {
                Ok(_) => println!("ok"),
                Err(e) => println!("err {e}"),
            }
        }
        Some("rooms") => {
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
        Some("leave") => match station.leave().await {
            Ok(()) => println!("left"),
            Err(e) => println!("err {e}"),
        },
        Some("quit") => return false,
        Some(other) => println!("err unknown command {other}"),
        None => {}
    }
    true
}
