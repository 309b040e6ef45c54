//! `key_slot`, `hash_tag` and every CRC path against the bitwise reference.
//!
//! Properties: the slot equals the transcription of Redis's `keyHashSlot` with a bitwise CRC;
//! it is below 16384; `hash_tag` returns a sub-slice of the key that obeys the tag rule; the
//! table, hardware and software-folding CRC paths all equal the bitwise CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotline_router::{
    crc16, crc16_paths as paths, hash_tag, key_slot, key_slot_reference, SLOT_COUNT,
};

fuzz_target!(|key: &[u8]| {
    let slot = key_slot(key).get();
    assert!(slot < SLOT_COUNT);
    assert_eq!(slot, key_slot_reference(key), "key {key:?}");

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
