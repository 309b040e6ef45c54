//! [`LocalError`]: what can go wrong starting, controlling or stopping local Redis processes.

use std::fmt;
use std::io;
use std::time::Duration;

use slotline_client::TlsError;

const INSTALL_HINT: &str =
    "install it with `apt-get install redis-server redis-tools` (redis-server ≥ 7 required)";

/// Something went wrong starting, controlling or stopping local Redis processes.
///
/// # Examples
///
/// ```
/// use slotline_testkit::LocalError;
///
/// let err = LocalError::RedisServerNotFound;
/// assert!(err.to_string().contains("apt-get install redis-server redis-tools"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LocalError {
    /// `redis-server` (or `redis-cli`) is not on `PATH`.
    RedisServerNotFound,
    /// `redis-server` is older than [`MIN_REDIS_MAJOR`](crate::MIN_REDIS_MAJOR).
    RedisTooOld {
        /// What `redis-server --version` printed.
        version: String,
    },
    /// A file or process operation failed.
    Io {
        /// What was being done.
        context: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// No free pair of ports (`port`, `port + 10000`) was found.
    NoFreePort,
    /// A server exited while starting.
    ServerExited {
        /// Its port.
        port: u16,
        /// The end of its log.
        log_tail: String,
    },
    /// `redis-cli --cluster create` (or the manual equivalent) failed.
    ClusterCreate {
        /// What it printed.
        output: String,
    },
    /// The cluster did not become healthy in time.
    NotHealthy {
        /// How long it was given.
        waited: Duration,
        /// The last problem seen.
        problem: String,
    },
    /// A command sent to a node failed.
    Command {
        /// The node's port.
        port: u16,
        /// What went wrong.
        message: String,
    },
    /// The requested layout is not possible (such as zero masters).
    InvalidLayout(String),
    /// There is no node with this index.
    NoSuchNode(usize),
    /// The node with this index is not running.
    NodeNotRunning(usize),
    /// The [`TlsFiles`](crate::TlsFiles) cannot be used by the helpers' own connections.
    Tls(TlsError),
}

impl fmt::Display for LocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalError::RedisServerNotFound => {
                write!(
                    f,
                    "redis-server or redis-cli not found on PATH; {INSTALL_HINT}"
                )
            }
            LocalError::RedisTooOld { version } => {
                write!(f, "redis-server is too old ({version}); {INSTALL_HINT}")
            }
            LocalError::Io { context, source } => write!(f, "{context}: {source}"),
            LocalError::NoFreePort => f.write_str("no free loopback port pair (port, port+10000)"),
            LocalError::ServerExited { port, log_tail } => {
                write!(
                    f,
                    "redis-server on port {port} exited while starting; log:\n{log_tail}"
                )
            }
            LocalError::ClusterCreate { output } => {
                write!(f, "creating the cluster failed:\n{output}")
            }
            LocalError::NotHealthy { waited, problem } => {
                write!(f, "cluster not healthy after {waited:?}: {problem}")
            }
            LocalError::Command { port, message } => write!(f, "node on port {port}: {message}"),
            LocalError::InvalidLayout(why) => write!(f, "invalid cluster layout: {why}"),
            LocalError::NoSuchNode(i) => write!(f, "no node with index {i}"),
            LocalError::NodeNotRunning(i) => write!(f, "node {i} is not running"),
            LocalError::Tls(err) => write!(f, "TLS files not usable: {err}"),
        }
    }
}

impl std::error::Error for LocalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LocalError::Io { source, .. } => Some(source),
            LocalError::Tls(err) => Some(err),
            _ => None,
        }
    }
}

pub(crate) fn io_context(context: impl Into<String>) -> impl FnOnce(io::Error) -> LocalError {
    let context = context.into();
    move |source| LocalError::Io { context, source }
}
