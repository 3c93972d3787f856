//! Fuzzes template parsing and rendering: never panics, never renders over 500 characters.
#![no_main]

use firehose::engine::rng::XorShift;
use firehose::engine::template::{Counters, RenderContext, Template, MAX_OUTPUT_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, args) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(template) = Template::parse(source) else {
        return;
    };
    let args: Vec<&str> = args.split_whitespace().collect();
    let ctx = RenderContext {
        user: "fuzzer",
        channel: "chan",
        args: &args,
        count: u64::MAX,
        now_ms: u64::MAX,
        stream_started_ms: Some(0),
    };
    let out = template.render(&ctx, &mut Counters::default(), &mut XorShift::seeded(source));
    assert!(out.chars().count() <= MAX_OUTPUT_CHARS);
});
