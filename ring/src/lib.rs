//! A lock-free, bounded MPMC ring.
#![cfg_attr(not(feature = "std"), no_std)]
