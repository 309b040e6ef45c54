//! Slot → node: [`NodeMap`], built from `CLUSTER SHARDS` or `CLUSTER SLOTS` and kept current by
//! `MOVED` redirects.
//!
//! The map holds one owner per slot (`None` for a slot no master serves: a *hole*) and, per
//! shard, the master and its replicas as the server described them. A `MOVED` updates one slot
//! ([`NodeMap::apply_moved`]) without a full refresh.
//!
//! Both replies are read as [`Value`]s, so RESP2 (flat key/value arrays) and RESP3 (maps) work.
//!
//! * `CLUSTER SHARDS` (Redis 7+): an array of shards, each with `slots` (a flat list of
//!   start/end pairs) and `nodes` (each with `id`, `port` and/or `tls-port`, `ip`, `endpoint`,
//!   `hostname`, `role`, `health`, ...). A shard without a master leaves its slots as holes.
//! * `CLUSTER SLOTS` (all versions): an array of `[start, end, master, replica...]` where each
//!   node is `[host, port, id?, metadata?]`. A master serving several ranges appears once per
//!   range; entries are merged by node id (or address without one).
//!
//! Shards are kept as the server lists them, so two masters can share an address: a node that
//! restarted with a new id (its `nodes.conf` lost) is listed under the old id and the new one
//! until the cluster forgets the old. Each is a [`Shard`] of its own (with its own replicas),
//! but a client connects by address, so the queries by address ([`NodeMap::slot_ranges`])
//! answer for every shard whose master is at that address: no slot is left out.
//!
//! A host the server does not know (`NULL`, or `?` as endpoint) is kept empty: it means "the node
//! that sent the reply", as in redirects ([`Addr::or_host`]).

use core::fmt;

use crate::addr::Addr;
use crate::resp::Value;
use crate::slot::{Slot, SlotRange, SLOT_COUNT};

/// A node's role.
///
/// # Examples
///
/// ```
/// use slotline_router::{Addr, Node, Role};
///
/// assert_eq!(Node::new(Addr::new("h", 1), Role::Master).role, Role::Master);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves writes for its slots.
    Master,
    /// Replicates a master.
    Replica,
}

/// A cluster node, as a topology reply describes it.
///
/// # Examples
///
/// ```
/// use slotline_router::{Addr, Node, Role};
///
/// let mut n = Node::new(Addr::new("10.0.0.1", 7000), Role::Replica);
/// n.id = Some("e10b7051d6bf2d5febd39a2be297bbaea6084111".into());
/// assert_eq!(n.addr.port(), 7000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Node {
    /// Where to connect: the preferred endpoint (may be empty: the node that replied) and the
    /// port (the TLS port when the node only announces that one).
    pub addr: Addr,
    /// Master or replica.
    pub role: Role,
    /// The 40-character node id, when the reply carries it.
    pub id: Option<String>,
    /// The TLS port, when announced.
    pub tls_port: Option<u16>,
    /// The node's IP, when announced separately from the endpoint.
    pub ip: Option<String>,
    /// The node's host name, when announced.
    pub hostname: Option<String>,
    /// `CLUSTER SHARDS` health (`online`, `failed`, `loading`), when given.
    pub health: Option<String>,
}

impl Node {
    /// A node with only an address and a role.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, Role};
    ///
    /// let n = Node::new(Addr::new("h", 1), Role::Master);
    /// assert_eq!(n.id, None);
    /// ```
    #[must_use]
    pub fn new(addr: Addr, role: Role) -> Node {
        Node {
            addr,
            role,
            id: None,
            tls_port: None,
            ip: None,
            hostname: None,
            health: None,
        }
    }

    /// Whether `other` is the same node: same id when both have one, else same address.
    fn same_node(&self, other: &Node) -> bool {
        match (&self.id, &other.id) {
            (Some(a), Some(b)) => a == b,
            _ => self.addr == other.addr,
        }
    }
}

/// A master and its replicas.
///
/// # Examples
///
/// ```
/// use slotline_router::{Addr, Node, NodeMap, Role, SlotRange};
///
/// let mut map = NodeMap::new();
/// map.assign(SlotRange::ALL, Node::new(Addr::new("h", 1), Role::Master));
/// assert_eq!(map.shards()[0].master().addr, Addr::new("h", 1));
/// assert!(map.shards()[0].replicas().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    master: Node,
    replicas: Vec<Node>,
}

impl Shard {
    /// The master.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_router::{Addr, Node, NodeMap, Role, SlotRange};
    /// # let mut map = NodeMap::new();
    /// # map.assign(SlotRange::ALL, Node::new(Addr::new("h", 1), Role::Master));
    /// assert_eq!(map.shards()[0].master().role, Role::Master);
    /// ```
    #[must_use]
    pub fn master(&self) -> &Node {
        &self.master
    }

    /// The replicas, in reply order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use slotline_router::{Addr, Node, NodeMap, Role, SlotRange};
    /// # let mut map = NodeMap::new();
    /// # map.assign(SlotRange::ALL, Node::new(Addr::new("h", 1), Role::Master));
    /// assert_eq!(map.shards()[0].replicas().len(), 0);
    /// ```
    #[must_use]
    pub fn replicas(&self) -> &[Node] {
        &self.replicas
    }
}

/// No owner, in [`NodeMap::owner`].
const HOLE: u16 = u16::MAX;

/// Which master serves each slot (see the module docs).
///
/// # Examples
///
/// ```
/// use slotline_router::{parse_resp, Addr, NodeMap, Slot};
///
/// // CLUSTER SLOTS of a one-master cluster, as raw RESP.
/// let raw = b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nab\r\n";
/// let (reply, _) = parse_resp(raw).unwrap();
/// let map = NodeMap::from_cluster_slots(&reply).unwrap();
/// assert_eq!(map.master_addr(Slot::new(12182).unwrap()), Some(&Addr::new("127.0.0.1", 7000)));
/// assert!(map.is_complete());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NodeMap {
    /// `owner[slot]`: index into `shards`, or [`HOLE`]. Always `SLOT_COUNT` long.
    owner: Box<[u16]>,
    shards: Vec<Shard>,
}

impl fmt::Debug for NodeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Per shard, not per address: two shards can have masters at one address.
        let ranges: Vec<(String, String)> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let r: Vec<String> = self
                    .ranges_where(|o| usize::from(o) == i)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                (s.master.addr.to_string(), r.join(","))
            })
            .collect();
        f.debug_struct("NodeMap")
            .field("masters", &ranges)
            .field("holes", &self.holes())
            .finish()
    }
}

impl Default for NodeMap {
    fn default() -> NodeMap {
        NodeMap::new()
    }
}

impl NodeMap {
    /// A map with no masters: every slot is a hole.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{NodeMap, Slot, SlotRange};
    ///
    /// let map = NodeMap::new();
    /// assert_eq!(map.master(Slot::MIN), None);
    /// assert_eq!(map.holes(), [SlotRange::ALL]);
    /// ```
    #[must_use]
    pub fn new() -> NodeMap {
        NodeMap {
            owner: vec![HOLE; usize::from(SLOT_COUNT)].into_boxed_slice(),
            shards: Vec::new(),
        }
    }

    /// Builds the map from a `CLUSTER SHARDS` reply (Redis 7+).
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] naming the malformed part: an error reply, a wrong type, a missing
    /// field, a slot or port out of range, an odd slot list, or a slot claimed by two shards.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, NodeMap, Role, Slot, Value};
    ///
    /// let s = |t: &str| Value::Bulk(t.as_bytes().to_vec());
    /// let node = |port: i64, role: &str| {
    ///     Value::Array(vec![
    ///         s("id"), s("e10b7051d6bf2d5febd39a2be297bbaea6084111"), s("port"), Value::Int(port),
    ///         s("ip"), s("127.0.0.1"), s("endpoint"), s("127.0.0.1"), s("role"), s(role),
    ///         s("health"), s("online"),
    ///     ])
    /// };
    /// let reply = Value::Array(vec![Value::Array(vec![
    ///     s("slots"), Value::Array(vec![Value::Int(0), Value::Int(5460)]),
    ///     s("nodes"), Value::Array(vec![node(7000, "master")]),
    /// ])]);
    /// let map = NodeMap::from_cluster_shards(&reply).unwrap();
    /// assert_eq!(map.master_addr(Slot::new(5460).unwrap()), Some(&Addr::new("127.0.0.1", 7000)));
    /// assert_eq!(map.master(Slot::new(5461).unwrap()), None); // a hole
    /// ```
    pub fn from_cluster_shards(reply: &Value) -> Result<NodeMap, TopologyError> {
        let shards = as_array(reply, "CLUSTER SHARDS reply")?;
        let mut map = NodeMap::new();
        for shard in shards {
            let fields = as_fields(shard, "shard")?;
            let slots = as_array(field(&fields, "slots", "shard")?, "shard slots")?;
            if slots.len() % 2 != 0 {
                return Err(TopologyError::OddSlotList { len: slots.len() });
            }
            let mut ranges = Vec::with_capacity(slots.len() / 2);
            for pair in slots.chunks_exact(2) {
                ranges.push(slot_range(&pair[0], &pair[1])?);
            }
            let mut master = None;
            let mut replicas = Vec::new();
            for node in as_array(field(&fields, "nodes", "shard")?, "shard nodes")? {
                let node = shards_node(node)?;
                match node.role {
                    Role::Master if master.is_none() => master = Some(node),
                    _ => replicas.push(node),
                }
            }
            // A shard without a master (mid-failover) serves nothing: its slots stay holes.
            if let Some(master) = master {
                let index = map.add_shard(master, replicas)?;
                for range in ranges {
                    map.claim(range, index)?;
                }
            }
        }
        Ok(map)
    }

    /// Builds the map from a `CLUSTER SLOTS` reply (any Redis version).
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] naming the malformed part, as for
    /// [`from_cluster_shards`](NodeMap::from_cluster_shards).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, NodeMap, Slot, Value};
    ///
    /// let node = |port| Value::Array(vec![Value::Bulk(b"10.0.0.1".to_vec()), Value::Int(port)]);
    /// let reply = Value::Array(vec![
    ///     Value::Array(vec![Value::Int(0), Value::Int(8191), node(7000), node(7003)]),
    ///     Value::Array(vec![Value::Int(8192), Value::Int(16383), node(7001)]),
    /// ]);
    /// let map = NodeMap::from_cluster_slots(&reply).unwrap();
    /// assert_eq!(map.masters().count(), 2);
    /// assert_eq!(map.replicas(Slot::MIN)[0].addr, Addr::new("10.0.0.1", 7003));
    /// assert_eq!(map.master_addr(Slot::MAX).map(Addr::port), Some(7001));
    /// ```
    pub fn from_cluster_slots(reply: &Value) -> Result<NodeMap, TopologyError> {
        let entries = as_array(reply, "CLUSTER SLOTS reply")?;
        let mut map = NodeMap::new();
        for entry in entries {
            let items = as_array(entry, "CLUSTER SLOTS entry")?;
            let [start, end, master, replicas @ ..] = items else {
                return Err(TopologyError::MissingField {
                    field: "master",
                    what: "CLUSTER SLOTS entry",
                });
            };
            let range = slot_range(start, end)?;
            let master = slots_node(master, Role::Master)?;
            let replicas = replicas
                .iter()
                .map(|r| slots_node(r, Role::Replica))
                .collect::<Result<Vec<_>, _>>()?;
            let index = match map.shards.iter().position(|s| s.master.same_node(&master)) {
                Some(i) => {
                    let shard = &mut map.shards[i];
                    for r in replicas {
                        if !shard.replicas.iter().any(|known| known.same_node(&r)) {
                            shard.replicas.push(r);
                        }
                    }
                    i
                }
                None => map.add_shard(master, replicas)?,
            };
            map.claim(range, index)?;
        }
        Ok(map)
    }

    fn add_shard(&mut self, master: Node, replicas: Vec<Node>) -> Result<usize, TopologyError> {
        let index = self.shards.len();
        if index >= usize::from(HOLE) {
            return Err(TopologyError::TooManyShards);
        }
        self.shards.push(Shard { master, replicas });
        Ok(index)
    }

    /// Gives `range` to shard `index`; a slot already owned by another shard is an error.
    fn claim(&mut self, range: SlotRange, index: usize) -> Result<(), TopologyError> {
        let owner = u16::try_from(index).map_err(|_| TopologyError::TooManyShards)?;
        for slot in range.iter() {
            let cell = &mut self.owner[slot.index()];
            if *cell != HOLE && *cell != owner {
                return Err(TopologyError::SlotClaimedTwice { slot });
            }
            *cell = owner;
        }
        Ok(())
    }

    /// Gives `range` to `master` (added if no known master has its address), whoever owned it.
    ///
    /// For building maps by hand (tests, static configurations).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Role, Slot, SlotRange};
    ///
    /// let mut map = NodeMap::new();
    /// let low = SlotRange::new(Slot::MIN, Slot::new(99).unwrap()).unwrap();
    /// map.assign(low, Node::new(Addr::new("a", 1), Role::Master));
    /// assert_eq!(map.slot_ranges(&Addr::new("a", 1)), [low]);
    /// ```
    pub fn assign(&mut self, range: SlotRange, master: Node) {
        let index = self.master_index_or_insert(master);
        for slot in range.iter() {
            self.owner[slot.index()] = index;
        }
    }

    fn master_index_or_insert(&mut self, master: Node) -> u16 {
        if let Some(i) = self
            .shards
            .iter()
            .position(|s| s.master.addr == master.addr)
        {
            if let Ok(i) = u16::try_from(i) {
                return i;
            }
        }
        if self.shards.len() >= usize::from(HOLE) {
            // Only masters that `MOVED` left without slots can pile up this far: drop them
            // (at most 16384 shards own a slot, so this always makes room).
            self.drop_idle_masters();
        }
        self.shards.push(Shard {
            master: Node {
                role: Role::Master,
                ..master
            },
            replicas: Vec::new(),
        });
        u16::try_from(self.shards.len() - 1).unwrap_or(HOLE - 1)
    }

    /// Removes masters that own no slot, renumbering the owners.
    fn drop_idle_masters(&mut self) {
        let mut used = vec![false; self.shards.len()];
        for &o in self.owner.iter().filter(|&&o| o != HOLE) {
            used[usize::from(o)] = true;
        }
        let mut renumber = vec![HOLE; self.shards.len()];
        let mut kept = Vec::new();
        for (i, shard) in self.shards.drain(..).enumerate() {
            if used[i] {
                renumber[i] = u16::try_from(kept.len()).unwrap_or(HOLE);
                kept.push(shard);
            }
        }
        self.shards = kept;
        for o in self.owner.iter_mut().filter(|o| **o != HOLE) {
            *o = renumber[usize::from(*o)];
        }
    }

    /// Applies `MOVED <slot> <addr>`: `slot` now belongs to the master at `addr`, which is added
    /// (with no id or replicas) if unknown. Every other slot keeps its owner. Returns whether the
    /// owner changed.
    ///
    /// `addr` should be complete: fill an empty host first with [`crate::Redirect::target`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Redirect, Role, SlotRange};
    ///
    /// let mut map = NodeMap::new();
    /// map.assign(SlotRange::ALL, Node::new(Addr::new("10.0.0.1", 7000), Role::Master));
    /// let moved = Redirect::parse("MOVED 3999 :7001").unwrap();
    /// assert!(map.apply_moved(moved.slot(), moved.target("10.0.0.1")));
    /// assert_eq!(map.master_addr(moved.slot()), Some(&Addr::new("10.0.0.1", 7001)));
    /// assert_eq!(map.masters().count(), 2);
    /// assert_eq!(map.slot_ranges(&Addr::new("10.0.0.1", 7001)).len(), 1);
    /// ```
    pub fn apply_moved(&mut self, slot: Slot, addr: Addr) -> bool {
        let index = self.master_index_or_insert(Node::new(addr, Role::Master));
        let cell = &mut self.owner[slot.index()];
        let changed = *cell != index;
        *cell = index;
        changed
    }

    /// The shard serving `slot`, or `None` for a hole.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{NodeMap, Slot};
    ///
    /// assert!(NodeMap::new().shard(Slot::MIN).is_none());
    /// ```
    #[must_use]
    pub fn shard(&self, slot: Slot) -> Option<&Shard> {
        self.shards.get(usize::from(self.owner[slot.index()]))
    }

    /// The master serving `slot`, or `None` for a hole.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Role, SlotRange, Slot};
    ///
    /// let mut map = NodeMap::new();
    /// map.assign(SlotRange::ALL, Node::new(Addr::new("h", 1), Role::Master));
    /// assert_eq!(map.master(Slot::MAX).map(|n| n.role), Some(Role::Master));
    /// ```
    #[must_use]
    pub fn master(&self, slot: Slot) -> Option<&Node> {
        self.shard(slot).map(Shard::master)
    }

    /// The address of the master serving `slot`, or `None` for a hole.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{key_slot, Addr, Node, NodeMap, Role, SlotRange};
    ///
    /// let mut map = NodeMap::new();
    /// map.assign(SlotRange::ALL, Node::new(Addr::new("h", 1), Role::Master));
    /// assert_eq!(map.master_addr(key_slot(b"foo")), Some(&Addr::new("h", 1)));
    /// ```
    #[must_use]
    pub fn master_addr(&self, slot: Slot) -> Option<&Addr> {
        self.master(slot).map(|n| &n.addr)
    }

    /// The replicas of the master serving `slot` (empty for a hole).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{NodeMap, Slot};
    ///
    /// assert!(NodeMap::new().replicas(Slot::MIN).is_empty());
    /// ```
    #[must_use]
    pub fn replicas(&self, slot: Slot) -> &[Node] {
        self.shard(slot).map_or(&[], Shard::replicas)
    }

    /// Every known master (including ones a `MOVED` left without slots), in discovery order.
    /// Two masters can share an address (see the module docs): deduplicate by address when
    /// counting places to connect to.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::NodeMap::new().masters().count(), 0);
    /// ```
    pub fn masters(&self) -> impl Iterator<Item = &Node> + '_ {
        self.shards.iter().map(Shard::master)
    }

    /// Every known shard (a master and its replicas), in discovery order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(slotline_router::NodeMap::new().shards().is_empty());
    /// ```
    #[must_use]
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The slot ranges served at `addr`, ascending and maximal (adjacent slots merged); empty
    /// if no master is at `addr` or it serves nothing.
    ///
    /// Every shard whose master is at `addr` counts: a reply can list two node ids at one
    /// address (a node restarted with a new id, see the module docs), and the slots of both
    /// are served there. So the ranges of each distinct master address, plus
    /// [`holes`](NodeMap::holes), cover every slot exactly once.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Role, Slot, SlotRange};
    ///
    /// let mut map = NodeMap::new();
    /// let a = Addr::new("a", 1);
    /// map.assign(SlotRange::ALL, Node::new(a.clone(), Role::Master));
    /// map.apply_moved(Slot::new(100).unwrap(), Addr::new("b", 2));
    /// let ranges: Vec<String> = map.slot_ranges(&a).iter().map(|r| r.to_string()).collect();
    /// assert_eq!(ranges, ["0-99", "101-16383"]);
    /// ```
    ///
    /// Two node ids at one address, in a `CLUSTER SLOTS` reply:
    ///
    /// ```
    /// use slotline_router::{parse_resp, Addr, NodeMap};
    ///
    /// let raw = b"*2\r\n\
    ///     *3\r\n:0\r\n:99\r\n*3\r\n$1\r\nh\r\n:7000\r\n$3\r\nold\r\n\
    ///     *3\r\n:100\r\n:16383\r\n*3\r\n$1\r\nh\r\n:7000\r\n$3\r\nnew\r\n";
    /// let map = NodeMap::from_cluster_slots(&parse_resp(raw).unwrap().0).unwrap();
    /// assert_eq!(map.masters().count(), 2);
    /// let ranges: Vec<String> =
    ///     map.slot_ranges(&Addr::new("h", 7000)).iter().map(|r| r.to_string()).collect();
    /// assert_eq!(ranges, ["0-16383"]);
    /// ```
    #[must_use]
    pub fn slot_ranges(&self, addr: &Addr) -> Vec<SlotRange> {
        let at_addr: Vec<bool> = self.shards.iter().map(|s| &s.master.addr == addr).collect();
        if !at_addr.contains(&true) {
            return Vec::new();
        }
        self.ranges_where(|o| at_addr.get(usize::from(o)).copied().unwrap_or(false))
    }

    /// The slots no master serves, as maximal ranges.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{NodeMap, SlotRange};
    ///
    /// assert_eq!(NodeMap::new().holes(), [SlotRange::ALL]);
    /// ```
    #[must_use]
    pub fn holes(&self) -> Vec<SlotRange> {
        self.ranges_where(|o| o == HOLE)
    }

    /// Gives every node that announced an empty host (a node that does not know its own
    /// address, as a lone node does) the host `asked`: the node the reply came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Role, Slot, SlotRange};
    ///
    /// let mut map = NodeMap::new();
    /// map.assign(SlotRange::ALL, Node::new(Addr::new("", 7000), Role::Master));
    /// map.fill_empty_hosts("127.0.0.1");
    /// assert_eq!(map.master_addr(Slot::MIN), Some(&Addr::new("127.0.0.1", 7000)));
    /// ```
    pub fn fill_empty_hosts(&mut self, asked: &str) {
        for shard in &mut self.shards {
            for node in std::iter::once(&mut shard.master).chain(shard.replicas.iter_mut()) {
                if node.addr.host().is_empty() {
                    node.addr = node.addr.or_host(asked);
                }
            }
        }
    }

    /// Points every node that announced a TLS port at that port: for a client that speaks
    /// TLS to a cluster whose nodes listen on both a plaintext and a TLS port (`CLUSTER SHARDS`
    /// gives both, and [`Node::addr`] carries the plaintext one).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Node, NodeMap, Role, Slot, SlotRange};
    ///
    /// let mut node = Node::new(Addr::new("10.0.0.1", 6379), Role::Master);
    /// node.tls_port = Some(6380);
    /// let mut map = NodeMap::new();
    /// map.assign(SlotRange::ALL, node);
    /// map.use_tls_ports();
    /// assert_eq!(map.master_addr(Slot::MIN), Some(&Addr::new("10.0.0.1", 6380)));
    /// ```
    pub fn use_tls_ports(&mut self) {
        for shard in &mut self.shards {
            for node in std::iter::once(&mut shard.master).chain(shard.replicas.iter_mut()) {
                if let Some(tls_port) = node.tls_port {
                    node.addr = Addr::new(node.addr.host(), tls_port);
                }
            }
        }
    }

    /// Whether every slot has a master.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!slotline_router::NodeMap::new().is_complete());
    /// ```
    #[must_use]
    pub fn is_complete(&self) -> bool {
        !self.owner.contains(&HOLE)
    }

    fn ranges_where(&self, pick: impl Fn(u16) -> bool) -> Vec<SlotRange> {
        let mut out = Vec::new();
        let mut start: Option<Slot> = None;
        for (slot, &owner) in Slot::all().zip(self.owner.iter()) {
            match (pick(owner), start) {
                (true, None) => start = Some(slot),
                (false, Some(s)) => {
                    out.extend(Slot::new(slot.get() - 1).and_then(|e| SlotRange::new(s, e)));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.extend(SlotRange::new(s, Slot::MAX));
        }
        out
    }
}

/// Why a topology reply was rejected.
///
/// # Examples
///
/// ```
/// use slotline_router::{NodeMap, TopologyError, Value};
///
/// let err = NodeMap::from_cluster_slots(&Value::Int(3)).unwrap_err();
/// assert_eq!(err, TopologyError::WrongType { what: "CLUSTER SLOTS reply", expected: "array" });
/// assert_eq!(err.to_string(), "CLUSTER SLOTS reply: expected array");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyError {
    /// The server answered with an error.
    ServerError(String),
    /// A value of the wrong RESP type.
    WrongType {
        /// What was being read.
        what: &'static str,
        /// The type it should have.
        expected: &'static str,
    },
    /// A required field or element is missing.
    MissingField {
        /// The field.
        field: &'static str,
        /// What lacks it.
        what: &'static str,
    },
    /// A slot number not in `0..16384`.
    SlotOutOfRange {
        /// The number received.
        value: i64,
    },
    /// A slot range whose start is after its end.
    InvertedRange {
        /// Start.
        start: u16,
        /// End.
        end: u16,
    },
    /// A port not in `0..=65535`.
    BadPort {
        /// The number received.
        value: i64,
    },
    /// A `CLUSTER SHARDS` slot list with an odd number of bounds.
    OddSlotList {
        /// Its length.
        len: usize,
    },
    /// A role other than `master` or `replica` (`slave`).
    UnknownRole(String),
    /// Text that is not UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// Two shards claim the same slot.
    SlotClaimedTwice {
        /// The first such slot.
        slot: Slot,
    },
    /// More shards than the map can index (65535).
    TooManyShards,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::ServerError(e) => write!(f, "server replied with an error: {e}"),
            TopologyError::WrongType { what, expected } => write!(f, "{what}: expected {expected}"),
            TopologyError::MissingField { field, what } => write!(f, "{what}: missing `{field}`"),
            TopologyError::SlotOutOfRange { value } => {
                write!(f, "slot {value} is out of range (0..{SLOT_COUNT})")
            }
            TopologyError::InvertedRange { start, end } => {
                write!(f, "slot range {start}-{end} ends before it starts")
            }
            TopologyError::BadPort { value } => {
                write!(f, "port {value} is out of range (0..=65535)")
            }
            TopologyError::OddSlotList { len } => {
                write!(f, "shard slots: {len} bounds, expected start/end pairs")
            }
            TopologyError::UnknownRole(r) => write!(f, "unknown node role {r:?}"),
            TopologyError::InvalidUtf8 { field } => write!(f, "`{field}` is not UTF-8"),
            TopologyError::SlotClaimedTwice { slot } => {
                write!(f, "slot {slot} is claimed by two shards")
            }
            TopologyError::TooManyShards => {
                f.write_str("more shards than the map can index (65535)")
            }
        }
    }
}

impl std::error::Error for TopologyError {}

fn as_array<'a>(v: &'a Value, what: &'static str) -> Result<&'a [Value], TopologyError> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Error(e) => Err(TopologyError::ServerError(e.clone())),
        _ => Err(TopologyError::WrongType {
            what,
            expected: "array",
        }),
    }
}

/// Key/value pairs from a RESP3 map or a RESP2 flat array; keys must be strings.
fn as_fields<'a>(
    v: &'a Value,
    what: &'static str,
) -> Result<Vec<(&'a [u8], &'a Value)>, TopologyError> {
    let key = |k: &'a Value| {
        k.as_bytes().ok_or(TopologyError::WrongType {
            what,
            expected: "string keys",
        })
    };
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Ok((key(k)?, v))).collect(),
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks_exact(2)
            .map(|kv| Ok((key(&kv[0])?, &kv[1])))
            .collect(),
        Value::Error(e) => Err(TopologyError::ServerError(e.clone())),
        _ => Err(TopologyError::WrongType {
            what,
            expected: "map or key/value array",
        }),
    }
}

fn field<'a>(
    fields: &[(&[u8], &'a Value)],
    name: &'static str,
    what: &'static str,
) -> Result<&'a Value, TopologyError> {
    optional(fields, name).ok_or(TopologyError::MissingField { field: name, what })
}

fn optional<'a>(fields: &[(&[u8], &'a Value)], name: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| *v)
}

fn int(v: &Value, what: &'static str) -> Result<i64, TopologyError> {
    match v {
        Value::Int(i) => Ok(*i),
        // Some proxies send numbers as strings.
        Value::Bulk(_) | Value::Simple(_) => v
            .as_bytes()
            .and_then(|b| core::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or(TopologyError::WrongType {
                what,
                expected: "integer",
            }),
        _ => Err(TopologyError::WrongType {
            what,
            expected: "integer",
        }),
    }
}

fn text(v: &Value, field: &'static str) -> Result<String, TopologyError> {
    let bytes = v.as_bytes().ok_or(TopologyError::WrongType {
        what: field,
        expected: "string",
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| TopologyError::InvalidUtf8 { field })
}

/// A host: a string, or `NULL` / `?` for "unknown" (kept empty).
fn host(v: &Value, field: &'static str) -> Result<String, TopologyError> {
    match v {
        Value::Nil => Ok(String::new()),
        _ => text(v, field).map(|h| if h == "?" { String::new() } else { h }),
    }
}

fn slot(v: &Value) -> Result<Slot, TopologyError> {
    let value = int(v, "slot")?;
    Slot::try_from(value).map_err(|_| TopologyError::SlotOutOfRange { value })
}

fn slot_range(start: &Value, end: &Value) -> Result<SlotRange, TopologyError> {
    let (start, end) = (slot(start)?, slot(end)?);
    SlotRange::new(start, end).ok_or(TopologyError::InvertedRange {
        start: start.get(),
        end: end.get(),
    })
}

fn port(v: &Value) -> Result<u16, TopologyError> {
    let value = int(v, "port")?;
    u16::try_from(value).map_err(|_| TopologyError::BadPort { value })
}

/// One node of a `CLUSTER SHARDS` shard.
fn shards_node(v: &Value) -> Result<Node, TopologyError> {
    let fields = as_fields(v, "shard node")?;
    let role = match text(field(&fields, "role", "shard node")?, "role")?.as_str() {
        "master" => Role::Master,
        "replica" | "slave" => Role::Replica,
        other => return Err(TopologyError::UnknownRole(other.to_owned())),
    };
    let plain_port = optional(&fields, "port").map(port).transpose()?;
    let tls_port = optional(&fields, "tls-port").map(port).transpose()?;
    let port = plain_port.or(tls_port).ok_or(TopologyError::MissingField {
        field: "port",
        what: "shard node",
    })?;
    let ip = optional(&fields, "ip").map(|v| host(v, "ip")).transpose()?;
    let endpoint = optional(&fields, "endpoint")
        .map(|v| host(v, "endpoint"))
        .transpose()?;
    let host = endpoint
        .or_else(|| ip.clone())
        .ok_or(TopologyError::MissingField {
            field: "endpoint",
            what: "shard node",
        })?;
    Ok(Node {
        addr: Addr::new(host, port),
        role,
        id: optional(&fields, "id").map(|v| text(v, "id")).transpose()?,
        tls_port,
        ip,
        hostname: optional(&fields, "hostname")
            .map(|v| text(v, "hostname"))
            .transpose()?,
        health: optional(&fields, "health")
            .map(|v| text(v, "health"))
            .transpose()?,
    })
}

/// One node of a `CLUSTER SLOTS` entry: `[host, port, id?, metadata?]`.
fn slots_node(v: &Value, role: Role) -> Result<Node, TopologyError> {
    let items = as_array(v, "CLUSTER SLOTS node")?;
    let [h, p, rest @ ..] = items else {
        return Err(TopologyError::MissingField {
            field: "port",
            what: "CLUSTER SLOTS node",
        });
    };
    let mut node = Node::new(Addr::new(host(h, "host")?, port(p)?), role);
    if let Some(id) = rest.first() {
        node.id = Some(text(id, "id")?);
    }
    if let Some(meta) = rest.get(1) {
        let fields = as_fields(meta, "CLUSTER SLOTS node metadata")?;
        node.hostname = optional(&fields, "hostname")
            .map(|v| text(v, "hostname"))
            .transpose()?;
        node.ip = optional(&fields, "ip").map(|v| text(v, "ip")).transpose()?;
    }
    Ok(node)
}
