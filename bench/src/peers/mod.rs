//! Peers side by side with netz (the `peers` feature): naia's entity
//! replication and renet's reliable ordered messages, each against the
//! same scenario written for netz, measured in one run.
//!
//! - Replication ([`naia::replication`], [`netz::replication`]): one server,
//!   8 clients, 1,000 entities whose 7 fields all change every tick, on
//!   loopback; the server on one thread, the 8 clients on another. Each
//!   tick waits until every client applied every entity's update. Figures:
//!   UDP payload bytes the server sent per entity update delivered, CPU
//!   time (the threads' on-CPU time from `/proc/thread-self/schedstat`) per
//!   delivered field update for the server and for the clients together,
//!   field updates delivered per second per client, and heap per replicated
//!   entity ([`naia::memory`], [`crate::memory`]).
//! - Messages ([`renet::messages`], [`netz::messages`]): one client sends
//!   batches of reliable ordered messages of an `i32` to one server on
//!   loopback (renet 2's reliable ordered channel over plain UDP sockets;
//!   netz one-way RMCs `Unit::ping(i32)` on the object's master), one
//!   thread; messages delivered per second, and the client's UDP payload
//!   bytes per message (headers and acknowledgements included).

pub mod naia;
mod naia_world;
pub mod netz;
pub mod renet;

use crate::stats::Summary;
use std::fmt::Write as _;
use std::time::Duration;

/// The on-CPU time of the calling thread so far (the kernel's scheduler
/// statistics; zero where they are not available).
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// What one contender of the replication scenario measured, per round.
#[derive(Debug, Clone, Default)]
pub struct PeerReplication {
    /// Who.
    pub name: String,
    /// Field updates delivered per second, per client.
    pub fields_per_sec_per_client: Vec<f64>,
    /// UDP payload bytes the server sent per entity update delivered.
    pub wire_per_update: Vec<f64>,
    /// The server thread's CPU time per delivered field update, ns.
    pub server_ns_per_field: Vec<f64>,
    /// The clients' thread's CPU time per delivered field update, ns.
    pub client_ns_per_field: Vec<f64>,
    /// Ticks whose updates did not all arrive within 500 ms.
    pub incomplete: usize,
    /// Why the scenario could not run, if it could not.
    pub failure: Option<String>,
}

impl PeerReplication {
    /// An empty report for `name`.
    pub fn new(name: &str) -> PeerReplication {
        PeerReplication {
            name: name.into(),
            ..PeerReplication::default()
        }
    }

    /// Records one round: `delivered` entity updates in `secs` to
    /// `clients` clients, `bytes` sent by the server, the CPU time of the
    /// server and of the clients (ns).
    #[allow(clippy::too_many_arguments)]
    pub fn push_round(
        &mut self,
        clients: usize,
        secs: f64,
        delivered: u64,
        bytes: u64,
        server_cpu_ns: f64,
        client_cpu_ns: f64,
        incomplete: usize,
    ) {
        let fields = delivered as f64 * crate::classes::Motion::FIELDS as f64;
        self.fields_per_sec_per_client
            .push(fields / clients as f64 / secs);
        self.wire_per_update
            .push(bytes as f64 / delivered.max(1) as f64);
        self.server_ns_per_field.push(server_cpu_ns / fields);
        self.client_ns_per_field.push(client_cpu_ns / fields);
        self.incomplete += incomplete;
    }
}

/// What one contender of the message scenario measured, per round.
#[derive(Debug, Clone, Default)]
pub struct PeerMessages {
    /// Who.
    pub name: String,
    /// Messages delivered per second.
    pub per_sec: Vec<f64>,
    /// The client's UDP payload bytes per message.
    pub bytes_per_message: Vec<f64>,
    /// Why the scenario could not run, if it could not.
    pub failure: Option<String>,
}

/// Everything the peers section measured.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// netz, then naia.
    pub replication: Vec<PeerReplication>,
    /// Heap per replicated entity (server, client), B: netz, then naia.
    pub memory: Vec<(String, Option<(f64, f64)>)>,
    /// Entities of the memory measurement.
    pub memory_entities: usize,
    /// netz, then renet.
    pub messages: Vec<PeerMessages>,
    /// Messages per batch.
    pub batch: usize,
}

/// Runs both scenarios for every contender, rounds interleaved per
/// scenario (netz first in even rounds).
pub fn measure(rounds: usize, ticks: usize, batches: usize) -> Peers {
    let clients = 8;
    let entities = 1000;
    let batch = 1000;
    let mut p = Peers {
        memory_entities: 10_000,
        batch,
        ..Peers::default()
    };
    // Replication: each contender in its own run of rounds (their sessions
    // cannot share the loopback fairly at once), netz first.
    p.replication
        .push(netz::replication(clients, entities, rounds, ticks));
    p.replication
        .push(naia::replication(clients, entities, rounds, ticks));
    p.memory.push((
        "netz".into(),
        Some({
            crate::alloc::set_enabled(true);
            let m = crate::memory::measure(p.memory_entities);
            crate::alloc::set_enabled(false);
            (m.master, m.duplica)
        }),
    ));
    p.memory
        .push(("naia".into(), naia::memory(p.memory_entities)));
    let mut netz_m = PeerMessages {
        name: "netz (one-way RMCs)".into(),
        ..PeerMessages::default()
    };
    let mut renet_m = PeerMessages {
        name: "renet 2 (ReliableOrdered, plain UDP)".into(),
        ..PeerMessages::default()
    };
    let netz_pair = netz::MessagePair::start();
    let renet_pair = renet::RenetPair::start();
    netz_pair.run(batch, 2);
    renet_pair.run(batch, 2);
    for round in 0..rounds {
        eprint!("\rmessages round {}/{rounds}   ", round + 1);
        let mut both = [0, 1];
        if round % 2 == 1 {
            both.reverse();
        }
        for k in both {
            let (rate, bytes) = if k == 0 {
                netz_pair.run(batch, batches)
            } else {
                renet_pair.run(batch, batches)
            };
            let m = if k == 0 { &mut netz_m } else { &mut renet_m };
            m.per_sec.push(rate);
            m.bytes_per_message.push(bytes);
        }
    }
    eprintln!();
    p.messages = vec![netz_m, renet_m];
    p
}

fn fmt_summary(s: Summary, digits: usize) -> String {
    if s.median.is_nan() {
        return "–".into();
    }
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

fn fmt_rate(s: Summary) -> String {
    if s.median.is_nan() {
        return "–".into();
    }
    let f = |v: f64| {
        if v >= 1e6 {
            format!("{:.2} M", v / 1e6)
        } else {
            format!("{:.1} k", v / 1e3)
        }
    };
    format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
}

impl Peers {
    /// The peers as Markdown tables.
    pub fn tables(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| Replication (1 server, 8 clients, 1,000 entities × 7 fields every tick, loopback) | wire bytes per entity update | server CPU per delivered field update, ns | clients' CPU per delivered field update, ns | field updates delivered per second, per client | incomplete ticks |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|");
        for r in &self.replication {
            if let Some(why) = &r.failure {
                let _ = writeln!(t, "| {} | did not run: {why} | | | | |", r.name);
                continue;
            }
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} |",
                r.name,
                fmt_summary(Summary::of(&r.wire_per_update), 1),
                fmt_summary(Summary::of(&r.server_ns_per_field), 0),
                fmt_summary(Summary::of(&r.client_ns_per_field), 0),
                fmt_rate(Summary::of(&r.fields_per_sec_per_client)),
                r.incomplete
            );
        }
        let _ = writeln!(
            t,
            "\n| Heap per replicated entity ({} entities, one client) | server, B | client, B |",
            self.memory_entities
        );
        let _ = writeln!(t, "|---|---|---|");
        for (name, m) in &self.memory {
            match m {
                Some((s, c)) => {
                    let _ = writeln!(t, "| {name} | {s:.0} | {c:.0} |");
                }
                None => {
                    let _ = writeln!(t, "| {name} | did not complete | |");
                }
            }
        }
        let _ = writeln!(
            t,
            "\n| Reliable ordered messages of an i32, client → server, batches of {} | messages per second | client's UDP bytes per message |",
            self.batch
        );
        let _ = writeln!(t, "|---|---|---|");
        for m in &self.messages {
            if let Some(why) = &m.failure {
                let _ = writeln!(t, "| {} | did not run: {why} | |", m.name);
                continue;
            }
            let _ = writeln!(
                t,
                "| {} | {} | {} |",
                m.name,
                fmt_rate(Summary::of(&m.per_sec)),
                fmt_summary(Summary::of(&m.bytes_per_message), 2)
            );
        }
        t
    }

    /// Wire bytes per entity update, netz against naia, as an SVG bar chart.
    pub fn bytes_svg(&self) -> String {
        let bars: Vec<(String, f64)> = self
            .replication
            .iter()
            .map(|r| (r.name.clone(), Summary::of(&r.wire_per_update).median))
            .chain(std::iter::once((
                "postcard of the 7 fields".to_string(),
                26.0,
            )))
            .collect();
        crate::charts::bar_chart(
            "Wire bytes per entity update (7 changed fields), server → client",
            "UDP payload bytes per entity update",
            &bars,
        )
    }
}
