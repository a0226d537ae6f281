//! The whole surface of the DSL compiles.
use netz::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{LinkedList, VecDeque};

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
struct Custom {
    a: u8,
}

#[dataset(revision = 2, name = "Telemetry")]
#[derive(Default, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Data {
    speed: u32,
    #[revision(3)]
    label: String,
    #[revision(255)]
    tail: Vec<u8>,
}

#[dataset]
#[derive(Default)]
struct Empty;

#[doclass(classid = 255, name = "Everything")]
#[derive(Default)]
struct Class {
    #[dataset]
    data: Data,
    #[dataset]
    empty: Empty,
    local: u32,
}

#[doclass]
impl Class {
    #[rmc]
    fn by_value(&mut self, a: i32, s: String, v: Vec<u8>, q: VecDeque<u8>, l: LinkedList<u8>) -> u64 {
        let _ = (s, v, q, l);
        a as u64 + self.local as u64
    }
    #[rmc]
    fn borrowed(&self, s: &str, v: &[u32], c: &Custom, arr: &[u8; 4]) -> Custom {
        let _ = (s, v, arr);
        c.clone()
    }
    #[rmc]
    fn outs(&mut self, #[out] a: &mut String, #[inout] b: &mut [i32; 2], c: &mut Option<Custom>) {
        a.push('x');
        b[0] += 1;
        *c = None;
    }
    #[rmc]
    fn with_call(&mut self, call: &mut CallContext<'_>, h: DOHandle) -> (DOHandle, <Self as HasAlias>::Alias) {
        let _ = call.operation().attempt_count();
        (h, 0)
    }
    #[rmc]
    fn returns_self_type(&self) -> Option<Data> {
        None
    }
    #[action]
    fn act(&mut self, x: u8, s: &str) {
        self.local += x as u32 + s.len() as u32;
    }
    #[action(name = "Other")]
    fn act2(&mut self, _call: &mut CallContext<'_>) {}

    fn init_do(&mut self) {}
    fn operation_begin(&mut self, _op: &Operation) {}
    fn operation_end(&mut self, _op: &Operation) {}
    fn approve_fault_recovery(&self) -> bool {
        true
    }
    fn new_duplica() -> Self {
        Class { local: 7, ..Default::default() }
    }
    /// A plain helper stays a plain method.
    fn helper(&self) -> u32 {
        self.local
    }
}

trait HasAlias {
    type Alias;
}
impl HasAlias for Class {
    type Alias = u8;
}
impl Class {
    #[allow(non_upper_case_globals)]
    const _unused: () = ();
}

#[doclass]
#[derive(Default)]
struct Bare;

#[doclass]
impl Bare {}

fn stubs(station: &mut Station, h: DOHandle) {
    let ctx: RmcContext<u64> = RmcContext::on_master();
    let _: bool = station.object::<Class>(h).call_by_value(&ctx, 1, "s".into(), vec![], VecDeque::new(), LinkedList::new());
    let ctx: RmcContext<Custom> = RmcContext::new();
    let _ = station.object::<Class>(h).call_borrowed(&ctx, "s", &[1, 2], &Custom::default(), &[0; 4]);
    let ctx: RmcContext<(String, [i32; 2], Option<Custom>)> = RmcContext::new();
    let _ = station.object::<Class>(h).call_outs(&ctx, &[1, 2], &None);
    let ctx: RmcContext<(DOHandle, u8)> = RmcContext::new();
    let _ = station.object::<Class>(h).call_with_call(&ctx, h);
    let ctx: RmcContext<Option<Data>> = RmcContext::new();
    let _ = station.object::<Class>(h).call_returns_self_type(&ctx);
    let _ = station.object::<Class>(h).act_on_master(1, "x");
    let _ = station.object::<Class>(h).act_on_duplicas(1, "x");
    let _ = station.object::<Class>(h).act2_on_master();
    let _ = station.object::<Class>(h).handle();
}

fn main() {
    let mut r = Registry::new();
    r.register::<Class>().unwrap();
    r.register::<Bare>().unwrap();
    assert_eq!(Class::CLASS_NAME, "Everything");
    assert_eq!(Class::METHODS.len(), 7);
    assert_eq!(Data::REVISION, 255);
    assert_eq!(Data::speed_valid_revision(), 2);
    let d = Data::default();
    assert!(!d.is_tail_valid());
    assert_eq!(d.revision(), 0);
    let c = <Class as DoClass>::new_duplica();
    assert_eq!(c.helper(), 7);
    let _ = stubs;
}
