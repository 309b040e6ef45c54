//! Single-threaded behaviour: errors, panics, drops, thread-safety bounds.
#![cfg(not(all(feature = "loom", loom)))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slotline_ring::{Full, Ring};

mod common;

/// Counts its drops in a shared counter.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
#[should_panic(expected = "capacity must be non-zero")]
fn zero_capacity_panics() {
    let _ = Ring::<u8>::new(0);
}

#[test]
fn ring_is_send_and_sync_for_send_items() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ring<String>>();
    assert_send_sync::<Ring<std::cell::Cell<u8>>>();
}

#[test]
fn full_is_an_error_without_debug_items() {
    struct Opaque;
    let err: Box<dyn std::error::Error> = Box::new(Full(Opaque));
    assert_eq!(err.to_string(), "ring is full");
}

#[test]
fn force_push_returns_oldest_when_full() {
    let ring = Ring::new(3);
    for i in 0..3 {
        assert_eq!(ring.force_push(i), None);
    }
    for i in 3..10 {
        assert_eq!(ring.force_push(i), Some(i - 3));
        assert_eq!(ring.len(), 3);
    }
    assert_eq!(ring.try_pop(), Some(7));
}

#[test]
fn try_push_below_rejects_at_the_line_and_zero_rejects_all() {
    let ring = Ring::new(5);
    assert_eq!(ring.try_push_below(1, 0), Err(Full(1)));
    assert_eq!(ring.try_push_below(1, 2), Ok(()));
    assert_eq!(ring.try_push_below(2, 2), Ok(()));
    assert_eq!(ring.try_push_below(3, 2), Err(Full(3)));
    assert_eq!(ring.try_push_below(3, 100), Ok(()));
    assert_eq!(ring.fill(), 0.6);
}

#[test]
fn every_item_is_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let made = {
        let ring = Ring::new(5);
        let mut made = 0;
        let new = |made: &mut usize| {
            *made += 1;
            Counted(drops.clone(), *made as u32)
        };
        for _ in 0..4 {
            ring.try_push(new(&mut made)).unwrap();
        }
        drop(ring.try_pop());
        for _ in 0..6 {
            drop(ring.force_push(new(&mut made)));
        }
        drop(ring.try_push(new(&mut made))); // rejected: dropped with the error
        let mut out = Vec::new();
        ring.pop_batch(2, &mut out);
        drop(out);
        let mut batch: Vec<_> = (0..4).map(|_| new(&mut made)).collect();
        ring.push_batch(&mut batch);
        drop(batch); // the two that did not fit
        assert_eq!(ring.len(), 5);
        made
    }; // five left in the ring, dropped with it
    assert_eq!(drops.load(Ordering::Relaxed), made);
}

/// An `Extend` that panics on the second item.
struct Explodes(Vec<Counted>);

impl Extend<Counted> for Explodes {
    fn extend<I: IntoIterator<Item = Counted>>(&mut self, iter: I) {
        for item in iter {
            if !self.0.is_empty() {
                panic!("extend failed");
            }
            self.0.push(item);
        }
    }
}

#[test]
fn pop_batch_releases_its_slots_when_extend_panics() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(4);
    for i in 0..4 {
        ring.try_push(Counted(drops.clone(), i)).unwrap();
    }
    let mut out = Explodes(Vec::new());
    let result = catch_unwind(AssertUnwindSafe(|| ring.pop_batch(3, &mut out)));
    assert!(result.is_err());
    // One item kept, the panicking one and the third one dropped; the ring works on.
    assert_eq!(out.0.len(), 1);
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    assert_eq!(ring.len(), 1);
    assert_eq!(ring.try_pop().map(|c| c.1), Some(3));
    for i in 0..4 {
        ring.try_push(Counted(drops.clone(), i)).unwrap();
    }
    drop(ring);
    drop(out);
    assert_eq!(drops.load(Ordering::Relaxed), 8);
}

/// The same when the batch finds a single item (handed over without the stack chunk).
#[test]
fn a_single_item_batch_releases_its_slot_when_extend_panics() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(2);
    ring.try_push(Counted(drops.clone(), 0)).unwrap();
    // `Explodes` holding an item already panics on the next one.
    let mut out = Explodes(vec![Counted(drops.clone(), 9)]);
    let result = catch_unwind(AssertUnwindSafe(|| ring.pop_batch(64, &mut out)));
    assert!(result.is_err());
    // The item was dropped once, during the unwind, and its slot is free again.
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert!(ring.is_empty());
    for i in 0..2 {
        ring.try_push(Counted(drops.clone(), i)).unwrap();
    }
    assert_eq!(ring.len(), 2);
    drop(ring);
    drop(out);
    assert_eq!(drops.load(Ordering::Relaxed), 4);
}

/// Pushes `n` arrays of `B` bytes into `ring`, the `i`-th filled with `i`.
fn push_arrays<const B: usize>(ring: &Ring<[u8; B]>, n: u8) {
    for i in 0..n {
        ring.try_push([i; B]).unwrap();
    }
}

/// The fill byte of each array in `out`, in order.
fn fill_bytes<const B: usize>(out: &[[u8; B]]) -> Vec<u8> {
    out.iter().map(|item| item[0]).collect()
}

/// Items over 1 KiB take one slot per claim: a batch still takes every ready item, in order.
#[test]
fn large_items_pop_one_per_claim_in_order() {
    let ring = Ring::new(5);
    push_arrays::<2048>(&ring, 5);
    let mut out = Vec::new();
    assert_eq!(ring.pop_batch(4, &mut out), 4);
    assert_eq!(ring.pop_batch(64, &mut out), 1);
    assert_eq!(ring.pop_batch(64, &mut out), 0);
    assert_eq!(fill_bytes(&out), [0, 1, 2, 3, 4]);
    assert!(out.iter().all(|item| item.iter().all(|&b| b == item[0])));
}

#[test]
fn zero_sized_items_are_counted() {
    let cap = if cfg!(miri) { 50 } else { 1000 };
    let ring = Ring::new(cap);
    for _ in 0..cap {
        ring.try_push(()).unwrap();
    }
    assert_eq!(ring.try_push(()), Err(Full(())));
    assert_eq!(ring.pop_batch(usize::MAX, &mut Vec::new()), cap);
}

#[test]
fn debug_shows_len_and_capacity() {
    let ring = Ring::new(2);
    ring.try_push(1).unwrap();
    assert_eq!(format!("{ring:?}"), "Ring { len: 1, capacity: 2, .. }");
}

/// An `Extend` that force-pushes two items into the ring it is being filled from.
struct PushesBack<'a> {
    ring: &'a Ring<u32>,
    got: Vec<u32>,
    evicted: Vec<Option<u32>>,
}

impl Extend<u32> for PushesBack<'_> {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
        for item in iter {
            if self.got.is_empty() {
                self.evicted.push(self.ring.force_push(10));
                self.evicted.push(self.ring.force_push(11));
            }
            self.got.push(item);
        }
    }
}

#[test]
fn pop_batch_with_an_extend_that_force_pushes_into_the_same_ring_does_not_deadlock() {
    common::within(Duration::from_secs(10), || {
        let ring = Ring::new(2);
        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        let mut out = PushesBack {
            ring: &ring,
            got: Vec::new(),
            evicted: Vec::new(),
        };
        assert_eq!(ring.pop_batch(2, &mut out), 2);
        assert_eq!(out.got, [1, 2]);
        // Both slots were released before `extend` ran: nothing had to be evicted.
        assert_eq!(out.evicted, [None, None]);
        assert_eq!(ring.try_iter().collect::<Vec<_>>(), [10, 11]);
    });
}

#[test]
fn pop_batch_releases_every_slot_before_extend_runs() {
    let ring = Ring::new(3);
    ring.push_slice(&[1, 2, 3]);
    let mut room = Vec::new();
    struct Probe<'a>(&'a Ring<i32>, &'a mut Vec<bool>);
    impl Extend<i32> for Probe<'_> {
        fn extend<I: IntoIterator<Item = i32>>(&mut self, iter: I) {
            // Before taking a single item, the ring already has room for all three.
            for v in [7, 8, 9] {
                self.1.push(self.0.try_push(v).is_ok());
            }
            iter.into_iter().for_each(drop);
        }
    }
    assert_eq!(ring.pop_batch(3, &mut Probe(&ring, &mut room)), 3);
    assert_eq!(room, [true, true, true]);
}

#[test]
fn pop_batch_pops_at_most_the_capacity_per_call() {
    // An `Extend` that refills the ring as it goes would keep an unbounded call busy forever.
    // 300-byte items go four to a chunk, so the call needs two full chunks for a ring of 8.
    struct Refill<'a>(&'a Ring<[u8; 300]>, usize);
    impl Extend<[u8; 300]> for Refill<'_> {
        fn extend<I: IntoIterator<Item = [u8; 300]>>(&mut self, iter: I) {
            for v in iter {
                self.1 += 1;
                self.0.try_push(v).unwrap();
            }
        }
    }
    common::within(Duration::from_secs(10), move || {
        let ring = Ring::new(8);
        for i in 0..8 {
            ring.try_push([i; 300]).unwrap();
        }
        let mut refill = Refill(&ring, 0);
        assert_eq!(ring.pop_batch(usize::MAX, &mut refill), 8);
        assert_eq!(refill.1, 8);
    });
}

#[test]
fn pop_batch_hands_large_items_over_in_chunks() {
    // 300-byte items go four to a chunk; 10 of them take three chunks and keep their order.
    let ring = Ring::new(16);
    push_arrays::<300>(&ring, 10);
    let mut out = Vec::new();
    assert_eq!(ring.pop_batch(10, &mut out), 10);
    assert_eq!(fill_bytes(&out), (0..10).collect::<Vec<_>>());
}

#[test]
fn push_slice_copies_a_prefix_in_order() {
    let ring = Ring::new(3);
    assert_eq!(ring.push_slice(&[]), 0);
    assert_eq!(ring.push_slice(&[1, 2, 3, 4]), 3);
    assert_eq!(ring.push_slice(&[4]), 0);
    assert_eq!(ring.try_pop(), Some(1));
    assert_eq!(ring.push_slice(&[4, 5]), 1);
    assert_eq!(ring.into_iter().collect::<Vec<_>>(), [2, 3, 4]);
}

#[test]
fn clear_and_try_iter_take_every_ready_item() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(4);
    for i in 0..3 {
        ring.try_push(Counted(drops.clone(), i)).unwrap();
    }
    assert_eq!(ring.clear(), 3);
    assert_eq!(drops.load(Ordering::Relaxed), 3);
    assert_eq!(ring.try_iter().count(), 0);
    ring.try_push(Counted(drops.clone(), 9)).unwrap();
    let mut iter = ring.try_iter();
    assert_eq!(iter.next().map(|c| c.1), Some(9));
    assert!(iter.next().is_none());
}

#[test]
fn into_iter_yields_every_item_and_drops_the_rest_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(4);
    for i in 0..4 {
        ring.try_push(Counted(drops.clone(), i)).unwrap();
    }
    let mut iter = ring.into_iter();
    assert_eq!(iter.len(), 4);
    assert_eq!(iter.next().map(|c| c.1), Some(0));
    drop(iter);
    assert_eq!(drops.load(Ordering::Relaxed), 4);
}
