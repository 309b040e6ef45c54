//! The peers: clients a Rust service would pick for Redis Cluster, on the same trace.
//!
//! - **redis-rs** ([`RedisRs`]): `redis::cluster_async::ClusterConnection` from
//!   `redis::cluster::ClusterClient::new(nodes)`, with its documented defaults: no response
//!   timeout, no limit on the requests in flight per node (`connection_concurrency_limit`
//!   unset), retries with exponential backoff on retryable errors.
//! - **fred** ([`Fred`]): `fred::clients::Client` from a `redis-cluster://` URL with the
//!   default performance and connection configuration and no reconnect policy: no command
//!   timeout (`default_command_timeout` 0), an unlimited in-memory command queue
//!   (`max_command_buffer_len` 0), 3 attempts per command.
//!
//! Neither bounds what its callers can have in flight, so the report gives them no configured
//! depth ("none", not enforced).
//!
//! # How they are driven
//!
//! As a service would call them: one client shared by every request, on a tokio multi-thread
//! runtime of [`WORKERS`] workers, and one task per write awaiting `HSET <key> <seq> <payload>`
//! (the same command, field and payload as the other paths). A scheduler thread waits until
//! each event's scheduled time, as the other paths' callers do, and spawns its task there and
//! then, whatever the earlier writes are doing: open loop. Latency runs from the scheduled
//! time; a write's outcome is what its future returned (`Ok`, or an error classified by
//! [`redis_rs_failure`] / [`fred_failure`]).
//!
//! **In flight** is the number of writes spawned whose future has not returned yet, sampled
//! every [`SAMPLE_EVERY`]; its bytes are estimated as in-flight × the mean size of the `HSET`
//! command in RESP, a lower bound (each client's own per-command structures are not counted;
//! the peak RSS is the whole cost). A client without a timeout may hold its futures through a
//! frozen cluster: after the last event the replay waits up to [`DRAIN_LIMIT`] for the
//! outstanding futures, then counts the rest as unknown under [`NO_ANSWER`] and drops them
//! with the runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use super::readback::field_name;
use super::replay::{payload, DepthSample, Outcome, PathRun, Record, Schedule, Tally};
use super::sidecar::{own_kernel_bytes, read_status_kib, unix_us};
use super::trace::Trace;

/// Worker threads of the peers' tokio runtime (the machine this was written for has 2 cores).
pub const WORKERS: usize = 2;
/// How long the replay waits, after its last event, for the peer's outstanding futures.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// The error kind of writes whose future had not returned [`DRAIN_LIMIT`] after the replay.
pub const NO_ANSWER: &str = "no answer within 60 s after the replay";
/// How often the writes in flight are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long connecting a peer to the cluster may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// A failed write as its caller saw it: the error's kind, for the report's counts, and
/// whether the write may have been applied ([`Outcome::Unknown`]) or surely was not
/// ([`Outcome::Refused`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A short, stable name of the error's kind (no per-error details).
    pub kind: String,
    /// [`Outcome::Refused`] or [`Outcome::Unknown`].
    pub outcome: Outcome,
}

/// A client under test: one `HSET` per call, as a service's request handler would issue it.
pub trait Peer: Send + Sync + 'static {
    /// `HSET key field value`; resolves when the client has an answer for the caller.
    fn hset(
        &self,
        key: String,
        field: String,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), Failure>> + Send + 'static;
}

/// redis-rs's async cluster connection, with its documented defaults.
pub struct RedisRs {
    conn: redis::cluster_async::ClusterConnection,
}

impl RedisRs {
    /// Connects to the cluster through `seeds` (`host:port`), as
    /// `ClusterClient::new(nodes)?.get_async_connection()`. Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// redis-rs's error, as text.
    pub async fn connect(seeds: &[String]) -> Result<Self, String> {
        let nodes: Vec<String> = seeds.iter().map(|s| format!("redis://{s}")).collect();
        let client =
            redis::cluster::ClusterClient::new(nodes).map_err(|e| format!("redis-rs: {e}"))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| format!("redis-rs: {e}"))?;
        Ok(RedisRs { conn })
    }
}

impl Peer for RedisRs {
    fn hset(
        &self,
        key: String,
        field: String,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), Failure>> + Send + 'static {
        // A clone per request is how the connection is shared (it is a handle on one
        // multiplexed connection per node).
        let mut conn = self.conn.clone();
        async move {
            let result: redis::RedisResult<()> = conn.hset(key, field, value).await;
            result.map_err(|e| redis_rs_failure(&e))
        }
    }
}

/// Classifies a redis-rs error: an error reply from Redis (it refused the command) is
/// [`Outcome::Refused`]; anything else (I/O, a timeout, no connection, ...) may come after the
/// command was sent, or after a retry of one that was, so it is [`Outcome::Unknown`].
pub fn redis_rs_failure(e: &redis::RedisError) -> Failure {
    let outcome = match e.kind() {
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => Outcome::Refused,
        _ => Outcome::Unknown,
    };
    let kind = match e.code() {
        Some(code) => format!("{} ({code})", e.category()),
        None => e.category().to_owned(),
    };
    Failure { kind, outcome }
}

/// fred's clustered client, with its documented defaults.
pub struct Fred {
    client: fred::clients::Client,
}

impl Fred {
    /// Connects to the cluster through `seeds` (`host:port`): a
    /// `redis-cluster://<first>?node=<other>&...` configuration, `Client::new(config, None,
    /// None, None)` (default performance and connection settings, no reconnect policy) and
    /// `init()`. Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// No seed, or fred's error, as text.
    pub async fn connect(seeds: &[String]) -> Result<Self, String> {
        use fred::interfaces::ClientLike;

        let (first, rest) = seeds
            .split_first()
            .ok_or_else(|| "fred: no seed node".to_owned())?;
        let mut url = format!("redis-cluster://{first}");
        for (i, node) in rest.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str("node=");
            url.push_str(node);
        }
        let config =
            fred::types::config::Config::from_url(&url).map_err(|e| format!("fred: {url}: {e}"))?;
        let client = fred::clients::Client::new(config, None, None, None);
        // The handle of the connection task is not needed: the task runs until the client
        // quits or the runtime shuts down.
        let _task = client.init().await.map_err(|e| format!("fred: {e}"))?;
        Ok(Fred { client })
    }
}

impl Peer for Fred {
    fn hset(
        &self,
        key: String,
        field: String,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), Failure>> + Send + 'static {
        use fred::interfaces::HashesInterface;

        let client = self.client.clone();
        async move {
            client
                .hset::<(), _, _>(key, (field, value))
                .await
                .map_err(|e| fred_failure(&e))
        }
    }
}

/// Classifies a fred error: errors raised before anything is sent or that name the command
/// as invalid (backpressure, configuration, URL, authentication, invalid argument or command)
/// are [`Outcome::Refused`]; everything else (I/O, timeouts, cancellation, cluster state,
/// `ERR` replies fred reports as unknown, ...) is [`Outcome::Unknown`].
pub fn fred_failure(e: &fred::error::Error) -> Failure {
    use fred::error::ErrorKind as K;
    let outcome = match e.kind() {
        K::Backpressure | K::Config | K::Url | K::Auth | K::InvalidArgument | K::InvalidCommand => {
            Outcome::Refused
        }
        _ => Outcome::Unknown,
    };
    // A Redis error code (`ERR`, `CLUSTERDOWN`, ...) leading the details is kept; other
    // details vary per error and would split the counts.
    let code = e
        .details()
        .split_whitespace()
        .next()
        .filter(|w| w.len() > 1 && w.bytes().all(|b| b.is_ascii_uppercase()));
    let kind = match code {
        Some(code) => format!("{} ({code})", e.kind().to_str()),
        None => e.kind().to_str().to_owned(),
    };
    Failure { kind, outcome }
}

/// A write's outcome and answer time packed in one word, so that the task answering it and
/// the replay giving up on it cannot both count it: outcome in the top 2 bits, microseconds
/// in the rest; 0 while pending.
struct Cell(AtomicU64);

const OUTCOME_SHIFT: u32 = 62;

impl Cell {
    /// Sets the outcome if none is set yet; true if this call set it.
    fn settle(&self, done_us: u64, outcome: Outcome) -> bool {
        let code: u64 = match outcome {
            Outcome::Pending => return false,
            Outcome::Ok => 1,
            Outcome::Refused => 2,
            Outcome::Unknown => 3,
        };
        let word = (code << OUTCOME_SHIFT) | (done_us & ((1 << OUTCOME_SHIFT) - 1));
        self.0
            .compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `(done_us, outcome)`.
    fn get(&self) -> (u64, Outcome) {
        let word = self.0.load(Ordering::Acquire);
        let outcome = match word >> OUTCOME_SHIFT {
            1 => Outcome::Ok,
            2 => Outcome::Refused,
            3 => Outcome::Unknown,
            _ => Outcome::Pending,
        };
        (word & ((1 << OUTCOME_SHIFT) - 1), outcome)
    }
}

/// What the scheduler, the tasks and the sampler share. Allocated before the replay's RSS
/// baseline, so the harness's own bookkeeping is not charged to the peer.
struct Shared {
    start: Instant,
    send_us: Vec<AtomicU64>,
    cells: Vec<Cell>,
    in_flight: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn new(events: usize) -> Self {
        Shared {
            start: Instant::now(),
            send_us: (0..events).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..events).map(|_| Cell(AtomicU64::new(0))).collect(),
            in_flight: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    fn count_error(&self, kind: String, n: u64) {
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default() += n;
    }
}

/// Replays `trace` through the peer that `connect` opens (see the [module docs](self)), and
/// measures the process's RSS over it. `redis_ports` are the masters' ports (to find the
/// client's sockets in `/proc/net/tcp`); `cmd_bytes` is the mean size of one `HSET` in RESP.
///
/// # Errors
///
/// A message when the runtime cannot start or the peer cannot connect in 30 s.
pub fn run_peer<P, F, Fut>(
    trace: &Trace,
    connect: F,
    redis_ports: &[u16],
    cmd_bytes: u64,
    tally: &Tally,
) -> Result<PathRun, String>
where
    P: Peer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<P, String>>,
{
    let mut shared = Shared::new(trace.events.len());
    let base = super::reset_peak_rss();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("burst-peer")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let peer = rt
        .block_on(async { tokio::time::timeout(CONNECT_LIMIT, connect()).await })
        .map_err(|_| format!("could not connect within {CONNECT_LIMIT:?}"))??;
    shared.start = Instant::now();
    let shared = Arc::new(shared);
    let mut run = replay(
        trace,
        &rt,
        Arc::new(peer),
        &shared,
        redis_ports,
        cmd_bytes,
        tally,
    );
    run.caller_base_rss_kib = base;
    run.caller_peak_rss_kib = read_status_kib("self", "VmHWM").unwrap_or(0);
    // Futures still held (past the drain limit) are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(run)
}

fn replay<P: Peer>(
    trace: &Trace,
    rt: &tokio::runtime::Runtime,
    peer: Arc<P>,
    shared: &Arc<Shared>,
    redis_ports: &[u16],
    cmd_bytes: u64,
    tally: &Tally,
) -> PathRun {
    let start_unix_us = unix_us();
    let mut s = Schedule::new(trace, tally);
    s.start = shared.start;
    let sampling = AtomicBool::new(true);
    let samples = thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::with_capacity(4096);
            let mut kernel = 0;
            let mut i = 0u64;
            while sampling.load(Ordering::Relaxed) {
                let depth = shared.in_flight.load(Ordering::Relaxed);
                let offered = s.tally.offered.load(Ordering::Relaxed);
                s.tally
                    .settled
                    .store(offered.saturating_sub(depth as usize), Ordering::Relaxed);
                // /proc every 100 ms, as on the slotline path.
                let mut rss_kib = None;
                if i % 10 == 0 {
                    kernel = own_kernel_bytes(redis_ports);
                    rss_kib = read_status_kib("self", "VmRSS");
                }
                samples.push(DepthSample {
                    t_us: s.now_us(),
                    depth,
                    bytes: depth * cmd_bytes,
                    kernel_bytes: kernel,
                    rss_kib,
                    proxy_rss_kib: None,
                });
                i += 1;
                thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        for (i, e) in trace.events.iter().enumerate() {
            let now = s.wait_until(e.t_us);
            let mut value = Vec::with_capacity(e.bytes as usize + 32);
            payload(i as u64, e.bytes, &mut value);
            shared.send_us[i].store(now, Ordering::Relaxed);
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let write = peer.hset(trace.key_of(e).to_owned(), field_name(i as u64), value);
            let task = Arc::clone(shared);
            rt.spawn(async move {
                let result = write.await;
                let done = task.start.elapsed().as_micros() as u64;
                match result {
                    Ok(()) => {
                        task.cells[i].settle(done, Outcome::Ok);
                    }
                    Err(f) => {
                        if task.cells[i].settle(done, f.outcome) {
                            task.count_error(f.kind, 1);
                        }
                    }
                }
                task.in_flight.fetch_sub(1, Ordering::Release);
            });
            s.tally.offered.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        sampling.store(false, Ordering::Relaxed);
        sampler.join().unwrap_or_default()
    });
    let now = s.now_us();
    let abandoned = shared
        .cells
        .iter()
        .filter(|c| c.settle(now, Outcome::Unknown))
        .count() as u64;
    if abandoned > 0 {
        shared.count_error(NO_ANSWER.to_owned(), abandoned);
    }
    let records = shared
        .cells
        .iter()
        .zip(&shared.send_us)
        .map(|(c, send)| {
            let (done_us, outcome) = c.get();
            Record {
                send_us: send.load(Ordering::Relaxed),
                done_us,
                outcome,
            }
        })
        .collect();
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(PoisonError::into_inner));
    PathRun {
        start_unix_us,
        records,
        samples,
        errors,
        in_redis_us: None,
        after_ack: BTreeMap::new(),
        caller_base_rss_kib: 0,
        caller_peak_rss_kib: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_settled_once_whoever_comes_first() {
        let c = Cell(AtomicU64::new(0));
        assert_eq!(c.get(), (0, Outcome::Pending));
        assert!(c.settle(1234, Outcome::Ok));
        assert!(!c.settle(99, Outcome::Unknown), "the answer came first");
        assert_eq!(c.get(), (1234, Outcome::Ok));
        let c = Cell(AtomicU64::new(0));
        assert!(c.settle(7, Outcome::Unknown));
        assert!(!c.settle(8, Outcome::Ok), "given up first");
        assert_eq!(c.get(), (7, Outcome::Unknown));
        assert!(!Cell(AtomicU64::new(0)).settle(1, Outcome::Pending));
    }

    #[test]
    fn error_replies_are_refusals_and_the_rest_unknown() {
        let io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert_eq!(redis_rs_failure(&io).outcome, Outcome::Unknown);
        let fred_io = fred::error::Error::new(fred::error::ErrorKind::IO, "broken pipe");
        let f = fred_failure(&fred_io);
        assert_eq!((f.kind.as_str(), f.outcome), ("IO Error", Outcome::Unknown));
        let full = fred::error::Error::new(fred::error::ErrorKind::Backpressure, "full");
        assert_eq!(fred_failure(&full).outcome, Outcome::Refused);
        let down = fred::error::Error::new(
            fred::error::ErrorKind::Cluster,
            "CLUSTERDOWN The cluster is down",
        );
        let f = fred_failure(&down);
        assert_eq!(
            (f.kind.as_str(), f.outcome),
            ("Cluster Error (CLUSTERDOWN)", Outcome::Unknown)
        );
    }
}
