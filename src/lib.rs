//! netz: replicated game objects.
pub use netz_core as core;
