//! [`Full`]: the error of a push that found no room, carrying the value back.

use core::fmt;

/// The ring had no room (or was at the caller's limit); the value is handed back.
///
/// `Debug` does not print the value, so `Full<T>` is an [`Error`](core::error::Error) for every
/// `T`, like crossbeam's `SendError`.
///
/// # Examples
///
/// ```
/// # slotline_ring::__doctest(|| {
/// use slotline_ring::{Full, Ring};
///
/// let ring = Ring::new(1);
/// ring.try_push(1).unwrap();
/// let err: Full<i32> = ring.try_push(2).unwrap_err();
/// assert_eq!(err.to_string(), "ring is full");
/// assert_eq!(format!("{err:?}"), "Full(..)");
/// assert_eq!(err, Full(2));
/// assert_eq!(err.into_inner(), 2);
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// Returns the value that could not be pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use slotline_ring::Full;
    ///
    /// assert_eq!(Full("op").into_inner(), "op");
    /// # });
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is full")
    }
}

impl<T> core::error::Error for Full<T> {}
