//! Forward compatibility (NetZ manual 14.4): an "old" and a "new" build of
//! the same classes share one session.
//!
//! - Class ids: `A` gets 100 in registration order, `X` asks for
//!   `classid = 102`; the new build adds class `C`, which gets 101.
//! - Method ids: the new build appends the RMC `get_a` after `get_x`; calling
//!   it on an old-build master fails with `ErrorRMCDispatchFailed`.
//! - Datasets: the new build's `Data` adds `a` after a revision marker
//!   (DDL: `dataset Data { double x; REVISION = 1; int32 a; };`); the old
//!   build ignores it, and the new build reads the old build's datasets as
//!   revision 0, where `a` is not valid.
//!
//! Run with `cargo run --example schema_versions`.
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
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

/// The old build's schema.
pub mod old {
    use netz::prelude::*;

    /// `dataset Data { double x; };`
    #[dataset]
    #[derive(Default, Clone, Debug)]
    pub struct Data {
        /// Field 0, revision 0.
        pub x: f64,
    }

    /// `doclass A {};`
    #[doclass]
    #[derive(Default)]
    pub struct A;

    #[doclass]
    impl A {}

    /// `doclass X { classid = 102; Data data; };`
    #[doclass(classid = 102)]
    #[derive(Default)]
    pub struct X {
        /// Dataset 0.
        #[dataset]
        pub data: Data,
    }

    #[doclass]
    impl X {
        /// Method id 0.
        #[rmc]
        pub fn get_x(&self) -> f64 {
            self.data.x
        }
    }

    /// The old build's classes, in its registration order.
    pub fn registry() -> Registry {
        let mut r = Registry::new();
        r.register::<A>().expect("A");
        r.register::<X>().expect("X");
        r
    }
}

/// The new build's schema: a new class, a new RMC, a new dataset field.
pub mod new {
    use netz::prelude::*;

    /// `dataset Data { double x; REVISION = 1; int32 a; };`
    #[dataset]
    #[derive(Default, Clone, Debug)]
    pub struct Data {
        /// Field 0, revision 0.
        pub x: f64,
        /// Field 1, revision 1.
        #[revision(1)]
        pub a: i32,
    }

    /// `doclass A {};`
    #[doclass]
    #[derive(Default)]
    pub struct A;

    #[doclass]
    impl A {}

    /// `doclass X { classid = 102; Data data; };`
    #[doclass(classid = 102)]
    #[derive(Default)]
    pub struct X {
        /// Dataset 0.
        #[dataset]
        pub data: Data,
    }

    #[doclass]
    impl X {
        /// Method id 0.
        #[rmc]
        pub fn get_x(&self) -> f64 {
            self.data.x
        }
        /// Method id 1: appended by the new build.
        #[rmc]
        pub fn get_a(&self) -> i32 {
            self.data.a
        }
    }

    /// A class only the new build has.
    #[doclass]
    #[derive(Default)]
    pub struct C;

    #[doclass]
    impl C {}

    /// The new build's classes, in its registration order.
    pub fn registry() -> Registry {
        let mut r = Registry::new();
        r.register::<A>().expect("A");
        r.register::<X>().expect("X");
        r.register::<C>().expect("C");
        r
    }
}

/// What the example observed, for tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    /// Revision of the old build's dataset as the new build received it.
    pub new_sees_old_revision: u8,
    /// Whether the new build considers `a` valid in the old build's dataset.
    pub new_sees_old_a_valid: bool,
    /// `x` of the old build's object as the new build received it.
    pub new_sees_old_x: f64,
    /// `x` of the new build's object as the old build received it.
    pub old_sees_new_x: f64,
    /// Revision of the new build's dataset as the old build received it.
    pub old_sees_new_revision: u8,
    /// `a` of the new build's object as another new-build station received it.
    pub new_sees_new_a: i32,
    /// Outcome of `get_a` called on the old build's master.
    pub get_a_on_old: Option<Outcome>,
    /// Result of `get_x` called on the old build's master.
    pub get_x_on_old: Option<f64>,
    /// Result of `get_a` called on the new build's master by another new-build station.
    pub get_a_on_new: Option<i32>,
}

/// Adds a station running its own build (registry) to the session.
fn add_station(c: &mut Cluster, cfg: StationConfig, registry: Registry) -> usize {
    let addr = c.sim.add_node(Station::new(cfg, Arc::new(registry)));
    c.addrs.push(addr);
    let i = c.addrs.len() - 1;
    c.join_existing(i, 0).expect("join");
    i
}

/// Runs the example; returns the lines it printed and what it observed.
pub fn run() -> (Vec<String>, Observed) {
    LINES.with(|l| l.borrow_mut().clear());
    let mut seen = Observed::default();
    let new_registry = new::registry();
    let old_registry = old::registry();
    say(format!(
        "new build class ids: A={} X={} C={}; method ids of X: get_x={:?} get_a={:?}",
        new_registry.class_id::<new::A>().map(|c| c.0).unwrap_or(0),
        new_registry.class_id::<new::X>().map(|c| c.0).unwrap_or(0),
        new_registry.class_id::<new::C>().map(|c| c.0).unwrap_or(0),
        new_registry.method_id::<new::X>("get_x").map(|m| m.0),
        new_registry.method_id::<new::X>("get_a").map(|m| m.0),
    ));
    say(format!(
        "old build class ids: A={} X={}; method ids of X: get_x={:?}",
        old_registry.class_id::<old::A>().map(|c| c.0).unwrap_or(0),
        old_registry.class_id::<old::X>().map(|c| c.0).unwrap_or(0),
        old_registry.method_id::<old::X>("get_x").map(|m| m.0),
    ));
    let mut c = Cluster::start(
        SimConfig::seeded(14),
        Arc::new(new_registry),
        vec![
            StationConfig::new(ProcessType::Server, "new-1"),
            StationConfig::new(ProcessType::Server, "new-2"),
        ],
    )
    .expect("session");
    let old_st = add_station(
        &mut c,
        StationConfig::new(ProcessType::Server, "old"),
        old_registry,
    );
    let (new_st, new_st2) = (0, 1);
    say(format!(
        "{} and {} run the new build, {} the old one",
        c.station(new_st).id(),
        c.station(new_st2).id(),
        c.station(old_st).id()
    ));

    let now = c.now();
    let old_obj = c
        .station_mut(old_st)
        .publish(
            now,
            old::X {
                data: old::Data {
                    x: 1.5,
                    ..Default::default()
                },
            },
        )
        .expect("publish old");
    let new_obj = c
        .station_mut(new_st)
        .publish(
            now,
            new::X {
                data: new::Data {
                    x: 2.5,
                    a: 7,
                    ..Default::default()
                },
            },
        )
        .expect("publish new");
    c.run_for(Duration::from_millis(300));

    // The manual's loop over every X, on a new-build station.
    say(format!("on {} (new build):", c.station(new_st2).id()));
    for it in c.station(new_st2).select::<new::X>() {
        let g = it.lock();
        let d = &g.data;
        say(format!(
            "  {} data revision: {} x: {} valid: {} a: {} valid: {} (x = {}, a = {})",
            it.handle(),
            d.revision(),
            new::Data::x_valid_revision(),
            d.is_x_valid(),
            new::Data::a_valid_revision(),
            d.is_a_valid(),
            d.x,
            d.a
        ));
        if it.handle() == old_obj.handle() {
            seen.new_sees_old_revision = d.revision();
            seen.new_sees_old_a_valid = d.is_a_valid();
            seen.new_sees_old_x = d.x;
        } else {
            seen.new_sees_new_a = d.a;
        }
    }
    say(format!("on {} (old build):", c.station(old_st).id()));
    for it in c.station(old_st).select::<old::X>() {
        let g = it.lock();
        let note = if it.handle() == new_obj.handle() {
            " (the new build's field a was ignored)"
        } else {
            " (master)"
        };
        say(format!(
            "  {} data revision: {} x: {}{note}",
            it.handle(),
            g.data.revision(),
            g.data.x
        ));
        if it.handle() == new_obj.handle() {
            seen.old_sees_new_x = g.data.x;
            seen.old_sees_new_revision = g.data.revision();
        }
    }

    // RMCs across builds.
    let ctx = RmcContext::on_master();
    c.station_mut(new_st)
        .object::<new::X>(old_obj.handle())
        .call_get_x(&ctx);
    c.wait(&ctx, Duration::from_secs(2));
    seen.get_x_on_old = ctx.result();
    say(format!(
        "new build calls get_x on the old master: {:?} {:?}",
        ctx.outcome(),
        ctx.result()
    ));
    let ctx = RmcContext::on_master();
    c.station_mut(new_st)
        .object::<new::X>(old_obj.handle())
        .call_get_a(&ctx);
    c.wait(&ctx, Duration::from_secs(2));
    seen.get_a_on_old = Some(ctx.outcome());
    say(format!(
        "new build calls get_a (method id 1) on the old master: {:?}",
        ctx.outcome()
    ));
    let ctx = RmcContext::on_master();
    c.station_mut(old_st)
        .object::<old::X>(new_obj.handle())
        .call_get_x(&ctx);
    c.wait(&ctx, Duration::from_secs(2));
    say(format!(
        "old build calls get_x on the new master: {:?} {:?}",
        ctx.outcome(),
        ctx.result()
    ));
    let ctx: RmcContext<i32> = RmcContext::on_master();
    c.station_mut(new_st2)
        .object::<new::X>(new_obj.handle())
        .call_get_a(&ctx);
    c.wait(&ctx, Duration::from_secs(2));
    seen.get_a_on_new = ctx.result();
    say(format!(
        "new build calls get_a on the new master: {:?} {:?}",
        ctx.outcome(),
        ctx.result()
    ));
    (LINES.with(|l| l.borrow().clone()), seen)
}

#[allow(dead_code)]
fn main() {
    run();
}
