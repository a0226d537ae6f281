use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn get(&mut self, #[out] value: u32) {
        let _ = value;
    }
}

fn main() {}
