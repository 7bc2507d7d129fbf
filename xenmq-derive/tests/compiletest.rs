//! trybuild: every error `#[xenmq::message]` can give (tests/ui, with the
//! expected compiler output in .stderr files) and expansions that must
//! compile under `#![no_implicit_prelude]` (tests/pass).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
