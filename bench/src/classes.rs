//! The class every benchmark replicates: a game unit with a typical motion
//! dataset (position, velocity, health) and one RMC returning an `i32`.

use netz::prelude::*;
use std::sync::Arc;

/// Position, velocity and health of a unit: seven fields, 26 bytes of
/// postcard when every field changes (six `f32` and a small `i32`).
#[dataset]
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Motion {
    /// Position, x.
    pub x: f32,
    /// Position, y.
    pub y: f32,
    /// Position, z.
    pub z: f32,
    /// Velocity, x.
    pub vx: f32,
    /// Velocity, y.
    pub vy: f32,
    /// Velocity, z.
    pub vz: f32,
    /// Health points.
    pub hp: i32,
}

impl Motion {
    /// How many fields the dataset has.
    pub const FIELDS: usize = 7;

    /// Moves the unit one step: every field changes.
    pub fn step(&mut self, tick: u32) {
        let t = tick as f32;
        self.x += 1.0 + t;
        self.y += 2.0;
        self.z += 3.0;
        self.vx = t * 0.5;
        self.vy = -t;
        self.vz = t + 0.25;
        self.hp = 100 + (tick % 50) as i32;
    }

    /// The postcard size of every field, as a plain serializer would send them.
    pub fn postcard_len(&self) -> usize {
        postcard::to_allocvec(&(self.x, self.y, self.z, self.vx, self.vy, self.vz, self.hp))
            .map(|v| v.len())
            .unwrap_or(0)
    }
}

/// A replicated unit.
#[doclass]
#[derive(Default)]
pub struct Unit {
    /// Replicated to every station.
    #[dataset]
    pub motion: Motion,
}

#[doclass]
impl Unit {
    /// Echoes its argument: the smallest RMC with a return value.
    #[rmc]
    pub fn ping(&mut self, x: i32) -> i32 {
        x
    }

    /// Units survive the failure of their master's station.
    fn approve_fault_recovery(&self) -> bool {
        true
    }
}

/// A registry with [`Unit`] registered.
pub fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Unit>().expect("Unit registers");
    Arc::new(r)
}

/// Where a mover is and the tick that put it there, as latest state.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Track {
    /// Position, x.
    pub x: f32,
    /// Position, y.
    pub y: f32,
    /// Position, z.
    pub z: f32,
    /// The tick of this state.
    pub tick: u32,
}

/// [`Track`]'s fields, reliable.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct ReliableTrack {
    /// Position, x.
    pub x: f32,
    /// Position, y.
    pub y: f32,
    /// Position, z.
    pub z: f32,
    /// The tick of this state.
    pub tick: u32,
}

/// A 3D position in a 2 km cube at 1.5 cm, 17 bits a coordinate.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Quantized3 {
    /// Position, x.
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub x: f32,
    /// Position, y.
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub y: f32,
    /// Position, z.
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub z: f32,
}

/// A 2D position in a 2 km square at 1.5 cm, 17 bits a coordinate.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Quantized2 {
    /// Position, x.
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub x: f32,
    /// Position, y.
    #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
    pub y: f32,
}

/// The same 3D position as three plain `f32`s.
#[dataset(latest)]
#[derive(Default, Clone, Debug)]
pub struct Plain3 {
    /// Position, x.
    pub x: f32,
    /// Position, y.
    pub y: f32,
    /// Position, z.
    pub z: f32,
}

/// A mover whose track is latest state.
#[doclass]
#[derive(Default)]
pub struct Mover {
    /// Replicated as latest state.
    #[dataset]
    pub track: Track,
}

#[doclass]
impl Mover {}

/// A mover whose track is reliable.
#[doclass]
#[derive(Default)]
pub struct ReliableMover {
    /// Replicated reliably.
    #[dataset]
    pub track: ReliableTrack,
}

#[doclass]
impl ReliableMover {}

/// One of each position dataset, for their sizes on the wire.
#[doclass]
#[derive(Default)]
pub struct Positions {
    /// 3 x 17 bits.
    #[dataset]
    pub q3: Quantized3,
    /// 2 x 17 bits.
    #[dataset]
    pub q2: Quantized2,
    /// 3 x 32 bits.
    #[dataset]
    pub plain: Plain3,
}

#[doclass]
impl Positions {}

/// A registry with [`Unit`], [`Mover`], [`ReliableMover`] and
/// [`Positions`] registered.
pub fn replication_registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Unit>().expect("Unit registers");
    r.register::<Mover>().expect("Mover registers");
    r.register::<ReliableMover>()
        .expect("ReliableMover registers");
    r.register::<Positions>().expect("Positions registers");
    Arc::new(r)
}
