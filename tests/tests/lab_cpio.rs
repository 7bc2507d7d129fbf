//! The lab's initramfs writer (`xenmq_lab::cpio`) against GNU cpio, an
//! independent reader of the `newc` format: an archive we write must list
//! and unpack with the same names, types, modes, contents and link targets.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use xenmq_lab::cpio::Writer;

fn archive(f: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    f(&mut w);
    w.finish().unwrap()
}

fn unpack(data: &[u8], into: &std::path::Path) {
    std::fs::create_dir_all(into).unwrap();
    let mut child = Command::new("cpio")
        .args(["-i", "-d", "--quiet", "--no-absolute-filenames"])
        .current_dir(into)
        .stdin(Stdio::piped())
        .spawn()
        .expect("GNU cpio (Debian package cpio) is installed");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "cpio -i failed");
}

#[test]
fn gnu_cpio_reads_what_we_write() {
    let big: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
    let a = archive(|w| {
        w.dir("etc", 0o755).unwrap();
        w.file("etc/odd-length", 0o640, b"abc").unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.file("big", 0o600, &big).unwrap();
        w.symlink("sh", "busybox").unwrap();
    });
    assert_eq!(a.len() % 512, 0);

    let out = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = out.expect("cpio");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &a).unwrap();
    drop(child.stdin.take());
    let listed = child.wait_with_output().unwrap();
    assert!(listed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "etc\netc/odd-length\ninit\nbig\nsh\n"
    );

    let tmp = xenmq_tests::run_dir("lab-cpio");
    let dir = tmp.join("unpacked");
    unpack(&a, &dir);
    let mode = |p: &str| {
        std::fs::symlink_metadata(dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(std::fs::read(dir.join("etc/odd-length")).unwrap(), b"abc");
    assert_eq!(mode("etc/odd-length"), 0o640);
    assert_eq!(mode("init"), 0o755);
    assert_eq!(std::fs::read(dir.join("big")).unwrap(), big);
    assert_eq!(
        std::fs::read_link(dir.join("sh")).unwrap().to_str(),
        Some("busybox")
    );
    // The overlays the lab appends are archives of their own (GNU cpio stops
    // at the first trailer; the kernel reads on to the next one).
    let b = archive(|w| {
        w.dir("lab", 0o755).unwrap();
        w.file("lab/prog", 0o755, b"\x7fELF...").unwrap();
    });
    unpack(&b, &dir);
    assert_eq!(std::fs::read(dir.join("lab/prog")).unwrap(), b"\x7fELF...");
    assert_eq!(mode("lab/prog"), 0o755);
    drop(tmp);
}
