//! `xenmq port` on small headers: what each construct becomes.

use xenmq_port::{port, Options, Output};

fn options() -> Options {
    Options {
        file_name: "t.h".into(),
        include_dirs: Vec::new(),
        cc: "gcc".into(),
        names: Vec::new(),
    }
}

fn run(src: &str) -> Output {
    let src = format!("#include <stdint.h>\n#include <xen/io/ring.h>\n{src}");
    port(&src, &options()).unwrap_or_else(|e| panic!("{e}"))
}

/// `rust` contains `lines` one after the other (each trimmed).
fn has_lines(rust: &str, lines: &[&str]) -> bool {
    let all: Vec<&str> = rust.lines().map(str::trim).collect();
    all.windows(lines.len()).any(|w| w == lines)
}

#[test]
fn gccs_padding_is_written_out_and_asserted() {
    let out = run("struct s {\n    uint8_t a;\n    uint64_t b;\n    uint16_t c;\n};\n");
    let expected = [
        "#[xenmq(size = 24, align = 8)]",
        "pub struct S {",
        "/// C: `uint8_t a`.",
        "#[xenmq(offset = 0)]",
        "pub a: u8,",
        "/// Padding: gcc aligns `b` to offset 8.",
        "#[xenmq(offset = 1)]",
        "pub _pad1: [u8; 7],",
        "/// C: `uint64_t b`.",
        "#[xenmq(offset = 8)]",
        "pub b: u64,",
        "/// C: `uint16_t c`.",
        "#[xenmq(offset = 16)]",
        "pub c: u16,",
        "/// Padding: gcc rounds the struct up to 24 bytes.",
        "#[xenmq(offset = 18)]",
        "pub _pad2: [u8; 6],",
        "}",
    ];
    assert!(has_lines(&out.rust, &expected), "{}", out.rust);
    // i386 aligns `b` to 4: the docs say so.
    assert!(
        out.rust.contains(
            "On x86_32 (gcc `-m32`) this struct differs: 16 bytes, aligned to 4, with `b` at 4 \
             (8 bytes), `c` at 12 (2 bytes)."
        ),
        "{}",
        out.rust
    );
}

#[test]
fn comments_become_docs() {
    let out = run(
        "/* the file */\n\n/* Free-standing. */\n\n/* The struct. */\nstruct s {\n    \
         /* above a */\n    uint32_t a; /* after a */\n};\n",
    );
    assert!(out.rust.contains("//! the file\n"), "{}", out.rust);
    assert!(
        out.rust.contains("//! Line 5:\n//!\n//! Free-standing.\n"),
        "{}",
        out.rust
    );
    assert!(
        has_lines(
            &out.rust,
            &[
                "/// The struct.",
                "///",
                "/// C: `struct s`, line 8: 4 bytes, aligned to 4.",
            ]
        ),
        "{}",
        out.rust
    );
    assert!(
        has_lines(
            &out.rust,
            &[
                "/// above a",
                "///",
                "/// after a",
                "///",
                "/// C: `uint32_t a`."
            ]
        ),
        "{}",
        out.rust
    );
}

#[test]
fn unions_are_bytes_with_typed_members() {
    let out = run(
        "struct s {\n    uint8_t t;\n    union {\n        uint32_t n;\n        \
                   uint8_t b[6];\n    } u;\n};\n",
    );
    for l in [
        "pub struct SU {",
        "pub _align: [u32; 0],",
        "pub bytes: [u8; 8],",
        "pub fn n(&self) -> u32 {",
        "pub fn set_b(&mut self, value: [u8; 6]) {",
        "pub u: SU,",
    ] {
        assert!(
            out.rust.lines().any(|x| x.trim() == l),
            "no `{l}` in\n{}",
            out.rust
        );
    }
}

#[test]
fn constants_take_the_type_of_the_member_they_follow() {
    let out = run(
        "#define TOP 3\n#define BIG 0x100000000ULL\n#define NEG (-2)\nstruct s {\n    \
         uint8_t op;\n#define S_OP_X 7\n#define S_OP_HUGE 300\n};\n",
    );
    for l in [
        "pub const TOP: i32 = 3;",
        "pub const BIG: u64 = 0x100000000;",
        "pub const NEG: i32 = -2;",
        "pub const S_OP_X: u8 = 7;",
        // Does not fit the member: its own C type.
        "pub const S_OP_HUGE: i32 = 300;",
    ] {
        assert!(
            out.rust.lines().any(|x| x == l),
            "no `{l}` in\n{}",
            out.rust
        );
    }
}

#[test]
fn rings_become_protocols_where_the_macro_can_carry_them() {
    let src = "struct rq { uint64_t id; uint8_t op; };\nstruct rs { uint64_t id; int16_t st; };\n\
               DEFINE_RING_TYPES(disk, struct rq, struct rs);\n\
               struct nq { uint16_t id; };\nstruct ns { uint16_t id; };\n\
               DEFINE_RING_TYPES(net, struct nq, struct ns);\n";
    let out = run(src);
    assert_eq!(out.protocols, ["Disk"]);
    assert!(out.rust.contains(
        "#[::xenmq::protocol(name = \"disk\", request = Rq, response = Rs)]\npub struct Disk;"
    ));
    assert_eq!(
        out.undeclared,
        [(
            "net".to_string(),
            "`#[xenmq::protocol]` takes the request id from a `u64` field `id` of both \
             messages, and `nq.id` is `uint16_t`."
                .to_string()
        )]
    );
    // The device type can be given.
    let mut o = options();
    o.names = vec![("disk".into(), "vbd".into())];
    let out = port(
        &format!("#include <stdint.h>\n#include <xen/io/ring.h>\n{src}"),
        &o,
    )
    .unwrap();
    assert!(out
        .rust
        .contains("#[::xenmq::protocol(name = \"vbd\", request = Rq"));
}

#[test]
fn what_is_not_ported_is_said() {
    let out = run(
        "#define TWICE(x) ((x) * 2)\n#ifdef XEN_SOMETHING_OFF\nstatic int f(void) { return 1; }\n\
         #endif\nstruct s {\n    uint32_t a;\n#ifdef __i386__\n    uint32_t pad;\n#endif\n};\n",
    );
    assert_eq!(
        out.notes,
        [
            "Line 3: the function-like macro `TWICE(x)` is not ported (a port carries layouts \
             and constants, not code)",
            "Lines 4-6 (`#ifdef XEN_SOMETHING_OFF`) are not compiled for x86_64 and not ported: \
             `static int f(void) { return 1; }`",
        ]
    );
    assert!(out.rust.contains(
        "/// Lines 9-11 (`#ifdef __i386__`) are not compiled for x86_64 and not ported: \
         `uint32_t pad;`"
    ));
}

#[test]
fn xenstore_nodes_documented_in_xens_format_are_listed() {
    let out = run(
        "/*\n * Backend XenBus Nodes\n *\n * feature-x\n *      Values:  0/1 (boolean)\n *\n \
         * Frontend XenBus Nodes\n *\n * ring-ref\n *      Values:  <uint32_t>\n *\n \
         * Not a node: no values line follows\n * lonely-word\n *\n */\n\
         struct rq { uint64_t id; };\nstruct rs { uint64_t id; };\n\
         DEFINE_RING_TYPES(disk, struct rq, struct rs);\n",
    );
    assert!(
        out.rust
            .contains("//! - backend: `feature-x` (6)\n//! - frontend: `ring-ref` (11)\n"),
        "{}",
        out.rust
    );
    assert!(!out.rust.contains("`lonely-word`"));
    assert!(out
        .rust
        .contains("negotiate the Xenstore nodes listed under \"Xenstore nodes\""));
}

#[test]
fn flexible_arrays_are_placed_and_read_from_the_bytes_after_the_struct() {
    let out =
        run("struct page {\n    uint32_t count;\n    uint8_t flag;\n    uint32_t refs[];\n};\n");
    for l in [
        "#[xenmq(offset = 8)]",
        "pub refs: [u32; 0],",
        "pub fn refs_len(bytes: &[u8]) -> usize {",
        "bytes.len().saturating_sub(8) / 4",
        "pub fn refs_at(bytes: &[u8], index: usize) -> Option<u32> {",
        "let start = index.checked_mul(4)?.checked_add(8)?;",
    ] {
        assert!(
            out.rust.lines().any(|x| x.trim() == l),
            "no `{l}` in\n{}",
            out.rust
        );
    }
}
