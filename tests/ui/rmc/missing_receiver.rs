use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn no_self(x: u32) -> u32 {
        x
    }
}

fn main() {}
