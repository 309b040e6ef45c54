//! `burst`'s command line: flags, clear errors that name the flag, bad trace files.
#![cfg(not(feature = "loom"))]

use std::process::Command;
use std::time::Duration;

use slotline_bench::burst::args::{help, parse, Args, Command as Parsed, PathKind, TraceKind};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn defaults_are_the_documented_ones() {
    let Parsed::Run(a) = parse(&[]).unwrap() else {
        panic!("no run")
    };
    assert_eq!(a.duration, Duration::from_secs(4));
    assert_eq!(a.rate, 20_000.0);
    assert_eq!(a.burst_factor, 10.0);
    assert_eq!(
        a.paths,
        [
            PathKind::Sidecar,
            PathKind::Slotline,
            PathKind::RedisRs,
            PathKind::Fred
        ]
    );
    assert_eq!(
        a.traces,
        [TraceKind::Heavy, TraceKind::HeavyOutage, TraceKind::Poisson]
    );
    assert_eq!(a.sidecar.depth, 10_000);
    assert!(!a.sidecar.enforce);
    assert_eq!(a.sidecar.window, Duration::from_millis(100));
}

#[test]
fn flags_set_their_values() {
    let Parsed::Run(a) = parse(&args(&[
        "--duration",
        "2.5",
        "--rate=5000",
        "--burst-factor",
        "4",
        "--seed",
        "9",
        "--paths",
        "fred,slotline,redis-rs",
        "--traces",
        "poisson,heavy,heavy-outage",
        "--outage",
        "1500ms",
        "--sidecar-timeout",
        "250ms",
        "--sidecar-enforce",
        "--sidecar-depth",
        "500",
        "--sidecar-window",
        "20ms",
        "--sidecar-grace",
        "0s",
        "--nodes",
        "127.0.0.1:7000,127.0.0.1:7001",
        "--callers",
        "8",
        "--out",
        "x",
    ]))
    .unwrap() else {
        panic!("no run")
    };
    assert_eq!(a.duration, Duration::from_millis(2500));
    assert_eq!((a.rate, a.burst_factor, a.seed), (5000.0, 4.0, 9));
    assert_eq!(
        a.paths,
        [PathKind::Fred, PathKind::Slotline, PathKind::RedisRs]
    );
    let names: Vec<&str> = a.paths.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["fred", "slotline", "redis-rs"]);
    assert_eq!(
        a.traces,
        [TraceKind::Poisson, TraceKind::Heavy, TraceKind::HeavyOutage]
    );
    assert_eq!(a.outage, Duration::from_millis(1500));
    assert_eq!(a.sidecar.timeout, Duration::from_millis(250));
    assert!(a.sidecar.enforce);
    assert_eq!(
        (a.sidecar.depth, a.sidecar.window),
        (500, Duration::from_millis(20))
    );
    assert_eq!(a.sidecar.grace, Duration::ZERO);
    assert_eq!(a.nodes.unwrap().len(), 2);
    assert_eq!(a.callers, 8);
}

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    for (argv, flag, text) in [
        (&["--rate", "fast"][..], "--rate", "not a rate"),
        (&["--rate", "0"], "--rate", "above 0"),
        (&["--burst-factor", "1"], "--burst-factor", "above 1"),
        (&["--duration"], "--duration", "needs a value"),
        (&["--duration", "10ms"], "--duration", "at least 100ms"),
        (&["--paths", "sidecar,envoy"], "--paths", "`envoy`"),
        (&["--paths", "slotline,slotline"], "--paths", "twice"),
        (&["--paths", "redis_rs"], "--paths", "redis-rs, fred"),
        (&["--sidecar-window", "100"], "--sidecar-window", "unit"),
        (&["--nodes", "nohost"], "--nodes", "nohost"),
        (&["--callers", "0"], "--callers", "1..=1024"),
        (&["--frobnicate"], "--frobnicate", "unknown flag"),
        (&["--rat", "5"], "--rat", "did you mean --rate?"),
        (
            &["--rate", "--no-progress"],
            "--rate",
            "`--no-progress` is not a rate",
        ),
        (&["--trace", "--no-progress"], "--trace", "needs a value"),
        (&["--outage=-1s"], "--outage", "`-1s`"),
        (&["--runs", "21"], "--runs", "1..=20"),
        (&["--seed", "-1"], "--seed", "not a whole number"),
        (&["stray"], "stray", "unexpected argument"),
        (&["--no-progress=1"], "--no-progress", "takes no value"),
    ] {
        let e = parse(&args(argv)).expect_err(&format!("{argv:?} should be refused"));
        assert_eq!(e.flag, flag, "{argv:?}: {e}");
        assert!(
            e.to_string().contains(text),
            "{argv:?}: `{e}` lacks `{text}`"
        );
    }
}

#[test]
fn help_and_the_hidden_proxy_mode_are_recognised() {
    assert_eq!(parse(&args(&["--help"])).unwrap(), Parsed::Help);
    assert_eq!(parse(&args(&["-h"])).unwrap(), Parsed::Help);
    assert_eq!(
        parse(&args(&["--sidecar-proxy", "--depth", "5"])).unwrap(),
        Parsed::Proxy(args(&["--depth", "5"]))
    );
}

#[test]
fn the_program_exits_2_on_a_bad_flag_and_1_on_a_bad_trace_naming_the_line() {
    let exe = env!("CARGO_BIN_EXE_burst");
    let out = Command::new(exe).arg("--rate").arg("-5").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rate"), "{err}");

    let dir = std::env::temp_dir().join(format!("burst-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("unsorted.csv");
    std::fs::write(&file, "t_us,key,bytes\n5,a,10\n3,b,10\n").unwrap();
    let out = Command::new(exe)
        .arg("--trace")
        .arg(&file)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsorted.csv: line 3:"), "{err}");

    let out = Command::new(exe).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--sidecar-enforce"), "{help}");
    assert!(
        help.contains("[default: sidecar,slotline,redis-rs,fred]"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn link_rates_read_like_tc_and_equal_bounds_is_a_switch() {
    let run = |list: &[&str]| match parse(&args(list)).unwrap() {
        Parsed::Run(a) => a,
        other => panic!("not a run: {other:?}"),
    };
    assert_eq!(run(&[]).link, None);
    assert!(!run(&[]).equal_bounds);
    assert_eq!(run(&["--link", "100mbit"]).link, Some(100_000_000));
    assert_eq!(run(&["--link=1gbit"]).link, Some(1_000_000_000));
    assert_eq!(run(&["--link", "2.5Mbit"]).link, Some(2_500_000));
    assert_eq!(run(&["--link", "500kbit"]).link, Some(500_000));
    assert_eq!(run(&["--link", "8000000"]).link, Some(8_000_000));
    assert!(run(&["--equal-bounds"]).equal_bounds);
    for bad in ["fast", "10kbit", "1tbit", "-5mbit", "mbit"] {
        let e = parse(&args(&["--link", bad])).unwrap_err();
        assert_eq!(e.flag, "--link", "{bad}: {e}");
    }
    assert_eq!(
        parse(&args(&["--equal-bounds=yes"])).unwrap_err().flag,
        "--equal-bounds"
    );
}

/// Every flag, in the order `--help` lists them.
const FLAGS: [&str; 25] = [
    "--duration",
    "--rate",
    "--burst-factor",
    "--seed",
    "--users",
    "--zipf",
    "--trace",
    "--record",
    "--traces",
    "--outage",
    "--runs",
    "--paths",
    "--callers",
    "--config",
    "--sidecar-depth",
    "--sidecar-enforce",
    "--equal-bounds",
    "--sidecar-window",
    "--sidecar-batch",
    "--sidecar-grace",
    "--sidecar-timeout",
    "--link",
    "--nodes",
    "--out",
    "--no-progress",
];

#[test]
fn an_empty_command_line_gives_the_default_args() {
    let Parsed::Run(a) = parse(&[]).unwrap() else {
        panic!("no run")
    };
    assert_eq!(*a, Args::default());
    assert!(a.progress);
    assert_eq!(a.nodes, None);
}

#[test]
fn help_lists_every_flag_under_its_heading_with_every_default() {
    let text = help();
    // The flags, in order: the lines indented less than the help text under them.
    let listed: Vec<&str> = text
        .lines()
        .map(|l| (l.len() - l.trim_start().len(), l.trim_start()))
        .filter(|(indent, l)| *indent < 10 && l.starts_with('-'))
        .filter_map(|(_, l)| l.trim_start_matches("-h, ").split_whitespace().next())
        .collect();
    let mut expected = FLAGS.to_vec();
    expected.push("--help");
    assert_eq!(listed, expected, "{text}");
    assert!(text.contains("-h, --help"), "{text}");

    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing from:\n{text}"))
    };
    assert!(at("Usage: burst [OPTIONS]") < at("TRACE:"), "{text}");
    assert!(at("TRACE:") < at("--duration <SECS>"));
    assert!(at("--runs <N>") < at("PATHS:"));
    assert!(at("PATHS:") < at("--paths <LIST>"));
    assert!(at("--sidecar-timeout <DUR>") < at("CLUSTER AND OUTPUT:"));
    assert!(at("CLUSTER AND OUTPUT:") < at("--link <RATE>"));
    for default in [
        "4",
        "20000",
        "10",
        "7",
        "100000",
        "1.0",
        "heavy,heavy-outage,poisson",
        "2s",
        "3",
        "sidecar,slotline,redis-rs,fred",
        "16",
        "geo_shard_client.yaml",
        "10000",
        "100ms",
        "1000",
        "30s",
        "400ms",
        "target/burst",
    ] {
        at(&format!("[default: {default}]"));
    }
    for phrase in [
        "With no options: starts a local Redis Cluster",
        "cargo run --release -p slotline-bench --bin burst -- [OPTIONS]",
        "seeds 1-12 give 0.35-7x",
        "twemproxy's `timeout`",
        "(default: the queue grows past it)",
        "needs root",
    ] {
        at(phrase);
    }
    assert!(!text.lines().any(|l| l.ends_with(' ')), "trailing blanks");
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");
}

#[test]
fn every_flag_is_accepted_with_its_value_attached_or_following() {
    let cases: [(&str, &str); 20] = [
        ("--duration", "1.5"),
        ("--rate", "5000"),
        ("--burst-factor", "3"),
        ("--seed", "11"),
        ("--users", "50"),
        ("--zipf", "0"),
        ("--trace", "t.csv"),
        ("--record", "r.csv"),
        ("--traces", "poisson"),
        ("--outage", "300ms"),
        ("--runs", "5"),
        ("--paths", "slotline,sidecar"),
        ("--callers", "4"),
        ("--config", "c.yaml"),
        ("--sidecar-depth", "77"),
        ("--sidecar-window", "5ms"),
        ("--sidecar-batch", "9"),
        ("--sidecar-grace", "1m 30s"),
        ("--sidecar-timeout", "2s"),
        ("--out", "o"),
    ];
    let mut apart = Vec::new();
    let mut joined = Vec::new();
    for (flag, value) in cases {
        apart.extend([flag.to_owned(), value.to_owned()]);
        joined.push(format!("{flag}={value}"));
    }
    apart.extend(args(&["--link", "10mbit", "--nodes", "127.0.0.1:7000"]));
    joined.extend(args(&["--link=10mbit", "--nodes=127.0.0.1:7000"]));
    let (Parsed::Run(a), Parsed::Run(b)) = (parse(&apart).unwrap(), parse(&joined).unwrap()) else {
        panic!("no run")
    };
    assert_eq!(a, b);
    assert_eq!(a.duration, Duration::from_millis(1500));
    assert_eq!(
        (a.rate, a.burst_factor, a.seed, a.users),
        (5000.0, 3.0, 11, 50)
    );
    assert_eq!(a.zipf_s, 0.0);
    assert_eq!(a.trace.as_deref(), Some(std::path::Path::new("t.csv")));
    assert_eq!(a.record.as_deref(), Some(std::path::Path::new("r.csv")));
    assert_eq!(a.traces, [TraceKind::Poisson]);
    assert_eq!(a.outage, Duration::from_millis(300));
    assert_eq!((a.runs, a.callers), (5, 4));
    assert_eq!(a.paths, [PathKind::Slotline, PathKind::Sidecar]);
    assert_eq!(a.config, std::path::Path::new("c.yaml"));
    assert_eq!((a.sidecar.depth, a.sidecar.batch), (77, 9));
    assert_eq!(a.sidecar.window, Duration::from_millis(5));
    assert_eq!(a.sidecar.grace, Duration::from_secs(90));
    assert_eq!(a.sidecar.timeout, Duration::from_secs(2));
    assert_eq!(a.out, std::path::Path::new("o"));
    assert_eq!(a.link, Some(10_000_000));
    assert_eq!(a.nodes.as_ref().map(Vec::len), Some(1));

    // A value that starts with `-` reaches the flag's check in both forms.
    for argv in [&["--rate", "-5"][..], &["--rate=-5"]] {
        let e = parse(&args(argv)).unwrap_err();
        assert_eq!(
            (e.flag.as_str(), e.reason.as_str()),
            ("--rate", "must be above 0")
        );
    }
    // A flag given twice: the last one counts.
    let Parsed::Run(a) = parse(&args(&["--rate", "1", "--rate=2"])).unwrap() else {
        panic!("no run")
    };
    assert_eq!(a.rate, 2.0);
}
