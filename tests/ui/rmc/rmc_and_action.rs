use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    #[action]
    fn both(&mut self) {}
    #[rmc]
    fn init_do(&mut self) {}
}

fn main() {}
