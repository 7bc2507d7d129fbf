//! The async example runs from one command on the simulator: both ends
//! are tokio tasks, every ping comes back, and the guest holds nothing
//! after the close.

use std::process::Command;

#[test]
fn the_async_echo_example_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_echo_async"))
        .arg("500")
        .output()
        .expect("run the example");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "call -> \"hello, dom0\"",
        "500 pings streamed, 32 in flight",
        "answered 501 pings",
        "holds 0 grants and 0 ports",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
