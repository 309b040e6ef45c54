//! Command-line arguments of `burst`, parsed with clap, with errors that name the flag.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser};
use slotline_client::config::parse_duration;
use slotline_client::NodeAddr;

use super::sidecar::SidecarParams;

/// The one-line description (clap's short help, which [`help`] does not show).
const ABOUT: &str = "burst: replay heavy-tailed write traffic through four write paths on a real \
Redis Cluster, and report latency, queue growth, memory, buffers and losses.";

/// The description at the top of `--help`: what the program does, and what it does by default.
const LONG_ABOUT: &str = "burst: replay heavy-tailed write traffic through a sidecar-queue model, \
through slotline and through the redis-rs and fred cluster clients, on a real Redis Cluster, \
and report latency, queue growth, memory, buffers and losses.

With no options: starts a local Redis Cluster (3 masters + 3 replicas), generates a seeded \
heavy-tailed trace and a Poisson trace of the same mean, replays each (and the heavy one with \
an outage) through every path (on a flushed cluster each time), reads back every write, prints \
the tables, and writes target/burst/report.json and target/burst/report.svg.";

/// The usage line(s) of `--help`.
const USAGE: &str = "burst [OPTIONS]
       cargo run --release -p slotline-bench --bin burst -- [OPTIONS]";

/// The help's width in columns, whatever the terminal's, so that it reads the same everywhere.
const HELP_WIDTH: usize = 100;

const TRACE: &str = "TRACE";
const PATHS: &str = "PATHS";
const CLUSTER: &str = "CLUSTER AND OUTPUT";

/// The command line as clap reads it; [`parse`] turns it into [`Args`]. Every default is
/// given as the text a user would type, so that `--help` shows it and it goes through the
/// same checks as a typed value. Flags whose values are checked take a value that starts with
/// `-` (`--rate -5`, `--link -5mbit`), so that the check, not a guess at a flag, names what is
/// wrong; paths do not, so that `--trace --no-progress` is refused as a missing value.
#[derive(Parser, Debug)]
#[command(
    name = "burst",
    about = ABOUT,
    long_about = LONG_ABOUT,
    override_usage = USAGE,
    disable_help_flag = true,
    args_override_self = true,
    term_width = HELP_WIDTH,
    max_term_width = HELP_WIDTH
)]
struct Cli {
    #[arg(long, value_name = "SECS", default_value = "4", value_parser = trace_duration,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "length of each generated trace, in seconds (also `500ms`, `2m`)")]
    duration: Duration,

    #[arg(long, value_name = "N", default_value = "20000", value_parser = rate,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "mean offered rate, writes/s")]
    rate: f64,

    #[arg(long, value_name = "F", default_value = "10", value_parser = burst_factor,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "mean rate inside bursts as a multiple of --rate (above 1, at most 1000)")]
    burst_factor: f64,

    #[arg(long, value_name = "N", default_value = "7", value_parser = seed,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "RNG seed of the traces; seed 7's 4 s heavy trace has a 10 ms-bin std dev 2.6x \
            its mean and 10 ms peaks of ~270k/s; seeds 1-12 give 0.35-7x, seed 1 has no \
            burst in 4 s")]
    seed: u64,

    #[arg(long, value_name = "N", default_value = "100000", value_parser = at_least_one::<u32>,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "distinct users (keys geo:{user<id>})")]
    users: u32,

    #[arg(long = "zipf", value_name = "S", default_value = "1.0", value_parser = zipf,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "Zipf exponent of user popularity (0 = uniform)")]
    zipf_s: f64,

    #[arg(long, value_name = "FILE", help_heading = TRACE,
        help = "replay a recorded CSV trace (`t_us,key,bytes` rows) instead of generating \
            the heavy one")]
    trace: Option<PathBuf>,

    #[arg(long, value_name = "FILE", help_heading = TRACE,
        help = "write the heavy (or --trace) trace to FILE as CSV")]
    record: Option<PathBuf>,

    #[arg(long, value_name = "LIST", default_value = "heavy,heavy-outage,poisson",
        value_parser = traces, allow_hyphen_values = true, help_heading = TRACE,
        help = "which scenarios to replay: heavy, heavy-outage (the heavy trace with every \
            node frozen by SIGSTOP for --outage at the top of its biggest burst; local \
            cluster only), poisson")]
    traces: TraceList,

    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = outage, allow_hyphen_values = true,
        help_heading = TRACE, help = "how long heavy-outage freezes the cluster")]
    outage: Duration,

    #[arg(long, value_name = "N", default_value = "3", value_parser = runs,
        allow_hyphen_values = true, help_heading = TRACE,
        help = "how many times the heavy scenario runs through each path (1 to 20), the \
            paths' order reversed every other run; the summary shows the median and the range")]
    runs: usize,

    #[arg(long, value_name = "LIST", default_value = "sidecar,slotline,redis-rs,fred",
        value_parser = paths, allow_hyphen_values = true, help_heading = PATHS,
        help = "which write paths: sidecar (ack-on-enqueue proxy model), slotline, redis-rs \
            (its async ClusterConnection), fred (its clustered Client); the two clients run \
            with their documented defaults, one tokio task per write on a 2-worker runtime; \
            futures still unanswered 60 s after the replay count as unknown")]
    paths: PathList,

    #[arg(long, value_name = "N", default_value = "16", value_parser = callers,
        allow_hyphen_values = true, help_heading = PATHS,
        help = "caller threads per path (sidecar and slotline; the clients get one scheduler \
            thread that spawns a task per write), 1 to 1024")]
    callers: usize,

    #[arg(long, value_name = "FILE", default_value = "geo_shard_client.yaml",
        help_heading = PATHS,
        help = "slotline's YAML configuration; its `nodes` are replaced by the cluster's")]
    config: PathBuf,

    #[arg(long, value_name = "N", default_value = "10000", value_parser = at_least_one::<usize>,
        allow_hyphen_values = true, help_heading = PATHS,
        help = "the sidecar's configured queue depth")]
    sidecar_depth: usize,

    #[arg(long, help_heading = PATHS,
        help = "refuse writes at that depth (default: the queue grows past it)")]
    sidecar_enforce: bool,

    #[arg(long, help_heading = PATHS,
        help = "give the sidecar slotline's total capacity as its queue depth, and enforce it \
            (implies --sidecar-enforce; overrides --sidecar-depth)")]
    equal_bounds: bool,

    #[arg(long, value_name = "DUR", default_value = "100ms", value_parser = at_least_1ms, allow_hyphen_values = true,
        help_heading = PATHS, help = "the sidecar's flush interval")]
    sidecar_window: Duration,

    #[arg(long, value_name = "N", default_value = "1000", value_parser = at_least_one::<usize>,
        allow_hyphen_values = true, help_heading = PATHS,
        help = "commands per pipelined batch to one master")]
    sidecar_batch: usize,

    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = any_duration, allow_hyphen_values = true,
        help_heading = PATHS,
        help = "after the replay, how long the sidecar may drain before it is stopped; writes \
            still queued then are lost")]
    sidecar_grace: Duration,

    #[arg(long, value_name = "DUR", default_value = "400ms", value_parser = at_least_1ms, allow_hyphen_values = true,
        help_heading = PATHS,
        help = "the sidecar's request timeout upstream: a batch not written or answered in \
            time is given up and its connection replaced, as twemproxy's `timeout` does (the \
            default is its README's value)")]
    sidecar_timeout: Duration,

    #[arg(long, value_name = "RATE", value_parser = link, allow_hyphen_values = true, help_heading = CLUSTER,
        help = "put the local cluster in a network namespace behind a veth pair shaped with \
            tc tbf at RATE (`100mbit`, `1gbit`, `500kbit`; a bare number is bits/s), raise \
            the socket buffer limits for the run and restore them, and read kernel buffers \
            with `ss -tmi`; needs root (and iproute2), refused otherwise and with --nodes")]
    link: Option<u64>,

    #[arg(long, value_name = "LIST", value_parser = nodes, allow_hyphen_values = true, help_heading = CLUSTER,
        help = "use a running cluster (host:port,...) instead of a local one; it is \
            FLUSHALLed before each replay")]
    nodes: Option<NodeList>,

    #[arg(long, value_name = "DIR", default_value = "target/burst", help_heading = CLUSTER,
        help = "where report.json and report.svg go")]
    out: PathBuf,

    #[arg(long, help_heading = CLUSTER, help = "no progress bar")]
    no_progress: bool,
}

/// `--traces`: one value holding a list (a plain `Vec` would make clap take several values).
type TraceList = Vec<TraceKind>;
/// `--paths`: one value holding a list.
type PathList = Vec<PathKind>;
/// `--nodes`: one value holding a list.
type NodeList = Vec<NodeAddr>;

/// The command clap parses with, `-h`/`--help` last under CLUSTER AND OUTPUT.
fn command() -> clap::Command {
    Cli::command().arg(
        Arg::new("help")
            .short('h')
            .long("help")
            .action(ArgAction::HelpLong)
            .help_heading(CLUSTER)
            .help("this text"),
    )
}

/// The help text: what `burst` does, its usage, and every flag under its heading, with its
/// default.
pub fn help() -> String {
    let text = command().render_long_help().to_string();
    // Clap indents the blank line before each `[default: ...]`.
    text.lines()
        .map(|l| l.trim_end().to_owned() + "\n")
        .collect()
}

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
    /// Every scenario, in the default order.
    const ALL: [TraceKind; 3] = [TraceKind::Heavy, TraceKind::HeavyOutage, TraceKind::Poisson];

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

/// The documented defaults: what an empty command line gives (a test holds the two equal).
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
            traces: TraceKind::ALL.to_vec(),
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

impl From<Cli> for Args {
    fn from(c: Cli) -> Self {
        Args {
            duration: c.duration,
            rate: c.rate,
            burst_factor: c.burst_factor,
            seed: c.seed,
            users: c.users,
            zipf_s: c.zipf_s,
            trace: c.trace,
            record: c.record,
            traces: c.traces,
            outage: c.outage,
            paths: c.paths,
            callers: c.callers,
            runs: c.runs,
            config: c.config,
            sidecar: SidecarParams {
                depth: c.sidecar_depth,
                enforce: c.sidecar_enforce,
                window: c.sidecar_window,
                batch: c.sidecar_batch,
                grace: c.sidecar_grace,
                timeout: c.sidecar_timeout,
            },
            equal_bounds: c.equal_bounds,
            link: c.link,
            nodes: c.nodes,
            out: c.out,
            progress: !c.no_progress,
            proxy_program: None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run the replay.
    Run(Box<Args>),
    /// Print [`help`].
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

/// Parses the arguments after the program name.
///
/// # Errors
///
/// [`ArgError`] naming the flag and what is wrong with it.
pub fn parse(argv: &[String]) -> Result<Command, ArgError> {
    if argv.first().map(String::as_str) == Some("--sidecar-proxy") {
        return Ok(Command::Proxy(argv[1..].to_vec()));
    }
    let matches = command()
        .try_get_matches_from(std::iter::once("burst").chain(argv.iter().map(String::as_str)));
    let mut matches = match matches {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Command::Help),
        Err(e) => return Err(arg_error(&e)),
    };
    let cli = Cli::from_arg_matches_mut(&mut matches).map_err(|e| arg_error(&e))?;
    Ok(Command::Run(Box::new(cli.into())))
}

/// Clap's error as an [`ArgError`]: the flag (without its value name), and what is wrong in
/// the words of this module's value parsers where one refused the value.
fn arg_error(e: &clap::Error) -> ArgError {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    // `--rate <N>` for an option, the argument itself when it is unknown.
    let arg = context(ContextKind::InvalidArg).unwrap_or("");
    let flag = match arg.split_once(' ') {
        Some((flag, _)) => flag,
        None if arg.starts_with("--") => arg.split_once('=').map_or(arg, |(flag, _)| flag),
        None => arg,
    };
    let value = context(ContextKind::InvalidValue);
    let reason = match e.kind() {
        ErrorKind::ValueValidation => match std::error::Error::source(e) {
            Some(source) => source.to_string(),
            None => format!("`{}` is not valid", value.unwrap_or("")),
        },
        ErrorKind::InvalidValue if value.is_none_or(str::is_empty) => "needs a value".to_owned(),
        ErrorKind::InvalidValue => format!("`{}` is not valid", value.unwrap_or("")),
        ErrorKind::TooManyValues if flag.starts_with("--") => "takes no value".to_owned(),
        ErrorKind::UnknownArgument => {
            let what = if flag.starts_with('-') {
                "unknown flag"
            } else {
                "unexpected argument"
            };
            match context(ContextKind::SuggestedArg) {
                Some(s) => format!("{what} (did you mean {s}?)"),
                None => what.to_owned(),
            }
        }
        _ => {
            // Clap's own sentence, without its `error: ` prefix and usage lines.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("").trim();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    };
    let flag = if flag.is_empty() { "burst" } else { flag };
    err(flag, reason)
}

/// A duration: `SECS` as a plain number (when `bare_secs`), or with a unit (`100ms`, `2s`).
fn duration(v: &str, bare_secs: bool) -> Result<Duration, String> {
    if bare_secs {
        if let Ok(secs) = v.parse::<f64>() {
            return if secs.is_finite() && secs >= 0.0 {
                Ok(Duration::from_secs_f64(secs))
            } else {
                Err(format!("`{v}` is not a length of time"))
            };
        }
    }
    parse_duration(v).map_err(|e| e.to_string())
}

/// A duration with a unit, no shorter than `min`.
fn duration_at_least(
    v: &str,
    bare_secs: bool,
    min: Duration,
    text: &str,
) -> Result<Duration, String> {
    let d = duration(v, bare_secs)?;
    if d < min {
        return Err(format!("must be at least {text}"));
    }
    Ok(d)
}

fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("`{v}` is not {what}"))
}

/// `--duration`: seconds, or a unit; at least 100ms.
fn trace_duration(v: &str) -> Result<Duration, String> {
    duration_at_least(v, true, Duration::from_millis(100), "100ms")
}

/// `--outage`: at least 10ms.
fn outage(v: &str) -> Result<Duration, String> {
    duration_at_least(v, false, Duration::from_millis(10), "10ms")
}

/// `--sidecar-window`, `--sidecar-timeout`: at least 1ms.
fn at_least_1ms(v: &str) -> Result<Duration, String> {
    duration_at_least(v, false, Duration::from_millis(1), "1ms")
}

/// `--sidecar-grace`: any length, zero included.
fn any_duration(v: &str) -> Result<Duration, String> {
    duration(v, false)
}

fn rate(v: &str) -> Result<f64, String> {
    let r: f64 = number(v, "a rate in writes/s")?;
    if !(r.is_finite() && r > 0.0) {
        return Err("must be above 0".to_owned());
    }
    Ok(r)
}

fn burst_factor(v: &str) -> Result<f64, String> {
    let f: f64 = number(v, "a number")?;
    if !(f.is_finite() && f > 1.0 && f <= 1000.0) {
        return Err("must be above 1 (and at most 1000)".to_owned());
    }
    Ok(f)
}

fn seed(v: &str) -> Result<u64, String> {
    number(v, "a whole number")
}

fn zipf(v: &str) -> Result<f64, String> {
    let s: f64 = number(v, "a number")?;
    if !(s.is_finite() && s >= 0.0) {
        return Err("must be 0 or more".to_owned());
    }
    Ok(s)
}

/// A whole number in `range`.
fn whole_in(v: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    let n: usize = number(v, "a whole number")?;
    if !range.contains(&n) {
        return Err(format!("must be {}..={}", range.start(), range.end()));
    }
    Ok(n)
}

fn runs(v: &str) -> Result<usize, String> {
    whole_in(v, 1..=20)
}

fn callers(v: &str) -> Result<usize, String> {
    whole_in(v, 1..=1024)
}

/// `--users`, `--sidecar-depth`, `--sidecar-batch`: a whole number, not 0.
fn at_least_one<T: std::str::FromStr + Default + PartialEq>(v: &str) -> Result<T, String> {
    let n: T = number(v, "a whole number")?;
    if n == T::default() {
        return Err("must be at least 1".to_owned());
    }
    Ok(n)
}

fn traces(v: &str) -> Result<TraceList, String> {
    list(
        v,
        |s| TraceKind::ALL.into_iter().find(|t| t.name() == s),
        "heavy, heavy-outage, poisson",
    )
}

fn paths(v: &str) -> Result<PathList, String> {
    list(
        v,
        |s| PathKind::ALL.into_iter().find(|p| p.name() == s),
        "sidecar, slotline, redis-rs, fred",
    )
}

fn link(v: &str) -> Result<u64, String> {
    link_rate("--link", v).map_err(|e| e.reason)
}

fn nodes(v: &str) -> Result<NodeList, String> {
    let nodes = v
        .split(',')
        .map(|s| s.trim().parse::<NodeAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if nodes.is_empty() {
        return Err("needs at least one host:port".to_owned());
    }
    Ok(nodes)
}

/// A link rate as `tc` writes it: a number with `kbit`, `mbit` or `gbit` (decimal), or bare
/// bits/s; between 64 kbit/s and 100 gbit/s.
///
/// # Errors
///
/// [`ArgError`] naming `flag`, when `v` is not such a rate.
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
    v: &str,
    known: impl Fn(&str) -> Option<T>,
    names: &str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for s in v.split(',').map(str::trim) {
        let item = known(s).ok_or_else(|| format!("`{s}` is not one of {names}"))?;
        if out.contains(&item) {
            return Err(format!("`{s}` is listed twice"));
        }
        out.push(item);
    }
    Ok(out)
}
