//! `#[derive(XenstoreConfig)]`: a struct's fields as the keys of a Xenstore
//! directory. `parse` reads the `#[xenstore(...)]` attributes into typed
//! values, `valid` checks the item (keys well-formed, unique, not owned by
//! the framework: `reserved`), `expand` emits the `Config` impl, or after
//! errors the `compile_error!`s and a stub impl.

mod expand;
mod parse;
pub(crate) mod reserved;
mod valid;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub fn expand(item: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        // A derive's input is an item the compiler already parsed.
        Err(e) => return e.to_compile_error(),
    };
    let mut cx = Ctxt::default();
    let fields = valid::item(&mut cx, &input);
    match cx.finish() {
        Some(errors) => expand::fallback(&input, errors),
        None => expand::config(&input, &fields),
    }
}
