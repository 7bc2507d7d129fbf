//! `xenmq bench`: xenmq's rings measured side by side with a C driver built
//! on the genuine `xen/io/ring.h` macros and with a Unix socket pair.
//!
//! Every run is two processes — this one as the frontend and a re-executed
//! copy of the running binary as the backend ([`PEER_ENV`] tells it so) —
//! sharing memfd pages and notifying each other through eventfds (as the
//! simulator's domains do), pinned to two different CPUs unless `--no-pin`.
//! The contenders are interleaved run by run (each repetition starts with a
//! different one) and every figure is the median, min and max over the
//! repetitions.
//!
//! # The contenders
//!
//! - `c-ring`: `c/cring.c`, compiled with `-O2` by `build.rs`: a frontend
//!   and a backend written as a C driver is, with `DEFINE_RING_TYPES`,
//!   `RING_PUSH_*_AND_CHECK_NOTIFY`, `RING_FINAL_CHECK_FOR_*`,
//!   `RING_COPY_REQUEST` and the overflow checks of Debian's header, and the
//!   barriers Xen's own tools define (`mfence` for `xen_mb`).
//! - `xenmq-compat`: xenmq's ring.h-compatible ring through the public
//!   driver API: the frontend process is a [`xenmq::driver::Client`], the
//!   backend process a [`xenmq::driver::Server`] serving a
//!   [`xenmq::driver::Backend`] ([`xring`]), over protocols declared with
//!   `#[xenmq::protocol(layout = compat)]` ([`proto::Compat1`],
//!   [`proto::Compat4`]), with a buffer pool ([`xenmq::driver::Pool`]) for
//!   bulk.
//! - `xenmq-native`: the same driver code over the native ring layout,
//!   selected per protocol (`layout = native`: [`proto::Native1`],
//!   [`proto::Native4`]).
//! - `socket`: the same stream over a `socketpair(AF_UNIX, SOCK_STREAM)`,
//!   as many requests in flight as the ring has slots.
//!
//! The Rust loops ([`xring`], [`socket`]) mirror the C loops step by step:
//! the frontend fills every free slot (for xenmq, `Client::queue`),
//! publishes once (`Client::flush`), takes what responses are there
//! (`Client::poll_each`) and waits only when the ring is full; the backend copies
//! each request out once, checks it, answers it, publishes the batch's
//! responses once (`Server::serve`). The wait policy is the same everywhere:
//! `block` arms the event index (final check) and sleeps on the eventfd;
//! `spin` first polls the producer index up to `--spin` times (4096) with
//! `pause`, then does the same (the xenmq contenders through the driver
//! API's `Client::wait_event` and `Server::wait`, with
//! `Spin::fixed(--spin)`). Bulk buffers: c-ring writes the pattern straight into the
//! buffer of its ring slot; xenmq leases a pool slot (`Client::lease`),
//! writes the pattern into it from a private buffer (`Client::write`), sends
//! the slot number with the request, and the backend copies it out once
//! (`Io::read`); the lease comes back with the completion.
//!
//! (`xenmq-native-split`, the native ring with split request and response
//! arrays driven by raw ring calls, is gone: a protocol's layout is compat
//! or native, whose slots are shared, the arrangement that measured faster.
//! `xenmq::ring::native::Slots::Split` is still there for ring-level code.)
//!
//! # The figures (`IMPL.MODE.FIGURE`, `.4p` for 4-page rings)
//!
//! - `tput.*.rate`: 64-byte requests per second, the ring kept full.
//! - `lat.*.p50`, `lat.*.p99`: round-trip time of one request in flight,
//!   each timed with the monotonic clock.
//! - `bulk.*.bw`: GB/s of 4 KiB buffers in shared pages (one per slot): the
//!   frontend fills one, the request names it, the backend copies it out
//!   and checks every word.
//! - `*.notify`: notifications (eventfd writes, or socket writes) of both
//!   ends per 1000 requests.
//! - `floor.memcpy.bw`: copying 4 KiB buffers on one CPU, the ceiling of
//!   bulk; `floor.cacheline.p50`: one atomic word bounced between the two
//!   pinned CPUs, timed like the latency figures, the floor of latency.
//! - `floor.ring-compat.ns`, `floor.driver-compat.ns`, `floor.ring-native.ns`,
//!   `floor.driver-native.ns`: ns per request of a stream through both ends
//!   of a 4-page ring on one CPU, with the raw rings and through
//!   `Client`/`Server`: what the driver layer costs, without the noise of
//!   two CPUs.
//! - `floor.threads-ring-compat.rate`, `floor.threads-driver-compat.rate`,
//!   `floor.threads-ring-native.rate`, `floor.threads-driver-native.rate`:
//!   the same stream with the backend in a thread on the other CPU, in
//!   requests per second: the rings against the driver layer on them,
//!   across the CPUs.
//!
//! The machine itself moves: the two virtual CPUs land on a core's two
//! threads, two cores sharing a cache, or cores further apart, and a
//! cache-line round trip between them takes ~50, ~120 or ~400 ns here, for
//! seconds at a time. Contenders compared under different placements would
//! give meaningless ratios, so each mode's runs in a repetition are framed
//! by a short cache-line probe (5 ms); if the probe moved more than 1.5x
//! between before and after, those runs are measured again (up to twice).
//! The two-thread floors are framed the same way. The report ends with the
//! probes' range and how many measured runs were repeated ([`Stability`]).
//!
//! A response that does not match its request (id out of order, failed
//! check) makes the run fail: every figure is of a stream that was carried
//! correctly.
//!
//! `XENMQ_BENCH_DEBUG=1` prints each run's raw frontend counts (requests,
//! notifications, publishes: requests per publish is the batch size).
//!
//! Entry points: [`main`] parses a command line (the `xenmq bench`
//! subcommand, `cargo bench`, and the `xenmq-bench` binary all call it), and
//! [`peer_main`] is what the re-executed backend process runs.
#![deny(unsafe_code)]

mod cring;
pub mod floor;
pub mod proto;
pub mod report;
pub mod socket;
pub mod xring;

#[cfg(test)]
mod alloc_test;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xenmq::ring::native;
use xenmq::shm::Region;
use xenmq::sync::Ordering;

use crate::proto::{Compat1, Compat4, Native1, Native4, Request, Response, BUF, MAX_SLOTS};
use xenmq_sys::process::{allowed_cpus, die_with_parent, kill9, pin_to};
use xenmq_sys::{EventFd, EventfdFlags, Mapping, MemfdFlags};

/// The environment variable that turns a re-executed benchmark binary into
/// a backend peer.
pub const PEER_ENV: &str = "XENMQ_BENCH_PEER";

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("system call failed")]
    Io(#[from] std::io::Error),
    /// A ring reported an error.
    #[error("ring")]
    Ring(#[from] xenmq::ring::Error),
    /// The driver API reported an error.
    #[error("driver")]
    Driver(#[from] xenmq::driver::Error),
    /// A shared-memory access was out of bounds.
    #[error("shared memory")]
    Shm(#[from] xenmq::shm::Error),
    /// The harness could not set a run up, or a run went wrong.
    #[error("{0}")]
    Setup(String),
    /// The command line was wrong.
    #[error("{0}")]
    Usage(String),
}

/// A contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    /// The C program on ring.h.
    CRing,
    /// xenmq's ring.h-compatible ring, through the driver API.
    Compat,
    /// xenmq's native ring, through the driver API.
    Native,
    /// A Unix stream socket pair.
    Socket,
}

impl Impl {
    /// Every contender, c-ring first (the reference of the ratios).
    pub const ALL: [Impl; 4] = [Impl::CRing, Impl::Compat, Impl::Native, Impl::Socket];

    /// The name used in figures and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Impl::CRing => "c-ring",
            Impl::Compat => "xenmq-compat",
            Impl::Native => "xenmq-native",
            Impl::Socket => "socket",
        }
    }

    fn parse(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == s)
    }
}

/// What the frontend does in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As many 64-byte requests as the ring takes.
    Tput,
    /// One request in flight, each round trip timed.
    Lat,
    /// Requests naming 4 KiB buffers the frontend fills and the backend checks.
    Bulk,
    /// The final request that makes the backend exit.
    Stop,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Tput => "tput",
            Mode::Lat => "lat",
            Mode::Bulk => "bulk",
            Mode::Stop => "stop",
        }
    }

    fn c_code(self) -> u32 {
        match self {
            Mode::Tput => 0,
            Mode::Lat => 1,
            Mode::Bulk => 2,
            Mode::Stop => 3,
        }
    }
}

/// What a frontend phase did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrontOut {
    /// Requests answered.
    pub ops: u64,
    /// Notifications the frontend sent.
    pub notifies: u64,
    /// Responses that were wrong (id out of order or failed status).
    pub errors: u64,
    /// Wall time of the phase.
    pub elapsed_ns: u64,
    /// Times the frontend published requests (ops / pushes is the batch).
    pub pushes: u64,
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Repetitions (each contender once per repetition and mode).
    pub reps: u32,
    /// Measured time per run.
    pub budget: Duration,
    /// Untimed warm-up per run.
    pub warmup: Duration,
    /// Spin iterations before blocking, in the spin modes.
    pub spin: u32,
    /// Pin frontend and backend to two CPUs.
    pub pin: bool,
    /// Contenders to run.
    pub impls: Vec<Impl>,
    /// Ring sizes in pages.
    pub pages: Vec<u32>,
    /// Modes to run, as `tput.spin` etc. (all when empty).
    pub modes: Vec<String>,
    /// Where to write the figures as JSON.
    pub json: Option<std::path::PathBuf>,
    /// Where to draw the ratios as SVG.
    pub plot: Option<std::path::PathBuf>,
    /// Show progress on stderr.
    pub progress: bool,
    /// Keep only runs whose cache-line probe (before and after) lies in
    /// this band, in ns (`--probe-ns LO..HI`): the figures of one placement
    /// of the two CPUs.
    pub probe_band: Option<(f64, f64)>,
}

impl Options {
    /// The full run (a few minutes).
    pub fn full() -> Options {
        Options {
            reps: 7,
            budget: Duration::from_millis(250),
            warmup: Duration::from_millis(40),
            spin: 4096,
            pin: true,
            impls: Impl::ALL.to_vec(),
            pages: vec![1, 4],
            modes: Vec::new(),
            json: None,
            plot: None,
            progress: true,
            probe_band: None,
        }
    }

    /// `--quick`: under a minute.
    pub fn quick() -> Options {
        Options {
            reps: 5,
            budget: Duration::from_millis(50),
            warmup: Duration::from_millis(10),
            ..Options::full()
        }
    }
}

const USAGE: &str = "usage: xenmq bench [--quick] [--reps N] [--budget-ms MS] [--spin N] [--no-pin]
                   [--only IMPL,...] [--modes MODE,...] [--pages 1,4] [--json FILE]
                   [--plot FILE.svg] [--no-progress] [--probe-ns LO..HI]

Runs xenmq's rings, a C driver on xen/io/ring.h and a Unix socket pair side by
side (two processes, shared memfd pages, eventfd notifications) and prints
median [min..max] over the repetitions with ratios to c-ring. The xenmq
contenders run through the public driver API (Client in the frontend process,
Server and a Backend in the backend process), on the ring.h-compatible layout
(xenmq-compat) or the native one (xenmq-native).
Each mode's runs are framed by a short cache-line probe between the two CPUs
and measured again when it moved (the CPUs changed placement meanwhile);
--probe-ns LO..HI keeps only runs whose probe lies in that band (waiting for
the machine to get there, up to a limit): one placement's figures.
IMPL: c-ring, xenmq-compat, xenmq-native, socket.
MODE: tput.block, tput.spin, lat.block, lat.spin, bulk.block, bulk.spin.";

/// Parses `LO..HI` (ns, LO < HI, both finite and non-negative).
fn parse_band(v: &str) -> Result<(f64, f64), Error> {
    let bad = || {
        Error::Usage(format!(
            "--probe-ns takes LO..HI in ns, as 300..600, not `{v}`"
        ))
    };
    let (lo, hi) = v.split_once("..").ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Parses a command line (without the program name or the `bench` word).
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, Error> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| Error::Usage(format!("argument {a:?} is not UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let mut o = if args.iter().any(|a| a == "--quick") {
        Options::quick()
    } else {
        Options::full()
    };
    let mut it = args.iter();
    let num = |v: Option<&String>, what: &str| -> Result<u64, Error> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Usage(format!("{what} needs a number\n\n{USAGE}")))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" | "--bench" | "bench" => {}
            "--reps" => o.reps = num(it.next(), "--reps")?.clamp(1, 1000) as u32,
            "--budget-ms" => {
                o.budget = Duration::from_millis(num(it.next(), "--budget-ms")?.max(1))
            }
            "--spin" => o.spin = num(it.next(), "--spin")?.min(u64::from(u32::MAX)) as u32,
            "--no-pin" => o.pin = false,
            "--no-progress" => o.progress = false,
            "--probe-ns" => {
                let v = it
                    .next()
                    .ok_or_else(|| Error::Usage("--probe-ns needs LO..HI".into()))?;
                o.probe_band = Some(parse_band(v)?);
            }
            "--json" => {
                o.json = Some(
                    it.next()
                        .ok_or_else(|| Error::Usage("--json needs a file".into()))?
                        .into(),
                )
            }
            "--plot" => {
                o.plot = Some(
                    it.next()
                        .ok_or_else(|| Error::Usage("--plot needs a file".into()))?
                        .into(),
                )
            }
            "--only" => {
                let list = it
                    .next()
                    .ok_or_else(|| Error::Usage("--only needs a list".into()))?;
                o.impls = list
                    .split(',')
                    .map(|s| {
                        Impl::parse(s).ok_or_else(|| {
                            Error::Usage(format!("unknown contender `{s}`\n\n{USAGE}"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--modes" => {
                let list = it
                    .next()
                    .ok_or_else(|| Error::Usage("--modes needs a list".into()))?;
                o.modes = list.split(',').map(str::to_owned).collect();
                let known: Vec<String> = MODES.iter().map(|&(m, s)| mode_name(m, s, 1)).collect();
                if let Some(bad) = o.modes.iter().find(|m| !known.contains(m)) {
                    return Err(Error::Usage(format!(
                        "unknown mode `{bad}` (known: {})",
                        known.join(", ")
                    )));
                }
            }
            "--pages" => {
                let list = it
                    .next()
                    .ok_or_else(|| Error::Usage("--pages needs a list".into()))?;
                o.pages = list
                    .split(',')
                    .map(|s| match s {
                        "1" => Ok(1),
                        "4" => Ok(4),
                        _ => Err(Error::Usage("--pages takes 1 and/or 4".into())),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => return Err(Error::Usage(USAGE.into())),
            other => return Err(Error::Usage(format!("unknown option `{other}`\n\n{USAGE}"))),
        }
    }
    o.warmup = (o.budget / 5).max(Duration::from_millis(2));
    if o.impls.is_empty() || o.pages.is_empty() {
        return Err(Error::Usage("nothing to run".into()));
    }
    Ok(o)
}

/// The command-line entry: runs the benchmark, or the backend peer when
/// re-executed with [`PEER_ENV`] set.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    if let Some(code) = peer_main() {
        return code;
    }
    let args: Vec<OsString> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(Error::Usage(msg)) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("xenmq bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenmq bench: {}", report::chain(&e));
            ExitCode::FAILURE
        }
    }
}

// --- shared memory layout of a run ------------------------------------------

const PAGE: usize = 4096;
const CTL_LEN: usize = PAGE;
const RING_OFF: usize = CTL_LEN;
const RING_MAX: usize = 4 * PAGE;
const DATA_OFF: usize = RING_OFF + RING_MAX;
const DATA_LEN: usize = MAX_SLOTS * BUF;
const SHM_LEN: usize = DATA_OFF + DATA_LEN;

// Control page words, each on its own cache line but the two counters.
const CTL_READY: usize = 0;
const CTL_NOTIFIES: usize = 64;
const CTL_ERRORS: usize = 72;
const CTL_PING: usize = 128;

/// The peer's instructions, passed in [`PEER_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerSpec {
    what: PeerKind,
    pages: u32,
    spin: u32,
    memfd: i32,
    ev_back: i32,
    ev_front: i32,
    sock: i32,
    cpu: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    Ring(Impl),
    CacheLine,
}

impl PeerSpec {
    fn encode(&self) -> String {
        let what = match self.what {
            PeerKind::Ring(i) => i.name(),
            PeerKind::CacheLine => "cacheline",
        };
        format!(
            "{what} {} {} {} {} {} {} {}",
            self.pages, self.spin, self.memfd, self.ev_back, self.ev_front, self.sock, self.cpu
        )
    }

    fn decode(s: &str) -> Option<PeerSpec> {
        let mut f = s.split(' ');
        let what = match f.next()? {
            "cacheline" => PeerKind::CacheLine,
            name => PeerKind::Ring(Impl::parse(name)?),
        };
        let mut n = || f.next().and_then(|v| v.parse::<i64>().ok());
        Some(PeerSpec {
            what,
            pages: u32::try_from(n()?).ok()?,
            spin: u32::try_from(n()?).ok()?,
            memfd: i32::try_from(n()?).ok()?,
            ev_back: i32::try_from(n()?).ok()?,
            ev_front: i32::try_from(n()?).ok()?,
            sock: i32::try_from(n()?).ok()?,
            cpu: n()?,
        })
    }
}

/// The backend process: `Some(exit code)` when this process was started as
/// a peer (the [`PEER_ENV`] variable is set), `None` otherwise.
pub fn peer_main() -> Option<ExitCode> {
    let spec = std::env::var(PEER_ENV).ok()?;
    Some(match PeerSpec::decode(&spec) {
        None => {
            eprintln!("xenmq bench peer: bad {PEER_ENV}={spec:?}");
            ExitCode::from(2)
        }
        Some(spec) => match peer(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xenmq bench peer: {}", report::chain(&e));
                ExitCode::FAILURE
            }
        },
    })
}

fn ring_bytes(pages: u32) -> usize {
    (pages as usize * PAGE).min(RING_MAX)
}

fn peer(spec: &PeerSpec) -> Result<(), Error> {
    die_with_parent()?;
    if let Ok(cpu) = usize::try_from(spec.cpu) {
        pin_to(cpu)?;
    }
    let memfd = xenmq_sys::inherit(spec.memfd)?;
    let map = Mapping::file(&memfd, 0, SHM_LEN, true)?;
    let shm = map.region();
    let ctl = shm.subregion(0, CTL_LEN)?;
    let ring = shm.subregion(RING_OFF, ring_bytes(spec.pages))?;
    let data = shm.subregion(DATA_OFF, DATA_LEN)?;
    let publish = |c: xring::BackCounters| -> Result<(), Error> {
        // Relaxed: statistics read by the frontend after the run, ordered by
        // the STOP exchange and process exit.
        ctl.store_u64(CTL_NOTIFIES, c.notifies, Ordering::Relaxed)?;
        ctl.store_u64(CTL_ERRORS, c.errors, Ordering::Relaxed)?;
        Ok(())
    };
    let ready = || {
        // Release: everything the peer set up happens before the frontend
        // sees `ready` (pairs with its Acquire load in `wait_ready`).
        ctl.store_u64(CTL_READY, 1, Ordering::Release)
    };
    match spec.what {
        PeerKind::CacheLine => {
            ready()?;
            floor::cacheline_peer(ctl, CTL_PING)
        }
        PeerKind::Ring(Impl::Socket) => {
            let sock = std::os::unix::net::UnixStream::from(xenmq_sys::inherit(spec.sock)?);
            ready()?;
            let window = slots(Impl::Socket, spec.pages)?;
            socket::back_run(sock, window, spec.spin, publish)
        }
        PeerKind::Ring(which) => {
            let ev_wait = EventFd::inherit(spec.ev_back)?;
            let ev_notify = EventFd::inherit(spec.ev_front)?;
            match which {
                Impl::CRing => {
                    ready()?;
                    let nslots = slots(which, spec.pages)?;
                    let counters = ctl.subregion(CTL_NOTIFIES - CTL_NOTIFIES % 64, 64)?;
                    cring::c_back_run(
                        ring,
                        data,
                        u64::from(nslots),
                        &ev_wait,
                        &ev_notify,
                        spec.spin,
                        counters,
                    )
                    .map_err(Error::from)
                }
                Impl::Compat | Impl::Native => {
                    fn serve<P: xring::BenchProtocol>(
                        ring: Region,
                        data: Region,
                        (ev_wait, ev_notify): (&EventFd, &EventFd),
                        spin: u32,
                        ready: impl FnOnce() -> Result<(), xenmq::shm::Error>,
                        publish: impl FnMut(xring::BackCounters) -> Result<(), Error>,
                    ) -> Result<(), Error> {
                        let mut back = xring::Back::<P>::new(ring, data, ev_wait, ev_notify, spin)?;
                        ready()?;
                        back.run(publish)
                    }
                    let evs = (&ev_wait, &ev_notify);
                    match (which, spec.pages) {
                        (Impl::Compat, 1) => {
                            serve::<Compat1>(ring, data, evs, spec.spin, ready, publish)
                        }
                        (Impl::Compat, _) => {
                            serve::<Compat4>(ring, data, evs, spec.spin, ready, publish)
                        }
                        (_, 1) => serve::<Native1>(ring, data, evs, spec.spin, ready, publish),
                        (_, _) => serve::<Native4>(ring, data, evs, spec.spin, ready, publish),
                    }
                }
                Impl::Socket => Err(Error::Setup("unreachable contender".into())),
            }
        }
    }
}

/// Ring slots of a contender at a ring size: ring.h rounds 63 and 255
/// entries down to 32 and 128; the native layout fits the same counts; the
/// socket keeps as many requests in flight.
fn slots(which: Impl, pages: u32) -> Result<u32, Error> {
    let bytes = ring_bytes(pages);
    Ok(match which {
        Impl::Native => native::Layout::new::<Request, Response>(bytes)?.slots(),
        Impl::Compat => xenmq::ring::compat::Layout::new::<Request, Response>(bytes)?.size,
        Impl::CRing | Impl::Socket => {
            let n = ((bytes - 64) / 64) as u32;
            1 << (31 - n.leading_zeros())
        }
    })
}

// --- the frontend side of one run -------------------------------------------

enum AnyFront<'e> {
    C(cring::CFrontRing, u64),
    Driver(Box<dyn xring::Phase + 'e>),
    Socket(socket::Front),
}

impl AnyFront<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        ev: &Events,
        spin: u32,
        mode: Mode,
        budget: Duration,
        lat: &mut Vec<u64>,
    ) -> Result<FrontOut, Error> {
        let budget_ns = budget.as_nanos() as u64;
        let max = u64::MAX / 4;
        match self {
            AnyFront::C(c, nslots) => {
                let o = c.run(
                    &ev.front,
                    &ev.back,
                    spin,
                    mode.c_code(),
                    max,
                    budget_ns,
                    *nslots,
                    lat,
                )?;
                Ok(FrontOut {
                    ops: o.ops,
                    notifies: o.notifies,
                    errors: o.errors,
                    elapsed_ns: o.elapsed_ns,
                    pushes: o.pushes,
                })
            }
            AnyFront::Driver(f) => f.run(mode, max, budget_ns, lat),
            AnyFront::Socket(s) => s.run(spin, mode, max, budget_ns, lat),
        }
    }
}

/// The two event channels of a run: `back` wakes the backend, `front` the
/// frontend.
struct Events {
    back: EventFd,
    front: EventFd,
}

/// One run's raw results.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// The frontend's measured phase.
    pub front: FrontOut,
    /// Notifications the backend sent during the measured phase.
    pub back_notifies: u64,
    /// Sorted round-trip times (latency mode).
    pub lat: Vec<u64>,
}

/// The CPUs to pin frontend and backend to, if pinning (the first two this
/// process may use: ask before pinning). With fewer than two CPUs there is
/// nothing to pin to: the benchmark says so and runs unpinned.
pub fn cpus(pin: bool) -> Result<Option<(usize, usize)>, Error> {
    if !pin {
        return Ok(None);
    }
    let cpus = allowed_cpus()?;
    match cpus.as_slice() {
        [a, b, ..] => Ok(Some((*a, *b))),
        _ => {
            eprintln!("xenmq bench: only CPUs {cpus:?} available, running unpinned");
            Ok(None)
        }
    }
}

struct Peer {
    child: Child,
    watchdog: mpsc::Sender<()>,
}

fn spawn_peer(spec: &PeerSpec, limit: Duration) -> Result<Peer, Error> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("bench")
        .env(PEER_ENV, spec.encode())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    // A run that hangs (a peer that died mid-run leaves the frontend asleep
    // on its eventfd) ends the benchmark instead of blocking forever.
    let (tx, rx) = mpsc::channel::<()>();
    let pid = child.id();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let _ = kill9(pid);
            eprintln!("\nxenmq bench: a run took longer than {limit:?}; giving up");
            std::process::exit(1);
        }
    });
    Ok(Peer {
        child,
        watchdog: tx,
    })
}

impl Peer {
    fn wait_ready(&mut self, ctl: &Region) -> Result<(), Error> {
        let t = Instant::now();
        // Acquire: pairs with the peer's Release store of `ready`.
        while ctl.load_u64(CTL_READY, Ordering::Acquire)? != 1 {
            if let Some(st) = self.child.try_wait()? {
                return Err(Error::Setup(format!(
                    "the backend process exited early ({st})"
                )));
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err(Error::Setup("the backend process did not start".into()));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        let st = self.child.wait()?;
        let _ = self.watchdog.send(());
        if !st.success() {
            return Err(Error::Setup(format!("the backend process failed ({st})")));
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = self.watchdog.send(());
    }
}

/// Runs one contender in one mode: spawns the backend (pinned to the second
/// of `cpus`), warms up, measures, stops the backend, and checks that nothing
/// went wrong.
pub fn run_one(
    which: Impl,
    mode: Mode,
    spin: u32,
    pages: u32,
    opts: &Options,
    cpus: Option<(usize, usize)>,
    lat: &mut Vec<u64>,
) -> Result<RunResult, Error> {
    let memfd = xenmq_sys::memfd(c"xenmq-bench", SHM_LEN, MemfdFlags::empty())?;
    let map = Mapping::file(&memfd, 0, SHM_LEN, true)?;
    let shm = map.region();
    let ctl = shm.subregion(0, CTL_LEN)?;
    let ring = shm.subregion(RING_OFF, ring_bytes(pages))?;
    let data = shm.subregion(DATA_OFF, DATA_LEN)?;
    let ev = Events {
        back: EventFd::new(EventfdFlags::empty())?,
        front: EventFd::new(EventfdFlags::empty())?,
    };
    let nslots = slots(which, pages)?;

    // The frontend lays out the ring before the backend attaches.
    let mut sock_peer = None;
    let mut front = match which {
        Impl::CRing => {
            let (c, size) = cring::CFrontRing::init(ring, data)?;
            if size != nslots {
                return Err(Error::Setup(format!(
                    "C ring has {size} slots, expected {nslots}"
                )));
            }
            AnyFront::C(c, u64::from(size))
        }
        Impl::Compat | Impl::Native => {
            fn front<'e, P: xring::BenchProtocol>(
                ring: Region,
                data: Region,
                ev: &'e Events,
                spin: u32,
                nslots: u32,
            ) -> Result<AnyFront<'e>, Error> {
                let f = xring::Front::<P>::new(ring, data, &ev.front, &ev.back, spin)?;
                if f.slots() != nslots {
                    return Err(Error::Setup(format!(
                        "{} ring has {} slots, expected {nslots}",
                        P::NAME,
                        f.slots()
                    )));
                }
                Ok(AnyFront::Driver(Box::new(f)))
            }
            match (which, pages) {
                (Impl::Compat, 1) => front::<Compat1>(ring, data, &ev, spin, nslots)?,
                (Impl::Compat, _) => front::<Compat4>(ring, data, &ev, spin, nslots)?,
                (_, 1) => front::<Native1>(ring, data, &ev, spin, nslots)?,
                (_, _) => front::<Native4>(ring, data, &ev, spin, nslots)?,
            }
        }
        Impl::Socket => {
            let (a, b) = socket::pair()?;
            sock_peer = Some(b);
            AnyFront::Socket(socket::Front::new(a, nslots))
        }
    };
    let spec = PeerSpec {
        what: PeerKind::Ring(which),
        pages,
        spin,
        memfd: memfd.as_raw_fd(),
        ev_back: ev.back.raw(),
        ev_front: ev.front.raw(),
        sock: sock_peer.as_ref().map_or(-1, |s| s.as_raw_fd()),
        cpu: cpus.map_or(-1, |c| c.1 as i64),
    };
    let limit = (opts.budget + opts.warmup) * 20 + Duration::from_secs(30);
    let mut peer = spawn_peer(&spec, limit)?;
    drop(sock_peer);
    peer.wait_ready(&ctl)?;

    front.run(&ev, spin, mode, opts.warmup, lat)?;
    // Relaxed: the backend's counters are statistics; the snapshot may be a
    // notification early or late, which does not matter over a run.
    let n0 = ctl.load_u64(CTL_NOTIFIES, Ordering::Relaxed)?;
    let out = front.run(&ev, spin, mode, opts.budget, lat)?;
    let n1 = ctl.load_u64(CTL_NOTIFIES, Ordering::Relaxed)?;
    if std::env::var_os("XENMQ_BENCH_DEBUG").is_some() {
        eprintln!("{} {}: {:?}", which.name(), mode.name(), out);
    }
    lat.sort_unstable();
    let samples = lat.clone();
    front.run(&ev, spin, Mode::Stop, opts.budget, lat)?;
    peer.finish()?;
    let back_errors = ctl.load_u64(CTL_ERRORS, Ordering::Relaxed)?;
    if out.errors != 0 || back_errors != 0 {
        return Err(Error::Setup(format!(
            "{} {}: {} bad responses, {} bad requests",
            which.name(),
            mode.name(),
            out.errors,
            back_errors
        )));
    }
    if out.ops == 0 {
        return Err(Error::Setup(format!(
            "{} {}: no request completed",
            which.name(),
            mode.name()
        )));
    }
    drop(front);
    drop(map);
    Ok(RunResult {
        front: out,
        back_notifies: n1.saturating_sub(n0),
        lat: samples,
    })
}

// --- the whole benchmark ------------------------------------------------------

/// One figure: its samples over the repetitions.
#[derive(Debug, Clone)]
pub struct Figure {
    /// `IMPL.MODE.FIGURE`, or `floor.WHAT.FIGURE`.
    pub name: String,
    /// Unit of the samples.
    pub unit: &'static str,
    /// One sample per repetition.
    pub samples: Vec<f64>,
}

impl Figure {
    /// Median, min, max of the samples.
    pub fn stats(&self) -> (f64, f64, f64) {
        report::stats(&self.samples)
    }
}

/// All figures of a benchmark, in the order they were first recorded.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    order: Vec<String>,
    map: BTreeMap<String, Figure>,
}

impl Figures {
    /// Adds a sample.
    pub fn add(&mut self, name: String, unit: &'static str, v: f64) {
        if !self.map.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.map
            .entry(name.clone())
            .or_insert_with(|| Figure {
                name,
                unit,
                samples: Vec::new(),
            })
            .samples
            .push(v);
    }

    /// A figure by name.
    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.map.get(name)
    }

    /// Every figure, in recording order.
    pub fn iter(&self) -> impl Iterator<Item = &Figure> {
        self.order.iter().filter_map(|n| self.map.get(n))
    }

    /// Adds every sample of `other`, in its recording order.
    pub fn merge(&mut self, other: Figures) {
        let Figures { order, mut map } = other;
        for name in order {
            if let Some(f) = map.remove(&name) {
                for v in f.samples {
                    self.add(name.clone(), f.unit, v);
                }
            }
        }
    }
}

/// How long the cache-line probe around each mode's runs measures.
const PROBE: Duration = Duration::from_millis(5);
/// How far the probe may move during a mode's runs (as a factor) before
/// they are run again: beyond it, the two CPUs moved closer or further
/// apart while the contenders ran, and their ratios would compare runs on
/// different machines.
const PROBE_MOVE: f64 = 1.5;
/// How many times a mode's runs are repeated when the probe moved.
const PROBE_RETRIES: u32 = 2;

/// How many times a mode's runs are tried for a probe inside
/// `--probe-ns` before the benchmark gives up.
const BAND_RETRIES: u32 = 40;
/// The pause between those tries.
const BAND_PAUSE: Duration = Duration::from_millis(500);

/// What the probes around each mode's runs saw.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stability {
    /// The lowest and highest probe (ns), if any ran.
    pub range: Option<(f64, f64)>,
    /// Runs measured: all contenders of one mode in one repetition, or one
    /// repetition's two-thread floors.
    pub runs: u32,
    /// Of those, run again because the probe moved during them (or was
    /// outside `--probe-ns`).
    pub repeated: u32,
    /// Kept although the probe still moved after every retry.
    pub unsettled: u32,
    /// The band of `--probe-ns`, if one was asked for.
    pub band: Option<(f64, f64)>,
}

impl Stability {
    fn saw(&mut self, ns: f64) {
        let (lo, hi) = self.range.unwrap_or((ns, ns));
        self.range = Some((lo.min(ns), hi.max(ns)));
    }

    /// Whether the probe moved too far between `before` and `after`.
    pub fn moved(before: f64, after: f64) -> bool {
        if !(before.is_finite() && after.is_finite()) {
            return true;
        }
        let (lo, hi) = (before.min(after), before.max(after));
        hi > lo * PROBE_MOVE
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        let range = match self.range {
            Some((lo, hi)) => {
                format!("cache-line probe {lo:.0}..{hi:.0} ns around the measured runs")
            }
            None => "no probe ran".into(),
        };
        let why = match self.band {
            Some((lo, hi)) => {
                format!("the probe moved more than {PROBE_MOVE}x during them or left {lo}..{hi} ns (kept: only runs inside)")
            }
            None => format!("the probe moved more than {PROBE_MOVE}x during them"),
        };
        format!(
            "machine: {range}; {} of {} measured runs repeated because {why}, {} kept unsettled",
            self.repeated, self.runs, self.unsettled
        )
    }
}

/// The modes of the issue: (mode, spin?) pairs.
pub const MODES: [(Mode, bool); 6] = [
    (Mode::Tput, false),
    (Mode::Tput, true),
    (Mode::Lat, false),
    (Mode::Lat, true),
    (Mode::Bulk, false),
    (Mode::Bulk, true),
];

/// `tput.block`, `lat.spin.4p`, ...
pub fn mode_name(mode: Mode, spin: bool, pages: u32) -> String {
    let wait = if spin { "spin" } else { "block" };
    let suffix = if pages == 1 {
        String::new()
    } else {
        format!(".{pages}p")
    };
    format!("{}.{wait}{suffix}", mode.name())
}

fn record(figs: &mut Figures, which: Impl, mode: Mode, spin: bool, pages: u32, r: &RunResult) {
    let base = format!("{}.{}", which.name(), mode_name(mode, spin, pages));
    let ops = r.front.ops.max(1) as f64;
    let secs = r.front.elapsed_ns.max(1) as f64 / 1e9;
    match mode {
        Mode::Tput => figs.add(format!("{base}.rate"), "req/s", ops / secs),
        Mode::Bulk => figs.add(format!("{base}.bw"), "GB/s", ops * BUF as f64 / secs / 1e9),
        Mode::Lat => {
            figs.add(
                format!("{base}.p50"),
                "ns",
                report::percentile(&r.lat, 50.0),
            );
            figs.add(
                format!("{base}.p99"),
                "ns",
                report::percentile(&r.lat, 99.0),
            );
        }
        Mode::Stop => {}
    }
    let notifies = (r.front.notifies + r.back_notifies) as f64;
    figs.add(
        format!("{base}.notify"),
        "per 1000 req",
        notifies * 1000.0 / ops,
    );
}

/// Runs the whole benchmark and prints the table; writes JSON and SVG if
/// asked. Returns the figures.
pub fn run(opts: &Options) -> Result<Figures, Error> {
    let cpus = cpus(opts.pin)?;
    if let Some((front_cpu, _)) = cpus {
        pin_to(front_cpu)?;
    }
    let peer_cpu = cpus.map(|c| c.1);
    let mut fr = Framing {
        opts,
        probe: Options {
            budget: PROBE,
            warmup: PROBE / 5,
            ..opts.clone()
        },
        peer_cpu,
        lat: Vec::with_capacity(2_000_000),
        stability: Stability {
            band: opts.probe_band,
            ..Stability::default()
        },
        figs: Figures::default(),
    };
    let combos: Vec<(Mode, bool, u32)> = opts
        .pages
        .iter()
        .flat_map(|&p| MODES.iter().map(move |&(m, s)| (m, s, p)))
        .filter(|&(m, s, _)| opts.modes.is_empty() || opts.modes.contains(&mode_name(m, s, 1)))
        .collect();
    let total = opts.reps as usize * (combos.len() * opts.impls.len() + 2);
    let mut step = 0;
    let tty = opts.progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut progress = |rep: u32, what: &str| {
        step += 1;
        if !opts.progress {
            return;
        }
        let line = format!(
            "[{step:>3}/{total}] rep {}/{} {what:<36} {:>5.1}s",
            rep + 1,
            opts.reps,
            started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if step == 1 || step % 20 == 0 || step == total {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    };
    for rep in 0..opts.reps {
        progress(rep, "floor.memcpy");
        fr.figs.add(
            "floor.memcpy.bw".into(),
            "GB/s",
            floor::memcpy_bw(opts.budget)?,
        );
        progress(rep, "floor.cacheline");
        let mut tries = 0;
        let p50 = loop {
            let p50 = floor::cacheline(opts, peer_cpu, &mut fr.lat)?;
            match opts.probe_band {
                // With --probe-ns, the floor is of the same placement.
                Some((lo, hi)) if !(lo..=hi).contains(&p50) => {
                    if tries == BAND_RETRIES {
                        return Err(Error::Setup(format!(
                            "the cache-line round trip stayed outside {lo}..{hi} ns for {BAND_RETRIES} tries (last {p50:.0} ns)"
                        )));
                    }
                    tries += 1;
                    std::thread::sleep(BAND_PAUSE);
                }
                _ => break p50,
            }
        };
        fr.figs.add("floor.cacheline.p50".into(), "ns", p50);
        progress(rep, "floor.one-cpu");
        for (name, ns) in floor::driver_overhead(opts.budget)? {
            fr.figs.add(format!("floor.{name}.ns"), "ns", ns);
        }
        progress(rep, "floor.two-cpu");
        fr.framed(|batch, _, _| {
            if let Some((_, back_cpu)) = cpus {
                for (name, rate) in floor::two_threads(opts.budget, back_cpu)? {
                    batch.add(format!("floor.{name}.rate"), "req/s", rate);
                }
            }
            Ok(())
        })?;
        for &(mode, spin, pages) in &combos {
            fr.framed(|batch, lat, tries| {
                // Interleave: each repetition starts with a different
                // contender.
                let n = opts.impls.len();
                for k in 0..n {
                    let which = opts.impls[(k + rep as usize) % n];
                    progress(
                        rep,
                        &format!(
                            "{} {}{}",
                            which.name(),
                            mode_name(mode, spin, pages),
                            if tries > 0 { " (again)" } else { "" }
                        ),
                    );
                    let r = run_one(
                        which,
                        mode,
                        if spin { opts.spin } else { 0 },
                        pages,
                        opts,
                        cpus,
                        lat,
                    )?;
                    record(batch, which, mode, spin, pages, &r);
                }
                Ok(())
            })?;
        }
    }
    if tty {
        eprintln!();
    }
    let mut out = std::io::stdout().lock();
    let shown = Options {
        pin: cpus.is_some(),
        ..opts.clone()
    };
    report::table(&mut out, &fr.figs, &shown)?;
    writeln!(out, "\n{}", fr.stability.summary())?;
    report::targets(&mut out, &fr.figs)?;
    if let Some(path) = &opts.json {
        std::fs::write(path, report::json(&fr.figs))?;
    }
    if let Some(path) = &opts.plot {
        std::fs::write(path, report::svg(&fr.figs, opts))?;
    }
    Ok(fr.figs)
}

/// What [`Framing::framed`] measures with and records into.
struct Framing<'a> {
    opts: &'a Options,
    /// The options of the short probe.
    probe: Options,
    peer_cpu: Option<usize>,
    lat: Vec<u64>,
    stability: Stability,
    figs: Figures,
}

impl Framing<'_> {
    /// Measures with `body` (which records into the batch it is given,
    /// with the latency buffer and how many tries came before) between two
    /// short cache-line probes, and keeps the batch once the probe did not
    /// move (and lies in `--probe-ns`, if given); see [`Stability`].
    fn framed(
        &mut self,
        mut body: impl FnMut(&mut Figures, &mut Vec<u64>, u32) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut tries = 0;
        loop {
            let before = floor::cacheline(&self.probe, self.peer_cpu, &mut self.lat)?;
            let mut batch = Figures::default();
            body(&mut batch, &mut self.lat, tries)?;
            let after = floor::cacheline(&self.probe, self.peer_cpu, &mut self.lat)?;
            self.stability.saw(before);
            self.stability.saw(after);
            let moved = Stability::moved(before, after);
            match self.opts.probe_band {
                None if !moved || tries == PROBE_RETRIES => {
                    self.stability.runs += 1;
                    self.stability.unsettled += u32::from(moved);
                    self.figs.merge(batch);
                    return Ok(());
                }
                Some((lo, hi)) => {
                    let inside = |ns: f64| (lo..=hi).contains(&ns);
                    if !moved && inside(before) && inside(after) {
                        self.stability.runs += 1;
                        self.figs.merge(batch);
                        return Ok(());
                    }
                    if tries == BAND_RETRIES {
                        return Err(Error::Setup(format!(
                            "the cache-line probe stayed outside {lo}..{hi} ns for {BAND_RETRIES} tries (last {before:.0} and {after:.0} ns)"
                        )));
                    }
                    // Give the placement time to change.
                    std::thread::sleep(BAND_PAUSE);
                }
                None => {}
            }
            tries += 1;
            self.stability.repeated += u32::from(tries == 1);
        }
    }
}

/// Spawns the cache-line peer; used by [`floor::cacheline`].
fn spawn_cacheline_peer(cpu: Option<usize>, limit: Duration) -> Result<(Peer, Mapping), Error> {
    let memfd = xenmq_sys::memfd(c"xenmq-bench-cl", SHM_LEN, MemfdFlags::empty())?;
    let map = Mapping::file(&memfd, 0, SHM_LEN, true)?;
    let spec = PeerSpec {
        what: PeerKind::CacheLine,
        pages: 1,
        spin: 0,
        memfd: memfd.as_raw_fd(),
        ev_back: -1,
        ev_front: -1,
        sock: -1,
        cpu: cpu.map_or(-1, |c| c as i64),
    };
    let mut peer = spawn_peer(&spec, limit)?;
    peer.wait_ready(&map.region())?;
    Ok((peer, map))
}

#[cfg(test)]
mod tests {
    use super::{parse_args, parse_band, Error, Figures, Stability};

    #[test]
    fn a_probe_band_is_lo_dot_dot_hi() {
        assert_eq!(parse_band("300..600").unwrap(), (300.0, 600.0));
        assert_eq!(parse_band(" 0 .. 200.5").unwrap(), (0.0, 200.5));
        for bad in [
            "300", "600..300", "5..5", "-1..5", "a..b", "..5", "1..inf", "NaN..3",
        ] {
            assert!(matches!(parse_band(bad), Err(Error::Usage(_))), "{bad}");
        }
        let o = parse_args(["--probe-ns", "100..150"].map(Into::into)).unwrap();
        assert_eq!(o.probe_band, Some((100.0, 150.0)));
        assert_eq!(
            parse_args(["--quick"].map(Into::into)).unwrap().probe_band,
            None
        );
        assert!(matches!(
            parse_args(["--probe-ns"].map(Into::into)),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn merged_samples_keep_their_order_and_units() {
        let mut figs = Figures::default();
        figs.add("a.rate".into(), "req/s", 1.0);
        let mut batch = Figures::default();
        batch.add("b.p50".into(), "ns", 5.0);
        batch.add("a.rate".into(), "req/s", 2.0);
        batch.add("b.p50".into(), "ns", 6.0);
        figs.merge(batch);
        let got: Vec<(&str, &str, &[f64])> = figs
            .iter()
            .map(|f| (f.name.as_str(), f.unit, f.samples.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("a.rate", "req/s", &[1.0, 2.0][..]),
                ("b.p50", "ns", &[5.0, 6.0][..])
            ]
        );
    }

    #[test]
    fn a_probe_that_moved_is_told_apart() {
        assert!(!Stability::moved(120.0, 121.0));
        assert!(!Stability::moved(120.0, 179.0));
        assert!(Stability::moved(120.0, 400.0));
        assert!(Stability::moved(400.0, 120.0));
        assert!(Stability::moved(50.0, 120.0));
        // A broken probe (NaN) counts as moved, never as steady.
        assert!(Stability::moved(f64::NAN, 120.0));
        let mut s = Stability::default();
        assert!(s.summary().contains("no probe ran"));
        for ns in [120.0, 400.0, 50.0] {
            s.saw(ns);
        }
        s.runs = 3;
        s.repeated = 1;
        assert_eq!(s.range, Some((50.0, 400.0)));
        assert!(s.summary().contains("50..400 ns"), "{}", s.summary());
        assert!(s.summary().contains("1 of 3 measured runs repeated"));
    }
}
