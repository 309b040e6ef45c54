//! Every CRC and slot code path against the bitwise definition.

use slotline_router::{crc16, crc16_paths as paths, hash_tag, key_slot, key_slot_reference};

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
    assert_eq!(crc16(b"123456789"), 0x31C3);
}

#[test]
fn every_path_matches_bitwise_at_every_length_and_alignment() {
    let hw = paths::clmul(b"").is_some();
    eprintln!("hardware path: {}", paths::active());
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

#[test]
fn key_slot_matches_reference_for_brace_positions_at_every_length() {
    // Braces at every pair of positions, in keys of every length up to 80 and at a few offsets:
    // covers each branch of the short-key (SWAR) and long-key (memchr) scans.
    let base = bytes(96, 11);
    for len in 0..=80usize {
        for offset in 0..3 {
            let mut key = base[offset..offset + len].to_vec();
            for b in &mut key {
                if *b == b'{' || *b == b'}' {
                    *b = b'x';
                }
            }
            assert_eq!(key_slot(&key).get(), key_slot_reference(&key));
            for open in 0..len {
                let mut k = key.clone();
                k[open] = b'{';
                assert_eq!(key_slot(&k).get(), key_slot_reference(&k), "{k:?}");
                for close in 0..len {
                    if close != open {
                        let mut k2 = k.clone();
                        k2[close] = b'}';
                        assert_eq!(key_slot(&k2).get(), key_slot_reference(&k2), "{k2:?}");
                    }
                }
            }
        }
    }
}
