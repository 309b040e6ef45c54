//! Redis Cluster routing for slotline: which slot, which shard and which node each key goes to.
//!
//! * [`crc16`], [`key_slot`], [`hash_tag`], [`Slot`]: the slot of a key, byte for byte what
//!   Redis's `CLUSTER KEYSLOT` answers (hash tags included), computed with vectorised scanning and
//!   carry-less multiplication where the CPU has it.
//!
//! # Examples
//!
//! ```
//! use slotline_router::key_slot;
//!
//! assert_eq!(key_slot(b"123456789").get(), 12739);
//! ```
#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]

mod crc16;
mod slot;

pub use crate::crc16::crc16;
#[doc(hidden)]
pub use crate::crc16::paths as crc16_paths;
#[doc(hidden)]
pub use crate::slot::key_slot_reference;
pub use crate::slot::{hash_tag, key_slot, Slot, SlotOutOfRange, SLOT_COUNT};
