//! The slot → master table callers route by, and each master's bounded queue.
//!
//! # The table
//!
//! A [`RouteTable`] maps every one of the 16384 slots to one [`MasterQueue`]. Callers read the
//! current table without a lock through [`arc_swap::ArcSwap`]: one `load`, one array index,
//! and the op goes into that master's ring. A table is never changed in place; a change
//! (a `MOVED`, a refresh, a failover) builds a new table and swaps it in under one install
//! mutex, so two changes never lose each other.
//!
//! Every slot always has a queue. A slot the cluster reports as unassigned (a hole, seen
//! during a failover or a resharding) keeps the queue it had, and at start-up goes to the
//! first master: a write there is refused by the node (`CLUSTERDOWN`, `MOVED`) and retried,
//! never stranded without a queue.
//!
//! # Versions: an older view never replaces a newer one
//!
//! Each table carries a version, bumped by every install. A refresh remembers the table it
//! started from (its *base*); when it installs, slots that changed between the base and the
//! current table (a `MOVED` applied while the refresh was fetching) keep their current owner:
//! they are newer than anything the fetch can know. The fetched view wins only for slots
//! nobody touched meanwhile, and the table is marked stale so that the next refresh settles
//! the rest.
//!
//! # Queues and their bounds
//!
//! A [`MasterQueue`] is created when a master first appears and lives as long as a table or
//! an I/O thread refers to it. Its ring holds ops that are queued and not yet taken by the
//! master's connection, `capacity` of them at most, with the backpressure line at `limit`.
//! Its byte counter holds the RESP bytes of every op charged to it, queued or in flight: the
//! caller adds an op's bytes before pushing (and refuses above `byte_limit`); the I/O thread
//! subtracts them when the op is completed, or moves the charge when it forwards the op to
//! another master's queue.
//!
//! When a master leaves the table (a failover, the last slot moved away), its queue is
//! *retired*: its I/O thread forwards whatever it still holds to the slots' new owners and
//! drops the queue once no table refers to it any more (`Arc::strong_count` is 1: no caller
//! can be in the middle of a push, since a caller holds its table while it pushes).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use slotline_ring::Ring;
use slotline_router::{Addr, NodeMap, Slot, SLOT_COUNT};

use crate::config::Config;
use crate::op::Op;

/// One master's bounded queue of pending ops, and its budgets.
pub(crate) struct MasterQueue {
    /// The master's address, as the cluster announces it.
    pub(crate) addr: Addr,
    /// Ops queued for this master and not yet taken by its connection.
    pub(crate) ring: Ring<Op>,
    /// The backpressure line, in ops: pushes stop when the ring holds this many.
    pub(crate) limit: usize,
    /// RESP bytes of the ops charged to this queue: queued in the ring or held by its link.
    pub(crate) bytes: AtomicU64,
    /// The backpressure line, in bytes.
    pub(crate) byte_limit: u64,
    /// The I/O thread that serves this master.
    pub(crate) io: usize,
    /// When the master last answered anything, in milliseconds since the client started
    /// (0: never). The refresh asks masters that answered recently first.
    pub(crate) last_reply_ms: AtomicU64,
}

impl std::fmt::Debug for MasterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterQueue")
            .field("addr", &self.addr)
            .field("queued", &self.ring.len())
            .field("capacity", &self.ring.capacity())
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("io", &self.io)
            .finish()
    }
}

impl MasterQueue {
    /// Returns `n` bytes of charge (an op completed, dropped or moved away).
    pub(crate) fn release(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Adds `n` bytes of charge without checking the line (an op forwarded here).
    pub(crate) fn charge(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Charges `n` bytes if the total stays within the byte line; `false` otherwise.
    pub(crate) fn try_charge(&self, n: u64) -> bool {
        let before = self.bytes.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.byte_limit {
            self.bytes.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The slot → master table: one immutable version of the routing.
pub(crate) struct RouteTable {
    /// Bumped by every install.
    pub(crate) version: u64,
    /// `owner[slot]`: index into `masters`.
    owner: Box<[u16]>,
    /// Every master the cluster listed, each with its queue.
    pub(crate) masters: Vec<Arc<MasterQueue>>,
    /// The cluster's view this table was built from (replicas included), for the refresh.
    pub(crate) map: Arc<NodeMap>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("version", &self.version)
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

impl RouteTable {
    /// The queue of the master serving `slot`.
    #[inline]
    pub(crate) fn queue(&self, slot: Slot) -> &Arc<MasterQueue> {
        &self.masters[usize::from(self.owner[usize::from(slot.get())])]
    }

    /// The queue of the master at `addr`, if the table has it.
    pub(crate) fn queue_at(&self, addr: &Addr) -> Option<&Arc<MasterQueue>> {
        self.masters.iter().find(|q| &q.addr == addr)
    }

    /// Whether `queue` is one of this table's masters.
    pub(crate) fn contains(&self, queue: &Arc<MasterQueue>) -> bool {
        self.masters.iter().any(|q| Arc::ptr_eq(q, queue))
    }
}

/// What a new master's queue is sized by.
#[derive(Clone, Debug)]
pub(crate) struct QueueSizing {
    config: Config,
    io_threads: usize,
}

impl QueueSizing {
    pub(crate) fn from_config(config: &Config, io_threads: usize) -> QueueSizing {
        QueueSizing {
            config: config.clone(),
            io_threads: io_threads.max(1),
        }
    }

    fn queue(&self, addr: Addr, owned_slots: usize, io: usize) -> Arc<MasterQueue> {
        let capacity = self.config.master_capacity(owned_slots);
        Arc::new(MasterQueue {
            addr,
            ring: Ring::new(capacity),
            limit: self.config.backpressure_limit_for(capacity),
            bytes: AtomicU64::new(0),
            byte_limit: self.config.backpressure_byte_limit(),
            io: io % self.io_threads,
            last_reply_ms: AtomicU64::new(0),
        })
    }
}

/// The shared, swappable table and what it takes to build the next one.
pub(crate) struct Routes {
    table: ArcSwap<RouteTable>,
    /// Serialises read-modify-install, so concurrent changes never lose each other.
    install: Mutex<()>,
    sizing: QueueSizing,
    /// Round-robin assignment of new masters to I/O threads.
    next_io: AtomicUsize,
    /// Set by a redirect or a failure; cleared by the refresh that follows it.
    stale: AtomicBool,
    /// The refresh thread, woken when the table goes stale.
    refresher: OnceLock<Thread>,
    /// When the client started: the zero of `last_reply_ms`.
    pub(crate) epoch: Instant,
}

impl Routes {
    /// Routes over the cluster's first view.
    pub(crate) fn new(map: NodeMap, sizing: QueueSizing) -> Routes {
        let routes = Routes {
            table: ArcSwap::from_pointee(RouteTable {
                version: 0,
                owner: Box::new([]),
                masters: Vec::new(),
                map: Arc::new(NodeMap::new()),
            }),
            install: Mutex::new(()),
            sizing,
            next_io: AtomicUsize::new(0),
            stale: AtomicBool::new(false),
            refresher: OnceLock::new(),
            epoch: Instant::now(),
        };
        {
            let _guard = routes.lock();
            let empty = routes.table.load_full();
            let table = routes.build(&empty, &empty, map);
            routes.table.store(Arc::new(table));
        }
        routes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.install.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current table, for a caller's push: no lock, no reference-count traffic in the
    /// common case.
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// The current table as an owned `Arc` (for holders that keep it a while).
    pub(crate) fn load_full(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Marks the table as possibly out of date and wakes the refresh thread.
    pub(crate) fn mark_stale(&self) {
        if !self.stale.swap(true, Ordering::AcqRel) {
            if let Some(thread) = self.refresher.get() {
                thread.unpark();
            }
        }
    }

    /// Takes the stale mark (the refresh thread, before it fetches).
    pub(crate) fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::AcqRel)
    }

    /// Registers the refresh thread (woken by [`Routes::mark_stale`]).
    pub(crate) fn set_refresher(&self, thread: Thread) {
        let _ = self.refresher.set(thread);
    }

    /// Points `slot` at the master at `addr` (a `MOVED` reply), creating its queue if the
    /// master is new, and returns that queue. Marks the table stale so that a refresh reads
    /// the whole view.
    pub(crate) fn apply_moved(&self, slot: Slot, addr: &Addr) -> Arc<MasterQueue> {
        self.mark_stale();
        let _guard = self.lock();
        let current = self.table.load_full();
        if let Some(q) = current.queue_at(addr) {
            if Arc::ptr_eq(current.queue(slot), q) {
                return Arc::clone(q);
            }
        }
        let mut map = NodeMap::clone(&current.map);
        map.apply_moved(slot, addr.clone());
        let next = self.build(&current, &current, map);
        let queue = Arc::clone(next.queue(slot));
        self.table.store(Arc::new(next));
        queue
    }

    /// The queue of the master at `addr` (an `ASK` target), adding the master to the table
    /// (with no slots) if it is not there yet.
    pub(crate) fn queue_for_addr(&self, addr: &Addr) -> Arc<MasterQueue> {
        if let Some(q) = self.table.load().queue_at(addr) {
            return Arc::clone(q);
        }
        self.mark_stale();
        let _guard = self.lock();
        let current = self.table.load_full();
        if let Some(q) = current.queue_at(addr) {
            return Arc::clone(q);
        }
        let mut table = self.build(&current, &current, NodeMap::clone(&current.map));
        let queue = self.sizing.queue(
            addr.clone(),
            0,
            self.next_io.fetch_add(1, Ordering::Relaxed),
        );
        table.masters.push(Arc::clone(&queue));
        self.table.store(Arc::new(table));
        queue
    }

    /// Installs a view fetched by a refresh that started from `base`. Slots changed since
    /// `base` keep their current owner (see the module docs). Returns whether the view was
    /// taken whole (nothing changed meanwhile).
    pub(crate) fn install_fetched(&self, base: &Arc<RouteTable>, fetched: NodeMap) -> bool {
        let _guard = self.lock();
        let current = self.table.load_full();
        let whole = current.version == base.version;
        let next = self.build(base, &current, fetched);
        self.table.store(Arc::new(next));
        if !whole {
            self.stale.store(true, Ordering::Release);
        }
        whole
    }

    /// Builds the next table from `view`, reusing `current`'s queues for masters it keeps.
    /// Slots that `view` leaves unassigned, or that changed between `base` and `current`,
    /// keep `current`'s owner. Call with the install lock held.
    fn build(&self, base: &RouteTable, current: &RouteTable, view: NodeMap) -> RouteTable {
        let mut masters: Vec<Arc<MasterQueue>> = Vec::new();
        let mut owner = vec![0u16; usize::from(SLOT_COUNT)].into_boxed_slice();
        // First pass: which address serves each slot.
        let mut slot_addr: Vec<Option<&Addr>> = Vec::with_capacity(usize::from(SLOT_COUNT));
        for slot in Slot::all() {
            let moved_meanwhile = base.version != current.version
                && !current.owner.is_empty()
                && !base.owner.is_empty()
                && !Arc::ptr_eq(base.queue(slot), current.queue(slot));
            let addr = if moved_meanwhile {
                Some(&current.queue(slot).addr)
            } else {
                view.master_addr(slot)
                    .or_else(|| (!current.owner.is_empty()).then(|| &current.queue(slot).addr))
            };
            slot_addr.push(addr);
        }
        // Every master the view lists, plus any address a kept slot still points at.
        let mut addrs: Vec<&Addr> = view.masters().map(|n| &n.addr).collect();
        for a in slot_addr.iter().flatten() {
            if !addrs.contains(a) {
                addrs.push(a);
            }
        }
        let mut counts = vec![0usize; addrs.len()];
        for (slot, a) in slot_addr.iter().enumerate() {
            let index = match a {
                Some(a) => addrs.iter().position(|x| x == a).unwrap_or(0),
                None => 0,
            };
            owner[slot] = u16::try_from(index).unwrap_or(0);
            if let Some(c) = counts.get_mut(index) {
                *c += 1;
            }
        }
        for (i, addr) in addrs.iter().enumerate() {
            let queue = match current.queue_at(addr) {
                Some(q) => Arc::clone(q),
                None => self.sizing.queue(
                    (*addr).clone(),
                    counts.get(i).copied().unwrap_or(0),
                    self.next_io.fetch_add(1, Ordering::Relaxed),
                ),
            };
            masters.push(queue);
        }
        RouteTable {
            version: current.version + 1,
            owner,
            masters,
            map: Arc::new(view),
        }
    }
}
