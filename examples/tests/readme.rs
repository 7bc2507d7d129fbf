//! The README shows `src/vkv.rs` whole; this keeps that copy from drifting
//! away from the code that is compiled and tested.

#[test]
fn the_readme_shows_vkv_as_it_is() {
    let readme = include_str!("../../README.md");
    let source = include_str!("../src/vkv.rs");
    let start = readme
        .find("```rust\n//! `vkv`")
        .expect("the README has a rust block starting with vkv.rs")
        + "```rust\n".len();
    let len = readme[start..].find("\n```\n").expect("the vkv block is closed") + 1;
    assert_eq!(
        &readme[start..start + len],
        source,
        "README.md's vkv block differs from examples/src/vkv.rs: copy the file into the README"
    );
}
