use netz::prelude::*;

#[dataset]
#[derive(Default)]
struct Data {
    #[revision(0)]
    a: u8,
    #[revision(256)]
    b: u8,
}

fn main() {}
