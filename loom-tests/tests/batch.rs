//! Batch claims racing single operations: `pop_batch` vs pushes, `push_batch` vs pops.
#![cfg(all(feature = "loom", loom))]

use loom::thread;
use slotline_loom_tests::{
    assert_exactly_once, assert_per_producer_fifo, drain, item, shared_ring,
};

#[test]
fn pop_batch_racing_push_takes_each_item_once() {
    loom::model(|| {
        let ring = shared_ring(3);
        ring.try_push(item(0, 0)).unwrap();
        let r = ring.clone();
        let prod = thread::spawn(move || {
            (1..3)
                .map(|s| item(0, s))
                .filter(|&v| r.try_push(v).is_ok())
                .collect::<Vec<_>>()
        });
        let mut batch = Vec::new();
        let n = ring.pop_batch(3, &mut batch);
        assert_eq!(n, batch.len());
        assert!(n >= 1, "the item pushed before the race is always ready");
        let mut pushed = prod.join().unwrap();
        pushed.push(item(0, 0));
        let mut seen = batch;
        seen.extend(drain(&ring));
        assert_per_producer_fifo(&seen);
        assert_exactly_once(seen, pushed);
    });
}

#[test]
fn two_pop_batches_split_the_items() {
    loom::model(|| {
        let ring = shared_ring(3);
        for s in 0..3 {
            ring.try_push(item(0, s)).unwrap();
        }
        let r = ring.clone();
        let other = thread::spawn(move || {
            let mut out = Vec::new();
            r.pop_batch(2, &mut out);
            out
        });
        let mut mine = Vec::new();
        ring.pop_batch(2, &mut mine);
        let theirs = other.join().unwrap();
        assert_per_producer_fifo(&mine);
        assert_per_producer_fifo(&theirs);
        let mut seen = mine;
        seen.extend(theirs);
        seen.extend(drain(&ring));
        assert_exactly_once(seen, (0..3).map(|s| item(0, s)).collect());
    });
}

#[test]
fn push_batch_racing_pop_stores_a_prefix_in_order() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(9, 0)).unwrap();
        let r = ring.clone();
        let prod = thread::spawn(move || {
            let mut items = vec![item(0, 0), item(0, 1)];
            let n = r.push_batch(&mut items);
            // What stays behind is the suffix that did not fit.
            assert_eq!(items.len(), 2 - n);
            (0..n as u32).map(|s| item(0, s)).collect::<Vec<_>>()
        });
        let popped = ring.try_pop();
        let mut pushed = prod.join().unwrap();
        assert!(!pushed.is_empty(), "one slot was free before the race");
        pushed.push(item(9, 0));
        let mut seen: Vec<u32> = popped.into_iter().collect();
        seen.extend(drain(&ring));
        assert_per_producer_fifo(&seen);
        assert_exactly_once(seen, pushed);
    });
}

#[test]
fn push_batch_racing_try_push_interleave_whole_claims() {
    loom::model(|| {
        let ring = shared_ring(3);
        let r = ring.clone();
        let prod = thread::spawn(move || {
            let mut items = vec![item(0, 0), item(0, 1)];
            r.push_batch(&mut items)
        });
        let single = ring.try_push(item(1, 0)).is_ok();
        let n = prod.join().unwrap();
        assert!(single);
        assert_eq!(n, 2);
        let seen = drain(&ring);
        // The batch's two items are adjacent: one CAS claimed both slots.
        let at = seen.iter().position(|&v| v == item(0, 0)).unwrap();
        assert_eq!(seen.get(at + 1), Some(&item(0, 1)));
        assert_exactly_once(seen, vec![item(0, 0), item(0, 1), item(1, 0)]);
    });
}
