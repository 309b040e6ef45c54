//! The sidecar model: a forwarding proxy that acknowledges on enqueue and flushes on a timer.
//!
//! This is the write path the story replaced, rebuilt as a fair model rather than a strawman.
//! It runs as a separate process (the `burst` binary re-executed with a hidden
//! `--sidecar-proxy` flag) so that it is a real extra hop over loopback TCP and its memory is
//! measured on its own.
//!
//! # What it does
//!
//! - **Accepts** caller connections on a loopback port; one thread per connection parses RESP
//!   `SET key value` and `HSET key field value` commands (and `PING`).
//! - **Acknowledges on enqueue.** Each write is appended to one internal pipeline queue (a
//!   `VecDeque` of the command bytes) and answered `+OK` at once, before Redis has seen it:
//!   that is what made the middleware cheap at average load (the story's 15 µs per write).
//! - **Queue depth.** The configured depth (10,000 by default, the story's figure) is *not
//!   enforced* by default: the queue grows past it, as the story's did (to 80,000). With
//!   `--sidecar-enforce` a `SET` that finds the queue at its depth is refused with
//!   `-ERR sidecar queue full`, which the caller sees.
//! - **Flushes on a window.** Every `--sidecar-window` (100 ms, the story's batching window) a
//!   flusher takes the whole queue, groups it by the key's master (CRC16 slot and the cluster's
//!   `CLUSTER SHARDS` map, as a cluster-aware proxy does) and sends each group as pipelined
//!   batches of `--sidecar-batch` commands (1,000) on one connection per master, the masters
//!   in parallel. A flush that overruns the window is followed by the next one at once.
//! - **Socket buffers are the kernel's.** No `SO_SNDBUF`/`SO_RCVBUF` is set on any socket;
//!   Linux autotunes them (`net.ipv4.tcp_wmem`). The proxy samples what the kernel granted
//!   the upstream sockets and what sits in its sockets' queues (`/proc/net/tcp`).
//! - **Stopping.** When the replay is over the proxy is told to finish: it keeps flushing on
//!   its window until the queue is empty or a grace period (`--sidecar-grace`, 30 s) runs
//!   out; writes still queued then are dropped as soon as no flush is under way, without
//!   waiting for the next window (checked every 20 ms between flushes; a flush in progress
//!   finishes first). They were acknowledged, so the read-back
//!   counts them as lost: exactly what an ack-on-enqueue proxy does when it is stopped or
//!   crashes with a full queue. With the default grace nothing is dropped on a healthy run.
//!
//! # What it does not model
//!
//! The story's losses came from the network giving way (the NIC saturated and the cluster
//! dropped off for 8 s) and from 47 ms GC pauses in a garbage-collected proxy. Neither happens
//! on one machine over loopback with a Rust proxy, and neither is simulated: this model shows
//! the mechanisms (queue growth past its configured depth, writes acknowledged but not yet in
//! Redis, window-bound latency), and reports losses only when they really happen.
//!
//! # Measurement hooks (not part of the model)
//!
//! The proxy reads the sequence number at the start of each value (`<seq>|...`, see
//! `replay::payload`) and records, per write, the wall-clock time its batch was confirmed by
//! Redis, so the replay can compute "until in Redis" latency across the process boundary. It
//! reports its counters, samples and peak RSS (`VmHWM`) as one JSON line when it finishes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slotline_router::{key_slot, NodeMap, Slot};

use super::net::{cluster_map, master_addrs, RawConn};

/// The sidecar's knobs (see the module docs for why each default is what it is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SidecarParams {
    /// Configured pipeline queue depth (writes).
    pub depth: usize,
    /// Refuse writes once `depth` are queued (default: no, the queue grows).
    pub enforce: bool,
    /// Flush interval.
    #[serde(with = "duration_ms")]
    pub window: Duration,
    /// Commands per pipelined batch to one master.
    pub batch: usize,
    /// After the replay, how long the proxy may keep flushing before it is stopped.
    #[serde(with = "duration_ms")]
    pub grace: Duration,
    /// Request timeout on the upstream connections: how long the proxy waits to connect, to
    /// write a batch, or for its replies, before it gives up on the batch and reconnects.
    #[serde(with = "duration_ms", default = "default_timeout")]
    pub timeout: Duration,
}

/// twemproxy's `timeout` in the example pools of its README (unset, it waits forever).
fn default_timeout() -> Duration {
    Duration::from_millis(400)
}

impl Default for SidecarParams {
    fn default() -> Self {
        SidecarParams {
            depth: 10_000,
            enforce: false,
            window: Duration::from_millis(100),
            batch: 1_000,
            grace: Duration::from_secs(30),
            timeout: default_timeout(),
        }
    }
}

/// Serialises a `Duration` as fractional milliseconds.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `d` as milliseconds.
    ///
    /// # Errors
    ///
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    /// Reads milliseconds.
    ///
    /// # Errors
    ///
    /// The deserializer's.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

/// Microseconds since the Unix epoch (the clock both processes share).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One sample of the proxy's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySample {
    /// When, microseconds since the Unix epoch.
    pub unix_us: u64,
    /// Writes acknowledged and not yet confirmed by Redis (queued or being flushed).
    pub depth: u64,
    /// Their command bytes.
    pub queue_bytes: u64,
    /// Bytes read from callers and not yet parsed.
    pub unparsed_bytes: u64,
    /// Bytes in the proxy's sockets' kernel queues (receive queues of caller connections,
    /// send queues of upstream connections), from `/proc/net/tcp`; sampled every 100 ms.
    pub kernel_bytes: u64,
}

/// What the proxy reports when it finishes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyReport {
    /// `SET`s acknowledged (`+OK`).
    pub accepted: u64,
    /// `SET`s refused because the enforced queue was full.
    pub rejected: u64,
    /// Acknowledged writes Redis confirmed.
    pub confirmed: u64,
    /// Acknowledged writes Redis answered with an error (not applied).
    pub upstream_errors: u64,
    /// Acknowledged writes still queued when the grace period ran out (never sent).
    pub dropped_at_stop: u64,
    /// Acknowledged writes of batches given up after the request timeout (or another
    /// connection failure): some may have reached Redis, the read-back says which did not.
    #[serde(default)]
    pub timed_out: u64,
    /// Upstream connections re-established after a batch was given up.
    #[serde(default)]
    pub reconnects: u64,
    /// Most writes acknowledged and not yet confirmed at once.
    pub peak_depth: u64,
    /// Most command bytes queued or being flushed at once.
    pub peak_queue_bytes: u64,
    /// Most bytes read from callers and not yet parsed at once.
    pub peak_unparsed_bytes: u64,
    /// Most bytes in the proxy's sockets' kernel queues (100 ms samples).
    pub peak_kernel_bytes: u64,
    /// Sum of the upstream sockets' `SO_SNDBUF` as the kernel set it, at start and at peak.
    pub sndbuf_start_bytes: u64,
    /// See `sndbuf_start_bytes`.
    pub sndbuf_peak_bytes: u64,
    /// The proxy process's peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Flushes done.
    pub flushes: u64,
    /// Longest flush, milliseconds.
    pub max_flush_ms: f64,
    /// State every 20 ms.
    pub samples: Vec<ProxySample>,
    /// `(seq, unix_us)`: when Redis confirmed each write, by the value's sequence number.
    pub confirms: Vec<(u64, u64)>,
}

/// One queued write.
struct Entry {
    cmd: Vec<u8>,
    slot: Slot,
    seq: u64,
}

/// What the proxy's threads share.
struct Proxy {
    params: SidecarParams,
    queue: Mutex<VecDeque<Entry>>,
    depth: AtomicUsize,
    bytes: AtomicUsize,
    unparsed: AtomicUsize,
    peak_depth: AtomicUsize,
    peak_bytes: AtomicUsize,
    peak_unparsed: AtomicUsize,
    accepted: AtomicU64,
    rejected: AtomicU64,
    confirmed: AtomicU64,
    upstream_errors: AtomicU64,
    dropped: AtomicU64,
    timed_out: AtomicU64,
    reconnects: AtomicU64,
    /// Local ports of the upstream connections (they change on reconnects), for the sampler.
    upstream_ports: Mutex<Vec<u16>>,
    finishing: AtomicBool,
    done: AtomicBool,
}

/// Runs the proxy (the hidden `--sidecar-proxy` mode). `args` follow that flag:
/// `--nodes h:p,... --depth N --window-us U --batch B [--enforce]`.
///
/// Prints `READY <port>` once it listens and is connected to every master; then reads
/// commands on stdin: `FINISH <grace_ms>` makes it drain (see the module docs), print its
/// [`ProxyReport`] as one JSON line, and return.
///
/// # Errors
///
/// A message for bad arguments or an unreachable cluster.
pub fn proxy_main(args: &[String]) -> Result<(), String> {
    let mut params = SidecarParams::default();
    let mut seeds = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |s: String, name: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{name}: `{s}` is not a number"))
        };
        match a.as_str() {
            "--nodes" => seeds = value(a)?.split(',').map(str::to_owned).collect(),
            "--depth" => params.depth = num(value(a)?, a)? as usize,
            "--window-us" => params.window = Duration::from_micros(num(value(a)?, a)?),
            "--batch" => params.batch = (num(value(a)?, a)? as usize).max(1),
            "--timeout-us" => params.timeout = Duration::from_micros(num(value(a)?, a)?.max(1)),
            "--enforce" => params.enforce = true,
            other => return Err(format!("sidecar proxy: unknown argument `{other}`")),
        }
    }
    let map = cluster_map(&seeds)?;
    let masters = master_addrs(&map);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();

    let proxy = Arc::new(Proxy {
        params,
        queue: Mutex::new(VecDeque::new()),
        depth: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        unparsed: AtomicUsize::new(0),
        peak_depth: AtomicUsize::new(0),
        peak_bytes: AtomicUsize::new(0),
        peak_unparsed: AtomicUsize::new(0),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        confirmed: AtomicU64::new(0),
        upstream_errors: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        timed_out: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        upstream_ports: Mutex::new(Vec::new()),
        finishing: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });

    // Upstream: one connection and one thread per master.
    let mut upstream = Vec::new();
    let mut upstream_socks = Vec::new();
    let (result_tx, result_rx) = mpsc::channel::<Vec<(u64, u64)>>();
    for (i, addr) in masters.iter().enumerate() {
        let conn =
            upstream_connect(addr, proxy.params.timeout).map_err(|e| format!("{addr}: {e}"))?;
        upstream_socks.push(conn.stream.try_clone().map_err(|e| e.to_string())?);
        proxy
            .upstream_ports
            .lock()
            .expect("not poisoned")
            .push(local_port(&conn));
        let (tx, rx) = mpsc::channel::<Vec<Entry>>();
        let (proxy, result_tx, addr) = (Arc::clone(&proxy), result_tx.clone(), addr.clone());
        thread::spawn(move || upstream_loop(&addr, i, conn, &proxy, &rx, &result_tx));
        upstream.push(tx);
    }
    let master_index: HashMap<String, usize> = masters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();

    {
        let proxy = Arc::clone(&proxy);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let proxy = Arc::clone(&proxy);
                thread::spawn(move || {
                    let _ = serve_caller(stream, &proxy);
                });
            }
        });
    }
    let sampler = {
        let proxy = Arc::clone(&proxy);
        thread::spawn(move || sample_loop(&proxy, port, &upstream_socks))
    };
    let grace_deadline = Arc::new(Mutex::new(None::<Instant>));
    let flusher = {
        let proxy = Arc::clone(&proxy);
        let grace_deadline = Arc::clone(&grace_deadline);
        thread::spawn(move || {
            flush_loop(
                &proxy,
                &map,
                &master_index,
                &upstream,
                &result_rx,
                &grace_deadline,
            )
        })
    };

    let mut out = io::stdout().lock();
    writeln!(out, "READY {port}").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(()); // the parent is gone
        }
        if let Some(ms) = line.trim().strip_prefix("FINISH ") {
            let ms: u64 = ms.parse().map_err(|_| format!("bad FINISH `{ms}`"))?;
            *grace_deadline.lock().expect("not poisoned") =
                Some(Instant::now() + Duration::from_millis(ms));
            proxy.finishing.store(true, Ordering::SeqCst);
            break;
        }
    }
    let (flushes, max_flush, confirms) = flusher.join().map_err(|_| "flusher panicked")?;
    proxy.done.store(true, Ordering::SeqCst);
    let (samples, peak_kernel, sndbuf_start, sndbuf_peak) =
        sampler.join().map_err(|_| "sampler panicked")?;
    let report = ProxyReport {
        accepted: proxy.accepted.load(Ordering::SeqCst),
        rejected: proxy.rejected.load(Ordering::SeqCst),
        confirmed: proxy.confirmed.load(Ordering::SeqCst),
        upstream_errors: proxy.upstream_errors.load(Ordering::SeqCst),
        dropped_at_stop: proxy.dropped.load(Ordering::SeqCst),
        timed_out: proxy.timed_out.load(Ordering::SeqCst),
        reconnects: proxy.reconnects.load(Ordering::SeqCst),
        peak_depth: proxy.peak_depth.load(Ordering::SeqCst) as u64,
        peak_queue_bytes: proxy.peak_bytes.load(Ordering::SeqCst) as u64,
        peak_unparsed_bytes: proxy.peak_unparsed.load(Ordering::SeqCst) as u64,
        peak_kernel_bytes: peak_kernel,
        sndbuf_start_bytes: sndbuf_start,
        sndbuf_peak_bytes: sndbuf_peak,
        peak_rss_kib: read_status_kib("self", "VmHWM").unwrap_or(0),
        flushes,
        max_flush_ms: max_flush.as_secs_f64() * 1e3,
        samples,
        confirms,
    };
    serde_json::to_writer(&mut out, &report).map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

/// Serves one caller connection: parse `SET`s and `HSET`s, enqueue, answer `+OK` at once.
fn serve_caller(mut stream: TcpStream, proxy: &Proxy) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut replies = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            proxy.unparsed.fetch_sub(buf.len(), Ordering::Relaxed);
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let unparsed = proxy.unparsed.fetch_add(n, Ordering::Relaxed) + n;
        proxy.peak_unparsed.fetch_max(unparsed, Ordering::Relaxed);
        let mut used = 0;
        while let Some((args, len)) = parse_command(&buf[used..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            let cmd = &buf[used..used + len];
            let arg = |i: usize| &cmd[args[i].0..args[i].1];
            let set = args.len() == 3 && arg(0).eq_ignore_ascii_case(b"SET");
            let hset = args.len() == 4 && arg(0).eq_ignore_ascii_case(b"HSET");
            if set || hset {
                let entry = Entry {
                    cmd: cmd.to_vec(),
                    slot: key_slot(arg(1)),
                    seq: seq_prefix(arg(args.len() - 1)),
                };
                replies.extend_from_slice(if proxy.enqueue(entry) {
                    b"+OK\r\n".as_slice()
                } else {
                    b"-ERR sidecar queue full\r\n".as_slice()
                });
            } else if args.len() == 1 && arg(0).eq_ignore_ascii_case(b"PING") {
                replies.extend_from_slice(b"+PONG\r\n");
            } else {
                replies.extend_from_slice(b"-ERR the sidecar model forwards SET and HSET only\r\n");
            }
            used += len;
        }
        buf.drain(..used);
        proxy.unparsed.fetch_sub(used, Ordering::Relaxed);
        if !replies.is_empty() {
            stream.write_all(&replies)?;
            replies.clear();
        }
    }
}

impl Proxy {
    /// Appends `entry` unless the depth is enforced and reached; true if queued.
    fn enqueue(&self, entry: Entry) -> bool {
        let len = entry.cmd.len();
        let mut queue = self.queue.lock().expect("not poisoned");
        let depth = self.depth.load(Ordering::Relaxed);
        if self.params.enforce && depth >= self.params.depth {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        queue.push_back(entry);
        // Counted before the lock is released: the flusher takes entries under it, so it can
        // never settle one the counts do not have yet.
        let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.bytes.fetch_add(len, Ordering::Relaxed) + len;
        drop(queue);
        self.peak_depth.fetch_max(depth, Ordering::Relaxed);
        self.peak_bytes.fetch_max(bytes, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Marks `n` writes of `bytes` bytes as no longer pending.
    fn settle(&self, n: usize, bytes: usize) {
        self.depth.fetch_sub(n, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The byte range of each argument of a command, and the command's length.
type ParsedCommand = (Vec<(usize, usize)>, usize);

/// Parses one RESP command (an array of bulk strings) at the start of `buf`: the byte range
/// of each argument and the command's length, `None` if incomplete.
fn parse_command(buf: &[u8]) -> Result<Option<ParsedCommand>, String> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let cr = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..cr], at + cr + 2))
    }
    fn number(text: &[u8]) -> Result<usize, String> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length `{}`", String::from_utf8_lossy(text)))
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Err("the sidecar model reads RESP arrays only".to_owned());
    }
    let Some((head, mut at)) = line(buf, 0) else {
        return Ok(None);
    };
    let n = number(&head[1..])?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let Some((head, start)) = line(buf, at) else {
            return Ok(None);
        };
        if head.first() != Some(&b'$') {
            return Err("expected a bulk string argument".to_owned());
        }
        let len = number(&head[1..])?;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        args.push((start, start + len));
        at = start + len + 2;
    }
    Ok(Some((args, at)))
}

/// The decimal sequence number at the start of a value (`<seq>|...`), or `u64::MAX`.
fn seq_prefix(value: &[u8]) -> u64 {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&value[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// How often a sleeping flusher looks for a stop whose grace is spent.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Whether the proxy was told to finish and the grace period after that has run out at `now`.
fn grace_spent(proxy: &Proxy, grace_deadline: &Mutex<Option<Instant>>, now: Instant) -> bool {
    proxy.finishing.load(Ordering::SeqCst)
        && grace_deadline
            .lock()
            .expect("not poisoned")
            .is_some_and(|d| now >= d)
}

/// Flushes the queue every window; returns (flushes, longest flush, confirmations).
fn flush_loop(
    proxy: &Proxy,
    map: &NodeMap,
    master_index: &HashMap<String, usize>,
    upstream: &[mpsc::Sender<Vec<Entry>>],
    results: &mpsc::Receiver<Vec<(u64, u64)>>,
    grace_deadline: &Mutex<Option<Instant>>,
) -> (u64, Duration, Vec<(u64, u64)>) {
    let window = proxy.params.window;
    let mut confirms = Vec::new();
    let (mut flushes, mut longest) = (0u64, Duration::ZERO);
    let mut tick = Instant::now() + window;
    loop {
        // Sleep to the next tick, in short naps: once the stop has come and its grace is spent,
        // the queue is dropped at once rather than a window later.
        loop {
            let now = Instant::now();
            if now >= tick || grace_spent(proxy, grace_deadline, now) {
                break;
            }
            thread::sleep((tick - now).min(STOP_CHECK));
        }
        let started = Instant::now();
        tick = started + window;
        let batch: VecDeque<Entry> =
            std::mem::take(&mut *proxy.queue.lock().expect("not poisoned"));
        let finishing = proxy.finishing.load(Ordering::SeqCst);
        if grace_spent(proxy, grace_deadline, started) {
            let bytes: usize = batch.iter().map(|e| e.cmd.len()).sum();
            proxy.settle(batch.len(), bytes);
            proxy
                .dropped
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            break;
        }
        if batch.is_empty() {
            if finishing && proxy.depth.load(Ordering::SeqCst) == 0 {
                break;
            }
            continue;
        }
        let mut groups: Vec<Vec<Entry>> = (0..upstream.len()).map(|_| Vec::new()).collect();
        for e in batch {
            let i = map
                .master_addr(e.slot)
                .and_then(|a| master_index.get(&a.to_string()))
                .copied()
                .unwrap_or(0);
            groups[i].push(e);
        }
        let mut sent = 0;
        for (tx, group) in upstream.iter().zip(groups) {
            if !group.is_empty() {
                tx.send(group).expect("upstream thread alive");
                sent += 1;
            }
        }
        for _ in 0..sent {
            confirms.extend(results.recv().expect("upstream thread alive"));
        }
        flushes += 1;
        longest = longest.max(started.elapsed());
    }
    (flushes, longest, confirms)
}

/// Connects to a master with the request timeout on the connect, on writes and on reads.
fn upstream_connect(addr: &str, timeout: Duration) -> io::Result<RawConn> {
    let target = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(RawConn::from_stream(addr, stream))
}

fn local_port(conn: &RawConn) -> u16 {
    conn.stream.local_addr().map_or(0, |a| a.port())
}

/// One master's link: send each group as pipelined batches, read the replies, record when
/// each write was confirmed. A batch that is not written or answered within the request
/// timeout (or whose connection fails) is given up, as a proxy with a request timeout does:
/// its unconfirmed writes count as timed out (their callers had their `+OK` long ago), the
/// connection is closed, and the next batch goes over a new one.
fn upstream_loop(
    addr: &str,
    index: usize,
    conn: RawConn,
    proxy: &Proxy,
    jobs: &mpsc::Receiver<Vec<Entry>>,
    results: &mpsc::Sender<Vec<(u64, u64)>>,
) {
    let mut conn = Some(conn);
    let mut out = Vec::with_capacity(256 * 1024);
    for group in jobs {
        let mut confirms = Vec::with_capacity(group.len());
        for chunk in group.chunks(proxy.params.batch) {
            let bytes: usize = chunk.iter().map(|e| e.cmd.len()).sum();
            if conn.is_none() {
                if let Ok(c) = upstream_connect(addr, proxy.params.timeout) {
                    proxy.reconnects.fetch_add(1, Ordering::SeqCst);
                    if let Some(port) = proxy
                        .upstream_ports
                        .lock()
                        .expect("not poisoned")
                        .get_mut(index)
                    {
                        *port = local_port(&c);
                    }
                    conn = Some(c);
                }
            }
            let mut ok = 0u64;
            let mut answered = 0usize;
            if let Some(c) = conn.as_mut() {
                out.clear();
                for e in chunk {
                    out.extend_from_slice(&e.cmd);
                }
                if c.stream.write_all(&out).is_ok() {
                    for e in chunk {
                        match c.read_value() {
                            Ok(slotline_router::Value::Error(_)) => {
                                proxy.upstream_errors.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {
                                ok += 1;
                                confirms.push((e.seq, 0));
                            }
                            Err(_) => break,
                        }
                        answered += 1;
                    }
                }
            }
            if answered < chunk.len() {
                // Given up: timed out, or no connection. Close it; the next batch reconnects.
                proxy
                    .timed_out
                    .fetch_add((chunk.len() - answered) as u64, Ordering::SeqCst);
                conn = None;
            }
            let now = unix_us();
            let n = confirms.len();
            for c in &mut confirms[n - ok as usize..] {
                c.1 = now;
            }
            proxy.confirmed.fetch_add(ok, Ordering::SeqCst);
            proxy.settle(chunk.len(), bytes);
        }
        if results.send(confirms).is_err() {
            return;
        }
    }
}

/// Samples the proxy's state until it is done; returns the samples, the peak kernel queue
/// bytes, and the upstream `SO_SNDBUF` sum at start and at its peak.
fn sample_loop(
    proxy: &Proxy,
    listen_port: u16,
    upstream: &[TcpStream],
) -> (Vec<ProxySample>, u64, u64, u64) {
    let sndbuf = || -> u64 {
        upstream
            .iter()
            .filter_map(|s| socket2::SockRef::from(s).send_buffer_size().ok())
            .map(|b| b as u64)
            .sum()
    };
    let sndbuf_start = sndbuf();
    let (mut sndbuf_peak, mut kernel_peak, mut kernel) = (sndbuf_start, 0u64, 0u64);
    let mut samples = Vec::new();
    let mut i = 0u64;
    while !proxy.done.load(Ordering::SeqCst) {
        if i % 5 == 0 {
            let upstream_ports = proxy.upstream_ports.lock().expect("not poisoned").clone();
            kernel = kernel_queue_bytes(|local, _, _| {
                local == listen_port || upstream_ports.contains(&local)
            });
            kernel_peak = kernel_peak.max(kernel);
            sndbuf_peak = sndbuf_peak.max(sndbuf());
        }
        samples.push(ProxySample {
            unix_us: unix_us(),
            depth: proxy.depth.load(Ordering::Relaxed) as u64,
            queue_bytes: proxy.bytes.load(Ordering::Relaxed) as u64,
            unparsed_bytes: proxy.unparsed.load(Ordering::Relaxed) as u64,
            kernel_bytes: kernel,
        });
        i += 1;
        thread::sleep(Duration::from_millis(20));
    }
    (samples, kernel_peak, sndbuf_start, sndbuf_peak)
}

/// Sum of `tx_queue + rx_queue` over the IPv4 TCP sockets in `/proc/net/tcp` whose
/// `(local port, remote port, inode)` pass `keep`. 0 if the file cannot be read.
pub fn kernel_queue_bytes(keep: impl Fn(u16, u16, u64) -> bool) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
            // timeout inode ...
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, remote) = (port(f.get(1)?)?, port(f.get(2)?)?);
            let (tx, rx) = f.get(4)?.split_once(':')?;
            let inode = f.get(9)?.parse().ok()?;
            let bytes = u64::from_str_radix(tx, 16).ok()? + u64::from_str_radix(rx, 16).ok()?;
            keep(local, remote, inode).then_some(bytes)
        })
        .sum()
}

/// Bytes in the kernel queues of this process's own connections to `redis_ports` (not, say,
/// the replicas' replication links to the same masters).
pub fn own_kernel_bytes(redis_ports: &[u16]) -> u64 {
    let own = own_socket_inodes();
    kernel_queue_bytes(|_, remote, inode| redis_ports.contains(&remote) && own.contains(&inode))
}

/// The inodes of this process's sockets (from `/proc/self/fd`), to count only its own
/// connections in [`kernel_queue_bytes`] (not, say, the replicas' replication links to the
/// same masters). Empty if `/proc` cannot be read.
pub fn own_socket_inodes() -> std::collections::HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return std::collections::HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`); `pid` may be `self`.
pub fn read_status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The parent's handle on a running proxy process; killed on drop.
#[derive(Debug)]
pub struct Sidecar {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The proxy's listening address.
    pub addr: String,
}

impl Sidecar {
    /// Starts `program --sidecar-proxy ...` against the cluster `seeds` and waits for it to
    /// listen.
    ///
    /// # Errors
    ///
    /// A message when it cannot start or exits before it is ready.
    pub fn spawn(
        program: &Path,
        seeds: &[String],
        params: &SidecarParams,
    ) -> Result<Sidecar, String> {
        let mut cmd = Command::new(program);
        cmd.arg("--sidecar-proxy")
            .arg("--nodes")
            .arg(seeds.join(","))
            .arg("--depth")
            .arg(params.depth.to_string())
            .arg("--window-us")
            .arg(params.window.as_micros().to_string())
            .arg("--batch")
            .arg(params.batch.to_string())
            .arg("--timeout-us")
            .arg(params.timeout.as_micros().to_string());
        if params.enforce {
            cmd.arg("--enforce");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the sidecar proxy `{}`: {e}",
                    program.display()
                )
            })?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("sidecar proxy: {e}"))?;
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the sidecar proxy did not start (said `{}`)",
                line.trim()
            ));
        };
        Ok(Sidecar {
            child,
            stdin,
            stdout,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the proxy to drain for at most `grace` and stop; returns its report.
    ///
    /// # Errors
    ///
    /// A message when the proxy does not answer with a report.
    pub fn finish(mut self, grace: Duration) -> Result<ProxyReport, String> {
        writeln!(self.stdin, "FINISH {}", grace.as_millis())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("sidecar proxy: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("sidecar proxy: {e}"))?;
        let report = serde_json::from_str(&line)
            .map_err(|e| format!("sidecar proxy: unreadable report: {e}"))?;
        let _ = self.child.wait();
        Ok(report)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_queue_bytes_counts_this_processs_own_unread_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        // Nobody reads on the server side: the bytes wait in its receive queue.
        client.write_all(&[7u8; 3000]).expect("write");
        let own = own_socket_inodes();
        let mut seen = 0;
        for _ in 0..100 {
            seen = kernel_queue_bytes(|local, _, inode| local == port && own.contains(&inode));
            if seen >= 3000 {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen, 3000, "the accepted socket's receive queue");
        assert_eq!(
            kernel_queue_bytes(|local, _, _| local == port && own.is_empty()),
            0,
            "a filter that keeps nothing counts nothing"
        );
        let none: std::collections::HashSet<u64> = std::collections::HashSet::new();
        assert_eq!(
            kernel_queue_bytes(|local, _, inode| local == port && none.contains(&inode)),
            0,
            "sockets of other processes (inodes not ours) are left out"
        );
    }
}
