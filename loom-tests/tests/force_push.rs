//! `force_push` racing `try_pop` and other `force_push`es: pushed = popped + evicted + left.
#![cfg(all(feature = "loom", loom))]

use loom::thread;
use slotline_loom_tests::{
    assert_exactly_once, assert_per_producer_fifo, drain, item, shared_ring,
};
use slotline_ring::Ring;

/// Force-pushes `items` of producer `p`; returns what it evicted.
fn forcer(ring: &Ring<u32>, p: u32, items: u32) -> Vec<u32> {
    (0..items)
        .filter_map(|s| ring.force_push(item(p, s)))
        .collect()
}

fn force_push_vs_pop(cap: usize, prefill: u32, items: u32) {
    loom::model(move || {
        let ring = shared_ring(cap);
        for s in 0..prefill {
            ring.try_push(item(9, s)).unwrap();
        }
        let r = ring.clone();
        let prod = thread::spawn(move || forcer(&r, 0, items));
        let popped: Vec<u32> = (0..2).filter_map(|_| ring.try_pop()).collect();
        let evicted = prod.join().unwrap();
        let left = drain(&ring);
        assert_per_producer_fifo(&popped);
        assert_per_producer_fifo(&left);
        let pushed: Vec<u32> = (0..prefill)
            .map(|s| item(9, s))
            .chain((0..items).map(|s| item(0, s)))
            .collect();
        // The newest item is always kept: drop-oldest never evicts what it just stored.
        assert!(left.contains(&item(0, items - 1)) || popped.contains(&item(0, items - 1)));
        let mut seen = popped;
        seen.extend(evicted);
        seen.extend(left);
        assert_exactly_once(seen, pushed);
    });
}

#[test]
fn force_push_on_full_ring_racing_pop_capacity_one() {
    force_push_vs_pop(1, 1, 2);
}

#[test]
fn force_push_on_full_ring_racing_pop_capacity_two() {
    force_push_vs_pop(2, 2, 2);
}

#[test]
fn two_force_pushes_on_a_full_ring_evict_two_distinct_items() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(9, 0)).unwrap();
        ring.try_push(item(9, 1)).unwrap();
        let (r0, r1) = (ring.clone(), ring.clone());
        let f0 = thread::spawn(move || r0.force_push(item(0, 0)));
        let f1 = thread::spawn(move || r1.force_push(item(1, 0)));
        let evicted = [f0.join().unwrap(), f1.join().unwrap()];
        let left = drain(&ring);
        assert_eq!(left.len(), 2);
        let seen: Vec<u32> = evicted.into_iter().flatten().chain(left).collect();
        assert_exactly_once(seen, vec![item(9, 0), item(9, 1), item(0, 0), item(1, 0)]);
    });
}
