//! One connection to one node: a socket whose buffers are set before it connects, and
//! pipelines of RESP commands read back into a fixed buffer.
//!
//! # The socket
//!
//! The socket is built with `socket2` so that `SO_SNDBUF`, `SO_RCVBUF` and `TCP_NODELAY`
//! (`tcp_tuning`) are set *before* `connect`: the kernel sizes the TCP window from the receive
//! buffer during the handshake, and an explicit size turns off Linux's buffer auto-tuning for
//! the socket, so the buffers cannot grow under a burst. [`Conn::send_buffer_size`] and friends
//! read the values back from the kernel (Linux reports twice what was asked, for its own
//! bookkeeping, capped by `net.core.wmem_max` / `rmem_max`).
//!
//! # Pipelines and their buffers
//!
//! A pipeline writes N commands, then reads N replies, in order. Both directions go through
//! buffers whose size is fixed when the connection is made ([`ConnOptions::write_buffer`],
//! [`ConnOptions::read_buffer`], 64 KiB each by default):
//!
//! - Commands are copied into the write buffer and it is written to the socket whenever the
//!   next command would not fit; a command larger than the whole buffer is written straight from
//!   the caller's bytes. [`Conn::write_cmd`] packs a `redis::Cmd` into the buffer; only a single
//!   command larger than the buffer can make it grow, and it is shrunk back after the flush.
//! - Replies are read into the read buffer and cut into frames by a small RESP scanner; each
//!   complete frame is decoded with `redis::parse_redis_value`. A single reply larger than the
//!   read buffer is an [`Error::Protocol`] (the write path's replies are a few bytes: `+OK`,
//!   integers, error lines).
//!
//! An error reply fails only its own command: the sink receives `Err(ServerError)` for it and
//! the pipeline goes on. Anything else (I/O error, timeout, malformed reply) leaves the reply
//! stream out of step with the requests, so the connection is marked broken
//! ([`Conn::is_broken`]) and refuses further use.
//!
//! Writing all N commands before reading is safe with Redis, which keeps reading while its
//! replies queue in its output buffer; N is bounded by the caller (`batching.max_batch`).
//!
//! # TLS
//!
//! With [`ConnOptions::tls`] set (the `tls` section, or a `rediss://` seed), the same socket,
//! its options already set and connected, is wrapped in a rustls stream after a handshake
//! bounded by `dial_timeout`; everything above (buffers, pipelines, `AUTH`) is unchanged, and
//! the socket options still read back from the socket underneath. The [`tls`] module explains
//! the trust rules and rustls's own (bounded) buffers.

pub mod tls;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::{ServerError, Value};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::config::{Config, NodeAddr, Password};
use crate::error::Error;
use tls::{TlsConnector, TlsStream};

/// The outcome of one command in a pipeline: its reply, or the error reply the node sent for it.
pub type Reply = Result<Value, ServerError>;

/// Default size of a connection's read buffer and write buffer, in bytes.
pub const DEFAULT_BUFFER: usize = 64 * 1024;
/// Smallest accepted read or write buffer, in bytes.
pub const MIN_BUFFER: usize = 512;

/// Everything a connection needs: timeouts and socket options from [`Config`], credentials,
/// and the sizes of its two buffers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use slotline_client::{conn::ConnOptions, Config};
///
/// let opts = ConnOptions::from_config(&Config::default());
/// assert_eq!(opts.dial_timeout, Duration::from_secs(2));
/// assert_eq!(opts.so_sndbuf, 4 << 20);
/// assert_eq!(opts.read_buffer, 64 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnOptions {
    /// Limit on TCP connect, and on each read/write of `AUTH` during connect.
    pub dial_timeout: Duration,
    /// Limit on one blocking socket read.
    pub read_timeout: Duration,
    /// Limit on one blocking socket write.
    pub write_timeout: Duration,
    /// `SO_RCVBUF` in bytes, set before connect.
    pub so_rcvbuf: usize,
    /// `SO_SNDBUF` in bytes, set before connect.
    pub so_sndbuf: usize,
    /// `TCP_NODELAY`.
    pub tcp_nodelay: bool,
    /// ACL user for `AUTH username password`; needs `password`.
    pub username: Option<String>,
    /// Password for `AUTH [username] password`; `Debug` prints `"***"`.
    pub password: Option<Password>,
    /// Read buffer size in bytes (at least [`MIN_BUFFER`]); the largest single reply accepted.
    pub read_buffer: usize,
    /// Write buffer size in bytes (at least [`MIN_BUFFER`]).
    pub write_buffer: usize,
    /// TLS for every connection made with these options (whatever the node's scheme), or
    /// `None` for plaintext; a `rediss://` node then fails with [`Error::TlsUnsupported`].
    pub tls: Option<TlsConnector>,
}

impl ConnOptions {
    /// Options taken from `redis_pool`, `tcp_tuning`, `auth` and `tls`, with the default
    /// buffer sizes.
    ///
    /// TLS is on when [`Config::tls_enabled`] says so. This cannot fail: if the TLS files
    /// cannot be read (a configuration that was never validated, or a file removed since),
    /// every connect reports why.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::{conn::ConnOptions, Config};
    ///
    /// let config = Config::from_yaml_str("auth: { password: pw }")?;
    /// let opts = ConnOptions::from_config(&config);
    /// assert_eq!(opts.password.unwrap().expose(), "pw");
    /// # Ok::<(), slotline_client::ConfigError>(())
    /// ```
    pub fn from_config(config: &Config) -> ConnOptions {
        ConnOptions {
            dial_timeout: config.redis_pool.dial_timeout,
            read_timeout: config.redis_pool.read_timeout,
            write_timeout: config.redis_pool.write_timeout,
            so_rcvbuf: config.tcp_tuning.so_rcvbuf,
            so_sndbuf: config.tcp_tuning.so_sndbuf,
            tcp_nodelay: config.tcp_tuning.tcp_nodelay,
            username: config.auth.username.clone(),
            password: config.auth.password.clone(),
            read_buffer: DEFAULT_BUFFER,
            write_buffer: DEFAULT_BUFFER,
            tls: config
                .tls_enabled()
                .then(|| TlsConnector::new_or_deferred(&config.tls)),
        }
    }

    /// These options with the node's own URL credentials, when it has any, in place of `auth`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::{conn::ConnOptions, config::NodeAddr};
    ///
    /// let node: NodeAddr = "redis://app:pw@127.0.0.1:7000".parse()?;
    /// let opts = ConnOptions::default().for_node(&node);
    /// assert_eq!(opts.username.as_deref(), Some("app"));
    /// # Ok::<(), slotline_client::config::NodeAddrError>(())
    /// ```
    pub fn for_node(&self, node: &NodeAddr) -> ConnOptions {
        let mut opts = self.clone();
        if let Some(password) = node.password() {
            opts.username = node.username().map(str::to_owned);
            opts.password = Some(password.clone());
        }
        opts
    }
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions::from_config(&Config::default())
    }
}

/// A connection to one node. See the [module docs](self) for the buffers and error handling.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::conn::{Conn, ConnOptions};
/// use slotline_client::config::NodeAddr;
///
/// let mut conn = Conn::connect(&NodeAddr::new("127.0.0.1", 6379), &ConnOptions::default())?;
/// let reply = conn.query(redis::cmd("SET").arg("k").arg("v"))?;
/// assert_eq!(reply, Ok(redis::Value::Okay));
/// # Ok::<(), slotline_client::Error>(())
/// ```
pub struct Conn {
    /// `host:port` for error messages.
    addr: String,
    stream: Stream,
    /// Fixed-size read buffer; `rbuf[rstart..rend]` holds received bytes not yet decoded.
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
    /// Commands not yet written to the socket; its length stays below `wcap` except while one
    /// oversized `Cmd` is packed.
    wbuf: Vec<u8>,
    wcap: usize,
    /// Commands written (or buffered) whose replies have not been read.
    unread: usize,
    /// Set by any error that leaves the reply stream out of step; the connection is then
    /// refused for further use.
    broken: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("tls", &self.is_tls())
            .field("unread", &self.unread)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects to `node`: builds the socket, sets its buffers and `TCP_NODELAY`, connects
    /// within `dial_timeout` (trying each resolved address in turn), runs the TLS handshake
    /// within another `dial_timeout` when [`ConnOptions::tls`] is set, sets the read and
    /// write timeouts, and sends `AUTH` when credentials are configured.
    ///
    /// # Errors
    ///
    /// [`Error::TlsUnsupported`] for a `rediss://` node when `opts.tls` is `None`;
    /// [`Error::Timeout`] / [`Error::Io`] when the node cannot be reached or the handshake
    /// does not finish (`during: "TLS handshake"`); [`Error::Io`] carrying a
    /// [`tls::TlsError`] when the node's certificate is not trusted or the handshake is
    /// refused ([`tls::TlsError::find`]); [`Error::Auth`] when `AUTH` is refused.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use slotline_client::conn::{Conn, ConnOptions};
    /// use slotline_client::config::NodeAddr;
    ///
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert!(conn.nodelay()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(node: &NodeAddr, opts: &ConnOptions) -> Result<Conn, Error> {
        let addr = node.to_string();
        if node.is_tls() && opts.tls.is_none() {
            return Err(Error::TlsUnsupported { addr });
        }
        let opts = opts.for_node(node);
        let io_err = |source| Error::Io {
            addr: addr.clone(),
            source,
        };
        let targets = node.resolve().map_err(io_err)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
        let mut stream = None;
        for target in targets {
            match open_socket(target, &opts) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last = err,
            }
        }
        let tcp = match stream {
            Some(stream) => stream,
            None if is_timeout(&last) => {
                return Err(Error::Timeout {
                    addr,
                    during: "connect",
                })
            }
            None => return Err(io_err(last)),
        };
        let stream = match &opts.tls {
            Some(tls) => Stream::Tls(Box::new(tls.handshake(
                tcp,
                node.host(),
                &addr,
                opts.dial_timeout,
            )?)),
            None => Stream::Plain(tcp),
        };
        // AUTH runs under the dial timeout; the configured timeouts apply afterwards.
        let tcp = stream.tcp();
        tcp.set_read_timeout(Some(opts.dial_timeout))
            .and_then(|()| tcp.set_write_timeout(Some(opts.dial_timeout)))
            .map_err(io_err)?;

        let read_buffer = opts.read_buffer.max(MIN_BUFFER);
        let write_buffer = opts.write_buffer.max(MIN_BUFFER);
        let mut conn = Conn {
            addr,
            stream,
            rbuf: vec![0; read_buffer].into_boxed_slice(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(write_buffer),
            wcap: write_buffer,
            unread: 0,
            broken: false,
        };
        if let Some(password) = &opts.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &opts.username {
                auth.arg(user);
            }
            auth.arg(password.expose());
            if let Err(err) = conn.query(&auth)? {
                return Err(Error::Auth {
                    addr: conn.addr,
                    message: server_error_text(&err),
                });
            }
        }
        let tcp = conn.stream.tcp();
        tcp.set_read_timeout(Some(opts.read_timeout))
            .and_then(|()| tcp.set_write_timeout(Some(opts.write_timeout)))
            .map_err(|source| Error::Io {
                addr: conn.addr.clone(),
                source,
            })?;
        Ok(conn)
    }

    /// The node this connection talks to, `host:port`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert_eq!(conn.addr(), "127.0.0.1:7000");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether this connection runs over TLS.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert!(!conn.is_tls());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Whether an earlier error left the connection unusable. Every call then fails with
    /// [`Error::Closed`]; drop it and connect again.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert!(!conn.is_broken());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    ///
    /// As [`Conn::read_reply`]. An error reply is `Ok(Err(ServerError))`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// let pong = conn.query(&redis::cmd("PING"))?;
    /// assert_eq!(pong, Ok(redis::Value::SimpleString("PONG".into())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query(&mut self, cmd: &redis::Cmd) -> Result<Reply, Error> {
        self.write_cmd(cmd)?;
        self.flush()?;
        self.read_reply()
    }

    /// Sends every command, then reads one reply per command, handing each to `sink` with the
    /// command's index. Returns the number of commands.
    ///
    /// # Errors
    ///
    /// An I/O error, timeout or malformed reply stops the pipeline: `sink` has then seen the
    /// replies before it, and the connection is broken.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// let mut pipe = redis::pipe();
    /// pipe.cmd("SET").arg("a").arg(1).cmd("INCR").arg("a");
    /// let mut replies = Vec::new();
    /// conn.pipeline(pipe.cmd_iter(), |_, reply| replies.push(reply))?;
    /// assert_eq!(replies, [Ok(redis::Value::Okay), Ok(redis::Value::Int(2))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pipeline<'a, I, F>(&mut self, cmds: I, sink: F) -> Result<usize, Error>
    where
        I: IntoIterator<Item = &'a redis::Cmd>,
        F: FnMut(usize, Reply),
    {
        let mut n = 0;
        for cmd in cmds {
            self.write_cmd(cmd)?;
            n += 1;
        }
        self.flush()?;
        self.read_replies(n, sink)?;
        Ok(n)
    }

    /// [`Conn::pipeline`] for commands already encoded as RESP (such as the bytes a pending
    /// write carries). Each item must be exactly one complete command.
    ///
    /// # Errors
    ///
    /// As [`Conn::pipeline`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// let set = redis::cmd("SET").arg("k").arg("v").get_packed_command();
    /// let mut ok = 0;
    /// conn.pipeline_packed([set.as_slice(), set.as_slice()], |_, r| ok += r.is_ok() as usize)?;
    /// assert_eq!(ok, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pipeline_packed<'a, I, F>(&mut self, cmds: I, sink: F) -> Result<usize, Error>
    where
        I: IntoIterator<Item = &'a [u8]>,
        F: FnMut(usize, Reply),
    {
        let mut n = 0;
        for cmd in cmds {
            self.write_packed(cmd)?;
            n += 1;
        }
        self.flush()?;
        self.read_replies(n, sink)?;
        Ok(n)
    }

    /// Queues one command encoded as RESP: it is copied into the write buffer, which is written
    /// out first if the command does not fit; a command larger than the whole buffer is written
    /// directly. Call [`Conn::flush`] to send what is buffered.
    ///
    /// # Errors
    ///
    /// As [`Conn::flush`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// conn.write_packed(b"*1\r\n$4\r\nPING\r\n")?;
    /// conn.flush()?;
    /// assert!(conn.read_reply()?.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_packed(&mut self, cmd: &[u8]) -> Result<(), Error> {
        self.check_usable()?;
        if self.wbuf.len() + cmd.len() > self.wcap {
            self.flush()?;
        }
        if cmd.len() > self.wcap {
            let result = self.stream.send(cmd);
            self.io_result(result, "write")?;
        } else {
            self.wbuf.extend_from_slice(cmd);
        }
        self.unread += 1;
        Ok(())
    }

    /// Queues one `redis::Cmd`, packed straight into the write buffer. Call [`Conn::flush`] to
    /// send what is buffered.
    ///
    /// # Errors
    ///
    /// As [`Conn::flush`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// conn.write_cmd(redis::cmd("SET").arg("k").arg("v"))?;
    /// conn.write_cmd(redis::cmd("GET").arg("k"))?;
    /// conn.flush()?;
    /// assert_eq!(conn.read_reply()?, Ok(redis::Value::Okay));
    /// assert_eq!(conn.read_reply()?, Ok(redis::Value::BulkString(b"v".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_cmd(&mut self, cmd: &redis::Cmd) -> Result<(), Error> {
        self.check_usable()?;
        if self.wbuf.len() >= self.wcap {
            self.flush()?;
        }
        cmd.write_packed_command(&mut self.wbuf);
        self.unread += 1;
        if self.wbuf.len() >= self.wcap {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything buffered to the socket.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `write_timeout` without progress, [`Error::Io`] otherwise;
    /// either breaks the connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// conn.write_cmd(&redis::cmd("PING"))?;
    /// conn.flush()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let result = self.stream.send(&self.wbuf);
        self.wbuf.clear();
        if self.wbuf.capacity() > self.wcap {
            // One oversized command grew the buffer: give the memory back.
            self.wbuf.shrink_to(self.wcap);
        }
        self.io_result(result, "write")
    }

    /// Reads `n` replies, handing each to `sink` with its index `0..n`.
    ///
    /// # Errors
    ///
    /// As [`Conn::read_reply`]; `sink` has seen the replies before the failing one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// for i in 0..3 {
    ///     conn.write_cmd(redis::cmd("SET").arg(i).arg(i))?;
    /// }
    /// conn.flush()?;
    /// let mut errors = 0;
    /// conn.read_replies(3, |_, r| errors += r.is_err() as usize)?;
    /// assert_eq!(errors, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_replies<F>(&mut self, n: usize, mut sink: F) -> Result<(), Error>
    where
        F: FnMut(usize, Reply),
    {
        for i in 0..n {
            let reply = self.read_reply()?;
            sink(i, reply);
        }
        Ok(())
    }

    /// Reads the next reply. An error reply is `Ok(Err(ServerError))`: it fails only its own
    /// command.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `read_timeout` without a complete reply, [`Error::Closed`] at
    /// end of stream (or if the connection was already broken), [`Error::Io`], or
    /// [`Error::Protocol`] for a malformed reply, a reply larger than the read buffer, or a read
    /// with no command outstanding. Every error breaks the connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// conn.write_cmd(&redis::cmd("NOSUCHCOMMAND"))?;
    /// conn.flush()?;
    /// let err = conn.read_reply()?.unwrap_err();
    /// assert_eq!(err.code(), "ERR");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_reply(&mut self) -> Result<Reply, Error> {
        self.check_usable()?;
        if self.unread == 0 {
            return Err(self.break_with(Error::Protocol {
                addr: self.addr.clone(),
                message: "read_reply with no command outstanding".into(),
            }));
        }
        if !self.wbuf.is_empty() {
            self.flush()?;
        }
        loop {
            let pending = &self.rbuf[self.rstart..self.rend];
            match frame_len(pending) {
                Ok(Some(len)) => {
                    let frame = &pending[..len];
                    let value = if frame == b"+OK\r\n" {
                        Ok(Value::Okay)
                    } else {
                        redis::parse_redis_value(frame)
                    };
                    self.rstart += len;
                    if self.rstart == self.rend {
                        self.rstart = 0;
                        self.rend = 0;
                    }
                    self.unread -= 1;
                    return match value {
                        Ok(Value::ServerError(err)) => Ok(Err(err)),
                        Ok(value) => Ok(Ok(value)),
                        Err(err) => Err(self.break_with(Error::Protocol {
                            addr: self.addr.clone(),
                            message: err.to_string(),
                        })),
                    };
                }
                Ok(None) => self.fill()?,
                Err(message) => {
                    return Err(self.break_with(Error::Protocol {
                        addr: self.addr.clone(),
                        message: message.into(),
                    }))
                }
            }
        }
    }

    /// Changes the read timeout (for a command known to take longer, such as `WAIT`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the kernel refuses (a zero duration is refused).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let mut conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// conn.set_read_timeout(Duration::from_secs(2))?;
    /// assert_eq!(conn.read_timeout()?, Some(Duration::from_secs(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.stream
            .tcp()
            .set_read_timeout(Some(timeout))
            .map_err(|source| Error::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    /// The read timeout, as the kernel reports it.
    ///
    /// # Errors
    ///
    /// What the kernel says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert_eq!(conn.read_timeout()?, Some(Duration::from_millis(500)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.stream.tcp().read_timeout()
    }

    /// The write timeout, as the kernel reports it.
    ///
    /// # Errors
    ///
    /// What the kernel says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert_eq!(conn.write_timeout()?, Some(Duration::from_millis(500)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.stream.tcp().write_timeout()
    }

    /// `SO_SNDBUF` as the kernel reports it (on Linux, twice the requested size, capped by
    /// `net.core.wmem_max`).
    ///
    /// # Errors
    ///
    /// What the kernel says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// println!("SO_SNDBUF = {}", conn.send_buffer_size()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.stream.tcp()).send_buffer_size()
    }

    /// `SO_RCVBUF` as the kernel reports it (on Linux, twice the requested size, capped by
    /// `net.core.rmem_max`).
    ///
    /// # Errors
    ///
    /// What the kernel says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// println!("SO_RCVBUF = {}", conn.recv_buffer_size()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.stream.tcp()).recv_buffer_size()
    }

    /// `TCP_NODELAY` as the kernel reports it.
    ///
    /// # Errors
    ///
    /// What the kernel says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::{Conn, ConnOptions};
    /// let conn = Conn::connect(&"127.0.0.1:7000".parse()?, &ConnOptions::default())?;
    /// assert!(conn.nodelay()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.stream.tcp().nodelay()
    }

    /// Reads more bytes into the read buffer, first moving undecoded bytes to its start if the
    /// buffer's tail is full.
    fn fill(&mut self) -> Result<(), Error> {
        if self.rend == self.rbuf.len() {
            if self.rstart == 0 {
                let limit = self.rbuf.len();
                return Err(self.break_with(Error::Protocol {
                    addr: self.addr.clone(),
                    message: format!("reply larger than the read buffer ({limit} bytes)"),
                }));
            }
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                // A TLS peer that goes away without `close_notify` is an unexpected EOF.
                Ok(0) => {
                    return Err(self.break_with(Error::Closed {
                        addr: self.addr.clone(),
                    }))
                }
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.break_with(Error::Closed {
                        addr: self.addr.clone(),
                    }))
                }
                Ok(n) => {
                    self.rend += n;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return self.io_result(Err(err), "read"),
            }
        }
    }

    fn check_usable(&self) -> Result<(), Error> {
        if self.broken {
            Err(Error::Closed {
                addr: self.addr.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn break_with(&mut self, err: Error) -> Error {
        self.broken = true;
        err
    }

    fn io_result(&mut self, result: io::Result<()>, during: &'static str) -> Result<(), Error> {
        match result {
            Ok(()) => Ok(()),
            Err(err) if is_timeout(&err) => Err(self.break_with(Error::Timeout {
                addr: self.addr.clone(),
                during,
            })),
            Err(source) => {
                let tls_failure = match self.stream {
                    Stream::Tls(_) => tls::stream_error(&source, false),
                    Stream::Plain(_) => None,
                };
                let err = match tls_failure {
                    Some(tls) => tls.into_error(&self.addr),
                    None => Error::Io {
                        addr: self.addr.clone(),
                        source,
                    },
                };
                Err(self.break_with(err))
            }
        }
    }
}

/// A blocking socket with a timeout reports it as `WouldBlock` (Unix) or `TimedOut` (Windows).
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The connection's byte stream: the socket itself, or rustls over it.
enum Stream {
    Plain(TcpStream),
    /// Boxed: a rustls connection is a few hundred bytes more than a socket.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The socket underneath, for timeouts and socket options.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    /// Writes all of `bytes` to the socket. Over TLS the records are flushed too, so a write
    /// that fails or times out is reported here, not by a later call.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes),
            Stream::Tls(tls) => {
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

fn open_socket(target: std::net::SocketAddr, opts: &ConnOptions) -> io::Result<TcpStream> {
    let socket = tuned_socket(target, opts)?;
    socket.connect_timeout(&target.into(), opts.dial_timeout)?;
    Ok(TcpStream::from(socket))
}

/// A TCP socket for `target` with `tcp_tuning` applied, not yet connected (the options must be
/// set before connect). Shared by the blocking [`Conn`] and the engine's non-blocking links.
pub(crate) fn tuned_socket(target: std::net::SocketAddr, opts: &ConnOptions) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_recv_buffer_size(opts.so_rcvbuf)?;
    socket.set_send_buffer_size(opts.so_sndbuf)?;
    socket.set_tcp_nodelay(opts.tcp_nodelay)?;
    Ok(socket)
}

/// An error reply as the server wrote it: code, a space, the detail.
pub(crate) fn server_error_text(err: &ServerError) -> String {
    match err.details() {
        Some(detail) => format!("{} {detail}", err.code()),
        None => err.code().to_owned(),
    }
}

/// Deepest nesting of aggregates accepted in one reply. The write path's replies are flat;
/// `CLUSTER SHARDS` nests four levels. The limit keeps a hostile reply from exhausting the
/// stack of the recursive decoder that runs after framing.
pub(crate) const MAX_REPLY_DEPTH: usize = 32;

/// The length of the first complete RESP frame in `buf`, `None` if more bytes are needed, or
/// why the bytes cannot be a reply.
///
/// Iterative with a fixed-size stack: `todo[depth]` counts the elements still to be framed at
/// each nesting level, and an aggregate header opens a level with its element count. RESP2 and
/// RESP3 types are both understood.
pub(crate) fn frame_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut todo = [0u64; MAX_REPLY_DEPTH];
    let mut depth = 0;
    todo[0] = 1;
    let mut pos = 0;
    loop {
        while todo[depth] == 0 {
            if depth == 0 {
                return Ok(Some(pos));
            }
            depth -= 1;
        }
        todo[depth] -= 1;
        let Some(kind) = buf.get(pos).copied() else {
            return Ok(None);
        };
        let Some(line_len) = buf[pos + 1..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[pos + 1..pos + 1 + line_len];
        pos += 1 + line_len + 2;
        let children = match kind {
            // Simple string, error, integer, null, double, boolean, big number: one line.
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => 0,
            // Bulk string, bulk error, verbatim string: a length line, the bytes, CRLF.
            b'$' | b'!' | b'=' => {
                let len = parse_len(line)?;
                if len >= 0 {
                    let len = usize::try_from(len).map_err(|_| "bulk length too large")?;
                    let end = pos.checked_add(len).ok_or("bulk length too large")?;
                    let Some(tail) = buf.get(end..end + 2) else {
                        return Ok(None);
                    };
                    if tail != b"\r\n" {
                        return Err("bulk string not terminated by CRLF");
                    }
                    pos = end + 2;
                }
                0 // `$-1`: null bulk string
            }
            // Array, set, push: that many elements follow (`*-1`: null array).
            b'*' | b'~' | b'>' => parse_len(line)?.max(0) as u64,
            // Map: key and value per entry.
            b'%' => 2 * parse_len(line)?.max(0) as u64,
            // Attribute: key and value per entry, then the value it annotates.
            b'|' => 2 * parse_len(line)?.max(0) as u64 + 1,
            _ => return Err("unknown RESP type byte"),
        };
        if children > 0 {
            depth += 1;
            if depth == MAX_REPLY_DEPTH {
                return Err("reply nested too deeply");
            }
            todo[depth] = children;
        }
    }
}

fn parse_len(line: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|&n| n >= -1 && n <= i64::from(u32::MAX))
        .ok_or("bad length in reply header")
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::frame_len;

    #[test]
    fn frame_len_finds_complete_frames_of_every_type() {
        for frame in [
            &b"+OK\r\n"[..],
            b"-ERR bad\r\n",
            b":42\r\n",
            b"$3\r\nfoo\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+k\r\n:1\r\n",
            b"|1\r\n+a\r\n+b\r\n:7\r\n",
            b"_\r\n",
            b"=7\r\ntxt:abc\r\n",
        ] {
            assert_eq!(frame_len(frame), Ok(Some(frame.len())), "frame={frame:?}");
            let mut two = frame.to_vec();
            two.extend_from_slice(b"+OK\r\n");
            assert_eq!(frame_len(&two), Ok(Some(frame.len())), "frame={frame:?}");
            for cut in 0..frame.len() {
                assert_eq!(
                    frame_len(&frame[..cut]),
                    Ok(None),
                    "frame={frame:?} cut={cut}"
                );
            }
        }
    }

    #[test]
    fn frame_len_rejects_garbage_without_panicking() {
        for bad in [
            &b"?\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nfooXX",
            b"*-5\r\n",
            b"$99999999999999999999\r\n",
        ] {
            assert!(frame_len(bad).is_err(), "bad={bad:?}");
        }
    }

    #[test]
    fn frame_len_accepts_nesting_to_the_limit_and_rejects_deeper() {
        let mut ok = b"*1\r\n".repeat(super::MAX_REPLY_DEPTH - 1);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&ok), Ok(Some(ok.len())));
        assert!(redis::parse_redis_value(&ok).is_ok());
        let mut deep = b"*1\r\n".repeat(100_000);
        deep.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&deep), Err("reply nested too deeply"));
    }
}
