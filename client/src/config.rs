//! The client's configuration: every bound on the write path, read from YAML.
//!
//! The file has the sections of the project's template (`geo_shard_client.yaml` at the
//! repository root documents every key):
//!
//! | section | keys | what they bound |
//! |---|---|---|
//! | `shard_config` | `total_shards`, `ring_buffer_capacity`, `routing_algorithm` | how many rings, and how many pending writes each holds |
//! | `redis_pool` | `max_idle`, `max_active`, `idle_timeout`, `dial_timeout`, `read_timeout`, `write_timeout` | connections and how long any socket call may block |
//! | `backpressure` | `enabled`, `threshold_percent`, `fallback_strategy` | what a commit does when its ring is at the threshold |
//! | `tcp_tuning` | `so_rcvbuf`, `so_sndbuf`, `tcp_nodelay` | the kernel's socket buffers, set explicitly |
//! | `nodes` | a list of `host:port` or `redis://` URLs | where the cluster is first asked for its topology |
//! | `ack` | `replicas`, `timeout` | `WAIT replicas timeout` after each batch when `replicas > 0` |
//! | `batching` | `max_batch`, `p95_budget` | how many writes one pipelined round trip carries |
//! | `commit` | `timeout` | the default deadline of one commit, from the call to its ACK |
//! | `auth` | `username`, `password` | `AUTH` sent on every new connection |
//! | `tls` | `enabled`, `ca_file`, `server_name`, `client_cert_file`, `client_key_file` | TLS on every connection, the nodes' certificates always verified |
//!
//! Every key is optional: a missing key takes the template's value ([`Config::default`]).
//! Unknown keys are errors, and so are values out of range; a [`ConfigError`] always names the
//! key (`backpressure.threshold_percent`, `redis_pool.dial_timeout`, `nodes[2]`) and the reason.
//!
//! Durations are written with a unit: `500ms`, `2s`, `1.5s`, `2m` (see [`parse_duration`]).
//!
//! # Examples
//!
//! ```
//! use slotline_client::config::{Config, FallbackStrategy};
//!
//! let config = Config::from_yaml_str(
//!     "
//! nodes: [\"127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]
//! backpressure:
//!   fallback_strategy: reject
//! ",
//! )?;
//! assert_eq!(config.backpressure.fallback_strategy, FallbackStrategy::Reject);
//! assert_eq!(config.shard_config.total_shards, 64); // the template's default
//! assert_eq!(config.nodes[1].port(), 7001);
//! # Ok::<(), slotline_client::ConfigError>(())
//! ```

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The number of hash slots in a Redis Cluster; also the largest allowed `total_shards`.
const SLOT_COUNT: u32 = 16_384;
/// The largest allowed `shard_config.ring_buffer_capacity` (16 Mi pending writes per shard).
pub const MAX_RING_BUFFER_CAPACITY: usize = 1 << 24;
/// The largest allowed `batching.max_batch`.
pub const MAX_BATCH: usize = 1 << 16;
/// The smallest allowed `tcp_tuning.so_rcvbuf` / `so_sndbuf` in bytes.
pub const MIN_SOCKET_BUFFER: usize = 1024;
/// The largest allowed `tcp_tuning.so_rcvbuf` / `so_sndbuf` in bytes (1 GiB).
pub const MAX_SOCKET_BUFFER: usize = 1 << 30;
/// The default Redis port, used by `redis://` URLs that name no port.
pub const DEFAULT_PORT: u16 = 6379;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A configuration that could not be read, parsed or accepted.
///
/// Every variant names the key it is about (the YAML path, such as
/// `backpressure.threshold_percent` or `nodes[1]`), so the message alone says what to fix.
///
/// # Examples
///
/// ```
/// use slotline_client::config::Config;
///
/// let err = Config::from_yaml_str("backpressure:\n  threshold_percent: 180\n").unwrap_err();
/// assert_eq!(err.key(), Some("backpressure.threshold_percent"));
/// assert!(err.to_string().contains("1..=100"), "{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file that was opened.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or a value of the wrong type or format.
    Parse {
        /// The file, when the YAML came from one.
        file: Option<PathBuf>,
        /// The parser's message; it starts with the key path (`shard_config.total_shards: ...`),
        /// or with `top level:` for an unknown top-level key.
        message: String,
        /// 1-based line of the offending value, when known.
        line: Option<usize>,
        /// 1-based column of the offending value, when known.
        column: Option<usize>,
    },
    /// A value parsed but is out of range or inconsistent with another value.
    Invalid {
        /// The file, when the YAML came from one.
        file: Option<PathBuf>,
        /// The key path, such as `backpressure.threshold_percent`.
        key: String,
        /// Why the value is not accepted, including the allowed range.
        reason: String,
    },
}

impl ConfigError {
    /// The key path the error is about, when it is known separately from the message.
    ///
    /// [`ConfigError::Invalid`] always has one; for [`ConfigError::Parse`] the key path is the
    /// start of the message (the YAML parser reports it there), and this returns that prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let err = Config::from_yaml_str("redis_pool:\n  dial_timeout: fast\n").unwrap_err();
    /// assert_eq!(err.key(), Some("redis_pool.dial_timeout"));
    /// ```
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Parse { message, .. } => {
                let (prefix, _) = message.split_once(": ")?;
                // A key path has no spaces; parser messages without a path do.
                (!prefix.is_empty() && !prefix.contains(' ')).then_some(prefix)
            }
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigError::Parse { file, .. } | ConfigError::Invalid { file, .. } => {
                *file = Some(path.to_path_buf());
            }
            ConfigError::Io { .. } => {}
        }
        self
    }

    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: None,
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn from_yaml(err: serde_yaml::Error) -> Self {
        let location = err.location();
        let mut message = err.to_string();
        // serde_yaml appends " at line L column C"; the location is kept in its own fields.
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message.truncate(stripped.len());
            }
        }
        // serde quotes a string it could not use (`invalid type: string "...", expected ...`);
        // that string may be a password written in the wrong place (`auth: hunter2`).
        let mut message = hide_quoted_strings(&message);
        // Keys inside a section come prefixed with their path; an unknown top-level key does not.
        if message.starts_with("unknown field") {
            message.insert_str(0, "top level: ");
        }
        ConfigError::Parse {
            file: None,
            message,
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    }
}

/// `message` with every `string "..."` that serde wrote (a value it could not use, quoted with
/// Rust escapes) replaced by `string (value not shown)`. The key path stays, so the message
/// still says what to fix.
fn hide_quoted_strings(message: &str) -> String {
    const OPEN: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let quoted = &rest[start + OPEN.len()..];
        let mut escaped = false;
        let end = quoted.char_indices().find_map(|(i, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes.then_some(i)
        });
        out.push_str("string (value not shown)");
        match end {
            Some(end) => rest = &quoted[end + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read configuration {}: {source}", path.display())
            }
            ConfigError::Parse {
                file,
                message,
                line,
                column,
            } => {
                f.write_str("invalid configuration")?;
                if let Some(file) = file {
                    write!(f, " in {}", file.display())?;
                }
                if let (Some(line), Some(column)) = (line, column) {
                    write!(f, " at line {line} column {column}")?;
                }
                write!(f, ": {message}")
            }
            ConfigError::Invalid { file, key, reason } => {
                f.write_str("invalid configuration")?;
                if let Some(file) = file {
                    write!(f, " in {}", file.display())?;
                }
                write!(f, ": {key}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// The whole client configuration; see the [module docs](self) for the file format.
///
/// `Config::default()` is the project's template (`geo_shard_client.yaml`) with no nodes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::Config;
///
/// let mut config = Config::default();
/// assert_eq!(config.shard_config.ring_buffer_capacity, 4096);
/// assert_eq!(config.redis_pool.read_timeout, Duration::from_millis(500));
/// config.ack.replicas = 1;
/// config.validate()?;
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Logical shards and their rings.
    pub shard_config: ShardConfig,
    /// Connections and socket timeouts.
    pub redis_pool: RedisPool,
    /// What a commit does when its ring is (nearly) full.
    pub backpressure: Backpressure,
    /// Socket buffer sizes and Nagle.
    pub tcp_tuning: TcpTuning,
    /// Seed nodes: the cluster is asked for its topology through these.
    pub nodes: Vec<NodeAddr>,
    /// Replication acknowledgement (`WAIT`).
    pub ack: Ack,
    /// Pipelined batches.
    pub batching: Batching,
    /// Per-commit deadline.
    pub commit: Commit,
    /// Credentials sent with `AUTH` on every connection.
    pub auth: Auth,
    /// TLS: the CA that signed the nodes' certificates, and an optional client certificate.
    pub tls: Tls,
}

impl Config {
    /// Reads, parses and validates a YAML configuration file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] if the file cannot be read, otherwise as
    /// [`Config::from_yaml_str`], with the file name added.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::from_yaml_file("geo_shard_client.yaml")?;
    /// println!("{} shards", config.shard_config.total_shards);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml_str(&text).map_err(|err| err.in_file(path))
    }

    /// Parses and validates a YAML configuration.
    ///
    /// An empty document gives [`Config::default`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for malformed YAML, unknown keys, wrong types, unknown enum values,
    /// unparsable durations or node addresses; [`ConfigError::Invalid`] when
    /// [`Config::validate`] rejects a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let err = Config::from_yaml_str("shard_config:\n  colour: blue\n").unwrap_err();
    /// assert!(err.to_string().contains("shard_config: unknown field `colour`"), "{err}");
    /// ```
    pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(yaml).map_err(ConfigError::from_yaml)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against its allowed range and the values against each other.
    ///
    /// Both constructors run it; call it yourself after changing fields in code.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first offending key.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let mut config = Config::default();
    /// config.shard_config.total_shards = 0;
    /// let err = config.validate().unwrap_err();
    /// assert_eq!(err.key(), Some("shard_config.total_shards"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.shard_config;
        in_range(
            "shard_config.total_shards",
            s.total_shards as u64,
            1,
            SLOT_COUNT as u64,
        )?;
        in_range(
            "shard_config.ring_buffer_capacity",
            s.ring_buffer_capacity as u64,
            1,
            MAX_RING_BUFFER_CAPACITY as u64,
        )?;

        let p = &self.redis_pool;
        in_range(
            "redis_pool.max_active",
            p.max_active as u64,
            1,
            u32::MAX as u64,
        )?;
        if p.max_idle > p.max_active {
            return Err(ConfigError::invalid(
                "redis_pool.max_idle",
                format!(
                    "{} is more than redis_pool.max_active ({})",
                    p.max_idle, p.max_active
                ),
            ));
        }
        positive("redis_pool.idle_timeout", p.idle_timeout)?;
        positive("redis_pool.dial_timeout", p.dial_timeout)?;
        positive("redis_pool.read_timeout", p.read_timeout)?;
        positive("redis_pool.write_timeout", p.write_timeout)?;

        in_range(
            "backpressure.threshold_percent",
            self.backpressure.threshold_percent as u64,
            1,
            100,
        )?;

        let t = &self.tcp_tuning;
        in_range(
            "tcp_tuning.so_rcvbuf",
            t.so_rcvbuf as u64,
            MIN_SOCKET_BUFFER as u64,
            MAX_SOCKET_BUFFER as u64,
        )?;
        in_range(
            "tcp_tuning.so_sndbuf",
            t.so_sndbuf as u64,
            MIN_SOCKET_BUFFER as u64,
            MAX_SOCKET_BUFFER as u64,
        )?;

        in_range(
            "batching.max_batch",
            self.batching.max_batch as u64,
            1,
            MAX_BATCH as u64,
        )?;
        positive("batching.p95_budget", self.batching.p95_budget)?;

        positive("commit.timeout", self.commit.timeout)?;
        if self.ack.replicas > 0 {
            positive("ack.timeout", self.ack.timeout)?;
            if self.commit.timeout <= self.ack.timeout {
                return Err(ConfigError::invalid(
                    "commit.timeout",
                    format!(
                        "{:?} must be longer than ack.timeout ({:?}) when ack.replicas > 0",
                        self.commit.timeout, self.ack.timeout
                    ),
                ));
            }
        }

        if self.auth.username.is_some() && self.auth.password.is_none() {
            return Err(ConfigError::invalid(
                "auth.password",
                "is required when auth.username is set",
            ));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.username.is_some() && node.password.is_none() {
                return Err(ConfigError::invalid(
                    format!("nodes[{i}]"),
                    "a URL with a username needs a password too (`redis://user:pass@host:port`)",
                ));
            }
        }
        self.validate_tls()
    }

    /// Whether connections use TLS: `tls.enabled`, or any seed node given as `rediss://`.
    ///
    /// A cluster speaks TLS on all its nodes or on none, and the nodes the client learns
    /// from the topology are dialled like the seeds, so one `rediss://` seed turns TLS on for
    /// every connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert!(!Config::default().tls_enabled());
    /// let mut config = Config::default();
    /// config.nodes = vec!["rediss://127.0.0.1:7000".parse()?];
    /// assert!(config.tls_enabled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_enabled(&self) -> bool {
        self.tls.enabled || self.nodes.iter().any(NodeAddr::is_tls)
    }

    /// The `tls` section: keys that go together, a server name that parses, and, when TLS is
    /// on, files that can be read and hold what they should.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        match (&t.client_cert_file, &t.client_key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls.client_key_file",
                    "is required when tls.client_cert_file is set (the client certificate's \
                     private key, PEM)",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls.client_cert_file",
                    "is required when tls.client_key_file is set (the client certificate, PEM)",
                ))
            }
            _ => {}
        }
        if !self.tls_enabled() {
            return Ok(());
        }
        crate::conn::tls::TlsConnector::new(t)
            .map(drop)
            .map_err(|err| match err.config_key() {
                Some(key) => ConfigError::invalid(key, err.to_string()),
                None => ConfigError::invalid("tls", err.to_string()),
            })
    }

    /// The number of pending writes at which a ring counts as full for backpressure:
    /// `ceil(ring_buffer_capacity × threshold_percent / 100)`, or the whole capacity when
    /// backpressure is disabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let mut config = Config::default();
    /// assert_eq!(config.backpressure_limit(), 3277); // 80 % of 4096, rounded up
    /// config.backpressure.enabled = false;
    /// assert_eq!(config.backpressure_limit(), 4096);
    /// ```
    pub fn backpressure_limit(&self) -> usize {
        let capacity = self.shard_config.ring_buffer_capacity;
        if !self.backpressure.enabled {
            return capacity;
        }
        let percent = self.backpressure.threshold_percent.min(100) as usize;
        // capacity ≤ 2^24 after validation, so this cannot overflow; saturate anyway.
        capacity
            .saturating_mul(percent)
            .div_ceil(100)
            .clamp(1, capacity.max(1))
    }
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{value} is out of range (allowed {min}..={max})"),
        ))
    }
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        Err(ConfigError::invalid(key, "must be longer than zero"))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

/// `shard_config`: logical shards, each with one bounded ring of pending writes.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{RoutingAlgorithm, ShardConfig};
///
/// let s = ShardConfig::default();
/// assert_eq!((s.total_shards, s.ring_buffer_capacity), (64, 4096));
/// assert_eq!(s.routing_algorithm, RoutingAlgorithm::Crc16);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// Number of logical shards (rings and writer threads), `1..=16384`; each owns a
    /// contiguous range of the 16384 hash slots. Default 64.
    pub total_shards: u32,
    /// Pending writes one ring holds, `1..=16777216`. Default 4096.
    pub ring_buffer_capacity: usize,
    /// How keys map to slots. Only `crc16` (Redis Cluster's own slot function). Default `crc16`.
    pub routing_algorithm: RoutingAlgorithm,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            total_shards: 64,
            ring_buffer_capacity: 4096,
            routing_algorithm: RoutingAlgorithm::Crc16,
        }
    }
}

/// `shard_config.routing_algorithm`: how a key is mapped to a hash slot.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{Config, RoutingAlgorithm};
///
/// let c = Config::from_yaml_str("shard_config: { routing_algorithm: crc16 }")?;
/// assert_eq!(c.shard_config.routing_algorithm, RoutingAlgorithm::Crc16);
/// assert!(Config::from_yaml_str("shard_config: { routing_algorithm: modulo }").is_err());
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoutingAlgorithm {
    /// CRC-16/XMODEM of the key's hash tag, modulo 16384: exactly Redis Cluster's `keyHashSlot`,
    /// so a write goes straight to the node that owns its slot.
    #[default]
    Crc16,
}

/// `redis_pool`: connection limits and socket timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::RedisPool;
///
/// let p = RedisPool::default();
/// assert_eq!(p.dial_timeout, Duration::from_secs(2));
/// assert_eq!((p.max_idle, p.max_active), (16, 64));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisPool {
    /// Idle connections kept open, at most `max_active`. Default 16.
    pub max_idle: u32,
    /// Connections open at once, at least 1. Default 64.
    pub max_active: u32,
    /// An idle connection older than this is closed. Default `300s`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub idle_timeout: Duration,
    /// Limit on TCP connect (and on `AUTH` during connect). Default `2s`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub dial_timeout: Duration,
    /// Limit on one blocking socket read. Default `500ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub read_timeout: Duration,
    /// Limit on one blocking socket write. Default `500ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub write_timeout: Duration,
}

impl Default for RedisPool {
    fn default() -> Self {
        RedisPool {
            max_idle: 16,
            max_active: 64,
            idle_timeout: Duration::from_secs(300),
            dial_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(500),
            write_timeout: Duration::from_millis(500),
        }
    }
}

/// `backpressure`: the line at which a ring counts as full, and what happens then.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{Backpressure, FallbackStrategy};
///
/// let b = Backpressure::default();
/// assert!(b.enabled);
/// assert_eq!(b.threshold_percent, 80);
/// assert_eq!(b.fallback_strategy, FallbackStrategy::DropOldest);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backpressure {
    /// Apply `fallback_strategy` at `threshold_percent`; when false, only at the full capacity.
    /// Default true.
    pub enabled: bool,
    /// Fill level, in percent of `ring_buffer_capacity` (`1..=100`), at which a ring counts as
    /// full. Default 80.
    pub threshold_percent: u32,
    /// What a commit does when its ring is full. Default `drop_oldest` (the template's choice).
    pub fallback_strategy: FallbackStrategy,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            enabled: true,
            threshold_percent: 80,
            fallback_strategy: FallbackStrategy::DropOldest,
        }
    }
}

/// `backpressure.fallback_strategy`: what a commit does when its ring is full.
///
/// Whatever the strategy, nothing is acknowledged that Redis did not confirm: a rejected or
/// evicted write is reported to its own caller as such.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{Config, FallbackStrategy};
///
/// let c = Config::from_yaml_str("backpressure: { fallback_strategy: block }")?;
/// assert_eq!(c.backpressure.fallback_strategy, FallbackStrategy::Block);
/// let err = Config::from_yaml_str("backpressure: { fallback_strategy: maybe }").unwrap_err();
/// assert!(err.to_string().contains("`reject`, `block`, `drop_oldest`"), "{err}");
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackStrategy {
    /// Fail the new write at once with `CommitError::Rejected`.
    Reject,
    /// Wait for room until the commit's deadline, then fail with `CommitError::DeadlineExceeded`.
    Block,
    /// Accept the new write and evict the oldest pending one, whose caller gets
    /// `CommitError::Dropped`.
    #[default]
    DropOldest,
}

/// `tcp_tuning`: socket options set on every connection before it connects.
///
/// # Examples
///
/// ```
/// use slotline_client::config::TcpTuning;
///
/// let t = TcpTuning::default();
/// assert_eq!((t.so_rcvbuf, t.so_sndbuf, t.tcp_nodelay), (4 << 20, 4 << 20, true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpTuning {
    /// `SO_RCVBUF` in bytes (`1024..=1073741824`); Linux reports twice the value and caps it
    /// at `net.core.rmem_max`. Default 4194304.
    pub so_rcvbuf: usize,
    /// `SO_SNDBUF` in bytes (`1024..=1073741824`); Linux reports twice the value and caps it
    /// at `net.core.wmem_max`. Default 4194304.
    pub so_sndbuf: usize,
    /// `TCP_NODELAY` (disable Nagle's algorithm). Default true.
    pub tcp_nodelay: bool,
}

impl Default for TcpTuning {
    fn default() -> Self {
        TcpTuning {
            so_rcvbuf: 4 << 20,
            so_sndbuf: 4 << 20,
            tcp_nodelay: true,
        }
    }
}

/// `ack`: how many replicas must confirm a batch before its writes are acknowledged.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::Ack;
///
/// let a = Ack::default();
/// assert_eq!((a.replicas, a.timeout), (0, Duration::from_millis(100)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ack {
    /// Replicas that must confirm (`WAIT replicas timeout` after each batch); 0 = the master's
    /// reply is the ACK. Default 0.
    pub replicas: u32,
    /// `WAIT`'s timeout; must be longer than zero when `replicas > 0` (`WAIT n 0` would block
    /// forever). Default `100ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
}

impl Default for Ack {
    fn default() -> Self {
        Ack {
            replicas: 0,
            timeout: Duration::from_millis(100),
        }
    }
}

/// `batching`: how many pending writes one pipelined round trip carries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::Batching;
///
/// let b = Batching::default();
/// assert_eq!((b.max_batch, b.p95_budget), (512, Duration::from_millis(15)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Writes per pipeline, `1..=65536`. A writer never waits to fill a batch: it sends what
    /// is pending, up to this many. Default 512.
    pub max_batch: usize,
    /// Latency budget: when a shard's p95 commit latency goes above it, its writer shrinks
    /// its batches. Default `15ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub p95_budget: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch: 512,
            p95_budget: Duration::from_millis(15),
        }
    }
}

/// `commit`: the default deadline of one commit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::Commit;
///
/// assert_eq!(Commit::default().timeout, Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commit {
    /// Time from the call to the ACK: waiting for room in the ring (`block`), the pipelined
    /// write and `WAIT`. When it passes, the caller gets `CommitError::DeadlineExceeded`.
    /// Must be longer than `ack.timeout` when `ack.replicas > 0`. Default `1s`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
}

impl Default for Commit {
    fn default() -> Self {
        Commit {
            timeout: Duration::from_secs(1),
        }
    }
}

/// `auth`: credentials sent with `AUTH` on every new connection.
///
/// With a username, `AUTH username password` (Redis ACL); with only a password,
/// `AUTH password` (`requirepass`). A node URL with its own credentials overrides this section.
///
/// # Examples
///
/// ```
/// use slotline_client::config::Config;
///
/// let c = Config::from_yaml_str("auth: { username: writer, password: s3cret }")?;
/// assert_eq!(c.auth.password.as_ref().map(|p| p.expose()), Some("s3cret"));
/// assert!(!format!("{c:?}").contains("s3cret"));
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// ACL user name; requires `password`. Default none.
    pub username: Option<String>,
    /// Password; never printed by `Debug`. Default none.
    pub password: Option<Password>,
}

/// `tls`: TLS on every connection (rustls with the *ring* provider: TLS 1.3 and 1.2).
///
/// TLS is on when `enabled` is true or any seed in `nodes` is a `rediss://` URL (see
/// [`Config::tls_enabled`]). Verification cannot be turned off: every node's certificate
/// must chain to a certificate in `ca_file` (or, when it is not set, in the system's trust
/// store) and be valid (SAN) for the name dialled, which is the node's host as the seed list
/// or the cluster gives it (usually an IP address), or `server_name` when set. With TLS on,
/// the files are read when the configuration is validated, so a missing or unreadable file is
/// a [`ConfigError`] naming its key and path.
///
/// # Examples
///
/// ```
/// use slotline_client::config::Config;
///
/// let c = Config::from_yaml_str("tls: { enabled: false, ca_file: /etc/redis/ca.pem }")?;
/// assert!(!c.tls_enabled());
/// let yaml = "tls: { enabled: true, ca_file: /no/such/ca.pem }";
/// let err = Config::from_yaml_str(yaml).unwrap_err();
/// assert!(err.to_string().contains("tls.ca_file: /no/such/ca.pem"), "{err}");
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Use TLS on every connection. A `rediss://` seed turns it on too. Default false.
    pub enabled: bool,
    /// PEM file with the CA certificate(s) that signed the nodes' certificates; a bundle of
    /// several is accepted. Default none: the system's trust store (`SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, else the operating system's bundle), for nodes with publicly trusted
    /// certificates.
    pub ca_file: Option<PathBuf>,
    /// The name the nodes' certificates are checked against, instead of each node's host:
    /// for clusters that announce IP addresses while their certificates carry a DNS name.
    /// A DNS name or an IP address. Default none (each node's own host).
    pub server_name: Option<String>,
    /// PEM file with the client certificate (and its chain) for mutual TLS, for nodes started
    /// with `tls-auth-clients yes`; needs `client_key_file`. Default none.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs
    /// `client_cert_file`. Default none.
    pub client_key_file: Option<PathBuf>,
}

/// A password that `Debug` prints as `"***"`.
///
/// # Examples
///
/// ```
/// use slotline_client::config::Password;
///
/// let p = Password::new("hunter2");
/// assert_eq!(format!("{p:?}"), "\"***\"");
/// assert_eq!(p.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Password;
    ///
    /// assert_eq!(Password::new("pw").expose(), "pw");
    /// ```
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for sending it to the server.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Password;
    ///
    /// assert_eq!(Password::new("pw").expose(), "pw");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

// ---------------------------------------------------------------------------------------------
// Node addresses
// ---------------------------------------------------------------------------------------------

/// One entry of `nodes`: `host:port`, `[ipv6]:port`, or a `redis://` / `rediss://` URL
/// (`redis://[user:password@]host[:port][/0]`; the port defaults to 6379).
///
/// `Display` prints `host:port` (IPv6 in brackets) and never the credentials; `Debug` prints
/// the password as `"***"`. Percent-escapes (`%40`) in URL credentials are decoded.
///
/// # Examples
///
/// ```
/// use slotline_client::config::NodeAddr;
///
/// let a: NodeAddr = "redis://writer:p%40ss@10.0.0.5:7000".parse()?;
/// assert_eq!((a.host(), a.port(), a.is_tls()), ("10.0.0.5", 7000, false));
/// assert_eq!(a.username(), Some("writer"));
/// assert_eq!(a.password().map(|p| p.expose()), Some("p@ss"));
/// assert_eq!(a.to_string(), "10.0.0.5:7000");
///
/// let v6: NodeAddr = "[::1]:7001".parse()?;
/// assert_eq!((v6.host(), v6.to_string().as_str()), ("::1", "[::1]:7001"));
/// # Ok::<(), slotline_client::config::NodeAddrError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    host: String,
    port: u16,
    tls: bool,
    username: Option<String>,
    password: Option<Password>,
}

impl NodeAddr {
    /// A plain `host:port` address without credentials. An IPv6 host is given without brackets.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// assert_eq!(NodeAddr::new("127.0.0.1", 7000).to_string(), "127.0.0.1:7000");
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> NodeAddr {
        NodeAddr {
            host: host.into(),
            port,
            tls: false,
            username: None,
            password: None,
        }
    }

    /// Host name or IP address (IPv6 without brackets).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// assert_eq!("[::1]:7000".parse::<NodeAddr>()?.host(), "::1");
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// assert_eq!("redis://cache".parse::<NodeAddr>()?.port(), 6379);
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the address was given as `rediss://` (TLS).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// assert!("rediss://cache:6380".parse::<NodeAddr>()?.is_tls());
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL's user name, if it had one.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// assert_eq!("redis://app:pw@cache:6379".parse::<NodeAddr>()?.username(), Some("app"));
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The URL's password, if it had one.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// let a: NodeAddr = "redis://:pw@cache:6379".parse()?;
    /// assert_eq!(a.password().map(|p| p.expose()), Some("pw"));
    /// assert_eq!(a.username(), None);
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn password(&self) -> Option<&Password> {
        self.password.as_ref()
    }

    /// Resolves the address (DNS for host names).
    ///
    /// # Errors
    ///
    /// What the resolver says.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// let addrs = NodeAddr::new("127.0.0.1", 7000).resolve()?;
    /// assert_eq!(addrs[0].port(), 7000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl From<SocketAddr> for NodeAddr {
    fn from(addr: SocketAddr) -> NodeAddr {
        NodeAddr::new(addr.ip().to_string(), addr.port())
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A node address that could not be parsed. The message repeats the input with any
/// credentials replaced by `***`.
///
/// # Examples
///
/// ```
/// use slotline_client::config::NodeAddr;
///
/// let err = "redis://u:secret@host:notaport".parse::<NodeAddr>().unwrap_err();
/// let text = err.to_string();
/// assert!(text.contains("port") && !text.contains("secret"), "{text}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddrError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for NodeAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid node address `{}`: {} (expected `host:port`, `[ipv6]:port` or \
             `redis://[user:password@]host:port`)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for NodeAddrError {}

impl FromStr for NodeAddr {
    type Err = NodeAddrError;

    fn from_str(input: &str) -> Result<NodeAddr, NodeAddrError> {
        let fail = |reason| NodeAddrError {
            input: redact(input),
            reason,
        };
        let s = input.trim();
        let (url, tls, rest) = if let Some(rest) = s.strip_prefix("redis://") {
            (true, false, rest)
        } else if let Some(rest) = s.strip_prefix("rediss://") {
            (true, true, rest)
        } else if s.contains("://") {
            return Err(fail("unsupported scheme (use redis:// or rediss://)"));
        } else {
            (false, false, s)
        };

        let (mut username, mut password) = (None, None);
        let mut authority = rest;
        if url {
            // Path: only database 0 exists in a cluster.
            if let Some(slash) = authority.find('/') {
                let path = &authority[slash..];
                if !matches!(path, "/" | "/0") {
                    return Err(fail(
                        "Redis Cluster has only database 0 (path must be empty or /0)",
                    ));
                }
                authority = &authority[..slash];
            }
            if let Some(at) = authority.rfind('@') {
                let userinfo = &authority[..at];
                authority = &authority[at + 1..];
                let (user, pass) = match userinfo.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (userinfo, None),
                };
                let user = percent_decode(user).ok_or_else(|| fail("bad %-escape in user name"))?;
                if !user.is_empty() {
                    username = Some(user);
                }
                if let Some(pass) = pass {
                    let pass =
                        percent_decode(pass).ok_or_else(|| fail("bad %-escape in password"))?;
                    password = Some(Password(pass));
                }
            }
        } else if authority.contains('@') || authority.contains('/') {
            return Err(fail("credentials or a path need a redis:// URL"));
        }

        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| fail("missing `]` after an IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(fail("not an IPv6 address inside `[...]`"));
            }
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(fail("unexpected text after `]`")),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(fail(
                        "an IPv6 address must be written in brackets: `[::1]:7000`",
                    ))
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(fail("missing host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("host contains whitespace"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| fail("port must be a number in 1..=65535"))?,
            None if url => DEFAULT_PORT,
            None => return Err(fail("missing `:port`")),
        };
        Ok(NodeAddr {
            host: host.to_owned(),
            port,
            tls,
            username,
            password,
        })
    }
}

impl<'de> Deserialize<'de> for NodeAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeAddrVisitor;
        impl Visitor<'_> for NodeAddrVisitor {
            type Value = NodeAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node address such as `127.0.0.1:7000` or `redis://host:port`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NodeAddr, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(NodeAddrVisitor)
    }
}

/// The input with any URL credentials replaced by `***`, for error messages.
fn redact(input: &str) -> String {
    match (input.find("://"), input.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &input[..scheme_end + 3], &input[at..])
        }
        (None, Some(at)) => format!("***{}", &input[at..]),
        _ => input.to_owned(),
    }
}

/// Decodes `%XX` escapes; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// A duration string that could not be parsed.
///
/// # Examples
///
/// ```
/// use slotline_client::config::parse_duration;
///
/// let err = parse_duration("fast").unwrap_err();
/// assert!(err.to_string().contains("fast"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration `{}`: {} (expected a number and a unit, such as `500ms`, `2s`, \
             `1.5s` or `2m`; units: ns, us, ms, s, m, h)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration written as a decimal number and a unit: `ns`, `us` (or `µs`), `ms`, `s`,
/// `m` or `h`. A fraction is allowed (`1.5s`); the result is exact to the nanosecond
/// (digits beyond are truncated).
///
/// # Errors
///
/// [`DurationError`] for a missing number, a missing or unknown unit, or a value that does
/// not fit in a [`Duration`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::parse_duration;
///
/// assert_eq!(parse_duration("300s")?, Duration::from_secs(300));
/// assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
/// assert_eq!(parse_duration("2m")?, Duration::from_secs(120));
/// assert_eq!(parse_duration("1.5s")?, Duration::from_millis(1500));
/// assert!(parse_duration("300").is_err()); // no unit
/// # Ok::<(), slotline_client::config::DurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(fail("missing number"));
    }
    let nanos_per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(fail("missing unit")),
        _ => return Err(fail("unknown unit")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(fail("malformed number"));
    }
    let mut nanos: u128 = 0;
    if !whole.is_empty() {
        let whole: u128 = whole.parse().map_err(|_| fail("number too large"))?;
        nanos = whole
            .checked_mul(nanos_per_unit)
            .ok_or_else(|| fail("number too large"))?;
    }
    // Each fractional digit contributes digit × unit / 10^k; stop once below one nanosecond.
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos += u128::from(digit - b'0') * scale;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| fail("number too large"))?;
    // The remainder is below 10^9, so it fits in u32.
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// `deserialize_with` for duration fields. The error is raised inside the visitor so that the
/// YAML parser prefixes it with the full key path (`redis_pool.dial_timeout: ...`).
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as `500ms`, `2s`, `1.5s` or `2m`")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_accepts_every_unit_and_fractions() {
        let cases = [
            ("1ns", Duration::from_nanos(1)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("0.5ms", Duration::from_micros(500)),
            (" 2s ", Duration::from_secs(2)),
            ("1.25s", Duration::from_millis(1250)),
            (".5s", Duration::from_millis(500)),
            ("3.s", Duration::from_secs(3)),
            ("1.5m", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("0s", Duration::ZERO),
            ("1.0000000001s", Duration::from_secs(1)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "input={input:?}");
        }
    }

    #[test]
    fn parse_duration_rejects_malformed_input_without_panicking() {
        for input in [
            "",
            "s",
            "fast",
            "10",
            "1.2.3s",
            "-1s",
            "1 s",
            "1sec",
            "1e3ms",
            ".s",
            "99999999999999999999999999999999999999999h",
            "18446744073709551616s",
        ] {
            assert!(parse_duration(input).is_err(), "input={input:?}");
        }
    }

    #[test]
    fn node_addr_parses_plain_ipv6_and_urls() {
        let a: NodeAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!((a.host(), a.port(), a.is_tls()), ("127.0.0.1", 7000, false));
        let a: NodeAddr = "[::1]:7000".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("::1", 7000));
        let a: NodeAddr = "redis://[::1]".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("::1", 6379));
        let a: NodeAddr = "rediss://u:p@h.example:6380/0".parse().unwrap();
        assert_eq!((a.host(), a.port(), a.is_tls()), ("h.example", 6380, true));
        assert_eq!(a.username(), Some("u"));
        assert_eq!(a.password().unwrap().expose(), "p");
    }

    #[test]
    fn node_addr_rejects_bad_input_with_a_reason() {
        for (input, reason) in [
            ("127.0.0.1", "missing `:port`"),
            ("127.0.0.1:0", "port must be"),
            ("127.0.0.1:99999", "port must be"),
            ("::1:7000", "brackets"),
            ("[::1:7000", "missing `]`"),
            ("[nothost]:7000", "not an IPv6"),
            ("http://h:1", "unsupported scheme"),
            ("redis://h:1/3", "database 0"),
            ("redis://:7000", "missing host"),
            ("u:p@h:1", "need a redis:// URL"),
            ("redis://u:%zz@h:1", "%-escape"),
        ] {
            let err = input.parse::<NodeAddr>().unwrap_err().to_string();
            assert!(err.contains(reason), "input={input:?} err={err}");
        }
    }

    #[test]
    fn node_addr_error_and_debug_never_show_the_password() {
        let err = "redis://u:topsecret@h:x".parse::<NodeAddr>().unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let a: NodeAddr = "redis://u:topsecret@h:1".parse().unwrap();
        assert!(!format!("{a:?}").contains("topsecret"));
        assert!(!a.to_string().contains("topsecret"));
    }

    #[test]
    fn quoted_strings_in_parser_messages_are_hidden() {
        assert_eq!(
            hide_quoted_strings(r#"auth: invalid type: string "pw\"x", expected struct Auth"#),
            "auth: invalid type: string (value not shown), expected struct Auth"
        );
        assert_eq!(
            hide_quoted_strings(r#"a string "x" and string "y\\" end"#),
            "a string (value not shown) and string (value not shown) end"
        );
        assert_eq!(
            hide_quoted_strings(r#"cut string "abc"#),
            "cut string (value not shown)"
        );
        assert_eq!(
            hide_quoted_strings("unknown field `x`"),
            "unknown field `x`"
        );
        let err = Config::from_yaml_str("auth: hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(err.key(), Some("auth"));
    }

    #[test]
    fn backpressure_limit_rounds_up_and_never_exceeds_capacity() {
        let mut c = Config::default();
        c.shard_config.ring_buffer_capacity = 10;
        c.backpressure.threshold_percent = 1;
        assert_eq!(c.backpressure_limit(), 1);
        c.backpressure.threshold_percent = 100;
        assert_eq!(c.backpressure_limit(), 10);
        c.backpressure.threshold_percent = 55;
        assert_eq!(c.backpressure_limit(), 6);
    }
}
