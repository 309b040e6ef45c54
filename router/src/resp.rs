//! A small RESP value type and decoder, enough for topology replies and fuzzing.
//!
//! [`parse_resp`] decodes one value from raw bytes: RESP2 (`+ - : $ *`) and the RESP3 types a
//! topology reply can carry (`%` map, `_` null, `~` set, read as an array, and `!` blob error).
//! It never panics and never allocates more than the input can fill: a length prefix is trusted
//! only as far as the bytes behind it go, and nesting is capped at [`MAX_DEPTH`].
//!
//! The client builds [`Value`]s from its own RESP library's values; the variants are plain data
//! for that reason.

use core::fmt;

/// Deepest nesting [`parse_resp`] accepts (topology replies nest four levels).
pub const MAX_DEPTH: usize = 64;

/// A RESP value.
///
/// # Examples
///
/// ```
/// use slotline_router::{parse_resp, Value};
///
/// let (v, used) = parse_resp(b"*2\r\n:1\r\n$3\r\nfoo\r\nrest").unwrap();
/// assert_eq!(v, Value::Array(vec![Value::Int(1), Value::Bulk(b"foo".to_vec())]));
/// assert_eq!(used, 17);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// Null: `$-1`, `*-1` or RESP3 `_`.
    Nil,
    /// An integer (`:`).
    Int(i64),
    /// A simple string (`+`), one line of text.
    Simple(String),
    /// A bulk string (`$`), any bytes.
    Bulk(Vec<u8>),
    /// An array (`*`), or a RESP3 set (`~`).
    Array(Vec<Value>),
    /// A RESP3 map (`%`), pairs in reply order.
    Map(Vec<(Value, Value)>),
    /// An error reply (`-`, or RESP3 blob error `!`).
    Error(String),
}

impl Value {
    /// The bytes of a bulk or simple string.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::Value;
    ///
    /// assert_eq!(Value::Simple("OK".into()).as_bytes(), Some(&b"OK"[..]));
    /// assert_eq!(Value::Int(1).as_bytes(), None);
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// Encodes the value as RESP (RESP3 for maps and null) and appends it to `out`.
    ///
    /// A simple string or error containing CR or LF cannot be written as one line; it is written
    /// as a bulk string (`$`) or blob error (`!`) instead, which [`parse_resp`] reads back as
    /// [`Value::Bulk`] and [`Value::Error`].
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_router::{parse_resp, Value};
    ///
    /// let v = Value::Map(vec![(Value::Simple("port".into()), Value::Int(7000))]);
    /// let mut out = Vec::new();
    /// v.write_resp(&mut out);
    /// assert_eq!(out, b"%1\r\n+port\r\n:7000\r\n");
    /// assert_eq!(parse_resp(&out).unwrap(), (v, out.len()));
    /// ```
    pub fn write_resp(&self, out: &mut Vec<u8>) {
        let multi_line = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        match self {
            Value::Nil => out.extend_from_slice(b"_\r\n"),
            Value::Int(i) => line(out, b':', &i.to_string()),
            Value::Simple(s) if multi_line(s) => blob(out, b'$', s.as_bytes()),
            Value::Simple(s) => line(out, b'+', s),
            Value::Error(s) if multi_line(s) => blob(out, b'!', s.as_bytes()),
            Value::Error(s) => line(out, b'-', s),
            Value::Bulk(b) => blob(out, b'$', b),
            Value::Array(items) => {
                line(out, b'*', &items.len().to_string());
                for item in items {
                    item.write_resp(out);
                }
            }
            Value::Map(pairs) => {
                line(out, b'%', &pairs.len().to_string());
                for (k, v) in pairs {
                    k.write_resp(out);
                    v.write_resp(out);
                }
            }
        }
    }
}

/// Appends one command, `args` as a RESP array of bulk strings (what a client sends), to `out`.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// slotline_router::write_command(&mut out, &[b"CLUSTER", b"KEYSLOT", b"foo"]);
/// assert_eq!(out, b"*3\r\n$7\r\nCLUSTER\r\n$7\r\nKEYSLOT\r\n$3\r\nfoo\r\n");
/// ```
pub fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    line(out, b'*', &args.len().to_string());
    for arg in args {
        blob(out, b'$', arg);
    }
}

/// Appends `tag`, `text` and CRLF.
fn line(out: &mut Vec<u8>, tag: u8, text: &str) {
    out.push(tag);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a length-prefixed blob (`$` bulk string or `!` blob error).
fn blob(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    line(out, tag, &bytes.len().to_string());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Why [`parse_resp`] rejected its input. Offsets count bytes from the start of the input.
///
/// # Examples
///
/// ```
/// use slotline_router::{parse_resp, RespError};
///
/// assert_eq!(parse_resp(b"$5\r\nab"), Err(RespError::Incomplete));
/// assert_eq!(parse_resp(b"?x\r\n"), Err(RespError::UnknownType { byte: b'?', at: 0 }));
/// assert_eq!(
///     parse_resp(b":12a\r\n").unwrap_err().to_string(),
///     "invalid integer in the line at byte 1"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RespError {
    /// The input ends before the value does: read more bytes and try again.
    Incomplete,
    /// A type byte this decoder does not know.
    UnknownType {
        /// The type byte.
        byte: u8,
        /// Where it is.
        at: usize,
    },
    /// An integer, or a length, that is not a valid decimal `i64`.
    BadInteger {
        /// The start of the line.
        at: usize,
    },
    /// A negative length other than `-1` (null).
    BadLength {
        /// The start of the line.
        at: usize,
    },
    /// A bulk payload not followed by CRLF.
    MissingCrlf {
        /// Where the CRLF should be.
        at: usize,
    },
    /// A simple string or error that is not UTF-8.
    InvalidUtf8 {
        /// The start of the text.
        at: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep {
        /// The start of the value that went too deep.
        at: usize,
    },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RespError::Incomplete => f.write_str("incomplete RESP value: the input ends early"),
            RespError::UnknownType { byte, at } => {
                write!(
                    f,
                    "unknown RESP type byte {:?} at byte {at}",
                    char::from(byte)
                )
            }
            RespError::BadInteger { at } => write!(f, "invalid integer in the line at byte {at}"),
            RespError::BadLength { at } => write!(f, "invalid negative length at byte {at}"),
            RespError::MissingCrlf { at } => {
                write!(f, "missing CRLF after the payload at byte {at}")
            }
            RespError::InvalidUtf8 { at } => write!(f, "text that is not UTF-8 at byte {at}"),
            RespError::TooDeep { at } => {
                write!(
                    f,
                    "values nested deeper than {MAX_DEPTH} levels at byte {at}"
                )
            }
        }
    }
}

impl std::error::Error for RespError {}

/// Decodes one RESP value from the start of `input`; returns it and the number of bytes used.
///
/// # Errors
///
/// [`RespError::Incomplete`] if `input` ends inside the value; the other [`RespError`]s name
/// malformed input.
///
/// # Examples
///
/// ```
/// use slotline_router::{parse_resp, Value};
///
/// assert_eq!(parse_resp(b":-7\r\n"), Ok((Value::Int(-7), 5)));
/// assert_eq!(parse_resp(b"$-1\r\n"), Ok((Value::Nil, 5)));
/// assert_eq!(parse_resp(b"-MOVED 1 h:1\r\n").unwrap().0, Value::Error("MOVED 1 h:1".into()));
/// ```
pub fn parse_resp(input: &[u8]) -> Result<(Value, usize), RespError> {
    let mut p = Parser { input, pos: 0 };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    /// The bytes up to the next CRLF (excluded); moves past the CRLF.
    fn line(&mut self) -> Result<&[u8], RespError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let mut from = 0;
        loop {
            let cr = memchr::memchr(b'\r', rest.get(from..).unwrap_or_default())
                .ok_or(RespError::Incomplete)?
                + from;
            match rest.get(cr + 1) {
                Some(b'\n') => {
                    self.pos += cr + 2;
                    return Ok(rest.get(..cr).unwrap_or_default());
                }
                Some(_) => from = cr + 1,
                None => return Err(RespError::Incomplete),
            }
        }
    }

    fn int(&mut self) -> Result<i64, RespError> {
        let at = self.pos;
        let line = self.line()?;
        let (neg, digits) = match line.split_first() {
            Some((b'-', d)) => (true, d),
            Some((b'+', d)) => (false, d),
            _ => (false, line),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RespError::BadInteger { at });
        }
        let mut n: i64 = 0;
        for &d in digits {
            let d = i64::from(d - b'0');
            n = n
                .checked_mul(10)
                .and_then(|n| {
                    if neg {
                        n.checked_sub(d)
                    } else {
                        n.checked_add(d)
                    }
                })
                .ok_or(RespError::BadInteger { at })?;
        }
        Ok(n)
    }

    /// A length line: `Ok(None)` for `-1` (null).
    fn len(&mut self) -> Result<Option<usize>, RespError> {
        let at = self.pos;
        match self.int()? {
            -1 => Ok(None),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| RespError::BadLength { at }),
        }
    }

    fn text(&mut self) -> Result<String, RespError> {
        let at = self.pos;
        let line = self.line()?;
        String::from_utf8(line.to_vec()).map_err(|_| RespError::InvalidUtf8 { at })
    }

    fn blob(&mut self) -> Result<Option<&[u8]>, RespError> {
        let Some(len) = self.len()? else {
            return Ok(None);
        };
        let start = self.pos;
        let end = start.checked_add(len).ok_or(RespError::Incomplete)?;
        let payload = self.input.get(start..end).ok_or(RespError::Incomplete)?;
        match self.input.get(end..end.saturating_add(2)) {
            Some(b"\r\n") => {}
            Some(crlf) if crlf.len() == 2 => return Err(RespError::MissingCrlf { at: end }),
            _ => return Err(RespError::Incomplete),
        }
        self.pos = end + 2;
        Ok(Some(payload))
    }

    /// Elements that could still fit in the input (each takes at least 3 bytes): a bound for
    /// pre-allocation, so a huge declared length cannot allocate.
    fn capacity_hint(&self, declared: usize) -> usize {
        declared.min(self.input.len().saturating_sub(self.pos) / 3)
    }

    fn value(&mut self, depth: usize) -> Result<Value, RespError> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return Err(RespError::TooDeep { at });
        }
        let &tag = self.input.get(at).ok_or(RespError::Incomplete)?;
        self.pos += 1;
        match tag {
            b'+' => self.text().map(Value::Simple),
            b'-' => self.text().map(Value::Error),
            b':' => self.int().map(Value::Int),
            b'_' => match self.line()? {
                [] => Ok(Value::Nil),
                _ => Err(RespError::BadLength { at }),
            },
            b'$' => Ok(self.blob()?.map_or(Value::Nil, |b| Value::Bulk(b.to_vec()))),
            b'!' => match self.blob()? {
                None => Ok(Value::Nil),
                Some(b) => String::from_utf8(b.to_vec())
                    .map(Value::Error)
                    .map_err(|_| RespError::InvalidUtf8 { at }),
            },
            b'*' | b'~' => {
                let Some(n) = self.len()? else {
                    return Ok(Value::Nil);
                };
                let mut items = Vec::with_capacity(self.capacity_hint(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            b'%' => {
                let Some(n) = self.len()? else {
                    return Ok(Value::Nil);
                };
                let mut pairs = Vec::with_capacity(self.capacity_hint(n) / 2);
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                }
                Ok(Value::Map(pairs))
            }
            byte => Err(RespError::UnknownType { byte, at }),
        }
    }
}
