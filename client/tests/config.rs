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

#[test]
fn defaults_are_the_templates_values() {
    let c = Config::default();
    assert_eq!(c.shard_config.total_shards, 64);
    assert_eq!(c.shard_config.ring_buffer_capacity, 4096);
    assert_eq!(c.redis_pool.max_idle, 16);
    assert_eq!(c.redis_pool.max_active, 64);
    assert_eq!(c.redis_pool.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.redis_pool.dial_timeout, Duration::from_secs(2));
    assert_eq!(c.redis_pool.read_timeout, Duration::from_millis(500));
    assert_eq!(c.redis_pool.write_timeout, Duration::from_millis(500));
    assert!(c.backpressure.enabled);
    assert_eq!(c.backpressure.threshold_percent, 80);
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
fn max_idle_above_max_active_is_rejected() {
    expect_error(
        "redis_pool:\n  max_idle: 10\n  max_active: 5\n",
        "redis_pool.max_idle",
        "max_active",
    );
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
