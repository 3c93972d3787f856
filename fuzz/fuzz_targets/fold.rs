//! Fuzzes text folding: never panics, and ASCII input folds to its lower case.
#![no_main]

use firehose::engine::fold::{combining_marks, fold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let folded = fold(&text);
    if text.is_ascii() {
        assert_eq!(folded, text.to_ascii_lowercase());
    }
    let _ = combining_marks(&text);
});
