//! Procedural macros for xenmq. Entry points only; parsing, validation and
//! expansion live in their own modules.
#![forbid(unsafe_code)]

mod attr;
mod ctxt;
mod expand;
mod layout;
mod valid;

use proc_macro::TokenStream;

/// Makes a struct a fixed wire layout, or a fieldless `#[repr(int)]` enum
/// a wire enum. See `xenmq::wire` for the rules and the generated items.
#[proc_macro_attribute]
pub fn message(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::message(attr.into(), item.into()).into()
}
