//! `xenmq demo`: the README's first command runs the echo driver's two
//! processes on an in-process simulated host and exits 0.
#![cfg(feature = "demo")]

use std::process::Command;

#[test]
fn demo_runs_echo_across_two_domains() {
    let out = Command::new(env!("CARGO_BIN_EXE_xenmq"))
        .args(["demo", "3000"])
        .output()
        .expect("run xenmq demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "[backend dom0] connected",
        "[frontend dom1] connected to the backend",
        "[frontend dom1] ping \"hello, dom0\" -> pong \"hello, dom0\"",
        "[frontend dom1] 3000 pings, 32 in flight",
        "[frontend dom1] 300 pings one at a time",
        "[backend dom0] disconnected",
        "[backend dom0] device closed; answered 3301 pings",
        "host: domain 1 holds 0 grants and 0 ports",
        "host: done",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn demo_help_and_bad_counts_do_not_run_it() {
    let xenmq = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xenmq"))
            .args(args)
            .output()
            .expect("run xenmq demo")
    };
    let out = xenmq(&["demo", "--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Usage: xenmq demo [OPTIONS] [COUNT]"),
        "{stdout}"
    );
    assert!(!stdout.contains("host:"), "the demo ran: {stdout}");
    for bad in [&["demo", "abc"][..], &["demo", "0"], &["demo", "5", "6"]] {
        let out = xenmq(bad);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stdout}{stderr}");
        assert!(stderr.contains("Usage: xenmq demo"), "{bad:?}: {stderr}");
        assert!(stdout.is_empty(), "{bad:?}: the demo ran: {stdout}");
    }
}
