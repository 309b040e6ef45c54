//! [`Client`]: route a write to its master's queue, apply backpressure, wait for the ACK.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use event_listener::{EventListener, Listener};
use slotline_ring::Full;
use slotline_router::ShardMap;

use crate::config::{Config, FallbackStrategy};
use crate::conn::ConnOptions;
use crate::engine::io::WAKER;
use crate::engine::{Notifier, Shared, CLOSING, RUNNING};
use crate::error::{CommitError, Error};
use crate::metrics::{Metrics, MetricsSnapshot, RingFill};
use crate::op::{CommitResult, Completion, Op, ReplyResult};
use crate::options::CallOptions;
use crate::route::{MasterQueue, QueueSizing, Routes};

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
            timers: crate::timer::Timers::default(),
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
        let timers = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("slotline-timer".to_owned())
            .spawn(move || timers.timers.run())
            .map_err(|e| io_err("timer thread", e))?;
        client
            .io_threads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
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
        self.commit_with(key, value, &CallOptions::new())
    }

    /// [`Client::commit`] with per-call overrides ([`CallOptions`]).
    ///
    /// # Errors
    ///
    /// As [`Client::commit`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::CallOptions;
    /// # let client: slotline_client::Client = unimplemented!();
    /// let opts = CallOptions::new().timeout(Duration::from_millis(30)).replicas(1);
    /// client.commit_with(b"geo:{user42}", b"52.52,13.40", &opts)?;
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_with(&self, key: &[u8], value: &[u8], opts: &CallOptions) -> CommitResult {
        let call = self.call(opts);
        let (op, completion) = Op::set(key, value, call.deadline);
        self.submit_blocking(call.prepare(op), &call)?;
        completion.wait()
    }

    /// Sends any single-slot command (a write or a read) and returns its reply. The keys are
    /// found by the command's key spec ([`keys`](crate::keys)): `SET k v EX 10` routes by
    /// `k`, `EVAL script 2 k1 k2` by `k1` and `k2`, `MSET a 1 b 2` by `a` and `b`, which must
    /// share a slot. Turn the reply into a Rust type with [`redis::from_redis_value`].
    ///
    /// Unlike `commit`'s `SET`, such a command is never sent again once it was written to a
    /// socket: see the crate docs on retries.
    ///
    /// # Errors
    ///
    /// As [`Client::commit`] (an error reply is [`CommitError::Server`]), and
    /// [`CommitError::InvalidCommand`], before anything is sent, for a command without a key,
    /// with keys in different slots, or whose keys cannot be found.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// let reply = client.commit_cmd(redis::cmd("INCRBY").arg("hits:{page7}").arg(5))?;
    /// let hits: i64 = redis::from_redis_value(reply).unwrap();
    ///
    /// let id = client.commit_cmd(redis::cmd("XADD").arg("trail:{u7}").arg("*").arg("lat").arg(52.52))?;
    /// println!("{hits} hits, entry {:?}", id);
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_cmd(&self, cmd: &redis::Cmd) -> ReplyResult {
        self.commit_cmd_with(cmd, &CallOptions::new())
    }

    /// [`Client::commit_cmd`] with per-call overrides ([`CallOptions`]).
    ///
    /// # Errors
    ///
    /// As [`Client::commit_cmd`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::CallOptions;
    /// # let client: slotline_client::Client = unimplemented!();
    /// let opts = CallOptions::new().timeout(Duration::from_millis(5));
    /// let value = client.commit_cmd_with(redis::cmd("GET").arg("session:{u7}"), &opts)?;
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_cmd_with(&self, cmd: &redis::Cmd, opts: &CallOptions) -> ReplyResult {
        let call = self.call(opts);
        let (op, completion) =
            Op::command(cmd, call.deadline).map_err(CommitError::InvalidCommand)?;
        self.submit_blocking(call.prepare(op), &call)?;
        completion.wait_reply()
    }

    /// Like [`Client::commit`], as a `Send` future that needs no particular executor: it never
    /// blocks a thread. The deadline starts at this call, not at the first poll. Under
    /// `fallback_strategy: block` a full queue makes the future wait, without spinning, for room
    /// or its deadline.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: &slotline_client::Client) -> Result<(), slotline_client::CommitError> {
    /// client.commit_async(b"geo:{user42}", b"52.5200,13.4050").await?;
    /// # Ok(()) }
    /// ```
    pub fn commit_async(&self, key: &[u8], value: &[u8]) -> CommitFuture {
        self.commit_async_with(key, value, &CallOptions::new())
    }

    /// [`Client::commit_async`] with per-call overrides ([`CallOptions`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::{CallOptions, FallbackStrategy};
    /// # async fn demo(client: &slotline_client::Client) -> Result<(), slotline_client::CommitError> {
    /// let opts = CallOptions::new().fallback_strategy(FallbackStrategy::Reject);
    /// client.commit_async_with(b"geo:{user42}", b"52.52,13.40", &opts).await?;
    /// # Ok(()) }
    /// ```
    pub fn commit_async_with(&self, key: &[u8], value: &[u8], opts: &CallOptions) -> CommitFuture {
        let call = self.call(opts);
        let (op, completion) = Op::set(key, value, call.deadline);
        CommitFuture {
            inner: Pending::new(&self.shared, Ok(call.prepare(op)), completion, &call),
        }
    }

    /// Like [`Client::commit_cmd`], as a `Send` future that needs no particular executor (see
    /// [`Client::commit_async`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: &slotline_client::Client) -> Result<(), slotline_client::CommitError> {
    /// let reply = client.commit_cmd_async(redis::cmd("HGETALL").arg("user:{7}")).await?;
    /// let fields: std::collections::HashMap<String, String> =
    ///     redis::from_redis_value(reply).unwrap_or_default();
    /// # Ok(()) }
    /// ```
    pub fn commit_cmd_async(&self, cmd: &redis::Cmd) -> ReplyFuture {
        self.commit_cmd_async_with(cmd, &CallOptions::new())
    }

    /// [`Client::commit_cmd_async`] with per-call overrides ([`CallOptions`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::CallOptions;
    /// # async fn demo(client: &slotline_client::Client) -> Result<(), slotline_client::CommitError> {
    /// let opts = CallOptions::new().replicas(1);
    /// client.commit_cmd_async_with(redis::cmd("LPUSH").arg("q:{7}").arg("job"), &opts).await?;
    /// # Ok(()) }
    /// ```
    pub fn commit_cmd_async_with(&self, cmd: &redis::Cmd, opts: &CallOptions) -> ReplyFuture {
        let call = self.call(opts);
        let inner = match Op::command(cmd, call.deadline) {
            Ok((op, completion)) => {
                Pending::new(&self.shared, Ok(call.prepare(op)), completion, &call)
            }
            Err(e) => Pending::refused(&self.shared, CommitError::InvalidCommand(e)),
        };
        ReplyFuture { inner }
    }

    /// Sends many commands, each routed to its own master's queue and pipelined there with
    /// the other callers' writes, and returns one result per command, in input order. Commands
    /// for one master are sent in input order; commands for different masters proceed
    /// independently, so a stalled master holds only its own commands (they end by the
    /// deadline), not the others' results. Not atomic: each command succeeds or fails alone.
    ///
    /// # Errors
    ///
    /// The whole batch is refused, before anything is queued, with
    /// [`CommitError::BatchTooLarge`] when it holds more commands or bytes for one master than
    /// that master's queue can ever hold, or with [`CommitError::Closed`] /
    /// [`CommitError::ClientDead`]. A command that cannot be routed (no key, keys in different
    /// slots) gets [`CommitError::InvalidCommand`] in its own place; the rest are sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// let cmds: Vec<redis::Cmd> = (0..500)
    ///     .map(|i| redis::cmd("HSET").arg(format!("ev:{{{}}}", i % 50)).arg(i).arg("payload").clone())
    ///     .collect();
    /// let results = client.commit_batch(&cmds)?;
    /// let failed: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_err()).collect();
    /// println!("{} of {} failed: {failed:?}", failed.len(), cmds.len());
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_batch(&self, cmds: &[redis::Cmd]) -> Result<Vec<ReplyResult>, CommitError> {
        self.commit_batch_with(cmds, &CallOptions::new())
    }

    /// [`Client::commit_batch`] with per-call overrides ([`CallOptions`]); the deadline is
    /// the whole batch's.
    ///
    /// # Errors
    ///
    /// As [`Client::commit_batch`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::CallOptions;
    /// # let client: slotline_client::Client = unimplemented!();
    /// # let cmds: Vec<redis::Cmd> = Vec::new();
    /// let opts = CallOptions::new().timeout(Duration::from_millis(200));
    /// let results = client.commit_batch_with(&cmds, &opts)?;
    /// # Ok::<(), slotline_client::CommitError>(())
    /// ```
    pub fn commit_batch_with(
        &self,
        cmds: &[redis::Cmd],
        opts: &CallOptions,
    ) -> Result<Vec<ReplyResult>, CommitError> {
        let call = self.call(opts);
        let deadline = call.deadline;
        block_on(self.batch_future(cmds, &call), deadline)
    }

    /// Like [`Client::commit_batch`], as a `Send` future that needs no particular executor.
    /// It resolves once every command has its result.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: &slotline_client::Client, cmds: Vec<redis::Cmd>) -> Result<(), slotline_client::CommitError> {
    /// for (i, result) in client.commit_batch_async(&cmds).await?.into_iter().enumerate() {
    ///     if let Err(e) = result {
    ///         eprintln!("command {i}: {e}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn commit_batch_async(&self, cmds: &[redis::Cmd]) -> BatchFuture {
        self.commit_batch_async_with(cmds, &CallOptions::new())
    }

    /// [`Client::commit_batch_async`] with per-call overrides ([`CallOptions`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::CallOptions;
    /// # async fn demo(client: &slotline_client::Client, cmds: Vec<redis::Cmd>) -> Result<(), slotline_client::CommitError> {
    /// let results = client.commit_batch_async_with(&cmds, &CallOptions::new().replicas(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn commit_batch_async_with(&self, cmds: &[redis::Cmd], opts: &CallOptions) -> BatchFuture {
        let call = self.call(opts);
        self.batch_future(cmds, &call)
    }

    fn batch_future(&self, cmds: &[redis::Cmd], call: &Call) -> BatchFuture {
        let batch = Batch::prepare(&self.shared, cmds, call);
        let unqueued = match &batch {
            Ok(b) => (0..b.ops.len()).filter(|&i| b.ops[i].is_some()).collect(),
            Err(_) => Vec::new(),
        };
        BatchFuture {
            shared: Arc::clone(&self.shared),
            policy: call.policy,
            deadline: call.deadline,
            long: call.long,
            watch: call.watch,
            batch,
            unqueued,
            waits: Vec::new(),
            timer: None,
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
        for handle in self.begin_stop() {
            let _ = handle.join();
        }
    }

    /// Turns the client to closing, wakes everything, and hands over the threads to join.
    fn begin_stop(&self) -> Vec<JoinHandle<()>> {
        let _ = self.shared.state.compare_exchange(
            RUNNING,
            CLOSING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.shared.wake_all();
        std::mem::take(
            &mut *self
                .io_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Makes one I/O thread panic, to test that the client fails every write cleanly when
    /// one does. Not part of the supported API.
    #[doc(hidden)]
    pub fn inject_io_panic(&self) {
        self.shared.inject_panic.store(true, Ordering::SeqCst);
        self.shared.wake_all();
    }

    /// The settings of one call: the configuration's, overridden by `opts`.
    fn call(&self, opts: &CallOptions) -> Call {
        let config = &self.shared.config;
        let timeout = opts.timeout.unwrap_or(config.commit.timeout);
        Call {
            deadline: crate::engine::link::after(Instant::now(), timeout),
            watch: timeout < config.commit.timeout,
            long: timeout > config.commit.timeout,
            replicas: opts.replicas.unwrap_or(config.ack.replicas),
            policy: opts
                .fallback_strategy
                .unwrap_or(config.backpressure.fallback_strategy),
        }
    }

    /// Pushes `op` into its master's queue by the call's policy; under `block`, waits for room
    /// (woken by the queue's `room` event, never spinning) until the op's deadline.
    fn submit_blocking(&self, op: Op, call: &Call) -> Result<(), CommitError> {
        let mut op = op;
        let mut listener: Option<RoomListener> = None;
        loop {
            match submit(&self.shared, op, call.policy, call.long) {
                Ok(_) => return Ok(()),
                Err(Submit::Refused(err)) => return Err(err),
                Err(Submit::Full(back, queue)) => {
                    let deadline = back.deadline();
                    if Instant::now() >= deadline {
                        return Err(expired(&self.shared, &back));
                    }
                    op = back;
                    match listener.take() {
                        // Listening on this queue since before the last try: wait.
                        Some(l) if Arc::ptr_eq(&l.queue, &queue) => l.wait_until(deadline),
                        // Listen first, then try again: room freed in between is not missed.
                        _ => listener = Some(RoomListener::new(queue)),
                    }
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Conveniences for tokio services (the `tokio` feature). The client itself needs no runtime:
/// these only move its blocking steps off the async worker threads.
#[cfg(feature = "tokio")]
impl Client {
    /// [`Client::connect`] on tokio's blocking pool: reading the topology opens blocking
    /// connections, which must not stall an async worker thread. Needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`]; [`Error::Io`] if the blocking task could not run.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), slotline_client::Error> {
    /// let config = slotline_client::Config::from_yaml_file("geo_shard_client.yaml")?;
    /// let client = slotline_client::Client::connect_async(config).await?;
    /// client.commit_async(b"geo:{user42}", b"52.52,13.40").await.ok();
    /// client.close_async().await;
    /// # Ok(()) }
    /// ```
    pub async fn connect_async(config: Config) -> Result<Client, Error> {
        tokio::task::spawn_blocking(move || Client::connect(config))
            .await
            .map_err(|e| Error::Io {
                addr: "the connect task".to_owned(),
                source: std::io::Error::other(e),
            })?
    }

    /// [`Client::close`], awaited: the client stops at once (new calls fail with
    /// [`CommitError::Closed`]) and the future resolves once its threads have ended, joined
    /// on tokio's blocking pool instead of the calling worker thread. Needs a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: slotline_client::Client) {
    /// client.close_async().await;
    /// assert!(client.commit_async(b"k", b"v").await.is_err());
    /// # }
    /// ```
    pub async fn close_async(&self) {
        let handles = self.begin_stop();
        if handles.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for handle in handles {
                let _ = handle.join();
            }
        })
        .await;
    }
}

/// One call's settings, from the configuration and the call's [`CallOptions`].
struct Call {
    deadline: Instant,
    /// The deadline is earlier than `commit.timeout` from now: an I/O thread, which watches
    /// the oldest op of each queue, may not see it in time, so async callers also ask the
    /// timer thread to wake them at it.
    watch: bool,
    /// The deadline is later than `commit.timeout` from now: ops pushed after this one may
    /// have earlier deadlines (see [`MasterQueue::long_deadline_ms`]).
    long: bool,
    replicas: u32,
    policy: FallbackStrategy,
}

impl Call {
    fn prepare(&self, mut op: Op) -> Op {
        op.replicas = self.replicas;
        op
    }
}

/// Why a push did not happen.
enum Submit {
    /// `block` policy and the queue is at its limit: here is the op back, and the queue to
    /// wait on.
    Full(Op, Arc<MasterQueue>),
    /// The op will not be queued: the caller gets this error.
    Refused(CommitError),
}

/// One attempt to queue `op` under `policy`. `Ok(watch)`: queued; `watch` says that an op
/// with a later deadline may be ahead of it, so that an async caller should have the timer
/// thread wake it at its deadline.
fn submit(shared: &Shared, op: Op, policy: FallbackStrategy, long: bool) -> Result<bool, Submit> {
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
    let deadline_ms = op
        .deadline()
        .saturating_duration_since(shared.routes.epoch)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX);
    let mut op = op;
    loop {
        if long {
            // Before the push: whoever is pushed after this op reads it after its own push.
            queue
                .long_deadline_ms
                .fetch_max(deadline_ms, Ordering::SeqCst);
        }
        if queue.try_charge(bytes) {
            match queue.ring.try_push_below(op, queue.limit) {
                Ok(()) => {
                    shared.after_push(queue);
                    let watch = queue.long_deadline_ms.load(Ordering::SeqCst) > deadline_ms;
                    return Ok(watch);
                }
                Err(Full(back)) => {
                    queue.uncharge(bytes);
                    op = back;
                }
            }
        }
        match policy {
            FallbackStrategy::Reject => return Err(refuse(shared, &op, CommitError::Rejected)),
            FallbackStrategy::Block => return Err(Submit::Full(op, Arc::clone(queue))),
            FallbackStrategy::DropOldest => {
                // A call that is out of time evicts nobody.
                if Instant::now() >= op.deadline() {
                    let err = CommitError::DeadlineExceeded {
                        may_have_been_applied: false,
                    };
                    return Err(refuse(shared, &op, err));
                }
                // Evict the oldest queued op (its caller gets `Dropped`), then retry. Another
                // producer may take the freed place first; the loop is bounded by the deadline.
                match queue.ring.try_pop() {
                    Some(oldest) => {
                        crate::trace::event!(debug, "slotline::backpressure", master = %queue.addr, "oldest queued op dropped");
                        shared.finish(queue, oldest, Err(CommitError::Dropped));
                    }
                    None if queue.ring.is_empty() => {
                        // Nothing queued to evict: the budget is held by writes in flight.
                        return Err(refuse(shared, &op, CommitError::Rejected));
                    }
                    None => {}
                }
            }
        }
    }
}

/// `op` will not be queued: counts `err` in its shard's metrics and hands it to the caller.
fn refuse(shared: &Shared, op: &Op, err: CommitError) -> Submit {
    crate::trace::event!(debug, "slotline::backpressure", slot = op.slot().get(), error = %err, "call refused");
    shared.record(op, &Err::<(), _>(err.clone()));
    Submit::Refused(err)
}

/// `op`'s deadline passed before it could be queued: counted, and the caller's error.
fn expired(shared: &Shared, op: &Op) -> CommitError {
    let err = CommitError::DeadlineExceeded {
        may_have_been_applied: false,
    };
    shared.record(op, &Err::<(), _>(err.clone()));
    err
}

/// A caller listening for room in a full queue. Counts itself in the queue's `waiters` while
/// it lives, so that the queue notifies only while someone listens (see
/// [`MasterQueue::release`]).
struct RoomListener {
    queue: Arc<MasterQueue>,
    /// Taken by [`RoomListener::wait_until`], which consumes it.
    listener: Option<EventListener>,
}

impl RoomListener {
    /// Counts in, then listens; the caller must try once more before it waits.
    fn new(queue: Arc<MasterQueue>) -> RoomListener {
        crate::trace::event!(trace, "slotline::backpressure", master = %queue.addr, "waiting for room");
        queue.waiters.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        let listener = Some(queue.room.listen());
        RoomListener { queue, listener }
    }

    /// Blocks until notified or `deadline`.
    fn wait_until(mut self, deadline: Instant) {
        if let Some(listener) = self.listener.take() {
            let _ = listener.wait_deadline(deadline);
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.listener.as_mut() {
            Some(listener) => Pin::new(listener).poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for RoomListener {
    fn drop(&mut self) {
        self.queue.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An async caller's wait for room in a full queue, and its registration with the timer
/// thread.
#[derive(Default)]
struct RoomWait {
    listener: Option<RoomListener>,
    /// The waker registered with the timer thread, and its entry.
    timer: Option<TimerEntry>,
}

impl RoomWait {
    /// After a push found `queue` full: `Ready` to try again at once, `Pending` when the task
    /// will be woken by room or by the deadline.
    fn poll(
        &mut self,
        shared: &Shared,
        queue: Arc<MasterQueue>,
        deadline: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match self.listener.as_mut() {
            Some(l) if Arc::ptr_eq(&l.queue, &queue) => {
                if l.poll(cx).is_ready() {
                    self.listener = None;
                    return Poll::Ready(());
                }
            }
            // Listen first, then try again: room freed in between is not missed.
            _ => {
                self.listener = Some(RoomListener::new(queue));
                return Poll::Ready(());
            }
        }
        self.wake_at(shared, deadline, cx);
        Poll::Pending
    }

    /// Has the timer thread wake this task at `deadline` (again only if its waker changed).
    fn wake_at(&mut self, shared: &Shared, deadline: Instant, cx: &Context<'_>) {
        wake_at(&mut self.timer, shared, deadline, cx);
    }

    fn done(&mut self) {
        self.listener = None;
    }
}

/// A timer registration: cancelled (its waker released) when dropped.
struct TimerEntry {
    waker: Waker,
    /// Held, not read: dropping it cancels the registration.
    _entry: crate::timer::Entry,
}

/// Registers `cx`'s waker with the timer thread for `deadline`, unless the registration in
/// `slot` already wakes that task.
fn wake_at(slot: &mut Option<TimerEntry>, shared: &Shared, deadline: Instant, cx: &Context<'_>) {
    if slot.as_ref().is_some_and(|t| t.waker.will_wake(cx.waker())) {
        return;
    }
    let waker = cx.waker().clone();
    let entry = shared.timers.wake_at(deadline, waker.clone());
    *slot = Some(TimerEntry {
        waker,
        _entry: entry,
    });
}

/// The state machine behind [`CommitFuture`] and [`ReplyFuture`]: queue the op (waiting for
/// room under `block`), then await its completion.
struct Pending {
    shared: Arc<Shared>,
    /// The op until it is queued, or the error that refused it before it was made.
    op: Option<Result<Op, CommitError>>,
    policy: FallbackStrategy,
    long: bool,
    wait: RoomWait,
    completion: Option<Completion>,
    /// See [`Call::watch`]; also set when an op with a later deadline is ahead in the queue.
    watch: bool,
}

impl Pending {
    fn new(
        shared: &Arc<Shared>,
        op: Result<Op, CommitError>,
        completion: Completion,
        call: &Call,
    ) -> Pending {
        Pending {
            shared: Arc::clone(shared),
            op: Some(op),
            policy: call.policy,
            long: call.long,
            wait: RoomWait::default(),
            completion: Some(completion),
            watch: call.watch,
        }
    }

    fn refused(shared: &Arc<Shared>, err: CommitError) -> Pending {
        Pending {
            shared: Arc::clone(shared),
            op: Some(Err(err)),
            policy: FallbackStrategy::Reject,
            long: false,
            wait: RoomWait::default(),
            completion: None,
            watch: false,
        }
    }

    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        while let Some(op) = self.op.take() {
            let op = match op {
                Ok(op) => op,
                Err(err) => {
                    self.completion = None;
                    return Poll::Ready(Err(err));
                }
            };
            match submit(&self.shared, op, self.policy, self.long) {
                Ok(watch) => {
                    self.watch |= watch;
                    self.wait.done();
                }
                Err(Submit::Refused(err)) => {
                    self.completion = None;
                    self.wait = RoomWait::default();
                    return Poll::Ready(Err(err));
                }
                Err(Submit::Full(op, queue)) => {
                    let deadline = op.deadline();
                    if Instant::now() >= deadline {
                        self.completion = None;
                        self.wait = RoomWait::default();
                        return Poll::Ready(Err(expired(&self.shared, &op)));
                    }
                    self.op = Some(Ok(op));
                    if self
                        .wait
                        .poll(&self.shared, queue, deadline, cx)
                        .is_pending()
                    {
                        return Poll::Pending;
                    }
                }
            }
        }
        match self.completion.as_mut() {
            Some(completion) => {
                let poll = completion.poll_reply(cx);
                if poll.is_ready() {
                    self.completion = None;
                    self.wait = RoomWait::default();
                } else if self.watch {
                    let deadline = completion.deadline();
                    self.wait.wake_at(&self.shared, deadline, cx);
                }
                poll
            }
            None => Poll::Ready(Err(CommitError::Closed)),
        }
    }
}

/// The future returned by [`Client::commit_async`].
///
/// Resolves to the same result [`Client::commit`] would return. Dropping it before it resolves
/// abandons the write if it was not sent yet (see [`Completion`]).
#[must_use = "a commit does nothing unless awaited"]
pub struct CommitFuture {
    inner: Pending,
}

impl std::fmt::Debug for CommitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitFuture")
            .field("queued", &self.inner.op.is_none())
            .finish_non_exhaustive()
    }
}

impl Future for CommitFuture {
    type Output = CommitResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CommitResult> {
        self.get_mut().inner.poll_reply(cx).map(|r| r.map(drop))
    }
}

/// The future returned by [`Client::commit_cmd_async`]: the command's reply.
///
/// Resolves to the same result [`Client::commit_cmd`] would return. Dropping it before it
/// resolves abandons the command if it was not sent yet (see [`Completion`]).
#[must_use = "a command does nothing unless awaited"]
pub struct ReplyFuture {
    inner: Pending,
}

impl std::fmt::Debug for ReplyFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyFuture")
            .field("queued", &self.inner.op.is_none())
            .finish_non_exhaustive()
    }
}

impl Future for ReplyFuture {
    type Output = ReplyResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        self.get_mut().inner.poll_reply(cx)
    }
}

/// A batch's ops, their callers' halves and the results known before sending.
struct Batch {
    /// `ops[i]` until it is queued.
    ops: Vec<Option<Op>>,
    completions: Vec<Option<Completion>>,
    /// A result decided before sending (an invalid command, a refusal).
    results: Vec<Option<ReplyResult>>,
}

impl Batch {
    /// Makes the ops and checks the batch against its masters' queues.
    fn prepare(shared: &Shared, cmds: &[redis::Cmd], call: &Call) -> Result<Batch, CommitError> {
        let state = shared.state();
        if state != RUNNING {
            return Err(shared.stopped_error(state, false));
        }
        let mut batch = Batch {
            ops: Vec::with_capacity(cmds.len()),
            completions: Vec::with_capacity(cmds.len()),
            results: Vec::with_capacity(cmds.len()),
        };
        for cmd in cmds {
            match Op::command(cmd, call.deadline) {
                Ok((op, completion)) => {
                    batch.ops.push(Some(call.prepare(op)));
                    batch.completions.push(Some(completion));
                    batch.results.push(None);
                }
                Err(e) => {
                    batch.ops.push(None);
                    batch.completions.push(None);
                    batch
                        .results
                        .push(Some(Err(CommitError::InvalidCommand(e))));
                }
            }
        }
        // Refuse up front what no queue could ever hold, rather than queue half of it.
        let table = shared.routes.load();
        let mut per_master = vec![(0usize, 0u64); table.masters.len()];
        for op in batch.ops.iter().flatten() {
            let m = &mut per_master[table.master_index(op.slot())];
            m.0 += 1;
            m.1 += op.charge();
        }
        for (queue, &(ops, bytes)) in table.masters.iter().zip(&per_master) {
            if ops > queue.limit || bytes > queue.byte_limit {
                crate::trace::event!(debug, "slotline::backpressure", master = %queue.addr, ops, bytes, "batch refused");
                return Err(CommitError::BatchTooLarge {
                    master: queue.addr.to_string(),
                    ops,
                    bytes,
                    limit_ops: queue.limit,
                    limit_bytes: queue.byte_limit,
                });
            }
        }
        Ok(batch)
    }
}

/// The future returned by [`Client::commit_batch_async`]: one result per command, in input
/// order.
///
/// Commands are queued in input order, each in its master's queue. Under `block`, a master
/// whose queue is full holds back only its own commands (in order): the other masters' are
/// queued meanwhile. Dropping the future before it resolves abandons the commands not sent
/// yet.
#[must_use = "a batch does nothing unless awaited"]
pub struct BatchFuture {
    shared: Arc<Shared>,
    policy: FallbackStrategy,
    deadline: Instant,
    long: bool,
    /// See [`Call::watch`]; also set when an op with a later deadline is ahead in a queue.
    watch: bool,
    /// The batch, or why it was refused whole.
    batch: Result<Batch, CommitError>,
    /// Indices of the ops not queued yet, in input order.
    unqueued: Vec<usize>,
    /// Listeners on the queues that were full at the last try.
    waits: Vec<RoomListener>,
    timer: Option<TimerEntry>,
}

impl std::fmt::Debug for BatchFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchFuture")
            .field("unqueued", &self.unqueued.len())
            .finish_non_exhaustive()
    }
}

impl BatchFuture {
    /// Queues what can be queued. `Pending` while some ops wait for room (the task is woken
    /// by room in one of their queues or by the deadline).
    fn push(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(batch) = &mut self.batch else {
            return Poll::Ready(());
        };
        loop {
            let mut blocked: Vec<Arc<MasterQueue>> = Vec::new();
            let mut still = Vec::new();
            for i in std::mem::take(&mut self.unqueued) {
                let Some(op) = batch.ops[i].take() else {
                    continue;
                };
                // Once one of a master's ops waits, its later ops wait behind it (in order).
                let held = {
                    let table = self.shared.routes.load();
                    let queue = table.queue(op.slot());
                    blocked.iter().any(|b| Arc::ptr_eq(b, queue))
                };
                if held {
                    batch.ops[i] = Some(op);
                    still.push(i);
                    continue;
                }
                match submit(&self.shared, op, self.policy, self.long) {
                    Ok(watch) => self.watch |= watch,
                    Err(Submit::Refused(err)) => {
                        batch.results[i] = Some(Err(err));
                        batch.completions[i] = None;
                    }
                    Err(Submit::Full(op, queue)) => {
                        batch.ops[i] = Some(op);
                        still.push(i);
                        blocked.push(queue);
                    }
                }
            }
            self.unqueued = still;
            if self.unqueued.is_empty() {
                self.waits.clear();
                return Poll::Ready(());
            }
            if Instant::now() >= self.deadline {
                // Out of time: every op not queued fails, unsent.
                for i in std::mem::take(&mut self.unqueued) {
                    if let Some(op) = batch.ops[i].take() {
                        batch.results[i] = Some(Err(expired(&self.shared, &op)));
                        batch.completions[i] = None;
                    }
                }
                self.waits.clear();
                return Poll::Ready(());
            }
            // Listen on every full queue; a new listener means one more try first.
            self.waits
                .retain(|w| blocked.iter().any(|b| Arc::ptr_eq(b, &w.queue)));
            let mut fresh = false;
            for queue in blocked {
                if !self.waits.iter().any(|w| Arc::ptr_eq(&w.queue, &queue)) {
                    self.waits.push(RoomListener::new(queue));
                    fresh = true;
                }
            }
            if fresh {
                continue;
            }
            let mut notified = false;
            self.waits.retain_mut(|w| {
                let ready = w.poll(cx).is_ready();
                notified |= ready;
                !ready
            });
            if notified {
                continue;
            }
            wake_at(&mut self.timer, &self.shared, self.deadline, cx);
            return Poll::Pending;
        }
    }
}

impl Future for BatchFuture {
    type Output = Result<Vec<ReplyResult>, CommitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Err(err) = &this.batch {
            return Poll::Ready(Err(err.clone()));
        }
        if this.push(cx).is_pending() {
            return Poll::Pending;
        }
        let Ok(batch) = &mut this.batch else {
            return Poll::Ready(Err(CommitError::Closed));
        };
        // Collect what has arrived; every pending completion holds this task's waker.
        let mut pending = false;
        for (result, completion) in batch.results.iter_mut().zip(batch.completions.iter_mut()) {
            if result.is_some() {
                continue;
            }
            match completion.as_mut().map(|c| c.poll_reply(cx)) {
                Some(Poll::Ready(r)) => {
                    *result = Some(r);
                    *completion = None;
                }
                Some(Poll::Pending) => pending = true,
                None => *result = Some(Err(CommitError::Closed)),
            }
        }
        if pending {
            if this.watch {
                wake_at(&mut this.timer, &this.shared, this.deadline, cx);
            }
            return Poll::Pending;
        }
        let results = std::mem::take(&mut batch.results)
            .into_iter()
            .map(|r| r.unwrap_or(Err(CommitError::Closed)))
            .collect();
        this.batch = Err(CommitError::Closed);
        this.timer = None;
        Poll::Ready(Ok(results))
    }
}

/// Runs `fut` on this thread until it is ready: parks between wake-ups, and polls once more
/// at `deadline` (after which every future of this crate resolves at once).
fn block_on<F: Future>(fut: F, deadline: Instant) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let now = Instant::now();
        // Spurious unparks only cost a poll; past the deadline, poll every millisecond.
        let wait = deadline
            .saturating_duration_since(now)
            .max(std::time::Duration::from_millis(1));
        thread::park_timeout(wait);
    }
}
