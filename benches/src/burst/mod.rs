//! `burst`: the same heavy-tailed write traffic through a sidecar-queue model, through
//! slotline and through two clients a Rust service would pick (redis-rs, fred), on a real
//! Redis Cluster, with every acknowledged write read back.
//!
//! One run, in order:
//!
//! 1. **Traces** ([`trace`]): a seeded heavy-tailed trace (or a recorded CSV), and a Poisson
//!    trace of the same mean and length for contrast.
//! 2. **Cluster**: a local 3 + 3 Redis Cluster ([`slotline_testkit::LocalCluster`]) or the
//!    `--nodes` given; `FLUSHALL` before every replay. With `--link`, the local cluster runs
//!    in a network namespace behind a shaped veth pair ([`link`]).
//! 3. **Replays** ([`replay`]): each trace through each path, open loop, latency from the
//!    scheduled time. The sidecar path talks to a proxy process ([`sidecar`]); the slotline
//!    path uses [`slotline_client::Client`] configured from `geo_shard_client.yaml`; the
//!    `redis-rs` and `fred` paths are those clients with their defaults ([`peers`]).
//! 4. **Read-back** ([`readback`]): every key with an acknowledged write, compared with the
//!    last acknowledged value.
//! 5. **Report** ([`report`], [`plot`]): the story-shaped table, a fuller table,
//!    `report.json`, and one plot per scenario (`report.svg` for the outage scenario if run,
//!    `report-<scenario>.svg` for the others).
//!
//! The progress bar (on stderr; hidden with `--no-progress`) counts two units per write of
//! every run: one when the path is done with it (answered or refused for the clients,
//! executed by Redis for the sidecar, so a drain after the trace advances it), one when the
//! read-back has judged it.

pub mod args;
pub mod link;
pub mod net;
pub mod peers;
pub mod plot;
pub mod readback;
pub mod replay;
pub mod report;
pub mod sidecar;
pub mod trace;

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use slotline_client::config::FallbackStrategy;
use slotline_client::{Client, Config, Op};
use slotline_testkit::LocalCluster;

use self::args::{Args, PathKind, TraceKind};
use self::link::{KernelPeaks, Link, Owner};
use self::plot::thousands;
use self::readback::read_back;
use self::replay::{
    attach_rss, replay_sidecar, replay_slotline, sample_rss, DepthSample, PathRun, Tally,
};
use self::report::{
    IdealQueue, Machine, Params, PathExtras, PathReport, Report, Rss, SlotlineParams, TraceSummary,
    SCHEMA,
};
use self::sidecar::{read_status_kib, Sidecar};
use self::trace::{Shape, Trace, TraceSpec};

/// Where the report went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// `report.json`.
    pub json: PathBuf,
    /// The plots, one per scenario: `report.svg` first (the outage scenario if run, else the
    /// first), then `report-<scenario>.svg` for the others; empty without runs.
    pub svgs: Vec<PathBuf>,
}

/// Builds the traces `args` asks for: the heavy one (generated or read) and the Poisson one
/// of the same mean and length.
///
/// # Errors
///
/// A message naming the trace file and line when it cannot be read.
pub fn traces(args: &Args) -> Result<Vec<Trace>, String> {
    let spec = |shape| TraceSpec {
        duration: args.duration,
        rate: args.rate,
        shape,
        seed: args.seed,
        users: args.users,
        zipf_s: args.zipf_s,
    };
    let heavy = match &args.trace {
        Some(path) => {
            let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_stem()
                .map_or("trace".to_owned(), |s| s.to_string_lossy().into_owned());
            Trace::read_csv(BufReader::new(file), &name)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => spec(Shape::Heavy {
            burst_factor: args.burst_factor,
        })
        .generate(),
    };
    if let Some(path) = &args.record {
        let mut out =
            BufWriter::new(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?);
        heavy
            .write_csv(&mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut out = Vec::new();
    for kind in &args.traces {
        match kind {
            TraceKind::Heavy => out.push(heavy.clone()),
            TraceKind::HeavyOutage => {
                let mut t = heavy.clone();
                t.name = format!("{}-outage", heavy.name);
                out.push(t);
            }
            TraceKind::Poisson => {
                // Same mean and length as the heavy trace (which may come from a file).
                let span = Duration::from_micros(heavy.span_us().max(1));
                let rate = heavy.events.len() as f64 / span.as_secs_f64();
                let mut s = spec(Shape::Poisson);
                s.duration = span;
                s.rate = rate;
                out.push(s.generate());
            }
        }
    }
    Ok(out)
}

/// Reads slotline's configuration; the default relative path is also looked up at the
/// workspace root, so the program works from any directory of the checkout.
fn load_config(path: &Path) -> Result<(Config, PathBuf), String> {
    let mut candidates = vec![path.to_path_buf()];
    if path.is_relative() && !path.exists() {
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path));
    }
    let found = candidates
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| format!("{}: no such file (see --config)", path.display()))?;
    let config = Config::from_yaml_file(&found).map_err(|e| e.to_string())?;
    Ok((config, found))
}

/// Hands the allocator's free memory back to the system (glibc's `malloc_trim`), so that a
/// path replayed after another one grows the resident set by what it allocates instead of
/// reusing what the earlier path freed but the allocator kept.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // SAFETY: `malloc_trim` is glibc's, declared with its C signature (`int malloc_trim(size_t
    // pad)`); it only releases free pages of the allocator's arenas, takes their locks itself,
    // and touches no memory a live allocation owns.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Returns freed heap memory to the system, resets this process's peak RSS (`VmHWM`) to its
/// current RSS (Linux `clear_refs` 5), and returns that reset peak in KiB: the baseline the
/// replay's own `VmHWM` is compared with (the same counter, so the growth is never negative
/// because the two were read from different counters).
fn reset_peak_rss() -> u64 {
    trim_heap();
    let _ = fs::write("/proc/self/clear_refs", "5");
    read_status_kib("self", "VmHWM")
        .or_else(|| read_status_kib("self", "VmRSS"))
        .unwrap_or(0)
}

/// The `after_ack_failures` key of acknowledged writes a stopped sidecar still held.
pub const DROPPED_AT_STOP: &str = "still queued when the sidecar was stopped (acknowledged)";

fn fallback_name(f: FallbackStrategy) -> &'static str {
    match f {
        FallbackStrategy::Reject => "reject",
        FallbackStrategy::Block => "block",
        FallbackStrategy::DropOldest => "drop_oldest",
    }
}

/// Length of `HSET key field value` in RESP.
fn packed_hset_len(key: usize, field: usize, value: usize) -> usize {
    let bulk = |n: usize| 3 + n.to_string().len() + n + 2;
    // *4\r\n $4\r\nHSET\r\n then three bulk strings.
    4 + 10 + bulk(key) + bulk(field) + bulk(value)
}

/// Length of `SET key value` in RESP.
fn packed_len(key: usize, value: usize) -> usize {
    let digits = |n: usize| n.to_string().len();
    // *3\r\n $3\r\nSET\r\n $<k>\r\n<key>\r\n $<v>\r\n<value>\r\n
    4 + 9 + (3 + digits(key) + key + 2) + (3 + digits(value) + value + 2)
}

/// Runs everything `args` asks for and writes the report files. `command` is recorded in
/// the report as the command line.
///
/// # Errors
///
/// A message for anything that stops the run: a bad trace or configuration, a cluster that
/// cannot start, a path that cannot connect.
pub fn run(args: &Args, command: &str) -> Result<(Report, Outputs), String> {
    let started = Instant::now();
    if args.link.is_some() && args.nodes.is_some() {
        return Err(
            "--link shapes the link to the local cluster it starts; it cannot be used with \
             --nodes"
                .to_owned(),
        );
    }
    if args.nodes.is_some() && args.traces.contains(&TraceKind::HeavyOutage) {
        return Err(
            "heavy-outage freezes the local cluster's nodes (SIGSTOP); with --nodes, \
                    leave it out of --traces"
                .to_owned(),
        );
    }
    let traces = traces(args)?;
    let (mut config, config_path) = load_config(&args.config)?;
    // Declared before the cluster so that it is dropped (torn down) after the cluster's
    // nodes have stopped, on every return.
    let link = match args.link {
        Some(rate) => Some(Link::up(rate).map_err(|e| format!("--link: {e}"))?),
        None => None,
    };

    let progress = if args.progress {
        let total: usize = args
            .traces
            .iter()
            .zip(&traces)
            .map(|(&kind, t)| {
                t.events.len()
                    * if kind == TraceKind::Heavy {
                        args.runs
                    } else {
                        1
                    }
            })
            .sum::<usize>()
            * args.paths.len()
            // One unit when the path is done with a write, one when it is read back.
            * 2;
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {percent:>3}% {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };

    // The cluster.
    let mut machine = Machine {
        cpus: thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        link: link.as_ref().map(|l| l.info().clone()),
        ..Machine::default()
    };
    let local = match &args.nodes {
        Some(_) => None,
        None => {
            progress.set_message("starting a local Redis Cluster (3 masters + 3 replicas)");
            // A node timeout above the outage: frozen together, the nodes come back as they
            // were (an outage, not a failover).
            let node_timeout = (args.outage.as_millis() as u64 * 2).max(5_000);
            let mut builder = LocalCluster::builder().args([
                "--cluster-node-timeout".to_owned(),
                node_timeout.to_string(),
            ]);
            if let Some(link) = &link {
                builder = builder
                    .host(link.cluster_ip())
                    .command_prefix(link.exec_prefix());
            }
            Some(builder.start().map_err(|e| format!("local cluster: {e}"))?)
        }
    };
    let seeds: Vec<String> = match (&args.nodes, &local) {
        (Some(nodes), _) => {
            let seeds: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            machine.cluster = format!("--nodes {}", seeds.join(","));
            seeds
        }
        (None, Some(cluster)) => {
            machine.cluster = match &link {
                Some(link) => format!(
                    "local: 3 masters + 3 replicas on {} in namespace {}",
                    link.cluster_ip(),
                    link.namespace()
                ),
                None => "local: 3 masters + 3 replicas on 127.0.0.1".to_owned(),
            };
            machine.cluster_startup_s = cluster.startup_time().as_secs_f64();
            cluster
                .seed_addrs()
                .iter()
                .map(ToString::to_string)
                .collect()
        }
        (None, None) => unreachable!("a local cluster is started when no --nodes are given"),
    };
    config.nodes = seeds
        .iter()
        .map(|s| s.parse().map_err(|e| format!("{e}")))
        .collect::<Result<_, String>>()?;
    let map = net::cluster_map(&seeds)?;
    let masters = net::master_addrs(&map);
    let master_ports: Vec<u16> = map.masters().map(|n| n.addr.port()).collect();
    if let Ok(slotline_router::Value::Bulk(info)) =
        net::RawConn::connect(&masters[0]).and_then(|mut c| c.query(&[b"INFO", b"server"]))
    {
        machine.redis_version = String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("")
            .trim()
            .to_owned();
    }

    let limit = config.backpressure_limit() as u64;
    let shards = u64::from(config.shard_config.total_shards);
    let slotline_params = SlotlineParams {
        config: config_path.display().to_string(),
        shards,
        ring_capacity: config.shard_config.ring_buffer_capacity as u64,
        backpressure_limit: limit,
        fallback: fallback_name(config.backpressure.fallback_strategy).to_owned(),
        max_batch: config.batching.max_batch as u64,
        so_sndbuf: config.tcp_tuning.so_sndbuf as u64,
        commit_timeout_ms: config.commit.timeout.as_secs_f64() * 1e3,
    };
    // --equal-bounds: the sidecar's queue enforced at slotline's total capacity, so that
    // both paths hold at most as many writes in memory.
    let mut equal = args.clone();
    if args.equal_bounds {
        equal.sidecar.depth = (shards * limit) as usize;
        equal.sidecar.enforce = true;
    }
    let args = &equal;
    let program = match &args.proxy_program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
    };

    let mut runs = Vec::new();
    let tally = Tally::default();
    let mut done_before = 0usize;
    for (&kind, trace) in args.traces.iter().zip(&traces) {
        let outage = (kind == TraceKind::HeavyOutage).then(|| {
            let length_us = args.outage.as_micros() as u64;
            let at_us = trace.burst_peak_us(length_us);
            Outage {
                at_us,
                length_us,
                first_event: trace.events.partition_point(|e| e.t_us < at_us),
            }
        });
        let op_size = std::mem::size_of::<Op>();
        let mean_op_bytes = trace
            .events
            .iter()
            .map(|e| (op_size + packed_len(trace.key_of(e).len(), e.bytes.max(40) as usize)) as u64)
            .sum::<u64>()
            / trace.events.len().max(1) as u64;
        let max_op_bytes = trace
            .events
            .iter()
            .map(|e| (op_size + packed_len(trace.key_of(e).len(), e.bytes.max(40) as usize)) as u64)
            .max()
            .unwrap_or(0);
        let mean_hset_bytes = trace
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                packed_hset_len(
                    trace.key_of(e).len(),
                    readback::field_name(i as u64).len(),
                    e.bytes.max(40) as usize,
                ) as u64
            })
            .sum::<u64>()
            / trace.events.len().max(1) as u64;
        let reps = if kind == TraceKind::Heavy {
            args.runs
        } else {
            1
        };
        // Every other run takes the paths in reverse order, so that no path always runs first
        // (on a fresh cluster) or last.
        let order = (0..reps).flat_map(|rep| {
            let mut paths = args.paths.clone();
            if rep % 2 == 1 {
                paths.reverse();
            }
            paths.into_iter().map(move |p| (rep, p))
        });
        for (rep, path) in order {
            net::flush_cluster(&masters)?;
            let events = trace.events.len();
            let label = format!(
                "{}: `{}` trace{}",
                path.name(),
                trace.name,
                if reps > 1 {
                    format!(" (run {} of {reps})", rep + 1)
                } else {
                    String::new()
                },
            );
            progress.set_message(format!("{label}, connecting"));
            tally.offered.store(0, Ordering::Relaxed);
            tally.settled.store(0, Ordering::Relaxed);
            let ticking = AtomicBool::new(true);
            let result = thread::scope(|scope| {
                scope.spawn(|| {
                    while ticking.load(Ordering::Relaxed) {
                        let offered = tally.offered.load(Ordering::Relaxed).min(events);
                        let settled = tally.settled.load(Ordering::Relaxed).min(offered);
                        if offered > 0 {
                            progress.set_position((done_before + settled) as u64);
                            progress.set_message(replay_message(
                                path,
                                &label,
                                (offered, settled, events),
                                args.sidecar.grace,
                            ));
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                });
                if let (Some(outage), Some(cluster)) = (&outage, &local) {
                    scope.spawn(|| freeze(cluster, outage, &tally.offered, &ticking));
                }
                // With --link: the path's sockets to the masters, read with `ss`. The
                // sidecar's are the proxy process's (a child of this one).
                let kernel = link.as_ref().map(|link| {
                    let owner = match path {
                        PathKind::Sidecar => Owner::ChildrenOf(std::process::id()),
                        _ => Owner::Pid(std::process::id()),
                    };
                    let (ticking, ports) = (&ticking, &master_ports);
                    scope.spawn(move || {
                        link::sample_kernel(ticking, link.cluster_ip(), ports, owner)
                    })
                });
                let r = match path {
                    PathKind::Sidecar => {
                        run_sidecar(args, trace, &seeds, &masters, &program, &tally)
                    }
                    PathKind::Slotline => {
                        run_slotline(args, trace, &config, &master_ports, mean_op_bytes, &tally)
                    }
                    PathKind::RedisRs => run_peer(
                        path,
                        trace,
                        || peers::RedisRs::connect(&seeds),
                        &master_ports,
                        mean_hset_bytes,
                        &tally,
                    ),
                    PathKind::Fred => run_peer(
                        path,
                        trace,
                        || peers::Fred::connect(&seeds),
                        &master_ports,
                        mean_hset_bytes,
                        &tally,
                    ),
                };
                ticking.store(false, Ordering::Relaxed);
                let kernel = kernel.map(|k| k.join().expect("the ss sampler panicked"));
                r.map(|r| (r, kernel))
            });
            let ((run, mut extras), kernel) = result?;
            done_before += events;
            progress.set_position(done_before as u64);
            let found = read_back(&map, trace, &run, |judged| {
                progress.set_position(done_before as u64 + judged.min(events as u64));
                progress.set_message(format!(
                    "{label}: reading back, {} of {} writes checked",
                    thousands(judged),
                    thousands(events as u64)
                ));
            })?;
            done_before += events;
            extras.lost_writes = found.lost_writes;
            if path == PathKind::Slotline {
                extras.configured_depth = shards * limit;
                extras.depth_enforced = true;
                // Rings hold at most `limit` ops each; writers hold at most max_batch each.
                let writers = masters.len() as u64;
                extras.bytes_bound = Some(
                    (shards * limit + writers * config.batching.max_batch as u64) * max_op_bytes,
                );
                extras.sndbuf_bytes = (
                    config.tcp_tuning.so_sndbuf as u64,
                    config.tcp_tuning.so_sndbuf as u64,
                );
            }
            // After the slotline block: measured buffers replace the configured ones.
            if let Some(peaks) = kernel {
                with_link_peaks(&mut extras, &peaks);
            }
            extras.outage_ms = outage
                .as_ref()
                .map(|o| (o.at_us as f64 / 1e3, o.length_us as f64 / 1e3));
            let mut report = PathReport::build(trace, &run, found.counts, extras);
            let best = report.best_confirmed_per_s();
            if best > 0.0 {
                report.own_ceiling = Some(IdealQueue::on(trace, best));
            }
            report.repetition = rep;
            runs.push(report);
        }
    }
    progress.finish_and_clear();

    let report = Report {
        schema: SCHEMA,
        command: command.to_owned(),
        machine,
        params: Params {
            duration_s: args.duration.as_secs_f64(),
            rate: args.rate,
            burst_factor: args.burst_factor,
            seed: args.seed,
            users: args.users,
            zipf_s: args.zipf_s,
            callers: args.callers,
            runs: args.runs,
            trace_file: args.trace.as_ref().map(|p| p.display().to_string()),
            sidecar: args.sidecar.clone(),
            slotline: slotline_params,
        },
        traces: {
            // The cluster's demonstrated capacity: the best 100 ms confirmed rate of any run.
            let capacity = runs
                .iter()
                .map(PathReport::best_confirmed_per_s)
                .fold(0.0f64, f64::max);
            traces
                .iter()
                .map(|t| {
                    let mut summary = TraceSummary::of(t);
                    if capacity > 0.0 {
                        summary.ideal = Some(IdealQueue::on(t, capacity));
                    }
                    summary
                })
                .collect()
        },
        runs,
        wall_s: started.elapsed().as_secs_f64(),
    };
    let outputs = write_outputs(&report, &args.out)?;
    drop(local);
    Ok((report, outputs))
}

/// The progress bar's message while a path replays: offered and settled so far, then what the
/// path is still waiting for (the sidecar's drain, the peers' unanswered futures).
fn replay_message(
    path: PathKind,
    label: &str,
    (offered, settled, events): (usize, usize, usize),
    grace: Duration,
) -> String {
    let n = |v: usize| thousands(v as u64);
    let left = events - settled.min(events);
    if offered < events {
        let done = if path == PathKind::Sidecar {
            "in Redis"
        } else {
            "answered"
        };
        format!(
            "{label}: {} of {} offered, {} {done}",
            n(offered),
            n(events),
            n(settled)
        )
    } else if left == 0 {
        format!("{label}: finishing")
    } else {
        match path {
            PathKind::Sidecar => format!(
                "{label}: draining its queue, {} left (grace {:.0} s)",
                n(left),
                grace.as_secs_f64()
            ),
            PathKind::Slotline => format!("{label}: waiting for {} answers", n(left)),
            _ => format!(
                "{label}: waiting for {} unanswered writes (up to {} s)",
                n(left),
                peers::DRAIN_LIMIT.as_secs()
            ),
        }
    }
}

/// `HSET`s executed so far, summed over the masters (`cmdstat_hset` of `INFO commandstats`);
/// `None` when a master does not answer with it.
fn hset_calls(conns: &mut [net::RawConn]) -> Option<u64> {
    let mut sum = 0;
    for c in conns {
        let Ok(slotline_router::Value::Bulk(info)) = c.query(&[b"INFO", b"commandstats"]) else {
            return None;
        };
        let text = String::from_utf8_lossy(&info);
        let calls = match text.lines().find_map(|l| l.strip_prefix("cmdstat_hset:")) {
            Some(stats) => stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()?,
            // No HSET run on this master yet.
            None => 0,
        };
        sum += calls;
    }
    Some(sum)
}

/// Counts the sidecar's writes Redis has executed into `tally.settled` every 250 ms until
/// `stop` (for the progress bar: the proxy acknowledges on enqueue, so its callers' answers
/// say nothing about its progress): `HSET`s executed on `conns` since `base`, plus the writes
/// `refused` to callers, at most `events`. Stops at the first master that does not answer.
fn count_in_redis(
    conns: &mut [net::RawConn],
    base: u64,
    refused: &AtomicUsize,
    events: usize,
    tally: &Tally,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(250));
        let Some(calls) = hset_calls(conns) else {
            return;
        };
        let done = calls.saturating_sub(base) as usize + refused.load(Ordering::Relaxed);
        tally.settled.store(done.min(events), Ordering::Relaxed);
    }
}

/// With `--link`, the kernel buffers come from `ss` for every path: the peak Σ `Send-Q` +
/// `Recv-Q` of the path's sockets to the masters, and their send buffer sizes (`skmem` `tb`,
/// as autotuned or set) in the first sample and at the peak.
fn with_link_peaks(extras: &mut PathExtras, peaks: &KernelPeaks) {
    extras.peak_kernel_bytes = Some(peaks.queued);
    if peaks.samples_with_sockets > 0 {
        extras.sndbuf_bytes = (peaks.sndbuf_first, peaks.sndbuf_peak);
    }
}

/// When the `heavy-outage` scenario freezes the cluster.
struct Outage {
    /// Start, microseconds into the trace.
    at_us: u64,
    /// Length, microseconds.
    length_us: u64,
    /// The first event at or after the start.
    first_event: usize,
}

/// Freezes every node of `cluster` (SIGSTOP) once the replay has offered the outage's first
/// event, and thaws them (SIGCONT) after its length; gives up if the replay ends first.
///
/// An outage at the very start of the trace waits for the first write all the same, so that
/// a path still connecting (before its replay starts) is not frozen out of the outage.
fn freeze(cluster: &LocalCluster, outage: &Outage, offered: &AtomicUsize, replaying: &AtomicBool) {
    while offered.load(Ordering::Relaxed) < outage.first_event.max(1) {
        if !replaying.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_micros(500));
    }
    let nodes = cluster.nodes().len();
    for i in 0..nodes {
        let _ = cluster.pause_node(i);
    }
    thread::sleep(Duration::from_micros(outage.length_us));
    for i in 0..nodes {
        let _ = cluster.resume_node(i);
    }
}

/// One replay through the sidecar model. Besides the proxy's own samples, this process's and
/// the proxy's resident sets are read every 100 ms from the replay's start to the end of the
/// drain, and the writes Redis executed are counted for the progress bar (see
/// [`count_in_redis`]).
fn run_sidecar(
    args: &Args,
    trace: &Trace,
    seeds: &[String],
    masters: &[String],
    program: &Path,
    tally: &Tally,
) -> Result<(PathRun, PathExtras), String> {
    let base = reset_peak_rss();
    let sidecar = Sidecar::spawn(program, seeds, &args.sidecar)?;
    let pid = sidecar.pid();
    let mut conns: Vec<net::RawConn> = masters
        .iter()
        .filter_map(|m| net::RawConn::connect(m).ok())
        .collect();
    let hsets_before = hset_calls(&mut conns).filter(|_| conns.len() == masters.len());
    let refused = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let ((mut run, peak), proxy, rss) = thread::scope(|scope| {
        let rss = scope.spawn(|| sample_rss(Some(pid), &stop));
        if let Some(before) = hsets_before {
            let (refused, stop, events) = (&refused, &stop, trace.events.len());
            scope.spawn(move || count_in_redis(&mut conns, before, refused, events, tally, stop));
        }
        let replayed = replay_sidecar(trace, &sidecar.addr, args.callers, tally).and_then(|run| {
            let told = run
                .records
                .iter()
                .filter(|r| r.outcome != replay::Outcome::Ok);
            refused.store(told.count(), Ordering::Relaxed);
            let peak = read_status_kib("self", "VmHWM").unwrap_or(0);
            Ok((run, peak, sidecar.finish(args.sidecar.grace)?))
        });
        stop.store(true, Ordering::Relaxed);
        let rss = rss.join().unwrap_or_default();
        replayed.map(|(run, peak, proxy)| ((run, peak), proxy, rss))
    })?;
    run.caller_base_rss_kib = base;
    run.caller_peak_rss_kib = peak;
    let start = run.start_unix_us;
    let mut in_redis = vec![None; run.records.len()];
    for &(seq, at) in &proxy.confirms {
        if let Some(slot) = in_redis.get_mut(seq as usize) {
            *slot = Some(at.saturating_sub(start));
        }
    }
    run.in_redis_us = Some(in_redis);
    run.samples = proxy
        .samples
        .iter()
        .filter(|s| s.unix_us >= start)
        .map(|s| DepthSample {
            t_us: s.unix_us - start,
            depth: s.depth,
            bytes: s.queue_bytes + s.unparsed_bytes,
            kernel_bytes: s.kernel_bytes,
            rss_kib: None,
            proxy_rss_kib: None,
        })
        .collect();
    attach_rss(&mut run.samples, &rss, start);
    if proxy.upstream_errors > 0 {
        run.after_ack.insert(
            "Redis refused a write after the sidecar's ACK".to_owned(),
            proxy.upstream_errors,
        );
    }
    if proxy.timed_out > 0 {
        run.after_ack.insert(
            "given up after the sidecar's request timeout (acknowledged)".to_owned(),
            proxy.timed_out,
        );
    }
    if proxy.dropped_at_stop > 0 {
        run.after_ack
            .insert(DROPPED_AT_STOP.to_owned(), proxy.dropped_at_stop);
    }
    let extras = PathExtras {
        path: "sidecar".to_owned(),
        configured_depth: args.sidecar.depth as u64,
        depth_enforced: args.sidecar.enforce,
        acked_not_in_redis: true,
        exact_peak_depth: Some(proxy.peak_depth),
        exact_peak_bytes: Some(proxy.peak_queue_bytes + proxy.peak_unparsed_bytes),
        peak_kernel_bytes: Some(proxy.peak_kernel_bytes),
        // Unbounded by default; with --sidecar-enforce the queue is bounded but what callers
        // have sent and the proxy has not parsed yet is not.
        bytes_bound: None,
        sndbuf_bytes: (proxy.sndbuf_start_bytes, proxy.sndbuf_peak_bytes),
        peak_rss: Rss {
            callers_base_kib: run.caller_base_rss_kib,
            callers_peak_kib: run.caller_peak_rss_kib,
            proxy_peak_kib: Some(proxy.peak_rss_kib),
        },
        outage_ms: None,
        lost_writes: Vec::new(),
    };
    Ok((run, extras))
}

/// One replay through slotline's client.
fn run_slotline(
    args: &Args,
    trace: &Trace,
    config: &Config,
    master_ports: &[u16],
    op_bytes: u64,
    tally: &Tally,
) -> Result<(PathRun, PathExtras), String> {
    let base = reset_peak_rss();
    let client = Client::connect(config.clone()).map_err(|e| format!("slotline: {e}"))?;
    let mut run = replay_slotline(trace, &client, args.callers, master_ports, op_bytes, tally);
    run.caller_base_rss_kib = base;
    run.caller_peak_rss_kib = read_status_kib("self", "VmHWM").unwrap_or(0);
    drop(client);
    let extras = PathExtras {
        path: "slotline".to_owned(),
        peak_rss: Rss {
            callers_base_kib: run.caller_base_rss_kib,
            callers_peak_kib: run.caller_peak_rss_kib,
            proxy_peak_kib: None,
        },
        ..PathExtras::default()
    };
    Ok((run, extras))
}

/// One replay through a peer client ([`peers`]): no configured bound (both peers queue
/// without limit by default), in-flight bytes estimated from the mean `HSET` size.
fn run_peer<P, F, Fut>(
    path: PathKind,
    trace: &Trace,
    connect: F,
    master_ports: &[u16],
    cmd_bytes: u64,
    tally: &Tally,
) -> Result<(PathRun, PathExtras), String>
where
    P: peers::Peer,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<P, String>>,
{
    let run = peers::run_peer(trace, connect, master_ports, cmd_bytes, tally)
        .map_err(|e| format!("{}: {e}", path.name()))?;
    let extras = PathExtras {
        path: path.name().to_owned(),
        configured_depth: 0,
        depth_enforced: false,
        peak_rss: Rss {
            callers_base_kib: run.caller_base_rss_kib,
            callers_peak_kib: run.caller_peak_rss_kib,
            proxy_peak_kib: None,
        },
        ..PathExtras::default()
    };
    Ok((run, extras))
}

/// Writes `report.json` and one plot per scenario into `dir` (first runs only, `repetition`
/// 0): `report.svg` for the scenario with an outage (`heavy-outage`) if there is one, else
/// for the first; `report-<scenario>.svg` for each other one (characters other than ASCII
/// letters, digits, `-`, `_` and `.` replaced by `_`).
///
/// # Errors
///
/// A message naming the file that could not be written.
pub fn write_outputs(report: &Report, dir: &Path) -> Result<Outputs, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = dir.join("report.json");
    let file = File::create(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    serde_json::to_writer_pretty(BufWriter::new(file), report)
        .map_err(|e| format!("{}: {e}", json.display()))?;
    let mut scenarios: Vec<&str> = Vec::new();
    for r in report.runs.iter().filter(|r| r.repetition == 0) {
        if !scenarios.contains(&r.trace.as_str()) {
            scenarios.push(&r.trace);
        }
    }
    if let Some(i) = scenarios.iter().position(|&t| {
        report
            .runs
            .iter()
            .any(|r| r.trace == t && r.outage_ms.is_some())
    }) {
        let outage = scenarios.remove(i);
        scenarios.insert(0, outage);
    }
    let mut svgs = Vec::with_capacity(scenarios.len());
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let svg = if i == 0 {
            dir.join("report.svg")
        } else {
            let safe: String = scenario
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dir.join(format!("report-{safe}.svg"))
        };
        plot::plot(report, scenario, &svg)?;
        svgs.push(svg);
    }
    Ok(Outputs { json, svgs })
}

/// The tables and notes printed at the end of a run.
pub fn summary(report: &Report, outputs: &Outputs) -> String {
    let mut s = String::new();
    s.push_str("\nTraces (rate measured in 10 ms bins):\n\n");
    s.push_str(&report.trace_table());
    let ideal: Vec<String> = report
        .traces
        .iter()
        .filter_map(|t| {
            t.ideal.map(|i| {
                format!(
                    "  `{}`: p99 {} ({} at twice the rate)",
                    t.name,
                    report::ms_text(i.p99_ms),
                    report::ms_text(i.p99_at_double_rate_ms)
                )
            })
        })
        .collect();
    if let Some(rate) = report
        .traces
        .iter()
        .find_map(|t| t.ideal.map(|i| i.rate_per_s))
    {
        s.push_str(&format!(
            "\nThe floor: a path with no overhead, one queue served at the best rate the cluster \
             confirmed writes in any 100 ms of this run ({rate:.0}/s), would wait:\n{}\n",
            ideal.join("\n")
        ));
    }
    if report.runs.iter().any(|r| r.own_ceiling.is_some()) {
        s.push_str(
            "\nEach path's own ceiling: its best 100 ms confirmed rate in the run, and the p99 \
             an ideal queue at that rate would give (close to the measured p99: the path's \
             latency is its throughput limit here):\n\n",
        );
        s.push_str(&report.ceiling_table());
    }
    s.push_str(
        "\nEvery scenario and path (median and range over the runs; latencies from each \
         write's scheduled time; acked lost: acknowledged writes the read-back did not find):\n\n",
    );
    s.push_str(&report.summary_table());
    s.push_str(
        "\nThe story's table, reproduced (p99 latencies from each write's scheduled time):\n\n",
    );
    s.push_str(&report.story_table());
    let verdicts = report.verdicts();
    if !verdicts.is_empty() {
        s.push_str(
            "\nSide by side (median run; best = the paths within 10 % of the best value, \
             in bold when slotline is not among them; even = all are):\n",
        );
        s.push_str(&verdicts);
    }
    s.push_str("\nEvery count:\n\n");
    s.push_str(&report.full_table());
    let errors: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.errors.is_empty())
        .map(|r| {
            let list: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            format!("  {} / {}: {}", r.path, r.trace, list.join(", "))
        })
        .collect();
    let after: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.after_ack_failures.is_empty())
        .map(|r| {
            let list: Vec<String> = r
                .after_ack_failures
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            format!("  {} / {}: {}", r.path, r.trace, list.join(", "))
        })
        .collect();
    if !after.is_empty() {
        s.push_str("\nFailures after the ACK (no caller saw them):\n");
        s.push_str(&after.join("\n"));
        s.push('\n');
    }
    if !errors.is_empty() {
        s.push_str("\nErrors the callers saw, by kind:\n");
        s.push_str(&errors.join("\n"));
        s.push('\n');
    }
    s.push_str(&format!(
        "\ntraces: seed {}, {:.1} s at a mean of {:.0} writes/s; heavy runs per path: {}",
        report.params.seed, report.params.duration_s, report.params.rate, report.params.runs
    ));
    s.push_str(&format!(
        "\nmachine: {} CPUs, Linux {}, redis-server {} ({}); wall time {:.1} s\n",
        report.machine.cpus,
        report.machine.kernel,
        report.machine.redis_version,
        report.machine.cluster,
        report.wall_s
    ));
    if let Some(link) = &report.machine.link {
        s.push_str(&format!("{}\n", link.describe()));
    }
    s.push_str(&format!("report: {}\n", outputs.json.display()));
    for svg in &outputs.svgs {
        s.push_str(&format!("plot:   {}\n", svg.display()));
    }
    s
}
