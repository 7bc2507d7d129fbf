//! xenmq's ring against the genuine `xen/io/ring.h` macros.
//!
//! - Streams: a C peer (`tests/c/ring_peer.c`) and xenmq's ring in this
//!   process share a memfd and two eventfds; one million requests each way
//!   round (C front + Rust back, Rust front + C back), 1-page and 4-page
//!   rings, every payload checked on both sides, and the notifications each
//!   side decided to send matched against those the other side received.
//! - Replay: the same random script of ring operations runs on the C macros
//!   (`tests/c/ring_replay.c`) and on xenmq's ring, on separate memories;
//!   every notify decision, final check, count and copied entry, and the
//!   final bytes of the pages, must be identical.

#[path = "support/ring_stream.rs"]
mod ring_stream;
#[path = "support/shmem.rs"]
mod shmem;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use ring_stream::{make_req, make_rsp, parse_stats, rust_back, rust_front, Reaper, Req, Rsp};
use shmem::{inheritable, Event, SharedPages};
use xenmq::ring::{self, compat, Error};
use xenmq::sync::Ordering;
use zerocopy::IntoBytes;

fn c_program(name: &str) -> PathBuf {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (peer, replay) = BUILT.get_or_init(|| {
        let inc = format!("-I{}", xenmq_tests::cc::c_dir().display());
        let c = xenmq_tests::cc::c_dir();
        (
            xenmq_tests::cc::build("ring_peer", &c.join("ring_peer.c"), &[&inc]),
            xenmq_tests::cc::build("ring_replay", &c.join("ring_replay.c"), &[&inc]),
        )
    });
    match name {
        "ring_peer" => peer.clone(),
        _ => replay.clone(),
    }
}

// ---------------------------------------------------------------------------
// Streams across two processes.

/// Runs one stream: the Rust end here (`rust_is_front`), the C end in a
/// child process, over `pages` pages with indices starting at `start`.
fn stream(rust_is_front: bool, pages: usize, start: u32, count: u64) {
    let mem = SharedPages::new(pages).unwrap();
    let region = mem.region();
    ring::compat::init_shared(&region).unwrap();
    for (off, v) in [(0, start), (4, start + 1), (8, start), (12, start + 1)] {
        region.store_u32(off, v, Ordering::Relaxed).unwrap();
    }
    let to_c = Event::new().unwrap();
    let to_rust = Event::new().unwrap();
    let t0 = Instant::now();
    let child = Command::new(c_program("ring_peer"))
        .arg(if rust_is_front { "back" } else { "front" })
        .arg(inheritable(mem.fd()).unwrap().to_string())
        .arg(pages.to_string())
        .arg(start.to_string())
        .arg(count.to_string())
        .arg(inheritable(to_c.fd()).unwrap().to_string())
        .arg(inheritable(to_rust.fd()).unwrap().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ring_peer");
    let mut reaper = Reaper(Some(child));
    let ours = if rust_is_front {
        rust_front(region, start, count, &to_rust, &to_c)
    } else {
        rust_back(region, start, count, &to_rust, &to_c)
    };
    let out = reaper.0.take().unwrap().wait_with_output().unwrap();
    let elapsed = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours = ours.unwrap_or_else(|e| panic!("rust side: {e}; C side: {stderr}"));
    assert!(out.status.success(), "C peer failed: {stderr}");
    let theirs = parse_stats(String::from_utf8_lossy(&out.stdout).trim());
    // Both ends are done: what is left in each eventfd was sent but not
    // waited for. Every notification one side decided to send is one the
    // other side received or left pending.
    let left_to_c = to_c.take().unwrap();
    let left_to_rust = to_rust.take().unwrap();
    eprintln!(
        "{} front, {pages} page(s), start {start}: {count} requests in {elapsed:?}; \
         rust {ours:?} (+{left_to_rust} pending), C {theirs:?} (+{left_to_c} pending)",
        if rust_is_front { "rust" } else { "C" }
    );
    assert_eq!(theirs.received + left_to_c, ours.notifies);
    assert_eq!(ours.received + left_to_rust, theirs.notifies);
    assert!(ours.pushes > 0 && theirs.pushes > 0);
    // One response per request, so at least one push per ring's worth.
    let size = ring::compat::Layout::new::<Req, Rsp>(pages * 4096)
        .unwrap()
        .size as u64;
    assert!(ours.pushes >= count / size && theirs.pushes >= count / size);
    drop(mem);
}

const STREAM: u64 = 1_000_000;

#[test]
fn c_frontend_rust_backend_1_page() {
    stream(false, 1, 0, STREAM);
}

#[test]
fn c_frontend_rust_backend_4_pages_wrapping() {
    stream(false, 4, u32::MAX - 300_000, STREAM);
}

#[test]
fn rust_frontend_c_backend_1_page() {
    stream(true, 1, 0, STREAM);
}

#[test]
fn rust_frontend_c_backend_4_pages_wrapping() {
    stream(true, 4, u32::MAX - 300_000, STREAM);
}

// ---------------------------------------------------------------------------
// Deterministic replay: C macros and xenmq on the same script.

fn script(seed: u64, size: u32, ops: usize) -> Vec<String> {
    let mut x = seed | 1;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let k = |r: &mut dyn FnMut(u64) -> u64| r(2 * size as u64 + 2);
    (0..ops)
        .map(|_| match rnd(8) {
            0 => format!("p {}", k(&mut rnd)),
            1 => "P".into(),
            2 => "g".into(),
            3 => format!("d {}", k(&mut rnd)),
            4 => format!("c {}", k(&mut rnd)),
            5 => format!("r {}", k(&mut rnd)),
            6 => "R".into(),
            _ => "f".into(),
        })
        .collect()
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

fn replay_rust(pages: usize, start: u32, ops: &[String]) -> Result<String, Error> {
    let mem = SharedPages::new(pages).unwrap();
    let region = mem.region();
    region.fill(0, region.len(), 0xa5).unwrap();
    ring::compat::init_shared(&region).unwrap();
    for (off, v) in [(0, start), (4, start + 1), (8, start), (12, start + 1)] {
        region.store_u32(off, v, Ordering::Relaxed).unwrap();
    }
    let mut front = compat::Front::<Req, Rsp>::attach_at(region, start)?;
    let mut back = compat::Back::<Req, Rsp>::attach_at(region, start)?;
    let mut next_req = 0u64;
    let mut log = String::new();
    for op in ops {
        let mut words = op.split(' ');
        let code = words.next().unwrap();
        let k: usize = words.next().map_or(0, |w| w.parse().unwrap());
        match code {
            "p" => {
                let mut n = 0;
                while n < k {
                    match front.produce_request(&make_req(next_req)) {
                        Ok(()) => {
                            next_req += 1;
                            n += 1;
                        }
                        Err(Error::Full { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
                writeln!(log, "p {n}").unwrap();
            }
            "P" => writeln!(log, "P {}", front.push_requests()? as u8).unwrap(),
            "g" => writeln!(log, "g {}", front.final_check_for_responses()? as u8).unwrap(),
            "d" => {
                let (mut n, mut h) = (0, FNV0);
                for rsp in front.responses()?.take(k) {
                    h = fnv(h, rsp.as_bytes());
                    n += 1;
                }
                writeln!(log, "d {n} {h:016x}").unwrap();
            }
            "c" => {
                let (mut n, mut h) = (0, FNV0);
                for req in back.requests()?.take(k) {
                    h = fnv(h, req.as_bytes());
                    n += 1;
                }
                writeln!(log, "c {n} {h:016x}").unwrap();
            }
            "r" => {
                let mut n = 0;
                while n < k {
                    let q = make_req(back.rsp_prod_pvt().wrapping_sub(start) as u64);
                    match back.produce_response(&make_rsp(&q)) {
                        Ok(()) => n += 1,
                        Err(Error::NoPendingRequest) => break,
                        Err(e) => return Err(e),
                    }
                }
                writeln!(log, "r {n}").unwrap();
            }
            "R" => writeln!(log, "R {}", back.push_responses()? as u8).unwrap(),
            "f" => writeln!(log, "f {}", back.final_check_for_requests()? as u8).unwrap(),
            _ => unreachable!("script op {op}"),
        }
    }
    let mut bytes = vec![0u8; region.len()];
    region.read_bytes(0, &mut bytes).unwrap();
    log.push_str("m ");
    for b in bytes {
        write!(log, "{b:02x}").unwrap();
    }
    log.push('\n');
    Ok(log)
}

fn replay_c(pages: usize, start: u32, ops: &[String]) -> String {
    let mut child = Command::new(c_program("ring_replay"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ring_replay");
    let mut input = format!("{pages} {start}\n");
    for op in ops {
        input.push_str(op);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "ring_replay failed");
    String::from_utf8(out.stdout).unwrap()
}

fn replay(pages: usize, start: u32, seed: u64) {
    let size = ring::compat::Layout::new::<Req, Rsp>(pages * 4096)
        .unwrap()
        .size;
    let ops = script(seed, size, 20_000);
    let c = replay_c(pages, start, &ops);
    let rust = replay_rust(pages, start, &ops).unwrap();
    let (c_lines, rust_lines): (Vec<_>, Vec<_>) = (c.lines().collect(), rust.lines().collect());
    assert_eq!(c_lines.len(), ops.len() + 1);
    for (i, (c, r)) in c_lines.iter().zip(&rust_lines).enumerate() {
        let what = ops.get(i).map_or("final memory", |s| s.as_str());
        assert_eq!(c, r, "op {i} ({what}): C and Rust differ");
    }
    assert_eq!(c_lines.len(), rust_lines.len());
    // The script must have exercised the interesting cases.
    for needle in ["P 1", "P 0", "R 1", "R 0", "f 0", "f 1", "g 0", "g 1"] {
        assert!(
            c_lines.contains(&needle),
            "script never produced `{needle}`"
        );
    }
}

#[test]
fn replay_matches_c_macros_1_page() {
    for seed in 1..=3 {
        replay(1, 0, seed);
    }
}

#[test]
fn replay_matches_c_macros_4_pages_wrapping() {
    for seed in 4..=6 {
        replay(4, u32::MAX - 5_000, seed);
    }
}

#[test]
fn replay_matches_c_macros_16_pages() {
    replay(16, 123, 7);
}
