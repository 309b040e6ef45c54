//! [`Client`]: route a write to its master's queue, apply backpressure, wait for the ACK.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use slotline_ring::Full;
use slotline_router::ShardMap;

use crate::config::{Config, FallbackStrategy};
use crate::conn::ConnOptions;
use crate::engine::io::WAKER;
use crate::engine::{Notifier, Shared, CLOSING, RUNNING};
use crate::error::{CommitError, Error};
use crate::metrics::{Metrics, MetricsSnapshot, RingFill};
use crate::op::{CommitResult, Completion, Op, OpError};
use crate::route::{QueueSizing, Routes};

/// A bounded, ACK-committing Redis Cluster writer. See the [crate docs](crate).
///
/// Cloning is not offered; share a `Client` by reference or in an [`Arc`]. Dropping it is
/// [`Client::close`].
///
/// # Examples
///
/// ```no_run
/// use slotline_client::{Client, Config};
///
/// let config = Config::from_yaml_file("geo_shard_client.yaml")?;
/// let client = Client::connect(config)?;
/// client.commit(b"geo:{user42}", b"52.5200,13.4050")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    shared: Arc<Shared>,
    io_threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("io_threads", &self.shared.notifiers.len())
            .field("routes", &*self.shared.routes.load())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `config`, reads the cluster's topology through `config.nodes`, creates one
    /// bounded queue per master, and starts the I/O threads (`redis_pool.io_threads`) and the
    /// refresh thread. Connections to the masters are opened by the I/O threads when the first
    /// write for each arrives.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration (no seed nodes included);
    /// [`Error::NoReachableNode`] when no seed answered with a usable topology;
    /// [`Error::Io`] if a thread or a poller cannot be created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use slotline_client::{Client, Config, NodeAddr};
    ///
    /// let mut config = Config::default();
    /// config.nodes = vec![NodeAddr::new("127.0.0.1", 7000)];
    /// let client = Client::connect(config)?;
    /// # Ok::<(), slotline_client::Error>(())
    /// ```
    pub fn connect(config: Config) -> Result<Client, Error> {
        config.validate().map_err(Error::Config)?;
        if config.nodes.is_empty() {
            return Err(Error::Config(crate::config::ConfigError::Invalid {
                file: None,
                key: "nodes".to_owned(),
                reason: "at least one seed node is needed".to_owned(),
            }));
        }
        let shards = ShardMap::new(config.shard_config.total_shards as usize)
            .map_err(|e| Error::Topology(e.to_string()))?;
        let conn_opts = ConnOptions::from_config(&config);
        let map = crate::refresh::fetch(config.nodes.iter().cloned(), &conn_opts)?;
        let io_threads = config.io_threads();
        let routes = Routes::new(map, QueueSizing::from_config(&config, io_threads));
        let io_err = |what: &str, source| Error::Io {
            addr: what.to_owned(),
            source,
        };
        let mut polls = Vec::with_capacity(io_threads);
        let mut notifiers = Vec::with_capacity(io_threads);
        for _ in 0..io_threads {
            let poll = mio::Poll::new().map_err(|e| io_err("I/O poller", e))?;
            let waker =
                mio::Waker::new(poll.registry(), WAKER).map_err(|e| io_err("I/O poller", e))?;
            notifiers.push(Notifier::new(waker));
            polls.push(poll);
        }
        let shared = Arc::new(Shared {
            metrics: Metrics::new(shards.shard_count()),
            notifiers: notifiers.into_boxed_slice(),
            state: AtomicU8::new(RUNNING),
            inject_panic: AtomicBool::new(false),
            routes,
            shards,
            conn_opts,
            config,
        });
        let client = Client {
            shared: Arc::clone(&shared),
            io_threads: std::sync::Mutex::new(Vec::with_capacity(io_threads)),
        };
        for (id, poll) in polls.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name(format!("slotline-io-{id}"))
                .spawn(move || crate::engine::io::run(id, shared, poll))
                .map_err(|e| io_err("I/O thread", e))?;
            client
                .io_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(handle);
        }
        let refresh = Arc::clone(&shared);
        thread::Builder::new()
            .name("slotline-refresh".to_owned())
            .spawn(move || crate::refresh::run(refresh))
            .map_err(|e| io_err("refresh thread", e))?;
        Ok(client)
    }

    /// Writes `SET key value` and returns once the slot's master replied (and, with
    /// `ack.replicas > 0`, once `WAIT` confirmed the replicas), or with the error that says what
    /// became of the write. The deadline is `commit.timeout` from now.
    ///
    /// # Errors
    ///
    /// Every [`CommitError`]: [`Rejected`](CommitError::Rejected) by backpressure,
    /// [`Dropped`](CommitError::Dropped) by `drop_oldest`,
    /// [`DeadlineExceeded`](CommitError::DeadlineExceeded), a
    /// [`Server`](CommitError::Server) error reply,
    /// [`ReplicationShortfall`](CommitError::ReplicationShortfall),
    /// [`ConnectionLost`](CommitError::ConnectionLost), [`Closed`](CommitError::Closed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// match client.commit(b"geo:{user42}", b"52.5200,13.4050") {
    ///     Ok(()) => {} // in Redis
    ///     Err(e) if !e.may_have_been_applied() => eprintln!("not written: {e}"),
    ///     Err(e) => eprintln!("outcome unknown: {e}"),
    /// }
    /// ```
    pub fn commit(&self, key: &[u8], value: &[u8]) -> CommitResult {
        let (op, completion) = Op::set(key, value, self.deadline());
        self.submit_blocking(op)?;
        completion.wait()
    }

    /// Like [`Client::commit`], for any single-key write whose key is its first argument
    /// (`GEOADD`, `HSET`, `XADD`, `ZADD`, `INCR`, ...). Such a command is never sent again once
    /// it was written to a socket: see the crate docs on retries.
    ///
    /// # Errors
    ///
    /// As [`Client::commit`], and [`CommitError::Server`] if `cmd` has no key argument.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// let mut cmd = redis::cmd("GEOADD");
    /// cmd.arg("geo:{user42}:trail").arg(13.4050).arg(52.5200).arg("t1");
    /// client.commit_cmd(&cmd)?;
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_cmd(&self, cmd: &redis::Cmd) -> CommitResult {
        let (op, completion) = Op::new(cmd, 1, self.deadline()).map_err(op_error)?;
        self.submit_blocking(op)?;
        completion.wait()
    }

    /// Like [`Client::commit`], as a `Send` future that needs no particular executor: it never
    /// blocks a thread. With `fallback_strategy: block` a full ring makes the future yield and
    /// retry when polled again, until the deadline.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: &slotline_client::Client) -> Result<(), slotline_client::CommitError> {
    /// client.commit_async(b"geo:{user42}", b"52.5200,13.4050").await?;
    /// # Ok(()) }
    /// ```
    pub fn commit_async(&self, key: &[u8], value: &[u8]) -> CommitFuture {
        let (op, completion) = Op::set(key, value, self.deadline());
        CommitFuture {
            shared: Arc::clone(&self.shared),
            op: Some(op),
            completion: Some(completion),
        }
    }

    /// Counters and latency percentiles per logical shard and in total, the fill of the
    /// masters' queues (in the total), and whether the client is dead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// let metrics = client.metrics();
    /// println!("{}", metrics.to_prometheus());
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shared.metrics.snapshot();
        let table = self.shared.routes.load();
        let mut fill = RingFill::default();
        for queue in &table.masters {
            fill.len += queue.ring.len();
            fill.capacity += queue.ring.capacity();
        }
        snapshot.total.ring = Some(fill);
        snapshot
    }

    /// Stops the client: new calls fail with [`CommitError::Closed`], writes still queued
    /// fail with it too, and writes already sent get a short grace (200 ms) for their replies
    /// before they fail with [`CommitError::ConnectionLost`]. Returns once the I/O threads
    /// have stopped, so it blocks for at most that grace plus a little. Calling it again does
    /// nothing; dropping the client does the same.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// client.close();
    /// assert_eq!(client.commit(b"k", b"v"), Err(slotline_client::CommitError::Closed));
    /// ```
    pub fn close(&self) {
        self.stop();
    }

    fn stop(&self) {
        let _ = self.shared.state.compare_exchange(
            RUNNING,
            CLOSING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.shared.wake_all();
        let handles = std::mem::take(
            &mut *self
                .io_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Makes one I/O thread panic, to test that the client fails every write cleanly when
    /// one does. Not part of the supported API.
    #[doc(hidden)]
    pub fn inject_io_panic(&self) {
        self.shared.inject_panic.store(true, Ordering::SeqCst);
        self.shared.wake_all();
    }

    fn deadline(&self) -> Instant {
        crate::engine::link::after(Instant::now(), self.shared.config.commit.timeout)
    }

    /// Pushes `op` into its master's queue by the configured policy, blocking under `block`.
    fn submit_blocking(&self, op: Op) -> Result<(), CommitError> {
        let mut op = op;
        let mut spins = 0u32;
        loop {
            match submit(&self.shared, op) {
                Ok(()) => return Ok(()),
                Err(Submit::Full(back)) => {
                    if Instant::now() >= back.deadline() {
                        let err = CommitError::DeadlineExceeded {
                            may_have_been_applied: false,
                        };
                        self.shared.record(&back, &Err(err.clone()));
                        return Err(err);
                    }
                    op = back;
                    pause(&mut spins);
                }
                Err(Submit::Refused(err)) => return Err(err),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a push did not happen.
enum Submit {
    /// `block` policy and the ring is at its limit: here is the op back, try again.
    Full(Op),
    /// The op will not be queued: the caller gets this error.
    Refused(CommitError),
}

/// One attempt to queue `op` under the configured backpressure policy.
fn submit(shared: &Shared, op: Op) -> Result<(), Submit> {
    let state = shared.state();
    if state != RUNNING {
        return Err(Submit::Refused(shared.stopped_error(state, false)));
    }
    // The caller holds the table while it pushes: a retired queue is dropped only once no
    // table, and so no caller, refers to it.
    let table = shared.routes.load();
    let queue = table.queue(op.slot());
    let bytes = op.charge();
    if bytes > queue.byte_limit {
        let limit = queue.byte_limit;
        return Err(refuse(shared, &op, CommitError::TooLarge { bytes, limit }));
    }
    let mut op = op;
    loop {
        if queue.try_charge(bytes) {
            match queue.ring.try_push_below(op, queue.limit) {
                Ok(()) => {
                    shared.after_push(queue);
                    return Ok(());
                }
                Err(Full(back)) => {
                    queue.release(bytes);
                    op = back;
                }
            }
        }
        match shared.config.backpressure.fallback_strategy {
            FallbackStrategy::Reject => return Err(refuse(shared, &op, CommitError::Rejected)),
            FallbackStrategy::Block => return Err(Submit::Full(op)),
            FallbackStrategy::DropOldest => {
                // Evict the oldest queued op (its caller gets `Dropped`), then retry. Another
                // producer may take the freed place first; the loop is bounded by the deadline.
                match queue.ring.try_pop() {
                    Some(oldest) => {
                        shared.finish(queue, oldest, Err(CommitError::Dropped));
                    }
                    None if queue.ring.is_empty() => {
                        // Nothing queued to evict: the budget is held by writes in flight.
                        return Err(refuse(shared, &op, CommitError::Rejected));
                    }
                    None => {}
                }
                if Instant::now() >= op.deadline() {
                    let err = CommitError::DeadlineExceeded {
                        may_have_been_applied: false,
                    };
                    return Err(refuse(shared, &op, err));
                }
            }
        }
    }
}

/// `op` will not be queued: counts `err` in its shard's metrics and hands it to the caller.
fn refuse(shared: &Shared, op: &Op, err: CommitError) -> Submit {
    shared.record(op, &Err(err.clone()));
    Submit::Refused(err)
}

/// Waits a little longer each time: spin, then yield, then sleep.
fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins < 16 {
        std::hint::spin_loop();
    } else if *spins < 64 {
        thread::yield_now();
    } else {
        thread::sleep(Duration::from_micros(100));
    }
}

fn op_error(err: OpError) -> CommitError {
    CommitError::Server {
        message: format!("not a single-key command: {err}"),
    }
}

/// The future returned by [`Client::commit_async`].
///
/// Resolves to the same result [`Client::commit`] would return. Dropping it before it resolves
/// abandons the write if it was not sent yet (see [`Completion`]).
#[must_use = "a commit does nothing unless awaited"]
pub struct CommitFuture {
    shared: Arc<Shared>,
    /// The op, until it is in its ring.
    op: Option<Op>,
    completion: Option<Completion>,
}

impl std::fmt::Debug for CommitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitFuture")
            .field("queued", &self.op.is_none())
            .finish_non_exhaustive()
    }
}

impl Future for CommitFuture {
    type Output = CommitResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CommitResult> {
        let this = self.get_mut();
        if let Some(op) = this.op.take() {
            match submit(&this.shared, op) {
                Ok(()) => {}
                Err(Submit::Refused(err)) => {
                    this.completion = None;
                    return Poll::Ready(Err(err));
                }
                Err(Submit::Full(op)) => {
                    if Instant::now() >= op.deadline() {
                        this.completion = None;
                        return Poll::Ready(Err(CommitError::DeadlineExceeded {
                            may_have_been_applied: false,
                        }));
                    }
                    this.op = Some(op);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
        match this.completion.as_mut() {
            Some(completion) => {
                let poll = Pin::new(completion).poll(cx);
                if poll.is_ready() {
                    this.completion = None;
                }
                poll
            }
            None => Poll::Ready(Err(CommitError::Closed)),
        }
    }
}
