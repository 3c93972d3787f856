//! Fuzzes outbound formatting: any text becomes one PRIVMSG line of at most 500 characters that
//! never starts with a chat command (`firehose::twitch::outbound::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::twitch::outbound::fuzzing::check(data);
});
