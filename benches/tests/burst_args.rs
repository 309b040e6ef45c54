//! `burst`'s command line: flags, clear errors that name the flag, bad trace files.
#![cfg(not(feature = "loom"))]

use std::process::Command;
use std::time::Duration;

use slotline_bench::burst::args::{parse, Command as Parsed, PathKind, TraceKind};

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
