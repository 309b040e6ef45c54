//! `burst`: replays heavy-tailed write traffic through a sidecar-queue model and through
//! slotline on a real Redis Cluster, and reports latency, queue growth, buffers and losses.
//! Everything is in `slotline_bench::burst`; `--help` lists the flags.

use std::process::ExitCode;

use slotline_bench::burst::{self, args};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match args::parse(&argv) {
        Ok(args::Command::Help) => {
            print!("{}", args::help());
            ExitCode::SUCCESS
        }
        Ok(args::Command::Proxy(rest)) => match burst::sidecar::proxy_main(&rest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("burst sidecar proxy: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(args::Command::Run(a)) => {
            let command = std::iter::once("burst".to_owned())
                .chain(argv.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            match burst::run(&a, &command) {
                Ok((report, outputs)) => {
                    print!("{}", burst::summary(&report, &outputs));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("burst: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("burst: {e}");
            ExitCode::from(2)
        }
    }
}
