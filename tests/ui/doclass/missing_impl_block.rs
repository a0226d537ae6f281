use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

fn main() {
    let mut r = Registry::new();
    r.register::<Thing>().unwrap();
}
