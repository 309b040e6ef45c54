//! [`Client`]: route a write to its shard's ring, apply backpressure, wait for the ACK.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use slotline_ring::{Full, Ring};
use slotline_router::ShardMap;

use crate::cluster::Topology;
use crate::config::{Config, FallbackStrategy};
use crate::conn::ConnOptions;
use crate::error::{CommitError, Error};
use crate::metrics::{Metrics, MetricsSnapshot, RingFill, ShardMetrics};
use crate::op::{CommitResult, Completion, Op, OpError};
use crate::writer::{Parking, Writer};

/// What the client and its writers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) conn_opts: ConnOptions,
    pub(crate) shards: ShardMap,
    /// One ring of pending ops per logical shard, each `ring_buffer_capacity` long.
    pub(crate) rings: Box<[Ring<Op>]>,
    /// Pushes stop at this many pending ops per ring (the backpressure line).
    pub(crate) limit: usize,
    pub(crate) topology: Topology,
    pub(crate) parking: Box<[Parking]>,
    pub(crate) metrics: Metrics,
    pub(crate) closed: AtomicBool,
}

impl Shared {
    /// The metrics of `shard` (always in range: shards come from `self.shards`).
    pub(crate) fn shard_metrics(&self, shard: usize) -> &ShardMetrics {
        self.metrics
            .shard(shard)
            .expect("one ShardMetrics per ring, created together")
    }

    /// Counts an outcome that never reached a ring (rejected, timed out while blocked, ...).
    fn record_refusal(&self, shard: usize, outcome: CommitError) -> CommitError {
        self.shard_metrics(shard)
            .record_outcome(&Err(outcome.clone()));
        outcome
    }
}

/// A bounded, ACK-committing Redis Cluster writer. See the [crate docs](crate).
///
/// Cloning is not offered; share a `Client` by reference or in an [`Arc`]. Dropping it stops
/// its writer threads; writes still queued complete with [`CommitError::Closed`].
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
    writers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("shards", &self.shared.rings.len())
            .field("writers", &self.writers.len())
            .field("topology", &self.shared.topology.snapshot())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `config`, reads the cluster's topology through `config.nodes`, allocates every
    /// ring, and starts one writer thread per master.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration (no seed nodes included);
    /// [`Error::NoReachableNode`] when no seed answered with a usable topology.
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
        let topology = Topology::connect(config.nodes.clone(), conn_opts.clone(), shards)?;
        let capacity = config.shard_config.ring_buffer_capacity;
        let limit = if config.backpressure.enabled {
            config.backpressure_limit()
        } else {
            capacity
        };
        let writers = topology.writers();
        let shared = Arc::new(Shared {
            rings: (0..shards.shard_count())
                .map(|_| Ring::new(capacity))
                .collect(),
            limit,
            parking: (0..writers).map(|_| Parking::default()).collect(),
            metrics: Metrics::new(shards.shard_count()),
            closed: AtomicBool::new(false),
            topology,
            shards,
            conn_opts,
            config,
        });
        let mut handles = Vec::with_capacity(writers);
        for id in 0..writers {
            let writer = Writer::new(id, Arc::clone(&shared));
            let handle = thread::Builder::new()
                .name(format!("slotline-writer-{id}"))
                .spawn(move || writer.run())
                .map_err(|source| Error::Io {
                    addr: "writer thread".to_owned(),
                    source,
                })?;
            handles.push(handle);
        }
        Ok(Client {
            shared,
            writers: handles,
        })
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
    /// (`GEOADD`, `HSET`, `XADD`, `ZADD`, `INCR`, ...). See the writer's notes on which retries
    /// can apply a non-idempotent command twice.
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

    /// Counters, fill levels and latency percentiles, per shard and in total.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client: slotline_client::Client = unimplemented!();
    /// let metrics = client.metrics();
    /// println!("{}", metrics.to_prometheus());
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        let rings = &self.shared.rings;
        self.shared.metrics.snapshot_with_rings(|i| {
            rings.get(i).map(|ring| RingFill {
                len: ring.len(),
                capacity: ring.capacity(),
            })
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.shared.config.commit.timeout
    }

    /// Pushes `op` into its shard's ring by the configured policy, blocking under `block`.
    fn submit_blocking(&self, op: Op) -> Result<(), CommitError> {
        let mut op = op;
        let mut spins = 0u32;
        loop {
            match submit(&self.shared, op) {
                Ok(()) => return Ok(()),
                Err(Submit::Full(back)) => {
                    if Instant::now() >= back.deadline() {
                        let shard = self.shared.shards.shard_of(back.slot());
                        return Err(self.shared.record_refusal(
                            shard,
                            CommitError::DeadlineExceeded {
                                may_have_been_applied: false,
                            },
                        ));
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
        self.shared.closed.store(true, Ordering::Release);
        for parking in self.shared.parking.iter() {
            parking.wake_now();
        }
        for handle in self.writers.drain(..) {
            let _ = handle.join();
        }
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
    if shared.closed.load(Ordering::Acquire) {
        return Err(Submit::Refused(CommitError::Closed));
    }
    let shard = shared.shards.shard_of(op.slot());
    let ring = &shared.rings[shard];
    let mut op = op;
    loop {
        match ring.try_push_below(op, shared.limit) {
            Ok(()) => {
                shared.parking[shared.topology.owner(shard)].wake();
                return Ok(());
            }
            Err(Full(back)) => op = back,
        }
        match shared.config.backpressure.fallback_strategy {
            FallbackStrategy::Reject => {
                return Err(Submit::Refused(
                    shared.record_refusal(shard, CommitError::Rejected),
                ));
            }
            FallbackStrategy::Block => return Err(Submit::Full(op)),
            FallbackStrategy::DropOldest => {
                // Evict the oldest pending op (its caller gets `Dropped`), then retry. Another
                // producer may take the freed place first; the loop is bounded by the deadline.
                if let Some(oldest) = ring.try_pop() {
                    let dropped = shared.record_refusal(shard, CommitError::Dropped);
                    oldest.complete(Err(dropped));
                }
                if Instant::now() >= op.deadline() {
                    return Err(Submit::Refused(shared.record_refusal(
                        shard,
                        CommitError::DeadlineExceeded {
                            may_have_been_applied: false,
                        },
                    )));
                }
            }
        }
    }
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
