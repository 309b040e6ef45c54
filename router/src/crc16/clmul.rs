//! CRC-16/XMODEM by carry-less multiplication folding (PCLMULQDQ on x86-64, PMULL on aarch64).
//!
//! A 16-byte block, loaded so that the first byte's top bit is `x^127`, is a polynomial
//! `X = H·x^64 + L` (`H`, `L` 64 bits each). Moving it `d` bits further down the message means
//! multiplying by `x^d`, and modulo `P`
//!
//! ```text
//! X·x^d ≡ H·(x^(d+64) mod P) + L·(x^d mod P)      (mod P)
//! ```
//!
//! Both constants have degree < 16, so the two carry-less products have degree < 79 and their XOR
//! fits a 128-bit register again: the message is folded block by block without ever reducing.
//! Four lanes, 16 bytes apart, each fold with `d = 512` (four blocks) so the multiplier's latency
//! overlaps; then the lanes are folded onto the last (`d = 384, 256, 128`), remaining blocks fold with
//! `d = 128`, and the last 128-bit value plus the tail bytes go through the slice-by-16 tables
//! (a CRC only depends on the message modulo `P`, so hashing the folded value is exact).
//!
//! The algorithm is written once, generic over [`Clmul`]; each CPU provides the four primitive
//! operations. A software implementation of the same trait lets the tests check the constants and
//! the lane bookkeeping on any machine.

use super::{update_table, POLY};

/// The primitive operations the folding needs, on some 128-bit register type.
pub(super) trait Clmul: Copy {
    /// A 128-bit register.
    type V: Copy;
    /// Loads 16 bytes as a polynomial: byte 0's top bit is `x^127`, byte 15's low bit is `x^0`.
    fn load(self, block: &[u8; 16]) -> Self::V;
    /// The fold constant for distance `d`: high half `x^(d+64) mod P`, low half `x^d mod P`.
    fn constant(self, k: Fold) -> Self::V;
    /// `hi(a)·hi(k) ^ lo(a)·lo(k)` (carry-less products): `a` moved by the constant's distance.
    fn fold(self, a: Self::V, k: Self::V) -> Self::V;
    /// `a ^ b`.
    fn xor(self, a: Self::V, b: Self::V) -> Self::V;
    /// The register back as 16 bytes, in the order [`Clmul::load`] read them.
    fn store(self, a: Self::V) -> [u8; 16];
}

/// `x^n mod P` (the reduction of a single power of `x`).
const fn xpow_mod(n: u32) -> u64 {
    let mut r: u32 = 1;
    let mut i = 0;
    while i < n {
        r <<= 1;
        if r & 0x1_0000 != 0 {
            r ^= 0x1_0000 | POLY as u32;
        }
        i += 1;
    }
    r as u64
}

/// A fold distance's two constants.
#[derive(Clone, Copy)]
pub(super) struct Fold {
    /// `x^(d+64) mod P`.
    hi: u64,
    /// `x^d mod P`.
    lo: u64,
}

impl Fold {
    const fn new(d: u32) -> Self {
        Fold {
            hi: xpow_mod(d + 64),
            lo: xpow_mod(d),
        }
    }
}

const FOLD_128: Fold = Fold::new(128);
const FOLD_256: Fold = Fold::new(256);
const FOLD_384: Fold = Fold::new(384);
const FOLD_512: Fold = Fold::new(512);

/// Splits off four 16-byte blocks.
#[inline(always)]
fn take4(s: &[u8]) -> Option<([&[u8; 16]; 4], &[u8])> {
    let (a, s) = s.split_first_chunk::<16>()?;
    let (b, s) = s.split_first_chunk::<16>()?;
    let (c, s) = s.split_first_chunk::<16>()?;
    let (d, s) = s.split_first_chunk::<16>()?;
    Some(([a, b, c, d], s))
}

/// The folding algorithm (module docs), for any input length.
#[inline(always)]
fn crc16_with<C: Clmul>(c: C, bytes: &[u8]) -> u16 {
    let k128 = c.constant(FOLD_128);
    let mut rest = bytes;
    let mut x = match take4(rest) {
        // At least eight blocks: four lanes, lane `j` folding blocks `j, j + 4, j + 8, ...`, so
        // that four independent multiplications are in flight.
        Some(([b0, b1, b2, b3], tail)) if tail.len() >= 64 => {
            let mut lanes = [c.load(b0), c.load(b1), c.load(b2), c.load(b3)];
            rest = tail;
            let k512 = c.constant(FOLD_512);
            while let Some((next, tail)) = take4(rest) {
                for (lane, block) in lanes.iter_mut().zip(next) {
                    *lane = c.xor(c.fold(*lane, k512), c.load(block));
                }
                rest = tail;
            }
            // The lanes hold consecutive blocks `i, i + 1, i + 2, i + 3`: move the first three
            // to block `i + 3` (3, 2 and 1 blocks further) and add them up, in parallel.
            let [l0, l1, l2, l3] = lanes;
            let a = c.xor(
                c.fold(l0, c.constant(FOLD_384)),
                c.fold(l1, c.constant(FOLD_256)),
            );
            c.xor(a, c.xor(c.fold(l2, k128), l3))
        }
        _ => match rest.split_first_chunk::<16>() {
            Some((first, tail)) => {
                rest = tail;
                c.load(first)
            }
            None => return update_table(0, bytes),
        },
    };
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        x = c.xor(c.fold(x, k128), c.load(block));
        rest = tail;
    }
    update_table(update_table(0, &c.store(x)), rest)
}

/// Software carry-less multiplication: the reference implementation of [`Clmul`].
#[derive(Clone, Copy)]
struct Soft;

/// 64×64 → 128-bit carry-less product, one bit at a time.
fn clmul64(a: u64, b: u64) -> u128 {
    let mut r = 0u128;
    for i in 0..64 {
        if (b >> i) & 1 != 0 {
            r ^= u128::from(a) << i;
        }
    }
    r
}

impl Clmul for Soft {
    type V = u128;
    fn load(self, block: &[u8; 16]) -> u128 {
        u128::from_be_bytes(*block)
    }
    fn constant(self, k: Fold) -> u128 {
        (u128::from(k.hi) << 64) | u128::from(k.lo)
    }
    fn fold(self, a: u128, k: u128) -> u128 {
        // Truncation intended: the halves of the 128-bit values.
        #[allow(clippy::cast_possible_truncation)]
        let (ah, al, kh, kl) = ((a >> 64) as u64, a as u64, (k >> 64) as u64, k as u64);
        clmul64(ah, kh) ^ clmul64(al, kl)
    }
    fn xor(self, a: u128, b: u128) -> u128 {
        a ^ b
    }
    fn store(self, a: u128) -> [u8; 16] {
        a.to_be_bytes()
    }
}

/// The folding algorithm on the software multiplier (slow; for tests).
pub(super) fn crc16_soft(bytes: &[u8]) -> u16 {
    crc16_with(Soft, bytes)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{crc16_with, Clmul, Fold};
    use core::arch::x86_64::{
        __m128i, _mm_clmulepi64_si128, _mm_loadu_si128, _mm_set_epi64x, _mm_set_epi8,
        _mm_shuffle_epi8, _mm_storeu_si128, _mm_xor_si128,
    };

    /// Proof that the CPU has PCLMULQDQ and SSSE3: only [`Pclmul::detect`] makes one.
    #[derive(Clone, Copy)]
    pub(super) struct Pclmul(());

    impl Pclmul {
        /// The token, if the CPU supports the instructions (std caches the CPUID result).
        #[inline]
        pub(super) fn detect() -> Option<Self> {
            if std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("ssse3")
            {
                Some(Pclmul(()))
            } else {
                None
            }
        }
    }

    /// `pshufb` mask reversing the 16 bytes of a register.
    #[inline(always)]
    fn reverse_mask() -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) }
    }

    impl Clmul for Pclmul {
        type V = __m128i;

        #[inline(always)]
        fn load(self, block: &[u8; 16]) -> __m128i {
            // SAFETY: `block` is 16 readable bytes and `loadu` has no alignment requirement; the
            // `Pclmul` token proves SSSE3 (`pshufb`) is available.
            unsafe { _mm_shuffle_epi8(_mm_loadu_si128(block.as_ptr().cast()), reverse_mask()) }
        }

        #[inline(always)]
        fn constant(self, k: Fold) -> __m128i {
            // The constants are below 2^16: the casts are lossless.
            #[allow(clippy::cast_possible_wrap)]
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe {
                _mm_set_epi64x(k.hi as i64, k.lo as i64)
            }
        }

        #[inline(always)]
        fn fold(self, a: __m128i, k: __m128i) -> __m128i {
            // SAFETY: the `Pclmul` token proves PCLMULQDQ is available.
            unsafe {
                let hi = _mm_clmulepi64_si128::<0x11>(a, k);
                let lo = _mm_clmulepi64_si128::<0x00>(a, k);
                _mm_xor_si128(hi, lo)
            }
        }

        #[inline(always)]
        fn xor(self, a: __m128i, b: __m128i) -> __m128i {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe { _mm_xor_si128(a, b) }
        }

        #[inline(always)]
        fn store(self, a: __m128i) -> [u8; 16] {
            let mut out = [0u8; 16];
            // SAFETY: `out` is 16 writable bytes, `storeu` has no alignment requirement; the
            // token proves SSSE3.
            unsafe {
                _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(a, reverse_mask()))
            };
            out
        }
    }

    /// The folding loop compiled with the instructions enabled, so the primitives inline.
    ///
    /// # Safety
    ///
    /// The CPU must support PCLMULQDQ and SSSE3 (which holding a `Pclmul` proves).
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    unsafe fn crc16_pclmul(token: Pclmul, bytes: &[u8]) -> u16 {
        crc16_with(token, bytes)
    }

    /// CRC of `bytes` by PCLMULQDQ folding, or `None` without it.
    #[inline]
    pub(super) fn crc16(bytes: &[u8]) -> Option<u16> {
        let token = Pclmul::detect()?;
        // SAFETY: `detect` returned the token, so the CPU supports the enabled features.
        Some(unsafe { crc16_pclmul(token, bytes) })
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{crc16_with, Clmul, Fold};
    use core::arch::aarch64::{
        uint64x2_t, uint8x16_t, vcombine_u64, vcreate_u64, veorq_u64, vextq_u8, vgetq_lane_u64,
        vld1q_u8, vmull_high_p64, vmull_p64, vreinterpretq_p64_u64, vreinterpretq_u64_p128,
        vreinterpretq_u64_u8, vreinterpretq_u8_u64, vrev64q_u8, vst1q_u8,
    };

    /// Proof that the CPU has PMULL (the `aes` extension) and NEON: only [`Pmull::detect`]
    /// makes one.
    #[derive(Clone, Copy)]
    pub(super) struct Pmull(());

    impl Pmull {
        /// The token, if the CPU supports the instructions (std caches the result).
        #[inline]
        pub(super) fn detect() -> Option<Self> {
            if std::arch::is_aarch64_feature_detected!("neon")
                && std::arch::is_aarch64_feature_detected!("pmull")
            {
                Some(Pmull(()))
            } else {
                None
            }
        }
    }

    /// Reverses the 16 bytes of a register (`rev64` per half, then swap the halves).
    #[inline(always)]
    fn reverse(v: uint8x16_t) -> uint8x16_t {
        // SAFETY: the `Pmull` token held by every caller proves NEON.
        unsafe { vextq_u8::<8>(vrev64q_u8(v), vrev64q_u8(v)) }
    }

    impl Clmul for Pmull {
        type V = uint64x2_t;

        #[inline(always)]
        fn load(self, block: &[u8; 16]) -> uint64x2_t {
            // SAFETY: `block` is 16 readable bytes (`ld1` needs no alignment); the token proves
            // NEON.
            unsafe { vreinterpretq_u64_u8(reverse(vld1q_u8(block.as_ptr()))) }
        }

        #[inline(always)]
        fn constant(self, k: Fold) -> uint64x2_t {
            // SAFETY: the token proves NEON.
            unsafe { vcombine_u64(vcreate_u64(k.lo), vcreate_u64(k.hi)) }
        }

        #[inline(always)]
        fn fold(self, a: uint64x2_t, k: uint64x2_t) -> uint64x2_t {
            // SAFETY: the token proves NEON and PMULL.
            unsafe {
                let lo = vmull_p64(vgetq_lane_u64::<0>(a), vgetq_lane_u64::<0>(k));
                let hi = vmull_high_p64(vreinterpretq_p64_u64(a), vreinterpretq_p64_u64(k));
                veorq_u64(vreinterpretq_u64_p128(lo), vreinterpretq_u64_p128(hi))
            }
        }

        #[inline(always)]
        fn xor(self, a: uint64x2_t, b: uint64x2_t) -> uint64x2_t {
            // SAFETY: the token proves NEON.
            unsafe { veorq_u64(a, b) }
        }

        #[inline(always)]
        fn store(self, a: uint64x2_t) -> [u8; 16] {
            let mut out = [0u8; 16];
            // SAFETY: `out` is 16 writable bytes; the token proves NEON.
            unsafe { vst1q_u8(out.as_mut_ptr(), reverse(vreinterpretq_u8_u64(a))) };
            out
        }
    }

    /// The folding loop compiled with the instructions enabled, so the primitives inline.
    ///
    /// # Safety
    ///
    /// The CPU must support NEON and PMULL (which holding a `Pmull` proves).
    #[target_feature(enable = "neon,aes")]
    unsafe fn crc16_pmull(token: Pmull, bytes: &[u8]) -> u16 {
        crc16_with(token, bytes)
    }

    /// CRC of `bytes` by PMULL folding, or `None` without it.
    #[inline]
    pub(super) fn crc16(bytes: &[u8]) -> Option<u16> {
        let token = Pmull::detect()?;
        // SAFETY: `detect` returned the token, so the CPU supports the enabled features.
        Some(unsafe { crc16_pmull(token, bytes) })
    }
}

/// CRC of `bytes` by hardware folding, or `None` if this CPU has no carry-less multiplier.
#[inline]
pub(super) fn crc16(bytes: &[u8]) -> Option<u16> {
    #[cfg(target_arch = "x86_64")]
    {
        x86::crc16(bytes)
    }
    #[cfg(target_arch = "aarch64")]
    {
        arm::crc16(bytes)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = bytes;
        None
    }
}

/// Which hardware path [`crc16`] takes on this CPU.
pub(super) fn active() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::Pclmul::detect().is_some() {
            return "x86-64 PCLMULQDQ folding";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if arm::Pmull::detect().is_some() {
            return "aarch64 PMULL folding";
        }
    }
    "portable slice-by-16 table"
}
