//! The operation examples of the NetZ manual (14.3) around an `Avatar`:
//! - `Avatar::OperationEnd` reports "The Avatar ... has migrated" on
//!   ChangeMasterStation, and a trace filter (`FilterAvatarTraces`) traces
//!   only the Avatar's operations;
//! - a custom operation check keeps Avatar duplicas off client stations
//!   (`DenyClientAvatarCreation`) and restricts the special RMC to server
//!   stations (`RestrictSpecialRMCs`);
//! - the invalid-operation callbacks `ReportCheats` and
//!   `TraceInvalidOperations` run for each rejected operation.
//!
//! Run with `cargo run --example avatar_guard`.
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use netz::{ChangeDupSetOperation, OperationKind};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Prints a line and records it for [`run`]'s caller.
fn say(line: impl Into<String>) {
    let line = line.into();
    println!("{line}");
    LINES.with(|l| l.borrow_mut().push(line));
}

/// Where an avatar is.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Position {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// A player's avatar.
#[doclass]
#[derive(Default)]
pub struct Avatar {
    /// Its position.
    #[dataset]
    pub position: Position,
}

#[doclass]
impl Avatar {
    /// Moves the avatar.
    #[rmc]
    pub fn walk(&mut self, dx: f32, dy: f32) {
        self.position.x += dx;
        self.position.y += dy;
    }

    /// `void Avatar::OperationEnd(DOOperation* pOperation)`.
    fn operation_end(&mut self, op: &Operation) {
        if op.get_type() == OperationKind::ChangeMasterStation {
            say(format!(
                "{}: The Avatar {} has migrated",
                op.local_station(),
                op.associated_do()
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            ));
        }
    }
}

/// The arena, duplicated everywhere; its special RMC is for servers only.
#[doclass]
#[derive(Default)]
pub struct Arena {}

#[doclass]
impl Arena {
    /// An RMC anybody may call.
    #[rmc]
    pub fn score(&self) -> u32 {
        42
    }
    /// The manual's `SpecialRMC`: only server stations may call it.
    #[rmc(name = "SpecialRMC")]
    pub fn special_rmc(&mut self, call: &mut CallContext<'_>) -> String {
        format!("special RMC run for {}", call.caller())
    }
}

/// `FilterAvatarTraces`: keep operations not related to a DO, and those of avatars.
fn filter_avatar_traces(op: &Operation) -> bool {
    op.associated_do().is_none() || op.is_a::<Avatar>()
}

/// `DenyClientAvatarCreation` and `RestrictSpecialRMCs` in one check.
fn custom_operation_check(special_rmc: MethodId) -> impl FnMut(&Operation) -> bool + Send {
    move |op| {
        // I will not create duplicas of my Avatar on a client station.
        if let Some(change) = op.downcast::<ChangeDupSetOperation>() {
            if change.is_a_duplica_addition()
                && op.is_a::<Avatar>()
                && op.target_process_type() == Some(ProcessType::Client)
            {
                return false;
            }
        }
        // Only server processes may call the special RMC.
        if let Some(call) = op.downcast::<CallMethodOperation>() {
            if op.is_a::<Arena>() && call.target_method_id() == special_rmc {
                return op.origin_process_type() == Some(ProcessType::Server);
            }
        }
        true
    }
}

/// Runs the example; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    registry.register::<Avatar>().expect("register Avatar");
    registry.register::<Arena>().expect("register Arena");
    let special = registry
        .method_id::<Arena>("SpecialRMC")
        .expect("SpecialRMC");
    let mut c = Cluster::start(
        SimConfig::seeded(11),
        Arc::new(registry),
        vec![
            StationConfig::new(ProcessType::Server, "server"),
            StationConfig::new(ProcessType::Server, "server-2"),
            StationConfig::new(ProcessType::Client, "player"),
        ],
    )
    .expect("session");
    let (server, server2, player) = (0, 1, 2);
    for i in 0..3 {
        let st = c.station_mut(i);
        st.trust_local_station(false);
        st.register_custom_operation_check(custom_operation_check(special));
        let id = st.id();
        // ReportCheats (release) and TraceInvalidOperations (debug).
        st.register_invalid_operation_callback(move |op| {
            say(format!(
                "{id}: ReportCheats: {} performed an invalid {}",
                op.origin(),
                op.class_name()
            ));
        });
        st.register_invalid_operation_callback(move |_| {
            say(format!(
                "{id}: ** An invalid operation has been performed **"
            ));
        });
        st.set_trace_filter(filter_avatar_traces);
        st.set_trace_log(true);
    }

    let now = c.now();
    let avatar = c
        .station_mut(server)
        .publish(now, Avatar::default())
        .expect("avatar");
    let arena = c
        .station_mut(server)
        .publish(now, Arena::default())
        .expect("arena");
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        let st = c.station(i);
        say(format!(
            "{} ({:?}): avatar duplica {}, arena {}",
            st.id(),
            st.config().process_type,
            if st.contains(avatar.handle()) {
                "yes"
            } else {
                "no"
            },
            if st.contains(arena.handle()) {
                "yes"
            } else {
                "no"
            },
        ));
    }

    // The special RMC: refused for the client, run for the other server.
    for caller in [player, server2] {
        let ctx: RmcContext<String> = RmcContext::on_master();
        let sent = c
            .station_mut(caller)
            .object::<Arena>(arena.handle())
            .call_special_rmc(&ctx);
        c.wait(&ctx, Duration::from_secs(2));
        say(format!(
            "{} calls SpecialRMC: sent={sent} outcome={:?} {}",
            c.station(caller).id(),
            ctx.outcome(),
            ctx.result().unwrap_or_default()
        ));
    }
    let ctx: RmcContext<u32> = RmcContext::on_master();
    c.station_mut(player)
        .object::<Arena>(arena.handle())
        .call_score(&ctx);
    c.wait(&ctx, Duration::from_secs(2));
    say(format!(
        "{} calls score: outcome={:?} result={:?}",
        c.station(player).id(),
        ctx.outcome(),
        ctx.result()
    ));

    // Migrate the avatar to the other server; trace what happens.
    let _ = c.station_mut(server).take_trace();
    let _ = c.station_mut(server2).take_trace();
    let to = c.station(server2).id();
    let now = c.now();
    c.station_mut(server)
        .migrate(now, avatar.handle(), to)
        .expect("migrate");
    c.run_for(Duration::from_millis(300));
    say(format!("avatar master is now {}", avatar.master_station()));
    for i in [server, server2] {
        for line in c.station_mut(i).take_trace() {
            say(format!("trace: {line}"));
        }
    }
    LINES.with(|l| l.borrow().clone())
}

#[allow(dead_code)]
fn main() {
    run();
}
