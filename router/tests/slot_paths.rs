//! Every CRC and slot code path against the bitwise definition.

use slotline_router::{
    crc16, crc16_paths as paths, hash_tag, key_slot, key_slot_reference, slot_paths,
};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn check_value_matches_crc16_xmodem() {
    assert_eq!(paths::bitwise(b"123456789"), 0x31C3);
    assert_eq!(paths::table(b"123456789"), 0x31C3);
    assert_eq!(paths::clmul_soft(b"123456789"), 0x31C3);
    assert_eq!(paths::short(b"123456789"), Some(0x31C3));
    assert_eq!(crc16(b"123456789"), 0x31C3);
}

#[test]
fn every_path_matches_bitwise_at_every_length_and_alignment() {
    let hw = paths::clmul(b"").is_some();
    eprintln!("hardware path: {}", paths::active());
    eprintln!("short-key scan: {}", slot_paths::short_scan());
    let buf = bytes(300 + 16, 7);
    for offset in 0..16 {
        for len in 0..=300 {
            let data = &buf[offset..offset + len];
            let want = paths::bitwise(data);
            assert_eq!(
                paths::table(data),
                want,
                "table, len {len}, offset {offset}"
            );
            assert_eq!(crc16(data), want, "crc16, len {len}, offset {offset}");
            assert_eq!(
                paths::short(data),
                (len <= 32).then_some(want),
                "short, len {len}, offset {offset}"
            );
            assert_eq!(
                paths::clmul_soft(data),
                want,
                "soft fold, len {len}, offset {offset}"
            );
            if hw {
                assert_eq!(
                    paths::clmul(data),
                    Some(want),
                    "hw fold, len {len}, offset {offset}"
                );
            }
        }
    }
}

#[test]
fn every_path_matches_bitwise_on_long_and_special_inputs() {
    let hw = paths::clmul(b"").is_some();
    for len in [511, 512, 513, 1023, 1024, 1025, 4096, 4099, 65_537] {
        for data in [bytes(len, len as u64), vec![0; len], vec![0xFF; len]] {
            let want = paths::bitwise(&data);
            assert_eq!(paths::table(&data), want, "table, len {len}");
            assert_eq!(crc16(&data), want, "crc16, len {len}");
            if hw {
                assert_eq!(paths::clmul(&data), Some(want), "hw fold, len {len}");
            }
        }
    }
    let data = bytes(2048, 3);
    assert_eq!(paths::clmul_soft(&data), paths::bitwise(&data));
}

#[test]
fn key_slot_matches_live_server_answers() {
    // Answers of `CLUSTER KEYSLOT` from a real redis-server.
    let known: &[(&[u8], u16)] = &[
        (b"foo", 12182),
        (b"123456789", 12739),
        (b"{user1000}.following", 3443),
        (b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", 4015),
        (b"foo{bar}{zap}", 5061),
        (b"}{a}", 15495),
        (b"{}", 15257),
        (b"a{b", 13340),
        (b"", 0),
    ];
    for &(key, slot) in known {
        assert_eq!(
            key_slot(key).get(),
            slot,
            "key {:?}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(key_slot_reference(key), slot, "reference, key {key:?}");
    }
}

#[test]
fn hash_tag_follows_first_open_then_first_close() {
    assert_eq!(hash_tag(b"}{a}"), b"a");
    assert_eq!(hash_tag(b"{}"), b"{}");
    assert_eq!(hash_tag(b"{a}"), b"a");
    assert_eq!(hash_tag(b"{{}"), b"{");
    assert_eq!(hash_tag(b"x{\xff}y"), b"\xff");
    assert_eq!(hash_tag(b"plain"), b"plain");
}

/// Asserts that `key_slot` and every slot path that takes `key` agree with the reference.
fn assert_every_slot_path(key: &[u8]) {
    let want = key_slot_reference(key);
    assert_eq!(key_slot(key).get(), want, "key_slot, key {key:?}");
    assert_eq!(slot_paths::general(key), want, "general, key {key:?}");
    let short = key.len() <= slot_paths::SHORT_MAX_LEN;
    let expect = short.then_some(want);
    assert_eq!(slot_paths::short(key), expect, "short, key {key:?}");
    assert_eq!(
        slot_paths::short_swar(key),
        expect,
        "short SWAR, key {key:?}"
    );
}

/// A key whose hashed bytes are exactly `data`: the tag rule's reference says which.
fn slot_of_bytes(data: &[u8]) -> u16 {
    paths::bitwise(data) & 0x3FFF
}

#[test]
fn every_slot_path_matches_bitwise_at_every_length_and_alignment() {
    // Keys without braces (the whole key is hashed), with a tag at the start, in the middle and
    // at the end, of every length up to 300 at 16 offsets: the fused short-key path below 33
    // bytes and the general path above, each checked against the bitwise CRC directly.
    let mut buf = bytes(300 + 16, 5);
    for b in &mut buf {
        if *b == b'{' || *b == b'}' {
            *b = b'x';
        }
    }
    for offset in 0..16 {
        for len in 0..=300 {
            let key = &buf[offset..offset + len];
            assert_eq!(
                key_slot(key).get(),
                slot_of_bytes(key),
                "len {len}, offset {offset}"
            );
            assert_every_slot_path(key);
            if len < 3 {
                continue;
            }
            // `{` at `open`, `}` at `close`: the tag is the bytes between them.
            for (open, close) in [(0, len - 1), (0, len / 2), (len / 3, len - 1), (1, 2)] {
                if close <= open {
                    continue;
                }
                let mut k = key.to_vec();
                k[open] = b'{';
                k[close] = b'}';
                let want = if close > open + 1 {
                    slot_of_bytes(&k[open + 1..close])
                } else {
                    slot_of_bytes(&k)
                };
                assert_eq!(key_slot(&k).get(), want, "{k:?}");
                assert_every_slot_path(&k);
            }
        }
    }
}

#[test]
fn short_path_takes_keys_up_to_its_limit_only() {
    let max = slot_paths::SHORT_MAX_LEN;
    assert!(slot_paths::short(&vec![b'k'; max]).is_some());
    assert_eq!(slot_paths::short(&vec![b'k'; max + 1]), None);
    assert_eq!(slot_paths::short_swar(&vec![b'k'; max + 1]), None);
    assert_eq!(slot_paths::short(b""), Some(0));
    assert_eq!(slot_paths::short(b"{user1000}.following"), Some(3443));
    assert_eq!(slot_paths::short_swar(b"{user1000}.following"), Some(3443));
    assert_eq!(slot_paths::short(b"foo{}{bar}"), Some(8363));
}

#[test]
fn key_slot_matches_reference_for_brace_positions_at_every_length() {
    // Braces at every pair of positions, in keys of every length up to 80 and at a few offsets:
    // covers each branch of the fused short-key path (both scans), and of the general path's
    // SWAR and SSE2 scans (`memchr` only where it starts at 16 bytes: see
    // `key_slot_matches_reference_when_memchr_finds_both_braces` for x86-64).
    let base = bytes(96, 11);
    for len in 0..=80usize {
        for offset in 0..3 {
            let mut key = base[offset..offset + len].to_vec();
            for b in &mut key {
                if *b == b'{' || *b == b'}' {
                    *b = b'x';
                }
            }
            assert_every_slot_path(&key);
            for open in 0..len {
                let mut k = key.clone();
                k[open] = b'{';
                assert_every_slot_path(&k);
                for close in 0..len {
                    if close != open {
                        let mut k2 = k.clone();
                        k2[close] = b'}';
                        assert_every_slot_path(&k2);
                        // A second `{` after the first never changes the tag's start.
                        if let Some(second) = (open + 1..len).find(|&i| i != close) {
                            k2[second] = b'{';
                            assert_every_slot_path(&k2);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn memchr_threshold_is_where_the_sse2_scan_stops() {
    let want = if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
        128
    } else {
        16
    };
    assert_eq!(slot_paths::MEMCHR_MIN_LEN, want);
    eprintln!("memchr scan from {} bytes", slot_paths::MEMCHR_MIN_LEN);
}

#[test]
fn find_byte_matches_a_byte_loop_on_both_sides_of_the_memchr_threshold() {
    // Lengths from the last SSE2 (or SWAR) length to well into memchr's range, at offsets
    // covering memchr's 16- and 32-byte block alignments, with the needle at every position,
    // twice, and absent.
    let min = slot_paths::MEMCHR_MIN_LEN;
    let buf = {
        let mut b = bytes(4096 + 32, 13);
        for x in &mut b {
            if *x == b'{' {
                *x = b'x';
            }
        }
        b
    };
    let lengths = (min - 1..=min + 70).chain([2 * min - 1, 2 * min, 2 * min + 1, 1000, 4096]);
    for len in lengths {
        for offset in [0, 1, 7, 15, 16, 31] {
            let hay = &buf[offset..offset + len];
            assert_eq!(slot_paths::find_byte(b'{', hay), None, "len {len}");
            let step = if len > 300 { 37 } else { 1 };
            for at in (0..len).step_by(step) {
                let mut h = hay.to_vec();
                h[at] = b'{';
                if let Some(later) = h.get_mut(at + 1 + (at % 40)) {
                    *later = b'{';
                }
                assert_eq!(
                    slot_paths::find_byte(b'{', &h),
                    Some(at),
                    "len {len}, offset {offset}, needle at {at}"
                );
            }
        }
    }
}

#[test]
fn key_slot_matches_reference_when_memchr_finds_both_braces() {
    // Keys long enough that the `{` search and the `}` search after it both take memchr (the
    // assert below says so), with `{` at every such position and `}` at every position after
    // it, or absent, or followed by a second `{`.
    let min = slot_paths::MEMCHR_MIN_LEN;
    for len in [min + 1, min + 33, min + 64, 2 * min + 17] {
        let mut key = bytes(len, len as u64);
        for b in &mut key {
            if *b == b'{' || *b == b'}' {
                *b = b'x';
            }
        }
        assert_every_slot_path(&key);
        for open in 0..len - min {
            let mut k = key.clone();
            k[open] = b'{';
            // The `{` search scans the whole key, the `}` search the bytes after the `{`.
            let after_open = &k[open + 1..];
            assert!(
                k.len() >= min && after_open.len() >= min,
                "memchr scans both"
            );
            assert_every_slot_path(&k);
            for close in open + 1..len {
                let mut k2 = k.clone();
                k2[close] = b'}';
                let want = if close > open + 1 {
                    slot_of_bytes(&k2[open + 1..close])
                } else {
                    slot_of_bytes(&k2)
                };
                assert_eq!(
                    key_slot(&k2).get(),
                    want,
                    "len {len}, {{ at {open}, }} at {close}"
                );
                assert_every_slot_path(&k2);
                if let Some(second) = (open + 1..close).next() {
                    k2[second] = b'{';
                    assert_every_slot_path(&k2);
                }
            }
        }
    }
}
