//! `try_push_below` racing pushes and pops: it refuses only at a fill level the ring really had.
#![cfg(all(feature = "loom", loom))]

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

/// Two threads push below a line of 2 into a ring that already holds one item, while a third
/// watches the length: exactly one push gets in, and the ring never holds more than 2.
#[test]
fn concurrent_push_below_never_goes_above_the_line() {
    loom::model(|| {
        let ring = shared_ring(3);
        ring.try_push(0).unwrap();
        let (r1, r2) = (ring.clone(), ring.clone());
        let a = thread::spawn(move || r1.try_push_below(1, 2).is_ok());
        let b = thread::spawn(move || r2.try_push_below(2, 2).is_ok());
        let seen = ring.len();
        assert!(seen <= 2, "len {seen} above the line");
        let ok = [a.join().unwrap(), b.join().unwrap()];
        assert_eq!(ok.iter().filter(|&&ok| ok).count(), 1, "{ok:?}");
        assert_eq!(ring.len(), 2);
    });
}
