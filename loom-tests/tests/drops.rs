//! Drop accounting under races: every item is dropped exactly once, whether it is popped,
//! evicted, rejected or left in the ring when the ring is dropped.
#![cfg(all(feature = "loom", loom))]

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use slotline_ring::Ring;

/// Counts its drops in a counter shared by one model iteration.
struct Counted(std::sync::Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A fresh drop counter and a ring of capacity 2 holding one counted item.
fn setup() -> (std::sync::Arc<AtomicUsize>, Arc<Ring<Counted>>) {
    let drops = std::sync::Arc::new(AtomicUsize::new(0));
    let ring = Arc::new(Ring::new(2));
    ring.try_push(Counted(drops.clone())).unwrap();
    (drops, ring)
}

#[test]
fn items_are_dropped_once_when_pushed_rejected_or_evicted_while_a_batch_pops() {
    loom::model(|| {
        let (drops, ring) = setup();
        let r = ring.clone();
        let d = drops.clone();
        let producer = thread::spawn(move || {
            drop(r.try_push(Counted(d.clone())));
            drop(r.force_push(Counted(d)));
        });
        let mut out = Vec::new();
        ring.pop_batch(2, &mut out);
        drop(out);
        producer.join().unwrap();
        drop(ring);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn items_are_dropped_once_when_a_batch_push_races_a_pop() {
    loom::model(|| {
        let (drops, ring) = setup();
        let r = ring.clone();
        let d = drops.clone();
        let producer = thread::spawn(move || {
            let mut batch = vec![Counted(d.clone()), Counted(d)];
            r.push_batch(&mut batch);
            // What did not fit is dropped here, with the Vec.
        });
        drop(ring.try_pop());
        producer.join().unwrap();
        drop(ring);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}
