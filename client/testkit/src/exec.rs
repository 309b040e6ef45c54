//! A strict single-future executor for tests: it polls a future again only after the future's
//! waker was called, so a future that returns `Pending` and never arranges a wake-up hangs here
//! until a bound, and the test fails, instead of being rescued by a polling timer.
//!
//! ```
//! use std::time::Duration;
//! use slotline_testkit::exec::{block_on, run_woken};
//!
//! assert_eq!(block_on(async { 7 }), 7);
//! let run = run_woken(async { 7 }, Duration::from_secs(1)).expect("ready");
//! assert_eq!((run.output, run.polls, run.wakes), (7, 1, 0));
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long [`block_on`] waits for a wake-up before it fails the test: long enough for any
/// deadline the tests use on a loaded machine, short enough that a lost wake-up fails the run.
pub const WAKE_LIMIT: Duration = Duration::from_secs(60);

/// What [`run_woken`] saw: the output, how many times the future was polled, how many times its
/// waker was called.
#[derive(Debug)]
pub struct Run<T> {
    /// The future's output.
    pub output: T,
    /// Polls, the first one included.
    pub polls: usize,
    /// Calls of the waker (by the future's own machinery; the executor never wakes itself).
    pub wakes: usize,
}

struct Unpark {
    thread: thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `future` on this thread, polling it only after its waker was called; returns `None` if
/// the future is still pending and no wake-up came for `limit` since its last poll.
///
/// ```
/// use std::time::Duration;
/// use slotline_testkit::exec::run_woken;
///
/// // A future that returns Pending without arranging a wake-up is never polled again.
/// let forgotten = std::future::poll_fn(|_| std::task::Poll::<()>::Pending);
/// assert!(run_woken(forgotten, Duration::from_millis(50)).is_none());
/// ```
pub fn run_woken<F: Future>(future: F, limit: Duration) -> Option<Run<F::Output>> {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(Arc::clone(&unpark));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut polls = 0;
    loop {
        let seen = unpark.wakes.load(Ordering::SeqCst);
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(Run {
                output,
                polls,
                wakes: unpark.wakes.load(Ordering::SeqCst),
            });
        }
        let end = Instant::now() + limit;
        // `park` can return spuriously; only a changed wake count lets the loop poll again.
        while unpark.wakes.load(Ordering::SeqCst) == seen {
            let now = Instant::now();
            if now >= end {
                return None;
            }
            thread::park_timeout(end - now);
        }
    }
}

/// Runs `future` to completion on this thread, polling only after a wake-up; panics if it stays
/// pending for [`WAKE_LIMIT`] without one (a lost wake-up).
///
/// ```
/// use slotline_testkit::exec::block_on;
///
/// assert_eq!(block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    match run_woken(future, WAKE_LIMIT) {
        Some(run) => run.output,
        None => panic!("the future returned Pending and was not woken within {WAKE_LIMIT:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ready on the second poll, having woken itself from another thread after a delay.
    struct WakeLater(bool);

    impl Future for WakeLater {
        type Output = u8;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
            if self.0 {
                return Poll::Ready(9);
            }
            self.0 = true;
            let waker = cx.waker().clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                waker.wake();
            });
            Poll::Pending
        }
    }

    #[test]
    fn a_future_woken_from_another_thread_is_polled_again_once() {
        let run = run_woken(WakeLater(false), Duration::from_secs(30)).expect("woken");
        assert_eq!((run.output, run.polls, run.wakes), (9, 2, 1));
    }

    #[test]
    fn a_future_that_never_wakes_is_not_polled_again() {
        let polls = AtomicUsize::new(0);
        let forgotten = std::future::poll_fn(|_| {
            polls.fetch_add(1, Ordering::SeqCst);
            Poll::<()>::Pending
        });
        assert!(run_woken(forgotten, Duration::from_millis(100)).is_none());
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    }
}
