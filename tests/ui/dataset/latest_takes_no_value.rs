use netz::prelude::*;

#[dataset(latest = true)]
#[derive(Default)]
struct Data {
    x: f32,
}

fn main() {}
