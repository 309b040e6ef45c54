//! `key_slot` against a real server's `CLUSTER KEYSLOT`, and the topology parsers against real
//! `CLUSTER SHARDS` / `CLUSTER SLOTS` replies of a single-node cluster.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`).

mod support;

use std::io::{BufReader, Write};

use rand::{Rng, SeedableRng};
use slotline_router::{key_slot, parse_resp, Addr, NodeMap, Role, Slot, SlotRange};
use support::{read_ints, roundtrip, Node};

/// Keys that stress the hash-tag rule: braces in every arrangement, any bytes, lengths up to
/// a few KiB.
fn random_key(rng: &mut impl Rng) -> Vec<u8> {
    let len = match rng.random_range(0..10) {
        0..=5 => rng.random_range(0..24),
        6..=8 => rng.random_range(0..300),
        _ => rng.random_range(0..4096),
    };
    let braces = rng.random_bool(0.7);
    (0..len)
        .map(|_| {
            if braces && rng.random_ratio(1, 6) {
                if rng.random_bool(0.5) {
                    b'{'
                } else {
                    b'}'
                }
            } else {
                rng.random()
            }
        })
        .collect()
}

#[test]
fn key_slot_agrees_with_cluster_keyslot_on_random_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let conn = node.connect().expect("connect");
    let mut writer = conn.try_clone().expect("clone stream");
    let mut reader = BufReader::new(conn);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5107_11AE);
    let total = 40_000;
    let batch = 1_000;
    let mut checked = 0;
    while checked < total {
        let keys: Vec<Vec<u8>> = (0..batch).map(|_| random_key(&mut rng)).collect();
        let mut req = Vec::new();
        for k in &keys {
            slotline_router::write_command(&mut req, &[b"CLUSTER", b"KEYSLOT", k]);
        }
        writer.write_all(&req).expect("pipeline");
        let slots = read_ints(&mut reader, keys.len());
        for (key, server) in keys.iter().zip(slots) {
            assert_eq!(
                i64::from(key_slot(key).get()),
                server,
                "key {key:?} (len {}): ours {} server {server}",
                key.len(),
                key_slot(key)
            );
        }
        checked += batch;
    }
}

#[test]
fn topology_parsers_agree_with_a_real_single_node_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let mut conn = node.connect().expect("connect");
    // Before any slot is assigned: every slot is a hole.
    let raw = roundtrip(&mut conn, &[b"CLUSTER", b"SLOTS"]);
    let map = NodeMap::from_cluster_slots(&parse_resp(&raw).expect("RESP").0).expect("SLOTS");
    assert_eq!(map.holes(), [SlotRange::ALL]);

    // Half the slots, so holes stay visible.
    let reply = roundtrip(&mut conn, &[b"CLUSTER", b"ADDSLOTSRANGE", b"0", b"8191"]);
    assert_eq!(reply, b"+OK\r\n");
    let myid = roundtrip(&mut conn, &[b"CLUSTER", b"MYID"]);
    let myid = match parse_resp(&myid).expect("RESP").0.as_bytes() {
        Some(id) => String::from_utf8(id.to_vec()).expect("id"),
        None => panic!("CLUSTER MYID"),
    };
    let low = SlotRange::new(Slot::MIN, Slot::new(8191).expect("slot")).expect("range");
    let high = SlotRange::new(Slot::new(8192).expect("slot"), Slot::MAX).expect("range");

    let raw_slots = roundtrip(&mut conn, &[b"CLUSTER", b"SLOTS"]);
    let raw_shards = roundtrip(&mut conn, &[b"CLUSTER", b"SHARDS"]);
    for (name, raw) in [("SLOTS", &raw_slots), ("SHARDS", &raw_shards)] {
        let (value, used) = parse_resp(raw).expect("RESP");
        assert_eq!(used, raw.len(), "{name}: whole reply consumed");
        let map = if name == "SLOTS" {
            NodeMap::from_cluster_slots(&value)
        } else {
            NodeMap::from_cluster_shards(&value)
        }
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(raw)));
        let me = Addr::new("127.0.0.1", node.port);
        assert_eq!(map.masters().count(), 1, "{name}: {map:?}");
        let master = map.master(Slot::MIN).expect("slot 0 served");
        // A node alone does not know its own IP yet and sends an empty host ("the node you
        // asked"), which the map keeps as is.
        assert_eq!(master.addr.or_host("127.0.0.1"), me, "{name}");
        assert_eq!(master.role, Role::Master);
        assert_eq!(master.id.as_deref(), Some(myid.as_str()), "{name}");
        assert_eq!(map.slot_ranges(&master.addr), [low], "{name}");
        assert_eq!(map.holes(), [high], "{name}");
        assert!(!map.is_complete());
        assert_eq!(map.master(Slot::new(8192).expect("slot")), None);
    }
}
