//! `burst`: replays heavy-tailed traffic through a sidecar-queue model and through slotline.
//!
//! The replay needs slotline-client's write path; until that exists this program says so and
//! exits with an error rather than printing made-up figures.

fn main() {
    eprintln!(
        "burst: the traffic replay is not available yet: it runs on slotline-client's write path, \
         which is still being built. Nothing was measured."
    );
    std::process::exit(2);
}
