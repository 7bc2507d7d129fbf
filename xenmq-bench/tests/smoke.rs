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

#[test]
fn tiny_full_run_writes_every_figure() {
    let tmp = tempfile::Builder::new()
        .prefix("xenmq-bench-smoke-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
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
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["options"]["reps"], 2, "{}", doc["options"]);
    assert_eq!(doc["options"]["budget_ms"], 3.0, "{}", doc["options"]);
    assert_eq!(doc["options"]["spin"], 256, "{}", doc["options"]);
    assert!(
        doc["machine"]["cpus"].as_u64().is_some_and(|n| n > 0),
        "{}",
        doc["machine"]
    );
    assert_eq!(doc["stability"]["runs"], 26, "{}", doc["stability"]);
    let figures = doc["figures"].as_array().expect("figures");
    let num = |f: &serde_json::Value, key: &str| -> f64 {
        f[key].as_f64().unwrap_or_else(|| panic!("{key} of {f}"))
    };
    let name = |f: &serde_json::Value| f["name"].as_str().expect("name").to_owned();
    let names: Vec<String> = figures.iter().map(name).collect();
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
                        assert!(names.contains(&name), "{name} missing from {text}");
                    }
                }
            }
        }
    }
    for n in ["mq.tput.rate", "mq.lat.p50", "mq.lat.p99"]
        .into_iter()
        .map(String::from)
        .chain([1, 2, 4, 8].map(|k| format!("mq.fanin.{k}.rate")))
    {
        assert!(names.contains(&n), "{n} missing from {text}");
    }
    assert!(stdout.contains("named queue (mq)"), "{stdout}");
    assert!(names.iter().any(|n| n == "floor.memcpy.bw"));
    assert!(names.iter().any(|n| n == "floor.cacheline.p50"));
    for f in figures {
        let (med, min, max) = (num(f, "median"), num(f, "min"), num(f, "max"));
        assert!(min <= med && med <= max, "{f}");
        if name(f).ends_with(".notify") {
            assert!(min >= 0.0, "{f}");
        } else {
            assert!(min > 0.0, "{f}");
        }
        // Every repetition's sample, within the range.
        let samples = f["samples"].as_array().expect("samples");
        assert!(!samples.is_empty(), "{f}");
        for v in samples {
            let v = v.as_f64().unwrap_or_else(|| panic!("sample of {f}"));
            assert!(min <= v && v <= max, "{f}");
        }
    }
    // Blocking waits notify: each latency round trip needs a wake-up.
    for f in figures {
        if name(f) == "c-ring.lat.block.notify" {
            assert!(num(f, "median") > 500.0, "{f}");
        }
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("xenmq-native") && svg.contains("xenmq-compat"));
    drop(tmp);
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
