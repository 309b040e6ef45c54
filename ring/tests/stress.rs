//! Many producers and consumers on odd capacities: every item is counted.
#![cfg(not(all(feature = "loom", loom)))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use slotline_ring::Ring;

mod common;

/// How long a stress test may run before a lost item (or a hang) fails it.
const TIME_LIMIT: Duration = Duration::from_secs(if cfg!(miri) { 3600 } else { 120 });

/// Panics once `deadline` has passed, so a test that waits for a lost item fails instead of
/// hanging.
fn check(deadline: Instant, what: &str) {
    assert!(
        Instant::now() < deadline,
        "{what}: still waiting after {TIME_LIMIT:?}, an item was lost or a thread is stuck"
    );
}

const ITEMS_PER_PRODUCER: u64 = if cfg!(miri) { 60 } else { 20_000 };

/// Item `seq` of producer `p`.
fn item(p: u64, seq: u64) -> u64 {
    p << 32 | seq
}

/// How a producer pushes and a consumer pops.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Single,
    Batch,
}

/// Checks one consumer's log: for every producer, sequence numbers strictly increase.
fn assert_per_producer_fifo(log: &[u64]) {
    let mut last: HashMap<u64, u64> = HashMap::new();
    for &v in log {
        let (p, seq) = (v >> 32, v & 0xffff_ffff);
        if let Some(&prev) = last.get(&p) {
            assert!(seq > prev, "producer {p}: {seq} after {prev}");
        }
        last.insert(p, seq);
    }
}

/// Checks that the union of `logs` holds every item of every producer exactly once.
fn assert_exactly_once(producers: u64, logs: impl IntoIterator<Item = u64>) {
    let mut all: Vec<u64> = logs.into_iter().collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..producers)
        .flat_map(|p| (0..ITEMS_PER_PRODUCER).map(move |s| item(p, s)))
        .collect();
    assert_eq!(all.len(), want.len(), "items lost or duplicated");
    assert!(all == want, "items lost or duplicated");
}

fn run_mpmc(cap: usize, producers: u64, consumers: usize, push: Mode, pop: Mode) {
    let ring = Ring::new(cap);
    let total = (producers * ITEMS_PER_PRODUCER) as usize;
    let popped = AtomicUsize::new(0);
    let barrier = Barrier::new(producers as usize + consumers);
    let deadline = Instant::now() + TIME_LIMIT;
    let logs: Vec<Vec<u64>> = thread::scope(|s| {
        for p in 0..producers {
            let (ring, barrier) = (&ring, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut seq = 0;
                let mut pending = Vec::new();
                while seq < ITEMS_PER_PRODUCER || !pending.is_empty() {
                    match push {
                        Mode::Single => {
                            if ring.try_push(item(p, seq)).is_ok() {
                                seq += 1;
                            } else {
                                check(deadline, "producer");
                                thread::yield_now();
                            }
                        }
                        Mode::Batch => {
                            while pending.len() < 5 && seq < ITEMS_PER_PRODUCER {
                                pending.push(item(p, seq));
                                seq += 1;
                            }
                            if ring.push_batch(&mut pending) == 0 {
                                check(deadline, "producer");
                                thread::yield_now();
                            }
                        }
                    }
                }
            });
        }
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let (ring, barrier, popped) = (&ring, &barrier, &popped);
                s.spawn(move || {
                    barrier.wait();
                    let mut log = Vec::new();
                    while popped.load(Ordering::Relaxed) < total {
                        let n = match pop {
                            Mode::Single => match ring.try_pop() {
                                Some(v) => {
                                    log.push(v);
                                    1
                                }
                                None => 0,
                            },
                            Mode::Batch => ring.pop_batch(7, &mut log),
                        };
                        if n == 0 {
                            check(deadline, "consumer");
                            thread::yield_now();
                        } else {
                            popped.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                    log
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for log in &logs {
        assert_per_producer_fifo(log);
    }
    assert_exactly_once(producers, logs.into_iter().flatten());
    assert!(ring.is_empty());
}

#[test]
fn spsc_odd_capacity_delivers_everything_in_order() {
    common::within(TIME_LIMIT, || run_mpmc(7, 1, 1, Mode::Single, Mode::Single));
}

#[test]
fn mpmc_capacity_one_delivers_everything_once() {
    common::within(TIME_LIMIT, || run_mpmc(1, 3, 3, Mode::Single, Mode::Single));
}

#[test]
fn mpmc_odd_capacity_delivers_everything_once() {
    common::within(TIME_LIMIT, || {
        run_mpmc(13, 4, 3, Mode::Single, Mode::Single)
    });
}

#[test]
fn mpmc_batches_deliver_everything_once() {
    common::within(TIME_LIMIT, || run_mpmc(11, 3, 3, Mode::Batch, Mode::Batch));
}

#[test]
fn mpmc_mixed_single_and_batch_deliver_everything_once() {
    common::within(TIME_LIMIT, || {
        run_mpmc(100, 3, 2, Mode::Single, Mode::Batch);
        run_mpmc(5, 2, 3, Mode::Batch, Mode::Single);
    });
}

#[test]
fn force_push_racing_pops_accounts_for_every_item() {
    common::within(TIME_LIMIT, force_push_racing_pops);
}

fn force_push_racing_pops() {
    let producers = 3u64;
    let ring = Ring::new(9);
    let done = AtomicUsize::new(0);
    let deadline = Instant::now() + TIME_LIMIT;
    let (evicted, logs): (Vec<Vec<u64>>, Vec<Vec<u64>>) = thread::scope(|s| {
        let producer_handles: Vec<_> = (0..producers)
            .map(|p| {
                let (ring, done) = (&ring, &done);
                s.spawn(move || {
                    let mut evicted = Vec::new();
                    for seq in 0..ITEMS_PER_PRODUCER {
                        evicted.extend(ring.force_push(item(p, seq)));
                    }
                    done.fetch_add(1, Ordering::Release);
                    evicted
                })
            })
            .collect();
        let consumer_handles: Vec<_> = (0..2)
            .map(|c| {
                let (ring, done) = (&ring, &done);
                s.spawn(move || {
                    let mut log = Vec::new();
                    while done.load(Ordering::Acquire) < producers as usize {
                        let got = if c == 0 {
                            ring.try_pop().map(|v| log.push(v)).is_some()
                        } else {
                            ring.pop_batch(4, &mut log) > 0
                        };
                        if !got {
                            check(deadline, "consumer");
                            thread::yield_now();
                        }
                    }
                    log
                })
            })
            .collect();
        (
            producer_handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect(),
            consumer_handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect(),
        )
    });
    for log in &logs {
        assert_per_producer_fifo(log);
    }
    let mut left = Vec::new();
    ring.pop_batch(usize::MAX, &mut left);
    assert_per_producer_fifo(&left);
    let popped: usize = logs.iter().map(Vec::len).sum();
    let evicted_count: usize = evicted.iter().map(Vec::len).sum();
    let pushed = (producers * ITEMS_PER_PRODUCER) as usize;
    assert_eq!(pushed, popped + evicted_count + left.len());
    assert_exactly_once(
        producers,
        logs.into_iter()
            .flatten()
            .chain(evicted.into_iter().flatten())
            .chain(left),
    );
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn concurrent_drops_happen_exactly_once() {
    common::within(TIME_LIMIT, concurrent_drops);
}

fn concurrent_drops() {
    let drops = Arc::new(AtomicUsize::new(0));
    let per_thread = ITEMS_PER_PRODUCER as usize / 4;
    let ring = Ring::new(6);
    thread::scope(|s| {
        for t in 0..4 {
            let (ring, drops) = (&ring, &drops);
            s.spawn(move || {
                let mut out = Vec::new();
                for i in 0..per_thread {
                    match (t + i) % 4 {
                        0 => drop(ring.try_push(Counted(drops.clone()))),
                        1 => drop(ring.force_push(Counted(drops.clone()))),
                        2 => drop(ring.try_pop()),
                        _ => {
                            let mut batch = vec![Counted(drops.clone()), Counted(drops.clone())];
                            ring.push_batch(&mut batch);
                            ring.pop_batch(3, &mut out);
                            out.clear();
                        }
                    }
                }
            });
        }
    });
    drop(ring);
    // Each thread creates 1 item in ops 0 and 1 and 2 in op 3, over per_thread steps.
    let mut made = 0;
    for t in 0..4 {
        for i in 0..per_thread {
            made += match (t + i) % 4 {
                0 | 1 => 1,
                2 => 0,
                _ => 2,
            };
        }
    }
    assert_eq!(drops.load(Ordering::Relaxed), made);
}
