//! `cargo install --path xenmq-cli` gives a working `xenmq`: installed
//! into a temporary root (reusing this build's target directory, so only
//! the link step runs), it answers `--version`, runs a simulator host and
//! drives it, and runs the demo.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_MANIFEST_DIR");

/// The target directory this test was built in (`.../target`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/install-<hash>
    exe.ancestors().nth(3).unwrap().to_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn cargo_install_gives_a_working_xenmq() {
    let root = tempfile::Builder::new()
        .prefix("xenmq-install-")
        .tempdir()
        .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = Instant::now();
    let mut install = Command::new(cargo)
        .args([
            "install",
            "--path",
            CLI,
            "--debug",
            "--locked",
            "--offline",
            "--root",
        ])
        .arg(root.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = start + Duration::from_secs(900);
    while install.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = install.kill();
            panic!("cargo install took more than 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = install.wait_with_output().unwrap();
    eprintln!("cargo install: {:.1?}", start.elapsed());
    assert!(
        out.status.success(),
        "cargo install failed:\n{}",
        text(&out.stderr)
    );
    let xenmq = root.path().join("bin").join("xenmq");

    let version = Command::new(&xenmq).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout).trim(),
        format!("xenmq {}", env!("CARGO_PKG_VERSION"))
    );

    // A host, a domain, a program run as it.
    let run = tempfile::Builder::new()
        .prefix("xenmq-install-sim-")
        .tempdir()
        .unwrap();
    let mut host = Command::new(&xenmq)
        .args(["sim", "--run-dir"])
        .arg(run.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("xenmq sim: ready"), "{ready}");
    let sim = |args: &[&str]| {
        let (verb, rest) = args.split_first().unwrap();
        Command::new(&xenmq)
            .args(["sim", verb, "--run-dir"])
            .arg(run.path())
            .args(rest)
            .output()
            .unwrap()
    };
    let created = sim(&["create", "guest"]);
    let id = text(&created.stdout).trim().to_owned();
    let exec = sim(&["exec", "guest", "--", "sh", "-c", "echo $XENMQ_SIM_DOMID"]);
    let list = sim(&["list"]);
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let stopped = host.wait().unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(exec.status.success(), "{}", text(&exec.stderr));
    assert_eq!(text(&exec.stdout).trim(), id);
    assert!(
        text(&list.stdout).contains("guest"),
        "{}",
        text(&list.stdout)
    );
    assert!(stopped.success(), "{stopped:?}");
    assert!(!Path::new(run.path()).join("control").exists());

    // The demo: an in-process host and two domain processes.
    let demo = Command::new(&xenmq).args(["demo", "20"]).output().unwrap();
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    assert!(
        text(&demo.stdout).contains("host: done"),
        "{}",
        text(&demo.stdout)
    );
}
