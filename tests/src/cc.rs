//! Compiling the C reference programs the conformance tests run against
//! (the genuine `xen/io/*.h` headers, compiled by the system's C compiler).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the built C programs go: inside cargo's target directory, so a
/// clean clone starts from nothing and `cargo clean` removes them.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("c-ref");
    std::fs::create_dir_all(&dir).expect("create target/c-ref");
    dir
}

/// The folder holding the project's C sources for the tests (`tests/c`).
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// Compiles one C source file into an executable named `name` and returns
/// its path. Panics with the compiler's output if compilation fails: a
/// test that cannot build its reference must fail loudly, not skip.
pub fn build(name: &str, source: &Path, extra_flags: &[&str]) -> PathBuf {
    let out = out_dir().join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(&cc)
        .args(["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"])
        .args(extra_flags)
        .arg("-o")
        .arg(&out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Compiles C source text (written to `target/c-ref/NAME.c`) and returns the
/// executable's path.
pub fn build_source(name: &str, text: &str, extra_flags: &[&str]) -> PathBuf {
    let src = out_dir().join(format!("{name}.c"));
    std::fs::write(&src, text).expect("write generated C source");
    build(name, &src, extra_flags)
}
