//! [`Addr`]: a node's `host:port`, as Redis writes it in redirects and topology replies.

use core::fmt;
use core::str::FromStr;

/// A node address: host (IP, name, or empty) and port.
///
/// An empty host means "the node that sent this" (Redis writes `MOVED 3999 :6380` when it does
/// not know its own address); see [`Addr::or_host`]. IPv6 hosts are kept without brackets and
/// written with them.
///
/// # Examples
///
/// ```
/// use slotline_router::Addr;
///
/// let a: Addr = "127.0.0.1:7000".parse().unwrap();
/// assert_eq!((a.host(), a.port()), ("127.0.0.1", 7000));
/// let v6: Addr = "::1:7000".parse().unwrap(); // split on the last colon
/// assert_eq!(v6.host(), "::1");
/// assert_eq!(v6.to_string(), "[::1]:7000");
/// assert_eq!("[::1]:7000".parse::<Addr>().unwrap(), v6);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    host: String,
    port: u16,
}

impl Addr {
    /// The address `host:port` (`host` without brackets).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = slotline_router::Addr::new("10.0.0.7", 6379);
    /// assert_eq!(a.to_string(), "10.0.0.7:6379");
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Addr {
        Addr {
            host: host.into(),
            port,
        }
    }

    /// The host, possibly empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Addr::new("h", 1).host(), "h");
    /// ```
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Addr::new("h", 1).port(), 1);
    /// ```
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This address, with `host` filled in if its own host is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::Addr;
    ///
    /// let moved: Addr = ":6380".parse().unwrap();
    /// assert_eq!(moved.or_host("10.0.0.7"), Addr::new("10.0.0.7", 6380));
    /// assert_eq!(Addr::new("a", 1).or_host("b"), Addr::new("a", 1));
    /// ```
    #[must_use]
    pub fn or_host(&self, host: &str) -> Addr {
        if self.host.is_empty() {
            Addr::new(host, self.port)
        } else {
            self.clone()
        }
    }

    /// Whether [`fmt::Display`] must bracket the host to be read back unchanged.
    fn needs_brackets(&self) -> bool {
        self.host.contains(':') || (self.host.starts_with('[') && self.host.ends_with(']'))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.needs_brackets() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Addr {
    type Err = AddrError;

    /// Parses `host:port`, splitting on the last colon; one pair of brackets around the host is
    /// removed. The host may be empty; the port must be decimal `1..=65535`.
    fn from_str(s: &str) -> Result<Addr, AddrError> {
        let (host, port) = s.rsplit_once(':').ok_or(AddrError::MissingPort)?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner,
            None => host,
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrError::BadPort);
        }
        match port.parse::<u16>() {
            Ok(port) if port != 0 => Ok(Addr::new(host, port)),
            _ => Err(AddrError::BadPort),
        }
    }
}

/// Why a `host:port` string was rejected.
///
/// # Examples
///
/// ```
/// use slotline_router::{Addr, AddrError};
///
/// assert_eq!("localhost".parse::<Addr>(), Err(AddrError::MissingPort));
/// assert_eq!("h:70000".parse::<Addr>(), Err(AddrError::BadPort));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// No `:` separates a port.
    MissingPort,
    /// The port is not a decimal number in `1..=65535`.
    BadPort,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrError::MissingPort => "address has no `:port`",
            AddrError::BadPort => "port is not a number in 1..=65535",
        })
    }
}

impl std::error::Error for AddrError {}
