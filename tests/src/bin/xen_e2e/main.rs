//! `xenmq-xen-e2e`: the example drivers between dom0 and a domU, both
//! sides in one binary, the role taken from `XENMQ_LAB_ROLE` (set by
//! `xenmq lab run`). The platform is chosen at run time
//! (`xenmq_runtime::platform`), so the drivers' code here is the same as on
//! the simulator.
//!
//! dom0 attaches the devices with `toolstack::attach` (xl knows nothing of
//! our device types) and serves them until the domU writes
//! `data/xen-e2e/done`: vkv and the disk with a `Back` in a thread each,
//! echo/1..4 (the killed, hostile and bystander frontends) all from one
//! thread with `device::Backends`, sleeping on their event channels at once. The domU runs the scenarios in
//! order, each printing `PASS name` or `FAIL name: why`:
//!
//! - `echo`: round trips, every payload checked, against the echo
//!   example's own backend role (`xenmq_examples::demo::backend`);
//! - `vkv`: put, get, delete, values through the granted buffer pool;
//! - `blk`: a disk backed by a file in dom0, written and read back;
//! - `kill`: a child frontend SIGKILLed mid-stream; a new frontend then
//!   connects to the same device and works;
//! - `hostile`, `hostile-handshake`, `storm`, `dead-frontend`, `soak`:
//!   hostile frontends and dom0's recovery from them (`hostile.rs`), the
//!   figures printed as `FIGURE name: ...`.
//!
//! dom0 prints `PASS backend-NAME` for each backend that served and ended
//! without an error, and `PASS grants-released` once it holds no grant
//! mapping any more after the domU is done.
#![forbid(unsafe_code)]

mod back;
mod badback;
mod front;
mod hostile;

use std::process::ExitCode;

use xenmq_runtime::platform::{self, Body, Platform};

pub type Res<T> = Result<T, String>;

/// `what: error: its source: ...`, the whole chain.
pub fn e<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {}", xenmq::error::Chain(&err))
}

/// A domid from the environment `xenmq lab run` sets.
pub fn env_u16(name: &str) -> Res<u16> {
    std::env::var(name)
        .map_err(e("environment"))?
        .parse()
        .map_err(e("domid"))
}

/// Prints the verdict of one scenario; true if it passed.
pub fn verdict(name: &str, r: Res<()>) -> bool {
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

struct Main {
    role: String,
    args: Vec<String>,
}

impl Body for Main {
    type Output = bool;

    fn run<P: Platform>(self, p: &P) -> bool {
        println!(
            "{}: dom{} on the {} platform",
            self.role,
            p.domid(),
            P::NAME
        );
        match (self.role.as_str(), self.args.first().map(String::as_str)) {
            (_, Some("echo-child")) => front::echo_child(p),
            ("dom0", _) => back::dom0(p),
            ("domu", _) => front::domu(p),
            (role, _) => verdict(
                "role",
                Err(format!(
                    "XENMQ_LAB_ROLE is `{role}`, not dom0 or domu (run me with `xenmq lab run`)"
                )),
            ),
        }
    }
}

fn main() -> ExitCode {
    let role = std::env::var("XENMQ_LAB_ROLE").unwrap_or_default();
    let args = std::env::args().skip(1).collect();
    match platform::run(Main { role, args }) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            verdict("platform", Err(e("no platform")(err)));
            ExitCode::FAILURE
        }
    }
}
