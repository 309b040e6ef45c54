//! Interleaved A/B rounds: the way to compare implementations on a noisy, shared machine.
//!
//! On a host where the cross-core round trip flips between ~50 ns and ~400 ns within seconds,
//! one long run of A followed by one long run of B measures the weather. Instead, run many
//! short rounds; in each round every contender runs once, the order rotating from round to
//! round so that each goes first equally often; divide within the round; report the median of
//! the per-round ratios. A baseline-versus-itself control in the same rounds shows how much of
//! a ratio is noise.
//!
//! Multi-threaded runs are timed inside the workers: every worker reads the clock after a
//! shared [`Barrier`] and again when it is done, and the run lasts from the earliest start to the
//! latest stop. With more threads than cores, a clock on the spawning thread would start after
//! some workers had already begun (or finish before the last one is scheduled).

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `work(0..threads)` on `threads` scoped threads released together by a barrier; returns
/// the span from the earliest worker start to the latest worker stop, and the workers' results.
pub fn timed_threads<R, F>(threads: usize, work: F) -> (Duration, Vec<R>)
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant, R)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let result = work(i);
                    (start, Instant::now(), result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark worker panicked"))
            .collect()
    });
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let stop = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    (stop - start, spans.into_iter().map(|s| s.2).collect())
}

/// One implementation in a comparison: a name and a closure that runs one round's workload
/// and returns its duration.
pub struct Contender<'a> {
    /// Printed in the report.
    pub name: String,
    /// Runs the workload once.
    pub run: Box<dyn FnMut() -> Duration + 'a>,
}

impl<'a> Contender<'a> {
    /// A contender named `name` running `run`.
    pub fn new(name: impl Into<String>, run: impl FnMut() -> Duration + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// The outcome of one contender over all rounds.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The contender's name.
    pub name: String,
    /// Median of the per-round `baseline time / contender time` (above 1: faster).
    pub median_speedup: f64,
    /// The 25th and 75th percentile of that ratio.
    pub quartiles: (f64, f64),
    /// Median duration of one round.
    pub median_time: Duration,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs `rounds` rounds of all `contenders` (the first is the baseline), rotating the order each
/// round, and summarises each contender against the baseline of the same round.
///
/// # Panics
///
/// Panics if `contenders` is empty or `rounds` is zero.
pub fn interleaved(rounds: usize, contenders: &mut [Contender<'_>]) -> Vec<Summary> {
    assert!(!contenders.is_empty() && rounds > 0);
    let k = contenders.len();
    let mut times = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        let mut this_round = vec![Duration::ZERO; k];
        for step in 0..k {
            // Rotate, and reverse every other round, so each contender runs in every slot.
            let i = if round % 2 == 0 {
                (round / 2 + step) % k
            } else {
                (round / 2 + k - 1 - step) % k
            };
            this_round[i] = (contenders[i].run)();
        }
        for (i, t) in this_round.into_iter().enumerate() {
            times[i].push(t);
        }
    }
    contenders
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut ratios: Vec<f64> = (0..rounds)
                .map(|r| times[0][r].as_secs_f64() / times[i][r].as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            let mut secs: Vec<f64> = times[i].iter().map(Duration::as_secs_f64).collect();
            secs.sort_by(f64::total_cmp);
            Summary {
                name: c.name.clone(),
                median_speedup: median(&ratios),
                quartiles: (ratios[rounds / 4], ratios[(3 * rounds) / 4]),
                median_time: Duration::from_secs_f64(median(&secs)),
            }
        })
        .collect()
}
