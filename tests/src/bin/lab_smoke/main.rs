//! `xenmq-lab-smoke`: both sides of the lab smoke test in one binary, the
//! role taken from `XENMQ_LAB_ROLE` (set by `xenmq lab run`). The phases run
//! in order on both sides; the exit code is 0 only if every check of every
//! phase passed. Xenstore is reached with `xenmq_runtime::xenstore::Connection` over
//! `xenmq_runtime::linux::Xenbus` (`/dev/xen/xenbus`) on both sides.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use xenmq::xenstore::{Store as _, Tx};
use xenmq_runtime::linux::Xenbus;
use xenmq_runtime::xenstore::Connection;

mod grant;
mod platform;
mod store;

pub type Res<T> = Result<T, String>;

/// `what: error: its source: ...`, the whole chain.
pub fn e<E: std::error::Error>(what: &'static str) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {}", xenmq::error::Chain(&err))
}

/// Reads a node as text.
pub fn xs_read(xs: &Connection, path: &str) -> Res<String> {
    xs.read_string(Tx::NONE, path).map_err(e("xenstore read"))
}

/// Writes a node.
pub fn xs_write(xs: &Connection, path: &str, value: &str) -> Res<()> {
    xs.write(Tx::NONE, path, value.as_bytes())
        .map_err(e("xenstore write"))
}

/// A domid from the environment `xenmq lab run` sets.
pub fn env_u16(name: &str) -> Res<u16> {
    std::env::var(name)
        .map_err(e("environment"))?
        .parse()
        .map_err(e("domid"))
}

/// The phases: name, dom0 side, domU side.
type Phase = (
    &'static str,
    fn(&Connection) -> Res<()>,
    fn(&Connection) -> Res<()>,
);

const PHASES: &[Phase] = &[
    ("xenstore", store::dom0, store::domu),
    ("grant", grant::dom0, grant::domu),
    ("platform", platform::dom0, platform::domu),
];

fn main() -> ExitCode {
    let role = std::env::var("XENMQ_LAB_ROLE").unwrap_or_default();
    let xs = match Xenbus::open().and_then(Xenbus::client) {
        Ok(xs) => xs,
        Err(err) => {
            eprintln!("{role}: FAIL: {}", e("xenstore over /dev/xen/xenbus")(err));
            return ExitCode::FAILURE;
        }
    };
    for (name, dom0, domu) in PHASES {
        println!("== phase {name}");
        let r = match role.as_str() {
            "dom0" => dom0(&xs),
            "domu" => domu(&xs),
            _ => Err(format!(
                "XENMQ_LAB_ROLE is `{role}`, not dom0 or domu (run me with `xenmq lab run`)"
            )),
        };
        if let Err(msg) = r {
            eprintln!("{role}: FAIL in phase {name}: {msg}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
