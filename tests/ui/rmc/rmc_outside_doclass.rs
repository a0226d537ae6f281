use netz::prelude::*;

struct Thing;

impl Thing {
    #[rmc]
    fn a(&self) {}
}

fn main() {}
