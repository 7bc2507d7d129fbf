//! A domain process for the driver tests: the example drivers' ends, with
//! their progress printed line by line for the test to follow.
//!
//! ```text
//! driver-domain echo-backends         serve every echo device of dom0 until killed
//! driver-domain echo-frontend         ping device 0 until "stop" on stdin, surviving
//!                                     backend restarts; then close and report
//! driver-domain vkv-backends          serve every vkv device until killed
//! driver-domain vkv-frontend N        put, get and delete N keys, close
//! driver-domain echo-v2-frontend    an echo frontend of version 2: refused
//! driver-domain echo-layout-frontend an echo frontend with other messages: refused
//! driver-domain echo-ring-frontend  an echo frontend on the other ring layout: refused
//! driver-domain echo-connect MS        connect device 0 within MS milliseconds,
//!                                     say "connected" or "refused <why>"; close
//!                                     on "stop"
//! ```
//! After closing its device a frontend prints `closed` and waits for its
//! standard input to close, so that the test can count what it holds.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xenmq::driver::{self, Backend, Frontend, Protocol};
use xenmq_examples::blk::{self, Blk, BlkFront, BlkReq, FileDisk, SECTOR};
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_examples::vkv::{self, KvBack, KvFront, Vkv};
use xenmq_runtime::device::sim::{self, SimFront};
use xenmq_runtime::device::Backends;
use xenmq_runtime::platform::{Platform, Sim};
use xenmq_runtime::xenstore::Connection;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("echo-backends") => backends::<Echo, _>(EchoBack::default),
        Some("echo-frontend") => echo_frontend(),
        Some("vkv-backends") => backends::<Vkv, _>(KvBack::default),
        Some("blk-backends") => blk_backends(),
        Some("blk-frontend") => blk_frontend(),
        Some("echo-connect") => {
            echo_connect(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000))
        }
        Some("echo-v2-frontend") => mismatched::<EchoV2, _>(V2),
        Some("echo-layout-frontend") => mismatched::<EchoWide, _>(Wide),
        Some("echo-ring-frontend") => mismatched::<EchoCompat, _>(CompatRing),
        Some("vkv-frontend") => {
            vkv_frontend(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100))
        }
        _ => Err("unknown role".into()),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: driver-domain: {}", xenmq::error::Chain(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn backends<P: Protocol, B: Backend<Protocol = P> + 'static>(make: fn() -> B) -> Result {
    let mut all = Sim::from_env()?.backends::<P, B>(move |_, _| make())?;
    say("ready");
    let mut connects: HashMap<(u16, u32), u64> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    loop {
        all.step(Duration::from_millis(20))?;
        for ((fe, id), why) in all.failed() {
            if reported.insert((*fe, *id)) {
                say(&format!("failed {fe} {id} {why}"));
            }
        }
        for d in all.devices() {
            let n = d.connects();
            if connects.insert(d.key(), n) != Some(n) && n > 0 {
                say(&format!("connected {} {} {n}", d.key().0, d.key().1));
            }
        }
    }
}

/// Sets the flag when "stop" arrives on stdin.
fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => s.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        s.store(true, Ordering::SeqCst);
    });
    stop
}

/// Reports the close and waits for stdin's end (the test counts what this
/// domain holds meanwhile).
fn closed_and_wait() {
    say("closed");
    let mut s = String::new();
    while std::io::stdin().read_line(&mut s).is_ok_and(|n| n > 0) {}
}

fn echo_frontend() -> Result {
    let env = sim::env()?;
    let mut front = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront)?;
    front.connect(Duration::from_secs(20))?;
    say("connected");
    let stop = stop_flag();
    let mut outstanding: HashMap<driver::Tag, u32> = HashMap::new();
    let (mut seq, mut ok, mut lost, mut dup) = (0u32, 0u64, 0u64, 0u64);
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping && outstanding.is_empty() {
            break;
        }
        if !front.is_connected() && outstanding.is_empty() {
            say("reconnecting");
            if let Err(e) = front.connect(Duration::from_secs(20)) {
                // Closed for good (a hostile backend): say why, stay alive
                // for the test to look.
                say(&format!("refused {e}"));
                front.close(Duration::from_secs(5))?;
                closed_and_wait();
                return Ok(());
            }
            say("reconnected");
            continue;
        }
        while !stopping && front.is_connected() && outstanding.len() < 16 {
            match front.submit(Ping::new(seq, &seq.to_le_bytes())) {
                Ok(tag) => {
                    outstanding.insert(tag, seq);
                    seq += 1;
                }
                Err(_) => break,
            }
        }
        match front.wait(Some(Duration::from_millis(100))) {
            Ok(c) => match (outstanding.remove(&c.tag), c.result) {
                (None, _) => dup += 1,
                (Some(s), Ok(pong)) if pong.seq == s && pong.payload() == s.to_le_bytes() => {
                    ok += 1;
                    if ok % 2000 == 0 {
                        say(&format!("progress {ok}"));
                    }
                }
                (Some(_), Ok(_)) => return Err("a pong answers another ping".into()),
                (Some(_), Err(driver::Error::Disconnected)) => {
                    lost += 1;
                    say(&format!("lost {lost}"));
                }
                (Some(_), Err(e)) => return Err(e.into()),
            },
            Err(driver::Error::Timeout | driver::Error::NotConnected) => {}
            Err(e) if e.is_fatal() => {}
            Err(e) => return Err(e.into()),
        }
    }
    say(&format!(
        "summary submitted={seq} ok={ok} lost={lost} dup={dup} connects={}",
        front.connects()
    ));
    front.close(Duration::from_secs(5))?;
    closed_and_wait();
    Ok(())
}

/// One connection attempt, reported; the device stays as the attempt left
/// it (the test counts what this domain holds) until "stop".
fn echo_connect(ms: u64) -> Result {
    let env = sim::env()?;
    let _domain = env.grants.clone();
    let mut front = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront)?;
    match front.connect(Duration::from_millis(ms)) {
        Ok(()) => say("connected"),
        Err(e) => say(&format!("refused {e}")),
    }
    let stop = stop_flag();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    front.close(Duration::from_secs(5))?;
    closed_and_wait();
    Ok(())
}

fn vkv_frontend(n: usize) -> Result {
    let env = sim::env()?;
    let _domain = env.grants.clone();
    let mut front = SimFront::<Vkv, KvFront>::new(env, 0, KvFront::default())?;
    front.connect(Duration::from_secs(20))?;
    say(&format!("connected max-keys={}", front.driver().max_keys));
    let value = |i: usize| -> Vec<u8> { (0..(i * 101) % 4097).map(|j| (i ^ j) as u8).collect() };
    let c = front.client();
    for i in 0..n {
        vkv::put(c, format!("k{i}").as_bytes(), &value(i))?;
    }
    for i in 0..n {
        if vkv::get(c, format!("k{i}").as_bytes())? != value(i) {
            return Err(format!("k{i}: wrong value").into());
        }
    }
    for i in 0..n {
        vkv::delete(c, format!("k{i}").as_bytes())?;
    }
    let missing = matches!(vkv::get(c, b"k0"), Err(vkv::KvError::Refused(-2)));
    let too_long = matches!(
        vkv::put(c, &[b'x'; 49], b"v"),
        Err(vkv::KvError::Refused(-22))
    );
    let too_big = vkv::put(c, b"big", &[0; 4097]).is_err();
    say(&format!(
        "checked n={n} missing={missing} too_long={too_long} too_big={too_big}"
    ));
    front.close(Duration::from_secs(5))?;
    closed_and_wait();
    Ok(())
}

/// Serves every xmblk device, each from a 2 MiB file of its own.
fn blk_backends() -> Result {
    let env = sim::env()?;
    let path = env.grants.store_path();
    let dir = env.grants.dir().to_owned();
    let disk = move |fe: u16, id: u32| -> std::io::Result<FileDisk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(format!("disk-{fe}-{id}.img")))?;
        file.set_len(2 << 20)?;
        FileDisk::new(file)
    };
    let mut all = Backends::<Blk, FileDisk, _, _, _>::new(
        env,
        move || Ok(Connection::connect(&path)?),
        move |fe, id| disk(fe, id).expect("create the disk file"),
    )?;
    say("ready");
    loop {
        all.step(Duration::from_millis(20))?;
    }
}

fn blk_frontend() -> Result {
    let env = sim::env()?;
    let _domain = env.grants.clone();
    let mut front = SimFront::<Blk, BlkFront>::new(env, 0, BlkFront::default())?;
    front.connect(Duration::from_secs(20))?;
    let disk = front.driver().disk;
    say(&format!(
        "connected sectors={} flush={}",
        disk.sectors, disk.feature_flush
    ));
    let bytes = (disk.sectors * SECTOR) as usize;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 / 4096 + i) as u8).collect();
    let mut back = vec![0u8; bytes];
    blk::write_read(front.client(), 0, &data, &mut back, 48)?;
    blk::flush(front.client())?;
    let intact = back == data;
    // Past the end of the disk, and an oversized segment: refused.
    let past = BlkReq {
        id: 0,
        sector: disk.sectors - 1,
        op: blk::READ,
        slot: 0,
        count: 2,
        _pad: 0,
    };
    let huge = BlkReq {
        count: 9,
        sector: 0,
        ..past
    };
    let t = Some(Duration::from_secs(5));
    let past = front.client().call(past, t)?.status;
    let huge = front.client().call(huge, t)?.status;
    say(&format!("checked intact={intact} past={past} huge={huge}"));
    front.close(Duration::from_secs(5))?;
    closed_and_wait();
    Ok(())
}

/// The echo protocol at another version.
#[xenmq::protocol(name = "echo", version = 2, request = Ping, response = xenmq_examples::echo::Pong)]
struct EchoV2;
struct V2;
impl Frontend for V2 {
    type Protocol = EchoV2;
}

/// A ping with a wider sequence number: same name and version, other layout.
#[xenmq::message]
struct WidePing {
    id: u64,
    seq: u64,
    data: [u8; 48],
}

#[xenmq::protocol(name = "echo", version = 1, request = WidePing, response = xenmq_examples::echo::Pong)]
struct EchoWide;
struct Wide;
impl Frontend for Wide {
    type Protocol = EchoWide;
}

/// The echo protocol on the ring.h-compatible ring (echo's is native):
/// same name, version and messages, so only the ring layout differs.
#[xenmq::protocol(
    name = "echo",
    version = 1,
    request = Ping,
    response = xenmq_examples::echo::Pong,
    max_ring_pages = 4,
    layout = compat
)]
struct EchoCompat;
struct CompatRing;
impl Frontend for CompatRing {
    type Protocol = EchoCompat;
}

/// A frontend speaking another protocol than the backend: connecting fails
/// with the reason, also left in the frontend's `error` node.
fn mismatched<P: Protocol, F: Frontend<Protocol = P>>(driver: F) -> Result {
    let env = sim::env()?;
    let _domain = env.grants.clone();
    let mut front = SimFront::<P, F>::new(env, 0, driver)?;
    match front.connect(Duration::from_secs(20)) {
        Err(e) => say(&format!("refused {e}")),
        Ok(()) => say("connected"),
    }
    closed_and_wait();
    Ok(())
}
