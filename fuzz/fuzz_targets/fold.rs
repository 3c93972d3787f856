//! Fuzzes text folding: never panics, and ASCII input folds to its lower case
//! (`firehose::engine::fold::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::engine::fold::fuzzing::check(data);
});
