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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// The master's socket address: parsed at once from an IP address, or looked up by the
    /// refresh thread for a host name (a lookup may block; I/O threads never make one).
    resolved: Mutex<Option<SocketAddr>>,
    /// Signalled whenever room appears (an op leaves the ring or its bytes are released):
    /// callers under `fallback_strategy: block` wait on it. One notification per freed op,
    /// each waking one more waiter; costs one atomic load when nobody waits.
    pub(crate) room: event_listener::Event,
    /// Callers listening on `room` (see [`MasterQueue::release`]).
    pub(crate) waiters: AtomicUsize,
    /// The latest deadline of an op pushed with a timeout longer than `commit.timeout`, in
    /// milliseconds since the client started (0: none). An async op whose deadline is
    /// earlier may sit behind it in a stalled queue, where no I/O thread watches its deadline:
    /// such an op asks the timer thread to wake it.
    pub(crate) long_deadline_ms: AtomicU64,
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
    /// The address to connect to, if known (see `resolved`).
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        if let Ok(ip) = self.addr.host().parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, self.addr.port()));
        }
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets a looked-up address after a failed connect, so that the refresh thread looks
    /// the name up again (a node restarted under the same name may have a new address).
    pub(crate) fn forget_address(&self) {
        if self.addr.host().parse::<IpAddr>().is_ok() {
            return;
        }
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Looks the host name up if that is still to be done (the refresh thread).
    pub(crate) fn resolve(&self) {
        if self.socket_addr().is_some() {
            return;
        }
        if let Ok(mut addrs) = (self.addr.host(), self.addr.port()).to_socket_addrs() {
            if let Some(a) = addrs.next() {
                *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) = Some(a);
            }
        }
    }

    /// Returns `n` bytes of charge (an op completed, dropped or moved away), and wakes one
    /// more waiter if any waits.
    ///
    /// `SeqCst` with the waiters' count: a waiter counts itself, fences, then tries to push;
    /// here the charge is returned, then the count is read. Either this sees the waiter (and
    /// notifies) or the waiter's try sees the room. Notifying takes the event's lock, so it is
    /// skipped when nobody waits.
    pub(crate) fn release(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.room.notify_additional(1);
        }
    }

    /// Wakes every waiter (the table changed, or the client stops): each tries again, routed
    /// by the table of that time.
    pub(crate) fn wake_waiters(&self) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.room.notify(usize::MAX);
        }
    }

    /// Takes back a charge whose op was not queued after all (its push found the ring full):
    /// no room appeared, so no waiter is woken (waking one would only make it fail in turn
    /// and wake the next: a storm of wake-ups among the waiters).
    pub(crate) fn uncharge(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// `n` ops left the ring: wake as many waiters (see [`MasterQueue::release`]).
    pub(crate) fn popped(&self, n: usize) {
        if n > 0 {
            fence(Ordering::SeqCst);
            if self.waiters.load(Ordering::SeqCst) > 0 {
                self.room.notify_additional(n);
            }
        }
    }

    /// Adds `n` bytes of charge without checking the line (an op forwarded here).
    pub(crate) fn charge(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Charges `n` bytes if the total stays within the byte line; `false` otherwise. A failed
    /// charge never inflates the total, even for a moment, so it cannot make another caller
    /// fail (and wait) for room that exists.
    pub(crate) fn try_charge(&self, n: u64) -> bool {
        let mut current = self.bytes.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(n);
            if next > self.byte_limit {
                return false;
            }
            match self.bytes.compare_exchange_weak(
                current,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
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
    /// Masters added for an `ASK` redirect that no fetched view has listed yet.
    asked: Vec<Addr>,
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

    /// The index in `masters` of the master serving `slot`.
    #[inline]
    pub(crate) fn master_index(&self, slot: Slot) -> usize {
        usize::from(self.owner[usize::from(slot.get())])
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
            resolved: Mutex::new(None),
            room: event_listener::Event::new(),
            waiters: AtomicUsize::new(0),
            long_deadline_ms: AtomicU64::new(0),
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
                asked: Vec::new(),
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

    /// Installs `next` in place of `current` and wakes the callers waiting for room in any of
    /// `current`'s queues: their op may belong to another queue now.
    fn publish(&self, current: &RouteTable, next: RouteTable) {
        self.table.store(Arc::new(next));
        for queue in &current.masters {
            queue.wake_waiters();
        }
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
    ///
    /// For a known master this copies the table's slot array and changes one entry (no
    /// rebuild), so a storm of redirects during a resharding stays cheap.
    pub(crate) fn apply_moved(&self, slot: Slot, addr: &Addr) -> Arc<MasterQueue> {
        self.mark_stale();
        let _guard = self.lock();
        let current = self.table.load_full();
        if let Some(index) = current.masters.iter().position(|q| &q.addr == addr) {
            let queue = Arc::clone(&current.masters[index]);
            if Arc::ptr_eq(current.queue(slot), &queue) {
                return queue;
            }
            let mut owner = current.owner.clone();
            owner[usize::from(slot.get())] = u16::try_from(index).unwrap_or(0);
            let mut map = NodeMap::clone(&current.map);
            map.apply_moved(slot, addr.clone());
            self.publish(
                &current,
                RouteTable {
                    version: current.version + 1,
                    owner,
                    masters: current.masters.clone(),
                    asked: current.asked.clone(),
                    map: Arc::new(map),
                },
            );
            return queue;
        }
        let mut map = NodeMap::clone(&current.map);
        map.apply_moved(slot, addr.clone());
        let next = self.build(&current, &current, map);
        let queue = Arc::clone(next.queue(slot));
        self.publish(&current, next);
        queue
    }

    /// The queue of the master at `addr` (an `ASK` target), adding the master to the table
    /// (with no slots) if it is not there yet. It stays in later tables until a view lists it.
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
        let queue = self.sizing.queue(
            addr.clone(),
            0,
            self.next_io.fetch_add(1, Ordering::Relaxed),
        );
        let mut masters = current.masters.clone();
        masters.push(Arc::clone(&queue));
        let mut asked = current.asked.clone();
        asked.push(addr.clone());
        self.publish(
            &current,
            RouteTable {
                version: current.version + 1,
                owner: current.owner.clone(),
                masters,
                asked,
                map: Arc::clone(&current.map),
            },
        );
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
        self.publish(&current, next);
        if !whole {
            self.stale.store(true, Ordering::Release);
        }
        whole
    }

    /// Builds the next table from `view`, reusing `current`'s queues for masters it keeps.
    /// Slots that `view` leaves unassigned, or that changed between `base` and `current`,
    /// keep `current`'s owner; masters added for an `ASK` stay until a view lists them. The
    /// table's own map is the view with those kept slots applied, so that a later change
    /// built from it keeps them too. Call with the install lock held.
    fn build(&self, base: &RouteTable, current: &RouteTable, view: NodeMap) -> RouteTable {
        let has_current = !current.owner.is_empty();
        let merge = has_current && !base.owner.is_empty() && base.version != current.version;
        // Which address serves each slot.
        let mut slot_addr: Vec<Option<&Addr>> = Vec::with_capacity(usize::from(SLOT_COUNT));
        for slot in Slot::all() {
            let moved_meanwhile = merge && !Arc::ptr_eq(base.queue(slot), current.queue(slot));
            let addr = if moved_meanwhile {
                Some(&current.queue(slot).addr)
            } else {
                view.master_addr(slot)
                    .or_else(|| has_current.then(|| &current.queue(slot).addr))
            };
            slot_addr.push(addr);
        }
        // Every master the view lists, any address a kept slot still points at, and the
        // masters added for an `ASK` that the view does not list yet.
        let mut addrs: Vec<&Addr> = Vec::new();
        let mut index: HashMap<&Addr, usize> = HashMap::new();
        for a in view
            .masters()
            .map(|n| &n.addr)
            .chain(slot_addr.iter().flatten().copied())
            .chain(current.asked.iter())
        {
            if !index.contains_key(a) {
                index.insert(a, addrs.len());
                addrs.push(a);
            }
        }
        let mut owner = vec![0u16; usize::from(SLOT_COUNT)].into_boxed_slice();
        let mut counts = vec![0usize; addrs.len()];
        for (slot, a) in slot_addr.iter().enumerate() {
            let i = a.and_then(|a| index.get(a).copied()).unwrap_or(0);
            owner[slot] = u16::try_from(i).unwrap_or(0);
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        let masters: Vec<Arc<MasterQueue>> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| match current.queue_at(addr) {
                Some(q) => Arc::clone(q),
                None => self.sizing.queue(
                    (*addr).clone(),
                    counts.get(i).copied().unwrap_or(0),
                    self.next_io.fetch_add(1, Ordering::Relaxed),
                ),
            })
            .collect();
        let asked: Vec<Addr> = current
            .asked
            .iter()
            .filter(|a| view.masters().all(|n| &n.addr != *a))
            .cloned()
            .collect();
        // The table's map: the view with every slot this table routes differently applied.
        let mut map = view.clone();
        for slot in Slot::all() {
            let routed = &masters[usize::from(owner[usize::from(slot.get())])].addr;
            if view.master_addr(slot) != Some(routed) {
                map.apply_moved(slot, routed.clone());
            }
        }
        RouteTable {
            version: current.version + 1,
            owner,
            masters,
            asked,
            map: Arc::new(map),
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use slotline_router::{Node, Role, SlotRange};

    fn slot(n: u16) -> Slot {
        Slot::new(n).unwrap()
    }

    fn addr(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    fn three_masters() -> NodeMap {
        let mut map = NodeMap::new();
        for (i, (first, last)) in [(0, 5460), (5461, 10922), (10923, 16383)]
            .into_iter()
            .enumerate()
        {
            let range = SlotRange::new(slot(first), slot(last)).unwrap();
            map.assign(range, Node::new(addr(7000 + i as u16), Role::Master));
        }
        map
    }

    fn routes() -> Routes {
        Routes::new(
            three_masters(),
            QueueSizing::from_config(&Config::default(), 2),
        )
    }

    #[test]
    fn a_moved_during_a_refresh_survives_the_refresh_and_later_changes() {
        let routes = routes();
        let base = routes.load_full();
        // While the refresh fetches, slot 1 moves to 7001.
        routes.apply_moved(slot(1), &addr(7001));
        // The fetched view is older: slot 1 still on 7000.
        assert!(!routes.install_fetched(&base, three_masters()));
        assert_eq!(routes.load().queue(slot(1)).addr, addr(7001));
        // A later, unrelated change keeps it.
        routes.apply_moved(slot(2), &addr(7002));
        let table = routes.load();
        assert_eq!(table.queue(slot(1)).addr, addr(7001));
        assert_eq!(table.queue(slot(2)).addr, addr(7002));
        assert_eq!(table.queue(slot(3)).addr, addr(7000));
    }

    #[test]
    fn an_asked_master_stays_until_a_view_lists_it() {
        let routes = routes();
        let asked = routes.queue_for_addr(&addr(7009));
        routes.apply_moved(slot(5), &addr(7002));
        let base = routes.load_full();
        routes.install_fetched(&base, three_masters());
        let table = routes.load();
        assert!(table.contains(&asked), "the ASK target's queue was dropped");
        // Its queue is the same one, not a new one.
        assert!(Arc::ptr_eq(table.queue_at(&addr(7009)).unwrap(), &asked));
    }

    #[test]
    fn queues_are_kept_across_tables_and_sized_by_their_slots() {
        let routes = routes();
        let before = Arc::clone(routes.load().queue(slot(0)));
        routes.apply_moved(slot(0), &addr(7001));
        let base = routes.load_full();
        routes.install_fetched(&base, three_masters());
        let table = routes.load();
        assert!(Arc::ptr_eq(table.queue(slot(0)), &before));
        // 5461 of 16384 slots: 64 x 4096 x 5461 / 16384.
        assert_eq!(before.ring.capacity(), 87_376);
    }

    #[test]
    fn a_host_name_is_resolved_only_on_request() {
        let sizing = QueueSizing::from_config(&Config::default(), 1);
        let q = sizing.queue(Addr::new("localhost", 7000), 0, 0);
        assert_eq!(q.socket_addr(), None);
        q.resolve();
        assert_eq!(q.socket_addr().map(|a| a.port()), Some(7000));
        // After a failed connect the name is looked up again, not trusted for ever.
        q.forget_address();
        assert_eq!(q.socket_addr(), None);
        q.resolve();
        assert!(q.socket_addr().is_some());
        let ip = sizing.queue(addr(7001), 0, 0);
        assert_eq!(ip.socket_addr(), Some("127.0.0.1:7001".parse().unwrap()));
        ip.forget_address();
        assert!(ip.socket_addr().is_some(), "an IP address needs no lookup");
    }
}
