use netz::prelude::*;

#[doclass(classid = 7, colour = "red")]
#[derive(Default)]
struct Thing {
    #[dataset]
    data: Data,
}

#[dataset]
#[derive(Default)]
struct Data {
    #[revision(3)]
    a: u8,
    #[revision(2)]
    b: u8,
}

#[doclass]
impl Thing {
    #[rmc]
    fn a(self) {}
    #[action]
    fn b(&mut self) -> u8 {
        0
    }
    #[rmc]
    fn c(&mut self, x: impl Clone) {
        let _ = x;
    }
}

fn main() {}
