//! A producer pushing while a consumer pops: nothing lost, nothing duplicated, FIFO.
#![cfg(all(feature = "loom", loom))]

use loom::thread;
use slotline_loom_tests::{
    assert_exactly_once, assert_per_producer_fifo, drain, item, shared_ring,
};

/// Pushes `items` of producer `p`; returns the ones accepted.
fn producer(ring: &slotline_ring::Ring<u32>, p: u32, items: u32) -> Vec<u32> {
    (0..items)
        .map(|s| item(p, s))
        .filter(|&v| ring.try_push(v).is_ok())
        .collect()
}

/// Tries `tries` pops without waiting; returns what it got.
fn consumer(ring: &slotline_ring::Ring<u32>, tries: usize) -> Vec<u32> {
    (0..tries).filter_map(|_| ring.try_pop()).collect()
}

#[test]
fn push_racing_pop_delivers_each_item_once_in_order() {
    loom::model(|| {
        let ring = shared_ring(2);
        let r = ring.clone();
        let prod = thread::spawn(move || producer(&r, 0, 3));
        let popped = consumer(&ring, 2);
        let pushed = prod.join().unwrap();
        let mut seen = popped.clone();
        let left = drain(&ring);
        seen.extend(&left);
        assert_per_producer_fifo(&seen);
        // Capacity 2: at most one push can fail, and only if no pop made room in time.
        assert!(pushed.len() >= 2);
        assert_exactly_once(seen, pushed);
    });
}

#[test]
fn pop_sees_none_only_before_the_push_lands() {
    loom::model(|| {
        let ring = shared_ring(1);
        let r = ring.clone();
        let prod = thread::spawn(move || r.try_push(7).is_ok());
        let got = ring.try_pop();
        assert!(prod.join().unwrap());
        match got {
            Some(v) => {
                assert_eq!(v, 7);
                assert!(ring.is_empty());
            }
            None => assert_eq!(ring.try_pop(), Some(7)),
        }
    });
}
