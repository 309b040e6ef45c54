//! Events for `tracing` subscribers, behind the `tracing` feature. Without the feature the
//! [`event!`] macro expands to nothing: its arguments are not even evaluated.
//!
//! | target | level | when |
//! |---|---|---|
//! | `slotline::conn` | `debug` | a master's connection starts connecting / is ready |
//! | `slotline::conn` | `warn` | a master's connection failed (reason, how many ops it held) |
//! | `slotline::conn` | `debug` | an idle connection is closed |
//! | `slotline::route` | `debug` | a `MOVED` or `ASK` redirect (slot, target) |
//! | `slotline::route` | `info` | the refresh installed a new slot table (version, masters) |
//! | `slotline::route` | `warn` | no node answered a topology refresh |
//! | `slotline::backpressure` | `debug` | a call refused (`Rejected`, `TooLarge`, `BatchTooLarge`) or an op evicted (`Dropped`) |
//! | `slotline::backpressure` | `trace` | a call waits for room (`block`) |
//! | `slotline::engine` | `error` | an I/O thread panicked: the client is dead |

/// `tracing::<level>!(target: ..., ...)` with the `tracing` feature, nothing without it.
macro_rules! event {
    ($level:ident, $target:literal, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        {
            tracing::$level!(target: $target, $($arg)+);
        }
    };
}

pub(crate) use event;
