//! trybuild, one layout for the three macros: every error each can give
//! (`tests/ui/{message,config,protocol}/*.rs`, with the expected compiler
//! output beside each in a `.stderr` file) and expansions that must compile
//! under `#![no_implicit_prelude]` (`tests/pass/{message,config,protocol}`).
//! `TRYBUILD=overwrite` rewrites the `.stderr` files; read each after.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    for m in ["message", "config", "protocol"] {
        t.pass(format!("tests/pass/{m}/*.rs"));
        t.compile_fail(format!("tests/ui/{m}/*.rs"));
    }
}
