//! Command arguments → `slotline_client::keys::key_indices`.
//!
//! Input: the arguments, one per line (`\n` separates them, so an argument never holds one;
//! `key_indices` reads the name, `numkeys` and option keywords, where a `\n` is one more byte
//! that matches nothing, like any other).
//!
//! Properties: nothing panics; keys found are a non-empty, strictly ascending list of indices
//! in `1..args.len()`; the command name's case changes nothing; for the commands with a
//! `numkeys` argument (`EVAL`, `FCALL`, `ZUNIONSTORE`, `ZUNION`, `BLMPOP`, ...) the answer is
//! exactly what `numkeys` says, computed here independently.
#![no_main]

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use slotline_client::keys::{key_indices, KeyError};

struct Case<'a> {
    args: Vec<&'a [u8]>,
}

impl<'a> Arbitrary<'a> for Case<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let rest = u.bytes(u.len())?;
        Ok(Case {
            args: if rest.is_empty() {
                Vec::new()
            } else {
                rest.split(|&b| b == b'\n').collect()
            },
        })
    }
}

/// A reproducer to paste into a test.
impl fmt::Debug for Case<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "let args: [&[u8]; {}] = [", self.args.len())?;
        for (i, arg) in self.args.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}b\"{}\"", arg.escape_ascii())?;
        }
        write!(f, "];\nkey_indices(&args);")
    }
}

/// For a command with `numkeys`: its position, whether argument 1 is a key (the
/// destination), and whether 0 keys is allowed (`NoKey`) rather than malformed.
fn numkeys_layout(name: &[u8]) -> Option<(usize, bool, bool)> {
    match name.to_ascii_uppercase().as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            Some((2, false, true))
        }
        b"ZUNIONSTORE" | b"ZINTERSTORE" | b"ZDIFFSTORE" => Some((2, true, false)),
        b"ZUNION" | b"ZINTER" | b"ZDIFF" | b"ZINTERCARD" | b"SINTERCARD" | b"LMPOP" | b"ZMPOP" => {
            Some((1, false, false))
        }
        b"BLMPOP" | b"BZMPOP" => Some((2, false, false)),
        _ => None,
    }
}

/// What a `numkeys` command's keys must be: `Ok(indices)`, `Err(true)` for `NoKey`,
/// `Err(false)` for `BadArguments`.
fn numkeys_reference(
    args: &[&[u8]],
    at: usize,
    destination: bool,
    zero_ok: bool,
) -> Result<Vec<usize>, bool> {
    if destination && args.len() < 2 {
        return Err(false);
    }
    let raw = args.get(at).ok_or(false)?;
    // Plain decimal, as Redis writes it: digits, no sign, no leading zero.
    let text = std::str::from_utf8(raw).map_err(|_| false)?;
    let plain = text == "0"
        || (text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') && !text.is_empty());
    let count: u64 = if plain {
        text.parse().unwrap_or(u64::MAX)
    } else {
        return Err(false);
    };
    if count == 0 {
        return Err(zero_ok);
    }
    let available = (args.len() - at - 1) as u64;
    if count > available {
        return Err(false);
    }
    let mut keys = Vec::new();
    if destination {
        keys.push(1);
    }
    keys.extend(at + 1..=at + count as usize);
    Ok(keys)
}

fuzz_target!(|case: Case| {
    let args = &case.args;
    let got = key_indices(args);
    if let Ok(keys) = &got {
        assert!(!keys.is_empty(), "Ok with no key: {case:?}");
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "{keys:?} not ascending: {case:?}"
        );
        assert!(
            keys.iter().all(|&k| 1 <= k && k < args.len()),
            "{keys:?} out of 1..{}: {case:?}",
            args.len()
        );
    }

    // The name's case changes nothing.
    if let Some(name) = args.first() {
        for other in [name.to_ascii_lowercase(), name.to_ascii_uppercase()] {
            let mut again = args.clone();
            again[0] = &other;
            assert_eq!(
                key_indices(&again).ok(),
                got.as_ref().ok().cloned(),
                "name case changed the keys: {case:?}"
            );
        }
    }

    if let Some((at, destination, zero_ok)) = args.first().and_then(|n| numkeys_layout(n)) {
        let want = numkeys_reference(args, at, destination, zero_ok);
        match (&got, &want) {
            (Ok(keys), Ok(w)) => assert_eq!(keys, w, "{case:?}"),
            (Err(KeyError::NoKey { .. }), Err(true)) => {}
            (Err(KeyError::BadArguments { .. }), Err(false)) => {}
            _ => panic!("key_indices gave {got:?}, numkeys says {want:?}: {case:?}"),
        }
    }
});
