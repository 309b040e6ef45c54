//! CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
//!
//! Parameters: polynomial `0x1021`, initial value `0`, no reflection of input or output, no final
//! XOR. The check value (the CRC of the ASCII bytes `123456789`) is `0x31C3`. This is Redis's
//! `src/crc16.c`; other "CRC16" variants (ARC, MODBUS, CCITT-FALSE, ...) give other slots.
//!
//! # How it is computed
//!
//! A CRC of a message `M` (read as a polynomial over GF(2), first byte's top bit highest) is
//! `M(x) · x^16 mod P(x)`. It only depends on `M mod P`, which is what every path below exploits:
//!
//! * **Bitwise** ([`bitwise`]): the definition, one bit at a time. Slow; the reference every other
//!   path is tested against.
//! * **Slice-by-16** ([`update_table`]): sixteen 256-entry tables, where table `k` holds the CRC of
//!   a byte followed by `k` zero bytes. A 16-byte block is sixteen independent lookups XORed
//!   together, so the critical path is one lookup per block instead of one per byte. Tails of 2 to
//!   15 bytes use the same tables in one step. Portable and used everywhere for short inputs.
//! * **Fixed-cost short inputs** ([`step16_through`]): a CRC from state 0 ignores leading zero
//!   bytes, and with sixteen rows of zeros in front of the tables, a byte can be made to count
//!   for nothing. So the CRC of any 1 to 16 bytes at the start of a 16-byte block is one
//!   slice-by-16 step with the rows moved by the length: no loop, no branch on the length. Inputs
//!   below 16 bytes (zero-padded), and the hash tags and whole keys of up to 32 bytes in
//!   `key_slot`, are hashed this way.
//! * **Carry-less multiplication folding** (`clmul`): on x86-64 with PCLMULQDQ and on aarch64 with
//!   PMULL, 128-bit blocks are folded forward with 64×64-bit carry-less products by constants
//!   `x^d mod P`, four lanes at a time, until one 128-bit block is left; the slice-by-16 tables
//!   finish it. Detected at run time (the result is cached by std's feature detection).

mod clmul;

/// The generator polynomial without its `x^16` term.
pub(crate) const POLY: u16 = 0x1021;

/// Inputs at least this long take the carry-less multiplication path when the CPU has it.
///
/// Below it the table is as fast or faster (the folding has a fixed cost for its finish).
pub(crate) const CLMUL_MIN_LEN: usize = 64;

/// CRC-16/XMODEM of `bytes`, exactly as Redis computes it for keys.
///
/// Uses the fastest path the CPU offers (see the module docs); every path gives the same answer.
///
/// # Examples
///
/// ```
/// use slotline_router::crc16;
///
/// assert_eq!(crc16(b"123456789"), 0x31C3); // the CRC-16/XMODEM check value
/// assert_eq!(crc16(b""), 0);
/// assert_eq!(crc16(b"foo") % 16384, 12182); // CLUSTER KEYSLOT foo
/// ```
#[inline]
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    if bytes.len() < 16 {
        return below_16(bytes);
    }
    if bytes.len() >= CLMUL_MIN_LEN {
        if let Some(crc) = clmul::crc16(bytes) {
            return crc;
        }
    }
    update_table(0, bytes)
}

/// The bitwise definition: shift each message bit through the register.
///
/// `crc` is the running state (`0` to start). Used as the reference in tests and fuzzing.
#[must_use]
pub(crate) fn bitwise(mut crc: u16, bytes: &[u8]) -> u16 {
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `TABLES[k][b]`: the CRC (from state 0) of byte `b` followed by `k` zero bytes.
static TABLES: [[u16; 256]; 16] = make_tables();

/// Sixteen rows of zeros, then [`TABLES`]: `PADDED_TABLES[16 + k] == TABLES[k]`, and a byte
/// looked up in a row below 16 contributes nothing. See [`step16_through`].
static PADDED_TABLES: [[u16; 256]; 32] = {
    let tables = make_tables();
    let mut padded = [[0u16; 256]; 32];
    let mut k = 0;
    while k < 16 {
        padded[16 + k] = tables[k];
        k += 1;
    }
    padded
};

const fn make_tables() -> [[u16; 256]; 16] {
    let mut tables = [[0u16; 256]; 16];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut b = 0;
        while b < 256 {
            // One more zero byte after it: shift the previous CRC by 8 bits.
            let prev = tables[k - 1][b];
            tables[k][b] = (prev << 8) ^ tables[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    tables
}

/// Continues a CRC from state `crc` over `bytes` with the slice-by-16 tables.
#[inline]
#[must_use]
pub(crate) fn update_table(mut crc: u16, bytes: &[u8]) -> u16 {
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        crc = step16(crc, block);
        rest = tail;
    }
    step_short(crc, rest)
}

/// One 16-byte block: the state is XORed into the first two bytes, then each byte `i` contributes
/// `TABLES[15 - i]` (it is followed by `15 - i` bytes), all lookups independent.
#[inline(always)]
pub(crate) fn step16(crc: u16, b: &[u8; 16]) -> u16 {
    let [hi, lo] = crc.to_be_bytes();
    let t = &TABLES;
    (t[15][usize::from(b[0] ^ hi)] ^ t[14][usize::from(b[1] ^ lo)])
        ^ (t[13][usize::from(b[2])] ^ t[12][usize::from(b[3])])
        ^ (t[11][usize::from(b[4])] ^ t[10][usize::from(b[5])])
        ^ (t[9][usize::from(b[6])] ^ t[8][usize::from(b[7])])
        ^ (t[7][usize::from(b[8])] ^ t[6][usize::from(b[9])])
        ^ (t[5][usize::from(b[10])] ^ t[4][usize::from(b[11])])
        ^ (t[3][usize::from(b[12])] ^ t[2][usize::from(b[13])])
        ^ (t[1][usize::from(b[14])] ^ t[0][usize::from(b[15])])
}

/// The CRC (from state 0) of bytes `0..=last` of `block`, the bytes after `last` being ignored,
/// in one fixed-cost step: for the tag of a short key, whose length is only known at run time.
///
/// Byte `i` is followed by `last - i` hashed bytes, so it is looked up in `TABLES[last - i]`,
/// which is row `16 + last - i` of [`PADDED_TABLES`]; for a byte after `last` that row is below
/// 16, all zeros, so it adds nothing. The rows for the sixteen bytes are sixteen consecutive rows
/// of the padded table, starting at `last + 1`: one slice-by-16 step with a moved table, with
/// no mask and no loop. Returns 0 (nothing hashed) unless `last < 16`.
#[inline(always)]
pub(crate) fn step16_through(block: &[u8; 16], last: usize) -> u16 {
    let Some(rows) = PADDED_TABLES
        .get(last.wrapping_add(1)..)
        .and_then(<[[u16; 256]]>::first_chunk::<16>)
    else {
        return 0;
    };
    // Byte `i` uses row `16 + last - i` of the padded table, which is `rows[15 - i]`.
    let b = block;
    (rows[15][usize::from(b[0])] ^ rows[14][usize::from(b[1])])
        ^ (rows[13][usize::from(b[2])] ^ rows[12][usize::from(b[3])])
        ^ (rows[11][usize::from(b[4])] ^ rows[10][usize::from(b[5])])
        ^ (rows[9][usize::from(b[6])] ^ rows[8][usize::from(b[7])])
        ^ (rows[7][usize::from(b[8])] ^ rows[6][usize::from(b[9])])
        ^ (rows[5][usize::from(b[10])] ^ rows[4][usize::from(b[11])])
        ^ (rows[3][usize::from(b[12])] ^ rows[2][usize::from(b[13])])
        ^ (rows[1][usize::from(b[14])] ^ rows[0][usize::from(b[15])])
}

/// The first 16 bytes of `bytes`, zeros after its end: assembled from two overlapping 8- or
/// 4-byte loads, with no loop and no call.
#[inline(always)]
pub(crate) fn zero_padded(bytes: &[u8]) -> [u8; 16] {
    let len = bytes.len();
    let word = if let (Some(head), Some(tail)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>())
    {
        // 8 to 16 bytes: the tail word holds bytes `len - 8..len`; shifting it down by
        // `16 - len` bytes leaves bytes `8..len` at the bottom (the overlap falls off).
        let tail = u128::from(u64::from_le_bytes(*tail)) >> (8 * (16 - len.min(16)));
        u128::from(u64::from_le_bytes(*head)) | (tail << 64)
    } else if let (Some(head), Some(tail)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        // 4 to 7 bytes, the same way with 4-byte words.
        let tail = u64::from(u32::from_le_bytes(*tail)) >> (8 * (8 - len));
        u128::from(u64::from(u32::from_le_bytes(*head)) | (tail << 32))
    } else {
        bytes
            .iter()
            .rev()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
    };
    word.to_le_bytes()
}

/// CRC of fewer than 16 bytes in one fixed-cost step on the zero-padded block (no loop over the
/// bytes). Out of line, so that [`crc16`] stays small where it is inlined.
#[inline(never)]
fn below_16(bytes: &[u8]) -> u16 {
    // `len - 1` wraps for the empty input, which hashes nothing.
    step16_through(&zero_padded(bytes), bytes.len().wrapping_sub(1))
}

/// CRC of 16 to 32 bytes given as their first and last 16 (overlapping below 32), in two
/// fixed-cost steps: the first `len - 16` bytes with [`step16_through`], then the last 16 with
/// [`step16`]. Exactly 16 bytes take the second step only.
#[inline(always)]
pub(crate) fn crc16_16_to_32(head: &[u8; 16], tail: &[u8; 16], len: usize) -> u16 {
    debug_assert!((16..=32).contains(&len));
    if len == 16 {
        step16(0, head)
    } else {
        step16(step16_through(head, len - 17), tail)
    }
}

/// Fewer than 16 bytes in one step (the same idea as [`step16`] with `n - 1 - i` zero bytes after
/// byte `i`). With one byte the state is wider than the message, so the classic byte step is used.
#[inline(always)]
fn step_short(crc: u16, b: &[u8]) -> u16 {
    let [hi, lo] = crc.to_be_bytes();
    let t = &TABLES;
    match b {
        [] => crc,
        [b0] => (crc << 8) ^ t[0][usize::from(b0 ^ hi)],
        [b0, b1, rest @ ..] => {
            let n = b.len();
            debug_assert!(n <= 16);
            let mut acc =
                t[(n - 1) & 15][usize::from(b0 ^ hi)] ^ t[(n - 2) & 15][usize::from(b1 ^ lo)];
            for (i, &byte) in rest.iter().enumerate() {
                // Byte `i + 2` is followed by `n - 3 - i` bytes.
                acc ^= t[(n - 3 - i) & 15][usize::from(byte)];
            }
            acc
        }
    }
}

/// The individual code paths, for tests, fuzzing and benchmarks. Not part of the stable API.
#[doc(hidden)]
pub mod paths {
    /// The bitwise definition (the reference).
    #[must_use]
    pub fn bitwise(bytes: &[u8]) -> u16 {
        super::bitwise(0, bytes)
    }

    /// The portable slice-by-16 table path, whatever the length.
    #[must_use]
    pub fn table(bytes: &[u8]) -> u16 {
        super::update_table(0, bytes)
    }

    /// The fixed-cost short-input paths (one or two table steps, no loop), or `None` above 32
    /// bytes.
    #[must_use]
    pub fn short(bytes: &[u8]) -> Option<u16> {
        match (bytes.first_chunk::<16>(), bytes.last_chunk::<16>()) {
            (Some(head), Some(tail)) => {
                (bytes.len() <= 32).then(|| super::crc16_16_to_32(head, tail, bytes.len()))
            }
            _ => Some(super::below_16(bytes)),
        }
    }

    /// The hardware folding path whatever the length, or `None` if this CPU lacks it.
    #[must_use]
    pub fn clmul(bytes: &[u8]) -> Option<u16> {
        super::clmul::crc16(bytes)
    }

    /// The folding algorithm run on a software carry-less multiplier: proves the folding
    /// constants and lane bookkeeping on any machine.
    #[must_use]
    pub fn clmul_soft(bytes: &[u8]) -> u16 {
        super::clmul::crc16_soft(bytes)
    }

    /// The name of the hardware path this CPU takes for long inputs.
    #[must_use]
    pub fn active() -> &'static str {
        super::clmul::active()
    }
}

#[cfg(test)]
mod tests {
    use super::zero_padded;

    #[test]
    fn zero_padded_keeps_the_bytes_in_order_and_pads_with_zeros() {
        let bytes: Vec<u8> = (1..=16).collect();
        for len in 0..=16 {
            let mut want = [0u8; 16];
            want[..len].copy_from_slice(&bytes[..len]);
            assert_eq!(zero_padded(&bytes[..len]), want, "len {len}");
        }
    }
}
