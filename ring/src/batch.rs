//! Batch operations: many items for one atomic step on a shared index.
//!
//! A single [`try_pop`](Ring::try_pop) pays one CAS on the head and, under contention, one
//! transfer of the head's cache line. [`pop_batch`](Ring::pop_batch) pays them once for up to
//! `max` items:
//!
//! 1. read the head, then the stamps of the slots from the head on, counting how many in a row
//!    are written for their lap (at most a stack chunk's worth, at most `max`, at most the
//!    capacity);
//! 2. one CAS moves the head past all `k` of them; if it fails, another consumer moved the
//!    head, and we start over from its new value;
//! 3. move the `k` values into a fixed-size chunk on the stack, releasing each slot (its stamp
//!    store) as it is emptied (a single item skips the chunk: it is moved out and its slot
//!    released the same way);
//! 4. only then hand the chunk to `out.extend`: no user code runs while a slot is claimed, so a
//!    slow or re-entrant `Extend` (one that pushes into the same ring, say) delays nobody.
//!
//! The chunk holds 64 items of up to 64 bytes, and fewer of larger items (about 4 KiB of
//! stack); a larger `max` is served chunk after chunk, one CAS each.
//!
//! [`push_batch`](Ring::push_batch) and [`push_slice`](Ring::push_slice) are the mirror image
//! on the tail: count the empty slots, one CAS, move the values in from the front of a `Vec`
//! (or copy them from a slice of `Copy` items). Neither runs user code while slots are claimed:
//! moving items out of a `Vec` and copying `Copy` values cannot panic or call back. There is no
//! push from an arbitrary iterator for that reason: its `next` is user code, and it cannot
//! take back an item that did not fit.
//!
//! Batches keep every guarantee of the single operations: each item is popped once, items of
//! one producer come out in order, and a batch sees exactly the items a run of single pops at
//! that moment would have seen. Like `try_pop`, a batch never waits: it stops at the first slot
//! that is not ready (or full), including a slot still held by a thread of the previous lap.
//!
//! ```
//! # slotline_ring::__doctest(|| {
//! use slotline_ring::Ring;
//!
//! let ring = Ring::new(8);
//! let mut items = vec![1, 2, 3, 4, 5];
//! assert_eq!(ring.push_batch(&mut items), 5);
//! assert!(items.is_empty());
//!
//! let mut out = Vec::new();
//! assert_eq!(ring.pop_batch(3, &mut out), 3);
//! assert_eq!(ring.pop_batch(64, &mut out), 2);
//! assert_eq!(out, [1, 2, 3, 4, 5]);
//! # });
//! ```

use alloc::vec::Vec;
use core::iter::FusedIterator;
use core::mem::{self, MaybeUninit};
use core::ptr;

use crate::ring::{Ring, Slot};
use crate::sync::{Backoff, Ordering};

impl<T> Ring<T> {
    /// Pops up to `max` ready items, oldest first, into `out`, and returns how many it popped.
    ///
    /// Returns 0 when `max` is 0 or no item is ready (see [`try_pop`](Ring::try_pop) for what
    /// "ready" means while a push is in flight). It takes only the run of ready items at the
    /// head: it never waits, and it never skips a slot. One call pops at most `capacity()`
    /// items, so it returns even while producers keep refilling the ring.
    ///
    /// Items are claimed with one CAS on the head per chunk (64 items of up to 64 bytes; fewer,
    /// larger items per chunk), moved into that chunk on the stack (or, for a single item,
    /// simply moved out), and their slots released, before `out.extend` sees them. So `extend`
    /// runs no code while the ring waits on it: it may be slow, panic, or push into this same
    /// ring. If it panics, the items of that chunk it did not take are dropped (each exactly
    /// once) and the ring is unaffected.
    ///
    /// # Polling consumers
    ///
    /// A consumer that calls `pop_batch` in a busy loop and takes every item the moment it is
    /// published keeps the ring nearly empty. It then reads each slot just after the producer
    /// wrote it, and the cache line holding it passes between the two cores every few items,
    /// which slows the producer down. Where a few microseconds of latency are acceptable,
    /// pausing briefly after a short batch (say a few dozen [`core::hint::spin_loop`] calls
    /// when fewer than 8 items came back) keeps the consumer a cache line or more behind and
    /// moves more items per second.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(100);
    /// for i in 0..10 {
    ///     ring.try_push(i).unwrap();
    /// }
    /// let mut batch = Vec::with_capacity(4);
    /// assert_eq!(ring.pop_batch(4, &mut batch), 4);
    /// assert_eq!(batch, [0, 1, 2, 3]);
    /// assert_eq!(ring.len(), 6);
    /// # });
    /// ```
    pub fn pop_batch<E: Extend<T>>(&self, max: usize, out: &mut E) -> usize {
        // Size classes keep the chunk on the stack near 4 KiB; the branches fold at compile
        // time.
        let size = mem::size_of::<T>();
        if size <= 64 {
            self.pop_chunks::<64, E>(max, out)
        } else if size <= 256 {
            self.pop_chunks::<16, E>(max, out)
        } else if size <= 1024 {
            self.pop_chunks::<4, E>(max, out)
        } else {
            self.pop_chunks::<1, E>(max, out)
        }
    }

    fn pop_chunks<const N: usize, E: Extend<T>>(&self, max: usize, out: &mut E) -> usize {
        let max = max.min(self.cap);
        let mut total = 0;
        while total < max {
            let want = N.min(max - total);
            let Some((head, count)) = self.claim_ready(want) else {
                break;
            };
            let waiting = self.push_waiters();
            if count == 1 {
                // One item (a consumer at its producer's heels): no chunk to fill and empty.
                // SAFETY: `claim_ready`'s head CAS claimed the one written slot at `head`.
                let value = unsafe { self.take(self.slot(head), head) };
                total += 1;
                self.wake_pushers(waiting, 1);
                // The slot is released: user code may run now.
                out.extend(core::iter::once(value));
                if want > 1 {
                    break;
                }
                continue;
            }
            self.hand_over_run::<N, E>(head, count, waiting, out);
            total += count;
            if count < want {
                // The slot after the run was not ready; do not go round again.
                break;
            }
        }
        total
    }

    /// Moves the `count` (2 to `N`) written slots from `head` on, claimed by `claim_ready`,
    /// into a chunk on the stack, releases them, then hands the chunk to `out`. Out of line,
    /// so that the chunk's stack frame is not set up for every call that finds one item.
    #[inline(never)]
    fn hand_over_run<const N: usize, E: Extend<T>>(
        &self,
        head: usize,
        count: usize,
        waiting: usize,
        out: &mut E,
    ) {
        let mut chunk = Chunk::<T, N>::new();
        // `claim_ready` claimed at most `N` slots: this slicing cannot fail.
        let dst = &mut chunk.items[..count];
        self.each_run(head, count, |position, slots, offset| {
            let dst = &mut dst[offset..offset + slots.len()];
            for (k, (slot, dst)) in slots.iter().zip(dst).enumerate() {
                // SAFETY: the head CAS in `claim_ready` claimed the `count` written slots from
                // `head` on (their stamps were loaded with Acquire), and `each_run` visits each
                // once, at its own position.
                dst.write(unsafe { self.take(slot, position.wrapping_add(k)) });
            }
        });
        // `items[..count]` are initialised now.
        chunk.len = count;
        self.wake_pushers(waiting, count);
        // Every slot is released: user code may run now. Items `extend` does not take are
        // dropped with the chunk.
        out.extend(&mut chunk);
    }

    /// Claims the run of written slots at the head, at most `max` (>= 1) and at most the
    /// capacity, with one CAS. Returns the old head and the run's length, or `None` if the
    /// slot at the head is not ready.
    #[inline]
    fn claim_ready(&self, max: usize) -> Option<(usize, usize)> {
        debug_assert!(max >= 1);
        let mut backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let first = self.slot(head).stamp.load(Ordering::Acquire);
            if first != head.wrapping_add(1) {
                if first == head || self.held_for_pop(first, head) {
                    // Not written for this lap (empty, or a push is in flight), or the
                    // previous lap's consumer still holds the slot: nothing is ready.
                    return None;
                }
                // Our head is stale. Re-read it.
                head = self.reload(&self.head, head, first);
                continue;
            }
            // Count the written slots from the head on, stopping at the capacity: the
            // stamps are read at different moments, and a slot one lap on could pass the
            // check if the head moved in between (the CAS would then fail anyway).
            let limit = max.min(self.cap);
            // The slot after the head first, on its own: a consumer at its producer's heels
            // finds it not ready and should pay no more than that one look.
            let mut count = 1;
            if limit > 1 {
                let second = self.next(head);
                if self.slot(second).stamp.load(Ordering::Acquire) == second.wrapping_add(1) {
                    count = 2 + self.run_of(self.next(second), limit - 2, 1);
                }
            }
            let end = self.advance(head, count);
            match self
                .head
                .compare_exchange_weak(head, end, Ordering::SeqCst, Ordering::Relaxed)
            {
                // The head did not move since we read it, so no consumer took any of the
                // `count` slots we saw written: they are ours.
                Ok(_) => return Some((head, count)),
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Claims the run of empty slots at the tail, at most `max` (>= 1) and at most the
    /// capacity, with one CAS. Returns the old tail and the run's length, or `None` if the
    /// ring is full (in the sense of [`try_push`](Ring::try_push)).
    #[inline]
    fn claim_empty(&self, max: usize) -> Option<(usize, usize)> {
        debug_assert!(max >= 1);
        let mut backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            let first = self.slot(tail).stamp.load(Ordering::Acquire);
            if first != tail {
                if self.held_for_push(first, tail) || tail & self.mark_bit != 0 {
                    // The previous lap still holds the slot (full), or the ring is closed.
                    return None;
                }
                // Our tail is stale. Re-read it.
                tail = self.reload(&self.tail, tail, first);
                continue;
            }
            // Count the empty slots from the tail on, stopping at the capacity (see
            // `claim_ready`).
            let limit = max.min(self.cap);
            let count = 1 + self.run_of(self.next(tail), limit - 1, 0);
            let end = self.advance(tail, count);
            match self
                .tail
                .compare_exchange_weak(tail, end, Ordering::SeqCst, Ordering::Acquire)
            {
                // The tail did not move since we read it, so the `count` slots we saw empty
                // are ours.
                Ok(_) => return Some((tail, count)),
                Err(current) => {
                    tail = current;
                    backoff.spin();
                }
            }
        }
    }

    /// The position `n` (at most the capacity) after `position`: `next` applied `n` times.
    #[inline(always)]
    fn advance(&self, position: usize, n: usize) -> usize {
        debug_assert!(n <= self.cap);
        let index = self.index(position);
        if index + n < self.cap {
            // `{ lap, index: index + n }`.
            position + n
        } else {
            // `{ lap: lap + 1, index: index + n - cap }`.
            self.lap_start_after(position)
                .wrapping_add(index + n - self.cap)
        }
    }

    /// `{ lap: lap + 1, index: 0 }` for a position `{ lap, index }`.
    #[inline(always)]
    fn lap_start_after(&self, position: usize) -> usize {
        (position & !(self.one_lap - 1)).wrapping_add(self.one_lap)
    }

    /// Calls `f(position, slots, offset)` for the at most two runs of adjacent slots (before
    /// and after the wrap) that the `count` (at most the capacity) positions from `start` on
    /// occupy: `position` is the run's first position, `offset` how many positions precede
    /// the run. Callers walk each run as a slice zipped with their items: no per-slot wrap
    /// test, and one bounds check per run at most.
    #[inline(always)]
    fn each_run(&self, start: usize, count: usize, mut f: impl FnMut(usize, &[Slot<T>], usize)) {
        debug_assert!(count <= self.cap);
        let index = self.index(start);
        let first = count.min(self.cap - index);
        f(start, &self.buffer[index..index + first], 0);
        if first < count {
            f(
                self.lap_start_after(start),
                &self.buffer[..count - first],
                first,
            );
        }
    }

    /// How many slots in a row from `start` on (at most `limit`, itself at most the
    /// capacity) have the stamp `position + delta`: empty for a push at that position
    /// (`delta` 0) or written for a pop there (`delta` 1). Stops at the first that does not.
    #[inline(always)]
    fn run_of(&self, start: usize, limit: usize, delta: usize) -> usize {
        debug_assert!(limit <= self.cap);
        let index = self.index(start);
        let first = limit.min(self.cap - index);
        let n = run_in(
            &self.buffer[index..index + first],
            start.wrapping_add(delta),
        );
        if n < first {
            return n;
        }
        let wrapped = self.lap_start_after(start);
        first + run_in(&self.buffer[..limit - first], wrapped.wrapping_add(delta))
    }

    /// Moves as many items as fit from the front of `items` into the ring, claiming their
    /// slots with one CAS on the tail, and returns how many it moved.
    ///
    /// The moved items are removed from `items`; the rest stay there, in order, for a later
    /// call. It moves nothing only if `items` is empty, the ring is full (in the sense of
    /// [`try_push`](Ring::try_push)) or it is [closed](Ring::close). The items keep their order in the ring. Taking a `Vec`
    /// keeps user code out of the claimed window: moving items out of a `Vec` cannot panic.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(3);
    /// let mut items = vec!['a', 'b', 'c', 'd'];
    /// assert_eq!(ring.push_batch(&mut items), 3);
    /// assert_eq!(items, ['d']);
    /// assert_eq!(ring.push_batch(&mut items), 0);
    /// assert_eq!(ring.try_pop(), Some('a'));
    /// assert_eq!(ring.push_batch(&mut items), 1);
    /// assert!(items.is_empty());
    /// # });
    /// ```
    pub fn push_batch(&self, items: &mut Vec<T>) -> usize {
        if items.is_empty() {
            return 0;
        }
        let Some((tail, count)) = self.claim_empty(items.len()) else {
            return 0;
        };
        let waiting = self.pop_waiters();
        // `drain` yields exactly `count` items and runs no user code.
        let mut values = items.drain(..count);
        self.each_run(tail, count, |position, slots, _| {
            // Slots first: `Zip` stops when they run out without taking one more value,
            // which would be lost at the wrap.
            for (k, (slot, value)) in slots.iter().zip(values.by_ref()).enumerate() {
                // SAFETY: the tail CAS in `claim_empty` claimed the `count` empty slots from
                // `tail` on (their stamps were loaded with Acquire), and `each_run` visits each
                // once, at its own position.
                unsafe { self.put(slot, position.wrapping_add(k), value) };
            }
        });
        self.wake_poppers(waiting, count);
        count
    }

    /// Copies as many items as fit from the front of `items` into the ring, claiming their
    /// slots with one CAS on the tail, and returns how many it copied.
    ///
    /// The slice form of [`push_batch`](Ring::push_batch), for `Copy` items (copying runs no
    /// user code while the slots are claimed). Push `&items[n..]` later to send the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(4);
    /// let items = [1, 2, 3, 4, 5, 6];
    /// let n = ring.push_slice(&items);
    /// assert_eq!(n, 4);
    /// assert_eq!(ring.try_pop(), Some(1));
    /// assert_eq!(ring.push_slice(&items[n..]), 1);
    /// # });
    /// ```
    pub fn push_slice(&self, items: &[T]) -> usize
    where
        T: Copy,
    {
        if items.is_empty() {
            return 0;
        }
        let Some((tail, count)) = self.claim_empty(items.len()) else {
            return 0;
        };
        let waiting = self.pop_waiters();
        self.each_run(tail, count, |position, slots, offset| {
            let values = &items[offset..offset + slots.len()];
            for (k, (slot, &value)) in slots.iter().zip(values).enumerate() {
                // SAFETY: the tail CAS in `claim_empty` claimed the `count` empty slots from
                // `tail` on (their stamps were loaded with Acquire), and `each_run` visits each
                // once, at its own position.
                unsafe { self.put(slot, position.wrapping_add(k), value) };
            }
        });
        self.wake_poppers(waiting, count);
        count
    }
}

/// How many slots in a row from the start of `slots` have the stamps `expect`, `expect + 1`,
/// and so on. Four stamps are compared per step with one branch, then the rest one by one: a
/// group that fails is loaded again slot by slot, so up to seven loads go past the end of the
/// run (atomic loads inside `slots`, which nothing claims by reading). Out of line: a consumer
/// at its producer's heels never gets here, and its path stays short.
#[inline(never)]
fn run_in<T>(slots: &[Slot<T>], expect: usize) -> usize {
    let mut n = 0;
    for quad in slots.chunks_exact(4) {
        let e = expect.wrapping_add(n);
        let stamp = |k: usize| quad[k].stamp.load(Ordering::Acquire) ^ e.wrapping_add(k);
        if stamp(0) | stamp(1) | stamp(2) | stamp(3) != 0 {
            break;
        }
        n += 4;
    }
    for slot in &slots[n..] {
        if slot.stamp.load(Ordering::Acquire) != expect.wrapping_add(n) {
            break;
        }
        n += 1;
    }
    n
}

/// Up to `N` items moved out of claimed slots, handed to the caller after the slots are
/// released. Dropping it drops the items not taken, each once, even if one drop panics.
struct Chunk<T, const N: usize> {
    items: [MaybeUninit<T>; N],
    /// `items[next..len]` are initialised and not yet yielded.
    next: usize,
    len: usize,
}

impl<T, const N: usize> Chunk<T, N> {
    #[inline(always)]
    fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; N],
            next: 0,
            len: 0,
        }
    }
}

impl<T, const N: usize> Iterator for Chunk<T, N> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.len {
            return None;
        }
        let at = self.next;
        self.next += 1;
        // SAFETY: `items[at]` exists and is initialised (`at < len <= N`), and is not yielded
        // yet; `next` moved past it, so it is read once.
        Some(unsafe { self.items.get_unchecked(at).assume_init_read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.next;
        (left, Some(left))
    }
}

impl<T, const N: usize> ExactSizeIterator for Chunk<T, N> {}

impl<T, const N: usize> FusedIterator for Chunk<T, N> {}

impl<T, const N: usize> Drop for Chunk<T, N> {
    fn drop(&mut self) {
        if !mem::needs_drop::<T>() || self.next == self.len {
            return;
        }
        let left = &mut self.items[self.next..self.len];
        self.next = self.len;
        // SAFETY: `left` holds the initialised items not yet yielded, and `next` now says they
        // are gone, so they are dropped once. `drop_in_place` on a slice keeps dropping the
        // others if one drop panics.
        unsafe { ptr::drop_in_place(left as *mut [MaybeUninit<T>] as *mut [T]) };
    }
}

/// The items of claimed, written slots, moved out one by one.
///
/// Each `next` moves a value out and releases its slot before returning it. Dropping the
/// iterator moves out and drops whatever is left, so claimed slots are always released.
pub(crate) struct Taken<'a, T> {
    ring: &'a Ring<T>,
    /// Head stamp of the next slot to take.
    position: usize,
    /// How many claimed slots are left.
    left: usize,
}

impl<'a, T> Taken<'a, T> {
    /// The `left` written slots from `position` on.
    ///
    /// # Safety
    ///
    /// The caller owns those slots as their only consumer, as [`Ring::take`] requires of each
    /// (a head CAS past them, or the ring held by `&mut` with the slots between the head and
    /// the tail), and takes none of them itself.
    pub(crate) unsafe fn new(ring: &'a Ring<T>, position: usize, left: usize) -> Self {
        Self {
            ring,
            position,
            left,
        }
    }
}

impl<T> Iterator for Taken<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        let position = self.position;
        // SAFETY: this slot is one of the `left > 0` written slots from `position` on whose
        // ownership `Taken::new`'s caller handed over, and each is taken once because
        // `position` moves on below.
        let value = unsafe { self.ring.take(self.ring.slot(position), position) };
        self.position = self.ring.next(position);
        self.left -= 1;
        Some(value)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Taken<'_, T> {}

impl<T> FusedIterator for Taken<'_, T> {}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        /// Keeps dropping the rest if one item's drop panics.
        struct Rest<'r, 'a, T>(&'r mut Taken<'a, T>);

        impl<T> Drop for Rest<'_, '_, T> {
            fn drop(&mut self) {
                self.0.for_each(drop);
            }
        }

        if self.left > 0 {
            let rest = Rest(self);
            rest.0.for_each(drop);
        }
    }
}
