//! Which arguments of a Redis command are keys, so that a cluster client can route any
//! command by the hash slots of its keys rather than by "argument 1".
//!
//! [`key_indices`] takes a command as its arguments (argument 0 is the command name, in any
//! case) and returns the indices of its keys, in order:
//!
//! ```
//! use slotline_client::keys::key_indices;
//!
//! let args: [&[u8]; 5] = [b"MSET", b"a", b"1", b"b", b"2"];
//! assert_eq!(key_indices(&args)?, [1, 3]);
//! # Ok::<(), slotline_client::keys::KeyError>(())
//! ```
//!
//! # Key specs
//!
//! Redis describes where a command's keys are with *key specs*. The simplest form, which
//! every `COMMAND` reply still carries for each command (the "legacy" key spec), is a triple:
//!
//! - the index of the first key (0 when the command has no key);
//! - the index of the last key, where a negative number counts from the end: -1 is the last
//!   argument, -2 the one before it;
//! - the step from one key to the next: 1 takes every argument of the range, 2 every other
//!   one.
//!
//! `GET key` is `(1, 1, 1)`; `DEL key [key ...]` is `(1, -1, 1)`; `BLPOP key [key ...]
//! timeout` is `(1, -2, 1)`; `MSET key value [key value ...]` is `(1, -1, 2)`; `OBJECT
//! ENCODING key` is `(2, 2, 1)`. The last index is resolved against the command's actual
//! argument count: `DEL a b c` has keys 1, 2 and 3. A command whose arguments stop before
//! its keys (`GET` alone, `BLPOP key` without a timeout) is [`KeyError::BadArguments`].
//!
//! # The table
//!
//! The table covers every command of Redis 7.0: 240 commands, and the 126 subcommands of its
//! 15 container commands (`OBJECT ENCODING key`, `XINFO STREAM key`, `MEMORY USAGE key`,
//! `CONFIG GET`, `CLUSTER INFO`, ...), which are looked up by their first two arguments. It
//! was generated once from the `COMMAND` reply of a Redis 7.0 server: each entry is a
//! command's name with the first key, last key and step of its reply (its 4th to 6th
//! elements), the subcommands are those of each container's "subcommands" element with their
//! own triples, and commands flagged `movablekeys` are marked as such rather than given their
//! triple. Commands without keys (`PING`, `INFO`, `FLUSHALL`, `CLUSTER INFO`, ...) are in the
//! table too, so they give [`KeyError::NoKey`] and only names missing from it give
//! [`KeyError::UnknownCommand`]. The crate's tests compare the table with a running
//! server's `COMMAND` reply and [`key_indices`] with its `COMMAND GETKEYS`.
//!
//! The shard channel commands `SPUBLISH`, `SSUBSCRIBE` and `SUNSUBSCRIBE` are given their
//! channels as keys: their triples point at the channels (Redis flags those key specs
//! `not_key`, so `COMMAND GETKEYS` says they have none), and a cluster routes them by the
//! channels' slots.
//!
//! # Movable keys
//!
//! A command flagged `movablekeys` has keys whose positions depend on other arguments. These
//! are read as their commands read them:
//!
//! - `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`, `FCALL`, `FCALL_RO`: `numkeys` is argument 2
//!   and the keys follow it; `numkeys` 0 is [`KeyError::NoKey`].
//! - `ZUNIONSTORE`, `ZINTERSTORE`, `ZDIFFSTORE`: the destination (argument 1), then `numkeys`
//!   keys after argument 2.
//! - `ZUNION`, `ZINTER`, `ZDIFF`, `ZINTERCARD`, `SINTERCARD`, `LMPOP`, `ZMPOP`: `numkeys` keys
//!   after argument 1; `BLMPOP`, `BZMPOP`: after argument 2 (the timeout comes first).
//! - `GEORADIUS`, `GEORADIUSBYMEMBER`: argument 1, then the key of every `STORE` or
//!   `STOREDIST` option.
//! - `XREAD`, `XREADGROUP`: the first half of the arguments after `STREAMS` (the other half
//!   are the IDs).
//! - `SORT`: argument 1, then the key of the last `STORE` option. `SORT_RO`: argument 1.
//!   (`BY` and `GET` patterns name other keys too, found only while sorting; Redis Cluster
//!   refuses patterns that may reach another slot.)
//!
//! `numkeys` must be a decimal integer as the commands themselves parse it (digits only: no
//! `+`, spaces or leading zeros; a negative one is refused), and the options are checked as
//! strictly as the commands check them. The one other movable command of Redis 7.0,
//! `MIGRATE` (one key at argument 3, or many after a `KEYS` option), is the only one that
//! gives [`KeyError::Unsupported`].
//!
//! Only the arguments that locate keys are checked: a command with a wrong number of other
//! arguments still gets its keys, and the server rejects it.
//!
//! # Cost
//!
//! The name is upper-cased into a stack buffer and found by binary search in a sorted static
//! table; the returned `Vec` is the only allocation on success. Errors allocate their
//! message.

use std::fmt;

/// Argument indices (0 = command name) of the keys of `args`, in order.
///
/// The command name (and a container's subcommand name, as in `OBJECT ENCODING key`) is
/// matched ASCII case-insensitively. A key that appears twice (`MSET a 1 a 2`) is returned
/// twice. The [module documentation](self) says how each command's keys are found.
///
/// # Errors
///
/// - [`KeyError::Empty`] when `args` is empty.
/// - [`KeyError::NoKey`] when the command has no key (`PING`, `CONFIG GET`, `EVAL` with
///   `numkeys` 0).
/// - [`KeyError::UnknownCommand`] when it is not a Redis 7.0 command (or subcommand).
/// - [`KeyError::Unsupported`] for `MIGRATE`.
/// - [`KeyError::BadArguments`] when the arguments stop before the keys, or those that
///   locate them are malformed (`numkeys` not a number or past the end, no `STREAMS`, ...).
///
/// # Examples
///
/// ```
/// use slotline_client::keys::{key_indices, KeyError};
///
/// let set: [&[u8]; 6] = [b"set", b"user:1", b"v", b"EX", b"10", b"NX"];
/// assert_eq!(key_indices(&set)?, [1]);
///
/// let eval: [&[u8]; 6] = [b"EVAL", b"return 1", b"2", b"a", b"b", b"arg"];
/// assert_eq!(key_indices(&eval)?, [3, 4]);
///
/// let xread: [&[u8]; 6] = [b"XREAD", b"STREAMS", b"s1", b"s2", b"0", b"0"];
/// assert_eq!(key_indices(&xread)?, [2, 3]);
///
/// let object: [&[u8]; 3] = [b"OBJECT", b"encoding", b"k"];
/// assert_eq!(key_indices(&object)?, [2]);
///
/// let ping: [&[u8]; 1] = [b"PING"];
/// assert!(matches!(key_indices(&ping), Err(KeyError::NoKey { .. })));
/// # Ok::<(), KeyError>(())
/// ```
pub fn key_indices(args: &[&[u8]]) -> Result<Vec<usize>, KeyError> {
    let Some(&name) = args.first() else {
        return Err(KeyError::Empty);
    };
    let Some(command) = lookup(&COMMANDS, name) else {
        return Err(KeyError::UnknownCommand {
            command: shown(name),
        });
    };
    let (spec, subcommand) = match command.kind {
        Kind::Spec(spec) => (spec, None),
        Kind::Subcommands(subcommands) => {
            let Some(&sub) = args.get(1) else {
                return Err(KeyError::BadArguments {
                    command: command.name.to_owned(),
                    reason: "the subcommand is missing".to_owned(),
                });
            };
            match lookup(subcommands, sub) {
                Some(found) => (found.spec, Some(found.name)),
                None => {
                    return Err(KeyError::UnknownCommand {
                        command: format!("{} {}", command.name, shown(sub)),
                    })
                }
            }
        }
    };
    let found = match spec {
        Spec::NoKey => Err(Fail::NoKey),
        Spec::Keys { first, last, step } => range(args.len(), first, last, step),
        Spec::Movable(movable) => movable_keys(movable, args),
    };
    found.map_err(|fail| {
        let command = match subcommand {
            Some(sub) => format!("{} {sub}", command.name),
            None => command.name.to_owned(),
        };
        match fail {
            Fail::NoKey => KeyError::NoKey { command },
            Fail::Unsupported => KeyError::Unsupported { command },
            Fail::Bad(reason) => KeyError::BadArguments { command, reason },
        }
    })
}

/// Why a command's keys cannot be found.
///
/// `command` fields hold the command's name in upper case (with the subcommand for a
/// container: `"OBJECT ENCODING"`), or for [`UnknownCommand`](KeyError::UnknownCommand) the
/// name as given (non-UTF-8 bytes replaced, long names cut). [`Display`](fmt::Display) gives
/// a one-line message.
///
/// # Examples
///
/// ```
/// use slotline_client::keys::{key_indices, KeyError};
///
/// let empty: [&[u8]; 0] = [];
/// assert_eq!(key_indices(&empty), Err(KeyError::Empty));
///
/// let info: [&[u8]; 2] = [b"info", b"server"];
/// assert_eq!(key_indices(&info), Err(KeyError::NoKey { command: "INFO".into() }));
///
/// let typo: [&[u8]; 2] = [b"GTE", b"k"];
/// assert_eq!(
///     key_indices(&typo),
///     Err(KeyError::UnknownCommand { command: "GTE".into() })
/// );
///
/// let migrate: [&[u8]; 6] = [b"MIGRATE", b"host", b"6379", b"k", b"0", b"1000"];
/// assert_eq!(
///     key_indices(&migrate),
///     Err(KeyError::Unsupported { command: "MIGRATE".into() })
/// );
///
/// let eval: [&[u8]; 4] = [b"EVAL", b"return 1", b"two", b"k"];
/// let err = key_indices(&eval).unwrap_err();
/// assert!(matches!(err, KeyError::BadArguments { .. }));
/// assert_eq!(
///     err.to_string(),
///     "cannot find the keys of EVAL: numkeys (argument 2) is \"two\", not an integer"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The command is empty (no name).
    Empty,
    /// The command takes no key (`PING`, `INFO`, `CONFIG GET`, `EVAL` with `numkeys` 0, ...):
    /// it cannot be routed to a slot.
    NoKey {
        /// The command's name.
        command: String,
    },
    /// The command is not in the table (a module command, a typo, a command newer than
    /// Redis 7.0, an unknown subcommand): its name as given.
    UnknownCommand {
        /// The name as given (with the container's name for a subcommand).
        command: String,
    },
    /// The command's key positions depend on arguments this module does not interpret
    /// (`MIGRATE`, whose keys are argument 3 or those after its `KEYS` option).
    Unsupported {
        /// The command's name.
        command: String,
    },
    /// Arguments are missing or malformed where the key positions are read from them
    /// (`EVAL`'s `numkeys` is not a number or exceeds the argument count, `SET` with no key,
    /// `XREAD` without `STREAMS`, ...).
    BadArguments {
        /// The command's name.
        command: String,
        /// What is missing or malformed.
        reason: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("empty command: there is no command name to look up"),
            KeyError::NoKey { command } => write!(
                f,
                "{command} has no key argument, so it has no hash slot: send it to a node of \
                 your choice"
            ),
            KeyError::UnknownCommand { command } => write!(
                f,
                "unknown command {command:?}: not a Redis 7.0 command (a module command or a \
                 typo?), so its keys cannot be found: send it to a node of your choice"
            ),
            KeyError::Unsupported { command } => write!(
                f,
                "the keys of {command} depend on its arguments in a way not interpreted here: \
                 send it to a node of your choice"
            ),
            KeyError::BadArguments { command, reason } => {
                write!(f, "cannot find the keys of {command}: {reason}")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Longer than every name in the tables; a longer name is unknown.
const MAX_NAME: usize = 32;

/// Longest argument quoted in an error message, in bytes.
const MAX_SHOWN: usize = 40;

/// A command, or a container of subcommands.
#[derive(Clone, Copy, Debug)]
struct Command {
    /// Upper case.
    name: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Spec(Spec),
    /// Sorted by name, as [`COMMANDS`].
    Subcommands(&'static [Subcommand]),
}

/// A container's subcommand (`ENCODING` of `OBJECT`).
#[derive(Clone, Copy, Debug)]
struct Subcommand {
    /// Upper case.
    name: &'static str,
    spec: Spec,
}

/// Where a command's keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    NoKey,
    /// The legacy key spec: indices `first..=last` by `step`, a negative `last` counting from
    /// the end (-1: the last argument).
    Keys {
        first: u8,
        last: i8,
        step: u8,
    },
    Movable(Movable),
}

/// The `movablekeys` commands, by how their keys are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Movable {
    /// `EVAL script numkeys key... arg...`: `numkeys` at 2 (0 allowed: no key).
    Script,
    /// `ZUNIONSTORE destination numkeys key...`: key 1, `numkeys` at 2 (at least 1).
    StoreNumKeys,
    /// `ZUNION numkeys key...`: `numkeys` at 1 (at least 1).
    NumKeys,
    /// `BLMPOP timeout numkeys key...`: `numkeys` at 2 (at least 1).
    TimeoutNumKeys,
    /// `GEORADIUS key longitude latitude radius unit [options]`: key 1 and `STORE` keys.
    Georadius,
    /// `GEORADIUSBYMEMBER key member radius unit [options]`: key 1 and `STORE` keys.
    GeoradiusByMember,
    /// `XREAD [COUNT n] [BLOCK ms] STREAMS key... id...`.
    Xread,
    /// `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...`.
    XreadGroup,
    /// `SORT key [options] [STORE destination]`.
    Sort,
    /// `SORT_RO key [options]`, no `STORE`.
    SortRo,
    /// `MIGRATE`.
    Unsupported,
}

/// Why keys were not found, before the command's name is attached.
enum Fail {
    NoKey,
    Unsupported,
    Bad(String),
}

const NO_KEY: Spec = Spec::NoKey;

const fn keys(first: u8, last: i8, step: u8) -> Spec {
    Spec::Keys { first, last, step }
}

const fn movable(movable: Movable) -> Spec {
    Spec::Movable(movable)
}

const fn cmd(name: &'static str, spec: Spec) -> Command {
    Command {
        name,
        kind: Kind::Spec(spec),
    }
}

const fn container(name: &'static str, subcommands: &'static [Subcommand]) -> Command {
    Command {
        name,
        kind: Kind::Subcommands(subcommands),
    }
}

const fn sub(name: &'static str, spec: Spec) -> Subcommand {
    Subcommand { name, spec }
}

trait Named {
    fn name(&self) -> &'static str;
}

impl Named for Command {
    fn name(&self) -> &'static str {
        self.name
    }
}

impl Named for Subcommand {
    fn name(&self) -> &'static str {
        self.name
    }
}

/// Finds `name` (any case) in `table` (sorted by upper-case name), without allocating.
fn lookup<T: Named>(table: &'static [T], name: &[u8]) -> Option<&'static T> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let upper = &mut buf[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let upper = &*upper;
    table
        .binary_search_by(|entry| entry.name().as_bytes().cmp(upper))
        .ok()
        .and_then(|i| table.get(i))
}

/// The keys of a legacy key spec, for `argc` arguments.
fn range(argc: usize, first: u8, last: i8, step: u8) -> Result<Vec<usize>, Fail> {
    let first = usize::from(first);
    let back = usize::from(last.unsigned_abs());
    let (last, needed) = if last < 0 {
        (argc.checked_sub(back), first + back)
    } else {
        (Some(back), back + 1)
    };
    match last {
        Some(last) if first <= last && last < argc => {
            Ok((first..=last).step_by(usize::from(step).max(1)).collect())
        }
        _ => Err(Fail::Bad(format!(
            "its keys need at least {needed} arguments counting the command name, got {argc}"
        ))),
    }
}

fn movable_keys(movable: Movable, args: &[&[u8]]) -> Result<Vec<usize>, Fail> {
    match movable {
        Movable::Script => numkeys(args, 2, false, true),
        Movable::StoreNumKeys => numkeys(args, 2, true, false),
        Movable::NumKeys => numkeys(args, 1, false, false),
        Movable::TimeoutNumKeys => numkeys(args, 2, false, false),
        Movable::Georadius => georadius(args, 6),
        Movable::GeoradiusByMember => georadius(args, 5),
        Movable::Xread => xread(args, false),
        Movable::XreadGroup => xread(args, true),
        Movable::Sort => sort(args, false),
        Movable::SortRo => sort(args, true),
        Movable::Unsupported => Err(Fail::Unsupported),
    }
}

/// `numkeys` at `at`, then that many keys; with `destination`, argument 1 is a key too.
fn numkeys(
    args: &[&[u8]],
    at: usize,
    destination: bool,
    zero_ok: bool,
) -> Result<Vec<usize>, Fail> {
    if destination && args.len() < 2 {
        return Err(bad("the destination key (argument 1) is missing"));
    }
    let Some(&raw) = args.get(at) else {
        return Err(Fail::Bad(format!("numkeys (argument {at}) is missing")));
    };
    let count = match parse_integer(raw) {
        Some(n) if n < 0 => return Err(Fail::Bad(format!("numkeys (argument {at}) is negative"))),
        Some(n) => n.unsigned_abs(),
        None => {
            return Err(Fail::Bad(format!(
                "numkeys (argument {at}) is {}, not an integer",
                quoted(raw)
            )))
        }
    };
    if count == 0 {
        return Err(if zero_ok {
            Fail::NoKey
        } else {
            Fail::Bad(format!(
                "numkeys (argument {at}) is 0, and at least one key is needed"
            ))
        });
    }
    let available = args.len() - at - 1;
    let count = match usize::try_from(count) {
        Ok(count) if count <= available => count,
        _ => {
            return Err(Fail::Bad(format!(
                "numkeys (argument {at}) is {count}, but only {available} arguments follow it"
            )))
        }
    };
    let mut keys = Vec::with_capacity(count + usize::from(destination));
    if destination {
        keys.push(1);
    }
    keys.extend(at + 1..=at + count);
    Ok(keys)
}

/// `GEORADIUS`/`GEORADIUSBYMEMBER`: key 1, then the key after every `STORE`/`STOREDIST` in the
/// options, which start at `options_from`.
fn georadius(args: &[&[u8]], options_from: usize) -> Result<Vec<usize>, Fail> {
    if args.len() < options_from {
        return Err(Fail::Bad(format!(
            "its options start at argument {options_from}, but there are only {} arguments",
            args.len()
        )));
    }
    let mut keys = Vec::with_capacity(2);
    keys.push(1);
    let mut i = options_from;
    while let Some(&arg) = args.get(i) {
        if is(arg, "STORE") || is(arg, "STOREDIST") {
            need(args, i, 1, "a key")?;
            keys.push(i + 1);
            i += 2;
        } else if is(arg, "COUNT") {
            need(args, i, 1, "a number")?;
            i += 2;
        } else if ["WITHDIST", "WITHHASH", "WITHCOORD", "ANY", "ASC", "DESC"]
            .iter()
            .any(|option| is(arg, option))
        {
            i += 1;
        } else {
            return Err(unexpected(arg, i));
        }
    }
    Ok(keys)
}

/// `XREAD`/`XREADGROUP`: the first half of the arguments after `STREAMS`.
fn xread(args: &[&[u8]], group: bool) -> Result<Vec<usize>, Fail> {
    let mut has_group = false;
    let mut i = 1;
    let streams = loop {
        let Some(&arg) = args.get(i) else {
            return Err(bad("the STREAMS option is missing"));
        };
        if is(arg, "STREAMS") {
            break i;
        } else if is(arg, "COUNT") || is(arg, "BLOCK") {
            need(args, i, 1, "a number")?;
            i += 2;
        } else if group && is(arg, "GROUP") {
            need(args, i, 2, "a group and a consumer")?;
            has_group = true;
            i += 3;
        } else if group && is(arg, "NOACK") {
            i += 1;
        } else {
            return Err(unexpected(arg, i));
        }
    };
    if group && !has_group {
        return Err(bad("the GROUP option is missing"));
    }
    let after = args.len() - streams - 1;
    if after == 0 || after % 2 != 0 {
        return Err(Fail::Bad(format!(
            "STREAMS needs as many IDs as keys after it, got {after} arguments"
        )));
    }
    Ok((streams + 1..=streams + after / 2).collect())
}

/// `SORT`/`SORT_RO`: key 1, then the key of the last `STORE`.
fn sort(args: &[&[u8]], read_only: bool) -> Result<Vec<usize>, Fail> {
    if args.len() < 2 {
        return Err(bad("the key (argument 1) is missing"));
    }
    let mut store = None;
    let mut i = 2;
    while let Some(&arg) = args.get(i) {
        if is(arg, "ASC") || is(arg, "DESC") || is(arg, "ALPHA") {
            i += 1;
        } else if is(arg, "LIMIT") {
            need(args, i, 2, "an offset and a count")?;
            i += 3;
        } else if is(arg, "BY") || is(arg, "GET") {
            need(args, i, 1, "a pattern")?;
            i += 2;
        } else if is(arg, "STORE") && !read_only {
            need(args, i, 1, "a key")?;
            store = Some(i + 1);
            i += 2;
        } else if is(arg, "STORE") {
            return Err(bad("SORT_RO takes no STORE option (SORT does)"));
        } else {
            return Err(unexpected(arg, i));
        }
    }
    Ok(match store {
        Some(store) => vec![1, store],
        None => vec![1],
    })
}

/// Whether `arg` is `keyword` (upper case), in any case.
fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Checks that the option at `i` is followed by `count` arguments (`what`).
fn need(args: &[&[u8]], i: usize, count: usize, what: &str) -> Result<(), Fail> {
    if args.len() - i > count {
        Ok(())
    } else {
        let option = args.get(i).copied().unwrap_or_default();
        Err(Fail::Bad(format!(
            "the {} option (argument {i}) needs {what} after it",
            String::from_utf8_lossy(option).to_ascii_uppercase()
        )))
    }
}

fn unexpected(arg: &[u8], i: usize) -> Fail {
    Fail::Bad(format!("unexpected argument {i}, {}", quoted(arg)))
}

fn bad(reason: &str) -> Fail {
    Fail::Bad(reason.to_owned())
}

/// Parses a decimal integer as Redis does (`string2ll`): an optional `-`, then digits with no
/// leading zero (but `0`), no `+`, no spaces, within `i64`.
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(digit - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// `bytes` as text for a message: invalid UTF-8 replaced, cut at [`MAX_SHOWN`] bytes.
fn shown(bytes: &[u8]) -> String {
    let cut = bytes.len() > MAX_SHOWN;
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_SHOWN)]).into_owned();
    if cut {
        text.push_str("...");
    }
    text
}

/// [`shown`] in double quotes, escaped.
fn quoted(bytes: &[u8]) -> String {
    format!("{:?}", shown(bytes))
}

// The table: every Redis 7.0 command (sorted by name, as `lookup` needs), then the
// subcommands of each container. Generated from Redis 7.0's `COMMAND` reply, as the module
// documentation says; `keys(first, last, step)` is the reply's triple.

/// Every Redis 7.0 command, sorted by name.
static COMMANDS: [Command; 240] = [
    container("ACL", &ACL_SUBCOMMANDS),
    cmd("APPEND", keys(1, 1, 1)),
    cmd("ASKING", NO_KEY),
    cmd("AUTH", NO_KEY),
    cmd("BGREWRITEAOF", NO_KEY),
    cmd("BGSAVE", NO_KEY),
    cmd("BITCOUNT", keys(1, 1, 1)),
    cmd("BITFIELD", keys(1, 1, 1)),
    cmd("BITFIELD_RO", keys(1, 1, 1)),
    cmd("BITOP", keys(2, -1, 1)),
    cmd("BITPOS", keys(1, 1, 1)),
    cmd("BLMOVE", keys(1, 2, 1)),
    cmd("BLMPOP", movable(Movable::TimeoutNumKeys)),
    cmd("BLPOP", keys(1, -2, 1)),
    cmd("BRPOP", keys(1, -2, 1)),
    cmd("BRPOPLPUSH", keys(1, 2, 1)),
    cmd("BZMPOP", movable(Movable::TimeoutNumKeys)),
    cmd("BZPOPMAX", keys(1, -2, 1)),
    cmd("BZPOPMIN", keys(1, -2, 1)),
    container("CLIENT", &CLIENT_SUBCOMMANDS),
    container("CLUSTER", &CLUSTER_SUBCOMMANDS),
    container("COMMAND", &COMMAND_SUBCOMMANDS),
    container("CONFIG", &CONFIG_SUBCOMMANDS),
    cmd("COPY", keys(1, 2, 1)),
    cmd("DBSIZE", NO_KEY),
    cmd("DEBUG", NO_KEY),
    cmd("DECR", keys(1, 1, 1)),
    cmd("DECRBY", keys(1, 1, 1)),
    cmd("DEL", keys(1, -1, 1)),
    cmd("DISCARD", NO_KEY),
    cmd("DUMP", keys(1, 1, 1)),
    cmd("ECHO", NO_KEY),
    cmd("EVAL", movable(Movable::Script)),
    cmd("EVALSHA", movable(Movable::Script)),
    cmd("EVALSHA_RO", movable(Movable::Script)),
    cmd("EVAL_RO", movable(Movable::Script)),
    cmd("EXEC", NO_KEY),
    cmd("EXISTS", keys(1, -1, 1)),
    cmd("EXPIRE", keys(1, 1, 1)),
    cmd("EXPIREAT", keys(1, 1, 1)),
    cmd("EXPIRETIME", keys(1, 1, 1)),
    cmd("FAILOVER", NO_KEY),
    cmd("FCALL", movable(Movable::Script)),
    cmd("FCALL_RO", movable(Movable::Script)),
    cmd("FLUSHALL", NO_KEY),
    cmd("FLUSHDB", NO_KEY),
    container("FUNCTION", &FUNCTION_SUBCOMMANDS),
    cmd("GEOADD", keys(1, 1, 1)),
    cmd("GEODIST", keys(1, 1, 1)),
    cmd("GEOHASH", keys(1, 1, 1)),
    cmd("GEOPOS", keys(1, 1, 1)),
    cmd("GEORADIUS", movable(Movable::Georadius)),
    cmd("GEORADIUSBYMEMBER", movable(Movable::GeoradiusByMember)),
    cmd("GEORADIUSBYMEMBER_RO", keys(1, 1, 1)),
    cmd("GEORADIUS_RO", keys(1, 1, 1)),
    cmd("GEOSEARCH", keys(1, 1, 1)),
    cmd("GEOSEARCHSTORE", keys(1, 2, 1)),
    cmd("GET", keys(1, 1, 1)),
    cmd("GETBIT", keys(1, 1, 1)),
    cmd("GETDEL", keys(1, 1, 1)),
    cmd("GETEX", keys(1, 1, 1)),
    cmd("GETRANGE", keys(1, 1, 1)),
    cmd("GETSET", keys(1, 1, 1)),
    cmd("HDEL", keys(1, 1, 1)),
    cmd("HELLO", NO_KEY),
    cmd("HEXISTS", keys(1, 1, 1)),
    cmd("HGET", keys(1, 1, 1)),
    cmd("HGETALL", keys(1, 1, 1)),
    cmd("HINCRBY", keys(1, 1, 1)),
    cmd("HINCRBYFLOAT", keys(1, 1, 1)),
    cmd("HKEYS", keys(1, 1, 1)),
    cmd("HLEN", keys(1, 1, 1)),
    cmd("HMGET", keys(1, 1, 1)),
    cmd("HMSET", keys(1, 1, 1)),
    cmd("HRANDFIELD", keys(1, 1, 1)),
    cmd("HSCAN", keys(1, 1, 1)),
    cmd("HSET", keys(1, 1, 1)),
    cmd("HSETNX", keys(1, 1, 1)),
    cmd("HSTRLEN", keys(1, 1, 1)),
    cmd("HVALS", keys(1, 1, 1)),
    cmd("INCR", keys(1, 1, 1)),
    cmd("INCRBY", keys(1, 1, 1)),
    cmd("INCRBYFLOAT", keys(1, 1, 1)),
    cmd("INFO", NO_KEY),
    cmd("KEYS", NO_KEY),
    cmd("LASTSAVE", NO_KEY),
    container("LATENCY", &LATENCY_SUBCOMMANDS),
    cmd("LCS", keys(1, 2, 1)),
    cmd("LINDEX", keys(1, 1, 1)),
    cmd("LINSERT", keys(1, 1, 1)),
    cmd("LLEN", keys(1, 1, 1)),
    cmd("LMOVE", keys(1, 2, 1)),
    cmd("LMPOP", movable(Movable::NumKeys)),
    cmd("LOLWUT", NO_KEY),
    cmd("LPOP", keys(1, 1, 1)),
    cmd("LPOS", keys(1, 1, 1)),
    cmd("LPUSH", keys(1, 1, 1)),
    cmd("LPUSHX", keys(1, 1, 1)),
    cmd("LRANGE", keys(1, 1, 1)),
    cmd("LREM", keys(1, 1, 1)),
    cmd("LSET", keys(1, 1, 1)),
    cmd("LTRIM", keys(1, 1, 1)),
    container("MEMORY", &MEMORY_SUBCOMMANDS),
    cmd("MGET", keys(1, -1, 1)),
    cmd("MIGRATE", movable(Movable::Unsupported)),
    container("MODULE", &MODULE_SUBCOMMANDS),
    cmd("MONITOR", NO_KEY),
    cmd("MOVE", keys(1, 1, 1)),
    cmd("MSET", keys(1, -1, 2)),
    cmd("MSETNX", keys(1, -1, 2)),
    cmd("MULTI", NO_KEY),
    container("OBJECT", &OBJECT_SUBCOMMANDS),
    cmd("PERSIST", keys(1, 1, 1)),
    cmd("PEXPIRE", keys(1, 1, 1)),
    cmd("PEXPIREAT", keys(1, 1, 1)),
    cmd("PEXPIRETIME", keys(1, 1, 1)),
    cmd("PFADD", keys(1, 1, 1)),
    cmd("PFCOUNT", keys(1, -1, 1)),
    cmd("PFDEBUG", keys(2, 2, 1)),
    cmd("PFMERGE", keys(1, -1, 1)),
    cmd("PFSELFTEST", NO_KEY),
    cmd("PING", NO_KEY),
    cmd("PSETEX", keys(1, 1, 1)),
    cmd("PSUBSCRIBE", NO_KEY),
    cmd("PSYNC", NO_KEY),
    cmd("PTTL", keys(1, 1, 1)),
    cmd("PUBLISH", NO_KEY),
    container("PUBSUB", &PUBSUB_SUBCOMMANDS),
    cmd("PUNSUBSCRIBE", NO_KEY),
    cmd("QUIT", NO_KEY),
    cmd("RANDOMKEY", NO_KEY),
    cmd("READONLY", NO_KEY),
    cmd("READWRITE", NO_KEY),
    cmd("RENAME", keys(1, 2, 1)),
    cmd("RENAMENX", keys(1, 2, 1)),
    cmd("REPLCONF", NO_KEY),
    cmd("REPLICAOF", NO_KEY),
    cmd("RESET", NO_KEY),
    cmd("RESTORE", keys(1, 1, 1)),
    cmd("RESTORE-ASKING", keys(1, 1, 1)),
    cmd("ROLE", NO_KEY),
    cmd("RPOP", keys(1, 1, 1)),
    cmd("RPOPLPUSH", keys(1, 2, 1)),
    cmd("RPUSH", keys(1, 1, 1)),
    cmd("RPUSHX", keys(1, 1, 1)),
    cmd("SADD", keys(1, 1, 1)),
    cmd("SAVE", NO_KEY),
    cmd("SCAN", NO_KEY),
    cmd("SCARD", keys(1, 1, 1)),
    container("SCRIPT", &SCRIPT_SUBCOMMANDS),
    cmd("SDIFF", keys(1, -1, 1)),
    cmd("SDIFFSTORE", keys(1, -1, 1)),
    cmd("SELECT", NO_KEY),
    cmd("SET", keys(1, 1, 1)),
    cmd("SETBIT", keys(1, 1, 1)),
    cmd("SETEX", keys(1, 1, 1)),
    cmd("SETNX", keys(1, 1, 1)),
    cmd("SETRANGE", keys(1, 1, 1)),
    cmd("SHUTDOWN", NO_KEY),
    cmd("SINTER", keys(1, -1, 1)),
    cmd("SINTERCARD", movable(Movable::NumKeys)),
    cmd("SINTERSTORE", keys(1, -1, 1)),
    cmd("SISMEMBER", keys(1, 1, 1)),
    cmd("SLAVEOF", NO_KEY),
    container("SLOWLOG", &SLOWLOG_SUBCOMMANDS),
    cmd("SMEMBERS", keys(1, 1, 1)),
    cmd("SMISMEMBER", keys(1, 1, 1)),
    cmd("SMOVE", keys(1, 2, 1)),
    cmd("SORT", movable(Movable::Sort)),
    cmd("SORT_RO", movable(Movable::SortRo)),
    cmd("SPOP", keys(1, 1, 1)),
    cmd("SPUBLISH", keys(1, 1, 1)),
    cmd("SRANDMEMBER", keys(1, 1, 1)),
    cmd("SREM", keys(1, 1, 1)),
    cmd("SSCAN", keys(1, 1, 1)),
    cmd("SSUBSCRIBE", keys(1, -1, 1)),
    cmd("STRLEN", keys(1, 1, 1)),
    cmd("SUBSCRIBE", NO_KEY),
    cmd("SUBSTR", keys(1, 1, 1)),
    cmd("SUNION", keys(1, -1, 1)),
    cmd("SUNIONSTORE", keys(1, -1, 1)),
    cmd("SUNSUBSCRIBE", keys(1, -1, 1)),
    cmd("SWAPDB", NO_KEY),
    cmd("SYNC", NO_KEY),
    cmd("TIME", NO_KEY),
    cmd("TOUCH", keys(1, -1, 1)),
    cmd("TTL", keys(1, 1, 1)),
    cmd("TYPE", keys(1, 1, 1)),
    cmd("UNLINK", keys(1, -1, 1)),
    cmd("UNSUBSCRIBE", NO_KEY),
    cmd("UNWATCH", NO_KEY),
    cmd("WAIT", NO_KEY),
    cmd("WATCH", keys(1, -1, 1)),
    cmd("XACK", keys(1, 1, 1)),
    cmd("XADD", keys(1, 1, 1)),
    cmd("XAUTOCLAIM", keys(1, 1, 1)),
    cmd("XCLAIM", keys(1, 1, 1)),
    cmd("XDEL", keys(1, 1, 1)),
    container("XGROUP", &XGROUP_SUBCOMMANDS),
    container("XINFO", &XINFO_SUBCOMMANDS),
    cmd("XLEN", keys(1, 1, 1)),
    cmd("XPENDING", keys(1, 1, 1)),
    cmd("XRANGE", keys(1, 1, 1)),
    cmd("XREAD", movable(Movable::Xread)),
    cmd("XREADGROUP", movable(Movable::XreadGroup)),
    cmd("XREVRANGE", keys(1, 1, 1)),
    cmd("XSETID", keys(1, 1, 1)),
    cmd("XTRIM", keys(1, 1, 1)),
    cmd("ZADD", keys(1, 1, 1)),
    cmd("ZCARD", keys(1, 1, 1)),
    cmd("ZCOUNT", keys(1, 1, 1)),
    cmd("ZDIFF", movable(Movable::NumKeys)),
    cmd("ZDIFFSTORE", movable(Movable::StoreNumKeys)),
    cmd("ZINCRBY", keys(1, 1, 1)),
    cmd("ZINTER", movable(Movable::NumKeys)),
    cmd("ZINTERCARD", movable(Movable::NumKeys)),
    cmd("ZINTERSTORE", movable(Movable::StoreNumKeys)),
    cmd("ZLEXCOUNT", keys(1, 1, 1)),
    cmd("ZMPOP", movable(Movable::NumKeys)),
    cmd("ZMSCORE", keys(1, 1, 1)),
    cmd("ZPOPMAX", keys(1, 1, 1)),
    cmd("ZPOPMIN", keys(1, 1, 1)),
    cmd("ZRANDMEMBER", keys(1, 1, 1)),
    cmd("ZRANGE", keys(1, 1, 1)),
    cmd("ZRANGEBYLEX", keys(1, 1, 1)),
    cmd("ZRANGEBYSCORE", keys(1, 1, 1)),
    cmd("ZRANGESTORE", keys(1, 2, 1)),
    cmd("ZRANK", keys(1, 1, 1)),
    cmd("ZREM", keys(1, 1, 1)),
    cmd("ZREMRANGEBYLEX", keys(1, 1, 1)),
    cmd("ZREMRANGEBYRANK", keys(1, 1, 1)),
    cmd("ZREMRANGEBYSCORE", keys(1, 1, 1)),
    cmd("ZREVRANGE", keys(1, 1, 1)),
    cmd("ZREVRANGEBYLEX", keys(1, 1, 1)),
    cmd("ZREVRANGEBYSCORE", keys(1, 1, 1)),
    cmd("ZREVRANK", keys(1, 1, 1)),
    cmd("ZSCAN", keys(1, 1, 1)),
    cmd("ZSCORE", keys(1, 1, 1)),
    cmd("ZUNION", movable(Movable::NumKeys)),
    cmd("ZUNIONSTORE", movable(Movable::StoreNumKeys)),
];

/// `ACL` subcommands.
static ACL_SUBCOMMANDS: [Subcommand; 13] = [
    sub("CAT", NO_KEY),
    sub("DELUSER", NO_KEY),
    sub("DRYRUN", NO_KEY),
    sub("GENPASS", NO_KEY),
    sub("GETUSER", NO_KEY),
    sub("HELP", NO_KEY),
    sub("LIST", NO_KEY),
    sub("LOAD", NO_KEY),
    sub("LOG", NO_KEY),
    sub("SAVE", NO_KEY),
    sub("SETUSER", NO_KEY),
    sub("USERS", NO_KEY),
    sub("WHOAMI", NO_KEY),
];

/// `CLIENT` subcommands.
static CLIENT_SUBCOMMANDS: [Subcommand; 16] = [
    sub("CACHING", NO_KEY),
    sub("GETNAME", NO_KEY),
    sub("GETREDIR", NO_KEY),
    sub("HELP", NO_KEY),
    sub("ID", NO_KEY),
    sub("INFO", NO_KEY),
    sub("KILL", NO_KEY),
    sub("LIST", NO_KEY),
    sub("NO-EVICT", NO_KEY),
    sub("PAUSE", NO_KEY),
    sub("REPLY", NO_KEY),
    sub("SETNAME", NO_KEY),
    sub("TRACKING", NO_KEY),
    sub("TRACKINGINFO", NO_KEY),
    sub("UNBLOCK", NO_KEY),
    sub("UNPAUSE", NO_KEY),
];

/// `CLUSTER` subcommands.
static CLUSTER_SUBCOMMANDS: [Subcommand; 27] = [
    sub("ADDSLOTS", NO_KEY),
    sub("ADDSLOTSRANGE", NO_KEY),
    sub("BUMPEPOCH", NO_KEY),
    sub("COUNT-FAILURE-REPORTS", NO_KEY),
    sub("COUNTKEYSINSLOT", NO_KEY),
    sub("DELSLOTS", NO_KEY),
    sub("DELSLOTSRANGE", NO_KEY),
    sub("FAILOVER", NO_KEY),
    sub("FLUSHSLOTS", NO_KEY),
    sub("FORGET", NO_KEY),
    sub("GETKEYSINSLOT", NO_KEY),
    sub("HELP", NO_KEY),
    sub("INFO", NO_KEY),
    sub("KEYSLOT", NO_KEY),
    sub("LINKS", NO_KEY),
    sub("MEET", NO_KEY),
    sub("MYID", NO_KEY),
    sub("NODES", NO_KEY),
    sub("REPLICAS", NO_KEY),
    sub("REPLICATE", NO_KEY),
    sub("RESET", NO_KEY),
    sub("SAVECONFIG", NO_KEY),
    sub("SET-CONFIG-EPOCH", NO_KEY),
    sub("SETSLOT", NO_KEY),
    sub("SHARDS", NO_KEY),
    sub("SLAVES", NO_KEY),
    sub("SLOTS", NO_KEY),
];

/// `COMMAND` subcommands.
static COMMAND_SUBCOMMANDS: [Subcommand; 7] = [
    sub("COUNT", NO_KEY),
    sub("DOCS", NO_KEY),
    sub("GETKEYS", NO_KEY),
    sub("GETKEYSANDFLAGS", NO_KEY),
    sub("HELP", NO_KEY),
    sub("INFO", NO_KEY),
    sub("LIST", NO_KEY),
];

/// `CONFIG` subcommands.
static CONFIG_SUBCOMMANDS: [Subcommand; 5] = [
    sub("GET", NO_KEY),
    sub("HELP", NO_KEY),
    sub("RESETSTAT", NO_KEY),
    sub("REWRITE", NO_KEY),
    sub("SET", NO_KEY),
];

/// `FUNCTION` subcommands.
static FUNCTION_SUBCOMMANDS: [Subcommand; 9] = [
    sub("DELETE", NO_KEY),
    sub("DUMP", NO_KEY),
    sub("FLUSH", NO_KEY),
    sub("HELP", NO_KEY),
    sub("KILL", NO_KEY),
    sub("LIST", NO_KEY),
    sub("LOAD", NO_KEY),
    sub("RESTORE", NO_KEY),
    sub("STATS", NO_KEY),
];

/// `LATENCY` subcommands.
static LATENCY_SUBCOMMANDS: [Subcommand; 7] = [
    sub("DOCTOR", NO_KEY),
    sub("GRAPH", NO_KEY),
    sub("HELP", NO_KEY),
    sub("HISTOGRAM", NO_KEY),
    sub("HISTORY", NO_KEY),
    sub("LATEST", NO_KEY),
    sub("RESET", NO_KEY),
];

/// `MEMORY` subcommands.
static MEMORY_SUBCOMMANDS: [Subcommand; 6] = [
    sub("DOCTOR", NO_KEY),
    sub("HELP", NO_KEY),
    sub("MALLOC-STATS", NO_KEY),
    sub("PURGE", NO_KEY),
    sub("STATS", NO_KEY),
    sub("USAGE", keys(2, 2, 1)),
];

/// `MODULE` subcommands.
static MODULE_SUBCOMMANDS: [Subcommand; 5] = [
    sub("HELP", NO_KEY),
    sub("LIST", NO_KEY),
    sub("LOAD", NO_KEY),
    sub("LOADEX", NO_KEY),
    sub("UNLOAD", NO_KEY),
];

/// `OBJECT` subcommands.
static OBJECT_SUBCOMMANDS: [Subcommand; 5] = [
    sub("ENCODING", keys(2, 2, 1)),
    sub("FREQ", keys(2, 2, 1)),
    sub("HELP", NO_KEY),
    sub("IDLETIME", keys(2, 2, 1)),
    sub("REFCOUNT", keys(2, 2, 1)),
];

/// `PUBSUB` subcommands.
static PUBSUB_SUBCOMMANDS: [Subcommand; 6] = [
    sub("CHANNELS", NO_KEY),
    sub("HELP", NO_KEY),
    sub("NUMPAT", NO_KEY),
    sub("NUMSUB", NO_KEY),
    sub("SHARDCHANNELS", NO_KEY),
    sub("SHARDNUMSUB", NO_KEY),
];

/// `SCRIPT` subcommands.
static SCRIPT_SUBCOMMANDS: [Subcommand; 6] = [
    sub("DEBUG", NO_KEY),
    sub("EXISTS", NO_KEY),
    sub("FLUSH", NO_KEY),
    sub("HELP", NO_KEY),
    sub("KILL", NO_KEY),
    sub("LOAD", NO_KEY),
];

/// `SLOWLOG` subcommands.
static SLOWLOG_SUBCOMMANDS: [Subcommand; 4] = [
    sub("GET", NO_KEY),
    sub("HELP", NO_KEY),
    sub("LEN", NO_KEY),
    sub("RESET", NO_KEY),
];

/// `XGROUP` subcommands.
static XGROUP_SUBCOMMANDS: [Subcommand; 6] = [
    sub("CREATE", keys(2, 2, 1)),
    sub("CREATECONSUMER", keys(2, 2, 1)),
    sub("DELCONSUMER", keys(2, 2, 1)),
    sub("DESTROY", keys(2, 2, 1)),
    sub("HELP", NO_KEY),
    sub("SETID", keys(2, 2, 1)),
];

/// `XINFO` subcommands.
static XINFO_SUBCOMMANDS: [Subcommand; 4] = [
    sub("CONSUMERS", keys(2, 2, 1)),
    sub("GROUPS", keys(2, 2, 1)),
    sub("HELP", NO_KEY),
    sub("STREAM", keys(2, 2, 1)),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `key_indices` of a command written as words.
    fn keys_of(command: &str) -> Result<Vec<usize>, KeyError> {
        let args: Vec<&[u8]> = command.split_whitespace().map(str::as_bytes).collect();
        key_indices(&args)
    }

    fn ok(command: &str) -> Vec<usize> {
        keys_of(command).unwrap_or_else(|e| panic!("{command}: {e}"))
    }

    fn bad_arguments(command: &str) -> String {
        match keys_of(command) {
            Err(KeyError::BadArguments { reason, .. }) => reason,
            other => panic!("{command}: expected BadArguments, got {other:?}"),
        }
    }

    fn no_key(command: &str) -> KeyError {
        let name = command
            .split_whitespace()
            .next()
            .unwrap()
            .to_ascii_uppercase();
        KeyError::NoKey { command: name }
    }

    #[test]
    fn set_has_its_key_at_1_whatever_the_options() {
        assert_eq!(ok("SET k v"), [1]);
        assert_eq!(ok("SET k v EX 10"), [1]);
        assert_eq!(ok("SET k v PX 100 NX"), [1]);
        assert_eq!(ok("SET k v XX GET"), [1]);
        assert_eq!(ok("SET k v NX GET EX 5 KEEPTTL"), [1]);
        assert!(bad_arguments("SET").contains("at least 2 arguments"));
    }

    #[test]
    fn single_key_commands() {
        for command in [
            "GET k",
            "HSET h f v f2 v2",
            "HGETALL h",
            "XADD s * f v",
            "XADD s MAXLEN ~ 1000 * f v",
            "INCR k",
            "INCRBY k 5",
            "EXPIRE k 10 NX",
            "LPUSH l a b c",
            "ZADD z NX 1 a 2 b",
            "GEORADIUS_RO g 13 38 100 km",
        ] {
            assert_eq!(ok(command), [1], "{command}");
        }
        assert!(bad_arguments("GET").contains("got 1"));
    }

    #[test]
    fn every_argument_of_del_unlink_mget_is_a_key() {
        assert_eq!(ok("DEL a"), [1]);
        assert_eq!(ok("DEL a b c d"), [1, 2, 3, 4]);
        assert_eq!(ok("UNLINK a b c"), [1, 2, 3]);
        assert_eq!(ok("MGET a b"), [1, 2]);
        assert_eq!(ok("EXISTS a a"), [1, 2]);
        bad_arguments("DEL");
    }

    #[test]
    fn mset_keys_are_every_other_argument() {
        assert_eq!(ok("MSET k1 v1 k2 v2 k3 v3"), [1, 3, 5]);
        assert_eq!(ok("MSETNX a 1"), [1]);
        // As Redis resolves the spec: the last argument closes the range, step 2 from 1.
        assert_eq!(ok("MSET a 1 b"), [1, 3]);
    }

    #[test]
    fn negative_last_counts_from_the_end() {
        assert_eq!(ok("BLPOP a b c 0"), [1, 2, 3]);
        assert_eq!(ok("BZPOPMIN z 1.5"), [1]);
        assert!(bad_arguments("BLPOP a").contains("at least 3 arguments"));
        bad_arguments("BLPOP");
    }

    #[test]
    fn two_key_and_later_key_commands() {
        assert_eq!(ok("RENAME a b"), [1, 2]);
        assert_eq!(ok("LMOVE a b LEFT RIGHT"), [1, 2]);
        assert_eq!(ok("BITOP AND d a b"), [2, 3, 4]);
        assert_eq!(ok("SINTERSTORE d a b"), [1, 2, 3]);
    }

    #[test]
    fn container_subcommands() {
        assert_eq!(ok("OBJECT ENCODING k"), [2]);
        assert_eq!(ok("object freq k"), [2]);
        assert_eq!(ok("XINFO STREAM s FULL"), [2]);
        assert_eq!(ok("XGROUP CREATE s g $ MKSTREAM"), [2]);
        assert_eq!(ok("MEMORY USAGE k SAMPLES 5"), [2]);
        assert_eq!(
            keys_of("OBJECT HELP"),
            Err(KeyError::NoKey {
                command: "OBJECT HELP".into()
            })
        );
        assert_eq!(
            keys_of("CONFIG GET maxmemory"),
            Err(KeyError::NoKey {
                command: "CONFIG GET".into()
            })
        );
        assert_eq!(
            keys_of("cluster info"),
            Err(KeyError::NoKey {
                command: "CLUSTER INFO".into()
            })
        );
        assert_eq!(
            keys_of("OBJECT frob k"),
            Err(KeyError::UnknownCommand {
                command: "OBJECT frob".into()
            })
        );
        assert_eq!(bad_arguments("OBJECT"), "the subcommand is missing");
        assert!(bad_arguments("OBJECT ENCODING").contains("at least 3 arguments"));
    }

    #[test]
    fn script_and_function_calls_read_numkeys() {
        for name in [
            "EVAL",
            "EVALSHA",
            "EVAL_RO",
            "EVALSHA_RO",
            "FCALL",
            "FCALL_RO",
        ] {
            assert_eq!(keys_of(&format!("{name} s 0")), Err(no_key(name)), "{name}");
            assert_eq!(keys_of(&format!("{name} s 0 arg")), Err(no_key(name)));
            assert_eq!(ok(&format!("{name} s 1 k")), [3]);
            assert_eq!(ok(&format!("{name} s 1 k arg1 arg2")), [3]);
            assert_eq!(ok(&format!("{name} s 2 a b")), [3, 4]);
            assert_eq!(ok(&format!("{name} s 2 a b arg")), [3, 4]);
            for numkeys in ["x", "-1", "01", "+1", "1.0", "", "99999999999999999999"] {
                let args: [&[u8]; 4] = [name.as_bytes(), b"s", numkeys.as_bytes(), b"k"];
                assert!(
                    matches!(key_indices(&args), Err(KeyError::BadArguments { .. })),
                    "{name} numkeys {numkeys:?}"
                );
            }
            assert!(bad_arguments(&format!("{name} s 2 a")).contains("only 1 arguments"));
            assert!(bad_arguments(&format!("{name} s 3")).contains("only 0 arguments"));
            assert!(bad_arguments(&format!("{name} s")).contains("missing"));
            let huge = format!("{name} s 9223372036854775807 a");
            assert!(bad_arguments(&huge).contains("only 1 arguments"));
        }
        assert!(bad_arguments("EVAL s -3 a").contains("negative"));
        assert_eq!(
            bad_arguments("EVAL s two k"),
            "numkeys (argument 2) is \"two\", not an integer"
        );
    }

    #[test]
    fn sorted_set_and_set_numkeys_commands() {
        assert_eq!(ok("ZUNIONSTORE d 2 a b"), [1, 3, 4]);
        assert_eq!(
            ok("ZUNIONSTORE d 2 a b WEIGHTS 1 2 AGGREGATE MAX"),
            [1, 3, 4]
        );
        assert_eq!(ok("ZINTERSTORE d 1 a"), [1, 3]);
        assert_eq!(ok("ZDIFFSTORE d 3 a b c"), [1, 3, 4, 5]);
        assert!(bad_arguments("ZUNIONSTORE d 0").contains("at least one key"));
        assert!(bad_arguments("ZUNIONSTORE d 3 a b").contains("only 2"));
        assert!(bad_arguments("ZUNIONSTORE").contains("destination"));
        assert_eq!(ok("ZUNION 2 a b WITHSCORES"), [2, 3]);
        assert_eq!(ok("ZINTER 1 a"), [2]);
        assert_eq!(ok("ZDIFF 3 a b c"), [2, 3, 4]);
        assert_eq!(ok("ZINTERCARD 2 a b LIMIT 10"), [2, 3]);
        assert_eq!(ok("SINTERCARD 3 a b c"), [2, 3, 4]);
        assert!(bad_arguments("ZUNION 0").contains("at least one key"));
        assert!(bad_arguments("SINTERCARD x a").contains("not an integer"));
    }

    #[test]
    fn multi_pop_commands() {
        assert_eq!(ok("LMPOP 2 a b LEFT"), [2, 3]);
        assert_eq!(ok("ZMPOP 1 z MIN COUNT 10"), [2]);
        assert_eq!(ok("BLMPOP 0 2 a b RIGHT COUNT 2"), [3, 4]);
        assert_eq!(ok("BZMPOP 1.5 1 z MAX"), [3]);
        assert!(bad_arguments("BLMPOP 0").contains("missing"));
        assert!(bad_arguments("BLMPOP 2 a b LEFT").contains("not an integer"));
        assert!(bad_arguments("LMPOP 3 a b").contains("only 2"));
    }

    #[test]
    fn georadius_store_keys() {
        assert_eq!(ok("GEORADIUS g 13 38 200 km"), [1]);
        assert_eq!(ok("GEORADIUS g 13 38 200 km WITHDIST COUNT 5 ANY ASC"), [1]);
        assert_eq!(ok("GEORADIUS g 13 38 200 km STORE d"), [1, 7]);
        assert_eq!(ok("georadius g 13 38 200 km count 3 storedist d"), [1, 9]);
        assert_eq!(
            ok("GEORADIUS g 13 38 200 km STORE a STOREDIST b"),
            [1, 7, 9]
        );
        assert_eq!(ok("GEORADIUSBYMEMBER g m 100 km STORE d"), [1, 6]);
        assert_eq!(ok("GEORADIUSBYMEMBER g store 100 km"), [1]);
        assert!(bad_arguments("GEORADIUS g 13 38 200 km STORE").contains("STORE option"));
        assert!(bad_arguments("GEORADIUS g 13 38 200 km COUNT").contains("COUNT option"));
        assert!(bad_arguments("GEORADIUS g 13 38 200 km WITHFOO").contains("\"WITHFOO\""));
        assert!(bad_arguments("GEORADIUS g 13").contains("options start"));
        bad_arguments("GEORADIUSBYMEMBER");
    }

    #[test]
    fn xread_keys_are_the_stream_names() {
        assert_eq!(ok("XREAD STREAMS a b 0 0"), [2, 3]);
        assert_eq!(ok("XREAD COUNT 10 BLOCK 0 STREAMS s $"), [6]);
        assert_eq!(ok("xread block 100 streams a b c 0 0 0"), [4, 5, 6]);
        assert_eq!(
            ok("XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >"),
            [8, 9]
        );
        // A group named STREAMS is the group, not the option.
        assert_eq!(ok("XREADGROUP GROUP streams c STREAMS streams >"), [5]);
        assert!(bad_arguments("XREAD STREAMS a b 0").contains("3 arguments"));
        assert!(bad_arguments("XREAD STREAMS").contains("0 arguments"));
        assert!(bad_arguments("XREAD COUNT 1").contains("STREAMS option is missing"));
        assert!(bad_arguments("XREAD GROUP g c STREAMS a 0").contains("\"GROUP\""));
        assert!(bad_arguments("XREAD NOACK STREAMS a 0").contains("\"NOACK\""));
        assert!(bad_arguments("XREADGROUP STREAMS a 0").contains("GROUP option is missing"));
        assert!(bad_arguments("XREADGROUP GROUP g").contains("GROUP option"));
        assert!(bad_arguments("XREAD COUNT").contains("COUNT option"));
    }

    #[test]
    fn sort_store_key() {
        assert_eq!(ok("SORT k"), [1]);
        assert_eq!(ok("SORT k STORE dst"), [1, 3]);
        assert_eq!(
            ok("SORT k BY w_* LIMIT 0 10 GET o_* GET # DESC ALPHA STORE dst"),
            [1, 14]
        );
        assert_eq!(ok("SORT k STORE a STORE b"), [1, 5]);
        // Option values named like options are values.
        assert_eq!(ok("SORT k BY store GET limit"), [1]);
        assert_eq!(ok("SORT_RO k BY w_* GET # ALPHA"), [1]);
        assert!(bad_arguments("SORT_RO k STORE d").contains("SORT_RO takes no STORE"));
        assert!(bad_arguments("SORT k STORE").contains("STORE option"));
        assert!(bad_arguments("SORT k LIMIT 0").contains("LIMIT option"));
        assert!(bad_arguments("SORT k REVERSE").contains("\"REVERSE\""));
        assert!(bad_arguments("SORT").contains("missing"));
    }

    #[test]
    fn shard_channels_route_like_keys() {
        assert_eq!(ok("SPUBLISH ch m"), [1]);
        assert_eq!(ok("SSUBSCRIBE a b"), [1, 2]);
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(ok("get k"), [1]);
        assert_eq!(ok("GeT k"), [1]);
        assert_eq!(ok("mSeT a 1 b 2"), [1, 3]);
        assert_eq!(ok("eVaLsHa_Ro s 1 k"), [3]);
        assert_eq!(ok("xinfo Groups s"), [2]);
    }

    #[test]
    fn keyless_unknown_empty_unsupported() {
        for command in [
            "PING",
            "ping hello",
            "INFO",
            "INFO server",
            "FLUSHALL",
            "DBSIZE",
        ] {
            assert_eq!(keys_of(command), Err(no_key(command)), "{command}");
        }
        assert_eq!(
            keys_of("FOO k"),
            Err(KeyError::UnknownCommand {
                command: "FOO".into()
            })
        );
        assert_eq!(
            key_indices(&[b"GET\xff".as_slice(), b"k"]),
            Err(KeyError::UnknownCommand {
                command: "GET\u{fffd}".into()
            })
        );
        let long = [b'A'; 100];
        match key_indices(&[&long[..]]) {
            Err(KeyError::UnknownCommand { command }) => {
                assert_eq!(command.len(), MAX_SHOWN + 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            key_indices(&[b"".as_slice()]),
            Err(KeyError::UnknownCommand { .. })
        ));
        assert_eq!(key_indices(&[]), Err(KeyError::Empty));
        assert_eq!(
            keys_of("MIGRATE h 6379 k 0 1000"),
            Err(KeyError::Unsupported {
                command: "MIGRATE".into()
            })
        );
    }

    #[test]
    fn messages_are_one_line_and_name_the_command() {
        let errors = [
            KeyError::Empty,
            keys_of("PING").unwrap_err(),
            keys_of("FOO").unwrap_err(),
            keys_of("MIGRATE").unwrap_err(),
            keys_of("GET").unwrap_err(),
            keys_of("XREAD COUNT 1").unwrap_err(),
        ];
        for error in &errors {
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
        }
        assert_eq!(
            errors[4].to_string(),
            "cannot find the keys of GET: its keys need at least 2 arguments counting the \
             command name, got 1"
        );
        assert!(errors[1]
            .to_string()
            .starts_with("PING has no key argument"));
        assert!(errors[2].to_string().starts_with("unknown command \"FOO\""));
        assert!(errors[3].to_string().contains("MIGRATE"));
    }

    #[test]
    fn parse_integer_is_strict() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"17"), Some(17));
        assert_eq!(parse_integer(b"-17"), Some(-17));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1x",
            b"9223372036854775808",
            b"-9223372036854775809",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tables_are_sorted_upper_case_and_well_formed() {
        fn check(names: &[&str], what: &str) {
            for pair in names.windows(2) {
                assert!(pair[0].as_bytes() < pair[1].as_bytes(), "{what}: {pair:?}");
            }
            for name in names {
                assert_eq!(*name, name.to_ascii_uppercase(), "{what}");
                assert!(!name.is_empty() && name.len() <= MAX_NAME, "{what}: {name}");
            }
        }
        fn check_spec(spec: Spec, name: &str) {
            if let Spec::Keys { first, last, step } = spec {
                assert!(first >= 1 && step >= 1, "{name}");
                assert!(last < 0 || i16::from(last) >= i16::from(first), "{name}");
            }
        }
        check(&COMMANDS.map(|c| c.name), "commands");
        let mut subcommands = 0;
        let mut keyed = 0;
        for command in &COMMANDS {
            match command.kind {
                Kind::Spec(spec) => {
                    check_spec(spec, command.name);
                    keyed += usize::from(matches!(spec, Spec::Keys { .. }));
                }
                Kind::Subcommands(subs) => {
                    let names: Vec<&str> = subs.iter().map(|s| s.name).collect();
                    check(&names, command.name);
                    subcommands += subs.len();
                    for sub in subs {
                        check_spec(sub.spec, sub.name);
                        keyed += usize::from(matches!(sub.spec, Spec::Keys { .. }));
                    }
                }
            }
        }
        // Redis 7.0's COMMAND: 240 commands, 126 subcommands; 168 of them with a fixed triple.
        assert_eq!((COMMANDS.len(), subcommands, keyed), (240, 126, 168));
    }

    /// A deterministic xorshift generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_arguments_never_panic() {
        // Names and words that reach every path, plus random bytes.
        let mut words: Vec<Vec<u8>> = Vec::new();
        for command in &COMMANDS {
            words.push(command.name.as_bytes().to_vec());
            words.push(command.name.to_ascii_lowercase().into_bytes());
            if let Kind::Subcommands(subs) = command.kind {
                words.extend(subs.iter().map(|s| s.name.as_bytes().to_vec()));
            }
        }
        for word in [
            "0",
            "1",
            "2",
            "3",
            "-1",
            "999999999999999999999",
            "STREAMS",
            "GROUP",
            "COUNT",
            "BLOCK",
            "NOACK",
            "STORE",
            "STOREDIST",
            "LIMIT",
            "BY",
            "GET",
            "ALPHA",
            "ANY",
            "WITHDIST",
            "",
        ] {
            words.push(word.as_bytes().to_vec());
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut args: Vec<Vec<u8>> = Vec::new();
        for _ in 0..50_000 {
            args.clear();
            let len = rng.below(12);
            for _ in 0..len {
                if rng.below(4) == 0 {
                    let n = rng.below(40);
                    args.push((0..n).map(|_| rng.next() as u8).collect());
                } else {
                    args.push(words[rng.below(words.len())].clone());
                }
            }
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            if let Ok(keys) = key_indices(&refs) {
                assert!(
                    keys.iter().all(|&i| i > 0 && i < refs.len()),
                    "{refs:?}: {keys:?}"
                );
            }
        }
    }
}
