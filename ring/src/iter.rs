//! Iterators that pop: [`TryIter`] over a shared ring, [`IntoIter`] over an owned one.

use core::fmt;
use core::iter::FusedIterator;

use crate::ring::Ring;
use crate::sync::Ordering;

impl<T> Ring<T> {
    /// An iterator that pops ready items, oldest first, until [`try_pop`](Ring::try_pop)
    /// returns `None`.
    ///
    /// Each `next` is one `try_pop`, so the iterator never waits, and it ends at the first slot
    /// that is not ready (see [the crate docs](crate#what-full-and-none-mean)). Items pushed
    /// after it ended are not seen; call `try_iter` again for them.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(4);
    /// ring.push_slice(&[1, 2, 3]);
    /// let sum: i32 = ring.try_iter().sum();
    /// assert_eq!(sum, 6);
    /// assert!(ring.is_empty());
    /// # });
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter {
            ring: self,
            done: false,
        }
    }

    /// Pops and drops every ready item; returns how many it dropped.
    ///
    /// Like [`try_iter`](Ring::try_iter), it stops at the first slot that is not ready, so
    /// under concurrency an item in flight (and those behind it) can remain. Each item is
    /// dropped after its slot is released, so a `Drop` that pushes into this ring is fine.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(4);
    /// ring.try_push(String::from("a")).unwrap();
    /// ring.try_push(String::from("b")).unwrap();
    /// assert_eq!(ring.clear(), 2);
    /// assert!(ring.is_empty());
    /// # });
    /// ```
    pub fn clear(&self) -> usize {
        self.try_iter().map(drop).count()
    }

    /// The oldest item, without popping it.
    ///
    /// It takes `&mut self`: with the ring shared, another consumer could pop the item (and
    /// move it out) while the reference lives, so a shared `peek` cannot be sound. Through
    /// `&mut`, no operation is in flight, and the item at the head is the oldest one.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let mut ring = Ring::new(2);
    /// assert_eq!(ring.peek(), None);
    /// ring.try_push("a").unwrap();
    /// ring.try_push("b").unwrap();
    /// assert_eq!(ring.peek(), Some(&"a"));
    /// assert_eq!(ring.try_pop(), Some("a"));
    /// assert_eq!(ring.peek(), Some(&"b"));
    /// # });
    /// ```
    pub fn peek(&mut self) -> Option<&T> {
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        if slot.stamp.load(Ordering::Relaxed) != head.wrapping_add(1) {
            return None;
        }
        // SAFETY: `&mut self` excludes every other operation, so no thread is between a
        // claim and its stamp store: the stamp saying "written for this lap" at the head
        // means the value is initialised, and nothing can move it out while the returned
        // borrow (tied to `&mut self`) lives.
        Some(
            slot.value
                .with_mut(|cell| unsafe { (*cell).assume_init_ref() }),
        )
    }
}

/// Pops ready items from a shared ring; see [`Ring::try_iter`].
///
/// Once it has returned `None` it stays empty (it is fused), even if items arrive later.
pub struct TryIter<'a, T> {
    ring: &'a Ring<T>,
    done: bool,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        let item = self.ring.try_pop();
        self.done = item.is_none();
        item
    }
}

impl<T> FusedIterator for TryIter<'_, T> {}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter")
            .field("ring", self.ring)
            .finish_non_exhaustive()
    }
}

/// Pops every item of an owned ring, oldest first; see [`Ring`]'s `IntoIterator`.
pub struct IntoIter<T> {
    ring: Ring<T>,
}

impl<T> IntoIterator for Ring<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    /// Yields every item the ring holds, oldest first. No other thread can hold the ring, so
    /// nothing is in flight and every item comes out.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(3);
    /// ring.push_slice(&['a', 'b']);
    /// assert_eq!(ring.into_iter().collect::<String>(), "ab");
    /// # });
    /// ```
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { ring: self }
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.ring.try_pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.ring.len();
        (len, Some(len))
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> FusedIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("len", &self.ring.len())
            .finish_non_exhaustive()
    }
}
