//! `burst`: the same heavy-tailed write traffic through a sidecar-queue model and through
//! slotline, on a real Redis Cluster, with every acknowledged write read back.
//!
//! [`trace`]: the seeded heavy-tailed (and Poisson) traces and the CSV trace format.

pub mod trace;
