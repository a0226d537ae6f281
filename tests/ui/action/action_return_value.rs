use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[action]
    fn honk(&mut self) -> bool {
        true
    }
}

fn main() {}
