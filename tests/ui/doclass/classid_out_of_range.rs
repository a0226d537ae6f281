use netz::prelude::*;

#[doclass(classid = 99)]
#[derive(Default)]
struct Low;

#[doclass]
impl Low {}

#[doclass(classid = 256)]
#[derive(Default)]
struct High;

#[doclass]
impl High {}

fn main() {}
