//! The Factorial example of the NetZ manual (14.3.3, CallMethodOperation):
//! two stations compute Factorial(10) through RMCs that call each other.
//! Each call to a value above 0 starts a nested asynchronous RMC on the other
//! station, keeps its context as the operation's user context, checks the
//! result with `wait(0)` and, while it is not ready, postpones the operation
//! by 100 ms; queued messages keep being processed meanwhile, so the nested
//! calls cannot deadlock.
//!
//! Run with `cargo run --example factorial`.
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use netz::UserContext;
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

/// The manual's `FactorialContext`: the nested call's context.
pub struct FactorialContext {
    /// The nested call; its result is `Factorial(value - 1)`.
    pub rmc: RmcContext<i64>,
}

/// The object the factorial runs on.
#[doclass]
#[derive(Default)]
pub struct GameObject {}

#[doclass]
impl GameObject {
    /// `qInt GameObject::Factorial(qInt iValue, DOHandle hS1, DOHandle hS2)`.
    #[rmc(name = "Factorial")]
    pub fn factorial(
        &mut self,
        call: &mut CallContext<'_>,
        value: i64,
        s1: StationId,
        s2: StationId,
    ) -> i64 {
        let attempt = call.operation().attempt_count();
        if value == 0 {
            say(format!(
                "{}: factorial(0) = 1 (attempt count {attempt})",
                call.local_station()
            ));
            assert_eq!(attempt, 1);
            return 1;
        }
        let context = if attempt == 1 {
            // First attempt: start the nested call on the other station.
            let context = Arc::new(FactorialContext {
                rmc: RmcContext::new(),
            });
            call.operation()
                .attach_user_context(UserContext::object(context.clone()));
            context.rmc.clear_flag(RmcFlag::SynchronousCall);
            let worker = if call.local_station() == s1 { s2 } else { s1 };
            context.rmc.set_target_station(worker);
            let handle = call.handle();
            let sent =
                call.object::<GameObject>(handle)
                    .call_factorial(&context.rmc, value - 1, s1, s2);
            assert!(sent, "the nested call is sent");
            context
        } else {
            call.operation()
                .user_context()
                .and_then(|c| c.downcast::<FactorialContext>())
                .expect("the context attached on the first attempt")
        };
        say(format!(
            "{}: testing if result of factorial({}) is ready (attempt {attempt})",
            call.local_station(),
            value - 1
        ));
        if context.rmc.wait(Duration::ZERO) {
            let sub = context.rmc.result().unwrap_or(0);
            say(format!(
                "{}: result of factorial({}) = {sub}",
                call.local_station(),
                value - 1
            ));
            value * sub
        } else {
            call.operation()
                .postpone_operation(Duration::from_millis(100));
            0
        }
    }
}

/// Runs the example; returns the lines it printed and the result.
pub fn run() -> (Vec<String>, Option<i64>) {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    registry.register::<GameObject>().expect("register");
    let mut c = Cluster::start(
        SimConfig::seeded(10),
        Arc::new(registry),
        vec![
            StationConfig::new(ProcessType::Server, "s1"),
            StationConfig::new(ProcessType::Server, "s2"),
        ],
    )
    .expect("session");
    let now = c.now();
    let obj = c
        .station_mut(0)
        .publish(now, GameObject::default())
        .expect("publish");
    c.run_for(Duration::from_millis(200));
    let (s1, s2) = (c.station(0).id(), c.station(1).id());
    say(format!(
        "calling Factorial(10) on {s1}; the stations alternate"
    ));
    let ctx: RmcContext<i64> = RmcContext::with_target(s1, true);
    let sent = c
        .station_mut(0)
        .object::<GameObject>(obj.handle())
        .call_factorial(&ctx, 10, s1, s2);
    assert!(sent);
    c.wait(&ctx, Duration::from_secs(30));
    let result = ctx.result();
    say(format!(
        "Factorial(10) = {} ({:?})",
        result.map(|r| r.to_string()).unwrap_or_default(),
        ctx.outcome()
    ));
    (LINES.with(|l| l.borrow().clone()), result)
}

#[allow(dead_code)]
fn main() {
    let (_, result) = run();
    assert_eq!(result, Some(3_628_800));
}
