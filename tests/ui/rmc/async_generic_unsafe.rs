use netz::prelude::*;

#[doclass]
#[derive(Default)]
struct Thing;

#[doclass]
impl Thing {
    #[rmc]
    async fn wait(&mut self) {}
    #[rmc]
    fn generic<T: Clone>(&mut self, x: T) {
        let _ = x;
    }
    #[rmc]
    unsafe fn danger(&mut self) {}
}

fn main() {}
