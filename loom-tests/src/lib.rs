//! Loom models live in `tests/`, one model family per file; run them with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --features loom -p slotline-loom-tests`.
//! The ring uses loom's atomics only when both the feature and the cfg are set.
//!
//! This library holds the helpers the models share.
#![cfg(all(feature = "loom", loom))]
#![warn(missing_docs)]

use std::collections::HashMap;

use loom::sync::Arc;
use slotline_ring::Ring;

/// Item `seq` of producer `p`, as the models number them.
pub fn item(p: u32, seq: u32) -> u32 {
    p * 100 + seq
}

/// The producer of an item built by [`item`].
pub fn producer_of(item: u32) -> u32 {
    item / 100
}

/// Asserts that in `log` the items of each producer appear in the order it pushed them.
///
/// # Panics
///
/// Panics, naming the producer, if two of its items are out of order.
pub fn assert_per_producer_fifo(log: &[u32]) {
    let mut last: HashMap<u32, u32> = HashMap::new();
    for &v in log {
        if let Some(&prev) = last.get(&producer_of(v)) {
            assert!(
                v > prev,
                "producer {}: {v} after {prev} in {log:?}",
                producer_of(v)
            );
        }
        last.insert(producer_of(v), v);
    }
}

/// Asserts that `seen` holds exactly the items in `want`, once each.
///
/// # Panics
///
/// Panics, printing both sides, if an item is missing or duplicated.
pub fn assert_exactly_once(mut seen: Vec<u32>, mut want: Vec<u32>) {
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "seen (left) vs pushed (right)");
}

/// Pops everything left in the ring (call after joining every thread).
pub fn drain(ring: &Ring<u32>) -> Vec<u32> {
    let mut left = Vec::new();
    while let Some(v) = ring.try_pop() {
        left.push(v);
    }
    left
}

/// A shared ring of `cap` slots, in a loom `Arc` (which reports leaks).
pub fn shared_ring(cap: usize) -> Arc<Ring<u32>> {
    Arc::new(Ring::new(cap))
}
