//! Single-threaded behaviour: errors, panics, drops, thread-safety bounds.
#![cfg(not(feature = "loom"))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use slotline_ring::{Full, Ring};

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
