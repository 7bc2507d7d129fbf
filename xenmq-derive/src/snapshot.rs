//! Expansion snapshots: what `#[xenmq::message]` emits for a few inputs,
//! kept in `tests/expand/*.expanded.rs` so a change in the generated code
//! shows up in review. `XENMQ_BLESS=1 cargo test -p xenmq-derive` rewrites
//! them.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

fn check(name: &str, input: TokenStream) {
    let out = crate::expand::message(TokenStream::new(), input);
    let file = syn::parse2::<syn::File>(out).expect("the expansion parses as a file");
    let text = prettyplease::unparse(&file);
    // Soundness is zerocopy's to prove: the macro itself emits no `unsafe`.
    assert!(
        !text.contains("unsafe"),
        "{name}: the expansion contains `unsafe`"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expand")
        .join(format!("{name}.expanded.rs"));
    if std::env::var_os("XENMQ_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (XENMQ_BLESS=1 creates it)", path.display()));
    assert_eq!(text, expected, "expansion of {name} changed");
}

#[test]
fn message_struct() {
    check(
        "message",
        quote! {
            #[xenmq(size = 16, align = 8)]
            pub struct Response {
                pub id: u64,
                pub operation: ::xenmq::wire::Enum<Op>,
                pub _pad0: u8,
                #[xenmq(offset = 10)]
                pub status: i16,
                pub _pad1: [u8; 4],
            }
        },
    );
}

#[test]
fn wire_enum() {
    check(
        "enum",
        quote! {
            #[repr(u8)]
            #[derive(Debug, Clone, Copy)]
            pub enum Op {
                Read = 0,
                Write = 1,
                Discard = 5,
            }
        },
    );
}

#[test]
fn error_fallback() {
    check(
        "error",
        quote! {
            pub struct Bad {
                pub flag: bool,
                pub slice: [u8],
                #[xenmq(offset = 1)]
                pub a: u32,
            }
        },
    );
}
