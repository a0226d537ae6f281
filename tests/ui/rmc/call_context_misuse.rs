use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    fn late(&mut self, x: u32, call: &mut CallContext<'_>) {
        let _ = (x, call);
    }
    #[rmc]
    fn shared(&mut self, call: &CallContext<'_>) {
        let _ = call;
    }
}

fn main() {}
