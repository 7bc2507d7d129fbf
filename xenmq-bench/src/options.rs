//! What `xenmq bench` is asked to do: its command line (clap, shared by
//! `xenmq bench`, the `xenmq-bench` binary and `cargo bench`) and the
//! settings it resolves to ([`Options`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser as _;

use crate::{mode_name, Impl, MODES};

/// What the figures mean: the end of `--help` and of the report.
pub const LEGEND: &str = "\
Figures are named CONTENDER.MODE.WAIT[.4p].FIGURE:
  tput     throughput: 64-byte requests with the ring kept full; rate in requests/s
  lat      latency: one request in flight, each round trip timed; p50 and p99
  bulk     bandwidth: each request names a 4 KiB buffer in shared pages that the
           frontend fills and the backend copies out and checks; bw in GB/s
  block    an end with nothing to do arms its event channel and sleeps until notified
  spin     an end with nothing to do first polls the ring (--spin times), then sleeps
  4p       on a ring of 4 pages (without it: 1 page)
  notify   notifications both ends sent (eventfd or socket writes), per 1000 requests:
           each one wakes the other process
  floor.*  what the machine allows, without a ring between processes: memcpy (4 KiB
           copies on one CPU), cacheline (one atomic word bounced between the two CPUs),
           ring-*/driver-* (ns per request through both ends of a ring on one CPU,
           raw ring or Client/Server), threads-* (the same with the backend in a thread
           on the other CPU)
  mq.*     a named queue (xenmq_runtime::mq) between two simulated domains, one
           thread each on the two CPUs: tput (one sender, one receiver, rate),
           lat (a message there and one back through a second queue), fanin.N
           (N senders in N domains into one receiver, rate in all)
Ratios (x) are to c-ring, of the medians shown: this contender's median / c-ring's.
Higher is better for rate and bw, lower for p50, p99 and notify; n/a where c-ring's
median is 0 or missing.";

const ABOUT: &str = "\
Runs xenmq's rings, a C driver on xen/io/ring.h and a Unix socket pair side by
side (two processes, shared memfd pages, eventfd notifications) and prints the
median [min..max] of each figure over the repetitions, with ratios to c-ring.
The xenmq contenders run through the public driver API (Client in the frontend
process, Server and a Backend in the backend process), on the ring.h-compatible
layout (xenmq-compat) or the native one (xenmq-native). Each mode's runs are
framed by a short cache-line probe between the two CPUs and measured again when
it moved (the CPUs changed placement meanwhile).";

/// `xenmq bench`'s command line.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(long_about = ABOUT, after_long_help = LEGEND)]
pub struct Args {
    /// The quick setting: 5 repetitions of 50 ms runs (else 7 of 250 ms)
    #[arg(long)]
    pub quick: bool,
    /// Repetitions: each contender runs once per repetition and mode
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: Option<u32>,
    /// Measured time of each run, in ms
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_ms: Option<u64>,
    /// How many times a spinning end polls the ring before it sleeps
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub spin: u32,
    /// Do not pin the two processes to two CPUs
    #[arg(long)]
    pub no_pin: bool,
    /// Contenders, comma-separated: c-ring, xenmq-compat, xenmq-native,
    /// socket [default: all]
    #[arg(long, value_name = "IMPL,...", value_delimiter = ',', value_parser = parse_impl)]
    pub only: Vec<Impl>,
    /// Modes, comma-separated: tput.block, tput.spin, lat.block, lat.spin,
    /// bulk.block, bulk.spin [default: all]
    #[arg(long, value_name = "MODE,...", value_delimiter = ',', value_parser = parse_mode)]
    pub modes: Vec<String>,
    /// Ring sizes in pages, comma-separated: 1 and/or 4 [default: 1,4]
    #[arg(long, value_name = "PAGES,...", value_delimiter = ',', value_parser = parse_pages)]
    pub pages: Vec<u32>,
    /// Write the report to FILE as JSON: every figure (median, min, max,
    /// samples), the settings, the machine and the version. With `-`, to
    /// stdout (the table goes to stderr; a failure is `{"error": "..."}`)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the ratios to c-ring to FILE as SVG
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// No progress line on stderr
    #[arg(long)]
    pub no_progress: bool,
    /// Keep only runs whose cache-line probe lies in LO..HI ns, waiting for
    /// the machine to get there (up to a limit): one placement's figures
    #[arg(long, value_name = "LO..HI", value_parser = parse_band)]
    pub probe_ns: Option<(f64, f64)>,
    /// Leave out the named-queue figures (mq.*; also left out with --only)
    #[arg(long)]
    pub no_mq: bool,
    /// What `cargo bench` passes; ignored
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// The `xenmq-bench` binary's (and `cargo bench`'s) command line: the same
/// options as `xenmq bench`.
#[derive(Debug, clap::Parser)]
#[command(name = "xenmq-bench", version)]
struct Standalone {
    #[command(flatten)]
    args: Args,
}

/// Parses a command line (without the program name) into settings.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, clap::Error> {
    let argv = std::iter::once(OsString::from("xenmq-bench")).chain(args);
    Ok(Standalone::try_parse_from(argv)?.args.options())
}

/// Parses an argument list (without the program name) into options.
pub(crate) fn parse_cli<I: IntoIterator<Item = OsString>>(args: I) -> Result<Args, clap::Error> {
    let argv = std::iter::once(OsString::from("xenmq-bench")).chain(args);
    Standalone::try_parse_from(argv).map(|s| s.args)
}

/// The usage line of the `xenmq-bench` binary.
pub(crate) fn usage() -> clap::builder::StyledStr {
    use clap::CommandFactory as _;
    Standalone::command().render_usage()
}

fn parse_impl(s: &str) -> Result<Impl, String> {
    let names: Vec<&str> = Impl::ALL.iter().map(|i| i.name()).collect();
    let which = Impl::parse(s)
        .ok_or_else(|| format!("unknown contender `{s}` (known: {})", names.join(", ")))?;
    if let Some(why) = which.absent() {
        return Err(format!("{} is not in this build: {why}", which.name()));
    }
    Ok(which)
}

fn parse_mode(s: &str) -> Result<String, String> {
    let known: Vec<String> = MODES.iter().map(|&(m, w)| mode_name(m, w, 1)).collect();
    if known.iter().any(|k| k == s) {
        Ok(s.to_owned())
    } else {
        Err(format!("unknown mode `{s}` (known: {})", known.join(", ")))
    }
}

fn parse_pages(s: &str) -> Result<u32, String> {
    match s {
        "1" => Ok(1),
        "4" => Ok(4),
        _ => Err(format!("`{s}`: --pages takes 1 and/or 4")),
    }
}

/// Parses `LO..HI` (ns, LO < HI, both finite and non-negative).
pub fn parse_band(v: &str) -> Result<(f64, f64), String> {
    let bad = || format!("--probe-ns takes LO..HI in ns, as 300..600, not `{v}`");
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

impl Args {
    /// The settings these options ask for.
    pub fn options(&self) -> Options {
        let mut o = if self.quick {
            Options::quick()
        } else {
            Options::full()
        };
        if let Some(reps) = self.reps {
            o.reps = reps;
        }
        if let Some(ms) = self.budget_ms {
            o.budget = Duration::from_millis(ms.max(1));
        }
        o.warmup = (o.budget / 5).max(Duration::from_millis(2));
        o.spin = self.spin;
        o.pin = !self.no_pin;
        if !self.only.is_empty() {
            o.impls.clear();
            for &i in &self.only {
                if !o.impls.contains(&i) {
                    o.impls.push(i);
                }
            }
        }
        o.modes = self.modes.clone();
        if !self.pages.is_empty() {
            o.pages.clear();
            for &p in &self.pages {
                if !o.pages.contains(&p) {
                    o.pages.push(p);
                }
            }
        }
        o.json = self.json.clone();
        o.plot = self.plot.clone();
        o.progress = !self.no_progress;
        o.probe_band = self.probe_ns;
        o.mq = o.mq && !self.no_mq && self.only.is_empty();
        o
    }
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
    pub json: Option<PathBuf>,
    /// Where to draw the ratios as SVG.
    pub plot: Option<PathBuf>,
    /// Show progress on stderr.
    pub progress: bool,
    /// Keep only runs whose cache-line probe (before and after) lies in
    /// this band, in ns (`--probe-ns LO..HI`): the figures of one placement
    /// of the two CPUs.
    pub probe_band: Option<(f64, f64)>,
    /// Measure the named queue (`mq.*`) beside the rings.
    pub mq: bool,
}

impl Options {
    /// Whether `--json -` asked for the report on stdout.
    pub fn json_to_stdout(&self) -> bool {
        self.json.as_deref() == Some(std::path::Path::new("-"))
    }

    /// The full run (a few minutes).
    pub fn full() -> Options {
        Options {
            reps: 7,
            budget: Duration::from_millis(250),
            warmup: Duration::from_millis(40),
            spin: 4096,
            pin: true,
            impls: Impl::built().collect(),
            pages: vec![1, 4],
            modes: Vec::new(),
            json: None,
            plot: None,
            progress: true,
            probe_band: None,
            mq: true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_band_is_lo_dot_dot_hi() {
        assert_eq!(parse_band("300..600").unwrap(), (300.0, 600.0));
        assert_eq!(parse_band(" 0 .. 200.5").unwrap(), (0.0, 200.5));
        for bad in [
            "300", "600..300", "5..5", "-1..5", "a..b", "..5", "1..inf", "NaN..3",
        ] {
            assert!(parse_band(bad).is_err(), "{bad}");
        }
        let o = parse_args(["--probe-ns", "100..150"].map(Into::into)).unwrap();
        assert_eq!(o.probe_band, Some((100.0, 150.0)));
        assert_eq!(
            parse_args(["--quick"].map(Into::into)).unwrap().probe_band,
            None
        );
        let e = parse_args(["--probe-ns"].map(Into::into)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn options_take_both_spellings_and_lists() {
        let o = parse_args(
            [
                "--reps=3",
                "--budget-ms",
                "20",
                "--only",
                "xenmq-native,socket",
                "--pages=4",
                "--modes",
                "lat.spin",
                "--bench",
            ]
            .map(Into::into),
        )
        .unwrap();
        assert_eq!(o.reps, 3);
        assert_eq!(o.budget, Duration::from_millis(20));
        assert_eq!(o.warmup, Duration::from_millis(4));
        assert_eq!(o.impls, [Impl::Native, Impl::Socket]);
        assert_eq!(o.pages, [4]);
        assert_eq!(o.modes, ["lat.spin"]);
        for bad in [
            &["--only", "nope"][..],
            &["--modes", "tput"],
            &["--pages", "2"],
            &["--reps", "0"],
            &["--budget-ms", "0"],
            &["--spin", "-1"],
        ] {
            let e = parse_args(bad.iter().map(Into::into)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
