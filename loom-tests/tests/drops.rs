//! Drop accounting under races: every item is dropped exactly once, wherever it ends up.
#![cfg(feature = "loom")]

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

#[test]
fn items_are_dropped_once_whether_popped_evicted_rejected_or_left() {
    loom::model(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(Ring::new(2));
        ring.try_push(Counted(drops.clone())).unwrap();
        let (r0, r1) = (ring.clone(), ring.clone());
        let (d0, d1) = (drops.clone(), drops.clone());
        let a = thread::spawn(move || {
            drop(r0.try_push(Counted(d0.clone())));
            drop(r0.force_push(Counted(d0)));
        });
        let b = thread::spawn(move || {
            let mut out = Vec::new();
            r1.pop_batch(2, &mut out);
            drop(out);
            let mut batch = vec![Counted(d1)];
            r1.push_batch(&mut batch);
        });
        drop(ring.try_pop());
        a.join().unwrap();
        b.join().unwrap();
        drop(ring);
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    });
}
