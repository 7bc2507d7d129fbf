//! `xenmq lab` from the command line: usage errors (no boot), and one boot
//! of real Xen under qemu where everything goes wrong on purpose — the dom0
//! program never exits (the in-guest timeout must stop it) and the domU
//! program crashes its kernel (reported as a crash, with its console) — so
//! the exit status must be 4 and the report must say what happened to each
//! side. The same boot checks that arguments (with shell metacharacters) and
//! `--files` reach the guest, and that no qemu is left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One boot at a time: two qemus on a 2-core host would stretch the guest
/// timings the tests rely on.
static BOOT: Mutex<()> = Mutex::new(());

fn xenmq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenmq"))
        .args(args)
        .output()
        .expect("run xenmq")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn usage_errors_exit_2_without_booting() {
    let o = xenmq(&["lab", "run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o)
        .0
        .contains("Usage: xenmq lab run --dom0 BIN --domu BIN"));
    let o = xenmq(&["lab"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("Usage: xenmq lab"), "{}", text(&o).1);

    let o = xenmq(&["lab", "run", "--dom0", "/bin/true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("required arguments were not provided:\n  --domu <BIN>"),
        "{}",
        text(&o).1
    );

    let o = xenmq(&[
        "lab",
        "run",
        "--dom0",
        "/bin/true",
        "--domu",
        "/bin/true",
        "--timeout",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("is not a number of seconds"));

    let o = xenmq(&[
        "lab",
        "run",
        "--dom0",
        "/no/such/prog",
        "--domu",
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("no such program: /no/such/prog"),
        "{}",
        text(&o).1
    );

    let o = xenmq(&["lab", "boot"]);
    assert_eq!(o.status.code(), Some(2));
}

/// No live qemu process runs on the files of the run named on stderr.
fn assert_no_qemu_left(stderr: &str) {
    let run = stderr
        .lines()
        .find_map(|l| l.strip_prefix("[lab] run directory "))
        .expect("the lab names its run directory");
    let ps = Command::new("ps")
        .args(["-eo", "stat,args"])
        .output()
        .unwrap();
    let live = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| !l.starts_with('Z') && l.contains("qemu-system") && l.contains(run))
        .count();
    assert_eq!(live, 0, "qemu left running");
}

/// The machine-level failures, one boot after the other (so they do not
/// compete for the CPU): a boot that cannot finish in time exits 5, a dom0
/// kernel crash exits 4. Both kill qemu.
#[test]
fn boot_timeout_exits_5_and_a_dom0_crash_exits_4() {
    let _one = BOOT.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::Builder::new()
        .prefix("xenmq-cli-lab-machine-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let ok = script(dir, "ok", "exit 0");
    let panic0 = script(
        dir,
        "panic0",
        "echo dom0 crashes its kernel\nsleep 1\necho c > /proc/sysrq-trigger\nsleep 100",
    );

    let o = xenmq(&[
        "lab",
        "run",
        "--dom0",
        ok.to_str().unwrap(),
        "--domu",
        ok.to_str().unwrap(),
        "--boot-timeout",
        "3",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("boot did not reach `"), "{err}");
    assert_no_qemu_left(&err);

    let o = xenmq(&[
        "lab",
        "run",
        "--dom0",
        panic0.to_str().unwrap(),
        "--domu",
        ok.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("the machine crashed") && err.contains("Kernel panic"),
        "{err}"
    );
    assert_no_qemu_left(&err);
    drop(tmp);
}

#[test]
fn a_hung_dom0_program_and_a_crashed_domu_exit_4_with_both_reported() {
    let _one = BOOT.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::Builder::new()
        .prefix("xenmq-cli-lab-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("note.txt"), "a note for the guests\n").unwrap();
    let hang = script(
        dir,
        "hang",
        "echo \"$# args: [$1] [$2]\"\ncat note.txt\necho dom0 program hangs\nexec sleep 1000",
    );
    let crash = script(
        dir,
        "crash",
        "echo domU program crashes its kernel\nsleep 1\necho c > /proc/sysrq-trigger\nsleep 100",
    );
    // 25 s: long enough for the domU (booting in ~10 s under TCG) to crash
    // before the dom0 program's time is up.
    let o = xenmq(&[
        "lab",
        "run",
        "--dom0",
        hang.to_str().unwrap(),
        "--domu",
        crash.to_str().unwrap(),
        "--timeout",
        "25",
        "--dom0-arg",
        "two words",
        "--dom0-arg",
        "it's $HOME",
        "--files",
        files.to_str().unwrap(),
    ]);
    drop(tmp);
    let (out, err) = text(&o);
    let shown = format!("stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(o.status.code(), Some(4), "{shown}");
    for needle in [
        "timed out =====\n2 args: [two words] [it's $HOME]\na note for the guests\ndom0 program hangs\n",
        "domain crashed =====\ndomU program crashes its kernel\n",
        "===== domU console (it did not report) =====",
        "Kernel panic",
        "===== stages: xen ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{shown}");
    }

    assert_no_qemu_left(&err);
}
