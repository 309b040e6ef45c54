//! A loom model kept next to the ring (the full suite is in `loom-tests/`): a wrap-around on
//! a capacity-3 ring, whose walk visits slots 0, 2, 1 (stride 2).
#![cfg(feature = "loom")]

use loom::sync::Arc;
use loom::thread;
use slotline_ring::Ring;

#[test]
fn producer_and_consumer_wrap_around_a_remapped_walk() {
    loom::model(|| {
        let ring = Arc::new(Ring::with_stride(3, 2));
        // Move head and tail to the last position of the walk so the race crosses a lap.
        for v in 0..2 {
            ring.try_push(v).unwrap();
            assert_eq!(ring.try_pop(), Some(v));
        }
        let r = ring.clone();
        let producer = thread::spawn(move || {
            (10..13)
                .filter(|&v| r.try_push(v).is_ok())
                .collect::<Vec<_>>()
        });
        let mut seen: Vec<u32> = (0..2).filter_map(|_| ring.try_pop()).collect();
        let pushed = producer.join().unwrap();
        while let Some(v) = ring.try_pop() {
            seen.push(v);
        }
        assert_eq!(seen, pushed, "FIFO, each item once");
    });
}
