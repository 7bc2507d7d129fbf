//! `xenmq`: the command-line front of the framework.
//!
//! One clap tree holds every verb; [`fail`] holds the one way a verb
//! fails: a usage error (exit 2, clap's message with the verb's usage) or a
//! run-time error (exit 1, one line: the error and its causes).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[cfg(feature = "demo")]
mod demo;
mod device;
mod fail;
mod mq;
mod new;
mod sim;

use fail::Failure;

/// Write, run and test Xen split device drivers in Rust.
#[derive(Debug, Parser)]
#[command(
    name = "xenmq",
    version,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = "`xenmq VERB --help` tells more about each verb."
)]
struct Cli {
    /// Log more to stderr: -v info, -vv debug, -vvv trace (RUST_LOG
    /// refines it: `RUST_LOG=xenmq::xenbus=trace`)
    // Not `verbose`: `lab run` has a `--verbose` of its own.
    #[arg(short = 'v', action = clap::ArgAction::Count, global = true)]
    verbosity: u8,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Write a new driver crate: messages, backend, frontend, a test
    New(new::Args),
    /// Run the simulated Xen host; create, run and destroy its domains
    Sim(sim::Args),
    /// Create a custom device's Xenstore directories, as libxl would
    Attach(device::AttachArgs),
    /// Ask a device's backend to close, then remove its directories
    Detach(device::DetachArgs),
    /// List every device in a Xenstore: both ends' states, protocol, ring
    Status(device::StatusArgs),
    /// Create, list, inspect and remove named message queues
    Mq(mq::Args),
    /// Run a program in dom0 and one in a domU on real Xen under qemu
    Lab(xenmq_lab::cli::Args),
    /// Turn a C ring protocol header into a Rust module of xenmq messages
    Port(xenmq_port::Args),
    /// Build a driver crate into a Linux kernel module
    #[command(subcommand)]
    Kmod(xenmq_kmod::cli::Verb),
    /// Measure xenmq's rings against a C driver on ring.h and sockets
    #[cfg(feature = "bench")]
    Bench(xenmq_bench::options::Args),
    /// Run the echo driver: backend in dom0, frontend in a guest, simulated
    #[cfg(feature = "demo")]
    Demo(demo::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), of xenmq or of one verb
    Man {
        /// The verb whose page to print (`xenmq-attach(1)`, ...)
        verb: Option<String>,
    },
}

fn main() -> ExitCode {
    // A re-executed benchmark process is the bench's backend peer, whatever
    // its arguments.
    #[cfg(feature = "bench")]
    if let Some(code) = xenmq_bench::peer::peer_main() {
        return code;
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) if asks_json(&argv) => return fail::clap_exit_json(&e),
        Err(e) => return fail::clap_exit(&fail::with_usage(e, &argv)),
    };
    let json = cli.verb.json();
    if let Err(e) = xenmq_runtime::log::init(cli.verbosity) {
        let f = Failure::usage(&[], xenmq::error::Chain(&e).to_string());
        return if json { f.report_json() } else { f.report() };
    }
    match run(cli.verb) {
        Ok(code) => code,
        Err(f) if json => f.report_json(),
        Err(f) => f.report(),
    }
}

/// Whether a command line that clap refused asked for JSON on stdout:
/// `--json` (a flag of `status` and `sim list`), or `bench`'s `--json -`.
fn asks_json(argv: &[std::ffi::OsString]) -> bool {
    let bench = argv.get(1).is_some_and(|v| v == "bench");
    argv.iter().enumerate().any(|(k, a)| {
        if bench {
            a == "--json=-" || (a == "--json" && argv.get(k + 1).is_some_and(|v| v == "-"))
        } else {
            a == "--json"
        }
    })
}

impl Verb {
    /// Whether the verb prints JSON on stdout, so fails in JSON too.
    fn json(&self) -> bool {
        match self {
            Verb::Status(a) => a.json,
            Verb::Sim(a) => a.json(),
            Verb::Mq(a) => a.json(),
            _ => false,
        }
    }
}

fn run(verb: Verb) -> Result<ExitCode, Failure> {
    match verb {
        Verb::New(a) => new::main(a),
        Verb::Sim(a) => sim::main(a),
        Verb::Attach(a) => device::attach(a),
        Verb::Detach(a) => device::detach(a),
        Verb::Status(a) => device::status(a),
        Verb::Mq(a) => mq::main(a),
        Verb::Lab(a) => Ok(xenmq_lab::cli::main(a)),
        Verb::Kmod(xenmq_kmod::cli::Verb::Build(a)) => {
            let module = a
                .build()
                .and_then(|b| xenmq_kmod::build(&b))
                .map_err(Failure::run)?;
            xenmq_kmod::cli::report(&module);
            Ok(ExitCode::SUCCESS)
        }
        Verb::Port(a) => {
            let out = xenmq_port::run(&a).map_err(Failure::run)?;
            for note in &out.notes {
                eprintln!("note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "bench")]
        Verb::Bench(a) => Ok(xenmq_bench::main_with(&a)),
        #[cfg(feature = "demo")]
        Verb::Demo(a) => Ok(demo::main(a)),
        Verb::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "xenmq", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Verb::Man { verb } => man(verb.as_deref()),
    }
}

/// The command tree, built (bin names of every subcommand set) so that a
/// subcommand's usage reads `xenmq VERB ...`.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

fn man(verb: Option<&str>) -> Result<ExitCode, Failure> {
    let root = command();
    let page = match verb {
        None => root,
        Some(v) => match root.find_subcommand(v) {
            Some(sub) => sub.clone(),
            None => {
                return Err(Failure::usage(
                    &["man"],
                    format!("no verb `{v}` (see `xenmq --help`)"),
                ))
            }
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(Failure::run)?;
    use std::io::Write;
    std::io::stdout().write_all(&out).map_err(Failure::run)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
