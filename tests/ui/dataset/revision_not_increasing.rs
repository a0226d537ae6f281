use netz::prelude::*;

#[dataset]
#[derive(Default)]
struct Data {
    a: u8,
    #[revision(2)]
    b: u8,
    #[revision(2)]
    c: u8,
    #[revision(1)]
    d: u8,
}

fn main() {}
