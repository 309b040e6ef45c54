//! Command-line arguments of `burst`, parsed by hand with errors that name the flag.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use slotline_client::config::parse_duration;
use slotline_client::NodeAddr;

use super::sidecar::SidecarParams;

/// The help text.
pub const HELP: &str = "\
burst: replay heavy-tailed write traffic through a sidecar-queue model, through slotline and
through the redis-rs and fred cluster clients, on a real Redis Cluster, and report latency,
queue growth, memory, buffers and losses.

USAGE:
    cargo run --release -p slotline-bench --bin burst -- [OPTIONS]

With no options: starts a local Redis Cluster (3 masters + 3 replicas), generates a seeded
heavy-tailed trace and a Poisson trace of the same mean, replays each (and the heavy one with
an outage) through every path (on a flushed cluster each time), reads back every write,
prints the tables, and writes target/burst/report.json and target/burst/report.svg.

TRACE:
    --duration SECS        length of each generated trace [default: 4] (also `500ms`, `2m`)
    --rate N               mean offered rate, writes/s [default: 20000]
    --burst-factor F       mean rate inside bursts as a multiple of --rate (> 1) [default: 10]
    --seed N               RNG seed of the traces [default: 7: its 4 s heavy trace has a
                           10 ms-bin std dev 2.6x its mean and 10 ms peaks of ~270k/s;
                           seeds 1-12 give 0.35-7x, seed 1 has no burst in 4 s]
    --users N              distinct users (keys geo:{user<id>}) [default: 100000]
    --zipf S               Zipf exponent of user popularity (0 = uniform) [default: 1.0]
    --trace FILE           replay a recorded CSV trace (`t_us,key,bytes` rows) instead of
                           generating the heavy one
    --record FILE          write the heavy (or --trace) trace to FILE as CSV
    --traces LIST          which scenarios to replay: heavy, heavy-outage (the heavy trace with
                           every node frozen by SIGSTOP for --outage at the top of its
                           biggest burst; local cluster only), poisson
                           [default: heavy,heavy-outage,poisson]
    --outage DUR           how long heavy-outage freezes the cluster [default: 2s]
    --runs N               how many times the heavy scenario runs through each path, the
                           paths' order reversed every other run; the summary shows the
                           median and the range [default: 3]

PATHS:
    --paths LIST           which write paths: sidecar (ack-on-enqueue proxy model), slotline,
                           redis-rs (its async ClusterConnection), fred (its clustered
                           Client); the two clients run with their documented defaults,
                           one tokio task per write on a 2-worker runtime; futures still
                           unanswered 60 s after the replay count as unknown
                           [default: sidecar,slotline,redis-rs,fred]
    --callers N            caller threads per path (sidecar and slotline; the clients get
                           one scheduler thread that spawns a task per write) [default: 16]
    --config FILE          slotline's YAML configuration [default: geo_shard_client.yaml];
                           its `nodes` are replaced by the cluster's
    --sidecar-depth N      the sidecar's configured queue depth [default: 10000]
    --sidecar-enforce      refuse writes at that depth (default: the queue grows past it)
    --equal-bounds         give the sidecar slotline's total capacity as its queue depth, and
                           enforce it (implies --sidecar-enforce; overrides --sidecar-depth)
    --sidecar-window DUR   the sidecar's flush interval [default: 100ms]
    --sidecar-batch N      commands per pipelined batch to one master [default: 1000]
    --sidecar-grace DUR    after the replay, how long the sidecar may drain before it is
                           stopped; writes still queued then are lost [default: 30s]
    --sidecar-timeout DUR  the sidecar's request timeout upstream: a batch not written or
                           answered in time is given up and its connection replaced, as
                           twemproxy's `timeout` does [default: 400ms, its README's value]

CLUSTER AND OUTPUT:
    --link RATE            put the local cluster in a network namespace behind a veth pair
                           shaped with tc tbf at RATE (`100mbit`, `1gbit`, `500kbit`; a bare
                           number is bits/s), raise the socket buffer limits for the run and
                           restore them, and read kernel buffers with `ss -tmi`; needs root
                           (and iproute2), refused otherwise and with --nodes
    --nodes LIST           use a running cluster (host:port,...) instead of a local one;
                           it is FLUSHALLed before each replay
    --out DIR              where report.json and report.svg go [default: target/burst]
    --no-progress          no progress bar
    -h, --help             this text
";

/// Which write paths to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// The sidecar model.
    Sidecar,
    /// slotline's client.
    Slotline,
    /// redis-rs's async cluster connection ([`super::peers::RedisRs`]).
    RedisRs,
    /// fred's clustered client ([`super::peers::Fred`]).
    Fred,
}

impl PathKind {
    /// Every path, in the default order.
    pub const ALL: [PathKind; 4] = [
        PathKind::Sidecar,
        PathKind::Slotline,
        PathKind::RedisRs,
        PathKind::Fred,
    ];

    /// `sidecar`, `slotline`, `redis-rs` or `fred`.
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Sidecar => "sidecar",
            PathKind::Slotline => "slotline",
            PathKind::RedisRs => "redis-rs",
            PathKind::Fred => "fred",
        }
    }
}

/// Which scenarios to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// The heavy-tailed trace (or the `--trace` file).
    Heavy,
    /// The heavy trace with the whole cluster frozen (SIGSTOP) for [`Args::outage`] at the top
    /// of its biggest burst.
    HeavyOutage,
    /// The Poisson trace of the same mean.
    Poisson,
}

impl TraceKind {
    /// The scenario's name in reports: `heavy`, `heavy-outage`, `poisson`.
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Heavy => "heavy",
            TraceKind::HeavyOutage => "heavy-outage",
            TraceKind::Poisson => "poisson",
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// Length of each generated trace.
    pub duration: Duration,
    /// Mean rate, writes/s.
    pub rate: f64,
    /// Burst rate / mean rate.
    pub burst_factor: f64,
    /// RNG seed.
    pub seed: u64,
    /// Distinct users.
    pub users: u32,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// A CSV trace to replay.
    pub trace: Option<PathBuf>,
    /// Where to record the trace.
    pub record: Option<PathBuf>,
    /// Scenarios to replay, in order.
    pub traces: Vec<TraceKind>,
    /// How long the `heavy-outage` scenario freezes the cluster.
    pub outage: Duration,
    /// Paths to replay, in order.
    pub paths: Vec<PathKind>,
    /// Caller threads per path.
    pub callers: usize,
    /// Runs of the `heavy` scenario per path.
    pub runs: usize,
    /// slotline's YAML.
    pub config: PathBuf,
    /// The sidecar model's knobs.
    pub sidecar: SidecarParams,
    /// Enforce the sidecar's queue at slotline's total capacity (`--equal-bounds`).
    pub equal_bounds: bool,
    /// Shape the link to a local cluster at this rate, bits/s (`--link`).
    pub link: Option<u64>,
    /// A running cluster to use.
    pub nodes: Option<Vec<NodeAddr>>,
    /// Output directory.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// The program to run as the sidecar proxy (this binary by default).
    pub proxy_program: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            duration: Duration::from_secs(4),
            rate: 20_000.0,
            burst_factor: 10.0,
            seed: 7,
            users: 100_000,
            zipf_s: 1.0,
            trace: None,
            record: None,
            traces: vec![TraceKind::Heavy, TraceKind::HeavyOutage, TraceKind::Poisson],
            outage: Duration::from_secs(2),
            paths: PathKind::ALL.to_vec(),
            callers: 16,
            runs: 3,
            config: PathBuf::from("geo_shard_client.yaml"),
            sidecar: SidecarParams::default(),
            equal_bounds: false,
            link: None,
            nodes: None,
            out: PathBuf::from("target/burst"),
            progress: true,
            proxy_program: None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run the replay.
    Run(Box<Args>),
    /// Print [`HELP`].
    Help,
    /// Be the sidecar proxy (hidden): the arguments after `--sidecar-proxy`.
    Proxy(Vec<String>),
}

/// A bad command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    /// The flag at fault (or the stray argument).
    pub flag: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (see --help)", self.flag, self.reason)
    }
}

impl std::error::Error for ArgError {}

fn err(flag: &str, reason: impl Into<String>) -> ArgError {
    ArgError {
        flag: flag.to_owned(),
        reason: reason.into(),
    }
}

/// A duration: `SECS` as a plain number (when `bare_secs`), or with a unit (`100ms`, `2s`).
fn duration(flag: &str, v: &str, bare_secs: bool) -> Result<Duration, ArgError> {
    if bare_secs {
        if let Ok(secs) = v.parse::<f64>() {
            return if secs.is_finite() && secs >= 0.0 {
                Ok(Duration::from_secs_f64(secs))
            } else {
                Err(err(flag, format!("`{v}` is not a length of time")))
            };
        }
    }
    parse_duration(v).map_err(|e| err(flag, e.to_string()))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str, what: &str) -> Result<T, ArgError> {
    v.parse()
        .map_err(|_| err(flag, format!("`{v}` is not {what}")))
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// [`ArgError`] naming the flag and what is wrong with it.
pub fn parse(argv: &[String]) -> Result<Command, ArgError> {
    if argv.first().map(String::as_str) == Some("--sidecar-proxy") {
        return Ok(Command::Proxy(argv[1..].to_vec()));
    }
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (flag, None),
        };
        let mut value = || -> Result<String, ArgError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or_else(|| err(flag, "needs a value")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--duration" => {
                let v = value()?;
                a.duration = duration(flag, &v, true)?;
                if a.duration < Duration::from_millis(100) {
                    return Err(err(flag, "must be at least 100ms"));
                }
            }
            "--rate" => {
                let v = value()?;
                a.rate = number(flag, &v, "a rate in writes/s")?;
                if !(a.rate.is_finite() && a.rate > 0.0) {
                    return Err(err(flag, "must be above 0"));
                }
            }
            "--burst-factor" => {
                let v = value()?;
                a.burst_factor = number(flag, &v, "a number")?;
                if !(a.burst_factor.is_finite() && a.burst_factor > 1.0 && a.burst_factor <= 1000.0)
                {
                    return Err(err(flag, "must be above 1 (and at most 1000)"));
                }
            }
            "--seed" => a.seed = number(flag, &value()?, "a whole number")?,
            "--users" => {
                a.users = number(flag, &value()?, "a whole number")?;
                if a.users == 0 {
                    return Err(err(flag, "must be at least 1"));
                }
            }
            "--zipf" => {
                a.zipf_s = number(flag, &value()?, "a number")?;
                if !(a.zipf_s.is_finite() && a.zipf_s >= 0.0) {
                    return Err(err(flag, "must be 0 or more"));
                }
            }
            "--trace" => a.trace = Some(PathBuf::from(value()?)),
            "--record" => a.record = Some(PathBuf::from(value()?)),
            "--traces" => {
                a.traces = list(
                    flag,
                    &value()?,
                    |s| match s {
                        "heavy" => Some(TraceKind::Heavy),
                        "heavy-outage" => Some(TraceKind::HeavyOutage),
                        "poisson" => Some(TraceKind::Poisson),
                        _ => None,
                    },
                    "heavy, heavy-outage, poisson",
                )?;
            }
            "--outage" => {
                a.outage = duration(flag, &value()?, false)?;
                if a.outage < Duration::from_millis(10) {
                    return Err(err(flag, "must be at least 10ms"));
                }
            }
            "--paths" => {
                a.paths = list(
                    flag,
                    &value()?,
                    |s| PathKind::ALL.into_iter().find(|p| p.name() == s),
                    "sidecar, slotline, redis-rs, fred",
                )?;
            }
            "--runs" => {
                a.runs = number(flag, &value()?, "a whole number")?;
                if !(1..=20).contains(&a.runs) {
                    return Err(err(flag, "must be 1..=20"));
                }
            }
            "--callers" => {
                a.callers = number(flag, &value()?, "a whole number")?;
                if !(1..=1024).contains(&a.callers) {
                    return Err(err(flag, "must be 1..=1024"));
                }
            }
            "--config" => a.config = PathBuf::from(value()?),
            "--sidecar-depth" => {
                a.sidecar.depth = number(flag, &value()?, "a whole number")?;
                if a.sidecar.depth == 0 {
                    return Err(err(flag, "must be at least 1"));
                }
            }
            "--sidecar-enforce" => a.sidecar.enforce = true,
            "--equal-bounds" => a.equal_bounds = true,
            "--link" => a.link = Some(link_rate(flag, &value()?)?),
            "--sidecar-window" => {
                let v = value()?;
                a.sidecar.window = duration(flag, &v, false)?;
                if a.sidecar.window < Duration::from_millis(1) {
                    return Err(err(flag, "must be at least 1ms"));
                }
            }
            "--sidecar-batch" => {
                a.sidecar.batch = number(flag, &value()?, "a whole number")?;
                if a.sidecar.batch == 0 {
                    return Err(err(flag, "must be at least 1"));
                }
            }
            "--sidecar-grace" => a.sidecar.grace = duration(flag, &value()?, false)?,
            "--sidecar-timeout" => {
                a.sidecar.timeout = duration(flag, &value()?, false)?;
                if a.sidecar.timeout < Duration::from_millis(1) {
                    return Err(err(flag, "must be at least 1ms"));
                }
            }
            "--nodes" => {
                let v = value()?;
                let nodes = v
                    .split(',')
                    .map(|s| s.trim().parse::<NodeAddr>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(flag, e.to_string()))?;
                if nodes.is_empty() {
                    return Err(err(flag, "needs at least one host:port"));
                }
                a.nodes = Some(nodes);
            }
            "--out" => a.out = PathBuf::from(value()?),
            "--no-progress" => a.progress = false,
            other if other.starts_with('-') => return Err(err(other, "unknown flag")),
            other => return Err(err(other, "unexpected argument")),
        }
        if inline.is_some()
            && matches!(
                flag,
                "--sidecar-enforce" | "--equal-bounds" | "--no-progress" | "-h" | "--help"
            )
        {
            return Err(err(flag, "takes no value"));
        }
    }
    Ok(Command::Run(Box::new(a)))
}

/// A link rate as `tc` writes it: a number with `kbit`, `mbit` or `gbit` (decimal), or bare
/// bits/s; between 64 kbit/s and 100 gbit/s.
pub fn link_rate(flag: &str, v: &str) -> Result<u64, ArgError> {
    let lower = v.trim().to_ascii_lowercase();
    let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(unit, m)| lower.strip_suffix(unit).map(|n| (n.to_owned(), m)))
        .unwrap_or((lower.clone(), 1.0));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| err(flag, format!("`{v}` is not a rate (e.g. 100mbit)")))?;
    let bits = n * mult;
    if !(bits.is_finite() && (64e3..=100e9).contains(&bits)) {
        return Err(err(flag, "must be between 64kbit and 100gbit"));
    }
    Ok(bits as u64)
}

/// A comma-separated list of names, each known, without repeats.
fn list<T: PartialEq>(
    flag: &str,
    v: &str,
    known: impl Fn(&str) -> Option<T>,
    names: &str,
) -> Result<Vec<T>, ArgError> {
    let mut out = Vec::new();
    for s in v.split(',').map(str::trim) {
        let item = known(s).ok_or_else(|| err(flag, format!("`{s}` is not one of {names}")))?;
        if out.contains(&item) {
            return Err(err(flag, format!("`{s}` is listed twice")));
        }
        out.push(item);
    }
    Ok(out)
}
