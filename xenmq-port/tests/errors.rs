//! Headers `xenmq port` cannot port fully: each gives the construct and
//! its line, and no code.

use xenmq_port::{port, Error, Options};

fn options() -> Options {
    Options {
        file_name: "t.h".into(),
        include_dirs: Vec::new(),
        cc: "gcc".into(),
        names: Vec::new(),
    }
}

fn error(src: &str) -> String {
    match port(src, &options()) {
        Ok(out) => panic!("ported:\n{}", out.rust),
        Err(e @ Error::Header { .. }) => e.to_string(),
        Err(e) => panic!("not a header error: {e}"),
    }
}

#[test]
fn bit_fields() {
    assert_eq!(
        error("#include <stdint.h>\nstruct s {\n    uint8_t a;\n    uint8_t x : 3;\n};\n"),
        "t.h:4: bit-field `x` is not supported"
    );
}

#[test]
fn pointers() {
    assert_eq!(
        error("struct s {\n    int *p;\n};\n"),
        "t.h:2: pointer members are not supported: a pointer means nothing in the peer's domain"
    );
}

#[test]
fn attributes() {
    assert_eq!(
        error("struct s {\n    int a;\n} __attribute__((packed));\n"),
        "t.h:3: `__attribute__` is not supported"
    );
    assert_eq!(
        error("struct s {\n    int a __attribute__((aligned(8)));\n};\n"),
        "t.h:2: `__attribute__` is not supported"
    );
}

#[test]
fn pragmas_that_can_change_the_layout() {
    assert_eq!(
        error("#pragma pack(1)\nstruct s { int a; };\n"),
        "t.h:1: `#pragma` is not supported: it can change the layout (`#pragma pack`)"
    );
}

#[test]
fn types_without_a_fixed_wire_layout() {
    assert_eq!(
        error("struct s {\n    long n;\n};\n"),
        "t.h:2: type `long` is not supported: its size differs between the x86_32 and x86_64 ABIs"
    );
    assert_eq!(
        error("struct s {\n    double d;\n};\n"),
        "t.h:2: type `double` is not supported: floats have no place in a xenmq message (no Xen \
         protocol carries them)"
    );
    assert_eq!(
        error("struct s {\n    xen_pfn_t frame;\n};\n"),
        "t.h:2: type `xen_pfn_t` is not supported: its size differs between the x86_32 and \
         x86_64 ABIs"
    );
}

#[test]
fn types_of_other_headers() {
    assert_eq!(
        error("struct s {\n    foo_t x;\n};\n"),
        "t.h:2: unknown type `foo_t`: not defined in this header nor one of Xen's fixed-size types"
    );
    assert_eq!(
        error("struct s {\n    struct other o;\n};\n"),
        "t.h:2: `struct other` is not defined in this header"
    );
}

#[test]
fn conditions_the_port_cannot_decide() {
    assert_eq!(
        error("#if __XEN_INTERFACE_VERSION__ >= 0x00040200\nstruct s { int a; };\n#endif\n"),
        "t.h:1: `#if __XEN_INTERFACE_VERSION__ >= 0x00040200` is not supported: a port \
         evaluates `defined`, `!`, `&&`, `||` and integer literals only"
    );
    assert_eq!(
        error("#define A 1\n#undef A\n"),
        "t.h:2: `#undef` is not supported: a port takes each macro's one definition"
    );
}

#[test]
fn anonymous_members_and_variables() {
    assert_eq!(
        error("struct s {\n    int a;\n    union {\n        int b;\n    };\n};\n"),
        "t.h:3: anonymous struct or union members are not supported: name the member"
    );
    assert_eq!(
        error("struct s {\n    int a;\n} instance;\n"),
        "t.h:3: variable declarations are not supported: a header ported to xenmq declares types"
    );
}

#[test]
fn rings_of_unions() {
    assert_eq!(
        error(
            "union u { int a; };\nstruct r { int b; };\nDEFINE_RING_TYPES(x, union u, struct r);\n"
        ),
        "t.h:3: a ring's request and response must be structs"
    );
}

#[test]
fn unterminated_things() {
    assert_eq!(
        error("struct s {\n    int a;\n"),
        "t.h:1: struct or union without its closing `}`"
    );
    assert_eq!(error("int a;\n/* open\n"), "t.h:2: unterminated comment");
}

#[test]
fn gcc_disagreeing_with_the_header_is_its_own_error() {
    // Parses, but gcc cannot compile it: the error is gcc's, with the
    // header's name and line.
    let e = port("struct s {\n    int a[UNDEFINED_N];\n};\n", &options()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Probe { .. }), "{msg}");
    assert!(msg.contains("t.h:2:"), "{msg}");
}
