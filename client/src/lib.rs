//! The ACK-committing Redis Cluster writer.
//!
//! # A tour
//!
//! ```no_run
//! use std::time::Duration;
//! use slotline_client::{CallOptions, Client, Config};
//!
//! let client = Client::connect(Config::from_yaml_file("geo_shard_client.yaml")?)?;
//! client.commit(b"geo:{user42}", b"52.52,13.40")?;                 // SET, Ok once the master has it
//! let n = client.commit_cmd(redis::cmd("INCR").arg("hits:{page7}"))?; // any single-slot command
//! let hits: i64 = redis::from_redis_value(n)?;                        // ... and its reply, typed
//! let cmds: Vec<redis::Cmd> = (0..100).map(|i| redis::cmd("HSET").arg(format!("ev:{{{i}}}")).arg("f").arg(i).clone()).collect();
//! let results = client.commit_batch(&cmds)?;                          // one result per command, in order
//! let urgent = CallOptions::new().timeout(Duration::from_millis(20)).replicas(1);
//! client.commit_with(b"session:{u7}", b"token", &urgent)?;            // per-call deadline and WAIT
//! # async fn later(client: &Client) -> Result<(), slotline_client::CommitError> {
//! client.commit_async(b"geo:{user42}", b"52.52,13.41").await?;        // async, on any executor
//! # Ok(()) }
//! println!("{hits} hits, {} failed, {}", results.iter().filter(|r| r.is_err()).count(), client.metrics().to_prometheus());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every call ends by its deadline with `Ok` (Redis confirmed it) or a [`CommitError`] that
//! says whether the write may have been applied; every queue on the way is bounded. Runnable
//! programs: `client/examples/` (`cargo run -p slotline-client --example blocking_service`,
//! `tokio_service`, `batch_import`, `lua_script`).
//!
//! # Features
//!
//! - `tracing` (off): events for `tracing` subscribers under the targets `slotline::conn`
//!   (connecting, ready, failed, idle close), `slotline::route` (`MOVED`/`ASK`, refreshes),
//!   `slotline::backpressure` (refusals, evictions, waits for room) and `slotline::engine` (a
//!   dead client).
//! - `tokio` (off): `Client::connect_async` and `Client::close_async`, which run the
//!   blocking steps on tokio's blocking pool. Every future of the client works on any
//!   executor without it.
//!
//! # The data path (one commit)
//!
//! ```text
//! caller ──commit(key, value)──► key_slot(key) ──► master = table[slot]   (lock-free read)
//!       ◄── Ok after ACK ───────┐                         │
//!                               │   queue(master).push: ops and bytes below the line?
//!                               │                         │        no: reject | block(deadline) | drop_oldest
//!                               │                         ▼
//!                               │   I/O thread (mio event loop, a few per client):
//!                               └── complete(op) ◄─ replies as they arrive ◄─ batches, up to
//!                                   (+ WAIT n per batch)    pipeline_depth in flight per master
//! ```
//!
//! Every buffer on this path has a size fixed at start-up: each master's queue (a ring of
//! `ring_buffer_capacity × total_shards × its share of the slots` ops, and a byte budget,
//! `backpressure.max_pending_bytes`), the batches in flight per connection
//! (`batching.pipeline_depth × batching.max_batch`), the socket buffers
//! (`tcp_tuning.so_sndbuf` / `so_rcvbuf`, set explicitly) and the connection's read buffer.
//! Nothing else queues. A commit returns `Ok` only after the node's reply (and after `WAIT` when
//! `ack.replicas > 0`); every other outcome is a [`CommitError`] that says what became of the
//! write. A master that stalls holds only its own queue: no op ever waits behind another
//! master's.
//!
//! # Modules, in the order a commit travels
//!
//! - [`config`]: [`Config`], every bound above, read from YAML (`geo_shard_client.yaml`).
//! - [`op`]: [`Op`], a pending write (packed command, slot, deadline) and its completion cell,
//!   waited on blocking or as a `Send` future.
//! - [`Client`]: computes the key's slot, reads the slot → master table (`arc-swap`, no lock),
//!   pushes the op into that master's queue under the backpressure policy, and waits for the
//!   outcome.
//! - the route table: one bounded queue per master; a `MOVED` re-points its slot at once, a
//!   refresh installs a newer view (an older one never replaces it), and ops queued for a
//!   master that lost their slot are forwarded to the new owner, never lost or duplicated.
//! - the engine: `redis_pool.io_threads` I/O threads (by default half the cores, at most 4,
//!   never more because the cluster grows) each run a `mio` event loop over the connections of
//!   the masters they serve; a connection keeps up to `batching.pipeline_depth` batches in
//!   flight and reads replies as they arrive. A batch's cap halves while its round trips are
//!   over `batching.p95_budget` and grows back under half of it. Every op resolves by its
//!   deadline, polled or not: the loop completes it at the deadline and wakes its waker.
//! - the refresh thread: reads `CLUSTER SHARDS` (or `CLUSTER SLOTS`) off the write path when
//!   the table is stale, at most once per [`REFRESH_INTERVAL`], asking the nodes that answered
//!   most recently first.
//! - [`conn`]: [`Conn`], a blocking connection to one node (the refresh, tools, tests): a
//!   `socket2` socket with its options set before connect, optionally TLS (rustls,
//!   verification always on; the `tls` section or a `rediss://` seed turns it on). The engine's
//!   own connections use the same socket options and TLS settings over non-blocking sockets.
//! - [`metrics`]: [`Metrics`], counters and latency histograms per logical shard (the
//!   metrics grouping: `shard_config.total_shards` contiguous slot ranges), queue fill,
//!   whether the client is dead; Prometheus text.
//! - [`error`]: [`Error`] and [`CommitError`].
//!
//! Real `redis-server` processes on free loopback ports for tests, benches and demos
//! (`LocalCluster`, `LocalServer`) live in the workspace's unpublished `slotline-testkit`
//! crate (`client/testkit`), which the examples below use.
//!
//! # Retries, and which failures may leave a write applied
//!
//! A write whose reply was read is never sent again, whatever happens after it. In detail:
//!
//! | what happened | what the caller gets | applied? |
//! |---|---|---|
//! | the reply was read, `WAIT` (when asked) confirmed enough replicas | `Ok` | yes |
//! | `WAIT` confirmed too few | [`CommitError::ReplicationShortfall`] | yes, on the master |
//! | the connection failed after the reply, before `WAIT` answered | [`CommitError::ReplicationUnconfirmed`] | yes, on the master |
//! | `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, `READONLY` | resent (5 ms backoff doubling to 250 ms for the transient ones; at most 16 redirects) until the deadline | not by that send |
//! | any other error reply | [`CommitError::Server`] | no |
//! | the connection failed before the command was wholly written | resent | no |
//! | the connection failed after it was written, `SET` from [`Client::commit`] | resent until the deadline (idempotent) | maybe; later errors say `may_have_been_applied` |
//! | the connection failed after it was written, any command from [`Client::commit_cmd`] or [`Client::commit_batch`] | [`CommitError::ConnectionLost`] `{ may_have_been_applied: true }`, never resent | maybe |
//! | the deadline passed while queued | [`CommitError::DeadlineExceeded`] `{ may_have_been_applied: false }` (true if an earlier send may have been applied) | no |
//! | the deadline passed after it was sent | [`CommitError::DeadlineExceeded`] `{ may_have_been_applied: true }` | maybe |
//! | backpressure | [`CommitError::Rejected`], [`CommitError::Dropped`], [`CommitError::TooLarge`] | no |
//! | [`Client::close`] | [`CommitError::Closed`] if not sent; sent writes get 200 ms for their reply, then [`CommitError::ConnectionLost`] `{ may_have_been_applied: true }` | as the outcome says |
//! | an I/O thread panicked | [`CommitError::ClientDead`] for queued and later writes; writes the failing thread held get `Closed` or `ConnectionLost { may_have_been_applied: true }` | as the outcome says |
//!
//! A resent `SET` may overwrite a newer `SET` to the same key issued by another caller while
//! the first was being retried; callers that need per-key order should not have two writes to
//! one key outstanding at once.
//!
//! # Known limits
//!
//! - **Deadlines inside a stalled queue.** An I/O thread watches the deadline of every op it
//!   holds and of the oldest op in each queue; async calls whose deadline is shorter than
//!   `commit.timeout` (a [`CallOptions::timeout`]) and async calls waiting for room are also
//!   woken at their deadline by the client's timer thread. Ops in a stalled queue behind an
//!   older op with a later deadline can still be answered late by an async caller: an op behind
//!   one with a longer [`CallOptions::timeout`] (up to the difference), an async `block`-policy
//!   op that waited for room before it was queued (up to that wait), and an op forwarded to
//!   another master's queue after a redirect or a topology change (up to its age when
//!   forwarded). Blocking calls always give up at their own deadline.
//! - **A full queue slows its forwarders.** Ops redirected to a master whose queue is full
//!   wait in the forwarding link (retried every millisecond), where they count against that
//!   link's window until the target has room or their deadline passes.

//! - **A master seen only between two tables.** A master that appears in one table and is
//!   gone from the next before its I/O thread looked (a `MOVED` to a node the next refresh does
//!   not list) gets no connection; writes pushed into its queue meanwhile fail with `Closed`
//!   when the last table holding it goes.
//! - **Blocking commits and many threads.** [`Client::commit`] parks its thread until the reply;
//!   with far more caller threads than cores, the wake-up per commit dominates. Prefer
//!   [`Client::commit_async`] at high concurrency.
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
//! # Example: one write by hand, over a blocking connection
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
pub mod keys;
pub mod metrics;
pub mod op;
mod options;
mod refresh;
mod route;
mod timer;
mod trace;

/// Private functions exposed for the fuzz targets in the repository's `fuzz/` directory. Not
/// part of the API: they may change or go away in any release.
#[doc(hidden)]
pub mod __fuzz {
    /// The reply scanner [`Conn::read_reply`](crate::Conn::read_reply) cuts frames with: the
    /// length of the first complete RESP frame in `buf`, `Ok(None)` when more bytes are
    /// needed, or why the bytes cannot be a reply.
    ///
    /// # Errors
    ///
    /// A static message: an unknown type byte, a bad length, a bulk string not followed by
    /// CRLF, or nesting deeper than [`MAX_REPLY_DEPTH`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::__fuzz::frame_len;
    ///
    /// assert_eq!(frame_len(b"$3\r\nfoo\r\n+OK\r\n"), Ok(Some(9)));
    /// assert_eq!(frame_len(b"$3\r\nfo"), Ok(None));
    /// assert_eq!(frame_len(b"?\r\n"), Err("unknown RESP type byte"));
    /// ```
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
        crate::conn::frame_len(buf)
    }

    /// The deepest nesting of aggregates [`frame_len`] accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::__fuzz::{frame_len, MAX_REPLY_DEPTH};
    ///
    /// let deep = b"*1\r\n".repeat(MAX_REPLY_DEPTH);
    /// assert_eq!(frame_len(&deep), Err("reply nested too deeply"));
    /// ```
    pub const MAX_REPLY_DEPTH: usize = crate::conn::MAX_REPLY_DEPTH;
}

pub use client::{BatchFuture, Client, CommitFuture, ReplyFuture};
pub use config::{Config, ConfigError, FallbackStrategy, NodeAddr};
pub use conn::tls::{TlsConnector, TlsError};
pub use conn::{Conn, ConnOptions};
pub use engine::REFRESH_INTERVAL;
pub use error::{CommandError, CommitError, Error};
pub use metrics::{Metrics, MetricsSnapshot};
pub use op::{Completion, Op, ReplyResult};
pub use options::CallOptions;
