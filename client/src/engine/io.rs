//! An I/O thread: one `mio` event loop over the links of the masters it serves. See the
//! [engine docs](super) for one turn of the loop.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::link::{Cx, Link, Tally};
use super::{Shared, CLOSE_GRACE, DEAD, RUNNING};
use crate::route::RouteTable;

/// The token of the thread's waker (links use their index in `links`).
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Longest sleep without an event, so that retired queues are noticed even when idle.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Events taken from the poller per wake-up.
const EVENTS: usize = 256;

/// The thread's body: runs the loop, and turns a panic into the client's death.
pub(crate) fn run(id: usize, shared: Arc<Shared>, poll: Poll) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        IoThread {
            id,
            shared: Arc::clone(&shared),
            poll,
            events: Events::with_capacity(EVENTS),
            links: Vec::new(),
            version: u64::MAX,
            tally: Tally::default(),
        }
        .run();
    }));
    if outcome.is_err() {
        // Everything this thread held was dropped while unwinding (each op completed by its
        // drop). Fail the rest: every queue, every later call.
        crate::trace::event!(
            error,
            "slotline::engine",
            "an I/O thread panicked: the client is dead"
        );
        shared.state.store(DEAD, Ordering::SeqCst);
        shared.metrics.mark_dead();
        shared.wake_all();
        let table = shared.routes.load_full();
        for queue in &table.masters {
            shared.drain_stopped(queue, DEAD);
        }
    }
}

struct IoThread {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    events: Events,
    /// Indexed by token.
    links: Vec<Option<Link>>,
    version: u64,
    tally: Tally,
}

impl IoThread {
    fn run(mut self) {
        loop {
            let state = self.shared.state();
            if state != RUNNING {
                self.shutdown(state);
                return;
            }
            if self.shared.inject_panic.swap(false, Ordering::AcqRel) {
                panic!("slotline I/O thread {}: panic injected for a test", self.id);
            }
            let table = self.shared.routes.load_full();
            if table.version != self.version {
                self.sync(&table);
            }
            // Drive every link; again at once if one forwarded work to another of ours.
            let mut rounds = 0;
            loop {
                let table = self.shared.routes.load_full();
                let again = self.drive_all(&table);
                rounds += 1;
                if !again || rounds >= 4 {
                    break;
                }
            }
            self.tally.flush(&self.shared);
            self.sleep(&table);
        }
    }

    /// Adds a link for each new master of this thread and retires links whose master left.
    fn sync(&mut self, table: &Arc<RouteTable>) {
        self.version = table.version;
        let now = Instant::now();
        for link in self.links.iter_mut().flatten() {
            link.retired = !table.contains(&link.queue);
        }
        for queue in &table.masters {
            if queue.io != self.id {
                continue;
            }
            let known = self
                .links
                .iter()
                .flatten()
                .any(|l| Arc::ptr_eq(&l.queue, queue));
            if known {
                continue;
            }
            let index = match self.links.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.links.push(None);
                    self.links.len() - 1
                }
            };
            self.links[index] = Some(Link::new(
                Arc::clone(queue),
                Token(index),
                self.shared.config.batching.max_batch,
                now,
            ));
        }
    }

    fn cx<'a>(
        shared: &'a Shared,
        table: &'a Arc<RouteTable>,
        poll: &'a Poll,
        tally: &'a mut Tally,
        io: usize,
    ) -> Cx<'a> {
        Cx {
            shared,
            table,
            registry: poll.registry(),
            now: Instant::now(),
            io,
            again: false,
            tally,
        }
    }

    /// One pass over every link. Returns whether work was forwarded between our own links.
    fn drive_all(&mut self, table: &Arc<RouteTable>) -> bool {
        let mut cx = Self::cx(&self.shared, table, &self.poll, &mut self.tally, self.id);
        for slot in self.links.iter_mut() {
            let Some(link) = slot else {
                continue;
            };
            link.drive(&mut cx);
            // A retired link goes away once it holds nothing and no table refers to its
            // queue: then no caller can be pushing into it.
            if link.retired && link.is_idle() && Arc::strong_count(&link.queue) == 1 && {
                // Pairs with the release of the last other reference: a push made before
                // that reference was dropped is visible to the look at the ring below.
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                link.queue.ring.is_empty()
            } {
                link.fail_in_flight(&mut cx, RUNNING);
                *slot = None;
            }
        }
        cx.again
    }

    /// Sleeps until an event, a wake-up or the earliest time a link needs, then handles the
    /// events.
    fn sleep(&mut self, table: &Arc<RouteTable>) {
        let notifier = &self.shared.notifiers[self.id];
        let timeout = {
            let cx = Self::cx(&self.shared, table, &self.poll, &mut self.tally, self.id);
            notifier.start_sleep();
            // A table installed meanwhile may bring a queue of ours that has no link yet.
            let busy = self.shared.routes.load().version != self.version
                || self.links.iter().flatten().any(|l| l.wants_turn(&cx));
            if busy || self.shared.state() != RUNNING {
                Some(Duration::ZERO)
            } else {
                let wake = self
                    .links
                    .iter()
                    .flatten()
                    .filter_map(|l| l.next_wake(&cx))
                    .min();
                Some(
                    wake.map_or(MAX_SLEEP, |w| w.saturating_duration_since(cx.now))
                        .min(MAX_SLEEP),
                )
            }
        };
        let polled = self.poll.poll(&mut self.events, timeout);
        notifier.end_sleep();
        if let Err(err) = polled {
            if err.kind() != std::io::ErrorKind::Interrupted {
                // A poller that fails cannot be trusted to wake us: treat it as fatal.
                panic!("slotline I/O thread {}: poll failed: {err}", self.id);
            }
            return;
        }
        let table = self.shared.routes.load_full();
        let mut cx = Self::cx(&self.shared, &table, &self.poll, &mut self.tally, self.id);
        for event in self.events.iter() {
            let token = event.token();
            if token == WAKER {
                continue;
            }
            if let Some(Some(link)) = self.links.get_mut(token.0) {
                link.on_event(&mut cx, event.is_read_closed() || event.is_error());
            }
        }
    }

    /// The client is closing or dead: fail what is queued, give replies to what was sent a
    /// short grace (closing only), then fail the rest.
    fn shutdown(&mut self, state: u8) {
        let table = self.shared.routes.load_full();
        self.sync(&table);
        let deadline = Instant::now()
            + if state == DEAD {
                Duration::ZERO
            } else {
                CLOSE_GRACE
            };
        {
            let mut cx = Self::cx(&self.shared, &table, &self.poll, &mut self.tally, self.id);
            for link in self.links.iter_mut().flatten() {
                link.fail_queued(&mut cx, state);
            }
        }
        while Instant::now() < deadline && self.links.iter().flatten().any(Link::awaiting_replies) {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.poll.poll(&mut self.events, Some(left)).is_err() {
                break;
            }
            let mut cx = Self::cx(&self.shared, &table, &self.poll, &mut self.tally, self.id);
            for event in self.events.iter() {
                if let Some(Some(link)) = self.links.get_mut(event.token().0) {
                    link.on_event(&mut cx, event.is_read_closed() || event.is_error());
                }
            }
        }
        let state = self.shared.state();
        // The grace may have installed tables with new queues of ours (redirects).
        let table = self.shared.routes.load_full();
        self.sync(&table);
        let mut cx = Self::cx(&self.shared, &table, &self.poll, &mut self.tally, self.id);
        for link in self.links.iter_mut().flatten() {
            link.fail_queued(&mut cx, state);
            link.fail_in_flight(&mut cx, state);
        }
        for queue in &table.masters {
            if queue.io == self.id {
                self.shared.drain_stopped(queue, state);
            }
        }
        self.tally.flush(&self.shared);
    }
}
