//! Logging: `RUST_LOG` and `-v` choose what goes to stderr, a `RUST_LOG`
//! that does not parse is a usage error, and stdout stays the verb's own.

use std::process::{Command, Output};

fn xenmq(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenmq"));
    cmd.args(args).env_remove("RUST_LOG");
    if let Some(v) = rust_log {
        cmd.env("RUST_LOG", v);
    }
    cmd.output().expect("run xenmq")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_rust_log_that_does_not_parse_is_refused() {
    for bad in ["xenmq=loud", "a=b=c", "xenmq[", "=debug", "xenmq=9"] {
        let o = xenmq(&["completions", "bash"], Some(bad));
        let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
        assert_eq!(o.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stdout.is_empty(), "{bad}: printed {stdout}");
        assert!(
            stderr.contains(&format!("RUST_LOG=`{bad}` is not a log filter")),
            "{bad}: {stderr}"
        );
    }
    // Under --json the refusal is JSON on stdout, with the same exit code.
    let o = xenmq(&["status", "--json"], Some("xenmq=loud"));
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["error"].as_str().unwrap().contains("is not a log filter"));
}

#[test]
fn a_valid_rust_log_is_accepted_and_silent_when_nothing_happens() {
    for good in [
        "",
        "debug",
        "xenmq=debug",
        "warn,xenmq::xenbus=trace",
        "off",
    ] {
        let o = xenmq(&["completions", "bash"], Some(good));
        assert!(o.status.success(), "{good:?}: {}", text(&o.stderr));
        assert!(o.stderr.is_empty(), "{good:?}: {}", text(&o.stderr));
    }
}

/// The demo's device life, as `RUST_LOG=xenmq=debug` shows it, from both
/// processes; `-vv` shows the same, and nothing of it reaches stdout.
#[cfg(feature = "demo")]
#[test]
fn the_log_shows_a_device_s_whole_life() {
    let by_env = xenmq(&["demo", "10"], Some("xenmq=debug"));
    let by_flag = xenmq(&["-vv", "demo", "10"], None);
    for o in [&by_env, &by_flag] {
        let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "{stdout}\n{stderr}");
        assert!(
            !stdout.contains("DEBUG") && !stdout.contains("INFO"),
            "{stdout}"
        );
        let back = r#"device{type="echo" devid=0 domid=0 peer=1 role="backend"}"#;
        let front = r#"device{type="echo" devid=0 domid=1 peer=0 role="frontend"}"#;
        let expect = [
            "domain created domid=1",
            &format!("{back}: xenmq_runtime::device::lifecycle: device started"),
            &format!("{back}: xenmq::xenbus::machine: state changed role=backend from=initialising to=initwait"),
            &format!("{front}: xenmq_runtime::device::lifecycle: ring granted, event channel allocated"),
            &format!("{front}: xenmq::xenbus::machine: state changed role=frontend from=initialising to=initialised"),
            &format!("{back}: xenmq_runtime::device::lifecycle: ring mapped, event channel bound"),
            &format!("{back}: xenmq::xenbus::machine: state changed role=backend from=initwait to=connected"),
            &format!("{front}: xenmq::xenbus::machine: state changed role=frontend from=connected to=closing"),
            &format!("{back}: xenmq_runtime::device::lifecycle: unmapping the ring"),
            &format!("{back}: xenmq::xenbus::machine: state changed role=backend from=closing to=closed"),
            "domain destroyed",
        ];
        // In this order: each line after the one before.
        let mut at = 0;
        for line in expect {
            match stderr[at..].find(line) {
                Some(k) => at += k + line.len(),
                None => panic!("missing (in order) {line:?} in:\n{stderr}"),
            }
        }
        // Each end logs in its own process, after its own Xenstore writes:
        // across the two, only what one end does after seeing the other is
        // ordered. The frontend connects after it initialised.
        let initialised = format!(
            "{front}: xenmq::xenbus::machine: state changed role=frontend from=initialising to=initialised"
        );
        let connected = format!(
            "{front}: xenmq::xenbus::machine: state changed role=frontend from=initialised to=connected"
        );
        let k = stderr.find(&initialised).expect("the frontend initialises");
        assert!(
            stderr[k..].contains(&connected),
            "{connected:?} after {initialised:?} in:\n{stderr}"
        );
        // The frontend says Closing before it lets go of its ring, while the
        // backend unmaps it in another process: only the frontend's own
        // order is fixed.
        let closing = format!(
            "{front}: xenmq::xenbus::machine: state changed role=frontend from=connected to=closing"
        );
        let ending = format!(
            "{front}: xenmq_runtime::device::lifecycle: ending access to the ring's grants"
        );
        let k = stderr.find(&closing).expect("the frontend closes");
        assert!(
            stderr[k..].contains(&ending),
            "{ending:?} after {closing:?} in:\n{stderr}"
        );
    }
    // The README's excerpt is what the demo prints, timestamps aside.
    let readme = include_str!("../../README.md");
    let start = readme
        .find("`RUST_LOG=xenmq=debug xenmq demo`, the backend:\n\n```text\n")
        .expect("the README shows the log");
    let block = &readme[start..];
    let block = &block[block.find("```text\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let stderr = text(&by_env.stderr);
    let untimed = |l: &str| {
        l.split_once(' ')
            .map(|(_, rest)| rest.trim_start().to_owned())
    };
    let printed: Vec<String> = stderr.lines().filter_map(untimed).collect();
    for line in block.lines() {
        let line = untimed(line).expect("a timestamped line");
        assert!(
            printed.contains(&line),
            "the README shows {line:?}, the demo printed:\n{stderr}"
        );
    }
    // Without RUST_LOG or -v, only warnings: none in a healthy run.
    let quiet = xenmq(&["demo", "10"], None);
    assert!(quiet.status.success());
    let stderr = text(&quiet.stderr);
    assert!(
        !stderr.contains("INFO") && !stderr.contains("WARN"),
        "{stderr}"
    );
}
