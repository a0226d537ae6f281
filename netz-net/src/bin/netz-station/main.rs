//! `netz-station`: one netz station per process (placeholder).
mod score;
fn main() {}
