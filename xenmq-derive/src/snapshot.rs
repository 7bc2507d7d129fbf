//! Expansion snapshots of the three macros: what each emits for a few
//! inputs, kept in `tests/expand/{message,config,protocol}/*.expanded.rs`
//! so that a change in the generated code shows up in review.
//! `XENMQ_BLESS=1 cargo test -p xenmq-derive` rewrites them.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

/// Compares `out`, the expansion of `input` by `macro_`, with its snapshot.
fn check(macro_: &str, name: &str, out: TokenStream) {
    let file = syn::parse2::<syn::File>(out).expect("the expansion parses as a file");
    let text = prettyplease::unparse(&file);
    // Soundness is zerocopy's to prove: the macros emit no `unsafe`.
    assert!(
        !text.contains("unsafe"),
        "{macro_}/{name}: the expansion contains `unsafe`"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expand")
        .join(macro_)
        .join(format!("{name}.expanded.rs"));
    if std::env::var_os("XENMQ_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, &text).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (XENMQ_BLESS=1 creates it)", path.display()));
    assert_eq!(text, expected, "expansion of {macro_}/{name} changed");
}

fn message(name: &str, input: TokenStream) {
    check(
        "message",
        name,
        crate::message::expand(TokenStream::new(), input),
    );
}

fn config(name: &str, input: TokenStream) {
    check("config", name, crate::config::expand(input));
}

fn protocol(name: &str, args: TokenStream, input: TokenStream) {
    check("protocol", name, crate::protocol::expand(args, input));
}

#[test]
fn message_struct() {
    message(
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
fn message_enum() {
    message(
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
fn message_fallback() {
    message(
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

#[test]
fn config_struct() {
    config(
        "config",
        quote! {
            pub struct Ring {
                #[xenstore(rename = "ring-ref", reserved)]
                pub ring: ::xenmq::xenbus::RingRefs,
                #[xenstore(reserved)]
                pub event_channel: u32,
                pub feature_persistent: bool,
                #[xenstore(default = 11, min = 1, max = 256)]
                pub max_segments: u16,
                #[xenstore(default = "vkv")]
                pub r#type: String,
                pub backend_name: Option<String>,
            }
        },
    );
}

#[test]
fn config_fallback() {
    config(
        "fallback",
        quote! {
            pub struct Bad {
                #[xenstore(rename = "a/b", min = 3, max = 1)]
                pub a: u32,
                pub state: u32,
            }
        },
    );
}

#[test]
fn protocol_impl() {
    protocol(
        "protocol",
        quote!(
            name = "vkv",
            version = 2,
            request = Req,
            response = Rsp,
            ring_pages = 2,
            max_ring_pages = 8,
            pool_pages = 16,
            layout = native,
            backend_config = Limits
        ),
        quote!(
            pub struct Vkv;
        ),
    );
}

#[test]
fn protocol_id_field() {
    protocol(
        "id",
        quote!(name = "blk", request = Req, response = Rsp, id = tag),
        quote!(
            pub struct Blk;
        ),
    );
}

#[test]
fn protocol_fallback() {
    protocol(
        "fallback",
        quote!(name = "vkv", reqest = Req, response = Rsp, version = "1"),
        quote!(
            pub struct Vkv;
        ),
    );
}
