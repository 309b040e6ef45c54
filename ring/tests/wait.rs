//! Closing, blocking waits and async waits.
#![cfg(not(all(feature = "loom", loom)))]

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use slotline_ring::{PopError, PushError, Ring};

mod common;

const LIMIT: Duration = Duration::from_secs(if cfg!(miri) { 3600 } else { 60 });
const ITEMS: u64 = if cfg!(miri) { 40 } else { 20_000 };

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[test]
fn pop_wait_times_out_on_an_empty_ring() {
    let ring = Ring::<u8>::new(2);
    let start = Instant::now();
    assert_eq!(
        ring.pop_wait(Duration::from_millis(20)),
        Err(PopError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(ring.pop_wait(Duration::ZERO), Err(PopError::Timeout));
}

#[test]
fn push_wait_times_out_on_a_full_ring_and_hands_the_value_back() {
    let ring = Ring::new(1);
    ring.try_push(1).unwrap();
    assert_eq!(
        ring.push_wait(2, Duration::from_millis(20)),
        Err(PushError::Full(2))
    );
    assert_eq!(ring.try_pop(), Some(1));
}

#[test]
fn a_closed_ring_refuses_pushes_and_drains_before_reporting_closed() {
    let ring = Ring::new(3);
    ring.try_push(1).unwrap();
    ring.try_push(2).unwrap();
    assert!(ring.close());
    assert!(!ring.close());
    assert_eq!(ring.try_push(3).unwrap_err().into_inner(), 3);
    assert_eq!(ring.try_push_below(3, 10).unwrap_err().into_inner(), 3);
    assert_eq!(ring.force_push(3), Some(3));
    assert_eq!(ring.push_batch(&mut vec![3]), 0);
    assert_eq!(ring.push_slice(&[3]), 0);
    assert_eq!(ring.push_wait(3, Duration::MAX), Err(PushError::Closed(3)));
    assert_eq!(ring.len(), 2);
    assert!(!ring.is_full() && !ring.is_empty());
    assert_eq!(ring.pop_wait(Duration::MAX), Ok(1));
    assert_eq!(ring.try_pop(), Some(2));
    assert!(ring.is_empty());
    assert_eq!(ring.pop_wait(Duration::MAX), Err(PopError::Closed));
    assert_eq!(block_on(ring.pop()), Err(PopError::Closed));
    assert_eq!(block_on(ring.push(4)), Err(PushError::Closed(4)));
}

#[test]
fn closing_a_full_ring_keeps_every_item_and_its_length() {
    let ring = Ring::new(2);
    ring.try_push(1).unwrap();
    ring.try_push(2).unwrap();
    ring.close();
    assert!(ring.is_full());
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.into_iter().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn close_wakes_a_blocked_pop_and_a_blocked_push() {
    common::within(LIMIT, || {
        let empty = Arc::new(Ring::<u8>::new(1));
        let full = Arc::new(Ring::new(1));
        full.try_push(0u8).unwrap();
        let (e, f) = (empty.clone(), full.clone());
        let popper = thread::spawn(move || e.pop_wait(Duration::MAX));
        let pusher = thread::spawn(move || f.push_wait(1, Duration::MAX));
        thread::sleep(Duration::from_millis(20));
        empty.close();
        full.close();
        assert_eq!(popper.join().unwrap(), Err(PopError::Closed));
        assert_eq!(pusher.join().unwrap(), Err(PushError::Closed(1)));
    });
}

/// Producers and consumers that only ever wait (never retry): a lost wake-up leaves a
/// consumer asleep with an item in the ring, and the time limit fails the test.
fn blocking_handoff(cap: usize, asynchronous: bool) {
    let ring = Ring::new(cap);
    let producers = 2;
    let consumers = 2;
    let barrier = Barrier::new(producers + consumers);
    let done = AtomicUsize::new(0);
    let logs: Vec<Vec<u64>> = thread::scope(|s| {
        for p in 0..producers as u64 {
            let (ring, barrier, done) = (&ring, &barrier, &done);
            s.spawn(move || {
                barrier.wait();
                for seq in 0..ITEMS {
                    let item = p << 32 | seq;
                    if asynchronous {
                        block_on(ring.push(item)).unwrap();
                    } else {
                        ring.push_wait(item, Duration::MAX).unwrap();
                    }
                }
                if done.fetch_add(1, Ordering::AcqRel) + 1 == producers {
                    ring.close();
                }
            });
        }
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let (ring, barrier) = (&ring, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut log = Vec::new();
                    loop {
                        let got = if asynchronous {
                            block_on(ring.pop())
                        } else {
                            ring.pop_wait(Duration::MAX)
                        };
                        match got {
                            Ok(v) => log.push(v),
                            Err(PopError::Closed) => return log,
                            Err(PopError::Timeout) => unreachable!("no timeout"),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for log in &logs {
        let mut last = [None; 2];
        for &v in log {
            let p = (v >> 32) as usize;
            assert!(last[p] < Some(v), "producer {p} out of order");
            last[p] = Some(v);
        }
    }
    let mut all: Vec<u64> = logs.into_iter().flatten().collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..ITEMS).map(move |s| p << 32 | s))
        .collect();
    assert!(all == want, "items lost or duplicated");
}

#[test]
fn blocking_producers_and_consumers_hand_over_every_item_once() {
    common::within(LIMIT, || {
        blocking_handoff(1, false);
        blocking_handoff(3, false);
    });
}

#[test]
fn async_producers_and_consumers_hand_over_every_item_once() {
    common::within(LIMIT, || {
        blocking_handoff(1, true);
        blocking_handoff(3, true);
    });
}

#[test]
fn a_dropped_pop_future_takes_nothing_and_passes_its_wake_up_on() {
    common::within(LIMIT, || {
        let ring = Arc::new(Ring::new(1));
        let r = ring.clone();
        let waiter = thread::spawn(move || r.pop_wait(Duration::MAX));
        {
            let mut cx = Context::from_waker(Waker::noop());
            let mut pop = pin!(ring.pop());
            assert!(pop.as_mut().poll(&mut cx).is_pending());
        }
        thread::sleep(Duration::from_millis(10));
        ring.try_push(5).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(5));
    });
}

/// Panics when dropped if its flag is set; counts every drop.
struct Bomb(Arc<AtomicUsize>, bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        if self.1 {
            panic!("boom");
        }
    }
}

#[test]
fn a_panicking_drop_does_not_stop_the_ring_dropping_the_other_items() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(4);
    ring.try_push(Bomb(drops.clone(), false)).unwrap();
    ring.try_push(Bomb(drops.clone(), true)).unwrap();
    ring.try_push(Bomb(drops.clone(), false)).unwrap();
    let result = catch_unwind(AssertUnwindSafe(move || drop(ring)));
    assert!(result.is_err());
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}

#[test]
fn a_panicking_drop_in_clear_leaves_the_ring_usable() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::new(3);
    ring.try_push(Bomb(drops.clone(), true)).unwrap();
    ring.try_push(Bomb(drops.clone(), false)).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| ring.clear())).is_err());
    // The panicking item was popped (and dropped) before the panic; the other is still there.
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_eq!(ring.len(), 1);
    ring.try_push(Bomb(drops.clone(), false)).unwrap();
    assert_eq!(ring.clear(), 2);
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}
