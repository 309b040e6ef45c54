//! The client's hand-off between callers and an I/O thread, as the engine does it (see
//! `slotline-client`'s engine docs): the ring here is the real ring; the flags are the engine's
//! protocol reduced to its atomics.
//!
//! - **Stop**: a caller pushes, fences, and looks at the client's state; the stopper sets the
//!   state and then empties the ring. Either the stopper's drain sees the op or the caller
//!   sees the state and empties the ring itself: no op is stranded, none is taken twice.
//! - **Sleep**: the I/O thread sets `sleeping`, fences, and looks at the ring once more before
//!   it sleeps; a caller pushes, fences, and wakes the thread if `sleeping` is set. A thread
//!   that decided to sleep on an empty ring is always woken by the caller whose op it missed.
#![cfg(all(feature = "loom", loom))]

use loom::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use slotline_ring::Ring;

const RUNNING: u8 = 0;
const CLOSING: u8 = 1;

/// Empties `ring`, counting what it takes.
fn drain(ring: &Ring<u32>, taken: &AtomicUsize) {
    while ring.try_pop().is_some() {
        taken.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_push_racing_a_stop_is_taken_exactly_once() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let state = Arc::new(AtomicU8::new(RUNNING));
        let taken = Arc::new(AtomicUsize::new(0));
        let pushed = Arc::new(AtomicUsize::new(0));

        let caller = {
            let (ring, state, taken, pushed) =
                (ring.clone(), state.clone(), taken.clone(), pushed.clone());
            thread::spawn(move || {
                if state.load(Ordering::SeqCst) != RUNNING {
                    return; // refused up front
                }
                if ring.try_push(7).is_ok() {
                    pushed.fetch_add(1, Ordering::Relaxed);
                    fence(Ordering::SeqCst);
                    if state.load(Ordering::SeqCst) != RUNNING {
                        drain(&ring, &taken);
                    }
                }
            })
        };
        // The stopper: the state first, then the drain (an I/O thread that has seen it).
        state.store(CLOSING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        drain(&ring, &taken);
        caller.join().unwrap();

        assert_eq!(
            taken.load(Ordering::Relaxed),
            pushed.load(Ordering::Relaxed),
            "an op pushed during the stop was stranded or taken twice"
        );
        assert!(ring.try_pop().is_none());
    });
}

#[test]
fn a_thread_that_sleeps_on_an_empty_ring_is_woken_by_the_push_it_missed() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let sleeping = Arc::new(AtomicBool::new(false));
        let woken = Arc::new(AtomicBool::new(false));

        let caller = {
            let (ring, sleeping, woken) = (ring.clone(), sleeping.clone(), woken.clone());
            thread::spawn(move || {
                ring.try_push(1).unwrap();
                fence(Ordering::SeqCst);
                if sleeping.load(Ordering::Relaxed) && sleeping.swap(false, Ordering::AcqRel) {
                    woken.store(true, Ordering::Relaxed);
                }
            })
        };
        // The I/O thread's last look before it sleeps.
        sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let sleeps = ring.is_empty();
        caller.join().unwrap();

        if sleeps {
            assert!(
                woken.load(Ordering::Relaxed),
                "the thread slept on an empty ring and the push did not wake it"
            );
        }
    });
}
