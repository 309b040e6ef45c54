//! Slot → logical shard: [`ShardMap`].
//!
//! slotline keeps one bounded ring per *logical shard*; a shard is a contiguous range of slots.
//! With `n` shards, slot `s` belongs to shard `floor(s · n / 16384)`: one multiplication and a
//! shift, no table. Shard `k` then holds slots `ceil(k · 16384 / n) ..= ceil((k + 1) · 16384 / n)
//! - 1`, so the ranges are contiguous, in order, and their sizes differ by at most one slot.

use core::fmt;

use crate::slot::{key_slot, Slot, SlotRange, SLOT_COUNT};

/// Splits the slots into `n` contiguous, balanced logical shards (see the module docs).
///
/// # Examples
///
/// ```
/// use slotline_router::{ShardMap, Slot};
///
/// let shards = ShardMap::default(); // 64 shards of 256 slots
/// assert_eq!(shards.shard_count(), 64);
/// assert_eq!(shards.shard_of(Slot::new(255).unwrap()), 0);
/// assert_eq!(shards.shard_of(Slot::new(256).unwrap()), 1);
/// assert_eq!(shards.shard_of_key(b"foo"), 12182 / 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShardMap {
    // Invariant: 1 <= count <= SLOT_COUNT.
    count: u32,
}

impl ShardMap {
    /// The default number of logical shards.
    pub const DEFAULT_SHARDS: usize = 64;

    /// `shards` logical shards.
    ///
    /// # Errors
    ///
    /// [`ShardCountError`] unless `1 <= shards <= 16384` (a shard holds at least one slot).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::ShardMap;
    ///
    /// assert_eq!(ShardMap::new(3).unwrap().shard_count(), 3);
    /// assert!(ShardMap::new(0).is_err());
    /// assert_eq!(
    ///     ShardMap::new(16385).unwrap_err().to_string(),
    ///     "shard count 16385 is out of range: need 1..=16384 (one slot per shard at least)"
    /// );
    /// ```
    pub fn new(shards: usize) -> Result<ShardMap, ShardCountError> {
        match u32::try_from(shards) {
            Ok(count) if (1..=u32::from(SLOT_COUNT)).contains(&count) => Ok(ShardMap { count }),
            _ => Err(ShardCountError { requested: shards }),
        }
    }

    /// The number of shards.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::ShardMap::default().shard_count(), 64);
    /// ```
    #[must_use]
    pub const fn shard_count(&self) -> usize {
        self.count as usize
    }

    /// The shard that owns `slot`, in `0..shard_count()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{ShardMap, Slot};
    ///
    /// let three = ShardMap::new(3).unwrap();
    /// assert_eq!(three.shard_of(Slot::new(5461).unwrap()), 0);
    /// assert_eq!(three.shard_of(Slot::new(5462).unwrap()), 1);
    /// assert_eq!(three.shard_of(Slot::MAX), 2);
    /// ```
    #[inline]
    #[must_use]
    pub const fn shard_of(&self, slot: Slot) -> usize {
        // slot < 2^14 and count <= 2^14: the product fits in u32.
        ((slot.get() as u32 * self.count) >> 14) as usize
    }

    /// The shard that owns `key`'s slot.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::ShardMap;
    ///
    /// let shards = ShardMap::new(16384).unwrap(); // one slot per shard
    /// assert_eq!(shards.shard_of_key(b"foo"), 12182);
    /// ```
    #[inline]
    #[must_use]
    pub fn shard_of_key(&self, key: &[u8]) -> usize {
        self.shard_of(key_slot(key))
    }

    /// The slots of shard `shard`, or `None` if `shard >= shard_count()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::ShardMap;
    ///
    /// let three = ShardMap::new(3).unwrap();
    /// let sizes: Vec<usize> = (0..3).map(|k| three.slots(k).unwrap().len()).collect();
    /// assert_eq!(sizes, [5462, 5461, 5461]);
    /// assert_eq!(three.slots(3), None);
    /// ```
    #[must_use]
    pub fn slots(&self, shard: usize) -> Option<SlotRange> {
        let k = u32::try_from(shard).ok().filter(|&k| k < self.count)?;
        let first = |k: u32| (k * u32::from(SLOT_COUNT)).div_ceil(self.count);
        let start = Slot::new(u16::try_from(first(k)).ok()?)?;
        let end = Slot::new(u16::try_from(first(k + 1) - 1).ok()?)?;
        SlotRange::new(start, end)
    }
}

impl Default for ShardMap {
    /// [`ShardMap::DEFAULT_SHARDS`] (64) shards.
    fn default() -> ShardMap {
        ShardMap {
            count: ShardMap::DEFAULT_SHARDS as u32,
        }
    }
}

/// A shard count outside `1..=16384`.
///
/// # Examples
///
/// ```
/// let err = slotline_router::ShardMap::new(0).unwrap_err();
/// assert_eq!(err.requested(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardCountError {
    requested: usize,
}

impl ShardCountError {
    /// The rejected count.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::ShardMap::new(99_999).unwrap_err().requested(), 99_999);
    /// ```
    #[must_use]
    pub fn requested(&self) -> usize {
        self.requested
    }
}

impl fmt::Display for ShardCountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard count {} is out of range: need 1..={SLOT_COUNT} (one slot per shard at least)",
            self.requested
        )
    }
}

impl std::error::Error for ShardCountError {}
