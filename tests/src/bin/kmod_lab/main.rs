//! `xenmq-kmod-lab`: the programs of the kernel-module lab cases, the role
//! taken from `XENMQ_LAB_ROLE` (set by `xenmq lab run`) and the case from
//! the arguments. Each prints `PASS name` or `FAIL name: why`.
//!
//! - case (a), dom0, no arguments: attaches device `echo/0` to the domU
//!   and serves it with the echo example's userspace backend until the
//!   frontend — the echo frontend *module* in the domU — has connected and
//!   closed the device (`backend-echo`).
//! - case (b), dom0, `module-backend KO`: loads the echo backend module
//!   `KO`, attaches `echo/0`, waits until the domU's userspace frontend has
//!   connected and closed the device, unloads the module
//!   (`module-backend`), and checks the kernel log (`dom0-log`).
//! - case (b), domU, `frontend`: the echo example's userspace frontend:
//!   64 round trips, every payload checked, then close (`frontend-echo`).
#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use xenmq::xenstore::{Store, Tx};
use xenmq_examples::echo::{self, Echo, EchoFront};
use xenmq_runtime::device::FrontDevice;
use xenmq_runtime::platform::{self, Body, Platform};
use xenmq_runtime::toolstack::{self, Device};

type Res<T> = Result<T, String>;

fn verdict(name: &str, r: Res<()>) -> bool {
    match r {
        Ok(()) => {
            println!("PASS {name}");
            true
        }
        Err(why) => {
            println!("FAIL {name}: {why}");
            false
        }
    }
}

fn peer() -> Res<u16> {
    std::env::var("XENMQ_LAB_PEER_DOMID")
        .map_err(|e| format!("XENMQ_LAB_PEER_DOMID: {e}"))?
        .parse()
        .map_err(|e| format!("XENMQ_LAB_PEER_DOMID: {e}"))
}

/// Runs a shell command (busybox); its output on success.
fn sh(cmd: &str) -> Res<String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("{cmd}: {} {}", out.status, text.trim()));
    }
    Ok(text)
}

enum Case {
    /// (a): attach, then the userspace echo backend.
    UserBackend,
    /// (b): the backend module, attach, wait for the frontend to finish.
    ModuleBackend(String),
    /// (b): the userspace frontend in the domU.
    Frontend,
}

impl Body for Case {
    type Output = bool;

    fn run<P: Platform>(self, p: &P) -> bool {
        match self {
            Case::UserBackend => {
                let r = attach(p).and_then(|fe| {
                    // Returns once its one frontend has connected and
                    // closed the device.
                    xenmq_examples::demo::backend(&[fe.to_string()]).map_err(|e| e.to_string())
                });
                verdict("backend-echo", r)
            }
            Case::ModuleBackend(ko) => module_backend(p, &ko),
            Case::Frontend => verdict("frontend-echo", frontend(p)),
        }
    }
}

/// Attaches `echo/0` of the domU to this domain; the domU's id.
fn attach<P: Platform>(p: &P) -> Res<u16> {
    let fe = peer()?;
    let xs = p.env().map_err(|e| format!("dom0 env: {e}"))?.store;
    let dev = Device {
        device_type: "echo".into(),
        id: 0,
        frontend: fe,
        backend: p.domid(),
    };
    toolstack::attach(&xs, &dev, &[]).map_err(|e| format!("attach: {e}"))?;
    println!(
        "dom0: attached echo/0: {} <-> {}",
        dev.frontend_path(),
        dev.backend_path()
    );
    Ok(fe)
}

fn module_backend<P: Platform>(p: &P, ko: &str) -> bool {
    let module = ko
        .trim_end_matches(".ko")
        .rsplit('/')
        .next()
        .unwrap_or(ko)
        .to_owned();
    let served = (|| -> Res<()> {
        sh(&format!("insmod {ko}"))?;
        let fe = attach(p)?;
        let xs = p.env().map_err(|e| format!("dom0 env: {e}"))?.store;
        let be_state = format!("/local/domain/{}/backend/echo/{fe}/0/state", p.domid());
        let fe_state = format!("/local/domain/{fe}/device/echo/0/state");
        let read = |path: &str| xs.read_string(Tx::NONE, path).unwrap_or_default();
        let start = Instant::now();
        let mut connected = false;
        loop {
            let (b, f) = (read(&be_state), read(&fe_state));
            connected |= b == "4";
            if connected && (f == "6" || f.is_empty()) {
                println!("dom0: the frontend closed the device (backend state {b})");
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(150) {
                return Err(format!(
                    "no connect-and-close in 150 s: backend state {b:?}, frontend {f:?}, connected {connected}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    let mut ok = verdict("module-backend", served);
    // xenbus holds a module reference per bound device (as for Linux's own
    // backends): unbind the device, then unload.
    let unbind = "D=/sys/bus/xen-backend/drivers/echo; for d in $D/echo-*; do \
                  [ -e \"$d\" ] && echo \"${d##*/}\" > $D/unbind; done; true";
    ok &= verdict(
        "rmmod",
        sh(unbind)
            .and_then(|_| sh(&format!("rmmod {module}")))
            .map(drop),
    );
    let log = sh("dmesg").unwrap_or_default();
    for line in log.lines().filter(|l| l.contains(module.as_str())) {
        println!("dom0 kernel: {line}");
    }
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["Oops", "BUG:", "WARNING:", "Call Trace", "Kernel panic"]
                .iter()
                .any(|b| l.contains(b))
        })
        .collect();
    ok &= verdict(
        "dom0-log",
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join(" | "))
        },
    );
    ok
}

fn frontend<P: Platform>(p: &P) -> Res<()> {
    let env = p.env().map_err(|e| format!("env: {e}"))?;
    let mut front = FrontDevice::<Echo, _, _, _, _>::new(env, 0, EchoFront)
        .map_err(|e| format!("front: {e}"))?;
    front
        .connect(Duration::from_secs(60))
        .map_err(|e| format!("connect: {e}"))?;
    let n = echo::ping(front.client(), 64, 4).map_err(|e| format!("ping: {e}"))?;
    println!("domU: {n} round trips through the backend module");
    front
        .close(Duration::from_secs(10))
        .map_err(|e| format!("close: {e}"))?;
    if n != 64 {
        return Err(format!("{n} round trips, want 64"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let role = std::env::var("XENMQ_LAB_ROLE").unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = match (role.as_str(), args.first().map(String::as_str)) {
        ("dom0", None) => Case::UserBackend,
        ("dom0", Some("module-backend")) => match args.get(1) {
            Some(ko) => Case::ModuleBackend(ko.clone()),
            None => return fail("module-backend needs the module's path"),
        },
        ("domu", Some("frontend")) => Case::Frontend,
        _ => {
            return fail(&format!(
                "role {role:?} with arguments {args:?}: no such case"
            ))
        }
    };
    match platform::run(case) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => fail(&format!("no platform: {err}")),
    }
}

fn fail(why: &str) -> ExitCode {
    verdict("setup", Err(why.to_owned()));
    ExitCode::FAILURE
}
