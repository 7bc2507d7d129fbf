//! Validation of a `#[xenmq::protocol]` declaration: the item's shape,
//! the required arguments, and the values' ranges; it resolves the
//! defaults into a [`Protocol`].

use proc_macro2::TokenStream;
use quote::quote;

use super::parse::Args;
use crate::ctxt::Ctxt;

/// The most pages a ring may span (`ring-page-order` 4).
const MAX_RING_PAGES: u64 = 16;
/// The most pages a buffer pool may have.
const MAX_POOL_PAGES: u64 = 256;

/// A declaration with its defaults resolved. After errors, the parts that
/// were given well are still here, for the fallback stub.
pub struct Protocol {
    pub name: Option<String>,
    pub version: u32,
    pub request: Option<syn::Type>,
    pub response: Option<syn::Type>,
    pub ring_page_order: u8,
    pub max_ring_page_order: u8,
    pub pool_pages: u32,
    /// `::xenmq::ring::Compat` or `::xenmq::ring::Native`.
    pub rings: TokenStream,
    /// The id field named with `id = FIELD`; `None` means the messages'
    /// field `id`.
    pub id: Option<syn::Ident>,
    pub frontend_config: Option<syn::Type>,
    pub backend_config: Option<syn::Type>,
}

fn int(cx: &mut Ctxt, lit: &syn::LitInt) -> Option<u64> {
    match lit.base10_parse::<u64>() {
        Ok(v) => Some(v),
        Err(e) => {
            cx.syn_error(e);
            None
        }
    }
}

fn pages(cx: &mut Ctxt, lit: &syn::LitInt, what: &str) -> Option<u64> {
    let v = int(cx, lit)?;
    if v == 0 || v > MAX_RING_PAGES || !v.is_power_of_two() {
        cx.error_spanned(
            lit,
            format!("`{what} = {v}`: a ring spans 1, 2, 4, 8 or 16 pages"),
        );
        return None;
    }
    Some(v)
}

/// The device type rule `xenmq_runtime::toolstack::Device::validate`
/// applies too: a Xenstore path element such as Xen's own `vbd` or `9pfs`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks the declaration; `None` if the item cannot carry an impl at all.
pub fn protocol(cx: &mut Ctxt, input: &syn::ItemStruct, args: Args) -> Option<Protocol> {
    let mut ok = true;
    if !matches!(input.fields, syn::Fields::Unit) {
        cx.error_spanned(
            &input.fields,
            "a protocol is a unit struct (`pub struct Echo;`): it names the protocol and holds no data",
        );
    }
    if !input.generics.params.is_empty() {
        cx.error_spanned(
            &input.generics,
            "a protocol cannot be generic: it names one pair of message types",
        );
        ok = false;
    }
    let ident = &input.ident;
    let given = |arg: &str| args.mentioned.contains(&arg);
    let name = match &args.name {
        Some(lit) => {
            let v = lit.value();
            if !valid_name(&v) {
                cx.error_spanned(
                    lit,
                    format!(
                        "protocol name {v:?} is not a device type: 1 to 64 characters of \
                         a-z, 0-9, `-` or `_`"
                    ),
                );
            }
            Some(v)
        }
        None if given("name") => None,
        None => {
            cx.error_spanned(ident, "missing `name = \"...\"`: the device type (`vkv`)");
            None
        }
    };
    let version = match &args.version {
        Some(lit) => match int(cx, lit) {
            Some(v) => u32::try_from(v).unwrap_or_else(|_| {
                cx.error_spanned(lit, format!("`version = {v}` does not fit a u32"));
                0
            }),
            None => 0,
        },
        None => 1,
    };
    if args.request.is_none() && !given("request") {
        cx.error_spanned(ident, "missing `request = Type`: the request message");
    }
    if args.response.is_none() && !given("response") {
        cx.error_spanned(ident, "missing `response = Type`: the response message");
    }
    let ring = args
        .ring_pages
        .as_ref()
        .and_then(|l| pages(cx, l, "ring_pages"))
        .unwrap_or(1);
    let max = args
        .max_ring_pages
        .as_ref()
        .and_then(|l| pages(cx, l, "max_ring_pages"))
        .unwrap_or(ring);
    if max < ring {
        if let Some(l) = &args.max_ring_pages {
            cx.error_spanned(
                l,
                format!("`max_ring_pages = {max}` is below `ring_pages = {ring}`"),
            );
        }
    }
    let pool_pages = match &args.pool_pages {
        Some(lit) => match int(cx, lit) {
            Some(v) if v <= MAX_POOL_PAGES => v as u32,
            Some(v) => {
                cx.error_spanned(
                    lit,
                    format!("`pool_pages = {v}`: a pool has at most {MAX_POOL_PAGES} pages"),
                );
                0
            }
            None => 0,
        },
        None => 0,
    };
    let rings = match &args.layout {
        Some(l) if l == "native" => quote!(::xenmq::ring::Native),
        None => quote!(::xenmq::ring::Compat),
        Some(l) if l == "compat" => quote!(::xenmq::ring::Compat),
        Some(l) => {
            cx.error_spanned(
                l,
                format!(
                    "unknown ring layout `{l}`: `compat` (xen/io/ring.h's, the default) \
                     or `native` (xenmq's own, for protocols with xenmq at both ends)"
                ),
            );
            quote!(::xenmq::ring::Compat)
        }
    };
    ok.then_some(Protocol {
        name,
        version,
        request: args.request,
        response: args.response,
        ring_page_order: ring.trailing_zeros() as u8,
        max_ring_page_order: max.trailing_zeros() as u8,
        pool_pages,
        rings,
        id: args.id,
        frontend_config: args.frontend_config,
        backend_config: args.backend_config,
    })
}
