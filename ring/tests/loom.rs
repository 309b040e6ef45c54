//! A loom model kept next to the ring (the full suite is in `loom-tests/`): a producer and a
//! consumer racing across the lap boundary of a capacity-3 ring.
#![cfg(all(feature = "loom", loom))]

use loom::sync::Arc;
use loom::thread;
use slotline_ring::Ring;

#[test]
fn producer_and_consumer_race_across_a_lap() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(3));
        // Move head and tail to the last index so the race crosses into the next lap.
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
