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

#[test]
fn the_readme_shows_lines_of_echo_async_as_they_are() {
    let readme = include_str!("../../README.md");
    let source = include_str!("../src/bin/echo_async.rs");
    let start = readme
        .find("```rust\nlet mut back = AsyncBack")
        .expect("the README has the async example's block")
        + "```rust\n".len();
    let len = readme[start..].find("\n```\n").expect("the block is closed");
    for line in readme[start..start + len].lines() {
        if line.starts_with("// ") {
            continue;
        }
        assert!(
            source.contains(line.trim()),
            "README.md's async block has {line:?}, which examples/src/bin/echo_async.rs lacks"
        );
    }
}
