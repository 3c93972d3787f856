//! Fuzzes what the chat connection reads: bytes framed into lines, each parsed by twitch-irc and
//! converted to the engine's event. Never panics; framed lines hold no CR/LF and respect the
//! limit; emote spans lie in the text (`firehose::twitch::convert::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firehose::twitch::convert::fuzzing::check(data);
});
