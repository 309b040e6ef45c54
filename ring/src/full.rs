//! The errors: [`Full`] (no room, the value handed back), [`PushError`] (full or closed, the
//! value handed back) and [`PopError`] (timed out or closed and drained).

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

/// Why a push that knows about [closing](crate::Ring::close) did not store its value; the
/// value is handed back either way.
///
/// `Debug` does not print the value, so `PushError<T>` is an [`Error`](core::error::Error) for
/// every `T`.
///
/// # Examples
///
/// ```
/// # slotline_ring::__doctest(|| {
/// use std::time::Duration;
/// use slotline_ring::{PushError, Ring};
///
/// let ring = Ring::new(1);
/// ring.try_push(1).unwrap();
/// assert_eq!(ring.push_wait(2, Duration::ZERO), Err(PushError::Full(2)));
/// ring.close();
/// let err = ring.push_wait(3, Duration::ZERO).unwrap_err();
/// assert_eq!(err.to_string(), "ring is closed");
/// assert_eq!(err.into_inner(), 3);
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushError<T> {
    /// The ring had no room (for [`push_wait`](crate::Ring::push_wait): until the timeout).
    Full(T),
    /// The ring is closed: it accepts no more items.
    Closed(T),
}

impl<T> PushError<T> {
    /// Returns the value that could not be pushed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Closed(value) => value,
        }
    }

    /// Whether the push failed because the ring is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("ring is full"),
            Self::Closed(_) => f.write_str("ring is closed"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

/// Why a waiting pop returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PopError {
    /// No item arrived before the timeout.
    Timeout,
    /// The ring is closed and every item has been popped.
    Closed,
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out waiting for an item"),
            Self::Closed => f.write_str("ring is closed and empty"),
        }
    }
}

impl core::error::Error for PopError {}
