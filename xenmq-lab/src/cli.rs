//! `xenmq lab ...`: the command line over [`run`](crate::run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::{Config, Error, Exit};

/// Usage of `xenmq lab`.
pub const USAGE: &str = "usage: xenmq lab run --dom0 BIN --domu BIN [options]

Boots Debian's Xen 4.17 + Linux 6.1 (PV dom0) under qemu (TCG), creates a PV
domU, runs BIN in each, and prints both outputs and exit codes.

options:
  --timeout S        how long the programs may run, in the guest (default 120)
  --boot-timeout S   how long until the domU exists (default 150)
  --dom0-args ARGS   arguments of the dom0 program, split on spaces
  --domu-args ARGS   arguments of the domU program, split on spaces
  --dom0-arg ARG     one more argument of the dom0 program (repeatable)
  --domu-arg ARG     one more argument of the domU program (repeatable)
  --files DIR        copy DIR into both programs' working directories
  --cache DIR        packages and images (default /var/tmp/xenmq-lab,
                     or $XENMQ_LAB_CACHE)
  --verbose          echo the whole console to stderr
  --kernel-log       keep the guests' kernel messages

Programs run as root with XENMQ_LAB_ROLE=dom0|domu, XENMQ_LAB_DOMID and
XENMQ_LAB_PEER_DOMID set.

exit status: 0 both programs exited 0; 1 a program failed; 2 usage or
set-up error; 3 a program or the run timed out; 4 a domain or the machine
crashed; 5 the boot did not complete";

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

fn parse(args: &[String]) -> Result<Config, String> {
    let mut dom0 = None;
    let mut domu = None;
    let mut cfg = Config::new("", "");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let secs = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("{a}: `{v}` is not a number of seconds"))
        };
        match a.as_str() {
            "--dom0" => dom0 = Some(PathBuf::from(val()?)),
            "--domu" => domu = Some(PathBuf::from(val()?)),
            "--timeout" => cfg.timeout = secs(val()?)?,
            "--boot-timeout" => cfg.boot_timeout = secs(val()?)?,
            "--dom0-args" => cfg
                .dom0_args
                .extend(val()?.split_whitespace().map(str::to_owned)),
            "--domu-args" => cfg
                .domu_args
                .extend(val()?.split_whitespace().map(str::to_owned)),
            "--dom0-arg" => cfg.dom0_args.push(val()?),
            "--domu-arg" => cfg.domu_args.push(val()?),
            "--files" => cfg.files = Some(PathBuf::from(val()?)),
            "--cache" => cfg.cache = PathBuf::from(val()?),
            "--verbose" => cfg.verbose = true,
            "--kernel-log" => cfg.kernel_log = true,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    cfg.dom0 = dom0.ok_or("--dom0 BIN is required")?;
    cfg.domu = domu.ok_or("--domu BIN is required")?;
    Ok(cfg)
}

fn exit_class(e: &Exit) -> u8 {
    match e {
        Exit::Code(0) => 0,
        Exit::Code(_) => EXIT_FAILED,
        Exit::TimedOut => EXIT_TIMEOUT,
        Exit::Crashed => EXIT_CRASH,
    }
}

/// Runs `xenmq lab ARGS` (ARGS without `lab`).
pub fn main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("run") => {}
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("xenmq lab: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(EXIT_SETUP);
        }
    }
    let cfg = match parse(&args[1..]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xenmq lab run: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
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
            let mut msg = format!("xenmq lab: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
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

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn parses_the_documented_options() {
        let c = parse(&s(&[
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
        ]))
        .unwrap();
        assert_eq!(c.dom0, PathBuf::from("a"));
        assert_eq!(c.timeout, Duration::from_secs(7));
        assert_eq!(c.dom0_args, ["x", "y"]);
        assert_eq!(c.domu_args, ["p q"]);
        assert!(parse(&s(&["--dom0", "a"])).is_err());
        assert!(parse(&s(&["--dom0", "a", "--domu", "b", "--timeout", "soon"])).is_err());
        assert!(parse(&s(&["--bogus"])).is_err());
    }
}
