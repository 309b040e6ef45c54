//! The open-loop replay: offer every event of a trace at its time, through one write path.
//!
//! # Open loop, no coordinated omission
//!
//! A fixed pool of caller threads takes events in trace order (one shared atomic index),
//! waits until each event's scheduled time and offers it, without waiting for earlier writes
//! to finish: a write is offered when the trace says, whatever the path is doing. Every
//! latency is measured from the event's *scheduled* time, so time spent waiting for a caller
//! thread, for a socket, or for CPU counts against the path.
//!
//! - **slotline**: a caller calls [`Client::commit_cmd_async`] and keeps the future; each
//!   caller thread is a small executor that polls its futures when their waker fires (or every
//!   50 ms, for deadlines). The caller sees the outcome when Redis replied (or when
//!   backpressure refused the write), so caller latency *is* "until in Redis".
//! - **sidecar**: each caller thread owns one TCP connection to the proxy. It writes one
//!   command per event; a reader thread on the same connection matches the replies, in order.
//!   The caller latency ends at `+OK` (the proxy's enqueue); "until in Redis" ends when the
//!   proxy's flush batch holding the write was confirmed, which the proxy reports.
//!
//! Every write is `HSET <key> <seq> <payload>`, `seq` being the event's index in the trace:
//! one field per write, so that the read-back can check every write, not only the last one
//! per key ([`super::readback`]). The payload is unique too, `<seq>|<lat>,<lon>|` padded to
//! the event's size; the sidecar reads `seq` from it to report when each write was confirmed.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use slotline_client::{Client, CommitError, ReplyFuture};

use super::readback::field_name;
use super::sidecar::{own_kernel_bytes, read_status_kib, unix_us};
use super::trace::Trace;

/// What became of one offered write, as its caller saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Not offered yet, or no answer (never left at the end of a finished replay).
    #[default]
    Pending,
    /// Acknowledged.
    Ok,
    /// Refused with an error; the write was not applied.
    Refused,
    /// Failed with an error after which the write may still have been applied.
    Unknown,
}

/// One offered write's timings, microseconds from the start of the replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// When the caller actually offered it (≥ its scheduled time).
    pub send_us: u64,
    /// When the caller learned the outcome.
    pub done_us: u64,
    /// The outcome.
    pub outcome: Outcome,
}

/// A sample of a path's pending writes over time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepthSample {
    /// Microseconds from the start of the replay.
    pub t_us: u64,
    /// Writes accepted by the path and not yet confirmed by Redis.
    pub depth: u64,
    /// Bytes those writes occupy in the path's own buffers.
    pub bytes: u64,
    /// Bytes in the path's sockets' kernel queues (0 if not sampled).
    pub kernel_bytes: u64,
    /// The `burst` process's resident set (`VmRSS`), KiB, where this sample read it
    /// (every 100 ms); the callers and any in-process client live there.
    pub rss_kib: Option<u64>,
    /// The sidecar proxy process's resident set (`VmRSS`), KiB (sidecar path only).
    pub proxy_rss_kib: Option<u64>,
}

/// A reading of the resident sets on a path, taken by [`sample_rss`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssSample {
    /// When, microseconds since the Unix epoch.
    pub unix_us: u64,
    /// This process's `VmRSS`, KiB (`None` if unreadable).
    pub rss_kib: Option<u64>,
    /// The other process's `VmRSS`, KiB (`None` if none was given or it is gone).
    pub other_kib: Option<u64>,
}

/// Reads this process's resident set, and `other`'s if given (a process id), every 100 ms
/// until `stop` is set; one [`RssSample`] per reading (at most 10 a second, so bounded by the
/// run's length).
pub fn sample_rss(other: Option<u32>, stop: &AtomicBool) -> Vec<RssSample> {
    let other = other.map(|pid| pid.to_string());
    let mut samples = Vec::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        samples.push(RssSample {
            unix_us: unix_us(),
            rss_kib: read_status_kib("self", "VmRSS"),
            other_kib: other
                .as_deref()
                .and_then(|pid| read_status_kib(pid, "VmRSS")),
        });
        thread::sleep(Duration::from_millis(100));
    }
    samples
}

/// Gives each sample of `samples` (sorted by time, microseconds since `start_unix_us`) the
/// latest reading of `rss` (sorted by time) taken at or before it, or the first reading for
/// samples older than every reading: this process's as `rss_kib`, the other's as
/// `proxy_rss_kib`.
pub fn attach_rss(samples: &mut [DepthSample], rss: &[RssSample], start_unix_us: u64) {
    let mut next = 0;
    for s in samples.iter_mut() {
        let at = start_unix_us + s.t_us;
        while next < rss.len() && rss[next].unix_us <= at {
            next += 1;
        }
        if let Some(r) = rss.get(next.saturating_sub(1)) {
            s.rss_kib = r.rss_kib;
            s.proxy_rss_kib = r.other_kib;
        }
    }
}

/// What a replay shares with the progress display while it runs.
#[derive(Debug, Default)]
pub struct Tally {
    /// Writes offered so far.
    pub offered: AtomicUsize,
    /// Writes the path is done with so far, as last sampled: answered or refused (clients),
    /// executed by Redis (sidecar). Lags `offered` by what the path holds.
    pub settled: AtomicUsize,
}

/// The raw outcome of replaying one trace through one path.
#[derive(Clone, Debug, Default)]
pub struct PathRun {
    /// Wall-clock time of the replay's start, microseconds since the Unix epoch.
    pub start_unix_us: u64,
    /// One record per event, by index.
    pub records: Vec<Record>,
    /// Pending writes over time.
    pub samples: Vec<DepthSample>,
    /// Error outcomes the callers saw, by kind (`rejected`, `dropped`, `queue full`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Failures after an acknowledgement, by kind (sidecar: Redis refused a write it had
    /// acknowledged, or it was still queued when the proxy was stopped). No caller saw them.
    pub after_ack: BTreeMap<String, u64>,
    /// Until-in-Redis time per acknowledged write, when it differs from `done_us` (sidecar):
    /// microseconds from the start of the replay, by event index; `None` if never confirmed.
    pub in_redis_us: Option<Vec<Option<u64>>>,
    /// The caller process's resident set when the replay started (`VmRSS`), KiB.
    pub caller_base_rss_kib: u64,
    /// Its peak resident set during the replay (`VmHWM`, reset at the start), KiB.
    pub caller_peak_rss_kib: u64,
}

/// Writes the unique value of write `seq` into `out`: `<seq>|<lat>,<lon>|`, padded with `.`
/// to `bytes` bytes (longer if `bytes` is too small to hold the prefix).
pub fn payload(seq: u64, bytes: u32, out: &mut Vec<u8>) {
    out.clear();
    // A deterministic position in a 1°×1° square over Berlin.
    let h = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let lat = 52.0 + (h >> 40) as f64 / f64::from(1u32 << 24);
    let lon = 13.0 + (h & 0xFF_FFFF) as f64 / f64::from(1u32 << 24);
    write!(out, "{seq}|{lat:.6},{lon:.6}|").expect("writing to a Vec");
    if out.len() < bytes as usize {
        out.resize(bytes as usize, b'.');
    }
}

/// The sequence number a value written by [`payload`] starts with.
pub fn seq_of(value: &[u8]) -> Option<u64> {
    let end = value.iter().position(|&b| b == b'|')?;
    std::str::from_utf8(&value[..end]).ok()?.parse().ok()
}

/// Shared by the caller threads of one replay.
pub(super) struct Schedule<'a> {
    pub(super) trace: &'a Trace,
    pub(super) start: Instant,
    next: AtomicUsize,
    /// Writes offered and settled so far (for the progress bar).
    pub(super) tally: &'a Tally,
}

impl<'a> Schedule<'a> {
    /// A schedule for `trace` whose time zero is now.
    pub(super) fn new(trace: &'a Trace, tally: &'a Tally) -> Self {
        Schedule {
            trace,
            start: Instant::now(),
            next: AtomicUsize::new(0),
            tally,
        }
    }

    pub(super) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The next event to offer, if any.
    fn claim(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.trace.events.len()).then_some(i)
    }

    /// Sleeps until `t_us`, coarsely, then yields until it has come.
    pub(super) fn wait_until(&self, t_us: u64) -> u64 {
        loop {
            let now = self.now_us();
            if now >= t_us {
                return now;
            }
            let left = t_us - now;
            if left > 300 {
                thread::sleep(Duration::from_micros(left - 200));
            } else {
                thread::yield_now();
            }
        }
    }
}

/// The error kind of a slotline commit failure, and whether it may have been applied.
fn commit_error_kind(e: &CommitError) -> (&'static str, Outcome) {
    let outcome = if e.may_have_been_applied() {
        Outcome::Unknown
    } else {
        Outcome::Refused
    };
    let kind = match e {
        CommitError::Rejected => "rejected (backpressure)",
        CommitError::Dropped => "dropped (drop_oldest)",
        CommitError::DeadlineExceeded { .. } => "deadline exceeded",
        CommitError::Server { .. } => "server error",
        CommitError::ReplicationShortfall { .. } => "replication shortfall",
        CommitError::ConnectionLost { .. } => "connection lost",
        CommitError::Closed => "closed",
        _ => "other",
    };
    (kind, outcome)
}

/// Wakes a caller thread's executor: pushes the future's slot id and unparks the thread.
struct SlotWake {
    id: usize,
    list: Arc<WakeList>,
}

struct WakeList {
    ids: Mutex<Vec<usize>>,
    thread: Thread,
}

impl Wake for SlotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.list.ids.lock().expect("not poisoned").push(self.id);
        self.list.thread.unpark();
    }
}

/// A commit in flight on a caller thread.
struct InFlight {
    fut: ReplyFuture,
    waker: Waker,
    idx: usize,
    send_us: u64,
}

/// What one caller thread brings back.
#[derive(Default)]
struct CallerResult {
    records: Vec<(usize, Record)>,
    errors: BTreeMap<String, u64>,
}

impl CallerResult {
    fn finish(&mut self, idx: usize, send_us: u64, done_us: u64, result: Result<(), &CommitError>) {
        let outcome = match result {
            Ok(()) => Outcome::Ok,
            Err(e) => {
                let (kind, outcome) = commit_error_kind(e);
                *self.errors.entry(kind.to_owned()).or_default() += 1;
                outcome
            }
        };
        self.records.push((
            idx,
            Record {
                send_us,
                done_us,
                outcome,
            },
        ));
    }
}

/// One slotline caller thread: offer events on time, poll the commits as they complete.
fn slotline_caller(s: &Schedule<'_>, client: &Client) -> CallerResult {
    let list = Arc::new(WakeList {
        ids: Mutex::new(Vec::new()),
        thread: thread::current(),
    });
    let mut slab: Vec<Option<InFlight>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut live = 0usize;
    let mut out = CallerResult::default();
    let mut value = Vec::with_capacity(128);
    let mut next = s.claim();
    let mut last_sweep = Instant::now();
    let mut woken = Vec::new();

    // Polls slot `id`; completes and frees it when ready.
    let poll = |id: usize,
                slab: &mut Vec<Option<InFlight>>,
                free: &mut Vec<usize>,
                live: &mut usize,
                out: &mut CallerResult| {
        let Some(f) = slab.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let mut cx = Context::from_waker(&f.waker);
        if let Poll::Ready(result) = Pin::new(&mut f.fut).poll(&mut cx) {
            let done = s.now_us();
            out.finish(f.idx, f.send_us, done, result.as_ref().map(|_| ()));
            slab[id] = None;
            free.push(id);
            *live -= 1;
        }
    };

    loop {
        std::mem::swap(&mut woken, &mut *list.ids.lock().expect("not poisoned"));
        for id in woken.drain(..) {
            poll(id, &mut slab, &mut free, &mut live, &mut out);
        }
        if last_sweep.elapsed() > Duration::from_millis(50) {
            last_sweep = Instant::now();
            for id in 0..slab.len() {
                poll(id, &mut slab, &mut free, &mut live, &mut out);
            }
        }
        let Some(i) = next else {
            if live == 0 {
                return out;
            }
            thread::park_timeout(Duration::from_millis(5));
            continue;
        };
        let e = s.trace.events[i];
        let now = s.now_us();
        if now < e.t_us {
            let left = e.t_us - now;
            if left > 300 {
                thread::park_timeout(Duration::from_micros(left - 200));
            } else {
                thread::yield_now();
            }
            continue;
        }
        payload(i as u64, e.bytes, &mut value);
        let id = free.pop().unwrap_or_else(|| {
            slab.push(None);
            slab.len() - 1
        });
        let waker = Waker::from(Arc::new(SlotWake {
            id,
            list: Arc::clone(&list),
        }));
        slab[id] = Some(InFlight {
            fut: client.commit_cmd_async(
                redis::cmd("HSET")
                    .arg(s.trace.key_of(&e))
                    .arg(field_name(i as u64))
                    .arg(&value[..]),
            ),
            waker,
            idx: i,
            send_us: now,
        });
        live += 1;
        s.tally.offered.fetch_add(1, Ordering::Relaxed);
        poll(id, &mut slab, &mut free, &mut live, &mut out);
        next = s.claim();
    }
}

/// Replays `trace` through `client` with `callers` caller threads. `redis_ports` are the
/// masters' ports, to find the client's sockets in `/proc/net/tcp`; `op_bytes` is the mean
/// size of one queued write (packed command plus the op), for the bytes-buffered estimate.
pub fn replay_slotline(
    trace: &Trace,
    client: &Client,
    callers: usize,
    redis_ports: &[u16],
    op_bytes: u64,
    tally: &Tally,
) -> PathRun {
    let start_unix_us = unix_us();
    let s = Schedule::new(trace, tally);
    let stop = AtomicBool::new(false);
    let (results, samples) = thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            let mut kernel = 0;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let m = client.metrics();
                let queued = m.total.ring.map_or(0, |r| r.len as u64);
                let depth = queued + m.total.in_flight;
                let offered = s.tally.offered.load(Ordering::Relaxed);
                s.tally
                    .settled
                    .store(offered.saturating_sub(depth as usize), Ordering::Relaxed);
                // /proc every 100 ms.
                let mut rss_kib = None;
                if i % 2 == 0 {
                    kernel = own_kernel_bytes(redis_ports);
                    rss_kib = read_status_kib("self", "VmRSS");
                }
                samples.push(DepthSample {
                    t_us: s.now_us(),
                    depth,
                    bytes: depth * op_bytes,
                    kernel_bytes: kernel,
                    rss_kib,
                    proxy_rss_kib: None,
                });
                i += 1;
                thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        let handles: Vec<_> = (0..callers)
            .map(|_| scope.spawn(|| slotline_caller(&s, client)))
            .collect();
        let results: Vec<CallerResult> = handles
            .into_iter()
            .map(|h| h.join().expect("caller thread panicked"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        (results, sampler.join().expect("sampler panicked"))
    });
    collect(trace, start_unix_us, results, samples)
}

/// Merges the callers' results into one record per event.
fn collect(
    trace: &Trace,
    start_unix_us: u64,
    results: Vec<CallerResult>,
    samples: Vec<DepthSample>,
) -> PathRun {
    let mut records = vec![Record::default(); trace.events.len()];
    let mut errors = BTreeMap::new();
    for r in results {
        for (i, rec) in r.records {
            records[i] = rec;
        }
        for (k, n) in r.errors {
            *errors.entry(k).or_default() += n;
        }
    }
    PathRun {
        start_unix_us,
        records,
        samples,
        errors,
        in_redis_us: None,
        after_ack: BTreeMap::new(),
        caller_base_rss_kib: 0,
        caller_peak_rss_kib: 0,
    }
}

/// Writes one sidecar caller may have sent and not seen answered yet.
const MAX_UNANSWERED: usize = 16_384;

/// One sidecar caller thread: its own connection; writes on time, a reader matches replies.
fn sidecar_caller(s: &Schedule<'_>, addr: &str) -> Result<CallerResult, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("sidecar {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let read_half = stream.try_clone().map_err(|e| e.to_string())?;
    // Writes sent and not yet answered, in order, for the reader to match. Bounded like
    // everything else: past this many unanswered writes the caller waits (and that wait counts
    // in its latency, which runs from the scheduled time).
    let (tx, rx) = mpsc::sync_channel::<(usize, u64)>(MAX_UNANSWERED);
    let mut writer = stream;
    thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut out = CallerResult::default();
            let mut r = BufReader::new(read_half);
            let mut line = Vec::with_capacity(64);
            let mut broken = false;
            for (idx, send_us) in rx {
                line.clear();
                let read = !broken && r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0);
                let done_us = s.now_us();
                let outcome = if !read {
                    broken = true;
                    *out.errors.entry("no reply".to_owned()).or_default() += 1;
                    Outcome::Unknown
                } else if line.starts_with(b"+") {
                    Outcome::Ok
                } else {
                    let text = String::from_utf8_lossy(&line).trim().to_owned();
                    let kind = text.trim_start_matches('-').to_owned();
                    *out.errors.entry(kind).or_default() += 1;
                    Outcome::Refused
                };
                out.records.push((
                    idx,
                    Record {
                        send_us,
                        done_us,
                        outcome,
                    },
                ));
            }
            out
        });
        let mut value = Vec::with_capacity(128);
        let mut cmd = Vec::with_capacity(256);
        while let Some(i) = s.claim() {
            let e = s.trace.events[i];
            let now = s.wait_until(e.t_us);
            payload(i as u64, e.bytes, &mut value);
            cmd.clear();
            let field = field_name(i as u64);
            slotline_router::write_command(
                &mut cmd,
                &[
                    b"HSET",
                    s.trace.key_of(&e).as_bytes(),
                    field.as_bytes(),
                    &value,
                ],
            );
            tx.send((i, now)).expect("reader alive");
            s.tally.offered.fetch_add(1, Ordering::Relaxed);
            if writer.write_all(&cmd).is_err() {
                // The reader will find no reply for this and later writes.
                let _ = writer.shutdown(std::net::Shutdown::Both);
            }
        }
        drop(tx);
        Ok(reader.join().expect("reader thread panicked"))
    })
}

/// Replays `trace` through the sidecar proxy at `addr` with `callers` connections.
///
/// # Errors
///
/// A message when a caller cannot connect.
pub fn replay_sidecar(
    trace: &Trace,
    addr: &str,
    callers: usize,
    tally: &Tally,
) -> Result<PathRun, String> {
    let start_unix_us = unix_us();
    let s = Schedule::new(trace, tally);
    let results = thread::scope(|scope| {
        let handles: Vec<_> = (0..callers)
            .map(|_| scope.spawn(|| sidecar_caller(&s, addr)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(collect(trace, start_unix_us, results, Vec::new()))
}
