//! Class compatibility at join: a joiner whose classes would be misread is
//! refused with a reason naming the class and the difference, before it
//! gets an id; additive changes (14.4) still join.
mod common;
use common::*;
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::sync::Arc;

/// `Counter` of another build: the same datasets, its methods given by `M`.
struct CounterBuild<const M: usize>(Counter);

const APPENDED: &[MethodInfo] = &[
    MethodInfo {
        name: "add",
        kind: MethodKind::Rmc,
    },
    MethodInfo {
        name: "get",
        kind: MethodKind::Rmc,
    },
    MethodInfo {
        name: "bump",
        kind: MethodKind::Action,
    },
    MethodInfo {
        name: "reset",
        kind: MethodKind::Rmc,
    },
];

const RENAMED: &[MethodInfo] = &[
    MethodInfo {
        name: "add",
        kind: MethodKind::Rmc,
    },
    MethodInfo {
        name: "peek",
        kind: MethodKind::Rmc,
    },
];

impl<const M: usize> DoClass for CounterBuild<M> {
    const CLASS_NAME: &'static str = "Counter";
    const METHODS: &'static [MethodInfo] = if M == 0 { APPENDED } else { RENAMED };
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        CounterBuild(Counter::default())
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        self.0.dataset(i)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        self.0.dataset_mut(i)
    }
}

fn session() -> Cluster {
    Cluster::start(
        SimConfig::seeded(4),
        registry(),
        vec![StationConfig::new(ProcessType::Server, "s")],
    )
    .unwrap()
}

fn join_with(c: &mut Cluster, r: Registry) -> Result<usize, JoinError> {
    c.join_with_registry(StationConfig::new(ProcessType::Client, "c"), Arc::new(r), 0)
}

#[test]
fn classes_registered_in_another_order_are_refused_naming_the_class() {
    let mut c = session();
    let mut r = Registry::new();
    r.register::<Avatar>().unwrap();
    r.register::<Counter>().unwrap();
    let err = join_with(&mut c, r).unwrap_err();
    let JoinError::IncompatibleClasses(why) = &err else {
        panic!("{err:?}");
    };
    assert!(
        why.contains("`Counter`") && why.contains("`Avatar`"),
        "{why}"
    );
    // No id was spent on it: the next station still gets id 2.
    assert_eq!(
        c.join(StationConfig::new(ProcessType::Client, "ok"), 0),
        Ok(2)
    );
    assert_eq!(c.station(2).id(), StationId(2));
}

#[test]
fn a_renamed_method_is_refused_naming_it() {
    let mut c = session();
    let mut r = Registry::new();
    r.register::<CounterBuild<1>>().unwrap();
    r.register::<Avatar>().unwrap();
    let err = join_with(&mut c, r).unwrap_err();
    let JoinError::IncompatibleClasses(why) = &err else {
        panic!("{err:?}");
    };
    assert!(
        why.contains("`Counter`") && why.contains("`get`") && why.contains("`peek`"),
        "{why}"
    );
}

#[test]
fn an_rmc_appended_at_the_end_still_joins() {
    let mut c = session();
    let mut r = Registry::new();
    r.register::<CounterBuild<0>>().unwrap();
    r.register::<Avatar>().unwrap();
    let i = join_with(&mut c, r).unwrap();
    assert!(c.station(i).is_in_session());
}

#[test]
fn a_topology_mismatch_is_refused_before_an_id_is_spent() {
    let mut cfg = StationConfig::new(ProcessType::Server, "s");
    cfg.topology = Topology::ClientServer;
    let mut c = Cluster::start(SimConfig::seeded(6), registry(), vec![cfg]).unwrap();
    let err = c
        .join(StationConfig::new(ProcessType::Server, "mesh"), 0)
        .unwrap_err();
    assert_eq!(err, JoinError::TopologyMismatch);
    let mut ok = StationConfig::new(ProcessType::Server, "ok");
    ok.topology = Topology::ClientServer;
    let i = c.join(ok, 0).unwrap();
    assert_eq!(c.station(i).id(), StationId(2));
}
