//! Deadlines for async callers that wait for room in a full queue.
//!
//! Under `fallback_strategy: block`, a future whose master's queue is full waits for room
//! without spinning: it listens on the queue's `room` event. Room may never come (a stalled
//! master), yet the future must resolve at its deadline, and a future cannot sleep by itself
//! without tying the client to one runtime. So one thread, `slotline-timer`, wakes such futures
//! at their deadlines: each registers `(deadline, waker)` once (again only if its task's waker
//! changes), and is woken when the deadline passes, when the client closes, or when it dies.
//!
//! The heap holds one entry per waiting future until that entry's deadline, whether or not the
//! future resolved earlier: its size is bounded by the async calls that met a full queue within
//! one `commit.timeout`, each of which its caller holds. Nothing else uses it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

/// The timer heap and the condition its thread sleeps on.
#[derive(Default)]
pub(crate) struct Timers {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Ties between equal deadlines break by registration order.
    seq: u64,
    /// The client stopped: wake everyone, register nothing more.
    closed: bool,
}

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under the lock; stay usable if a waker did elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `waker` once `at` has passed (or at once, if the client has stopped).
    pub(crate) fn wake_at(&self, at: Instant, waker: Waker) {
        let mut state = self.lock();
        if state.closed {
            drop(state);
            waker.wake();
            return;
        }
        let earliest = state.heap.peek().is_none_or(|Reverse(e)| at < e.at);
        let seq = state.seq;
        state.seq += 1;
        state.heap.push(Reverse(Entry { at, seq, waker }));
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// The client stopped: wake every registered future and end the thread.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// The thread's loop: wake what is due, sleep until the next deadline or a change.
    pub(crate) fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while let Some(Reverse(e)) = state.heap.peek() {
                if e.at > now && !state.closed {
                    break;
                }
                if let Some(Reverse(e)) = state.heap.pop() {
                    due.push(e.waker);
                }
            }
            let closed = state.closed;
            let next = state.heap.peek().map(|Reverse(e)| e.at);
            if !due.is_empty() {
                // Wake outside the lock: a waker may run code that registers again.
                drop(state);
                due.drain(..).for_each(Waker::wake);
                state = self.lock();
                continue;
            }
            if closed {
                return;
            }
            state = match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, AtomicOrdering::SeqCst);
        }
    }

    #[test]
    fn wakes_in_deadline_order_and_ends_on_close() {
        let timers = Arc::new(Timers::default());
        let thread = {
            let timers = Arc::clone(&timers);
            std::thread::spawn(move || timers.run())
        };
        let late = Arc::new(Count(AtomicUsize::new(0)));
        let soon = Arc::new(Count(AtomicUsize::new(0)));
        let start = Instant::now();
        timers.wake_at(
            start + Duration::from_secs(3600),
            Waker::from(Arc::clone(&late)),
        );
        timers.wake_at(
            start + Duration::from_millis(20),
            Waker::from(Arc::clone(&soon)),
        );
        let limit = start + Duration::from_secs(10);
        while soon.0.load(AtomicOrdering::SeqCst) == 0 && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            soon.0.load(AtomicOrdering::SeqCst),
            1,
            "the early entry was not woken"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "woken before its time"
        );
        assert_eq!(
            late.0.load(AtomicOrdering::SeqCst),
            0,
            "the late entry was woken early"
        );
        timers.close();
        thread.join().unwrap();
        assert_eq!(
            late.0.load(AtomicOrdering::SeqCst),
            1,
            "close must wake every entry"
        );
        // After close, registering wakes at once.
        let after = Arc::new(Count(AtomicUsize::new(0)));
        timers.wake_at(
            start + Duration::from_secs(3600),
            Waker::from(Arc::clone(&after)),
        );
        assert_eq!(after.0.load(AtomicOrdering::SeqCst), 1);
    }
}
