//! The engine's promises that need no fault schedule: every op resolves by its deadline
//! whether or not its future is polled, `close()` answers every caller, and a panic in an I/O
//! thread fails every pending and later write instead of hanging it.
#![cfg(not(feature = "loom"))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::FallbackStrategy;
use slotline_client::{Client, CommitError, Config};
use slotline_testkit::exec::run_woken;
use slotline_testkit::LocalCluster;

fn cluster() -> LocalCluster {
    LocalCluster::start().unwrap_or_else(|e| panic!("cannot start a local Redis Cluster: {e}"))
}

/// Freezes every master (SIGSTOP), runs `f`, and thaws them even if `f` panicked.
fn with_masters_frozen<T>(cluster: &LocalCluster, f: impl FnOnce() -> T) -> T {
    let masters: Vec<usize> = cluster.master_indices().collect();
    for &i in &masters {
        cluster.pause_node(i).expect("SIGSTOP a master");
    }
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    for &i in &masters {
        cluster.resume_node(i).expect("SIGCONT a master");
    }
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn config(cluster: &LocalCluster, timeout: Duration) -> Config {
    let mut config = cluster.config();
    config.commit.timeout = timeout;
    config
}

#[test]
fn an_async_commit_that_is_never_polled_again_is_woken_at_its_deadline() {
    let cluster = cluster();
    let client = Client::connect(config(&cluster, Duration::from_millis(300))).expect("connect");
    client.commit(b"warm", b"up").expect("warm-up");
    with_masters_frozen(&cluster, || {
        let started = Instant::now();
        let fut = client.commit_async(b"frozen:{1}", b"v");
        let outcome = run_woken(fut, Duration::from_secs(3))
            .map(|r| r.output)
            .expect("the future was never woken: its deadline went unnoticed");
        let took = started.elapsed();
        assert!(
            matches!(outcome, Err(CommitError::DeadlineExceeded { .. })),
            "{outcome:?}"
        );
        // A missed deadline already fails above (no wake-up within 3 s); the upper bound only
        // rules out a deadline noticed far too late, with room for a loaded machine.
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "resolved {took:?} after the call, deadline 300 ms"
        );
    });
}

#[test]
fn close_answers_every_queued_and_sent_write() {
    let cluster = cluster();
    let client =
        Arc::new(Client::connect(config(&cluster, Duration::from_secs(30))).expect("connect"));
    client.commit(b"warm", b"up").expect("warm-up");
    let outcomes = with_masters_frozen(&cluster, || {
        let callers: Vec<_> = (0..32)
            .map(|i| {
                let client = Arc::clone(&client);
                thread::spawn(move || {
                    let fut = client.commit_async(format!("close:{{{i}}}").as_bytes(), b"v");
                    let started = Instant::now();
                    (
                        run_woken(fut, Duration::from_secs(10)).map(|r| r.output),
                        started,
                    )
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        let closing = Instant::now();
        client.close();
        let close_took = closing.elapsed();
        assert!(
            close_took < Duration::from_secs(2),
            "close took {close_took:?}"
        );
        callers
            .into_iter()
            .map(|h| h.join().expect("caller"))
            .collect::<Vec<_>>()
    });
    assert_eq!(client.commit(b"later", b"v"), Err(CommitError::Closed));
    assert_eq!(outcomes.len(), 32);
    for (outcome, started) in outcomes {
        let outcome = outcome.expect("a caller was never answered after close()");
        assert!(started.elapsed() < Duration::from_secs(10));
        match outcome {
            Err(CommitError::Closed)
            | Err(CommitError::ConnectionLost {
                may_have_been_applied: true,
            }) => {}
            other => panic!("unexpected outcome after close: {other:?}"),
        }
    }
}

#[test]
fn a_panicking_io_thread_fails_pending_and_later_writes_and_shows_in_metrics() {
    let cluster = cluster();
    let client =
        Arc::new(Client::connect(config(&cluster, Duration::from_secs(30))).expect("connect"));
    client.commit(b"warm", b"up").expect("warm-up");
    assert!(!client.metrics().client_dead);
    let pending = with_masters_frozen(&cluster, || {
        let callers: Vec<_> = (0..8)
            .map(|i| {
                let client = Arc::clone(&client);
                thread::spawn(move || {
                    let started = Instant::now();
                    (
                        client.commit(format!("dead:{{{i}}}").as_bytes(), b"v"),
                        started.elapsed(),
                    )
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        client.inject_io_panic();
        callers
            .into_iter()
            .map(|h| h.join().expect("caller"))
            .collect::<Vec<_>>()
    });
    for (outcome, took) in pending {
        assert!(
            outcome.is_err(),
            "a write pending at the panic was acknowledged"
        );
        assert!(
            took < Duration::from_secs(5),
            "a pending write waited {took:?} (deadline 30 s): the panic left it hanging"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.metrics().client_dead {
        assert!(
            Instant::now() < deadline,
            "metrics never reported the dead client"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        client.commit(b"after", b"v"),
        Err(CommitError::ClientDead {
            may_have_been_applied: false
        })
    );
    let fut = client.commit_async(b"after", b"v");
    assert_eq!(
        run_woken(fut, Duration::from_secs(1)).map(|r| r.output),
        Some(Err(CommitError::ClientDead {
            may_have_been_applied: false
        }))
    );
}

#[test]
fn the_byte_budget_refuses_writes_past_its_line_and_any_write_larger_than_it() {
    let cluster = cluster();
    let mut config = config(&cluster, Duration::from_secs(5));
    // 64 KiB per master, the line at 80 %: 52 429 bytes.
    config.backpressure.max_pending_bytes = 64 * 1024;
    config.backpressure.fallback_strategy = FallbackStrategy::Reject;
    let client = Client::connect(config).expect("connect");
    client.commit(b"warm", b"up").expect("warm-up");

    let huge = vec![b'x'; 100 * 1024];
    assert!(
        matches!(
            client.commit(b"huge", &huge),
            Err(CommitError::TooLarge { limit: 52_429, .. })
        ),
        "a write larger than the whole budget must be refused up front"
    );

    // About 8.2 KiB each (the value plus the command's framing): 6 fit under one master's
    // line, a 7th does not. The masters are frozen, so nothing drains.
    let value = vec![b'v'; 8 * 1024];
    let (accepted, rejected) = with_masters_frozen(&cluster, || {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut pending = Vec::new();
        let mut rejected = 0;
        for i in 0..60 {
            let mut fut = client.commit_async(format!("bytes:{{{i}}}").as_bytes(), &value);
            match Pin::new(&mut fut).poll(&mut cx) {
                Poll::Ready(Err(CommitError::Rejected)) => rejected += 1,
                Poll::Pending => pending.push(fut),
                Poll::Ready(other) => panic!("unexpected outcome {other:?}"),
            }
        }
        (pending.len(), rejected)
    });
    assert!(
        accepted <= 3 * 6,
        "{accepted} writes of 8 KiB accepted by 3 masters whose byte line holds 6 each"
    );
    assert!(accepted >= 6, "only {accepted} accepted");
    assert_eq!(accepted + rejected, 60);
    assert_eq!(client.metrics().total.rejections, rejected as u64 + 1);
}
