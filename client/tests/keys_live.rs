#![cfg(not(feature = "loom"))]
//! `keys::key_indices` against a real standalone `redis-server`: the keys it finds agree with
//! the server's `COMMAND GETKEYS`, and its table with the server's `COMMAND INFO` triples.

use redis::Value;
use slotline_client::keys::{key_indices, KeyError};
use slotline_testkit::LocalServer;

fn server() -> LocalServer {
    LocalServer::start().unwrap_or_else(|e| panic!("cannot start a local redis-server: {e}"))
}

fn query(server: &LocalServer, cmd: &redis::Cmd) -> Result<Value, String> {
    match server.query(cmd) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(e) => panic!("cannot reach the server: {e}"),
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        Value::VerbatimString { text, .. } => text.clone().into_bytes(),
        Value::Okay => b"OK".to_vec(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn text(value: &Value) -> String {
    String::from_utf8(bytes(value)).expect("UTF-8")
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn array(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The server's `COMMAND GETKEYS args...`: the key names, or its error.
fn server_keys(server: &LocalServer, args: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("GETKEYS");
    for arg in args {
        cmd.arg(*arg);
    }
    query(server, &cmd).map(|reply| array(&reply).iter().map(bytes).collect())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn words(command: &str) -> Vec<&[u8]> {
    command.split_whitespace().map(str::as_bytes).collect()
}

/// Commands with realistic arguments, covering every movable-key family and the shapes of
/// fixed triples (one key, all keys, every other key, all but the last, keys after the first
/// argument, subcommands).
const CASES: &[&str] = &[
    // Strings.
    "GET user:1",
    "SET user:1 v",
    "SET user:1 v EX 10 NX",
    "SET user:1 v PX 1500 XX GET",
    "SETEX k 10 v",
    "PSETEX k 100 v",
    "GETEX k PERSIST",
    "GETDEL k",
    "APPEND k tail",
    "STRLEN k",
    "INCR counter",
    "INCRBY counter 5",
    "INCRBYFLOAT counter 0.5",
    "DECR counter",
    "SETRANGE k 3 abc",
    "GETRANGE k 0 -1",
    "MSET k1 v1 k2 v2 k3 v3",
    "MSETNX a 1 b 2",
    "MGET a b c",
    "LCS a b IDX",
    // Keyspace.
    "DEL a",
    "DEL a b c d",
    "UNLINK a b",
    "EXISTS a b a",
    "TOUCH a b",
    "EXPIRE k 10 NX",
    "PEXPIREAT k 1700000000000",
    "EXPIRETIME k",
    "TTL k",
    "PERSIST k",
    "TYPE k",
    "RENAME a b",
    "RENAMENX a b",
    "COPY a b REPLACE",
    "DUMP k",
    "RESTORE k 0 payload REPLACE",
    "OBJECT ENCODING k",
    "OBJECT FREQ k",
    "MEMORY USAGE k SAMPLES 5",
    "WATCH a b",
    // Hashes.
    "HSET h f v f2 v2",
    "HGET h f",
    "HGETALL h",
    "HDEL h f f2",
    "HINCRBY h f 2",
    "HSCAN h 0 MATCH f* COUNT 10",
    // Lists.
    "LPUSH l a b c",
    "RPUSH l a",
    "LPOP l 2",
    "LRANGE l 0 -1",
    "LPOS l a RANK 1",
    "LMOVE src dst LEFT RIGHT",
    "BLMOVE src dst LEFT RIGHT 0",
    "RPOPLPUSH src dst",
    "BRPOPLPUSH src dst 1",
    "BLPOP a b c 0",
    "BRPOP a 1.5",
    "LMPOP 2 a b LEFT COUNT 3",
    "LMPOP 1 a RIGHT",
    "BLMPOP 0.5 2 a b RIGHT",
    "BLMPOP 0 1 a LEFT COUNT 2",
    // Sets.
    "SADD s a b",
    "SMEMBERS s",
    "SINTER a b c",
    "SINTERSTORE d a b",
    "SUNIONSTORE d a",
    "SDIFF a b",
    "SMOVE a b member",
    "SINTERCARD 2 a b LIMIT 1",
    "SINTERCARD 1 a",
    // Sorted sets.
    "ZADD z NX 1 a 2 b",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZRANGESTORE d z 0 -1",
    "ZSCORE z a",
    "ZUNIONSTORE d 2 a b WEIGHTS 1 2 AGGREGATE MAX",
    "ZINTERSTORE d 1 a",
    "ZDIFFSTORE d 3 a b c",
    "ZUNION 2 a b WITHSCORES",
    "ZINTER 3 a b c",
    "ZDIFF 1 a",
    "ZINTERCARD 2 a b LIMIT 0",
    "ZMPOP 2 a b MIN COUNT 2",
    "ZMPOP 1 a MAX",
    "BZMPOP 0 1 a MAX",
    "BZMPOP 1.5 3 a b c MIN COUNT 1",
    "BZPOPMIN a b 0",
    "BZPOPMAX a 1",
    // Streams.
    "XADD s * f v",
    "XADD s MAXLEN ~ 100 * f v",
    "XLEN s",
    "XRANGE s - +",
    "XDEL s 1-0 2-0",
    "XTRIM s MINID 0",
    "XACK s g 1-0",
    "XCLAIM s g c 10 1-0",
    "XAUTOCLAIM s g c 10 0",
    "XREAD COUNT 2 STREAMS a b 0 0",
    "XREAD BLOCK 0 STREAMS a $",
    "XREAD STREAMS streams 0",
    "XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >",
    "XREADGROUP GROUP streams consumer STREAMS streams 0",
    "XGROUP CREATE s g $ MKSTREAM",
    "XGROUP DESTROY s g",
    "XINFO STREAM s FULL",
    "XINFO GROUPS s",
    // Scripts and functions.
    "EVAL script 1 k",
    "EVAL script 2 a b arg1 arg2",
    "EVALSHA 0123456789abcdef0123456789abcdef01234567 1 a",
    "EVAL_RO script 2 a b",
    "EVALSHA_RO 0123456789abcdef0123456789abcdef01234567 1 a arg",
    "FCALL fn 2 a b arg",
    "FCALL_RO fn 1 a",
    // Sort.
    "SORT k",
    "SORT k BY w_* LIMIT 0 10 GET o_* GET # DESC ALPHA STORE dst",
    "SORT k STORE a STORE b",
    "SORT_RO k BY w_* GET # ALPHA",
    // Geo.
    "GEOADD g 13.36 38.11 palermo",
    "GEODIST g palermo catania km",
    "GEORADIUS g 15 37 200 km",
    "GEORADIUS g 15 37 200 km COUNT 5 ASC STORE d",
    "GEORADIUS g 15 37 200 km STOREDIST d",
    "GEORADIUS g 15 37 200 km STORE a STOREDIST b",
    "GEORADIUS g 15 37 200 km WITHCOORD WITHDIST",
    "GEORADIUSBYMEMBER g palermo 100 km STORE d",
    "GEORADIUSBYMEMBER g palermo 100 km",
    "GEORADIUS_RO g 15 37 200 km",
    "GEOSEARCH g FROMMEMBER palermo BYRADIUS 10 km",
    "GEOSEARCHSTORE d g FROMMEMBER palermo BYRADIUS 10 km",
    // HyperLogLog and bits.
    "PFADD hll a b",
    "PFCOUNT a b",
    "PFMERGE d a b",
    "BITOP AND d a b",
    "BITCOUNT k 0 -1",
    "BITFIELD k GET u8 0",
    "BITPOS k 1",
    "SETBIT k 7 1",
];

/// Commands without keys: `key_indices` says `NoKey`, the server finds none.
const KEYLESS: &[&str] = &[
    "PING",
    "INFO server",
    "DBSIZE",
    "FLUSHALL",
    "CLUSTER INFO",
    "CONFIG GET maxmemory",
    "CLIENT LIST",
    "SCRIPT FLUSH",
    "FUNCTION LIST",
    "OBJECT HELP",
    "EVAL script 0",
    "FCALL fn 0 arg",
];

#[test]
fn keys_agree_with_command_getkeys() {
    let server = server();
    assert!(CASES.len() >= 60);
    for case in CASES {
        let args = words(case);
        let indices = key_indices(&args).unwrap_or_else(|e| panic!("{case}: {e}"));
        let ours: Vec<&[u8]> = indices.iter().map(|&i| args[i]).collect();
        let theirs = server_keys(&server, &args)
            .unwrap_or_else(|e| panic!("{case}: COMMAND GETKEYS failed: {e}"));
        assert!(
            ours == theirs,
            "{case}: indices {indices:?} are keys {:?}, the server says {:?}",
            ours.iter().map(|key| lossy(key)).collect::<Vec<_>>(),
            theirs.iter().map(|key| lossy(key)).collect::<Vec<_>>()
        );
    }

    for case in KEYLESS {
        let args = words(case);
        assert!(
            matches!(key_indices(&args), Err(KeyError::NoKey { .. })),
            "{case}: {:?}",
            key_indices(&args)
        );
        match server_keys(&server, &args) {
            Ok(keys) => assert!(keys.is_empty(), "{case}: the server found {keys:?}"),
            // GETKEYS itself needs a command with at least one argument.
            Err(e) if args.len() == 1 => {
                assert!(e.contains("wrong number of arguments"), "{case}: {e}")
            }
            Err(e) => assert!(e.contains("no key arguments"), "{case}: {e}"),
        }
    }
    // Shard channels: the server's key specs point at them but flag them `not_key`.
    assert_eq!(key_indices(&words("SPUBLISH ch m")), Ok(vec![1]));
    let e = server_keys(&server, &words("SPUBLISH ch m")).unwrap_err();
    assert!(e.contains("no key arguments"), "{e}");
}

/// One command (or subcommand) of the server's `COMMAND INFO` reply.
struct Info {
    /// `["get"]`, or `["object", "encoding"]` for a subcommand.
    name: Vec<String>,
    movable: bool,
    first: i64,
    last: i64,
    step: i64,
}

fn parse_info(reply: &Value, out: &mut Vec<Info>) {
    let fields = array(reply);
    let name = text(&fields[0]);
    let movable = array(&fields[2])
        .iter()
        .any(|flag| text(flag) == "movablekeys");
    let subcommands = fields.get(9).map(array).unwrap_or_default();
    if subcommands.is_empty() {
        out.push(Info {
            name: name.split('|').map(str::to_owned).collect(),
            movable,
            first: int(&fields[3]),
            last: int(&fields[4]),
            step: int(&fields[5]),
        });
    }
    for sub in subcommands {
        parse_info(sub, out);
    }
}

/// The keys a triple gives for `argc` arguments, as Redis resolves it; `None` when the
/// arguments stop before the last key.
fn triple_keys(first: i64, last: i64, step: i64, argc: usize) -> Option<Vec<usize>> {
    let argc = i64::try_from(argc).unwrap();
    let last = if last < 0 { argc + last } else { last };
    if last >= argc || last < first {
        return None;
    }
    let step = usize::try_from(step).unwrap();
    Some(
        (first..=last)
            .step_by(step)
            .map(|i| usize::try_from(i).unwrap())
            .collect(),
    )
}

#[test]
fn table_agrees_with_command_info() {
    let server = server();
    let info = text(&query(&server, redis::cmd("INFO").arg("server")).expect("INFO"));
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .expect("redis_version")
        .trim()
        .to_owned();
    // The table is Redis 7.0's: a newer server has commands it does not know.
    let same_version = version.starts_with("7.0.");

    let names = query(&server, redis::cmd("COMMAND").arg("LIST")).expect("COMMAND LIST");
    // COMMAND LIST names the subcommands too (`object|encoding`); COMMAND INFO of a
    // container gives its subcommands.
    let mut names: Vec<String> = array(&names)
        .iter()
        .map(text)
        .filter(|name| !name.contains('|'))
        .collect();
    names.sort();
    let mut commands = Vec::new();
    // A few names per request: the whole `COMMAND` reply is larger than a read buffer.
    for chunk in names.chunks(10) {
        let reply =
            query(&server, redis::cmd("COMMAND").arg("INFO").arg(chunk)).expect("COMMAND INFO");
        for command in array(&reply) {
            parse_info(command, &mut commands);
        }
    }

    let mut checked = 0;
    let mut unknown = Vec::new();
    for command in &commands {
        let label = command.name.join(" ");
        let mut args: Vec<Vec<u8>> = command
            .name
            .iter()
            .map(|w| w.clone().into_bytes())
            .collect();
        let base = args.len();
        let probe = |args: &[Vec<u8>]| {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            key_indices(&refs)
        };
        if let Err(KeyError::UnknownCommand { .. }) = probe(&args) {
            unknown.push(label);
            continue;
        }
        checked += 1;
        if command.movable {
            // Read from the arguments (the families are compared with GETKEYS above): every
            // one is handled but MIGRATE.
            args.extend((0..8).map(|i| format!("a{i}").into_bytes()));
            let result = probe(&args);
            assert_eq!(
                matches!(result, Err(KeyError::Unsupported { .. })),
                label == "migrate",
                "{label}: {result:?}"
            );
            continue;
        }
        // Every argument count from none past the name to 8 more: the resolved indices
        // tell the first index, a positive from a negative last, and the step apart.
        for extra in 0..=8 {
            let got = probe(&args);
            let argc = base + extra;
            if command.first == 0 {
                assert!(
                    matches!(got, Err(KeyError::NoKey { .. })),
                    "{label} with {argc} arguments: {got:?}"
                );
            } else {
                match triple_keys(command.first, command.last, command.step, argc) {
                    Some(want) => assert_eq!(
                        got.as_deref(),
                        Ok(want.as_slice()),
                        "{label} with {argc} arguments, server triple ({}, {}, {})",
                        command.first,
                        command.last,
                        command.step
                    ),
                    None => assert!(
                        matches!(got, Err(KeyError::BadArguments { .. })),
                        "{label} with {argc} arguments: {got:?}"
                    ),
                }
            }
            args.push(format!("a{extra}").into_bytes());
        }
    }
    if same_version {
        assert!(unknown.is_empty(), "not in the table: {unknown:?}");
        // With the module's own test that the table holds 240 commands and 126
        // subcommands, this makes the table and the server's list the same set.
        let top = names.len();
        let subs = commands.iter().filter(|c| c.name.len() == 2).count();
        assert_eq!((top, subs, checked), (240, 126, 351), "redis {version}");
    } else {
        eprintln!(
            "redis {version}: {} commands not in the 7.0 table: {unknown:?}",
            unknown.len()
        );
    }
    let migrate = words("MIGRATE host 6379 k 0 1000");
    assert_eq!(
        key_indices(&migrate),
        Err(KeyError::Unsupported {
            command: "MIGRATE".into()
        })
    );
}
