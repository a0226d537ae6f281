//! The car dealer of the NetZ manual (14.1): the RMCs `BestMatch` (returns a
//! `DOHandle`), `ListMatches` (out parameters: the number of cars and their
//! handles) and `UpdateList` (an array in), called with
//! `TargetObjectMustBeMaster` so that only the dealer's master answers.
//!
//! Run with `cargo run --example car_dealer`.
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use serde::{Deserialize, Serialize};
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

/// Car makes and models, as in the manual's `BMW, M5`.
pub const BMW: i32 = 1;
/// Another make.
pub const VW: i32 = 2;
/// A BMW model.
pub const M5: i32 = 10;
/// A VW model.
pub const GOLF: i32 = 20;

/// What a car is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Spec {
    /// The make.
    pub make: i32,
    /// The model.
    pub model: i32,
    /// The year.
    pub year: i32,
    /// The price.
    pub price: i32,
}

/// The replicated state of a car.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct CarData {
    /// What the car is.
    pub spec: Spec,
}

/// A car for sale: a DO of its own.
#[doclass]
#[derive(Default)]
pub struct Car {
    /// Its data.
    #[dataset]
    pub data: CarData,
}

#[doclass]
impl Car {}

/// The dealer's replicated list of cars.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Lot {
    /// The cars on the lot.
    pub cars: Vec<DOHandle>,
    /// Their specifications, in the same order.
    pub specs: Vec<Spec>,
}

/// The car dealer.
#[doclass]
#[derive(Default)]
pub struct CarDealer {
    /// The lot.
    #[dataset]
    pub lot: Lot,
}

#[doclass]
impl CarDealer {
    /// `dohandle BestMatch(qInt imake, qInt imodel, qInt iyear, qInt iprice)`:
    /// the car of this make and model closest in year and price.
    #[rmc(name = "BestMatch")]
    pub fn best_match(&self, make: i32, model: i32, year: i32, price: i32) -> Option<DOHandle> {
        self.matching(make, model)
            .min_by_key(|(_, s)| (s.year - year).abs() * 1000 + (s.price - price).abs())
            .map(|(h, _)| h)
    }

    /// `void ListMatches(qInt imake, qInt imodel, qInt iyear, out qInt
    /// *piNbOfCars, out dohandle *phCarArray)`.
    #[rmc(name = "ListMatches")]
    pub fn list_matches(
        &self,
        make: i32,
        model: i32,
        year: i32,
        #[out] nb_of_cars: &mut i32,
        #[out] cars: &mut Vec<DOHandle>,
    ) {
        cars.extend(
            self.matching(make, model)
                .filter(|(_, s)| s.year >= year)
                .map(|(h, _)| h),
        );
        *nb_of_cars = cars.len() as i32;
    }

    /// `void UpdateList(dohandle *phCarArray)`: adds cars to the lot.
    #[rmc(name = "UpdateList")]
    pub fn update_list(&mut self, cars: &[DOHandle], specs: &[Spec]) {
        self.lot.cars.extend_from_slice(cars);
        self.lot.specs.extend_from_slice(specs);
    }

    fn matching(&self, make: i32, model: i32) -> impl Iterator<Item = (DOHandle, Spec)> + '_ {
        self.lot
            .cars
            .iter()
            .copied()
            .zip(self.lot.specs.iter().copied())
            .filter(move |(_, s)| s.make == make && s.model == model)
    }
}

fn spec_of(c: &Cluster, station: usize, h: DOHandle) -> String {
    match c.station(station).get::<Car>(h) {
        Some(car) => {
            let s = car.lock().data.spec;
            format!(
                "make {} model {} year {} price {}",
                s.make, s.model, s.year, s.price
            )
        }
        None => "unknown car".into(),
    }
}

/// Runs the example; returns the lines it printed.
pub fn run() -> Vec<String> {
    LINES.with(|l| l.borrow_mut().clear());
    let mut registry = Registry::new();
    registry.register::<Car>().expect("register Car");
    registry
        .register::<CarDealer>()
        .expect("register CarDealer");
    let mut c = Cluster::start(
        SimConfig::seeded(3),
        Arc::new(registry),
        vec![
            StationConfig::new(ProcessType::Server, "dealer"),
            StationConfig::new(ProcessType::Client, "buyer"),
            StationConfig::new(ProcessType::Client, "supplier"),
        ],
    )
    .expect("session");
    let (dealer_st, buyer, supplier) = (0, 1, 2);

    // The dealer station publishes the dealer with two cars.
    let now = c.now();
    let mut dealer = CarDealer::default();
    for spec in [
        Spec {
            make: BMW,
            model: M5,
            year: 1999,
            price: 30_000,
        },
        Spec {
            make: VW,
            model: GOLF,
            year: 2003,
            price: 12_000,
        },
    ] {
        let car = c
            .station_mut(dealer_st)
            .publish(
                now,
                Car {
                    data: CarData {
                        spec,
                        ..Default::default()
                    },
                },
            )
            .expect("car");
        dealer.lot.cars.push(car.handle());
        dealer.lot.specs.push(spec);
    }
    let dealer = c
        .station_mut(dealer_st)
        .publish(now, dealer)
        .expect("dealer");
    let hdealer = dealer.handle();
    say(format!(
        "dealer {hdealer} published on {} with 2 cars",
        dealer.master_station()
    ));

    // The supplier publishes two more cars and adds them with UpdateList.
    let mut handles = Vec::new();
    let mut specs = Vec::new();
    for spec in [
        Spec {
            make: BMW,
            model: M5,
            year: 2001,
            price: 45_000,
        },
        Spec {
            make: BMW,
            model: M5,
            year: 2002,
            price: 52_000,
        },
    ] {
        let car = c
            .station_mut(supplier)
            .publish(
                now,
                Car {
                    data: CarData {
                        spec,
                        ..Default::default()
                    },
                },
            )
            .expect("car");
        handles.push(car.handle());
        specs.push(spec);
    }
    c.run_for(Duration::from_millis(300));
    let ctx = RmcContext::on_master();
    let sent = c
        .station_mut(supplier)
        .object::<CarDealer>(hdealer)
        .call_update_list(&ctx, &handles, &specs);
    c.wait(&ctx, Duration::from_secs(2));
    say(format!(
        "supplier: UpdateList sent={sent} outcome={:?}",
        ctx.outcome()
    ));
    let now = c.now();
    c.station_mut(dealer_st)
        .update(now, hdealer)
        .expect("update");
    c.run_for(Duration::from_millis(300));
    let seen = c
        .station(buyer)
        .get::<CarDealer>(hdealer)
        .map(|d| d.lock().lot.cars.len());
    say(format!(
        "buyer: the dealer's duplica lists {} cars",
        seen.unwrap_or(0)
    ));

    // BestMatch: the return value comes back through the context.
    let ctx = RmcContext::on_master();
    let sent = c
        .station_mut(buyer)
        .object::<CarDealer>(hdealer)
        .call_best_match(&ctx, BMW, M5, 2001, 44_000);
    c.wait(&ctx, Duration::from_secs(2));
    match ctx.result().flatten() {
        Some(h) => say(format!(
            "BestMatch(BMW, M5, 2001, 44000) sent={sent}: {h} ({})",
            spec_of(&c, buyer, h)
        )),
        None => say(format!("BestMatch failed: {:?}", ctx.outcome())),
    }

    // ListMatches on the master, as in the manual.
    let master = c
        .station(buyer)
        .get::<CarDealer>(hdealer)
        .expect("duplica")
        .master_station();
    let ctx: RmcContext<(i32, Vec<DOHandle>)> = RmcContext::with_target(master, true);
    ctx.set_flag(RmcFlag::TargetObjectMustBeMaster);
    let sent = c
        .station_mut(buyer)
        .object::<CarDealer>(hdealer)
        .call_list_matches(&ctx, BMW, M5, 2001);
    c.wait(&ctx, Duration::from_secs(2));
    if sent {
        if let Some((nb_cars, cars)) = ctx.result() {
            say(format!("ListMatches(BMW, M5, 2001): {nb_cars} cars"));
            for h in cars {
                say(format!("Found vehicle {h} ({})", spec_of(&c, buyer, h)));
            }
        }
    }

    // The same call aimed at the buyer's own duplica fails validation.
    let ctx: RmcContext<(i32, Vec<DOHandle>)> =
        RmcContext::with_target(c.station(buyer).id(), true);
    ctx.set_flag(RmcFlag::TargetObjectMustBeMaster);
    let sent = c
        .station_mut(buyer)
        .object::<CarDealer>(hdealer)
        .call_list_matches(&ctx, BMW, M5, 2001);
    c.wait(&ctx, Duration::from_secs(2));
    say(format!(
        "ListMatches on a duplica with TargetObjectMustBeMaster: sent={sent} outcome={:?}",
        ctx.outcome()
    ));

    // A local call is a plain method call.
    let local = dealer.lock().best_match(VW, GOLF, 2003, 12_000);
    say(format!(
        "local BestMatch(VW, GOLF): {}",
        local.map(|h| h.to_string()).unwrap_or_default()
    ));
    LINES.with(|l| l.borrow().clone())
}

#[allow(dead_code)]
fn main() {
    run();
}
