//! Redirect, address, RESP and topology parsing: good input, and bad input giving typed errors.

use slotline_router::{
    parse_resp, Addr, AddrError, NodeMap, Redirect, RedirectError, RedirectKind, RespError, Role,
    Slot, SlotRange, TopologyError, Value, MAX_DEPTH, SLOT_COUNT,
};

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[test]
fn redirect_parses_moved_and_ask_with_and_without_dash() {
    for text in [
        "MOVED 3999 127.0.0.1:6381",
        "-MOVED 3999 127.0.0.1:6381",
        "-MOVED 3999 127.0.0.1:6381\r\n",
    ] {
        let r = Redirect::parse(text).unwrap();
        assert_eq!((r.kind(), r.slot().get()), (RedirectKind::Moved, 3999));
        assert_eq!(r.addr(), &Addr::new("127.0.0.1", 6381));
    }
    let ask = Redirect::parse("-ASK 12182 redis-2.internal:7000").unwrap();
    assert_eq!(ask.kind(), RedirectKind::Ask);
    assert_eq!(ask.to_string(), "ASK 12182 redis-2.internal:7000");
}

#[test]
fn redirect_splits_ipv6_on_the_last_colon() {
    for text in ["MOVED 1 ::1:7000", "MOVED 1 [::1]:7000"] {
        let r = Redirect::parse(text).unwrap();
        assert_eq!(r.addr(), &Addr::new("::1", 7000), "{text}");
        assert_eq!(r.to_string(), "MOVED 1 [::1]:7000");
    }
    let r = Redirect::parse("ASK 5 2001:db8::7:6379").unwrap();
    assert_eq!(r.addr().host(), "2001:db8::7");
}

#[test]
fn redirect_empty_host_means_the_node_asked() {
    let r = Redirect::parse("MOVED 3999 :6380").unwrap();
    assert_eq!(r.addr().host(), "");
    assert_eq!(r.target("10.1.2.3"), Addr::new("10.1.2.3", 6380));
    assert_eq!(r.to_string(), "MOVED 3999 :6380");
}

#[test]
fn redirect_rejects_garbage_with_typed_errors_and_messages() {
    use RedirectError as E;
    let cases: &[(&str, RedirectError, &str)] = &[
        ("", E::NotARedirect, "not a redirect: expected MOVED or ASK"),
        (
            "-",
            E::NotARedirect,
            "not a redirect: expected MOVED or ASK",
        ),
        (
            "moved 1 h:1",
            E::NotARedirect,
            "not a redirect: expected MOVED or ASK",
        ),
        (
            "ERR unknown command",
            E::NotARedirect,
            "not a redirect: expected MOVED or ASK",
        ),
        ("MOVED", E::MissingSlot, "redirect has no slot"),
        (
            "MOVED x h:1",
            E::BadSlot,
            "redirect slot is not a decimal number",
        ),
        (
            "MOVED -1 h:1",
            E::BadSlot,
            "redirect slot is not a decimal number",
        ),
        (
            "MOVED +1 h:1",
            E::BadSlot,
            "redirect slot is not a decimal number",
        ),
        (
            "MOVED 16384 h:1",
            E::SlotOutOfRange,
            "redirect slot is not below 16384",
        ),
        (
            "MOVED 99999999999999999999 h:1",
            E::SlotOutOfRange,
            "redirect slot is not below 16384",
        ),
        ("ASK 1", E::MissingAddress, "redirect has no address"),
        (
            "ASK 1 host",
            E::BadAddress(AddrError::MissingPort),
            "bad address in redirect: address has no `:port`",
        ),
        (
            "ASK 1 host:",
            E::BadAddress(AddrError::BadPort),
            "bad address in redirect: port is not a number in 1..=65535",
        ),
        (
            "ASK 1 host:65536",
            E::BadAddress(AddrError::BadPort),
            "bad address in redirect: port is not a number in 1..=65535",
        ),
        (
            "ASK 1 host:0",
            E::BadAddress(AddrError::BadPort),
            "bad address in redirect: port is not a number in 1..=65535",
        ),
        (
            "ASK 1 host:-5",
            E::BadAddress(AddrError::BadPort),
            "bad address in redirect: port is not a number in 1..=65535",
        ),
        (
            "ASK 1 h:1 extra",
            E::TrailingInput,
            "unexpected words after the redirect address",
        ),
    ];
    for (text, want, message) in cases {
        let got = Redirect::parse(text);
        assert_eq!(got.as_ref(), Err(want), "{text:?}");
        assert_eq!(got.unwrap_err().to_string(), *message, "{text:?}");
    }
}

#[test]
fn addr_display_reparses_for_awkward_hosts() {
    for host in ["", "h", "::1", "[x]", "[", "]", "[]", "[:]", "a:b"] {
        let a = Addr::new(host, 7);
        assert_eq!(
            a.to_string().parse::<Addr>().as_ref(),
            Ok(&a),
            "{host:?} -> {a}"
        );
    }
}

#[test]
fn resp_parses_every_supported_type() {
    let raw = b"*9\r\n+OK\r\n-ERR x\r\n:-42\r\n$3\r\na\x00b\r\n$-1\r\n*-1\r\n_\r\n%1\r\n+k\r\n:1\r\n~1\r\n!3\r\nbad\r\n";
    let (v, used) = parse_resp(raw).unwrap();
    assert_eq!(used, raw.len());
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Simple("OK".into()),
            Value::Error("ERR x".into()),
            Value::Int(-42),
            Value::Bulk(b"a\x00b".to_vec()),
            Value::Nil,
            Value::Nil,
            Value::Nil,
            Value::Map(vec![(Value::Simple("k".into()), Value::Int(1))]),
            Value::Array(vec![Value::Error("bad".into())]),
        ])
    );
    let mut out = Vec::new();
    v.write_resp(&mut out);
    assert_eq!(parse_resp(&out).unwrap(), (v, out.len()));
}

#[test]
fn resp_reports_incomplete_input_at_every_cut() {
    let raw = b"*2\r\n$5\r\nhello\r\n%1\r\n+a\r\n:12\r\n";
    for cut in 0..raw.len() {
        assert_eq!(
            parse_resp(&raw[..cut]),
            Err(RespError::Incomplete),
            "cut at {cut}"
        );
    }
    assert!(parse_resp(raw).is_ok());
}

#[test]
fn resp_rejects_malformed_input_with_typed_errors() {
    assert_eq!(
        parse_resp(b"?\r\n"),
        Err(RespError::UnknownType { byte: b'?', at: 0 })
    );
    assert_eq!(parse_resp(b":1x\r\n"), Err(RespError::BadInteger { at: 1 }));
    assert_eq!(
        parse_resp(b":99999999999999999999\r\n"),
        Err(RespError::BadInteger { at: 1 })
    );
    assert_eq!(parse_resp(b"$-2\r\n"), Err(RespError::BadLength { at: 1 }));
    assert_eq!(
        parse_resp(b"$1\r\nabXY"),
        Err(RespError::MissingCrlf { at: 5 })
    );
    assert_eq!(
        parse_resp(b"+\xff\r\n"),
        Err(RespError::InvalidUtf8 { at: 1 })
    );
    // A huge declared length allocates nothing and just asks for more input.
    assert_eq!(
        parse_resp(b"*9223372036854775807\r\n"),
        Err(RespError::Incomplete)
    );
    assert_eq!(
        parse_resp(b"$9223372036854775807\r\n"),
        Err(RespError::Incomplete)
    );
    let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
    assert!(matches!(
        parse_resp(deep.as_bytes()),
        Err(RespError::TooDeep { .. })
    ));
}

fn shards_node(id: &str, port: i64, role: &str) -> Value {
    Value::Map(vec![
        (bulk("id"), bulk(id)),
        (bulk("port"), Value::Int(port)),
        (bulk("ip"), bulk("10.0.0.1")),
        (bulk("endpoint"), bulk("10.0.0.1")),
        (bulk("hostname"), bulk("")),
        (bulk("role"), bulk(role)),
        (bulk("replication-offset"), Value::Int(72156)),
        (bulk("health"), bulk("online")),
    ])
}

#[test]
fn cluster_shards_resp3_maps_with_replicas_and_several_ranges() {
    let shard = |slots: Vec<i64>, nodes: Vec<Value>| {
        Value::Map(vec![
            (
                bulk("slots"),
                Value::Array(slots.into_iter().map(Value::Int).collect()),
            ),
            (bulk("nodes"), Value::Array(nodes)),
        ])
    };
    let reply = Value::Array(vec![
        shard(
            vec![0, 99, 200, 16383],
            vec![
                shards_node("a", 7000, "master"),
                shards_node("b", 7003, "replica"),
            ],
        ),
        shard(vec![100, 199], vec![shards_node("c", 7001, "master")]),
    ]);
    let map = NodeMap::from_cluster_shards(&reply).unwrap();
    assert!(map.is_complete());
    let a = Addr::new("10.0.0.1", 7000);
    assert_eq!(
        map.slot_ranges(&a)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["0-99", "200-16383"]
    );
    assert_eq!(map.replicas(Slot::MIN)[0].role, Role::Replica);
    assert_eq!(map.replicas(Slot::MIN)[0].health.as_deref(), Some("online"));
    assert_eq!(
        map.master(Slot::new(150).unwrap())
            .and_then(|n| n.id.as_deref()),
        Some("c")
    );
}

#[test]
fn cluster_shards_tls_only_node_uses_its_tls_port() {
    let node = Value::Array(vec![
        bulk("id"),
        bulk("a"),
        bulk("tls-port"),
        Value::Int(7443),
        bulk("endpoint"),
        bulk("h"),
        bulk("role"),
        bulk("master"),
    ]);
    let reply = Value::Array(vec![Value::Array(vec![
        bulk("slots"),
        Value::Array(vec![Value::Int(0), Value::Int(16383)]),
        bulk("nodes"),
        Value::Array(vec![node]),
    ])]);
    let map = NodeMap::from_cluster_shards(&reply).unwrap();
    let master = map.master(Slot::MIN).unwrap();
    assert_eq!((master.addr.port(), master.tls_port), (7443, Some(7443)));
}

#[test]
fn cluster_slots_merges_a_master_serving_several_ranges() {
    let node = |port: i64, id: &str| {
        Value::Array(vec![
            bulk("h"),
            Value::Int(port),
            bulk(id),
            Value::Array(vec![]),
        ])
    };
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(10),
            node(1, "m1"),
            node(2, "r1"),
        ]),
        Value::Array(vec![Value::Int(11), Value::Int(20), node(3, "m2")]),
        Value::Array(vec![
            Value::Int(21),
            Value::Int(30),
            node(1, "m1"),
            node(2, "r1"),
        ]),
    ]);
    let map = NodeMap::from_cluster_slots(&reply).unwrap();
    assert_eq!(map.masters().count(), 2);
    assert_eq!(map.shards()[0].replicas().len(), 1);
    assert_eq!(map.slot_ranges(&Addr::new("h", 1)).len(), 2);
    assert_eq!(
        map.holes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["31-16383"]
    );
}

#[test]
fn topology_rejects_bad_replies_with_typed_errors() {
    let node = Value::Array(vec![bulk("h"), Value::Int(1)]);
    let entry =
        |start: i64, end: i64| Value::Array(vec![Value::Int(start), Value::Int(end), node.clone()]);
    let slots = |entries: Vec<Value>| NodeMap::from_cluster_slots(&Value::Array(entries));
    assert_eq!(
        slots(vec![entry(0, 16384)]),
        Err(TopologyError::SlotOutOfRange { value: 16384 })
    );
    assert_eq!(
        slots(vec![entry(-1, 5)]),
        Err(TopologyError::SlotOutOfRange { value: -1 })
    );
    assert_eq!(
        slots(vec![entry(9, 5)]),
        Err(TopologyError::InvertedRange { start: 9, end: 5 })
    );
    let other = Value::Array(vec![
        Value::Int(0),
        Value::Int(5),
        Value::Array(vec![bulk("h"), Value::Int(2)]),
    ]);
    assert_eq!(
        slots(vec![entry(0, 10), other]),
        Err(TopologyError::SlotClaimedTwice { slot: Slot::MIN })
    );
    let bad_port = Value::Array(vec![
        Value::Int(0),
        Value::Int(5),
        Value::Array(vec![bulk("h"), Value::Int(70000)]),
    ]);
    assert_eq!(
        slots(vec![bad_port]),
        Err(TopologyError::BadPort { value: 70000 })
    );
    assert!(matches!(
        slots(vec![Value::Array(vec![Value::Int(0)])]),
        Err(TopologyError::MissingField { .. })
    ));
    assert_eq!(
        NodeMap::from_cluster_slots(&Value::Error(
            "ERR This instance has cluster support disabled".into()
        )),
        Err(TopologyError::ServerError(
            "ERR This instance has cluster support disabled".into()
        ))
    );
    let odd = Value::Array(vec![Value::Array(vec![
        bulk("slots"),
        Value::Array(vec![Value::Int(0)]),
        bulk("nodes"),
        Value::Array(vec![]),
    ])]);
    assert_eq!(
        NodeMap::from_cluster_shards(&odd),
        Err(TopologyError::OddSlotList { len: 1 })
    );
    let role = Value::Array(vec![Value::Array(vec![
        bulk("slots"),
        Value::Array(vec![]),
        bulk("nodes"),
        Value::Array(vec![Value::Array(vec![
            bulk("role"),
            bulk("boss"),
            bulk("port"),
            Value::Int(1),
            bulk("ip"),
            bulk("h"),
        ])]),
    ])]);
    assert_eq!(
        NodeMap::from_cluster_shards(&role),
        Err(TopologyError::UnknownRole("boss".into()))
    );
}

#[test]
fn topology_error_messages_name_the_offending_value() {
    let node = Value::Array(vec![bulk("h"), Value::Int(1)]);
    let entry =
        |start: i64, end: i64| Value::Array(vec![Value::Int(start), Value::Int(end), node.clone()]);
    let slots = |entries: Vec<Value>| {
        NodeMap::from_cluster_slots(&Value::Array(entries))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        slots(vec![entry(0, 16384)]),
        "slot 16384 is out of range (0..16384)"
    );
    assert_eq!(
        slots(vec![entry(-1, 5)]),
        "slot -1 is out of range (0..16384)"
    );
    assert_eq!(
        slots(vec![entry(9, 5)]),
        "slot range 9-5 ends before it starts"
    );
    let other = Value::Array(vec![
        Value::Int(3),
        Value::Int(5),
        Value::Array(vec![bulk("h"), Value::Int(2)]),
    ]);
    assert_eq!(
        slots(vec![entry(0, 10), other]),
        "slot 3 is claimed by two shards"
    );
    let bad_port = Value::Array(vec![
        Value::Int(0),
        Value::Int(5),
        Value::Array(vec![bulk("h"), Value::Int(70000)]),
    ]);
    assert_eq!(
        slots(vec![bad_port]),
        "port 70000 is out of range (0..=65535)"
    );
    assert_eq!(
        slots(vec![Value::Array(vec![Value::Int(0)])]),
        "CLUSTER SLOTS entry: missing `master`"
    );
    assert_eq!(
        NodeMap::from_cluster_slots(&Value::Int(3))
            .unwrap_err()
            .to_string(),
        "CLUSTER SLOTS reply: expected array"
    );
    let odd = Value::Array(vec![Value::Array(vec![
        bulk("slots"),
        Value::Array(vec![Value::Int(0), Value::Int(1), Value::Int(2)]),
        bulk("nodes"),
        Value::Array(vec![]),
    ])]);
    assert_eq!(
        NodeMap::from_cluster_shards(&odd).unwrap_err().to_string(),
        "shard slots: 3 bounds, expected start/end pairs"
    );
    let role = Value::Array(vec![Value::Array(vec![
        bulk("slots"),
        Value::Array(vec![]),
        bulk("nodes"),
        Value::Array(vec![Value::Array(vec![bulk("role"), bulk("boss")])]),
    ])]);
    assert_eq!(
        NodeMap::from_cluster_shards(&role).unwrap_err().to_string(),
        "unknown node role \"boss\""
    );
    assert_eq!(
        NodeMap::from_cluster_slots(&Value::Error("ERR cluster support disabled".into()))
            .unwrap_err()
            .to_string(),
        "server replied with an error: ERR cluster support disabled"
    );
    // Needs 65535 shards to provoke: only the text is checked here.
    assert_eq!(
        TopologyError::TooManyShards.to_string(),
        "more shards than the map can index (65535)"
    );
}

#[test]
fn shard_without_master_leaves_its_slots_as_holes() {
    let shard = |slots: Vec<i64>, nodes: Vec<Value>| {
        Value::Map(vec![
            (
                bulk("slots"),
                Value::Array(slots.into_iter().map(Value::Int).collect()),
            ),
            (bulk("nodes"), Value::Array(nodes)),
        ])
    };
    // Mid-failover: the shard serving 100-199 lists only a replica.
    let reply = Value::Array(vec![
        shard(
            vec![0, 99, 200, 16383],
            vec![shards_node("a", 7000, "master")],
        ),
        shard(vec![100, 199], vec![shards_node("r", 7003, "replica")]),
    ]);
    let map = NodeMap::from_cluster_shards(&reply).unwrap();
    assert_eq!(shown(&map.holes()), ["100-199"]);
    assert!(!map.is_complete());
    assert_eq!(map.master(Slot::new(150).unwrap()), None);
    assert!(map.replicas(Slot::new(150).unwrap()).is_empty());
    assert_eq!(map.masters().count(), 1);
    assert_eq!(
        shown(&map.slot_ranges(&Addr::new("10.0.0.1", 7000))),
        ["0-99", "200-16383"]
    );
}

/// Ranges as text, for comparing with a literal.
fn shown(ranges: &[SlotRange]) -> Vec<String> {
    ranges.iter().map(ToString::to_string).collect()
}

/// Asserts that the ranges of each distinct master address, plus the holes, cover every slot
/// exactly once (what a client routing by address relies on).
fn assert_addresses_and_holes_partition_the_slots(map: &NodeMap) {
    let mut count = vec![0u8; usize::from(SLOT_COUNT)];
    let mut addrs: Vec<&Addr> = map.masters().map(|m| &m.addr).collect();
    addrs.sort_by_key(|a| a.to_string());
    addrs.dedup();
    for ranges in addrs
        .iter()
        .map(|a| map.slot_ranges(a))
        .chain([map.holes()])
    {
        for slot in ranges.iter().flat_map(SlotRange::iter) {
            count[slot.index()] += 1;
        }
    }
    let wrong: Vec<usize> = (0..count.len()).filter(|&i| count[i] != 1).collect();
    assert!(
        wrong.is_empty(),
        "{} slots counted other than once, first {:?}; map {map:?}",
        wrong.len(),
        wrong.first()
    );
}

/// A node that restarted with a new id (its `nodes.conf` lost) is listed under both ids, at one
/// address, until the cluster forgets the old id.
#[test]
fn cluster_slots_two_ids_at_one_address_report_every_slot_of_that_address() {
    let node = |host: &str, port: i64, id: &str| {
        Value::Array(vec![
            bulk(host),
            Value::Int(port),
            bulk(id),
            Value::Array(vec![]),
        ])
    };
    let entry = |start: i64, end: i64, master: Value| {
        Value::Array(vec![Value::Int(start), Value::Int(end), master])
    };
    let old_id = "07c37dfeb235213a872192d90877d0cd55635b91";
    let new_id = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";
    let other_id = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";
    let reply = Value::Array(vec![
        entry(0, 5460, node("10.0.0.1", 7000, old_id)),
        entry(5461, 10922, node("10.0.0.2", 7001, other_id)),
        entry(10923, 16383, node("10.0.0.1", 7000, new_id)),
    ]);
    let map = NodeMap::from_cluster_slots(&reply).unwrap();
    let restarted = Addr::new("10.0.0.1", 7000);
    // Both ids are kept (the server lists them as two nodes)...
    let ids: Vec<_> = map.masters().map(|m| m.id.as_deref()).collect();
    assert_eq!(ids, [Some(old_id), Some(other_id), Some(new_id)]);
    // ...but a client connects by address, and that address serves both ids' slots.
    assert_eq!(
        shown(&map.slot_ranges(&restarted)),
        ["0-5460", "10923-16383"]
    );
    assert_eq!(map.master_addr(Slot::MIN), Some(&restarted));
    assert_eq!(map.master_addr(Slot::MAX), Some(&restarted));
    assert!(map.is_complete());
    assert_addresses_and_holes_partition_the_slots(&map);
}

#[test]
fn cluster_shards_two_ids_at_one_address_report_every_slot_of_that_address() {
    let shard = |slots: [i64; 2], nodes: Vec<Value>| {
        Value::Map(vec![
            (
                bulk("slots"),
                Value::Array(slots.into_iter().map(Value::Int).collect()),
            ),
            (bulk("nodes"), Value::Array(nodes)),
        ])
    };
    let reply = Value::Array(vec![
        shard([0, 99], vec![shards_node("old", 7000, "master")]),
        shard([100, 199], vec![shards_node("b", 7001, "master")]),
        shard(
            [200, 16383],
            vec![
                shards_node("new", 7000, "master"),
                shards_node("r", 7003, "replica"),
            ],
        ),
    ]);
    let map = NodeMap::from_cluster_shards(&reply).unwrap();
    let restarted = Addr::new("10.0.0.1", 7000);
    assert_eq!(shown(&map.slot_ranges(&restarted)), ["0-99", "200-16383"]);
    assert_eq!(map.shards().len(), 3);
    // Each shard keeps its own replicas.
    assert!(map.replicas(Slot::MIN).is_empty());
    assert_eq!(map.replicas(Slot::MAX)[0].addr.port(), 7003);
    assert_addresses_and_holes_partition_the_slots(&map);
}
