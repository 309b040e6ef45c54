#![cfg(not(feature = "loom"))]
//! `Config` from YAML: the shipped template parses to the defaults, and every kind of bad file
//! gives an error that names its key. `Config::builder` gives the same configurations and the
//! same errors as the same values in a file, and `Config::to_yaml` reads back equal.

use std::path::PathBuf;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use slotline_client::config::{
    Config, ConfigBuilder, ConfigError, FallbackStrategy, NodeAddr, Password, RoutingAlgorithm,
};

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

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

#[test]
fn builder_without_setters_is_the_default() {
    assert_eq!(Config::builder().build().unwrap(), Config::default());
    assert_eq!(ConfigBuilder::new().build().unwrap(), Config::default());
    assert_eq!(ConfigBuilder::default().build().unwrap(), Config::default());
}

/// Every setter, against a file with the same values.
#[test]
fn builder_with_every_setter_equals_the_same_yaml() {
    let built = Config::builder()
        .total_shards(32)
        .ring_buffer_capacity(1000)
        .routing_algorithm(RoutingAlgorithm::Crc16)
        .io_threads(3)
        .idle_timeout(Duration::from_secs(90))
        .dial_timeout(Duration::from_millis(1500))
        .read_timeout(Duration::from_millis(250))
        .write_timeout(Duration::from_secs(1))
        .backpressure_enabled(false)
        .threshold_percent(70)
        .max_pending_bytes(1 << 20)
        .fallback_strategy(FallbackStrategy::Block)
        .so_rcvbuf(65_536)
        .so_sndbuf(131_072)
        .tcp_nodelay(false)
        .nodes(["127.0.0.1:7000", "[::1]:7001"])
        .node(NodeAddr::new("10.0.0.3", 7002))
        .node("redis://app:p%40ss@10.0.0.4:7003".to_owned())
        .ack_replicas(1)
        .ack_timeout(Duration::from_millis(50))
        .max_batch(128)
        .pipeline_depth(2)
        .p95_budget(Duration::from_micros(2500))
        .commit_timeout(Duration::from_secs(2))
        .username("writer")
        .password("s3cret")
        // TLS stays off (no `rediss://` node), so the files are not read.
        .tls_enabled(false)
        .ca_file("/etc/redis/ca.pem")
        .server_name("redis.internal.example")
        .client_cert_file("/etc/redis/client.crt")
        .client_key_file("/etc/redis/client.key")
        .build()
        .unwrap();
    let parsed = Config::from_yaml_str(
        "shard_config: { total_shards: 32, ring_buffer_capacity: 1000, routing_algorithm: crc16 }
redis_pool:
  io_threads: 3
  idle_timeout: 1m 30s
  dial_timeout: 1.5s
  read_timeout: 250ms
  write_timeout: 1s
backpressure:
  enabled: false
  threshold_percent: 70
  max_pending_bytes: 1048576
  fallback_strategy: block
tcp_tuning: { so_rcvbuf: 65536, so_sndbuf: 131072, tcp_nodelay: false }
nodes:
  - 127.0.0.1:7000
  - \"[::1]:7001\"
  - 10.0.0.3:7002
  - redis://app:p%40ss@10.0.0.4:7003
ack: { replicas: 1, timeout: 50ms }
batching: { max_batch: 128, pipeline_depth: 2, p95_budget: 2500us }
commit: { timeout: 2s }
auth: { username: writer, password: s3cret }
tls:
  enabled: false
  ca_file: /etc/redis/ca.pem
  server_name: redis.internal.example
  client_cert_file: /etc/redis/client.crt
  client_key_file: /etc/redis/client.key
",
    )
    .unwrap();
    assert_eq!(built, parsed);
    assert_eq!(built.nodes[3].password().unwrap().expose(), "p@ss");
}

#[test]
fn builder_with_changes_the_config_directly() {
    let config = Config::builder()
        .total_shards(8)
        .with(|c| c.shard_config.ring_buffer_capacity = c.shard_config.total_shards as usize * 10)
        .build()
        .unwrap();
    assert_eq!(config.shard_config.ring_buffer_capacity, 80);
}

/// The builder and the file path, for the same bad values: one `validate`, so the same
/// variant, key and message.
#[test]
fn builder_errors_equal_the_yaml_errors_for_the_same_values() {
    let ms = Duration::from_millis;
    let cases: Vec<(ConfigBuilder, &str, &str)> =
        vec![
        (
            Config::builder()
                .ack_replicas(1)
                .ack_timeout(ms(2000))
                .commit_timeout(ms(1000)),
            "ack: { replicas: 1, timeout: 2s }\ncommit: { timeout: 1s }",
            "commit.timeout",
        ),
        (
            Config::builder()
                .ack_replicas(1)
                .ack_timeout(ms(1000))
                .commit_timeout(ms(1000)),
            "ack: { replicas: 1, timeout: 1s }\ncommit: { timeout: 1s }",
            "commit.timeout",
        ),
        (
            Config::builder().ack_replicas(2).ack_timeout(Duration::ZERO),
            "ack: { replicas: 2, timeout: 0s }",
            "ack.timeout",
        ),
        (
            Config::builder().threshold_percent(0),
            "backpressure: { threshold_percent: 0 }",
            "backpressure.threshold_percent",
        ),
        (
            Config::builder().threshold_percent(101),
            "backpressure: { threshold_percent: 101 }",
            "backpressure.threshold_percent",
        ),
        (
            Config::builder().total_shards(0),
            "shard_config: { total_shards: 0 }",
            "shard_config.total_shards",
        ),
        (
            Config::builder().total_shards(16_385),
            "shard_config: { total_shards: 16385 }",
            "shard_config.total_shards",
        ),
        (
            Config::builder().ring_buffer_capacity(0),
            "shard_config: { ring_buffer_capacity: 0 }",
            "shard_config.ring_buffer_capacity",
        ),
        (
            Config::builder().io_threads(65),
            "redis_pool: { io_threads: 65 }",
            "redis_pool.io_threads",
        ),
        (
            Config::builder().idle_timeout(Duration::ZERO),
            "redis_pool: { idle_timeout: 0s }",
            "redis_pool.idle_timeout",
        ),
        (
            Config::builder().dial_timeout(Duration::ZERO),
            "redis_pool: { dial_timeout: 0ms }",
            "redis_pool.dial_timeout",
        ),
        (
            Config::builder().read_timeout(Duration::ZERO),
            "redis_pool: { read_timeout: 0s }",
            "redis_pool.read_timeout",
        ),
        (
            Config::builder().write_timeout(Duration::ZERO),
            "redis_pool: { write_timeout: 0s }",
            "redis_pool.write_timeout",
        ),
        (
            Config::builder().max_pending_bytes(1023),
            "backpressure: { max_pending_bytes: 1023 }",
            "backpressure.max_pending_bytes",
        ),
        (
            Config::builder().so_rcvbuf(1023),
            "tcp_tuning: { so_rcvbuf: 1023 }",
            "tcp_tuning.so_rcvbuf",
        ),
        (
            Config::builder().so_sndbuf((1 << 30) + 1),
            "tcp_tuning: { so_sndbuf: 1073741825 }",
            "tcp_tuning.so_sndbuf",
        ),
        (
            Config::builder().max_batch(0),
            "batching: { max_batch: 0 }",
            "batching.max_batch",
        ),
        (
            Config::builder().pipeline_depth(0),
            "batching: { pipeline_depth: 0 }",
            "batching.pipeline_depth",
        ),
        (
            Config::builder().pipeline_depth(65),
            "batching: { pipeline_depth: 65 }",
            "batching.pipeline_depth",
        ),
        (
            Config::builder().p95_budget(Duration::ZERO),
            "batching: { p95_budget: 0s }",
            "batching.p95_budget",
        ),
        (
            Config::builder().commit_timeout(Duration::ZERO),
            "commit: { timeout: 0s }",
            "commit.timeout",
        ),
        (
            Config::builder().username("writer"),
            "auth: { username: writer }",
            "auth.password",
        ),
        (
            Config::builder().node("127.0.0.1:7000").node("redis://writer@h:1"),
            "nodes: [\"127.0.0.1:7000\", \"redis://writer@h:1\"]",
            "nodes[1]",
        ),
        (
            Config::builder().client_cert_file("/etc/redis/client.crt"),
            "tls: { client_cert_file: /etc/redis/client.crt }",
            "tls.client_key_file",
        ),
        (
            Config::builder().client_key_file("/etc/redis/client.key"),
            "tls: { client_key_file: /etc/redis/client.key }",
            "tls.client_cert_file",
        ),
        (
            Config::builder()
                .tls_enabled(true)
                .ca_file("/nonexistent/slotline/ca.pem"),
            "tls: { enabled: true, ca_file: /nonexistent/slotline/ca.pem }",
            "tls.ca_file",
        ),
        (
            Config::builder()
                .node("rediss://127.0.0.1:7000")
                .ca_file("/nonexistent/slotline/ca.pem"),
            "nodes: [\"rediss://127.0.0.1:7000\"]\ntls: { ca_file: /nonexistent/slotline/ca.pem }",
            "tls.ca_file",
        ),
    ];
    for (builder, yaml, key) in cases {
        let from_builder = builder.build().unwrap_err();
        let from_yaml = Config::from_yaml_str(yaml).unwrap_err();
        assert!(
            matches!(from_builder, ConfigError::Invalid { file: None, .. }),
            "yaml={yaml:?}\nbuilder={from_builder:?}"
        );
        assert!(
            matches!(from_yaml, ConfigError::Invalid { file: None, .. }),
            "yaml={yaml:?}\nfile={from_yaml:?}"
        );
        assert_eq!(from_builder.key(), Some(key), "yaml={yaml:?}");
        assert_eq!(
            from_builder.to_string(),
            from_yaml.to_string(),
            "yaml={yaml:?}"
        );
    }
}

/// The file path reports a node that does not parse as a parse error at its position; the
/// builder, which has no position, as `Invalid` with the same key and reason.
#[test]
fn builder_reports_an_unparsable_node_with_the_yaml_key_and_reason() {
    for (bad, yaml_value) in [
        ("127.0.0.1", "127.0.0.1"),
        ("redis://h:70000", "\"redis://h:70000\""),
        ("::1:7000", "\"::1:7000\""),
        ("http://h:1", "\"http://h:1\""),
    ] {
        let from_builder = Config::builder()
            .node("127.0.0.1:7000")
            .node(bad)
            .build()
            .unwrap_err();
        let yaml = format!("nodes:\n  - 127.0.0.1:7000\n  - {yaml_value}\n");
        let from_yaml = Config::from_yaml_str(&yaml).unwrap_err();
        assert_eq!(from_builder.key(), Some("nodes[1]"), "{from_builder}");
        assert_eq!(from_yaml.key(), Some("nodes[1]"), "{from_yaml}");
        let ConfigError::Invalid { key, reason, .. } = &from_builder else {
            panic!("expected Invalid, got {from_builder:?}");
        };
        let ConfigError::Parse { message, .. } = &from_yaml else {
            panic!("expected Parse, got {from_yaml:?}");
        };
        assert_eq!(
            format!("{key}: {reason}"),
            *message,
            "input={bad:?}\nbuilder={from_builder}\nfile={from_yaml}"
        );
    }
    // `nodes` numbers the addresses it is given.
    let err = Config::builder()
        .nodes(["h:1", "h:2", "h"])
        .build()
        .unwrap_err();
    assert_eq!(err.key(), Some("nodes[2]"));
}

#[test]
fn builder_reports_the_first_bad_node_before_any_other_error() {
    let err = Config::builder()
        .total_shards(0)
        .node("a:1")
        .node("b")
        .node("c")
        .nodes(["d:1", "e"])
        .build()
        .unwrap_err();
    assert_eq!(err.key(), Some("nodes[1]"), "{err}");
    assert!(err.to_string().contains("`b`"), "{err}");
}

#[test]
fn builder_node_errors_never_show_the_password() {
    let err = Config::builder()
        .node("redis://u:topsecret@h:notaport")
        .build()
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("topsecret"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// YAML round trip
// ---------------------------------------------------------------------------------------------

/// Writes `config`, reads it back, and checks that it is equal. Returns the text.
#[track_caller]
fn round_trip(config: &Config) -> String {
    let yaml = config.to_yaml().unwrap();
    let back = Config::from_yaml_str(&yaml)
        .unwrap_or_else(|err| panic!("written YAML does not read back: {err}\n{yaml}"));
    assert_eq!(&back, config, "written YAML:\n{yaml}");
    for removed in ["max_idle", "max_active"] {
        assert!(!yaml.contains(removed), "{removed} written:\n{yaml}");
    }
    yaml
}

#[test]
fn default_config_round_trips() {
    let yaml = round_trip(&Config::default());
    // The template's values, in the template's form.
    for line in [
        "  total_shards: 64",
        "  routing_algorithm: crc16",
        "  idle_timeout: 5m",
        "  dial_timeout: 2s",
        "  read_timeout: 500ms",
        "  fallback_strategy: drop_oldest",
        "nodes: []",
        "  timeout: 100ms",
        "  p95_budget: 15ms",
    ] {
        assert!(yaml.lines().any(|l| l == line), "no `{line}` in\n{yaml}");
    }
    // Optional keys that are not set are left out.
    assert!(!yaml.contains("password"), "{yaml}");
    assert!(!yaml.contains("ca_file"), "{yaml}");
}

#[test]
fn shipped_template_round_trips() {
    let config = Config::from_yaml_file(template_path()).unwrap();
    let yaml = round_trip(&config);
    // The same sections in the same order as the template.
    let sections: Vec<&str> = yaml
        .lines()
        .filter(|l| !l.starts_with([' ', '-']))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        sections,
        [
            "shard_config",
            "redis_pool",
            "backpressure",
            "tcp_tuning",
            "nodes",
            "ack",
            "batching",
            "commit",
            "auth",
            "tls"
        ]
    );
}

/// A CA certificate, and a client certificate and key it signed, in a temporary directory:
/// `tls` files that validate.
struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        let dir = tempfile::Builder::new()
            .prefix("slotline-config-")
            .tempdir()
            .unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "slotline config test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        // A space in a name, so that paths are not all plain words.
        std::fs::write(dir.path().join("ca cert.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), leaf_key.serialize_pem()).unwrap();
        TlsFiles { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A configuration with every value different from the default, checked by
/// `every_key_differs_from_the_default`. TLS is on, so it needs `files`.
fn config_with_every_key_changed(files: &TlsFiles) -> Config {
    Config::builder()
        .total_shards(16_384)
        .ring_buffer_capacity(1)
        // The only algorithm: the one key that cannot differ from its default.
        .routing_algorithm(RoutingAlgorithm::Crc16)
        .io_threads(64)
        .idle_timeout(Duration::new(93_784, 5_006_007)) // 1d 2h 3m 4s 5ms 6us 7ns
        .dial_timeout(Duration::from_nanos(1))
        .read_timeout(Duration::from_micros(1500))
        .write_timeout(Duration::from_secs(7200))
        .backpressure_enabled(false)
        .threshold_percent(100)
        .max_pending_bytes(1 << 40)
        .fallback_strategy(FallbackStrategy::Reject)
        .so_rcvbuf(1024)
        .so_sndbuf(1 << 30)
        .tcp_nodelay(false)
        .nodes([
            "10.0.0.1:7000",
            "[2001:db8::7]:7001",
            "rediss://cache.internal.example:6380",
            "redis://app:p%40ss%3Aw%2Fd%20x@10.0.0.2:7002",
            "rediss://:only-a-password@[::1]:7003",
            "REDIS://Upper.Case.Host",
            "redis://h%C3%A9llo:7004",
            "redis://us%C3%A9r:pw%C3%A9%25@10.0.0.3",
        ])
        .ack_replicas(3)
        .ack_timeout(Duration::from_millis(1999))
        .max_batch(65_536)
        .pipeline_depth(64)
        .p95_budget(Duration::from_micros(2500))
        .commit_timeout(Duration::from_secs(2))
        .username("writer: #1")
        .password("null")
        .tls_enabled(true)
        .ca_file(files.path("ca cert.pem"))
        .server_name("localhost")
        .client_cert_file(files.path("client.pem"))
        .client_key_file(files.path("client.key"))
        .build()
        .unwrap()
}

/// Every leaf of `config`'s YAML differs from the default's: so the round trip of this config
/// covers every key, and a key added later without a change here fails this test.
#[test]
fn every_key_differs_from_the_default() {
    use serde_norway::Value;
    let files = TlsFiles::new();
    let changed: Value =
        serde_norway::from_str(&config_with_every_key_changed(&files).to_yaml().unwrap()).unwrap();
    let default: Value = serde_norway::from_str(&Config::default().to_yaml().unwrap()).unwrap();
    let Value::Mapping(sections) = &changed else {
        panic!("{changed:?}")
    };
    assert_eq!(sections.len(), 10);
    for (section, value) in sections {
        let section = section.as_str().unwrap();
        match value {
            Value::Mapping(keys) => {
                assert!(!keys.is_empty(), "{section} is empty");
                for (key, value) in keys {
                    let key = key.as_str().unwrap();
                    if (section, key) == ("shard_config", "routing_algorithm") {
                        continue;
                    }
                    assert_ne!(
                        Some(value),
                        default[section].get(key),
                        "{section}.{key} has its default value"
                    );
                }
            }
            _ => assert_ne!(value, &default[section], "{section} has its default value"),
        }
    }
    assert_eq!(changed["auth"].as_mapping().unwrap().len(), 2);
    assert_eq!(changed["tls"].as_mapping().unwrap().len(), 5);
}

#[test]
fn config_with_every_key_changed_round_trips() {
    let files = TlsFiles::new();
    let config = config_with_every_key_changed(&files);
    let yaml = round_trip(&config);
    assert!(
        yaml.contains("idle_timeout: 1d 2h 3m 4s 5ms 6us 7ns"),
        "{yaml}"
    );
    assert!(yaml.contains("dial_timeout: 1ns"), "{yaml}");
    assert!(yaml.contains("read_timeout: 1ms 500us"), "{yaml}");
    assert!(yaml.contains("write_timeout: 2h"), "{yaml}");
    // Plain addresses stay plain; TLS and credentials make a URL, default port included.
    for node in [
        "- 10.0.0.1:7000",
        "- '[2001:db8::7]:7001'",
        "- rediss://cache.internal.example:6380",
        "- redis://app:p%40ss%3Aw%2Fd%20x@10.0.0.2:7002",
        "- rediss://:only-a-password@[::1]:7003",
        "- Upper.Case.Host:6379",
        "- redis://us%C3%A9r:pw%C3%A9%25@10.0.0.3:6379",
    ] {
        assert!(yaml.contains(node), "no `{node}` in\n{yaml}");
    }
    // `null` as a password is a string, not a missing value.
    assert_eq!(config.auth.password.as_ref().unwrap().expose(), "null");
    // Written to a file and read back from it.
    let path = files.path("written.yaml");
    std::fs::write(&path, &yaml).unwrap();
    assert_eq!(Config::from_yaml_file(&path).unwrap(), config);
}

/// Passwords and user names that YAML would read as something else unless quoted, or that
/// need escapes.
#[test]
fn awkward_strings_round_trip() {
    for secret in [
        "",
        "null",
        "~",
        "Null",
        "true",
        "no",
        "yes",
        "off",
        "123",
        "0x1F",
        "1e3",
        ".inf",
        "- item",
        "key: value",
        "# comment",
        " padded ",
        "tab\there",
        "line\nbreak",
        "'\"",
        "{a: b}",
        "[1]",
        "&anchor",
        "*alias",
        "!tag",
        "%percent",
        "@at",
        "`tick`",
        "é ü 中",
        "bell\u{7}",
        "\u{feff}bom",
    ] {
        let mut config = Config::builder()
            .username(secret)
            .password(secret)
            .server_name("localhost")
            .build()
            .unwrap();
        round_trip(&config);
        // In a node URL as well (an empty user name or password counts as none there).
        if !secret.is_empty() {
            let url = format!(
                "redis://{}:{}@h:1",
                escape_userinfo(secret),
                escape_userinfo(secret)
            );
            config.nodes = vec![url.parse().unwrap()];
            assert_eq!(config.nodes[0].password().unwrap().expose(), secret);
            round_trip(&config);
        }
    }
}

fn escape_userinfo(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn a_password_survives_the_round_trip_but_never_shows_in_debug() {
    const SECRET: &str = "rt-s3cret-9c41";
    const URL_SECRET: &str = "rt-url-p@ss-5e0b";
    // A `rediss://` node turns TLS on, which needs a CA that can be read.
    let files = TlsFiles::new();
    let config = Config::builder()
        .username("writer")
        .password(SECRET)
        .node("rediss://app:rt-url-p%40ss-5e0b@127.0.0.1:7000")
        .node(NodeAddr::new("127.0.0.1", 7001))
        .ca_file(files.path("ca cert.pem"))
        .build()
        .unwrap();
    let yaml = round_trip(&config);
    // The text holds both secrets, so that it reads back ...
    assert!(yaml.contains(SECRET), "{yaml}");
    assert!(yaml.contains("rt-url-p%40ss-5e0b"), "{yaml}");
    let back = Config::from_yaml_str(&yaml).unwrap();
    assert_eq!(back.auth.password.as_ref().unwrap().expose(), SECRET);
    assert_eq!(back.nodes[0].password().unwrap().expose(), URL_SECRET);
    // ... and `Debug` of either configuration holds neither.
    for c in [&config, &back] {
        let debug = format!("{c:?}\n{c:#?}");
        for secret in [SECRET, URL_SECRET, "rt-url-p%40ss-5e0b"] {
            assert!(!debug.contains(secret), "Debug shows `{secret}`:\n{debug}");
        }
    }
    assert_eq!(format!("{:?}", Password::new(SECRET)), "\"***\"");
}

#[test]
fn to_yaml_refuses_a_node_that_would_not_read_back() {
    for (node, reason) in [
        (NodeAddr::new("no such host", 7000), "reads back"),
        (NodeAddr::new("0:0::1", 7000), "reads back as `[::1]:7000`"),
        (NodeAddr::new("", 7000), "missing host"),
    ] {
        let config = Config {
            nodes: vec![NodeAddr::new("127.0.0.1", 7000), node],
            ..Config::default()
        };
        let err = config.to_yaml().unwrap_err();
        assert!(
            matches!(err, ConfigError::Serialize { .. }),
            "expected Serialize, got {err:?}"
        );
        assert_eq!(err.key(), Some("nodes[1]"), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
}

#[cfg(unix)]
#[test]
fn to_yaml_refuses_a_tls_path_that_is_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    let path = Path::new(OsStr::from_bytes(b"/etc/redis/\xffca.pem")).to_path_buf();
    let config = Config::builder().ca_file(path).build().unwrap();
    let err = config.to_yaml().unwrap_err();
    assert_eq!(err.key(), Some("tls.ca_file"), "{err}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}
