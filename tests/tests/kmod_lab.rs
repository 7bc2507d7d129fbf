//! The kernel-module platform on real Xen, case (a) of issue 12: the echo
//! frontend built as a module by `xenmq-kmod` (the example's own source,
//! `examples/kmod/echo`), loaded in a PV domU, against the echo example's
//! userspace backend in dom0 (`xenmq-kmod-lab`). The module makes 64 round
//! trips once connected, every payload checked, and logs the result;
//! unbinding the device closes it (Closed in Xenstore), which ends the
//! backend, and `rmmod` then unloads the module. Boots Xen under qemu
//! once (`xenmq_lab::run`); needs root (apt-get, /var/tmp).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use xenmq_kmod::{build, headers, Build, Role, DEFAULT_CACHE};

const MODULE: &str = "xenmq_echo_front";

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
    let cache = Path::new(DEFAULT_CACHE);
    let release = headers::debian_release().expect("a Debian kernel release");
    let kernel = headers::debian(cache, &release).expect("headers");
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kmod-lab");
    let module = build(&Build {
        krate: Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kmod/echo"),
        driver: "echo::EchoFront".into(),
        role: Role::Frontend,
        on_connect: Some("check".into()),
        devtype: "echo".into(),
        name: MODULE.into(),
        kernel,
        out: work.join("build"),
    })
    .expect("the echo frontend module builds");
    eprintln!(
        "panic sites in the module's Rust object: {}",
        module.panics.total()
    );

    let files = work.join("files");
    let _ = fs::remove_dir_all(&files);
    fs::create_dir_all(&files).unwrap();
    fs::copy(&module.ko, files.join(format!("{MODULE}.ko"))).unwrap();
    let domu = work.join("domu.sh");
    fs::write(&domu, DOMU).unwrap();
    fs::set_permissions(&domu, fs::Permissions::from_mode(0o755)).unwrap();

    let mut cfg = xenmq_lab::Config::new(env!("CARGO_BIN_EXE_xenmq-kmod-lab"), &domu);
    cfg.files = Some(files);
    cfg.timeout = Duration::from_secs(180);
    let report = xenmq_lab::run(&cfg).unwrap_or_else(|e| panic!("the lab did not run: {e}"));
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
        (
            &report.domu.output,
            &[
                "insmod",
                "module-echo",
                "unbind-closed",
                "rmmod",
                "clean-log",
            ][..],
        ),
        (&report.dom0.output, &["backend-echo"][..]),
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
