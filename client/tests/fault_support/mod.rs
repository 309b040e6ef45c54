//! What the fault tests share: committer threads that remember every outcome, the ledger that
//! checks "acknowledged ⊆ present" against the cluster, slot-map and role probes read with
//! plain connections, and small timing helpers.
//!
//! Each `fault_*.rs` binary includes this module; not every binary uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use slotline_client::conn::{Conn, ConnOptions};
use slotline_client::{Client, CommitError, NodeAddr};
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
// The ledger: acknowledged ⊆ present
// ---------------------------------------------------------------------------------------------

/// What the cluster may hold for one key.
#[derive(Clone, Debug, Default)]
pub struct KeyState {
    /// The value of the last write acknowledged (`Ok`).
    pub acked: Option<String>,
    /// Values of later writes whose outcome is unknown (`may_have_been_applied`): each may or
    /// may not be there.
    pub maybe: Vec<String>,
    /// The load phase (see [`Load::set_phase`]) in which `acked` was written.
    pub acked_phase: usize,
}

/// Per key, the last acknowledged value and the ambiguous writes after it. A thread owns its
/// keys, so a key's writes are sequential and "later" is well defined.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub keys: HashMap<Vec<u8>, KeyState>,
}

impl Ledger {
    pub fn record(
        &mut self,
        key: &[u8],
        value: String,
        phase: usize,
        result: &Result<(), CommitError>,
    ) {
        let state = self.keys.entry(key.to_vec()).or_default();
        match result {
            Ok(()) => {
                state.acked = Some(value);
                state.acked_phase = phase;
                state.maybe.clear();
            }
            Err(e) if e.may_have_been_applied() => state.maybe.push(value),
            Err(_) => {}
        }
    }

    pub fn merge(&mut self, other: Ledger) {
        self.keys.extend(other.keys);
    }

    /// Only the keys last acknowledged in `phase` or later (the cluster lost what came before,
    /// such as after a restart without persistence).
    pub fn acked_since(&self, phase: usize) -> Ledger {
        Ledger {
            keys: self
                .keys
                .iter()
                .filter(|(_, s)| s.acked.is_some() && s.acked_phase >= phase)
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
        }
    }

    /// Reads every key back from the current masters and checks that the last acknowledged
    /// value (or a later ambiguous one) is there. Panics with the violations.
    pub fn verify(&self, cluster: &LocalCluster, what: &str) -> Verified {
        let mut reader = Reader::new(cluster);
        let mut v = Verified::default();
        let mut violations = Vec::new();
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, state) in keys {
            if state.acked.is_none() && state.maybe.is_empty() {
                continue;
            }
            v.keys += 1;
            let present = reader.get(key);
            let present = present
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let exact = present.is_some() && present == state.acked;
            let ambiguous = present
                .as_ref()
                .is_some_and(|p| state.maybe.iter().any(|m| m == p))
                || (state.acked.is_none() && present.is_none());
            if exact {
                v.exact += 1;
            } else if ambiguous {
                v.ambiguous += 1;
            } else {
                violations.push(format!(
                    "{}: present {:?}, last acknowledged {:?}, ambiguous after it {:?}",
                    String::from_utf8_lossy(key),
                    present,
                    state.acked,
                    state.maybe
                ));
            }
        }
        assert!(
            violations.is_empty(),
            "{what}: {} of {} keys lost an acknowledged write, e.g.:\n{}",
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
    /// Keys checked.
    pub keys: usize,
    /// Keys holding their last acknowledged value.
    pub exact: usize,
    /// Keys holding a later write whose outcome was ambiguous.
    pub ambiguous: usize,
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<u16> = running_ports(self.cluster);
        let mut next = running[0];
        let mut asking = false;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            assert!(
                Instant::now() < deadline,
                "no node answered GET {} within 30 s",
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
            let reply = match conn.query(redis::cmd("GET").arg(key)) {
                Ok(reply) => reply,
                Err(_) => {
                    self.conns.remove(&next);
                    next = running[attempt % running.len()];
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            match reply {
                Ok(redis::Value::BulkString(v)) => return Some(v),
                Ok(redis::Value::Nil) => return None,
                Ok(other) => panic!("GET {} returned {other:?}", String::from_utf8_lossy(key)),
                Err(e) if e.code() == "MOVED" || e.code() == "ASK" => {
                    let text = format!("{} {}", e.code(), e.details().unwrap_or(""));
                    let redirect = Redirect::parse(&text).expect("a well-formed redirect");
                    asking = redirect.kind() == RedirectKind::Ask;
                    next = redirect.target("127.0.0.1").port();
                }
                Err(_) => {
                    // CLUSTERDOWN, TRYAGAIN, LOADING: the cluster is settling.
                    thread::sleep(Duration::from_millis(50));
                }
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

/// Committer threads running until stopped.
pub struct Load {
    pub t0: Instant,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<Report>>,
}

impl Load {
    /// Starts one thread per worker. Each writes `SET key "<thread>.<seq>"` with a value unique
    /// to the write, cycling over its keys, pausing `pace` between commits.
    pub fn start(client: &Arc<Client>, workers: Vec<Worker>, pace: Duration, events: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let handles = workers
            .into_iter()
            .enumerate()
            .map(|(t, worker)| {
                let client = Arc::clone(client);
                let stop = Arc::clone(&stop);
                let phase = Arc::clone(&phase);
                thread::Builder::new()
                    .name(format!("committer-{t}"))
                    .spawn(move || {
                        let mut report = Report {
                            thread: t,
                            group: worker.group,
                            ..Report::default()
                        };
                        let mut seq = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let key = &worker.keys[(seq as usize) % worker.keys.len()];
                            let value = format!("{t}.{seq}");
                            let p = phase.load(Ordering::Relaxed).min(PHASES - 1);
                            let start = Instant::now();
                            let result = client.commit(key, value.as_bytes());
                            let end = Instant::now();
                            report.calls += 1;
                            report.tally.add(&result);
                            report.phase_tally[p].add(&result);
                            report.ledger.record(key, value, p, &result);
                            let latency = end - start;
                            report.max_latency = report.max_latency.max(latency);
                            report.phase_max_latency[p] = report.phase_max_latency[p].max(latency);
                            if result.is_ok() && report.phase_first_ok[p].is_none() {
                                report.phase_first_ok[p] = Some(end - t0);
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
            handles,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Commits started from now on count under `phase` (`0..PHASES`).
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
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
