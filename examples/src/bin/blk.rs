//! `xmblk` on the simulator: `cargo run -p xenmq-examples --bin blk [MIB]`.
//! The backend serves a file (in the simulator's run directory, else a
//! temporary file removed when it stops); the frontend writes the whole
//! disk, reads it back and checks it.
//!
//! Both roles pick their platform at run time
//! ([`xenmq_runtime::platform`]): the simulator under the launcher, real
//! Xen in a Xen domain (with the device attached by `xenmq attach`).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use xenmq::xenbus::State;
use xenmq_examples::blk::{self, Blk, BlkFront, FileDisk, SECTOR};
use xenmq_examples::launch::{self, Result};
use xenmq_runtime::device::{BackDevice, FrontDevice};
use xenmq_runtime::platform::{self, Body, Platform};

fn main() -> ExitCode {
    launch::main("xmblk", backend, frontend)
}

fn backend(args: &[String]) -> Result {
    platform::run(Backend(args))?
}

fn frontend(_args: &[String]) -> Result {
    platform::run(Frontend)?
}

struct Backend<'a>(&'a [String]);

impl Body for Backend<'_> {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        run_backend(p, self.0)
    }
}

struct Frontend;

impl Body for Frontend {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        run_frontend(p)
    }
}

fn run_backend<P: Platform>(p: &P, args: &[String]) -> Result {
    let fe: u16 = args.first().ok_or("usage: blk backend FRONTEND-DOMID [MIB]")?.parse()?;
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    // The simulator's run directory is removed with the host; elsewhere
    // the file is a fresh temporary one, removed when `_disk` is dropped.
    let (file, path, _disk) = match std::env::var_os(xenmq_runtime::sim::ENV_DIR) {
        Some(dir) => {
            let path = std::path::Path::new(&dir).join("disk.img");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            (file, path, None)
        }
        None => {
            let disk = tempfile::Builder::new().prefix("xmblk-").suffix(".img").tempfile()?;
            (disk.reopen()?, disk.path().to_owned(), Some(disk))
        }
    };
    file.set_len(mib << 20)?;
    println!("[backend dom0] serving {} ({mib} MiB)", path.display());
    let mut back = BackDevice::<Blk, _, _, _, _>::new(p.env()?, fe, 0, FileDisk::new(file)?)?;
    let mut was = false;
    while !(back.connects() > 0 && back.state() == State::Closed) {
        back.turn(None)?;
        if back.is_connected() != was {
            was = back.is_connected();
            let what = if was { "connected" } else { "disconnected" };
            println!("[backend dom0] {what}; {} requests served", back.served());
        }
    }
    Ok(())
}

fn run_frontend<P: Platform>(p: &P) -> Result {
    let me = p.domid();
    let mut front = FrontDevice::<Blk, _, _, _, _>::new(p.env()?, 0, BlkFront::default())?;
    front.connect(Duration::from_secs(10))?;
    let disk = front.driver().disk;
    let bytes = (disk.sectors * SECTOR) as usize;
    println!(
        "[frontend dom{me}] connected: {} sectors ({} MiB), flush: {}",
        disk.sectors,
        bytes >> 20,
        disk.feature_flush
    );
    let data: Vec<u8> = (0..bytes).map(|i| (i / 4096 + i % 251) as u8).collect();
    let mut back = vec![0u8; bytes];
    let start = Instant::now();
    blk::write_read(front.client(), 0, &data, &mut back, 32)?;
    let took = start.elapsed().as_secs_f64();
    blk::flush(front.client())?;
    if back != data {
        return Err("the disk gave back other data".into());
    }
    let mib = (2 * bytes) as f64 / f64::from(1 << 20);
    println!("[frontend dom{me}] wrote and read back the whole disk: {mib:.0} MiB in {took:.2} s ({:.0} MiB/s), data intact", mib / took);
    front.close(Duration::from_secs(5))?;
    print!("[frontend dom{me}] ");
    launch::wait_for_launcher();
    Ok(())
}
