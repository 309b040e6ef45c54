//! One master's link: its connection state machine, its pipelined batches, its retries and
//! the completion of every op it takes.
//!
//! # States
//!
//! `Down` (reconnect at a time, with a backoff that doubles per failure up to
//! [`RECONNECT_MAX`]) → `Connecting` (non-blocking TCP connect) → `Handshaking` (TLS, when on)
//! → `Authenticating` (`AUTH`, when credentials are set) → `Ready`. Reaching `Ready` is bounded
//! by `redis_pool.dial_timeout`. A link connects only when it has work.
//!
//! # Batches in flight
//!
//! While `Ready`, the link takes ops from its queue as long as it has fewer than
//! `batching.pipeline_depth` batches in flight: due retries first, then the ring, up to the
//! batch cap (`batching.max_batch`, halved while the batches' round trip is over
//! `batching.p95_budget`). Each op is checked on the way: an op whose caller gave up is
//! dropped unsent, an expired one fails, and an op whose slot now belongs to another master
//! is forwarded to that master's queue. A batch ends with `WAIT n timeout` when one of its ops
//! asks for replicas (`ack.replicas`, or the call's own), `n` the most any of them asks for.
//! Replies are read as they arrive, in order, against a queue of what each reply answers.
//!
//! # What a reply, a failure or a deadline does to an op
//!
//! | event | outcome |
//! |---|---|
//! | `+OK` or any non-error reply, the op asks for no replica | `Ok` with the reply |
//! | non-error reply, then the batch's `WAIT` says `n` | `Ok` with the reply if `n >=` the op's replicas, else `ReplicationShortfall` |
//! | non-error reply, then the connection fails before `WAIT` answers | `ReplicationUnconfirmed` (applied; never resent) |
//! | `MOVED` | the slot is re-pointed, the op goes to its new master's queue |
//! | `ASK` | the op goes to the named master's queue, sent there after `ASKING` |
//! | `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, `READONLY` | resent after a backoff (5 ms doubling to 250 ms) |
//! | any other error reply | `Server` (not applied) |
//! | connection fails, the command was not wholly written | resent (it cannot have been applied) |
//! | connection fails after the command was written | `SET` from `commit` is resent; any other command fails `ConnectionLost { may_have_been_applied: true }` |
//! | the deadline passes while queued or waiting for a retry | `DeadlineExceeded`, applied only if an earlier send may have been |
//! | the deadline passes in flight | `DeadlineExceeded { may_have_been_applied: true }`; its reply is discarded |
//!
//! An op whose reply was read is never sent again, whatever happens after it.
//!
//! # Stalls
//!
//! A link with requests outstanding that hears nothing for `redis_pool.read_timeout` after
//! its oldest outstanding op's deadline has passed is presumed dead, closed and reconnected:
//! the oldest ops' callers already have their answers (`DeadlineExceeded`), and the window is
//! freed. Younger requests still in flight on it end as on any failed connection (`SET` from
//! `commit` is resent, any other command gets `ConnectionLost { may_have_been_applied: true }`).
//! I/O timeouts thus follow from the ops' deadlines.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use slotline_router::{parse_resp, Redirect, RedirectKind, RespError, Value as RouteValue};

use super::transport::Transport;
use super::Shared;
use crate::error::CommitError;
use crate::op::{Op, ReplyResult};
use crate::route::{MasterQueue, RouteTable};

/// First backoff before resending after a transient error reply; doubles per attempt.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest backoff between two resends.
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// First wait before reconnecting after a failure; doubles per failure.
const RECONNECT_START: Duration = Duration::from_millis(10);
/// Longest wait between two connect attempts.
pub(crate) const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Redirects one op may follow before it fails.
const MAX_REDIRECTS: u32 = 16;
/// Wait before trying again to forward an op into a full queue.
const FORWARD_RETRY: Duration = Duration::from_millis(1);
/// A batch stops taking ops once its commands reach this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// The read buffer starts at this size and grows only for a larger single reply.
const READ_CHUNK: usize = 64 * 1024;
/// Largest single reply accepted (Redis's own default `proto-max-bulk-len` is 512 MiB).
const MAX_REPLY: usize = 512 << 20;
/// Batches observed between two judgements of the latency budget.
const BUDGET_EVERY: u32 = 8;

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// What the I/O thread lends a link for one call.
pub(crate) struct Cx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) table: &'a Arc<RouteTable>,
    pub(crate) registry: &'a Registry,
    pub(crate) now: Instant,
    /// This I/O thread's index.
    pub(crate) io: usize,
    /// Set when an op was forwarded to a queue of this same thread: drive again at once.
    pub(crate) again: bool,
    pub(crate) tally: &'a mut Tally,
}

/// Latencies and in-flight changes gathered during a turn, recorded once per turn.
#[derive(Default)]
pub(crate) struct Tally {
    /// (shard, latency) of each op acknowledged this turn.
    pub(crate) latencies: Vec<(usize, Duration)>,
    /// In-flight change per shard; `dirty` lists the shards touched.
    pub(crate) in_flight: Vec<i64>,
    pub(crate) dirty: Vec<usize>,
}

impl Tally {
    fn in_flight(&mut self, shard: usize, delta: i64) {
        if self.in_flight.len() <= shard {
            self.in_flight.resize(shard + 1, 0);
        }
        if self.in_flight[shard] == 0 {
            self.dirty.push(shard);
        }
        self.in_flight[shard] += delta;
    }

    /// Records everything gathered into the metrics.
    pub(crate) fn flush(&mut self, shared: &Shared) {
        for shard in self.dirty.drain(..) {
            let delta = std::mem::take(&mut self.in_flight[shard]);
            if let Some(m) = shared.metrics.shard(shard) {
                if delta > 0 {
                    m.add_in_flight(delta as u64);
                } else if delta < 0 {
                    m.sub_in_flight(delta.unsigned_abs());
                }
            }
        }
        if self.latencies.is_empty() {
            return;
        }
        self.latencies.sort_unstable_by_key(|&(shard, _)| shard);
        let mut start = 0;
        while start < self.latencies.len() {
            let shard = self.latencies[start].0;
            let len = self.latencies[start..]
                .iter()
                .take_while(|(s, _)| *s == shard)
                .count();
            if let Some(m) = shared.metrics.shard(shard) {
                m.record_latencies(self.latencies[start..start + len].iter().map(|&(_, l)| l));
            }
            start += len;
        }
        self.latencies.clear();
    }
}

/// What one expected reply answers.
enum Expect {
    /// `AUTH` during connect.
    Auth,
    /// `ASKING` before an asked op.
    Asking,
    /// An op; `None` once completed early (its deadline passed). `end` is the stream offset
    /// just past its bytes: it was wholly written iff `end <= written`.
    Op { op: Option<Op>, end: u64 },
    /// The end of a batch: its `WAIT` reply when `wait`, else no reply at all.
    End { wait: bool, sent_at: Instant },
}

enum State {
    Down { retry_at: Instant },
    Connecting { since: Instant },
    Handshaking { since: Instant },
    Authenticating { since: Instant },
    Ready,
}

/// An op waiting to be sent again.
struct Retry {
    op: Op,
    not_before: Instant,
}

/// One master's connection and everything it holds. See the [module docs](self).
pub(crate) struct Link {
    pub(crate) queue: Arc<MasterQueue>,
    pub(crate) token: Token,
    /// The master is no longer in the slot table: forward what it holds, then go away.
    pub(crate) retired: bool,
    state: State,
    transport: Option<Transport>,
    /// Bytes to write; `out[out_pos..]` is not written yet.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes the transport has taken since the connection started.
    written: u64,
    /// Stream offset of the end of `out`.
    appended: u64,
    /// Received bytes are `inbuf[in_start..in_end]`; its length is its allocation, zeroed
    /// once when it grows.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    expect: VecDeque<Expect>,
    /// Ops of the oldest batch whose reply was read, with their replies, awaiting its `WAIT`.
    acked: Vec<(Op, redis::Value)>,
    /// The most replicas an op staged in the batch being built asks for (its `WAIT`).
    batch_replicas: u32,
    batches: usize,
    /// Ops in `expect` not yet completed.
    in_flight: usize,
    /// The ring's oldest op, taken out to watch its deadline while it cannot be sent.
    head: Option<Op>,
    retry: VecDeque<Retry>,
    /// Earliest deadline among the ops in `retry` (a lower bound).
    retry_deadline: Option<Instant>,
    /// The table version whose routing the ops in `retry` were last checked against.
    rerouted: u64,
    /// When ops held with a future `not_before` (a full forward target, a backoff) are to be
    /// looked at again while the link cannot send.
    reroute_at: Option<Instant>,
    /// Earliest deadline among the ops in `expect` and `acked` (a lower bound).
    next_deadline: Option<Instant>,
    /// Last time bytes moved in either direction.
    last_progress: Instant,
    failures: u32,
    /// Ops taken from the ring this batch (reused).
    staging: Vec<Op>,
    cap: usize,
    rtt_sum: Duration,
    rtt_n: u32,
    /// The poller reported the node's side closed or in error: no short-read shortcut.
    peer_closed: bool,
    /// Why the last connection failed, for `Debug`.
    pub(crate) last_error: Option<String>,
}

impl Link {
    pub(crate) fn new(
        queue: Arc<MasterQueue>,
        token: Token,
        max_batch: usize,
        now: Instant,
    ) -> Link {
        Link {
            queue,
            token,
            retired: false,
            state: State::Down { retry_at: now },
            transport: None,
            out: Vec::new(),
            out_pos: 0,
            written: 0,
            appended: 0,
            inbuf: Vec::new(),
            in_start: 0,
            in_end: 0,
            expect: VecDeque::new(),
            acked: Vec::new(),
            batch_replicas: 0,
            batches: 0,
            in_flight: 0,
            head: None,
            retry: VecDeque::new(),
            retry_deadline: None,
            rerouted: 0,
            reroute_at: None,
            next_deadline: None,
            last_progress: now,
            failures: 0,
            staging: Vec::with_capacity(max_batch),
            cap: max_batch,
            rtt_sum: Duration::ZERO,
            rtt_n: 0,
            last_error: None,
            peer_closed: false,
        }
    }

    /// Holds `op` for a send after `not_before`.
    fn hold(&mut self, op: Op, not_before: Instant) {
        let d = op.deadline();
        self.retry_deadline = Some(self.retry_deadline.map_or(d, |r| r.min(d)));
        // A link that cannot send looks at it again then (it may belong elsewhere by then).
        // Only a future time needs that: an op held for now is re-checked when the table
        // changes, and marking it due would make a link that cannot send spin.
        if not_before > Instant::now() {
            self.reroute_at = Some(self.reroute_at.map_or(not_before, |r| r.min(not_before)));
        }
        self.retry.push_back(Retry { op, not_before });
    }

    /// Whether the link holds nothing: no op queued, held, in flight or awaiting a retry.
    pub(crate) fn is_idle(&self) -> bool {
        self.expect.is_empty()
            && self.acked.is_empty()
            && self.head.is_none()
            && self.retry.is_empty()
            && self.queue.ring.is_empty()
    }

    fn window_ops(cx: &Cx<'_>) -> usize {
        cx.shared.config.batching.max_batch * cx.shared.config.batching.pipeline_depth
    }

    /// Whether the link would do something if driven now (for the I/O thread's last look
    /// before it sleeps).
    pub(crate) fn wants_turn(&self, cx: &Cx<'_>) -> bool {
        let queued = !self.queue.ring.is_empty();
        let due = self.retry.front().is_some_and(|r| r.not_before <= cx.now);
        let room = self.retry.len() + self.in_flight < Self::window_ops(cx);
        match self.state {
            _ if self.retired => {
                self.reroute_at.is_some_and(|t| t <= cx.now)
                    || ((queued || self.head.is_some()) && self.retry.len() < Self::window_ops(cx))
            }
            State::Ready => {
                (queued || due || self.head.is_some())
                    && self.batches < cx.shared.config.batching.pipeline_depth
                    && room
            }
            State::Down { retry_at } => {
                (retry_at <= cx.now && !self.is_idle())
                    || (queued && room)
                    || self.reroute_at.is_some_and(|t| t <= cx.now)
            }
            _ => queued && room,
        }
    }

    /// The earliest time this link must be driven again without any event.
    pub(crate) fn next_wake(&self, cx: &Cx<'_>) -> Option<Instant> {
        let opts = &cx.shared.conn_opts;
        let mut at = self.next_deadline;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some(op) = &self.head {
            consider(op.deadline());
        }
        if let Some(d) = self.retry_deadline {
            consider(d);
        }
        let can_send = matches!(self.state, State::Ready)
            && !self.retired
            && self.batches < cx.shared.config.batching.pipeline_depth;
        if can_send {
            // Only a link that could send them now wakes for due retries.
            if let Some(r) = self.retry.front() {
                consider(r.not_before);
            }
        } else if self.retired || !matches!(self.state, State::Ready) {
            if let Some(t) = self.reroute_at {
                consider(t);
            }
        }
        match self.state {
            State::Down { retry_at } if !self.retired && !self.is_idle() => consider(retry_at),
            State::Connecting { since }
            | State::Handshaking { since }
            | State::Authenticating { since } => consider(after(since, opts.dial_timeout)),
            State::Ready if !self.expect.is_empty() => {
                // Only while still ahead: once past, the oldest deadline (`next_deadline`)
                // is what wakes the stall check.
                let stall = after(self.last_progress, opts.read_timeout);
                if stall > cx.now {
                    consider(stall);
                }
            }
            State::Ready => consider(after(
                self.last_progress,
                cx.shared.config.redis_pool.idle_timeout,
            )),
            _ => {}
        }
        at
    }

    /// Everything a turn does for this link, apart from reading: connect, take and send
    /// ops, resolve deadlines, notice stalls.
    pub(crate) fn drive(&mut self, cx: &mut Cx<'_>) {
        if self.retired || !matches!(self.state, State::Ready) {
            self.reroute_held(cx);
        }
        match self.state {
            State::Down { retry_at } => {
                if !self.retired && retry_at <= cx.now && !self.is_idle() {
                    self.start_connect(cx);
                }
            }
            State::Connecting { since }
            | State::Handshaking { since }
            | State::Authenticating { since } => {
                if cx.now >= after(since, cx.shared.conn_opts.dial_timeout) {
                    self.fail(cx, "connect timed out (redis_pool.dial_timeout)".to_owned());
                }
            }
            State::Ready => {
                if !self.retired {
                    self.admit(cx);
                }
                self.write_out(cx);
                // Ops whose deadline passed get `DeadlineExceeded` first: a stall noticed in
                // the same turn must not turn them into `ConnectionLost`.
                self.sweep(cx);
                if self.stalled(cx) {
                    self.fail(cx, "no reply within redis_pool.read_timeout after the oldest request's deadline".to_owned());
                } else if self.expect.is_empty()
                    && self.is_idle()
                    && cx.now >= after(self.last_progress, cx.shared.config.redis_pool.idle_timeout)
                {
                    self.close_idle(cx);
                }
            }
        }
        self.sweep(cx);
    }

    fn stalled(&self, cx: &Cx<'_>) -> bool {
        if self.expect.is_empty()
            || cx.now < after(self.last_progress, cx.shared.conn_opts.read_timeout)
        {
            return false;
        }
        // The oldest outstanding op: its deadline must have passed (or it is done already).
        for e in &self.expect {
            if let Expect::Op { op, .. } = e {
                return op.as_ref().is_none_or(|op| op.deadline() <= cx.now);
            }
        }
        // No caller's op outstanding (say, a `WAIT` whose ops all got error replies): nobody
        // waits, so nothing is stalled; ops sent later make the rule apply again.
        !self.acked.is_empty() && self.acked.iter().all(|(op, _)| op.deadline() <= cx.now)
    }

    /// Reacts to readiness of the socket: connect progress, writes, reads, replies.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, closed: bool) {
        if matches!(self.state, State::Down { .. }) {
            return;
        }
        // The node closed or errored: read to the end, so that the end is seen now.
        self.peer_closed |= closed;
        if let State::Connecting { .. } = self.state {
            let Some(t) = self.transport.as_mut() else {
                return;
            };
            match t.connected() {
                Ok(true) => self.on_connected(cx),
                Ok(false) => return,
                Err(err) => {
                    self.fail(cx, format!("connect: {err}"));
                    return;
                }
            }
        }
        if let Err(err) = self.pump(cx) {
            self.fail(cx, err);
        }
    }

    fn pump(&mut self, cx: &mut Cx<'_>) -> Result<(), String> {
        self.write_out(cx);
        if matches!(self.state, State::Down { .. }) {
            return Ok(());
        }
        self.read_in(cx)?;
        if let State::Handshaking { .. } = self.state {
            if !self.transport.as_ref().is_some_and(Transport::handshaking) {
                self.after_handshake(cx);
            }
        }
        self.write_out(cx);
        Ok(())
    }

    fn start_connect(&mut self, cx: &mut Cx<'_>) {
        let addr = &self.queue.addr;
        crate::trace::event!(debug, "slotline::conn", master = %addr, "connecting");
        let Some(target) = self.queue.socket_addr() else {
            // A host name: the refresh thread resolves it (a lookup may block; this thread
            // never does).
            cx.shared.routes.mark_stale();
            self.fail(cx, format!("{addr}: the host name is not resolved yet"));
            return;
        };
        let opts = &cx.shared.conn_opts;
        let socket = match Transport::connect(target, opts) {
            Ok(s) => s,
            Err(err) => {
                self.fail(cx, format!("connect: {err}"));
                return;
            }
        };
        let transport = match &opts.tls {
            None => Transport::Plain(socket),
            Some(tls) => match tls.client_connection(addr.host(), &addr.to_string()) {
                Ok(mut session) => {
                    session.set_buffer_limit(Some(super::transport::TLS_BUFFER_LIMIT));
                    Transport::Tls(Box::new((socket, session)))
                }
                Err(err) => {
                    self.fail(cx, err.to_string());
                    return;
                }
            },
        };
        self.transport = Some(transport);
        let t = self.transport.as_mut().expect("just set");
        if let Err(err) = cx.registry.register(
            t.socket(),
            self.token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.transport = None;
            self.fail(cx, format!("register: {err}"));
            return;
        }
        self.written = 0;
        self.appended = 0;
        self.out.clear();
        self.out_pos = 0;
        self.in_start = 0;
        self.in_end = 0;
        self.last_progress = cx.now;
        self.peer_closed = false;
        self.state = State::Connecting { since: cx.now };
    }

    fn on_connected(&mut self, cx: &mut Cx<'_>) {
        let since = match self.state {
            State::Connecting { since } => since,
            _ => cx.now,
        };
        self.state = State::Handshaking { since };
        if !self.transport.as_ref().is_some_and(Transport::handshaking) {
            self.after_handshake(cx);
        } else if let Some(t) = self.transport.as_mut() {
            let _ = t.flush();
        }
    }

    fn after_handshake(&mut self, cx: &mut Cx<'_>) {
        let since = match self.state {
            State::Handshaking { since } => since,
            _ => cx.now,
        };
        let opts = &cx.shared.conn_opts;
        if let Some(password) = &opts.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &opts.username {
                args.push(user.as_bytes());
            }
            args.push(password.expose().as_bytes());
            let before = self.out.len();
            slotline_router::write_command(&mut self.out, &args);
            self.appended += (self.out.len() - before) as u64;
            self.expect.push_back(Expect::Auth);
            self.state = State::Authenticating { since };
        } else {
            self.on_ready();
        }
    }

    fn on_ready(&mut self) {
        crate::trace::event!(debug, "slotline::conn", master = %self.queue.addr, "connection ready");
        self.state = State::Ready;
        self.failures = 0;
        self.last_error = None;
    }

    /// Takes ops while the window has room: due retries, the held head, then the ring.
    fn admit(&mut self, cx: &mut Cx<'_>) {
        let depth = cx.shared.config.batching.pipeline_depth;
        let window = Self::window_ops(cx);
        while self.batches < depth && matches!(self.state, State::Ready) {
            self.batch_replicas = 0;
            let start_len = self.out.len();
            let mut count = 0;
            // Due retries.
            while count < self.cap && self.out.len() - start_len < BATCH_BYTES {
                match self.retry.front() {
                    Some(r) if r.not_before <= cx.now => {
                        let r = self.retry.pop_front().expect("front exists");
                        count += self.stage(cx, r.op);
                    }
                    _ => break,
                }
            }
            if count < self.cap && self.retry.len() + self.in_flight < window {
                if let Some(op) = self.head.take() {
                    count += self.stage(cx, op);
                }
            }
            // The ring, in claims of up to the batch cap.
            while count < self.cap
                && self.out.len() - start_len < BATCH_BYTES
                && self.retry.len() + self.in_flight < window
            {
                let want = (self.cap - count).min(window - self.retry.len() - self.in_flight);
                let mut staging = std::mem::take(&mut self.staging);
                let n = self.queue.ring.pop_batch(want, &mut staging);
                self.queue.popped(n);
                for op in staging.drain(..) {
                    count += self.stage(cx, op);
                }
                self.staging = staging;
                if n == 0 {
                    break;
                }
            }
            if count == 0 {
                break;
            }
            let wait = self.batch_replicas > 0;
            if wait {
                let replicas = self.batch_replicas.to_string();
                let timeout = cx.shared.config.ack.timeout.as_millis().max(1).to_string();
                let before = self.out.len();
                slotline_router::write_command(
                    &mut self.out,
                    &[b"WAIT", replicas.as_bytes(), timeout.as_bytes()],
                );
                self.appended += (self.out.len() - before) as u64;
            }
            self.expect.push_back(Expect::End {
                wait,
                sent_at: cx.now,
            });
            self.batches += 1;
        }
    }

    /// Puts one op into the batch being built, or decides it otherwise. Returns 1 if it was
    /// written.
    fn stage(&mut self, cx: &mut Cx<'_>, mut op: Op) -> usize {
        if op.is_abandoned() {
            self.abandon(cx, op);
            return 0;
        }
        if op.is_expired(cx.now) {
            let applied = op.maybe_applied;
            self.finish(
                cx,
                op,
                Err(CommitError::DeadlineExceeded {
                    may_have_been_applied: applied,
                }),
            );
            return 0;
        }
        if !op.asking {
            let owner = cx.table.queue(op.slot());
            if !Arc::ptr_eq(owner, &self.queue) {
                let owner = Arc::clone(owner);
                self.forward(cx, op, &owner);
                return 0;
            }
        }
        if !op.is_sent() && !op.claim_for_send() {
            self.abandon(cx, op);
            return 0;
        }
        if op.asking {
            self.out.extend_from_slice(ASKING);
            self.appended += ASKING.len() as u64;
            self.expect.push_back(Expect::Asking);
            op.asking = false;
        }
        self.out.extend_from_slice(op.packed());
        self.appended += op.packed().len() as u64;
        self.batch_replicas = self.batch_replicas.max(op.replicas);
        let deadline = op.deadline();
        self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
        cx.tally.in_flight(cx.shared.shards.shard_of(op.slot()), 1);
        self.expect.push_back(Expect::Op {
            op: Some(op),
            end: self.appended,
        });
        self.in_flight += 1;
        1
    }

    /// Moves `op` (and its byte charge) to `target`'s queue; if that queue is full, keeps it
    /// for a retry shortly.
    fn forward(&mut self, cx: &mut Cx<'_>, op: Op, target: &Arc<MasterQueue>) {
        let n = op.charge();
        target.charge(n);
        match target.ring.try_push(op) {
            Ok(()) => {
                self.queue.release(n);
                cx.again |= target.io == cx.io;
                cx.shared.after_push(target);
            }
            Err(full) => {
                target.uncharge(n);
                self.hold(full.into_inner(), cx.now + FORWARD_RETRY);
            }
        }
    }

    /// A link that cannot send now (retired, down, connecting): ops whose slot now belongs to
    /// another master go there; the rest wait in `retry` (FIFO, bounded by the window), where
    /// their deadlines are watched and from where they are sent first once connected.
    fn reroute_held(&mut self, cx: &mut Cx<'_>) {
        let window = Self::window_ops(cx);
        let due = self.reroute_at.is_some_and(|t| t <= cx.now);
        if self.retired || due || self.rerouted != cx.table.version {
            self.rerouted = cx.table.version;
            self.reroute_at = None;
            for _ in 0..self.retry.len() {
                let Some(r) = self.retry.pop_front() else {
                    break;
                };
                if r.not_before > cx.now {
                    // A forward that found its target full, or a backoff: look again then.
                    let t = r.not_before;
                    self.reroute_at = Some(self.reroute_at.map_or(t, |a| a.min(t)));
                    self.retry.push_back(r);
                    continue;
                }
                self.reroute(cx, r.op, r.not_before);
            }
        }
        // A retired link only forwards: what it has in flight does not limit that.
        let busy = if self.retired { 0 } else { self.in_flight };
        if self.retry.len() + busy < window {
            if let Some(op) = self.head.take() {
                self.reroute(cx, op, cx.now);
            }
        }
        while self.retry.len() + busy < window {
            let Some(op) = self.queue.ring.try_pop() else {
                break;
            };
            self.queue.popped(1);
            self.reroute(cx, op, cx.now);
        }
    }

    /// Sends `op` where the table says its slot lives now, or keeps it for sending here.
    fn reroute(&mut self, cx: &mut Cx<'_>, mut op: Op, not_before: Instant) {
        if op.is_abandoned() {
            self.abandon(cx, op);
            return;
        }
        if self.retired {
            // An `ASK` detour to a master that left the table is void.
            op.asking = false;
        }
        let owner = cx.table.queue(op.slot());
        if op.asking || Arc::ptr_eq(owner, &self.queue) {
            self.hold(op, not_before);
        } else {
            let owner = Arc::clone(owner);
            self.forward(cx, op, &owner);
        }
    }

    /// Drops an op whose caller gave up before it was sent (it never will be), counting it
    /// as the deadline the caller saw.
    fn abandon(&mut self, cx: &mut Cx<'_>, op: Op) {
        cx.shared.finish(
            &self.queue,
            op,
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            }),
        );
    }

    /// Writes what `out` holds as far as the socket takes it.
    fn write_out(&mut self, cx: &mut Cx<'_>) {
        let ready_to_send = matches!(
            self.state,
            State::Ready | State::Authenticating { .. } | State::Handshaking { .. }
        );
        if !ready_to_send {
            return;
        }
        let Some(t) = self.transport.as_mut() else {
            return;
        };
        if matches!(self.state, State::Handshaking { .. }) {
            if let Err(err) = t.flush() {
                self.fail(cx, format!("write: {err}"));
            }
            return;
        }
        while self.out_pos < self.out.len() {
            match t.write(&self.out[self.out_pos..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.out_pos += n;
                    self.written += n as u64;
                    self.last_progress = cx.now;
                }
                Err(err) => {
                    self.fail(cx, format!("write: {err}"));
                    return;
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > READ_CHUNK && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Reads what the socket has and handles every complete reply.
    fn read_in(&mut self, cx: &mut Cx<'_>) -> Result<(), String> {
        loop {
            if self.in_start == self.in_end {
                self.in_start = 0;
                self.in_end = 0;
            }
            if self.inbuf.len() - self.in_end < READ_CHUNK / 4 {
                if self.in_start > 0 {
                    // Move the partial reply to the front.
                    self.inbuf.copy_within(self.in_start..self.in_end, 0);
                    self.in_end -= self.in_start;
                    self.in_start = 0;
                } else if self.inbuf.len() >= MAX_REPLY {
                    return Err(format!("a reply larger than {MAX_REPLY} bytes"));
                } else {
                    let grown = (self.inbuf.len() * 2).clamp(READ_CHUNK, MAX_REPLY);
                    self.inbuf.resize(grown, 0);
                }
            }
            let Some(t) = self.transport.as_mut() else {
                return Ok(());
            };
            let room = self.inbuf.len() - self.in_end;
            let plain = matches!(t, Transport::Plain(_));
            let n = match t.read(&mut self.inbuf[self.in_end..]) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(err) => return Err(format!("read: {err}")),
            };
            // A short read of a plain socket took all the kernel had: new bytes will raise a
            // new readiness event, so the read that would only say "would block" is skipped.
            let drained = plain && n < room && !self.peer_closed;
            self.in_end += n;
            self.last_progress = cx.now;
            self.queue.last_reply_ms.store(
                cx.now.duration_since(cx.shared.routes.epoch).as_millis() as u64 + 1,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.parse_replies(cx)?;
            if drained || matches!(self.state, State::Down { .. }) {
                return Ok(());
            }
        }
    }

    fn parse_replies(&mut self, cx: &mut Cx<'_>) -> Result<(), String> {
        loop {
            self.pop_markers(cx);
            let rest = &self.inbuf[self.in_start..self.in_end];
            if rest.is_empty() {
                return Ok(());
            }
            let (reply, used) = if rest.starts_with(b"+OK\r\n") {
                (Reply::Value(redis::Value::Okay), 5)
            } else {
                match parse_resp(rest) {
                    Ok((RouteValue::Error(e), used)) => (Reply::Error(e), used),
                    Ok((value, used)) => (Reply::Value(to_redis_value(value)), used),
                    Err(RespError::Incomplete) => return Ok(()),
                    Err(err) => return Err(format!("malformed reply: {err}")),
                }
            };
            self.in_start += used;
            let Some(expect) = self.expect.pop_front() else {
                return Err("a reply nobody asked for".to_owned());
            };
            self.on_reply(cx, expect, reply)?;
            if matches!(self.state, State::Down { .. }) {
                return Ok(());
            }
        }
    }

    /// Batch ends that expect no reply are done as soon as they reach the front.
    fn pop_markers(&mut self, cx: &mut Cx<'_>) {
        while let Some(Expect::End {
            wait: false,
            sent_at,
        }) = self.expect.front()
        {
            let sent_at = *sent_at;
            self.expect.pop_front();
            self.end_batch(cx, sent_at);
        }
    }

    fn end_batch(&mut self, cx: &mut Cx<'_>, sent_at: Instant) {
        self.batches = self.batches.saturating_sub(1);
        let budget = cx.shared.config.batching.p95_budget;
        let max = cx.shared.config.batching.max_batch;
        self.rtt_sum += cx.now.saturating_duration_since(sent_at);
        self.rtt_n += 1;
        if self.rtt_n >= BUDGET_EVERY {
            let mean = self.rtt_sum / self.rtt_n;
            if mean > budget {
                self.cap = (self.cap / 2).max(1);
            } else if mean < budget / 2 {
                self.cap = self.cap.saturating_mul(2).min(max);
            }
            self.rtt_sum = Duration::ZERO;
            self.rtt_n = 0;
        }
    }

    fn on_reply(&mut self, cx: &mut Cx<'_>, expect: Expect, reply: Reply) -> Result<(), String> {
        match expect {
            Expect::Auth => match reply {
                Reply::Error(e) => return Err(format!("AUTH refused: {e}")),
                _ => self.on_ready(),
            },
            Expect::Asking => {}
            Expect::Op { op, .. } => {
                self.in_flight -= 1;
                let Some(op) = op else {
                    // Completed at its deadline; the reply is discarded.
                    return Ok(());
                };
                cx.tally.in_flight(cx.shared.shards.shard_of(op.slot()), -1);
                match reply {
                    Reply::Error(message) => self.on_error_reply(cx, op, message),
                    Reply::Value(value) if op.replicas > 0 => self.acked.push((op, value)),
                    Reply::Value(value) => {
                        let latency = cx.now.saturating_duration_since(op.created());
                        cx.tally
                            .latencies
                            .push((cx.shared.shards.shard_of(op.slot()), latency));
                        self.finish(cx, op, Ok(value));
                    }
                }
            }
            Expect::End { wait, sent_at } => {
                debug_assert!(wait, "reply-less ends are popped as markers");
                // `None`: the `WAIT` itself failed, so no replica count is known.
                let confirmed = match reply {
                    Reply::Value(redis::Value::Int(n)) => {
                        Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
                    }
                    _ => None,
                };
                let acked = std::mem::take(&mut self.acked);
                for (op, value) in acked {
                    let wanted = op.replicas;
                    let result = match confirmed {
                        Some(n) if n >= wanted => Ok(value),
                        Some(confirmed) => {
                            Err(CommitError::ReplicationShortfall { wanted, confirmed })
                        }
                        None => Err(CommitError::ReplicationUnconfirmed { wanted }),
                    };
                    if result.is_ok() {
                        let latency = cx.now.saturating_duration_since(op.created());
                        cx.tally
                            .latencies
                            .push((cx.shared.shards.shard_of(op.slot()), latency));
                    }
                    self.finish(cx, op, result);
                }
                self.end_batch(cx, sent_at);
            }
        }
        Ok(())
    }

    /// An error reply to `op`: redirect, retry later, or fail it.
    fn on_error_reply(&mut self, cx: &mut Cx<'_>, mut op: Op, message: String) {
        let code = message.split(' ').next().unwrap_or("");
        let shard = cx.shared.shards.shard_of(op.slot());
        match code {
            "MOVED" | "ASK" => {
                let Ok(redirect) = Redirect::parse(&message) else {
                    self.finish(cx, op, Err(CommitError::Server { message }));
                    return;
                };
                let target = redirect.target(self.queue.addr.host());
                crate::trace::event!(
                    debug,
                    "slotline::route",
                    kind = ?redirect.kind(),
                    slot = redirect.slot().get(),
                    from = %self.queue.addr,
                    to = %target,
                    "redirect"
                );
                if let Some(m) = cx.shared.metrics.shard(shard) {
                    if redirect.kind() == RedirectKind::Moved {
                        m.record_moved();
                    } else {
                        m.record_ask();
                    }
                }
                let hops = op.redirects;
                op.redirects = op.redirects.saturating_add(1);
                if hops >= MAX_REDIRECTS {
                    let message = format!("{message} (gave up after {MAX_REDIRECTS} redirects)");
                    self.finish(cx, op, Err(CommitError::Server { message }));
                    return;
                }
                let queue = if redirect.kind() == RedirectKind::Moved {
                    op.asking = false;
                    cx.shared.routes.apply_moved(redirect.slot(), &target)
                } else {
                    op.asking = true;
                    cx.shared.routes.queue_for_addr(&target)
                };
                let moved = redirect.kind() == RedirectKind::Moved;
                if (moved && hops >= 2) || Arc::ptr_eq(&queue, &self.queue) {
                    // Redirected again and again (a cluster in transition): back off here;
                    // when due, the op is routed by the table of that time.
                    let wait = if hops >= 2 {
                        backoff(hops - 2)
                    } else {
                        Duration::ZERO
                    };
                    self.hold(op, cx.now + wait);
                } else {
                    self.forward(cx, op, &queue);
                }
            }
            "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY" => {
                cx.shared.routes.mark_stale();
                let attempts = op.attempts;
                op.attempts = op.attempts.saturating_add(1);
                self.hold(op, cx.now + backoff(attempts));
            }
            _ => self.finish(cx, op, Err(CommitError::Server { message })),
        }
    }

    /// Resolves every op whose deadline has passed, wherever the link holds it.
    fn sweep(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        if self.next_deadline.is_some_and(|d| d <= now) {
            let mut next: Option<Instant> = None;
            let mut expired = Vec::new();
            for e in self.expect.iter_mut() {
                if let Expect::Op { op, .. } = e {
                    match op {
                        Some(o) if o.deadline() <= now => {
                            let o = op.take().expect("matched Some");
                            cx.tally.in_flight(cx.shared.shards.shard_of(o.slot()), -1);
                            expired.push(o);
                        }
                        Some(o) => next = Some(next.map_or(o.deadline(), |n| n.min(o.deadline()))),
                        None => {}
                    }
                }
            }
            let mut i = 0;
            while i < self.acked.len() {
                if self.acked[i].0.deadline() <= now {
                    expired.push(self.acked.swap_remove(i).0);
                } else {
                    let d = self.acked[i].0.deadline();
                    next = Some(next.map_or(d, |n| n.min(d)));
                    i += 1;
                }
            }
            self.next_deadline = next;
            if !expired.is_empty() {
                // A node that lets deadlines pass may be failing over: look at the topology.
                cx.shared.routes.mark_stale();
            }
            for op in expired {
                self.finish(
                    cx,
                    op,
                    Err(CommitError::DeadlineExceeded {
                        may_have_been_applied: true,
                    }),
                );
            }
            // `self.in_flight` counts `expect` entries whose reply is pending, completed early
            // or not: they still hold their place in the pipeline.
        }
        if self.retry_deadline.is_some_and(|d| d <= now) {
            let mut next: Option<Instant> = None;
            for _ in 0..self.retry.len() {
                let Some(r) = self.retry.pop_front() else {
                    break;
                };
                if r.op.is_expired(now) {
                    let applied = r.op.maybe_applied;
                    self.finish(
                        cx,
                        r.op,
                        Err(CommitError::DeadlineExceeded {
                            may_have_been_applied: applied,
                        }),
                    );
                } else {
                    let d = r.op.deadline();
                    next = Some(next.map_or(d, |n| n.min(d)));
                    self.retry.push_back(r);
                }
            }
            self.retry_deadline = next;
        }
        // The oldest queued op: take it out to watch its deadline while it cannot be sent.
        loop {
            if self.head.is_none() {
                // Sent first by the next `admit`, so FIFO order is kept.
                self.head = self.queue.ring.try_pop();
                if self.head.is_some() {
                    self.queue.popped(1);
                }
            }
            let Some(op) = self.head.take() else {
                break;
            };
            if op.is_abandoned() {
                self.abandon(cx, op);
                continue;
            }
            if op.is_expired(now) {
                let applied = op.maybe_applied;
                self.finish(
                    cx,
                    op,
                    Err(CommitError::DeadlineExceeded {
                        may_have_been_applied: applied,
                    }),
                );
                continue;
            }
            self.head = Some(op);
            break;
        }
    }

    /// Completes `op` with `outcome` (metrics, byte charge, caller).
    fn finish(&mut self, cx: &mut Cx<'_>, op: Op, outcome: ReplyResult) {
        cx.shared.finish(&self.queue, op, outcome);
    }

    /// The connection failed: decide every op it holds (see the module docs), close the
    /// socket, and reconnect after a backoff.
    pub(crate) fn fail(&mut self, cx: &mut Cx<'_>, why: String) {
        crate::trace::event!(
            warn,
            "slotline::conn",
            master = %self.queue.addr,
            reason = %why,
            in_flight = self.in_flight,
            failures = self.failures,
            "connection failed"
        );
        self.queue.forget_address();
        for (op, _) in std::mem::take(&mut self.acked) {
            let wanted = op.replicas;
            self.finish(cx, op, Err(CommitError::ReplicationUnconfirmed { wanted }));
        }
        let written = self.written;
        let expect = std::mem::take(&mut self.expect);
        for e in expect {
            let Expect::Op {
                op: Some(mut op),
                end,
            } = e
            else {
                continue;
            };
            cx.tally.in_flight(cx.shared.shards.shard_of(op.slot()), -1);
            let wholly_written = end <= written;
            if wholly_written {
                op.maybe_applied = true;
            }
            if !wholly_written || op.resend_safe {
                let attempts = op.attempts;
                op.attempts = op.attempts.saturating_add(1);
                self.hold(op, cx.now + backoff(attempts));
            } else {
                cx.shared.finish(
                    &self.queue,
                    op,
                    Err(CommitError::ConnectionLost {
                        may_have_been_applied: true,
                    }),
                );
            }
        }
        self.in_flight = 0;
        self.batches = 0;
        self.next_deadline = None;
        self.out.clear();
        self.out_pos = 0;
        self.in_start = 0;
        self.in_end = 0;
        if let Some(mut t) = self.transport.take() {
            let _ = cx.registry.deregister(t.socket());
        }
        let wait = RECONNECT_START
            .saturating_mul(1 << self.failures.min(16))
            .min(RECONNECT_MAX);
        self.failures = self.failures.saturating_add(1);
        self.state = State::Down {
            retry_at: cx.now + wait,
        };
        self.last_error = Some(why);
        cx.shared.routes.mark_stale();
    }

    /// Closes a connection that has had nothing to do for `idle_timeout`.
    fn close_idle(&mut self, cx: &mut Cx<'_>) {
        crate::trace::event!(debug, "slotline::conn", master = %self.queue.addr, "idle connection closed");
        if let Some(mut t) = self.transport.take() {
            let _ = cx.registry.deregister(t.socket());
        }
        self.state = State::Down { retry_at: cx.now };
    }

    /// The client is stopping (`state` is `CLOSING` or `DEAD`): fail every op not sent yet.
    pub(crate) fn fail_queued(&mut self, cx: &mut Cx<'_>, state: u8) {
        let err = |sent: bool| cx.shared.stopped_error(state, sent);
        if let Some(op) = self.head.take() {
            let e = err(false);
            self.finish(cx, op, Err(e));
        }
        while let Some(r) = self.retry.pop_front() {
            let e = err(r.op.maybe_applied);
            self.finish(cx, r.op, Err(e));
        }
        self.retry_deadline = None;
        cx.shared.drain_stopped(&self.queue, state);
    }

    /// Whether replies are still awaited.
    pub(crate) fn awaiting_replies(&self) -> bool {
        !self.expect.is_empty() || !self.acked.is_empty()
    }

    /// The client is stopping and the grace period is over: fail what is in flight.
    pub(crate) fn fail_in_flight(&mut self, cx: &mut Cx<'_>, state: u8) {
        for (op, _) in std::mem::take(&mut self.acked) {
            let e = if state == super::DEAD {
                CommitError::ClientDead {
                    may_have_been_applied: true,
                }
            } else {
                CommitError::ReplicationUnconfirmed {
                    wanted: op.replicas,
                }
            };
            self.finish(cx, op, Err(e));
        }
        for e in std::mem::take(&mut self.expect) {
            if let Expect::Op { op: Some(op), .. } = e {
                cx.tally.in_flight(cx.shared.shards.shard_of(op.slot()), -1);
                let err = cx.shared.stopped_error(state, true);
                cx.shared.finish(&self.queue, op, Err(err));
            }
        }
        self.in_flight = 0;
        if let Some(mut t) = self.transport.take() {
            let _ = cx.registry.deregister(t.socket());
        }
    }
}

/// What the engine needs to know of a reply.
enum Reply {
    /// Any reply but an error, as the callers see it.
    Value(redis::Value),
    /// An error reply: `MOVED`, `ASK`, a transient error, or the command's own failure.
    Error(String),
}

/// A parsed reply in the `redis` crate's type, the one callers get. Nested errors (inside an
/// array, as Lua scripts can return) keep their text.
fn to_redis_value(value: RouteValue) -> redis::Value {
    match value {
        RouteValue::Nil => redis::Value::Nil,
        RouteValue::Int(n) => redis::Value::Int(n),
        RouteValue::Simple(s) if s == "OK" => redis::Value::Okay,
        RouteValue::Simple(s) => redis::Value::SimpleString(s),
        RouteValue::Bulk(b) => redis::Value::BulkString(b),
        RouteValue::Array(items) => {
            redis::Value::Array(items.into_iter().map(to_redis_value).collect())
        }
        RouteValue::Map(pairs) => redis::Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (to_redis_value(k), to_redis_value(v)))
                .collect(),
        ),
        RouteValue::Error(e) => {
            let line = format!("-{}\r\n", e.replace(['\r', '\n'], " "));
            redis::parse_redis_value(line.as_bytes()).unwrap_or(redis::Value::SimpleString(e))
        }
    }
}

/// `t + d`, or a time far enough away when that would overflow.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn backoff(attempts: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1 << attempts.min(16))
        .min(BACKOFF_MAX)
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("master", &self.queue.addr)
            .field("batches", &self.batches)
            .field("in_flight", &self.in_flight)
            .field("retired", &self.retired)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}
