//! The writers: drain the shard rings, pipeline each batch to the slots' masters, complete
//! every op with what Redis answered.
//!
//! One writer thread per master (see `cluster::Topology`): it owns the logical shards whose
//! slots that master serves, so a master that stalls stalls one writer and the others keep
//! flowing. One cycle of a writer:
//!
//! 1. **Take what is queued, never wait for more.** Ops due for a retry go first, then each
//!    owned ring gives up to its shard's current batch cap with one `pop_batch` claim, until the
//!    writer holds `batching.max_batch` ops. That is the writer's whole buffer: `batch` and
//!    `retry` together never hold more than `max_batch` ops.
//! 2. **Route.** Each op goes to the master serving its slot in the current topology snapshot,
//!    or to the node an `ASK` named. Ops are grouped per node.
//! 3. **Send.** Per node, one pipelined write: the ops (each claimed with
//!    [`Op::claim_for_send`], so an op whose caller already gave up is never sent), an
//!    `ASKING` before each asked op, and one `WAIT n timeout` when `ack.replicas > 0`. Every
//!    node's pipeline is flushed before any reply is read, so the masters work in parallel.
//! 4. **Read and complete.** One reply per op: `OK` completes it (or
//!    [`CommitError::ReplicationShortfall`] when the `WAIT` counted too few replicas); `MOVED`
//!    updates that one slot in the topology, schedules a rate-limited refresh, and resends;
//!    `ASK` resends to the named node without touching the map; `TRYAGAIN`, `CLUSTERDOWN`,
//!    `LOADING`, `MASTERDOWN`, `READONLY` and lost connections refresh the topology and resend
//!    after a backoff; any other error reply completes the op with [`CommitError::Server`].
//!    An op whose deadline passes while it waits for a retry is completed with
//!    [`CommitError::DeadlineExceeded`].
//! 5. **Adapt the batch cap.** Per shard, the writer keeps the round-trip times of its last
//!    batches; while their p95 is over `batching.p95_budget` the shard's cap halves, and once
//!    it is back under half the budget the cap doubles again, up to `max_batch`.
//!
//! Which retries can apply a write twice is explained in the crate docs.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use slotline_router::{Addr, NodeMap, Redirect, RedirectKind};

use crate::client::Shared;
use crate::config::NodeAddr;
use crate::conn::{Conn, Reply};
use crate::error::CommitError;
use crate::op::Op;

/// How long an idle writer parks before it looks again (deadlines of queued retries, a
/// pending topology refresh) even if nobody wakes it.
const IDLE_PARK: Duration = Duration::from_millis(2);
/// First backoff before resending after a transient error; doubles per attempt.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest backoff between two resends of one op.
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// Round-trip samples per shard for the p95 of the latency budget.
const WINDOW: usize = 32;

/// The parking spot of one writer thread.
#[derive(Debug, Default)]
pub(crate) struct Parking {
    thread: OnceLock<Thread>,
    /// `true` while the writer is (about to be) parked; a producer that sees it unparks.
    sleeping: AtomicBool,
}

impl Parking {
    /// Wakes the writer whether or not it looks parked (shutdown).
    pub(crate) fn wake_now(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// Wakes the writer if it is parked. Called by a producer after its push.
    ///
    /// The `SeqCst` fence pairs with the writer's fence between setting `sleeping` and
    /// re-checking its rings: either the writer sees the pushed op, or this sees `sleeping`.
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            if let Some(thread) = self.thread.get() {
                thread.unpark();
            }
        }
    }
}

/// An op the writer holds: fresh from a ring, or waiting to be resent.
#[derive(Debug)]
struct Held {
    op: Op,
    /// The shard whose ring it came from (for metrics and the batch cap).
    shard: usize,
    /// Send to this node (after `ASKING`) instead of the slot's master: an `ASK` redirect.
    ask: Option<Addr>,
    /// Resends so far.
    attempts: u32,
    /// Not to be resent before this instant.
    not_before: Option<Instant>,
}

/// Where one held op stands within a cycle.
#[derive(Debug)]
enum Outcome {
    /// Not yet sent in this cycle.
    Pending,
    /// Written to connection `conn`; its reply is awaited.
    Sent { conn: usize },
    /// Its caller gave up before it was sent: drop it unsent.
    Abandoned,
    /// Decided: complete it with this result.
    Finish(Result<(), CommitError>),
    /// The node answered `OK`; completed after the group's `WAIT` reply is known.
    Acked { conn: usize },
    /// To be resent: after `backoff`, to `ask` if set.
    Retry {
        backoff: Duration,
        ask: Option<Addr>,
    },
}

/// One connection a writer keeps, to one node.
struct Link {
    addr: Addr,
    conn: Option<Conn>,
    /// Whether this cycle wrote to it (and so must read from it).
    used: bool,
    /// The `WAIT` reply of this cycle: replicas that confirmed (`None`: no WAIT sent/read).
    confirmed: Option<u32>,
    /// Failed this cycle: every op sent to it is resent.
    failed: bool,
}

/// Per-shard adaptive batch cap.
#[derive(Clone)]
struct Budget {
    cap: usize,
    /// The writer cycle that last touched this shard (dedupes `Writer::touched`).
    cycle: u64,
    samples: [u32; WINDOW],
    filled: usize,
    next: usize,
}

/// The state of one writer thread. Everything here is sized at start-up.
pub(crate) struct Writer {
    id: usize,
    shared: Arc<Shared>,
    max_batch: usize,
    /// Ops taken this cycle. Capacity `max_batch`, never exceeded.
    batch: Vec<Held>,
    outcomes: Vec<Outcome>,
    /// Ops waiting to be resent. `batch.len() + retry.len() <= max_batch` at all times.
    retry: Vec<Held>,
    /// The shards this writer drains, recomputed when the topology changes.
    owned: Vec<usize>,
    generation: u64,
    /// Rotates the shard the cycle starts with, so no shard is always served last.
    start: usize,
    links: Vec<Link>,
    budgets: Vec<Budget>,
    /// Shards that completed ops this cycle. Capacity: the shard count.
    touched: Vec<usize>,
    /// Ops completed this cycle: their shard and, for successes, their latency. Capacity
    /// `max_batch`, never exceeded (only ops of `batch` land here).
    done: Vec<(usize, Option<Duration>)>,
    cycles: u64,
}

impl Writer {
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Writer {
        let max_batch = shared.config.batching.max_batch;
        let shards = shared.rings.len();
        Writer {
            id,
            max_batch,
            batch: Vec::with_capacity(max_batch),
            outcomes: Vec::with_capacity(max_batch),
            retry: Vec::with_capacity(max_batch),
            owned: Vec::with_capacity(shards),
            generation: u64::MAX,
            start: 0,
            links: Vec::new(),
            budgets: vec![
                Budget {
                    cap: max_batch,
                    cycle: 0,
                    samples: [0; WINDOW],
                    filled: 0,
                    next: 0,
                };
                shards
            ],
            touched: Vec::with_capacity(shards),
            done: Vec::with_capacity(max_batch),
            cycles: 0,
            shared,
        }
    }

    /// The writer thread's loop; returns when the client closes.
    pub(crate) fn run(mut self) {
        let parking = &self.shared.parking[self.id];
        let _ = parking.thread.set(thread::current());
        loop {
            self.shared.topology.maybe_refresh();
            self.refresh_owned();
            let closing = self.shared.closed.load(Ordering::Acquire);
            self.gather();
            if !self.batch.is_empty() {
                self.cycle();
                continue;
            }
            if closing {
                break;
            }
            // Nothing to do: park, unless an op arrived after the rings were looked at.
            let parking = &self.shared.parking[self.id];
            parking.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if !self.has_work() {
                let park = self
                    .retry
                    .iter()
                    .filter_map(|h| h.not_before)
                    .min()
                    .map_or(IDLE_PARK, |t| {
                        t.saturating_duration_since(Instant::now()).min(IDLE_PARK)
                    });
                thread::park_timeout(park);
            }
            parking.sleeping.store(false, Ordering::Relaxed);
        }
        // Closing: whatever is still held or queued is completed by `Op`'s drop
        // (`Closed`, or `ConnectionLost` if it was sent).
        self.retry.clear();
        for &shard in &self.owned {
            while self.shared.rings[shard].try_pop().is_some() {}
        }
    }

    fn has_work(&self) -> bool {
        self.owned.iter().any(|&s| !self.shared.rings[s].is_empty())
    }

    fn refresh_owned(&mut self) {
        let generation = self.shared.topology.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        // Keep connections only to nodes that are still masters: the link list stays as short
        // as the cluster, however many nodes redirects named over time.
        let snapshot = self.shared.topology.snapshot();
        self.links
            .retain(|l| snapshot.masters().any(|m| m.addr == l.addr));
        self.owned.clear();
        for shard in 0..self.shared.rings.len() {
            if self.shared.topology.owner(shard) == self.id {
                self.owned.push(shard);
            }
        }
    }

    /// Step 1: due retries, then what the owned rings hold, up to `max_batch` in all.
    fn gather(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.retry.len() {
            if self.retry[i].not_before.is_none_or(|t| t <= now) {
                let held = self.retry.swap_remove(i);
                self.batch.push(held);
            } else {
                i += 1;
            }
        }
        let n = self.owned.len();
        if n == 0 {
            return;
        }
        self.start = (self.start + 1) % n;
        for k in 0..n {
            let room = self.max_batch - self.batch.len() - self.retry.len();
            if room == 0 {
                break;
            }
            let shard = self.owned[(self.start + k) % n];
            let cap = self.budgets[shard].cap.min(room);
            let mut sink = Sink {
                batch: &mut self.batch,
                shard,
            };
            let n = self.shared.rings[shard].pop_batch(cap, &mut sink);
            if n > 0 {
                self.shared.shard_metrics(shard).add_in_flight(n as u64);
            }
        }
    }

    /// Steps 2-5 for the ops in `batch`.
    fn cycle(&mut self) {
        let snapshot = self.shared.topology.snapshot();
        self.outcomes.clear();
        self.outcomes
            .extend(std::iter::repeat_with(|| Outcome::Pending).take(self.batch.len()));
        for link in &mut self.links {
            link.used = false;
            link.confirmed = None;
            link.failed = false;
        }
        let sent_at = Instant::now();
        self.send(&snapshot);
        self.read();
        let rtt = sent_at.elapsed();
        self.complete(rtt);
    }

    /// Steps 2 and 3: route each op and write it to its node; flush every node.
    fn send(&mut self, map: &NodeMap) {
        let now = Instant::now();
        for i in 0..self.batch.len() {
            let held = &self.batch[i];
            if held.op.is_expired(now) {
                let sent = held.op.is_sent();
                self.outcomes[i] = Outcome::Finish(Err(CommitError::DeadlineExceeded {
                    may_have_been_applied: sent,
                }));
                continue;
            }
            // Borrowed, not cloned: a lookup per op must not allocate.
            let Some(target) = held
                .ask
                .as_ref()
                .or_else(|| map.master_addr(held.op.slot()))
            else {
                // A hole: the slot has no master right now (failover, resharding).
                self.shared.topology.mark_stale();
                self.outcomes[i] = Outcome::Retry {
                    backoff: backoff(held.attempts),
                    ask: None,
                };
                continue;
            };
            let Some(link) = link_to(&mut self.links, &self.shared, target) else {
                self.shared.topology.mark_stale();
                self.outcomes[i] = Outcome::Retry {
                    backoff: backoff(held.attempts),
                    ask: held.ask.clone(),
                };
                continue;
            };
            let held = &self.batch[i];
            if !held.op.is_sent() && !held.op.claim_for_send() {
                // The caller gave up before the op was sent: it never will be.
                self.outcomes[i] = Outcome::Abandoned;
                continue;
            }
            let l = &mut self.links[link];
            let Some(conn) = l.conn.as_mut() else {
                continue;
            };
            let mut result = Ok(());
            if held.ask.is_some() {
                result = conn.write_packed(ASKING);
            }
            if result.is_ok() {
                result = conn.write_packed(held.op.packed());
            }
            l.used = true;
            if result.is_err() {
                l.failed = true;
            }
            self.outcomes[i] = Outcome::Sent { conn: link };
        }
        let replicas = self.shared.config.ack.replicas;
        let wait = (replicas > 0).then(|| {
            let timeout = self.shared.config.ack.timeout.as_millis().max(1);
            redis::cmd("WAIT")
                .arg(replicas)
                .arg(timeout as u64)
                .get_packed_command()
        });
        for l in &mut self.links {
            if !l.used || l.failed {
                continue;
            }
            let Some(conn) = l.conn.as_mut() else {
                continue;
            };
            let mut result = Ok(());
            if let Some(wait) = &wait {
                result = conn.write_packed(wait);
            }
            if result.is_ok() {
                result = conn.flush();
            }
            if result.is_err() {
                l.failed = true;
            }
        }
    }

    /// Step 4 (reading): one reply per sent op, per node in send order, then the `WAIT` reply.
    fn read(&mut self) {
        let replicas = self.shared.config.ack.replicas;
        for link in 0..self.links.len() {
            if !self.links[link].used {
                continue;
            }
            let asked_host = self.links[link].addr.host().to_owned();
            let mut failed = self.links[link].failed;
            for i in 0..self.batch.len() {
                if !matches!(self.outcomes[i], Outcome::Sent { conn } if conn == link) {
                    continue;
                }
                if failed {
                    self.outcomes[i] = self.lost(i);
                    continue;
                }
                let conn = self.links[link]
                    .conn
                    .as_mut()
                    .expect("a used link has a connection");
                if self.batch[i].ask.is_some() {
                    // The ASKING reply; an error there shows in the command's own reply.
                    if conn.read_reply().is_err() {
                        failed = true;
                        self.outcomes[i] = self.lost(i);
                        continue;
                    }
                }
                match conn.read_reply() {
                    Ok(reply) => self.outcomes[i] = self.classify(i, link, reply, &asked_host),
                    Err(_) => {
                        failed = true;
                        self.outcomes[i] = self.lost(i);
                    }
                }
            }
            if !failed && replicas > 0 {
                let conn = self.links[link]
                    .conn
                    .as_mut()
                    .expect("a used link has a connection");
                match conn.read_reply() {
                    Ok(Ok(redis::Value::Int(n))) => {
                        self.links[link].confirmed =
                            Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
                    }
                    Ok(_) => self.links[link].confirmed = Some(0),
                    Err(_) => failed = true,
                }
            }
            if failed {
                self.links[link].failed = true;
                // Drop the broken connection; the next cycle reconnects.
                self.links[link].conn = None;
                self.shared.topology.mark_stale();
                // Ops acked on this link before it broke never saw their WAIT reply.
                if replicas > 0 {
                    for i in 0..self.batch.len() {
                        if matches!(self.outcomes[i], Outcome::Acked { conn } if conn == link) {
                            self.outcomes[i] = self.lost(i);
                        }
                    }
                }
            }
        }
    }

    /// What a lost connection means for op `i`: resend it (see the module docs).
    fn lost(&self, i: usize) -> Outcome {
        Outcome::Retry {
            backoff: backoff(self.batch[i].attempts),
            ask: self.batch[i].ask.clone(),
        }
    }

    /// Step 4 (deciding): what one reply means for op `i`.
    fn classify(&mut self, i: usize, link: usize, reply: Reply, asked_host: &str) -> Outcome {
        let shard = self.batch[i].shard;
        let err = match reply {
            Ok(redis::Value::ServerError(err)) | Err(err) => err,
            Ok(_) => return Outcome::Acked { conn: link },
        };
        let code = err.code().to_owned();
        let detail = err.details().unwrap_or("");
        match code.as_str() {
            "MOVED" | "ASK" => {
                let Ok(redirect) = Redirect::parse(&format!("{code} {detail}")) else {
                    return Self::fail(format!("{code} {detail}"));
                };
                let target = redirect.target(asked_host);
                if redirect.kind() == RedirectKind::Moved {
                    self.shared.shard_metrics(shard).record_moved();
                    self.shared.topology.apply_moved(redirect.slot(), target);
                    Outcome::Retry {
                        backoff: Duration::ZERO,
                        ask: None,
                    }
                } else {
                    self.shared.shard_metrics(shard).record_ask();
                    Outcome::Retry {
                        backoff: Duration::ZERO,
                        ask: Some(target),
                    }
                }
            }
            "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY" => {
                self.shared.topology.mark_stale();
                Outcome::Retry {
                    backoff: backoff(self.batch[i].attempts),
                    ask: None,
                }
            }
            _ => Self::fail(format!("{code} {detail}").trim_end().to_owned()),
        }
    }

    fn fail(message: String) -> Outcome {
        Outcome::Finish(Err(CommitError::Server { message }))
    }

    /// Step 4 (completing) and step 5: complete or requeue every op, adapt the caps.
    fn complete(&mut self, rtt: Duration) {
        let wanted = self.shared.config.ack.replicas;
        let now = Instant::now();
        self.cycles += 1;
        for (held, outcome) in self.batch.drain(..).zip(self.outcomes.drain(..)) {
            match outcome {
                Outcome::Abandoned => self.done.push((held.shard, None)),
                Outcome::Finish(result) => {
                    finish(&self.shared, &mut self.done, &held, &result, now);
                    held.op.complete(result);
                }
                Outcome::Pending | Outcome::Sent { .. } => {
                    // Not reached (a write error stopped the pipeline before it): resend.
                    requeue(&mut self.retry, held, backoff(0), None, now);
                }
                Outcome::Acked { conn } => {
                    let result = match self.links[conn].confirmed {
                        Some(confirmed) if wanted > 0 && confirmed < wanted => {
                            Err(CommitError::ReplicationShortfall { wanted, confirmed })
                        }
                        _ => Ok(()),
                    };
                    finish(&self.shared, &mut self.done, &held, &result, now);
                    if self.budgets[held.shard].cycle != self.cycles {
                        self.budgets[held.shard].cycle = self.cycles;
                        self.touched.push(held.shard);
                    }
                    held.op.complete(result);
                }
                Outcome::Retry { backoff, ask } => {
                    if held.op.is_expired(now) {
                        let sent = held.op.is_sent();
                        let result = Err(CommitError::DeadlineExceeded {
                            may_have_been_applied: sent,
                        });
                        finish(&self.shared, &mut self.done, &held, &result, now);
                        held.op.complete(result);
                    } else {
                        requeue(&mut self.retry, held, backoff, ask, now);
                    }
                }
            }
        }
        // Latencies and in-flight counts go to the metrics once per run of ops from one shard
        // (the batch holds each shard's ops together): one histogram lock per run, not per op.
        let mut start = 0;
        while start < self.done.len() {
            let shard = self.done[start].0;
            let len = self.done[start..]
                .iter()
                .take_while(|(s, _)| *s == shard)
                .count();
            let run = &self.done[start..start + len];
            let metrics = self.shared.shard_metrics(shard);
            metrics.sub_in_flight(len as u64);
            metrics.record_latencies(run.iter().filter_map(|(_, latency)| *latency));
            start += len;
        }
        self.done.clear();
        let budget = self.shared.config.batching.p95_budget;
        for shard in self.touched.drain(..) {
            self.budgets[shard].observe(rtt, budget, self.max_batch);
        }
    }
}

/// The index of the link to `addr`, connecting if needed; `None` if the connect failed.
fn link_to(links: &mut Vec<Link>, shared: &Shared, addr: &Addr) -> Option<usize> {
    let index = match links.iter().position(|l| &l.addr == addr) {
        Some(i) => i,
        None => {
            links.push(Link {
                addr: addr.clone(),
                conn: None,
                used: false,
                confirmed: None,
                failed: false,
            });
            links.len() - 1
        }
    };
    let link = &mut links[index];
    if link.failed {
        return None;
    }
    if link.conn.is_none() {
        let node = NodeAddr::new(addr.host(), addr.port());
        match Conn::connect(&node, &shared.conn_opts) {
            Ok(conn) => link.conn = Some(conn),
            Err(_) => {
                link.failed = true;
                return None;
            }
        }
    }
    Some(index)
}

/// Counts the outcome of a completed op; its latency (successes only) and its leaving the
/// in-flight count are tallied in `done` and recorded per shard after the sweep.
fn finish(
    shared: &Shared,
    done: &mut Vec<(usize, Option<Duration>)>,
    held: &Held,
    result: &Result<(), CommitError>,
    now: Instant,
) {
    shared.shard_metrics(held.shard).record_outcome(result);
    let latency = result
        .is_ok()
        .then(|| now.saturating_duration_since(held.op.created()));
    done.push((held.shard, latency));
}

/// `ASKING`, sent before a command redirected by `ASK`.
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

fn backoff(attempts: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1 << attempts.min(16))
        .min(BACKOFF_MAX)
}

fn requeue(
    retry: &mut Vec<Held>,
    mut held: Held,
    backoff: Duration,
    ask: Option<Addr>,
    now: Instant,
) {
    held.attempts = held.attempts.saturating_add(1);
    held.ask = ask;
    held.not_before = (!backoff.is_zero()).then(|| now + backoff);
    retry.push(held);
}

impl Budget {
    fn observe(&mut self, rtt: Duration, budget: Duration, max_batch: usize) {
        self.samples[self.next] = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        self.next = (self.next + 1) % WINDOW;
        self.filled = (self.filled + 1).min(WINDOW);
        // Judge the window once it is half full, then every `WINDOW / 8` samples: a sort per
        // sample would cost more than the batching it steers.
        if self.filled < WINDOW / 2 || self.next % (WINDOW / 8) != 0 {
            return;
        }
        let mut sorted = self.samples;
        let window = &mut sorted[..self.filled];
        window.sort_unstable();
        let p95 = Duration::from_micros(u64::from(window[(self.filled * 95).div_ceil(100) - 1]));
        if p95 > budget {
            self.cap = (self.cap / 2).max(1);
        } else if p95 < budget / 2 {
            self.cap = self.cap.saturating_mul(2).min(max_batch);
        }
    }
}

/// Adapts a writer's `batch` to `Ring::pop_batch`: every op popped is held with its shard.
struct Sink<'a> {
    batch: &'a mut Vec<Held>,
    shard: usize,
}

impl Extend<Op> for Sink<'_> {
    fn extend<I: IntoIterator<Item = Op>>(&mut self, ops: I) {
        for op in ops {
            debug_assert!(
                self.batch.len() < self.batch.capacity(),
                "pop_batch exceeded its cap"
            );
            self.batch.push(Held {
                op,
                shard: self.shard,
                ask: None,
                attempts: 0,
                not_before: None,
            });
        }
    }
}
