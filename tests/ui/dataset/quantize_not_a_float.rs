use netz::prelude::*;

#[dataset(latest)]
#[derive(Default)]
struct Data {
    #[quantize(min = 0.0, max = 10.0, bits = 8)]
    hp: i32,
}

fn main() {}
