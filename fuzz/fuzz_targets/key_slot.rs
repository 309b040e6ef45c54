//! `key_slot`, `hash_tag` and every CRC path against the bitwise reference.
//!
//! Properties: the slot equals the transcription of Redis's `keyHashSlot` with a bitwise CRC;
//! it is below 16384; `hash_tag` returns a sub-slice of the key that obeys the tag rule; every
//! slot path (general, fused short-key with this target's scan and with the portable SWAR scan)
//! gives that slot; the table, fixed-cost short-input, hardware and software-folding CRC paths
//! all equal the bitwise CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotline_router::{
    crc16, crc16_paths as paths, hash_tag, key_slot, key_slot_reference, slot_paths, SLOT_COUNT,
};

fuzz_target!(|key: &[u8]| {
    let slot = key_slot(key).get();
    assert!(slot < SLOT_COUNT);
    let want_slot = key_slot_reference(key);
    assert_eq!(slot, want_slot, "key {key:?}");

    // Every slot path; the short-key ones take keys up to their limit and decline longer ones.
    assert_eq!(slot_paths::general(key), want_slot, "general, key {key:?}");
    let short = (key.len() <= slot_paths::SHORT_MAX_LEN).then_some(want_slot);
    assert_eq!(slot_paths::short(key), short, "short, key {key:?}");
    assert_eq!(slot_paths::short_swar(key), short, "short SWAR, key {key:?}");

    // The tag is a sub-slice of the key...
    let tag = hash_tag(key);
    let start = (tag.as_ptr() as usize).wrapping_sub(key.as_ptr() as usize);
    assert!(
        start <= key.len() && start + tag.len() <= key.len(),
        "not a sub-slice"
    );
    if tag.len() != key.len() {
        // ...strictly inside braces: `{` right before it is the first `{` of the key, `}` right
        // after it is the first `}` after that, and it is not empty.
        assert!(!tag.is_empty());
        assert_eq!(key.iter().position(|&b| b == b'{'), Some(start - 1));
        assert_eq!(key.get(start + tag.len()), Some(&b'}'));
        assert!(!tag.contains(&b'}'));
    } else {
        assert_eq!(start, 0);
    }

    let want = paths::bitwise(key);
    assert_eq!(crc16(key), want);
    assert_eq!(paths::table(key), want);
    assert_eq!(paths::short(key), (key.len() <= 32).then_some(want), "short CRC");
    if let Some(hw) = paths::clmul(key) {
        assert_eq!(hw, want, "hardware folding, len {}", key.len());
    }
    if key.len() <= 1024 {
        assert_eq!(
            paths::clmul_soft(key),
            want,
            "software folding, len {}",
            key.len()
        );
    }
});
