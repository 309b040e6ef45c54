//! Shared helpers for slotline's benchmarks and the `burst` program.

pub mod ab;
pub mod burst;
