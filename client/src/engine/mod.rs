//! The engine: a few I/O threads, each an event loop over the connections of the masters it
//! serves, and a refresh thread that keeps the slot table current.
//!
//! # Threads
//!
//! `redis_pool.io_threads` I/O threads (derived from the machine by default, never from the
//! cluster's size), one refresh thread and one timer thread (it wakes async callers at
//! deadlines no I/O thread watches): a client adds `io_threads + 2` threads whether the
//! cluster has 3 masters or 300. Each master is served by one I/O thread (assigned round-robin
//! when the master first appears); an I/O thread serves many masters, and since every socket
//! is non-blocking (`mio`), a master that stalls holds only its own connection and queue.
//!
//! # One turn of an I/O thread
//!
//! 1. Pick up a new slot table if one was installed: start a link for each new master of
//!    this thread, retire the links of masters that left.
//! 2. Drive every link ([`link`]): connect if needed; take queued ops while the connection
//!    has fewer than `batching.pipeline_depth` batches in flight, up to the batch cap each,
//!    re-routing ops whose slot moved; write; resolve every op whose deadline passed.
//! 3. Sleep in `poll` until a socket is ready, a caller pushes into a queue of this thread
//!    (which wakes the poller only if the thread is about to sleep), or the earliest
//!    deadline, retry or reconnect time of its links.
//! 4. Read replies as they arrive and complete their ops.
//!
//! # Wake-ups without a system call per op
//!
//! A caller pushes, then (after a `SeqCst` fence) looks at the thread's `sleeping` flag and
//! wakes its poller only if the flag is set. The thread sets the flag, fences, and looks at
//! its queues once more before it sleeps: either the caller sees the flag or the thread sees
//! the op. Under load the thread never sleeps and callers never make a system call.
//!
//! # Failure of an I/O thread
//!
//! A panic in an I/O thread is caught: the client turns *dead*, every thread fails what it
//! holds and every queued op with [`CommitError::ClientDead`], every later call fails the
//! same way, and [`MetricsSnapshot::client_dead`](crate::MetricsSnapshot::client_dead) says
//! so. A caller that pushes while the client turns dead or closes looks at the state again
//! after its push and, if it changed, empties that queue itself, so no op is stranded.

pub(crate) mod io;
pub(crate) mod link;
pub(crate) mod transport;

use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use slotline_router::ShardMap;

use crate::config::Config;
use crate::conn::ConnOptions;
use crate::error::CommitError;
use crate::metrics::Metrics;
use crate::op::{Op, ReplyResult};
use crate::route::{MasterQueue, Routes};

/// The client accepts and processes writes.
pub(crate) const RUNNING: u8 = 0;
/// `close()` or drop: no new writes; queued ones fail with `Closed`.
pub(crate) const CLOSING: u8 = 1;
/// An I/O thread panicked: everything fails with `ClientDead`.
pub(crate) const DEAD: u8 = 2;

/// How long `close()` waits for replies to writes already sent before it fails them.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Shortest time between two full topology refreshes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// What the client, its I/O threads and its refresh thread share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) conn_opts: ConnOptions,
    /// Logical shards: the metrics grouping.
    pub(crate) shards: ShardMap,
    pub(crate) routes: Routes,
    /// One per I/O thread.
    pub(crate) notifiers: Box<[Notifier]>,
    pub(crate) metrics: Metrics,
    /// [`RUNNING`], [`CLOSING`] or [`DEAD`].
    pub(crate) state: AtomicU8,
    /// A test hook: the I/O thread that sees it set panics.
    pub(crate) inject_panic: AtomicBool,
    /// Wakes async callers blocked on a full queue at their deadlines.
    pub(crate) timers: crate::timer::Timers,
}

impl Shared {
    /// The client's state, `SeqCst` (it pairs with pushes, see the module docs).
    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    /// The error an op gets when the client is not running.
    pub(crate) fn stopped_error(&self, state: u8, sent: bool) -> CommitError {
        if state == DEAD {
            CommitError::ClientDead {
                may_have_been_applied: sent,
            }
        } else if sent {
            CommitError::ConnectionLost {
                may_have_been_applied: true,
            }
        } else {
            CommitError::Closed
        }
    }

    /// Completes `op`, counting the outcome in its shard's metrics, and returns its byte
    /// charge to `queue`.
    pub(crate) fn finish(&self, queue: &MasterQueue, op: Op, outcome: ReplyResult) {
        queue.release(op.charge());
        // An earlier send may have been applied: no later error may say otherwise.
        let outcome = match outcome {
            Err(e) if op.maybe_applied && !e.may_have_been_applied() => Err(match e {
                CommitError::ClientDead { .. } => CommitError::ClientDead {
                    may_have_been_applied: true,
                },
                CommitError::DeadlineExceeded { .. } => CommitError::DeadlineExceeded {
                    may_have_been_applied: true,
                },
                _ => CommitError::ConnectionLost {
                    may_have_been_applied: true,
                },
            }),
            other => other,
        };
        self.record(&op, &outcome);
        op.complete_reply(outcome);
    }

    /// Counts `outcome` for `op`'s shard (not its latency: the I/O threads tally those).
    pub(crate) fn record<T>(&self, op: &Op, outcome: &Result<T, CommitError>) {
        if let Some(m) = self.metrics.shard(self.shards.shard_of(op.slot())) {
            m.record_result(outcome);
        }
    }

    /// Empties `queue`'s ring, failing every op with the error for `state` (a caller that
    /// pushed while the client stopped, or a stopping I/O thread).
    pub(crate) fn drain_stopped(&self, queue: &MasterQueue, state: u8) {
        while let Some(op) = queue.ring.try_pop() {
            let err = self.stopped_error(state, false);
            self.finish(queue, op, Err(err));
        }
    }

    /// After a push into `queue` (a caller's, or an I/O thread's forward): one `SeqCst` fence,
    /// then either the client still runs and the queue's I/O thread is woken if it sleeps, or
    /// the pusher empties the queue itself. See the module docs: either the stopping side's
    /// drain or this look at the state sees the op, and either the sleeping thread's last look
    /// or this look at its flag does.
    #[inline]
    pub(crate) fn after_push(&self, queue: &MasterQueue) {
        fence(Ordering::SeqCst);
        let state = self.state();
        if state != RUNNING {
            self.drain_stopped(queue, state);
        } else if let Some(n) = self.notifiers.get(queue.io) {
            n.wake_if_sleeping();
        }
    }

    /// Wakes every I/O thread, every caller waiting for room and every async deadline
    /// (close, death): each looks at the state again.
    pub(crate) fn wake_all(&self) {
        for n in self.notifiers.iter() {
            n.wake_now();
        }
        for queue in &self.routes.load().masters {
            queue.wake_waiters();
        }
        if self.state() != RUNNING {
            self.timers.close();
        }
    }
}

/// How callers wake one I/O thread.
pub(crate) struct Notifier {
    waker: mio::Waker,
    /// Set while the thread is (about to be) asleep in `poll`.
    sleeping: AtomicBool,
}

impl Notifier {
    pub(crate) fn new(waker: mio::Waker) -> Notifier {
        Notifier {
            waker,
            sleeping: AtomicBool::new(false),
        }
    }

    /// Wakes the thread if it sleeps; call after a `SeqCst` fence that follows the push
    /// ([`Shared::after_push`]).
    #[inline]
    pub(crate) fn wake_if_sleeping(&self) {
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Wakes the thread whatever it is doing.
    pub(crate) fn wake_now(&self) {
        let _ = self.waker.wake();
    }

    /// The thread is about to sleep: callers from now on wake it.
    pub(crate) fn start_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// The thread is awake again.
    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }
}
