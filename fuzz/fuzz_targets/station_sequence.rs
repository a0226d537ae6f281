//! A session's stations fed arbitrary sequences of datagrams and timeouts
//! (security on or off, by the first byte).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netz_core::fuzzing::station_sequence(data);
});
