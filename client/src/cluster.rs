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
/// serves its first slot (those masters sorted by address, modulo the writer count). A master
/// that stalls therefore stalls one writer, and the shards of the other masters keep flowing.
/// Masters that drain no shard take no place in that order: after a failover the dead master
/// is still listed (role master, no slots, health `fail`) until it rejoins as a replica, and
/// counting it would put two live masters on one writer.
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
        let writers = draining_masters(&map, shards).len().clamp(1, MAX_WRITERS);
        Ok(Topology::new(map, writers, seeds, opts, shards))
    }

    /// A topology serving `map` with `writers` writer threads.
    fn new(
        map: NodeMap,
        writers: usize,
        seeds: Vec<NodeAddr>,
        opts: ConnOptions,
        shards: ShardMap,
    ) -> Topology {
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
        topology
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
        let masters = draining_masters(&map, self.shards);
        for (shard, owner) in self.owner.iter().enumerate() {
            let writer = first_slot_master(&map, self.shards, shard)
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

/// The master serving the first slot of `shard` (the one whose writer drains the shard).
fn first_slot_master(map: &NodeMap, shards: ShardMap, shard: usize) -> Option<&Addr> {
    shards
        .slots(shard)
        .and_then(|range| map.master_addr(range.start()))
}

/// The masters that drain at least one logical shard, sorted by address, without duplicates.
fn draining_masters(map: &NodeMap, shards: ShardMap) -> Vec<&Addr> {
    let mut masters: Vec<&Addr> = (0..shards.shard_count())
        .filter_map(|shard| first_slot_master(map, shards, shard))
        .collect();
    masters.sort();
    masters.dedup();
    masters
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use slotline_router::{Node, Role, SlotRange};

    fn range(first: u16, last: u16) -> SlotRange {
        SlotRange::new(Slot::new(first).unwrap(), Slot::new(last).unwrap()).unwrap()
    }

    fn master(port: u16) -> Node {
        Node::new(Addr::new("127.0.0.1", port), Role::Master)
    }

    /// The writers of the shards whose first slot each of `ports` serves.
    fn writers_of(topology: &Topology, map: &NodeMap, ports: &[u16]) -> Vec<usize> {
        ports
            .iter()
            .map(|&port| {
                let addr = Addr::new("127.0.0.1", port);
                let shard = (0..topology.shards.shard_count())
                    .find(|&s| first_slot_master(map, topology.shards, s) == Some(&addr))
                    .expect("a shard drained by this master");
                topology.owner(shard)
            })
            .collect()
    }

    #[test]
    fn a_failed_master_left_without_slots_does_not_put_two_masters_on_one_writer() {
        let shards = ShardMap::default();
        let mut map = NodeMap::new();
        map.assign(range(0, 5460), master(7000));
        map.assign(range(5461, 10922), master(7001));
        map.assign(range(10923, 16383), master(7002));
        let topology = Topology::new(map, 3, Vec::new(), ConnOptions::default(), shards);

        // 7001 fails; its replica 7004 takes its slots. The cluster still lists 7001 as a
        // master with no slots (assigned one slot, then lost it), sorted between live masters.
        let mut after = NodeMap::new();
        after.assign(range(0, 5460), master(7000));
        after.assign(range(5461, 10922), master(7004));
        after.assign(range(10923, 16383), master(7002));
        after.assign(range(0, 0), master(7001));
        after.assign(range(0, 0), master(7000));
        assert_eq!(after.masters().count(), 4);
        {
            let _guard = topology.install_lock.lock().unwrap();
            topology.install(after.clone());
        }
        let mut writers = writers_of(&topology, &after, &[7000, 7002, 7004]);
        writers.sort_unstable();
        assert_eq!(writers, [0, 1, 2], "one writer per live master");
    }

    #[test]
    fn writers_are_counted_from_the_masters_that_drain_a_shard() {
        let shards = ShardMap::default();
        let mut map = NodeMap::new();
        map.assign(range(0, 8191), master(7000));
        map.assign(range(8192, 16383), master(7001));
        map.assign(range(0, 0), master(7005));
        map.assign(range(0, 0), master(7000));
        assert_eq!(map.masters().count(), 3);
        assert_eq!(draining_masters(&map, shards).len(), 2);
    }
}
