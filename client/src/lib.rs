//! The ACK-committing Redis Cluster writer.
//!
//! # The data path (one commit)
//!
//! ```text
//! caller ──commit(key, value)──► key_slot(key) ──► shard = shards.of(slot)
//!       ◄── Ok after ACK ──────┐                         │
//!                              │   ring(shard).try_push(op)   full? reject | block(deadline) | drop_oldest
//!                              │                         │
//!                              └── complete(op) ◄── replies ◄─ shard writer: pop_batch → one pipelined
//!                                                             write to the slot's master (+ WAIT n)
//! ```
//!
//! Every buffer on this path has a size fixed at start-up: the ring per shard
//! (`shard_config.ring_buffer_capacity`), the batch (`batching.max_batch`), the socket buffers
//! (`tcp_tuning.so_sndbuf` / `so_rcvbuf`, set explicitly) and the connection's read buffer.
//! Nothing else queues. A commit returns `Ok` only after the node's reply (and after `WAIT` when
//! `ack.replicas > 0`); every other outcome is a [`CommitError`] that says what became of the
//! write.
//!
//! # Modules, in the order a commit travels
//!
//! - [`config`]: [`Config`], every bound above, read from YAML (`geo_shard_client.yaml`).
//! - [`op`]: [`Op`], a pending write (packed command, slot, deadline) and its completion cell,
//!   waited on blocking or as a `Send` future.
//! - `client` / `writer` / `cluster` (next, on top of `slotline-ring` and `slotline-router`):
//!   `Client::commit`, the shard writers that drain a ring into one pipeline, and topology
//!   refresh with MOVED/ASK handling.
//! - [`conn`]: [`Conn`], one connection to one node: a `socket2` socket with its options set
//!   before connect, RESP via the `redis` crate, pipelines read into fixed buffers.
//! - [`metrics`]: [`Metrics`], per-shard counters and latency histograms, Prometheus text.
//! - [`error`]: [`Error`] and [`CommitError`].
//! - `local` (feature `local-cluster`, on by default): [`LocalCluster`] and [`LocalServer`],
//!   real `redis-server` processes on free loopback ports for tests, benches and demos.
//!
//! # Example: one write by hand, the way a shard writer will do it
//!
//! ```no_run
//! use std::time::Instant;
//! use slotline_client::{Config, Conn, ConnOptions, LocalServer, Op};
//!
//! let server = LocalServer::start()?;
//! let config = Config::from_yaml_str("tcp_tuning: { so_sndbuf: 1048576 }")?;
//! let mut conn = Conn::connect(&server.addr(), &ConnOptions::from_config(&config))?;
//!
//! let (op, completion) = Op::set(b"geo:{user42}", b"52.52,13.40", Instant::now() + config.commit.timeout);
//! if op.claim_for_send() {
//!     let mut outcome = Ok(());
//!     conn.pipeline_packed([op.packed()], |_, reply| {
//!         if let Err(err) = reply {
//!             outcome = Err(slotline_client::CommitError::Server { message: err.to_string() });
//!         }
//!     })?;
//!     op.complete(outcome);
//! }
//! assert_eq!(completion.wait(), Ok(()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod client;
mod cluster;
pub mod config;
pub mod conn;
pub mod error;
#[cfg(feature = "local-cluster")]
pub mod local;
pub mod metrics;
pub mod op;
mod writer;

pub use client::{Client, CommitFuture};
pub use cluster::{MAX_WRITERS, REFRESH_INTERVAL};
pub use config::{Config, ConfigError, NodeAddr};
pub use conn::{Conn, ConnOptions};
pub use error::{CommitError, Error};
#[cfg(feature = "local-cluster")]
pub use local::{LocalCluster, LocalServer};
pub use metrics::{Metrics, MetricsSnapshot};
pub use op::{Completion, Op};
