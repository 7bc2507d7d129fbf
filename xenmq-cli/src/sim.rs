//! `xenmq sim`: run the simulated Xen host, and drive it as dom0's toolstack.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use xenmq_runtime::sim::{self, Domain, Faults, Host, StoreHost};
use xenmq_runtime::xenstore::server::{Limits, Xenstored};

use crate::fail::Failure;

const ENV_HELP: &str = "A domain process finds the host through XENMQ_SIM_DIR and XENMQ_SIM_DOMID \
(set by `xenmq sim run`), its Xenstore through XENSTORED_PATH.";

/// `xenmq sim`'s arguments: the host itself, or one of its commands.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = ENV_HELP
)]
pub struct Args {
    /// The host's run directory: its control socket, its Xenstore's socket
    /// and one directory per domain. Without a command, runs the host
    /// until SIGINT or SIGTERM
    #[arg(long, value_name = "DIR", required = true)]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The run directory of a running host.
#[derive(Debug, clap::Args)]
struct RunDir {
    /// The run directory of the `xenmq sim` host
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
}

/// A domain's fault plan.
#[derive(Debug, clap::Args)]
struct FaultArgs {
    /// Seed of every random decision of the plan
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Notifications silently lost, per 1000
    #[arg(long, value_name = "PERMILLE", value_parser = permille)]
    drop: Option<u16>,
    /// Notifications delivered twice, per 1000
    #[arg(long, value_name = "PERMILLE", value_parser = permille)]
    duplicate: Option<u16>,
    /// Notifications delivered late (after --delay-ms), per 1000
    #[arg(long, value_name = "PERMILLE", value_parser = permille)]
    delay: Option<u16>,
    /// How late a delayed notification arrives, in ms
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u32>,
    /// Kill the domain at its N-th request to the host (0: never)
    #[arg(long, value_name = "REQUEST")]
    kill_at: Option<u64>,
}

impl FaultArgs {
    fn given(&self) -> bool {
        self.seed.is_some()
            || self.drop.is_some()
            || self.duplicate.is_some()
            || self.delay.is_some()
            || self.delay_ms.is_some()
            || self.kill_at.is_some()
    }

    fn faults(&self) -> Faults {
        let d = Faults::default();
        Faults {
            seed: self.seed.unwrap_or(d.seed),
            drop: self.drop.unwrap_or(d.drop),
            duplicate: self.duplicate.unwrap_or(d.duplicate),
            delay: self.delay.unwrap_or(d.delay),
            delay_ms: self.delay_ms.unwrap_or(d.delay_ms),
            kill_at: self.kill_at.filter(|&k| k > 0),
        }
    }
}

fn permille(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p <= 1000)
        .ok_or_else(|| format!("`{s}` is not a per-mille rate (0 to 1000)"))
}

/// Bytes written as hex digits, two per byte (`0x` allowed in front).
#[derive(Debug, Clone)]
struct Hex(Vec<u8>);

fn hex(s: &str) -> Result<Hex, String> {
    parse_hex(s)
        .map(Hex)
        .ok_or_else(|| format!("`{s}` is not hex bytes (two hex digits per byte)"))
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Create a domain; print its id
    Create {
        #[command(flatten)]
        at: RunDir,
        /// The domain's name
        name: String,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Create a domain, run CMD as it, destroy it; exit with CMD's status
    Run {
        #[command(flatten)]
        at: RunDir,
        /// The domain's name
        name: String,
        #[command(flatten)]
        faults: FaultArgs,
        /// The program and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Destroy a domain (kills its process)
    Destroy {
        #[command(flatten)]
        at: RunDir,
        /// The domain's id
        domid: u16,
    },
    /// SIGKILL a domain's process
    Kill {
        #[command(flatten)]
        at: RunDir,
        /// The domain's id
        domid: u16,
    },
    /// Set a domain's fault plan (unset rates are 0)
    Faults {
        #[command(flatten)]
        at: RunDir,
        /// The domain's id
        domid: u16,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Write bytes into a page a domain granted
    Poke {
        #[command(flatten)]
        at: RunDir,
        /// The granting domain's id
        domid: u16,
        /// The grant reference
        gref: u32,
        /// Where in the page
        offset: u32,
        /// The bytes, in hex (`6869` writes "hi")
        #[arg(value_parser = hex)]
        hex: Hex,
    },
    /// Write seeded random u32s into a granted page; print them
    Corrupt {
        #[command(flatten)]
        at: RunDir,
        /// The granting domain's id
        domid: u16,
        /// The grant reference
        gref: u32,
        /// The seed of the values
        seed: u64,
        /// Where in the page, comma-separated
        #[arg(value_name = "OFFSET,...", value_delimiter = ',', required = true)]
        offsets: Vec<u32>,
    },
    /// List the domains
    List {
        #[command(flatten)]
        at: RunDir,
        /// Print one JSON document (errors too: `{"error": "..."}`)
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    /// Whether the command prints JSON (and so fails in JSON).
    pub fn json(&self) -> bool {
        matches!(self.command, Some(Cmd::List { json: true, .. }))
    }
}

/// `xenmq sim list --json`'s document.
#[derive(Debug, serde::Serialize)]
struct ListJson {
    domains: Vec<DomainJson>,
}

/// One domain of the simulated host.
#[derive(Debug, serde::Serialize)]
struct DomainJson {
    domid: u16,
    name: String,
    /// The process running as the domain, if any.
    pid: Option<u32>,
    /// Grants it holds, pages it maps, event channel ports it has bound.
    grants: u32,
    maps: u32,
    ports: u32,
}

/// The Xenstore server the host runs: the simulator's own, with C
/// xenstored's default quotas.
fn store() -> Arc<dyn StoreHost> {
    Arc::new(Xenstored::new(Limits::default()))
}

/// `xenmq sim`.
pub fn main(a: Args) -> Result<ExitCode, Failure> {
    let Some(command) = a.command else {
        // clap requires --run-dir when no command is given.
        let dir = a
            .run_dir
            .ok_or_else(|| Failure::usage(&["sim"], "--run-dir DIR is required"))?;
        return serve(dir);
    };
    let dom0 = |dir: &PathBuf| Domain::connect(dir, 0).map_err(Failure::run);
    match command {
        Cmd::Create { at, name, faults } => {
            let d = dom0(&at.run_dir)?;
            let id = d.create_domain(&name).map_err(Failure::run)?;
            if faults.given() {
                d.set_faults(id, &faults.faults()).map_err(Failure::run)?;
            }
            println!("{id}");
        }
        Cmd::Run {
            at,
            name,
            faults,
            command,
        } => {
            let (prog, args) = command
                .split_first()
                .ok_or_else(|| Failure::usage(&["sim", "run"], "a command after `--` is needed"))?;
            let d = dom0(&at.run_dir)?;
            let id = d.create_domain(&name).map_err(Failure::run)?;
            if faults.given() {
                d.set_faults(id, &faults.faults()).map_err(Failure::run)?;
            }
            let status = sim::domain_command(&at.run_dir, id, prog)
                .args(args)
                .status();
            // The domain may already be gone (its process exited).
            let _ = d.destroy_domain(id);
            let status = status.map_err(|e| {
                Failure::run(format!("cannot run `{}`: {e}", prog.to_string_lossy()))
            })?;
            return Ok(match status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                None => ExitCode::from(1),
            });
        }
        Cmd::Destroy { at, domid } => {
            dom0(&at.run_dir)?
                .destroy_domain(domid)
                .map_err(Failure::run)?;
        }
        Cmd::Kill { at, domid } => {
            dom0(&at.run_dir)?
                .kill_domain(domid)
                .map_err(Failure::run)?;
        }
        Cmd::Faults { at, domid, faults } => {
            dom0(&at.run_dir)?
                .set_faults(domid, &faults.faults())
                .map_err(Failure::run)?;
        }
        Cmd::Poke {
            at,
            domid,
            gref,
            offset,
            hex,
        } => {
            dom0(&at.run_dir)?
                .poke(domid, gref, offset, &hex.0)
                .map_err(Failure::run)?;
        }
        Cmd::Corrupt {
            at,
            domid,
            gref,
            seed,
            offsets,
        } => {
            let written = dom0(&at.run_dir)?
                .corrupt(domid, gref, seed, &offsets)
                .map_err(Failure::run)?;
            for (off, val) in written {
                println!("{off} {val:#010x}");
            }
        }
        Cmd::List { at, json: true } => {
            let domains = dom0(&at.run_dir)?
                .domains()
                .map_err(Failure::run)?
                .into_iter()
                .map(|d| DomainJson {
                    domid: d.domid,
                    name: d.name,
                    pid: d.pid,
                    grants: d.grants,
                    maps: d.maps,
                    ports: d.ports,
                })
                .collect();
            crate::device::print_json(&ListJson { domains })?;
        }
        Cmd::List { at, json: false } => {
            println!(
                "{:>5}  {:<16} {:>7}  {:>6} {:>5} {:>5}",
                "domid", "name", "pid", "grants", "maps", "ports"
            );
            for d in dom0(&at.run_dir)?.domains().map_err(Failure::run)? {
                let pid = d.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                println!(
                    "{:>5}  {:<16} {:>7}  {:>6} {:>5} {:>5}",
                    d.domid, d.name, pid, d.grants, d.maps, d.ports
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() & 1 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn serve(dir: PathBuf) -> Result<ExitCode, Failure> {
    // Block the signals before any thread starts, so they all inherit the
    // mask and the signals wait for `wait_termination` below.
    sim::block_termination().map_err(|e| Failure::run(format!("cannot block signals: {e}")))?;
    let host = Host::with_store(&dir, store()).map_err(Failure::run)?;
    println!(
        "xenmq sim: ready, run dir {}, xenstore at {}",
        dir.display(),
        dir.join("socket").display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let sig =
        sim::wait_termination().map_err(|e| Failure::run(format!("waiting for signals: {e}")))?;
    drop(host);
    eprintln!("xenmq sim: stopped by signal {sig}");
    Ok(ExitCode::SUCCESS)
}
