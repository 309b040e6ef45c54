//! Hash slots: [`Slot`], [`key_slot`] and [`hash_tag`], exactly as Redis's `keyHashSlot`.
//!
//! Redis Cluster splits the key space into [`SLOT_COUNT`] slots. A key's slot is
//! `crc16(k) mod 16384`, where `k` is the key's *hash tag* if it has one: the bytes between the
//! first `{` and the first `}` after it, when there is at least one byte between them. Otherwise
//! (no `{`, no `}` after it, or `{}` with nothing inside) the whole key is hashed. Keys are bytes,
//! not characters: a multi-byte UTF-8 sequence is never special.
//!
//! Keys of up to 32 bytes (most keys) take a fused path (the `short` module): a couple of
//! 16-byte compares find the braces, a few bit operations extract the tag, and one or two
//! fixed-cost table steps hash it, with no loop over the bytes.
//!
//! Longer keys are scanned, then hashed with [`crc16`] (carry-less multiplication folding where
//! the CPU has it). Finding the `{` costs more than the CRC itself with a byte-at-a-time loop,
//! so that scan is vectorised: below 16 bytes a SWAR (SIMD-within-a-register) test on two
//! overlapping machine words; from 16 bytes inline SSE2 compares on x86-64 (16-byte blocks, the
//! last one overlapping) up to 127 bytes, and `memchr` (AVX2 on x86-64, NEON on aarch64) beyond.

mod short;

use core::fmt;

use crate::crc16::crc16;

/// The number of hash slots in a Redis Cluster.
///
/// # Examples
///
/// ```
/// use slotline_router::{key_slot, SLOT_COUNT};
///
/// assert_eq!(SLOT_COUNT, 16384);
/// assert!(key_slot(b"any key").get() < SLOT_COUNT);
/// ```
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot, always in `0..SLOT_COUNT`.
///
/// Built by [`key_slot`] or by the checked constructors [`Slot::new`] and `Slot::try_from(u16)`;
/// there is no way to build an out-of-range slot.
///
/// # Examples
///
/// ```
/// use slotline_router::Slot;
///
/// let slot = Slot::new(12182).unwrap();
/// assert_eq!(slot.get(), 12182);
/// assert_eq!(u16::from(slot), 12182);
/// assert_eq!(Slot::new(16384), None);
/// assert!(Slot::try_from(20000u16).is_err());
/// ```
// Type invariant: `self.0 < SLOT_COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u16);

impl Slot {
    /// The first slot, `0`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Slot::MIN.get(), 0);
    /// ```
    pub const MIN: Slot = Slot(0);

    /// The last slot, `16383`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Slot::MAX.get(), 16383);
    /// ```
    pub const MAX: Slot = Slot(SLOT_COUNT - 1);

    /// The slot numbered `slot`, or `None` if `slot >= SLOT_COUNT`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::Slot;
    ///
    /// assert_eq!(Slot::new(0).map(Slot::get), Some(0));
    /// assert_eq!(Slot::new(16383).map(Slot::get), Some(16383));
    /// assert_eq!(Slot::new(16384), None);
    /// ```
    #[inline]
    #[must_use]
    pub const fn new(slot: u16) -> Option<Slot> {
        if slot < SLOT_COUNT {
            Some(Slot(slot))
        } else {
            None
        }
    }

    /// The slot number, in `0..SLOT_COUNT`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::key_slot(b"foo").get(), 12182);
    /// ```
    #[inline]
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The slot number as an index (for tables of `SLOT_COUNT` entries).
    ///
    /// # Examples
    ///
    /// ```
    /// let table = vec![0u8; 16384];
    /// assert_eq!(table[slotline_router::key_slot(b"foo").index()], 0);
    /// ```
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// All slots in ascending order.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::Slot;
    ///
    /// assert_eq!(Slot::all().count(), 16384);
    /// assert_eq!(Slot::all().last(), Some(Slot::MAX));
    /// ```
    pub fn all() -> impl DoubleEndedIterator<Item = Slot> + ExactSizeIterator + Clone {
        (0..SLOT_COUNT).map(Slot)
    }
}

impl From<Slot> for u16 {
    #[inline]
    fn from(slot: Slot) -> u16 {
        slot.0
    }
}

impl From<Slot> for usize {
    #[inline]
    fn from(slot: Slot) -> usize {
        usize::from(slot.0)
    }
}

impl TryFrom<u16> for Slot {
    type Error = SlotOutOfRange;

    #[inline]
    fn try_from(value: u16) -> Result<Slot, SlotOutOfRange> {
        Slot::new(value).ok_or(SlotOutOfRange {
            value: i64::from(value),
        })
    }
}

impl TryFrom<i64> for Slot {
    type Error = SlotOutOfRange;

    /// Checked conversion from a RESP integer.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::Slot;
    ///
    /// assert_eq!(Slot::try_from(5461i64).map(Slot::get), Ok(5461));
    /// assert!(Slot::try_from(-1i64).is_err());
    /// ```
    #[inline]
    fn try_from(value: i64) -> Result<Slot, SlotOutOfRange> {
        u16::try_from(value)
            .ok()
            .and_then(Slot::new)
            .ok_or(SlotOutOfRange { value })
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A slot number outside `0..SLOT_COUNT`.
///
/// # Examples
///
/// ```
/// use slotline_router::Slot;
///
/// let err = Slot::try_from(16384u16).unwrap_err();
/// assert_eq!(err.value(), 16384);
/// assert_eq!(err.to_string(), "slot 16384 is out of range (0..16384)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotOutOfRange {
    value: i64,
}

impl SlotOutOfRange {
    /// The rejected number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Slot::try_from(-3i64).unwrap_err().value(), -3);
    /// ```
    #[must_use]
    pub fn value(&self) -> i64 {
        self.value
    }
}

impl fmt::Display for SlotOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {} is out of range (0..{SLOT_COUNT})", self.value)
    }
}

impl std::error::Error for SlotOutOfRange {}

/// The slot Redis Cluster assigns to `key` (`CLUSTER KEYSLOT`).
///
/// # Examples
///
/// ```
/// use slotline_router::key_slot;
///
/// assert_eq!(key_slot(b"foo").get(), 12182);
/// assert_eq!(key_slot(b"{user1000}.following").get(), 3443);
/// assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"{user1000}.following"));
/// assert_eq!(key_slot(b"foo{}{bar}").get(), 8363); // empty tag: the whole key
/// assert_eq!(key_slot(b"").get(), 0);
/// ```
#[inline]
#[must_use]
pub fn key_slot(key: &[u8]) -> Slot {
    match short::key_crc(key) {
        // Invariant: the mask keeps the value below SLOT_COUNT (a power of two).
        Some(crc) => Slot(crc & (SLOT_COUNT - 1)),
        None => long_key_slot(key),
    }
}

/// The slot of a key longer than the short-key path takes: scan, then [`crc16`]. Out of line,
/// so that its registers cost the short keys nothing, and returning the slot so that the call
/// is a tail call.
#[inline(never)]
fn long_key_slot(key: &[u8]) -> Slot {
    // Invariant: the mask keeps the value below SLOT_COUNT (a power of two).
    Slot(crc16(hash_tag(key)) & (SLOT_COUNT - 1))
}

/// The bytes of `key` that Redis hashes: the hash tag if there is a non-empty one, else the key.
///
/// The tag is what lies between the first `{` and the first `}` after it. The result is always a
/// sub-slice of `key`.
///
/// # Examples
///
/// ```
/// use slotline_router::hash_tag;
///
/// assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
/// assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar"); // first `{`, first `}` after it
/// assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
/// assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}"); // empty tag: the whole key
/// assert_eq!(hash_tag(b"a{b"), b"a{b");
/// ```
#[inline]
#[must_use]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = find_byte(b'{', key) else {
        return key;
    };
    let after = key.get(open + 1..).unwrap_or_default();
    match find_byte(b'}', after) {
        Some(close) if close > 0 => after.get(..close).unwrap_or(key),
        _ => key,
    }
}

/// The shortest haystack [`find_byte`] hands to `memchr`: from 16 bytes up to this one it
/// uses inline SSE2 on x86-64.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const MEMCHR_MIN_LEN: usize = 128;
/// The shortest haystack [`find_byte`] hands to `memchr` (no inline SSE2 scan here).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
const MEMCHR_MIN_LEN: usize = 16;

/// Position of the first `needle` in `hay`.
#[inline(always)]
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    match hay.len() {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        16..MEMCHR_MIN_LEN => sse2::find_byte(needle, hay),
        MEMCHR_MIN_LEN.. => memchr::memchr(needle, hay),
        8..=15 => {
            let (Some(head), Some(tail)) = (hay.first_chunk::<8>(), hay.last_chunk::<8>()) else {
                return None;
            };
            swar_first(needle, u64::from_le_bytes(*head)).or_else(|| {
                swar_first(needle, u64::from_le_bytes(*tail)).map(|i| i + hay.len() - 8)
            })
        }
        4..=7 => {
            let (Some(head), Some(tail)) = (hay.first_chunk::<4>(), hay.last_chunk::<4>()) else {
                return None;
            };
            // The upper four bytes are padded with a byte that is not `needle`.
            let pad = !(0x0101_0101_0101_0101 * u64::from(needle)) & 0xFFFF_FFFF_0000_0000;
            swar_first(needle, u64::from(u32::from_le_bytes(*head)) | pad).or_else(|| {
                swar_first(needle, u64::from(u32::from_le_bytes(*tail)) | pad)
                    .map(|i| i + hay.len() - 4)
            })
        }
        _ => hay.iter().position(|&b| b == needle),
    }
}

/// Short-key scan with SSE2 (part of the x86-64 baseline): the same 16-byte compare as
/// `memchr`, inlined, without its dispatch through a function pointer.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };

    /// Bit `i` set when byte `i` of `block` equals the splatted needle.
    #[inline(always)]
    fn matches(block: &[u8; 16], splat: __m128i) -> u32 {
        // SAFETY: `block` is 16 readable bytes and `loadu` has no alignment requirement; SSE2
        // is enabled for this target (the module's `cfg`).
        let mask = unsafe {
            _mm_movemask_epi8(_mm_cmpeq_epi8(
                _mm_loadu_si128(block.as_ptr().cast()),
                splat,
            ))
        };
        // Only the low 16 bits can be set.
        mask.unsigned_abs()
    }

    /// Position of the first `needle` in `hay` (any length; whole blocks, then an overlapping
    /// last block that ends at the end of `hay`).
    #[inline(always)]
    pub(super) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
        // SAFETY: SSE2 is enabled for this target (the module's `cfg`).
        #[allow(clippy::cast_possible_wrap)]
        let splat = unsafe { _mm_set1_epi8(needle as i8) };
        let mut rest = hay;
        let mut at = 0;
        while let Some((block, tail)) = rest.split_first_chunk::<16>() {
            let m = matches(block, splat);
            if m != 0 {
                return Some(at + m.trailing_zeros() as usize);
            }
            at += 16;
            rest = tail;
        }
        if rest.is_empty() {
            return None;
        }
        // The bytes before `rest` in this last block were already searched and did not match.
        let last = hay.last_chunk::<16>()?;
        let m = matches(last, splat);
        (m != 0).then(|| hay.len() - 16 + m.trailing_zeros() as usize)
    }
}

/// Index of the first byte equal to `needle` in the little-endian word `word`.
///
/// Classic zero-byte test on `word ^ splat(needle)`: `(v - 0x01..) & !v & 0x80..` flags every
/// zero byte, and may also flag a byte *above* a zero byte (the borrow), never one below, so the
/// lowest flag is exact.
#[inline(always)]
fn swar_first(needle: u8, word: u64) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let v = word ^ (LO * u64::from(needle));
    let found = v.wrapping_sub(LO) & !v & HI;
    if found == 0 {
        None
    } else {
        Some((found.trailing_zeros() / 8) as usize)
    }
}

/// `keyHashSlot` transcribed from Redis's `src/cluster.c`, byte loop and bitwise CRC: the
/// reference for tests and fuzzing. Not part of the stable API.
#[doc(hidden)]
#[must_use]
pub fn key_slot_reference(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        None => key,
        Some(s) => match key[s + 1..].iter().position(|&b| b == b'}') {
            Some(e) if e > 0 => &key[s + 1..s + 1 + e],
            _ => key,
        },
    };
    crate::crc16::bitwise(0, hashed) & 0x3FFF
}

/// The individual `key_slot` code paths, for tests, fuzzing and benchmarks. Not part of the
/// stable API. Each returns the slot number.
#[doc(hidden)]
pub mod paths {
    use super::{crc16, hash_tag, short, SLOT_COUNT};

    /// The longest key the fused short-key path takes.
    pub const SHORT_MAX_LEN: usize = short::MAX_LEN;

    /// The shortest haystack the general path's brace scan hands to `memchr` (128 on x86-64,
    /// where shorter ones from 16 bytes take an inline SSE2 scan; 16 elsewhere). A key takes
    /// `memchr` for its `{` when it is at least this long, and for its `}` when at least this
    /// many bytes follow the `{`.
    pub const MEMCHR_MIN_LEN: usize = super::MEMCHR_MIN_LEN;

    /// The general path's byte scan (SWAR, SSE2 or `memchr` by length, as `key_slot` uses it):
    /// the position of the first `needle` in `hay`.
    #[must_use]
    pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
        super::find_byte(needle, hay)
    }

    /// The general path, whatever the length: vectorised scan, then [`crc16`].
    #[must_use]
    pub fn general(key: &[u8]) -> u16 {
        crc16(hash_tag(key)) & (SLOT_COUNT - 1)
    }

    /// The fused short-key path with this target's scan, or `None` above [`SHORT_MAX_LEN`].
    #[must_use]
    pub fn short(key: &[u8]) -> Option<u16> {
        short::key_crc(key).map(|crc| crc & (SLOT_COUNT - 1))
    }

    /// The fused short-key path with the portable SWAR scan, or `None` above
    /// [`SHORT_MAX_LEN`].
    #[must_use]
    pub fn short_swar(key: &[u8]) -> Option<u16> {
        short::key_crc_swar(key).map(|crc| crc & (SLOT_COUNT - 1))
    }

    /// The name of the scan the short-key path uses on this target (`SSE2` or `SWAR`).
    #[must_use]
    pub fn short_scan() -> &'static str {
        short::scan_name()
    }
}

/// An inclusive range of slots, `start..=end`, never empty (Redis writes ranges this way).
///
/// # Examples
///
/// ```
/// use slotline_router::{Slot, SlotRange};
///
/// let r = SlotRange::new(Slot::new(0).unwrap(), Slot::new(5460).unwrap()).unwrap();
/// assert_eq!(r.len(), 5461);
/// assert!(r.contains(Slot::new(5460).unwrap()));
/// assert_eq!(r.to_string(), "0-5460");
/// assert_eq!(SlotRange::new(Slot::MAX, Slot::MIN), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRange {
    // Invariant: start <= end.
    start: Slot,
    end: Slot,
}

impl SlotRange {
    /// All slots, `0..=16383`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::SlotRange::ALL.len(), 16384);
    /// ```
    pub const ALL: SlotRange = SlotRange {
        start: Slot::MIN,
        end: Slot::MAX,
    };

    /// `start..=end`, or `None` if `start > end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Slot, SlotRange};
    ///
    /// let one = SlotRange::new(Slot::MAX, Slot::MAX).unwrap();
    /// assert_eq!(one.len(), 1);
    /// ```
    #[must_use]
    pub const fn new(start: Slot, end: Slot) -> Option<SlotRange> {
        if start.0 <= end.0 {
            Some(SlotRange { start, end })
        } else {
            None
        }
    }

    /// The first slot.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::SlotRange::ALL.start().get(), 0);
    /// ```
    #[must_use]
    pub const fn start(&self) -> Slot {
        self.start
    }

    /// The last slot (inclusive).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::SlotRange::ALL.end().get(), 16383);
    /// ```
    #[must_use]
    pub const fn end(&self) -> Slot {
        self.end
    }

    /// The number of slots, at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::SlotRange::ALL.len(), 16384);
    /// ```
    #[must_use]
    pub const fn len(&self) -> usize {
        (self.end.0 - self.start.0) as usize + 1
    }

    /// Always `false`: a range holds at least one slot.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!slotline_router::SlotRange::ALL.is_empty());
    /// ```
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Whether `slot` is in the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Slot, SlotRange};
    ///
    /// assert!(SlotRange::ALL.contains(Slot::MAX));
    /// ```
    #[must_use]
    pub const fn contains(&self, slot: Slot) -> bool {
        self.start.0 <= slot.0 && slot.0 <= self.end.0
    }

    /// The slots of the range, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Slot, SlotRange};
    ///
    /// let r = SlotRange::new(Slot::new(3).unwrap(), Slot::new(5).unwrap()).unwrap();
    /// assert_eq!(r.iter().map(Slot::get).collect::<Vec<_>>(), [3, 4, 5]);
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Slot> + ExactSizeIterator + Clone {
        (self.start.0..=self.end.0).map(Slot)
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}
