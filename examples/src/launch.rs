//! One command, two domains: the launcher starts a simulated host (with
//! Xenstore), creates a guest domain and the device between it and dom0,
//! then runs this same program twice more — `backend` as a dom0 process,
//! `frontend` as the guest's process — and relays what they print.
//!
//! When the frontend says it has closed the device, the launcher checks
//! with the host that the guest holds no grant and no port any more, then
//! lets it exit, and stops the backend.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ExitCode, Stdio};
use std::time::Duration;

use xenmq_runtime::sim::{self, Host};
use xenmq_runtime::toolstack::{self, Device};
use xenmq_runtime::xenstore::Connection;

/// What a role's body returns.
pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;

/// The line a frontend prints once it has closed its device; it then
/// waits for its standard input to close before exiting.
pub const CLOSED: &str = "device closed";

/// Sends the tracing events to stderr, filtered by `RUST_LOG`
/// ([`xenmq_runtime::log`]); a `RUST_LOG` that is no filter is an error
/// (exit 2), said on stderr.
pub fn init_log() -> std::result::Result<(), ExitCode> {
    xenmq_runtime::log::init(0).map_err(|e| {
        eprintln!("error: {}", xenmq::error::Chain(&e));
        ExitCode::from(2)
    })
}

/// Runs the role named by the first argument (`backend`, `frontend`), or
/// launches both. Extra arguments go to the frontend.
pub fn main(
    kind: &str,
    backend: fn(&[String]) -> Result,
    frontend: fn(&[String]) -> Result,
) -> ExitCode {
    if let Err(code) = init_log() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    run(kind, &[], &args, backend, frontend)
}

/// As [`main`], for a program that reaches the roles through `prefix`
/// (`xenmq demo` runs `xenmq demo backend`, ...).
pub fn run(
    kind: &str,
    prefix: &[&str],
    args: &[String],
    backend: fn(&[String]) -> Result,
    frontend: fn(&[String]) -> Result,
) -> ExitCode {
    let (role, rest) = match args.split_first() {
        Some((r, rest)) => (r.as_str(), rest),
        None => ("", &[][..]),
    };
    let result = match role {
        "backend" => backend(rest),
        "frontend" => frontend(rest),
        _ => launch(kind, prefix, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let role = if matches!(role, "backend" | "frontend") { role } else { "launcher" };
            eprintln!("error: {kind} {role}: {}", xenmq::error::Chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Waits for the launcher to close our standard input (after it has
/// checked what we hold).
pub fn wait_for_launcher() {
    println!("{CLOSED}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// The host's run directory: fresh, mode 0700, removed when dropped (on
/// an error or a panic too).
fn run_dir(kind: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("xenmq-{kind}-")).tempdir()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn launch(kind: &str, prefix: &[&str], args: &[String]) -> Result {
    let tmp = run_dir(kind)?;
    let dir = tmp.path();
    let host = Host::with_xenstored(dir)?;
    let guest = host.create_domain("guest")?;
    println!("host: simulated Xen host in {}", dir.display());
    println!("host: created domain {guest} (guest); dom0 runs the backend");
    let xs = Connection::connect(&dir.join("socket"))?;
    let dev = Device { device_type: kind.into(), id: 0, frontend: guest, backend: 0 };
    toolstack::attach(&xs, &dev, &[])?;
    println!("host: device {kind}/0: {} <-> {}", dev.frontend_path(), dev.backend_path());
    let exe = std::env::current_exe()?;
    let back = Kill(
        sim::domain_command(dir, 0, &exe)
            .args(prefix)
            .arg("backend")
            .arg(guest.to_string())
            .stdin(Stdio::null())
            .spawn()?,
    );
    let mut front = sim::domain_command(dir, guest, &exe)
        .args(prefix)
        .arg("frontend")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(front.stdout.take().ok_or("no frontend stdout")?);
    let mut line = String::new();
    let mut checked = false;
    while out.read_line(&mut line)? > 0 {
        print!("{line}");
        if line.trim_end().ends_with(CLOSED) {
            let me = host.domains().into_iter().find(|d| d.domid == guest);
            let me = me.ok_or("the guest died before its check")?;
            let (grants, ports) = (me.grants, me.ports);
            println!("host: domain {guest} holds {grants} grants and {ports} ports");
            if grants != 0 || ports != 0 {
                return Err("the frontend leaked grants or ports".into());
            }
            checked = true;
            drop(front.stdin.take());
        }
        line.clear();
    }
    let status = front.wait()?;
    // The backend stops once its frontend has gone. It gets ample time to
    // see that and say so (a loaded machine can be slow); one that does
    // not is a failure, not something to kill quietly.
    let mut back = back;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut back_done = false;
    while !back_done && std::time::Instant::now() < deadline {
        back_done = back.0.try_wait()?.is_some();
        if !back_done {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(back);
    host.destroy_domain(guest)?;
    drop(host);
    drop(tmp);
    if !status.success() {
        return Err(format!("the frontend failed ({status})").into());
    }
    if !checked {
        return Err("the frontend exited without closing its device".into());
    }
    if !back_done {
        return Err("the backend did not stop within 30 s of its frontend".into());
    }
    println!("host: done");
    Ok(())
}
