//! Real `redis-server` processes on free loopback ports, for tests, benches and demos:
//! [`LocalCluster`] (cluster mode, 3 masters + 3 replicas by default) and [`LocalServer`]
//! (one standalone server).
//!
//! Every node runs as a child process with its own directory in a temporary directory, its
//! output going to `redis.log` there. A cluster is formed with
//! `redis-cli --cluster create ... --cluster-replicas R --cluster-yes` (or, for fewer than three
//! masters, which `redis-cli` refuses, with `CLUSTER ADDSLOTSRANGE` / `MEET` / `REPLICATE`),
//! and [`LocalClusterBuilder::start`] returns only once the cluster is healthy:
//!
//! - every node reports `cluster_state:ok` with all 16384 slots assigned (`CLUSTER INFO`);
//! - every replica reports `master_link_status:up` (`INFO replication`);
//! - every node's `CLUSTER NODES` shows the same masters with the same slots, the same
//!   replica→master pairs, and no node in `fail`, `pfail` or `handshake` state.
//!
//! A 3 + 3 cluster is healthy about 2.1 s after the call: Redis keeps a master's cluster state
//! at `fail` for 2 s after the process starts (`CLUSTER_WRITABLE_DELAY`), so that floor, not
//! the set-up, dominates. [`LocalCluster::startup_time`] reports the figure.
//!
//! On drop every process is killed (`SIGKILL`), reaped, and its port polled until it stops
//! answering: a dead process can linger as a zombie holding its port for a moment, so
//! "the process is gone" is decided by the port, not by `kill -0`. The directory is then removed.
//!
//! With [`LocalServerBuilder::tls`] / [`LocalClusterBuilder::tls`] the servers listen only
//! on a TLS port (`--port 0 --tls-port P`); cluster nodes also speak TLS on the cluster bus
//! and for replication (`--tls-cluster yes --tls-replication yes`). The helpers here
//! ([`LocalServer::query`], [`LocalCluster::cli`], the health checks) then connect with TLS
//! too, verifying the server against the CA in [`TlsFiles`].
//!
//! Ports are picked by binding `127.0.0.1:0`, and a port is used only if `port + 10000` (the
//! cluster bus) is free too. Ports handed out stay reserved in this process until their
//! server is dropped, so tests running in parallel threads never pick the same one; a server
//! that still loses a race for its port (to another process) is restarted on a new one.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Config, NodeAddr, Password, Tls};
use crate::conn::tls::{TlsConnector, TlsError};
use crate::conn::{server_error_text, Conn, ConnOptions, Reply};
use crate::error::Error;

/// The oldest `redis-server` major version accepted.
pub const MIN_REDIS_MAJOR: u32 = 7;

const INSTALL_HINT: &str =
    "install it with `apt-get install redis-server redis-tools` (redis-server ≥ 7 required)";

/// Something went wrong starting, controlling or stopping local Redis processes.
///
/// # Examples
///
/// ```
/// use slotline_client::local::LocalError;
///
/// let err = LocalError::RedisServerNotFound;
/// assert!(err.to_string().contains("apt-get install redis-server redis-tools"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LocalError {
    /// `redis-server` (or `redis-cli`) is not on `PATH`.
    RedisServerNotFound,
    /// `redis-server` is older than [`MIN_REDIS_MAJOR`].
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
    /// The [`TlsFiles`] cannot be used by the helpers' own connections.
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

fn io_context(context: impl Into<String>) -> impl FnOnce(io::Error) -> LocalError {
    let context = context.into();
    move |source| LocalError::Io { context, source }
}

// ---------------------------------------------------------------------------------------------
// Binaries and ports
// ---------------------------------------------------------------------------------------------

struct Binaries {
    server: PathBuf,
    cli: PathBuf,
}

/// Finds `redis-server` and `redis-cli` on `PATH` and checks the server's version, once per
/// process.
fn binaries() -> Result<&'static Binaries, LocalError> {
    static FOUND: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let (Some(server), Some(cli)) = (which("redis-server"), which("redis-cli")) else {
            return Err(String::new());
        };
        let output = Command::new(&server)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match parse_major_version(&version) {
            Some(major) if major >= MIN_REDIS_MAJOR => Ok(Binaries { server, cli }),
            _ => Err(version),
        }
    });
    match found {
        Ok(bins) => Ok(bins),
        Err(version) if version.is_empty() => Err(LocalError::RedisServerNotFound),
        Err(version) => Err(LocalError::RedisTooOld {
            version: version.clone(),
        }),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The major version in `redis-server --version` output (`Redis server v=7.0.15 sha=...`).
fn parse_major_version(version: &str) -> Option<u32> {
    let v = version.split("v=").nth(1)?;
    v.split('.').next()?.parse().ok()
}

/// Ports handed out in this process and not yet released.
static RESERVED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Picks a port whose cluster bus port (`+10000`) is free too, and reserves it.
fn reserve_port() -> Result<u16, LocalError> {
    for _ in 0..200 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(io_context("binding 127.0.0.1:0 to pick a port"))?;
        let port = listener
            .local_addr()
            .map_err(io_context("reading a bound port"))?
            .port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_err() {
            continue;
        }
        let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if reserved.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(LocalError::NoFreePort)
}

fn release_port(port: u16) {
    let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = reserved.as_mut() {
        set.remove(&port);
    }
}

fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// One server process
// ---------------------------------------------------------------------------------------------

/// The PEM files of a TLS server: its certificate and key, and the CA that signed them.
///
/// The server trusts `ca_file` for client certificates, and cluster nodes present their own
/// certificate when they connect to each other (cluster bus, replication), so the certificate
/// must allow both server and client authentication (no extended key usage, or both), carry
/// `127.0.0.1` as an IP subject alternative name, and be signed by the CA in `ca_file`.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::local::{LocalServer, TlsFiles};
///
/// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
/// let server = LocalServer::builder().tls(&files).start()?;
/// assert!(server.tls().is_some());
/// # Ok::<(), slotline_client::local::LocalError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed `cert_file`; the server trusts it for clients.
    pub ca_file: PathBuf,
    /// The server's certificate (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
    /// `tls-auth-clients yes`: clients must present a certificate signed by `ca_file`.
    /// Default false (`tls-auth-clients no`).
    pub auth_clients: bool,
}

impl TlsFiles {
    /// The three files, with client certificates not required.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::local::TlsFiles;
    ///
    /// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// assert!(!files.auth_clients);
    /// ```
    pub fn new(
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> TlsFiles {
        TlsFiles {
            ca_file: ca_file.into(),
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            auth_clients: false,
        }
    }

    /// The `tls` section a client of these servers needs: TLS on, `ca_file`, and, when the
    /// servers require client certificates, the server's own certificate and key as the
    /// client's (they are signed by the trusted CA).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::local::TlsFiles;
    ///
    /// let mut files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// assert!(files.client_settings().client_cert_file.is_none());
    /// files.auth_clients = true;
    /// assert_eq!(files.client_settings().client_key_file, Some("server.key".into()));
    /// ```
    pub fn client_settings(&self) -> Tls {
        Tls {
            enabled: true,
            ca_file: Some(self.ca_file.clone()),
            server_name: None,
            client_cert_file: self.auth_clients.then(|| self.cert_file.clone()),
            client_key_file: self.auth_clients.then(|| self.key_file.clone()),
        }
    }

    /// `redis-server` arguments for a TLS-only server on `port`.
    fn server_args(&self, port: u16, cluster: bool) -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            self.cert_file.display().to_string(),
            "--tls-key-file".into(),
            self.key_file.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca_file.display().to_string(),
            "--tls-auth-clients".into(),
            if self.auth_clients { "yes" } else { "no" }.into(),
        ];
        if cluster {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
        }
        args
    }

    /// `redis-cli` arguments to reach a server started with these files.
    fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".to_owned(),
            "--cacert".into(),
            self.ca_file.display().to_string(),
            "--cert".into(),
            self.cert_file.display().to_string(),
            "--key".into(),
            self.key_file.display().to_string(),
        ]
    }
}

/// The helpers' own TLS: the files, and a connector that presents the server's certificate
/// as a client certificate (needed when the server requires one).
#[derive(Clone, Debug)]
struct LocalTls {
    files: TlsFiles,
    connector: TlsConnector,
}

impl LocalTls {
    fn new(files: &TlsFiles) -> Result<LocalTls, LocalError> {
        let mut settings = files.client_settings();
        settings.client_cert_file = Some(files.cert_file.clone());
        settings.client_key_file = Some(files.key_file.clone());
        let connector = TlsConnector::new(&settings).map_err(LocalError::Tls)?;
        Ok(LocalTls {
            files: files.clone(),
            connector,
        })
    }
}

/// Options shared by cluster nodes and standalone servers.
#[derive(Clone, Debug, Default)]
struct ServerOptions {
    args: Vec<String>,
    password: Option<Password>,
    tls: Option<TlsFiles>,
}

/// One `redis-server` child process and the port it owns.
struct Process {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    password: Option<Password>,
    tls: Option<LocalTls>,
    child: Option<Child>,
}

impl Process {
    /// Starts a server on a fresh port in `parent/<port>`, retrying on a new port when the
    /// server exits at once (another process took the port).
    fn start(
        parent: &Path,
        cluster: bool,
        opts: &ServerOptions,
        deadline: Instant,
    ) -> Result<Process, LocalError> {
        let tls = opts.tls.as_ref().map(LocalTls::new).transpose()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = reserve_port()?;
            let dir = parent.join(port.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(io_context(format!("creating {}", dir.display())))?;
            let mut args = match &tls {
                Some(tls) => tls.files.server_args(port, cluster),
                None => vec!["--port".to_owned(), port.to_string()],
            };
            args.extend([
                "--bind".into(),
                "127.0.0.1".into(),
                "--daemonize".into(),
                "no".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--enable-debug-command".into(),
                "local".into(),
            ]);
            if cluster {
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "1000",
                        "--repl-diskless-sync-delay",
                        "0",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from),
                );
            }
            if let Some(pw) = &opts.password {
                args.extend(["--requirepass".into(), pw.expose().to_owned()]);
                if cluster {
                    args.extend(["--masterauth".into(), pw.expose().to_owned()]);
                }
            }
            args.extend(opts.args.iter().cloned());
            let mut process = Process {
                port,
                dir,
                args,
                password: opts.password.clone(),
                tls: tls.clone(),
                child: None,
            };
            match process.spawn().and_then(|()| process.wait_ready(deadline)) {
                Ok(()) => return Ok(process),
                Err(LocalError::ServerExited { ref log_tail, .. })
                    if attempt < 3 && log_tail.contains("Address already in use") =>
                {
                    drop(process); // releases the port
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), LocalError> {
        let bins = binaries()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_context(format!("opening {}", self.log_path().display())))?;
        let log2 = log
            .try_clone()
            .map_err(io_context("duplicating the log file handle"))?;
        let child = Command::new(&bins.server)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_context(format!("starting {}", bins.server.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the server answers `PING` (with `AUTH` when it has a password).
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), LocalError> {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_status)) = child.try_wait() {
                    self.child = None;
                    return Err(LocalError::ServerExited {
                        port: self.port,
                        log_tail: self.log_tail(),
                    });
                }
            }
            if let Ok(Ok(_)) = self.query(&redis::cmd("PING")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Command {
                    port: self.port,
                    message: "redis-server does not answer PING before the deadline".into(),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn conn_options(&self) -> ConnOptions {
        ConnOptions {
            dial_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            password: self.password.clone(),
            tls: self.tls.as_ref().map(|tls| tls.connector.clone()),
            ..ConnOptions::default()
        }
    }

    fn addr(&self) -> NodeAddr {
        NodeAddr::new("127.0.0.1", self.port)
    }

    fn connect(&self) -> Result<Conn, Error> {
        Conn::connect(&self.addr(), &self.conn_options())
    }

    fn query(&self, cmd: &redis::Cmd) -> Result<Reply, Error> {
        self.connect()?.query(cmd)
    }

    /// Runs a command and returns its reply as text; an error reply is an error.
    fn query_text(&self, cmd: &redis::Cmd) -> Result<String, LocalError> {
        let fail = |message: String| LocalError::Command {
            port: self.port,
            message,
        };
        match self.query(cmd).map_err(|e| fail(e.to_string()))? {
            Ok(value) => Ok(value_text(&value)),
            Err(err) => Err(fail(server_error_text(&err))),
        }
    }

    fn cli(&self, args: &[&str]) -> Result<String, LocalError> {
        let bins = binaries()?;
        let mut cmd = Command::new(&bins.cli);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            cmd.args(tls.files.cli_args());
        }
        if let Some(pw) = &self.password {
            cmd.args(["-a", pw.expose(), "--no-auth-warning"]);
        }
        let output = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_context(format!("running {}", bins.cli.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(LocalError::Command {
                port: self.port,
                message: format!(
                    "redis-cli {args:?} failed ({}): {stdout}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: &str) -> Result<(), LocalError> {
        let pid = self.pid().ok_or(LocalError::Command {
            port: self.port,
            message: "not running".into(),
        })?;
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(io_context("running kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(LocalError::Command {
                port: self.port,
                message: format!("kill {signal} {pid} failed: {status}"),
            })
        }
    }

    /// `SIGKILL`, reap, then wait for the port to stop answering.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_port_closed();
    }

    /// `SHUTDOWN NOSAVE`, falling back to `SIGKILL` after five seconds.
    fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = self.query(redis::cmd("SHUTDOWN").arg("NOSAVE"));
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Some(child) = self.child.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    fn wait_port_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while port_answers(self.port) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last 4 KiB of the log.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        release_port(self.port);
    }
}

/// A reply as text: bulk and simple strings as they are, integers in decimal, arrays one
/// element per line.
fn value_text(value: &redis::Value) -> String {
    use redis::Value;
    match value {
        Value::Nil => String::new(),
        Value::Int(i) => i.to_string(),
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Array(items) | Value::Set(items) => {
            items.iter().map(value_text).collect::<Vec<_>>().join("\n")
        }
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// LocalCluster
// ---------------------------------------------------------------------------------------------

/// A node's role.
///
/// # Examples
///
/// ```
/// use slotline_client::local::Role;
///
/// assert_ne!(Role::Master, Role::Replica);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns slots and takes writes.
    Master,
    /// Replicates a master.
    Replica,
}

/// One node of a [`LocalCluster`]: its port, the role it was given at creation, and its
/// process id while it runs.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::local::{LocalCluster, Role};
///
/// let cluster = LocalCluster::start()?;
/// let node = &cluster.nodes()[0];
/// assert_eq!(node.role, Role::Master);
/// assert!(node.pid.is_some());
/// # Ok::<(), slotline_client::local::LocalError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Client port on 127.0.0.1 (the cluster bus is `port + 10000`).
    pub port: u16,
    /// Role given at creation; a failover can change the live role (see
    /// [`LocalCluster::live_role`]).
    pub role: Role,
    /// Process id, `None` while the node is stopped.
    pub pid: Option<u32>,
}

impl NodeInfo {
    /// The node's address, `127.0.0.1:port`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::local::{NodeInfo, Role};
    ///
    /// let n = NodeInfo { port: 7000, role: Role::Master, pid: None };
    /// assert_eq!(n.addr().to_string(), "127.0.0.1:7000");
    /// ```
    pub fn addr(&self) -> NodeAddr {
        NodeAddr::new("127.0.0.1", self.port)
    }
}

/// Builds a [`LocalCluster`]: how many masters and replicas, and extra server arguments.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::local::LocalCluster;
///
/// let cluster = LocalCluster::builder()
///     .masters(3)
///     .replicas_per_master(0)
///     .arg("--maxmemory")
///     .arg("64mb")
///     .start()?;
/// assert_eq!(cluster.nodes().len(), 3);
/// # Ok::<(), slotline_client::local::LocalError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    masters: usize,
    replicas_per_master: usize,
    server: ServerOptions,
    timeout: Duration,
}

impl Default for LocalClusterBuilder {
    fn default() -> Self {
        LocalClusterBuilder {
            masters: 3,
            replicas_per_master: 1,
            server: ServerOptions::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl LocalClusterBuilder {
    /// Number of masters (at least 1; default 3). The 16384 slots are split evenly.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let one = LocalCluster::builder().masters(1).replicas_per_master(0).start()?;
    /// assert_eq!(one.master_addrs().len(), 1);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn masters(mut self, masters: usize) -> Self {
        self.masters = masters;
        self
    }

    /// Replicas per master (default 1).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder().masters(3).replicas_per_master(2).start()?;
    /// assert_eq!(c.nodes().len(), 9);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn replicas_per_master(mut self, replicas: usize) -> Self {
        self.replicas_per_master = replicas;
        self
    }

    /// Adds one `redis-server` argument for every node (such as `--user` rules for ACL tests).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder()
    ///     .args(["--user", "writer", "on", ">pw", "~*", "+@all"])
    ///     .start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.server.args.push(arg.into());
        self
    }

    /// Adds several `redis-server` arguments for every node.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder().args(["--maxmemory", "32mb"]).start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.server.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Protects every node with `requirepass` (and `masterauth`, so replicas can sync). The
    /// cluster's own helpers authenticate with it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder().requirepass("s3cret").start()?;
    /// assert_eq!(c.config().auth.password.unwrap().expose(), "s3cret");
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.server.password = Some(Password::new(password));
        self
    }

    /// Runs every node TLS-only on its port, with TLS on the cluster bus and for replication
    /// (see [`TlsFiles`] for what the certificate must allow). [`LocalCluster::config`] then
    /// has the matching `tls` section.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::{LocalCluster, TlsFiles};
    /// let files = TlsFiles::new("ca.pem", "node.pem", "node.key");
    /// let c = LocalCluster::builder().masters(1).replicas_per_master(0).tls(&files).start()?;
    /// assert!(c.config().tls_enabled());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.server.tls = Some(files.clone());
        self
    }

    /// How long [`LocalClusterBuilder::start`] may take before giving up (default 60 s).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder().startup_timeout(Duration::from_secs(20)).start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the servers, forms the cluster, and waits until it is healthy (see the
    /// [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`LocalError::RedisServerNotFound`] / [`LocalError::RedisTooOld`] when the binaries are
    /// missing or old; [`LocalError::InvalidLayout`] for zero masters; otherwise whatever
    /// failed while starting. Processes already started are stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let cluster = LocalCluster::builder().start()?;
    /// println!("healthy after {:?}", cluster.startup_time());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn start(self) -> Result<LocalCluster, LocalError> {
        if self.masters == 0 {
            return Err(LocalError::InvalidLayout(
                "at least one master is needed".into(),
            ));
        }
        let bins = binaries()?;
        let begun = Instant::now();
        let deadline = begun + self.timeout;
        let dir = tempfile::Builder::new()
            .prefix("slotline-cluster-")
            .tempdir()
            .map_err(io_context("creating a temporary directory"))?;
        let total = self.masters * (1 + self.replicas_per_master);
        let mut processes = Vec::with_capacity(total);
        for _ in 0..total {
            processes.push(Process::start(dir.path(), true, &self.server, deadline)?);
        }
        let mut cluster = LocalCluster {
            processes,
            roles: Vec::with_capacity(total),
            masters: self.masters,
            replicas_per_master: self.replicas_per_master,
            password: self.server.password.clone(),
            tls: self.server.tls.clone(),
            startup_time: Duration::ZERO,
            dir,
        };
        if self.masters >= 3 {
            cluster.create_with_redis_cli(bins)?;
        } else {
            cluster.create_by_hand(deadline)?;
        }
        cluster.roles = (0..total)
            .map(|i| {
                if i < self.masters {
                    Role::Master
                } else {
                    Role::Replica
                }
            })
            .collect();
        cluster.wait_healthy_until(deadline, self.timeout)?;
        cluster.startup_time = begun.elapsed();
        Ok(cluster)
    }
}

/// A running Redis Cluster of local `redis-server` processes; stopped on drop.
///
/// Nodes are numbered in creation order: masters first (`0..masters`), then replicas.
/// `redis-cli --cluster create` pairs replicas with masters itself, so use
/// [`LocalCluster::live_role`] or `CLUSTER NODES` to learn who replicates whom.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::local::LocalCluster;
///
/// let cluster = LocalCluster::start()?; // 3 masters + 3 replicas
/// assert_eq!(cluster.nodes().len(), 6);
/// assert_eq!(cluster.master_addrs().len(), 3);
/// let info = cluster.cli(0, &["CLUSTER", "INFO"])?;
/// assert!(info.contains("cluster_state:ok"));
/// # Ok::<(), slotline_client::local::LocalError>(())
/// ```
pub struct LocalCluster {
    processes: Vec<Process>,
    roles: Vec<Role>,
    masters: usize,
    replicas_per_master: usize,
    password: Option<Password>,
    tls: Option<TlsFiles>,
    startup_time: Duration,
    // Declared last so it is removed after every process has stopped.
    dir: tempfile::TempDir,
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCluster")
            .field("nodes", &self.nodes())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl LocalCluster {
    /// Starts 3 masters + 3 replicas and waits until the cluster is healthy.
    ///
    /// # Errors
    ///
    /// As [`LocalClusterBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let cluster = LocalCluster::start()?;
    /// assert_eq!(cluster.seed_addrs().len(), 6);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn start() -> Result<LocalCluster, LocalError> {
        LocalCluster::builder().start()
    }

    /// A builder for other layouts and server arguments.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::builder().masters(3).replicas_per_master(0).start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    /// Every node, in creation order (masters first).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::{LocalCluster, Role};
    /// let c = LocalCluster::start()?;
    /// let masters = c.nodes().iter().filter(|n| n.role == Role::Master).count();
    /// assert_eq!(masters, 3);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.processes
            .iter()
            .zip(&self.roles)
            .map(|(p, &role)| NodeInfo {
                port: p.port,
                role,
                pid: p.pid(),
            })
            .collect()
    }

    /// Every node's address (seeds for a client).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.seed_addrs().iter().all(|a| a.host() == "127.0.0.1"));
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn seed_addrs(&self) -> Vec<NodeAddr> {
        self.processes.iter().map(Process::addr).collect()
    }

    /// The addresses of the nodes created as masters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.master_addrs().len(), 3);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn master_addrs(&self) -> Vec<NodeAddr> {
        self.processes[..self.masters]
            .iter()
            .map(Process::addr)
            .collect()
    }

    /// The indices (for [`LocalCluster::cli`], [`LocalCluster::pause_node`], ...) of the nodes
    /// started as masters. A failover can change their roles since; see
    /// [`LocalCluster::live_role`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.master_indices(), 0..3);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn master_indices(&self) -> std::ops::Range<usize> {
        0..self.masters
    }

    /// A [`Config`] (defaults otherwise) whose `nodes` are this cluster's nodes, whose
    /// `auth.password` is its `requirepass`, if any, and whose `tls` section is
    /// [`TlsFiles::client_settings`] for a TLS cluster.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.config().nodes.len(), 6);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn config(&self) -> Config {
        let mut config = Config {
            nodes: self.seed_addrs(),
            ..Config::default()
        };
        config.auth.password = self.password.clone();
        if let Some(files) = &self.tls {
            config.tls = files.client_settings();
        }
        config
    }

    /// The TLS files the nodes were started with, for a TLS cluster.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.tls().is_none());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Time from the call to `start` until the cluster was healthy.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.startup_time().as_secs() < 60);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The temporary directory holding each node's directory (`<port>/`, with `redis.log`
    /// and `nodes.conf`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.dir().exists());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `i`'s log file.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.log_path(0)?.exists());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn log_path(&self, i: usize) -> Result<PathBuf, LocalError> {
        Ok(self.process(i)?.log_path())
    }

    /// Runs `redis-cli -p <port of node i> args...` (with `--tls` and the [`TlsFiles`] for a
    /// TLS cluster) and returns what it printed.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], or [`LocalError::Command`] when `redis-cli` fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.cli(0, &["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<String, LocalError> {
        self.process(i)?.cli(args)
    }

    /// Sends one command to node `i` on a fresh connection and returns the reply.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], or [`LocalError::Command`] when the node cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// let reply = c.query(0, &redis::cmd("PING"))?;
    /// assert!(reply.is_ok());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn query(&self, i: usize, cmd: &redis::Cmd) -> Result<Reply, LocalError> {
        let p = self.process(i)?;
        p.query(cmd).map_err(|e| LocalError::Command {
            port: p.port,
            message: e.to_string(),
        })
    }

    /// A new connection to node `i` (authenticated when the cluster has a password).
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], or [`LocalError::Command`] when the node cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// let mut conn = c.connect(0)?;
    /// assert!(conn.query(&redis::cmd("PING")).is_ok());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn connect(&self, i: usize) -> Result<Conn, LocalError> {
        let p = self.process(i)?;
        p.connect().map_err(|e| LocalError::Command {
            port: p.port,
            message: e.to_string(),
        })
    }

    /// Node `i`'s role now, from `INFO replication`.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], or [`LocalError::Command`] when the node cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::{LocalCluster, Role};
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.live_role(0)?, Role::Master);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn live_role(&self, i: usize) -> Result<Role, LocalError> {
        let p = self.process(i)?;
        let info = p.query_text(redis::cmd("INFO").arg("replication"))?;
        if info.contains("role:master") {
            Ok(Role::Master)
        } else {
            Ok(Role::Replica)
        }
    }

    /// Stops node `i` cleanly (`SHUTDOWN NOSAVE`, `SIGKILL` after 5 s), waiting until its port
    /// no longer answers.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.stop_node(5)?;
    /// assert_eq!(c.nodes()[5].pid, None);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn stop_node(&mut self, i: usize) -> Result<(), LocalError> {
        self.process_mut(i)?.stop();
        Ok(())
    }

    /// Kills node `i` with `SIGKILL` (a crash, for failover tests), waiting until its port no
    /// longer answers.
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.kill_node(0)?; // a replica of node 0 is promoted within a few seconds
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn kill_node(&mut self, i: usize) -> Result<(), LocalError> {
        self.process_mut(i)?.kill();
        Ok(())
    }

    /// Starts a stopped or killed node again on the same port and directory; its `nodes.conf`
    /// makes it rejoin the cluster. Waits until it answers `PING`, not until the cluster has
    /// absorbed it (use [`LocalCluster::wait_healthy`] for that).
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], or what failed while starting it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::local::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.kill_node(3)?;
    /// c.restart_node(3)?;
    /// c.wait_healthy(Duration::from_secs(30))?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn restart_node(&mut self, i: usize) -> Result<(), LocalError> {
        let p = self.process_mut(i)?;
        p.kill();
        p.spawn()?;
        p.wait_ready(Instant::now() + Duration::from_secs(30))
    }

    /// Freezes node `i` with `SIGSTOP`: it keeps its sockets but answers nothing, as a node
    /// stuck in a long pause would. Resume it with [`LocalCluster::resume_node`].
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], [`LocalError::NodeNotRunning`], or a failed `kill`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.pause_node(1)?;
    /// c.resume_node(1)?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn pause_node(&self, i: usize) -> Result<(), LocalError> {
        self.running(i)?.signal("-STOP")
    }

    /// Resumes a node frozen by [`LocalCluster::pause_node`] (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// [`LocalError::NoSuchNode`], [`LocalError::NodeNotRunning`], or a failed `kill`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.pause_node(1)?;
    /// c.resume_node(1)?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn resume_node(&self, i: usize) -> Result<(), LocalError> {
        self.running(i)?.signal("-CONT")
    }

    /// Waits until every running node agrees the cluster is healthy (see the
    /// [module docs](self)), for at most `timeout`. Stopped nodes are left out of the check,
    /// except that no running node may still see a node as failed.
    ///
    /// # Errors
    ///
    /// [`LocalError::NotHealthy`] naming the last problem seen.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_client::local::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.wait_healthy(Duration::from_secs(10))?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait_healthy_until(Instant::now() + timeout, timeout)
    }

    fn wait_healthy_until(&self, deadline: Instant, timeout: Duration) -> Result<(), LocalError> {
        // One connection per node for the whole wait, reopened after an error.
        let mut conns: Vec<Option<Conn>> = self.processes.iter().map(|_| None).collect();
        loop {
            let problem = match self.health_problem(&mut conns) {
                None => return Ok(()),
                Some(problem) => problem,
            };
            if Instant::now() >= deadline {
                return Err(LocalError::NotHealthy {
                    waited: timeout,
                    problem,
                });
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// `None` when healthy, otherwise the first problem found.
    fn health_problem(&self, conns: &mut [Option<Conn>]) -> Option<String> {
        let mut agreed: Option<(u16, String)> = None;
        for (p, conn) in self.processes.iter().zip(conns.iter_mut()) {
            if p.child.is_none() {
                continue;
            }
            let mut ask = |cmd: &redis::Cmd| -> Result<String, String> {
                let c = match conn {
                    Some(c) if !c.is_broken() => c,
                    _ => conn.insert(p.connect().map_err(|e| e.to_string())?),
                };
                match c.query(cmd).map_err(|e| e.to_string())? {
                    Ok(value) => Ok(value_text(&value)),
                    Err(err) => Err(format!("node {}: {}", p.port, server_error_text(&err))),
                }
            };
            let info = match ask(redis::cmd("CLUSTER").arg("INFO")) {
                Ok(info) => info,
                Err(err) => return Some(err),
            };
            if !info.contains("cluster_state:ok") {
                return Some(format!(
                    "node {} reports cluster_state other than ok",
                    p.port
                ));
            }
            if !info.contains("cluster_slots_assigned:16384") {
                return Some(format!("node {} does not see all slots assigned", p.port));
            }
            let nodes = match ask(redis::cmd("CLUSTER").arg("NODES")) {
                Ok(nodes) => nodes,
                Err(err) => return Some(err),
            };
            let view = match cluster_view(&nodes) {
                Ok(view) => view,
                Err(problem) => return Some(format!("node {}: {problem}", p.port)),
            };
            match &agreed {
                None => agreed = Some((p.port, view)),
                Some((first, expected)) if *expected != view => {
                    return Some(format!(
                        "nodes {first} and {} disagree on the slot map",
                        p.port
                    ));
                }
                Some(_) => {}
            }
            let replication = match ask(redis::cmd("INFO").arg("replication")) {
                Ok(text) => text,
                Err(err) => return Some(err),
            };
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Some(format!("replica {} has no master link yet", p.port));
            }
        }
        let Some((_, view)) = agreed else {
            return Some("no node is running".into());
        };
        // Every node created is known and in place.
        let masters = view.lines().filter(|l| l.starts_with("master ")).count();
        let replicas = view.lines().filter(|l| l.starts_with("replica ")).count();
        let expected_replicas = self.masters * self.replicas_per_master;
        if masters != self.masters || replicas != expected_replicas {
            return Some(format!(
                "expected {} masters and {expected_replicas} replicas, the nodes see {masters} and {replicas}",
                self.masters
            ));
        }
        None
    }

    fn create_with_redis_cli(&self, bins: &Binaries) -> Result<(), LocalError> {
        let mut cmd = Command::new(&bins.cli);
        cmd.arg("--cluster").arg("create");
        for p in &self.processes {
            cmd.arg(format!("127.0.0.1:{}", p.port));
        }
        cmd.args([
            "--cluster-replicas",
            &self.replicas_per_master.to_string(),
            "--cluster-yes",
        ]);
        if let Some(pw) = &self.password {
            cmd.args(["-a", pw.expose(), "--no-auth-warning"]);
        }
        if let Some(files) = &self.tls {
            cmd.args(files.cli_args());
        }
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(io_context(format!("running {}", bins.cli.display())))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() && !text.contains("[ERR]") {
            Ok(())
        } else {
            Err(LocalError::ClusterCreate { output: text })
        }
    }

    /// What `redis-cli --cluster create` does, for layouts it refuses (fewer than 3 masters).
    fn create_by_hand(&self, deadline: Instant) -> Result<(), LocalError> {
        let m = self.masters;
        for (i, p) in self.processes[..m].iter().enumerate() {
            let first = i * 16384 / m;
            let last = (i + 1) * 16384 / m - 1;
            p.query_text(
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            )?;
        }
        let seed = self.processes[0].port;
        for p in &self.processes[1..] {
            p.query_text(redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(seed))?;
        }
        let mut ids = Vec::with_capacity(m);
        for p in &self.processes[..m] {
            ids.push(p.query_text(redis::cmd("CLUSTER").arg("MYID"))?);
        }
        // Replica j of master i is node m + i * R + j. REPLICATE fails until the replica has
        // heard of its master through the handshake, so retry until the deadline.
        for (k, p) in self.processes[m..].iter().enumerate() {
            let master = &ids[k / self.replicas_per_master.max(1)];
            loop {
                match p.query_text(redis::cmd("CLUSTER").arg("REPLICATE").arg(master)) {
                    Ok(_) => break,
                    Err(err) if Instant::now() >= deadline => {
                        return Err(LocalError::ClusterCreate {
                            output: err.to_string(),
                        })
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }

    fn process(&self, i: usize) -> Result<&Process, LocalError> {
        self.processes.get(i).ok_or(LocalError::NoSuchNode(i))
    }

    fn process_mut(&mut self, i: usize) -> Result<&mut Process, LocalError> {
        self.processes.get_mut(i).ok_or(LocalError::NoSuchNode(i))
    }

    fn running(&self, i: usize) -> Result<&Process, LocalError> {
        let p = self.process(i)?;
        if p.child.is_some() {
            Ok(p)
        } else {
            Err(LocalError::NodeNotRunning(i))
        }
    }
}

/// A node's `CLUSTER NODES` reduced to what every node must agree on, one sorted line per
/// node: `master <id> <slots...>` or `replica <id> <master id>`. Fails while any node is in
/// `fail`, `pfail`, `handshake` or `noaddr` state.
fn cluster_view(nodes: &str) -> Result<String, String> {
    let mut lines = Vec::new();
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("short CLUSTER NODES line: {line}"));
        }
        let (id, flags, master) = (fields[0], fields[2], fields[3]);
        let flags: Vec<&str> = flags.split(',').collect();
        if let Some(bad) = flags
            .iter()
            .find(|f| matches!(**f, "fail" | "fail?" | "handshake" | "noaddr"))
        {
            return Err(format!("node {id} is in state {bad}"));
        }
        if flags.contains(&"master") {
            let mut slots: Vec<&str> = fields[8..].to_vec();
            slots.sort_unstable();
            lines.push(format!("master {id} {}", slots.join(" ")));
        } else if flags.contains(&"slave") {
            lines.push(format!("replica {id} {master}"));
        } else {
            return Err(format!("node {id} has no role yet"));
        }
    }
    lines.sort_unstable();
    Ok(lines.join("\n"))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Stop the nodes in parallel: each waits for its port to close.
        let processes = std::mem::take(&mut self.processes);
        thread::scope(|s| {
            for p in processes {
                s.spawn(move || drop(p));
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// LocalServer
// ---------------------------------------------------------------------------------------------

/// Builds a [`LocalServer`].
///
/// # Examples
///
/// ```no_run
/// use slotline_client::local::LocalServer;
///
/// let server = LocalServer::builder()
///     .acl_user("writer on >pw ~* +@all")
///     .requirepass("admin-pw")
///     .start()?;
/// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::builder().arg("--maxclients").arg("16").start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::builder().acl_user("writer on >pw ~* +@write").start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::builder().requirepass("pw").start()?;
    /// assert_eq!(s.cli(&["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::{LocalServer, TlsFiles};
    /// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// let s = LocalServer::builder().tls(&files).start()?;
    /// assert_eq!(s.cli(&["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::builder().start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
/// use slotline_client::local::LocalServer;
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.port() > 0);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn start() -> Result<LocalServer, LocalError> {
        LocalServer::builder().start()
    }

    /// A builder for ACL users, `requirepass` and other arguments.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::builder().requirepass("pw").start()?;
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn builder() -> LocalServerBuilder {
        LocalServerBuilder::default()
    }

    /// The server's address, `127.0.0.1:port`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert_eq!(s.addr().port(), s.port());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn addr(&self) -> NodeAddr {
        self.process.addr()
    }

    /// The server's port.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.port() > 0);
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The server's process id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.pid().is_some());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The server's log file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.log_path().exists());
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    /// The TLS files the server was started with, if it runs TLS.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert!(s.tls().is_none());
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// s.cli(&["SET", "k", "v"])?;
    /// assert_eq!(s.cli(&["GET", "k"])?.trim(), "v");
    /// # Ok::<(), slotline_client::local::LocalError>(())
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
    /// # use slotline_client::local::LocalServer;
    /// let s = LocalServer::start()?;
    /// assert_eq!(s.query(&redis::cmd("DBSIZE"))?, Ok(redis::Value::Int(0)));
    /// # Ok::<(), slotline_client::local::LocalError>(())
    /// ```
    pub fn query(&self, cmd: &redis::Cmd) -> Result<Reply, LocalError> {
        self.process.query(cmd).map_err(|e| LocalError::Command {
            port: self.process.port,
            message: e.to_string(),
        })
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn major_version_is_read_from_the_version_line() {
        let line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(parse_major_version(line), Some(7));
        assert_eq!(parse_major_version("Redis server v=6.2.1 sha=0"), Some(6));
        assert_eq!(parse_major_version("garbage"), None);
    }

    #[test]
    fn cluster_view_ignores_myself_and_link_state_but_not_failures() {
        let a = "\
id1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
id2 127.0.0.1:7001@17001 master - 0 1 2 connected 5461-10922
id3 127.0.0.1:7002@17002 slave id1 0 1 1 connected
";
        let b = "\
id3 127.0.0.1:7002@17002 myself,slave id1 0 0 1 connected
id2 127.0.0.1:7001@17001 master - 0 5 2 connected 5461-10922
id1 127.0.0.1:7000@17000 master - 0 5 1 connected 0-5460
";
        assert_eq!(cluster_view(a), cluster_view(b));
        assert!(cluster_view(a).unwrap().contains("replica id3 id1"));
        let failing = a.replace("slave id1", "slave,fail? id1");
        assert!(cluster_view(&failing).unwrap_err().contains("fail?"));
    }

    #[test]
    fn reserved_ports_are_unique_until_released() {
        let ports: Vec<u16> = (0..20).map(|_| reserve_port().unwrap()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for p in ports {
            assert!(p.checked_add(10_000).is_some());
            release_port(p);
        }
    }
}
