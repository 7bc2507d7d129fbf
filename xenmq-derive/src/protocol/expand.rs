//! Expansion of `#[xenmq::protocol]`: the unit struct and its
//! `xenmq::driver::Protocol` impl, or after errors the `compile_error!`s,
//! the struct and a stub impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::valid::Protocol;

pub fn protocol(input: &syn::ItemStruct, p: &Protocol) -> TokenStream {
    let (Some(name), Some(request), Some(response)) = (&p.name, &p.request, &p.response) else {
        // Validation reported what is missing.
        return fallback(input, TokenStream::new(), Some(p));
    };
    let ident = &input.ident;
    let version = p.version;
    let (order, max_order, pool, rings) = (
        p.ring_page_order,
        p.max_ring_page_order,
        p.pool_pages,
        &p.rings,
    );
    let no_config: syn::Type = syn::parse_quote!(::xenmq::driver::NoConfig);
    let fe_config = p.frontend_config.as_ref().unwrap_or(&no_config);
    let be_config = p.backend_config.as_ref().unwrap_or(&no_config);
    let ids = ids(p.id.as_ref(), request, response);
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
            #ids
        }
    }
}

/// The four id accessors: through the field named with `id = FIELD`
/// (spanned there), or else through the messages' `IdField` impl, whose
/// absence is reported at the message type with a hint at `id = FIELD`.
fn ids(id: Option<&syn::Ident>, request: &syn::Type, response: &syn::Type) -> TokenStream {
    let get = |ty: &syn::Type, var: TokenStream| match id {
        Some(field) => (
            quote_spanned! {field.span()=> #var.#field },
            quote_spanned! {field.span()=> #var.#field },
        ),
        None => (
            quote_spanned! {ty.span()=>
                ::xenmq::__private::IdType::get(<#ty as ::xenmq::__private::IdField>::id(#var))
            },
            quote_spanned! {ty.span()=>
                ::xenmq::__private::IdType::set(
                    <#ty as ::xenmq::__private::IdField>::id_mut(#var),
                    id,
                )
            },
        ),
    };
    let (req_get, req_set) = get(request, quote!(req));
    let (rsp_get, rsp_set) = get(response, quote!(rsp));
    let set = |set: TokenStream| match id {
        Some(_) => quote!(#set = id;),
        None => quote!(#set;),
    };
    let (req_set, rsp_set) = (set(req_set), set(rsp_set));
    quote! {
        #[inline]
        fn request_id(req: &#request) -> u64 {
            #req_get
        }
        #[inline]
        fn set_request_id(req: &mut #request, id: u64) {
            #req_set
        }
        #[inline]
        fn response_id(rsp: &#response) -> u64 {
            #rsp_get
        }
        #[inline]
        fn set_response_id(rsp: &mut #response, id: u64) {
            #rsp_set
        }
    }
}

/// The errors, the struct, and (when the struct can carry one) a
/// `Protocol` impl whose functions never run (compilation fails), with the
/// messages the user gave, so that uses of the protocol report nothing
/// further.
pub fn fallback(input: &syn::ItemStruct, errors: TokenStream, p: Option<&Protocol>) -> TokenStream {
    let Some(p) = p else {
        return quote! { #errors #input };
    };
    let ident = &input.ident;
    // A missing message stands in for by the other one; with neither, the
    // struct alone (nothing else can name a message).
    let (Some(request), Some(response)) = (
        p.request.as_ref().or(p.response.as_ref()),
        p.response.as_ref().or(p.request.as_ref()),
    ) else {
        return quote! { #errors #input };
    };
    let no_config: syn::Type = syn::parse_quote!(::xenmq::driver::NoConfig);
    let fe_config = p.frontend_config.as_ref().unwrap_or(&no_config);
    let be_config = p.backend_config.as_ref().unwrap_or(&no_config);
    let name = p.name.as_deref().unwrap_or("");
    let rings = &p.rings;
    quote! {
        #errors
        #input
        impl ::xenmq::driver::Protocol for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = 0;
            const FINGERPRINT: u64 = 0;
            const RING_PAGE_ORDER: u8 = 0;
            const MAX_RING_PAGE_ORDER: u8 = 0;
            const POOL_PAGES: u32 = 0;
            type Rings = #rings;
            type Request = #request;
            type Response = #response;
            type FrontendConfig = #fe_config;
            type BackendConfig = #be_config;
            fn request_id(_: &#request) -> u64 {
                ::core::unreachable!()
            }
            fn set_request_id(_: &mut #request, _: u64) {
                ::core::unreachable!()
            }
            fn response_id(_: &#response) -> u64 {
                ::core::unreachable!()
            }
            fn set_response_id(_: &mut #response, _: u64) {
                ::core::unreachable!()
            }
        }
    }
}
