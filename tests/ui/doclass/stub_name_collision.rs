use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn price(&self) -> u32 {
        0
    }
    fn call_price(&self) {}
    #[action]
    fn honk(&mut self) {}
    fn honk_on_duplicas(&self) {}
}

fn main() {}
