//! Client commit: ACKed `SET`s per second and their latency, slotline against the redis-rs
//! cluster clients, against one real local Redis Cluster (3 masters + 3 replicas), in one process.
//!
//! | id | implementation | callers |
//! |---|---|---|
//! | `0-slotline` | `Client::commit` (blocks until the master replied), one shared `Arc<Client>` | N OS threads |
//! | `1-slotline-async` | `Client::commit_async(..).await`, one shared `Arc<Client>` | N tokio tasks |
//! | `2-redis-rs-sync` | redis-rs 1.8 `cluster::ClusterConnection`, one per caller, `SET` | N OS threads |
//! | `3-redis-rs-async` | redis-rs 1.8 `cluster_async::ClusterConnection`, one clone per task | N tokio tasks |
//! | `4-redis-rs-async-again` | `3-redis-rs-async` once more: the same-vs-same noise control | N tokio tasks |
//! | `5-slotline-batch` | `Client::commit_batch_async` of 100 `SET`s spread over all slots | N tokio tasks |
//! | `6-redis-rs-100-futures` | 100 concurrent `query_async` `SET`s on the async cluster connection, joined | N tokio tasks |
//! | `7-redis-rs-cluster-pipe` | redis-rs `cluster_pipe()` of 100 `SET`s on a sync cluster connection | N OS threads |
//!
//! The batch rows (5-7) count each of the 100 `SET`s as a commit (their latency columns are
//! per batch); after each caller count the report adds the median per-round ratio of
//! `5-slotline-batch` to `6-redis-rs-100-futures`, the closest thing redis-rs offers to a
//! batch with one result per command over many masters.

//!
//! The tokio tasks run on one multi-thread runtime (a worker per core) shared by both async
//! contenders. Each caller writes `SET bench:{<n>} <32-byte value>` over a key space of 100 000
//! keys (the hash tag spreads them over all slots); keys are overwritten, nothing is flushed.
//!
//! # Method
//!
//! A sanity check comes first: every contender writes its own key and it is read back. Then, per
//! caller count (1, 16, 64, 256), a short warm-up of every contender and `rounds` interleaved
//! rounds: in each round every contender runs for `round` once, the order rotating from round to
//! round. Every caller reads the clock itself after a shared barrier and times each commit; a
//! run's throughput is its commits over the span from the earliest caller start to the latest
//! caller stop. Reported per contender: the median throughput over the rounds, p50/p99 of every
//! commit of every round, and the median of the per-round ratios to `3-redis-rs-async` (the
//! `4-redis-rs-async-again` row shows how far a ratio moves by noise alone). Because other
//! processes share the machine, each run also reads the CPU time (user + system, from
//! `/proc/<pid>/stat`) that this process and the six `redis-server`s spent during it: µs of CPU
//! per commit, the cost that caps throughput once the cores are busy.
//!
//! ```text
//! cargo bench -p slotline-bench --bench client_commit                              # 7 rounds × 1 s
//! SLOTLINE_BENCH_QUICK=1 cargo bench -p slotline-bench --bench client_commit       # 2 rounds × 0.3 s
//! ```
//!
//! Other knobs: `SLOTLINE_BENCH_ROUNDS`, `SLOTLINE_BENCH_ROUND_MS`, `SLOTLINE_BENCH_CALLERS`
//! (`1,16,64,256`), `SLOTLINE_BENCH_ONLY` (comma-separated ids or id prefixes, e.g. `0,3`),
//! and slotline's own `SLOTLINE_BENCH_SHARDS` (`shard_config.total_shards`, default 64),
//! `SLOTLINE_BENCH_MAX_BATCH` (`batching.max_batch`, default 512),
//! `SLOTLINE_BENCH_PIPELINE_DEPTH` (`batching.pipeline_depth`, default 4) and
//! `SLOTLINE_BENCH_IO_THREADS` (`redis_pool.io_threads`, default 0: from the machine).
//!
//! CPU columns: `client` is this whole process (callers, runtime, the client's own threads);
//! `engine` is slotline's own threads only (`slotline-io-*`, `slotline-refresh`), the work the
//! client adds on top of its callers (redis-rs does its work inside the callers' tasks, so it
//! has no such column); `servers` is the six `redis-server`s.

use std::env;
use std::fmt::Write as _;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use slotline_client::config::FallbackStrategy;
use slotline_client::{Client, Config};
use slotline_testkit::LocalCluster;

/// Keys `bench:{0}` .. `bench:{99999}`.
const KEY_SPACE: usize = 100_000;
/// The value of every `SET` (32 bytes).
const VALUE: &[u8] = b"52.520008,13.404954;t=170000000.";
/// Consecutive commits of one caller step through the key space by this prime.
const KEY_STRIDE: usize = 7_919;
/// `SET`s per batch for the batch contenders.
const BATCH: usize = 100;

/// The `BATCH` keys of the batch that starts at key index `k`: spread over all slots.
fn batch_keys(k: usize) -> impl Iterator<Item = &'static [u8]> {
    (0..BATCH).map(move |j| key(k + j * KEY_STRIDE))
}

/// Polls every future until all are done; how many returned `true`. (No `futures` crate
/// here: this is all a `join_all` has to do.)
async fn join_all<F: Future<Output = bool>>(futures: Vec<F>) -> usize {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futures: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut ok = 0;
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(done) => {
                        ok += usize::from(done);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(ok)
        }
    })
    .await
}

/// The contenders, in id order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Slotline,
    SlotlineAsync,
    RedisSync,
    RedisAsync,
    RedisAsyncAgain,
    SlotlineBatch,
    RedisBatchFutures,
    RedisClusterPipe,
}

impl Contender {
    const ALL: [Contender; 8] = [
        Contender::Slotline,
        Contender::SlotlineAsync,
        Contender::RedisSync,
        Contender::RedisAsync,
        Contender::RedisAsyncAgain,
        Contender::SlotlineBatch,
        Contender::RedisBatchFutures,
        Contender::RedisClusterPipe,
    ];
    /// What every ratio divides by.
    const BASELINE: Contender = Contender::RedisAsync;

    fn id(self) -> &'static str {
        match self {
            Contender::Slotline => "0-slotline",
            Contender::SlotlineAsync => "1-slotline-async",
            Contender::RedisSync => "2-redis-rs-sync",
            Contender::RedisAsync => "3-redis-rs-async",
            Contender::RedisAsyncAgain => "4-redis-rs-async-again",
            Contender::SlotlineBatch => "5-slotline-batch",
            Contender::RedisBatchFutures => "6-redis-rs-100-futures",
            Contender::RedisClusterPipe => "7-redis-rs-cluster-pipe",
        }
    }

    /// `SET`s per call: `BATCH` for the batch contenders, 1 for the others.
    fn ops_per_call(self) -> u64 {
        match self {
            Contender::SlotlineBatch
            | Contender::RedisBatchFutures
            | Contender::RedisClusterPipe => BATCH as u64,
            _ => 1,
        }
    }
}

/// How long and how often to measure, from the environment.
#[derive(Debug)]
struct Settings {
    rounds: usize,
    round: Duration,
    warmup: Duration,
    callers: Vec<usize>,
    contenders: Vec<Contender>,
    total_shards: u32,
    max_batch: usize,
    pipeline_depth: usize,
    io_threads: usize,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let quick = env::var("SLOTLINE_BENCH_QUICK").is_ok_and(|v| v != "0");
        let (rounds, round_ms) = if quick { (2, 300) } else { (7, 1_000) };
        let rounds = env_or("SLOTLINE_BENCH_ROUNDS", rounds).max(1);
        let round = Duration::from_millis(env_or("SLOTLINE_BENCH_ROUND_MS", round_ms));
        let callers = env::var("SLOTLINE_BENCH_CALLERS")
            .unwrap_or_else(|_| "1,16,64,256".to_owned())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| panic!("SLOTLINE_BENCH_CALLERS: bad count {n:?}"))
            })
            .collect();
        let only = env::var("SLOTLINE_BENCH_ONLY").unwrap_or_default();
        let contenders = Contender::ALL
            .into_iter()
            .filter(|c| {
                only.is_empty()
                    || only
                        .split(',')
                        .any(|p| !p.trim().is_empty() && c.id().starts_with(p.trim()))
            })
            .collect();
        Settings {
            rounds,
            round,
            warmup: round / 3,
            callers,
            contenders,
            total_shards: env_or("SLOTLINE_BENCH_SHARDS", 64),
            max_batch: env_or("SLOTLINE_BENCH_MAX_BATCH", 512),
            pipeline_depth: env_or("SLOTLINE_BENCH_PIPELINE_DEPTH", 4),
            io_threads: env_or("SLOTLINE_BENCH_IO_THREADS", 0),
        }
    }
}

/// The index of a key made by [`key`].
fn key_index(key: &[u8]) -> usize {
    std::str::from_utf8(&key[7..key.len() - 1])
        .ok()
        .and_then(|n| n.parse().ok())
        .expect("a bench:{n} key")
}

/// The key of index `i` (`bench:{i}`), built once so no contender pays for formatting.
fn key(i: usize) -> &'static [u8] {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..KEY_SPACE)
            .map(|n| format!("bench:{{{n}}}").into_bytes())
            .collect()
    })[i % KEY_SPACE]
        .as_slice()
}

/// What one caller did in one run.
struct CallerRun {
    start: Instant,
    stop: Instant,
    commits: u64,
    errors: u64,
    /// Latency of every commit, ns (saturating at `u32::MAX`, ~4.3 s).
    latencies: Vec<u32>,
}

impl CallerRun {
    fn new(expected: usize) -> CallerRun {
        let now = Instant::now();
        CallerRun {
            start: now,
            stop: now,
            commits: 0,
            errors: 0,
            latencies: Vec::with_capacity(expected),
        }
    }

    fn record(&mut self, began: Instant, done: Instant, ok: bool) {
        let ns = u32::try_from(done.duration_since(began).as_nanos()).unwrap_or(u32::MAX);
        self.latencies.push(ns);
        if ok {
            self.commits += 1;
        } else {
            self.errors += 1;
        }
    }
}

/// One contender's run at one caller count.
struct Run {
    commits: u64,
    errors: u64,
    span: Duration,
    latencies: Vec<u32>,
    /// CPU time of this process during the run (all threads: callers, writers, runtime).
    client_cpu: Duration,
    /// CPU time of the cluster's `redis-server` processes during the run.
    server_cpu: Duration,
    /// CPU time of slotline's own threads during the run.
    engine_cpu: Duration,
    /// `SET`s per call (a batch is one call).
    ops_per_call: u64,
}

impl Run {
    fn from_callers(callers: Vec<CallerRun>) -> Run {
        let start = callers.iter().map(|c| c.start).min().expect("one caller");
        let stop = callers.iter().map(|c| c.stop).max().expect("one caller");
        let mut run = Run {
            commits: 0,
            errors: 0,
            span: stop.duration_since(start),
            latencies: Vec::new(),
            client_cpu: Duration::ZERO,
            server_cpu: Duration::ZERO,
            engine_cpu: Duration::ZERO,
            ops_per_call: 1,
        };
        for c in callers {
            run.commits += c.commits;
            run.errors += c.errors;
            run.latencies.extend_from_slice(&c.latencies);
        }
        run
    }

    fn per_sec(&self) -> f64 {
        (self.commits * self.ops_per_call) as f64 / self.span.as_secs_f64()
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`; zero where
/// that cannot be read. Resolution: one clock tick (10 ms).
fn cpu_time(pid: &str) -> Duration {
    /// `USER_HZ`, the unit of `utime`/`stime`: 100 on every Linux ABI.
    const TICKS_PER_SEC: u64 = 100;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) may contain spaces: count fields after its closing `)`.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let mut fields = rest.split_ascii_whitespace().skip(11); // field 14 is `utime`
    let mut ticks = || {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (utime, stime) = (ticks(), ticks());
    Duration::from_millis((utime + stime) * 1_000 / TICKS_PER_SEC)
}

/// Whose CPU time a run accounts for.
struct CpuMeter {
    servers: Vec<String>,
}

impl CpuMeter {
    /// (this process, all servers, slotline's own threads) so far.
    fn now(&self) -> (Duration, Duration, Duration) {
        let servers = self.servers.iter().map(|pid| cpu_time(pid)).sum();
        (cpu_time("self"), servers, engine_cpu_time())
    }
}

/// CPU time of this process's threads named `slotline-*` (the client's I/O and refresh
/// threads), from `/proc/self/task/*/stat`.
fn engine_cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            comm.starts_with("slotline-")
                .then(|| cpu_time(&format!("self/task/{tid}")))
        })
        .sum()
}

/// A generous guess at how many commits one caller makes in `duration` (sizes sample buffers).
fn expected_per_caller(duration: Duration, callers: usize) -> usize {
    let total = duration.as_secs_f64() * 400_000.0;
    ((total / callers as f64) as usize).clamp(1_024, 1 << 20)
}

/// Runs `commit` in a loop on `callers` OS threads released by one barrier, each for
/// `duration` from its own start.
fn run_threads<F>(callers: usize, duration: Duration, commit: F) -> Run
where
    F: Fn(usize, &[u8]) -> bool + Sync,
{
    let barrier = Barrier::new(callers);
    let expected = expected_per_caller(duration, callers);
    let runs = thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|caller| {
                let (barrier, commit) = (&barrier, &commit);
                s.spawn(move || {
                    let mut run = CallerRun::new(expected);
                    let mut k = caller * (KEY_SPACE / callers);
                    barrier.wait();
                    run.start = Instant::now();
                    let end = run.start + duration;
                    let mut began = run.start;
                    while began < end {
                        let ok = commit(caller, key(k));
                        let done = Instant::now();
                        run.record(began, done, ok);
                        k += KEY_STRIDE;
                        began = done;
                    }
                    run.stop = began;
                    run
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark caller panicked"))
            .collect()
    });
    Run::from_callers(runs)
}

/// Runs `commit` in a loop on `callers` tokio tasks released by one barrier, each for
/// `duration` from its own start.
fn run_tasks<F, Fut>(
    rt: &tokio::runtime::Runtime,
    callers: usize,
    duration: Duration,
    commit: F,
) -> Run
where
    F: Fn(usize, &'static [u8]) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(callers));
    let expected = expected_per_caller(duration, callers);
    let runs = rt.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let (barrier, commit) = (Arc::clone(&barrier), commit.clone());
                tokio::spawn(async move {
                    let mut run = CallerRun::new(expected);
                    let mut k = caller * (KEY_SPACE / callers);
                    barrier.wait().await;
                    run.start = Instant::now();
                    let end = run.start + duration;
                    let mut began = run.start;
                    while began < end {
                        let ok = commit(caller, key(k)).await;
                        let done = Instant::now();
                        run.record(began, done, ok);
                        k += KEY_STRIDE;
                        began = done;
                    }
                    run.stop = began;
                    run
                })
            })
            .collect();
        let mut runs = Vec::with_capacity(callers);
        for task in tasks {
            runs.push(task.await.expect("benchmark task panicked"));
        }
        runs
    });
    Run::from_callers(runs)
}

/// Everything the contenders run against.
struct Bench {
    rt: tokio::runtime::Runtime,
    slotline: Arc<Client>,
    /// One sync cluster connection per caller thread (as many as the largest caller count).
    redis_sync: Vec<Mutex<ClusterConnection>>,
    redis_async: redis::cluster_async::ClusterConnection,
    cpu: CpuMeter,
}

impl Bench {
    /// One run of `contender`, with the CPU time it cost.
    fn run(&self, contender: Contender, callers: usize, duration: Duration) -> Run {
        let (client_before, servers_before, engine_before) = self.cpu.now();
        let mut run = self.run_callers(contender, callers, duration);
        let (client_after, servers_after, engine_after) = self.cpu.now();
        run.client_cpu = client_after.saturating_sub(client_before);
        run.server_cpu = servers_after.saturating_sub(servers_before);
        run.engine_cpu = engine_after.saturating_sub(engine_before);
        run.ops_per_call = contender.ops_per_call();
        run
    }

    fn run_callers(&self, contender: Contender, callers: usize, duration: Duration) -> Run {
        match contender {
            Contender::Slotline => {
                let client = &self.slotline;
                run_threads(callers, duration, |_, key| {
                    client.commit(key, VALUE).is_ok()
                })
            }
            Contender::SlotlineAsync => {
                let client = Arc::clone(&self.slotline);
                run_tasks(&self.rt, callers, duration, move |_, key| {
                    let commit = client.commit_async(key, VALUE);
                    async move { commit.await.is_ok() }
                })
            }
            Contender::RedisSync => {
                let conns = &self.redis_sync;
                run_threads(callers, duration, |caller, key| {
                    let mut conn = conns[caller].lock().expect("one caller per connection");
                    redis::cmd("SET")
                        .arg(key)
                        .arg(VALUE)
                        .query::<()>(&mut *conn)
                        .is_ok()
                })
            }
            Contender::RedisAsync | Contender::RedisAsyncAgain => {
                let conn = self.redis_async.clone();
                run_tasks(&self.rt, callers, duration, move |_, key| {
                    let mut conn = conn.clone();
                    async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(VALUE)
                            .query_async::<()>(&mut conn)
                            .await
                            .is_ok()
                    }
                })
            }
            Contender::SlotlineBatch => {
                let client = Arc::clone(&self.slotline);
                run_tasks(&self.rt, callers, duration, move |_, first| {
                    let k = key_index(first);
                    let cmds: Vec<redis::Cmd> = batch_keys(k)
                        .map(|key| redis::cmd("SET").arg(key).arg(VALUE).clone())
                        .collect();
                    let batch = client.commit_batch_async(&cmds);
                    async move {
                        batch
                            .await
                            .is_ok_and(|results| results.iter().all(Result::is_ok))
                    }
                })
            }
            Contender::RedisBatchFutures => {
                let conn = self.redis_async.clone();
                run_tasks(&self.rt, callers, duration, move |_, first| {
                    let k = key_index(first);
                    let futures: Vec<_> = batch_keys(k)
                        .map(|key| {
                            let mut conn = conn.clone();
                            async move {
                                redis::cmd("SET")
                                    .arg(key)
                                    .arg(VALUE)
                                    .query_async::<()>(&mut conn)
                                    .await
                                    .is_ok()
                            }
                        })
                        .collect();
                    async move { join_all(futures).await == BATCH }
                })
            }
            Contender::RedisClusterPipe => {
                let conns = &self.redis_sync;
                run_threads(callers, duration, |caller, first| {
                    let mut conn = conns[caller].lock().expect("one caller per connection");
                    let mut pipe = redis::cluster::cluster_pipe();
                    for key in batch_keys(key_index(first)) {
                        pipe.cmd("SET").arg(key).arg(VALUE).ignore();
                    }
                    pipe.query::<()>(&mut conn).is_ok()
                })
            }
        }
    }

    /// Each contender writes its own key; the key is read back through redis-rs.
    fn sanity_check(&self, contenders: &[Contender]) {
        let mut reader = self.redis_sync[0].lock().expect("not shared yet");
        for &contender in contenders {
            let key = format!("bench:sanity:{{{}}}", contender.id());
            let value = format!("written by {}", contender.id());
            let written = match contender {
                Contender::Slotline => self
                    .slotline
                    .commit(key.as_bytes(), value.as_bytes())
                    .is_ok(),
                Contender::SlotlineAsync => self
                    .rt
                    .block_on(self.slotline.commit_async(key.as_bytes(), value.as_bytes()))
                    .is_ok(),
                Contender::RedisSync => redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .query::<()>(&mut *reader)
                    .is_ok(),
                Contender::RedisAsync | Contender::RedisAsyncAgain => {
                    let mut conn = self.redis_async.clone();
                    self.rt
                        .block_on(
                            redis::cmd("SET")
                                .arg(&key)
                                .arg(&value)
                                .query_async::<()>(&mut conn),
                        )
                        .is_ok()
                }
                Contender::SlotlineBatch => {
                    let cmds = [
                        redis::cmd("SET").arg(&key).arg(&value).clone(),
                        redis::cmd("SET").arg("bench:{1}").arg(VALUE).clone(),
                    ];
                    self.rt
                        .block_on(self.slotline.commit_batch_async(&cmds))
                        .is_ok_and(|r| r.iter().all(Result::is_ok))
                }
                Contender::RedisBatchFutures => {
                    let conn = self.redis_async.clone();
                    let futures: Vec<_> = [
                        (key.clone(), value.clone()),
                        ("bench:{1}".into(), "v".into()),
                    ]
                    .into_iter()
                    .map(|(k, v)| {
                        let mut conn = conn.clone();
                        async move {
                            redis::cmd("SET")
                                .arg(k)
                                .arg(v)
                                .query_async::<()>(&mut conn)
                                .await
                                .is_ok()
                        }
                    })
                    .collect();
                    self.rt.block_on(join_all(futures)) == 2
                }
                Contender::RedisClusterPipe => {
                    let mut pipe = redis::cluster::cluster_pipe();
                    pipe.cmd("SET").arg(&key).arg(&value).ignore();
                    pipe.cmd("SET").arg("bench:{1}").arg(VALUE).ignore();
                    pipe.query::<()>(&mut reader).is_ok()
                }
            };
            assert!(written, "{}: SET {key} failed", contender.id());
            let read: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query(&mut *reader)
                .unwrap_or_else(|e| panic!("GET {key}: {e}"));
            assert_eq!(
                read.as_deref(),
                Some(value.as_str()),
                "{}: read back a different value",
                contender.id()
            );
        }
        println!("sanity check: every contender's write was read back");
    }
}

/// The `q`-quantile of `samples` (ns), in µs.
fn quantile_us(samples: &mut [u32], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    let (_, nth, _) = samples.select_nth_unstable(rank);
    f64::from(*nth) / 1_000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One row of the report.
struct Row {
    callers: usize,
    contender: Contender,
    median_per_sec: f64,
    min_per_sec: f64,
    max_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU µs per commit over all rounds: this process, and the six servers.
    client_cpu_us: f64,
    server_cpu_us: f64,
    /// slotline's own threads, µs per commit (`None` for redis-rs).
    engine_cpu_us: Option<f64>,
    /// Median of the per-round ratios to the baseline (`None` without a baseline).
    ratio: Option<f64>,
    /// For `5-slotline-batch`: median of the per-round ratios to `6-redis-rs-100-futures`.
    batch_ratio: Option<f64>,
    errors: u64,
}

fn measure(bench: &Bench, settings: &Settings, callers: usize) -> Vec<Row> {
    let contenders = &settings.contenders;
    for &c in contenders {
        let _ = bench.run(c, callers, settings.warmup);
    }
    let mut per_sec: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); contenders.len()];
    let mut errors = vec![0u64; contenders.len()];
    let mut commits = vec![0u64; contenders.len()];
    let mut cpu = vec![(Duration::ZERO, Duration::ZERO, Duration::ZERO); contenders.len()];
    for round in 0..settings.rounds {
        for step in 0..contenders.len() {
            let i = (round + step) % contenders.len();
            let run = bench.run(contenders[i], callers, settings.round);
            per_sec[i].push(run.per_sec());
            latencies[i].extend_from_slice(&run.latencies);
            errors[i] += run.errors;
            commits[i] += run.commits * run.ops_per_call;
            cpu[i].0 += run.client_cpu;
            cpu[i].1 += run.server_cpu;
            cpu[i].2 += run.engine_cpu;
        }
    }
    let baseline = contenders.iter().position(|&c| c == Contender::BASELINE);
    let batch_baseline = contenders
        .iter()
        .position(|&c| c == Contender::RedisBatchFutures);
    let ratio_to = |i: usize, b: usize| {
        let mut ratios: Vec<f64> = per_sec[i]
            .iter()
            .zip(&per_sec[b])
            .map(|(x, base)| x / base)
            .collect();
        median(&mut ratios)
    };
    let mut rows = Vec::with_capacity(contenders.len());
    for (i, &contender) in contenders.iter().enumerate() {
        let ratio = baseline.map(|b| ratio_to(i, b));
        let mut rounds = per_sec[i].clone();
        let per_commit_us = |cpu: Duration| cpu.as_secs_f64() * 1e6 / commits[i].max(1) as f64;
        rows.push(Row {
            callers,
            contender,
            median_per_sec: median(&mut rounds),
            min_per_sec: rounds[0],
            max_per_sec: rounds[rounds.len() - 1],
            p50_us: quantile_us(&mut latencies[i], 0.50),
            p99_us: quantile_us(&mut latencies[i], 0.99),
            client_cpu_us: per_commit_us(cpu[i].0),
            server_cpu_us: per_commit_us(cpu[i].1),
            engine_cpu_us: matches!(
                contender,
                Contender::Slotline | Contender::SlotlineAsync | Contender::SlotlineBatch
            )
            .then(|| per_commit_us(cpu[i].2)),
            ratio,
            batch_ratio: (contender == Contender::SlotlineBatch)
                .then_some(batch_baseline)
                .flatten()
                .map(|b| ratio_to(i, b)),
            errors: errors[i],
        });
    }
    rows
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| callers | id | commits/s (median) | min–max | p50 µs | p99 µs | × redis-rs async | \
         CPU µs/commit: client | engine | servers | errors |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = r
            .ratio
            .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {} | `{}` | {:.0}k | {:.0}k–{:.0}k | {:.0} | {:.0} | {} | {:.1} | {} | {:.1} | {} |",
            r.callers,
            r.contender.id(),
            r.median_per_sec / 1e3,
            r.min_per_sec / 1e3,
            r.max_per_sec / 1e3,
            r.p50_us,
            r.p99_us,
            ratio,
            r.client_cpu_us,
            r.engine_cpu_us
                .map_or_else(|| "–".to_owned(), |e| format!("{e:.2}")),
            r.server_cpu_us,
            r.errors,
        );
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (use the env knobs).
    let settings = Settings::from_env();
    let wall = Instant::now();
    let max_callers = settings.callers.iter().copied().max().unwrap_or(1);
    println!(
        "client_commit: {} round(s) × {:?} per contender per caller count, callers {:?}, \
         contenders {:?}",
        settings.rounds,
        settings.round,
        settings.callers,
        settings
            .contenders
            .iter()
            .map(|c| c.id())
            .collect::<Vec<_>>(),
    );

    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "CPU: {cpu_model}, {} logical cores",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let cluster = LocalCluster::start().expect("start the local Redis Cluster");
    let mut config: Config = cluster.config();
    config.shard_config.total_shards = settings.total_shards;
    config.batching.max_batch = settings.max_batch;
    config.batching.pipeline_depth = settings.pipeline_depth;
    config.redis_pool.io_threads = settings.io_threads;
    // No caller may lose a write to eviction while measuring: wait for room instead.
    config.backpressure.fallback_strategy = FallbackStrategy::Block;
    println!(
        "cluster up in {:?}; slotline config: total_shards {}, ring_buffer_capacity {}, \
         max_batch {}, pipeline_depth {}, io_threads {}, p95_budget {:?}, ack.replicas {}, \
         fallback {:?}",
        cluster.startup_time(),
        config.shard_config.total_shards,
        config.shard_config.ring_buffer_capacity,
        config.batching.max_batch,
        config.batching.pipeline_depth,
        config.io_threads(),
        config.batching.p95_budget,
        config.ack.replicas,
        config.backpressure.fallback_strategy,
    );

    let urls: Vec<String> = cluster
        .seed_addrs()
        .iter()
        .map(|a| format!("redis://{}:{}", a.host(), a.port()))
        .collect();
    let redis_client = ClusterClient::new(urls).expect("redis-rs cluster client");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let redis_async = rt
        .block_on(redis_client.get_async_connection())
        .expect("redis-rs async cluster connection");
    let redis_sync = (0..max_callers)
        .map(|_| {
            Mutex::new(
                redis_client
                    .get_connection()
                    .expect("redis-rs sync cluster connection"),
            )
        })
        .collect();
    let slotline = Arc::new(Client::connect(config).expect("slotline client"));
    let cpu = CpuMeter {
        servers: cluster
            .nodes()
            .iter()
            .filter_map(|n| n.pid.map(|pid| pid.to_string()))
            .collect(),
    };
    let bench = Bench {
        rt,
        slotline,
        redis_sync,
        redis_async,
        cpu,
    };
    bench.sanity_check(&Contender::ALL);

    let mut rows = Vec::new();
    for &callers in &settings.callers {
        let started = Instant::now();
        let new = measure(&bench, &settings, callers);
        println!(
            "\n{callers} caller(s), {:.1} s",
            started.elapsed().as_secs_f64()
        );
        print!("{}", markdown(&new));
        for r in new.iter().filter_map(|r| r.batch_ratio) {
            println!(
                "commit_batch of {BATCH} SETs vs redis-rs {BATCH} concurrent futures, {callers} \
                 caller(s): {r:.2}x SETs/s (median of per-round ratios)"
            );
        }
        rows.extend(new);
    }
    let total = bench.slotline.metrics().total;
    println!(
        "\nslotline metrics: {} commits, {} rejections, {} drops, {} timeouts, {} moved",
        total.commits, total.rejections, total.drops, total.timeouts, total.moved
    );
    println!("\nall caller counts:\n{}", markdown(&rows));
    println!("wall time {:.1} s", wall.elapsed().as_secs_f64());
}
