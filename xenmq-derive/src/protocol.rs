//! `#[xenmq::protocol(...)]`: parse the declaration, validate it, expand
//! to an impl of `xenmq::driver::Protocol`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::spanned::Spanned;

use crate::ctxt::Ctxt;

/// The most pages a ring may span (`ring-page-order` 4).
const MAX_RING_PAGES: u64 = 16;
/// The most pages a buffer pool may have.
const MAX_POOL_PAGES: u64 = 256;

/// The parsed arguments.
#[derive(Default)]
struct Args {
    name: Option<syn::LitStr>,
    version: Option<syn::LitInt>,
    request: Option<syn::Type>,
    response: Option<syn::Type>,
    ring_pages: Option<syn::LitInt>,
    max_ring_pages: Option<syn::LitInt>,
    pool_pages: Option<syn::LitInt>,
    layout: Option<syn::Ident>,
    id: Option<syn::Ident>,
    frontend_config: Option<syn::Type>,
    backend_config: Option<syn::Type>,
}

fn set<T>(dups: &mut Vec<syn::Error>, slot: &mut Option<T>, key: &syn::Path, value: T) {
    if slot.is_some() {
        dups.push(syn::Error::new_spanned(key, "duplicate protocol argument"));
    } else {
        *slot = Some(value);
    }
}

fn parse_args(cx: &mut Ctxt, attr: TokenStream) -> Args {
    let mut a = Args::default();
    let mut dups = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.clone();
        let Some(ident) = key.get_ident().map(ToString::to_string) else {
            return Err(meta.error("expected a protocol argument name"));
        };
        let value = meta.value()?;
        let d = &mut dups;
        match ident.as_str() {
            "name" => set(d, &mut a.name, &key, value.parse()?),
            "version" => set(d, &mut a.version, &key, value.parse()?),
            "request" => set(d, &mut a.request, &key, value.parse()?),
            "response" => set(d, &mut a.response, &key, value.parse()?),
            "ring_pages" => set(d, &mut a.ring_pages, &key, value.parse()?),
            "max_ring_pages" => set(d, &mut a.max_ring_pages, &key, value.parse()?),
            "pool_pages" => set(d, &mut a.pool_pages, &key, value.parse()?),
            "layout" => set(d, &mut a.layout, &key, value.parse()?),
            "id" => set(d, &mut a.id, &key, value.parse()?),
            "frontend_config" => set(d, &mut a.frontend_config, &key, value.parse()?),
            "backend_config" => set(d, &mut a.backend_config, &key, value.parse()?),
            _ => {
                return Err(meta.error(format!(
                    "unknown protocol argument `{ident}`; expected one of name, version, \
                     request, response, ring_pages, max_ring_pages, pool_pages, layout, \
                     id, frontend_config, backend_config"
                )))
            }
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(attr) {
        cx.syn_error(e);
    }
    for e in dups {
        cx.syn_error(e);
    }
    a
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

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let input: syn::ItemStruct = match syn::parse2(item.clone()) {
        Ok(s) => s,
        Err(_) => {
            let e = syn::Error::new(
                Span::call_site(),
                "`#[xenmq::protocol]` goes on a unit struct: `pub struct Echo;`",
            );
            let err = e.to_compile_error();
            return quote! { #err #item };
        }
    };
    let args = parse_args(&mut cx, attr);
    if !matches!(input.fields, syn::Fields::Unit) {
        cx.error_spanned(
            &input.fields,
            "a protocol is a unit struct (`pub struct Echo;`): it names the protocol and holds no data",
        );
    }
    if !input.generics.params.is_empty() {
        cx.error_spanned(&input.generics, "a protocol cannot be generic");
    }
    let ident = &input.ident;
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
        None => {
            cx.error_spanned(ident, "missing `name = \"...\"`: the device type (`vkv`)");
            None
        }
    };
    let version = match &args.version {
        Some(lit) => match int(&mut cx, lit) {
            Some(v) if u32::try_from(v).is_ok() => v as u32,
            Some(v) => {
                cx.error_spanned(lit, format!("`version = {v}` does not fit a u32"));
                0
            }
            None => 0,
        },
        None => 1,
    };
    let request = args.request.clone();
    let response = args.response.clone();
    if request.is_none() {
        cx.error_spanned(ident, "missing `request = Type`: the request message");
    }
    if response.is_none() {
        cx.error_spanned(ident, "missing `response = Type`: the response message");
    }
    let ring = args
        .ring_pages
        .as_ref()
        .and_then(|l| pages(&mut cx, l, "ring_pages"))
        .unwrap_or(1);
    let max = args
        .max_ring_pages
        .as_ref()
        .and_then(|l| pages(&mut cx, l, "max_ring_pages"))
        .unwrap_or(ring);
    if max < ring {
        if let Some(l) = &args.max_ring_pages {
            cx.error_spanned(
                l,
                format!("`max_ring_pages = {max}` is below `ring_pages = {ring}`"),
            );
        }
    }
    let pool = match &args.pool_pages {
        Some(lit) => match int(&mut cx, lit) {
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
        None => Some(quote!(::xenmq::ring::Compat)),
        Some(l) if l == "compat" => Some(quote!(::xenmq::ring::Compat)),
        Some(l) if l == "native" => Some(quote!(::xenmq::ring::Native)),
        Some(l) => {
            cx.error_spanned(
                l,
                format!(
                    "unknown ring layout `{l}`: `compat` (xen/io/ring.h's, the default) \
                     or `native` (xenmq's own, for protocols with xenmq at both ends)"
                ),
            );
            None
        }
    };
    if let Some(errors) = cx.finish() {
        // The struct stays, so that uses of it report nothing more.
        return quote! { #errors #input };
    }
    let (Some(name), Some(request), Some(response), Some(rings)) = (name, request, response, rings)
    else {
        return quote! { #input };
    };
    let order = ring.trailing_zeros() as u8;
    let max_order = max.trailing_zeros() as u8;
    let no_config: syn::Type = syn::parse_quote!(::xenmq::driver::NoConfig);
    let fe_config = args.frontend_config.unwrap_or_else(|| no_config.clone());
    let be_config = args.backend_config.unwrap_or(no_config);
    // The id field, spanned where a missing field is best reported: at the
    // `id = ...` argument, or else at the message type.
    let field = |ty: &syn::Type| match &args.id {
        Some(id) => id.clone(),
        None => syn::Ident::new("id", ty.span()),
    };
    let (req_field, rsp_field) = (field(&request), field(&response));
    let req_id = quote::quote_spanned! {req_field.span()=> req.#req_field };
    let rsp_id = quote::quote_spanned! {rsp_field.span()=> rsp.#rsp_field };
    quote! {
        #input

        impl ::xenmq::driver::Protocol for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const FINGERPRINT: u64 = ::xenmq::__private::combine_fingerprints(&[
                <#request as ::xenmq::wire::Message>::FINGERPRINT,
                <#response as ::xenmq::wire::Message>::FINGERPRINT,
            ]);
            const RING_PAGE_ORDER: u8 = #order;
            const MAX_RING_PAGE_ORDER: u8 = #max_order;
            const POOL_PAGES: u32 = #pool;
            type Rings = #rings;
            type Request = #request;
            type Response = #response;
            type FrontendConfig = #fe_config;
            type BackendConfig = #be_config;

            #[inline]
            fn request_id(req: &#request) -> u64 {
                #req_id
            }
            #[inline]
            fn set_request_id(req: &mut #request, id: u64) {
                #req_id = id;
            }
            #[inline]
            fn response_id(rsp: &#response) -> u64 {
                #rsp_id
            }
            #[inline]
            fn set_response_id(rsp: &mut #response, id: u64) {
                #rsp_id = id;
            }
        }
    }
}
