//! Fuzzes configuration loading: a TOML file plus `FIREHOSE_*` overrides never panic, and an
//! accepted config re-serialises and validates again (`firehose::config::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::config::fuzzing::check(data);
});
