use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn a(&mut self, x: impl Into<u32>) {
        let _ = x;
    }
    #[rmc]
    fn b(&mut self, x: Vec<&str>) {
        let _ = x;
    }
    #[rmc]
    fn c(&mut self, x: *const u8) {
        let _ = x;
    }
    #[rmc]
    fn d(&mut self, x: &mut str) {
        let _ = x;
    }
    #[rmc]
    fn e(&mut self) -> &u32 {
        &0
    }
}

fn main() {}
