//! `try_push_below` racing pushes and pops: it refuses only at a fill level the ring really had.
#![cfg(feature = "loom")]

use loom::thread;
use slotline_loom_tests::shared_ring;

/// The ring never holds more than two items here (one per thread), and the other thread's
/// item is out again before its next push, so a push below a line of 2 must succeed,
/// however its loads of `tail` and `head` interleave with the other thread's push and pop (a
/// `tail` read before them and a `head` read after once made the pair look over-full).
#[test]
fn push_below_is_not_fooled_by_a_stale_tail() {
    loom::model(|| {
        let ring = shared_ring(4);
        let r = ring.clone();
        let other = thread::spawn(move || {
            // Two push+pop rounds move `head` two places past a `tail` read before them.
            for v in 0..2 {
                r.try_push(v).expect("at most two items in a ring of four");
                // Pop until an item (ours or the other thread's) comes out: the ring never
                // holds more than one item per thread.
                while r.try_pop().is_none() {
                    thread::yield_now();
                }
            }
        });
        let below = ring.try_push_below(2, 2);
        other.join().unwrap();
        assert!(below.is_ok(), "refused below the line: {below:?}");
    });
}
