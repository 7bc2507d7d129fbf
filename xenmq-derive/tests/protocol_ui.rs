//! trybuild UI tests of `#[xenmq::protocol]`: one compile-fail case per
//! error the attribute can give (with its `.stderr`), and a pass case
//! under `#![no_implicit_prelude]`.

#[test]
fn ui_protocol() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui-protocol/pass_*.rs");
    t.compile_fail("tests/ui-protocol/fail_*.rs");
}
