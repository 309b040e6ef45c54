//! [`Redirect`]: `MOVED` and `ASK` error replies.
//!
//! Redis answers a command sent to the wrong node with `-MOVED <slot> <host>:<port>` (the slot
//! has moved for good: update the slot map) or `-ASK <slot> <host>:<port>` (during a migration:
//! send this one command there, preceded by `ASKING`). The address is split on its last colon,
//! so IPv6 hosts work with or without brackets, and an empty host (`MOVED 3999 :6380`) means the
//! node that sent the reply.

use core::fmt;
use core::str::FromStr;

use crate::addr::{Addr, AddrError};
use crate::slot::Slot;

/// Which redirect.
///
/// # Examples
///
/// ```
/// use slotline_router::{Redirect, RedirectKind};
///
/// let r: Redirect = "ASK 1 h:1".parse().unwrap();
/// assert_eq!(r.kind(), RedirectKind::Ask);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedirectKind {
    /// The slot now lives at the address: update the slot map.
    Moved,
    /// Send this command (after `ASKING`) to the address; the slot map stays.
    Ask,
}

impl RedirectKind {
    /// The word Redis uses: `MOVED` or `ASK`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::RedirectKind::Moved.as_str(), "MOVED");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectKind::Moved => "MOVED",
            RedirectKind::Ask => "ASK",
        }
    }
}

/// A parsed `MOVED`/`ASK` reply.
///
/// # Examples
///
/// ```
/// use slotline_router::{Addr, Redirect, RedirectKind};
///
/// let r = Redirect::parse("-MOVED 3999 127.0.0.1:6381").unwrap();
/// assert_eq!(r.kind(), RedirectKind::Moved);
/// assert_eq!(r.slot().get(), 3999);
/// assert_eq!(r.addr(), &Addr::new("127.0.0.1", 6381));
/// assert_eq!(r.to_string(), "MOVED 3999 127.0.0.1:6381");
///
/// let here = Redirect::parse("MOVED 3999 :6380").unwrap();
/// assert_eq!(here.target("10.0.0.7"), Addr::new("10.0.0.7", 6380));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Redirect {
    kind: RedirectKind,
    slot: Slot,
    addr: Addr,
}

impl Redirect {
    /// A redirect of `kind` for `slot` to `addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Redirect, RedirectKind, Slot};
    ///
    /// let r = Redirect::new(RedirectKind::Ask, Slot::new(7).unwrap(), Addr::new("::1", 7001));
    /// assert_eq!(r.to_string(), "ASK 7 [::1]:7001");
    /// ```
    #[must_use]
    pub fn new(kind: RedirectKind, slot: Slot, addr: Addr) -> Redirect {
        Redirect { kind, slot, addr }
    }

    /// Parses `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>`, with or without the
    /// leading `-` of a RESP error line; surrounding whitespace (a trailing CRLF) is ignored.
    ///
    /// # Errors
    ///
    /// A [`RedirectError`] naming the first part that is missing or malformed.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Redirect, RedirectError};
    ///
    /// assert!(Redirect::parse("ASK 12182 [::1]:7002\r\n").is_ok());
    /// assert_eq!(Redirect::parse("MOVED 16384 h:1"), Err(RedirectError::SlotOutOfRange));
    /// assert_eq!(Redirect::parse("ERR wrong"), Err(RedirectError::NotARedirect));
    /// ```
    pub fn parse(text: &str) -> Result<Redirect, RedirectError> {
        let text = text.trim_ascii();
        let text = text.strip_prefix('-').unwrap_or(text);
        let mut words = text.split_ascii_whitespace();
        let kind = match words.next() {
            Some("MOVED") => RedirectKind::Moved,
            Some("ASK") => RedirectKind::Ask,
            _ => return Err(RedirectError::NotARedirect),
        };
        let slot = words.next().ok_or(RedirectError::MissingSlot)?;
        if slot.is_empty() || !slot.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RedirectError::BadSlot);
        }
        let slot = slot
            .parse::<u16>()
            .ok()
            .and_then(Slot::new)
            .ok_or(RedirectError::SlotOutOfRange)?;
        let addr = words.next().ok_or(RedirectError::MissingAddress)?;
        let addr = addr.parse::<Addr>().map_err(RedirectError::BadAddress)?;
        if words.next().is_some() {
            return Err(RedirectError::TrailingInput);
        }
        Ok(Redirect { kind, slot, addr })
    }

    /// `MOVED` or `ASK`.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Redirect, RedirectKind};
    ///
    /// assert_eq!(Redirect::parse("MOVED 1 h:1").unwrap().kind(), RedirectKind::Moved);
    /// ```
    #[must_use]
    pub fn kind(&self) -> RedirectKind {
        self.kind
    }

    /// The slot the redirect is about.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(slotline_router::Redirect::parse("ASK 42 h:1").unwrap().slot().get(), 42);
    /// ```
    #[must_use]
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The address as sent (its host may be empty: see [`Redirect::target`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = slotline_router::Redirect::parse("ASK 42 h:1").unwrap();
    /// assert_eq!(r.addr().host(), "h");
    /// ```
    #[must_use]
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Where to go: the address, with an empty host replaced by `asked_host`, the host of the
    /// node that sent the redirect.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{Addr, Redirect};
    ///
    /// let r = Redirect::parse("MOVED 3999 :6380").unwrap();
    /// assert_eq!(r.target("127.0.0.1"), Addr::new("127.0.0.1", 6380));
    /// ```
    #[must_use]
    pub fn target(&self, asked_host: &str) -> Addr {
        self.addr.or_host(asked_host)
    }
}

impl fmt::Display for Redirect {
    /// `MOVED <slot> <addr>` / `ASK <slot> <addr>`, which [`Redirect::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.kind.as_str(), self.slot, self.addr)
    }
}

impl FromStr for Redirect {
    type Err = RedirectError;

    fn from_str(s: &str) -> Result<Redirect, RedirectError> {
        Redirect::parse(s)
    }
}

/// Why a redirect text was rejected.
///
/// # Examples
///
/// ```
/// use slotline_router::{AddrError, Redirect, RedirectError};
///
/// let err = Redirect::parse("MOVED 12 localhost").unwrap_err();
/// assert_eq!(err, RedirectError::BadAddress(AddrError::MissingPort));
/// assert_eq!(err.to_string(), "bad address in redirect: address has no `:port`");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectError {
    /// The text does not start with `MOVED` or `ASK`.
    NotARedirect,
    /// No slot after the kind.
    MissingSlot,
    /// The slot is not a decimal number.
    BadSlot,
    /// The slot is not below 16384.
    SlotOutOfRange,
    /// No address after the slot.
    MissingAddress,
    /// The address is not `host:port`.
    BadAddress(AddrError),
    /// More words after the address.
    TrailingInput,
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectError::NotARedirect => f.write_str("not a redirect: expected MOVED or ASK"),
            RedirectError::MissingSlot => f.write_str("redirect has no slot"),
            RedirectError::BadSlot => f.write_str("redirect slot is not a decimal number"),
            RedirectError::SlotOutOfRange => f.write_str("redirect slot is not below 16384"),
            RedirectError::MissingAddress => f.write_str("redirect has no address"),
            RedirectError::BadAddress(e) => write!(f, "bad address in redirect: {e}"),
            RedirectError::TrailingInput => {
                f.write_str("unexpected words after the redirect address")
            }
        }
    }
}

impl std::error::Error for RedirectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedirectError::BadAddress(e) => Some(e),
            _ => None,
        }
    }
}
