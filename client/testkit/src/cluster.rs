//! [`LocalCluster`]: a Redis Cluster of local nodes, formed with `redis-cli --cluster create`
//! (or by hand for fewer than three masters), checked for health, and with node control (stop,
//! kill, restart, pause) for fault tests.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::{Config, NodeAddr, Password};
use slotline_client::conn::{Conn, Reply};

use crate::error::io_context;
use crate::process::{binaries, server_error_text, value_text, Binaries, Process, ServerOptions};
use crate::{LocalError, TlsFiles};

/// A node's role.
///
/// # Examples
///
/// ```
/// use slotline_testkit::Role;
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
/// use slotline_testkit::{LocalCluster, Role};
///
/// let cluster = LocalCluster::start()?;
/// let node = &cluster.nodes()[0];
/// assert_eq!(node.role, Role::Master);
/// assert!(node.pid.is_some());
/// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// The node's address, `127.0.0.1:port` (for a cluster started with
    /// [`LocalClusterBuilder::host`], use [`LocalCluster::seed_addrs`] instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_testkit::{NodeInfo, Role};
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
/// use slotline_testkit::LocalCluster;
///
/// let cluster = LocalCluster::builder()
///     .masters(3)
///     .replicas_per_master(0)
///     .arg("--maxmemory")
///     .arg("64mb")
///     .start()?;
/// assert_eq!(cluster.nodes().len(), 3);
/// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let one = LocalCluster::builder().masters(1).replicas_per_master(0).start()?;
    /// assert_eq!(one.master_addrs().len(), 1);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder().masters(3).replicas_per_master(2).start()?;
    /// assert_eq!(c.nodes().len(), 9);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder()
    ///     .args(["--user", "writer", "on", ">pw", "~*", "+@all"])
    ///     .start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder().args(["--maxmemory", "32mb"]).start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder().requirepass("s3cret").start()?;
    /// assert_eq!(c.config().auth.password.unwrap().expose(), "s3cret");
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::{LocalCluster, TlsFiles};
    /// let files = TlsFiles::new("ca.pem", "node.pem", "node.key");
    /// let c = LocalCluster::builder().masters(1).replicas_per_master(0).tls(&files).start()?;
    /// assert!(c.config().tls_enabled());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.server.tls = Some(files.clone());
        self
    }

    /// The address every node binds to and announces (`--bind`, `--cluster-announce-ip`;
    /// default 127.0.0.1). The nodes' addresses, the cluster's creation and the health
    /// checks use it. A node on an address other than loopback runs with `--protected-mode
    /// no`. The address must be assigned to an interface where the nodes run (see
    /// [`LocalClusterBuilder::command_prefix`]) and reachable from this process. Free ports
    /// are still picked on this process's loopback.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::net::Ipv4Addr;
    /// # use slotline_testkit::LocalCluster;
    /// // 10.203.1.2 assigned to an interface of the network namespace `ns`.
    /// let c = LocalCluster::builder()
    ///     .host(Ipv4Addr::new(10, 203, 1, 2))
    ///     .command_prefix(["ip", "netns", "exec", "ns"])
    ///     .start()?;
    /// assert!(c.seed_addrs().iter().all(|a| a.host() == "10.203.1.2"));
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn host(mut self, host: Ipv4Addr) -> Self {
        self.server.host = Some(host);
        self
    }

    /// Words to run `redis-server` through, such as `["ip", "netns", "exec", "ns"]` to start
    /// the nodes in a network namespace (default: none, the server is run directly). The
    /// prefix must exec the server (as `ip netns exec` does) so that the child's pid is the
    /// server's: [`LocalCluster::pause_node`] and the node's `pid` rely on it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::net::Ipv4Addr;
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder()
    ///     .host(Ipv4Addr::new(10, 203, 1, 2))
    ///     .command_prefix(["ip", "netns", "exec", "ns"])
    ///     .start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn command_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.server.command_prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// How long [`LocalClusterBuilder::start`] may take before giving up (default 60 s).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder().startup_timeout(Duration::from_secs(20)).start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the servers, forms the cluster, and waits until it is healthy (see the
    /// [crate docs](crate)).
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
    /// # use slotline_testkit::LocalCluster;
    /// let cluster = LocalCluster::builder().start()?;
    /// println!("healthy after {:?}", cluster.startup_time());
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
            host: self.server.host(),
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
/// use slotline_testkit::LocalCluster;
///
/// let cluster = LocalCluster::start()?; // 3 masters + 3 replicas
/// assert_eq!(cluster.nodes().len(), 6);
/// assert_eq!(cluster.master_addrs().len(), 3);
/// let info = cluster.cli(0, &["CLUSTER", "INFO"])?;
/// assert!(info.contains("cluster_state:ok"));
/// # Ok::<(), slotline_testkit::LocalError>(())
/// ```
pub struct LocalCluster {
    processes: Vec<Process>,
    roles: Vec<Role>,
    masters: usize,
    replicas_per_master: usize,
    password: Option<Password>,
    tls: Option<TlsFiles>,
    host: Ipv4Addr,
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
    /// # use slotline_testkit::LocalCluster;
    /// let cluster = LocalCluster::start()?;
    /// assert_eq!(cluster.seed_addrs().len(), 6);
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn start() -> Result<LocalCluster, LocalError> {
        LocalCluster::builder().start()
    }

    /// A builder for other layouts and server arguments.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::builder().masters(3).replicas_per_master(0).start()?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    /// Every node, in creation order (masters first).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::{LocalCluster, Role};
    /// let c = LocalCluster::start()?;
    /// let masters = c.nodes().iter().filter(|n| n.role == Role::Master).count();
    /// assert_eq!(masters, 3);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.seed_addrs().iter().all(|a| a.host() == "127.0.0.1"));
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn seed_addrs(&self) -> Vec<NodeAddr> {
        self.processes.iter().map(Process::addr).collect()
    }

    /// The addresses of the nodes created as masters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.master_addrs().len(), 3);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.master_indices(), 0..3);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.config().nodes.len(), 6);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.tls().is_none());
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Time from the call to `start` until the cluster was healthy.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.startup_time().as_secs() < 60);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.dir().exists());
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert!(c.log_path(0)?.exists());
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.cli(0, &["PING"])?.trim(), "PONG");
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// let reply = c.query(0, &redis::cmd("PING"))?;
    /// assert!(reply.is_ok());
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// let mut conn = c.connect(0)?;
    /// assert!(conn.query(&redis::cmd("PING")).is_ok());
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::{LocalCluster, Role};
    /// let c = LocalCluster::start()?;
    /// assert_eq!(c.live_role(0)?, Role::Master);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.stop_node(5)?;
    /// assert_eq!(c.nodes()[5].pid, None);
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.kill_node(0)?; // a replica of node 0 is promoted within a few seconds
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let mut c = LocalCluster::start()?;
    /// c.kill_node(3)?;
    /// c.restart_node(3)?;
    /// c.wait_healthy(Duration::from_secs(30))?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.pause_node(1)?;
    /// c.resume_node(1)?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.pause_node(1)?;
    /// c.resume_node(1)?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
    /// ```
    pub fn resume_node(&self, i: usize) -> Result<(), LocalError> {
        self.running(i)?.signal("-CONT")
    }

    /// Waits until every running node agrees the cluster is healthy (see the
    /// [crate docs](crate)), for at most `timeout`. Stopped nodes are left out of the check,
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
    /// # use slotline_testkit::LocalCluster;
    /// let c = LocalCluster::start()?;
    /// c.wait_healthy(Duration::from_secs(10))?;
    /// # Ok::<(), slotline_testkit::LocalError>(())
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
            cmd.arg(format!("{}:{}", self.host, p.port));
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
            p.query_text(
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg(self.host.to_string())
                    .arg(seed),
            )?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
