//! The refresh thread: reads the cluster's topology off the write path and installs it.
//!
//! The thread sleeps until the slot table is marked stale (a `MOVED`, a failed connection, a
//! `CLUSTERDOWN`-like reply, an op whose deadline passed in flight) and refreshes at most once
//! per [`REFRESH_INTERVAL`]. It asks, in order: the masters that answered most recently (an
//! I/O thread stamps each master's queue when bytes arrive), then the other masters and the
//! replicas the table knows, then the seed nodes. Each node gets `dial_timeout` to connect and
//! `read_timeout` to answer; a node that failed a recent refresh is asked last. The first
//! complete view wins; a view with holes is taken only if no node gives a complete one.
//!
//! The view is installed with [`Routes::install_fetched`](crate::route::Routes), which keeps
//! slots changed by a `MOVED` while the fetch ran: an older view never replaces a newer one.
//! No I/O thread ever waits for a refresh.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use slotline_router::{NodeMap, Value};

use crate::config::NodeAddr;
use crate::conn::{Conn, ConnOptions};
use crate::engine::{Shared, REFRESH_INTERVAL, RUNNING};
use crate::error::Error;
use crate::route::RouteTable;

/// How long a node that failed a refresh is asked only after the others.
const FAILED_NODE_PENALTY: Duration = Duration::from_secs(5);
/// How long the thread sleeps when nothing asks for a refresh (it also wakes on request).
const IDLE_SLEEP: Duration = Duration::from_secs(1);

/// The refresh thread's body; returns when the client stops.
pub(crate) fn run(shared: Arc<Shared>) {
    shared.routes.set_refresher(thread::current());
    let seeds = shared.config.nodes.clone();
    let mut failed: HashMap<String, Instant> = HashMap::new();
    let mut last = Instant::now();
    loop {
        if shared.state() != RUNNING {
            return;
        }
        // Host names the I/O threads wait for (they never look one up themselves).
        for queue in &shared.routes.load_full().masters {
            queue.resolve();
        }
        let since = last.elapsed();
        if since < REFRESH_INTERVAL {
            thread::park_timeout(REFRESH_INTERVAL - since);
            continue;
        }
        if !shared.routes.take_stale() {
            thread::park_timeout(IDLE_SLEEP);
            continue;
        }
        last = Instant::now();
        let base = shared.routes.load_full();
        let nodes = candidates(&base, &seeds, &failed);
        match fetch_recording(nodes, &shared.conn_opts, &mut failed) {
            Ok(map) => {
                shared.routes.install_fetched(&base, map);
                crate::trace::event!(
                    info,
                    "slotline::route",
                    version = shared.routes.load().version,
                    masters = shared.routes.load().masters.len(),
                    "slot table refreshed"
                );
            }
            Err(_err) => {
                crate::trace::event!(warn, "slotline::route", error = %_err, "topology refresh failed: no node answered");
                shared.routes.mark_stale();
            }
        }
        failed.retain(|_, at| at.elapsed() < FAILED_NODE_PENALTY);
    }
}

/// The nodes to ask, best first (see the module docs).
fn candidates(
    table: &RouteTable,
    seeds: &[NodeAddr],
    failed: &HashMap<String, Instant>,
) -> Vec<NodeAddr> {
    let mut masters: Vec<(u64, NodeAddr)> = table
        .masters
        .iter()
        .map(|q| {
            (
                q.last_reply_ms.load(Ordering::Relaxed),
                NodeAddr::from(q.addr.clone()),
            )
        })
        .collect();
    masters.sort_by_key(|m| std::cmp::Reverse(m.0));
    let mut nodes: Vec<NodeAddr> = masters.into_iter().map(|(_, n)| n).collect();
    for shard in table.map.shards() {
        for replica in shard.replicas() {
            nodes.push(NodeAddr::from(replica.addr.clone()));
        }
    }
    nodes.extend(seeds.iter().cloned());
    // Recently failed nodes last, keeping the order otherwise (stable sort).
    nodes.sort_by_key(|n| failed.contains_key(&n.to_string()));
    nodes
}

/// [`fetch`], remembering in `failed` which nodes failed.
fn fetch_recording(
    nodes: Vec<NodeAddr>,
    opts: &ConnOptions,
    failed: &mut HashMap<String, Instant>,
) -> Result<NodeMap, Error> {
    let mut tried = Vec::new();
    let mut last = None;
    let mut partial = None;
    for node in nodes {
        let label = node.to_string();
        if tried.contains(&label) {
            continue;
        }
        tried.push(label.clone());
        match fetch_one(&node, opts) {
            Ok(map) if map.is_complete() => return Ok(map),
            Ok(map) => {
                if partial.is_none() && map.masters().next().is_some() {
                    partial = Some(map);
                }
            }
            Err(err) => {
                failed.insert(label, Instant::now());
                last = Some(Box::new(err));
            }
        }
    }
    partial.ok_or(Error::NoReachableNode { tried, last })
}

/// Asks each node in turn for the topology; the first complete-enough answer wins.
///
/// A map with holes is accepted only if no node gives a complete one: during a resharding or a
/// failover a hole is the truth, and ops for it are refused by the nodes and retried until it
/// is filled.
pub(crate) fn fetch(
    nodes: impl IntoIterator<Item = NodeAddr>,
    opts: &ConnOptions,
) -> Result<NodeMap, Error> {
    fetch_recording(nodes.into_iter().collect(), opts, &mut HashMap::new())
}

/// One node's view: `CLUSTER SHARDS`, or `CLUSTER SLOTS` when the server predates it.
fn fetch_one(node: &NodeAddr, opts: &ConnOptions) -> Result<NodeMap, Error> {
    let mut conn = Conn::connect(node, &opts.for_node(node))?;
    let addr = conn.addr().to_owned();
    let shards = conn.query(redis::cmd("CLUSTER").arg("SHARDS"))?;
    let parsed = match shards {
        Ok(reply) => NodeMap::from_cluster_shards(&to_router_value(reply)),
        Err(_) => {
            let slots = conn
                .query(redis::cmd("CLUSTER").arg("SLOTS"))?
                .map_err(|e| Error::Server {
                    addr: addr.clone(),
                    message: e.to_string(),
                })?;
            NodeMap::from_cluster_slots(&to_router_value(slots))
        }
    };
    let mut map = parsed.map_err(|e| Error::Topology(format!("{addr}: {e}")))?;
    map.fill_empty_hosts(node.host());
    if opts.tls.is_some() {
        map.use_tls_ports();
    }
    Ok(map)
}

/// The router's RESP value for a reply decoded by the `redis` crate.
pub(crate) fn to_router_value(value: redis::Value) -> Value {
    match value {
        redis::Value::Nil => Value::Nil,
        redis::Value::Int(i) => Value::Int(i),
        redis::Value::BulkString(b) => Value::Bulk(b),
        redis::Value::SimpleString(s) => Value::Simple(s),
        redis::Value::Okay => Value::Simple("OK".to_owned()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            Value::Array(items.into_iter().map(to_router_value).collect())
        }
        redis::Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (to_router_value(k), to_router_value(v)))
                .collect(),
        ),
        redis::Value::Attribute { data, .. } => to_router_value(*data),
        redis::Value::VerbatimString { text, .. } => Value::Bulk(text.into_bytes()),
        redis::Value::Double(d) => Value::Bulk(d.to_string().into_bytes()),
        redis::Value::Boolean(b) => Value::Int(i64::from(b)),
        redis::Value::ServerError(e) => Value::Error(e.to_string()),
        other => Value::Error(format!("unexpected reply type: {other:?}")),
    }
}
