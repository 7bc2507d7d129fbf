//! Expansion of `#[derive(XenstoreConfig)]`: the `Config` impl, or after
//! errors the `compile_error!`s and a stub impl.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Expr, Lit};

use super::parse::Int;
use super::valid::Field;

pub fn config(input: &DeriveInput, fields: &[Field]) -> TokenStream {
    let name = &input.ident;
    let cfg = quote!(::xenmq::xenbus::config);
    let string = quote!(::xenmq::__private::String);
    let vars: Vec<_> = (0..fields.len())
        .map(|i| format_ident!("__f{}", i))
        .collect();

    let keys = fields.iter().map(|f| {
        let (ty, key) = (&f.ty, &f.key);
        quote_spanned!(f.ty.span()=> <#ty as #cfg::Setting>::keys(#key, __out);)
    });
    let reads = fields.iter().zip(&vars).map(|(f, var)| {
        let (ty, key) = (&f.ty, &f.key);
        let read = match &f.attrs.default {
            // Typed where written, so a wrong type is reported at the default.
            Some(Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            })) => quote_spanned! {s.span()=>
                let #var: #ty = match <#ty as #cfg::Setting>::read(__dir, #key, __get)? {
                    ::core::option::Option::Some(__v) => __v,
                    ::core::option::Option::None => {
                        <#string as ::core::convert::From<&::core::primitive::str>>::from(#s)
                    }
                };
            },
            Some(d) => quote_spanned! {d.span()=>
                let #var: #ty = match <#ty as #cfg::Setting>::read(__dir, #key, __get)? {
                    ::core::option::Option::Some(__v) => __v,
                    ::core::option::Option::None => #d,
                };
            },
            None => quote! {
                let #var: #ty = <#ty as #cfg::Setting>::read_required(__dir, #key, __get)?;
            },
        };
        let bounds = if f.attrs.min.is_some() || f.attrs.max.is_some() {
            let opt = |b: &Option<Int>| match b {
                Some(i) => {
                    let e = &i.expr;
                    quote!(::core::option::Option::Some(#e))
                }
                None => quote!(::core::option::Option::None),
            };
            let (lo, hi) = (opt(&f.attrs.min), opt(&f.attrs.max));
            quote_spanned! {f.ty.span()=>
                <#ty as #cfg::Bounded>::check_range(&#var, __dir, #key, #lo, #hi)?;
            }
        } else {
            TokenStream::new()
        };
        quote! {
            #read
            #bounds
        }
    });
    let writes = fields.iter().map(|f| {
        let (ident, ty, key) = (&f.ident, &f.ty, &f.key);
        quote!(<#ty as #cfg::Setting>::write(&self.#ident, #key, __put);)
    });
    let idents = fields.iter().map(|f| &f.ident);

    quote! {
        impl #cfg::Config for #name {
            fn keys(__out: &mut ::xenmq::__private::Vec<#string>) {
                #(#keys)*
            }
            fn read(
                __dir: &::core::primitive::str,
                __get: &mut dyn ::core::ops::FnMut(&::core::primitive::str) -> ::core::option::Option<#string>,
            ) -> ::core::result::Result<Self, #cfg::Error> {
                #(#reads)*
                ::core::result::Result::Ok(#name { #(#idents: #vars),* })
            }
            fn write(&self, __put: &mut dyn ::core::ops::FnMut(&::core::primitive::str, #string)) {
                #(#writes)*
            }
        }
    }
}

/// The errors, plus an impl whose bodies never run (compilation fails), so
/// that uses of the type report nothing further.
pub fn fallback(input: &DeriveInput, errors: TokenStream) -> TokenStream {
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let cfg = quote!(::xenmq::xenbus::config);
    let string = quote!(::xenmq::__private::String);
    quote! {
        #errors
        impl #impl_g #cfg::Config for #name #ty_g #where_g {
            fn keys(_: &mut ::xenmq::__private::Vec<#string>) {}
            fn read(
                _: &::core::primitive::str,
                _: &mut dyn ::core::ops::FnMut(&::core::primitive::str) -> ::core::option::Option<#string>,
            ) -> ::core::result::Result<Self, #cfg::Error> {
                ::core::unreachable!()
            }
            fn write(&self, _: &mut dyn ::core::ops::FnMut(&::core::primitive::str, #string)) {}
        }
    }
}
