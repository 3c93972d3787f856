//! Fuzzes the rules admin API's body parsing and checks: never panics, and every accepted edit
//! compiles as a channel compiles it, holds the item as the body said, and survives the store's
//! rows (`firehose::http::rules::fuzzing::check`).
#![no_main]

use std::sync::OnceLock;

use firehose::engine::ChannelRules;
use libfuzzer_sys::fuzz_target;

static BASE: OnceLock<ChannelRules> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let base = BASE.get_or_init(firehose::http::rules::fuzzing::base);
    firehose::http::rules::fuzzing::check(base, data);
});
