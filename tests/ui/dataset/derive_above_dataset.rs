//! Derives written above `#[dataset]` run first and miss its hidden field:
//! the error says to move `#[dataset]` up.
use netz::prelude::*;

#[derive(Default, Clone)]
#[dataset]
pub struct Position {
    pub x: f32,
}

fn main() {}
