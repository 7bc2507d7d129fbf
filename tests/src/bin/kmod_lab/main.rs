//! `xenmq-kmod-lab`: dom0's side of the kernel-module lab case (a): attaches
//! device `echo/0` to the domU (`XENMQ_LAB_PEER_DOMID`) and serves it with
//! the echo example's own userspace backend until the frontend — the echo
//! frontend *module* loaded in the domU — has connected and closed the
//! device. Prints `PASS backend-echo` or `FAIL backend-echo: why`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use xenmq_runtime::platform::{self, Body, Platform};
use xenmq_runtime::toolstack::{self, Device};

struct Attach(u16);

impl Body for Attach {
    type Output = Result<(), String>;

    fn run<P: Platform>(self, p: &P) -> Result<(), String> {
        let xs = p.env().map_err(|e| format!("dom0 env: {e}"))?.store;
        let dev = Device {
            device_type: "echo".into(),
            id: 0,
            frontend: self.0,
            backend: p.domid(),
        };
        toolstack::attach(&xs, &dev, &[]).map_err(|e| format!("attach: {e}"))?;
        println!(
            "dom0: attached echo/0: {} <-> {}",
            dev.frontend_path(),
            dev.backend_path()
        );
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let fe: u16 = std::env::var("XENMQ_LAB_PEER_DOMID")
        .map_err(|e| format!("XENMQ_LAB_PEER_DOMID: {e}"))?
        .parse()
        .map_err(|e| format!("XENMQ_LAB_PEER_DOMID: {e}"))?;
    platform::run(Attach(fe)).map_err(|e| format!("no platform: {e}"))??;
    // Returns once its one frontend has connected and closed the device.
    xenmq_examples::demo::backend(&[fe.to_string()]).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => {
            println!("PASS backend-echo");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("FAIL backend-echo: {why}");
            ExitCode::FAILURE
        }
    }
}
