//! Valid-looking topology replies built from structured input, encoded to RESP bytes, decoded
//! and parsed back: the map must be accepted and agree, slot by slot, with what was built.
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
    for (i, spec) in case.shards.iter().take(64).enumerate() {
        let host = if spec.ipv6 { "::1" } else { "127.0.0.1" };
        let port = 1000 + i as i64;
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
});
