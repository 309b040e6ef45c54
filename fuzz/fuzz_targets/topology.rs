//! Arbitrary bytes → RESP → slot maps (both `CLUSTER SHARDS` and `CLUSTER SLOTS` forms).
//!
//! Properties: nothing panics; the decoder never claims more bytes than it was given; a map
//! that is accepted has every slot either a hole or owned by a listed master, and each master's
//! ranges plus the holes partition the 16384 slots exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotline_router::{parse_resp, NodeMap, Slot, SlotRange, Value};

fn check(map: &NodeMap) {
    let mut owned = vec![0u8; 16384];
    let mut mark = |ranges: Vec<SlotRange>| {
        for r in ranges {
            assert!(r.start() <= r.end());
            for s in r.iter() {
                owned[s.index()] += 1;
            }
        }
    };
    let masters: Vec<_> = map.masters().map(|m| m.addr.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    for addr in &masters {
        // Ranges are per address: count each address once.
        if seen.insert(addr.clone()) {
            mark(map.slot_ranges(addr));
        }
    }
    mark(map.holes());
    assert!(
        owned.iter().all(|&n| n == 1),
        "ranges and holes must partition the slots"
    );
    for slot in Slot::all() {
        if let Some(m) = map.master(slot) {
            assert!(masters.contains(&m.addr));
        }
    }
    assert_eq!(map.is_complete(), map.holes().is_empty());
}

fn one_line(v: &Value) -> bool {
    match v {
        Value::Simple(s) | Value::Error(s) => !s.contains(['\r', '\n']),
        Value::Array(items) => items.iter().all(one_line),
        Value::Map(pairs) => pairs.iter().all(|(k, v)| one_line(k) && one_line(v)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok((value, used)) = parse_resp(data) else {
        return;
    };
    assert!(used <= data.len());
    // Decoding the value's own encoding gives the value back, when every simple string and
    // error is one line (otherwise the encoder has to write them as blobs).
    let mut out = Vec::new();
    value.write_resp(&mut out);
    if one_line(&value) {
        assert_eq!(
            parse_resp(&out),
            Ok((value.clone(), out.len())),
            "input {data:?}"
        );
    }
    if let Ok(map) = NodeMap::from_cluster_shards(&value) {
        check(&map);
    }
    if let Ok(map) = NodeMap::from_cluster_slots(&value) {
        check(&map);
    }
});
