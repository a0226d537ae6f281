//! Every datagram decoder (header, link frames, messages, envelopes) on
//! arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netz_core::fuzzing::decode_datagram(data);
});
