//! The `xenmq-port` binary: writes the module, prints the notes, and on a
//! header it cannot port prints the line and the reason and exits 1.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_xenmq-port");

#[test]
fn ports_a_header_to_a_file_and_prints_the_notes() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-port");
    std::fs::create_dir_all(&dir).unwrap();
    let out_rs = dir.join("usbif.rs");
    let _ = std::fs::remove_file(&out_rs);
    let out = Command::new(BIN)
        .args([
            "/usr/include/xen/io/usbif.h",
            "--name",
            "usbif_urb=vusb",
            "-o",
        ])
        .arg(&out_rs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("note: Line 295: the function-like macro `usbif_pipeportnum(pipe)`"),
        "{stderr}"
    );
    let rust = std::fs::read_to_string(&out_rs).unwrap();
    assert!(rust.starts_with("//! `usbif.h`, ported to Rust by `xenmq port`"));
}

#[test]
fn a_header_it_cannot_port_is_an_error_with_the_line() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-port");
    std::fs::create_dir_all(&dir).unwrap();
    let h = dir.join("bits.h");
    std::fs::write(&h, "struct s {\n    unsigned int flag : 1;\n};\n").unwrap();
    let out = Command::new(BIN).arg(&h).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: bits.h:2: bit-field `flag` is not supported\n"
    );
}

#[test]
fn a_bad_name_argument_is_refused_by_the_parser() {
    let out = Command::new(BIN)
        .args(["/usr/include/xen/io/blkif.h", "--name", "vbd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`vbd` is not RING=NAME"));
}
