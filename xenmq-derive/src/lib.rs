//! Procedural macros for xenmq. Entry points only; parsing, validation and
//! expansion live in their own modules.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

/// Makes a struct a fixed wire layout (`#[repr(C)]` + zerocopy derives).
#[proc_macro_attribute]
pub fn message(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

mod config;

/// Maps a struct's fields to the keys of a Xenstore directory: implements
/// `xenmq::xenbus::config::Config` (`keys`, `read`, `write`).
///
/// Keys are the field names in kebab-case; per field,
/// `#[xenstore(rename = "key", default = expr, min = lit, max = lit)]`.
/// `Option<T>` fields are optional, `bool` is `"0"`/`"1"` with a missing key
/// read as false (Xen's `feature-*` convention), `RingRefs` reads `ring-ref`
/// or `ring-page-order` + `ring-ref0..N-1`.
#[proc_macro_derive(XenstoreConfig, attributes(xenstore))]
pub fn xenstore_config(item: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(item as syn::DeriveInput);
    config::derive(input).into()
}
