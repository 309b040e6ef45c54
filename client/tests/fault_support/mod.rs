//! What the fault tests share: committer threads that append unique values to lists and
//! remember every outcome, the ledger that checks those lists against the outcomes (every
//! acknowledged write present exactly once, none applied twice or out of order, none present
//! that its caller was told was not applied), open-loop writers, slot-map and role probes read
//! with plain connections, and small timing helpers.
//!
//! Each `fault_*.rs` binary includes this module; not every binary uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use slotline_client::conn::{Conn, ConnOptions};
use slotline_client::{Client, CommitError, CommitFuture, Config, NodeAddr};
use slotline_router::{key_slot, Redirect, RedirectKind};
use slotline_testkit::{LocalCluster, Role};

/// `SLOTLINE_SOAK_SECS`, when set: how long a soak variant runs.
pub fn soak_secs(default: u64) -> Duration {
    let secs = std::env::var("SLOTLINE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// A small xorshift generator: the tests need reproducible choices, not good randomness.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `SLOTLINE_SEED` when set, otherwise from the clock; the seed is printed so
    /// that a failing run can be replayed.
    pub fn from_env(name: &str) -> Rng {
        let seed = std::env::var("SLOTLINE_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{name}: SLOTLINE_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// What one commit returned, reduced to what the tests count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Ok,
    Rejected,
    Dropped,
    /// `DeadlineExceeded { may_have_been_applied: false }`.
    DeadlineUnsent,
    /// `DeadlineExceeded { may_have_been_applied: true }`.
    DeadlineMaybe,
    Server,
    Shortfall,
    /// `ReplicationUnconfirmed`: applied on the master, its `WAIT` lost with the connection.
    Unconfirmed,
    LostUnsent,
    LostMaybe,
    Closed,
    Other,
}

impl Kind {
    pub fn of(result: &Result<(), CommitError>) -> Kind {
        match result {
            Ok(()) => Kind::Ok,
            Err(CommitError::Rejected) => Kind::Rejected,
            Err(CommitError::Dropped) => Kind::Dropped,
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            }) => Kind::DeadlineUnsent,
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: true,
            }) => Kind::DeadlineMaybe,
            Err(CommitError::Server { .. }) => Kind::Server,
            Err(CommitError::ReplicationShortfall { .. }) => Kind::Shortfall,
            Err(CommitError::ReplicationUnconfirmed { .. }) => Kind::Unconfirmed,
            Err(CommitError::ConnectionLost {
                may_have_been_applied: false,
            }) => Kind::LostUnsent,
            Err(CommitError::ConnectionLost {
                may_have_been_applied: true,
            }) => Kind::LostMaybe,
            Err(CommitError::Closed) => Kind::Closed,
            Err(_) => Kind::Other,
        }
    }
}

/// One finished commit: when it ended (from the load's start), how long it took, what it got.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub end: Duration,
    pub latency: Duration,
    pub kind: Kind,
}

/// Outcome counts by kind, plus the codes of server error replies.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub kinds: BTreeMap<Kind, u64>,
    pub server_codes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn add(&mut self, result: &Result<(), CommitError>) {
        *self.kinds.entry(Kind::of(result)).or_default() += 1;
        if let Err(CommitError::Server { message }) = result {
            let code = message.split(' ').next().unwrap_or("").to_owned();
            *self.server_codes.entry(code).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.kinds {
            *self.kinds.entry(*k).or_default() += n;
        }
        for (k, n) in &other.server_codes {
            *self.server_codes.entry(k.clone()).or_default() += n;
        }
    }

    pub fn get(&self, kind: Kind) -> u64 {
        self.kinds.get(&kind).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.kinds.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.total() - self.get(Kind::Ok)
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, n)| format!("{k:?}={n}"))
            .collect();
        write!(f, "{}", kinds.join(" "))?;
        if !self.server_codes.is_empty() {
            write!(f, " (server codes: {:?})", self.server_codes)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger: every write's fate against the lists in the cluster
// ---------------------------------------------------------------------------------------------

/// What a committer was told about one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Acknowledged (`Ok`): the value must be in the key's list exactly once.
    Acked,
    /// An error that says the write may have been applied (`may_have_been_applied`): the value
    /// may be in the list, at most once.
    Maybe,
    /// An error that says the write was not applied: the value must not be in the list.
    NotApplied,
}

impl Fate {
    pub fn of<T>(result: &Result<T, CommitError>) -> Fate {
        match result {
            Ok(_) => Fate::Acked,
            Err(e) if e.may_have_been_applied() => Fate::Maybe,
            Err(_) => Fate::NotApplied,
        }
    }
}

/// One `RPUSH key <load>.<thread>.<seq>`, as its committer recorded it.
#[derive(Clone, Copy, Debug)]
pub struct Write {
    pub seq: u64,
    pub fate: Fate,
    /// The load phase (see [`Load::set_phase`]) in which the commit started.
    pub phase: usize,
}

/// The writes to one key, in submission order (a key belongs to one committer thread, whose
/// commits are sequential, so its sequence numbers increase).
#[derive(Clone, Debug, Default)]
pub struct KeyState {
    /// The value prefix of every write to the key: `<load>.<thread>.`.
    pub prefix: String,
    pub writes: Vec<Write>,
}

impl KeyState {
    /// The write whose value is `value`, by its index in `writes`.
    fn find(&self, value: &[u8]) -> Option<usize> {
        let seq: u64 = std::str::from_utf8(value)
            .ok()?
            .strip_prefix(self.prefix.as_str())?
            .parse()
            .ok()?;
        self.writes.binary_search_by_key(&seq, |w| w.seq).ok()
    }
}

/// Every write of the committers, per key, with what its caller was told. Values are unique
/// per write (`<load>.<thread>.<seq>`) and appended with `RPUSH`, so the lists read back say
/// how many times each write was applied, and in what order.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub keys: HashMap<Vec<u8>, KeyState>,
    /// Acknowledged writes from this phase on must be present; earlier ones may be missing
    /// (see [`Ledger::acked_since`]).
    pub required_since: usize,
}

impl Ledger {
    pub fn record<T>(
        &mut self,
        key: &[u8],
        prefix: &str,
        seq: u64,
        phase: usize,
        result: &Result<T, CommitError>,
    ) {
        let state = self.keys.entry(key.to_vec()).or_insert_with(|| KeyState {
            prefix: prefix.to_owned(),
            writes: Vec::new(),
        });
        debug_assert_eq!(state.prefix, prefix, "one writer per key");
        debug_assert!(state.writes.last().is_none_or(|w| w.seq < seq));
        state.writes.push(Write {
            seq,
            fate: Fate::of(result),
            phase,
        });
    }

    pub fn merge(&mut self, other: Ledger) {
        self.keys.extend(other.keys);
    }

    /// The same ledger, requiring only the writes acknowledged in `phase` or later to be
    /// present (the cluster lost what came before, such as after a restart without
    /// persistence). What is present must still be there at most once, in submission order,
    /// and never a write the caller was told was not applied.
    pub fn acked_since(&self, phase: usize) -> Ledger {
        Ledger {
            keys: self.keys.clone(),
            required_since: phase,
        }
    }

    /// Reads every key's list back (`LRANGE key 0 -1`) from the master now serving it, and
    /// checks each against its writes:
    ///
    /// - an acknowledged write (from [`Ledger::required_since`] on) is present exactly once;
    /// - a write whose outcome was ambiguous is present at most once;
    /// - a write the caller was told was not applied is absent;
    /// - the values present appear in submission order, and each is one this ledger wrote.
    ///
    /// Panics with the violations.
    pub fn verify(&self, cluster: &LocalCluster, what: &str) -> Verified {
        let mut reader = Reader::new(cluster);
        let mut v = Verified::default();
        let mut violations = Vec::new();
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, state) in keys {
            v.keys += 1;
            let list = reader.lrange(key);
            v.values += list.len();
            let name = String::from_utf8_lossy(key);
            let mut count = vec![0u32; state.writes.len()];
            let mut last: Option<usize> = None;
            for value in &list {
                let shown = String::from_utf8_lossy(value);
                let Some(i) = state.find(value) else {
                    violations.push(format!("{name}: holds {shown:?}, never written to it"));
                    continue;
                };
                count[i] += 1;
                if last.is_some_and(|l| l >= i) && count[i] == 1 {
                    violations.push(format!(
                        "{name}: {shown:?} comes after {}{} (out of submission order)",
                        state.prefix,
                        state.writes[last.unwrap_or(0)].seq
                    ));
                }
                last = Some(last.map_or(i, |l| l.max(i)));
            }
            let mut ambiguous = false;
            for (w, &n) in state.writes.iter().zip(&count) {
                let value = format!("{}{}", state.prefix, w.seq);
                let required = w.fate == Fate::Acked && w.phase >= self.required_since;
                match (w.fate, n) {
                    (_, n) if n > 1 => violations.push(format!(
                        "{name}: {value:?} ({:?}) applied {n} times",
                        w.fate
                    )),
                    (Fate::NotApplied, 1) => violations.push(format!(
                        "{name}: {value:?} present, although its caller was told it was not applied"
                    )),
                    (Fate::Acked, 0) if required => {
                        violations.push(format!("{name}: {value:?} acknowledged, missing"))
                    }
                    (Fate::Acked, 1) => v.acked += 1,
                    (Fate::Maybe, 1) => {
                        v.maybe_present += 1;
                        ambiguous = true;
                    }
                    (Fate::Maybe, _) => v.maybe_absent += 1,
                    _ => {}
                }
            }
            if ambiguous {
                v.ambiguous += 1;
            } else {
                v.exact += 1;
            }
        }
        assert!(
            violations.is_empty(),
            "{what}: {} violations in {} keys, e.g.:\n{}",
            violations.len(),
            v.keys,
            violations
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        v
    }
}

/// What [`Ledger::verify`] found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verified {
    /// Keys read back.
    pub keys: usize,
    /// Keys holding only acknowledged writes.
    pub exact: usize,
    /// Keys also holding a write whose outcome was ambiguous.
    pub ambiguous: usize,
    /// Values read back, over all keys.
    pub values: usize,
    /// Acknowledged writes found (each once).
    pub acked: usize,
    /// Ambiguous writes found (each once), and not found.
    pub maybe_present: usize,
    pub maybe_absent: usize,
}

/// Reads keys with plain connections from whichever master serves them, following `MOVED`
/// and `ASK`, retrying while the cluster settles.
pub struct Reader<'a> {
    cluster: &'a LocalCluster,
    conns: HashMap<u16, Conn>,
    opts: ConnOptions,
}

impl<'a> Reader<'a> {
    pub fn new(cluster: &'a LocalCluster) -> Reader<'a> {
        let mut opts = ConnOptions::from_config(&cluster.config());
        opts.read_timeout = Duration::from_secs(5);
        opts.dial_timeout = Duration::from_millis(500);
        Reader {
            cluster,
            conns: HashMap::new(),
            opts,
        }
    }

    fn conn(&mut self, port: u16) -> Option<&mut Conn> {
        if self.conns.get(&port).is_some_and(Conn::is_broken) {
            self.conns.remove(&port);
        }
        if !self.conns.contains_key(&port) {
            let conn = Conn::connect(&NodeAddr::new("127.0.0.1", port), &self.opts).ok()?;
            self.conns.insert(port, conn);
        }
        self.conns.get_mut(&port)
    }

    /// `GET key` from the master serving it. Panics if no answer comes within 30 s.
    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.read(key, redis::cmd("GET").arg(key)) {
            redis::Value::BulkString(v) => Some(v),
            redis::Value::Nil => None,
            other => panic!("GET {} returned {other:?}", String::from_utf8_lossy(key)),
        }
    }

    /// `LRANGE key 0 -1` from the master serving it: the whole list, empty when the key is
    /// missing. Panics if no answer comes within 30 s.
    pub fn lrange(&mut self, key: &[u8]) -> Vec<Vec<u8>> {
        let name = String::from_utf8_lossy(key);
        match self.read(key, redis::cmd("LRANGE").arg(key).arg(0).arg(-1)) {
            redis::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    redis::Value::BulkString(v) => v,
                    other => panic!("LRANGE {name} returned an item {other:?}"),
                })
                .collect(),
            other => panic!("LRANGE {name} returned {other:?}"),
        }
    }

    /// Sends `cmd` (about `key`) to the master serving `key`, following redirects; returns
    /// the first reply that is not an error. Panics if none comes within 30 s.
    fn read(&mut self, key: &[u8], cmd: &redis::Cmd) -> redis::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<u16> = running_ports(self.cluster);
        let mut next = running[0];
        let mut asking = false;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            assert!(
                Instant::now() < deadline,
                "no node answered for {} within 30 s",
                String::from_utf8_lossy(key)
            );
            let Some(conn) = self.conn(next) else {
                next = running[attempt % running.len()];
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            if asking {
                let _ = conn.query(&redis::cmd("ASKING"));
                asking = false;
            }
            let reply = match conn.query(cmd) {
                Ok(reply) => reply,
                Err(_) => {
                    self.conns.remove(&next);
                    next = running[attempt % running.len()];
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            match reply {
                Ok(value) => return value,
                Err(e) if e.code() == "MOVED" || e.code() == "ASK" => {
                    let text = format!("{} {}", e.code(), e.details().unwrap_or(""));
                    let redirect = Redirect::parse(&text).expect("a well-formed redirect");
                    asking = redirect.kind() == RedirectKind::Ask;
                    next = redirect.target("127.0.0.1").port();
                }
                Err(e)
                    if ["CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN"].contains(&e.code()) =>
                {
                    // The cluster is settling.
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "reading {} back: {} {}",
                    String::from_utf8_lossy(key),
                    e.code(),
                    e.details().unwrap_or("")
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Committer threads
// ---------------------------------------------------------------------------------------------

/// What one committer thread does.
#[derive(Clone, Debug)]
pub struct Worker {
    /// A label the test gives (the master group the keys belong to, or 0).
    pub group: usize,
    /// The keys it writes, in turn.
    pub keys: Vec<Vec<u8>>,
}

/// Phases a test can mark with [`Load::set_phase`]; outcomes are also counted per phase.
pub const PHASES: usize = 4;

/// What one committer thread saw.
#[derive(Debug, Default)]
pub struct Report {
    pub thread: usize,
    pub group: usize,
    pub calls: u64,
    pub tally: Tally,
    pub ledger: Ledger,
    /// Every commit, in order (empty when events are not recorded).
    pub events: Vec<Event>,
    pub max_latency: Duration,
    /// Outcomes by the phase in which the commit started.
    pub phase_tally: [Tally; PHASES],
    /// Longest commit by the phase in which it started.
    pub phase_max_latency: [Duration; PHASES],
    /// When (from the load's start) the first `Ok` of each phase ended.
    pub phase_first_ok: [Option<Duration>; PHASES],
}

/// What a committer thread shows while it runs, for the test to wait on.
#[derive(Debug, Default)]
struct Progress {
    group: usize,
    /// The phase of the commit it started last.
    started_phase: AtomicUsize,
    /// When its last `Ok` ended, in microseconds from the load's start, plus one (0: none).
    last_ok_us: AtomicU64,
}

/// Loads started in this process: part of every value, so that no two loads write the same.
static LOADS: AtomicU64 = AtomicU64::new(0);

/// Committer threads running until stopped.
pub struct Load {
    pub t0: Instant,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    progress: Arc<Vec<Progress>>,
    handles: Vec<JoinHandle<Report>>,
}

impl Load {
    /// Starts one thread per worker. Each appends `RPUSH key "<load>.<thread>.<seq>"`, a value
    /// unique to the write, cycling over its keys, pausing `pace` between commits, and records
    /// what it was told in its [`Ledger`].
    pub fn start(client: &Arc<Client>, workers: Vec<Worker>, pace: Duration, events: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let load = LOADS.fetch_add(1, Ordering::Relaxed);
        let progress: Arc<Vec<Progress>> = Arc::new(
            workers
                .iter()
                .map(|w| Progress {
                    group: w.group,
                    ..Progress::default()
                })
                .collect(),
        );
        let t0 = Instant::now();
        let handles = workers
            .into_iter()
            .enumerate()
            .map(|(t, worker)| {
                let client = Arc::clone(client);
                let stop = Arc::clone(&stop);
                let phase = Arc::clone(&phase);
                let progress = Arc::clone(&progress);
                thread::Builder::new()
                    .name(format!("committer-{t}"))
                    .spawn(move || {
                        let me = &progress[t];
                        let prefix = format!("{load}.{t}.");
                        let mut report = Report {
                            thread: t,
                            group: worker.group,
                            ..Report::default()
                        };
                        let mut seq = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let key = &worker.keys[(seq as usize) % worker.keys.len()];
                            let value = format!("{prefix}{seq}");
                            let p = phase.load(Ordering::SeqCst).min(PHASES - 1);
                            me.started_phase.store(p, Ordering::SeqCst);
                            let start = Instant::now();
                            let result =
                                match client.commit_cmd(redis::cmd("RPUSH").arg(key).arg(&value)) {
                                    Ok(redis::Value::Int(n)) if n >= 1 => Ok(()),
                                    Ok(other) => panic!(
                                        "RPUSH {} answered {other:?}",
                                        String::from_utf8_lossy(key)
                                    ),
                                    Err(e) => Err(e),
                                };
                            let end = Instant::now();
                            report.calls += 1;
                            report.tally.add(&result);
                            report.phase_tally[p].add(&result);
                            report.ledger.record(key, &prefix, seq, p, &result);
                            let latency = end - start;
                            report.max_latency = report.max_latency.max(latency);
                            report.phase_max_latency[p] = report.phase_max_latency[p].max(latency);
                            if result.is_ok() {
                                if report.phase_first_ok[p].is_none() {
                                    report.phase_first_ok[p] = Some(end - t0);
                                }
                                let us = (end - t0).as_micros() as u64 + 1;
                                me.last_ok_us.store(us, Ordering::SeqCst);
                            }
                            if events {
                                report.events.push(Event {
                                    end: end - t0,
                                    latency,
                                    kind: Kind::of(&result),
                                });
                            }
                            seq += 1;
                            if !pace.is_zero() {
                                thread::sleep(pace);
                            }
                        }
                        report
                    })
                    .expect("spawn a committer")
            })
            .collect();
        Load {
            t0,
            stop,
            phase,
            progress,
            handles,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Commits started from now on count under `phase` (`0..PHASES`).
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Waits until every thread has started a commit in `phase` or later, so that none is
    /// still inside a commit of an earlier phase, for at most `timeout`. Returns whether it
    /// happened.
    pub fn wait_started_in(&self, phase: usize, timeout: Duration) -> bool {
        poll_until(timeout, || {
            self.progress
                .iter()
                .all(|p| p.started_phase.load(Ordering::SeqCst) >= phase)
        })
    }

    /// Waits until every thread (of `group`, when given) has had a commit acknowledged that
    /// ended after `after` (from the load's start), for at most `timeout`. Returns when that
    /// happened (from the load's start), or `None` at the timeout.
    pub fn wait_committed_after(
        &self,
        group: Option<usize>,
        after: Duration,
        timeout: Duration,
    ) -> Option<Duration> {
        let after_us = after.as_micros() as u64 + 1;
        poll_until(timeout, || {
            self.progress
                .iter()
                .filter(|p| group.is_none_or(|g| p.group == g))
                .all(|p| p.last_ok_us.load(Ordering::SeqCst) > after_us)
        })
        .then(|| self.now())
    }

    /// Stops every thread and joins it; panics naming the threads still running after
    /// `timeout` (a hung commit).
    pub fn stop(self, timeout: Duration) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.handles.iter().any(|h| !h.is_finished()) {
            thread::sleep(Duration::from_millis(5));
        }
        let hung: Vec<usize> = self
            .handles
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_finished())
            .map(|(t, _)| t)
            .collect();
        assert!(
            hung.is_empty(),
            "committer threads {hung:?} still inside commit {timeout:?} after the stop"
        );
        self.handles
            .into_iter()
            .map(|h| h.join().expect("a committer thread panicked"))
            .collect()
    }
}

/// Polls `done` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Merges the reports' tallies and ledgers.
pub fn totals(reports: &[Report]) -> (Tally, Ledger, u64) {
    let mut tally = Tally::default();
    let mut ledger = Ledger::default();
    let mut calls = 0;
    for r in reports {
        tally.merge(&r.tally);
        ledger.merge(r.ledger.clone());
        calls += r.calls;
    }
    (tally, ledger, calls)
}

/// Waits until the client's metrics account for `calls` outcomes (ops a caller gave up on are
/// counted when their writer drops them), for at most `timeout`; returns the last count.
pub fn metrics_outcomes(client: &Client, calls: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let t = client.metrics().total;
        let n = t.commits + t.rejections + t.drops + t.timeouts + t.errors.total();
        if n >= calls || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduling lag and open-loop writers
// ---------------------------------------------------------------------------------------------

/// A thread that sleeps 5 ms at a time and records by how much it overslept: how late this
/// machine runs a thread that is due, measured in the same run as the figures it excuses. On
/// an idle machine the worst lag is a few milliseconds; on a loaded two-core machine it can
/// reach hundreds.
pub struct Lag {
    stop: Arc<AtomicBool>,
    worst_us: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Lag {
    pub fn start() -> Lag {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_us = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, worst_us) = (Arc::clone(&stop), Arc::clone(&worst_us));
            thread::Builder::new()
                .name("lag-probe".into())
                .spawn(move || {
                    let tick = Duration::from_millis(5);
                    while !stop.load(Ordering::Relaxed) {
                        let begun = Instant::now();
                        thread::sleep(tick);
                        let late = begun.elapsed().saturating_sub(tick);
                        worst_us.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                    }
                })
                .expect("spawn the lag probe")
        };
        Lag {
            stop,
            worst_us,
            handle: Some(handle),
        }
    }

    /// The worst lag seen so far.
    pub fn worst(&self) -> Duration {
        Duration::from_micros(self.worst_us.load(Ordering::Relaxed))
    }
}

impl Drop for Lag {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What an [`OpenLoop`] thread saw.
#[derive(Debug, Default)]
pub struct OpenLoopReport {
    /// Futures created.
    pub created: u64,
    /// Their outcomes (those still pending at the stop are not counted).
    pub tally: Tally,
}

/// Open-loop writers: threads that create `commit_async` futures without waiting for them
/// (the op is queued, or refused, at its first poll), keep the pending ones and poll them again
/// now and then, so that the number of writes outstanding is up to the client, not to its
/// callers. A client whose queues are bounded keeps that number at its queues' capacity; an
/// unbounded queue anywhere would let it grow with the rate and show in memory.
pub struct OpenLoop {
    stop: Arc<AtomicBool>,
    /// Futures pending after each thread's last sweep, summed over the threads.
    outstanding: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<OpenLoopReport>>,
}

/// Futures an [`OpenLoop`] thread creates between two sweeps of its pending ones.
pub const SWEEP: usize = 64;

impl OpenLoop {
    /// Starts `threads` writers of `value` to keys `<prefix>{<thread>-<i>}`, each pausing
    /// 1 ms after every `burst` futures (0: never).
    pub fn start(
        client: &Arc<Client>,
        threads: usize,
        prefix: &str,
        value: &[u8],
        burst: usize,
    ) -> OpenLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let handles =
            (0..threads)
                .map(|t| {
                    let (client, stop, outstanding) = (
                        Arc::clone(client),
                        Arc::clone(&stop),
                        Arc::clone(&outstanding),
                    );
                    let (prefix, value) = (prefix.to_owned(), value.to_vec());
                    thread::Builder::new()
                        .name(format!("open-loop-{t}"))
                        .spawn(move || {
                            let mut cx = Context::from_waker(Waker::noop());
                            let mut report = OpenLoopReport::default();
                            let mut pending: Vec<CommitFuture> = Vec::new();
                            let mut published = 0usize;
                            let mut poll = |fut: &mut CommitFuture, report: &mut OpenLoopReport| {
                                match Pin::new(fut).poll(&mut cx) {
                                    Poll::Ready(result) => {
                                        report.tally.add(&result);
                                        true
                                    }
                                    Poll::Pending => false,
                                }
                            };
                            let mut i = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                let key = format!("{prefix}{{{t}-{i}}}");
                                let mut fut = client.commit_async(key.as_bytes(), &value);
                                report.created += 1;
                                if !poll(&mut fut, &mut report) {
                                    pending.push(fut);
                                }
                                i += 1;
                                if i % SWEEP as u64 == 0 {
                                    pending.retain_mut(|f| !poll(f, &mut report));
                                    // Exact for this thread: every future left was just polled.
                                    let now = pending.len();
                                    if now >= published {
                                        outstanding.fetch_add(now - published, Ordering::SeqCst);
                                    } else {
                                        outstanding.fetch_sub(published - now, Ordering::SeqCst);
                                    }
                                    published = now;
                                }
                                if burst > 0 && i % burst as u64 == 0 {
                                    thread::sleep(Duration::from_millis(1));
                                }
                            }
                            outstanding.fetch_sub(published, Ordering::SeqCst);
                            // Dropping the rest abandons what was not sent.
                            report
                        })
                        .expect("spawn an open-loop writer")
                })
                .collect();
        OpenLoop {
            stop,
            outstanding,
            handles,
        }
    }

    /// Futures pending at the threads' last sweeps (each at most [`SWEEP`] futures old).
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Stops the threads and merges their reports.
    pub fn stop(self) -> OpenLoopReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = OpenLoopReport::default();
        for h in self.handles {
            let r = h.join().expect("an open-loop writer panicked");
            total.created += r.created;
            total.tally.merge(&r.tally);
        }
        total
    }
}

/// How many writes the client can hold at once, by its own configuration: every master's
/// ring (`Config::master_capacity` of the slots it serves), plus, per master, its link's window
/// (`max_batch × pipeline_depth` in flight) and as many again waiting to be resent, and the
/// op a link holds between its ring and a batch.
pub fn client_bound(config: &Config, map: &[u16]) -> usize {
    let window = config.batching.max_batch * config.batching.pipeline_depth;
    masters_by_slot(map)
        .iter()
        .map(|&(_, slots)| config.master_capacity(slots) + 2 * window + 1)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Cluster probes
// ---------------------------------------------------------------------------------------------

/// Ports of the nodes whose process runs.
pub fn running_ports(cluster: &LocalCluster) -> Vec<u16> {
    cluster
        .nodes()
        .iter()
        .filter(|n| n.pid.is_some())
        .map(|n| n.port)
        .collect()
}

/// The index of the node on `port`.
pub fn node_index(cluster: &LocalCluster, port: u16) -> usize {
    cluster
        .nodes()
        .iter()
        .position(|n| n.port == port)
        .unwrap_or_else(|| panic!("no node on port {port}"))
}

/// The port of the master serving each slot (0 for a hole), as node `i` sees it, from
/// `CLUSTER SLOTS`.
pub fn slot_map_from(cluster: &LocalCluster, i: usize) -> Option<Vec<u16>> {
    let reply = cluster.query(i, redis::cmd("CLUSTER").arg("SLOTS")).ok()?;
    let redis::Value::Array(entries) = reply.ok()? else {
        return None;
    };
    let mut map = vec![0u16; 16384];
    for entry in entries {
        let redis::Value::Array(items) = entry else {
            return None;
        };
        let (Some(redis::Value::Int(start)), Some(redis::Value::Int(end))) =
            (items.first(), items.get(1))
        else {
            return None;
        };
        let Some(redis::Value::Array(master)) = items.get(2) else {
            return None;
        };
        let Some(redis::Value::Int(port)) = master.get(1) else {
            return None;
        };
        for slot in *start..=*end {
            map[slot as usize] = *port as u16;
        }
    }
    Some(map)
}

/// The slot map as the first running node that answers sees it.
pub fn slot_map(cluster: &LocalCluster) -> Vec<u16> {
    for (i, n) in cluster.nodes().iter().enumerate() {
        if n.pid.is_some() {
            if let Some(map) = slot_map_from(cluster, i) {
                return map;
            }
        }
    }
    panic!("no running node answers CLUSTER SLOTS")
}

/// The masters serving slots, ordered by their first slot, with how many slots each serves.
pub fn masters_by_slot(map: &[u16]) -> Vec<(u16, usize)> {
    let mut out: Vec<(u16, usize)> = Vec::new();
    for &port in map.iter().filter(|&&p| p != 0) {
        match out.iter_mut().find(|(p, _)| *p == port) {
            Some(entry) => entry.1 += 1,
            None => out.push((port, 1)),
        }
    }
    out
}

/// `n` keys `<prefix>{<i>}` that the master on `port` serves.
pub fn keys_on(map: &[u16], port: u16, prefix: &str, n: usize) -> Vec<Vec<u8>> {
    keys_where(prefix, n, |slot| map[usize::from(slot)] == port)
}

/// `n` keys `<prefix>{<i>}` whose slots pass `pick`.
pub fn keys_where(prefix: &str, n: usize, pick: impl Fn(u16) -> bool) -> Vec<Vec<u8>> {
    let mut keys = Vec::with_capacity(n);
    let mut i = 0u64;
    while keys.len() < n {
        let key = format!("{prefix}{{{i}}}").into_bytes();
        if pick(key_slot(&key).get()) {
            keys.push(key);
        }
        i += 1;
        assert!(i < 10_000_000, "no keys found for {prefix}");
    }
    keys
}

/// The node `i`'s `CLUSTER MYID`.
pub fn node_id(cluster: &LocalCluster, i: usize) -> String {
    match cluster.query(i, redis::cmd("CLUSTER").arg("MYID")) {
        Ok(Ok(redis::Value::BulkString(b))) => String::from_utf8(b).expect("utf-8 id"),
        other => panic!("CLUSTER MYID on node {i}: {other:?}"),
    }
}

/// The nodes replicating the master on `port`, from their `INFO replication`.
pub fn replicas_of(cluster: &LocalCluster, port: u16) -> Vec<usize> {
    let needle = format!("master_port:{port}");
    cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.pid.is_some() && n.port != port)
        .filter(|(i, _)| {
            cluster
                .cli(*i, &["INFO", "replication"])
                .map(|info| {
                    info.contains("role:slave") && info.lines().any(|l| l.trim_end() == needle)
                })
                .unwrap_or(false)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Waits until every slot is served by a running node that says it is a master, as a running
/// node sees the map. Returns how long it took, or `None` at `timeout`.
pub fn wait_slots_served(cluster: &LocalCluster, timeout: Duration) -> Option<Duration> {
    let begun = Instant::now();
    loop {
        if slots_served(cluster) {
            return Some(begun.elapsed());
        }
        if begun.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn slots_served(cluster: &LocalCluster) -> bool {
    let running = running_ports(cluster);
    let Some(first) = running.first() else {
        return false;
    };
    let Some(map) = slot_map_from(cluster, node_index(cluster, *first)) else {
        return false;
    };
    if map.contains(&0) {
        return false;
    }
    masters_by_slot(&map).iter().all(|(port, _)| {
        running.contains(port)
            && cluster
                .live_role(node_index(cluster, *port))
                .is_ok_and(|r| r == Role::Master)
    })
}

/// This process's resident set size in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The `q` quantile of `values` (sorted in place); zero when empty.
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

/// The longest stretch with no `Ok` among `events` (sorted by end) within `[from, to]`:
/// `(start, end)` of the gap, measured from the load's start.
pub fn longest_ok_gap(events: &[Event], from: Duration, to: Duration) -> (Duration, Duration) {
    let mut oks: Vec<Duration> = events
        .iter()
        .filter(|e| e.kind == Kind::Ok)
        .map(|e| e.end)
        .collect();
    oks.sort_unstable();
    let mut last = from;
    let mut best = (from, from);
    for &t in oks.iter().filter(|&&t| t > from && t <= to) {
        if t - last > best.1 - best.0 {
            best = (last, t);
        }
        last = t;
    }
    if to > last && to - last > best.1 - best.0 {
        best = (last, to);
    }
    best
}

/// Redis's `CLIENT PAUSE ms WRITE` on node `i`.
pub fn client_pause_write(cluster: &LocalCluster, i: usize, pause: Duration) {
    let reply = cluster
        .query(
            i,
            redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(pause.as_millis() as u64)
                .arg("WRITE"),
        )
        .expect("CLIENT PAUSE");
    assert!(reply.is_ok(), "CLIENT PAUSE: {reply:?}");
}

/// `redis-cli --cluster reshard`: moves `slots` slots from node `from` to node `to`.
/// Returns how long it took.
pub fn reshard(
    cluster: &LocalCluster,
    from: usize,
    to: usize,
    slots: usize,
) -> Result<Duration, String> {
    let (from_id, to_id) = (node_id(cluster, from), node_id(cluster, to));
    let entry = format!("127.0.0.1:{}", cluster.nodes()[from].port);
    let slots = slots.to_string();
    let begun = Instant::now();
    let out = cluster
        .cli(
            from,
            &[
                "--cluster",
                "reshard",
                &entry,
                "--cluster-from",
                &from_id,
                "--cluster-to",
                &to_id,
                "--cluster-slots",
                &slots,
                "--cluster-yes",
            ],
        )
        .map_err(|e| e.to_string())?;
    if out.contains("[ERR]") {
        return Err(out);
    }
    Ok(begun.elapsed())
}

/// Prints `label: value` lines the way the test reports its figures.
pub fn figure(test: &str, label: &str, value: impl std::fmt::Display) {
    eprintln!("[{test}] {label}: {value}");
}

/// Formats a duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
