//! `xenmq-kmod build`: a driver crate and a role into a kernel module (the
//! `xenmq` tool runs the same as `xenmq kmod build`).

use std::process::ExitCode;

use clap::Parser;
use xenmq_kmod::cli::{report, Verb};

/// Build xenmq driver crates into Linux kernel modules
#[derive(Debug, Parser)]
#[command(name = "xenmq-kmod", version)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

fn main() -> ExitCode {
    let Verb::Build(args) = Cli::parse().verb;
    match args.build().and_then(|b| xenmq_kmod::build(&b)) {
        Ok(m) => {
            report(&m);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", xenmq::error::Chain(&e));
            ExitCode::FAILURE
        }
    }
}
