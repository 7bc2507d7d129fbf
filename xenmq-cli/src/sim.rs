//! `xenmq sim`: run the simulated Xen host, and drive it as dom0's toolstack.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use xenmq_runtime::sim::{self, Domain, Faults, Host, StoreHost};
use xenmq_runtime::toolstack::{self, Device, DomainRef};
use xenmq_runtime::xenstore::server::{Limits, Xenstored};
use xenmq_runtime::xenstore::Connection;

use crate::fail::Failure;

const ENV_HELP: &str = "A domain lives from `create` (or `run`) until `destroy` (or `kill`, a \
crash); any number of processes may run as it, at once or one after another. `exec` and `run` \
start a program as a domain: it finds the host through XENMQ_SIM_DIR and XENMQ_SIM_DOMID and \
its Xenstore through XENSTORED_PATH, which they set. See docs/simulator.md.";

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
    /// Create a domain, attach its devices, run CMD as it, then detach
    /// them and destroy it; exit with CMD's status
    Run {
        #[command(flatten)]
        at: RunDir,
        /// The domain's name
        name: String,
        #[command(flatten)]
        faults: FaultArgs,
        /// Attach a device of this type to the new domain before CMD starts
        /// (repeatable; the K-th device of a type gets id K-1)
        #[arg(long = "attach", value_name = "TYPE", value_parser = device_type)]
        attach: Vec<String>,
        /// The backend's domain of the attached devices: its id or name
        #[arg(long, value_name = "DOMAIN", default_value = "0")]
        backend: DomainRef,
        /// The program and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Run CMD as an existing domain (0 is dom0); exit with CMD's status
    Exec {
        #[command(flatten)]
        at: RunDir,
        /// The domain: its id, or its name
        domain: DomainRef,
        /// The program and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Destroy a domain (kills its processes)
    Destroy {
        #[command(flatten)]
        at: RunDir,
        /// The domain's id
        domid: u16,
    },
    /// Crash a domain: SIGKILL its processes and destroy it
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
    /// The first process running as the domain, if any.
    pid: Option<u32>,
    /// How many processes run as the domain.
    processes: u32,
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
            attach,
            backend,
            command,
        } => {
            let (prog, args) = split_command(&["sim", "run"], &command)?;
            let d = dom0(&at.run_dir)?;
            let id = d.create_domain(&name).map_err(Failure::run)?;
            let devices = match setup(&d, &at.run_dir, id, &faults, &attach, &backend) {
                Ok(devices) => devices,
                Err(e) => {
                    let _ = d.destroy_domain(id);
                    return Err(e);
                }
            };
            let status = sim::domain_command(&at.run_dir, id, prog)
                .args(args)
                .status();
            teardown(&d, &at.run_dir, id, &devices);
            let status = status.map_err(|e| {
                Failure::run(format!("cannot run `{}`: {e}", prog.to_string_lossy()))
            })?;
            return Ok(exit_code(status));
        }
        Cmd::Exec {
            at,
            domain,
            command,
        } => {
            let (prog, args) = split_command(&["sim", "exec"], &command)?;
            let d = dom0(&at.run_dir)?;
            let id = resolve(&d, &domain)?;
            drop(d);
            // Become the program: signals, the terminal and the exit
            // status are its own.
            use std::os::unix::process::CommandExt;
            let e = sim::domain_command(&at.run_dir, id, prog).args(args).exec();
            return Err(Failure::run(format!(
                "cannot run `{}`: {e}",
                prog.to_string_lossy()
            )));
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
                    processes: d.processes,
                    grants: d.grants,
                    maps: d.maps,
                    ports: d.ports,
                })
                .collect();
            crate::device::print_json(&ListJson { domains })?;
        }
        Cmd::List { at, json: false } => {
            println!(
                "{:>5}  {:<16} {:>7} {:>5}  {:>6} {:>5} {:>5}",
                "domid", "name", "pid", "procs", "grants", "maps", "ports"
            );
            for d in dom0(&at.run_dir)?.domains().map_err(Failure::run)? {
                let pid = d.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                println!(
                    "{:>5}  {:<16} {:>7} {:>5}  {:>6} {:>5} {:>5}",
                    d.domid, d.name, pid, d.processes, d.grants, d.maps, d.ports
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A device type that the toolstack accepts.
fn device_type(s: &str) -> Result<String, toolstack::Error> {
    let dev = Device {
        device_type: s.to_owned(),
        id: 0,
        frontend: 0,
        backend: 0,
    };
    dev.validate()?;
    Ok(dev.device_type)
}

fn split_command<'a>(
    verb: &[&'static str],
    command: &'a [OsString],
) -> Result<(&'a OsString, &'a [OsString]), Failure> {
    command
        .split_first()
        .ok_or_else(|| Failure::usage(verb, "a command after `--` is needed"))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::from(1),
    }
}

/// The id of a domain named by id or name, checked against the host's list.
fn resolve(d: &Domain, domain: &DomainRef) -> Result<u16, Failure> {
    let list = d.domains().map_err(Failure::run)?;
    let found: Vec<u16> = list
        .iter()
        .filter(|x| match domain {
            DomainRef::Id(id) => x.domid == *id,
            DomainRef::Name(name) => x.name == *name,
        })
        .map(|x| x.domid)
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Failure::run(format!("no domain {domain} on this host"))),
        _ => Err(Failure::run(format!(
            "{} domains are {domain}: name one by its id",
            found.len()
        ))),
    }
}

/// `run`'s preparation of domain `id`: its fault plan and its devices,
/// attached through dom0's Xenstore as `xenmq attach` does. Returns the
/// devices.
fn setup(
    d: &Domain,
    dir: &std::path::Path,
    id: u16,
    faults: &FaultArgs,
    types: &[String],
    backend: &DomainRef,
) -> Result<Vec<Device>, Failure> {
    if faults.given() {
        d.set_faults(id, &faults.faults()).map_err(Failure::run)?;
    }
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let backend = resolve(d, backend)?;
    let xs = Connection::connect(&dir.join("socket")).map_err(|e| {
        Failure::run(format!(
            "cannot reach the host's Xenstore at {}: {e}",
            dir.join("socket").display()
        ))
    })?;
    let mut devices: Vec<Device> = Vec::new();
    for ty in types {
        let n = devices.iter().filter(|x| x.device_type == *ty).count();
        let dev = Device {
            device_type: ty.clone(),
            id: u32::try_from(n).unwrap_or(u32::MAX),
            frontend: id,
            backend,
        };
        if let Err(e) = toolstack::attach(&xs, &dev, &[]) {
            for done in &devices {
                let _ = toolstack::detach(&xs, done, std::time::Duration::ZERO, true);
            }
            return Err(Failure::run(e));
        }
        eprintln!(
            "xenmq sim run: attached {}/{}: {} <-> {}",
            dev.device_type,
            dev.id,
            dev.frontend_path(),
            dev.backend_path()
        );
        devices.push(dev);
    }
    Ok(devices)
}

/// After `run`'s command: its devices removed (as `xl destroy` does, without
/// waiting for the backend) and the domain destroyed.
fn teardown(d: &Domain, dir: &std::path::Path, id: u16, devices: &[Device]) {
    if !devices.is_empty() {
        if let Ok(xs) = Connection::connect(&dir.join("socket")) {
            for dev in devices {
                if let Err(e) = toolstack::detach(&xs, dev, std::time::Duration::ZERO, true) {
                    eprintln!("xenmq sim run: {}", xenmq::error::Chain(&e));
                }
            }
        }
    }
    // The domain may already be gone (destroyed by someone else).
    let _ = d.destroy_domain(id);
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
