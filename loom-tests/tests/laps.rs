//! Slots still held by a thread of the previous lap: the operation that reaches such a slot a
//! lap later must return at once (`None`, `Full`, 0), never wait for the stalled thread.
//!
//! A wait would show up here: when an operation takes a slot's state for "my index is stale",
//! it re-reads the index, and the ring asserts (in debug and loom builds) that the index did
//! move. A wait on a stalled thread re-reads an index that has not moved, so the model fails
//! on the first such interleaving instead of passing because loom's spin hint yields.
#![cfg(all(feature = "loom", loom))]

use loom::thread;
use slotline_loom_tests::{
    assert_exactly_once, assert_per_producer_fifo, drain, item, shared_ring,
};

/// Capacity 2, items a and b: C1 and C2 pop one each while C3 pops. In the interleaving where
/// C1 has claimed a but not moved it out and C2 has taken b, C3 finds the ring's only slot
/// with anything in it held by C1, a lap behind its head: it must return `None`.
#[test]
fn third_consumer_returns_none_while_a_consumer_of_the_previous_lap_holds_the_slot() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(0, 0)).unwrap();
        ring.try_push(item(0, 1)).unwrap();
        let (r1, r2) = (ring.clone(), ring.clone());
        let c1 = thread::spawn(move || r1.try_pop());
        let c2 = thread::spawn(move || r2.try_pop());
        let c3 = ring.try_pop();
        let got: Vec<u32> = [c1.join().unwrap(), c2.join().unwrap(), c3]
            .into_iter()
            .flatten()
            .collect();
        // Two items, three pops: exactly one pop came back empty, whichever it was.
        assert_eq!(got.len(), 2, "{got:?}");
        assert_exactly_once(got, vec![item(0, 0), item(0, 1)]);
        assert!(ring.is_empty());
    });
}

/// The same race with `pop_batch` as the late consumer: it returns 0, not a wait.
#[test]
fn pop_batch_returns_zero_while_a_consumer_of_the_previous_lap_holds_the_slot() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(0, 0)).unwrap();
        ring.try_push(item(0, 1)).unwrap();
        let (r1, r2) = (ring.clone(), ring.clone());
        let c1 = thread::spawn(move || r1.try_pop());
        let c2 = thread::spawn(move || r2.try_pop());
        let mut batch = Vec::new();
        let n = ring.pop_batch(2, &mut batch);
        assert_eq!(n, batch.len());
        let mut got: Vec<u32> = [c1.join().unwrap(), c2.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        got.extend(batch);
        assert_exactly_once(got, vec![item(0, 0), item(0, 1)]);
    });
}

/// Capacity 1, full: while a consumer moves the item out, a producer sees `Full` (or, once
/// the slot is released, pushes). It never waits for the consumer.
#[test]
fn push_sees_full_while_a_pop_is_in_flight() {
    loom::model(|| {
        let ring = shared_ring(1);
        ring.try_push(item(9, 0)).unwrap();
        let r = ring.clone();
        let consumer = thread::spawn(move || r.try_pop());
        let pushed = ring.try_push(item(0, 0));
        let popped = consumer.join().unwrap();
        assert_eq!(
            popped,
            Some(item(9, 0)),
            "the item was there before the race"
        );
        match pushed {
            Ok(()) => assert_eq!(drain(&ring), [item(0, 0)]),
            Err(full) => {
                assert_eq!(full.into_inner(), item(0, 0));
                assert!(ring.is_empty());
            }
        }
    });
}

/// Capacity 2, with head and tail at index 1: P1 claims slot 1 and P2 slot 0 of the next lap,
/// so the tail comes back to slot 1 a lap on. A third push there finds P1's slot claimed but
/// perhaps not written yet: the ring is full (two items, one in flight), so it must return
/// `Full`, as `push_batch` must return 0.
#[test]
fn push_sees_full_while_a_push_of_the_previous_lap_is_in_flight() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(9, 0)).unwrap();
        assert_eq!(ring.try_pop(), Some(item(9, 0)));
        let (r1, r2) = (ring.clone(), ring.clone());
        let p1 = thread::spawn(move || r1.try_push(item(1, 0)).is_ok());
        let p2 = thread::spawn(move || r2.try_push(item(2, 0)).is_ok());
        let mut third = vec![item(3, 0)];
        let n3 = ring.push_batch(&mut third);
        let ok = [p1.join().unwrap(), p2.join().unwrap(), n3 == 1];
        // Three pushes into two free slots: exactly one is refused.
        assert_eq!(ok.iter().filter(|&&ok| ok).count(), 2, "{ok:?}");
        let pushed: Vec<u32> = [item(1, 0), item(2, 0), item(3, 0)]
            .into_iter()
            .zip(ok)
            .filter_map(|(v, ok)| ok.then_some(v))
            .collect();
        assert_exactly_once(drain(&ring), pushed);
    });
}

/// `force_push` on a full ring while `pop_batch` takes items: every item is popped, evicted
/// or left exactly once, in order, and the forced item is never lost.
#[test]
fn force_push_racing_pop_batch_accounts_for_every_item() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(9, 0)).unwrap();
        ring.try_push(item(9, 1)).unwrap();
        let r = ring.clone();
        let consumer = thread::spawn(move || {
            let mut out = Vec::new();
            r.pop_batch(2, &mut out);
            out
        });
        let evicted = ring.force_push(item(0, 0));
        let popped = consumer.join().unwrap();
        let left = drain(&ring);
        assert!(popped.contains(&item(0, 0)) || left.contains(&item(0, 0)));
        assert_per_producer_fifo(&popped);
        let mut seen = popped;
        seen.extend(evicted);
        seen.extend(left);
        assert_exactly_once(seen, vec![item(9, 0), item(9, 1), item(0, 0)]);
    });
}

/// `force_push` and `push_batch` on a ring with one free slot: the batch gets what room is
/// left, `force_push` evicts only when the ring is full, and nothing is lost.
#[test]
fn force_push_racing_push_batch_accounts_for_every_item() {
    loom::model(|| {
        let ring = shared_ring(2);
        ring.try_push(item(9, 0)).unwrap();
        let r = ring.clone();
        let producer = thread::spawn(move || {
            let mut items = vec![item(1, 0), item(1, 1)];
            let n = r.push_batch(&mut items);
            (0..n as u32).map(|s| item(1, s)).collect::<Vec<_>>()
        });
        let evicted = ring.force_push(item(0, 0));
        let batched = producer.join().unwrap();
        let left = drain(&ring);
        assert_eq!(left.len(), 2, "force_push keeps the ring full: {left:?}");
        assert!(
            left.contains(&item(0, 0)),
            "the forced item is never evicted by itself"
        );
        assert_per_producer_fifo(&left);
        let mut seen: Vec<u32> = evicted.into_iter().collect();
        seen.extend(left);
        let mut pushed = batched;
        pushed.extend([item(9, 0), item(0, 0)]);
        assert_exactly_once(seen, pushed);
    });
}

/// `force_push` while another thread pops from a ring whose oldest slot is claimed: the
/// forced push may wait (yielding) for the consumer, and ends with every item accounted for.
#[test]
fn force_push_waits_for_a_consumer_holding_the_oldest_item() {
    loom::model(|| {
        let ring = shared_ring(1);
        ring.try_push(item(9, 0)).unwrap();
        let r = ring.clone();
        let consumer = thread::spawn(move || r.try_pop());
        let evicted = ring.force_push(item(0, 0));
        let popped = consumer.join().unwrap();
        let left = drain(&ring);
        // The consumer took the old item, or the forced one after the eviction, or nothing
        // while the eviction was in flight (the slot is then held a lap behind the head).
        assert!(left.contains(&item(0, 0)) || popped == Some(item(0, 0)));
        let seen: Vec<u32> = popped.into_iter().chain(evicted).chain(left).collect();
        assert_exactly_once(seen, vec![item(9, 0), item(0, 0)]);
    });
}
