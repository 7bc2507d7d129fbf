//! trybuild UI tests of `#[derive(XenstoreConfig)]`: one compile-fail case
//! per error the derive can emit (with its `.stderr`), and pass cases under
//! `#![no_implicit_prelude]`.

#[test]
fn ui_config() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui-config/pass_*.rs");
    t.compile_fail("tests/ui-config/fail_*.rs");
}
