//! The figures ([`Figures`]), their statistics, and the output: the
//! terminal table with its legend, the targets, JSON and SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::{Impl, Options, Stability};

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
        stats(&self.samples)
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

/// Median, min and max (NaN for no samples).
pub fn stats(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0], s[n - 1])
}

/// The `p`-th percentile (nearest rank) of sorted samples, as f64.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The ratio of figure `name` to figure `reference`: the ratio of their
/// medians (so that it agrees with the medians the table prints beside it),
/// with the lowest and highest of the per-repetition ratios (both figures
/// are recorded once per repetition, seconds apart, so dividing sample by
/// sample cancels what the machine did to both; the ratio of the medians
/// always lies between them). Without paired samples, the range is the
/// ratio itself. `None` when the reference's median is not positive (two
/// zeros have no ratio) or a median is missing.
pub fn ratio(figs: &Figures, name: &str, reference: &str) -> Option<(f64, f64, f64)> {
    let (a, b) = (figs.get(name)?, figs.get(reference)?);
    let (x, y) = (a.stats().0, b.stats().0);
    if !(x.is_finite() && y.is_finite() && y > 0.0) {
        return None;
    }
    let r = x / y;
    if a.samples.len() == b.samples.len() {
        let paired: Vec<f64> = a
            .samples
            .iter()
            .zip(&b.samples)
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| x / y)
            .collect();
        if paired.len() == a.samples.len() {
            let (_, min, max) = stats(&paired);
            return Some((r, min.min(r), max.max(r)));
        }
    }
    Some((r, r, r))
}

/// Whether bigger is better for a figure (rates and bandwidths).
pub fn higher_is_better(figure: &str) -> bool {
    figure.ends_with(".rate") || figure.ends_with(".bw")
}

fn fmt_value(unit: &str, v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match unit {
        "req/s" => format!("{:.2}M", v / 1e6),
        "ns" if v >= 10_000.0 => format!("{:.1}us", v / 1e3),
        "ns" if v < 100.0 => format!("{v:.1}ns"),
        "ns" => format!("{v:.0}ns"),
        "GB/s" => format!("{v:.2}"),
        _ => format!("{v:.1}"),
    }
}

fn unit_label(unit: &str) -> &str {
    match unit {
        "req/s" => "req/s",
        "ns" => "time",
        "GB/s" => "GB/s",
        _ => "/1k req",
    }
}

/// The rows of the table: `MODE.FIGURE` suffixes in recording order.
fn rows(figs: &Figures, impls: &[Impl]) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for f in figs.iter() {
        for i in impls {
            if let Some(rest) = f
                .name
                .strip_prefix(i.name())
                .and_then(|r| r.strip_prefix('.'))
            {
                if !rows.iter().any(|r| r == rest) {
                    rows.push(rest.to_owned());
                }
            }
        }
    }
    rows
}

/// Prints the table: one row per figure, one column per contender, each
/// cell `median [min..max] ratio-to-c-ring` (`n/a` where c-ring's median
/// is 0 or missing), then the floors and the legend.
pub fn table(out: &mut impl Write, figs: &Figures, opts: &Options) -> io::Result<()> {
    let impls = &opts.impls;
    writeln!(
        out,
        "\nxenmq bench: median [min..max] over {} interleaved repetitions, {} ms per run, {}",
        opts.reps,
        opts.budget.as_millis(),
        if opts.pin {
            "pinned to two CPUs"
        } else {
            "not pinned"
        }
    )?;
    match Impl::CRing.absent() {
        Some(why) => writeln!(out, "c-ring is not in this build, so no ratios: {why}\n")?,
        None if !impls.contains(&Impl::CRing) => {
            writeln!(out, "c-ring did not run (--only): no ratios\n")?
        }
        None => writeln!(
            out,
            "x: ratio to c-ring's median; higher is better for rate and bw, lower for p50, p99\nand notify (legend below)\n"
        )?,
    }
    let mut header = format!("{:<22} {:<8}", "figure", "unit");
    for i in impls {
        let _ = write!(header, " {:<31}", i.name());
    }
    writeln!(out, "{}", header.trim_end())?;
    for row in rows(figs, impls) {
        let reference = format!("c-ring.{row}");
        let mut line = String::new();
        let mut unit = "";
        for i in impls {
            let cell = match figs.get(&format!("{}.{row}", i.name())) {
                Some(f) => {
                    unit = f.unit;
                    let (med, min, max) = f.stats();
                    let ratio = match ratio(figs, &f.name, &reference) {
                        _ if *i == Impl::CRing || !impls.contains(&Impl::CRing) => String::new(),
                        Some((r, _, _)) => format!(" {r:.2}x"),
                        None => " n/a".to_owned(),
                    };
                    format!(
                        "{} [{}..{}]{ratio}",
                        fmt_value(f.unit, med),
                        fmt_value(f.unit, min),
                        fmt_value(f.unit, max)
                    )
                }
                None => "-".into(),
            };
            let _ = write!(line, " {cell:<31}");
        }
        writeln!(
            out,
            "{}",
            format!("{row:<22} {:<8}{line}", unit_label(unit)).trim_end()
        )?;
    }
    writeln!(out)?;
    let floors: Vec<&Figure> = figs
        .iter()
        .filter(|f| f.name.starts_with("floor."))
        .collect();
    // The floors' names are longer than the modes': a column of their own.
    let width = floors
        .iter()
        .map(|f| f.name.len() - "floor.".len())
        .max()
        .unwrap_or(0)
        .max(22);
    for f in floors {
        let (med, min, max) = f.stats();
        writeln!(
            out,
            "{:<width$} {:<8} {} [{}..{}]",
            f.name.trim_start_matches("floor."),
            unit_label(f.unit),
            fmt_value(f.unit, med),
            fmt_value(f.unit, min),
            fmt_value(f.unit, max)
        )?;
    }
    let queue: Vec<&Figure> = figs.iter().filter(|f| f.name.starts_with("mq.")).collect();
    if !queue.is_empty() {
        writeln!(
            out,
            "\nnamed queue (mq), ratios to the per-device ring (xenmq-native, 1 page, spin) and c-ring:"
        )?;
        for f in queue {
            let (med, min, max) = f.stats();
            let mut line = format!(
                "{:<22} {:<8} {} [{}..{}]",
                f.name.trim_start_matches("mq."),
                unit_label(f.unit),
                fmt_value(f.unit, med),
                fmt_value(f.unit, min),
                fmt_value(f.unit, max)
            );
            if let Some(row) = mq_peer_row(&f.name) {
                for peer in ["xenmq-native", "c-ring"] {
                    if let Some((r, _, _)) = ratio(figs, &f.name, &format!("{peer}.{row}")) {
                        let _ = write!(line, "  {r:.2}x {peer}");
                    }
                }
            }
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "\n{}", crate::options::LEGEND)?;
    Ok(())
}

/// The ring figure an `mq.*` figure compares with.
fn mq_peer_row(name: &str) -> Option<&'static str> {
    match name {
        "mq.tput.rate" => Some("tput.spin.rate"),
        "mq.lat.p50" => Some("lat.spin.p50"),
        "mq.lat.p99" => Some("lat.spin.p99"),
        _ => None,
    }
}

/// A target: a ratio the xenmq contenders aim for, evaluated on medians.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is asked.
    pub what: String,
    /// The measured ratio.
    pub ratio: f64,
    /// Whether it is met.
    pub met: bool,
}

/// Evaluates the targets on what was measured (ratios of medians, see
/// [`ratio`]).
pub fn evaluate(figs: &Figures) -> Vec<Target> {
    let mut t = Vec::new();
    let mut cmp = |what: String, a: String, b: &str, bound: f64, at_least: bool| {
        if let Some((ratio, _, _)) = ratio(figs, &a, b) {
            let met = if at_least {
                ratio >= bound
            } else {
                ratio <= bound
            };
            t.push(Target { what, ratio, met });
        }
    };
    let sizes = ["", ".4p"];
    for contender in ["xenmq-compat", "xenmq-native"] {
        for s in sizes {
            for m in ["tput.block", "tput.spin"] {
                let n = format!("{m}{s}.rate");
                cmp(
                    format!("{contender} {n} >= 1.0x c-ring"),
                    format!("{contender}.{n}"),
                    &format!("c-ring.{n}"),
                    1.0,
                    true,
                );
            }
            for m in ["bulk.block", "bulk.spin"] {
                let n = format!("{m}{s}.bw");
                cmp(
                    format!("{contender} {n} >= 1.0x c-ring"),
                    format!("{contender}.{n}"),
                    &format!("c-ring.{n}"),
                    1.0,
                    true,
                );
            }
            for m in ["lat.block", "lat.spin"] {
                let n = format!("{m}{s}.p50");
                cmp(
                    format!("{contender} {n} <= 1.0x c-ring"),
                    format!("{contender}.{n}"),
                    &format!("c-ring.{n}"),
                    1.0,
                    false,
                );
            }
            let n = format!("tput.spin{s}.rate");
            cmp(
                format!("{contender} {n} >= 5x socket"),
                format!("{contender}.{n}"),
                &format!("socket.{n}"),
                5.0,
                true,
            );
        }
    }
    for s in sizes {
        let n = format!("tput.spin{s}.rate");
        cmp(
            format!("xenmq-native {n} >= 1.5x c-ring"),
            format!("xenmq-native.{n}"),
            &format!("c-ring.{n}"),
            1.5,
            true,
        );
        let n = format!("lat.spin{s}.p50");
        cmp(
            format!("xenmq-native {n} <= 2.5x cache-line round trip"),
            format!("xenmq-native.{n}"),
            "floor.cacheline.p50",
            2.5,
            false,
        );
    }
    cmp(
        "mq tput.rate >= 0.95x xenmq-native tput.spin.rate".into(),
        "mq.tput.rate".into(),
        "xenmq-native.tput.spin.rate",
        0.95,
        true,
    );
    cmp(
        "mq lat.p50 <= 1.05x xenmq-native lat.spin.p50".into(),
        "mq.lat.p50".into(),
        "xenmq-native.lat.spin.p50",
        1.05,
        false,
    );
    t
}

/// Prints the targets (reported, not asserted).
pub fn targets(out: &mut impl Write, figs: &Figures) -> io::Result<()> {
    let t = evaluate(figs);
    if t.is_empty() {
        return Ok(());
    }
    writeln!(out, "\ntargets (reported, not asserted):")?;
    for x in &t {
        writeln!(
            out,
            "  {:<4} {:<58} {:.2}x",
            if x.met { "met" } else { "MISS" },
            x.what,
            x.ratio
        )?;
    }
    let met = t.iter().filter(|x| x.met).count();
    writeln!(out, "  {met} of {} met", t.len())
}

/// What `--json FILE` holds: the benchmark's version, settings and
/// machine, how steady the machine was, and every figure with its samples.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// xenmq's version.
    pub version: &'static str,
    /// The settings the figures were taken with.
    pub options: OptionsReport,
    /// Where they were taken.
    pub machine: Machine,
    /// What the cache-line probes around the runs saw.
    pub stability: &'a Stability,
    /// Every figure, in the order first recorded.
    pub figures: Vec<FigureReport<'a>>,
}

/// The settings, in the report.
#[derive(Debug, Serialize)]
pub struct OptionsReport {
    /// Repetitions.
    pub reps: u32,
    /// Measured time of each run, in ms.
    pub budget_ms: f64,
    /// Untimed warm-up of each run, in ms.
    pub warmup_ms: f64,
    /// Polls of a spinning end before it sleeps.
    pub spin: u32,
    /// Whether the two processes were pinned to two CPUs.
    pub pinned: bool,
    /// The contenders.
    pub contenders: Vec<&'static str>,
    /// Ring sizes in pages.
    pub pages: Vec<u32>,
    /// The modes asked for (empty: all).
    pub modes: Vec<String>,
    /// `--probe-ns`'s band, in ns.
    pub probe_ns: Option<(f64, f64)>,
}

/// The machine, as far as it tells.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `std::env::consts::OS` and `ARCH`.
    pub os: &'static str,
    pub arch: &'static str,
    /// The kernel's release (`/proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
    /// The CPU's model name (`/proc/cpuinfo`).
    pub cpu: Option<String>,
    /// CPUs this process may run on.
    pub cpus: Option<usize>,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.trim().to_owned())
        });
        Machine {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel,
            cpu,
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
        }
    }
}

/// One figure, in the report: its statistics and every sample (`null`
/// where a value is not finite).
#[derive(Debug, Serialize)]
pub struct FigureReport<'a> {
    pub name: &'a str,
    pub unit: &'static str,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: &'a [f64],
}

impl<'a> Report<'a> {
    /// The report of `figs`, taken with `opts` (`opts.pin` as it was
    /// honoured) on this machine.
    pub fn new(figs: &'a Figures, opts: &Options, stability: &'a Stability) -> Report<'a> {
        Report {
            version: env!("CARGO_PKG_VERSION"),
            options: OptionsReport {
                reps: opts.reps,
                budget_ms: opts.budget.as_secs_f64() * 1e3,
                warmup_ms: opts.warmup.as_secs_f64() * 1e3,
                spin: opts.spin,
                pinned: opts.pin,
                contenders: opts.impls.iter().map(|i| i.name()).collect(),
                pages: opts.pages.clone(),
                modes: opts.modes.clone(),
                probe_ns: opts.probe_band,
            },
            machine: Machine::this(),
            stability,
            figures: figs
                .iter()
                .map(|f| {
                    let (median, min, max) = f.stats();
                    FigureReport {
                        name: &f.name,
                        unit: f.unit,
                        median,
                        min,
                        max,
                        samples: &f.samples,
                    }
                })
                .collect(),
        }
    }

    /// As JSON (non-finite values are `null`).
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Only a map with non-string keys fails; the report has none.
            serde_json::json!({ "error": e.to_string() }).to_string()
        });
        s.push('\n');
        s
    }
}

/// Text for an SVG element: `&`, `<` and `>` escaped.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn color(i: Impl) -> &'static str {
    match i {
        Impl::CRing => "#888888",
        Impl::Compat => "#1f77b4",
        Impl::Native => "#2ca02c",
        Impl::Socket => "#d62728",
    }
}

/// A horizontal bar chart of the ratios to c-ring (log scale), one group per
/// figure, whiskers from the min to the max sample.
pub fn svg(figs: &Figures, opts: &Options) -> String {
    let others: Vec<Impl> = opts
        .impls
        .iter()
        .copied()
        .filter(|i| *i != Impl::CRing)
        .collect();
    let rows: Vec<String> = rows(figs, &opts.impls)
        .into_iter()
        .filter(|r| figs.get(&format!("c-ring.{r}")).is_some())
        .collect();
    let (lo, hi) = (-4.0f64, 6.0f64); // log2 range: 1/16x .. 64x
    let (left, width, bar, gap) = (200.0, 640.0, 9.0, 8.0);
    let group = bar * others.len().max(1) as f64 + gap;
    let top = 70.0;
    let height = top + group * rows.len() as f64 + 40.0;
    let x = |ratio: f64| {
        let l = ratio.max(1e-9).log2().clamp(lo, hi);
        left + (l - lo) / (hi - lo) * width
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        left + width + 30.0
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"14\">xenmq bench: ratio to c-ring (log scale; bar: ratio of medians, whiskers: per-repetition min..max)</text>"
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"38\">higher is better for rate and bw, lower for p50, p99, notify</text>"
    );
    for (k, i) in others.iter().enumerate() {
        let lx = left + k as f64 * 130.0;
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"46\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"55\">{}</text>",
            color(*i),
            lx + 14.0,
            i.name()
        );
    }
    for l in (lo as i32)..=(hi as i32) {
        let r = 2f64.powi(l);
        let gx = x(r);
        let stroke = if l == 0 { "#000" } else { "#ddd" };
        let _ = writeln!(
            s,
            "<line x1=\"{gx}\" y1=\"{top}\" x2=\"{gx}\" y2=\"{}\" stroke=\"{stroke}\"/><text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - 35.0,
            height - 22.0,
            if r >= 1.0 { format!("{r}x") } else { format!("1/{}x", 1.0 / r) }
        );
    }
    for (rk, row) in rows.iter().enumerate() {
        let y0 = top + rk as f64 * group;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + group / 2.0,
            xml_text(row)
        );
        let reference = format!("c-ring.{row}");
        for (k, i) in others.iter().enumerate() {
            let Some((med, min, max)) = ratio(figs, &format!("{}.{row}", i.name()), &reference)
            else {
                continue;
            };
            let (x1, xm) = (x(1.0), x(med));
            let y = y0 + k as f64 * bar;
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} {row}: {:.3}x</title></rect>",
                x1.min(xm),
                (xm - x1).abs().max(1.0),
                bar - 1.0,
                color(*i),
                i.name(),
                med
            );
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>",
                x(min),
                y + bar / 2.0,
                x(max),
                y + bar / 2.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_percentiles() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(stats(&[]).0.is_nan());
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
    }

    #[test]
    fn ratios_are_paired_by_repetition() {
        let mut f = Figures::default();
        // Repetition 2 ran on a machine twice as slow for both contenders.
        for (a, b) in [(20.0, 10.0), (10.0, 5.0), (22.0, 10.0)] {
            f.add("x.tput.spin.rate".into(), "req/s", a);
            f.add("c-ring.tput.spin.rate".into(), "req/s", b);
        }
        let (med, min, max) = ratio(&f, "x.tput.spin.rate", "c-ring.tput.spin.rate").unwrap();
        assert_eq!((med, min, max), (2.0, 2.0, 2.2));
        f.add("c-ring.tput.spin.rate".into(), "req/s", 1.0);
        let (med, _, _) = ratio(&f, "x.tput.spin.rate", "c-ring.tput.spin.rate").unwrap();
        assert_eq!(med, 20.0 / 7.5, "unpaired: ratio of medians");
        assert!(ratio(&f, "nope", "c-ring.tput.spin.rate").is_none());
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
    fn ratios_agree_with_the_medians_beside_them() {
        let mut f = Figures::default();
        // Per-repetition ratios 0.33, 2.5 and 0.86 (their median 0.86 would
        // say "slower" beside medians of 5 against 3).
        for (a, b) in [(1.0, 3.0), (5.0, 2.0), (6.0, 7.0)] {
            f.add("xenmq-native.tput.spin.rate".into(), "req/s", a * 1e6);
            f.add("c-ring.tput.spin.rate".into(), "req/s", b * 1e6);
        }
        // Two zeros have no ratio.
        for _ in 0..3 {
            f.add("xenmq-native.tput.spin.notify".into(), "per 1000 req", 0.0);
            f.add("c-ring.tput.spin.notify".into(), "per 1000 req", 0.0);
        }
        let (r, min, max) =
            ratio(&f, "xenmq-native.tput.spin.rate", "c-ring.tput.spin.rate").unwrap();
        assert_eq!(r, 5.0 / 3.0);
        assert!(min <= r && r <= max, "{min} {r} {max}");
        assert!(ratio(
            &f,
            "xenmq-native.tput.spin.notify",
            "c-ring.tput.spin.notify"
        )
        .is_none());
        let mut opts = Options::quick();
        opts.impls = vec![Impl::CRing, Impl::Native];
        let mut out = Vec::new();
        table(&mut out, &f, &opts).unwrap();
        let out = String::from_utf8(out).unwrap();
        let row = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {out}"))
                .to_owned()
        };
        if Impl::CRing.absent().is_none() {
            assert!(
                row("tput.spin.rate ").contains("5.00M [1.00M..6.00M] 1.67x"),
                "{out}"
            );
            assert!(row("tput.spin.notify ").ends_with("n/a"), "{out}");
        } else {
            assert!(
                out.contains("c-ring is not in this build, so no ratios: "),
                "{out}"
            );
        }
        for word in [
            "tput ", "lat ", "bulk ", "block ", "spin ", "4p ", "notify ",
        ] {
            assert!(
                out.contains(&format!("\n  {word}")),
                "legend lacks {word}: {out}"
            );
        }
    }

    #[test]
    fn json_has_every_figure_with_its_samples() {
        let mut f = Figures::default();
        f.add("c-ring.lat.spin.p50".into(), "ns", 140.0);
        f.add("c-ring.lat.spin.p50".into(), "ns", 150.0);
        f.add("floor.memcpy.bw".into(), "GB/s", f64::NAN);
        let stability = Stability::default();
        let opts = Options::quick();
        let j = Report::new(&f, &opts, &stability).json();
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
        let figs = v["figures"].as_array().expect("figures");
        assert_eq!(figs.len(), 2);
        let p50 = &figs[0];
        assert_eq!(p50["name"], "c-ring.lat.spin.p50");
        assert_eq!(p50["unit"], "ns");
        assert_eq!(p50["median"], 145.0);
        assert_eq!(p50["min"], 140.0);
        assert_eq!(p50["max"], 150.0);
        assert_eq!(p50["samples"], serde_json::json!([140.0, 150.0]));
        assert_eq!(figs[1]["median"], serde_json::Value::Null);
        assert_eq!(figs[1]["samples"], serde_json::json!([null]));
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["options"]["reps"], opts.reps);
        assert_eq!(v["options"]["budget_ms"], 50.0);
        assert_eq!(v["machine"]["os"], std::env::consts::OS);
        assert!(v["stability"].is_object(), "{v}");
    }
}
