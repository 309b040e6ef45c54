//! YAML text → `slotline_client::Config::from_yaml_str`.
//!
//! Properties: nothing panics; an accepted configuration can be written (`to_yaml` fails only
//! for values YAML text cannot produce), the text reads back as an equal `Config`, and writing
//! that gives the same text again.
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};
use slotline_client::Config;

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let Ok(config) = Config::from_yaml_str(text) else {
        return Corpus::Keep;
    };
    let yaml = config
        .to_yaml()
        .unwrap_or_else(|e| panic!("accepted {text:?}, but cannot write it: {e}"));
    let again = Config::from_yaml_str(&yaml)
        .unwrap_or_else(|e| panic!("accepted {text:?}, wrote {yaml:?}, which is refused: {e}"));
    assert!(
        again == config,
        "{text:?} -> {yaml:?} reads back as {again:?}, not {config:?}"
    );
    assert_eq!(
        again.to_yaml().ok().as_deref(),
        Some(yaml.as_str()),
        "from {text:?}"
    );
    Corpus::Keep
});
