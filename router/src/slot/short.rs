//! Keys of at most [`MAX_LEN`] bytes: the hash-tag scan fused with a fixed-cost CRC.
//!
//! Most keys are short and many are tagged (`geo:{user1234}:loc`). On them the general path pays
//! for two separate searches (`{`, then `}`) and then a table CRC that runs once per byte of a
//! tag whose length is only known at run time. Here:
//!
//! 1. **Scan.** The key is read as at most two 16-byte blocks: its first 16 bytes and its last
//!    16 (overlapping when it is shorter than 32). A key below 16 bytes is assembled from
//!    overlapping 8- or 4-byte loads into one zero-padded block (a zero byte is no brace). Each
//!    block is compared with `{` (SSE2 on x86-64, SWAR elsewhere), giving a mask with bit `i`
//!    set when byte `i` of the key is `{`. Keys without one (the common case) are hashed whole
//!    right away, in one or two fixed-cost table steps.
//! 2. **Tag.** Otherwise the same for `}`. The first `{` is the lowest bit of its mask;
//!    shifting the `}` mask right past it leaves the `}`s after it, whose lowest bit is the
//!    first `}` after the `{` (bit 0 set means `{}`: an empty tag, so the whole key is hashed).
//! 3. **CRC.** The tag's CRC is one slice-by-16 step on the 16 bytes that start at the tag,
//!    with the table rows moved so that the bytes after the tag add nothing (`step16_through`
//!    in the `crc16` module): sixteen independent lookups, no loop and no mask, whatever the
//!    tag's length and position.
//!
//! Each outcome of the `{` scan continues in a function of its own (`whole`,
//! `with_open_brace`, `below_16`; a tail call), so that no path pays for the registers and stack
//! of another. Rare shapes (a `{` without a tag, a tag longer than 16 bytes, a tag that starts
//! in the last 15 bytes of a key of 16 bytes or more) take the general path.

use super::hash_tag;
use crate::crc16::{crc16, crc16_16_to_32, step16_through, zero_padded};

/// The longest key this path takes.
pub(crate) const MAX_LEN: usize = 32;

/// The tag's first byte and its length, or `None` when the whole key is hashed. `open` is
/// not zero.
#[inline(always)]
fn tag_span(open: u64, close: u64) -> Option<(usize, usize)> {
    let open = open.trailing_zeros();
    // The `}`s strictly after the first `{`, bit 0 being the byte right after it (`open` is
    // below 32, so the shift is in range).
    let after = close.checked_shr(open + 1).unwrap_or(0);
    // A `}` after the `{`, and not immediately (`{}` means: hash the whole key).
    if after == 0 || after & 1 != 0 {
        return None;
    }
    Some((open as usize + 1, after.trailing_zeros() as usize))
}

/// The CRC Redis takes of `key` (of its tag if it has one), or `None` if the key is longer than
/// [`MAX_LEN`]. `find` gives bit `i` set when byte `i` of a 16-byte block is the needle.
///
/// Only the `{` scan is inline; each outcome continues in a function of its own (a tail call),
/// so that no path pays for the registers of another.
#[inline(always)]
fn key_crc_with(key: &[u8], find: impl Fn(&[u8; 16], u8) -> u64) -> Option<u16> {
    let len = key.len();
    if len > MAX_LEN {
        return None;
    }
    let Some((head, tail)) = key.first_chunk::<16>().zip(key.last_chunk::<16>()) else {
        return Some(below_16(key, find));
    };
    // 16 to 32 bytes: the last block starts at byte `len - 16`.
    let opens = find(head, b'{') | (find(tail, b'{') << (len - 16));
    if opens == 0 {
        return Some(whole(head, tail, len));
    }
    let closes = find(head, b'}') | (find(tail, b'}') << (len - 16));
    Some(with_open_brace(key, opens, closes))
}

/// A key of 16 to 32 bytes with a `{`: bit `i` of `opens` (of `closes`) is set when byte `i`
/// is `{` (`}`).
///
/// The common shape, a tag of up to 16 bytes with 16 bytes of key from its start, is one
/// [`step16_through`]; the others (a `{` without a tag, a longer tag, a tag that starts in the
/// last 15 bytes) take the general path.
#[inline(never)]
fn with_open_brace(key: &[u8], opens: u64, closes: u64) -> u16 {
    if let Some((start, tag_len)) = tag_span(opens, closes) {
        // The 16 bytes from the tag's start; the bytes past the tag are ignored.
        if let (true, Some(block)) = (
            tag_len <= 16,
            key.get(start..).and_then(<[u8]>::first_chunk::<16>),
        ) {
            return step16_through(block, tag_len - 1);
        }
    }
    general(key)
}

/// A key below 16 bytes: one zero-padded block, scanned and hashed from a copy followed by
/// zeros (bytes past the hashed ones are ignored).
#[inline(never)]
fn below_16(key: &[u8], find: impl Fn(&[u8; 16], u8) -> u64) -> u16 {
    let mut copy = [0u8; 32];
    copy[..16].copy_from_slice(&zero_padded(key));
    let Some(block) = copy.first_chunk::<16>() else {
        return general(key);
    };
    let opens = find(block, b'{');
    let (start, hashed) = match opens {
        0 => (0, key.len()),
        _ => tag_span(opens, find(block, b'}')).unwrap_or((0, key.len())),
    };
    match copy.get(start..).and_then(<[u8]>::first_chunk::<16>) {
        // `hashed - 1` wraps for the empty key, which hashes nothing.
        Some(block) => step16_through(block, hashed.wrapping_sub(1)),
        None => general(key),
    }
}

/// The CRC of a whole key of 16 to 32 bytes (no `{`), given as its first and last 16.
#[inline(never)]
fn whole(head: &[u8; 16], tail: &[u8; 16], len: usize) -> u16 {
    crc16_16_to_32(head, tail, len)
}

/// The general path ([`hash_tag`], then [`crc16`]), out of line.
#[inline(never)]
fn general(key: &[u8]) -> u16 {
    crc16(hash_tag(key))
}

/// Bit `i` set when byte `i` of `block` is `needle`, by SWAR: the exact zero-byte test on
/// `word ^ splat(needle)`.
#[inline(always)]
fn find_swar(block: &[u8; 16], needle: u8) -> u64 {
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    /// Bit 7 of each byte (set when that byte of `v` is zero) gathered into bits 0..8.
    #[inline(always)]
    fn zero_bytes(v: u64) -> u64 {
        // `(v & 0x7F) + 0x7F` sets bit 7 when the low seven bits are not all zero (no carry
        // leaves the byte); OR-ing `v` adds bit 7 itself. Exact: no borrow between bytes.
        let nonzero = ((v & LO7).wrapping_add(LO7) | v) & !LO7;
        let zero = (nonzero ^ !LO7) >> 7;
        // Byte `i`'s bit (at `8i`) times `2^(7(8 - i))` lands on bit `56 + i`; no two partial
        // products share a bit, so nothing carries.
        zero.wrapping_mul(0x0102_0408_1020_4080) >> 56
    }
    let splat = 0x0101_0101_0101_0101 * u64::from(needle);
    let (lo, hi) = block.split_at(8);
    let word = |half: &[u8]| {
        half.first_chunk::<8>()
            .map_or(0, |w| u64::from_le_bytes(*w))
    };
    zero_bytes(word(lo) ^ splat) | (zero_bytes(word(hi) ^ splat) << 8)
}

/// Bit `i` set when byte `i` of `block` is `needle`, with SSE2 (part of the x86-64 baseline).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn find_sse2(block: &[u8; 16], needle: u8) -> u64 {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: `block` is 16 readable bytes and `loadu` has no alignment requirement; SSE2 is
    // enabled for this target (the function's `cfg`).
    let mask = unsafe {
        #[allow(clippy::cast_possible_wrap)]
        let splat = _mm_set1_epi8(needle as i8);
        _mm_movemask_epi8(_mm_cmpeq_epi8(
            _mm_loadu_si128(block.as_ptr().cast()),
            splat,
        ))
    };
    // Only the low 16 bits can be set.
    u64::from(mask.unsigned_abs())
}

/// The CRC Redis takes of `key` on the fastest scan this target has, or `None` above
/// [`MAX_LEN`] bytes.
#[inline(always)]
pub(crate) fn key_crc(key: &[u8]) -> Option<u16> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        key_crc_with(key, find_sse2)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        key_crc_swar(key)
    }
}

/// The same with the portable SWAR scan, whatever the target (for tests and fuzzing).
#[inline(always)]
pub(crate) fn key_crc_swar(key: &[u8]) -> Option<u16> {
    key_crc_with(key, find_swar)
}

/// Which scan [`key_crc`] uses on this target.
pub(crate) fn scan_name() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
        "SSE2"
    } else {
        "SWAR"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_scan_flags_exactly_the_needle() {
        // Bytes next to the braces' values (borrows and carries in a naive test) included.
        let mut block = *b"a{b}|z{{}}\x00\x7f\x80\xff{}";
        for _ in 0..16 {
            for needle in [b'{', b'}', 0, 0x80, 0xFF] {
                let want = block
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (i, &b)| m | (u64::from(b == needle) << i));
                assert_eq!(find_swar(&block, needle), want, "{block:?} {needle}");
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                assert_eq!(find_sse2(&block, needle), want, "{block:?} {needle}");
            }
            block.rotate_left(1);
        }
    }

    #[test]
    fn longer_keys_are_declined() {
        assert_eq!(key_crc(&[b'a'; MAX_LEN + 1]), None);
        assert!(key_crc(&[b'a'; MAX_LEN]).is_some());
    }
}
