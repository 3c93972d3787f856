//! Fuzzes the embedded store's keys: any parts round-trip, and a key lies exactly in the ranges
//! of its own prefixes (`firehose::store::keys::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::store::keys::fuzzing::check(data);
});
