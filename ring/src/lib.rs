//! A bounded multi-producer multi-consumer ring with fixed memory, drop-oldest, batch
//! operations and fill-level watermarks.
//!
//! [`Ring::new`] allocates every slot the ring will ever use; nothing allocates after that.
//! Any capacity from 1 up works, not only powers of two.
//!
//! ```
//! # slotline_ring::__doctest(|| {
//! use slotline_ring::Ring;
//!
//! let ring = Ring::new(3);
//! ring.try_push(1).unwrap();
//! ring.try_push(2).unwrap();
//! ring.try_push(3).unwrap();
//! assert!(ring.try_push(4).is_err()); // full: the value comes back in `Full`
//! assert_eq!(ring.force_push(4), Some(1)); // drop-oldest: 1 is evicted
//! let mut out = Vec::new();
//! assert_eq!(ring.pop_batch(8, &mut out), 3); // one CAS for the three items
//! assert_eq!(out, [2, 3, 4]);
//! # });
//! ```
//!
//! # The algorithm
//!
//! This is Dmitry Vyukov's bounded MPMC queue as crossbeam's `ArrayQueue` builds it, with one
//! change in behaviour: no operation waits for another thread except an evicting
//! [`force_push`](Ring::force_push) (see [below](#what-full-and-none-mean)). That is also where
//! its lead under contention comes from, where it has one: a failed `try_pop` or `try_push`
//! reads one slot stamp and returns, where `ArrayQueue` adds a `SeqCst` fence and a read of the
//! other side's index, pulling a cache line the other side is writing. That extra transfer
//! matters when moving cache lines between cores is slow; where it is fast, both queues are
//! bound by their claiming CAS and run level.
//!
//! **Stamps, laps and indices.** `head` and `tail` are *stamps*: a slot *index* in the low bits
//! and a *lap* count in the high bits. `one_lap` is `{ lap: 1, index: 0 }`, the smallest power of
//! two greater than the capacity. Each slot has a stamp too, saying which operation may touch
//! it next:
//!
//! * slot stamp == a tail value `t`: the slot is empty, and the push at `t` may write it;
//! * slot stamp == `t + 1`: the push at `t` has written it, the pop at head == `t` may read it;
//! * after that pop, the stamp becomes `{ lap: lap + 1, index }`: empty for the next lap.
//!
//! A push reads the tail, checks that the tail's slot stamp equals the tail, claims the slot
//! with one CAS moving the tail to the next position, writes the value, and stores
//! `tail + 1` into the slot stamp. A pop reads the head, checks that the slot stamp is
//! `head + 1`, claims it with one CAS on the head, moves the value out, and stores
//! `head + one_lap`. A slot stamp one lap behind (`stamp + one_lap == tail + 1`) means the
//! previous lap's item is still in the slot: the ring is full.
//!
//! Capacities need not be powers of two: the index runs `0..capacity` and then wraps to
//! `{ lap: lap + 1, index: 0 }`, so a lap is `one_lap` in stamp arithmetic but `capacity` slots
//! in memory.
//!
//! **Layout.** Slots are contiguous, in index order, so a thread that pushes or pops a run of
//! items touches a quarter as many cache lines as items (16-byte slots) and the prefetcher
//! follows it. `head` and `tail` each have their own `CachePadded` 128-byte block, and the
//! read-mostly fields (buffer pointer, capacity, `one_lap`, the waiter counts) live in a third
//! that nobody writes while nobody waits, so a push or pop touches three lines: that one, the
//! index it moves, and its slot.
//!
//! **Batches** ([`pop_batch`](Ring::pop_batch), [`push_batch`](Ring::push_batch)) read the
//! stamps of the next `k` slots and move the head or tail past all of them with one CAS; see
//! the [`batch`] module.
//!
//! **Drop-oldest.** When the tail's slot holds the oldest item, [`force_push`](Ring::force_push)
//! claims that item with a head CAS (as a pop would), moves the tail on with a `fetch_add` (no
//! other push can claim the slot: its stamp still says written), swaps its value into the slot
//! and returns the old one. Eviction and push are one linearizable step: the head CAS.
//!
//! **Closing.** [`close`](Ring::close) sets a mark bit in the tail, just above the index bits.
//! Every push claims with a CAS that expects an unmarked tail, so after the close no push
//! succeeds, and pops drain the items that are left. With the `std` feature, callers can wait
//! for an item or for room, blocking ([`pop_wait`](Ring::pop_wait),
//! [`push_wait`](Ring::push_wait)) or async ([`pop`](Ring::pop), [`push`](Ring::push)); a
//! push or pop wakes a waiter only if the waiter count it reads says there is one, and the
//! count is read in a way that cannot miss a waiter about to sleep (argued in the
//! source of the private `wait` module).
//!
//! ```
//! # slotline_ring::__doctest_threads(|| {
//! use std::sync::Arc;
//! use std::thread;
//! use std::time::Duration;
//! use slotline_ring::{PopError, Ring};
//!
//! let ring = Arc::new(Ring::new(4));
//! let consumer = {
//!     let ring = Arc::clone(&ring);
//!     thread::spawn(move || {
//!         let mut sum = 0;
//!         // Sleeps while the ring is empty; ends once it is closed and drained.
//!         while let Ok(item) = ring.pop_wait(Duration::from_secs(10)) {
//!             sum += item;
//!         }
//!         sum
//!     })
//! };
//! for i in 1..=100 {
//!     ring.push_wait(i, Duration::from_secs(10)).unwrap(); // sleeps while the ring is full
//! }
//! ring.close();
//! assert_eq!(consumer.join().unwrap(), 5050);
//! # });
//! ```
//!
//! # What `Full` and `None` mean
//!
//! A claimed slot stays "in flight" between its CAS and its stamp store, a few instructions,
//! unless the thread is preempted there. Operations here never wait for it:
//!
//! * [`try_pop`](Ring::try_pop) returns `None` (and [`pop_batch`](Ring::pop_batch) 0) if the
//!   slot at the head is not written for its lap: the ring is empty, **or** the producer that
//!   claimed the next slot has not finished writing it (items pushed after that one stay in
//!   the ring until it lands), **or** the consumer that claimed that slot's item a lap
//!   earlier has not finished moving it out (then nothing was pushed after it either), **or**
//!   an evicting [`force_push`](Ring::force_push) two laps back has claimed that slot's item
//!   and not yet stored its own (items pushed after it are in the ring).
//! * [`try_push`](Ring::try_push) returns [`Full`] (and [`push_batch`](Ring::push_batch) 0) if
//!   the slot at the tail still belongs to the previous lap: the ring is full, **or** the
//!   consumer that claimed the oldest item has not finished moving it out (the ring then holds
//!   `capacity - 1` items plus that one), **or** the producer that claimed the slot a lap
//!   earlier has not finished writing it (the ring then holds `capacity` items, one of them
//!   in flight).
//!
//! In all these cases [`len`](Ring::len) counts the in-flight slot. Without concurrency (one
//! thread, or after the other threads are joined) `None` means empty and `Full` means full.
//! Every item is popped, evicted or dropped exactly once, and items of one producer leave in
//! the order it pushed them.
//!
//! So a consumer that sleeps after `None` must be woken by the producer whose push completes,
//! not by the one whose push it saw start; [`pop_wait`](Ring::pop_wait) and the async
//! [`pop`](Ring::pop) do that.
//!
//! # Progress
//!
//! | method | progress |
//! |---|---|
//! | [`try_push`](Ring::try_push), [`try_push_below`](Ring::try_push_below), [`try_pop`](Ring::try_pop), [`push_batch`](Ring::push_batch), [`push_slice`](Ring::push_slice), [`pop_batch`](Ring::pop_batch), [`try_iter`](Ring::try_iter), [`clear`](Ring::clear), [`close`](Ring::close) | lock-free; never waits for another thread |
//! | [`force_push`](Ring::force_push) | lock-free while the ring has room; on a full ring, blocks (yielding) while the oldest slot is in flight |
//! | [`len`](Ring::len), [`fill`](Ring::fill), [`fill_permille`](Ring::fill_permille) | lock-free (retry while the tail moves) |
//! | [`is_empty`](Ring::is_empty), [`is_full`](Ring::is_full), [`is_closed`](Ring::is_closed), [`capacity`](Ring::capacity) | wait-free |
//! | [`pop_wait`](Ring::pop_wait), [`push_wait`](Ring::push_wait), async [`pop`](Ring::pop), [`push`](Ring::push) | blocking by design: sleep until woken, closed or timed out |
//!
//! The lock-free calls loop only when their CAS fails or their snapshot of the index is
//! stale, and both happen only because another operation on the same index succeeded. When
//! the slot they reach is held by a thread stalled in the middle of an operation (whether of
//! this lap or the previous one) they return at once, with the meaning above. A preempted
//! thread still delays the *items* behind it: a producer stopped between its CAS and its stamp
//! store hides the items behind its slot from consumers until it runs again, and a consumer
//! stopped the same way makes producers see `Full` when they reach its slot a lap later.
//! Nothing is lost or reordered, and nobody spins: the caller decides whether to retry, park or
//! reject. This is not SCQ-style lock-freedom of the queue as a whole (where others would skip
//! the stalled slot); that costs several RMWs per item.
//!
//! [`force_push`](Ring::force_push) on a full ring is the exception: it must store, so if the
//! oldest slot is in flight (its item being moved out by a consumer, or still being written by
//! the producer of the previous lap) it waits for that thread, spinning briefly and then
//! yielding to the OS scheduler, because that thread is most likely preempted. It is blocking
//! in that window only.
//!
//! # Memory orderings
//!
//! | atomic | operation | ordering | pairs with |
//! |---|---|---|---|
//! | slot `stamp` | store after writing a value (push, batch push, force_push) | `Release` | the `Acquire` stamp load of the consumer that reads the value |
//! | slot `stamp` | store after moving a value out (pop, batch pop, `Drop`) | `Release` | the `Acquire` stamp load of the producer that overwrites the slot a lap later |
//! | slot `stamp` | every load | `Acquire` | the two stores above: the value (or the slot's emptiness) is visible before we touch it |
//! | `head` | loads in pops and `pop_batch` | `Relaxed` | none: only a guess, checked by the slot stamp and the CAS |
//! | `tail` | loads in pushes (also after a failed CAS) | `Acquire` | the claiming CAS that wrote it: a slot release that happened before that CAS (in particular, before the claim of the previous slot) is visible. A release of this very slot that raced that claim may not be yet, so on weakly ordered hardware `Full` can also mean "released a moment ago"; a retry sees it (free on x86) |
//! | `head`, `tail` | CAS that claims slots (success / failure) | `SeqCst` / `Relaxed` for the head, `Acquire` for the tail | the CAS only decides ownership; values are published by stamps. `SeqCst` puts the index moves in one total order with the `SeqCst` loads below (free on x86, where any locked RMW is a full barrier) |
//! | `tail` | `fetch_add` in an evicting `force_push` | `SeqCst` | producers and `len`'s loads; it only moves the tail to the next position, keeping a close's mark bit |
//! | `tail` | `fetch_or` of the mark bit in `close` | `SeqCst` | the claiming CASes, which fail from then on |
//! | `head`, `tail` | loads in `len`, `is_empty`, `is_full`, `is_closed`, `try_push_below` | `SeqCst` | the CASes: the pair read is a state the ring was in |
//! | `head`, `tail` | re-read after a stamp that lags the index (see `Ring::reload`) | `Acquire` | the claiming CASes: the next stamp load is at least as new as the index |
//! | waiter counts | load right after a claiming CAS | `SeqCst` | a waiter's `SeqCst` increment and its `fetch_add(0)` on the same index: a push or pop that could leave a sleeping waiter behind always sees it (argued in the source of the `wait` module) |
//!
//! # Features
//!
//! * `std` (default): waiting for items or room ([`pop_wait`](Ring::pop_wait),
//!   [`push_wait`](Ring::push_wait), async [`pop`](Ring::pop) and [`push`](Ring::push), built
//!   on `event-listener`), and yielding to the OS scheduler in `force_push`'s wait. Without it
//!   the crate is `no_std` and needs `alloc`; [`close`](Ring::close) works there too.
//! * `loom`: pulls in the `loom` dependency. Together with `--cfg loom`, every atomic, cell,
//!   spin hint and yield comes from loom, so
//!   `RUSTFLAGS="--cfg loom" cargo test --release --features loom` model-checks the ring. The
//!   feature alone changes nothing: a stray `loom` feature (from `--all-features`, or unified
//!   in by a dependent) leaves the ordinary atomics in place, because loom's panic outside a
//!   model, and `cargo test --features loom` without the cfg runs the ordinary tests.
//!
//! # Thread safety
//!
//! `Ring<T>` is `Send` and `Sync` when `T: Send`: items move between threads, but no `&T` is
//! ever shared. A ring of items that must stay on one thread cannot be shared:
//!
//! ```compile_fail
//! fn shared<T: Sync>(_: &T) {}
//! let ring = slotline_ring::Ring::new(1);
//! ring.try_push(std::rc::Rc::new(1)).unwrap();
//! shared(&ring); // `Rc` is not `Send`, so `Ring<Rc<_>>` is not `Sync`
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod batch;
mod full;
mod iter;
mod ring;
mod sync;
#[cfg(feature = "std")]
mod wait;

pub use crate::full::{Full, PopError, PushError};
pub use crate::iter::{IntoIter, TryIter};
pub use crate::ring::Ring;
#[cfg(feature = "std")]
pub use crate::wait::{Pop, Push};

/// Runs a documentation example that spawns OS threads: directly, or not at all when the ring
/// is built with loom's atomics (loom cannot schedule OS threads, so such an example is only
/// compiled there). Not part of the API.
#[doc(hidden)]
pub fn __doctest_threads<F: FnOnce()>(example: F) {
    #[cfg(not(all(feature = "loom", loom)))]
    example();
    #[cfg(all(feature = "loom", loom))]
    drop(example);
}

/// Runs a documentation example: directly, or inside `loom::model` when the ring is built with
/// loom's atomics (which only work inside a model). Not part of the API.
#[doc(hidden)]
pub fn __doctest<F: Fn() + Send + Sync + 'static>(example: F) {
    #[cfg(all(feature = "loom", loom))]
    loom::model(example);
    #[cfg(not(all(feature = "loom", loom)))]
    example();
}
