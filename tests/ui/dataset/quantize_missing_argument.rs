use netz::prelude::*;

#[dataset]
#[derive(Default)]
struct Data {
    #[quantize(min = -10.0, max = 10.0)]
    x: f32,
}

fn main() {}
