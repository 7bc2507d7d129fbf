//! `xenmq lab ...`: the command line over [`run`](crate::run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::{Config, Error, Exit};

/// What the lab's help says after its options.
const AFTER_HELP: &str = "Programs run as root with XENMQ_LAB_ROLE=dom0|domu, XENMQ_LAB_DOMID and \
XENMQ_LAB_PEER_DOMID set.

Exit status: 0 both programs exited 0; 1 a program failed; 2 usage or set-up error; 3 a \
program or the run timed out; 4 a domain or the machine crashed; 5 the boot did not complete.";

/// `xenmq lab`'s arguments.
#[derive(Debug, clap::Args)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Boot Xen under qemu, run BIN in dom0 and BIN in a domU, print both
    #[command(
        long_about = "Boots Debian's Xen 4.17 + Linux 6.1 (PV dom0) under qemu (TCG), creates \
a PV domU, runs one program in each, and prints both outputs and exit codes.",
        after_help = AFTER_HELP,
        override_usage = "xenmq lab run --dom0 BIN --domu BIN [OPTIONS]"
    )]
    Run(RunArgs),
}

/// `xenmq lab run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The program to run in dom0
    #[arg(long, value_name = "BIN")]
    dom0: PathBuf,
    /// The program to run in the domU
    #[arg(long, value_name = "BIN")]
    domu: PathBuf,
    /// How long the programs may run, in the guest, in seconds
    #[arg(long, value_name = "S", default_value = "120", value_parser = seconds)]
    timeout: Duration,
    /// How long until the domU exists, in seconds
    #[arg(long, value_name = "S", default_value = "150", value_parser = seconds)]
    boot_timeout: Duration,
    /// Arguments of the dom0 program, split on spaces (before any --dom0-arg)
    #[arg(long, value_name = "ARGS")]
    dom0_args: Option<String>,
    /// Arguments of the domU program, split on spaces (before any --domu-arg)
    #[arg(long, value_name = "ARGS")]
    domu_args: Option<String>,
    /// One more argument of the dom0 program (repeatable)
    #[arg(long, value_name = "ARG")]
    dom0_arg: Vec<String>,
    /// One more argument of the domU program (repeatable)
    #[arg(long, value_name = "ARG")]
    domu_arg: Vec<String>,
    /// A directory copied into both programs' working directories
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// Packages and images [default: $XENMQ_LAB_CACHE, else /var/tmp/xenmq-lab]
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Echo the whole console to stderr
    #[arg(long)]
    verbose: bool,
    /// Keep the guests' kernel messages
    #[arg(long)]
    kernel_log: bool,
}

fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("`{v}` is not a number of seconds"))
}

/// Exit status: a program exited non-zero.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or host set-up failure.
pub const EXIT_SETUP: u8 = 2;
/// Exit status: a timeout.
pub const EXIT_TIMEOUT: u8 = 3;
/// Exit status: a crash.
pub const EXIT_CRASH: u8 = 4;
/// Exit status: the boot did not complete.
pub const EXIT_BOOT: u8 = 5;

impl RunArgs {
    fn config(self) -> Config {
        let mut cfg = Config::new(self.dom0, self.domu);
        cfg.timeout = self.timeout;
        cfg.boot_timeout = self.boot_timeout;
        let words = |s: Option<String>| -> Vec<String> {
            s.map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        cfg.dom0_args = words(self.dom0_args);
        cfg.dom0_args.extend(self.dom0_arg);
        cfg.domu_args = words(self.domu_args);
        cfg.domu_args.extend(self.domu_arg);
        cfg.files = self.files;
        if let Some(cache) = self.cache {
            cfg.cache = cache;
        }
        cfg.verbose = self.verbose;
        cfg.kernel_log = self.kernel_log;
        cfg
    }
}

fn exit_class(e: &Exit) -> u8 {
    match e {
        Exit::Code(0) => 0,
        Exit::Code(_) => EXIT_FAILED,
        Exit::TimedOut => EXIT_TIMEOUT,
        Exit::Crashed => EXIT_CRASH,
    }
}

/// Runs `xenmq lab`.
pub fn main(args: Args) -> ExitCode {
    let Command::Run(run) = args.command;
    let cfg = run.config();
    match crate::run(&cfg) {
        Ok(r) => {
            println!("===== dom0 ({}) {} =====", cfg.dom0.display(), r.dom0.exit);
            println!("{}", r.dom0.output);
            println!(
                "===== domU {} ({}) {} =====",
                r.domu_id,
                cfg.domu.display(),
                r.domu.exit
            );
            println!("{}", r.domu.output);
            if !r.domu_console.is_empty() {
                println!(
                    "===== domU console (it did not report) =====\n{}",
                    r.domu_console
                );
            }
            let stages: Vec<String> = r
                .stages
                .iter()
                .map(|(s, t)| format!("{s} {:.1}s", t.as_secs_f64()))
                .collect();
            println!(
                "===== stages: {}; total {:.1}s =====",
                stages.join(", "),
                r.total.as_secs_f64()
            );
            println!(
                "===== console log: {} =====",
                r.run_dir.join("console.log").display()
            );
            // The worst side decides: crash (4) > timeout (3) > failure (1).
            let code = exit_class(&r.dom0.exit).max(exit_class(&r.domu.exit));
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {}", xenmq::error::Chain(&e));
            ExitCode::from(match e {
                Error::Setup(_) | Error::Tool { .. } | Error::Io { .. } => EXIT_SETUP,
                Error::BootTimeout { .. } | Error::Guest { .. } => EXIT_BOOT,
                Error::Timeout { .. } => EXIT_TIMEOUT,
                Error::Crashed { .. } => EXIT_CRASH,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Lab {
        #[command(flatten)]
        args: Args,
    }

    fn parse(line: &[&str]) -> Result<Config, clap::Error> {
        let argv = ["lab", "run"].into_iter().chain(line.iter().copied());
        Lab::try_parse_from(argv).map(|l| {
            let Command::Run(run) = l.args.command;
            run.config()
        })
    }

    #[test]
    fn parses_the_documented_options() {
        let c = parse(&[
            "--dom0",
            "a",
            "--domu",
            "b",
            "--timeout",
            "7",
            "--dom0-args",
            "x y",
            "--domu-arg",
            "p q",
        ])
        .unwrap();
        assert_eq!(c.dom0, PathBuf::from("a"));
        assert_eq!(c.timeout, Duration::from_secs(7));
        assert_eq!(c.dom0_args, ["x", "y"]);
        assert_eq!(c.domu_args, ["p q"]);
        assert!(parse(&["--dom0", "a"]).is_err());
        assert!(parse(&["--dom0", "a", "--domu", "b", "--timeout", "soon"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
