//! `Client` against a real local Redis Cluster (3 masters + 3 replicas), started by the tests.
#![cfg(not(feature = "loom"))]

use std::future::Future;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::FallbackStrategy;
use slotline_client::conn::Conn;
use slotline_client::{Client, CommitError, CommitFuture, Config};
use slotline_testkit::exec::block_on;
use slotline_testkit::LocalCluster;

fn cluster() -> LocalCluster {
    LocalCluster::start().unwrap_or_else(|e| panic!("cannot start a local Redis Cluster: {e}"))
}

/// Reads `key` from whichever master owns it, with plain connections (not the client).
fn get(masters: &mut [Conn], key: &[u8]) -> Option<Vec<u8>> {
    for conn in masters.iter_mut() {
        match conn
            .query(redis::cmd("GET").arg(key))
            .expect("GET on a master")
        {
            Ok(redis::Value::BulkString(v)) => return Some(v),
            Ok(redis::Value::Nil) => return None,
            Ok(other) => panic!("GET {key:?} returned {other:?}"),
            Err(e) if e.code() == "MOVED" => continue,
            Err(e) => panic!("GET {key:?} failed: {e}"),
        }
    }
    panic!("no master owns {key:?}")
}

fn masters(cluster: &LocalCluster) -> Vec<Conn> {
    let opts = slotline_client::ConnOptions::from_config(&cluster.config());
    cluster
        .master_addrs()
        .iter()
        .map(|addr| Conn::connect(addr, &opts).expect("connect to a master"))
        .collect()
}

#[test]
fn committed_values_are_read_back_from_the_owning_masters() {
    let cluster = cluster();
    let client = Arc::new(Client::connect(cluster.config()).expect("connect"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for i in 0..500 {
                    let key = format!("geo:{{user{t}-{i}}}");
                    let value = format!("{t}.{i},{}", t * i);
                    client
                        .commit(key.as_bytes(), value.as_bytes())
                        .unwrap_or_else(|e| panic!("commit {key}: {e}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("committer thread");
    }
    let mut masters = masters(&cluster);
    for t in 0..8 {
        for i in 0..500 {
            let key = format!("geo:{{user{t}-{i}}}");
            let want = format!("{t}.{i},{}", t * i);
            assert_eq!(
                get(&mut masters, key.as_bytes()).as_deref(),
                Some(want.as_bytes()),
                "key {key}"
            );
        }
    }
    let metrics = client.metrics();
    assert_eq!(metrics.total.commits, 4000, "{metrics:?}");
}

#[test]
fn hash_tagged_keys_land_on_one_slot_and_commit_cmd_writes_them() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    let mut cmd = redis::cmd("HSET");
    cmd.arg("geo:{user7}:profile").arg("name").arg("ada");
    client.commit_cmd(&cmd).expect("HSET");
    let mut cmd = redis::cmd("GEOADD");
    cmd.arg("geo:{user7}:trail")
        .arg(13.405)
        .arg(52.52)
        .arg("t1");
    client.commit_cmd(&cmd).expect("GEOADD");
    // Both keys share the tag `user7`: one slot, so one node answers both in one MULTI-free read.
    let slot = slotline_router::key_slot(b"user7");
    assert_eq!(slotline_router::key_slot(b"geo:{user7}:profile"), slot);
    assert_eq!(slotline_router::key_slot(b"geo:{user7}:trail"), slot);
    let mut masters = masters(&cluster);
    let mut found = false;
    for conn in masters.iter_mut() {
        let reply = conn
            .query(redis::cmd("HGET").arg("geo:{user7}:profile").arg("name"))
            .expect("HGET");
        if let Ok(v) = reply {
            assert_eq!(v, redis::Value::BulkString(b"ada".to_vec()));
            let n = conn
                .query(redis::cmd("ZCARD").arg("geo:{user7}:trail"))
                .expect("ZCARD");
            assert_eq!(n, Ok(redis::Value::Int(1)));
            found = true;
        }
    }
    assert!(found, "no master holds the hash-tagged keys");
}

#[test]
fn a_server_error_reaches_the_caller_as_a_typed_error() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    client
        .commit_cmd(redis::cmd("SET").arg("k").arg("v"))
        .expect("SET");
    let err = client
        .commit_cmd(redis::cmd("LPUSH").arg("k").arg("x"))
        .expect_err("LPUSH on a string key must fail");
    match &err {
        CommitError::Server { message } => assert!(message.contains("WRONGTYPE"), "{message}"),
        other => panic!("expected a server error, got {other:?}"),
    }
    assert!(!err.may_have_been_applied());
}

#[test]
fn commit_async_resolves_without_a_runtime() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    let result = block_on(client.commit_async(b"geo:{async}", b"1,2"));
    assert_eq!(result, Ok(()));
    let mut masters = masters(&cluster);
    assert_eq!(
        get(&mut masters, b"geo:{async}").as_deref(),
        Some(&b"1,2"[..])
    );
}

#[test]
fn wait_for_one_replica_succeeds_and_for_more_than_exist_falls_short() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.ack.replicas = 1;
    // WAIT returns as soon as the replica confirms: a long timeout costs nothing, and keeps a
    // replica that a loaded machine schedules late from failing the test.
    config.ack.timeout = Duration::from_secs(5);
    config.commit.timeout = Duration::from_secs(10);
    let client = Client::connect(config).expect("connect");
    for i in 0..50 {
        client
            .commit(format!("acked:{i}").as_bytes(), b"v")
            .unwrap_or_else(|e| panic!("commit with WAIT 1: {e}"));
    }
    drop(client);

    let mut config = cluster.config();
    // Each master has one replica, so WAIT 2 runs to its timeout; that is long enough for the
    // one replica to have confirmed by then even on a loaded machine.
    config.ack.replicas = 2;
    config.ack.timeout = Duration::from_millis(1000);
    config.commit.timeout = Duration::from_secs(5);
    let client = Client::connect(config).expect("connect");
    let err = client
        .commit(b"short", b"v")
        .expect_err("WAIT 2 with one replica");
    assert_eq!(
        err,
        CommitError::ReplicationShortfall {
            wanted: 2,
            confirmed: 1
        }
    );
}

/// Pauses (SIGSTOP) every master, runs `f`, and resumes them even if `f` panicked.
fn with_masters_paused<T>(cluster: &LocalCluster, f: impl FnOnce() -> T) -> T {
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

/// One shard's worth of ring per master (16, the backpressure line at 8), one batch of 4 in
/// flight: per master at most 8 ops wait in the ring, 1 is held by the link to watch its
/// deadline and 4 are in flight, whatever the number of callers.
fn tight_config(cluster: &LocalCluster, strategy: FallbackStrategy) -> Config {
    let mut config = cluster.config();
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.backpressure.threshold_percent = 50;
    config.backpressure.fallback_strategy = strategy;
    config.batching.max_batch = 4;
    config.batching.pipeline_depth = 1;
    config.commit.timeout = Duration::from_secs(5);
    config
}

const CALLERS: usize = 64;
/// Ops one master can hold while nothing drains: the ring's line, the op the link holds, and
/// one batch in flight.
const HELD: usize = 8 + 1 + 4;
/// Every key of these tests hashes to one slot, so to one master and one queue.
fn key(t: usize) -> Vec<u8> {
    format!("{{p}}:{t}").into_bytes()
}

/// Queued ops (the ring's fill, all masters).
fn queued(client: &Client) -> usize {
    client.metrics().total.ring.map_or(0, |r| r.len)
}

/// Polls `done` every 5 ms until it holds; panics with `what` after 30 s.
fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < limit, "not within 30 s: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Creates one `commit_async` future per key, in order, and polls each once (a noop waker):
/// that first poll is when the write is queued, so the queue sees the writes in this order.
/// Returns each future with the outcome it already has, if any.
fn submit_in_order(
    client: &Client,
    n: usize,
) -> Vec<(CommitFuture, Option<Result<(), CommitError>>)> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    (0..n)
        .map(|t| {
            let mut fut = client.commit_async(&key(t), b"v");
            let ready = match std::pin::Pin::new(&mut fut).poll(&mut cx) {
                std::task::Poll::Ready(outcome) => Some(outcome),
                std::task::Poll::Pending => None,
            };
            (fut, ready)
        })
        .collect()
}

/// Every future's outcome, in submission order (the strict executor: each pending future must
/// be woken by the client).
fn outcomes(
    futures: Vec<(CommitFuture, Option<Result<(), CommitError>>)>,
) -> Vec<Result<(), CommitError>> {
    futures
        .into_iter()
        .map(|(fut, ready)| ready.unwrap_or_else(|| block_on(fut)))
        .collect()
}

#[test]
fn reject_policy_refuses_at_once_while_a_master_is_paused() {
    let cluster = cluster();
    let client =
        Client::connect(tight_config(&cluster, FallbackStrategy::Reject)).expect("connect");
    client.commit(&key(999), b"up").expect("warm-up");
    let futures = with_masters_paused(&cluster, || {
        let futures = submit_in_order(&client, CALLERS);
        let pending = queued(&client);
        assert!(pending <= 8, "{pending} ops wait in a ring whose line is 8");
        futures
    });
    let outcomes = outcomes(futures);
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    let rejected = outcomes
        .iter()
        .filter(|o| **o == Err(CommitError::Rejected))
        .count();
    assert_eq!(ok + rejected, CALLERS, "only Ok or Rejected: {outcomes:?}");
    assert!(
        rejected >= CALLERS - HELD,
        "only {rejected} rejected, {ok} committed"
    );
    assert!(
        ok >= 8,
        "the ring's line holds 8 writes, yet only {ok} committed"
    );
    assert_eq!(client.metrics().total.rejections, rejected as u64);
}

#[test]
fn drop_oldest_policy_evicts_the_oldest_waiting_write() {
    let cluster = cluster();
    let client =
        Client::connect(tight_config(&cluster, FallbackStrategy::DropOldest)).expect("connect");
    client.commit(&key(999), b"up").expect("warm-up");
    let futures = with_masters_paused(&cluster, || submit_in_order(&client, CALLERS));
    let outcomes = outcomes(futures);
    let dropped: Vec<usize> = (0..CALLERS)
        .filter(|&t| outcomes[t] == Err(CommitError::Dropped))
        .collect();
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(
        ok + dropped.len(),
        CALLERS,
        "only Ok or Dropped: {outcomes:?}"
    );
    assert!(
        dropped.len() >= CALLERS - HELD,
        "only {} dropped, {ok} committed",
        dropped.len()
    );
    // The queue is FIFO and each write evicts the oldest queued one, so the newest writes (as
    // many as the line holds) survive; a policy that drops the newest fails here.
    let newest = CALLERS - 8..CALLERS;
    assert!(
        newest.clone().all(|t| outcomes[t].is_ok()),
        "writes {newest:?} are the newest and must survive; dropped: {dropped:?}"
    );
    assert_eq!(client.metrics().total.drops, dropped.len() as u64);
}

/// `CALLERS` threads that each commit one key (blocking), started together.
fn flood(client: &Arc<Client>) -> Vec<thread::JoinHandle<Result<(), CommitError>>> {
    (0..CALLERS)
        .map(|t| {
            let client = Arc::clone(client);
            thread::spawn(move || client.commit(&key(t), b"v"))
        })
        .collect()
}

#[test]
fn block_policy_waits_for_room_and_commits_when_it_appears() {
    let cluster = cluster();
    let mut config = tight_config(&cluster, FallbackStrategy::Block);
    config.commit.timeout = Duration::from_secs(60);
    let client = Arc::new(Client::connect(config).expect("connect"));
    client.commit(&key(999), b"up").expect("warm-up");
    let handles = with_masters_paused(&cluster, || {
        let handles = flood(&client);
        // The ring reaches its line and the link holds its batch; the other callers wait.
        poll_until("the ring at its line", || queued(&client) == 8);
        let mut waiting = 0;
        for _ in 0..40 {
            let pending = queued(&client);
            assert!(pending <= 8, "{pending} ops in a ring whose line is 8");
            waiting = waiting.max(handles.iter().filter(|h| !h.is_finished()).count());
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            waiting >= CALLERS - HELD,
            "only {waiting} callers waited for room"
        );
        handles
    });
    // Room appears as the master drains: every waiting caller's write is then queued and sent.
    for (t, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("caller"), Ok(()), "caller {t}");
    }
    assert_eq!(client.metrics().total.commits, CALLERS as u64 + 1);
}

#[test]
fn block_policy_times_out_unsent_when_no_room_appears() {
    let cluster = cluster();
    let mut config = tight_config(&cluster, FallbackStrategy::Block);
    config.commit.timeout = Duration::from_millis(500);
    let client = Arc::new(Client::connect(config).expect("connect"));
    client.commit(&key(999), b"up").expect("warm-up");
    let handles = with_masters_paused(&cluster, || {
        let handles = flood(&client);
        // Nothing drains until every caller has its answer. While the masters are paused no
        // write can be confirmed, so each caller ends at its own deadline (500 ms); waiting for
        // all of them, rather than all but the held writes, keeps a caller that started late
        // (its deadline later too) from committing once the masters resume.
        poll_until("every caller answered", || {
            handles.iter().all(|h| h.is_finished())
        });
        handles
    });
    let mut not_applied = 0;
    for (t, h) in handles.into_iter().enumerate() {
        match h.join().expect("caller") {
            // Every caller had its answer before the masters resumed, and no paused master
            // can confirm a write.
            Ok(()) => panic!("caller {t} committed while every master was paused"),
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            }) => not_applied += 1,
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: true,
            }) => {}
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
    }
    assert!(
        not_applied >= CALLERS - HELD,
        "only {not_applied} timed out unsent"
    );
}

#[test]
fn deadline_passes_while_a_master_is_paused() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.commit.timeout = Duration::from_millis(300);
    let client = Client::connect(config).expect("connect");
    client.commit(b"warm", b"up").expect("warm-up commit");
    let (err, waited) = with_masters_paused(&cluster, || {
        let start = Instant::now();
        let err = client
            .commit(b"late", b"v")
            .expect_err("no master can answer");
        (err, start.elapsed())
    });
    assert!(
        matches!(err, CommitError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
}

#[test]
fn a_one_master_cluster_that_announces_no_host_is_served() {
    let cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(0)
        .start()
        .unwrap_or_else(|e| panic!("one-node cluster: {e}"));
    let client = Client::connect(cluster.config()).expect("connect");
    for i in 0..100 {
        client
            .commit(format!("solo:{i}").as_bytes(), b"v")
            .expect("commit on a one-node cluster");
    }
    let mut masters = masters(&cluster);
    assert_eq!(get(&mut masters, b"solo:42").as_deref(), Some(&b"v"[..]));
}
