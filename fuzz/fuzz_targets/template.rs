//! Fuzzes template parsing and rendering: never panics, never renders over 500 characters
//! (`firehose::engine::template::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::engine::template::fuzzing::check(data);
});
