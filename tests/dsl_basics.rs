//! The DSL end to end: datasets replicate, RMCs with in / out / in-out
//! parameters return their values, actions run on master and duplicas.
#![allow(missing_docs)]
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use serde::{Deserialize, Serialize};
use std::collections::{LinkedList, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// A custom serde type used as an argument.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Offer {
    pub make: String,
    pub price: i32,
}

#[dataset]
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Stock {
    pub cars: Vec<String>,
    pub cash: i64,
    #[revision(1)]
    pub note: String,
}

#[dataset(name = "Position")]
#[derive(Default, Clone, Debug)]
pub struct Pos {
    pub x: f32,
    pub y: f32,
}

#[doclass(classid = 120)]
#[derive(Default)]
pub struct Dealer {
    #[dataset]
    pub stock: Stock,
    #[dataset]
    pub pos: Pos,
    pub local_calls: u32,
    pub bumps: i64,
    pub inits: u32,
}

#[doclass]
impl Dealer {
    /// Plain in parameters and a return value.
    #[rmc]
    pub fn add(&mut self, a: i32, b: i32) -> i32 {
        self.local_calls += 1;
        a + b
    }
    /// Strings, slices, custom types, collections.
    #[rmc]
    pub fn describe(
        &self,
        name: &str,
        tags: &[u8],
        offer: &Offer,
        queue: VecDeque<i32>,
        list: LinkedList<u8>,
        arr: [u16; 3],
    ) -> String {
        format!(
            "{name}:{tags:?}:{}:{}:{queue:?}:{list:?}:{arr:?}",
            offer.make, offer.price
        )
    }
    /// Out and in-out parameters (Table 14.1).
    #[rmc]
    pub fn list_matches(
        &mut self,
        prefix: String,
        #[out] cars: &mut Vec<String>,
        counter: &mut u32,
    ) -> i32 {
        *counter += 1;
        cars.extend(
            self.stock
                .cars
                .iter()
                .filter(|c| c.starts_with(&prefix))
                .cloned(),
        );
        cars.len() as i32
    }
    /// Out only, no return.
    #[rmc]
    pub fn handle_of(&mut self, call: &mut CallContext<'_>, #[out] h: &mut Option<DOHandle>) {
        *h = Some(call.handle());
    }
    /// No parameters, no return.
    #[rmc(name = "Ping")]
    pub fn ping(&self) {}
    /// An action.
    #[action]
    pub fn bump(&mut self, n: i64) {
        self.bumps += n;
    }

    fn init_do(&mut self) {
        self.inits += 1;
    }
}

fn cluster() -> (Cluster, Arc<Registry>) {
    let mut r = Registry::new();
    assert_eq!(r.register::<Dealer>().unwrap(), ClassId(120));
    let r = Arc::new(r);
    let c = Cluster::start(
        SimConfig::seeded(7),
        r.clone(),
        vec![
            StationConfig::new(ProcessType::Server, "s"),
            StationConfig::new(ProcessType::Client, "a"),
            StationConfig::new(ProcessType::Client, "b"),
        ],
    )
    .unwrap();
    (c, r)
}

#[test]
fn generated_metadata() {
    assert_eq!(Dealer::CLASS_NAME, "Dealer");
    assert_eq!(Dealer::CLASS_ID, Some(120));
    let names: Vec<_> = Dealer::METHODS.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "add",
            "describe",
            "list_matches",
            "handle_of",
            "Ping",
            "bump"
        ]
    );
    assert_eq!(Dealer::METHODS[5].kind, netz::MethodKind::Action);
    let d = Dealer::default();
    assert_eq!(d.dataset_count(), 2);
    assert_eq!(d.dataset(1).unwrap().name(), "Position");
    let s = &d.stock;
    assert_eq!(s.field_names(), &["cars", "cash", "note"]);
    assert_eq!(s.field_revisions(), &[0, 0, 1]);
    assert_eq!(Stock::REVISION, 1);
    assert_eq!(Stock::note_valid_revision(), 1);
    assert_eq!(s.valid_revision("note"), Some(1));
    // Local calls are plain method calls.
    let mut d = Dealer::default();
    assert_eq!(d.add(2, 3), 5);
}

#[test]
fn rmcs_and_actions_over_the_network() {
    let (mut c, r) = cluster();
    let now = c.now();
    let mut dealer = Dealer::default();
    dealer.stock.cars = vec!["vw golf".into(), "vw polo".into(), "bmw".into()];
    dealer.stock.cash = 10;
    let master = c.station_mut(0).publish(now, dealer).unwrap();
    let h = master.handle();
    c.run_for(Duration::from_millis(300));
    let dup = c.station(2).get::<Dealer>(h).expect("duplica");
    assert_eq!(dup.lock().stock.cars.len(), 3);
    assert_eq!(dup.lock().stock.revision(), 1);
    assert!(dup.lock().stock.is_note_valid());
    assert_eq!(dup.lock().inits, 1);

    let ctx = RmcContext::on_master();
    assert!(c.station_mut(2).object::<Dealer>(h).call_add(&ctx, 40, 2));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), Some(42));
    assert_eq!(master.lock().local_calls, 1);

    let ctx = RmcContext::on_master();
    let offer = Offer {
        make: "vw".into(),
        price: 9,
    };
    assert!(c.station_mut(1).object::<Dealer>(h).call_describe(
        &ctx,
        "n",
        &[1, 2],
        &offer,
        VecDeque::from([3, 4]),
        LinkedList::from([5]),
        [6, 7, 8],
    ));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(
        ctx.result().as_deref(),
        Some("n:[1, 2]:vw:9:[3, 4]:[5]:[6, 7, 8]")
    );

    let ctx: RmcContext<(i32, Vec<String>, u32)> = RmcContext::on_master();
    assert!(c
        .station_mut(1)
        .object::<Dealer>(h)
        .call_list_matches(&ctx, "vw".into(), &41));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(
        ctx.result(),
        Some((2, vec!["vw golf".to_string(), "vw polo".to_string()], 42))
    );

    let ctx = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Dealer>(h).call_handle_of(&ctx));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.result(), Some(Some(h)));

    let ctx = RmcContext::on_master();
    assert!(c.station_mut(1).object::<Dealer>(h).call_ping(&ctx));
    assert!(c.wait(&ctx, Duration::from_secs(2)));
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(r.method_id::<Dealer>("Ping"), Some(MethodId(4)));

    assert!(c.station_mut(2).object::<Dealer>(h).bump_on_master(3));
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        assert_eq!(c.station(i).get::<Dealer>(h).unwrap().lock().bumps, 3);
    }
    assert!(c.station_mut(0).object::<Dealer>(h).bump_on_duplicas(1));
    assert!(!c.station_mut(1).object::<Dealer>(h).bump_on_duplicas(1));
    c.run_for(Duration::from_millis(300));
    assert_eq!(master.lock().bumps, 3);
    assert_eq!(c.station(1).get::<Dealer>(h).unwrap().lock().bumps, 4);
}
