//! The engine against a scripted one-node "cluster" on a loopback socket, for replies a real
//! server gives only under conditions that are hard to arrange: a redirect loop, and a
//! connection that dies after a write was sent and then an error reply to the resend.
#![cfg(not(feature = "loom"))]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

use slotline_client::{Client, CommitError, Config, NodeAddr};
use slotline_router::{key_slot, parse_resp, Value};

/// What the fake node does with a `SET` (the n-th it sees, counting from 0, on `port`).
type OnSet = dyn Fn(usize, u16) -> Option<Vec<u8>> + Send + Sync;

/// Starts a node on a free loopback port that serves `CLUSTER SLOTS` (itself for every slot,
/// `CLUSTER SHARDS` refused so the client falls back) and answers each `SET` with `on_set`
/// (`None`: close the connection without answering). Returns the port.
fn fake_node(on_set: Arc<OnSet>) -> u16 {
    fake_seed(on_set, None)
}

/// As [`fake_node`], but `CLUSTER SLOTS` names `master` (when given) as every slot's master.
fn fake_seed(on_set: Arc<OnSet>, master: Option<u16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let own = listener.local_addr().expect("addr").port();
    let port = master.unwrap_or(own);
    let sets = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (on_set, sets) = (Arc::clone(&on_set), Arc::clone(&sets));
            thread::spawn(move || serve(stream, port, &*on_set, &sets));
        }
    });
    own
}

fn serve(mut stream: TcpStream, port: u16, on_set: &OnSet, sets: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok((value, used)) = parse_resp(&buf) {
            buf.drain(..used);
            let Value::Array(args) = value else { return };
            let arg = |i: usize| match args.get(i) {
                Some(Value::Bulk(b)) => String::from_utf8_lossy(b).to_uppercase(),
                _ => String::new(),
            };
            let reply = match (arg(0).as_str(), arg(1).as_str()) {
                ("CLUSTER", "SLOTS") => Some(
                    format!("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n")
                        .into_bytes(),
                ),
                ("CLUSTER", _) => Some(b"-ERR unknown subcommand\r\n".to_vec()),
                ("SET", _) => on_set(sets.fetch_add(1, Ordering::SeqCst), port),
                _ => Some(b"+OK\r\n".to_vec()),
            };
            match reply {
                Some(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
                None => return, // drop the connection without answering
            }
        }
    }
}

fn config(port: u16, timeout: Duration) -> Config {
    let mut config = Config {
        nodes: vec![NodeAddr::new("127.0.0.1", port)],
        ..Config::default()
    };
    config.commit.timeout = timeout;
    config
}

#[test]
fn a_redirect_loop_ends_with_a_typed_error_before_the_deadline() {
    const KEY: &[u8] = b"loop:{1}";
    let slot = key_slot(KEY).get();
    let port = fake_node(Arc::new(move |_, port| {
        Some(format!("-MOVED {slot} 127.0.0.1:{port}\r\n").into_bytes())
    }));
    let client = Client::connect(config(port, Duration::from_secs(20))).expect("connect");
    let started = Instant::now();
    let outcome = client.commit(KEY, b"v");
    let took = started.elapsed();
    match &outcome {
        Err(CommitError::Server { message }) => {
            assert!(message.contains("redirects"), "{message}");
        }
        other => panic!("expected a redirect-limit error, got {other:?}"),
    }
    assert!(!outcome.unwrap_err().may_have_been_applied());
    assert!(
        took < Duration::from_secs(10),
        "gave up only after {took:?}"
    );
    assert_eq!(client.metrics().total.moved, 17);
}

#[test]
fn an_error_reply_to_a_resend_still_says_the_first_send_may_have_been_applied() {
    let port = fake_node(Arc::new(|n, _| {
        if n == 0 {
            None // read the SET, then drop the connection: it may have been applied
        } else {
            Some(b"-OOM command not allowed when used memory > 'maxmemory'\r\n".to_vec())
        }
    }));
    let client = Client::connect(config(port, Duration::from_secs(5))).expect("connect");
    let outcome = client.commit(b"k", b"v");
    let err = outcome.expect_err("the resend was refused");
    assert!(
        err.may_have_been_applied(),
        "the first send was wholly written before the connection died, yet: {err:?}"
    );
}

/// CPU time of each of this process's `slotline-io-*` threads, by thread id, from
/// `/proc/self/task/*/stat`.
fn io_threads_cpu() -> HashMap<u32, Duration> {
    let mut cpu = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("slotline-io") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let mut fields = rest.split_ascii_whitespace().skip(11);
        let mut ticks = 0u64;
        for _ in 0..2 {
            ticks += fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
        cpu.insert(tid, Duration::from_millis(ticks * 10)); // USER_HZ is 100
    }
    cpu
}

/// CPU time the `slotline-io-*` threads used between two [`io_threads_cpu`] samples: each
/// thread's own growth (a thread that started meanwhile counts from zero). A thread that ended
/// meanwhile (another test's client closing) is left out instead of subtracting its time from
/// the others'; this test's own client lives through both samples, so none of its time is lost.
fn io_cpu_between(before: &HashMap<u32, Duration>, after: &HashMap<u32, Duration>) -> Duration {
    after
        .iter()
        .map(|(tid, &cpu)| cpu.saturating_sub(before.get(tid).copied().unwrap_or_default()))
        .sum()
}

#[test]
fn an_unreachable_master_with_writes_queued_does_not_keep_the_io_thread_busy() {
    // The seed names as master a port nobody listens on: every connect is refused.
    let dead = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .unwrap()
        .port();
    let seed = fake_seed(Arc::new(|_, _| Some(b"+OK\r\n".to_vec())), Some(dead));
    let client = Client::connect(config(seed, Duration::from_secs(3))).expect("connect");
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut pending = Vec::new();
    for i in 0..200 {
        let mut fut = client.commit_async(format!("down:{{{i}}}").as_bytes(), b"v");
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        pending.push(fut);
    }
    thread::sleep(Duration::from_millis(200));
    let before = io_threads_cpu();
    thread::sleep(Duration::from_millis(1500));
    let used = io_cpu_between(&before, &io_threads_cpu());
    assert!(
        used < Duration::from_millis(500),
        "the I/O thread used {used:?} of CPU in 1.5 s while its only master was unreachable"
    );
    drop(pending);
}

#[test]
fn a_master_that_stops_answering_does_not_keep_the_io_thread_busy_before_the_deadline() {
    // Every SET is read and never answered; the connection stays up.
    let port = fake_node(Arc::new(|_, _| Some(Vec::new())));
    let mut config = config(port, Duration::from_secs(3));
    config.redis_pool.read_timeout = Duration::from_millis(100);
    let client = Client::connect(config).expect("connect");
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut pending = Vec::new();
    for i in 0..50 {
        let mut fut = client.commit_async(format!("mute:{{{i}}}").as_bytes(), b"v");
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        pending.push(fut);
    }
    // Past read_timeout, before the commits' deadline: nothing to do but wait.
    thread::sleep(Duration::from_millis(300));
    let before = io_threads_cpu();
    thread::sleep(Duration::from_millis(1500));
    let used = io_cpu_between(&before, &io_threads_cpu());
    assert!(
        used < Duration::from_millis(500),
        "the I/O thread used {used:?} of CPU in 1.5 s waiting for a silent master"
    );
    drop(pending);
}
