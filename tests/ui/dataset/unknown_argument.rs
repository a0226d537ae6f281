use netz::prelude::*;

#[dataset(lastest)]
#[derive(Default)]
struct Data {
    x: f32,
}

fn main() {}
