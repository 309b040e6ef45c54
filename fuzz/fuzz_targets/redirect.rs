//! Arbitrary text → `Redirect`.
//!
//! Properties: nothing panics; a parsed redirect's `Display` parses back to the same value
//! (kind, slot, host and port), and formatting that again gives the same text.
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};
use slotline_router::Redirect;

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let Ok(redirect) = Redirect::parse(text) else {
        return Corpus::Keep;
    };
    assert!(redirect.slot().get() < 16384);
    let shown = redirect.to_string();
    let again = Redirect::parse(&shown)
        .unwrap_or_else(|e| panic!("{text:?} parsed, but its Display {shown:?} does not: {e}"));
    assert_eq!(again, redirect, "{text:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown);
    Corpus::Keep
});
