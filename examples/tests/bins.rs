//! Each example binary, as `cargo run -p xenmq-examples --bin NAME` runs
//! it: the launcher starts a simulated host and runs the backend and the
//! frontend as processes of the same binary, whose roles pick their
//! platform at run time (here the simulator). Each must finish cleanly,
//! its guest holding no grant and no port.

use std::process::Command;

fn run(exe: &str, args: &[&str], says: &[&str]) {
    let out = Command::new(exe).args(args).output().expect("run the example");
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{exe} failed ({}):\n{all}", out.status);
    for line in says.iter().chain(&["holds 0 grants and 0 ports", "host: done"]) {
        assert!(all.contains(line), "no {line:?} from {exe}:\n{all}");
    }
}

#[test]
fn echo_runs() {
    run(env!("CARGO_BIN_EXE_echo"), &["100"], &["100 pings, 32 in flight"]);
}

#[test]
fn vkv_runs() {
    run(env!("CARGO_BIN_EXE_vkv"), &["20"], &["put and got back 20 values", "key-0 is gone"]);
}

#[test]
fn blk_runs() {
    run(env!("CARGO_BIN_EXE_blk"), &[], &["wrote and read back the whole disk", "data intact"]);
}
