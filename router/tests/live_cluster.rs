//! The topology parsers and redirects against a real cluster: 3 masters and 3 replicas made by
//! `redis-cli --cluster create`, read through raw `CLUSTER SHARDS` / `CLUSTER SLOTS` replies.
//!
//! Needs `redis-server` and `redis-cli` on PATH (`apt-get install redis-server`).

mod support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use slotline_router::{key_slot, parse_resp, Addr, NodeMap, Redirect, RedirectKind, Slot, Value};
use support::{roundtrip, run, Node};

fn reply(node: &Node, args: &[&[u8]]) -> (Vec<u8>, Value) {
    let mut conn = node.connect().expect("connect");
    let raw = roundtrip(&mut conn, args);
    let value = parse_resp(&raw).expect("RESP").0;
    (raw, value)
}

fn cluster_ok(node: &Node) -> bool {
    let (raw, _) = reply(node, &[b"CLUSTER", b"INFO"]);
    String::from_utf8_lossy(&raw).contains("cluster_state:ok")
}

/// Both maps, once every node reports `cluster_state:ok` and the replies list 3 masters with a
/// replica each (replica links settle a little after the state turns ok).
fn settled_maps(nodes: &[Node]) -> (NodeMap, NodeMap) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if nodes.iter().all(cluster_ok) {
            let shards =
                NodeMap::from_cluster_shards(&reply(&nodes[0], &[b"CLUSTER", b"SHARDS"]).1)
                    .expect("parse CLUSTER SHARDS");
            let slots = NodeMap::from_cluster_slots(&reply(&nodes[0], &[b"CLUSTER", b"SLOTS"]).1)
                .expect("parse CLUSTER SLOTS");
            let full = |m: &NodeMap| {
                m.shards().len() == 3 && m.shards().iter().all(|s| s.replicas().len() == 1)
            };
            if full(&shards) && full(&slots) {
                return (shards, slots);
            }
        }
        assert!(Instant::now() < deadline, "cluster did not settle in 30 s");
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn cluster_shards_and_slots_describe_the_real_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes: Vec<Node> = (0..6).map(|_| Node::start(dir.path())).collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    run(Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"]));
    let (shards, slots) = settled_maps(&nodes);

    for map in [&shards, &slots] {
        assert!(map.is_complete(), "{map:?}");
        assert!(map.holes().is_empty());
        let covered: usize = map
            .masters()
            .map(|m| {
                map.slot_ranges(&m.addr)
                    .iter()
                    .map(|r| r.len())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(covered, 16384);
        for shard in map.shards() {
            assert!(
                addrs.contains(&shard.master().addr.to_string()),
                "{:?}",
                shard.master()
            );
            assert_eq!(shard.master().id.as_ref().map(String::len), Some(40));
            assert_eq!(shard.replicas()[0].id.as_ref().map(String::len), Some(40));
        }
    }
    // The two replies describe the same cluster.
    for slot in Slot::all() {
        assert_eq!(
            shards.master(slot).map(|n| (&n.addr, &n.id)),
            slots.master(slot).map(|n| (&n.addr, &n.id))
        );
        assert_eq!(shards.replicas(slot)[0].addr, slots.replicas(slot)[0].addr);
    }

    // And they are right: a key's mapped master takes the write; any other master redirects
    // to it with MOVED, naming the key's slot.
    for i in 0..300 {
        let key = format!("key:{i}:{{tag{}}}", i % 37);
        let slot = key_slot(key.as_bytes());
        let owner = shards.master_addr(slot).expect("complete map");
        for node in nodes
            .iter()
            .filter(|n| shards.masters().any(|m| m.addr.port() == n.port))
        {
            let (raw, value) = reply(node, &[b"SET", key.as_bytes(), b"v"]);
            if node.port == owner.port() {
                assert_eq!(raw, b"+OK\r\n", "{key} at its owner {owner}");
            } else {
                let Value::Error(text) = value else {
                    panic!("expected MOVED, got {raw:?}")
                };
                let redirect = Redirect::parse(&text).expect("parse MOVED");
                assert_eq!(redirect.kind(), RedirectKind::Moved);
                assert_eq!(redirect.slot(), slot, "{key}");
                assert_eq!(&redirect.target("127.0.0.1"), owner, "{key}");
            }
        }
    }

    // MOVED applied to a copy changes exactly that slot.
    let mut moved = slots.clone();
    let slot = key_slot(b"foo");
    let elsewhere = Addr::new("127.0.0.1", 1);
    assert!(moved.apply_moved(slot, elsewhere.clone()));
    assert_eq!(moved.master_addr(slot), Some(&elsewhere));
    for other in Slot::all().filter(|&s| s != slot) {
        assert_eq!(moved.master_addr(other), slots.master_addr(other));
    }
}
