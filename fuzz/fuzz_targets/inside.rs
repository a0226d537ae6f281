//! A member with every right a member has sends messages built from the
//! fuzzer's bytes over its real links; no honest station may believe what
//! the authority rules do not allow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netz_core::fuzzing::inside_session(data);
});
