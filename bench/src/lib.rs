//! Shared pieces of the netz benchmarks: the benchmark class, an in-memory
//! zero-latency network of sans-IO stations, a game world for interest
//! management, the scaling worlds of the simulator, the UDP floors of the
//! RMC round trip, a counting allocator, a byte-counting UDP socket, SVG
//! charts, the marked blocks of `BENCHMARKS.md` and small statistics
//! helpers.
//!
//! The criterion benches (`benches/`) and the side-by-side comparison
//! program (`src/bin/compare.rs`) both build on this crate.

pub mod alloc;
pub mod budget;
pub mod charts;
pub mod classes;
pub mod floors;
pub mod interest;
pub mod memory;
pub mod mesh;
#[cfg(feature = "peers")]
pub mod peers;
pub mod scaling;
pub mod sections;
pub mod socket;
pub mod stats;
