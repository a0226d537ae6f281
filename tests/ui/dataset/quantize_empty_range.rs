use netz::prelude::*;

#[dataset]
#[derive(Default)]
struct Data {
    #[quantize(min = 10.0, max = -10.0, bits = 12)]
    x: f64,
}

fn main() {}
