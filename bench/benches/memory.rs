//! Heap kept per master and per duplica at 100,000 objects, with a
//! counting global allocator. Prints its figures; criterion is not used
//! because a byte count needs no repetition.

use netz_bench::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    // `cargo bench` passes `--bench`; a test run passes nothing and skips.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let r = netz_bench::memory::measure(100_000);
    println!("memory/objects            {}", r.objects);
    println!("memory/user_object_bytes  {}", r.user_object);
    println!("memory/per_master_alone   {:.1} B", r.master_alone);
    println!(
        "memory/per_master         {:.1} B (one duplica station)",
        r.master
    );
    println!("memory/per_duplica        {:.1} B", r.duplica);
}
