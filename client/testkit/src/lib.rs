//! slotline's test harness: real `redis-server` processes on free loopback ports, for the
//! workspace's tests, benches and demos: [`LocalCluster`] (cluster mode, 3 masters + 3 replicas
//! by default) and [`LocalServer`] (one standalone server).
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
//!
//! # Contents
//!
//! - [`LocalCluster`] and [`LocalClusterBuilder`] (with [`Role`] and [`NodeInfo`]): a cluster
//!   of nodes, formed and checked for health, with node control for fault tests.
//! - [`LocalServer`] and [`LocalServerBuilder`]: one standalone server.
//! - [`TlsFiles`]: the certificate, key and CA of TLS servers, and the client's `tls` section.
//! - [`LocalError`]: what can go wrong.
//!
//! The processes themselves (finding the binaries, reserving ports, starting, signalling
//! and stopping `redis-server`) are handled by a private module shared by all of them.
//!
//! # Example
//!
//! ```no_run
//! use slotline_client::Client;
//! use slotline_testkit::LocalCluster;
//!
//! let cluster = LocalCluster::start()?; // 3 masters + 3 replicas on free loopback ports
//! let client = Client::connect(cluster.config())?;
//! client.commit(b"geo:{user42}", b"52.5200,13.4050")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod cluster;
mod error;
pub mod exec;
mod process;
mod server;
mod tls;

pub use cluster::{LocalCluster, LocalClusterBuilder, NodeInfo, Role};
pub use error::LocalError;
pub use process::MIN_REDIS_MAJOR;
pub use server::{LocalServer, LocalServerBuilder};
pub use tls::TlsFiles;
