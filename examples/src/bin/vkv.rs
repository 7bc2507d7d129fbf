//! `vkv` on the simulator: `cargo run -p xenmq-examples --bin vkv [KEYS]`.
//!
//! Both roles pick their platform at run time
//! ([`xenmq_runtime::platform`]): the simulator under the launcher, real
//! Xen in a Xen domain (with the device attached by `xenmq attach`).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use xenmq::xenbus::State;
use xenmq_examples::launch::{self, Result};
use xenmq_examples::vkv::{self, KvBack, KvError, KvFront, Vkv};
use xenmq_runtime::device::{BackDevice, FrontDevice};
use xenmq_runtime::platform::{self, Body, Platform};

fn main() -> ExitCode {
    launch::main("vkv", backend, frontend)
}

fn backend(args: &[String]) -> Result {
    platform::run(Backend(args))?
}

fn frontend(args: &[String]) -> Result {
    platform::run(Frontend(args))?
}

struct Backend<'a>(&'a [String]);

impl Body for Backend<'_> {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        run_backend(p, self.0)
    }
}

struct Frontend<'a>(&'a [String]);

impl Body for Frontend<'_> {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        run_frontend(p, self.0)
    }
}

fn run_backend<P: Platform>(p: &P, args: &[String]) -> Result {
    let fe: u16 = args.first().ok_or("usage: vkv backend FRONTEND-DOMID")?.parse()?;
    let mut back = BackDevice::<Vkv, _, _, _, _>::new(p.env()?, fe, 0, KvBack::default())?;
    let mut was = false;
    while !(back.connects() > 0 && back.state() == State::Closed) {
        back.turn(None)?;
        if back.is_connected() != was {
            was = back.is_connected();
            let keys = back.driver().map.len();
            let what = if was { "connected" } else { "disconnected" };
            println!("[backend dom0] {what}; the store holds {keys} keys");
        }
    }
    Ok(())
}

fn value(i: usize) -> Vec<u8> {
    (0..(i * 37) % 4097).map(|j| (i + j) as u8).collect()
}

fn run_frontend<P: Platform>(p: &P, args: &[String]) -> Result {
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200);
    let me = p.domid();
    let mut front = FrontDevice::<Vkv, _, _, _, _>::new(p.env()?, 0, KvFront::default())?;
    front.connect(Duration::from_secs(10))?;
    let limit = front.driver().max_keys;
    println!("[frontend dom{me}] connected; the backend holds up to {limit} keys");
    let c = front.client();
    for i in 0..n {
        vkv::put(c, format!("key-{i}").as_bytes(), &value(i))?;
    }
    let mut bytes = 0;
    for i in 0..n {
        let v = vkv::get(c, format!("key-{i}").as_bytes())?;
        if v != value(i) {
            return Err(format!("key-{i}: wrong value back").into());
        }
        bytes += v.len();
    }
    println!(
        "[frontend dom{me}] put and got back {n} values, {bytes} bytes through the buffer pool"
    );
    for i in (0..n).step_by(2) {
        vkv::delete(c, format!("key-{i}").as_bytes())?;
    }
    match vkv::get(c, b"key-0") {
        Err(KvError::Refused(-2)) => {
            println!("[frontend dom{me}] deleted every other key; key-0 is gone")
        }
        other => return Err(format!("key-0 after delete: {other:?}").into()),
    }
    front.close(Duration::from_secs(5))?;
    print!("[frontend dom{me}] ");
    launch::wait_for_launcher();
    Ok(())
}
