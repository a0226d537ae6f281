use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[action]
    fn honk(&mut self, #[out] loudness: &mut u32) {
        *loudness = 3;
    }
}

fn main() {}
