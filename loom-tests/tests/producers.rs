//! Two producers racing at capacity 1 and 2, with wrap-around.
#![cfg(all(feature = "loom", loom))]

use loom::thread;
use slotline_loom_tests::{
    assert_exactly_once, assert_per_producer_fifo, drain, item, shared_ring,
};
use slotline_ring::Ring;

/// Pushes `items` of producer `p`; returns the ones accepted.
fn producer(ring: &Ring<u32>, p: u32, items: u32) -> Vec<u32> {
    (0..items)
        .map(|s| item(p, s))
        .filter(|&v| ring.try_push(v).is_ok())
        .collect()
}

/// Two producers, one consumer taking `pops` tries, on a ring of `cap` slots that has already
/// been filled and emptied `warm` times (so the race happens on a later lap).
fn two_producers(cap: usize, per_producer: u32, pops: usize, warm: usize) {
    loom::model(move || {
        let ring = shared_ring(cap);
        for _ in 0..warm {
            ring.try_push(999).unwrap();
            assert_eq!(ring.try_pop(), Some(999));
        }
        let (r0, r1) = (ring.clone(), ring.clone());
        let p0 = thread::spawn(move || producer(&r0, 0, per_producer));
        let p1 = thread::spawn(move || producer(&r1, 1, per_producer));
        let popped: Vec<u32> = (0..pops).filter_map(|_| ring.try_pop()).collect();
        let mut pushed = p0.join().unwrap();
        pushed.extend(p1.join().unwrap());
        let mut seen = popped;
        seen.extend(drain(&ring));
        assert_per_producer_fifo(&seen);
        assert!(pushed.len() >= cap.min(2 * per_producer as usize));
        assert_exactly_once(seen, pushed);
    });
}

#[test]
fn two_producers_at_capacity_one() {
    two_producers(1, 1, 1, 0);
}

#[test]
fn two_producers_at_capacity_one_after_a_lap() {
    two_producers(1, 2, 1, 1);
}

#[test]
fn two_producers_at_capacity_two_wrap_around() {
    two_producers(2, 2, 1, 1);
}

#[test]
fn two_producers_fill_capacity_two_exactly() {
    loom::model(|| {
        let ring = shared_ring(2);
        let (r0, r1) = (ring.clone(), ring.clone());
        let p0 = thread::spawn(move || r0.try_push(item(0, 0)).is_ok());
        let p1 = thread::spawn(move || r1.try_push(item(1, 0)).is_ok());
        // With room for both, neither push may fail.
        assert!(p0.join().unwrap());
        assert!(p1.join().unwrap());
        assert!(ring.is_full());
        assert_eq!(ring.try_push(5), Err(slotline_ring::Full(5)));
        assert_exactly_once(drain(&ring), vec![item(0, 0), item(1, 0)]);
    });
}
