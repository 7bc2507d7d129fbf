//! A module built by xenmq-kmod, loaded on Debian's 6.1 kernel booted
//! without Xen under qemu (TCG): `insmod` registers nothing and says so
//! once, `rmmod` is clean, and the kernel logs no Oops, BUG, WARNING or
//! panic. Fetches the kernel image, its headers and busybox-static with
//! `apt-get download`; boots once (about a minute of TCG).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use xenmq_kmod::{build, headers, Build, Role, DEFAULT_CACHE};
use xenmq_lab::cpio;

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "@kmod-test boot $(uname -r)"
insmod /m.ko
echo "@kmod-test insmod rc=$?"
grep "^xenmq_mirror_back " /proc/modules && echo "@kmod-test loaded"
rmmod xenmq_mirror_back
echo "@kmod-test rmmod rc=$?"
grep -q "^xenmq_mirror_back " /proc/modules || echo "@kmod-test unloaded"
dmesg | sed 's/^/@kmod-test dmesg: /'
echo "@kmod-test end"
poweroff -f
"#;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a host tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Downloads `pkg` into `debs` unless there.
fn download(debs: &Path, pkg: &str) -> PathBuf {
    if let Some(d) = headers::deb(debs, pkg) {
        return d;
    }
    fs::create_dir_all(debs).unwrap();
    let ok = Command::new("apt-get")
        .args(["download", pkg])
        .current_dir(debs)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        sh(Command::new("apt-get").args(["update", "-qq"]));
        sh(Command::new("apt-get")
            .args(["download", pkg])
            .current_dir(debs));
    }
    headers::deb(debs, pkg).expect("downloaded")
}

/// The kernel image and a static busybox for `release`.
fn boot_files(cache: &Path, release: &str) -> (PathBuf, PathBuf) {
    let debs = cache.join("debs");
    let root = cache.join(format!("boot-{release}"));
    let vmlinuz = root.join(format!("boot/vmlinuz-{release}"));
    let busybox = root.join("bin/busybox");
    if vmlinuz.exists() && busybox.exists() {
        return (vmlinuz, busybox);
    }
    fs::create_dir_all(&root).unwrap();
    let image = download(&debs, &format!("linux-image-{release}-unsigned"));
    let bb = download(&debs, "busybox-static");
    sh(Command::new("dpkg-deb").arg("-x").arg(&bb).arg(&root));
    // Only the image of the kernel package (its modules are ~400 MB).
    sh(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' './boot/vmlinuz-{release}'",
        image.display(),
        root.display()
    )));
    (vmlinuz, busybox)
}

#[test]
fn loads_and_unloads_on_a_kernel_without_xen() {
    let cache = PathBuf::from(DEFAULT_CACHE);
    let release = headers::debian_release().expect("a Debian kernel release");
    let kernel = headers::debian(&cache, &release).expect("headers");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plain-kernel");
    let krate = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/mirror");
    let module = build(&Build {
        krate,
        driver: "Back".into(),
        role: Role::Backend,
        on_connect: None,
        devtype: "mirror".into(),
        name: "xenmq_mirror_back".into(),
        kernel,
        out: out.clone(),
    })
    .expect("the module builds");

    let (vmlinuz, busybox) = boot_files(&cache, &release);
    let mut w = cpio::Writer::new(Vec::new());
    for d in ["bin", "dev", "proc", "sys"] {
        w.dir(d, 0o755).unwrap();
    }
    w.file("init", 0o755, INIT.as_bytes()).unwrap();
    w.file("bin/busybox", 0o755, &fs::read(&busybox).unwrap())
        .unwrap();
    w.file("m.ko", 0o644, &fs::read(&module.ko).unwrap())
        .unwrap();
    let initrd = out.join("initrd.cpio");
    fs::write(&initrd, w.finish().unwrap()).unwrap();

    let limit = Duration::from_secs(240);
    let run = Command::new("timeout")
        .args([
            "-k",
            "5",
            &limit.as_secs().to_string(),
            "qemu-system-x86_64",
        ])
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .stdin(Stdio::null())
        .output()
        .expect("run qemu");
    let console = String::from_utf8_lossy(&run.stdout);
    let marks: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("@kmod-test"))
        .collect();
    let report = marks.join("\n");
    assert!(
        console.contains("@kmod-test end"),
        "the guest did not finish:\n{}",
        console
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(report.contains("@kmod-test insmod rc=0"), "{report}");
    assert!(report.contains("@kmod-test loaded"), "{report}");
    assert!(report.contains("@kmod-test rmmod rc=0"), "{report}");
    assert!(report.contains("@kmod-test unloaded"), "{report}");
    let said = marks
        .iter()
        .filter(|l| {
            l.contains("xenmq_mirror_back: not running on Xen: no mirror backend registered")
        })
        .count();
    assert_eq!(
        said, 1,
        "the module must say once that it registers nothing:\n{report}"
    );
    for bad in ["Oops", "BUG:", "WARNING:", "Kernel panic", "Call Trace"] {
        assert!(
            !console.contains(bad),
            "{bad} in the kernel log:\n{console}"
        );
    }
}
