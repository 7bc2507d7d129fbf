//! Compiles the C contender (`c/cring.c`, built on the genuine
//! `xen/io/ring.h` from Debian's libxen-dev) into a static library linked
//! into the benchmark.
fn main() {
    println!("cargo:rerun-if-changed=c/cring.c");
    cc::Build::new()
        .file("c/cring.c")
        .opt_level(2)
        .flag("-std=gnu11")
        .flag("-Wall")
        .flag("-Wextra")
        .warnings_into_errors(true)
        .compile("xenmq_bench_cring");
}
