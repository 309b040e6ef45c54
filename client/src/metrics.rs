//! Per-shard counters and commit latency, with a snapshot and a Prometheus text rendering.
//!
//! Each shard has its own [`ShardMetrics`]: atomic counters (relaxed: they are statistics, not
//! synchronisation) and a latency histogram behind a mutex that an I/O thread locks once
//! per batch ([`ShardMetrics::record_latencies`]). Readers take a [`MetricsSnapshot`], which
//! holds plain numbers and the p50/p95/p99/max of each shard and of all shards together.
//!
//! # Bounded memory
//!
//! Latencies go into an HDR histogram with a fixed range, 1 µs to 60 s, and 2 significant
//! digits (every reported value is within 1 % of a recorded one). Its size is fixed at
//! creation, about 20 KiB per shard (1.3 MiB for 64 shards), whatever the traffic; a latency
//! above 60 s is counted as 60 s.
//!
//! # Prometheus
//!
//! [`MetricsSnapshot::to_prometheus`] renders the text exposition format, one series per shard:
//!
//! ```text
//! slotline_commits_total{shard="3"} 12
//! slotline_errors_total{shard="3",kind="server"} 1
//! slotline_redirects_total{shard="3",kind="moved"} 2
//! slotline_commit_latency_seconds{shard="3",quantile="0.99"} 0.00125
//! ```
//!
//! Counters are per shard only (sum them in PromQL); quantiles cannot be summed, so the
//! all-shard latency is in [`MetricsSnapshot::total`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::CommitError;

/// Smallest latency the histogram tells apart, in microseconds.
const LOWEST_US: u64 = 1;
/// Largest latency the histogram holds, in microseconds (60 s); larger ones count as this.
const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept: 2 gives 1 % precision at about 20 KiB per histogram.
const SIGFIGS: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (checked by a unit test).
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIGS)
        .expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Metrics for every shard of a client.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::metrics::Metrics;
///
/// let metrics = Metrics::new(4);
/// let shard = metrics.shard(2).unwrap();
/// shard.record_outcome(&Ok(()));
/// shard.record_latency(Duration::from_micros(180));
/// let snap = metrics.snapshot();
/// assert_eq!(snap.shards[2].commits, 1);
/// assert_eq!(snap.total.commits, 1);
/// assert!(snap.to_prometheus().contains("slotline_commits_total{shard=\"2\"} 1\n"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    /// Set when an I/O thread panicked (the client fails every write from then on).
    dead: std::sync::atomic::AtomicBool,
    shards: Box<[ShardMetrics]>,
}

impl Metrics {
    /// Metrics for `shards` shards, all zero.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// assert_eq!(Metrics::new(64).shard_count(), 64);
    /// ```
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            dead: std::sync::atomic::AtomicBool::new(false),
            shards: (0..shards).map(|_| ShardMetrics::new()).collect(),
        }
    }

    /// Records that an I/O thread panicked: [`MetricsSnapshot::client_dead`] is true from now
    /// on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.mark_dead();
    /// assert!(m.snapshot().client_dead);
    /// ```
    pub fn mark_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    /// Number of shards.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// assert_eq!(Metrics::new(3).shard_count(), 3);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `i`'s metrics, `None` if there is no such shard.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(2);
    /// assert!(m.shard(1).is_some());
    /// assert!(m.shard(2).is_none());
    /// ```
    pub fn shard(&self, i: usize) -> Option<&ShardMetrics> {
        self.shards.get(i)
    }

    /// A snapshot of every shard and their total, without ring fill levels.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let snap = Metrics::new(2).snapshot();
    /// assert_eq!(snap.shards.len(), 2);
    /// assert_eq!(snap.total.latency.count, 0);
    /// ```
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.snapshot_with_rings(|_| None)
    }

    /// A snapshot with each shard's ring fill level, as `ring(shard)` reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::{Metrics, RingFill};
    /// let snap = Metrics::new(2).snapshot_with_rings(|i| Some(RingFill { len: i, capacity: 8 }));
    /// assert_eq!(snap.shards[1].ring, Some(RingFill { len: 1, capacity: 8 }));
    /// assert_eq!(snap.total.ring, Some(RingFill { len: 1, capacity: 16 }));
    /// ```
    pub fn snapshot_with_rings(
        &self,
        mut ring: impl FnMut(usize) -> Option<RingFill>,
    ) -> MetricsSnapshot {
        let mut total_hist = new_histogram();
        let mut total_sum = Duration::ZERO;
        let mut shards = Vec::with_capacity(self.shards.len());
        for (i, shard) in self.shards.iter().enumerate() {
            let (snap, sum) = {
                let latency = shard.latency.lock().unwrap_or_else(PoisonError::into_inner);
                // Same bounds on both sides, so adding cannot fail; skip if it somehow did.
                let _ = total_hist.add(&latency.histogram);
                (
                    shard.counters(LatencySummary::of(&latency.histogram, latency.sum)),
                    latency.sum,
                )
            };
            total_sum = total_sum.saturating_add(sum);
            shards.push(ShardSnapshot {
                shard: Some(i),
                ring: ring(i),
                ..snap
            });
        }
        let mut total = ShardSnapshot {
            shard: None,
            latency: LatencySummary::of(&total_hist, total_sum),
            ..ShardSnapshot::default()
        };
        for s in &shards {
            total.accumulate(s);
        }
        MetricsSnapshot {
            shards,
            total,
            client_dead: self.dead.load(Ordering::Relaxed),
        }
    }
}

/// One shard's counters and latency histogram.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::{metrics::Metrics, CommitError};
///
/// let metrics = Metrics::new(1);
/// let shard = metrics.shard(0).unwrap();
/// shard.add_in_flight(2);
/// shard.record_outcome(&Ok(()));
/// shard.record_outcome(&Err(CommitError::Rejected));
/// shard.sub_in_flight(2);
/// shard.record_latencies([Duration::from_micros(90), Duration::from_micros(110)]);
/// let snap = metrics.snapshot();
/// assert_eq!((snap.shards[0].commits, snap.shards[0].rejections), (1, 1));
/// assert_eq!(snap.shards[0].latency.count, 2);
/// ```
#[derive(Debug)]
pub struct ShardMetrics {
    commits: AtomicU64,
    rejections: AtomicU64,
    drops: AtomicU64,
    timeouts: AtomicU64,
    moved: AtomicU64,
    ask: AtomicU64,
    server_errors: AtomicU64,
    connection_lost: AtomicU64,
    replication_shortfall: AtomicU64,
    closed: AtomicU64,
    in_flight: AtomicU64,
    latency: Mutex<Latency>,
}

#[derive(Debug)]
struct Latency {
    histogram: Histogram<u64>,
    /// Exact sum of recorded latencies (for the Prometheus `_sum`).
    sum: Duration,
}

impl ShardMetrics {
    fn new() -> ShardMetrics {
        ShardMetrics {
            commits: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            ask: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            connection_lost: AtomicU64::new(0),
            replication_shortfall: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency: Mutex::new(Latency {
                histogram: new_histogram(),
                sum: Duration::ZERO,
            }),
        }
    }

    /// Counts one write's outcome: `Ok` as a commit, each [`CommitError`] under its own counter
    /// (`Rejected` → rejections, `Dropped` → drops, `DeadlineExceeded` → timeouts, the rest →
    /// errors by kind).
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::{metrics::Metrics, CommitError};
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_outcome(&Err(CommitError::Dropped));
    /// assert_eq!(m.snapshot().shards[0].drops, 1);
    /// ```
    pub fn record_outcome(&self, outcome: &Result<(), CommitError>) {
        self.record_result(outcome);
    }

    /// [`ShardMetrics::record_outcome`] for an outcome that carries a reply (or anything
    /// else): only whether it is `Ok`, and the error's kind, count.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_result(&Ok::<_, slotline_client::CommitError>(redis::Value::Int(1)));
    /// assert_eq!(m.snapshot().shards[0].commits, 1);
    /// ```
    pub fn record_result<T>(&self, outcome: &Result<T, CommitError>) {
        let counter = match outcome {
            Ok(_) => &self.commits,
            Err(
                CommitError::Rejected
                | CommitError::TooLarge { .. }
                | CommitError::InvalidCommand(_)
                | CommitError::BatchTooLarge { .. },
            ) => &self.rejections,
            Err(CommitError::Dropped) => &self.drops,
            Err(CommitError::DeadlineExceeded { .. }) => &self.timeouts,
            Err(CommitError::Server { .. }) => &self.server_errors,
            Err(
                CommitError::ReplicationShortfall { .. }
                | CommitError::ReplicationUnconfirmed { .. },
            ) => &self.replication_shortfall,
            Err(CommitError::ConnectionLost { .. }) => &self.connection_lost,
            Err(CommitError::Closed | CommitError::ClientDead { .. }) => &self.closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a `MOVED` redirect.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_moved();
    /// assert_eq!(m.snapshot().shards[0].moved, 1);
    /// ```
    pub fn record_moved(&self) {
        self.moved.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an `ASK` redirect.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_ask();
    /// assert_eq!(m.snapshot().shards[0].ask, 1);
    /// ```
    pub fn record_ask(&self) {
        self.ask.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` writes sent and not yet answered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().add_in_flight(5);
    /// assert_eq!(m.snapshot().shards[0].in_flight, 5);
    /// ```
    pub fn add_in_flight(&self, n: u64) {
        self.in_flight.fetch_add(n, Ordering::Relaxed);
    }

    /// Removes `n` answered writes (saturating at zero).
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// let s = m.shard(0).unwrap();
    /// s.add_in_flight(2);
    /// s.sub_in_flight(3);
    /// assert_eq!(m.snapshot().shards[0].in_flight, 0);
    /// ```
    pub fn sub_in_flight(&self, n: u64) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Records one commit latency.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_latency(Duration::from_millis(3));
    /// assert_eq!(m.snapshot().shards[0].latency.count, 1);
    /// ```
    pub fn record_latency(&self, latency: Duration) {
        self.record_latencies([latency]);
    }

    /// Records many commit latencies under one lock (an I/O thread calls this once per turn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_latencies((1..=10).map(Duration::from_millis));
    /// assert_eq!(m.snapshot().shards[0].latency.count, 10);
    /// ```
    pub fn record_latencies(&self, latencies: impl IntoIterator<Item = Duration>) {
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        for d in latencies {
            latency
                .histogram
                .saturating_record(micros(d).max(LOWEST_US));
            latency.sum = latency.sum.saturating_add(d);
        }
    }

    fn counters(&self, latency: LatencySummary) -> ShardSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShardSnapshot {
            shard: None,
            commits: get(&self.commits),
            rejections: get(&self.rejections),
            drops: get(&self.drops),
            timeouts: get(&self.timeouts),
            moved: get(&self.moved),
            ask: get(&self.ask),
            errors: ErrorCounts {
                server: get(&self.server_errors),
                connection_lost: get(&self.connection_lost),
                replication_shortfall: get(&self.replication_shortfall),
                closed: get(&self.closed),
            },
            in_flight: get(&self.in_flight),
            ring: None,
            latency,
        }
    }
}

/// A ring's fill level at snapshot time.
///
/// # Examples
///
/// ```
/// use slotline_client::metrics::RingFill;
///
/// assert_eq!(RingFill { len: 1024, capacity: 4096 }.fraction(), 0.25);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFill {
    /// Pending writes in the ring.
    pub len: usize,
    /// The ring's capacity.
    pub capacity: usize,
}

impl RingFill {
    /// `len / capacity`, 0 for a zero capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::RingFill;
    /// assert_eq!(RingFill { len: 0, capacity: 0 }.fraction(), 0.0);
    /// ```
    pub fn fraction(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.len as f64 / self.capacity as f64
        }
    }
}

/// Failed writes by kind (the ones not counted as rejections, drops or timeouts).
///
/// # Examples
///
/// ```
/// use slotline_client::metrics::ErrorCounts;
///
/// let e = ErrorCounts { server: 2, connection_lost: 1, ..ErrorCounts::default() };
/// assert_eq!(e.total(), 3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Error replies (`CommitError::Server`).
    pub server: u64,
    /// Connections lost before the reply (`CommitError::ConnectionLost`).
    pub connection_lost: u64,
    /// `WAIT` confirmed too few replicas (`CommitError::ReplicationShortfall`).
    pub replication_shortfall: u64,
    /// Writes failed by shutdown (`CommitError::Closed`).
    pub closed: u64,
}

impl ErrorCounts {
    /// All kinds together.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::ErrorCounts;
    /// assert_eq!(ErrorCounts::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.server + self.connection_lost + self.replication_shortfall + self.closed
    }

    fn kinds(&self) -> [(&'static str, u64); 4] {
        [
            ("server", self.server),
            ("connection_lost", self.connection_lost),
            ("replication_shortfall", self.replication_shortfall),
            ("closed", self.closed),
        ]
    }
}

/// Commit latency percentiles (each within 1 % of a recorded value).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::metrics::Metrics;
///
/// let m = Metrics::new(1);
/// m.shard(0).unwrap().record_latencies((1..=100).map(Duration::from_millis));
/// let l = m.snapshot().shards[0].latency;
/// assert_eq!(l.count, 100);
/// assert!(l.p50 >= Duration::from_micros(49_500) && l.p50 <= Duration::from_micros(50_500));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Latencies recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest recorded.
    pub max: Duration,
    /// Sum of all recorded latencies (exact).
    pub sum: Duration,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>, sum: Duration) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        LatencySummary {
            count: h.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
            sum,
        }
    }
}

/// One shard's numbers at snapshot time (or, in [`MetricsSnapshot::total`], all shards').
///
/// # Examples
///
/// ```
/// # use slotline_client::metrics::Metrics;
/// let snap = Metrics::new(1).snapshot();
/// assert_eq!(snap.shards[0].shard, Some(0));
/// assert_eq!(snap.total.shard, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    /// The shard's index; `None` for the total.
    pub shard: Option<usize>,
    /// Writes acknowledged.
    pub commits: u64,
    /// Writes rejected by backpressure.
    pub rejections: u64,
    /// Writes evicted by `drop_oldest`.
    pub drops: u64,
    /// Writes whose deadline passed.
    pub timeouts: u64,
    /// `MOVED` redirects.
    pub moved: u64,
    /// `ASK` redirects.
    pub ask: u64,
    /// Other failures, by kind.
    pub errors: ErrorCounts,
    /// Writes sent and not yet answered.
    pub in_flight: u64,
    /// The ring's fill level, when the snapshot was given one.
    pub ring: Option<RingFill>,
    /// Commit latency.
    pub latency: LatencySummary,
}

impl ShardSnapshot {
    /// Adds `other`'s counters (not its latency) to these.
    fn accumulate(&mut self, other: &ShardSnapshot) {
        self.commits += other.commits;
        self.rejections += other.rejections;
        self.drops += other.drops;
        self.timeouts += other.timeouts;
        self.moved += other.moved;
        self.ask += other.ask;
        self.errors.server += other.errors.server;
        self.errors.connection_lost += other.errors.connection_lost;
        self.errors.replication_shortfall += other.errors.replication_shortfall;
        self.errors.closed += other.errors.closed;
        self.in_flight += other.in_flight;
        if let Some(fill) = other.ring {
            let total = self.ring.get_or_insert_with(RingFill::default);
            total.len += fill.len;
            total.capacity += fill.capacity;
        }
    }
}

/// Every shard's numbers and their total, taken by [`Metrics::snapshot`].
///
/// # Examples
///
/// ```
/// # use slotline_client::metrics::Metrics;
/// let m = Metrics::new(2);
/// m.shard(0).unwrap().record_outcome(&Ok(()));
/// m.shard(1).unwrap().record_outcome(&Ok(()));
/// assert_eq!(m.snapshot().total.commits, 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardSnapshot>,
    /// All shards together (latency percentiles over all recorded latencies).
    pub total: ShardSnapshot,
    /// An I/O thread panicked: the client fails every write (`CommitError::ClientDead`).
    pub client_dead: bool,
}

impl MetricsSnapshot {
    /// The snapshot in Prometheus text exposition format (see the [module docs](self)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let m = Metrics::new(1);
    /// m.shard(0).unwrap().record_moved();
    /// let text = m.snapshot().to_prometheus();
    /// assert!(text.contains("# TYPE slotline_redirects_total counter\n"));
    /// assert!(text.contains("slotline_redirects_total{shard=\"0\",kind=\"moved\"} 1\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_prometheus(&mut out);
        out
    }

    /// Writes the Prometheus text into `out`.
    ///
    /// # Errors
    ///
    /// Whatever `out` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_client::metrics::Metrics;
    /// let mut text = String::new();
    /// Metrics::new(1).snapshot().write_prometheus(&mut text)?;
    /// assert!(text.contains("slotline_in_flight{shard=\"0\"} 0"));
    /// # Ok::<(), std::fmt::Error>(())
    /// ```
    pub fn write_prometheus(&self, out: &mut impl fmt::Write) -> fmt::Result {
        type Field = fn(&ShardSnapshot) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "slotline_commits_total",
                "Writes acknowledged by Redis.",
                |s| s.commits,
            ),
            (
                "slotline_rejections_total",
                "Writes rejected by backpressure (never sent).",
                |s| s.rejections,
            ),
            (
                "slotline_drops_total",
                "Writes evicted from a full ring by drop_oldest (never sent).",
                |s| s.drops,
            ),
            (
                "slotline_timeouts_total",
                "Writes whose commit deadline passed before the ACK.",
                |s| s.timeouts,
            ),
        ];
        for (name, help, field) in counters {
            header(out, name, help, "counter")?;
            for s in &self.shards {
                writeln!(out, "{name}{{shard=\"{}\"}} {}", label(s), field(s))?;
            }
        }

        let name = "slotline_redirects_total";
        header(out, name, "MOVED and ASK redirects.", "counter")?;
        for s in &self.shards {
            writeln!(
                out,
                "{name}{{shard=\"{}\",kind=\"moved\"}} {}",
                label(s),
                s.moved
            )?;
            writeln!(
                out,
                "{name}{{shard=\"{}\",kind=\"ask\"}} {}",
                label(s),
                s.ask
            )?;
        }

        let name = "slotline_errors_total";
        header(out, name, "Failed writes by kind.", "counter")?;
        for s in &self.shards {
            for (kind, n) in s.errors.kinds() {
                writeln!(out, "{name}{{shard=\"{}\",kind=\"{kind}\"}} {n}", label(s))?;
            }
        }

        let name = "slotline_in_flight";
        header(out, name, "Writes sent and not yet answered.", "gauge")?;
        for s in &self.shards {
            writeln!(out, "{name}{{shard=\"{}\"}} {}", label(s), s.in_flight)?;
        }

        if self.shards.iter().any(|s| s.ring.is_some()) {
            let name = "slotline_ring_len";
            header(out, name, "Pending writes in the shard's ring.", "gauge")?;
            for s in &self.shards {
                if let Some(fill) = s.ring {
                    writeln!(out, "{name}{{shard=\"{}\"}} {}", label(s), fill.len)?;
                }
            }
            let name = "slotline_ring_capacity";
            header(out, name, "Capacity of the shard's ring.", "gauge")?;
            for s in &self.shards {
                if let Some(fill) = s.ring {
                    writeln!(out, "{name}{{shard=\"{}\"}} {}", label(s), fill.capacity)?;
                }
            }
        }

        let name = "slotline_commit_latency_seconds";
        header(
            out,
            name,
            "Commit latency, from the call to the ACK.",
            "summary",
        )?;
        for s in &self.shards {
            let l = &s.latency;
            for (q, v) in [("0.5", l.p50), ("0.95", l.p95), ("0.99", l.p99)] {
                writeln!(
                    out,
                    "{name}{{shard=\"{}\",quantile=\"{q}\"}} {}",
                    label(s),
                    v.as_secs_f64()
                )?;
            }
            writeln!(
                out,
                "{name}_sum{{shard=\"{}\"}} {}",
                label(s),
                l.sum.as_secs_f64()
            )?;
            writeln!(out, "{name}_count{{shard=\"{}\"}} {}", label(s), l.count)?;
        }
        let name = "slotline_commit_latency_max_seconds";
        header(out, name, "Largest commit latency recorded.", "gauge")?;
        for s in &self.shards {
            writeln!(
                out,
                "{name}{{shard=\"{}\"}} {}",
                label(s),
                s.latency.max.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

fn header(out: &mut impl fmt::Write, name: &str, help: &str, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// The `shard` label's value.
fn label(s: &ShardSnapshot) -> String {
    match s.shard {
        Some(i) => i.to_string(),
        None => "all".into(),
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn within_one_percent(got: Duration, want: Duration) -> bool {
        let (g, w) = (got.as_micros() as i128, want.as_micros() as i128);
        (g - w).abs() <= w / 100 + 1
    }

    #[test]
    fn histogram_bounds_are_accepted_and_small() {
        let h = new_histogram();
        // Bounded memory: about 20 KiB of counts per shard.
        assert!(h.distinct_values() <= 4096, "{}", h.distinct_values());
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_microseconds() {
        let m = Metrics::new(1);
        let shard = m.shard(0).unwrap();
        shard.record_latencies((1..=1000).map(Duration::from_micros));
        let l = m.snapshot().shards[0].latency;
        assert_eq!(l.count, 1000);
        for (got, want) in [(l.p50, 500), (l.p95, 950), (l.p99, 990), (l.max, 1000)] {
            let want = Duration::from_micros(want);
            assert!(within_one_percent(got, want), "got={got:?} want={want:?}");
        }
        assert_eq!(l.sum, Duration::from_micros(500_500));
    }

    #[test]
    fn skewed_latencies_put_the_tail_in_p99() {
        let m = Metrics::new(1);
        let shard = m.shard(0).unwrap();
        // 980 fast commits at 100 µs, 20 slow ones at 50 ms.
        shard.record_latencies(std::iter::repeat_n(Duration::from_micros(100), 980));
        shard.record_latencies(std::iter::repeat_n(Duration::from_millis(50), 20));
        let l = m.snapshot().shards[0].latency;
        assert!(
            within_one_percent(l.p50, Duration::from_micros(100)),
            "{l:?}"
        );
        assert!(
            within_one_percent(l.p95, Duration::from_micros(100)),
            "{l:?}"
        );
        assert!(
            within_one_percent(l.p99, Duration::from_millis(50)),
            "{l:?}"
        );
        assert!(
            within_one_percent(l.max, Duration::from_millis(50)),
            "{l:?}"
        );
    }

    #[test]
    fn total_latency_merges_all_shards() {
        let m = Metrics::new(2);
        m.shard(0)
            .unwrap()
            .record_latencies(std::iter::repeat_n(Duration::from_micros(100), 50));
        m.shard(1)
            .unwrap()
            .record_latencies(std::iter::repeat_n(Duration::from_millis(10), 50));
        let snap = m.snapshot();
        assert_eq!(snap.total.latency.count, 100);
        assert!(within_one_percent(
            snap.total.latency.max,
            Duration::from_millis(10)
        ));
        assert!(within_one_percent(
            snap.total.latency.p99,
            Duration::from_millis(10)
        ));
        assert!(within_one_percent(
            snap.shards[0].latency.p99,
            Duration::from_micros(100)
        ));
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let m = Metrics::new(1);
        let shard = m.shard(0).unwrap();
        shard.record_latencies([Duration::ZERO, Duration::from_secs(3600)]);
        let l = m.snapshot().shards[0].latency;
        assert_eq!(l.count, 2);
        assert!(within_one_percent(l.max, Duration::from_secs(60)), "{l:?}");
    }

    #[test]
    fn every_outcome_lands_in_its_own_counter() {
        let m = Metrics::new(1);
        let s = m.shard(0).unwrap();
        let outcomes = [
            Ok(()),
            Ok(()),
            Err(CommitError::Rejected),
            Err(CommitError::Dropped),
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            }),
            Err(CommitError::Server {
                message: "ERR".into(),
            }),
            Err(CommitError::ReplicationShortfall {
                wanted: 1,
                confirmed: 0,
            }),
            Err(CommitError::ConnectionLost {
                may_have_been_applied: true,
            }),
            Err(CommitError::Closed),
        ];
        for o in &outcomes {
            s.record_outcome(o);
        }
        let snap = m.snapshot().shards[0];
        assert_eq!(
            (snap.commits, snap.rejections, snap.drops, snap.timeouts),
            (2, 1, 1, 1)
        );
        assert_eq!(
            snap.errors,
            ErrorCounts {
                server: 1,
                connection_lost: 1,
                replication_shortfall: 1,
                closed: 1
            }
        );
    }

    #[test]
    fn prometheus_rendering_of_known_values() {
        let m = Metrics::new(2);
        let s = m.shard(1).unwrap();
        for _ in 0..12 {
            s.record_outcome(&Ok(()));
        }
        s.record_outcome(&Err(CommitError::Rejected));
        s.record_outcome(&Err(CommitError::Server {
            message: "WRONGTYPE".into(),
        }));
        s.record_moved();
        s.record_moved();
        s.record_ask();
        s.add_in_flight(7);
        // 200 µs is below 256, where the histogram is exact to the microsecond.
        s.record_latencies(std::iter::repeat_n(Duration::from_micros(200), 4));
        let text = m
            .snapshot_with_rings(|i| {
                Some(RingFill {
                    len: i * 10,
                    capacity: 4096,
                })
            })
            .to_prometheus();
        for line in [
            "# HELP slotline_commits_total Writes acknowledged by Redis.",
            "# TYPE slotline_commits_total counter",
            "slotline_commits_total{shard=\"0\"} 0",
            "slotline_commits_total{shard=\"1\"} 12",
            "slotline_rejections_total{shard=\"1\"} 1",
            "slotline_drops_total{shard=\"1\"} 0",
            "slotline_redirects_total{shard=\"1\",kind=\"moved\"} 2",
            "slotline_redirects_total{shard=\"1\",kind=\"ask\"} 1",
            "slotline_errors_total{shard=\"1\",kind=\"server\"} 1",
            "slotline_errors_total{shard=\"1\",kind=\"closed\"} 0",
            "# TYPE slotline_in_flight gauge",
            "slotline_in_flight{shard=\"1\"} 7",
            "slotline_ring_len{shard=\"1\"} 10",
            "slotline_ring_capacity{shard=\"0\"} 4096",
            "# TYPE slotline_commit_latency_seconds summary",
            "slotline_commit_latency_seconds{shard=\"1\",quantile=\"0.99\"} 0.0002",
            "slotline_commit_latency_seconds_sum{shard=\"1\"} 0.0008",
            "slotline_commit_latency_seconds_count{shard=\"1\"} 4",
            "slotline_commit_latency_seconds_count{shard=\"0\"} 0",
            "slotline_commit_latency_max_seconds{shard=\"1\"} 0.0002",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a number for the value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
    }
}
