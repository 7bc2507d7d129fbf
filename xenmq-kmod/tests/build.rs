//! The module build's refusals and its panic-site count.

use std::path::Path;

use xenmq_kmod::check::panic_symbol;
use xenmq_kmod::{build, headers, Build, Error, Role, DEFAULT_CACHE};

#[test]
fn a_driver_that_uses_std_is_refused_with_the_reason() {
    let cache = Path::new(DEFAULT_CACHE);
    let release = headers::debian_release().expect("a Debian kernel release");
    let kernel = headers::debian(cache, &release).expect("headers");
    let err = build(&Build {
        krate: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/stdy"),
        driver: "Back".into(),
        role: Role::Backend,
        on_connect: None,
        devtype: "stdy".into(),
        name: "xenmq_stdy_back".into(),
        kernel,
        out: Path::new(env!("CARGO_TARGET_TMPDIR")).join("stdy"),
    })
    .expect_err("a std driver must not build");
    let Error::Rust { why, rustc } = &err else {
        panic!("not a rust refusal: {err}");
    };
    assert!(why.contains("`std`"), "{why}");
    assert!(why.contains("core") && why.contains("alloc"), "{why}");
    // rustc's own diagnostics are forwarded, naming the item.
    assert!(rustc.contains("std"), "{rustc}");
}

#[test]
fn panic_entry_points_are_recognised_in_both_manglings() {
    let v0 = ".text.unlikely._RNvNtCs8ZuFVG4AqCJ_4core9panicking9panic_fmt";
    assert_eq!(
        panic_symbol(v0).as_deref(),
        Some("core::panicking::panic_fmt")
    );
    let legacy = "_ZN4core6result13unwrap_failed17h0123456789abcdefE";
    assert_eq!(
        panic_symbol(legacy).as_deref(),
        Some("core::result::unwrap_failed")
    );
    assert_eq!(
        panic_symbol("_RNvNtCsX_5alloc5alloc18handle_alloc_error").as_deref(),
        Some("alloc::alloc::handle_alloc_error")
    );
    // Not panic entry points.
    assert_eq!(
        panic_symbol("_RNvMs_NtNtCsY_5xenmq6xenbus7machineNtB4_4Core13commit_failed"),
        None
    );
    assert_eq!(panic_symbol("xenmq_k_unbind"), None);
    assert_eq!(
        panic_symbol(".text._RNvNtCs8ZuFVG4AqCJ_4core3str19slice_error_fail_rt"),
        None
    );
}
