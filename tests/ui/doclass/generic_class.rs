use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing<T> {
    value: T,
}

#[dataset]
#[derive(Default)]
struct Data<T> {
    value: T,
}

#[doclass]
impl<T> Thing<T> {}

fn main() {}
