//! The lab's failure reporting on real Xen under qemu, in one boot: the
//! dom0 program never exits (the in-guest timeout must stop it and say so)
//! and the domU program crashes its kernel (the lab must report the domU as
//! crashed, with its console). Also checks the program's arguments and the
//! extra files reach the guest, and that no qemu is left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use xenmq_lab::{Config, Exit};

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn a_hung_dom0_program_times_out_and_a_crashed_domu_is_reported() {
    let dir = std::env::temp_dir().join(format!("xenmq-lab-failures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("note.txt"), "a note for the guests\n").unwrap();
    let hang = script(
        &dir,
        "hang",
        "echo \"$# args: [$1] [$2]\"\ncat note.txt\necho dom0 program hangs\nexec sleep 1000",
    );
    let crash = script(
        &dir,
        "crash",
        "echo domU program crashes its kernel\nsleep 1\necho c > /proc/sysrq-trigger\nsleep 100",
    );
    let mut cfg = Config::new(&hang, &crash);
    cfg.dom0_args = vec!["two words".into(), "it's $HOME".into()];
    cfg.files = Some(files);
    // Long enough for the domU (booting ~10 s under TCG) to crash first.
    cfg.timeout = Duration::from_secs(25);
    let r = xenmq_lab::run(&cfg);
    std::fs::remove_dir_all(&dir).unwrap();
    let r = r.unwrap_or_else(|e| panic!("the lab did not run: {e}"));

    assert_eq!(
        r.dom0.exit,
        Exit::TimedOut,
        "dom0 output: {}",
        r.dom0.output
    );
    assert_eq!(
        r.dom0.output,
        "2 args: [two words] [it's $HOME]\na note for the guests\ndom0 program hangs"
    );
    assert_eq!(
        r.domu.exit,
        Exit::Crashed,
        "domU console: {}",
        r.domu_console
    );
    assert_eq!(r.domu.output, "domU program crashes its kernel");
    assert!(
        r.domu_console.contains("Kernel panic"),
        "domU console: {}",
        r.domu_console
    );
    assert!(!r.success());

    // qemu is gone: no qemu process is still running on our images.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "stat,args"])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with('Z')
                && l.contains("qemu-system")
                && l.contains(r.run_dir.to_str().unwrap())
        })
        .count();
    assert_eq!(running, 0, "qemu left running");
}
