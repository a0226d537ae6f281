//! The DSL's delivery modes and quantized fields end to end: a
//! latest-state dataset of quantized coordinates beside a reliable one.
#![allow(missing_docs)]
use netz::cluster::Cluster;
use netz::prelude::*;
use netz::sim::SimConfig;
use std::sync::Arc;
use std::time::Duration;

/// Where a ship is: 3 x 17 bits of a 2 km cube, and its heading.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Place {
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub x: f32,
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub y: f32,
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub z: f32,
    pub tick: u32,
}

/// A newer build's place: a revision 1 field after the others.
#[dataset(revision = 1, latest)]
#[derive(Default, Clone, Debug)]
pub struct Cargo {
    pub tons: u32,
}

#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Name {
    pub name: String,
}

#[doclass]
#[derive(Default)]
pub struct Ship {
    #[dataset]
    pub place: Place,
    #[dataset]
    pub cargo: Cargo,
    #[dataset]
    pub name: Name,
}

#[doclass]
impl Ship {}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Ship>().unwrap();
    Arc::new(r)
}

#[test]
fn the_dsl_declares_delivery_modes_and_quantized_fields() {
    let s = Ship::default();
    assert_eq!(s.place.delivery(), Delivery::Latest);
    assert_eq!(s.cargo.delivery(), Delivery::Latest);
    assert_eq!(s.name.delivery(), Delivery::Reliable);
    assert_eq!(Cargo::REVISION, 1);
    assert_eq!(
        (0..4).map(|i| s.place.field_bits(i)).collect::<Vec<_>>(),
        vec![Some(17), Some(17), Some(17), None]
    );
    // A quantized field encodes its step number, in as few bytes as it needs.
    let mut p = Place {
        x: 1000.0,
        ..Default::default()
    };
    let mut out = Vec::new();
    p.encode_field(0, &mut out);
    assert_eq!(out, vec![0xFF, 0xFF, 0x01]);
    p.x = 0.0;
    p.decode_field(0, &mut out.as_slice()).unwrap();
    assert_eq!(p.x, 1000.0);
}

fn quantized(v: f32) -> f32 {
    netz::dequantize(
        netz::quantize(f64::from(v), -1000.0, 1000.0, 17),
        -1000.0,
        1000.0,
        17,
    ) as f32
}

#[test]
fn quantized_latest_states_converge_at_their_resolution_under_loss() {
    let cfgs = (0..3)
        .map(|i| StationConfig {
            seed: i + 1,
            ..StationConfig::new(ProcessType::Server, format!("s{i}"))
        })
        .collect();
    let net = SimConfig {
        loss: 0.2,
        ..SimConfig::seeded(3)
    };
    let mut c = Cluster::start(net, registry(), cfgs).unwrap();
    let now = c.now();
    let ships: Vec<Ref<Ship>> = (0..20)
        .map(|_| c.station_mut(0).publish(now, Ship::default()).unwrap())
        .collect();
    for t in 1..=100u32 {
        for (k, s) in ships.iter().enumerate() {
            let mut s = s.lock();
            s.place.x = k as f32 * 3.3 + t as f32 * 0.71;
            s.place.y = -(t as f32) * 1.37;
            s.place.z = 0.004 * t as f32;
            s.place.tick = t;
            s.cargo.tons = t / 10;
            s.name.name = format!("ship {k} at {}", t / 25);
        }
        let now = c.now();
        c.station_mut(0).update_all(now);
        c.run_for(Duration::from_millis(20));
    }
    let done = |c: &Cluster| {
        (1..3).all(|i| {
            ships.iter().all(|m| {
                let d = c.station(i).get::<Ship>(m.handle()).unwrap();
                let (d, m) = (d.lock(), m.lock());
                d.place.tick == 100
                    && d.place.x == quantized(m.place.x)
                    && d.place.y == quantized(m.place.y)
                    && d.place.z == quantized(m.place.z)
                    && d.cargo.tons == m.cargo.tons
                    && d.name.name == m.name.name
            })
        })
    };
    assert!(c.run_until(Duration::from_secs(5), done));
    for i in 1..3 {
        let st = c.station(i).stats();
        assert!(st.latest_updates_applied > 0);
    }
    // The resolution: 2000 m over 2^17 - 1 steps.
    let step = 2000.0 / ((1u32 << 17) - 1) as f32;
    let m = ships[3].lock();
    assert!((quantized(m.place.x) - m.place.x).abs() <= step / 2.0 + 1e-4);
}
