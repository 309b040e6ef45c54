//! The cluster's topology as the client sees it: which master serves each slot.
//!
//! The map is read from a seed node's `CLUSTER SHARDS` reply (Redis 7), or `CLUSTER SLOTS` from
//! older servers, parsed by [`slotline_router::NodeMap`]. Writers read it through an
//! [`Arc`] snapshot taken once per batch, so a lookup costs one table read and no lock.
//!
//! A `MOVED` reply updates its one slot at once ([`Topology::apply_moved`]) and asks for a full
//! refresh; refreshes are rate-limited to one per [`REFRESH_INTERVAL`], so a storm of redirects
//! during a resharding costs one `CLUSTER SHARDS` round trip per interval, not one per write.
//! An `ASK` reply never touches the map: it is a one-off detour for one command.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use slotline_router::{Addr, NodeMap, ShardMap, Slot, Value};

use crate::config::NodeAddr;
use crate::conn::{Conn, ConnOptions};
use crate::error::Error;

/// Most writer threads a client starts, however many masters the cluster has.
pub const MAX_WRITERS: usize = 64;

/// Shortest time between two full topology refreshes.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// The shared, refreshable slot → master map, and which writer serves each logical shard.
///
/// Writers are assigned per master: every logical shard goes to the writer of the master that
/// serves its first slot (masters sorted by address, modulo the writer count). A master that
/// stalls therefore stalls one writer, and the shards of the other masters keep flowing.
pub(crate) struct Topology {
    map: RwLock<Arc<NodeMap>>,
    shards: ShardMap,
    /// `owner[shard]`: the writer that drains that shard's ring.
    owner: Box<[AtomicUsize]>,
    writers: usize,
    /// Serialises read-modify-install of the map, so two concurrent MOVEDs both survive.
    install_lock: Mutex<()>,
    /// Bumped after every new map, so writers know to recompute the shards they own.
    generation: AtomicU64,
    seeds: Vec<NodeAddr>,
    opts: ConnOptions,
    /// Set by a redirect or a connection failure; cleared by the refresh that follows it.
    stale: AtomicBool,
    last_refresh: Mutex<Instant>,
}

impl Topology {
    /// Reads the topology through the seeds (and fails if none answers with a usable map).
    ///
    /// The client runs one writer per master the first map names (at most [`MAX_WRITERS`]).
    pub(crate) fn connect(
        seeds: Vec<NodeAddr>,
        opts: ConnOptions,
        shards: ShardMap,
    ) -> Result<Topology, Error> {
        let map = fetch(seeds.iter().cloned(), &opts)?;
        let writers = map.masters().count().clamp(1, MAX_WRITERS);
        let topology = Topology {
            map: RwLock::new(Arc::new(NodeMap::new())),
            shards,
            owner: (0..shards.shard_count())
                .map(|_| AtomicUsize::new(0))
                .collect(),
            writers,
            install_lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            seeds,
            opts,
            stale: AtomicBool::new(false),
            last_refresh: Mutex::new(Instant::now()),
        };
        {
            let _guard = topology
                .install_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            topology.install(map);
        }
        Ok(topology)
    }

    /// The number of writer threads shards are spread over.
    pub(crate) fn writers(&self) -> usize {
        self.writers
    }

    /// The writer that drains `shard`'s ring.
    pub(crate) fn owner(&self, shard: usize) -> usize {
        self.owner[shard].load(Ordering::Relaxed)
    }

    /// Changes every time a new map is installed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs `map` and reassigns shards to writers. Call with `install_lock` held.
    fn install(&self, map: NodeMap) {
        let mut masters: Vec<&Addr> = map.masters().map(|n| &n.addr).collect();
        masters.sort();
        for (shard, owner) in self.owner.iter().enumerate() {
            let writer = self
                .shards
                .slots(shard)
                .and_then(|range| map.master_addr(range.start()))
                .and_then(|addr| masters.binary_search(&addr).ok())
                .map_or(shard % self.writers, |i| i % self.writers);
            owner.store(writer, Ordering::Relaxed);
        }
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current map. Cheap: one reference-count increment under a read lock.
    pub(crate) fn snapshot(&self) -> Arc<NodeMap> {
        Arc::clone(&self.map.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Points one slot at `addr` (a `MOVED` reply) and marks the map stale so that the next
    /// [`Topology::maybe_refresh`] reads the whole map again. Returns whether the slot changed.
    pub(crate) fn apply_moved(&self, slot: Slot, addr: Addr) -> bool {
        self.stale.store(true, Ordering::Relaxed);
        let _guard = self.install_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        if current.master_addr(slot) == Some(&addr) {
            return false;
        }
        let mut next = NodeMap::clone(&current);
        let changed = next.apply_moved(slot, addr);
        self.install(next);
        changed
    }

    /// Marks the map as possibly out of date (a connection failed, a node said `CLUSTERDOWN`).
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Refreshes the whole map if it was marked stale and the last refresh is older than
    /// [`REFRESH_INTERVAL`]. Only one caller refreshes at a time; the others return at once.
    /// Returns whether a new map was installed.
    pub(crate) fn maybe_refresh(&self) -> bool {
        if !self.stale.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut last) = self.last_refresh.try_lock() else {
            return false;
        };
        if last.elapsed() < REFRESH_INTERVAL {
            return false;
        }
        *last = Instant::now();
        self.stale.store(false, Ordering::Relaxed);
        // Ask the masters we know first (they are the freshest), then the seeds.
        let known: Vec<NodeAddr> = self
            .snapshot()
            .masters()
            .map(|node| NodeAddr::new(node.addr.host(), node.addr.port()))
            .collect();
        match fetch(
            known.into_iter().chain(self.seeds.iter().cloned()),
            &self.opts,
        ) {
            Ok(map) => {
                let _guard = self.install_lock.lock().unwrap_or_else(|e| e.into_inner());
                self.install(map);
                true
            }
            Err(_) => {
                // Keep the old map and try again after the interval.
                self.stale.store(true, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Asks each node in turn for the topology; the first complete-enough answer wins.
///
/// A map with holes is accepted only if no node gives a complete one: during a resharding or a
/// failover a hole is the truth, and ops for it fail with a typed error until it is filled.
pub(crate) fn fetch(
    nodes: impl IntoIterator<Item = NodeAddr>,
    opts: &ConnOptions,
) -> Result<NodeMap, Error> {
    let mut tried = Vec::new();
    let mut last = None;
    let mut partial = None;
    for node in nodes {
        let label = node.to_string();
        if tried.contains(&label) {
            continue;
        }
        tried.push(label);
        match fetch_one(&node, opts) {
            Ok(map) if map.is_complete() => return Ok(map),
            Ok(map) => {
                if partial.is_none() && map.masters().next().is_some() {
                    partial = Some(map);
                }
            }
            Err(err) => last = Some(Box::new(err)),
        }
    }
    partial.ok_or(Error::NoReachableNode { tried, last })
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
