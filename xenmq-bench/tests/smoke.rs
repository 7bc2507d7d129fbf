//! Runs the whole benchmark for real (two processes per run, the C ring.h
//! contender, the socket, the floors) with tiny budgets, and checks its
//! outputs: every figure of the naming scheme present in the JSON
//! with sane values, an SVG, a table with ratios. A contender that answered
//! wrongly makes the benchmark fail, so this also checks that every
//! contender carries the stream correctly.
#![forbid(unsafe_code)]

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xenmq-bench"))
}

/// The benchmark with tiny runs: 2 repetitions of 3 ms, no progress.
fn tiny() -> Command {
    let mut c = bench();
    c.args(["--reps", "2", "--budget-ms", "3", "--no-progress"]);
    c
}

/// The value of `"key": ` in one JSON object line of the benchmark's output.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\": ");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().trim_matches('"')
}

#[test]
fn tiny_full_run_writes_every_figure() {
    let dir = std::env::temp_dir().join(format!("xenmq-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("out.json"), dir.join("out.svg"));
    let out = tiny()
        .args(["--spin", "256"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "benchmark failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("tput.spin.rate"), "{stdout}");
    assert!(
        stdout.contains("targets (reported, not asserted)"),
        "{stdout}"
    );
    // The probes around every measured run are reported: 2 repetitions of
    // 12 modes and the two-thread floors.
    assert!(stdout.contains("machine: cache-line probe "), "{stdout}");
    assert!(stdout.contains(" of 26 measured runs repeated"), "{stdout}");

    let text = std::fs::read_to_string(&json).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"name\"")).collect();
    let names: Vec<&str> = lines.iter().map(|l| field(l, "name")).collect();
    for imp in ["c-ring", "xenmq-compat", "xenmq-native", "socket"] {
        for size in ["", ".4p"] {
            for (mode, figs) in [
                ("tput", &["rate", "notify"][..]),
                ("lat", &["p50", "p99", "notify"][..]),
                ("bulk", &["bw", "notify"][..]),
            ] {
                for wait in ["block", "spin"] {
                    for fig in figs {
                        let name = format!("{imp}.{mode}.{wait}{size}.{fig}");
                        assert!(names.contains(&name.as_str()), "{name} missing from {text}");
                    }
                }
            }
        }
    }
    assert!(names.contains(&"floor.memcpy.bw"));
    assert!(names.contains(&"floor.cacheline.p50"));
    for l in &lines {
        let (med, min, max): (f64, f64, f64) = (
            field(l, "median").parse().unwrap(),
            field(l, "min").parse().unwrap(),
            field(l, "max").parse().unwrap(),
        );
        assert!(min <= med && med <= max, "{l}");
        if field(l, "name").ends_with(".notify") {
            assert!(min >= 0.0, "{l}");
        } else {
            assert!(min > 0.0, "{l}");
        }
    }
    // Blocking waits notify: each latency round trip needs a wake-up.
    for l in &lines {
        if field(l, "name") == "c-ring.lat.block.notify" {
            let v: f64 = field(l, "median").parse().unwrap();
            assert!(v > 500.0, "{l}");
        }
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("xenmq-native") && svg.contains("xenmq-compat"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_are_usage_errors() {
    let out = bench().args(["--only", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown contender"));
    let out = bench().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--json"));
}

#[test]
fn a_bad_peer_spec_is_refused() {
    let out = bench()
        .env("XENMQ_BENCH_PEER", "c-ring x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_probe_band_keeps_only_runs_inside_it() {
    // A band every placement falls in: the run completes and says so.
    let out = tiny()
        .args(["--modes", "tput.spin", "--pages", "1"])
        .args([
            "--only",
            "c-ring,xenmq-native",
            "--probe-ns",
            "0..1000000000",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("left 0..1000000000 ns (kept: only runs inside)"),
        "{stdout}"
    );
    // 2 repetitions of one mode and the two-thread floors.
    assert!(stdout.contains(" of 4 measured runs repeated"), "{stdout}");
    let out = bench().args(["--probe-ns", "9..3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_progress_counter_never_passes_its_total() {
    // Progress on (not a terminal: a line at the first step, every 20th and
    // the last), 3 repetitions of one mode for two contenders.
    let out = bench()
        .args(["--reps", "3", "--budget-ms", "3", "--modes", "tput.spin"])
        .args(["--pages", "1", "--only", "xenmq-native,socket"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let counts: Vec<(usize, usize)> = stderr
        .lines()
        .filter_map(|l| {
            let inside = l.strip_prefix('[')?.split_once(']')?.0;
            let (done, total) = inside.split_once('/')?;
            Some((done.trim().parse().ok()?, total.parse().ok()?))
        })
        .collect();
    // 3 repetitions of 4 floors and 2 contenders in one mode.
    assert_eq!(counts.first(), Some(&(1, 18)), "{stderr}");
    assert_eq!(counts.last(), Some(&(18, 18)), "{stderr}");
    assert!(counts.iter().all(|&(d, t)| d <= t && t == 18), "{stderr}");
    // The report explains itself.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Figures are named CONTENDER.MODE.WAIT[.4p].FIGURE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("c-ring did not run (--only): no ratios"),
        "{stdout}"
    );
}
