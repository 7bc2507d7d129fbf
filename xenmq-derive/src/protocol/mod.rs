//! `#[xenmq::protocol(...)]`: `parse` reads the arguments (an unknown or
//! ill-typed one is one error on it, and does not make another argument
//! look missing), `valid` checks the declaration and resolves the
//! defaults, `expand` emits the `xenmq::driver::Protocol` impl, or after
//! errors the `compile_error!`s and a stub impl.

mod expand;
mod parse;
mod valid;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = parse::args(&mut cx, attr);
    let input: syn::ItemStruct = match syn::parse2(item.clone()) {
        Ok(s) => s,
        Err(_) => {
            let item_span = match syn::parse2::<syn::Item>(item.clone()) {
                Ok(other) => syn::Error::new_spanned(
                    &other,
                    "`#[xenmq::protocol]` goes on a unit struct: `pub struct Echo;`",
                ),
                Err(e) => e,
            };
            cx.syn_error(item_span);
            let errors = cx.finish().unwrap_or_default();
            return quote::quote! { #errors #item };
        }
    };
    let protocol = valid::protocol(&mut cx, &input, args);
    match (cx.finish(), protocol) {
        (None, Some(p)) => expand::protocol(&input, &p),
        (errors, p) => expand::fallback(&input, errors.unwrap_or_default(), p.as_ref()),
    }
}
