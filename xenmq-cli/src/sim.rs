//! `xenmq sim`: run the simulated Xen host, and drive it as dom0's toolstack.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use xenmq_runtime::sim::{self, Domain, Faults, Host, StoreHost};
use xenmq_runtime::xenstore::server::{Limits, Xenstored};

pub const USAGE: &str = "usage:
  xenmq sim --run-dir DIR                 run the host until SIGINT/SIGTERM
  xenmq sim create --run-dir DIR NAME [FAULTS]
                                          create a domain, print its id
  xenmq sim run --run-dir DIR NAME [FAULTS] -- CMD [ARGS...]
                                          create a domain, run CMD as it, destroy it
  xenmq sim destroy --run-dir DIR DOMID   destroy a domain (kills its process)
  xenmq sim kill --run-dir DIR DOMID      SIGKILL a domain's process
  xenmq sim faults --run-dir DIR DOMID [FAULTS]
                                          set a domain's fault plan
  xenmq sim poke --run-dir DIR DOMID GREF OFFSET HEX
                                          write bytes into a granted page
  xenmq sim corrupt --run-dir DIR DOMID GREF SEED OFFSET[,OFFSET...]
                                          write seeded random u32s into a granted page
  xenmq sim list --run-dir DIR            list domains

FAULTS: --seed N --drop PERMILLE --duplicate PERMILLE --delay PERMILLE
        --delay-ms MS --kill-at REQUEST
A domain process finds the host through XENMQ_SIM_DIR and XENMQ_SIM_DOMID
(set by `run`), its Xenstore through XENSTORED_PATH.";

/// The Xenstore server the host runs: the simulator's own, with C
/// xenstored's default quotas.
fn store() -> Arc<dyn StoreHost> {
    Arc::new(Xenstored::new(Limits::default()))
}

struct Args {
    dir: Option<PathBuf>,
    faults: Faults,
    faults_given: bool,
    rest: Vec<String>,
    command: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        dir: None,
        faults: Faults::default(),
        faults_given: false,
        rest: Vec::new(),
        command: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: `{v}` is not a number"))
        };
        let permille = |name: &str, v: u64| -> Result<u16, String> {
            u16::try_from(v)
                .ok()
                .filter(|&p| p <= 1000)
                .ok_or_else(|| format!("{name}: {v} is not a per-mille rate (0..=1000)"))
        };
        match a.as_str() {
            "--run-dir" => out.dir = Some(PathBuf::from(value(a)?)),
            "--seed" => {
                out.faults.seed = num(a, value(a)?)?;
                out.faults_given = true;
            }
            "--drop" => {
                out.faults.drop = permille(a, num(a, value(a)?)?)?;
                out.faults_given = true;
            }
            "--duplicate" => {
                out.faults.duplicate = permille(a, num(a, value(a)?)?)?;
                out.faults_given = true;
            }
            "--delay" => {
                out.faults.delay = permille(a, num(a, value(a)?)?)?;
                out.faults_given = true;
            }
            "--delay-ms" => {
                let v = num(a, value(a)?)?;
                out.faults.delay_ms =
                    u32::try_from(v).map_err(|_| format!("{a}: {v} is too large"))?;
                out.faults_given = true;
            }
            "--kill-at" => {
                out.faults.kill_at = Some(num(a, value(a)?)?).filter(|&k| k > 0);
                out.faults_given = true;
            }
            "--" => {
                out.command = it.cloned().collect();
                break;
            }
            s if s.starts_with("--") => return Err(format!("unknown option `{s}`")),
            _ => out.rest.push(a.clone()),
        }
    }
    Ok(out)
}

fn domid(s: Option<&String>) -> Result<u16, String> {
    let s = s.ok_or("a domain id is needed")?;
    s.parse().map_err(|_| format!("`{s}` is not a domain id"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("xenmq sim: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    if matches!(
        args.first().map(String::as_str),
        Some("help" | "-h" | "--help")
    ) {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let (cmd, rest) = match args.first().map(String::as_str) {
        Some(c) if !c.starts_with('-') => (Some(c), args.get(1..).unwrap_or(&[])),
        _ => (None, args),
    };
    let a = parse(rest)?;
    let dir = a.dir.clone().ok_or("--run-dir DIR is required")?;
    let fail = |e: sim::Error| error_chain(&e);
    let dom0 = || Domain::connect(&dir, 0).map_err(fail);
    match cmd {
        None => serve(dir),
        Some("create") => {
            let name = a.rest.first().ok_or("a domain name is needed")?;
            let d = dom0()?;
            let id = d.create_domain(name).map_err(fail)?;
            if a.faults_given {
                d.set_faults(id, &a.faults).map_err(fail)?;
            }
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Some("run") => {
            let name = a.rest.first().ok_or("a domain name is needed")?;
            let prog = a.command.first().ok_or("a command after `--` is needed")?;
            let d = dom0()?;
            let id = d.create_domain(name).map_err(fail)?;
            if a.faults_given {
                d.set_faults(id, &a.faults).map_err(fail)?;
            }
            let status = sim::domain_command(&dir, id, prog)
                .args(a.command.get(1..).unwrap_or(&[]))
                .status();
            // The domain may already be gone (its process exited).
            let _ = d.destroy_domain(id);
            let status = status.map_err(|e| format!("cannot run `{prog}`: {e}"))?;
            Ok(match status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                None => ExitCode::from(1),
            })
        }
        Some("destroy") => {
            dom0()?
                .destroy_domain(domid(a.rest.first())?)
                .map_err(fail)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("kill") => {
            dom0()?.kill_domain(domid(a.rest.first())?).map_err(fail)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("faults") => {
            dom0()?
                .set_faults(domid(a.rest.first())?, &a.faults)
                .map_err(fail)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("poke") => {
            let id = domid(a.rest.first())?;
            let num = |i: usize, what: &str| -> Result<u32, String> {
                let s = a.rest.get(i).ok_or_else(|| format!("{what} is needed"))?;
                s.parse()
                    .map_err(|_| format!("{what}: `{s}` is not a number"))
            };
            let gref = num(1, "GREF")?;
            let offset = num(2, "OFFSET")?;
            let hex = a.rest.get(3).ok_or("HEX bytes are needed")?;
            let bytes = parse_hex(hex).ok_or_else(|| format!("`{hex}` is not hex bytes"))?;
            dom0()?.poke(id, gref, offset, &bytes).map_err(fail)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("corrupt") => {
            let id = domid(a.rest.first())?;
            let field = |i: usize, what: &str| -> Result<&String, String> {
                a.rest.get(i).ok_or_else(|| format!("{what} is needed"))
            };
            let gref = field(1, "GREF")?;
            let gref: u32 = gref
                .parse()
                .map_err(|_| format!("GREF: `{gref}` is not a number"))?;
            let seed = field(2, "SEED")?;
            let seed: u64 = seed
                .parse()
                .map_err(|_| format!("SEED: `{seed}` is not a number"))?;
            let offsets = field(3, "OFFSETS")?
                .split(',')
                .map(|o| {
                    o.parse::<u32>()
                        .map_err(|_| format!("OFFSET: `{o}` is not a number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (off, val) in dom0()?.corrupt(id, gref, seed, &offsets).map_err(fail)? {
                println!("{off} {val:#010x}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("list") => {
            println!(
                "{:>5}  {:<16} {:>7}  {:>6} {:>5} {:>5}",
                "domid", "name", "pid", "grants", "maps", "ports"
            );
            for d in dom0()?.domains().map_err(fail)? {
                let pid = d.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                println!(
                    "{:>5}  {:<16} {:>7}  {:>6} {:>5} {:>5}",
                    d.domid, d.name, pid, d.grants, d.maps, d.ports
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(format!("unknown sim command `{other}`")),
    }
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

fn serve(dir: PathBuf) -> Result<ExitCode, String> {
    // Block the signals before any thread starts, so they all inherit the
    // mask and the signals wait for `wait_termination` below.
    sim::block_termination().map_err(|e| format!("cannot block signals: {e}"))?;
    let host = Host::with_store(&dir, store()).map_err(|e| error_chain(&e))?;
    println!(
        "xenmq sim: ready, run dir {}, xenstore at {}",
        dir.display(),
        dir.join("socket").display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let sig = sim::wait_termination().map_err(|e| format!("waiting for signals: {e}"))?;
    drop(host);
    eprintln!("xenmq sim: stopped by signal {sig}");
    Ok(ExitCode::SUCCESS)
}
