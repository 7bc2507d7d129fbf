//! `echo` driven from tokio on the simulator:
//! `cargo run -p xenmq-examples --bin echo_async [COUNT]`. Both ends are
//! tasks on a one-thread runtime; the frontend awaits one call, then keeps
//! 32 pings in flight and takes their answers as a stream.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::time::timeout;
use xenmq::xenbus::State;
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_examples::launch::{self, Result};
use xenmq_runtime::device::sim::{self, SimBack, SimFront};
use xenmq_runtime::device::tokio::{AsyncBack, AsyncFront};

fn main() -> ExitCode {
    launch::main("echo", backend, frontend)
}

/// A one-thread runtime with I/O and timers.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn backend(args: &[String]) -> Result {
    let fe: u16 = args.first().ok_or("usage: echo_async backend FRONTEND-DOMID")?.parse()?;
    runtime()?.block_on(async {
        let dev = SimBack::<Echo, _>::new(sim::env()?, fe, 0, EchoBack::default())?;
        let mut back = AsyncBack::new(dev)?;
        // Serves until the frontend has come and closed the device.
        back.run(|b| b.connects() > 0 && b.state() == State::Closed).await?;
        println!("[backend dom0] device closed; answered {} pings", back.device().driver().pings);
        Ok(())
    })
}

fn frontend(args: &[String]) -> Result {
    let count: u32 = args.first().map_or(Ok(1000), |s| s.parse())?;
    let env = sim::env()?;
    let me = env.grants.id();
    // This domain lives as long as its connection: keep it past the close.
    let _domain = env.grants.clone();
    runtime()?.block_on(async {
        let mut front = AsyncFront::new(SimFront::<Echo, _>::new(env, 0, EchoFront)?)?;
        timeout(Duration::from_secs(10), front.connect()).await??;
        let pong = front.call(Ping::new(0, b"hello, dom0")).await?;
        println!("[frontend dom{me}] call -> {:?}", String::from_utf8_lossy(pong.payload()));
        let start = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < count {
            while sent < count && front.device().client().in_flight() < 32 {
                front.submit(Ping::new(sent, &sent.to_le_bytes()))?;
                sent += 1;
            }
            let done = front.next().await.ok_or("no ping in flight")??;
            let pong = done.result?;
            if pong.payload() != pong.seq.to_le_bytes() {
                return Err("a pong differs from its ping".into());
            }
            got += 1;
        }
        let rate = f64::from(got) / start.elapsed().as_secs_f64();
        println!("[frontend dom{me}] {got} pings streamed, 32 in flight: {rate:.0} round trips/s");
        timeout(Duration::from_secs(5), front.close()).await??;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    print!("[frontend dom{me}] ");
    launch::wait_for_launcher();
    Ok(())
}
