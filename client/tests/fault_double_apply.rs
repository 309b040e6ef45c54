//! A write whose reply was read is never sent again: `INCR` commits with `ack.replicas 1`
//! while the client's connections are killed mid-`WAIT` (`CLIENT KILL`), first with the
//! replicas alive, then with them killed. The counter in Redis must never exceed the commits
//! reported `Ok` plus those reported `may_have_been_applied`, and never fall below the `Ok`s.
#![cfg(not(feature = "loom"))]

mod fault_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fault_support::{node_index, slot_map};
use slotline_client::{Client, CommitError};
use slotline_router::key_slot;
use slotline_testkit::LocalCluster;

const KEY: &[u8] = b"ctr:{double-apply}";

#[derive(Default, Debug)]
struct Outcomes {
    ok: u64,
    maybe: u64,
    not_applied: u64,
    /// `ConnectionLost` / `ReplicationUnconfirmed`: the kill landed while the op was out.
    cut: u64,
}

fn run_phase(
    client: &Arc<Client>,
    cluster: &LocalCluster,
    master: usize,
    for_: Duration,
) -> Outcomes {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = Arc::clone(client);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut out = Outcomes::default();
                let mut incr = redis::cmd("INCR");
                incr.arg(KEY);
                while !stop.load(Ordering::Relaxed) {
                    match client.commit_cmd(&incr) {
                        Ok(_) => out.ok += 1,
                        Err(e) => {
                            if matches!(
                                e,
                                CommitError::ConnectionLost { .. }
                                    | CommitError::ReplicationUnconfirmed { .. }
                            ) {
                                out.cut += 1;
                            }
                            if e.may_have_been_applied() {
                                out.maybe += 1;
                            } else {
                                out.not_applied += 1;
                            }
                        }
                    }
                }
                out
            })
        })
        .collect();
    let end = Instant::now() + for_;
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(40));
        // Kills every normal client of the master but the one asking: the engine's link.
        let _ = cluster.query(
            master,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcomes::default();
    for w in workers {
        let o = w.join().expect("worker");
        total.ok += o.ok;
        total.maybe += o.maybe;
        total.not_applied += o.not_applied;
        total.cut += o.cut;
    }
    total
}

fn counter(cluster: &LocalCluster, master: usize) -> u64 {
    match cluster
        .query(master, redis::cmd("GET").arg(KEY))
        .expect("GET")
        .expect("GET reply")
    {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap().parse().unwrap(),
        redis::Value::Nil => 0,
        other => panic!("counter reply {other:?}"),
    }
}

#[test]
fn incr_is_never_applied_twice_when_connections_die_mid_wait() {
    let mut cluster =
        LocalCluster::start().unwrap_or_else(|e| panic!("cannot start a local Redis Cluster: {e}"));
    let map = slot_map(&cluster);
    let master = node_index(&cluster, map[usize::from(key_slot(KEY).get())]);
    let mut config = cluster.config();
    config.ack.replicas = 1;
    config.ack.timeout = Duration::from_millis(150);
    config.commit.timeout = Duration::from_secs(2);
    let client = Arc::new(Client::connect(config).expect("connect"));

    let alive = run_phase(&client, &cluster, master, Duration::from_secs(2));
    let after_alive = counter(&cluster, master);
    eprintln!("replicas alive: {alive:?}, counter {after_alive}");
    assert!(
        alive.ok > 0,
        "no INCR was acknowledged with the replicas alive"
    );
    assert!(
        after_alive >= alive.ok && after_alive <= alive.ok + alive.maybe,
        "counter {after_alive} outside [ok {}, ok + maybe {}]",
        alive.ok,
        alive.ok + alive.maybe
    );

    let replicas: Vec<usize> = (0..cluster.nodes().len())
        .filter(|i| !cluster.master_indices().any(|m| m == *i))
        .collect();
    for i in replicas {
        cluster.kill_node(i).expect("kill a replica");
    }
    let dead = run_phase(&client, &cluster, master, Duration::from_millis(1500));
    let after_dead = counter(&cluster, master);
    eprintln!("replicas killed: {dead:?}, counter {after_dead}");
    let ok = alive.ok + dead.ok;
    let maybe = alive.maybe + dead.maybe;
    assert!(
        after_dead >= ok && after_dead <= ok + maybe,
        "counter {after_dead} outside [ok {ok}, ok + maybe {}]",
        ok + maybe
    );
    assert!(dead.maybe > 0, "with no replica every WAIT falls short");
    assert!(
        alive.cut + dead.cut > 0,
        "no connection was ever killed under a write: the test proved nothing"
    );
}
