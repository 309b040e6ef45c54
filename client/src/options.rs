//! [`CallOptions`]: per-call overrides of the configuration's deadline, replica count and
//! backpressure policy.

use std::time::Duration;

use crate::config::FallbackStrategy;

/// Overrides, for one call, what the configuration sets for every call: the deadline
/// (`commit.timeout`), the replicas that must confirm a write (`ack.replicas`, checked with
/// `WAIT` and `ack.timeout`) and the backpressure policy (`backpressure.fallback_strategy`).
/// What is not set keeps the configuration's value.
///
/// A call's deadline starts when the call is made. A deadline shorter than `ack.timeout` with
/// replicas asked for still holds: the call ends at its deadline with
/// [`DeadlineExceeded`](crate::CommitError::DeadlineExceeded) if `WAIT` has not answered.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use slotline_client::{CallOptions, FallbackStrategy};
/// # let client: slotline_client::Client = unimplemented!();
///
/// // A write that must reach one replica, within 50 ms, and that fails at once on a full queue.
/// let opts = CallOptions::new()
///     .timeout(Duration::from_millis(50))
///     .replicas(1)
///     .fallback_strategy(FallbackStrategy::Reject);
/// client.commit_with(b"session:{u7}", b"token", &opts)?;
/// # Ok::<(), slotline_client::CommitError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) replicas: Option<u32>,
    pub(crate) fallback_strategy: Option<FallbackStrategy>,
}

impl CallOptions {
    /// No overrides: every setting comes from the configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::CallOptions;
    ///
    /// assert_eq!(CallOptions::new(), CallOptions::default());
    /// ```
    #[must_use]
    pub const fn new() -> CallOptions {
        CallOptions {
            timeout: None,
            replicas: None,
            fallback_strategy: None,
        }
    }

    /// The call's deadline, from the moment of the call (instead of `commit.timeout`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotline_client::CallOptions;
    ///
    /// let opts = CallOptions::new().timeout(Duration::from_millis(20));
    /// assert_eq!(opts.get_timeout(), Some(Duration::from_millis(20)));
    /// ```
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Replicas that must confirm the write before it succeeds (instead of `ack.replicas`);
    /// 0 acknowledges on the master's reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::CallOptions;
    ///
    /// assert_eq!(CallOptions::new().replicas(2).get_replicas(), Some(2));
    /// ```
    #[must_use]
    pub const fn replicas(mut self, replicas: u32) -> CallOptions {
        self.replicas = Some(replicas);
        self
    }

    /// What to do when the master's queue is at its backpressure line (instead of
    /// `backpressure.fallback_strategy`).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::{CallOptions, FallbackStrategy};
    ///
    /// let opts = CallOptions::new().fallback_strategy(FallbackStrategy::Block);
    /// assert_eq!(opts.get_fallback_strategy(), Some(FallbackStrategy::Block));
    /// ```
    #[must_use]
    pub const fn fallback_strategy(mut self, strategy: FallbackStrategy) -> CallOptions {
        self.fallback_strategy = Some(strategy);
        self
    }

    /// The deadline override, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_client::CallOptions::new().get_timeout(), None);
    /// ```
    #[must_use]
    pub const fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The replica override, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_client::CallOptions::new().get_replicas(), None);
    /// ```
    #[must_use]
    pub const fn get_replicas(&self) -> Option<u32> {
        self.replicas
    }

    /// The backpressure policy override, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_client::CallOptions::new().get_fallback_strategy(), None);
    /// ```
    #[must_use]
    pub const fn get_fallback_strategy(&self) -> Option<FallbackStrategy> {
        self.fallback_strategy
    }
}
