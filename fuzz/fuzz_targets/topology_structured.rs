//! Valid-looking topology replies built from structured input, encoded to RESP bytes, decoded
//! and parsed back: the map must be accepted and agree, slot by slot, with what was built, and
//! `slot_ranges` of each master address must be exactly the slots built for that address (a
//! shard can reuse the previous shard's address under a new node id, as a node restarted with a
//! new id is listed).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slotline_router::{parse_resp, Addr, NodeMap, Slot, Value};

#[derive(Arbitrary, Debug)]
struct Case {
    /// `CLUSTER SHARDS` when true, else `CLUSTER SLOTS`.
    shards_form: bool,
    /// RESP3 maps when true, else RESP2 flat arrays (SHARDS form only).
    resp3: bool,
    shards: Vec<ShardSpec>,
}

#[derive(Arbitrary, Debug)]
struct ShardSpec {
    ranges: Vec<(u16, u16)>,
    replicas: u8,
    ipv6: bool,
    /// The previous shard's address, with this shard's own node id.
    same_addr_as_previous: bool,
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn fields(resp3: bool, pairs: Vec<(&str, Value)>) -> Value {
    if resp3 {
        Value::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
    } else {
        Value::Array(pairs.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
    }
}

fuzz_target!(|case: Case| {
    let mut owner: Vec<Option<Addr>> = vec![None; 16384];
    let mut entries = Vec::new();
    let mut previous: Option<(&str, i64)> = None;
    for (i, spec) in case.shards.iter().take(64).enumerate() {
        let (host, port) = match previous {
            Some(prev) if spec.same_addr_as_previous => prev,
            _ => (if spec.ipv6 { "::1" } else { "127.0.0.1" }, 1000 + i as i64),
        };
        previous = Some((host, port));
        let addr = Addr::new(host, port as u16);
        // Keep only ranges that do not overlap earlier ones.
        let mut ranges = Vec::new();
        for &(a, b) in spec.ranges.iter().take(8) {
            let (a, b) = (a % 16384, b % 16384);
            let (lo, hi) = (a.min(b), a.max(b));
            if (lo..=hi).all(|s| owner[usize::from(s)].is_none()) {
                for s in lo..=hi {
                    owner[usize::from(s)] = Some(addr.clone());
                }
                ranges.push((lo, hi));
            }
        }
        let node = |port: i64, j: usize, role: &str| {
            let id = format!("{:020x}{:020x}", i, j);
            if case.shards_form {
                fields(
                    case.resp3,
                    vec![
                        ("id", bulk(&id)),
                        ("port", Value::Int(port)),
                        ("ip", bulk(host)),
                        ("endpoint", bulk(host)),
                        ("role", bulk(role)),
                        ("health", bulk("online")),
                    ],
                )
            } else {
                Value::Array(vec![
                    bulk(host),
                    Value::Int(port),
                    bulk(&id),
                    Value::Array(vec![]),
                ])
            }
        };
        let mut nodes = vec![node(port, 0, "master")];
        for j in 1..=usize::from(spec.replicas % 3) {
            nodes.push(node(20_000 + port * 4 + j as i64, j, "replica"));
        }
        if case.shards_form {
            let slots = ranges
                .iter()
                .flat_map(|&(a, b)| [Value::Int(a.into()), Value::Int(b.into())])
                .collect();
            entries.push(fields(
                case.resp3,
                vec![
                    ("slots", Value::Array(slots)),
                    ("nodes", Value::Array(nodes)),
                ],
            ));
        } else {
            for &(a, b) in &ranges {
                let mut entry = vec![Value::Int(a.into()), Value::Int(b.into())];
                entry.extend(nodes.iter().cloned());
                entries.push(Value::Array(entry));
            }
        }
    }
    let mut raw = Vec::new();
    Value::Array(entries).write_resp(&mut raw);
    let (value, used) = parse_resp(&raw).expect("our own encoding decodes");
    assert_eq!(used, raw.len());
    let map = if case.shards_form {
        NodeMap::from_cluster_shards(&value)
    } else {
        NodeMap::from_cluster_slots(&value)
    }
    .unwrap_or_else(|e| panic!("valid reply rejected: {e}"));
    for slot in Slot::all() {
        assert_eq!(
            map.master_addr(slot),
            owner[slot.index()].as_ref(),
            "slot {slot}"
        );
    }
    for master in map.masters() {
        let mut want = vec![false; 16384];
        for (slot, o) in owner.iter().enumerate() {
            want[slot] = o.as_ref() == Some(&master.addr);
        }
        let mut got = vec![false; 16384];
        for slot in map.slot_ranges(&master.addr).iter().flat_map(|r| r.iter()) {
            assert!(!got[slot.index()], "slot {slot} listed twice");
            got[slot.index()] = true;
        }
        assert!(
            got == want,
            "slot_ranges({}) differs from the reply",
            master.addr
        );
    }
});
