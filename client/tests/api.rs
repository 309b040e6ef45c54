//! The command API against a real local Redis Cluster (3 masters + 3 replicas): any
//! single-slot command with its reply, commands routed by their key specs, batches with one
//! result per command, per-call options, and async calls that wait for room without spinning.
#![cfg(not(feature = "loom"))]

mod fault_support;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fault_support::{keys_on, masters_by_slot, node_index, slot_map};
use redis::Value;
use slotline_client::{CallOptions, Client, CommitError, Config, FallbackStrategy};
use slotline_testkit::exec::{block_on, run_woken, WAKE_LIMIT};
use slotline_testkit::LocalCluster;

fn cluster() -> LocalCluster {
    LocalCluster::start().unwrap_or_else(|e| panic!("cannot start a local Redis Cluster: {e}"))
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Runs `fut` with the strict executor (a lost wake-up fails the test), returning its output
/// and how many times it was polled.
fn block_on_counted<F: Future>(fut: F) -> (F::Output, usize) {
    let run = run_woken(fut, WAKE_LIMIT).expect("the future returned Pending and was never woken");
    (run.output, run.polls)
}

/// CPU time (user + system) the threads named `name` of this process have used (other tests
/// run in parallel in this process, so each test that measures names its threads apart), from
/// `/proc/self/task/*/stat`.
fn named_threads_cpu(name: &str) -> Duration {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(|task| thread_cpu(&task.path().join("stat")))
        .sum()
}

/// CPU time (user + system) from a `stat` file of `/proc`.
fn thread_cpu(path: &std::path::Path) -> Duration {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    let rest = &stat[stat.rfind(')').expect("a comm field") + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut ticks = || -> u64 {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .expect("a tick count")
    };
    let (user, system) = (ticks(), ticks());
    // `USER_HZ` is 100 on every Linux ABI.
    Duration::from_millis((user + system) * 10)
}

#[test]
fn every_command_family_returns_its_reply() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    let c = |args: &[&str]| -> Value {
        client
            .commit_cmd(&cmd(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };

    // SET and its options.
    assert_eq!(c(&["SET", "s:{1}", "a"]), Value::Okay);
    assert_eq!(c(&["SET", "s:{1}", "b", "NX"]), Value::Nil);
    assert_eq!(c(&["SET", "s:{1}", "c", "XX", "GET"]), bulk("a"));
    assert_eq!(c(&["SET", "s:{1}", "d", "EX", "100", "GET"]), bulk("c"));
    assert_eq!(c(&["SET", "s:{1}", "e", "PX", "100000"]), Value::Okay);
    assert_eq!(c(&["GET", "s:{1}"]), bulk("e"));
    assert!(
        matches!(c(&["PTTL", "s:{1}"]), Value::Int(ms) if ms > 90_000),
        "PX kept"
    );

    // Counters.
    assert_eq!(c(&["INCR", "n:{2}"]), Value::Int(1));
    assert_eq!(c(&["INCRBY", "n:{2}", "41"]), Value::Int(42));
    let n: i64 = redis::from_redis_value(c(&["INCRBY", "n:{2}", "-2"])).unwrap();
    assert_eq!(n, 40);

    // Hashes, read back as a map.
    assert_eq!(c(&["HSET", "h:{3}", "a", "1", "b", "2"]), Value::Int(2));
    let map: HashMap<String, String> = redis::from_redis_value(c(&["HGETALL", "h:{3}"])).unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(map["a"], "1");
    assert_eq!(map["b"], "2");

    // Streams: XADD returns the entry ID it chose.
    let id: String = redis::from_redis_value(c(&["XADD", "x:{4}", "*", "lat", "52.5"])).unwrap();
    let (ms, seq) = id.split_once('-').expect("an ID is <ms>-<seq>");
    assert!(
        ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
        "{id}"
    );
    assert_eq!(c(&["XADD", "x2:{4}", "5-1", "a", "b"]), bulk("5-1"));
    let err = client
        .commit_cmd(&cmd(&["XADD", "x2:{4}", "5-1", "a", "b"]))
        .expect_err("an ID at or below the top is refused");
    assert!(
        matches!(&err, CommitError::Server { message } if message.contains("equal or smaller")),
        "{err:?}"
    );

    // Expiry, lists, sorted sets.
    assert_eq!(c(&["EXPIRE", "n:{2}", "100"]), Value::Int(1));
    assert_eq!(c(&["EXPIRE", "missing:{2}", "100"]), Value::Int(0));
    assert_eq!(c(&["LPUSH", "l:{5}", "a", "b", "c"]), Value::Int(3));
    assert_eq!(c(&["ZADD", "z:{6}", "1", "one", "2", "two"]), Value::Int(2));
    let top: Vec<String> = redis::from_redis_value(c(&["ZRANGE", "z:{6}", "0", "-1"])).unwrap();
    assert_eq!(top, ["one", "two"]);

    // Several keys in one slot: MSET, MGET, DEL, UNLINK.
    assert_eq!(
        c(&["MSET", "{u7}:a", "1", "{u7}:b", "2", "{u7}:c", "3"]),
        Value::Okay
    );
    let got: Vec<String> = redis::from_redis_value(c(&["MGET", "{u7}:a", "{u7}:b"])).unwrap();
    assert_eq!(got, ["1", "2"]);
    assert_eq!(c(&["DEL", "{u7}:a", "{u7}:b"]), Value::Int(2));
    assert_eq!(c(&["UNLINK", "{u7}:c", "{u7}:zzz"]), Value::Int(1));

    // Scripts and functions, routed by their keys (not by the script's text).
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])";
    assert_eq!(
        c(&["EVAL", script, "2", "{ev}:a", "{ev}:n", "x"]),
        Value::Int(1)
    );
    let sha: String = redis::from_redis_value(
        cluster
            .query(0, redis::cmd("SCRIPT").arg("LOAD").arg(script))
            .expect("SCRIPT LOAD")
            .expect("SCRIPT LOAD reply"),
    )
    .unwrap();
    for i in cluster.master_indices() {
        cluster
            .query(i, redis::cmd("SCRIPT").arg("LOAD").arg(script))
            .expect("SCRIPT LOAD on every master")
            .expect("SCRIPT LOAD reply");
    }
    assert_eq!(
        c(&["EVALSHA", &sha, "2", "{ev}:a", "{ev}:n", "y"]),
        Value::Int(2)
    );
    let library = "#!lua name=slotline_api\n\
                   redis.register_function('bump', function(keys, args) \
                   return redis.call('INCRBY', keys[1], args[1]) end)";
    for i in cluster.master_indices() {
        cluster
            .query(
                i,
                redis::cmd("FUNCTION")
                    .arg("LOAD")
                    .arg("REPLACE")
                    .arg(library),
            )
            .expect("FUNCTION LOAD on every master")
            .expect("FUNCTION LOAD reply");
    }
    assert_eq!(c(&["FCALL", "bump", "1", "f:{9}", "5"]), Value::Int(5));
    assert_eq!(c(&["FCALL", "bump", "1", "f:{9}", "5"]), Value::Int(10));
    // A nested error reply keeps its text.
    let nested = c(&[
        "EVAL",
        "return {1, redis.error_reply('ERR nested')}",
        "1",
        "k:{e}",
    ]);
    let Value::Array(items) = nested else {
        panic!("an array, got {nested:?}")
    };
    assert_eq!(items[0], Value::Int(1));
    assert!(format!("{:?}", items[1]).contains("nested"), "{items:?}");

    // Nothing was redirected: every command went to its key's master at once.
    let total = client.metrics().total;
    assert_eq!(total.moved, 0, "commands were routed by the wrong key");
    assert_eq!(total.ask, 0);
}

#[test]
fn scripts_on_every_master_are_routed_by_their_keys() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    assert_eq!(masters.len(), 3);
    let script = "return redis.call('SET', KEYS[1], ARGV[1])";
    for &(port, _) in &masters {
        for key in keys_on(&map, port, "sc:", 20) {
            let key = String::from_utf8(key).unwrap();
            let reply = client
                .commit_cmd(&cmd(&["EVAL", script, "1", &key, &port.to_string()]))
                .unwrap_or_else(|e| panic!("EVAL on {key}: {e}"));
            assert_eq!(reply, Value::Okay);
            // Read back from that very master with a plain connection.
            let i = node_index(&cluster, port);
            let value = cluster
                .query(i, redis::cmd("GET").arg(&key))
                .expect("GET")
                .expect("GET reply");
            assert_eq!(value, bulk(&port.to_string()), "{key} is not on {port}");
        }
    }
    assert_eq!(
        client.metrics().total.moved,
        0,
        "EVAL was routed by its body"
    );
}

#[test]
fn a_batch_lands_on_every_master_with_one_result_each_in_order() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    // 600 INCRBYs on 60 keys spread over every master: each result is the running sum of its
    // key, so any reordering within a key, or a result given to the wrong command, shows.
    let keys: Vec<String> = (0..60).map(|k| format!("b:{{{k}}}")).collect();
    let mut cmds = Vec::new();
    let mut expected = Vec::new();
    let mut sums = vec![0i64; keys.len()];
    for i in 0..600usize {
        let k = (i * 7) % keys.len();
        let by = i as i64 + 1;
        sums[k] += by;
        cmds.push(cmd(&["INCRBY", &keys[k], &by.to_string()]));
        expected.push(sums[k]);
        if i == 300 {
            cmds.push(cmd(&["PING"])); // no key: an error in its own place only
            expected.push(-1);
        }
    }
    let check = |results: Vec<Result<Value, CommitError>>| {
        assert_eq!(results.len(), cmds.len());
        for (i, (r, want)) in results.into_iter().zip(&expected).enumerate() {
            if *want < 0 {
                assert!(
                    matches!(r, Err(CommitError::InvalidCommand(_))),
                    "command {i}: {r:?}"
                );
            } else {
                assert_eq!(r, Ok(Value::Int(*want)), "command {i}");
            }
        }
    };
    check(client.commit_batch(&cmds).expect("batch"));

    // The same batch again, async: each key's sums continue from where they ended.
    let mut running = sums.clone();
    let mut expected2 = Vec::new();
    for i in 0..600usize {
        let k = (i * 7) % keys.len();
        running[k] += i as i64 + 1;
        expected2.push(running[k]);
        if i == 300 {
            expected2.push(-1);
        }
    }
    let (results, polls) = block_on_counted(client.commit_batch_async(&cmds));
    let results = results.expect("async batch");
    for (i, (r, want)) in results.into_iter().zip(&expected2).enumerate() {
        if *want < 0 {
            assert!(
                matches!(r, Err(CommitError::InvalidCommand(_))),
                "{i}: {r:?}"
            );
        } else {
            assert_eq!(r, Ok(Value::Int(*want)), "async command {i}");
        }
    }
    assert!(polls < 600, "the batch future was polled {polls} times");
    let map = slot_map(&cluster);
    let used: std::collections::HashSet<u16> = keys
        .iter()
        .map(|k| map[usize::from(slotline_router::key_slot(k.as_bytes()).get())])
        .collect();
    assert_eq!(used.len(), 3, "the batch did not reach every master");
    assert_eq!(client.metrics().total.moved, 0);
}

#[test]
fn a_batch_larger_than_a_queue_is_refused_whole() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.backpressure.threshold_percent = 50;
    let client = Client::connect(config).expect("connect");
    // 40 commands on one key: more than that master's line (8) can ever hold.
    let cmds: Vec<redis::Cmd> = (0..40).map(|_| cmd(&["INCR", "big:{1}"])).collect();
    let err = client.commit_batch(&cmds).expect_err("too large");
    assert!(
        matches!(
            err,
            CommitError::BatchTooLarge {
                ops: 40,
                limit_ops: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    let err = block_on(client.commit_batch_async(&cmds)).expect_err("too large");
    assert!(matches!(err, CommitError::BatchTooLarge { .. }), "{err:?}");
    // Nothing of it was queued.
    let value = client.commit_cmd(&cmd(&["GET", "big:{1}"])).expect("GET");
    assert_eq!(value, Value::Nil);
    // A batch within the line goes through.
    let results = client.commit_batch(&cmds[..8]).expect("small batch");
    assert_eq!(results.last(), Some(&Ok(Value::Int(8))));
}

#[test]
fn a_batch_that_meets_a_paused_master_ends_by_its_deadline() {
    let cluster = cluster();
    let mut config = cluster.config();
    // The link gives up on the silent master as soon as the oldest deadline has passed: its
    // ops must still end as `DeadlineExceeded`, not as a lost connection.
    config.redis_pool.read_timeout = Duration::from_millis(1);
    let client = Client::connect(config).expect("connect");
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    let paused_port = masters[1].0;
    let paused = node_index(&cluster, paused_port);
    let mut cmds = Vec::new();
    let mut on_paused = Vec::new();
    for &(port, _) in &masters {
        for key in keys_on(&map, port, "pb:", 30) {
            on_paused.push(port == paused_port);
            cmds.push(cmd(&["SET", std::str::from_utf8(&key).unwrap(), "v"]));
        }
    }
    let deadline = Duration::from_millis(600);
    let opts = CallOptions::new().timeout(deadline);
    cluster.pause_node(paused).expect("SIGSTOP a master");
    let started = Instant::now();
    // Async first, on a connection that holds nothing else (only the I/O thread ends the
    // paused master's ops: they must end as `DeadlineExceeded`), then blocking.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (async_results, polls) = block_on_counted(client.commit_batch_async_with(&cmds, &opts));
        let async_waited = started.elapsed();
        let started = Instant::now();
        let blocking = client.commit_batch_with(&cmds, &opts);
        (
            blocking,
            started.elapsed(),
            async_results,
            async_waited,
            polls,
        )
    }));
    cluster.resume_node(paused).expect("SIGCONT");
    let (blocking, blocking_waited, async_results, async_waited, polls) =
        outcome.expect("no panic");
    for (what, results, waited) in [
        ("blocking", blocking, blocking_waited),
        ("async", async_results, async_waited),
    ] {
        let results = results.expect("batch");
        let lost = results
            .iter()
            .any(|r| matches!(r, Err(CommitError::ConnectionLost { .. })));
        for (i, (r, paused)) in results.iter().zip(&on_paused).enumerate() {
            if *paused {
                // The blocking batch meets a connection whose older requests (the async
                // batch's) passed their deadline unanswered: the link presumes it dead and
                // closes it, so a command may end as a lost connection, applied or not.
                let lost = what == "blocking"
                    && matches!(
                        r,
                        Err(CommitError::ConnectionLost {
                            may_have_been_applied: true
                        })
                    );
                assert!(
                    lost || matches!(r, Err(CommitError::DeadlineExceeded { .. })),
                    "{what} command {i} on the paused master: {r:?}"
                );
            } else {
                assert_eq!(
                    r,
                    &Ok(Value::Okay),
                    "{what} command {i} on a healthy master"
                );
            }
        }
        // The deadline holds for the whole batch (bound generous for a loaded machine); a
        // connection found dead ends its commands, and so the call, earlier.
        assert!(
            lost || waited >= deadline,
            "{what}: returned before the deadline: {waited:?}"
        );
        assert!(
            waited < deadline + Duration::from_secs(3),
            "{what}: waited {waited:?}"
        );
    }
    assert!(polls < 200, "the async batch was polled {polls} times");
}

#[test]
fn per_call_options_override_replicas_and_deadline() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.ack.replicas = 0;
    // `WAIT 1` returns as soon as the replica confirms: a long timeout costs nothing, and keeps
    // a replica that a loaded machine schedules late from failing the test.
    config.ack.timeout = Duration::from_secs(5);
    config.commit.timeout = Duration::from_secs(10);
    let client = Client::connect(config.clone()).expect("connect");
    // `WAIT 2` (one replica exists) takes all of its timeout, so it gets a shorter one, still
    // generous for the one replica to have confirmed by then on a loaded machine.
    config.ack.timeout = Duration::from_millis(1000);
    let short_wait = Client::connect(config).expect("connect");

    // Replicas: one exists per master, so 1 succeeds and 2 falls short.
    client
        .commit_with(b"r:{1}", b"v", &CallOptions::new().replicas(1))
        .expect("WAIT 1");
    let err = short_wait
        .commit_with(b"r:{1}", b"v", &CallOptions::new().replicas(2))
        .expect_err("WAIT 2 with one replica");
    assert_eq!(
        err,
        CommitError::ReplicationShortfall {
            wanted: 2,
            confirmed: 1
        }
    );
    let reply = client
        .commit_cmd_with(&cmd(&["INCR", "r:{n}"]), &CallOptions::new().replicas(1))
        .expect("INCR with WAIT 1");
    assert_eq!(reply, Value::Int(1));
    // Mixed in one batch: each command is judged by its own count.
    let cmds = [cmd(&["INCR", "r:{n}"]), cmd(&["INCR", "r:{n}"])];
    let results = short_wait
        .commit_batch_with(&cmds, &CallOptions::new().replicas(2))
        .expect("batch");
    for r in &results {
        assert!(
            matches!(
                r,
                Err(CommitError::ReplicationShortfall {
                    wanted: 2,
                    confirmed: 1
                })
            ),
            "{r:?}"
        );
    }

    // Deadline: a paused master, a 200 ms call on a client whose default is 10 s.
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[0].0;
    let key = keys_on(&map, port, "d:", 1).remove(0);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    let started = Instant::now();
    let outcome = client.commit_with(
        &key,
        b"v",
        &CallOptions::new().timeout(Duration::from_millis(200)),
    );
    let waited = started.elapsed();
    cluster.resume_node(i).expect("SIGCONT");
    assert!(
        matches!(outcome, Err(CommitError::DeadlineExceeded { .. })),
        "{outcome:?}"
    );
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(
        waited < Duration::from_secs(3),
        "the 10 s default was used: {waited:?}"
    );
}

/// One shard's worth of ring per master (16, the line at 8), one batch of 4 in flight.
fn tight(cluster: &LocalCluster, strategy: FallbackStrategy, timeout: Duration) -> Config {
    let mut config = cluster.config();
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.backpressure.threshold_percent = 50;
    config.backpressure.fallback_strategy = strategy;
    config.batching.max_batch = 4;
    config.batching.pipeline_depth = 1;
    config.commit.timeout = timeout;
    config
}

/// Fills the queue of the master serving `key`'s slot (paused) with blocking callers until
/// its ring is at the line; returns the callers.
fn fill(
    client: &Arc<Client>,
    keys: Vec<Vec<u8>>,
) -> Vec<thread::JoinHandle<Result<(), CommitError>>> {
    fill_to(client, keys, 8, "filler")
}

/// Like [`fill`], until `queued` ops wait in the rings, with the callers' threads named
/// `name`.
///
/// Returns once the state is settled: a batch in flight (the pipeline holds one, and the
/// paused master does not answer) and `queued` ops in the rings. A caller may start waiting
/// before the I/O thread has taken its first batch to the paused master, and that take frees
/// room for a moment; only once it is in flight does no room appear until the master answers.
fn fill_to(
    client: &Arc<Client>,
    keys: Vec<Vec<u8>>,
    queued: usize,
    name: &str,
) -> Vec<thread::JoinHandle<Result<(), CommitError>>> {
    let handles: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let client = Arc::clone(client);
            thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || client.commit(&key, b"v"))
                .expect("spawn a filler")
        })
        .collect();
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let m = client.metrics().total;
        let ring = m.ring.map_or(0, |r| r.len);
        if m.in_flight >= 1 && ring >= queued {
            break;
        }
        assert!(
            Instant::now() < limit,
            "the paused master's queue never settled within 30 s: {} in flight, {ring} of {queued} queued",
            m.in_flight
        );
        thread::sleep(Duration::from_millis(5));
    }
    handles
}

#[test]
fn async_block_waits_for_room_without_spinning() {
    let cluster = cluster();
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_secs(20),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[2].0;
    let keys = keys_on(&map, port, "fill:", 40);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    // Named apart from the other tests' fillers, whose CPU is not this test's to count.
    const FILLERS: &str = "nospin-filler";
    let fillers = fill_to(&client, keys[..30].to_vec(), 8, FILLERS);

    // 17 blocking callers now wait for room that does not come: they sleep, they do not take
    // turns waking each other (each failed push would otherwise wake the next waiter).
    let cpu_before = named_threads_cpu(FILLERS);
    thread::sleep(Duration::from_millis(500));
    let cpu = named_threads_cpu(FILLERS).saturating_sub(cpu_before);
    assert!(
        cpu < Duration::from_millis(250),
        "{cpu:?} of CPU in 500 ms while every caller waits"
    );

    // The client blocks by default; one call asks to be refused at once instead.
    let started = Instant::now();
    let reject = CallOptions::new().fallback_strategy(FallbackStrategy::Reject);
    assert_eq!(
        client.commit_with(&keys[39], b"v", &reject),
        Err(CommitError::Rejected)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Room never comes: the future resolves at its own deadline, unsent, after a handful of
    // polls (a future that spins would be polled thousands of times).
    let opts = CallOptions::new().timeout(Duration::from_millis(300));
    let started = Instant::now();
    let (outcome, polls) = block_on_counted(client.commit_async_with(&keys[30], b"v", &opts));
    let waited = started.elapsed();
    assert_eq!(
        outcome,
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(polls <= 10, "polled {polls} times while waiting");

    // Room comes mid-wait: the master resumes after 300 ms, and the waiting future (20 s
    // deadline) commits once the queue drains.
    let resumer = {
        let started = Instant::now();
        let pid_index = i;
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            started
        });
        (handle, pid_index)
    };
    let opts = CallOptions::new().timeout(Duration::from_secs(20));
    let fut = client.commit_async_with(&keys[31], b"later", &opts);
    let waiter = thread::spawn(move || block_on_counted(fut));
    let _ = resumer.0.join();
    cluster.resume_node(resumer.1).expect("SIGCONT");
    let (outcome, polls) = waiter.join().expect("waiter");
    assert_eq!(
        outcome,
        Ok(()),
        "the waiting commit must go through once room appears"
    );
    assert!(polls <= 50, "polled {polls} times");
    for h in fillers {
        assert_eq!(h.join().expect("filler"), Ok(()));
    }
    let value = client
        .commit_cmd(&cmd(&["GET", std::str::from_utf8(&keys[31]).unwrap()]))
        .expect("GET");
    assert_eq!(value, bulk("later"));
}

#[test]
fn a_blocking_caller_waiting_for_room_is_refused_at_close() {
    let cluster = cluster();
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_secs(30),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[0].0;
    let keys = keys_on(&map, port, "cl:", 40);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    let fillers = fill(&client, keys[..30].to_vec());
    let waiting = Arc::new(AtomicUsize::new(0));
    let blocked = {
        let client = Arc::clone(&client);
        let key = keys[30].clone();
        let waiting = Arc::clone(&waiting);
        thread::spawn(move || {
            waiting.fetch_add(1, Ordering::SeqCst);
            let started = Instant::now();
            (client.commit(&key, b"v"), started.elapsed())
        })
    };
    while waiting.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    client.close();
    let closed_in = started.elapsed();
    cluster.resume_node(i).expect("SIGCONT");
    let (outcome, waited) = blocked.join().expect("blocked caller");
    assert_eq!(outcome, Err(CommitError::Closed));
    assert!(
        waited < Duration::from_secs(10),
        "the 30 s deadline was waited out: {waited:?}"
    );
    assert!(
        closed_in < Duration::from_secs(5),
        "close took {closed_in:?}"
    );
    for h in fillers {
        let r = h.join().expect("filler");
        assert!(
            r.is_err(),
            "a queued write to a paused master cannot succeed after close"
        );
    }
}

#[test]
fn a_short_async_deadline_behind_longer_ones_in_a_stalled_queue_is_kept() {
    let cluster = cluster();
    // Ops with the default 20 s deadline fill a paused master's pipeline (4 in flight), the
    // op its link watches, and part of its ring; a 300 ms call queued behind them is not the
    // one any I/O thread watches, yet its future must resolve at its own deadline.
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_secs(20),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[1].0;
    let keys = keys_on(&map, port, "sd:", 12);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    let fillers = fill_to(&client, keys[..9].to_vec(), 4, "filler");
    let opts = CallOptions::new().timeout(Duration::from_millis(300));
    let started = Instant::now();
    let (outcome, polls) = block_on_counted(client.commit_async_with(&keys[10], b"v", &opts));
    let waited = started.elapsed();
    let (batch, _) = block_on_counted(client.commit_batch_async_with(
        &[cmd(&["SET", std::str::from_utf8(&keys[11]).unwrap(), "v"])],
        &opts,
    ));
    let batch_waited = started.elapsed() - waited;
    cluster.resume_node(i).expect("SIGCONT");
    assert_eq!(
        outcome,
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    assert!(waited < Duration::from_secs(3), "resolved after {waited:?}");
    assert!(polls <= 10, "polled {polls} times");
    let batch = batch.expect("batch");
    assert!(
        matches!(batch[0], Err(CommitError::DeadlineExceeded { .. })),
        "{batch:?}"
    );
    assert!(
        batch_waited < Duration::from_secs(3),
        "batch resolved after {batch_waited:?}"
    );
    for h in fillers {
        assert_eq!(h.join().expect("filler"), Ok(()));
    }
}

#[test]
fn commands_that_cannot_share_a_pipelined_connection_are_refused() {
    let cluster = cluster();
    let client = Client::connect(cluster.config()).expect("connect");
    for args in [
        &["SSUBSCRIBE", "{t}a", "{t}b"][..],
        &["SUBSCRIBE", "chan"],
        &["BLPOP", "q:{1}", "0"],
        &["BZPOPMIN", "z:{1}", "1"],
        &["WATCH", "w:{1}"],
        &["XREAD", "BLOCK", "0", "STREAMS", "x:{1}", "$"],
    ] {
        let err = client.commit_cmd(&cmd(args)).expect_err("refused");
        assert!(
            matches!(
                &err,
                CommitError::InvalidCommand(
                    slotline_client::CommandError::NotPipelinable { .. }
                        | slotline_client::CommandError::Keys(_)
                )
            ),
            "{args:?}: {err:?}"
        );
        assert!(!err.may_have_been_applied());
    }
    // The connection still answers in order: nothing was sent.
    assert_eq!(
        client.commit_cmd(&cmd(&["SET", "{t}x", "1"])).expect("SET"),
        Value::Okay
    );
    assert_eq!(
        client.commit_cmd(&cmd(&["GET", "{t}x"])).expect("GET"),
        bulk("1")
    );
    // The non-blocking forms are fine.
    client
        .commit_cmd(&cmd(&["XADD", "x:{1}", "*", "a", "1"]))
        .expect("XADD");
    let read = client
        .commit_cmd(&cmd(&["XREAD", "COUNT", "1", "STREAMS", "x:{1}", "0"]))
        .expect("XREAD without BLOCK");
    assert!(matches!(read, Value::Array(_)), "{read:?}");
}

#[test]
fn a_full_master_holds_back_only_its_own_commands_in_a_batch() {
    let cluster = cluster();
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_secs(20),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    let (full, healthy) = (masters[0].0, masters[1].0);
    let i = node_index(&cluster, full);
    let full_keys = keys_on(&map, full, "hb:", 24);
    let healthy_keys = keys_on(&map, healthy, "hb:", 2);
    cluster.pause_node(i).expect("SIGSTOP");
    let fillers = fill(&client, full_keys[..20].to_vec());
    let set = |k: &[u8]| cmd(&["SET", std::str::from_utf8(k).unwrap(), "v"]);
    // The full master's command comes first in the batch; the healthy one's must not wait.
    let cmds = [set(&full_keys[20]), set(&healthy_keys[0])];
    let opts = CallOptions::new().timeout(Duration::from_millis(600));
    let blocking = client.commit_batch_with(&cmds, &opts).expect("batch");
    let cmds = [set(&full_keys[21]), set(&healthy_keys[1])];
    let (async_results, _) = block_on_counted(client.commit_batch_async_with(&cmds, &opts));
    cluster.resume_node(i).expect("SIGCONT");
    for (what, results) in [
        ("blocking", blocking),
        ("async", async_results.expect("batch")),
    ] {
        assert!(
            matches!(
                results[0],
                Err(CommitError::DeadlineExceeded {
                    may_have_been_applied: false
                })
            ),
            "{what}: {:?}",
            results[0]
        );
        assert_eq!(
            results[1],
            Ok(Value::Okay),
            "{what}: the healthy master's command"
        );
    }
    for h in fillers {
        assert_eq!(h.join().expect("filler"), Ok(()));
    }
}

#[test]
fn a_default_async_deadline_behind_a_longer_one_in_a_stalled_queue_is_kept() {
    let cluster = cluster();
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_millis(300),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[2].0;
    let keys = keys_on(&map, port, "ld:", 8);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    // Five default-deadline writes take the window (4 in flight) and the watched head.
    let fillers: Vec<_> = keys[..5]
        .iter()
        .map(|k| {
            let (client, k) = (Arc::clone(&client), k.clone());
            thread::spawn(move || client.commit(&k, b"v"))
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    // Then one with a 30 s deadline, queued first in the ring...
    let long = {
        let (client, k) = (Arc::clone(&client), keys[5].clone());
        thread::spawn(move || {
            client.commit_with(
                &k,
                b"v",
                &CallOptions::new().timeout(Duration::from_secs(30)),
            )
        })
    };
    thread::sleep(Duration::from_millis(50));
    // ... and an async write with the default 300 ms behind it.
    let started = Instant::now();
    let (outcome, _) = block_on_counted(client.commit_async(&keys[6], b"v"));
    let waited = started.elapsed();
    cluster.resume_node(i).expect("SIGCONT");
    assert!(
        matches!(outcome, Err(CommitError::DeadlineExceeded { .. })),
        "{outcome:?}"
    );
    assert!(waited < Duration::from_secs(3), "resolved after {waited:?}");
    for f in fillers {
        let _ = f.join().expect("filler");
    }
    assert_eq!(long.join().expect("long"), Ok(()));
}

#[test]
fn drop_oldest_with_no_time_left_evicts_nobody() {
    let cluster = cluster();
    let client = Arc::new(
        Client::connect(tight(
            &cluster,
            FallbackStrategy::Block,
            Duration::from_secs(20),
        ))
        .expect("connect"),
    );
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[1].0;
    let keys = keys_on(&map, port, "do:", 21);
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    let fillers = fill(&client, keys[..20].to_vec());
    let opts = CallOptions::new()
        .timeout(Duration::ZERO)
        .fallback_strategy(FallbackStrategy::DropOldest);
    let outcome = client.commit_with(&keys[20], b"v", &opts);
    let drops = client.metrics().total.drops;
    cluster.resume_node(i).expect("SIGCONT");
    assert_eq!(
        outcome,
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    assert_eq!(drops, 0, "a call out of time evicted a queued write");
    for h in fillers {
        assert_eq!(h.join().expect("filler"), Ok(()));
    }
}

#[test]
fn waiters_for_room_follow_their_slot_to_its_new_master() {
    let cluster = cluster();
    let mut config = tight(&cluster, FallbackStrategy::Block, Duration::from_secs(30));
    config.redis_pool.dial_timeout = Duration::from_millis(200);
    config.redis_pool.read_timeout = Duration::from_millis(200);
    let client = Arc::new(Client::connect(config).expect("connect"));
    client.commit(b"warm", b"up").expect("warm-up");
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    let (from, to) = (masters[0].0, masters[1].0);
    // Every key in one slot (one hash tag), served by `from`.
    let tag = String::from_utf8(keys_on(&map, from, "", 1).remove(0)).unwrap();
    let keys: Vec<Vec<u8>> = (0..30).map(|n| format!("{tag}:{n}").into_bytes()).collect();
    let slot = slotline_router::key_slot(&keys[0]).get();
    let i = node_index(&cluster, from);
    cluster.pause_node(i).expect("SIGSTOP");
    // Five writes with a 1.5 s deadline go first: a batch of them is sent to the frozen master
    // and the rest queue behind it. When their deadline passes in flight, the client re-reads
    // the topology. The deadline leaves the fillers and the slot move below time to happen
    // first on a loaded machine: that one re-read must see the new owner.
    let short: Vec<_> = keys[..5]
        .iter()
        .map(|k| {
            let (client, k) = (Arc::clone(&client), k.clone());
            thread::spawn(move || {
                client.commit_with(
                    &k,
                    b"v",
                    &CallOptions::new().timeout(Duration::from_millis(1500)),
                )
            })
        })
        .collect();
    // A batch of short writes is in flight (the pipeline holds one) before any filler comes.
    let limit = Instant::now() + Duration::from_secs(10);
    while client.metrics().total.in_flight < 1 {
        assert!(Instant::now() < limit, "the short writes were never sent");
        thread::sleep(Duration::from_millis(5));
    }
    // Twenty-five with 30 s: the link holds some, eight fill the ring to its line, the rest
    // (ten or more) wait for room.
    let fillers = fill(&client, keys[5..30].to_vec());
    // The slot moves to `to` while `from` is frozen (the other nodes are told directly).
    let to_id = fault_support::node_id(&cluster, node_index(&cluster, to));
    for n in 0..cluster.nodes().len() {
        if n != i {
            let _ = cluster.query(
                n,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id),
            );
        }
    }
    let started = Instant::now();
    // The callers that waited for room in `from`'s queue now go to `to` and succeed.
    let limit = Instant::now() + Duration::from_secs(10);
    let mut done = 0;
    while done < 5 && Instant::now() < limit {
        done = fillers.iter().filter(|h| h.is_finished()).count();
        thread::sleep(Duration::from_millis(10));
    }
    let waited = started.elapsed();
    cluster.resume_node(i).expect("SIGCONT");
    assert!(
        done >= 5,
        "{done} of the callers waiting for room finished within {waited:?}"
    );
    for h in fillers {
        assert_eq!(h.join().expect("filler"), Ok(()));
    }
    for h in short {
        let _ = h.join().expect("short");
    }
}

#[test]
fn a_wait_whose_ops_all_failed_does_not_look_like_a_stall() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.redis_pool.read_timeout = Duration::from_millis(50);
    config.ack.timeout = Duration::from_millis(600);
    config.commit.timeout = Duration::from_secs(5);
    let client = Client::connect(config).expect("connect");
    let map = slot_map(&cluster);
    let port = masters_by_slot(&map)[0].0;
    let key = String::from_utf8(keys_on(&map, port, "ws:", 1).remove(0)).unwrap();
    client.commit(key.as_bytes(), b"a string").expect("SET");
    let i = node_index(&cluster, port);
    let connections = || -> i64 {
        let info = cluster
            .query(i, redis::cmd("INFO").arg("stats"))
            .expect("INFO")
            .expect("INFO reply");
        let text: String = redis::from_redis_value(info).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("a connection count")
    };
    let before = connections();
    // WRONGTYPE, then `WAIT 2 600` (one replica exists, so WAIT takes its whole timeout).
    let err = client
        .commit_cmd_with(&cmd(&["LPUSH", &key, "x"]), &CallOptions::new().replicas(2))
        .expect_err("WRONGTYPE");
    assert!(matches!(err, CommitError::Server { .. }), "{err:?}");
    thread::sleep(Duration::from_millis(800));
    client.commit(key.as_bytes(), b"after").expect("SET after");
    // One more connection: the query that counts them.
    assert_eq!(
        connections(),
        before + 1,
        "the link was dropped while its WAIT was outstanding"
    );
}
