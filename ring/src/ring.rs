//! [`Ring`]: the slot array, the two indices, and the single-item operations.
//!
//! The algorithm, the index layout and the memory orderings are explained in the crate docs;
//! this file follows them step by step. Every stamp update carries a `{ lap, index }` comment.

use alloc::boxed::Box;
use core::fmt;
use core::mem::{self, MaybeUninit};
use core::panic::{RefUnwindSafe, UnwindSafe};

use crossbeam_utils::CachePadded;

use crate::full::{Full, PushError};
use crate::sync::{AtomicUsize, Backoff, Ordering, UnsafeCell};

/// One slot: a stamp saying whose turn it is, and room for one value.
pub(crate) struct Slot<T> {
    /// `{ lap, index }` of the next operation allowed on this slot. Equal to a tail value:
    /// empty, the push at that tail may write it. Equal to that tail plus one: written, the pop
    /// at head == that tail may read it. A pop sets it to `{ lap + 1, index }`.
    pub(crate) stamp: AtomicUsize,
    /// Initialised exactly while the stamp says "written" (or while the owner of the slot, the
    /// thread that claimed it with a CAS, is between its CAS and its stamp store).
    pub(crate) value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer ring with memory fixed at [`Ring::new`].
///
/// See the [crate docs](crate) for the algorithm, the memory orderings and what a thread
/// preempted in the middle of an operation does to the others.
///
/// # Examples
///
/// ```
/// # slotline_ring::__doctest(|| {
/// use slotline_ring::Ring;
///
/// let ring = Ring::new(2);
/// assert!(ring.try_push('a').is_ok());
/// assert!(ring.try_push('b').is_ok());
/// assert_eq!(ring.try_push('c').unwrap_err().into_inner(), 'c');
/// assert_eq!(ring.force_push('d'), Some('a'));
/// assert_eq!(ring.try_pop(), Some('b'));
/// assert_eq!(ring.try_pop(), Some('d'));
/// assert_eq!(ring.try_pop(), None);
/// # });
/// ```
pub struct Ring<T> {
    /// `{ lap, index }` of the next slot to pop. Only a successful CAS moves it.
    pub(crate) head: CachePadded<AtomicUsize>,
    /// `{ lap, index }` of the next slot to push, plus `mark_bit` once the ring is closed.
    /// Moved by a CAS, and by one `fetch_add` in an evicting `force_push` (which owns the tail
    /// slot then: see there); `close` sets `mark_bit` with a `fetch_or`, after which no CAS
    /// expecting an unmarked tail succeeds.
    pub(crate) tail: CachePadded<AtomicUsize>,
    /// `cap` slots.
    pub(crate) buffer: Box<[Slot<T>]>,
    /// How many items the ring holds when full.
    pub(crate) cap: usize,
    /// The smallest power of two greater than `cap`: the bit above every index, set in the
    /// tail once the ring is closed. Never set in a slot stamp or in the head.
    pub(crate) mark_bit: usize,
    /// `{ lap: 1, index: 0 }`: `2 * mark_bit`.
    pub(crate) one_lap: usize,
    /// Blocked and async callers waiting for an item or for room, and their wake-ups.
    #[cfg(feature = "std")]
    pub(crate) waiters: crate::wait::Waiters,
}

// SAFETY: a `Ring<T>` owns its items; moving it to another thread moves them, which is sound
// when `T: Send`.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: through `&Ring<T>` a value is only moved in by the thread that claimed its empty slot
// and moved out by the thread that claimed its full slot; the stamp protocol makes those
// accesses exclusive and ordered (Release store / Acquire load). Values cross threads, so
// `T: Send` is needed, and no `&T` is ever shared, so `T: Sync` is not.
unsafe impl<T: Send> Sync for Ring<T> {}

// No operation leaves the ring in a broken state if the caller panics: no user code runs while
// a slot is claimed (`pop_batch` hands its items to `Extend::extend` after releasing their
// slots, and evicted or rejected items are dropped by the caller).
impl<T> UnwindSafe for Ring<T> {}
impl<T> RefUnwindSafe for Ring<T> {}

impl<T> Ring<T> {
    /// Creates a ring that holds up to `capacity` items; all its memory is allocated here.
    ///
    /// Any capacity from 1 up is allowed, not only powers of two.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is zero ("capacity must be non-zero") or so large that the stamp
    /// arithmetic would overflow ("ring capacity is too large"). If the slot array cannot be
    /// allocated, the process aborts, as for any failed allocation in `alloc`.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring: Ring<u64> = Ring::new(1000);
    /// assert_eq!(ring.capacity(), 1000);
    /// assert!(ring.is_empty());
    /// # });
    /// ```
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be non-zero");
        // The mark bit is the smallest power of two greater than the capacity, so a stamp's
        // `index + 1` (a written slot) never reaches it; the lap bits start above it.
        let mark_bit = capacity
            .checked_add(1)
            .and_then(usize::checked_next_power_of_two)
            .expect("ring capacity is too large");
        let one_lap = mark_bit.checked_mul(2).expect("ring capacity is too large");

        // Every slot starts empty for lap 0: stamp `{ lap: 0, index: i }`.
        let buffer: Box<[Slot<T>]> = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();

        Self {
            // Head and tail start at `{ lap: 0, index: 0 }`.
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            buffer,
            cap: capacity,
            mark_bit,
            one_lap,
            #[cfg(feature = "std")]
            waiters: crate::wait::Waiters::new(),
        }
    }

    /// The index part of a head, tail or slot stamp.
    #[inline(always)]
    pub(crate) fn index(&self, stamp: usize) -> usize {
        stamp & (self.mark_bit - 1)
    }

    /// The stamp of the position after `stamp` (a head or tail value).
    #[inline(always)]
    pub(crate) fn next(&self, stamp: usize) -> usize {
        if self.index(stamp) + 1 < self.cap {
            // Set to `{ lap, index: index + 1 }`.
            stamp + 1
        } else {
            // Set to `{ lap: lap.wrapping_add(1), index: 0 }`.
            (stamp & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// The slot a head or tail stamp points at.
    #[inline(always)]
    pub(crate) fn slot(&self, stamp: usize) -> &Slot<T> {
        let index = self.index(stamp);
        debug_assert!(
            index < self.buffer.len(),
            "index {index} outside the slot array"
        );
        // SAFETY: every head and tail stamp has an index below `cap` (`next` wraps at `cap`),
        // and `buffer.len() == cap` (asserted above in debug builds).
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Moves `value` into `slot`, the empty slot at `position`, and publishes it. Every push
    /// writes its item here, except an evicting [`force_push`](Ring::force_push), which
    /// replaces the evicted value in place.
    ///
    /// # Safety
    ///
    /// `slot` is `self.slot(position)`, and the caller claimed it for a push: an `Acquire` load
    /// of its stamp saw `position` (empty for this lap, so the consumer that emptied it a lap
    /// earlier is done with it), and then one tail CAS moved the tail from a value at or
    /// before `position` to one past it (a single push claims its own position; a batch
    /// claims a run of positions, each loaded that way). The caller has not published it yet.
    #[inline(always)]
    pub(crate) unsafe fn put(&self, slot: &Slot<T>, position: usize, value: T) {
        debug_assert!(
            core::ptr::eq(slot, self.slot(position)),
            "slot and position differ"
        );
        // SAFETY: by the caller's claim this thread is the slot's only owner until the stamp
        // store below, and the slot holds no value (its last consumer moved it out before its
        // release, which the caller's Acquire load saw).
        slot.value
            .with_mut(|cell| unsafe { cell.write(MaybeUninit::new(value)) });
        // Set to `{ lap, index: index + 1 }`: written.
        slot.stamp
            .store(position.wrapping_add(1), Ordering::Release);
    }

    /// Moves the item out of `slot`, the written slot at `position`, and releases the slot
    /// for the next lap's push. Every pop and batch pop takes its item here (and so does
    /// dropping the ring); an evicting [`force_push`](Ring::force_push) takes the evicted
    /// value in place.
    ///
    /// # Safety
    ///
    /// `slot` is `self.slot(position)`, the slot is written for `position`, and the caller
    /// owns it as its only consumer, in one of two ways:
    ///
    /// * it claimed it: an `Acquire` load of the stamp saw `position + 1` (written for this
    ///   lap, so the producer's write is visible), and then one head CAS moved the head from a
    ///   value at or before `position` to one past it;
    /// * or it holds the ring by `&mut` (no operation in flight) and `position` lies between
    ///   the head and the tail, where every slot is written.
    ///
    /// The caller has not taken it yet.
    #[inline(always)]
    pub(crate) unsafe fn take(&self, slot: &Slot<T>, position: usize) -> T {
        debug_assert!(
            core::ptr::eq(slot, self.slot(position)),
            "slot and position differ"
        );
        // SAFETY: by the caller's claim this thread is the slot's only consumer, the value was
        // initialised by the push whose stamp store it saw, and the stamp store below ends the
        // claim, so the value is read once.
        let value = slot
            .value
            .with_mut(|cell| unsafe { cell.read().assume_init() });
        // Set to `{ lap: lap + 1, index }`: empty for the next lap.
        slot.stamp
            .store(position.wrapping_add(self.one_lap), Ordering::Release);
        value
    }

    /// Number of items between a head and a tail stamp read at the same moment.
    #[inline]
    pub(crate) fn distance(&self, head: usize, tail: usize) -> usize {
        let tail = tail & !self.mark_bit;
        let hix = self.index(head);
        let tix = self.index(tail);
        if hix < tix {
            tix - hix
        } else if hix > tix {
            self.cap - hix + tix
        } else if tail == head {
            0
        } else {
            // Same index, tail one lap ahead.
            self.cap
        }
    }

    /// Whether a push at `tail` finds its slot still held by the previous lap: the previous
    /// lap's item is there (unread, or being moved out by the consumer that claimed it), or
    /// the previous lap's push claimed the slot and is still writing it. Either way the ring is
    /// full at this tail, counting the slot in flight.
    ///
    /// The previous lap's push shows one of two stamps while it writes: an ordinary push
    /// claimed an empty slot, `{ lap: lap - 1, index }`; an evicting `force_push` claimed a
    /// written one, `{ lap: lap - 2, index } + 1`, and has already moved the tail past it.
    #[inline(always)]
    pub(crate) fn held_for_push(&self, stamp: usize, tail: usize) -> bool {
        let ahead = stamp.wrapping_add(self.one_lap);
        // `{ lap: lap - 1, index } + 1` (written), `{ lap: lap - 1, index }` (being written),
        // `{ lap: lap - 2, index } + 1` (being overwritten by an evicting `force_push`).
        ahead == tail.wrapping_add(1)
            || ahead == tail
            || ahead.wrapping_add(self.one_lap) == tail.wrapping_add(1)
    }

    /// Whether a pop at `head` finds its slot still held by the previous lap's consumer, which
    /// claimed the item there and has not finished moving it out: nothing is ready at this
    /// head.
    #[inline(always)]
    pub(crate) fn held_for_pop(&self, stamp: usize, head: usize) -> bool {
        // `{ lap: lap - 1, index } + 1`: written for the previous lap, not yet released.
        stamp.wrapping_add(self.one_lap) == head.wrapping_add(1)
    }

    /// Re-reads `index` (the head or the tail, read earlier as `seen`) when its slot's `stamp`
    /// matches no state the slot can be in at that index, counting the threads in flight.
    ///
    /// * The stamp is *ahead* of `seen`: another operation already moved the index on. The
    ///   stamp was loaded with `Acquire` and written (`Release`) after the index moved, so
    ///   this load cannot return `seen` again: the caller re-reads, it never waits. Debug and
    ///   loom builds check that, so a slot state misread as "stale" (which would turn the
    ///   caller's loop into a spin-wait on a stalled thread) fails loudly.
    /// * The stamp is *behind* every state it can be in: `seen` came from a `Relaxed` load
    ///   that is newer than what this thread has seen of the slot. Reading the index again
    ///   with `Acquire` makes the next stamp load at least as new as the index's last move
    ///   (every claim that moved it saw its slot's previous stamp first), so the slot then
    ///   shows a state the caller knows. This is a re-read, not a wait: no thread's progress
    ///   is needed.
    #[cold]
    pub(crate) fn reload(&self, index: &AtomicUsize, seen: usize, stamp: usize) -> usize {
        // Stamps and indices differ by a few laps at most, so the wrapping difference, read
        // as signed, says which is ahead.
        if (stamp.wrapping_sub(seen) as isize) > 0 {
            let current = index.load(Ordering::Acquire);
            #[cfg(any(debug_assertions, all(feature = "loom", loom)))]
            assert_ne!(
                current, seen,
                "slot stamp {stamp} said the index moved on from {seen}, but it did not: \
                 this would spin (one lap is {})",
                self.one_lap
            );
            current
        } else {
            index.load(Ordering::Acquire)
        }
    }

    /// Pushes `value` if the ring has room.
    ///
    /// Lock-free, and never waits for another thread: if the slot at the tail still belongs
    /// to the previous lap, the push fails at once. That happens when the ring is full, and
    /// also while a consumer that claimed the oldest item has not moved it out yet, or a
    /// producer of the previous lap has not finished writing that slot: see
    /// [the crate docs](crate#what-full-and-none-mean).
    ///
    /// # Errors
    ///
    /// Returns [`Full`] holding `value` if the ring is full, or [closed](Ring::close) (use
    /// [`push_wait`](Ring::push_wait) or [`is_closed`](Ring::is_closed) to tell which).
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(1);
    /// assert_eq!(ring.try_push(10), Ok(()));
    /// let err = ring.try_push(20).unwrap_err();
    /// assert_eq!(err.into_inner(), 20);
    /// # });
    /// ```
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), Full<T>> {
        self.push_impl::<false>(value, usize::MAX)
            .map_err(|e| Full(e.into_inner()))
    }

    /// Pushes `value` only if the ring holds fewer than `limit` items: a backpressure line
    /// below capacity, computed from the same head and tail (no second counter).
    ///
    /// The check is exact at the moment of the push: the tail CAS only succeeds if no other
    /// push happened since the length was read, and pops only shorten the ring, so a
    /// successful call never makes the ring hold more than `limit` items. A `limit` of
    /// `capacity()` or more behaves like [`try_push`](Ring::try_push), and 0 rejects every
    /// value. It reads the head, a line the consumers write, so it costs one cache-line
    /// transfer more than `try_push` under contention.
    ///
    /// # Errors
    ///
    /// Returns [`Full`] holding `value` if the ring holds `limit` or more items (or is full,
    /// in the sense of [`try_push`](Ring::try_push)).
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(10);
    /// let line = ring.capacity() * 8 / 10; // 80 %
    /// for i in 0..line {
    ///     ring.try_push_below(i, line).unwrap();
    /// }
    /// assert_eq!(ring.len(), 8);
    /// assert_eq!(ring.try_push_below(99, line).unwrap_err().into_inner(), 99);
    /// // The ring itself still has room above the line.
    /// assert!(ring.try_push(99).is_ok());
    /// # });
    /// ```
    #[inline]
    pub fn try_push_below(&self, value: T, limit: usize) -> Result<(), Full<T>> {
        self.push_impl::<true>(value, limit)
            .map_err(|e| Full(e.into_inner()))
    }

    /// `try_push` that tells a closed ring from a full one.
    #[inline(always)]
    pub(crate) fn push_impl<const BELOW: bool>(
        &self,
        value: T,
        limit: usize,
    ) -> Result<(), PushError<T>> {
        let mut backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // The slot is empty for this lap.
                if BELOW {
                    // The fill level must come from a (head, tail) pair the ring really had.
                    // `tail` may be a stale or relaxed read, and pops since then would make the
                    // pair look fuller than the ring ever was. So read the tail again, then the
                    // head, then the tail once more, all `SeqCst`: if both tail reads equal our
                    // `tail`, the tail had that value when the head was read.
                    let before = self.tail.load(Ordering::SeqCst);
                    let head = self.head.load(Ordering::SeqCst);
                    let after = self.tail.load(Ordering::SeqCst);
                    if before != tail || after != tail {
                        tail = after;
                        backoff.spin();
                        continue;
                    }
                    if self.distance(head, tail) >= limit {
                        return Err(PushError::Full(value));
                    }
                }
                let new_tail = self.next(tail);
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let waiting = self.pop_waiters();
                        // SAFETY: the CAS from `tail` claimed the slot, whose stamp (Acquire)
                        // said empty at `tail`.
                        unsafe { self.put(slot, tail, value) };
                        self.wake_poppers(waiting, 1);
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if self.held_for_push(stamp, tail) {
                // The slot still belongs to the previous lap: its item is unread (full), or a
                // consumer is moving it out, or a producer is still writing it. We do not wait.
                return Err(PushError::Full(value));
            } else if tail & self.mark_bit != 0 {
                // Closed: the tail will not move again.
                return Err(PushError::Closed(value));
            } else {
                // Our tail is stale: another push already took this slot. Re-read it.
                tail = self.reload(&self.tail, tail, stamp);
            }
        }
    }

    /// Pushes `value`, evicting the oldest item if the ring is full (drop-oldest).
    ///
    /// Always stores `value`. When the ring is full, one CAS on the head claims the oldest
    /// item and `value` takes its slot, which becomes the newest: the eviction and the push are
    /// one linearizable operation (at the head CAS), not a pop followed by a push, so no other
    /// producer can slip in between and take the freed slot. Until the tail is moved a moment
    /// later, [`len`](Ring::len) may read `capacity - 1`.
    ///
    /// # Progress
    ///
    /// Lock-free while the ring has room. On a full ring whose oldest slot is in flight (a
    /// consumer claimed its item and has not moved it out yet, or the producer of the previous
    /// lap has not finished writing it), `force_push` waits for that thread: it spins a few
    /// times, then yields to the scheduler on every retry. This is the one place the ring
    /// waits for another thread (see [the crate docs](crate#progress)).
    ///
    /// The evicted item is returned, not dropped: its drop (user code) runs in the caller,
    /// after the ring is consistent again. On a [closed](Ring::close) ring nothing is stored
    /// and `Some(value)` comes back: the value itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(2);
    /// assert_eq!(ring.force_push(1), None);
    /// assert_eq!(ring.force_push(2), None);
    /// assert_eq!(ring.force_push(3), Some(1));
    /// assert_eq!(ring.try_pop(), Some(2));
    /// assert_eq!(ring.try_pop(), Some(3));
    /// # });
    /// ```
    pub fn force_push(&self, value: T) -> Option<T> {
        let mut backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            let new_tail = self.next(tail);
            if stamp == tail {
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let waiting = self.pop_waiters();
                        // SAFETY: as in `try_push`: the CAS from `tail` claimed the empty slot.
                        unsafe { self.put(slot, tail, value) };
                        self.wake_poppers(waiting, 1);
                        return None;
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                // The slot holds the previous lap's item. If the head still points at it, it
                // is the oldest item and the ring is full: claim it as a consumer would.
                // `{ lap: lap - 1, index }` and the head's next position.
                let head = tail.wrapping_sub(self.one_lap);
                let new_head = new_tail.wrapping_sub(self.one_lap);
                // A strong CAS: a spurious failure would be taken for a consumer holding the
                // slot, and we would wait for nobody.
                if self
                    .head
                    .compare_exchange(head, new_head, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    // We own the slot now as both its consumer and its producer. Producers see
                    // its old stamp and report full (it is), so nobody else moves the tail;
                    // only `close` may set the mark bit meanwhile, which adding (rather than
                    // storing) keeps. The push commits at the head CAS, which a close does not
                    // stop, so it completes even if the ring was closed since we read the tail
                    // (documented on `close`).
                    self.tail
                        .fetch_add(new_tail.wrapping_sub(tail), Ordering::SeqCst);
                    let waiting = self.pop_waiters();
                    // SAFETY: the head CAS gave us the written slot (its stamp, loaded with
                    // Acquire, said written for the previous lap), and no producer can claim it
                    // before the stamp store below.
                    let old = slot.value.with_mut(|cell| unsafe {
                        cell.replace(MaybeUninit::new(value)).assume_init()
                    });
                    // Set to `{ lap, index: index + 1 }`: written for this lap.
                    slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
                    self.wake_poppers(waiting, 1);
                    return Some(old);
                }
                // The head has moved past the item: a consumer (or another evicting push) has
                // claimed it and is moving it out. If the tail has not moved either, wait for
                // that thread to release the slot, yielding: it may be preempted.
                tail = self.reload_or_snooze(tail, &mut backoff);
            } else if self.held_for_push(stamp, tail) {
                // The previous lap's push (or evicting `force_push`) claimed this slot and is
                // still writing it: the ring is full and its oldest item is not there yet.
                // Wait for it, yielding.
                tail = self.reload_or_snooze(tail, &mut backoff);
            } else if tail & self.mark_bit != 0 {
                // Closed: nothing is stored, the value comes back.
                return Some(value);
            } else {
                // Our tail is stale: another push already took this slot. Re-read it.
                tail = self.reload(&self.tail, tail, stamp);
            }
        }
    }

    /// `force_push`'s wait for the thread that holds the oldest slot: re-reads the tail, and
    /// yields (after a few spins) only if it has not moved.
    #[cold]
    fn reload_or_snooze(&self, tail: usize, backoff: &mut Backoff) -> usize {
        let current = self.tail.load(Ordering::Acquire);
        if current == tail {
            backoff.snooze();
        }
        current
    }

    /// Pops the oldest item, if one is ready.
    ///
    /// Lock-free, and never waits for another thread: returns `None` when the ring is empty,
    /// and also while the producer that claimed the next slot has not written it yet, or the
    /// consumer that claimed that slot's item a lap earlier has not moved it out yet (see
    /// [the crate docs](crate#what-full-and-none-mean)).
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(3);
    /// assert_eq!(ring.try_pop(), None);
    /// ring.try_push("x").unwrap();
    /// ring.try_push("y").unwrap();
    /// assert_eq!(ring.try_pop(), Some("x"));
    /// assert_eq!(ring.try_pop(), Some("y"));
    /// assert_eq!(ring.try_pop(), None);
    /// # });
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Option<T> {
        let mut backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                // Written for this lap.
                let new_head = self.next(head);
                match self.head.compare_exchange_weak(
                    head,
                    new_head,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let waiting = self.push_waiters();
                        // SAFETY: the CAS from `head` claimed the slot, whose stamp (Acquire)
                        // said written at `head`.
                        let value = unsafe { self.take(slot, head) };
                        self.wake_pushers(waiting, 1);
                        return Some(value);
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if stamp == head || self.held_for_pop(stamp, head) {
                // Not written for this lap (empty, or a producer is writing it), or the
                // previous lap's consumer is still moving its item out (then nothing after it
                // was pushed either). We do not wait.
                return None;
            } else {
                // Our head is stale: another pop already took this slot. Re-read it.
                head = self.reload(&self.head, head, stamp);
            }
        }
    }

    /// The number of items the ring holds when full.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::<String>::new(7);
    /// assert_eq!(ring.capacity(), 7);
    /// # });
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The number of items in the ring, counting those being pushed or popped right now.
    ///
    /// Under concurrency the answer can be stale as soon as it is returned, but it was true at
    /// one moment: the tail is read again after the head until it has not moved.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(5);
    /// ring.try_push(1).unwrap();
    /// ring.try_push(2).unwrap();
    /// assert_eq!(ring.len(), 2);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            // If the tail did not move, (head, tail) is a snapshot of one moment.
            if self.tail.load(Ordering::SeqCst) == tail {
                return self.distance(head, tail);
            }
        }
    }

    /// Whether the ring holds no items, counting pushes and pops in flight.
    ///
    /// `true` means the head and the tail were equal when the tail was read: no item was
    /// queued, except that an evicting [`force_push`](Ring::force_push) on a full ring holds
    /// one between its eviction and its tail move (on a ring of capacity 1 the ring then looks
    /// empty for that moment, and [`len`](Ring::len) says 0). `false` means that at some
    /// moment during the call a slot was claimed by a push and not yet by a pop; that item may
    /// still be in flight, so a [`try_pop`](Ring::try_pop) right after can return `None`.
    /// Under concurrency either answer can be stale by the time it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(1);
    /// assert!(ring.is_empty());
    /// ring.try_push(()).unwrap();
    /// assert!(!ring.is_empty());
    /// # });
    /// ```
    pub fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst) & !self.mark_bit;
        // The head cannot pass the tail, so if the tail equals the head read before it, the
        // ring was empty when the tail was read. If it differs, the ring was not empty when
        // the head was read (if the tail was ahead then) or when the push that moved the tail
        // past `head` claimed its slot.
        tail == head
    }

    /// Whether the ring is full, counting pushes and pops in flight.
    ///
    /// `true` means the ring was full at the moment the head was read. `false` means it was
    /// not full at some moment during the call. Under concurrency either answer can be stale
    /// by the time it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(1);
    /// assert!(!ring.is_full());
    /// ring.try_push(0u8).unwrap();
    /// assert!(ring.is_full());
    /// # });
    /// ```
    pub fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::SeqCst) & !self.mark_bit;
        let head = self.head.load(Ordering::SeqCst);
        // The head, read after the tail, is a lap behind it only if the ring was full then.
        head.wrapping_add(self.one_lap) == tail
    }

    /// The fill level as a fraction of capacity, from 0.0 (empty) to 1.0 (full).
    ///
    /// Computed from [`len`](Ring::len), so it is exactly as fresh.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(4);
    /// ring.try_push(1).unwrap();
    /// assert_eq!(ring.fill(), 0.25);
    /// # });
    /// ```
    pub fn fill(&self) -> f64 {
        self.len() as f64 / self.cap as f64
    }

    /// The fill level in per-mille of capacity, rounded down: 0 (empty) to 1000 (full).
    ///
    /// Integer-only, for metrics and thresholds that avoid floats.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(3);
    /// ring.try_push(1).unwrap();
    /// assert_eq!(ring.fill_permille(), 333);
    /// ring.try_push(2).unwrap();
    /// ring.try_push(3).unwrap();
    /// assert_eq!(ring.fill_permille(), 1000);
    /// # });
    /// ```
    pub fn fill_permille(&self) -> u32 {
        // `len <= cap`, so the quotient is at most 1000; u128 keeps `len * 1000` exact.
        (self.len() as u128 * 1000 / self.cap as u128) as u32
    }
}

impl<T> Ring<T> {
    /// Closes the ring: every push from now on is refused, with its value handed back. Returns
    /// `true` if this call closed it, `false` if it was closed already.
    ///
    /// Items already in the ring stay there: pops take them as before, and once they are gone
    /// the waiting pops ([`pop_wait`](Ring::pop_wait), [`pop`](Ring::pop)) report
    /// [`PopError::Closed`](crate::PopError::Closed). A push that claimed its slot before the
    /// close still lands. Every waiting caller is woken.
    ///
    /// A [`force_push`](Ring::force_push) that overlaps the close can still store its value
    /// if it evicts: it commits at its CAS on the head, which the close does not stop. Every
    /// other push that returns after `close` returned was refused or had committed before.
    ///
    /// After closing, [`try_push`](Ring::try_push) and [`try_push_below`](Ring::try_push_below)
    /// return [`Full`] (their error type cannot say more; [`is_closed`](Ring::is_closed) or
    /// [`push_wait`](Ring::push_wait) tell the difference), [`force_push`](Ring::force_push)
    /// stores nothing and returns `Some(value)`, and the batch pushes move nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(4);
    /// ring.try_push(1).unwrap();
    /// assert!(ring.close());
    /// assert!(!ring.close());
    /// assert!(ring.is_closed());
    /// assert_eq!(ring.try_push(2).unwrap_err().into_inner(), 2);
    /// assert_eq!(ring.force_push(3), Some(3));
    /// assert_eq!(ring.try_pop(), Some(1)); // what was in the ring still comes out
    /// assert_eq!(ring.try_pop(), None);
    /// # });
    /// ```
    pub fn close(&self) -> bool {
        // After this, no tail CAS (all expect an unmarked tail) succeeds, so the set of
        // pushed items is fixed.
        let before = self.tail.fetch_or(self.mark_bit, Ordering::SeqCst);
        #[cfg(feature = "std")]
        self.waiters.wake_all();
        before & self.mark_bit == 0
    }

    /// Whether [`close`](Ring::close) has been called. Once `true`, it stays `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::<u8>::new(1);
    /// assert!(!ring.is_closed());
    /// ring.close();
    /// assert!(ring.is_closed());
    /// # });
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & self.mark_bit != 0
    }

    /// How many callers wait for an item, read right after a push's claim (its tail CAS). A
    /// non-zero count obliges the push to wake one of them once its slot is written; see
    /// `wait.rs` for why this load, after the CAS, cannot miss a waiter that could sleep.
    #[inline(always)]
    pub(crate) fn pop_waiters(&self) -> usize {
        #[cfg(feature = "std")]
        return self.waiters.pop_waiters.load(Ordering::SeqCst);
        #[cfg(not(feature = "std"))]
        0
    }

    /// How many callers wait for room, read right after a pop's claim (its head CAS).
    #[inline(always)]
    pub(crate) fn push_waiters(&self) -> usize {
        #[cfg(feature = "std")]
        return self.waiters.push_waiters.load(Ordering::SeqCst);
        #[cfg(not(feature = "std"))]
        0
    }

    /// Wakes up to `items` callers waiting for an item, if `waiting` (from `pop_waiters`) says
    /// there are any; call after the items' stamps are stored.
    #[inline(always)]
    pub(crate) fn wake_poppers(&self, waiting: usize, items: usize) {
        #[cfg(feature = "std")]
        if waiting != 0 {
            self.waiters.wake_poppers(items);
        }
        #[cfg(not(feature = "std"))]
        let _ = (waiting, items);
    }

    /// Wakes up to `slots` callers waiting for room, if `waiting` (from `push_waiters`) says
    /// there are any; call after the slots' stamps are stored.
    #[inline(always)]
    pub(crate) fn wake_pushers(&self, waiting: usize, slots: usize) {
        #[cfg(feature = "std")]
        if waiting != 0 {
            self.waiters.wake_pushers(slots);
        }
        #[cfg(not(feature = "std"))]
        let _ = (waiting, slots);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: no operation is in flight, so every slot from head to tail is written.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let left = self.distance(head, tail);
        // Dropping the iterator drops each item once, and keeps going if one drop panics.
        // SAFETY: `&mut self`: no operation is in flight, so this thread owns the `left`
        // written slots from the head to the tail, and takes none of them otherwise.
        drop(unsafe { crate::batch::Taken::new(self, head, left) });
    }
}

impl<T> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .finish_non_exhaustive()
    }
}
