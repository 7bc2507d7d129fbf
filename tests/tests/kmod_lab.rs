//! The kernel-module platform on real Xen, with the echo example's own
//! source built into modules by `xenmq-kmod` (`examples/kmod/echo`):
//!
//! - case (a) of issue 12: the frontend module in a PV domU against the
//!   example's userspace backend in dom0 (`xenmq-kmod-lab`). The module
//!   makes 64 round trips once connected, every payload checked, and logs
//!   the result; unbinding the device closes it (Closed in Xenstore), which
//!   ends the backend, and `rmmod` then unloads the module.
//! - case (b): the backend module in dom0 against the example's userspace
//!   frontend in the domU: 64 round trips checked, close, `rmmod`, and no
//!   Oops, BUG or WARNING in dom0's log.
//!
//! Each case boots Xen under qemu once (`xenmq_lab::run`), one at a time;
//! needs root (apt-get, /var/tmp).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use xenmq_kmod::{build, headers, Build, Role, DEFAULT_CACHE};

const MODULE: &str = "xenmq_echo_front";

/// One qemu at a time.
static LAB: Mutex<()> = Mutex::new(());

/// Builds the echo module of `role` named `name` into `work/name`.
fn echo_module(role: Role, name: &str) -> PathBuf {
    let cache = Path::new(DEFAULT_CACHE);
    let release = headers::debian_release().expect("a Debian kernel release");
    let kernel = headers::debian(cache, &release).expect("headers");
    let (driver, on_connect) = match role {
        Role::Frontend => ("echo::EchoFront", Some("check".to_owned())),
        Role::Backend => ("echo::EchoBack", None),
    };
    let module = build(&Build {
        krate: Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kmod/echo"),
        driver: driver.into(),
        role,
        on_connect,
        devtype: "echo".into(),
        name: name.into(),
        kernel,
        out: Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("kmod-lab")
            .join(name),
    })
    .unwrap_or_else(|e| panic!("the echo module {name} does not build: {e}"));
    eprintln!(
        "{name}: {} panic sites in the Rust object",
        module.panics.total()
    );
    module.ko
}

/// Runs the lab and checks that each side printed `PASS` for each name
/// and no `FAIL`.
fn run_lab(cfg: &xenmq_lab::Config, domu_want: &[&str], dom0_want: &[&str]) {
    let report = xenmq_lab::run(cfg).unwrap_or_else(|e| panic!("the lab did not run: {e}"));
    let shown = format!(
        "dom0 ({}):\n{}\ndomU {} ({}):\n{}\n{}",
        report.dom0.exit,
        report.dom0.output,
        report.domu_id,
        report.domu.exit,
        report.domu.output,
        report.domu_console
    );
    eprintln!("{shown}");
    for (out, want) in [
        (&report.domu.output, domu_want),
        (&report.dom0.output, dom0_want),
    ] {
        for name in want {
            assert!(
                out.lines().any(|l| l.trim() == format!("PASS {name}")),
                "no PASS {name}:\n{shown}"
            );
        }
        assert!(!out.contains("FAIL "), "a check failed:\n{shown}");
    }
    assert!(report.success(), "a side failed:\n{shown}");
}

/// The domU's program: load, wait for the module's verdict, unload, check
/// the kernel log.
const DOMU: &str = r#"#!/bin/sh
M=xenmq_echo_front
insmod ./$M.ko || { echo "FAIL insmod: rc=$?"; exit 1; }
echo "PASS insmod"
i=0
while [ $i -lt 90 ] && ! dmesg | grep -q "$M: on-connect: "; do
    sleep 1
    i=$((i + 1))
done
dmesg | grep "$M" | sed 's/^/domU kernel: /'
if dmesg | grep -q "$M: on-connect: ok (64)"; then
    echo "PASS module-echo"
else
    echo "FAIL module-echo: no successful on-connect line after ${i} s"
fi
# xenbus holds a module reference per bound device (as for Linux's own
# frontends): unbind the device, which closes it, then unload.
D=/sys/bus/xen/drivers/echo
for dev in "$D"/echo-*; do
    [ -e "$dev" ] && echo "${dev##*/}" > "$D/unbind"
done
state=$(xenstore-read device/echo/0/state 2>&1)
if [ "$state" = 6 ]; then echo "PASS unbind-closed"; else echo "FAIL unbind-closed: state $state"; fi
if rmmod $M; then echo "PASS rmmod"; else echo "FAIL rmmod"; fi
sleep 1
if dmesg | grep -q "Oops\|BUG:\|WARNING:\|Call Trace\|Kernel panic"; then
    echo "FAIL clean-log"
    dmesg | tail -n 60 | sed 's/^/domU kernel: /'
else
    echo "PASS clean-log"
fi
"#;

#[test]
fn echo_frontend_module_against_the_userspace_backend() {
    let ko = echo_module(Role::Frontend, MODULE);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kmod-lab/case-a");
    let files = work.join("files");
    let _ = fs::remove_dir_all(&files);
    fs::create_dir_all(&files).unwrap();
    fs::copy(&ko, files.join(format!("{MODULE}.ko"))).unwrap();
    let domu = work.join("domu.sh");
    fs::write(&domu, DOMU).unwrap();
    fs::set_permissions(&domu, fs::Permissions::from_mode(0o755)).unwrap();

    let mut cfg = xenmq_lab::Config::new(env!("CARGO_BIN_EXE_xenmq-kmod-lab"), &domu);
    cfg.files = Some(files);
    cfg.timeout = Duration::from_secs(180);
    let _one = LAB.lock().unwrap_or_else(|p| p.into_inner());
    run_lab(
        &cfg,
        &[
            "insmod",
            "module-echo",
            "unbind-closed",
            "rmmod",
            "clean-log",
        ],
        &["backend-echo"],
    );
}

#[test]
fn echo_backend_module_against_the_userspace_frontend() {
    let name = "xenmq_echo_back";
    let ko = echo_module(Role::Backend, name);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kmod-lab/case-b");
    let files = work.join("files");
    let _ = fs::remove_dir_all(&files);
    fs::create_dir_all(&files).unwrap();
    fs::copy(&ko, files.join(format!("{name}.ko"))).unwrap();
    let prog = env!("CARGO_BIN_EXE_xenmq-kmod-lab");
    let mut cfg = xenmq_lab::Config::new(prog, prog);
    cfg.files = Some(files);
    cfg.dom0_args = vec!["module-backend".into(), format!("./{name}.ko")];
    cfg.domu_args = vec!["frontend".into()];
    cfg.timeout = Duration::from_secs(180);
    let _one = LAB.lock().unwrap_or_else(|p| p.into_inner());
    run_lab(
        &cfg,
        &["frontend-echo"],
        &["module-backend", "rmmod", "dom0-log"],
    );
}
