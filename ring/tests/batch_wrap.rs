//! Batch pushes and pops at every position of small rings: runs that start at every index and
//! cross the wrap, batch sizes below, at and above the capacity, and every chunk size class
//! of `pop_batch` (items of 8, 100, 600 and 2,000 bytes), against a `VecDeque`, counting every
//! live item so that a leak or a double drop fails.
#![cfg(not(all(feature = "loom", loom)))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicIsize, Ordering};

use slotline_ring::Ring;

/// Items alive right now, over every size class (the classes run one after another in one
/// test, so the count is not shared between concurrent tests).
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// An item of about `B` bytes that counts itself alive and checks it was not torn.
#[derive(Debug)]
struct Item<const B: usize>(u64, [u8; B]);

impl<const B: usize> Item<B> {
    fn new(v: u64) -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Item(v, [v as u8; B])
    }
}

impl<const B: usize> Drop for Item<B> {
    fn drop(&mut self) {
        assert!(self.1.iter().all(|&b| b == self.0 as u8), "a torn item");
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Capacities to try: every one up to 9 natively (6 and up reach the four-stamp scan on both
/// sides), a few under miri.
fn capacities() -> Vec<usize> {
    if cfg!(miri) {
        vec![1, 6]
    } else {
        (1..=9).collect()
    }
}

/// For each capacity and each starting index (after a full lap, so the lap bits are set):
/// `push_batch` of 1 to `cap + 2` items, `pop_batch` with `max` from 1 to `cap + 3`, a refill
/// across the wrap, and a drain; every result against the model.
fn every_position<const B: usize>() {
    for cap in capacities() {
        for offset in 0..cap {
            for pushed in 1..=cap + 2 {
                for max in 1..=cap + 3 {
                    let ring = Ring::new(cap);
                    let mut next = 0u64;
                    let mut model = VecDeque::new();
                    for _ in 0..cap + offset {
                        ring.try_push(Item::<B>::new(next)).unwrap();
                        assert_eq!(ring.try_pop().unwrap().0, next);
                        next += 1;
                    }
                    let mut items: Vec<_> =
                        (0..pushed as u64).map(|i| Item::new(next + i)).collect();
                    let n = ring.push_batch(&mut items);
                    assert_eq!(n, pushed.min(cap));
                    assert_eq!(items.len(), pushed - n);
                    model.extend(next..next + n as u64);
                    next += pushed as u64;
                    drop(items);

                    let mut out = Vec::new();
                    let got = ring.pop_batch(max, &mut out);
                    assert_eq!(got, out.len());
                    assert_eq!(
                        got,
                        max.min(n),
                        "cap {cap}, offset {offset}, {pushed} pushed, max {max}"
                    );
                    for item in &out {
                        assert_eq!(Some(item.0), model.pop_front());
                    }
                    drop(out);

                    let mut more: Vec<_> = (0..cap as u64).map(|i| Item::new(next + i)).collect();
                    let m = ring.push_batch(&mut more);
                    assert_eq!(m, cap - model.len());
                    model.extend(next..next + m as u64);
                    drop(more);

                    let mut out = Vec::new();
                    while ring.pop_batch(max, &mut out) > 0 {}
                    let values: Vec<u64> = out.iter().map(|item| item.0).collect();
                    assert_eq!(values, model.drain(..).collect::<Vec<_>>());
                    drop(out);
                    assert!(ring.try_pop().is_none());
                    drop(ring);
                    assert_eq!(
                        LIVE.load(Ordering::SeqCst),
                        0,
                        "cap {cap}, offset {offset}: leak or double drop"
                    );
                }
            }
        }
    }
}

#[test]
fn batches_at_every_position_in_every_chunk_size_class() {
    every_position::<8>();
    if !cfg!(miri) {
        every_position::<100>();
        every_position::<600>();
        every_position::<2000>();
    }
}

#[test]
fn push_slice_at_every_position() {
    for cap in capacities() {
        for offset in 0..cap {
            for n in 1..=cap + 2 {
                let ring = Ring::new(cap);
                for i in 0..offset {
                    ring.try_push(i as u32).unwrap();
                    ring.try_pop().unwrap();
                }
                let items: Vec<u32> = (100..100 + n as u32).collect();
                let k = ring.push_slice(&items);
                assert_eq!(k, n.min(cap));
                let mut out = Vec::new();
                assert_eq!(ring.pop_batch(usize::MAX, &mut out), k);
                assert_eq!(out, items[..k]);
            }
        }
    }
}
