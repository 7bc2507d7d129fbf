//! The frontend side: one run of one contender in one mode ([`run_one`]),
//! and the whole benchmark around it ([`run`]): repetitions, interleaving,
//! the floors, the probes that frame each mode's runs, progress.

use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use xenmq::shm::Region;
use xenmq::sync::Ordering;
use xenmq_sys::process::{allowed_cpus, pin_to};
use xenmq_sys::{EventFd, EventfdFlags, Mapping, MemfdFlags};

use crate::options::Options;
use crate::peer::{
    ring_bytes, slots, spawn_peer, PeerKind, PeerSpec, CTL_ERRORS, CTL_LEN, CTL_NOTIFIES, DATA_LEN,
    DATA_OFF, RING_OFF, SHM_LEN,
};
use crate::proto::{Compat1, Compat4, Native1, Native4, BUF};
use crate::report::{self, Figures};
use crate::{floor, mode_name, socket, xring, Error, FrontOut, Impl, Mode, MODES};

/// The frontend of one run, whichever the contender.
enum AnyFront<'e> {
    #[cfg(xenmq_cring)]
    C(crate::cring::CFrontRing, u64),
    Driver(Box<dyn xring::Phase + 'e>),
    Socket(socket::Front),
}

impl AnyFront<'_> {
    // `ev` is the C frontend's alone: the others hold their own.
    #[cfg_attr(not(xenmq_cring), allow(unused_variables))]
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
            #[cfg(xenmq_cring)]
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
        #[cfg(not(xenmq_cring))]
        Impl::CRing => {
            return Err(Error::Setup(format!(
                "c-ring is not in this build: {}",
                crate::C_RING_ABSENT
            )))
        }
        #[cfg(xenmq_cring)]
        Impl::CRing => {
            let (c, size) = crate::cring::CFrontRing::init(ring, data)?;
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
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
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
    pub(crate) fn saw(&mut self, ns: f64) {
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
    // Per repetition: four floors, then every contender in every mode.
    let mut progress = Progress {
        on: opts.progress,
        tty: opts.progress && std::io::stderr().is_terminal(),
        done: 0,
        total: opts.reps as usize * (4 + combos.len() * opts.impls.len() + usize::from(opts.mq)),
        reps: opts.reps,
        started: Instant::now(),
    };
    for rep in 0..opts.reps {
        progress.step(rep, "floor.memcpy", false);
        fr.figs.add(
            "floor.memcpy.bw".into(),
            "GB/s",
            floor::memcpy_bw(opts.budget)?,
        );
        progress.step(rep, "floor.cacheline", false);
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
        progress.step(rep, "floor.one-cpu", false);
        for (name, ns) in floor::driver_overhead(opts.budget)? {
            fr.figs.add(format!("floor.{name}.ns"), "ns", ns);
        }
        progress.step(rep, "floor.two-cpu", false);
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
                    // A run measured again (the probe moved) redoes a
                    // step: it does not count twice.
                    let again = tries > 0;
                    progress.step(
                        rep,
                        &format!(
                            "{} {}{}",
                            which.name(),
                            mode_name(mode, spin, pages),
                            if again { " (again)" } else { "" }
                        ),
                        again,
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
        if opts.mq {
            progress.step(rep, "mq", false);
            crate::mq::measure(opts, cpus, &mut fr.figs, &mut fr.lat)?;
        }
    }
    if progress.tty {
        eprintln!();
    }
    // With `--json -`, stdout is the report's alone: the table goes to
    // stderr.
    let mut out: Box<dyn Write> = if opts.json_to_stdout() {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    let shown = Options {
        pin: cpus.is_some(),
        ..opts.clone()
    };
    report::table(&mut out, &fr.figs, &shown)?;
    writeln!(out, "\n{}", fr.stability.summary())?;
    report::targets(&mut out, &fr.figs)?;
    drop(out);
    if let Some(path) = &opts.json {
        let json = report::Report::new(&fr.figs, &shown, &fr.stability).json();
        if opts.json_to_stdout() {
            std::io::stdout().lock().write_all(json.as_bytes())?;
        } else {
            std::fs::write(path, json)?;
        }
    }
    if let Some(path) = &opts.plot {
        std::fs::write(path, report::svg(&fr.figs, opts))?;
    }
    Ok(fr.figs)
}

/// The progress line on stderr: `[done/total] rep r/R what elapsed`, where
/// `done` never passes `total` (a run measured again redoes its step).
struct Progress {
    on: bool,
    tty: bool,
    done: usize,
    total: usize,
    reps: u32,
    started: Instant,
}

impl Progress {
    /// Shows the step about to run; `again` when it is a step shown before.
    fn step(&mut self, rep: u32, what: &str, again: bool) {
        if !again {
            self.done = (self.done + 1).min(self.total);
        }
        if !self.on {
            return;
        }
        let (done, total) = (self.done, self.total);
        let line = format!(
            "[{done:>3}/{total}] rep {}/{} {what:<36} {:>5.1}s",
            rep + 1,
            self.reps,
            self.started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if !again && (done == 1 || done % 20 == 0 || done == total) {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
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

#[cfg(test)]
mod tests {
    use super::Stability;

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
