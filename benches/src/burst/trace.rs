//! Traces: when each write is offered, to which key, with how many bytes.
//!
//! A trace is a list of [`Event`]s sorted by time. It is either generated from a [`TraceSpec`]
//! (seeded, so the same spec gives the same trace on the same build) or read from a CSV file
//! of `t_us,key,bytes` rows ([`Trace::read_csv`]), the format [`Trace::write_csv`] records.
//!
//! # The heavy-tailed arrival process
//!
//! Production write traffic is not Poisson: it idles at a base rate and then bursts. The
//! generator models the rate as a piecewise-constant function on 1 ms bins:
//!
//! 1. **Base.** A fraction [`BASE_SHARE`] of all writes arrives at a base rate that wanders
//!    slowly (a log-normal factor per 100 ms, σ = 0.3).
//! 2. **Bursts.** The other writes arrive in bursts. Burst lengths are log-normal (median
//!    150 ms, σ = 0.7, clamped to 20 ms..2 s); the quiet gaps between bursts are exponential,
//!    sized so that bursts cover `(1 - BASE_SHARE) / burst_factor` of the time. Each burst's
//!    height is Pareto-distributed (shape 1.5, clamped at 8× the smallest): a heavy tail, so a
//!    few bursts are much taller than the rest.
//! 3. **Normalise.** Heights are scaled so that the bursts carry exactly their share of
//!    `rate × duration`; the mean rate of the realised schedule is then `rate`, and the mean
//!    rate inside bursts is `burst_factor × rate`.
//!
//! Arrivals inside each 1 ms bin are Poisson with that bin's rate, at uniform times within the
//! bin. With `burst_factor = 10` the 10 ms-binned rate has a standard deviation of about 3×
//! its mean; the story's production traffic had 5× (mean 100k/s, std dev 500k/s). The
//! [`Shape::Poisson`] trace of the same mean is the chaos-test traffic the story contrasts it
//! with: its binned standard deviation is only Poisson noise.
//!
//! # Keys and values
//!
//! Keys are per user, `geo:{user<id>}`, with a Zipf popularity (exponent `zipf_s`, 1.0 by
//! default): user 0 is the hottest. Each event carries a payload size (40..=72 bytes, a small
//! location update); the replay builds a unique value of that size per write.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Pareto, Poisson, Zipf};

/// Share of writes that arrive at the base rate; the rest arrive in bursts.
pub const BASE_SHARE: f64 = 0.3;
/// Width of one rate bin of the generator, in microseconds.
const BIN_US: u64 = 1_000;
/// Largest payload a trace may ask for (1 MiB).
pub const MAX_BYTES: u32 = 1 << 20;

/// One offered write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it is offered, in microseconds from the start of the replay.
    pub t_us: u64,
    /// Index into [`Trace::keys`].
    pub key: u32,
    /// Payload size in bytes.
    pub bytes: u32,
}

/// The shape of a generated trace's arrival rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// On/off bursts with Pareto heights over a wandering base (see the module docs).
    Heavy {
        /// Mean rate inside bursts as a multiple of the overall mean rate (> 1).
        burst_factor: f64,
    },
    /// A homogeneous Poisson process: the constant-rate test traffic.
    Poisson,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSpec {
    /// Length of the trace.
    pub duration: Duration,
    /// Mean offered rate, writes per second.
    pub rate: f64,
    /// Arrival process.
    pub shape: Shape,
    /// RNG seed: the same spec and seed give the same trace.
    pub seed: u64,
    /// Distinct users (keys).
    pub users: u32,
    /// Zipf exponent of user popularity (0 = uniform).
    pub zipf_s: f64,
}

/// A sorted list of offered writes and the keys they write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// A short name for reports (`heavy`, `poisson`, or the file name).
    pub name: String,
    /// The keys, indexed by [`Event::key`].
    pub keys: Vec<String>,
    /// The events, sorted by `t_us`.
    pub events: Vec<Event>,
}

/// The binned rate of a trace, summarised.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateStats {
    /// Width of one bin, milliseconds.
    pub bin_ms: u64,
    /// Events per second, averaged over the trace.
    pub mean: f64,
    /// Standard deviation of the per-bin rate, events per second.
    pub std_dev: f64,
    /// The busiest bin's rate, events per second.
    pub max: f64,
    /// 99th percentile of the per-bin rate.
    pub p99: f64,
    /// Share of all events that fall in the busiest 1 % of bins (0.01 for a flat rate).
    pub top1pct_share: f64,
}

/// A CSV trace that could not be read. Line numbers count from 1.
#[derive(Debug)]
pub enum TraceError {
    /// Reading the file failed.
    Io(io::Error),
    /// A row is malformed.
    BadRow {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A row's time is earlier than the row before it.
    Unsorted {
        /// 1-based line number.
        line: usize,
        /// This row's time.
        t_us: u64,
        /// The previous row's time.
        previous: u64,
    },
    /// The file holds no events.
    Empty,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "cannot read the trace: {e}"),
            TraceError::BadRow { line, reason } => write!(f, "line {line}: {reason}"),
            TraceError::Unsorted {
                line,
                t_us,
                previous,
            } => write!(
                f,
                "line {line}: t_us {t_us} is earlier than the previous row's {previous} \
                 (rows must be sorted by time)"
            ),
            TraceError::Empty => write!(f, "the trace holds no events"),
        }
    }
}

impl std::error::Error for TraceError {}

impl From<io::Error> for TraceError {
    fn from(e: io::Error) -> Self {
        TraceError::Io(e)
    }
}

/// The key of user `id`: `geo:{user<id>}` (the braces make the user the hash tag).
pub fn user_key(id: u32) -> String {
    format!("geo:{{user{id}}}")
}

impl TraceSpec {
    /// Generates the trace.
    ///
    /// # Panics
    ///
    /// If `rate` is not positive and finite, `users` is 0, or a heavy trace's `burst_factor`
    /// is not above 1 (the argument parser rejects all of these first).
    pub fn generate(&self) -> Trace {
        assert!(self.rate.is_finite() && self.rate > 0.0, "rate must be > 0");
        assert!(self.users > 0, "users must be > 0");
        let mut rng = StdRng::seed_from_u64(self.seed);
        let bins = (self.duration.as_micros() as u64).div_ceil(BIN_US).max(1) as usize;
        let rates = match self.shape {
            Shape::Poisson => vec![self.rate; bins],
            Shape::Heavy { burst_factor } => heavy_rates(&mut rng, bins, self.rate, burst_factor),
        };
        let zipf = Zipf::new(f64::from(self.users), self.zipf_s.max(0.0))
            .expect("users >= 1 and s >= 0 make a valid Zipf distribution");
        let mut events = Vec::with_capacity((self.rate * self.duration.as_secs_f64()) as usize);
        let end_us = self.duration.as_micros() as u64;
        let mut times = Vec::new();
        for (bin, &rate) in rates.iter().enumerate() {
            let lambda = rate * BIN_US as f64 / 1e6;
            if lambda <= 0.0 {
                continue;
            }
            let n = Poisson::new(lambda).expect("lambda > 0").sample(&mut rng) as u64;
            let start = bin as u64 * BIN_US;
            times.clear();
            times.extend((0..n).map(|_| start + rng.random_range(0..BIN_US)));
            times.sort_unstable();
            for &t_us in times.iter().filter(|&&t| t < end_us) {
                // Zipf samples 1..=users as a float.
                let user = (zipf.sample(&mut rng) as u32).clamp(1, self.users) - 1;
                let bytes = rng.random_range(40..=72);
                events.push(Event {
                    t_us,
                    key: user,
                    bytes,
                });
            }
        }
        let name = match self.shape {
            Shape::Heavy { .. } => "heavy",
            Shape::Poisson => "poisson",
        };
        Trace {
            name: name.to_owned(),
            keys: (0..self.users).map(user_key).collect(),
            events,
        }
    }
}

/// Per-bin rates of the heavy-tailed process (see the module docs).
fn heavy_rates(rng: &mut StdRng, bins: usize, rate: f64, burst_factor: f64) -> Vec<f64> {
    assert!(
        burst_factor.is_finite() && burst_factor > 1.0,
        "burst_factor must be > 1"
    );
    // Bursts cover this fraction of the time on average.
    let duty = ((1.0 - BASE_SHARE) / burst_factor).min(0.9);
    let len_dist = LogNormal::new((150.0f64).ln(), 0.7).expect("valid log-normal");
    let mean_len = 150.0 * (0.7f64 * 0.7 / 2.0).exp();
    let gap_dist = Exp::new(duty / (mean_len * (1.0 - duty))).expect("valid exponential");
    let height_dist = Pareto::new(1.0, 1.5).expect("valid Pareto");

    // The burst schedule, in bins (1 ms): (start, len, height before scaling).
    let mut bursts = Vec::new();
    let mut t = 500.0 + gap_dist.sample(rng); // a calm first half second
    while (t as usize) < bins {
        let len = len_dist.sample(rng).clamp(20.0, 2_000.0);
        let start = t as usize;
        let end = ((t + len) as usize).min(bins);
        if end > start {
            bursts.push((
                start,
                end - start,
                Distribution::<f64>::sample(&height_dist, rng).min(8.0),
            ));
        }
        t += len + gap_dist.sample(rng);
    }

    let total = rate * bins as f64; // events × (1000 / BIN_US) scale cancels below
    let burst_volume: f64 = bursts.iter().map(|&(_, len, h)| len as f64 * h).sum();
    let burst_bins: usize = bursts.iter().map(|&(_, len, _)| len).sum();
    let base_share = if burst_volume > 0.0 && burst_bins < bins {
        BASE_SHARE
    } else {
        1.0
    };

    // A slowly wandering base: one log-normal factor per 100 bins, normalised below.
    let wander = LogNormal::new(0.0, 0.3).expect("valid log-normal");
    let mut rates: Vec<f64> = Vec::with_capacity(bins);
    let mut factor = 1.0;
    for i in 0..bins {
        if i % 100 == 0 {
            factor = wander.sample(rng);
        }
        rates.push(factor);
    }
    let mut in_burst = vec![false; bins];
    for &(start, len, _) in &bursts {
        in_burst[start..start + len].fill(true);
    }
    // Base rate fills the bins outside bursts with `base_share` of the total.
    let base_weight: f64 = rates
        .iter()
        .zip(&in_burst)
        .filter(|(_, &b)| !b)
        .map(|(r, _)| r)
        .sum();
    let base_scale = if base_weight > 0.0 {
        base_share * total / base_weight
    } else {
        0.0
    };
    for (r, &b) in rates.iter_mut().zip(&in_burst) {
        *r = if b { 0.0 } else { *r * base_scale };
    }
    if base_share < 1.0 {
        let burst_scale = (1.0 - base_share) * total / burst_volume;
        for &(start, len, h) in &bursts {
            for r in &mut rates[start..start + len] {
                *r = h * burst_scale;
            }
        }
    }
    rates
}

impl Trace {
    /// Span from 0 to the last event, plus one microsecond (0 for an empty trace).
    pub fn span_us(&self) -> u64 {
        self.events.last().map_or(0, |e| e.t_us + 1)
    }

    /// The key of event `e`.
    pub fn key_of(&self, e: &Event) -> &str {
        &self.keys[e.key as usize]
    }

    /// Events per bin of `bin_us` microseconds, from 0 to the end of the trace.
    pub fn counts(&self, bin_us: u64) -> Vec<u64> {
        let bins = self.span_us().div_ceil(bin_us).max(1) as usize;
        let mut counts = vec![0u64; bins];
        for e in &self.events {
            counts[(e.t_us / bin_us) as usize] += 1;
        }
        counts
    }

    /// Where an outage of `length_us` starts "at the top of a burst": the start of the busiest
    /// 100 ms bin, moved earlier if needed so that the outage ends within the trace.
    ///
    /// ```
    /// use slotline_bench::burst::trace::{Event, Trace};
    ///
    /// let at = |t_us| Event { t_us, key: 0, bytes: 8 };
    /// let trace = Trace {
    ///     name: "t".into(),
    ///     keys: vec!["k".into()],
    ///     events: vec![at(0), at(350_000), at(360_000), at(999_000)],
    /// };
    /// assert_eq!(trace.burst_peak_us(100_000), 300_000);
    /// assert_eq!(trace.burst_peak_us(900_000), 99_001); // ends with the trace
    /// ```
    pub fn burst_peak_us(&self, length_us: u64) -> u64 {
        const BIN_US: u64 = 100_000;
        let counts = self.counts(BIN_US);
        let busiest = (0..counts.len())
            .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        (busiest as u64 * BIN_US).min(self.span_us().saturating_sub(length_us))
    }

    /// Mean, spread and tail of the rate measured in bins of `bin_ms` milliseconds.
    pub fn rate_stats(&self, bin_ms: u64) -> RateStats {
        let bin_us = bin_ms.max(1) * 1_000;
        let per_s = 1e6 / bin_us as f64;
        let counts = self.counts(bin_us);
        let n = counts.len() as f64;
        let mean = counts.iter().sum::<u64>() as f64 / n;
        let var = counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        let p99 = sorted[((sorted.len() as f64 * 0.99) as usize).min(sorted.len() - 1)];
        let top = (sorted.len() / 100).max(1);
        let total: u64 = sorted.iter().sum();
        let top_sum: u64 = sorted.iter().rev().take(top).sum();
        RateStats {
            bin_ms,
            mean: mean * per_s,
            std_dev: var.sqrt() * per_s,
            max: *sorted.last().unwrap_or(&0) as f64 * per_s,
            p99: p99 as f64 * per_s,
            top1pct_share: if total > 0 {
                top_sum as f64 / total as f64
            } else {
                0.0
            },
        }
    }

    /// Writes the trace as CSV: a `t_us,key,bytes` header, then one row per event.
    ///
    /// # Errors
    ///
    /// Any write error.
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "t_us,key,bytes")?;
        for e in &self.events {
            writeln!(out, "{},{},{}", e.t_us, self.key_of(e), e.bytes)?;
        }
        Ok(())
    }

    /// Reads a CSV trace of `t_us,key,bytes` rows (an optional header line naming those
    /// columns, blank lines and `#` comments are skipped). `t_us` is microseconds from the
    /// start, non-decreasing from row to row; `key` is any non-empty text without commas;
    /// `bytes` is the payload size, 1..=[`MAX_BYTES`].
    ///
    /// # Errors
    ///
    /// [`TraceError`], naming the first bad line.
    pub fn read_csv(input: impl BufRead, name: &str) -> Result<Trace, TraceError> {
        let mut keys = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut events = Vec::new();
        let mut previous = 0u64;
        for (i, line) in input.lines().enumerate() {
            let line_no = i + 1;
            let line = line?;
            let row = line.trim_end_matches('\r');
            if row.trim().is_empty() || row.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = row.split(',').collect();
            if fields.len() != 3 {
                return Err(TraceError::BadRow {
                    line: line_no,
                    reason: format!("expected 3 fields `t_us,key,bytes`, found {}", fields.len()),
                });
            }
            if events.is_empty() && fields.iter().map(|f| f.trim()).eq(["t_us", "key", "bytes"]) {
                continue;
            }
            let bad = |reason: String| TraceError::BadRow {
                line: line_no,
                reason,
            };
            let t_us: u64 = fields[0].trim().parse().map_err(|_| {
                bad(format!(
                    "t_us `{}` is not a whole number of microseconds",
                    fields[0]
                ))
            })?;
            let key = fields[1].trim();
            if key.is_empty() {
                return Err(bad("the key is empty".to_owned()));
            }
            let bytes: u32 = fields[2]
                .trim()
                .parse()
                .ok()
                .filter(|b| (1..=MAX_BYTES).contains(b))
                .ok_or_else(|| {
                    bad(format!(
                        "bytes `{}` is not a size in 1..={MAX_BYTES}",
                        fields[2]
                    ))
                })?;
            if t_us < previous {
                return Err(TraceError::Unsorted {
                    line: line_no,
                    t_us,
                    previous,
                });
            }
            previous = t_us;
            let key = match index.get(key) {
                Some(&k) => k,
                None => {
                    let k = u32::try_from(keys.len())
                        .map_err(|_| bad("more than 2^32 distinct keys".to_owned()))?;
                    keys.push(key.to_owned());
                    index.insert(key.to_owned(), k);
                    k
                }
            };
            events.push(Event { t_us, key, bytes });
        }
        if events.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Trace {
            name: name.to_owned(),
            keys,
            events,
        })
    }
}
