use netz::prelude::*;

#[doclass(class_id = 120)]
#[derive(Default)]
struct Thing;

#[doclass(name = "Thing")]
impl Thing {
    #[rmc(id = 3)]
    fn a(&self) {}
}

#[dataset(revison = 1)]
#[derive(Default)]
struct Data {
    a: u8,
}

fn main() {}
