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
//! - [`Client`]: routes the key to its logical shard, pushes the op into that shard's ring under
//!   the backpressure policy, and waits for the outcome.
//! - the writers (one thread per master, at most [`MAX_WRITERS`]): take what the rings hold
//!   with one `pop_batch` claim per shard, never waiting to fill a batch; group the ops per
//!   master; write one pipeline per master (plus `WAIT n` when asked), flushing every master
//!   before reading any reply; complete each op with what its reply says. A shard's batch cap
//!   halves while the p95 of its round trips is over `batching.p95_budget` and grows back
//!   when it is under half of it.
//! - the topology: the slot → master map from `CLUSTER SHARDS` (or `CLUSTER SLOTS`); a `MOVED`
//!   updates its one slot at once and schedules a full refresh, at most one per
//!   [`REFRESH_INTERVAL`]; an `ASK` sends one command to the named node after `ASKING`,
//!   leaving the map alone.
//! - [`conn`]: [`Conn`], one connection to one node: a `socket2` socket with its options set
//!   before connect, optionally TLS (rustls, verification always on; the `tls` section of the
//!   config or a `rediss://` seed turns it on), RESP via the `redis` crate, pipelines read into
//!   fixed buffers.
//! - [`metrics`]: [`Metrics`], per-shard counters and latency histograms, Prometheus text.
//! - [`error`]: [`Error`] and [`CommitError`].
//!
//! Real `redis-server` processes on free loopback ports for tests, benches and demos
//! (`LocalCluster`, `LocalServer`) live in the workspace's unpublished `slotline-testkit`
//! crate (`client/testkit`), which the examples below use.
//!
//! # Retries, and which can apply a write twice
//!
//! `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN` and `READONLY` replies are
//! resent (after a backoff of 5 ms doubling to 250 ms for the transient ones) until the op's
//! deadline: the node refused the command without running it, so a resend is safe. A *lost
//! connection* is different: the node may have applied the command before the connection
//! broke, and the writer resends it until the deadline without knowing. `SET` (what
//! [`Client::commit`] sends) is idempotent, so that is harmless there; a non-idempotent command
//! sent with [`Client::commit_cmd`] (`INCR`, `LPUSH`, `XADD` with `*`) can then be applied
//! twice. An op that never reached a socket (its connect failed) is always safe to resend.
//!
//! # Known limits
//!
//! - **Isolation across a straddling shard.** Writers are per master, but a logical shard is a
//!   fixed slot range, and where a master's slot range ends inside it, the shard's ring is
//!   drained by the writer of the master that serves its *first* slot. If that master stalls,
//!   the other master's keys in that one shard wait with it (every other shard keeps flowing).
//!   With 3 masters and 64 shards that is 2 of 64 shards. Hash-tag hot keys onto shards that
//!   lie within one master, or use `total_shards` that align with the masters' ranges.
//! - **The async commit has no timer.** [`CommitFuture`] resolves with `DeadlineExceeded` when
//!   the writer reaches the op or when it is polled after the deadline; wrap it in your
//!   runtime's timeout for a tighter bound.
//! - **Blocking commits and many threads.** [`Client::commit`] parks its thread until the reply;
//!   with far more caller threads than cores, the wake-up per commit dominates (about 10 µs of
//!   CPU per commit on 2 cores). Prefer [`Client::commit_async`] at high concurrency.
//!
//! # Example
//!
//! ```no_run
//! use slotline_client::{Client, CommitError, Config};
//! use slotline_testkit::LocalCluster;
//!
//! let cluster = LocalCluster::start()?; // 3 masters + 3 replicas on free loopback ports
//! let mut config = Config::from_yaml_file("geo_shard_client.yaml")?;
//! config.nodes = cluster.seed_addrs();
//! let client = Client::connect(config)?;
//! match client.commit(b"geo:{user42}", b"52.5200,13.4050") {
//!     Ok(()) => {} // the master has it
//!     Err(CommitError::Rejected) => {} // backpressure: the shard is at its line, try later
//!     Err(e) => eprintln!("{e}"),
//! }
//! println!("{}", client.metrics().to_prometheus());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: one write by hand, the way a shard writer does it
//!
//! ```no_run
//! use std::time::Instant;
//! use slotline_client::{Config, Conn, ConnOptions, Op};
//! use slotline_testkit::LocalServer;
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
pub mod config;
pub mod conn;
mod engine;
pub mod error;
pub mod metrics;
pub mod op;
mod refresh;
mod route;

pub use client::{Client, CommitFuture};
pub use config::{Config, ConfigError, NodeAddr};
pub use conn::tls::{TlsConnector, TlsError};
pub use conn::{Conn, ConnOptions};
pub use engine::REFRESH_INTERVAL;
pub use error::{CommitError, Error};
pub use metrics::{Metrics, MetricsSnapshot};
pub use op::{Completion, Op};
