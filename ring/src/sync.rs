//! The one place the ring takes its synchronisation primitives from.
//!
//! With the `loom` feature *and* `--cfg loom` every atomic, cell, spin hint and yield is
//! loom's, so a model can explore every interleaving and check every access to a slot's value;
//! otherwise they are the standard library's (or `core`'s), wrapped to keep loom's shape: an
//! [`UnsafeCell`] with `with_mut` closures. Requiring both keeps a stray `loom` feature (from
//! `--all-features`, or unified in by a dependent) harmless: loom's atomics panic outside a
//! model, and they never reach a build that did not ask for them with `--cfg loom`. The ring's code imports only from here, never from `core::sync` or
//! `loom` directly, so the code that is model-checked is the code that ships.
//!
//! [`Backoff`] lives here too because it spins and yields: crossbeam-utils' `Backoff` calls the
//! real `spin_loop`/`yield_now`, which loom cannot see, so a loom model waiting in it would
//! never let the thread it waits for run.

pub(crate) use core::sync::atomic::Ordering;

pub(crate) use self::inner::{spin_loop, yield_now, AtomicUsize, UnsafeCell};

#[cfg(all(feature = "loom", loom))]
mod inner {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::thread::yield_now;

    use super::Ordering;

    /// loom's `AtomicUsize`, plus a shadow counter that every access bumps first.
    ///
    /// loom's partial-order reduction remembers only the *last* access to each atomic, so when
    /// one thread loads X and another thread then loads and stores X, the race between the
    /// first load and the store is forgotten and that interleaving is never explored
    /// (tokio-rs/loom#392, #166; a ring's "load stamp, CAS, store stamp" is exactly this
    /// shape). A `Relaxed` RMW on the shadow before each access makes every pair of accesses to
    /// the same atomic dependent, so loom explores their orders. Relaxed RMWs create no
    /// happens-before edge, so the model still catches missing `Release`/`Acquire` pairs, and
    /// the real load still may return any value the memory model allows.
    #[derive(Debug)]
    pub(crate) struct AtomicUsize {
        shadow: loom::sync::atomic::AtomicUsize,
        value: loom::sync::atomic::AtomicUsize,
    }

    impl AtomicUsize {
        pub(crate) fn new(value: usize) -> Self {
            Self {
                shadow: loom::sync::atomic::AtomicUsize::new(0),
                value: loom::sync::atomic::AtomicUsize::new(value),
            }
        }

        fn touch(&self) {
            self.shadow.fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn load(&self, order: Ordering) -> usize {
            self.touch();
            self.value.load(order)
        }

        pub(crate) fn store(&self, value: usize, order: Ordering) {
            self.touch();
            self.value.store(value, order);
        }

        pub(crate) fn compare_exchange(
            &self,
            current: usize,
            new: usize,
            success: Ordering,
            failure: Ordering,
        ) -> Result<usize, usize> {
            self.touch();
            self.value.compare_exchange(current, new, success, failure)
        }

        pub(crate) fn fetch_add(&self, value: usize, order: Ordering) -> usize {
            self.touch();
            self.value.fetch_add(value, order)
        }

        pub(crate) fn fetch_sub(&self, value: usize, order: Ordering) -> usize {
            self.touch();
            self.value.fetch_sub(value, order)
        }

        pub(crate) fn fetch_or(&self, value: usize, order: Ordering) -> usize {
            self.touch();
            self.value.fetch_or(value, order)
        }

        pub(crate) fn compare_exchange_weak(
            &self,
            current: usize,
            new: usize,
            success: Ordering,
            failure: Ordering,
        ) -> Result<usize, usize> {
            self.touch();
            self.value
                .compare_exchange_weak(current, new, success, failure)
        }
    }
}

#[cfg(not(all(feature = "loom", loom)))]
mod inner {
    pub(crate) use core::hint::spin_loop;
    pub(crate) use core::sync::atomic::AtomicUsize;

    /// `core::cell::UnsafeCell` with loom's closure API, so both builds share one code shape.
    #[derive(Debug)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a raw pointer to the value; the caller's protocol must make the access
        /// exclusive (loom checks that it is, in the models).
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Lets the OS run another thread: the thread we wait for may be preempted.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn yield_now() {
        std::thread::yield_now();
    }

    /// Without `std` there is no scheduler to yield to; spin instead.
    #[cfg(not(feature = "std"))]
    #[inline]
    pub(crate) fn yield_now() {
        core::hint::spin_loop();
    }
}

/// Exponential backoff: spin after a lost CAS, snooze while waiting for another thread.
///
/// `spin` means "someone else won, retry soon": it busy-waits `2^step` hints, capped, and never
/// yields. `snooze` means "we are waiting for another thread to finish a step" (here: only
/// `force_push` waiting for a consumer that claimed the oldest item to move it out): it spins
/// a little, then yields the CPU, because on an oversubscribed machine the thread we wait for
/// is usually preempted and spinning only delays it.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spins up to `2^SPIN_LIMIT` hints per call.
    const SPIN_LIMIT: u32 = 4;
    /// `snooze` starts yielding after this many steps.
    const YIELD_AFTER: u32 = 3;

    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Self { step: 0 }
    }

    /// Backs off after losing a race for a shared index.
    #[inline]
    pub(crate) fn spin(&mut self) {
        #[cfg(all(feature = "loom", loom))]
        spin_loop();
        #[cfg(not(all(feature = "loom", loom)))]
        for _ in 0..1u32 << self.step.min(Self::SPIN_LIMIT) {
            spin_loop();
        }
        if self.step <= Self::SPIN_LIMIT {
            self.step += 1;
        }
    }

    /// Backs off while waiting for another thread to finish its step on a slot.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        if cfg!(all(feature = "loom", loom)) || self.step >= Self::YIELD_AFTER {
            yield_now();
        } else {
            for _ in 0..1u32 << self.step {
                spin_loop();
            }
            self.step += 1;
        }
    }
}
