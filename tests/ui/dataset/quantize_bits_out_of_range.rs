use netz::prelude::*;

#[dataset]
#[derive(Default)]
struct Data {
    #[quantize(min = -1.0, max = 1.0, bits = 40)]
    x: f32,
}

fn main() {}
