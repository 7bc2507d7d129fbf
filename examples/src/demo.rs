//! The `echo` demo's two processes: what `cargo run -p xenmq-examples --bin
//! echo` and `xenmq demo` run in dom0 and in the guest.
//!
//! Both roles pick their platform at run time
//! ([`xenmq_runtime::platform`]): on the simulator under the launcher, on
//! real Xen when run in a Xen domain (with the device attached by
//! `xenmq attach`), the same binary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::echo::{self, Echo, EchoBack, EchoFront, Ping};
use crate::launch::{self, Result};
use xenmq::xenbus::State;
use xenmq_runtime::device::{BackDevice, FrontDevice};
use xenmq_runtime::platform::{self, Body, Platform};

/// How many pings the frontend sends when not told.
pub const DEFAULT_COUNT: u32 = 10_000;

/// `xenmq demo [COUNT]`: starts a simulated host, runs the echo backend in
/// dom0 and the echo frontend in a guest, as processes re-running the
/// current program with `prefix` and a role. A COUNT that is not a number
/// of pings is refused before anything starts (exit code 2).
pub fn demo(prefix: &[&str], args: &[String]) -> ExitCode {
    let launching = !matches!(args.first().map(String::as_str), Some("backend" | "frontend"));
    if launching {
        if let Err(e) = count(args) {
            eprintln!("error: {e}\n\nUsage: echo [COUNT]");
            return ExitCode::from(2);
        }
    }
    launch::run("echo", prefix, args, backend, frontend)
}

/// The frontend's COUNT: the first argument, a number of pings (1 or
/// more), or [`DEFAULT_COUNT`]; nothing may follow it.
pub fn count(args: &[String]) -> std::result::Result<u32, String> {
    match args {
        [] => Ok(DEFAULT_COUNT),
        [n] => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("COUNT `{n}` is not a number of pings (1 or more)")),
        [_, extra, ..] => Err(format!("unexpected argument `{extra}` after COUNT")),
    }
}

/// The backend, as a dom0 process: `backend FRONTEND-DOMID`.
pub fn backend(args: &[String]) -> Result {
    platform::run(Backend(args))?
}

/// The frontend, as the guest's process: `frontend [COUNT]`.
pub fn frontend(args: &[String]) -> Result {
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

/// The echo backend on platform `p`.
fn run_backend<P: Platform>(p: &P, args: &[String]) -> Result {
    let env = p.env()?;
    let fe: u16 = args.first().ok_or("usage: echo backend FRONTEND-DOMID")?.parse()?;
    let mut back = BackDevice::<Echo, _, _, _, _>::new(env, fe, 0, EchoBack::default())?;
    println!("[backend dom0] waiting for the frontend");
    let mut was = false;
    // One frontend is the whole demo: serve it until the device is closed.
    while !(back.connects() > 0 && back.state() == State::Closed) {
        back.turn(None)?;
        if back.is_connected() != was {
            was = back.is_connected();
            println!("[backend dom0] {}", if was { "connected" } else { "disconnected" });
        }
    }
    println!("[backend dom0] device closed; answered {} pings", back.driver().pings);
    Ok(())
}

/// The echo frontend on platform `p`.
fn run_frontend<P: Platform>(p: &P, args: &[String]) -> Result {
    let count = count(args)?;
    let env = p.env()?;
    let me = p.domid();
    let mut front = FrontDevice::<Echo, _, _, _, _>::new(env, 0, EchoFront)?;
    front.connect(Duration::from_secs(10))?;
    println!(
        "[frontend dom{me}] connected to the backend ({} ring layout)",
        <Echo as xenmq::driver::Protocol>::identity().ring
    );
    let pong = front.call(Ping::new(0, b"hello, dom0"), Some(Duration::from_secs(5)))?;
    println!(
        "[frontend dom{me}] ping \"hello, dom0\" -> pong {:?}",
        String::from_utf8_lossy(pong.payload())
    );
    let start = Instant::now();
    let n = echo::ping(front.client(), count, 32)?;
    let took = start.elapsed();
    println!(
        "[frontend dom{me}] {n} pings, 32 in flight: {:.0} round trips/s",
        f64::from(n) / took.as_secs_f64()
    );
    let one = (count / 10).max(1);
    let start = Instant::now();
    echo::ping(front.client(), one, 1)?;
    let each = start.elapsed().as_secs_f64() * 1e6 / f64::from(one);
    println!("[frontend dom{me}] {one} pings one at a time: {each:.1} µs per round trip");
    front.close(Duration::from_secs(5))?;
    print!("[frontend dom{me}] ");
    launch::wait_for_launcher();
    Ok(())
}
