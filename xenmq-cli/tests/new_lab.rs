//! The skeleton of `xenmq new` on real Xen: a crate generated as a user
//! gets it (depending on xenmq by version; built outside this workspace
//! against this checkout's crates through `--config patch.crates-io...`,
//! as `tests/new.rs` does), whose one binary `xenmq lab run` boots under
//! qemu (Xen 4.17, Linux 6.1 PV dom0 and PV domU) and runs, unchanged, in
//! dom0 (it attaches its device for the domU with `toolstack::attach` and
//! serves it) and in the domU (its frontend writes, reads back and checks,
//! then closes the device). One boot; both sides must print `PASS`.
//!
//! Needs root and qemu (apt-get, /var/tmp); see `lab/README.md`. Where the
//! lab cannot run, the test fails and says why, as the other lab tests do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const XENMQ: &str = env!("CARGO_BIN_EXE_xenmq");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds the crate in `dir` as `tests/new.rs` does (its target directory
/// `target/skeleton-check`, this workspace's `Cargo.lock`, offline) and
/// returns its binary.
fn build(dir: &Path, name: &str) -> PathBuf {
    let root = Path::new(WORKSPACE).canonicalize().unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    // target/<profile>/deps/new_lab-<hash>
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("skeleton-check");
    let patch = |krate: &str| {
        let path = root.join(krate);
        format!("patch.crates-io.{krate}.path={:?}", path.to_str().unwrap())
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--config", &patch("xenmq")])
        .args(["--config", &patch("xenmq-runtime")])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build failed in {dir:?}:\n{}",
        text(&out.stderr)
    );
    target.join("debug").join(name)
}

#[test]
fn generated_crate_runs_on_real_xen() {
    let start = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("xenmq-new-lab-")
        .tempdir()
        .unwrap();
    let dir = scratch.path().join("acme-lab");
    // The default (compat) ring layout; `tests/new.rs` builds the native.
    let out = Command::new(XENMQ)
        .args(["new", "acme-lab", "--device", "acme-lab", "--path"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bin = build(&dir, "acme-lab");
    eprintln!("generated and built in {:.1?}", start.elapsed());

    // What the README of the generated crate tells its author to run.
    let lab = Command::new(XENMQ)
        .args(["lab", "run", "--timeout", "180", "--dom0"])
        .arg(&bin)
        .arg("--domu")
        .arg(&bin)
        .output()
        .unwrap();
    let (out, err) = (text(&lab.stdout), text(&lab.stderr));
    let shown = format!("stdout:\n{out}\nstderr:\n{err}");
    let domu_at = out
        .find("===== domU ")
        .unwrap_or_else(|| panic!("the lab did not run ({}):\n{shown}", lab.status));
    let (dom0, domu) = out.split_at(domu_at);
    for line in dom0.lines().chain(domu.lines()) {
        if line.starts_with("PASS ") || line.starts_with("FAIL ") || line.starts_with('[') {
            eprintln!("{line}");
        }
    }
    for (side, output, want) in [
        (
            "dom0",
            dom0,
            &[
                "[backend] serving device 0 of domain",
                "[backend] device closed; 2 requests served",
                "PASS acme-lab dom0",
            ][..],
        ),
        (
            "domU",
            domu,
            &[
                "[frontend] connected",
                "[frontend] read back \"hello from the guest\"",
                "[frontend] closed",
                "PASS acme-lab domu",
            ][..],
        ),
    ] {
        for line in want {
            assert!(
                output.lines().any(|l| l.trim().starts_with(line)),
                "{side}: no {line:?}:\n{shown}"
            );
        }
    }
    assert_eq!(lab.status.code(), Some(0), "{shown}");
    eprintln!(
        "the skeleton on real Xen: PASS in dom0 and domU ({:.1?} in all)",
        start.elapsed()
    );
}
