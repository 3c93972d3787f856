//! Fuzzes the engine with arbitrary rules and chat: rules that compile run every event
//! without a panic, and every text the bot would post is at most 500 characters and never
//! leads with a command prefix that chat put there (`firehose::engine::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::engine::fuzzing::check(data);
});
