//! Hand-written DO classes (what the macros generate) shared by the tests.
#![allow(dead_code)]

use netz_core::*;
use std::sync::{Arc, Mutex};

/// A shared log of what happened, in order.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

thread_local! {
    pub static LOG: std::cell::RefCell<Option<Log>> = const { std::cell::RefCell::new(None) };
}

pub fn log(s: impl Into<String>) {
    let s = s.into();
    LOG.with(|l| {
        if let Some(l) = &*l.borrow() {
            l.push(s)
        }
    });
}

pub fn set_log(l: &Log) {
    LOG.with(|x| *x.borrow_mut() = Some(l.clone()));
}

pub fn kind(op: &Operation) -> &'static str {
    op.class_name().trim_end_matches("Operation")
}

/// A counter dataset: revision 0 `value`, `name`; revision 1 `extra`.
#[derive(Default, Debug, Clone)]
pub struct CounterData {
    pub value: i64,
    pub name: String,
    pub extra: u32,
    pub received: u8,
    pub fields: usize,
}

impl DataSet for CounterData {
    fn name(&self) -> &'static str {
        "CounterData"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["value", "name", "extra"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 1]
    }
    fn encode_field(&self, i: usize, out: &mut Vec<u8>) {
        match i {
            0 => encode_value(&self.value, out),
            1 => encode_value(&self.name, out),
            _ => encode_value(&self.extra, out),
        }
    }
    fn decode_field(&mut self, i: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match i {
            0 => self.value = decode_value(input, "value")?,
            1 => self.name = decode_value(input, "name")?,
            _ => self.extra = decode_value(input, "extra")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, r: u8) {
        self.received = r
    }
    fn operation_begin(&mut self, op: &Operation) {
        log(format!(
            "{} DataSet::OperationBegin {}",
            op.local_station(),
            kind(op)
        ));
    }
    fn operation_end(&mut self, op: &Operation) {
        log(format!(
            "{} DataSet::OperationEnd {}",
            op.local_station(),
            kind(op)
        ));
    }
}

/// A counter object with RMCs `add(i64) -> i64`, `get() -> i64`, `fail()` and action `bump(i64)`.
#[derive(Default, Debug)]
pub struct Counter {
    pub data: CounterData,
    pub recover: bool,
    pub bumps: i64,
    pub seen: Vec<i64>,
    pub station: Option<StationId>,
}

pub const ADD: MethodId = MethodId(0);
pub const GET: MethodId = MethodId(1);
pub const BUMP: MethodId = MethodId(2);

impl DoClass for Counter {
    const CLASS_NAME: &'static str = "Counter";
    const METHODS: &'static [MethodInfo] = &[
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
    ];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Counter::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.data as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.data as &mut dyn DataSet)
    }
    fn operation_begin(&mut self, op: &Operation) {
        self.station = Some(op.local_station());
        log(format!(
            "{} DO::OperationBegin {}",
            op.local_station(),
            kind(op)
        ));
    }
    fn operation_end(&mut self, op: &Operation) {
        log(format!(
            "{} DO::OperationEnd {}",
            op.local_station(),
            kind(op)
        ));
    }
    fn init_do(&mut self) {
        log(format!("{} DO::InitDO", self.tag()));
    }
    fn approve_fault_recovery(&mut self) -> bool {
        log(format!("{} DO::ApproveFaultRecovery", self.tag()));
        self.recover || self.data.name == "recover"
    }
    fn dispatch(
        &mut self,
        call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        log(format!("{} DO::Call", self.tag()));
        match method {
            ADD => {
                let (n,): (i64,) =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                self.data.value += n;
                Ok(postcard::to_allocvec(&self.data.value).unwrap())
            }
            GET => {
                let _ = call.caller();
                Ok(postcard::to_allocvec(&self.data.value).unwrap())
            }
            BUMP => {
                let (n,): (i64,) =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                self.bumps += n;
                self.seen.push(n);
                Ok(Vec::new())
            }
            m => Err(DispatchError::UnknownMethod(m)),
        }
    }
}

impl Counter {
    pub fn new(value: i64, name: &str) -> Self {
        let mut c = Counter::default();
        c.data.value = value;
        c.data.name = name.into();
        c
    }
    pub fn recovering(recover: bool) -> Self {
        // The decision travels with the replicated name, so duplicas know it.
        let mut c = Counter::default();
        c.recover = recover;
        if recover {
            c.data.name = "recover".into();
        }
        c
    }
    fn tag(&self) -> String {
        self.station
            .map(|s| s.to_string())
            .unwrap_or_else(|| "S?".into())
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        log(format!("{} DO::Destructor", self.tag()));
    }
}

/// An avatar: no datasets, one RMC.
#[derive(Default, Debug)]
pub struct Avatar;

impl DoClass for Avatar {
    const CLASS_NAME: &'static str = "Avatar";
    const METHODS: &'static [MethodInfo] = &[MethodInfo {
        name: "wave",
        kind: MethodKind::Rmc,
    }];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Avatar
    }
    fn dispatch(
        &mut self,
        _call: &mut CallContext<'_>,
        method: MethodId,
        _args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        match method.0 {
            0 => Ok(Vec::new()),
            _ => Err(DispatchError::UnknownMethod(method)),
        }
    }
}

pub fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Counter>().unwrap();
    r.register::<Avatar>().unwrap();
    Arc::new(r)
}

/// Objects mastered by more than one station of `c` that is in a session.
pub fn doubly_mastered(c: &netz_core::cluster::Cluster) -> Vec<DOHandle> {
    let mut owners: std::collections::BTreeMap<DOHandle, Vec<StationId>> = Default::default();
    for i in c.live() {
        let st = c.station(i);
        if !st.is_in_session() {
            continue;
        }
        for h in st.objects() {
            if st.master_of(h) == Some(st.id()) {
                owners.entry(h).or_default().push(st.id());
            }
        }
    }
    owners
        .into_iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(h, _)| h)
        .collect()
}

/// Crashes station `i` of `c` and runs until every live station no longer
/// counts it (at most five seconds); its id.
#[allow(dead_code)]
pub fn crash_until_gone(c: &mut netz_core::cluster::Cluster, i: usize) -> StationId {
    let id = c.station(i).id();
    c.crash(i);
    let gone = c.run_until(std::time::Duration::from_secs(5), |c| {
        c.live()
            .into_iter()
            .all(|k| c.station(k).station_info(id).is_none())
    });
    assert!(gone, "station {i} declared gone everywhere");
    id
}
