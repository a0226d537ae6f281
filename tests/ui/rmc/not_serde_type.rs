use netz::prelude::*;

struct NotSerde;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn a(&mut self, x: NotSerde) {
        let _ = x;
    }
}

fn main() {}
