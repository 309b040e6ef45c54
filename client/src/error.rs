//! Errors: [`Error`] for setting up (configuration, connections, topology), [`CommitError`] for
//! what happened to one write.
//!
//! A commit's error says exactly what became of the write, because the caller has to decide
//! whether to retry: a write that was never sent ([`CommitError::Rejected`],
//! [`CommitError::Dropped`], [`CommitError::Closed`]) can be retried blindly; one that was sent
//! and not answered ([`CommitError::DeadlineExceeded`] and [`CommitError::ConnectionLost`] with
//! `may_have_been_applied: true`) may already be in Redis.

use std::fmt;

use crate::config::ConfigError;

/// An error setting up the client or talking to a node outside of a commit.
///
/// `addr` fields are `host:port` strings (never with credentials).
///
/// # Examples
///
/// ```
/// use slotline_client::{config::Config, Error};
///
/// let err: Error = Config::from_yaml_str("shard_config: { total_shards: 0 }")
///     .unwrap_err()
///     .into();
/// assert!(matches!(err, Error::Config(_)));
/// assert!(err.to_string().contains("shard_config.total_shards"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was rejected.
    Config(ConfigError),
    /// A socket operation on a node failed.
    Io {
        /// The node, `host:port`.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A connect, read or write on a node did not finish within its timeout.
    Timeout {
        /// The node, `host:port`.
        addr: String,
        /// `"connect"`, `"read"` or `"write"`.
        during: &'static str,
    },
    /// The node closed the connection (end of stream where a reply was expected).
    Closed {
        /// The node, `host:port`.
        addr: String,
    },
    /// `AUTH` was refused (wrong user name or password, or the user is disabled).
    Auth {
        /// The node, `host:port`.
        addr: String,
        /// The server's error reply, such as `WRONGPASS invalid username-password pair ...`.
        message: String,
    },
    /// The node answered a set-up command with an error reply.
    Server {
        /// The node, `host:port`.
        addr: String,
        /// The error reply, code first (`ERR ...`, `CLUSTERDOWN ...`).
        message: String,
    },
    /// The node sent bytes that are not a valid reply, or a reply larger than the read buffer.
    Protocol {
        /// The node, `host:port`.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// The address asks for TLS (`rediss://`), but the connection options carry no TLS settings.
    TlsUnsupported {
        /// The node, `host:port`.
        addr: String,
    },
    /// The cluster's topology reply could not be used.
    Topology(String),
    /// None of the seed nodes could be reached.
    NoReachableNode {
        /// The nodes tried, `host:port`.
        tried: Vec<String>,
        /// The error from the last node tried.
        last: Option<Box<Error>>,
    },
}

impl Error {
    /// Whether this is a timeout ([`Error::Timeout`], or an I/O error of kind `TimedOut`).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::Error;
    ///
    /// let err = Error::Timeout { addr: "127.0.0.1:7000".into(), during: "read" };
    /// assert!(err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the connection this came from is unusable afterwards (I/O, timeout, close or a
    /// protocol error: the reply stream is no longer in step with the requests).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::Error;
    ///
    /// assert!(Error::Closed { addr: "h:1".into() }.is_connection_broken());
    /// assert!(!Error::Server { addr: "h:1".into(), message: "ERR x".into() }.is_connection_broken());
    /// ```
    pub fn is_connection_broken(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Timeout { .. }
                | Error::Closed { .. }
                | Error::Protocol { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(err) => err.fmt(f),
            Error::Io { addr, source } => write!(f, "{addr}: {source}"),
            Error::Timeout { addr, during } => write!(f, "{addr}: {during} timed out"),
            Error::Closed { addr } => write!(f, "{addr}: connection closed by the server"),
            Error::Auth { addr, message } => write!(f, "{addr}: authentication failed: {message}"),
            Error::Server { addr, message } => write!(f, "{addr}: error reply: {message}"),
            Error::Protocol { addr, message } => write!(f, "{addr}: protocol error: {message}"),
            Error::TlsUnsupported { addr } => {
                write!(
                    f,
                    "{addr}: rediss:// asks for TLS, but the connection options carry no TLS \
                     settings (build them with ConnOptions::from_config, or set tls.enabled)"
                )
            }
            Error::Topology(message) => write!(f, "unusable cluster topology: {message}"),
            Error::NoReachableNode { tried, last } => {
                write!(f, "no reachable node (tried {})", tried.join(", "))?;
                if let Some(last) = last {
                    write!(f, "; last error: {last}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(err) => Some(err),
            Error::Io { source, .. } => Some(source),
            Error::NoReachableNode {
                last: Some(last), ..
            } => Some(last.as_ref()),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Error {
        Error::Config(err)
    }
}

/// What happened to one write that was not acknowledged.
///
/// Nothing is acknowledged that Redis did not confirm; every other outcome is one of these.
///
/// # Examples
///
/// ```
/// use slotline_client::CommitError;
///
/// let err = CommitError::DeadlineExceeded { may_have_been_applied: true };
/// assert!(err.may_have_been_applied());
/// assert!(!err.is_retryable());
/// assert!(CommitError::Rejected.is_retryable());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitError {
    /// Backpressure (`fallback_strategy: reject`): the shard's ring was at its threshold, so the
    /// write was not queued. Never sent.
    Rejected,
    /// Evicted from a full ring by a newer write (`fallback_strategy: drop_oldest`). Never sent.
    Dropped,
    /// The commit's deadline passed before its ACK.
    DeadlineExceeded {
        /// False if the write was still queued (never sent); true once it may have been
        /// written to the socket.
        may_have_been_applied: bool,
    },
    /// The node answered the write with an error reply (the write was not applied).
    Server {
        /// The error reply, code first, such as `WRONGTYPE Operation against a key ...`.
        message: String,
    },
    /// The master applied the write but `WAIT` confirmed fewer replicas than `ack.replicas`
    /// within `ack.timeout`. The write is in Redis; it may be lost on a failover.
    ReplicationShortfall {
        /// Replicas asked for (`ack.replicas`).
        wanted: u32,
        /// Replicas that confirmed.
        confirmed: u32,
    },
    /// The connection failed before the reply arrived.
    ConnectionLost {
        /// False if the write had not been written to the socket yet; true otherwise.
        may_have_been_applied: bool,
    },
    /// The client was shut down before the write was sent.
    Closed,
    /// The master applied the write (its reply was read), but the connection failed before
    /// the `WAIT` after it answered: how many replicas have it is unknown. The write is in
    /// Redis and is never sent again.
    ReplicationUnconfirmed {
        /// Replicas asked for (`ack.replicas`).
        wanted: u32,
    },
    /// The write is larger than its master's whole byte budget
    /// (`backpressure.max_pending_bytes`), so it can never be queued. Never sent.
    TooLarge {
        /// The write's size in bytes (its RESP encoding).
        bytes: u64,
        /// The budget it exceeds.
        limit: u64,
    },
    /// One of the client's I/O threads panicked: the client fails every pending and every
    /// later write with this error. Never sent, unless `may_have_been_applied` says so.
    ClientDead {
        /// True if the write may have been written to a socket before the failure.
        may_have_been_applied: bool,
    },
    /// The command cannot be routed to one slot (no key, keys in different slots, a command
    /// whose keys cannot be found): it was refused before anything was sent.
    InvalidCommand(CommandError),
    /// A batch holds more commands (or bytes) for one master than that master's queue can
    /// ever hold, so it was refused whole, before anything was queued.
    BatchTooLarge {
        /// The master the excess is for.
        master: String,
        /// The batch's commands for that master.
        ops: usize,
        /// Its bytes for that master (RESP encoding).
        bytes: u64,
        /// How many commands its queue takes under the call's backpressure threshold.
        limit_ops: usize,
        /// How many bytes its queue takes (`backpressure.max_pending_bytes`).
        limit_bytes: u64,
    },
}

/// Why a command cannot become a write to one slot. Nothing was sent.
///
/// # Examples
///
/// ```
/// use slotline_client::{CommandError, CommitError};
///
/// let err = CommitError::InvalidCommand(CommandError::CrossSlot {
///     command: "MSET".into(),
///     slots: [5061, 12182],
/// });
/// assert!(!err.may_have_been_applied());
/// assert!(err.to_string().contains("CROSSSLOT"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The command's keys cannot be found: it has none, is unknown, or its arguments do not
    /// say where they are.
    Keys(crate::keys::KeyError),
    /// The command's keys hash to different slots; a cluster would answer `CROSSSLOT`. Use
    /// a hash tag (`{user42}:a`, `{user42}:b`) to keep keys in one slot.
    CrossSlot {
        /// The command's name.
        command: String,
        /// The first key's slot and the first slot that differs from it.
        slots: [u16; 2],
    },
    /// The packed command is not a RESP array of bulk strings.
    Malformed,
    /// The command cannot share a pipelined connection with other callers' commands: it
    /// blocks it (`BLPOP`, `XREAD ... BLOCK`), holds state on it (`WATCH`, `MULTI`), or gets
    /// more than one reply (`SSUBSCRIBE`).
    NotPipelinable {
        /// The command's name.
        command: String,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Keys(e) => write!(f, "{e}"),
            CommandError::CrossSlot { command, slots } => write!(
                f,
                "CROSSSLOT: the keys of {command} hash to slots {} and {}; a command's keys \
                 must share one slot (use a hash tag such as {{user42}})",
                slots[0], slots[1]
            ),
            CommandError::Malformed => {
                f.write_str("the command is not a RESP array of bulk strings")
            }
            CommandError::NotPipelinable { command, reason } => write!(
                f,
                "{command} cannot be sent on a shared, pipelined connection: {reason}"
            ),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommandError::Keys(e) => Some(e),
            _ => None,
        }
    }
}

impl CommitError {
    /// Whether the write may be in Redis despite the error.
    ///
    /// True for [`CommitError::ReplicationShortfall`] (it is on the master), and for
    /// [`CommitError::DeadlineExceeded`] / [`CommitError::ConnectionLost`] once sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::CommitError;
    ///
    /// assert!(!CommitError::Dropped.may_have_been_applied());
    /// let short = CommitError::ReplicationShortfall { wanted: 2, confirmed: 1 };
    /// assert!(short.may_have_been_applied());
    /// ```
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            CommitError::DeadlineExceeded {
                may_have_been_applied,
            }
            | CommitError::ConnectionLost {
                may_have_been_applied,
            }
            | CommitError::ClientDead {
                may_have_been_applied,
            } => *may_have_been_applied,
            CommitError::ReplicationShortfall { .. }
            | CommitError::ReplicationUnconfirmed { .. } => true,
            CommitError::Rejected
            | CommitError::Dropped
            | CommitError::Server { .. }
            | CommitError::TooLarge { .. }
            | CommitError::InvalidCommand(_)
            | CommitError::BatchTooLarge { .. }
            | CommitError::Closed => false,
        }
    }

    /// Whether retrying the same write is safe and may succeed: it was certainly not applied,
    /// and the cause can pass (a full ring, a lost connection, a cluster in transition).
    ///
    /// Error replies count as retryable only for the transient codes `TRYAGAIN`,
    /// `CLUSTERDOWN`, `LOADING`, `MASTERDOWN` and `READONLY` (a failover in progress).
    /// [`CommitError::Closed`] is not: the client is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::CommitError;
    ///
    /// assert!(CommitError::Server { message: "TRYAGAIN migrating".into() }.is_retryable());
    /// assert!(!CommitError::Server { message: "WRONGTYPE x".into() }.is_retryable());
    /// assert!(!CommitError::Closed.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            CommitError::Rejected | CommitError::Dropped => true,
            CommitError::DeadlineExceeded {
                may_have_been_applied,
            }
            | CommitError::ConnectionLost {
                may_have_been_applied,
            } => !may_have_been_applied,
            CommitError::Server { message } => {
                let code = message.split(' ').next().unwrap_or("");
                matches!(
                    code,
                    "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY"
                )
            }
            CommitError::ReplicationShortfall { .. }
            | CommitError::ReplicationUnconfirmed { .. }
            | CommitError::TooLarge { .. }
            | CommitError::InvalidCommand(_)
            | CommitError::BatchTooLarge { .. }
            | CommitError::ClientDead { .. }
            | CommitError::Closed => false,
        }
    }
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let applied = |yes: bool| {
            if yes {
                "the write may have been applied"
            } else {
                "the write was not sent"
            }
        };
        match self {
            CommitError::Rejected => {
                f.write_str("write rejected: the shard's ring is at its backpressure threshold")
            }
            CommitError::Dropped => f.write_str(
                "write dropped: evicted from a full ring by a newer write (drop_oldest)",
            ),
            CommitError::DeadlineExceeded {
                may_have_been_applied,
            } => write!(
                f,
                "commit deadline exceeded before the ACK; {}",
                applied(*may_have_been_applied)
            ),
            CommitError::Server { message } => write!(f, "write failed: error reply: {message}"),
            CommitError::ReplicationShortfall { wanted, confirmed } => write!(
                f,
                "write applied on the master but only {confirmed} of {wanted} replicas confirmed it"
            ),
            CommitError::ConnectionLost {
                may_have_been_applied,
            } => write!(
                f,
                "connection lost before the reply; {}",
                applied(*may_have_been_applied)
            ),
            CommitError::Closed => {
                f.write_str("the client was shut down before the write was sent")
            }
            CommitError::ReplicationUnconfirmed { wanted } => write!(
                f,
                "write applied on the master, but the connection failed before WAIT reported \
                 how many of {wanted} replicas have it"
            ),
            CommitError::TooLarge { bytes, limit } => write!(
                f,
                "write of {bytes} bytes is larger than its master's whole budget of {limit} \
                 bytes (backpressure.max_pending_bytes)"
            ),
            CommitError::ClientDead {
                may_have_been_applied,
            } => write!(
                f,
                "the client's I/O thread failed; {}",
                applied(*may_have_been_applied)
            ),
            CommitError::InvalidCommand(e) => write!(f, "command refused, nothing sent: {e}"),
            CommitError::BatchTooLarge {
                master,
                ops,
                bytes,
                limit_ops,
                limit_bytes,
            } => write!(
                f,
                "batch refused, nothing queued: {ops} commands ({bytes} bytes) for master \
                 {master}, whose queue holds at most {limit_ops} commands and {limit_bytes} bytes"
            ),
        }
    }
}

impl std::error::Error for CommitError {}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn commit_errors_that_were_never_sent_are_not_applied() {
        for err in [
            CommitError::Rejected,
            CommitError::Dropped,
            CommitError::Closed,
            CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            },
            CommitError::ConnectionLost {
                may_have_been_applied: false,
            },
        ] {
            assert!(!err.may_have_been_applied(), "{err:?}");
            assert!(err.to_string().len() > 10);
        }
    }

    #[test]
    fn a_write_that_may_be_applied_is_never_retryable() {
        for err in [
            CommitError::DeadlineExceeded {
                may_have_been_applied: true,
            },
            CommitError::ConnectionLost {
                may_have_been_applied: true,
            },
            CommitError::ReplicationShortfall {
                wanted: 1,
                confirmed: 0,
            },
        ] {
            assert!(err.may_have_been_applied(), "{err:?}");
            assert!(!err.is_retryable(), "{err:?}");
        }
    }

    #[test]
    fn error_display_names_the_node() {
        let err = Error::Auth {
            addr: "127.0.0.1:7000".into(),
            message: "WRONGPASS invalid username-password pair".into(),
        };
        assert_eq!(
            err.to_string(),
            "127.0.0.1:7000: authentication failed: WRONGPASS invalid username-password pair"
        );
        let err = Error::NoReachableNode {
            tried: vec!["a:1".into(), "b:2".into()],
            last: Some(Box::new(Error::Closed { addr: "b:2".into() })),
        };
        assert!(err.to_string().contains("tried a:1, b:2"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
