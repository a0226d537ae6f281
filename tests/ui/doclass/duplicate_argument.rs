use netz::prelude::*;

#[doclass(classid = 120, classid = 121)]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[action(name = "a", name = "b")]
    fn a(&mut self) {}
}

fn main() {}
