//! A counting global allocator that attributes heap bytes to "slots" (one
//! per station in the memory benchmarks), so that the memory a station keeps
//! can be told apart from the harness's and from other stations'.
//!
//! A binary opts in with
//! `#[global_allocator] static A: netz_bench::alloc::CountingAlloc = netz_bench::alloc::CountingAlloc;`.
//! Attribution is process-wide, so measure on one thread.
#![allow(unsafe_code)] // a global allocator cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

/// How many slots there are; slot 0 is the harness's.
pub const SLOTS: usize = 16;

static NET: [AtomicI64; SLOTS] = [const { AtomicI64::new(0) }; SLOTS];
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The system allocator, counting net bytes (allocated minus freed) per slot.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

fn add(delta: i64) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let slot = CURRENT.load(Ordering::Relaxed).min(SLOTS - 1);
    NET[slot].fetch_add(delta, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are plain atomics that never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Runs `f` with every allocation and free charged to `slot`.
pub fn attribute<R>(slot: usize, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.swap(slot.min(SLOTS - 1), Ordering::Relaxed);
    let r = f();
    CURRENT.store(prev, Ordering::Relaxed);
    r
}

/// Net bytes (allocated minus freed) charged to `slot` so far.
pub fn net(slot: usize) -> i64 {
    NET[slot.min(SLOTS - 1)].load(Ordering::Relaxed)
}

/// Turns counting on (the default) or off; a binary that also measures
/// time turns it off outside its memory measurement, so that timed code
/// pays nothing but one load per allocation.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}
