//! `xenmq bench`: xenmq's rings measured side by side with a C driver built
//! on the genuine `xen/io/ring.h` macros and with a Unix socket pair.
//!
//! Every run is two processes — this one as the frontend and a re-executed
//! copy of the running binary as the backend ([`peer::PEER_ENV`] tells it so) —
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
//! # The figures (`IMPL.MODE.WAIT[.4p].FIGURE`; [`options::LEGEND`])
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
//! Without Xen's headers (`xen/io/ring.h`, from libxen-dev, looked for in
//! `$XEN_INCLUDE_DIR` or `/usr/include`) the C contender is not built: the
//! build says so as a warning, the report says so, and the others run.
//!
//! The files: [`options`] (the command line), [`peer`] (the backend
//! process), [`run`](mod@run) (the frontend's runs and the whole benchmark),
//! [`report`] (figures, statistics, table, JSON, SVG), and the contenders'
//! loops ([`xring`], [`socket`], `c/cring.c`) and [`floor`]s.
//!
//! Entry points: [`main`] parses a command line (the `xenmq-bench` binary
//! and `cargo bench` call it), [`main_with`] runs parsed options (`xenmq
//! bench`), and [`peer::peer_main`] is what the re-executed backend process
//! runs.
#![deny(unsafe_code)]

// The C contender, where build.rs found Xen's headers to build it.
#[cfg(xenmq_cring)]
mod cring;
pub mod floor;
pub mod mq;
pub mod options;
pub mod peer;
pub mod proto;
pub mod report;
pub mod run;
pub mod socket;
pub mod xring;

#[cfg(test)]
mod alloc_test;

use std::ffi::OsString;
use std::process::ExitCode;

use xenmq::error::Chain;

pub use options::Options;
pub use report::{Figure, Figures};
pub use run::{cpus, run, run_one, RunResult, Stability};

/// Whether the C contender (`c/cring.c` on `xen/io/ring.h`) is in this
/// build.
pub const C_RING_BUILT: bool = cfg!(xenmq_cring);

/// Why the C contender is not in this build (when it is not).
pub const C_RING_ABSENT: &str = match option_env!("XENMQ_BENCH_NO_CRING") {
    Some(why) => why,
    None => "built without Xen's headers",
};

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

    /// Why this contender is not in this build, if it is not.
    pub fn absent(self) -> Option<&'static str> {
        match self {
            Impl::CRing if !C_RING_BUILT => Some(C_RING_ABSENT),
            _ => None,
        }
    }

    /// The contenders in this build, c-ring first if it is.
    pub fn built() -> impl Iterator<Item = Impl> {
        Impl::ALL.into_iter().filter(|i| i.absent().is_none())
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

    /// The mode's number in `c/cring.c`.
    #[cfg_attr(not(xenmq_cring), allow(dead_code))]
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

/// Every mode: (what the frontend does, whether the ends spin).
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

/// The command-line entry of the `xenmq-bench` binary and `cargo bench`
/// (`args` without the program name): runs the benchmark, or the backend
/// peer when re-executed with [`peer::PEER_ENV`] set.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    if let Some(code) = peer::peer_main() {
        return code;
    }
    match options::parse_cli(args) {
        Ok(a) => main_with(&a),
        Err(mut e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            // Every usage error shows the usage (clap leaves it out of
            // errors about one value).
            let usage_error =
                !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            if usage_error && e.get(ContextKind::Usage).is_none() {
                e.insert(
                    ContextKind::Usage,
                    ContextValue::StyledStr(options::usage()),
                );
            }
            // Printing fails only when stdout or stderr is closed.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// Runs the benchmark with parsed options (`xenmq bench`), or the backend
/// peer when re-executed with [`peer::PEER_ENV`] set. A failure prints one
/// line and exits 1: on stderr, or with `--json -` as `{"error": "..."}` on
/// stdout.
pub fn main_with(args: &options::Args) -> ExitCode {
    if let Some(code) = peer::peer_main() {
        return code;
    }
    let opts = args.options();
    match run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if opts.json_to_stdout() => {
            println!("{}", serde_json::json!({ "error": Chain(&e).to_string() }));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", Chain(&e));
            ExitCode::FAILURE
        }
    }
}
