//! [`LocalServer`]: one standalone (non-cluster) `redis-server`, with ACL users,
//! `requirepass` or TLS as its builder says.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use slotline_client::config::{NodeAddr, Password};
use slotline_client::conn::Reply;

use crate::error::io_context;
use crate::process::{binaries, Process, ServerOptions};
use crate::{LocalError, TlsFiles};

/// Builds a [`LocalServer`].
///
/// # Examples
///
/// ```no_run
/// use slotline_testkit::LocalServer;
///
/// let server = LocalServer::builder()
///     .acl_user("writer on >pw ~* +@all")
///     .requirepass("admin-pw")
///     .start()?;
/// # Ok::<(), slotline_testkit::LocalError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct LocalServerBuilder {
    server: ServerOptions,
}

impl LocalServerBuilder {
    /// Adds one `redis-server` argument.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::builder().arg("--maxclients").arg("16").start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.server.args.push(arg.into());
        self
    }

    /// Adds an ACL user: `rule` is an `ACL SETUSER` line without the verb, such as
    /// `"writer on >pw ~* +@all"` (user name first, then the rules, separated by spaces).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::builder().acl_user("writer on >pw ~* +@write").start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn acl_user(mut self, rule: &str) -> Self {
        // redis-server reads `--user` and the words after it as one directive; a single
        // argument with spaces would be taken as a user name containing spaces.
        self.server.args.push("--user".into());
        self.server
            .args
            .extend(rule.split_whitespace().map(str::to_owned));
        self
    }

    /// Sets `requirepass` (the `default` user's password). The server's own helpers
    /// authenticate with it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::builder().requirepass("pw").start()?;
    /// assert_eq!(s.cli(&["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.server.password = Some(Password::new(password));
        self
    }

    /// Runs the server TLS-only: `--port 0 --tls-port P` with the certificate, key and CA of
    /// `files`, and `--tls-auth-clients` as `files.auth_clients` says. [`LocalServer::addr`]
    /// is then the TLS port, and the server's helpers connect with TLS.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::{LocalServer, TlsFiles};
    /// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// let s = LocalServer::builder().tls(&files).start()?;
    /// assert_eq!(s.cli(&["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.server.tls = Some(files.clone());
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// [`LocalError::RedisServerNotFound`] / [`LocalError::RedisTooOld`], or what failed while
    /// starting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::builder().start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn start(self) -> Result<LocalServer, LocalError> {
        binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("slotline-server-")
            .tempdir()
            .map_err(io_context("creating a temporary directory"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let process = Process::start(dir.path(), false, &self.server, deadline)?;
        Ok(LocalServer { process, dir })
    }
}

/// One standalone (non-cluster) `redis-server` on a free loopback port; stopped on drop.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::conn::{Conn, ConnOptions};
/// use slotline_testkit::LocalServer;
///
/// let server = LocalServer::start()?;
/// let mut conn = Conn::connect(&server.addr(), &ConnOptions::default())?;
/// assert!(conn.query(&redis::cmd("PING"))?.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalServer {
    process: Process,
    // Declared last so it is removed after the process has stopped.
    dir: tempfile::TempDir,
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer")
            .field("port", &self.process.port)
            .field("pid", &self.process.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl LocalServer {
    /// Starts a server with default settings.
    ///
    /// # Errors
    ///
    /// As [`LocalServerBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.port() > 0);
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn start() -> Result<LocalServer, LocalError> {
        LocalServer::builder().start()
    }

    /// A builder for ACL users, `requirepass` and other arguments.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::builder().requirepass("pw").start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn builder() -> LocalServerBuilder {
        LocalServerBuilder::default()
    }

    /// The server's address, `127.0.0.1:port`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert_eq!(s.addr().port(), s.port());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn addr(&self) -> NodeAddr {
        self.process.addr()
    }

    /// The server's port.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.port() > 0);
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The server's process id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.pid().is_some());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The server's log file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.log_path().exists());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    /// The TLS files the server was started with, if it runs TLS.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.tls().is_none());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.process.tls.as_ref().map(|tls| &tls.files)
    }

    /// Runs `redis-cli -p <port> args...` (with `--tls` and the [`TlsFiles`] for a TLS
    /// server) and returns what it printed.
    ///
    /// # Errors
    ///
    /// [`LocalError::Command`] when `redis-cli` fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// s.cli(&["SET", "k", "v"])?;
    /// assert_eq!(s.cli(&["GET", "k"])?.trim(), "v");
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn cli(&self, args: &[&str]) -> Result<String, LocalError> {
        self.process.cli(args)
    }

    /// Sends one command on a fresh connection (authenticated with `requirepass` if set).
    ///
    /// # Errors
    ///
    /// [`LocalError::Command`] when the server cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert_eq!(s.query(&redis::cmd("DBSIZE"))?, Ok(redis::Value::Int(0)));
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn query(&self, cmd: &redis::Cmd) -> Result<Reply, LocalError> {
        self.process.query(cmd).map_err(|e| LocalError::Command {
            port: self.process.port,
            message: e.to_string(),
        })
    }
}
