//! The `xenmq` command line as a whole: every verb answers `--help`, the
//! tool its `--version`, typos get suggestions, arguments that are not
//! UTF-8 are usage errors, and the shell completions and the manual page
//! are generated from the same tree.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

fn xenmq<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenmq"))
        .args(args)
        .output()
        .expect("run xenmq")
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every verb and subverb, as `xenmq --help` and `xenmq sim --help` list
/// them.
const VERBS: &[&[&str]] = &[
    &["new"],
    &["sim"],
    &["sim", "create"],
    &["sim", "run"],
    &["sim", "exec"],
    &["sim", "destroy"],
    &["sim", "kill"],
    &["sim", "faults"],
    &["sim", "poke"],
    &["sim", "corrupt"],
    &["sim", "list"],
    &["attach"],
    &["detach"],
    &["status"],
    &["lab"],
    &["lab", "run"],
    &["port"],
    &["kmod"],
    &["kmod", "build"],
    #[cfg(feature = "bench")]
    &["bench"],
    #[cfg(feature = "demo")]
    &["demo"],
    &["completions"],
    &["man"],
];

#[test]
fn every_verb_answers_help() {
    let (top, _) = out(&xenmq(&["--help"]));
    for verb in VERBS {
        let o = xenmq(&[verb, &["--help"][..]].concat());
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(0), "{verb:?}: {stderr}");
        let usage = format!("Usage: xenmq {}", verb.join(" "));
        assert!(stdout.contains(&usage), "{verb:?}: {stdout}");
        if verb.len() == 1 {
            assert!(top.contains(&format!("\n  {} ", verb[0])), "{top}");
        }
    }
}

#[test]
fn version_suggestions_and_usage_errors() {
    let o = xenmq(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        out(&o).0.trim(),
        format!("xenmq {}", env!("CARGO_PKG_VERSION"))
    );
    let o = xenmq(&["atach"]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr.contains("tip: some similar subcommands exist: 'detach', 'attach'")
            || stderr.contains("tip: a similar subcommand exists: 'attach'"),
        "{stderr}"
    );
    let o = xenmq(&["status", "--xenstor", "/x"]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr.contains("tip: a similar argument exists: '--xenstore'"),
        "{stderr}"
    );
    // Without a verb: the help, as a usage error.
    let o = xenmq::<&str>(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("Usage: xenmq [OPTIONS] <COMMAND>"));
}

#[test]
fn arguments_that_are_not_utf8_are_usage_errors() {
    let bad = OsStr::from_bytes(b"gu\xffest");
    for args in [
        vec![OsStr::new("attach"), bad, OsStr::new("vkv")],
        vec![
            OsStr::new("sim"),
            OsStr::new("create"),
            OsStr::new("--run-dir"),
            OsStr::new("/x"),
            bad,
        ],
        vec![
            OsStr::new("new"),
            bad,
            OsStr::new("--device"),
            OsStr::new("vkv"),
        ],
        #[cfg(feature = "bench")]
        vec![OsStr::new("bench"), OsStr::new("--only"), bad],
        #[cfg(feature = "demo")]
        vec![OsStr::new("demo"), bad],
    ] {
        let o = xenmq(&args);
        let (_, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("invalid UTF-8"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let o = xenmq(&[bad]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}

#[test]
fn completions_and_manual_pages_are_generated_from_the_tree() {
    for (shell, says) in [
        ("bash", "_xenmq()"),
        ("zsh", "#compdef xenmq"),
        ("fish", "complete -c xenmq"),
    ] {
        let o = xenmq(&["completions", shell]);
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(0), "{shell}: {stderr}");
        assert!(stdout.contains(says), "{shell}: {stdout}");
        for verb in ["attach", "detach", "sim", "lab", "run-dir"] {
            assert!(stdout.contains(verb), "{shell} lacks {verb}");
        }
    }
    let o = xenmq(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));

    let o = xenmq(&["man"]);
    let (page, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(page.contains(".TH xenmq 1"), "{page}");
    assert!(page.contains("xenmq\\-attach"), "{page}");
    let o = xenmq(&["man", "attach"]);
    let (page, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(page.contains(".TH xenmq-attach 1"), "{page}");
    assert!(page.contains("\\-\\-backend"), "{page}");
    let o = xenmq(&["man", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("no verb `nosuch`"));
}

#[cfg(feature = "bench")]
#[test]
fn bench_help_explains_the_figures() {
    let o = xenmq(&["bench", "--help"]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    for word in [
        "tput",
        "lat",
        "bulk",
        "block",
        "spin",
        "4p",
        "notify",
        "n/a",
        "--probe-ns",
    ] {
        assert!(stdout.contains(word), "{word}: {stdout}");
    }
    let o = xenmq(&["bench", "--reps", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("Usage: xenmq bench"), "{}", out(&o).1);
}

/// `xenmq bench --json -`: the report alone on stdout, the table on
/// stderr; a refused option is a JSON error there too.
#[cfg(feature = "bench")]
#[test]
fn bench_json_goes_to_stdout_for_jq() {
    let o = xenmq(&[
        "bench",
        "--reps",
        "2",
        "--budget-ms",
        "2",
        "--no-progress",
        "--only",
        "socket",
        "--modes",
        "tput.block",
        "--pages",
        "1",
        "--json",
        "-",
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("tput.block.rate") && stderr.contains("socket"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is the report");
    assert_eq!(doc["options"]["reps"], 2, "{doc}");
    assert_eq!(doc["options"]["contenders"], serde_json::json!(["socket"]));
    let rate = doc["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["name"] == "socket.tput.block.rate")
        .expect("the socket's rate");
    assert_eq!(rate["unit"], "req/s", "{rate}");
    assert_eq!(rate["samples"].as_array().map(Vec::len), Some(2), "{rate}");
    assert!(rate["median"].as_f64().is_some_and(|r| r > 0.0), "{rate}");

    for args in [
        &["bench", "--only", "nope", "--json", "-"][..],
        &["bench", "--json=-", "--reps", "0"],
    ] {
        let o = xenmq(args);
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON error");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
}

/// `xenmq port` runs the same port as `xenmq-port`: blkif.h becomes a module
/// with its request as a message and its ring as a protocol; a header it
/// cannot port is one line naming the line and the construct, exit 1.
#[test]
fn port_turns_a_header_into_a_module() {
    let header = std::path::Path::new("/usr/include/xen/io/blkif.h");
    if !header.exists() {
        panic!("libxen-dev's blkif.h is missing: scripts/test.sh installs it");
    }
    let o = xenmq(&[
        OsStr::new("port"),
        header.as_os_str(),
        OsStr::new("--name=blkif=vbd"),
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("pub struct BlkifRequest"), "{stdout}");
    assert!(
        stdout.contains("#[::xenmq::protocol(name = \"vbd\""),
        "{stdout}"
    );

    let dir = tempfile::Builder::new()
        .prefix("xenmq-cli-port-")
        .tempdir()
        .unwrap();
    let bad = dir.path().join("bits.h");
    std::fs::write(&bad, "struct s {\n    unsigned int flag : 1;\n};\n").unwrap();
    let o = xenmq(&[OsStr::new("port"), bad.as_os_str()]);
    let (_, stderr) = out(&o);
    drop(dir);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("bits.h:2"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `xenmq kmod build` needs a role, and `--on-connect` is a frontend's:
/// both are usage errors (exit 2) before anything is fetched or built.
#[test]
fn kmod_build_checks_its_arguments_first() {
    let o = xenmq(&["kmod", "build", "--crate", ".", "--devtype", "echo"]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--backend"), "{stderr}");
    let o = xenmq(&[
        "kmod",
        "build",
        "--crate",
        ".",
        "--devtype",
        "echo",
        "--backend",
        "EchoBack",
        "--on-connect",
        "check",
    ]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--on-connect"), "{stderr}");
}
