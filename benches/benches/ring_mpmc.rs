//! slotline's ring against crossbeam's `ArrayQueue`, concurrent-queue, `sync_channel`,
//! `Mutex<VecDeque>` and (SPSC only) rtrb: capacity 1024, `u64` items.
//!
//! Modes:
//! * `cargo bench -p slotline-bench --bench ring_mpmc` runs criterion groups (`one_thread`,
//!   `spsc`, `mpmc_2p2c`, `mpmc_4p4c`, `spsc_batch`), one id per peer;
//! * `cargo bench -p slotline-bench --bench ring_mpmc -- --ab [rounds]` runs interleaved A/B
//!   rounds (see `slotline_bench::ab`) and prints the median per-round speedup of every peer
//!   over `ArrayQueue`, with an `ArrayQueue` control. On a noisy shared host only these ratios
//!   mean anything;
//! * `-- --fill [rounds]` shows the regime each kind of SPSC consumer puts the ring in (rate,
//!   fill level, pushes that found it full), and `-- --instr batch|one|single|aq|rtrb` runs a
//!   one-thread loop for `valgrind --tool=callgrind` instruction counts.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_queue::ConcurrentQueue;
use criterion::{criterion_group, BenchmarkGroup, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use slotline_bench::ab::{interleaved, timed_threads, Contender};
use slotline_ring::Ring;

const CAP: usize = 1024;
/// Items moved per multi-threaded run.
const ITEMS: u64 = 200_000;
/// Push+pop pairs per one-thread run.
const PAIRS: u64 = 1_000_000;
/// The batch consumer's `max`.
const BATCH: usize = 64;

/// The operations every peer offers, as the benchmark uses them.
trait Queue: Sync {
    fn push(&self, v: u64) -> bool;
    fn pop(&self) -> Option<u64>;
}

impl Queue for Ring<u64> {
    #[inline]
    fn push(&self, v: u64) -> bool {
        self.try_push(v).is_ok()
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        self.try_pop()
    }
}

impl Queue for ArrayQueue<u64> {
    #[inline]
    fn push(&self, v: u64) -> bool {
        ArrayQueue::push(self, v).is_ok()
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        ArrayQueue::pop(self)
    }
}

impl Queue for ConcurrentQueue<u64> {
    #[inline]
    fn push(&self, v: u64) -> bool {
        ConcurrentQueue::push(self, v).is_ok()
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        ConcurrentQueue::pop(self).ok()
    }
}

/// `Mutex<VecDeque>` bounded by hand.
struct Locked(Mutex<VecDeque<u64>>);

impl Queue for Locked {
    fn push(&self, v: u64) -> bool {
        let mut q = self.0.lock().unwrap();
        if q.len() < CAP {
            q.push_back(v);
            true
        } else {
            false
        }
    }
    fn pop(&self) -> Option<u64> {
        self.0.lock().unwrap().pop_front()
    }
}

/// `sync_channel`; consumers share the receiver behind a mutex.
struct Channel(SyncSender<u64>, Mutex<Receiver<u64>>);

impl Queue for Channel {
    fn push(&self, v: u64) -> bool {
        self.0.try_send(v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        self.1.lock().unwrap().try_recv().ok()
    }
}

fn channel() -> Channel {
    let (tx, rx) = sync_channel(CAP);
    Channel(tx, Mutex::new(rx))
}

fn locked() -> Locked {
    Locked(Mutex::new(VecDeque::with_capacity(CAP)))
}

/// What a worker does after a failed push or pop: spin a little, then let others run (the
/// same for every peer, so it is part of the workload, not of the queue).
#[inline]
fn wait(fails: &mut u32) {
    *fails += 1;
    if *fails < 64 {
        std::hint::spin_loop();
    } else {
        *fails = 0;
        thread::yield_now();
    }
}

/// `n` push+pop pairs on one thread; returns the time per pair.
fn one_thread<Q: Queue>(q: &Q, n: u64) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        black_box(q.push(black_box(i)));
        black_box(q.pop());
    }
    start.elapsed()
}

/// `producers` threads push `items` values in all, `consumers` threads pop them; checks the
/// sum so a broken queue cannot look fast.
fn transfer<Q: Queue>(q: &Q, producers: usize, consumers: usize, items: u64) -> Duration {
    let per_producer = items / producers as u64;
    let per_consumer = items / consumers as u64;
    assert_eq!(
        per_producer * producers as u64,
        per_consumer * consumers as u64
    );
    let (time, sums) = timed_threads(producers + consumers, |i| {
        let mut fails = 0;
        if i < producers {
            let base = i as u64 * per_producer;
            for v in base..base + per_producer {
                while !q.push(v) {
                    wait(&mut fails);
                }
            }
            0
        } else {
            let mut sum = 0u64;
            for _ in 0..per_consumer {
                loop {
                    if let Some(v) = q.pop() {
                        sum += v;
                        break;
                    }
                    wait(&mut fails);
                }
            }
            sum
        }
    });
    let total = per_producer * producers as u64;
    assert_eq!(
        sums.iter().sum::<u64>(),
        total * (total - 1) / 2,
        "items lost"
    );
    time
}

/// Counts and sums what `pop_batch` hands over, without storing it.
#[derive(Default)]
struct Sink {
    count: u64,
    sum: u64,
}

impl Extend<u64> for Sink {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        for v in iter {
            self.count += 1;
            self.sum += v;
        }
    }
}

/// A batch under this many items means the consumer is at its producer's heels.
const SHORT: usize = 8;
/// `spin_loop` hints a backing-off consumer spends after a short batch.
const SLIP: u32 = 32;

/// How an SPSC consumer takes its items.
#[derive(Clone, Copy, Debug)]
enum Consumer {
    /// `try_pop`, one item per call.
    Single,
    /// `pop_batch(max)`, taking whatever is ready.
    Batch(usize),
    /// `pop_batch(BATCH)`, then `SLIP` spin hints after a batch of fewer than `SHORT` items,
    /// so that it stops reading the cache line its producer is writing (see RESULTS: a
    /// consumer that takes every item as it appears halves its producer's rate).
    Slipping,
}

/// What one SPSC run measured.
struct SpscRun {
    time: Duration,
    /// The mean fill level the producer saw, sampled every 1,024 pushes (only when probing).
    fill: f64,
    /// How many pushes found the ring full.
    fulls: u64,
}

/// SPSC through the ring with the given consumer; with `probe`, the producer also samples the
/// fill level (one `len` per 1,024 pushes).
fn spsc_with(ring: &Ring<u64>, items: u64, consumer: Consumer, probe: bool) -> SpscRun {
    let (time, results) = timed_threads(2, |i| {
        let mut fails = 0;
        if i == 0 {
            let (mut fill, mut samples, mut fulls) = (0usize, 0usize, 0u64);
            for v in 0..items {
                if probe && v % 1024 == 0 {
                    fill += ring.len();
                    samples += 1;
                }
                while ring.try_push(v).is_err() {
                    fulls += 1;
                    wait(&mut fails);
                }
            }
            (0, fill as f64 / samples.max(1) as f64, fulls)
        } else {
            let mut sink = Sink::default();
            while sink.count < items {
                let got = match consumer {
                    Consumer::Single => ring.try_pop().map_or(0, |v| {
                        sink.extend([v]);
                        1
                    }),
                    Consumer::Batch(max) => ring.pop_batch(max, &mut sink),
                    Consumer::Slipping => ring.pop_batch(BATCH, &mut sink),
                };
                match got {
                    0 => wait(&mut fails),
                    n if matches!(consumer, Consumer::Slipping) && n < SHORT => {
                        (0..SLIP).for_each(|_| std::hint::spin_loop());
                    }
                    _ => {}
                }
            }
            (sink.sum, 0.0, 0)
        }
    });
    assert_eq!(results[1].0, items * (items - 1) / 2, "items lost");
    SpscRun {
        time,
        fill: results[0].1,
        fulls: results[0].2,
    }
}

/// SPSC where the consumer takes up to `BATCH` items per `pop_batch`, greedy or slipping.
fn spsc_batch(ring: &Ring<u64>, items: u64, slip: bool) -> Duration {
    let consumer = if slip {
        Consumer::Slipping
    } else {
        Consumer::Batch(BATCH)
    };
    spsc_with(ring, items, consumer, false).time
}

/// `--fill [rounds]`: for each kind of SPSC consumer, the median rate, the median fill level
/// the producer saw and the median count of pushes that found the ring full, over `rounds`
/// runs: which regime each consumer puts the ring in.
fn fill_probe(rounds: usize) {
    println!(
        "# ring_mpmc fill probe on {} ({} CPUs), {rounds} rounds of {ITEMS} items, capacity {CAP}",
        cpu_model(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| consumer | median Mitems/s | median fill seen by the producer | median pushes that found it full |");
    println!("|---|---|---|---|");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for consumer in [
        Consumer::Single,
        Consumer::Batch(BATCH),
        Consumer::Slipping,
        Consumer::Batch(4),
    ] {
        let runs: Vec<SpscRun> = (0..rounds.max(1))
            .map(|_| spsc_with(&fresh_ring(), ITEMS, consumer, true))
            .collect();
        println!(
            "| {consumer:?} | {:.0} | {:.1} | {:.0} |",
            median(
                runs.iter()
                    .map(|r| ITEMS as f64 / r.time.as_secs_f64() / 1e6)
                    .collect()
            ),
            median(runs.iter().map(|r| r.fill).collect()),
            median(runs.iter().map(|r| r.fulls as f64).collect()),
        );
    }
}

/// `--instr KIND`: one thread moving 640,000 items through a ring of `CAP`, for an
/// instruction count (`valgrind --tool=callgrind`): `batch` is `push_slice(64)` +
/// `pop_batch(64)`, `one` is `try_push` + a `pop_batch(64)` that finds one item, `single` is
/// `try_push` + `try_pop`, `aq` is `ArrayQueue`'s push + pop on the `single` loop, `rtrb` is
/// rtrb's chunks of 64 on the `batch` loop. Prints the sum so that nothing is optimised away.
fn instr(kind: &str) {
    const N: u64 = 640_000;
    let ring = fresh_ring();
    let mut sink = Sink::default();
    match kind {
        "batch" => {
            let mut chunk = [0u64; BATCH];
            for r in 0..N / BATCH as u64 {
                for (k, v) in chunk.iter_mut().enumerate() {
                    *v = r * BATCH as u64 + k as u64;
                }
                assert_eq!(ring.push_slice(black_box(&chunk)), BATCH);
                assert_eq!(ring.pop_batch(BATCH, &mut sink), BATCH);
            }
        }
        "one" => {
            for i in 0..N {
                ring.try_push(black_box(i)).unwrap();
                assert_eq!(ring.pop_batch(BATCH, &mut sink), 1);
            }
        }
        "single" => {
            for i in 0..N {
                ring.try_push(black_box(i)).unwrap();
                sink.extend(ring.try_pop());
            }
        }
        "aq" => {
            // The one-thread row's baseline on the `single` loop: `ArrayQueue` push + pop.
            let aq = fresh_array_queue();
            for i in 0..N {
                aq.push(black_box(i)).unwrap();
                sink.extend(aq.pop());
            }
        }
        "rtrb" => {
            // The moonshot's peer on the same loop: rtrb's chunks of `BATCH` on both sides.
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAP);
            for r in 0..N / BATCH as u64 {
                let base = r * BATCH as u64;
                let chunk = tx.write_chunk_uninit(BATCH).expect("room for a chunk");
                assert_eq!(chunk.fill_from_iter(base..base + BATCH as u64), BATCH);
                sink.extend(rx.read_chunk(BATCH).expect("a chunk to read"));
            }
        }
        other => panic!("--instr batch|one|single|aq|rtrb, not `{other}`"),
    }
    assert_eq!(sink.count, N);
    println!("{}", sink.sum);
}

/// `producers` threads push with `push_slice` (up to `BATCH` at a time), `consumers` threads
/// take with `pop_batch(BATCH)`: batches on both sides.
fn batch_transfer(ring: &Ring<u64>, producers: usize, consumers: usize, items: u64) -> Duration {
    let per_producer = items / producers as u64;
    assert_eq!(per_producer * producers as u64, items);
    // Items taken so far by all consumers: they stop when it reaches `items`.
    let taken = AtomicU64::new(0);
    let (time, sums) = timed_threads(producers + consumers, |i| {
        let mut fails = 0;
        if i < producers {
            let base = i as u64 * per_producer;
            let mut chunk = [0u64; BATCH];
            let mut next = base;
            let end = base + per_producer;
            while next < end {
                let n = (end - next).min(BATCH as u64) as usize;
                for (k, v) in chunk[..n].iter_mut().enumerate() {
                    *v = next + k as u64;
                }
                let mut sent = 0;
                while sent < n {
                    let pushed = ring.push_slice(&chunk[sent..n]);
                    if pushed == 0 {
                        wait(&mut fails);
                    }
                    sent += pushed;
                }
                next += n as u64;
            }
            (0, 0)
        } else {
            let mut sink = Sink::default();
            loop {
                let got = ring.pop_batch(BATCH, &mut sink);
                if got == 0 {
                    if taken.load(Relaxed) >= items {
                        break;
                    }
                    wait(&mut fails);
                } else {
                    taken.fetch_add(got as u64, Relaxed);
                }
            }
            (sink.count, sink.sum)
        }
    });
    let (count, sum) = sums
        .iter()
        .fold((0, 0), |(c, s), &(c2, s2)| (c + c2, s + s2));
    assert_eq!((count, sum), (items, items * (items - 1) / 2), "items lost");
    time
}

/// SPSC through rtrb with its chunk API, up to `BATCH` items per chunk on both sides.
fn rtrb_chunks(items: u64) -> Duration {
    let (tx, rx) = rtrb::RingBuffer::<u64>::new(CAP);
    let (tx, rx) = (Mutex::new(Some(tx)), Mutex::new(Some(rx)));
    let (time, sums) = timed_threads(2, |i| {
        let mut fails = 0;
        if i == 0 {
            let mut tx = tx.lock().unwrap().take().unwrap();
            let mut next = 0u64;
            while next < items {
                let n = tx.slots().min(BATCH).min((items - next) as usize);
                if n == 0 {
                    wait(&mut fails);
                    continue;
                }
                let chunk = tx.write_chunk_uninit(n).expect("slots() said so");
                let written = chunk.fill_from_iter(next..next + n as u64);
                next += written as u64;
            }
            0
        } else {
            let mut rx = rx.lock().unwrap().take().unwrap();
            let (mut count, mut sum) = (0u64, 0u64);
            while count < items {
                let n = rx.slots().min(BATCH);
                if n == 0 {
                    wait(&mut fails);
                    continue;
                }
                for v in rx.read_chunk(n).expect("slots() said so") {
                    count += 1;
                    sum += v;
                }
            }
            sum
        }
    });
    assert_eq!(sums[1], items * (items - 1) / 2, "items lost");
    time
}

/// SPSC through rtrb's split producer and consumer.
fn rtrb_spsc(items: u64) -> Duration {
    let (tx, rx) = rtrb::RingBuffer::<u64>::new(CAP);
    let (tx, rx) = (Mutex::new(Some(tx)), Mutex::new(Some(rx)));
    let (time, sums) = timed_threads(2, |i| {
        let mut fails = 0;
        if i == 0 {
            let mut tx = tx.lock().unwrap().take().unwrap();
            for v in 0..items {
                while tx.push(v).is_err() {
                    wait(&mut fails);
                }
            }
            0
        } else {
            let mut rx = rx.lock().unwrap().take().unwrap();
            let mut sum = 0;
            for _ in 0..items {
                loop {
                    if let Ok(v) = rx.pop() {
                        sum += v;
                        break;
                    }
                    wait(&mut fails);
                }
            }
            sum
        }
    });
    assert_eq!(sums[1], items * (items - 1) / 2, "items lost");
    time
}

/// Checks every peer moves items before anything is timed.
fn sanity() {
    fn check<Q: Queue>(q: Q, name: &str) {
        assert!(q.push(1) && q.push(2), "{name}: push");
        assert_eq!(
            (q.pop(), q.pop(), q.pop()),
            (Some(1), Some(2), None),
            "{name}: pop"
        );
        transfer(&q, 2, 2, 10_000);
    }
    check(Ring::new(CAP), "ring");
    check(ArrayQueue::new(CAP), "ArrayQueue");
    check(ConcurrentQueue::bounded(CAP), "concurrent-queue");
    check(locked(), "Mutex<VecDeque>");
    check(channel(), "sync_channel");
    spsc_batch(&Ring::new(CAP), 10_000, false);
    spsc_batch(&Ring::new(CAP), 10_000, true);
    batch_transfer(&Ring::new(CAP), 1, 1, 10_000);
    batch_transfer(&Ring::new(CAP), 2, 2, 10_000);
    rtrb_spsc(10_000);
    rtrb_chunks(10_000);
}

/// Fresh queues per run, so no run inherits another's cache state or indices.
fn fresh_ring() -> Ring<u64> {
    Ring::new(CAP)
}

fn fresh_array_queue() -> ArrayQueue<u64> {
    ArrayQueue::new(CAP)
}

fn fresh_concurrent_queue() -> ConcurrentQueue<u64> {
    ConcurrentQueue::bounded(CAP)
}

// ---------------------------------------------------------------------------------------------
// Criterion groups
// ---------------------------------------------------------------------------------------------

fn bench_transfer<Q: Queue>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    make: impl Fn() -> Q,
    producers: usize,
    consumers: usize,
) {
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| transfer(&make(), producers, consumers, ITEMS))
                .sum()
        });
    });
}

fn transfer_group(c: &mut Criterion, name: &str, producers: usize, consumers: usize) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    bench_transfer(
        &mut group,
        "0-slotline-ring",
        fresh_ring,
        producers,
        consumers,
    );
    bench_transfer(
        &mut group,
        "1-crossbeam-arrayqueue",
        fresh_array_queue,
        producers,
        consumers,
    );
    bench_transfer(
        &mut group,
        "2-concurrent-queue",
        fresh_concurrent_queue,
        producers,
        consumers,
    );
    bench_transfer(&mut group, "3-sync-channel", channel, producers, consumers);
    bench_transfer(&mut group, "4-mutex-vecdeque", locked, producers, consumers);
    if producers == 1 && consumers == 1 {
        group.bench_function("5-rtrb", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rtrb_spsc(ITEMS)).sum());
        });
    }
    group.finish();
}

fn one_thread_group(c: &mut Criterion) {
    sanity();
    let mut group = c.benchmark_group("one_thread");
    group.throughput(Throughput::Elements(1));
    let ring = fresh_ring();
    group.bench_function("0-slotline-ring", |b| {
        b.iter_custom(|n| one_thread(&ring, n))
    });
    let aq = fresh_array_queue();
    group.bench_function("1-crossbeam-arrayqueue", |b| {
        b.iter_custom(|n| one_thread(&aq, n))
    });
    let cq = fresh_concurrent_queue();
    group.bench_function("2-concurrent-queue", |b| {
        b.iter_custom(|n| one_thread(&cq, n))
    });
    let ch = channel();
    group.bench_function("3-sync-channel", |b| b.iter_custom(|n| one_thread(&ch, n)));
    let lk = locked();
    group.bench_function("4-mutex-vecdeque", |b| {
        b.iter_custom(|n| one_thread(&lk, n))
    });
    group.finish();
}

fn spsc_group(c: &mut Criterion) {
    transfer_group(c, "spsc", 1, 1);
}

fn mpmc_2p2c_group(c: &mut Criterion) {
    transfer_group(c, "mpmc_2p2c", 2, 2);
}

fn mpmc_4p4c_group(c: &mut Criterion) {
    transfer_group(c, "mpmc_4p4c", 4, 4);
}

fn spsc_batch_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_batch");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("0-slotline-ring-pop-batch-64", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| spsc_batch(&fresh_ring(), ITEMS, false))
                .sum()
        });
    });
    bench_transfer(
        &mut group,
        "1-crossbeam-arrayqueue-single-pops",
        fresh_array_queue,
        1,
        1,
    );
    group.finish();
}

criterion_group!(
    benches,
    one_thread_group,
    spsc_group,
    mpmc_2p2c_group,
    mpmc_4p4c_group,
    spsc_batch_group
);

// ---------------------------------------------------------------------------------------------
// Interleaved A/B rounds
// ---------------------------------------------------------------------------------------------

fn report(
    scenario: &str,
    target: &str,
    unit: impl Fn(Duration) -> String,
    rounds: usize,
    mut contenders: Vec<Contender<'_>>,
) {
    let summaries = interleaved(rounds, &mut contenders);
    println!("\n## {scenario}  ({rounds} rounds; speedup = ArrayQueue time / contender time; target: {target})");
    println!("| contender | median speedup | IQR | median round | throughput |");
    println!("|---|---|---|---|---|");
    for s in summaries {
        println!(
            "| {} | {:.2}x | {:.2}-{:.2} | {:.2?} | {} |",
            s.name,
            s.median_speedup,
            s.quartiles.0,
            s.quartiles.1,
            s.median_time,
            unit(s.median_time)
        );
    }
}

/// The CPU the figures come from, as `/proc/cpuinfo` names it.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// The baseline every transfer scenario is measured against (`ArrayQueue` with single ops,
/// `p` producers and `c` consumers) and a second copy of it, the control that shows the noise.
fn array_queue_baseline(p: usize, c: usize) -> Vec<Contender<'static>> {
    vec![
        Contender::new("crossbeam ArrayQueue (baseline)", move || {
            transfer(&fresh_array_queue(), p, c, ITEMS)
        }),
        Contender::new("ArrayQueue control", move || {
            transfer(&fresh_array_queue(), p, c, ITEMS)
        }),
    ]
}

fn ab(rounds: usize, only: Option<&str>) {
    sanity();
    println!(
        "# ring_mpmc A/B on {} ({} CPUs)",
        cpu_model(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mitems = |items: u64| {
        move |t: Duration| format!("{:.1} Mitems/s", items as f64 / t.as_secs_f64() / 1e6)
    };
    let per_pair = |t: Duration| format!("{:.2} ns/pair", t.as_secs_f64() * 1e9 / PAIRS as f64);
    let run = |name: &str| only.is_none_or(|o| name.contains(o));

    if run("one_thread") {
        let (ring, aq, aq2, cq) = (
            fresh_ring(),
            fresh_array_queue(),
            fresh_array_queue(),
            fresh_concurrent_queue(),
        );
        report(
            "one_thread push+pop",
            "ring time <= 1.05x ArrayQueue, i.e. speedup >= 0.95",
            per_pair,
            rounds,
            vec![
                Contender::new("crossbeam ArrayQueue (baseline)", || one_thread(&aq, PAIRS)),
                Contender::new("ArrayQueue control", || one_thread(&aq2, PAIRS)),
                Contender::new("slotline Ring", || one_thread(&ring, PAIRS)),
                Contender::new("concurrent-queue", || one_thread(&cq, PAIRS)),
            ],
        );
    }
    for (scenario, p, c, target) in [
        ("spsc", 1, 1, ">= 1.3x"),
        ("mpmc_2p2c", 2, 2, ">= 1.2x"),
        (
            "mpmc_4p4c",
            4,
            4,
            ">= 1.5x (oversubscribed: 8 threads, 2 cores)",
        ),
    ] {
        if !run(scenario) {
            continue;
        }
        let mut contenders = array_queue_baseline(p, c);
        contenders.extend([
            Contender::new("slotline Ring", move || {
                transfer(&fresh_ring(), p, c, ITEMS)
            }),
            Contender::new("concurrent-queue", move || {
                transfer(&fresh_concurrent_queue(), p, c, ITEMS)
            }),
            Contender::new("std sync_channel", move || {
                transfer(&channel(), p, c, ITEMS)
            }),
            Contender::new("Mutex<VecDeque>", move || transfer(&locked(), p, c, ITEMS)),
        ]);
        if p == 1 && c == 1 {
            contenders.push(Contender::new("rtrb (SPSC only)", || rtrb_spsc(ITEMS)));
        }
        report(scenario, target, mitems(ITEMS), rounds, contenders);
    }
    if run("spsc_batch") {
        report(
            "spsc_batch: ring consumer pop_batch(64) vs ArrayQueue single pops",
            ">= 2x",
            mitems(ITEMS),
            rounds,
            array_queue_baseline(1, 1)
                .into_iter()
                .chain([
                    Contender::new("slotline Ring, pop_batch(64)", || {
                        spsc_batch(&fresh_ring(), ITEMS, false)
                    }),
                    Contender::new(
                        "slotline Ring, pop_batch(64), 32 spins after a batch under 8",
                        || spsc_batch(&fresh_ring(), ITEMS, true),
                    ),
                    Contender::new("slotline Ring, single pops", || {
                        transfer(&fresh_ring(), 1, 1, ITEMS)
                    }),
                ])
                .collect(),
        );
    }
    for (scenario, p, c) in [("batch_spsc", 1, 1), ("batch_2p2c", 2, 2)] {
        if !run(scenario) {
            continue;
        }
        let mut contenders = array_queue_baseline(p, c);
        contenders.push(Contender::new(
            "slotline Ring, push_slice(64) + pop_batch(64)",
            move || batch_transfer(&fresh_ring(), p, c, ITEMS),
        ));
        if p == 1 {
            contenders.push(Contender::new(
                "rtrb chunks of 64 (SPSC only; the moonshot: Ring >= this)",
                || rtrb_chunks(ITEMS),
            ));
        }
        report(
            &format!("{scenario}: batches of 64 on both sides vs ArrayQueue single ops"),
            ">= 3x",
            mitems(ITEMS),
            rounds,
            contenders,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|at| args.get(at + 1).map(String::as_str))
    };
    if let Some(rounds) = after("--fill") {
        fill_probe(rounds.and_then(|r| r.parse().ok()).unwrap_or(31));
        return;
    }
    if let Some(kind) = after("--instr") {
        instr(kind.unwrap_or("batch"));
        return;
    }
    if let Some(rounds) = after("--ab") {
        let rounds = rounds.and_then(|r| r.parse().ok()).unwrap_or(31);
        ab(rounds, after("--only").flatten());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
