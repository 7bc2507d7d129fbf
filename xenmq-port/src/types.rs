//! The C integer types a port knows, and the types it refuses.

use crate::ast::Int;

/// Integer types by their C spelling.
pub const INTS: &[Int] = &[
    Int {
        c: "uint8_t",
        rust: "u8",
    },
    Int {
        c: "uint16_t",
        rust: "u16",
    },
    Int {
        c: "uint32_t",
        rust: "u32",
    },
    Int {
        c: "uint64_t",
        rust: "u64",
    },
    Int {
        c: "int8_t",
        rust: "i8",
    },
    Int {
        c: "int16_t",
        rust: "i16",
    },
    Int {
        c: "int32_t",
        rust: "i32",
    },
    Int {
        c: "int64_t",
        rust: "i64",
    },
    // Xen's own fixed-size typedefs from the headers protocol headers include.
    Int {
        c: "grant_ref_t",
        rust: "u32",
    },
    Int {
        c: "RING_IDX",
        rust: "u32",
    },
    Int {
        c: "domid_t",
        rust: "u16",
    },
    Int {
        c: "evtchn_port_t",
        rust: "u32",
    },
    Int {
        c: "grant_handle_t",
        rust: "u32",
    },
    Int {
        c: "grant_status_t",
        rust: "u16",
    },
];

/// Keyword spellings of the integer types whose size is the same on
/// x86_32 and x86_64.
pub fn keyword_int(words: &[&str]) -> Option<Int> {
    let mut w: Vec<&str> = words.to_vec();
    w.sort_unstable();
    let (c, rust) = match w.as_slice() {
        ["char"] => ("char", "i8"),
        ["char", "signed"] => ("signed char", "i8"),
        ["char", "unsigned"] => ("unsigned char", "u8"),
        ["short"] | ["int", "short"] | ["short", "signed"] | ["int", "short", "signed"] => {
            ("short", "i16")
        }
        ["short", "unsigned"] | ["int", "short", "unsigned"] => ("unsigned short", "u16"),
        ["int"] | ["signed"] | ["int", "signed"] => ("int", "i32"),
        ["unsigned"] | ["int", "unsigned"] => ("unsigned int", "u32"),
        ["long", "long"] | ["int", "long", "long"] | ["long", "long", "signed"] => {
            ("long long", "i64")
        }
        ["long", "long", "unsigned"] | ["int", "long", "long", "unsigned"] => {
            ("unsigned long long", "u64")
        }
        _ => return None,
    };
    Some(Int { c, rust })
}

pub const TYPE_WORDS: &[&str] = &["unsigned", "signed", "short", "long", "int", "char"];

/// Types a wire layout cannot hold, and why.
pub fn unsupported_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "float" | "double" => {
            "floats have no place in a xenmq message (no Xen protocol carries them)"
        }
        "_Bool" | "bool" => "a peer may send any byte where only 0 and 1 are valid; use uint8_t",
        "void" => "`void` has no layout",
        "long" | "xen_ulong_t" | "xen_long_t" | "xen_pfn_t" | "size_t" | "uintptr_t" => {
            "its size differs between the x86_32 and x86_64 ABIs"
        }
        _ => return None,
    })
}
