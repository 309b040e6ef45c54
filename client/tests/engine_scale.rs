//! Threads do not grow with the cluster: against 12 masters the client adds its I/O threads,
//! its refresh thread and its timer thread, nothing per master, and every master receives
//! writes.
//!
//! Alone in its test binary: it counts the process's threads, which other tests running in
//! parallel would disturb.
#![cfg(not(feature = "loom"))]

use slotline_client::Client;
use slotline_router::key_slot;
use slotline_testkit::LocalCluster;

/// Threads of this process, from `/proc/self/status`.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// The port of the master serving each slot, from `CLUSTER SLOTS` on node 0.
fn slot_ports(cluster: &LocalCluster) -> Vec<u16> {
    let reply = cluster
        .query(0, redis::cmd("CLUSTER").arg("SLOTS"))
        .expect("CLUSTER SLOTS")
        .expect("CLUSTER SLOTS reply");
    let redis::Value::Array(entries) = reply else {
        panic!("CLUSTER SLOTS is not an array: {reply:?}");
    };
    let mut map = vec![0u16; 16384];
    for entry in entries {
        let redis::Value::Array(items) = entry else {
            panic!("bad CLUSTER SLOTS entry");
        };
        let (redis::Value::Int(start), redis::Value::Int(end)) = (&items[0], &items[1]) else {
            panic!("bad CLUSTER SLOTS range");
        };
        let redis::Value::Array(master) = &items[2] else {
            panic!("bad CLUSTER SLOTS master");
        };
        let redis::Value::Int(port) = master[1] else {
            panic!("bad CLUSTER SLOTS port");
        };
        for slot in *start..=*end {
            map[slot as usize] = port as u16;
        }
    }
    map
}

#[test]
fn twelve_masters_add_io_threads_plus_one_and_all_get_writes() {
    let cluster = LocalCluster::builder()
        .masters(12)
        .replicas_per_master(0)
        .start()
        .unwrap_or_else(|e| panic!("cannot start a 12-master local Redis Cluster: {e}"));
    let config = cluster.config();
    let io_threads = config.io_threads();
    let before = threads();
    let client = Client::connect(config).expect("connect");
    let map = slot_ports(&cluster);
    let mut ports: Vec<u16> = map.clone();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 12, "12 masters serve the slots");
    // 20 keys per master.
    let mut per_port = std::collections::HashMap::<u16, usize>::new();
    let mut i = 0u64;
    while per_port.values().filter(|&&n| n >= 20).count() < 12 {
        let key = format!("scale:{{{i}}}");
        let port = map[usize::from(key_slot(key.as_bytes()).get())];
        let n = per_port.entry(port).or_default();
        if *n < 20 {
            client.commit(key.as_bytes(), b"v").expect("commit");
            *n += 1;
        }
        i += 1;
    }
    let during = threads();
    assert!(
        during - before == io_threads + 2,
        "the client added {} threads for 12 masters with io_threads = {io_threads}",
        during - before
    );
    for node in cluster.master_indices() {
        let size = cluster
            .query(node, &redis::cmd("DBSIZE"))
            .expect("DBSIZE")
            .expect("DBSIZE reply");
        assert_eq!(
            size,
            redis::Value::Int(20),
            "master {node} holds its 20 keys"
        );
    }
    drop(client);
}
