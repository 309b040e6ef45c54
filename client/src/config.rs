//! The client's configuration: every bound on the write path, read from YAML.
//!
//! The file has the sections of the project's template (`geo_shard_client.yaml` at the
//! repository root documents every key):
//!
//! | section | keys | what they bound |
//! |---|---|---|
//! | `shard_config` | `total_shards`, `ring_buffer_capacity`, `routing_algorithm` | the metrics grouping, and how many pending writes each master's ring holds ([`Config::master_capacity`]) |
//! | `redis_pool` | `io_threads`, `idle_timeout`, `dial_timeout`, `read_timeout`, `write_timeout` | the I/O threads, and how long a connection may connect, stall or sit idle |
//! | `backpressure` | `enabled`, `threshold_percent`, `max_pending_bytes`, `fallback_strategy` | what a commit does when its master's queue is at the threshold (ops or bytes) |
//! | `tcp_tuning` | `so_rcvbuf`, `so_sndbuf`, `tcp_nodelay` | the kernel's socket buffers, set explicitly |
//! | `nodes` | a list of `host:port` or `redis://` URLs | where the cluster is first asked for its topology |
//! | `ack` | `replicas`, `timeout` | `WAIT replicas timeout` after each batch when `replicas > 0` |
//! | `batching` | `max_batch`, `pipeline_depth`, `p95_budget` | how many writes one pipelined batch carries, and how many batches are in flight per connection |
//! | `commit` | `timeout` | the default deadline of one commit, from the call to its ACK |
//! | `auth` | `username`, `password` | `AUTH` sent on every new connection |
//! | `tls` | `enabled`, `ca_file`, `server_name`, `client_cert_file`, `client_key_file` | TLS on every connection, the nodes' certificates always verified |
//!
//! Slotline keeps exactly one pipelined connection per master, served by a few event-loop
//! I/O threads (`redis_pool.io_threads`), and one bounded queue of pending writes per master.
//! The keys `redis_pool.max_idle` and `redis_pool.max_active` of earlier versions are gone:
//! a file that sets either is rejected with an error that says so.
//!
//! Every key is optional: a missing key takes the template's value ([`Config::default`]).
//! Unknown keys are errors, and so are values out of range; a [`ConfigError`] always names the
//! key (`backpressure.threshold_percent`, `redis_pool.dial_timeout`, `nodes[2]`) and the reason.
//!
//! Durations are written with a unit, and several may be combined: `500ms`, `2s`, `1.5s`,
//! `2m`, `1m 30s` (see [`parse_duration`]).
//!
//! A service that configures itself in code uses [`Config::builder`]: one setter per key,
//! and [`ConfigBuilder::build`] checks the result exactly as a file is checked. The other way,
//! [`Config::to_yaml`] writes a configuration as a file that reads back equal (passwords
//! included, in plain text).
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
use serde::{Deserialize, Serialize, Serializer};
use slotline_router::Addr;
use url::{Host, Url};

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
/// The largest allowed `redis_pool.io_threads`.
pub const MAX_IO_THREADS: usize = 64;
/// The most I/O threads `redis_pool.io_threads: 0` (auto) resolves to.
pub const AUTO_IO_THREADS_MAX: usize = 4;
/// The largest allowed `batching.pipeline_depth`.
pub const MAX_PIPELINE_DEPTH: usize = 64;
/// The smallest allowed `backpressure.max_pending_bytes` (1 KiB).
pub const MIN_PENDING_BYTES: u64 = 1024;
/// The largest allowed `backpressure.max_pending_bytes` (1 TiB).
pub const MAX_PENDING_BYTES: u64 = 1 << 40;

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
    /// [`Config::to_yaml`] could not write a value so that it reads back the same.
    Serialize {
        /// What could not be written; it starts with the key path (`tls.ca_file: ...`,
        /// `nodes[1]: ...`) when it is known. It never contains a password.
        message: String,
    },
}

impl ConfigError {
    /// The key path the error is about, when it is known separately from the message.
    ///
    /// [`ConfigError::Invalid`] always has one; for [`ConfigError::Parse`] and
    /// [`ConfigError::Serialize`] the key path is the start of the message (the YAML parser
    /// reports it there), and this returns that prefix.
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
            ConfigError::Parse { message, .. } | ConfigError::Serialize { message } => {
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
            ConfigError::Io { .. } | ConfigError::Serialize { .. } => {}
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

    fn from_yaml(err: serde_norway::Error) -> Self {
        let location = err.location();
        let mut message = err.to_string();
        // serde_norway appends " at line L column C"; the location is kept in its own fields.
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
            ConfigError::Serialize { message } => {
                write!(f, "cannot write configuration: {message}")
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
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Logical shards: the metrics grouping and the unit of queue capacity.
    pub shard_config: ShardConfig,
    /// I/O threads and connection timeouts.
    pub redis_pool: RedisPool,
    /// What a commit does when its master's queue is (nearly) full.
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
        let config: Config = serde_norway::from_str(yaml).map_err(ConfigError::from_yaml)?;
        config.validate()?;
        Ok(config)
    }

    /// A [`ConfigBuilder`] starting from [`Config::default`], for services that configure
    /// the client in code rather than from a file.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::{Config, FallbackStrategy};
    ///
    /// let config = Config::builder()
    ///     .nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
    ///     .fallback_strategy(FallbackStrategy::Block)
    ///     .commit_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(config.nodes.len(), 2);
    /// assert_eq!(config.backpressure.fallback_strategy, FallbackStrategy::Block);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }

    /// Writes the configuration as YAML that [`Config::from_yaml_str`] reads back as an equal
    /// `Config`.
    ///
    /// Every key is written, in the template's order; optional keys that are not set (in
    /// `auth` and `tls`) are left out. Durations take the form [`parse_duration`] reads, in
    /// whole units (`500ms`, `5m`, `1m 30s`, `1s 500ms`). A seed node is written as
    /// `host:port` (`[ipv6]:port`), or as a `redis://` / `rediss://` URL when it was given as
    /// `rediss://` or with credentials. The removed keys `redis_pool.max_idle` and
    /// `redis_pool.max_active` are never written.
    ///
    /// The configuration is written as it is, without [`Config::validate`]: reading back a
    /// configuration that is not valid fails as `validate` does.
    ///
    /// # Secrets
    ///
    /// **The output contains every password in plain text**: `auth.password`, and the
    /// password of each `nodes` URL (percent-escaped, which hides nothing). Unlike `Debug`,
    /// which prints `"***"`, this is meant to be read back. Treat the text as the secret
    /// itself: never log it, and write it only where the passwords may be stored.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Serialize`] naming the key, when a value cannot be written so that it
    /// reads back the same: a `tls` file path that is not UTF-8, or a node built in code
    /// whose host the parser would not keep as it is (such as
    /// `NodeAddr::new("no such host", 7000)`, or an IPv6 address not in its shortest form).
    /// Nodes parsed from text, and every other value, can always be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder()
    ///     .node("rediss://writer:s3cret@10.0.0.5:7000")
    ///     .idle_timeout(Duration::from_secs(90))
    ///     .build()?;
    /// let yaml = config.to_yaml()?;
    /// assert!(yaml.contains("idle_timeout: 1m 30s"), "{yaml}");
    /// // The password is in the text: it has to be, to read back.
    /// assert!(yaml.contains("rediss://writer:s3cret@10.0.0.5:7000"), "{yaml}");
    /// assert!(!yaml.contains("max_idle"));
    /// assert_eq!(Config::from_yaml_str(&yaml)?, config);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        // The values serde would refuse, checked first so that the error names the key.
        let tls_paths = [
            ("tls.ca_file", &self.tls.ca_file),
            ("tls.client_cert_file", &self.tls.client_cert_file),
            ("tls.client_key_file", &self.tls.client_key_file),
        ];
        for (key, path) in tls_paths {
            if path.as_deref().is_some_and(|p| p.to_str().is_none()) {
                return Err(ConfigError::Serialize {
                    message: format!("{key}: the path is not UTF-8, which YAML cannot hold"),
                });
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            node.to_config_string()
                .map_err(|reason| ConfigError::Serialize {
                    message: format!("nodes[{i}]: {reason}"),
                })?;
        }
        // Cannot fail after the checks above: every other value is a number, a bool, an enum
        // or a UTF-8 string, and every map key a field name.
        serde_norway::to_string(self).map_err(|err| ConfigError::Serialize {
            message: hide_quoted_strings(&err.to_string()),
        })
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
            "redis_pool.io_threads",
            p.io_threads as u64,
            0,
            MAX_IO_THREADS as u64,
        )?;
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
        in_range(
            "backpressure.max_pending_bytes",
            self.backpressure.max_pending_bytes,
            MIN_PENDING_BYTES,
            MAX_PENDING_BYTES,
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
        in_range(
            "batching.pipeline_depth",
            self.batching.pipeline_depth as u64,
            1,
            MAX_PIPELINE_DEPTH as u64,
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

    /// The number of event-loop I/O threads the client runs: `redis_pool.io_threads`, or when
    /// it is 0 (auto), half of [`std::thread::available_parallelism`], clamped to
    /// `1..=`[`AUTO_IO_THREADS_MAX`] (1 when the parallelism cannot be read). Always at least 1.
    ///
    /// It never depends on the number of masters: each master's connection is served by one of
    /// these threads, and a thread serves many connections.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, AUTO_IO_THREADS_MAX};
    ///
    /// let mut config = Config::default();
    /// assert_eq!(config.redis_pool.io_threads, 0); // auto
    /// assert!((1..=AUTO_IO_THREADS_MAX).contains(&config.io_threads()));
    /// config.redis_pool.io_threads = 6;
    /// assert_eq!(config.io_threads(), 6);
    /// ```
    pub fn io_threads(&self) -> usize {
        match self.redis_pool.io_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .clamp(1, AUTO_IO_THREADS_MAX),
            n => n,
        }
    }

    /// The capacity of the ring of pending writes of a master that serves `owned_slots` of the
    /// 16384 hash slots:
    /// `ceil(ring_buffer_capacity × total_shards × owned_slots / 16384)`, and at least
    /// `ring_buffer_capacity`.
    ///
    /// The masters' capacities add up to about `total_shards × ring_buffer_capacity` for the
    /// whole cluster, shared out by the slots each master serves. `owned_slots` above 16384 is
    /// taken as 16384; the arithmetic saturates, and the result is never more than
    /// `ring_buffer_capacity × total_shards` (at most
    /// [`MAX_RING_BUFFER_CAPACITY`]` × total_shards` in a validated configuration).
    ///
    /// Memory: about 100 bytes per ring slot, plus the queued commands themselves, which
    /// `backpressure.max_pending_bytes` bounds per master.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::default(); // 64 shards × 4096
    /// assert_eq!(config.master_capacity(16384), 262_144); // one master serves every slot
    /// assert_eq!(config.master_capacity(5461), 87_376); // a third of the slots: 16 per slot
    /// assert_eq!(config.master_capacity(1), 4096); // never below ring_buffer_capacity
    /// assert_eq!(config.master_capacity(0), 4096);
    /// ```
    pub fn master_capacity(&self, owned_slots: usize) -> usize {
        let per_shard = self.shard_config.ring_buffer_capacity as u128;
        let shards = u128::from(self.shard_config.total_shards);
        let slots = owned_slots.min(SLOT_COUNT as usize) as u128;
        // ≤ 2^64 × 2^32 × 2^14: cannot overflow u128.
        let share = (per_shard * shards * slots).div_ceil(u128::from(SLOT_COUNT));
        let capacity = share.max(per_shard);
        usize::try_from(capacity).unwrap_or(usize::MAX)
    }

    /// The number of pending writes at which a queue of `capacity` counts as full for
    /// backpressure: `ceil(capacity × threshold_percent / 100)`, at least 1 and at most
    /// `capacity`; or `capacity` itself when backpressure is disabled.
    ///
    /// Pass a master's [`Config::master_capacity`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let mut config = Config::default(); // threshold_percent: 80
    /// assert_eq!(config.backpressure_limit_for(87_376), 69_901); // 80 %, rounded up
    /// assert_eq!(config.backpressure_limit_for(1), 1);
    /// config.backpressure.enabled = false;
    /// assert_eq!(config.backpressure_limit_for(87_376), 87_376);
    /// ```
    pub fn backpressure_limit_for(&self, capacity: usize) -> usize {
        if !self.backpressure.enabled {
            return capacity;
        }
        let percent = self.backpressure.threshold_percent.min(100) as u128;
        let limit = (capacity as u128 * percent).div_ceil(100);
        // limit ≤ capacity, so it fits in usize.
        (limit as usize).clamp(1, capacity.max(1))
    }

    /// The backpressure line of a queue of `ring_buffer_capacity` pending writes:
    /// [`Config::backpressure_limit_for`]`(ring_buffer_capacity)`.
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
        self.backpressure_limit_for(self.shard_config.ring_buffer_capacity)
    }

    /// The number of bytes of queued and in-flight commands (their RESP encoding) at which a
    /// master counts as full for backpressure: `ceil(max_pending_bytes × threshold_percent /
    /// 100)`, at least 1; or `max_pending_bytes` itself when backpressure is disabled. The
    /// byte counterpart of [`Config::backpressure_limit_for`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let mut config = Config::default(); // 64 MiB, 80 %
    /// assert_eq!(config.backpressure_byte_limit(), 53_687_092);
    /// config.backpressure.enabled = false;
    /// assert_eq!(config.backpressure_byte_limit(), 64 << 20);
    /// ```
    pub fn backpressure_byte_limit(&self) -> u64 {
        let budget = self.backpressure.max_pending_bytes;
        if !self.backpressure.enabled {
            return budget;
        }
        let percent = u128::from(self.backpressure.threshold_percent.min(100));
        let limit = (u128::from(budget) * percent).div_ceil(100);
        // limit ≤ budget, so it fits in u64.
        (limit as u64).clamp(1, budget.max(1))
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
// Builder
// ---------------------------------------------------------------------------------------------

/// Builds a [`Config`] in code: one setter per key of the file, named after the key, then
/// [`ConfigBuilder::build`], which checks the result exactly as a file is checked.
///
/// It starts from [`Config::default`] (the template's values, no nodes); a key that is not
/// set keeps its default. Setters never panic: a node address that does not parse is kept
/// as an error and reported by `build`. Where two sections share a key name, the setter
/// carries the section's name too (`ack_timeout`, `commit_timeout`, `backpressure_enabled`,
/// `tls_enabled`). [`ConfigBuilder::with`] changes anything else directly.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::{Config, FallbackStrategy};
///
/// let config = Config::builder()
///     .nodes(["10.0.0.1:7000", "10.0.0.2:7000"])
///     .total_shards(16)
///     .fallback_strategy(FallbackStrategy::Reject)
///     .ack_replicas(1)
///     .ack_timeout(Duration::from_millis(50))
///     .build()?;
/// assert_eq!(config.shard_config.total_shards, 16);
/// assert_eq!(config.ack.replicas, 1);
///
/// // The same checks as a file, with the same key names.
/// let err = Config::builder()
///     .ack_replicas(1)
///     .ack_timeout(Duration::from_secs(2))
///     .commit_timeout(Duration::from_secs(1))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.key(), Some("commit.timeout"));
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConfigBuilder {
    /// The configuration so far; starts as [`Config::default`].
    config: Config,
    /// The first node address that did not parse, returned by `build` before any check.
    error: Option<ConfigError>,
}

impl Default for ConfigBuilder {
    /// A builder starting from [`Config::default`], as [`ConfigBuilder::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, ConfigBuilder};
    ///
    /// assert_eq!(ConfigBuilder::default().build()?, Config::default());
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    fn default() -> Self {
        ConfigBuilder::new()
    }
}

impl ConfigBuilder {
    /// A builder starting from [`Config::default`]; the same as [`Config::builder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, ConfigBuilder};
    ///
    /// assert_eq!(ConfigBuilder::new().build()?, Config::default());
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn new() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
            error: None,
        }
    }

    /// Checks the configuration as [`Config::from_yaml_str`] checks a file
    /// ([`Config::validate`]), and returns it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the key, as the file's key path: `nodes[i]` for the
    /// first node address that did not parse (with the parser's reason), otherwise the first
    /// key [`Config::validate`] rejects, with the same key and reason as for a file with
    /// the same values.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let err = Config::builder().node("127.0.0.1:7000").node("127.0.0.1").build().unwrap_err();
    /// assert_eq!(err.key(), Some("nodes[1]"));
    /// assert!(err.to_string().contains("missing `:port`"), "{err}");
    ///
    /// let err = Config::builder().threshold_percent(0).build().unwrap_err();
    /// let from_file = Config::from_yaml_str("backpressure: { threshold_percent: 0 }").unwrap_err();
    /// assert_eq!(err.to_string(), from_file.to_string());
    /// ```
    pub fn build(self) -> Result<Config, ConfigError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        self.config.validate()?;
        Ok(self.config)
    }

    /// Changes the configuration directly: for anything without a setter, or computed.
    /// `build` checks the result like any other.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder()
    ///     .with(|c| c.tcp_tuning.so_sndbuf = c.tcp_tuning.so_rcvbuf / 2)
    ///     .build()?;
    /// assert_eq!(config.tcp_tuning.so_sndbuf, 2 << 20);
    ///
    /// let err = Config::builder().with(|c| c.batching.max_batch = 0).build().unwrap_err();
    /// assert_eq!(err.key(), Some("batching.max_batch"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    // --- shard_config ---

    /// `shard_config.total_shards`: logical shards, `1..=16384`. Default 64.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert_eq!(Config::builder().total_shards(16).build()?.shard_config.total_shards, 16);
    /// let err = Config::builder().total_shards(0).build().unwrap_err();
    /// assert_eq!(err.key(), Some("shard_config.total_shards"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn total_shards(mut self, total_shards: u32) -> Self {
        self.config.shard_config.total_shards = total_shards;
        self
    }

    /// `shard_config.ring_buffer_capacity`: pending writes per logical shard,
    /// `1..=`[`MAX_RING_BUFFER_CAPACITY`]. Default 4096.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().ring_buffer_capacity(1024).build()?;
    /// assert_eq!(config.shard_config.ring_buffer_capacity, 1024);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn ring_buffer_capacity(mut self, ring_buffer_capacity: usize) -> Self {
        self.config.shard_config.ring_buffer_capacity = ring_buffer_capacity;
        self
    }

    /// `shard_config.routing_algorithm`: how keys map to slots. Default `crc16`, the only one.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, RoutingAlgorithm};
    ///
    /// let config = Config::builder().routing_algorithm(RoutingAlgorithm::Crc16).build()?;
    /// assert_eq!(config.shard_config.routing_algorithm, RoutingAlgorithm::Crc16);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn routing_algorithm(mut self, routing_algorithm: RoutingAlgorithm) -> Self {
        self.config.shard_config.routing_algorithm = routing_algorithm;
        self
    }

    // --- redis_pool ---

    /// `redis_pool.io_threads`: event-loop I/O threads, `0..=`[`MAX_IO_THREADS`]; 0 = auto
    /// (see [`Config::io_threads`]). Default 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert_eq!(Config::builder().io_threads(2).build()?.io_threads(), 2);
    /// let err = Config::builder().io_threads(65).build().unwrap_err();
    /// assert_eq!(err.key(), Some("redis_pool.io_threads"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn io_threads(mut self, io_threads: usize) -> Self {
        self.config.redis_pool.io_threads = io_threads;
        self
    }

    /// `redis_pool.idle_timeout`: an idle master connection is closed after this long; must
    /// be longer than zero. Default 300 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().idle_timeout(Duration::from_secs(60)).build()?;
    /// assert_eq!(config.redis_pool.idle_timeout, Duration::from_secs(60));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.config.redis_pool.idle_timeout = idle_timeout;
        self
    }

    /// `redis_pool.dial_timeout`: limit on connect, TLS handshake and `AUTH`; must be longer
    /// than zero. Default 2 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().dial_timeout(Duration::from_millis(800)).build()?;
    /// assert_eq!(config.redis_pool.dial_timeout, Duration::from_millis(800));
    /// let err = Config::builder().dial_timeout(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.key(), Some("redis_pool.dial_timeout"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn dial_timeout(mut self, dial_timeout: Duration) -> Self {
        self.config.redis_pool.dial_timeout = dial_timeout;
        self
    }

    /// `redis_pool.read_timeout`: how long a connection may make no progress past its oldest
    /// command's deadline; must be longer than zero. Default 500 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().read_timeout(Duration::from_secs(1)).build()?;
    /// assert_eq!(config.redis_pool.read_timeout, Duration::from_secs(1));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn read_timeout(mut self, read_timeout: Duration) -> Self {
        self.config.redis_pool.read_timeout = read_timeout;
        self
    }

    /// `redis_pool.write_timeout`: the write timeout of the topology refresh's blocking
    /// connections; must be longer than zero. Default 500 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().write_timeout(Duration::from_secs(1)).build()?;
    /// assert_eq!(config.redis_pool.write_timeout, Duration::from_secs(1));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn write_timeout(mut self, write_timeout: Duration) -> Self {
        self.config.redis_pool.write_timeout = write_timeout;
        self
    }

    // --- backpressure ---

    /// `backpressure.enabled`: apply the fallback strategy at `threshold_percent` (true) or
    /// only when a queue is completely full (false). Default true.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().backpressure_enabled(false).build()?;
    /// assert!(!config.backpressure.enabled);
    /// assert_eq!(config.backpressure_limit(), 4096); // the whole ring
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn backpressure_enabled(mut self, enabled: bool) -> Self {
        self.config.backpressure.enabled = enabled;
        self
    }

    /// `backpressure.threshold_percent`: the fill level, `1..=100`, at which a master's queue
    /// counts as full. Default 80.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().threshold_percent(50).build()?;
    /// assert_eq!(config.backpressure_limit(), 2048);
    /// let err = Config::builder().threshold_percent(101).build().unwrap_err();
    /// assert_eq!(err.key(), Some("backpressure.threshold_percent"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn threshold_percent(mut self, threshold_percent: u32) -> Self {
        self.config.backpressure.threshold_percent = threshold_percent;
        self
    }

    /// `backpressure.max_pending_bytes`: per-master budget of queued and in-flight commands,
    /// [`MIN_PENDING_BYTES`]`..=`[`MAX_PENDING_BYTES`]. Default 64 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().max_pending_bytes(16 << 20).build()?;
    /// assert_eq!(config.backpressure.max_pending_bytes, 16 << 20);
    /// let err = Config::builder().max_pending_bytes(10).build().unwrap_err();
    /// assert_eq!(err.key(), Some("backpressure.max_pending_bytes"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn max_pending_bytes(mut self, max_pending_bytes: u64) -> Self {
        self.config.backpressure.max_pending_bytes = max_pending_bytes;
        self
    }

    /// `backpressure.fallback_strategy`: what a commit does when its master's queue is full.
    /// Default [`FallbackStrategy::DropOldest`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, FallbackStrategy};
    ///
    /// let config = Config::builder().fallback_strategy(FallbackStrategy::Block).build()?;
    /// assert_eq!(config.backpressure.fallback_strategy, FallbackStrategy::Block);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn fallback_strategy(mut self, fallback_strategy: FallbackStrategy) -> Self {
        self.config.backpressure.fallback_strategy = fallback_strategy;
        self
    }

    // --- tcp_tuning ---

    /// `tcp_tuning.so_rcvbuf`: `SO_RCVBUF` in bytes,
    /// [`MIN_SOCKET_BUFFER`]`..=`[`MAX_SOCKET_BUFFER`]. Default 4 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().so_rcvbuf(1 << 20).build()?;
    /// assert_eq!(config.tcp_tuning.so_rcvbuf, 1 << 20);
    /// let err = Config::builder().so_rcvbuf(100).build().unwrap_err();
    /// assert_eq!(err.key(), Some("tcp_tuning.so_rcvbuf"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn so_rcvbuf(mut self, so_rcvbuf: usize) -> Self {
        self.config.tcp_tuning.so_rcvbuf = so_rcvbuf;
        self
    }

    /// `tcp_tuning.so_sndbuf`: `SO_SNDBUF` in bytes,
    /// [`MIN_SOCKET_BUFFER`]`..=`[`MAX_SOCKET_BUFFER`]. Default 4 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().so_sndbuf(1 << 20).build()?;
    /// assert_eq!(config.tcp_tuning.so_sndbuf, 1 << 20);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn so_sndbuf(mut self, so_sndbuf: usize) -> Self {
        self.config.tcp_tuning.so_sndbuf = so_sndbuf;
        self
    }

    /// `tcp_tuning.tcp_nodelay`: `TCP_NODELAY` (Nagle off). Default true.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert!(!Config::builder().tcp_nodelay(false).build()?.tcp_tuning.tcp_nodelay);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn tcp_nodelay(mut self, tcp_nodelay: bool) -> Self {
        self.config.tcp_tuning.tcp_nodelay = tcp_nodelay;
        self
    }

    // --- nodes ---

    /// `nodes`: replaces the seed nodes with these, each a [`NodeAddr`] or text that parses
    /// as one (`host:port`, `[ipv6]:port`, `redis://` / `rediss://` URL).
    ///
    /// An address that does not parse is left out, and `build` reports the first one as
    /// [`ConfigError::Invalid`] with the key `nodes[i]` (its index here) and the parser's
    /// reason; the message never shows a password.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::{Config, NodeAddr};
    ///
    /// let config = Config::builder()
    ///     .nodes(["127.0.0.1:7000", "redis://app:pw@127.0.0.1:7001"])
    ///     .build()?;
    /// assert_eq!(config.nodes[1].username(), Some("app"));
    ///
    /// let config = Config::builder().nodes([NodeAddr::new("::1", 7000)]).build()?;
    /// assert_eq!(config.nodes[0].to_string(), "[::1]:7000");
    ///
    /// let err = Config::builder().nodes(["h:1", "redis://u:secret@h:x"]).build().unwrap_err();
    /// assert_eq!(err.key(), Some("nodes[1]"));
    /// assert!(!err.to_string().contains("secret"), "{err}");
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn nodes<I>(mut self, nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: TryInto<NodeAddr>,
        <I::Item as TryInto<NodeAddr>>::Error: fmt::Display,
    {
        let mut parsed = Vec::new();
        for (index, addr) in nodes.into_iter().enumerate() {
            parsed.extend(self.parse_node(index, addr));
        }
        self.config.nodes = parsed;
        self
    }

    /// `nodes`: adds one seed node after those already set, a [`NodeAddr`] or text that
    /// parses as one. An address that does not parse is reported by `build`, as for
    /// [`ConfigBuilder::nodes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder()
    ///     .node("127.0.0.1:7000")
    ///     .node("redis://app:pw@127.0.0.1:7001")
    ///     .build()?;
    /// assert_eq!(config.nodes.len(), 2);
    /// assert_eq!(config.nodes[1].username(), Some("app"));
    ///
    /// let err = Config::builder().node("localhost").build().unwrap_err();
    /// assert_eq!(err.key(), Some("nodes[0]"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn node<A>(mut self, addr: A) -> Self
    where
        A: TryInto<NodeAddr>,
        A::Error: fmt::Display,
    {
        let index = self.config.nodes.len();
        if let Some(node) = self.parse_node(index, addr) {
            self.config.nodes.push(node);
        }
        self
    }

    /// `addr` as a node, or `None` after keeping its error (the first one) for `build`.
    fn parse_node<A>(&mut self, index: usize, addr: A) -> Option<NodeAddr>
    where
        A: TryInto<NodeAddr>,
        A::Error: fmt::Display,
    {
        match addr.try_into() {
            Ok(node) => Some(node),
            Err(err) => {
                self.error.get_or_insert_with(|| {
                    ConfigError::invalid(format!("nodes[{index}]"), err.to_string())
                });
                None
            }
        }
    }

    // --- ack ---

    /// `ack.replicas`: replicas that must confirm each batch (`WAIT`); 0 = the master's
    /// reply is the ACK. Default 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert_eq!(Config::builder().ack_replicas(2).build()?.ack.replicas, 2);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn ack_replicas(mut self, replicas: u32) -> Self {
        self.config.ack.replicas = replicas;
        self
    }

    /// `ack.timeout`: `WAIT`'s timeout; with `ack.replicas > 0` it must be longer than zero
    /// and shorter than `commit.timeout`. Default 100 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let builder = || Config::builder().ack_replicas(1);
    /// let config = builder().ack_timeout(Duration::from_millis(250)).build()?;
    /// assert_eq!(config.ack.timeout, Duration::from_millis(250));
    /// let err = builder().ack_timeout(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.key(), Some("ack.timeout"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack.timeout = timeout;
        self
    }

    // --- batching ---

    /// `batching.max_batch`: writes per pipelined batch, `1..=`[`MAX_BATCH`]. Default 512.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert_eq!(Config::builder().max_batch(64).build()?.batching.max_batch, 64);
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.config.batching.max_batch = max_batch;
        self
    }

    /// `batching.pipeline_depth`: batches in flight per connection,
    /// `1..=`[`MAX_PIPELINE_DEPTH`]. Default 4.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// assert_eq!(Config::builder().pipeline_depth(1).build()?.batching.pipeline_depth, 1);
    /// let err = Config::builder().pipeline_depth(0).build().unwrap_err();
    /// assert_eq!(err.key(), Some("batching.pipeline_depth"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn pipeline_depth(mut self, pipeline_depth: usize) -> Self {
        self.config.batching.pipeline_depth = pipeline_depth;
        self
    }

    /// `batching.p95_budget`: above this p95 commit latency a master's batches shrink; must
    /// be longer than zero. Default 15 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().p95_budget(Duration::from_millis(5)).build()?;
    /// assert_eq!(config.batching.p95_budget, Duration::from_millis(5));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn p95_budget(mut self, p95_budget: Duration) -> Self {
        self.config.batching.p95_budget = p95_budget;
        self
    }

    // --- commit ---

    /// `commit.timeout`: the default deadline of one commit; longer than zero, and longer
    /// than `ack.timeout` when `ack.replicas > 0`. Default 1 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().commit_timeout(Duration::from_secs(3)).build()?;
    /// assert_eq!(config.commit.timeout, Duration::from_secs(3));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn commit_timeout(mut self, timeout: Duration) -> Self {
        self.config.commit.timeout = timeout;
        self
    }

    // --- auth ---

    /// `auth.username`: ACL user name for `AUTH`; needs [`ConfigBuilder::password`].
    /// Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().username("writer").password("s3cret").build()?;
    /// assert_eq!(config.auth.username.as_deref(), Some("writer"));
    /// let err = Config::builder().username("writer").build().unwrap_err();
    /// assert_eq!(err.key(), Some("auth.password"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.auth.username = Some(username.into());
        self
    }

    /// `auth.password`: the password for `AUTH`; `Debug` never prints it. Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().password("s3cret").build()?;
    /// assert_eq!(config.auth.password.as_ref().map(|p| p.expose()), Some("s3cret"));
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.config.auth.password = Some(password.into());
        self
    }

    // --- tls ---

    /// `tls.enabled`: TLS on every connection (a `rediss://` node turns it on too). With TLS
    /// on, `build` reads and checks the certificate files. Default false.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let err = Config::builder()
    ///     .tls_enabled(true)
    ///     .ca_file("/no/such/ca.pem")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.key(), Some("tls.ca_file"));
    /// ```
    pub fn tls_enabled(mut self, enabled: bool) -> Self {
        self.config.tls.enabled = enabled;
        self
    }

    /// `tls.ca_file`: PEM file with the CA certificate(s) that signed the nodes'
    /// certificates. Default none (the system's trust store).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use slotline_client::config::Config;
    ///
    /// // Read only when TLS is on.
    /// let config = Config::builder().ca_file("/etc/redis/ca.pem").build()?;
    /// assert_eq!(config.tls.ca_file.as_deref(), Some(Path::new("/etc/redis/ca.pem")));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.config.tls.ca_file = Some(ca_file.into());
        self
    }

    /// `tls.server_name`: the name the nodes' certificates are checked against instead of
    /// each node's host. Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder().server_name("redis.internal.example").build()?;
    /// assert_eq!(config.tls.server_name.as_deref(), Some("redis.internal.example"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn server_name(mut self, server_name: impl Into<String>) -> Self {
        self.config.tls.server_name = Some(server_name.into());
        self
    }

    /// `tls.client_cert_file`: PEM file with the client certificate for mutual TLS; needs
    /// [`ConfigBuilder::client_key_file`]. Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let config = Config::builder()
    ///     .client_cert_file("/etc/redis/client.crt")
    ///     .client_key_file("/etc/redis/client.key")
    ///     .build()?;
    /// assert!(config.tls.client_cert_file.is_some());
    /// let err = Config::builder().client_cert_file("/etc/redis/client.crt").build().unwrap_err();
    /// assert_eq!(err.key(), Some("tls.client_key_file"));
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn client_cert_file(mut self, client_cert_file: impl Into<PathBuf>) -> Self {
        self.config.tls.client_cert_file = Some(client_cert_file.into());
        self
    }

    /// `tls.client_key_file`: PEM file with the client certificate's private key; needs
    /// [`ConfigBuilder::client_cert_file`]. Default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Config;
    ///
    /// let err = Config::builder().client_key_file("/etc/redis/client.key").build().unwrap_err();
    /// assert_eq!(err.key(), Some("tls.client_cert_file"));
    /// ```
    pub fn client_key_file(mut self, client_key_file: impl Into<PathBuf>) -> Self {
        self.config.tls.client_key_file = Some(client_key_file.into());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

/// `shard_config`: logical shards, the metrics grouping and the unit of queue capacity.
///
/// A logical shard is a contiguous range of the 16384 hash slots (`16384 / total_shards`
/// each). Shards group the metrics, and they size the queues: each master gets one bounded
/// ring of pending writes whose capacity is its share of `total_shards ×
/// ring_buffer_capacity`, by the slots it serves ([`Config::master_capacity`]), so the whole
/// cluster holds about `total_shards × ring_buffer_capacity` pending writes however many
/// masters there are.
///
/// Memory: about 100 bytes per ring slot (so about `total_shards × ring_buffer_capacity ×
/// 100` bytes for the cluster, 25 MiB with the defaults), plus the queued commands themselves,
/// bounded per master by `backpressure.max_pending_bytes`.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{Config, RoutingAlgorithm, ShardConfig};
///
/// let s = ShardConfig::default();
/// assert_eq!((s.total_shards, s.ring_buffer_capacity), (64, 4096));
/// assert_eq!(s.routing_algorithm, RoutingAlgorithm::Crc16);
///
/// // Three masters with 5461, 5462 and 5461 slots share 64 × 4096 pending writes.
/// let config = Config::default();
/// let total: usize = [5461, 5462, 5461].map(|slots| config.master_capacity(slots)).iter().sum();
/// assert_eq!(total, 262_144);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// Number of logical shards, `1..=16384`; each is a contiguous range of the 16384 hash
    /// slots, one group of the metrics, and one unit of queue capacity. Default 64.
    pub total_shards: u32,
    /// Pending writes per logical shard, `1..=16777216`: a master's ring holds this many times
    /// the number of shards' worth of slots it serves, and at least this many
    /// ([`Config::master_capacity`]). Default 4096.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoutingAlgorithm {
    /// CRC-16/XMODEM of the key's hash tag, modulo 16384: exactly Redis Cluster's `keyHashSlot`,
    /// so a write goes straight to the node that owns its slot.
    #[default]
    Crc16,
}

/// `redis_pool`: the I/O threads, and how long a connection may connect, stall or sit idle.
///
/// Slotline keeps exactly one pipelined connection per master, served by `io_threads`
/// event loops. The keys `max_idle` and `max_active` of earlier versions no longer exist: a
/// file that sets either is rejected with a [`ConfigError`] naming the key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::{Config, RedisPool};
///
/// let p = RedisPool::default();
/// assert_eq!(p.io_threads, 0); // auto: see Config::io_threads
/// assert_eq!(p.dial_timeout, Duration::from_secs(2));
/// assert_eq!(p.idle_timeout, Duration::from_secs(300));
///
/// let c = Config::from_yaml_str("redis_pool: { io_threads: 2, idle_timeout: 1m 30s }")?;
/// assert_eq!(c.io_threads(), 2);
/// assert_eq!(c.redis_pool.idle_timeout, Duration::from_secs(90));
///
/// let err = Config::from_yaml_str("redis_pool: { max_active: 64 }").unwrap_err();
/// assert_eq!(err.key(), Some("redis_pool.max_active"));
/// assert!(err.to_string().contains("delete the key"), "{err}");
/// # Ok::<(), slotline_client::ConfigError>(())
/// ```
// `Deserialize` is written by hand (below) for the removed keys; `Serialize` writes only the
// keys that exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedisPool {
    /// Event-loop I/O threads that serve the masters' connections, `0..=64`; 0 = auto: half
    /// the machine's available parallelism, clamped to `1..=4` (see [`Config::io_threads`]).
    /// The count never depends on the number of masters. Memory: one thread each (its stack
    /// and event buffer), small next to the queues. Default 0.
    pub io_threads: usize,
    /// A master connection with nothing queued or in flight for this long is closed; the next
    /// write to that master reopens it. Must be longer than zero. Default `300s`.
    #[serde(serialize_with = "serialize_duration")]
    pub idle_timeout: Duration,
    /// Limit on TCP connect (and on the TLS handshake and `AUTH` during connect). Default `2s`.
    #[serde(serialize_with = "serialize_duration")]
    pub dial_timeout: Duration,
    /// How long a connection may go without progress (no byte read or written) once the
    /// deadline of its oldest outstanding command has passed; past it the node counts as
    /// stalled and the connection is dropped and reopened (its writes fail or are retried as
    /// their errors say). I/O timeouts thus follow from the commits' deadlines. Also the read
    /// timeout of the topology refresh's blocking queries. Default `500ms`.
    #[serde(serialize_with = "serialize_duration")]
    pub read_timeout: Duration,
    /// The write timeout of the topology refresh's blocking connections; the event loops'
    /// writes are bounded by the rule of `read_timeout`. Default `500ms`.
    #[serde(serialize_with = "serialize_duration")]
    pub write_timeout: Duration,
}

impl Default for RedisPool {
    fn default() -> Self {
        RedisPool {
            io_threads: 0,
            idle_timeout: Duration::from_secs(300),
            dial_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(500),
            write_timeout: Duration::from_millis(500),
        }
    }
}

/// The keys of `redis_pool`, as an unknown key's error lists them.
const REDIS_POOL_KEYS: &[&str] = &[
    "io_threads",
    "idle_timeout",
    "dial_timeout",
    "read_timeout",
    "write_timeout",
];

/// A key of `redis_pool` in a file: one of [`REDIS_POOL_KEYS`], or a removed one.
enum RedisPoolKey {
    IoThreads,
    IdleTimeout,
    DialTimeout,
    ReadTimeout,
    WriteTimeout,
    /// `max_idle` or `max_active`: rejected when its value is read, with the reason.
    Removed,
}

impl<'de> Deserialize<'de> for RedisPoolKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RedisPoolKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key of redis_pool")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<RedisPoolKey, E> {
                Ok(match key {
                    "io_threads" => RedisPoolKey::IoThreads,
                    "idle_timeout" => RedisPoolKey::IdleTimeout,
                    "dial_timeout" => RedisPoolKey::DialTimeout,
                    "read_timeout" => RedisPoolKey::ReadTimeout,
                    "write_timeout" => RedisPoolKey::WriteTimeout,
                    "max_idle" | "max_active" => RedisPoolKey::Removed,
                    _ => return Err(E::unknown_field(key, REDIS_POOL_KEYS)),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A duration value read with [`deserialize_duration`].
struct DurationValue(Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_duration(deserializer).map(DurationValue)
    }
}

/// The removed keys `redis_pool.max_idle` and `max_active`: reading one is an error.
struct RemovedValue;

impl<'de> Deserialize<'de> for RemovedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        removed_pool_key(deserializer).map(|()| RemovedValue)
    }
}

/// Written by hand rather than derived so that the removed keys get their own message while
/// an unknown key's error lists only the keys that exist.
impl<'de> Deserialize<'de> for RedisPool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PoolVisitor;
        impl<'de> Visitor<'de> for PoolVisitor {
            type Value = RedisPool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct RedisPool")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RedisPool, A::Error> {
                fn set<T, E: de::Error>(
                    slot: &mut Option<T>,
                    key: &'static str,
                    v: T,
                ) -> Result<(), E> {
                    match slot.replace(v) {
                        Some(_) => Err(E::duplicate_field(key)),
                        None => Ok(()),
                    }
                }
                let (mut io_threads, mut idle, mut dial, mut read, mut write) =
                    (None, None, None, None, None);
                while let Some(key) = map.next_key::<RedisPoolKey>()? {
                    match key {
                        RedisPoolKey::IoThreads => {
                            set(&mut io_threads, "io_threads", map.next_value::<usize>()?)?;
                        }
                        RedisPoolKey::IdleTimeout => {
                            set(
                                &mut idle,
                                "idle_timeout",
                                map.next_value::<DurationValue>()?.0,
                            )?;
                        }
                        RedisPoolKey::DialTimeout => {
                            set(
                                &mut dial,
                                "dial_timeout",
                                map.next_value::<DurationValue>()?.0,
                            )?;
                        }
                        RedisPoolKey::ReadTimeout => {
                            set(
                                &mut read,
                                "read_timeout",
                                map.next_value::<DurationValue>()?.0,
                            )?;
                        }
                        RedisPoolKey::WriteTimeout => {
                            set(
                                &mut write,
                                "write_timeout",
                                map.next_value::<DurationValue>()?.0,
                            )?;
                        }
                        RedisPoolKey::Removed => {
                            map.next_value::<RemovedValue>()?;
                        }
                    }
                }
                let d = RedisPool::default();
                Ok(RedisPool {
                    io_threads: io_threads.unwrap_or(d.io_threads),
                    idle_timeout: idle.unwrap_or(d.idle_timeout),
                    dial_timeout: dial.unwrap_or(d.dial_timeout),
                    read_timeout: read.unwrap_or(d.read_timeout),
                    write_timeout: write.unwrap_or(d.write_timeout),
                })
            }
        }
        deserializer.deserialize_struct("RedisPool", REDIS_POOL_KEYS, PoolVisitor)
    }
}

/// `deserialize_with` for `redis_pool.max_idle` / `max_active`: always an error, whatever
/// the value. It is raised inside the value's visitor so that the YAML parser prefixes it with
/// the key's path (`redis_pool.max_idle: ...`) and the value's position.
fn removed_pool_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    struct RemovedKey;

    macro_rules! reject {
        ($($method:ident($($ty:ty),*)),* $(,)?) => {$(
            fn $method<E: de::Error>(self, $(_: $ty),*) -> Result<(), E> {
                Err(E::custom(REMOVED_POOL_KEY))
            }
        )*};
    }

    impl<'de> Visitor<'de> for RemovedKey {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("nothing: the key has been removed")
        }
        reject!(
            visit_bool(bool),
            visit_i64(i64),
            visit_i128(i128),
            visit_u64(u64),
            visit_u128(u128),
            visit_f64(f64),
            visit_str(&str),
            visit_bytes(&[u8]),
            visit_none(),
            visit_unit(),
        );
        fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
            Err(de::Error::custom(REMOVED_POOL_KEY))
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
            Err(de::Error::custom(REMOVED_POOL_KEY))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(de::Error::custom(REMOVED_POOL_KEY))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(de::Error::custom(REMOVED_POOL_KEY))
        }
        fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(de::Error::custom(REMOVED_POOL_KEY))
        }
    }

    deserializer.deserialize_any(RemovedKey)
}

const REMOVED_POOL_KEY: &str = "this key has been removed: slotline keeps exactly one \
    pipelined connection per master, served by `redis_pool.io_threads` event loops, so there \
    is no pool to size; delete the key";

/// `backpressure`: the line at which a master's queue counts as full, and what happens then.
///
/// Each master has two budgets: the op count of its ring ([`Config::master_capacity`]) and
/// `max_pending_bytes` of queued and in-flight commands. With `enabled`, the line is
/// `threshold_percent` of each ([`Config::backpressure_limit_for`],
/// [`Config::backpressure_byte_limit`]); a queue at either line is full.
///
/// # Examples
///
/// ```
/// use slotline_client::config::{Backpressure, FallbackStrategy};
///
/// let b = Backpressure::default();
/// assert!(b.enabled);
/// assert_eq!(b.threshold_percent, 80);
/// assert_eq!(b.max_pending_bytes, 64 << 20);
/// assert_eq!(b.fallback_strategy, FallbackStrategy::DropOldest);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backpressure {
    /// Apply `fallback_strategy` at `threshold_percent`; when false, only at the full capacity
    /// (or the full `max_pending_bytes`). Default true.
    pub enabled: bool,
    /// Fill level, in percent (`1..=100`) of a master's ring capacity and of
    /// `max_pending_bytes`, at which a master's queue counts as full. Default 80.
    pub threshold_percent: u32,
    /// Per-master budget, in bytes, of the commands queued for it and in flight on its
    /// connection, counted as their RESP encoding; `1024..=1099511627776` (1 KiB to 1 TiB).
    /// This bounds the memory the commands themselves take, per master. Default 67108864
    /// (64 MiB).
    pub max_pending_bytes: u64,
    /// What a commit does when its master's queue is full. Default `drop_oldest` (the
    /// template's choice).
    pub fallback_strategy: FallbackStrategy,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            enabled: true,
            threshold_percent: 80,
            max_pending_bytes: 64 << 20,
            fallback_strategy: FallbackStrategy::DropOldest,
        }
    }
}

/// `backpressure.fallback_strategy`: what a commit does when its master's queue is full.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ack {
    /// Replicas that must confirm (`WAIT replicas timeout` after each batch); 0 = the master's
    /// reply is the ACK. Default 0.
    pub replicas: u32,
    /// `WAIT`'s timeout; must be longer than zero when `replicas > 0` (`WAIT n 0` would block
    /// forever). Default `100ms`.
    #[serde(
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_duration"
    )]
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

/// `batching`: how many pending writes one pipelined batch carries, and how many batches one
/// connection has in flight.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::config::Batching;
///
/// let b = Batching::default();
/// assert_eq!((b.max_batch, b.pipeline_depth), (512, 4));
/// assert_eq!(b.p95_budget, Duration::from_millis(15));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Writes per pipelined batch, `1..=65536`. A connection never waits to fill a batch: it
    /// sends what is pending, up to this many. Default 512.
    pub max_batch: usize,
    /// Pipelined batches one master connection may have in flight at once (sent, replies not
    /// yet read), each up to `max_batch` writes; `1..=64`. 1 = one round trip at a time.
    /// The commands in flight count against `backpressure.max_pending_bytes`. Default 4.
    pub pipeline_depth: usize,
    /// Latency budget: when a master's p95 commit latency goes above it, its batches shrink.
    /// Default `15ms`.
    #[serde(
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_duration"
    )]
    pub p95_budget: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch: 512,
            pipeline_depth: 4,
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
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commit {
    /// Time from the call to the ACK: waiting for room in the queue (`block`), the pipelined
    /// write and `WAIT`. When it passes, the caller gets `CommitError::DeadlineExceeded`.
    /// Must be longer than `ack.timeout` when `ack.replicas > 0`. Default `1s`.
    #[serde(
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_duration"
    )]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// ACL user name; requires `password`. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password; never printed by `Debug`, but written in plain text by
    /// [`Config::to_yaml`]. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Use TLS on every connection. A `rediss://` seed turns it on too. Default false.
    pub enabled: bool,
    /// PEM file with the CA certificate(s) that signed the nodes' certificates; a bundle of
    /// several is accepted. Default none: the system's trust store (`SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, else the operating system's bundle), for nodes with publicly trusted
    /// certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The name the nodes' certificates are checked against, instead of each node's host:
    /// for clusters that announce IP addresses while their certificates carry a DNS name.
    /// A DNS name or an IP address. Default none (each node's own host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM file with the client certificate (and its chain) for mutual TLS, for nodes started
    /// with `tls-auth-clients yes`; needs `client_key_file`. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs
    /// `client_cert_file`. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

/// A password that `Debug` prints as `"***"`.
///
/// **`Serialize` writes the password itself, in plain text**, so that [`Config::to_yaml`]
/// reads back; only `Debug` hides it.
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
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
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

impl From<String> for Password {
    /// Wraps a password, as [`Password::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Password;
    ///
    /// assert_eq!(Password::from(String::from("pw")).expose(), "pw");
    /// ```
    fn from(password: String) -> Password {
        Password(password)
    }
}

impl From<&str> for Password {
    /// Wraps a password, as [`Password::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::Password;
    ///
    /// let p: Password = "pw".into();
    /// assert_eq!(p.expose(), "pw");
    /// ```
    fn from(password: &str) -> Password {
        Password(password.to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Node addresses
// ---------------------------------------------------------------------------------------------

/// One entry of `nodes`: `host:port`, `[ipv6]:port`, or a `redis://` / `rediss://` URL
/// (`redis://[user:password@]host[:port][/0]`; the port defaults to 6379).
///
/// `Display` prints `host:port` (IPv6 in brackets) and never the credentials; `Debug` prints
/// the password as `"***"`. Percent-escapes (`%40`) in URL credentials are decoded; a
/// malformed escape is an error. URLs are parsed with the [`url`] crate (the plain forms as
/// the authority of a `redis://` URL): the scheme may be in any case, an IPv6 address is
/// normalised (`[0:0::1]` gives `::1`), a host name is kept as written, and a query or
/// fragment is an error. An empty password (`redis://user:@host`) counts as none.
///
/// `Serialize` (for [`Config::to_yaml`]) writes a form that parses back to an equal address:
/// `host:port`, or when the address has TLS or credentials a URL,
/// `rediss://user:password@host:port` with the credentials percent-escaped. **That form
/// contains the password in plain text.** An address that would not read back the same (a
/// host given to [`NodeAddr::new`] that the parser would refuse or rewrite) is an error.
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
    /// Host and port: the router's address type, the one the whole client uses.
    addr: Addr,
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
            addr: Addr::new(host, port),
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
        self.addr.host()
    }

    /// Host and port as the router's [`Addr`] (the address type of topology maps and
    /// redirects).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    /// use slotline_router::Addr;
    ///
    /// let node: NodeAddr = "redis://app:pw@10.0.0.5:7000".parse()?;
    /// assert_eq!(node.addr(), &Addr::new("10.0.0.5", 7000));
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn addr(&self) -> &Addr {
        &self.addr
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
        self.addr.port()
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
        Ok((self.addr.host(), self.addr.port())
            .to_socket_addrs()?
            .collect())
    }
}

impl From<SocketAddr> for NodeAddr {
    fn from(addr: SocketAddr) -> NodeAddr {
        NodeAddr::new(addr.ip().to_string(), addr.port())
    }
}

impl From<Addr> for NodeAddr {
    /// A plain address (no TLS scheme, no credentials) for a node the cluster named.
    fn from(addr: Addr) -> NodeAddr {
        NodeAddr {
            addr,
            tls: false,
            username: None,
            password: None,
        }
    }
}

impl fmt::Display for NodeAddr {
    /// `host:port`, `[ipv6]:port`: never the scheme or the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.addr, f)
    }
}

impl NodeAddr {
    /// The address as `nodes` takes it, checked to parse back to `self`: `host:port`, or
    /// `redis[s]://[user][:password]@host:port` with the credentials percent-escaped.
    ///
    /// The error says why in words without the credentials.
    fn to_config_string(&self) -> Result<String, String> {
        let text = if !self.tls && self.username.is_none() && self.password.is_none() {
            self.addr.to_string()
        } else {
            let scheme = if self.tls { "rediss" } else { "redis" };
            let mut userinfo = String::new();
            if let Some(user) = &self.username {
                userinfo.push_str(&percent_encode(user));
            }
            if let Some(password) = &self.password {
                userinfo.push(':');
                userinfo.push_str(&percent_encode(password.expose()));
            }
            if userinfo.is_empty() {
                format!("{scheme}://{}", self.addr)
            } else {
                format!("{scheme}://{userinfo}@{}", self.addr)
            }
        };
        match text.parse::<NodeAddr>() {
            Ok(back) if back == *self => Ok(text),
            Ok(back) => Err(format!(
                "`{self}` cannot be written as an address that reads back the same (it reads \
                 back as `{back}`)"
            )),
            Err(err) => Err(format!(
                "`{self}` cannot be written as an address that reads back: {}",
                err.reason
            )),
        }
    }
}

impl Serialize for NodeAddr {
    /// The form `str::parse::<NodeAddr>` parses back to an equal address, **credentials
    /// included, in plain text**; an error for an address that has no such form.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_config_string().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl TryFrom<&str> for NodeAddr {
    type Error = NodeAddrError;

    /// Parses the address, as `str::parse::<NodeAddr>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// let a = NodeAddr::try_from("127.0.0.1:7000")?;
    /// assert_eq!(a.port(), 7000);
    /// assert!(NodeAddr::try_from("127.0.0.1").is_err());
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    fn try_from(input: &str) -> Result<NodeAddr, NodeAddrError> {
        input.parse()
    }
}

impl TryFrom<String> for NodeAddr {
    type Error = NodeAddrError;

    /// Parses the address, as `str::parse::<NodeAddr>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::config::NodeAddr;
    ///
    /// let a = NodeAddr::try_from(format!("127.0.0.1:{}", 7000))?;
    /// assert_eq!(a.port(), 7000);
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    fn try_from(input: String) -> Result<NodeAddr, NodeAddrError> {
        input.parse()
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

    /// Parses `host:port`, `[ipv6]:port` or a `redis://` / `rediss://` URL. URLs, and the
    /// plain form as the authority of a `redis://` URL, go through the [`url`] crate; the
    /// checks before it only make the messages for common mistakes precise.
    fn from_str(input: &str) -> Result<NodeAddr, NodeAddrError> {
        let fail = |reason| NodeAddrError {
            input: redact(input),
            reason,
        };
        let s = input.trim();
        // The URL parser would silently drop tabs and newlines inside the input.
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("contains whitespace or a control character"));
        }
        let (is_url, rest) = match s.split_once("://") {
            Some((scheme, rest)) => {
                if !["redis", "rediss"]
                    .iter()
                    .any(|k| scheme.eq_ignore_ascii_case(k))
                {
                    return Err(fail("unsupported scheme (use redis:// or rediss://)"));
                }
                (true, rest)
            }
            None if s.contains('@') || s.contains('/') => {
                return Err(fail("credentials or a path need a redis:// URL"));
            }
            None => (false, s),
        };
        // Host and port as written, for the bracket checks: after any credentials, before any
        // path, query or fragment.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        if authority.starts_with('[') && !authority.contains(']') {
            return Err(fail("missing `]` after an IPv6 address"));
        }
        if !authority.starts_with('[') && authority.matches(':').count() > 1 {
            return Err(fail(
                "an IPv6 address must be written in brackets: `[::1]:7000`",
            ));
        }

        let url = if is_url {
            Url::parse(s)
        } else {
            Url::parse(&format!("redis://{s}"))
        }
        .map_err(|err| fail(url_error_reason(err)))?;
        let tls = url.scheme() == "rediss";
        if !matches!(url.path(), "" | "/" | "/0") {
            return Err(fail(
                "Redis Cluster has only database 0 (path must be empty or /0)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(fail("a query (`?`) or fragment (`#`) is not supported"));
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(fail("missing host")),
        };
        let port = match url.port() {
            Some(0) => return Err(fail(PORT_RANGE)),
            Some(port) => port,
            None if is_url => DEFAULT_PORT,
            None => return Err(fail("missing `:port`")),
        };

        // The URL parser keeps credentials percent-encoded; decode them strictly.
        let user =
            percent_decode(url.username()).ok_or_else(|| fail("bad %-escape in user name"))?;
        let username = (!user.is_empty()).then_some(user);
        let password = match url.password() {
            Some(pass) => Some(Password(
                percent_decode(pass).ok_or_else(|| fail("bad %-escape in password"))?,
            )),
            None => None,
        };
        Ok(NodeAddr {
            addr: Addr::new(host, port),
            tls,
            username,
            password,
        })
    }
}

const PORT_RANGE: &str = "port must be a number in 1..=65535";

/// A reason for a URL the [`url`] crate refused, in this module's words.
fn url_error_reason(err: url::ParseError) -> &'static str {
    use url::ParseError as E;
    match err {
        E::EmptyHost => "missing host",
        E::InvalidPort => PORT_RANGE,
        E::InvalidIpv6Address => "not an IPv6 address inside `[...]`",
        E::InvalidIpv4Address => "not an IPv4 address",
        E::InvalidDomainCharacter | E::IdnaError => {
            "host contains a character not allowed in a host name"
        }
        _ => "not a valid URL",
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

/// `s` with every byte but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`) written as
/// `%XX`: safe in a URL's user name or password, and read back by [`percent_decode`].
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
/// The message repeats the input, says what is wrong with it, and lists the accepted form.
///
/// # Examples
///
/// ```
/// use slotline_client::config::parse_duration;
///
/// let err = parse_duration("fast").unwrap_err();
/// assert!(err.to_string().contains("fast"));
/// assert!(err.to_string().contains("`1m 30s`"));
/// let err = parse_duration("300").unwrap_err();
/// assert!(err.to_string().contains("missing unit"), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    reason: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration `{}`: {} (expected a number and a unit, such as `500ms`, `2s`, \
             `1.5s` or `2m`, or several of them such as `1m 30s`; units: ns, us, ms, s, m, h, d)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration: one or more numbers, each with a unit, such as `500ms`, `2s`, `2m`,
/// `1m 30s` or `1h30m`. This is [`humantime::parse_duration`] with this module's error type.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d` and their long forms (`sec`,
/// `min`, `hours`, ...). A fraction is allowed (`1.5s`, `0.5ms`) but needs a digit on each
/// side of the point (`0.5s`, not `.5s` or `3.s`), and a fraction finer than a nanosecond
/// (`1.0000000001s`, `0.5ns`) is an error. A number needs a unit, except a bare `0`.
///
/// # Errors
///
/// [`DurationError`] for a missing number, a missing or unknown unit, an unexpected
/// character, or a value that does not fit in a [`Duration`].
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
/// assert_eq!(parse_duration("1m 30s")?, Duration::from_secs(90));
/// assert!(parse_duration("300").is_err()); // no unit
/// # Ok::<(), slotline_client::config::DurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(input).map_err(|err| DurationError {
        input: input.to_owned(),
        reason: duration_error_reason(input, &err),
    })
}

/// What is wrong with `input`, from humantime's error (whose own text offers units, such as
/// `sec`, that the rest of this crate's messages do not use).
fn duration_error_reason(input: &str, err: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let char_at = |offset: usize| input.get(offset..).and_then(|rest| rest.chars().next());
    match err {
        E::Empty => "empty".to_owned(),
        E::UnknownUnit { unit, .. } if unit.is_empty() => "missing unit".to_owned(),
        E::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
        E::NumberExpected(offset) => match char_at(*offset) {
            Some('.') => "a fraction needs digits on both sides of the point (`0.5s`)".to_owned(),
            Some(c) => format!("expected a number, found `{c}`"),
            None => "expected a number".to_owned(),
        },
        E::InvalidCharacter(offset) => match char_at(*offset) {
            Some('.') => {
                "unexpected `.` (a fraction needs digits on both sides: `1.5s`)".to_owned()
            }
            Some(c) => format!("unexpected `{c}`"),
            None => "unexpected end".to_owned(),
        },
        E::NumberOverflow => "number too large, or finer than 1ns".to_owned(),
    }
}

/// `duration` in the form [`parse_duration`] reads back exactly: whole days, hours, minutes,
/// seconds, milliseconds, microseconds and nanoseconds, largest first, zeros left out
/// (`5m`, `1m 30s`, `1s 500ms`; `0s` for zero). Only units this module documents, so no
/// months or years (which humantime counts as 30.44 and 365.25 days).
fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let secs = duration.as_secs();
    let nanos = u64::from(duration.subsec_nanos());
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (nanos / 1_000_000, "ms"),
        (nanos / 1000 % 1000, "us"),
        (nanos % 1000, "ns"),
    ];
    let parts: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    parts.join(" ")
}

/// `serialize_with` for duration fields: [`format_duration`].
fn serialize_duration<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*duration))
}

/// `deserialize_with` for duration fields. The error is raised inside the visitor so that the
/// YAML parser prefixes it with the full key path (`redis_pool.dial_timeout: ...`).
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as `500ms`, `2s`, `1.5s` or `1m 30s`")
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
            ("0.5s", Duration::from_millis(500)),
            ("1.5m", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("0s", Duration::ZERO),
            ("1.000000001s", Duration::new(1, 1)),
            // Combined units and long forms.
            ("1m 30s", Duration::from_secs(90)),
            ("1h30m", Duration::from_secs(5400)),
            ("1s 500ms", Duration::from_millis(1500)),
            ("1sec", Duration::from_secs(1)),
            ("1 s", Duration::from_secs(1)),
            ("2min", Duration::from_secs(120)),
            ("1d", Duration::from_secs(86_400)),
            // A bare zero needs no unit.
            ("0", Duration::ZERO),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "input={input:?}");
        }
    }

    #[test]
    fn parse_duration_rejects_malformed_input_without_panicking() {
        for (input, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("s", "expected a number"),
            ("fast", "expected a number"),
            ("10", "missing unit"),
            ("1.2.3s", "unexpected `.`"),
            ("-1s", "expected a number, found `-`"),
            ("1e3ms", "unknown unit `e`"),
            ("1parsec", "unknown unit `parsec`"),
            (".s", "digits on both sides"),
            (".5s", "digits on both sides"),
            ("3.s", "digits on both sides"),
            ("1,5s", "unexpected `,`"),
            ("99999999999999999999999999999999999999999h", "too large"),
            ("18446744073709551616s", "too large"),
            ("18446744073709551615h", "too large"),
            // Below a nanosecond.
            ("0.0000000001s", "finer than 1ns"),
            ("1.0000000001s", "finer than 1ns"),
            ("0.5ns", "finer than 1ns"),
        ] {
            let err = parse_duration(input).unwrap_err().to_string();
            assert!(err.contains(reason), "input={input:?} err={err}");
            assert!(err.contains("`1m 30s`"), "input={input:?} err={err}");
        }
    }

    #[test]
    fn format_duration_reads_back_exactly() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(2500), "2ms 500us"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(86_400 * 400), "400d"),
            (Duration::new(93_784, 5_006_007), "1d 2h 3m 4s 5ms 6us 7ns"),
            (Duration::MAX, "213503982334601d 7h 15s 999ms 999us 999ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text, "duration={duration:?}");
            assert_eq!(parse_duration(text), Ok(duration), "text={text:?}");
        }
        // Every unit boundary, one below and one above.
        for secs in [59, 60, 61, 3599, 3600, 3601, 86_399, 86_400, 86_401] {
            for nanos in [0, 1, 999, 1000, 999_999, 1_000_000, 999_999_999] {
                let d = Duration::new(secs, nanos);
                assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
            }
        }
    }

    #[test]
    fn node_addr_config_string_reads_back() {
        for (input, written) in [
            ("127.0.0.1:7000", "127.0.0.1:7000"),
            ("redis://[::1]", "[::1]:6379"),
            ("rediss://h:1", "rediss://h:1"),
            ("redis://writer@h:1", "redis://writer@h:1"),
            ("redis://:pw@h:1", "redis://:pw@h:1"),
            ("redis://u%20x:p%40ss@h:1", "redis://u%20x:p%40ss@h:1"),
            ("redis://u:p@ss:x@h:1", "redis://u:p%40ss%3Ax@h:1"),
            ("redis://u:@h:1", "redis://u@h:1"),
        ] {
            let node: NodeAddr = input.parse().unwrap();
            assert_eq!(node.to_config_string().as_deref(), Ok(written), "{input}");
            assert_eq!(written.parse::<NodeAddr>(), Ok(node), "{input}");
        }
        assert_eq!(
            percent_encode("aZ09-._~ @:/%é"),
            "aZ09-._~%20%40%3A%2F%25%C3%A9"
        );
        // Every address that parses can be written, and reads back equal.
        let mut parsed = 0;
        for scheme in ["", "redis://", "rediss://", "REDIS://"] {
            for userinfo in [
                "",
                "u@",
                ":p@",
                "u:p@",
                "u%41:p%2F@",
                "u:p@q:r@",
                "%C3%A9:@",
            ] {
                for host in [
                    "h",
                    "Host.Example",
                    "10.0.0.1",
                    "[::1]",
                    "[0:0::FFFF:1.2.3.4]",
                    "h%C3%A9",
                    "h!$&'()*+,;=",
                    "0x7f.1",
                    "",
                ] {
                    for port in ["", ":1", ":6379", ":65535"] {
                        for path in ["", "/", "/0"] {
                            let input = format!("{scheme}{userinfo}{host}{port}{path}");
                            let Ok(node) = input.parse::<NodeAddr>() else {
                                continue;
                            };
                            parsed += 1;
                            let written = node.to_config_string().unwrap();
                            assert_eq!(written.parse::<NodeAddr>(), Ok(node), "{input}");
                        }
                    }
                }
            }
        }
        assert!(parsed > 500, "{parsed}");
        let node: NodeAddr = "redis://u:topsecret@h:1".parse().unwrap();
        let node = NodeAddr {
            addr: Addr::new("bad host", 1),
            ..node
        };
        let err = node.to_config_string().unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
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
        let a: NodeAddr = "redis://cache.internal:7001/".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("cache.internal", 7001));
        let a: NodeAddr = " node-3:7002 ".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("node-3", 7002));
        let a: NodeAddr = "redis://[2001:db8::7]:7003".parse().unwrap();
        assert_eq!(
            (a.host(), a.to_string().as_str()),
            ("2001:db8::7", "[2001:db8::7]:7003")
        );
    }

    #[test]
    fn node_addr_decodes_percent_escaped_credentials() {
        let a: NodeAddr = "redis://us%20er:p%40ss%3Aw%2Fd@h:1".parse().unwrap();
        assert_eq!(a.username(), Some("us er"));
        assert_eq!(a.password().unwrap().expose(), "p@ss:w/d");
        // An unescaped `@` or `:` in the password: the last `@` ends the credentials and the
        // first `:` separates the user name.
        let a: NodeAddr = "redis://u:p@ss:x@h:1".parse().unwrap();
        assert_eq!(a.username(), Some("u"));
        assert_eq!(a.password().unwrap().expose(), "p@ss:x");
        let a: NodeAddr = "redis://:pw%C3%A9@h:1".parse().unwrap();
        assert_eq!(
            (a.username(), a.password().unwrap().expose()),
            (None, "pwé")
        );
        let a: NodeAddr = "redis://writer@h:1".parse().unwrap();
        assert_eq!((a.username(), a.password()), (Some("writer"), None));
    }

    #[test]
    fn node_addr_rejects_bad_input_with_a_reason() {
        for (input, reason) in [
            ("127.0.0.1", "missing `:port`"),
            ("127.0.0.1:0", "port must be"),
            ("127.0.0.1:99999", "port must be"),
            ("127.0.0.1:x", "port must be"),
            ("::1:7000", "brackets"),
            ("redis://::1:7000", "brackets"),
            ("[::1:7000", "missing `]`"),
            ("[nothost]:7000", "not an IPv6"),
            ("http://h:1", "unsupported scheme"),
            ("redis://h:1/3", "database 0"),
            ("redis://h:1/0/x", "database 0"),
            ("redis://h:1?db=3", "query"),
            ("redis://:7000", "missing host"),
            ("redis://", "missing host"),
            ("u:p@h:1", "need a redis:// URL"),
            ("h:1/0", "need a redis:// URL"),
            ("redis://u:%zz@h:1", "%-escape"),
            ("redis://%ff:p@h:1", "%-escape"),
            ("redis://h\tx:1", "whitespace"),
            ("h x:1", "whitespace"),
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
        assert_eq!(c.backpressure_limit_for(0), 1);
        let max_limit = (usize::MAX as u128 * 55).div_ceil(100);
        assert_eq!(c.backpressure_limit_for(usize::MAX) as u128, max_limit);
        c.backpressure.enabled = false;
        assert_eq!(c.backpressure_limit_for(7), 7);
        assert_eq!(c.backpressure_limit(), 10);
    }

    #[test]
    fn backpressure_byte_limit_follows_the_threshold() {
        let mut c = Config::default();
        c.backpressure.max_pending_bytes = 1000;
        c.backpressure.threshold_percent = 1;
        assert_eq!(c.backpressure_byte_limit(), 10);
        c.backpressure.threshold_percent = 33;
        assert_eq!(c.backpressure_byte_limit(), 330);
        c.backpressure.max_pending_bytes = 1001;
        assert_eq!(c.backpressure_byte_limit(), 331);
        c.backpressure.max_pending_bytes = MAX_PENDING_BYTES;
        c.backpressure.threshold_percent = 100;
        assert_eq!(c.backpressure_byte_limit(), MAX_PENDING_BYTES);
        c.backpressure.max_pending_bytes = u64::MAX;
        assert_eq!(c.backpressure_byte_limit(), u64::MAX);
        c.backpressure.enabled = false;
        c.backpressure.max_pending_bytes = 4096;
        assert_eq!(c.backpressure_byte_limit(), 4096);
    }

    #[test]
    fn master_capacity_shares_the_cluster_total_by_slots() {
        let mut c = Config::default();
        c.shard_config.total_shards = 4;
        c.shard_config.ring_buffer_capacity = 1000;
        assert_eq!(c.master_capacity(16_384), 4000);
        assert_eq!(c.master_capacity(8192), 2000);
        assert_eq!(c.master_capacity(8193), 2001); // rounded up
        assert_eq!(c.master_capacity(4096), 1000);
        assert_eq!(c.master_capacity(100), 1000); // never below ring_buffer_capacity
        assert_eq!(c.master_capacity(0), 1000);
        assert_eq!(c.master_capacity(usize::MAX), 4000); // slots beyond 16384 do not count
                                                         // Any split of the slots adds up to about total_shards × ring_buffer_capacity.
        let split = [5461, 5462, 5461];
        let total: usize = split.iter().map(|&n| c.master_capacity(n)).sum();
        assert!((4000..4000 + split.len()).contains(&total), "{total}");

        c.shard_config.total_shards = SLOT_COUNT;
        c.shard_config.ring_buffer_capacity = MAX_RING_BUFFER_CAPACITY;
        assert_eq!(
            c.master_capacity(16_384),
            MAX_RING_BUFFER_CAPACITY * SLOT_COUNT as usize
        );
        c.shard_config.ring_buffer_capacity = usize::MAX;
        assert_eq!(c.master_capacity(16_384), usize::MAX); // saturates
    }

    #[test]
    fn io_threads_resolves_auto_within_its_bounds() {
        let mut c = Config::default();
        let auto = c.io_threads();
        assert!((1..=AUTO_IO_THREADS_MAX).contains(&auto), "{auto}");
        let expected = std::thread::available_parallelism().map_or(1, |n| n.get() / 2);
        assert_eq!(auto, expected.clamp(1, AUTO_IO_THREADS_MAX));
        c.redis_pool.io_threads = MAX_IO_THREADS;
        assert_eq!(c.io_threads(), MAX_IO_THREADS);
        c.redis_pool.io_threads = 1;
        assert_eq!(c.io_threads(), 1);
    }
}
