//! The report: per path and trace, the counts, latencies and peaks; the story-shaped table;
//! `report.json`.
//!
//! # Definitions
//!
//! - **offered**: events in the trace. **acknowledged**: the caller got `OK`. **rejected**:
//!   the caller got an error and the write was not applied. **unknown**: an error after which
//!   the write may have been applied (timeouts after sending). **pending**: no answer at the
//!   end; always 0 for a finished replay, so `offered = acknowledged + rejected + unknown`.
//! - **lost**: see [`super::readback`]: acknowledged writes whose field is not in Redis, in
//!   writes, so `lost / acknowledged` is the loss rate.
//! - **caller latency**: from the event's scheduled time to the caller learning the outcome
//!   (every outcome). **until in Redis**: from the scheduled time to Redis confirming the
//!   write (acknowledged writes that Redis confirmed). For slotline the two are the same
//!   clock for acknowledged writes: the ACK follows Redis's reply.
//! - **queue depth**: writes the path accepted and Redis has not confirmed yet. Sidecar: its
//!   pipeline queue plus the batch being flushed. slotline: every ring's length plus the
//!   writes its writers have sent and not yet seen answered. redis-rs, fred: writes offered
//!   whose future has not returned (in flight), sampled every 10 ms.
//! - **bytes buffered**: those writes' bytes in the path's own memory. Sidecar: the queued
//!   commands plus bytes read from callers and not yet parsed (exact, tracked on every
//!   change). slotline: depth × the mean size of one queued write (op plus packed command),
//!   sampled every 50 ms. redis-rs, fred: depth × the mean size of the `HSET` in RESP, a lower
//!   bound (their per-command structures are not counted; the peak RSS is).
//! - **configured depth**: the path's documented bound on writes it holds; 0 and not enforced
//!   ("none" in the tables) for redis-rs and fred, whose defaults queue without limit.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::link::LinkInfo;
use super::readback::ReadBack;
use super::replay::{Outcome, PathRun};
use super::sidecar::SidecarParams;
use super::trace::{RateStats, Trace};

/// Version of the JSON layout; bump it when a field changes meaning.
pub const SCHEMA: u32 = 4;
/// Width of one time-series bucket, milliseconds.
pub const BUCKET_MS: u64 = 100;

/// The whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The command line as run.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// What it ran with.
    pub params: Params,
    /// The traces replayed.
    pub traces: Vec<TraceSummary>,
    /// One entry per (trace, path), in the order run.
    pub runs: Vec<PathReport>,
    /// Wall time of the whole program, seconds.
    pub wall_s: f64,
}

/// The machine and cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `uname -r`-like kernel release, if readable.
    pub kernel: String,
    /// `redis-server --version` of the nodes (from `INFO server`).
    pub redis_version: String,
    /// `local 3 masters + 3 replicas` or the `--nodes` given.
    pub cluster: String,
    /// Seconds the local cluster took to become healthy (0 with `--nodes`).
    pub cluster_startup_s: f64,
    /// The shaped link to the cluster (`--link`), if any.
    #[serde(default)]
    pub link: Option<LinkInfo>,
}

/// The knobs of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Trace length, seconds.
    pub duration_s: f64,
    /// Mean offered rate, writes/s.
    pub rate: f64,
    /// Mean burst rate as a multiple of `rate`.
    pub burst_factor: f64,
    /// RNG seed.
    pub seed: u64,
    /// Distinct users (keys) of generated traces.
    pub users: u32,
    /// Zipf exponent of user popularity.
    pub zipf_s: f64,
    /// Caller threads per path.
    pub callers: usize,
    /// Runs of the `heavy` scenario per path (`--runs`).
    #[serde(default)]
    pub runs: usize,
    /// The trace file replayed, if any.
    pub trace_file: Option<String>,
    /// The sidecar model's knobs.
    pub sidecar: SidecarParams,
    /// slotline's configuration as used.
    pub slotline: SlotlineParams,
}

/// The parts of slotline's configuration that bound its buffers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotlineParams {
    /// The YAML file read.
    pub config: String,
    /// Logical shards (one ring each).
    pub shards: u64,
    /// Ring capacity per shard.
    pub ring_capacity: u64,
    /// Backpressure line, writes per ring.
    pub backpressure_limit: u64,
    /// `reject`, `block` or `drop_oldest`.
    pub fallback: String,
    /// Largest pipelined batch.
    pub max_batch: u64,
    /// `SO_SNDBUF` requested per connection.
    pub so_sndbuf: u64,
    /// Commit deadline, milliseconds.
    pub commit_timeout_ms: f64,
}

/// A trace's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// `heavy`, `poisson` or the file's name.
    pub name: String,
    /// Events.
    pub events: u64,
    /// Distinct keys written.
    pub keys: u64,
    /// Span, seconds.
    pub duration_s: f64,
    /// Rate in 10 ms bins.
    pub rate_10ms: RateStats,
    /// Rate in 100 ms bins.
    pub rate_100ms: RateStats,
    /// What a write path without overhead would have shown on this trace, at the best rate
    /// the cluster confirmed writes during the run ([`IdealQueue`]); filled in after the
    /// replays.
    #[serde(default)]
    pub ideal: Option<IdealQueue>,
}

/// A lower bound for any write path's latency on a trace: one first-in first-out server that
/// confirms writes at a fixed rate, with no other cost. A write waits only for the writes
/// scheduled before it that the server has not finished. If this ideal path's p99 is above a
/// target, no real path reaches the target on that cluster: the writes must queue somewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IdealQueue {
    /// The server's rate, writes/s: the highest 100 ms confirmed-in-Redis rate any path
    /// reached in the whole run (the cluster's demonstrated capacity, an underestimate of
    /// its peak over shorter spans).
    pub rate_per_s: f64,
    /// p99 of the ideal latency (scheduled time to confirmation), ms.
    pub p99_ms: f64,
    /// The same at twice the rate, ms: how much a faster cluster would change it.
    pub p99_at_double_rate_ms: f64,
}

impl IdealQueue {
    /// The ideal queue on `trace` at `rate` writes/s.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_bench::burst::report::IdealQueue;
    /// use slotline_bench::burst::trace::{Event, Trace};
    ///
    /// // 100 writes at the same instant, served at 1,000/s: the last waits 100 ms.
    /// let trace = Trace {
    ///     name: "spike".into(),
    ///     keys: vec!["k".into()],
    ///     events: (0..100).map(|_| Event { t_us: 0, key: 0, bytes: 40 }).collect(),
    /// };
    /// let ideal = IdealQueue::on(&trace, 1_000.0);
    /// assert!((ideal.p99_ms - 99.0).abs() < 1e-6);
    /// assert!((ideal.p99_at_double_rate_ms - 49.5).abs() < 1e-6);
    /// ```
    pub fn on(trace: &Trace, rate: f64) -> IdealQueue {
        IdealQueue {
            rate_per_s: rate,
            p99_ms: ideal_p99_ms(trace, rate),
            p99_at_double_rate_ms: ideal_p99_ms(trace, rate * 2.0),
        }
    }
}

/// p99 of the waits of `trace`'s writes through a FIFO server of `rate` writes/s, ms.
fn ideal_p99_ms(trace: &Trace, rate: f64) -> f64 {
    if trace.events.is_empty() || !(rate.is_finite() && rate > 0.0) {
        return 0.0;
    }
    let service_us = 1e6 / rate;
    let mut free_at = f64::MIN;
    let mut waits: Vec<f64> = trace
        .events
        .iter()
        .map(|e| {
            let t = e.t_us as f64;
            let done = free_at.max(t) + service_us;
            free_at = done;
            done - t
        })
        .collect();
    waits.sort_by(f64::total_cmp);
    let i = ((waits.len() as f64 * 0.99).ceil() as usize).clamp(1, waits.len()) - 1;
    waits[i] / 1e3
}

impl TraceSummary {
    /// Summarises `trace`.
    pub fn of(trace: &Trace) -> TraceSummary {
        let mut keys: Vec<u32> = trace.events.iter().map(|e| e.key).collect();
        keys.sort_unstable();
        keys.dedup();
        TraceSummary {
            name: trace.name.clone(),
            events: trace.events.len() as u64,
            keys: keys.len() as u64,
            duration_s: trace.span_us() as f64 / 1e6,
            ideal: None,
            rate_10ms: trace.rate_stats(10),
            rate_100ms: trace.rate_stats(100),
        }
    }
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `us` (microseconds; sorted in place).
    pub fn of(us: &mut [u64]) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let at = |q: f64| {
            us[((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1] as f64 / 1e3
        };
        Latency {
            count: us.len() as u64,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *us.last().expect("not empty") as f64 / 1e3,
        }
    }
}

/// One 100 ms bucket of a run's time series. The series runs from the replay's start to the
/// end of the trace or of the drain (the last write confirmed in Redis or answered), whichever
/// is later, so a backlog drained after the trace shows. Each field says which clock it
/// buckets writes by: their scheduled time, or when something happened to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket start, seconds from the replay's start.
    pub t_s: f64,
    /// Writes offered in the bucket, per second.
    pub offered_per_s: f64,
    /// Writes acknowledged in the bucket (by acknowledgement time), per second.
    pub acked_per_s: f64,
    /// Writes refused in the bucket (by scheduled time), per second.
    pub refused_per_s: f64,
    /// p99 of until-in-Redis latency of the writes offered in the bucket, ms.
    pub in_redis_p99_ms: Option<f64>,
    /// Largest sampled queue depth in the bucket (the last one carried over if none).
    pub depth: u64,
    /// Writes confirmed in Redis in the bucket (by confirmation time), per second: when the
    /// sidecar proxy saw Redis's reply (not its enqueue ACK); for the clients, whose ACK is
    /// Redis's reply, their acknowledgements.
    #[serde(default)]
    pub confirmed_per_s: f64,
    /// Writes whose callers were told of a failure (refused or unknown) in the bucket (by
    /// the time they were told), per second.
    #[serde(default)]
    pub failed_per_s: f64,
    /// Growth of the `burst` process's resident set (callers, and the client on the slotline
    /// and peer paths) above its level when the replay started, KiB: the largest sample in
    /// the bucket; `None` if no sample in the bucket read it.
    #[serde(default)]
    pub rss_kib: Option<u64>,
    /// The sidecar proxy process's resident set, KiB: the largest sample in the bucket
    /// (sidecar path only; `None` elsewhere or if not sampled).
    #[serde(default)]
    pub proxy_rss_kib: Option<u64>,
    /// Acknowledged writes the read-back did not find, scheduled up to the end of this bucket
    /// (cumulative, by scheduled time).
    #[serde(default)]
    pub lost_cum: u64,
    /// Writes whose callers were told of a failure, scheduled up to the end of this bucket
    /// (cumulative, by scheduled time).
    #[serde(default)]
    pub failed_cum: u64,
}

/// Resident memory of the processes on a path, KiB.
///
/// The callers run in the `burst` process, which also holds the traces and results; its
/// growth during the replay (`callers_peak_kib - callers_base_kib`) is what the path cost it
/// (on the slotline path that includes the client: rings, writers, metrics). The proxy is a
/// process of its own, so its whole peak counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rss {
    /// The `burst` process's resident set when the replay started.
    pub callers_base_kib: u64,
    /// Its peak during the replay.
    pub callers_peak_kib: u64,
    /// The sidecar proxy process's peak (sidecar path only).
    pub proxy_peak_kib: Option<u64>,
}

impl Rss {
    /// Memory the path cost: growth of the `burst` process plus the whole proxy process.
    pub fn path_kib(&self) -> u64 {
        self.callers_peak_kib.saturating_sub(self.callers_base_kib)
            + self.proxy_peak_kib.unwrap_or(0)
    }
}

/// One trace through one path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// `sidecar`, `slotline`, `redis-rs` or `fred`.
    pub path: String,
    /// The trace's name.
    pub trace: String,
    /// The scenario: `heavy`, `heavy-outage`, `poisson` (the trace's name; a `--trace` file's
    /// stem in place of `heavy`).
    #[serde(default)]
    pub scenario: String,
    /// p99 from the scheduled time until Redis confirmed the write (acknowledged writes),
    /// milliseconds: `in_redis_latency_ms.p99`.
    #[serde(default)]
    pub p99_until_in_redis_ms: f64,
    /// p99 from the scheduled time until the caller had its answer, milliseconds:
    /// `caller_latency_ms.p99`.
    #[serde(default)]
    pub p99_caller_ms: f64,
    /// Writes acknowledged to their callers (`acknowledged`).
    #[serde(default)]
    pub acked: u64,
    /// Acknowledged writes the read-back did not find (`lost`).
    #[serde(default)]
    pub acked_lost: u64,
    /// Writes whose callers were told of a failure (`rejected + unknown`).
    #[serde(default)]
    pub failed_visibly: u64,
    /// Memory the path cost, bytes: growth of the `burst` process's resident set during the
    /// replay plus the whole proxy process's peak, if any ([`Rss::path_kib`]).
    #[serde(default)]
    pub peak_rss_bytes: u64,
    /// Most writes accepted and not yet answered by Redis at once (`peak_queue_depth`).
    #[serde(default)]
    pub peak_in_flight: u64,
    /// Which run of this scenario through this path (0-based; `--runs` repeats `heavy`).
    #[serde(default)]
    pub repetition: usize,
    /// This path's throughput ceiling as the run showed it: its best 100 ms rate of writes
    /// confirmed in Redis, and the p99 a first-in first-out server at that rate, with no
    /// other cost, would have given on this trace ([`IdealQueue`]). When it is close to the
    /// measured p99, the path's latency is its throughput limit on this machine.
    #[serde(default)]
    pub own_ceiling: Option<IdealQueue>,
    /// Writes offered.
    pub offered: u64,
    /// Writes acknowledged.
    pub acknowledged: u64,
    /// Writes refused with an error, not applied.
    pub rejected: u64,
    /// Writes failed with an error after which they may have been applied.
    pub unknown: u64,
    /// Writes with no outcome at the end (0 for a finished replay).
    pub pending: u64,
    /// Errors the callers saw, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Failures after an acknowledgement that no caller saw, by kind (sidecar only).
    pub after_ack_failures: BTreeMap<String, u64>,
    /// The read-back.
    pub read_back: ReadBack,
    /// Acknowledged writes the read-back did not find (writes, as `acknowledged`).
    pub lost: u64,
    /// From the start until the last write was in Redis, seconds.
    pub duration_s: f64,
    /// Acknowledged writes per second over `duration_s`.
    pub throughput_per_s: f64,
    /// Caller-observed latency (every outcome).
    pub caller_latency_ms: Latency,
    /// Until-in-Redis latency (acknowledged writes Redis confirmed).
    pub in_redis_latency_ms: Latency,
    /// Most writes accepted and not yet in Redis.
    pub peak_queue_depth: u64,
    /// The path's configured queue limit (sidecar depth; slotline shards × backpressure line;
    /// 0 for a path without one, with `depth_enforced` false).
    pub configured_depth: u64,
    /// Whether `configured_depth` is enforced.
    pub depth_enforced: bool,
    /// Most writes acknowledged to their callers while not yet in Redis (sidecar: its peak
    /// depth; slotline: 0, it acknowledges after Redis).
    pub peak_acked_not_in_redis: u64,
    /// Most bytes buffered in the path's own memory.
    pub peak_bytes_buffered: u64,
    /// A hard bound on `peak_bytes_buffered`, if the path has one.
    pub bytes_bound: Option<u64>,
    /// Most bytes in the path's sockets' kernel queues (100 ms samples).
    pub peak_kernel_bytes: u64,
    /// Upstream `SO_SNDBUF` sum: `(start, peak)` as the kernel set it (sidecar) or as
    /// configured (slotline, which sets it once).
    pub sndbuf_bytes: (u64, u64),
    /// Peak resident memory.
    pub peak_rss: Rss,
    /// 100 ms time series.
    pub series: Vec<Bucket>,
    /// The cluster was frozen (SIGSTOP, every node) during this replay: `(start, length)`,
    /// milliseconds into the trace.
    #[serde(default)]
    pub outage_ms: Option<(f64, f64)>,
}

/// Inputs of [`PathReport::build`] that are not in the [`PathRun`].
#[derive(Clone, Debug, Default)]
pub struct PathExtras {
    /// `sidecar`, `slotline`, `redis-rs` or `fred`.
    pub path: String,
    /// See [`PathReport::configured_depth`].
    pub configured_depth: u64,
    /// See [`PathReport::depth_enforced`].
    pub depth_enforced: bool,
    /// See [`PathReport::peak_acked_not_in_redis`] (sidecar), else 0.
    pub acked_not_in_redis: bool,
    /// Peak queue depth known exactly (sidecar), else taken from the samples.
    pub exact_peak_depth: Option<u64>,
    /// Peak bytes known exactly (sidecar), else taken from the samples.
    pub exact_peak_bytes: Option<u64>,
    /// Peak kernel bytes known (sidecar), else taken from the samples.
    pub peak_kernel_bytes: Option<u64>,
    /// See [`PathReport::bytes_bound`].
    pub bytes_bound: Option<u64>,
    /// See [`PathReport::sndbuf_bytes`].
    pub sndbuf_bytes: (u64, u64),
    /// See [`PathReport::peak_rss`].
    pub peak_rss: Rss,
    /// See [`PathReport::outage_ms`].
    pub outage_ms: Option<(f64, f64)>,
    /// Event indices of the acknowledged writes the read-back did not find
    /// ([`super::readback::Findings::lost_writes`]), for [`Bucket::lost_cum`].
    pub lost_writes: Vec<usize>,
}

impl PathReport {
    /// The highest rate of writes confirmed in Redis over any 100 ms bucket of the run.
    pub fn best_confirmed_per_s(&self) -> f64 {
        self.series
            .iter()
            .map(|b| b.confirmed_per_s)
            .fold(0.0f64, f64::max)
    }

    /// Builds the report of `run` (a replay of `trace`) with its read-back.
    pub fn build(
        trace: &Trace,
        run: &PathRun,
        read_back: ReadBack,
        extras: PathExtras,
    ) -> PathReport {
        let mut counts = [0u64; 4];
        let mut caller = Vec::with_capacity(run.records.len());
        let mut in_redis = Vec::with_capacity(run.records.len());
        let in_redis_at = |i: usize| match &run.in_redis_us {
            Some(v) => v.get(i).copied().flatten(),
            None => Some(run.records[i].done_us),
        };
        // The end: the last write confirmed in Redis or answered (refusals are answered at
        // once and do not extend it).
        let mut end_us = 0u64;
        for (i, r) in run.records.iter().enumerate() {
            match r.outcome {
                Outcome::Ok => {
                    end_us = end_us.max(r.done_us);
                    if let Some(t) = in_redis_at(i) {
                        end_us = end_us.max(t);
                    }
                }
                Outcome::Unknown => end_us = end_us.max(r.done_us),
                Outcome::Refused | Outcome::Pending => {}
            }
        }
        let bucket_us = BUCKET_MS * 1000;
        let buckets = (trace.span_us().max(end_us + 1).div_ceil(bucket_us)).max(1) as usize;
        let mut offered_b = vec![0u64; buckets];
        let mut acked_b = vec![0u64; buckets];
        let mut refused_b = vec![0u64; buckets];
        let mut confirmed_b = vec![0u64; buckets];
        let mut failed_b = vec![0u64; buckets];
        let mut failed_sched_b = vec![0u64; buckets];
        let mut lost_b = vec![0u64; buckets];
        let mut lat_b: Vec<Vec<u64>> = vec![Vec::new(); buckets];
        let bucket_of = |t_us: u64| ((t_us / bucket_us) as usize).min(buckets - 1);
        for (i, r) in run.records.iter().enumerate() {
            let sched = trace.events[i].t_us;
            let b = bucket_of(sched);
            offered_b[b] += 1;
            let slot = match r.outcome {
                Outcome::Pending => 0,
                Outcome::Ok => 1,
                Outcome::Refused => 2,
                Outcome::Unknown => 3,
            };
            counts[slot] += 1;
            if r.outcome == Outcome::Pending {
                continue;
            }
            caller.push(r.done_us.saturating_sub(sched));
            match r.outcome {
                Outcome::Ok => {
                    acked_b[bucket_of(r.done_us)] += 1;
                    if let Some(t) = in_redis_at(i) {
                        let lat = t.saturating_sub(sched);
                        in_redis.push(lat);
                        lat_b[b].push(lat);
                        confirmed_b[bucket_of(t)] += 1;
                    }
                }
                Outcome::Refused | Outcome::Unknown => {
                    if r.outcome == Outcome::Refused {
                        refused_b[b] += 1;
                    }
                    failed_b[bucket_of(r.done_us)] += 1;
                    failed_sched_b[b] += 1;
                }
                Outcome::Pending => {}
            }
        }
        for &i in &extras.lost_writes {
            if let Some(e) = trace.events.get(i) {
                lost_b[bucket_of(e.t_us)] += 1;
            }
        }
        let per_s = 1000.0 / BUCKET_MS as f64;
        let mut depth_b = vec![None::<u64>; buckets];
        let mut rss_b = vec![None::<u64>; buckets];
        let mut proxy_rss_b = vec![None::<u64>; buckets];
        let max_in = |slot: &mut Option<u64>, v: Option<u64>| {
            if let Some(v) = v {
                *slot = Some(slot.unwrap_or(0).max(v));
            }
        };
        for s in &run.samples {
            if s.t_us / bucket_us < buckets as u64 {
                let b = bucket_of(s.t_us);
                max_in(&mut depth_b[b], Some(s.depth));
                max_in(
                    &mut rss_b[b],
                    s.rss_kib.map(|k| k.saturating_sub(run.caller_base_rss_kib)),
                );
                max_in(&mut proxy_rss_b[b], s.proxy_rss_kib);
            }
        }
        let mut carry = 0;
        let (mut lost_cum, mut failed_cum) = (0, 0);
        let series = (0..buckets)
            .map(|b| {
                let depth = depth_b[b].unwrap_or(carry);
                carry = depth;
                lost_cum += lost_b[b];
                failed_cum += failed_sched_b[b];
                Bucket {
                    t_s: b as f64 * BUCKET_MS as f64 / 1e3,
                    offered_per_s: offered_b[b] as f64 * per_s,
                    acked_per_s: acked_b[b] as f64 * per_s,
                    refused_per_s: refused_b[b] as f64 * per_s,
                    in_redis_p99_ms: (!lat_b[b].is_empty()).then(|| Latency::of(&mut lat_b[b]).p99),
                    depth,
                    confirmed_per_s: confirmed_b[b] as f64 * per_s,
                    failed_per_s: failed_b[b] as f64 * per_s,
                    rss_kib: rss_b[b],
                    proxy_rss_kib: proxy_rss_b[b],
                    lost_cum,
                    failed_cum,
                }
            })
            .collect();
        let sampled_depth = run.samples.iter().map(|s| s.depth).max().unwrap_or(0);
        let sampled_bytes = run.samples.iter().map(|s| s.bytes).max().unwrap_or(0);
        let sampled_kernel = run
            .samples
            .iter()
            .map(|s| s.kernel_bytes)
            .max()
            .unwrap_or(0);
        let peak_depth = extras.exact_peak_depth.unwrap_or(sampled_depth);
        let duration_s = end_us as f64 / 1e6;
        let caller_latency_ms = Latency::of(&mut caller);
        let in_redis_latency_ms = Latency::of(&mut in_redis);
        PathReport {
            path: extras.path,
            trace: trace.name.clone(),
            scenario: trace.name.clone(),
            own_ceiling: None,
            p99_until_in_redis_ms: in_redis_latency_ms.p99,
            p99_caller_ms: caller_latency_ms.p99,
            acked: counts[1],
            acked_lost: read_back.lost,
            failed_visibly: counts[2] + counts[3],
            peak_rss_bytes: extras.peak_rss.path_kib() * 1024,
            peak_in_flight: peak_depth,
            repetition: 0,
            offered: run.records.len() as u64,
            acknowledged: counts[1],
            rejected: counts[2],
            unknown: counts[3],
            pending: counts[0],
            errors: run.errors.clone(),
            after_ack_failures: run.after_ack.clone(),
            read_back,
            lost: read_back.lost,
            duration_s,
            throughput_per_s: if duration_s > 0.0 {
                counts[1] as f64 / duration_s
            } else {
                0.0
            },
            caller_latency_ms,
            in_redis_latency_ms,
            peak_queue_depth: peak_depth,
            configured_depth: extras.configured_depth,
            depth_enforced: extras.depth_enforced,
            peak_acked_not_in_redis: if extras.acked_not_in_redis {
                peak_depth
            } else {
                0
            },
            peak_bytes_buffered: extras.exact_peak_bytes.unwrap_or(sampled_bytes),
            bytes_bound: extras.bytes_bound,
            peak_kernel_bytes: extras.peak_kernel_bytes.unwrap_or(sampled_kernel),
            sndbuf_bytes: extras.sndbuf_bytes,
            peak_rss: extras.peak_rss,
            outage_ms: extras.outage_ms,
            series,
        }
    }
}

impl PathReport {
    /// The scenario's name, with the run's number when it was repeated (`heavy #2`).
    pub fn label(&self) -> String {
        if self.repetition == 0 {
            self.trace.clone()
        } else {
            format!("{} #{}", self.trace, self.repetition + 1)
        }
    }
}

/// `median (min–max)` of `values` shown with `show`; the value alone for one.
fn spread(values: &mut [f64], show: impl Fn(f64) -> String) -> String {
    values.sort_by(f64::total_cmp);
    match values {
        [] => "–".to_owned(),
        [one] => show(*one),
        _ => format!(
            "{} ({}–{})",
            show(values[(values.len() - 1) / 2]),
            show(values[0]),
            show(values[values.len() - 1])
        ),
    }
}

/// `1234567` → `1.2 MB`-style text (decimal units).
pub fn bytes_text(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// Milliseconds for a table: `12.3 ms`, `456 ms`, or `789 µs` below one.
pub fn ms_text(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1e3)
    }
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".to_owned();
    }
    let p = n as f64 * 100.0 / of as f64;
    if n == 0 {
        "0 %".to_owned()
    } else if p < 0.01 {
        format!("{p:.4} %")
    } else {
        format!("{p:.2} %")
    }
}

impl Report {
    /// One row per scenario and path: the median and range over its runs (`heavy` runs
    /// `--runs` times) of the figures that tell the paths apart.
    pub fn summary_table(&self) -> String {
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for r in &self.runs {
            if !keys.contains(&(r.trace.as_str(), r.path.as_str())) {
                keys.push((r.trace.as_str(), r.path.as_str()));
            }
        }
        let mut t = String::new();
        t.push_str(
            "| scenario | path | runs | p99 until in Redis | p99 caller-observed | peak in flight \
             | acked lost | failed visibly | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for (trace, path) in keys {
            let runs: Vec<&PathReport> = self
                .runs
                .iter()
                .filter(|r| r.trace == trace && r.path == path)
                .collect();
            let col = |get: fn(&PathReport) -> f64, show: fn(f64) -> String| {
                spread(&mut runs.iter().map(|r| get(r)).collect::<Vec<_>>(), show)
            };
            let count = |v: f64| format!("{v:.0}");
            let _ = writeln!(
                t,
                "| {trace} | {path} | {} | {} | {} | {} | {} | {} | {} |",
                runs.len(),
                col(|r| r.p99_until_in_redis_ms, ms_text),
                col(|r| r.p99_caller_ms, ms_text),
                col(|r| r.peak_in_flight as f64, count),
                col(|r| r.acked_lost as f64, count),
                col(|r| r.failed_visibly as f64, count),
                col(|r| r.peak_rss_bytes as f64, |v| bytes_text(v as u64)),
            );
        }
        t
    }

    /// The story-shaped table: one row per path and trace; p99, queue growth, buffer peak,
    /// loss and error rates.
    pub fn story_table(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| path | trace | p99 until in Redis | p99 caller-observed | queue growth (peak / configured) \
             | buffer peak (own + kernel) | acked, not yet in Redis (peak) | lost after ACK | error rate |\n",
        );
        t.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.runs {
            let growth = if r.configured_depth == 0 && !r.depth_enforced {
                format!("{} / none (unbounded)", r.peak_queue_depth)
            } else {
                format!(
                    "{} / {} ({:.1}×{})",
                    r.peak_queue_depth,
                    r.configured_depth,
                    r.peak_queue_depth as f64 / r.configured_depth.max(1) as f64,
                    if r.depth_enforced {
                        ", enforced"
                    } else {
                        ", not enforced"
                    }
                )
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} + {} | {} | {} ({}) | {} |",
                r.path,
                r.label(),
                ms_text(r.in_redis_latency_ms.p99),
                ms_text(r.caller_latency_ms.p99),
                growth,
                bytes_text(r.peak_bytes_buffered),
                bytes_text(r.peak_kernel_bytes),
                r.peak_acked_not_in_redis,
                pct(r.lost, r.acknowledged),
                r.lost,
                pct(r.rejected + r.unknown, r.offered),
            );
        }
        t
    }

    /// Every count and percentile, one row per path and trace.
    pub fn full_table(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| path | trace | offered | acked | rejected | unknown | pending | lost | throughput \
             | caller p50 / p99 / p99.9 / max | in Redis p50 / p99 / p99.9 / max | peak depth \
             | peak bytes (bound) | memory: callers' growth + proxy |\n",
        );
        t.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.runs {
            let l = |x: &Latency| {
                format!(
                    "{} / {} / {} / {}",
                    ms_text(x.p50),
                    ms_text(x.p99),
                    ms_text(x.p999),
                    ms_text(x.max)
                )
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0}/s | {} | {} | {} | {} ({}) | {} + {} |",
                r.path,
                r.label(),
                r.offered,
                r.acknowledged,
                r.rejected,
                r.unknown,
                r.pending,
                r.lost,
                r.throughput_per_s,
                l(&r.caller_latency_ms),
                l(&r.in_redis_latency_ms),
                r.peak_queue_depth,
                bytes_text(r.peak_bytes_buffered),
                r.bytes_bound.map_or("none".to_owned(), bytes_text),
                bytes_text(
                    r.peak_rss
                        .callers_peak_kib
                        .saturating_sub(r.peak_rss.callers_base_kib)
                        * 1024
                ),
                r.peak_rss
                    .proxy_peak_kib
                    .map_or("–".to_owned(), |k| bytes_text(k * 1024)),
            );
        }
        t
    }

    /// Per trace, each metric for every path side by side (the median run of a repeated
    /// scenario), with the paths within 10 % of the best value; the best is in bold when
    /// slotline is not among them, so a metric slotline loses on is shown as lost.
    pub fn verdicts(&self) -> String {
        type Metric = (
            &'static str,
            bool,
            fn(&PathReport) -> f64,
            fn(f64) -> String,
        );
        let metrics: [Metric; 10] = [
            (
                "p99 until in Redis",
                true,
                |r| r.in_redis_latency_ms.p99,
                ms_text,
            ),
            (
                "p99 caller-observed",
                true,
                |r| r.caller_latency_ms.p99,
                ms_text,
            ),
            (
                "peak queue depth",
                true,
                |r| r.peak_queue_depth as f64,
                |v| format!("{v:.0}"),
            ),
            (
                "acknowledged, not yet in Redis (peak)",
                true,
                |r| r.peak_acked_not_in_redis as f64,
                |v| format!("{v:.0}"),
            ),
            (
                "bytes buffered in the path (peak)",
                true,
                |r| r.peak_bytes_buffered as f64,
                |v| bytes_text(v as u64),
            ),
            (
                "bytes in socket queues (peak)",
                true,
                |r| r.peak_kernel_bytes as f64,
                |v| bytes_text(v as u64),
            ),
            (
                "memory (RSS the path added)",
                true,
                |r| r.peak_rss.path_kib() as f64 * 1024.0,
                |v| bytes_text(v as u64),
            ),
            (
                "lost after ACK",
                true,
                |r| r.lost as f64,
                |v| format!("{v:.0}"),
            ),
            (
                "errors callers saw",
                true,
                |r| (r.rejected + r.unknown) as f64,
                |v| format!("{v:.0}"),
            ),
            (
                "throughput (acknowledged/s)",
                false,
                |r| r.throughput_per_s,
                |v| format!("{v:.0}/s"),
            ),
        ];
        let mut t = String::new();
        let mut traces: Vec<&str> = self.runs.iter().map(|r| r.trace.as_str()).collect();
        traces.dedup();
        for trace in traces {
            // Every path that replayed the trace, in the report's order; a repeated scenario
            // counts by its median run, metric by metric.
            let mut paths: Vec<&str> = Vec::new();
            for r in self.runs.iter().filter(|r| r.trace == trace) {
                if !paths.contains(&r.path.as_str()) {
                    paths.push(&r.path);
                }
            }
            if paths.len() < 2 {
                continue;
            }
            let _ = writeln!(t, "\n`{trace}` trace:\n");
            let _ = writeln!(t, "| metric | {} | best |", paths.join(" | "));
            let _ = writeln!(t, "|---|{}---|", "---|".repeat(paths.len()));
            for (name, lower_is_better, get, show) in metrics {
                let values: Vec<f64> = paths
                    .iter()
                    .map(|p| {
                        let mut v: Vec<f64> = self
                            .runs
                            .iter()
                            .filter(|r| r.trace == trace && r.path == *p)
                            .map(get)
                            .collect();
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    })
                    .collect();
                let best = values
                    .iter()
                    .copied()
                    .reduce(|a, b| if (b < a) == lower_is_better { b } else { a })
                    .unwrap_or(0.0);
                // Within 10 % of the best value (or both under 1, for counts) ties with it.
                let ties = |v: f64| (v - best).abs() <= 0.1 * v.abs().max(best.abs()).max(1.0);
                let winners: Vec<&str> = paths
                    .iter()
                    .zip(&values)
                    .filter(|(_, &v)| ties(v))
                    .map(|(p, _)| *p)
                    .collect();
                let best_text = if winners.len() == paths.len() {
                    "even".to_owned()
                } else if winners.contains(&"slotline") {
                    winners.join(", ")
                } else {
                    format!("**{}**", winners.join(", "))
                };
                let cells: Vec<String> = values.iter().map(|&v| show(v)).collect();
                let _ = writeln!(t, "| {name} | {} | {best_text} |", cells.join(" | "));
            }
        }
        t
    }

    /// Per scenario and path (median run): the best 100 ms confirmed rate, the p99 an ideal
    /// first-in first-out server at that rate would give on the trace, and the measured p99.
    pub fn ceiling_table(&self) -> String {
        let mut t = String::from(
            "| scenario | path | best confirmed rate (100 ms) | ideal p99 at that rate | measured p99 until in Redis |\n|---|---|---|---|---|\n",
        );
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for r in &self.runs {
            let key = (r.trace.as_str(), r.path.as_str());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let mut runs: Vec<&PathReport> = self
                .runs
                .iter()
                .filter(|x| x.trace == r.trace && x.path == r.path)
                .collect();
            runs.sort_by(|a, b| {
                a.in_redis_latency_ms
                    .p99
                    .total_cmp(&b.in_redis_latency_ms.p99)
            });
            let median = runs[runs.len() / 2];
            let Some(c) = median.own_ceiling else {
                continue;
            };
            let _ = writeln!(
                t,
                "| {} | {} | {:.0}/s | {} | {} |",
                median.scenario,
                median.path,
                c.rate_per_s,
                ms_text(c.p99_ms),
                ms_text(median.in_redis_latency_ms.p99)
            );
        }
        t
    }

    /// The traces' shapes.
    pub fn trace_table(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| trace | events | keys | mean rate | std dev (10 ms bins) | std dev / mean | p99 bin | max bin | events in busiest 1 % of bins |\n",
        );
        t.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for s in &self.traces {
            let r = &s.rate_10ms;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.0}/s | {:.0}/s | {:.2} | {:.0}/s | {:.0}/s | {:.1} % |",
                s.name,
                s.events,
                s.keys,
                r.mean,
                r.std_dev,
                r.std_dev / r.mean.max(1e-9),
                r.p99,
                r.max,
                r.top1pct_share * 100.0
            );
        }
        t
    }
}
