//! Batch operations: many items for one atomic step on a shared index.
//!
//! A single [`try_pop`](Ring::try_pop) pays one CAS on the head and, under contention, one
//! transfer of the head's cache line. [`pop_batch`](Ring::pop_batch) pays them once for up to
//! `max` items:
//!
//! 1. read the head, then the stamps of the slots from the head on, counting how many in a row
//!    are written for their lap (at most `max`, at most the capacity);
//! 2. one CAS moves the head past all `k` of them; if it fails, another consumer moved the
//!    head, and we start over from its new value;
//! 3. move the `k` values out, releasing each slot (its stamp store) before the value is handed
//!    to `out`, so no user code runs while a slot is claimed.
//!
//! [`push_batch`](Ring::push_batch) is the mirror image on the tail: count the empty slots,
//! one CAS, move the values in from the front of a `Vec`.
//!
//! Batches keep every guarantee of the single operations: each item is popped once, items of
//! one producer come out in order, and a batch sees exactly the items a run of single pops at
//! that moment would have seen. Like `try_pop`, a batch never waits: it stops at the first slot
//! that is not ready.
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
use core::mem::MaybeUninit;

use crate::ring::Ring;
use crate::sync::{Backoff, Ordering};

impl<T> Ring<T> {
    /// Pops up to `max` ready items, oldest first, into `out`, claiming them with one CAS on the
    /// head. Returns how many were popped.
    ///
    /// Returns 0 when `max` is 0 or no item is ready (see [`try_pop`](Ring::try_pop) for what
    /// "ready" means while a push is in flight). It takes only the run of ready items at the
    /// head: it never waits, and it never skips a slot.
    ///
    /// `out.extend` receives an iterator that yields exactly the popped items. Each slot is
    /// released before its item is yielded, so if `extend` panics or stops early, the ring stays
    /// consistent and the items it did not take are dropped (each exactly once). An `extend`
    /// that leaks the iterator (`mem::forget`) instead leaves its untaken slots claimed, and
    /// the ring stops at them; no `Extend` in `std` does that.
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
        if max == 0 {
            return 0;
        }
        let mut backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Count the written slots from the head on.
            let first = self.slot(head).stamp.load(Ordering::Acquire);
            if first != head.wrapping_add(1) {
                if first == head || self.held_for_pop(first, head) {
                    // Not written for this lap (empty, or a push is in flight), or the
                    // previous lap's consumer still holds the slot: nothing is ready.
                    return 0;
                }
                // Our head is stale. Re-read it.
                head = self.reload(&self.head, head, first);
                continue;
            }
            let mut count = 1;
            let mut end = self.next(head);
            while count < max {
                // A slot a whole lap ahead of the head fails this check, so `count <= cap`.
                if self.slot(end).stamp.load(Ordering::Acquire) != end.wrapping_add(1) {
                    break;
                }
                count += 1;
                end = self.next(end);
            }
            match self
                .head
                .compare_exchange_weak(head, end, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    // The head did not move since we read it, so no consumer took any of the
                    // `count` slots we saw written: they are ours.
                    out.extend(Taken::new(self, head, count));
                    return count;
                }
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Moves as many items as fit from the front of `items` into the ring, claiming their
    /// slots with one CAS on the tail, and returns how many it moved.
    ///
    /// The moved items are removed from `items`; the rest stay there, in order, for a later
    /// call. It moves nothing only if `items` is empty or the ring is full (in the sense of
    /// [`try_push`](Ring::try_push)). The items keep their order in the ring. Taking a `Vec`
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
        let max = items.len();
        if max == 0 {
            return 0;
        }
        let mut backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            // Count the empty slots from the tail on.
            let first = self.slot(tail).stamp.load(Ordering::Acquire);
            if first != tail {
                if self.held_for_push(first, tail) {
                    // The previous lap still holds the slot: full.
                    return 0;
                }
                // Our tail is stale. Re-read it.
                tail = self.reload(&self.tail, tail, first);
                continue;
            }
            let mut count = 1;
            let mut end = self.next(tail);
            while count < max {
                // A slot a whole lap ahead of the tail fails this check, so `count <= cap`.
                if self.slot(end).stamp.load(Ordering::Acquire) != end {
                    break;
                }
                count += 1;
                end = self.next(end);
            }
            match self
                .tail
                .compare_exchange_weak(tail, end, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    // The tail did not move since we read it, so the `count` slots we saw empty
                    // are ours. `drain` yields exactly `count` items and runs no user code.
                    let mut position = tail;
                    for value in items.drain(..count) {
                        let slot = self.slot(position);
                        // SAFETY: the CAS gave us this empty slot; its stamp (Acquire) ordered
                        // us after the consumer that emptied it.
                        slot.value
                            .with_mut(|cell| unsafe { cell.write(MaybeUninit::new(value)) });
                        // Set to `{ lap, index: index + 1 }`: written.
                        slot.stamp
                            .store(position.wrapping_add(1), Ordering::Release);
                        position = self.next(position);
                    }
                    return count;
                }
                Err(current) => {
                    tail = current;
                    backoff.spin();
                }
            }
        }
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
    /// `left` written slots from `position` on, claimed by the caller (a head CAS, or
    /// `&mut Ring` in `Drop`).
    pub(crate) fn new(ring: &'a Ring<T>, position: usize, left: usize) -> Self {
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
        let slot = self.ring.slot(position);
        // SAFETY: this slot is one of the claimed, written slots (`left > 0`), and each is
        // taken once because `position` moves on below.
        let value = slot
            .value
            .with_mut(|cell| unsafe { cell.read().assume_init() });
        // Set to `{ lap: lap + 1, index }`: empty for the next lap.
        slot.stamp
            .store(position.wrapping_add(self.ring.one_lap), Ordering::Release);
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
