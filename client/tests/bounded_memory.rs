//! Under load against paused masters, the client's memory stays flat while callers get
//! backpressure errors: every pending write waits in a fixed-size ring or a link's window.
//!
//! Alone in its own test binary so that the process's RSS is this test's.
#![cfg(not(feature = "loom"))]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::FallbackStrategy;
use slotline_client::{Client, CommitError};
use slotline_testkit::LocalCluster;

mod fault_support;
use fault_support::rss_kib;

#[test]
fn memory_stays_flat_while_paused_masters_push_back() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let mut config = cluster.config();
    // Few slots for pending writes: one shard's worth of ring (16, line at 80 %) per master,
    // batches of 4.
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.batching.max_batch = 4;
    config.backpressure.fallback_strategy = FallbackStrategy::Reject;
    config.commit.timeout = Duration::from_secs(1);
    config.redis_pool.read_timeout = Duration::from_millis(200);
    let client = Arc::new(Client::connect(config).expect("connect"));
    client.commit(b"warm", b"up").expect("warm-up commit");

    // Open-loop callers: each issues `commit_async` futures without waiting for them, polls
    // each once (which queues it or has it refused at once) and keeps the pending ones,
    // polling them again now and then. With a bounded client the pending set is bounded by
    // the queues; an unbounded queue anywhere would show as growing memory here.
    let stop = Arc::new(AtomicBool::new(false));
    let rejected = Arc::new(AtomicU64::new(0));
    let value = vec![b'x'; 512];
    let callers: Vec<_> = (0..4)
        .map(|t| {
            let (client, stop, rejected, value) = (
                Arc::clone(&client),
                Arc::clone(&stop),
                Arc::clone(&rejected),
                value.clone(),
            );
            thread::spawn(move || {
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                let mut pending: Vec<slotline_client::CommitFuture> = Vec::new();
                let check = |result: std::task::Poll<Result<(), CommitError>>| match result {
                    std::task::Poll::Ready(Err(CommitError::Rejected)) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    std::task::Poll::Ready(Ok(()) | Err(CommitError::DeadlineExceeded { .. })) => {
                        true
                    }
                    std::task::Poll::Ready(Err(e)) => panic!("unexpected outcome {e:?}"),
                    std::task::Poll::Pending => false,
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("mem:{{{t}-{i}}}");
                    let mut fut = client.commit_async(key.as_bytes(), &value);
                    if !check(std::pin::Pin::new(&mut fut).poll(&mut cx)) {
                        pending.push(fut);
                    }
                    if i % 64 == 0 {
                        pending.retain_mut(|f| !check(std::pin::Pin::new(f).poll(&mut cx)));
                        thread::yield_now();
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Let the load settle, then pause writes on every master for 3 s.
    thread::sleep(Duration::from_millis(500));
    let masters: Vec<usize> = cluster.master_indices().collect();
    for &i in &masters {
        let reply = cluster
            .query(i, redis::cmd("CLIENT").arg("PAUSE").arg(3000).arg("WRITE"))
            .expect("CLIENT PAUSE");
        assert!(reply.is_ok(), "CLIENT PAUSE: {reply:?}");
    }
    let paused_at = Instant::now();
    let mut samples = Vec::new();
    while paused_at.elapsed() < Duration::from_millis(2800) {
        samples.push((
            paused_at.elapsed(),
            rss_kib(),
            rejected.load(Ordering::Relaxed),
        ));
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller");
    }

    // The rings fill within the first second of the pause; after that, memory must not grow
    // while rejections keep coming.
    let settled: Vec<_> = samples
        .iter()
        .filter(|(t, _, _)| *t >= Duration::from_millis(1000))
        .collect();
    let first = settled.first().expect("samples after 1 s");
    let last = settled.last().expect("samples after 1 s");
    let peak = settled.iter().map(|s| s.1).max().expect("samples");
    eprintln!(
        "paused 1 s → 2.8 s: RSS {} → {} KiB (peak {peak}), rejections {} → {}",
        first.1, last.1, first.2, last.2
    );
    assert!(
        last.2 > first.2 + 1000,
        "callers must keep getting backpressure errors: {} → {}",
        first.2,
        last.2
    );
    assert!(
        peak <= first.1 + 2048,
        "RSS grew from {} KiB to {} KiB while the masters were paused",
        first.1,
        peak
    );
}
