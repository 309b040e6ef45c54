//! Loom models live in `tests/`; run them with `cargo test --features loom`.
