//! `xenmq new`: the generated driver crate builds, passes its own tests
//! (round trips between the two ends in one process, and its launcher
//! running them as two processes), is clippy-clean, rustfmt-formatted and
//! documents without a warning, as generated; bad names, bad device types
//! and existing directories are refused with exit code 2.
//!
//! The generated crate depends on `xenmq` and `xenmq-runtime` by version,
//! as a user's crate does; it is built outside this workspace, in a
//! temporary directory, against this checkout's crates through
//! `--config patch.crates-io...` on cargo's command line (so no path of
//! the checkout lands in its files), in `target/skeleton-check`, with this
//! workspace's `Cargo.lock` and `--offline`, so that only the new crate
//! itself compiles once the dependencies are there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const XENMQ: &str = env!("CARGO_BIN_EXE_xenmq");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A scratch directory (mode 0700), removed when dropped, panics
/// included.
struct Scratch(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xenmq-new-{tag}-"))
            .tempdir()
            .unwrap();
        Scratch(dir.path().to_owned(), dir)
    }
}

fn xenmq_new(cwd: &Path, args: &[&str]) -> Output {
    Command::new(XENMQ)
        .arg("new")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The target directory this test was built in (`.../target`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/new-<hash>
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// Runs cargo in `dir` with the shared target directory; panics with its
/// output if it fails.
/// Lints the generated crate as the project lints itself (warnings are
/// errors).
fn clippy(dir: &Path) -> String {
    cargo(
        dir,
        &[
            "clippy",
            "--offline",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )
}

fn cargo(dir: &Path, args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = Instant::now();
    let root = Path::new(WORKSPACE).canonicalize().unwrap();
    let patch = |krate: &str| {
        let path = root.join(krate);
        format!("patch.crates-io.{krate}.path={:?}", path.to_str().unwrap())
    };
    // After the subcommand, where `cargo clippy` passes them on too;
    // `cargo fmt` resolves nothing and takes none.
    let (sub, rest) = args.split_first().unwrap();
    let config = [
        "--config",
        &patch("xenmq"),
        "--config",
        &patch("xenmq-runtime"),
    ];
    let out = Command::new(cargo)
        .arg(sub)
        .args(if *sub == "fmt" { &[][..] } else { &config[..] })
        .args(rest)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir().join("skeleton-check"))
        .env_remove("RUSTFLAGS")
        .env("RUSTDOCFLAGS", "-D warnings")
        .output()
        .unwrap();
    eprintln!("cargo {}: {:.1?}", args.join(" "), start.elapsed());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "cargo {args:?} failed in {dir:?}:\n{all}"
    );
    all
}

#[test]
fn generated_crate_builds_passes_its_test_and_lints_clean() {
    let start = Instant::now();
    let scratch = Scratch::new("crate");
    // Native: the generated test then runs xenmq's native ring end to end
    // (the compat default is rendered and checked by the unit tests).
    let out = xenmq_new(
        &scratch.0,
        &[
            "acme-kv_driver",
            "--device",
            "acme-kv",
            "--layout",
            "native",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created `acme-kv_driver`"));
    let dir = scratch.0.join("acme-kv_driver");
    for file in [
        "Cargo.toml",
        "README.md",
        "src/lib.rs",
        "src/wire.rs",
        "src/back.rs",
        "src/front.rs",
        "src/main.rs",
        "tests/pair.rs",
        "tests/launch.rs",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    assert!(lib.contains("name = \"acme-kv\""), "{lib}");
    assert!(lib.contains("pub struct AcmeKv;"), "{lib}");
    assert!(lib.contains("layout = native\n"), "{lib}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let root = Path::new(WORKSPACE).canonicalize().unwrap();
    // By version, as from a registry; no path of this checkout anywhere.
    assert!(manifest.contains("\nxenmq = \"0.1\"\n"), "{manifest}");
    assert!(
        manifest.contains("\nxenmq-runtime = \"0.1\"\n"),
        "{manifest}"
    );
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            !text.contains(root.to_str().unwrap()) && !text.contains(WORKSPACE),
            "{} holds the checkout's path",
            entry.display()
        );
    }

    // Same dependency versions as this workspace, none fetched.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    cargo(&dir, &["fmt", "--check"]);
    let test = cargo(&dir, &["test", "--offline"]);
    // tests/pair.rs: three tests in one process; tests/launch.rs: `cargo
    // run`, both ends as processes.
    for (what, result) in [
        ("pair", "test result: ok. 3 passed; 0 failed"),
        ("launch", "test result: ok. 1 passed; 0 failed"),
    ] {
        assert!(
            test.contains(result),
            "tests/{what}.rs did not pass:\n{test}"
        );
    }
    assert!(!test.contains("FAILED"), "{test}");
    clippy(&dir);
    cargo(&dir, &["doc", "--offline", "--no-deps"]);
    roles_run_on_a_long_running_host(&dir, "acme-kv_driver", "acme-kv");
    eprintln!("generate, test and lint: {:.1?}", start.elapsed());
}

/// The files under `dir`, but `target/`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            if !path.ends_with("target") {
                out.extend(walk(&path));
            }
        } else {
            out.push(path);
        }
    }
    out
}

/// The generated binary's roles, unchanged, as domains of a `xenmq sim`
/// (the platform chosen at run time): `backend` and `frontend`, then the
/// two `xenmq lab run` starts (`tests/new_lab.rs` boots them on real Xen);
/// and on real Xen when told so (where there is none, its devices are
/// missing: a clear error).
fn roles_run_on_a_long_running_host(dir: &Path, name: &str, device: &str) {
    let bin = target_dir().join("skeleton-check").join("debug").join(name);
    let run = tempfile::Builder::new()
        .prefix("xenmq-new-sim-")
        .tempdir()
        .unwrap();
    let mut host = Command::new(XENMQ)
        .args(["sim", "--run-dir"])
        .arg(run.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.contains("ready"), "{ready}");
    let xenmq = |args: &[&str]| {
        Command::new(XENMQ)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let d = run.path().to_str().unwrap();
    let b = bin.to_str().unwrap();
    let out = xenmq(&["sim", "create", "--run-dir", d, "guest"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = xenmq(&["attach", "--run-dir", d, "guest", device]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut backend = Command::new(XENMQ)
        .args(["sim", "exec", "--run-dir", d, "0", "--", b, "backend"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let front = xenmq(&["sim", "exec", "--run-dir", d, "guest", "--", b, "frontend"]);
    let _ = backend.kill();
    let _ = backend.wait();
    // The roles `xenmq lab run` starts (no argument, XENMQ_LAB_ROLE set),
    // here on the simulator: dom0 attaches a device for a second guest and
    // serves it until the guest's frontend has closed it.
    let out = xenmq(&["sim", "create", "--run-dir", d, "lab"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lab = text(&out.stdout).trim().to_owned();
    let lab_dom0 = Command::new(XENMQ)
        .args(["sim", "exec", "--run-dir", d, "0", "--", b])
        .env("XENMQ_LAB_ROLE", "dom0")
        .env("XENMQ_LAB_PEER_DOMID", &lab)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lab_domu = Command::new(XENMQ)
        .args(["sim", "exec", "--run-dir", d, "lab", "--", b])
        .env("XENMQ_LAB_ROLE", "domu")
        .output()
        .unwrap();
    let lab_dom0 = lab_dom0.wait_with_output().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let _ = host.wait();
    assert!(front.status.success(), "{}", text(&front.stderr));
    assert!(text(&front.stdout).contains("[frontend] closed"));
    let (dom0, domu) = (text(&lab_dom0.stdout), text(&lab_domu.stdout));
    assert!(
        lab_domu.status.success(),
        "{domu}{}",
        text(&lab_domu.stderr)
    );
    let pass = format!("[frontend] closed\nPASS {name} domu\n");
    assert!(domu.contains(&pass), "{domu}");
    assert!(
        lab_dom0.status.success(),
        "{dom0}{}",
        text(&lab_dom0.stderr)
    );
    let pass = format!("2 requests served\nPASS {name} dom0\n");
    assert!(dom0.contains(&pass), "{dom0}");
    // Told to use real Xen, the same binary opens /dev/xen (missing here).
    if !Path::new("/dev/xen/evtchn").exists() {
        let out = Command::new(&bin)
            .arg("frontend")
            .env("XENMQ_PLATFORM", "xen")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("cannot open the xen devices"), "{err}");
    }
}

/// Names that collide with what the skeleton uses still give a crate that
/// builds: device type `status` (the response's enum) becomes protocol
/// `StatusDev`, and a one-letter crate name is fine.
#[test]
fn clashing_names_build() {
    let scratch = Scratch::new("clash");
    let out = xenmq_new(&scratch.0, &["x", "--device", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = scratch.0.join("x");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("pub struct StatusDev;"), "{lib}");
    let root = Path::new(WORKSPACE).canonicalize().unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    cargo(&dir, &["fmt", "--check"]);
    clippy(&dir);
}

#[test]
fn bad_names_and_types_are_refused() {
    let scratch = Scratch::new("bad");
    let long = "a".repeat(65);
    for (args, says) in [
        (
            &["Vkv", "--device", "vkv"][..],
            "must start with a lowercase letter",
        ),
        (
            &["1vkv", "--device", "vkv"][..],
            "must start with a lowercase letter",
        ),
        (&["v.kv", "--device", "vkv"][..], "has '.'"),
        (&["drivers/vkv", "--device", "vkv"][..], "is a path"),
        (
            &["../escape", "--device", "vkv"][..],
            "must start with a lowercase",
        ),
        (&["fn", "--device", "vkv"][..], "is a Rust keyword"),
        (&["std", "--device", "vkv"][..], "is reserved"),
        (&["xenmq", "--device", "vkv"][..], "is reserved"),
        (
            &[long.as_str(), "--device", "vkv"][..],
            "1 to 64 characters",
        ),
        (
            &["drv", "--device", "VKV"][..],
            "device type `VKV` must start",
        ),
        (&["drv", "--device", "v/kv"][..], "has '/'"),
        (
            &["drv", "--device", "9pfs"][..],
            "must start with a lowercase letter",
        ),
        (&["drv", "--device", &long[..65]][..], "1 to 64 characters"),
        (&["drv"][..], "--device <TYPE>"),
        (&["--device", "vkv"][..], "<NAME>"),
        (
            &["drv", "--device", "vkv", "--bogus"][..],
            "unexpected argument '--bogus'",
        ),
    ] {
        let out = xenmq_new(&scratch.0, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("Usage: xenmq new"), "{args:?}: {err}");
    }
    // Nothing was written.
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}

#[test]
fn existing_directories_are_not_overwritten() {
    let scratch = Scratch::new("exists");
    let taken = scratch.0.join("drv");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep"), "mine").unwrap();
    let out = xenmq_new(&scratch.0, &["drv", "--device", "vkv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("already exists; not overwriting it"));
    // A file in the way is refused the same way, through --path.
    let file = scratch.0.join("file");
    std::fs::write(&file, "mine").unwrap();
    let out = xenmq_new(
        &scratch.0,
        &["drv", "--device", "vkv", "--path", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(taken.join("keep")).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
}

#[test]
fn path_and_xenmq_path() {
    let scratch = Scratch::new("paths");
    // --path: a new directory in one that exists; the crate keeps NAME.
    std::fs::create_dir_all(scratch.0.join("a/b")).unwrap();
    let at = scratch.0.join("a/b/here");
    let root = Path::new(WORKSPACE).canonicalize().unwrap();
    let out = xenmq_new(
        &scratch.0,
        &[
            "drv",
            "--device",
            "vkv",
            "--path",
            at.to_str().unwrap(),
            "--xenmq-path",
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let manifest = std::fs::read_to_string(at.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"drv\""), "{manifest}");
    let runtime = format!("path = \"{}\"", root.join("xenmq-runtime").display());
    assert!(manifest.contains(&runtime), "{manifest}");

    // A relative --xenmq-path stays relative, from the crate's directory.
    for krate in ["xenmq", "xenmq-runtime"] {
        std::fs::create_dir_all(scratch.0.join("co").join(krate)).unwrap();
        std::fs::write(scratch.0.join("co").join(krate).join("Cargo.toml"), "").unwrap();
    }
    let out = xenmq_new(
        &scratch.0,
        &[
            "drv3",
            "--device",
            "vkv",
            "--path",
            "a/b/drv3",
            "--xenmq-path",
            "co",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let manifest = std::fs::read_to_string(scratch.0.join("a/b/drv3/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("xenmq = { path = \"../../../co/xenmq\", version = \"0.1\" }"),
        "{manifest}"
    );

    // A --xenmq-path without the crates is refused before anything is
    // written.
    let out = xenmq_new(
        &scratch.0,
        &["drv2", "--device", "vkv", "--xenmq-path", "/nonexistent"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("holds no xenmq/Cargo.toml"));
    assert!(!scratch.0.join("drv2").exists());
}

#[test]
fn unwritable_paths_fail_with_exit_code_1() {
    let scratch = Scratch::new("unwritable");
    let file = scratch.0.join("file");
    std::fs::write(&file, "mine").unwrap();
    let under_file = file.join("drv");
    let out = xenmq_new(
        &scratch.0,
        &[
            "drv",
            "--device",
            "vkv",
            "--path",
            under_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot write"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn a_missing_parent_is_refused() {
    let scratch = Scratch::new("parent");
    let at = scratch.0.join("missing/drv");
    let out = xenmq_new(
        &scratch.0,
        &["drv", "--device", "vkv", "--path", at.to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not exist: create it first"), "{err}");
    assert!(err.contains("Usage: xenmq new"), "{err}");
    assert!(!scratch.0.join("missing").exists());
    let out = xenmq_new(
        &scratch.0,
        &["drv", "--device", "vkv", "--path", "/nonexistent/dir"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!Path::new("/nonexistent").exists());
}
