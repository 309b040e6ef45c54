//! Redis Cluster routing for slotline: which slot, which shard and which node each key goes to.
//!
//! * [`crc16`], [`key_slot`], [`hash_tag`], [`Slot`], [`SlotRange`]: the slot of a key, byte for
//!   byte what Redis's `CLUSTER KEYSLOT` answers (hash tags included), computed with vectorised
//!   scanning and carry-less multiplication where the CPU has it.
//! * [`ShardMap`]: slot → one of N logical shards (contiguous, balanced ranges; O(1)).
//! * [`NodeMap`]: slot → master (and replicas), from `CLUSTER SHARDS` or `CLUSTER SLOTS`,
//!   updated by `MOVED` ([`Redirect`]).
//! * [`Value`] and [`parse_resp`]: the small RESP model those parsers read.
//!
//! Everything parsed from outside returns a typed error and never panics (the parsers are
//! fuzzed: see `fuzz/` in the repository).
//!
//! # Examples
//!
//! ```
//! use slotline_router::{key_slot, ShardMap};
//!
//! let slot = key_slot(b"{user1000}.following");
//! assert_eq!(slot.get(), 3443);
//! assert_eq!(ShardMap::default().shard_of(slot), 3443 / 256);
//! ```
#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]

mod addr;
mod crc16;
mod redirect;
mod resp;
mod shards;
mod slot;
mod topology;

pub use crate::addr::{Addr, AddrError};
pub use crate::crc16::crc16;
#[doc(hidden)]
pub use crate::crc16::paths as crc16_paths;
pub use crate::redirect::{Redirect, RedirectError, RedirectKind};
pub use crate::resp::{parse_resp, write_command, RespError, Value, MAX_DEPTH};
pub use crate::shards::{ShardCountError, ShardMap};
#[doc(hidden)]
pub use crate::slot::key_slot_reference;
#[doc(hidden)]
pub use crate::slot::paths as slot_paths;
pub use crate::slot::{hash_tag, key_slot, Slot, SlotOutOfRange, SlotRange, SLOT_COUNT};
pub use crate::topology::{Node, NodeMap, Role, Shard, TopologyError};
