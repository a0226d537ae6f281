use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn by_value(self) {}
    #[action]
    fn boxed(self: Box<Self>) {}
}

fn main() {}
