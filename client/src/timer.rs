//! Deadlines for async callers that no I/O thread watches.
//!
//! Under `fallback_strategy: block`, a future whose master's queue is full waits for room
//! without spinning: it listens on the queue's `room` event. Room may never come (a stalled
//! master), yet the future must resolve at its deadline, and a future cannot sleep by itself
//! without tying the client to one runtime. So one thread, `slotline-timer`, wakes such futures
//! at their deadlines; so too futures whose op sits in a queue behind ops with later deadlines
//! (an I/O thread watches only the oldest op of each queue). Each registers `(deadline,
//! waker)` once (again only if its task's waker changes) and is woken when the deadline
//! passes, when the client closes, or when it dies.
//!
//! A registration is cancelled when its future resolves or is dropped: the waker (and so the
//! task it keeps alive) is released at once; the heap entry, a deadline and a pointer, stays
//! until its deadline or until the heap is pruned. The heap is pruned of cancelled entries
//! whenever it has doubled since the last pruning, so it holds at most about twice the live
//! registrations (at least 64 entries).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

/// Fewest entries at which the heap is pruned.
const PRUNE_MIN: usize = 64;

/// The timer heap and the condition its thread sleeps on.
#[derive(Default)]
pub(crate) struct Timers {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Slot>>,
    /// Ties between equal deadlines break by registration order.
    seq: u64,
    /// The heap is pruned when it grows past this.
    prune_at: usize,
    /// The client stopped: wake everyone, register nothing more.
    closed: bool,
}

/// The waker of one registration, shared by the heap and the registering future.
type Shared = Arc<Mutex<Option<Waker>>>;

struct Slot {
    at: Instant,
    seq: u64,
    waker: Shared,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A registration, held by the future that made it: dropping it cancels it.
pub(crate) struct Entry(Shared);

impl Drop for Entry {
    fn drop(&mut self) {
        let waker = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(waker);
    }
}

fn take(waker: &Shared) -> Option<Waker> {
    waker.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under the lock; stay usable if a waker did elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `waker` once `at` has passed (or at once, if the client has stopped), unless
    /// the returned entry is dropped first.
    pub(crate) fn wake_at(&self, at: Instant, waker: Waker) -> Entry {
        let shared: Shared = Arc::new(Mutex::new(Some(waker)));
        let mut state = self.lock();
        if state.closed {
            drop(state);
            if let Some(w) = take(&shared) {
                w.wake();
            }
            return Entry(shared);
        }
        if state.heap.len() >= state.prune_at.max(PRUNE_MIN) {
            state.heap.retain(|Reverse(s)| {
                s.waker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            });
            state.prune_at = state.heap.len() * 2;
        }
        let earliest = state.heap.peek().is_none_or(|Reverse(s)| at < s.at);
        let seq = state.seq;
        state.seq += 1;
        state.heap.push(Reverse(Slot {
            at,
            seq,
            waker: Arc::clone(&shared),
        }));
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
        Entry(shared)
    }

    /// The client stopped: wake every registered future and end the thread.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// Registrations in the heap, cancelled or not (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().heap.len()
    }

    /// The thread's loop: wake what is due, sleep until the next deadline or a change.
    pub(crate) fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while let Some(Reverse(s)) = state.heap.peek() {
                if s.at > now && !state.closed {
                    break;
                }
                if let Some(Reverse(s)) = state.heap.pop() {
                    due.push(s.waker);
                }
            }
            let closed = state.closed;
            let next = state.heap.peek().map(|Reverse(s)| s.at);
            if !due.is_empty() {
                // Wake outside the lock: a waker may run code that registers again.
                drop(state);
                for waker in due.drain(..) {
                    if let Some(w) = take(&waker) {
                        w.wake();
                    }
                }
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

    fn count(c: &Count) -> usize {
        c.0.load(AtomicOrdering::SeqCst)
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
        let _late = timers.wake_at(
            start + Duration::from_secs(3600),
            Waker::from(Arc::clone(&late)),
        );
        let _soon = timers.wake_at(
            start + Duration::from_millis(20),
            Waker::from(Arc::clone(&soon)),
        );
        let limit = start + Duration::from_secs(10);
        while count(&soon) == 0 && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(count(&soon), 1, "the early entry was not woken");
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "woken before its time"
        );
        assert_eq!(count(&late), 0, "the late entry was woken early");
        timers.close();
        thread.join().unwrap();
        assert_eq!(count(&late), 1, "close must wake every entry");
        // After close, registering wakes at once.
        let after = Arc::new(Count(AtomicUsize::new(0)));
        let _after = timers.wake_at(
            start + Duration::from_secs(3600),
            Waker::from(Arc::clone(&after)),
        );
        assert_eq!(count(&after), 1);
    }

    #[test]
    fn a_cancelled_entry_is_not_woken_releases_its_waker_and_is_pruned() {
        let timers = Arc::new(Timers::default());
        let thread = {
            let timers = Arc::clone(&timers);
            std::thread::spawn(move || timers.run())
        };
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let soon = Instant::now() + Duration::from_millis(10);
        let entry = timers.wake_at(soon, Waker::from(Arc::clone(&task)));
        assert_eq!(Arc::strong_count(&task), 2);
        drop(entry);
        assert_eq!(
            Arc::strong_count(&task),
            1,
            "a cancelled entry keeps the task alive"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count(&task), 0, "a cancelled entry was woken");
        // Many registrations, most cancelled at once: the heap stays near the live count.
        let far = Instant::now() + Duration::from_secs(3600);
        let mut live = Vec::new();
        for i in 0..10_000 {
            let entry = timers.wake_at(far, Waker::from(Arc::clone(&task)));
            if i % 100 == 0 {
                live.push(entry);
            }
        }
        assert!(
            timers.len() <= 2 * live.len() + PRUNE_MIN + 1,
            "{} entries",
            timers.len()
        );
        assert_eq!(count(&task), 0, "nothing is due yet");
        timers.close();
        thread.join().unwrap();
        assert_eq!(
            count(&task),
            live.len(),
            "close wakes the live entries only"
        );
    }
}
