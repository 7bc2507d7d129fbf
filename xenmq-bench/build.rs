//! Compiles the C contender (`c/cring.c`, built on the genuine
//! `xen/io/ring.h` from Debian's libxen-dev) into a static library linked
//! into the benchmark, when the header is there: in `$XEN_INCLUDE_DIR`, or
//! else in `/usr/include`. Without it the benchmark is built without the C
//! contender (`cfg(xenmq_cring)` unset), and says so: here as a cargo
//! warning, at run time in its report.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=c/cring.c");
    println!("cargo:rerun-if-env-changed=XEN_INCLUDE_DIR");
    println!("cargo:rustc-check-cfg=cfg(xenmq_cring)");
    let include = std::env::var_os("XEN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = include.join("xen/io/ring.h");
    if !header.is_file() {
        let why = format!(
            "{} is missing (install libxen-dev, or set XEN_INCLUDE_DIR to the directory \
             holding xen/io/ring.h, and rebuild)",
            header.display()
        );
        println!("cargo:warning=xenmq-bench: the C contender (c-ring) is not built: {why}");
        println!("cargo:rustc-env=XENMQ_BENCH_NO_CRING={why}");
        return;
    }
    println!("cargo:rerun-if-changed={}", header.display());
    cc::Build::new()
        .file("c/cring.c")
        .include(&include)
        .opt_level(2)
        .flag("-std=gnu11")
        .flag("-Wall")
        .flag("-Wextra")
        .warnings_into_errors(true)
        .compile("xenmq_bench_cring");
    println!("cargo:rustc-cfg=xenmq_cring");
}
