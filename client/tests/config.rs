#![cfg(not(feature = "loom"))]
//! `Config` from YAML: the shipped template parses to the defaults, and every kind of bad file
//! gives an error that names its key.

use std::path::PathBuf;
use std::time::Duration;

use slotline_client::config::{Config, ConfigError, FallbackStrategy, NodeAddr};

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../geo_shard_client.yaml")
}

/// Parses `yaml`, expects an error, and checks that its message names `key` and contains
/// `reason`.
fn expect_error(yaml: &str, key: &str, reason: &str) -> ConfigError {
    let err = match Config::from_yaml_str(yaml) {
        Ok(config) => panic!("expected an error for\n{yaml}\ngot {config:?}"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(text.contains(key), "message should name `{key}`:\n{text}");
    assert!(
        text.contains(reason),
        "message should say `{reason}`:\n{text}"
    );
    err
}

#[test]
fn shipped_template_parses_to_the_defaults_plus_its_seed_nodes() {
    let config = Config::from_yaml_file(template_path()).unwrap();
    let expected = Config {
        nodes: vec![
            NodeAddr::new("127.0.0.1", 7000),
            NodeAddr::new("127.0.0.1", 7001),
            NodeAddr::new("127.0.0.1", 7002),
        ],
        ..Config::default()
    };
    assert_eq!(config, expected);
}

/// Every key each section of the template sets, as it should: the template documents every key
/// with its default. (`auth` and `tls` keep their optional keys in comments.)
#[test]
fn shipped_template_sets_every_key() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let keys = |section: &str| -> Vec<String> {
        match &yaml[section] {
            serde_norway::Value::Mapping(map) => {
                map.keys().map(|k| k.as_str().unwrap().to_owned()).collect()
            }
            serde_norway::Value::Null => Vec::new(),
            other => panic!("{section} is {other:?}"),
        }
    };
    let expected: [(&str, &[&str]); 9] = [
        (
            "shard_config",
            &["total_shards", "ring_buffer_capacity", "routing_algorithm"],
        ),
        (
            "redis_pool",
            &[
                "io_threads",
                "idle_timeout",
                "dial_timeout",
                "read_timeout",
                "write_timeout",
            ],
        ),
        (
            "backpressure",
            &[
                "enabled",
                "threshold_percent",
                "max_pending_bytes",
                "fallback_strategy",
            ],
        ),
        ("tcp_tuning", &["so_rcvbuf", "so_sndbuf", "tcp_nodelay"]),
        ("ack", &["replicas", "timeout"]),
        ("batching", &["max_batch", "pipeline_depth", "p95_budget"]),
        ("commit", &["timeout"]),
        ("auth", &[]),
        ("tls", &["enabled"]),
    ];
    for (section, want) in expected {
        assert_eq!(keys(section), want, "keys of `{section}` in the template");
    }
    for key in ["max_idle", "max_active"] {
        assert!(
            !text.contains(&format!("{key}:")),
            "the template still sets {key}"
        );
    }
}

#[test]
fn defaults_are_the_templates_values() {
    let c = Config::default();
    assert_eq!(c.shard_config.total_shards, 64);
    assert_eq!(c.shard_config.ring_buffer_capacity, 4096);
    assert_eq!(c.redis_pool.io_threads, 0);
    assert_eq!(c.redis_pool.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.redis_pool.dial_timeout, Duration::from_secs(2));
    assert_eq!(c.redis_pool.read_timeout, Duration::from_millis(500));
    assert_eq!(c.redis_pool.write_timeout, Duration::from_millis(500));
    assert!(c.backpressure.enabled);
    assert_eq!(c.backpressure.threshold_percent, 80);
    assert_eq!(c.backpressure.max_pending_bytes, 67_108_864);
    assert_eq!(
        c.backpressure.fallback_strategy,
        FallbackStrategy::DropOldest
    );
    assert_eq!(c.tcp_tuning.so_rcvbuf, 4_194_304);
    assert_eq!(c.tcp_tuning.so_sndbuf, 4_194_304);
    assert!(c.tcp_tuning.tcp_nodelay);
    assert!(c.nodes.is_empty());
    assert_eq!(c.ack.replicas, 0);
    assert_eq!(c.batching.max_batch, 512);
    assert_eq!(c.batching.pipeline_depth, 4);
    assert_eq!(c.batching.p95_budget, Duration::from_millis(15));
    assert_eq!(c.commit.timeout, Duration::from_secs(1));
    c.validate().unwrap();
}

#[test]
fn empty_document_gives_the_defaults() {
    assert_eq!(Config::from_yaml_str("").unwrap(), Config::default());
    assert_eq!(
        Config::from_yaml_str("# nothing\n").unwrap(),
        Config::default()
    );
}

#[test]
fn missing_keys_take_defaults_and_present_ones_override() {
    let c = Config::from_yaml_str(
        "redis_pool:\n  read_timeout: 1.5s\nack:\n  replicas: 1\n  timeout: 50ms\n",
    )
    .unwrap();
    assert_eq!(c.redis_pool.read_timeout, Duration::from_millis(1500));
    assert_eq!(c.redis_pool.dial_timeout, Duration::from_secs(2));
    assert_eq!(c.ack.replicas, 1);
    assert_eq!(c.ack.timeout, Duration::from_millis(50));
}

#[test]
fn unknown_key_in_a_section_names_the_section_and_the_key() {
    let err = expect_error(
        "backpressure:\n  enabled: true\n  treshold_percent: 80\n",
        "backpressure: unknown field `treshold_percent`",
        "expected one of",
    );
    assert!(
        matches!(err, ConfigError::Parse { line: Some(3), .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_top_level_key_is_reported_as_top_level() {
    expect_error(
        "shard_confg:\n  total_shards: 8\n",
        "top level: unknown field `shard_confg`",
        "shard_config",
    );
}

#[test]
fn threshold_percent_above_100_is_rejected() {
    let err = expect_error(
        "backpressure:\n  threshold_percent: 180\n",
        "backpressure.threshold_percent",
        "180 is out of range (allowed 1..=100)",
    );
    assert_eq!(err.key(), Some("backpressure.threshold_percent"));
}

#[test]
fn zero_total_shards_is_rejected() {
    expect_error(
        "shard_config:\n  total_shards: 0\n",
        "shard_config.total_shards",
        "allowed 1..=16384",
    );
    expect_error(
        "shard_config:\n  total_shards: 16385\n",
        "shard_config.total_shards",
        "allowed 1..=16384",
    );
}

#[test]
fn zero_ring_buffer_capacity_is_rejected() {
    expect_error(
        "shard_config:\n  ring_buffer_capacity: 0\n",
        "shard_config.ring_buffer_capacity",
        "out of range",
    );
}

#[test]
fn negative_number_is_a_type_error_naming_the_key() {
    expect_error(
        "shard_config:\n  ring_buffer_capacity: -5\n",
        "shard_config.ring_buffer_capacity",
        "invalid",
    );
}

#[test]
fn unknown_fallback_strategy_lists_the_accepted_values() {
    let err = expect_error(
        "backpressure:\n  fallback_strategy: maybe\n",
        "backpressure.fallback_strategy",
        "`reject`, `block`, `drop_oldest`",
    );
    assert_eq!(err.key(), Some("backpressure.fallback_strategy"));
}

#[test]
fn routing_algorithm_other_than_crc16_is_rejected() {
    expect_error(
        "shard_config:\n  routing_algorithm: modulo\n",
        "shard_config.routing_algorithm",
        "`crc16`",
    );
}

#[test]
fn unparsable_duration_names_the_key_and_the_format() {
    let err = expect_error(
        "redis_pool:\n  dial_timeout: fast\n",
        "redis_pool.dial_timeout",
        "invalid duration `fast`",
    );
    assert!(err.to_string().contains("500ms"), "{err}");
    assert!(
        matches!(err, ConfigError::Parse { line: Some(2), .. }),
        "{err:?}"
    );
}

#[test]
fn duration_without_a_unit_is_rejected() {
    expect_error(
        "redis_pool:\n  idle_timeout: 300\n",
        "redis_pool.idle_timeout",
        "missing unit",
    );
}

#[test]
fn zero_timeout_is_rejected() {
    expect_error(
        "redis_pool:\n  read_timeout: 0ms\n",
        "redis_pool.read_timeout",
        "longer than zero",
    );
}

#[test]
fn bad_node_address_names_its_index() {
    expect_error(
        "nodes:\n  - 127.0.0.1:7000\n  - 127.0.0.1\n",
        "nodes[1]",
        "missing `:port`",
    );
    expect_error("nodes: [\"redis://h:70000\"]", "nodes[0]", "port must be");
}

#[test]
fn node_urls_and_ipv6_parse() {
    let c = Config::from_yaml_str(
        "nodes:\n  - \"[::1]:7000\"\n  - redis://app:pw@10.0.0.1:7001\n  - rediss://cache\n",
    )
    .unwrap();
    assert_eq!(c.nodes[0].host(), "::1");
    assert_eq!(c.nodes[1].username(), Some("app"));
    assert_eq!(c.nodes[2].port(), 6379);
    assert!(c.nodes[2].is_tls());
}

#[test]
fn passwords_never_appear_in_debug_output() {
    let c = Config::from_yaml_str(
        "auth:\n  username: writer\n  password: hunter2\nnodes: [\"redis://u:swordfish@h:1\"]\n",
    )
    .unwrap();
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("swordfish"), "{debug}");
    assert!(debug.contains("***"), "{debug}");
}

#[test]
fn username_without_password_is_rejected() {
    expect_error("auth:\n  username: writer\n", "auth.password", "required");
}

#[test]
fn commit_timeout_must_outlast_wait() {
    expect_error(
        "ack:\n  replicas: 1\n  timeout: 2s\ncommit:\n  timeout: 1s\n",
        "commit.timeout",
        "ack.timeout",
    );
}

#[test]
fn removed_pool_keys_are_rejected_with_the_reason() {
    for key in ["max_idle", "max_active"] {
        let err = expect_error(
            &format!("redis_pool:\n  idle_timeout: 60s\n  {key}: 16\n"),
            &format!("redis_pool.{key}"),
            "has been removed",
        );
        assert_eq!(err.key(), Some(format!("redis_pool.{key}").as_str()));
        let text = err.to_string();
        assert!(
            text.contains("one pipelined connection per master"),
            "{text}"
        );
        assert!(text.contains("redis_pool.io_threads"), "{text}");
        assert!(text.contains("delete the key"), "{text}");
        assert!(
            matches!(err, ConfigError::Parse { line: Some(3), .. }),
            "{err:?}"
        );
        // Whatever the value, even one of the wrong type.
        expect_error(
            &format!("redis_pool: {{ {key}: [1, 2] }}"),
            &format!("redis_pool.{key}"),
            "has been removed",
        );
    }
    // An unknown key's error lists only the keys that exist.
    let err = expect_error(
        "redis_pool:\n  max_open: 16\n",
        "redis_pool: unknown field `max_open`",
        "expected one of `io_threads`, `idle_timeout`, `dial_timeout`, `read_timeout`, \
         `write_timeout`",
    );
    assert!(!err.to_string().contains("max_idle"), "{err}");
    expect_error(
        "redis_pool:\n  io_threads: 1\n  io_threads: 2\n",
        "redis_pool",
        "duplicate field `io_threads`",
    );
    // The old template's pair, as an upgraded file would still have it.
    expect_error(
        "redis_pool:\n  max_idle: 16\n  max_active: 64\n",
        "redis_pool.max_idle",
        "delete the key",
    );
}

#[test]
fn io_threads_bounds() {
    for n in [0, 1, 4, 64] {
        let c = Config::from_yaml_str(&format!("redis_pool: {{ io_threads: {n} }}")).unwrap();
        assert_eq!(c.redis_pool.io_threads, n);
        assert!(c.io_threads() >= 1);
        if n > 0 {
            assert_eq!(c.io_threads(), n);
        }
    }
    let err = expect_error(
        "redis_pool:\n  io_threads: 65\n",
        "redis_pool.io_threads",
        "65 is out of range (allowed 0..=64)",
    );
    assert_eq!(err.key(), Some("redis_pool.io_threads"));
    expect_error(
        "redis_pool:\n  io_threads: -1\n",
        "redis_pool.io_threads",
        "invalid",
    );
}

#[test]
fn io_threads_auto_is_half_the_machine_within_1_to_4() {
    let c = Config::default();
    let half = std::thread::available_parallelism().map_or(1, |n| n.get() / 2);
    assert_eq!(c.io_threads(), half.clamp(1, 4));
}

#[test]
fn pipeline_depth_bounds() {
    for n in [1, 4, 64] {
        let c = Config::from_yaml_str(&format!("batching: {{ pipeline_depth: {n} }}")).unwrap();
        assert_eq!(c.batching.pipeline_depth, n);
    }
    for n in [0, 65] {
        let err = expect_error(
            &format!("batching:\n  pipeline_depth: {n}\n"),
            "batching.pipeline_depth",
            &format!("{n} is out of range (allowed 1..=64)"),
        );
        assert_eq!(err.key(), Some("batching.pipeline_depth"));
    }
}

#[test]
fn max_pending_bytes_bounds() {
    for n in [1024u64, 67_108_864, 1 << 40] {
        let c =
            Config::from_yaml_str(&format!("backpressure: {{ max_pending_bytes: {n} }}")).unwrap();
        assert_eq!(c.backpressure.max_pending_bytes, n);
    }
    for n in [0u64, 1023, (1 << 40) + 1] {
        let err = expect_error(
            &format!("backpressure:\n  max_pending_bytes: {n}\n"),
            "backpressure.max_pending_bytes",
            &format!("{n} is out of range (allowed 1024..=1099511627776)"),
        );
        assert_eq!(err.key(), Some("backpressure.max_pending_bytes"));
    }
    expect_error(
        "backpressure:\n  max_pending_bytes: 64MiB\n",
        "backpressure.max_pending_bytes",
        "invalid type",
    );
}

#[test]
fn backpressure_byte_limit_is_the_threshold_of_max_pending_bytes() {
    let c = Config::from_yaml_str(
        "backpressure: { max_pending_bytes: 1000000, threshold_percent: 75 }",
    )
    .unwrap();
    assert_eq!(c.backpressure_byte_limit(), 750_000);
    let c = Config::from_yaml_str("backpressure: { max_pending_bytes: 1000000, enabled: false }")
        .unwrap();
    assert_eq!(c.backpressure_byte_limit(), 1_000_000);
}

#[test]
fn master_capacity_and_its_backpressure_limit() {
    let c = Config::from_yaml_str(
        "shard_config: { total_shards: 16, ring_buffer_capacity: 1000 }\n\
         backpressure: { threshold_percent: 50 }",
    )
    .unwrap();
    // One master with every slot holds the whole cluster's 16 × 1000.
    assert_eq!(c.master_capacity(16_384), 16_000);
    // Three masters (the usual split) share it, each rounded up.
    let caps = [5461, 5462, 5461].map(|slots| c.master_capacity(slots));
    assert_eq!(caps, [5334, 5334, 5334]);
    // A master with fewer slots than one shard still gets a shard's worth.
    assert_eq!(c.master_capacity(10), 1000);
    assert_eq!(c.backpressure_limit_for(5334), 2667);
    assert_eq!(c.backpressure_limit(), 500); // of ring_buffer_capacity, as before
}

#[test]
fn zero_idle_timeout_is_rejected() {
    expect_error(
        "redis_pool:\n  idle_timeout: 0s\n",
        "redis_pool.idle_timeout",
        "longer than zero",
    );
}

#[test]
fn durations_take_one_or_more_units() {
    let c = Config::from_yaml_str(
        "redis_pool:\n  idle_timeout: 1m 30s\n  dial_timeout: 1.5s\n  read_timeout: 250ms\n  \
         write_timeout: 1s 500ms\nbatching:\n  p95_budget: 2500us\ncommit:\n  timeout: 2min\n",
    )
    .unwrap();
    assert_eq!(c.redis_pool.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.redis_pool.dial_timeout, Duration::from_millis(1500));
    assert_eq!(c.redis_pool.read_timeout, Duration::from_millis(250));
    assert_eq!(c.redis_pool.write_timeout, Duration::from_millis(1500));
    assert_eq!(c.batching.p95_budget, Duration::from_micros(2500));
    assert_eq!(c.commit.timeout, Duration::from_secs(120));
}

#[test]
fn fractions_need_a_digit_on_each_side_of_the_point() {
    // Accepted by earlier versions, rejected now: write `0.5s` (or `500ms`) and `3s`.
    for value in [".5s", "3.s"] {
        expect_error(
            &format!("redis_pool:\n  dial_timeout: {value}\n"),
            "redis_pool.dial_timeout",
            "digits on both sides",
        );
    }
}

#[test]
fn malformed_yaml_reports_a_position() {
    let err = Config::from_yaml_str("shard_config: [\n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { line: Some(_), .. }),
        "{err:?}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let missing = Config::from_yaml_file("/nonexistent/slotline.yaml").unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }));
    assert!(missing.to_string().contains("/nonexistent/slotline.yaml"));

    let dir = std::env::temp_dir().join(format!("slotline-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "tcp_tuning:\n  so_sndbuf: 10\n").unwrap();
    let err = Config::from_yaml_file(&path).unwrap_err();
    let text = err.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        text.contains("bad.yaml") && text.contains("tcp_tuning.so_sndbuf"),
        "{text}"
    );
}
