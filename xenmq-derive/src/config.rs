//! `#[derive(XenstoreConfig)]`: a struct's fields as Xenstore keys.
//!
//! Parse the `#[xenstore(...)]` attributes into typed [`FieldAttrs`], validate
//! the whole item (collecting every error), then expand to an impl of
//! `::xenmq::xenbus::config::Config`. On any error the output is the errors as
//! `compile_error!` plus a stub impl, so the user sees our message and not a
//! cascade of "trait not implemented".

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Lit, LitStr, Type, UnOp};

/// The longest key name the derive accepts.
const MAX_KEY_LEN: usize = 128;

/// Collected errors of one item (serde_derive's `Ctxt`).
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    fn spanned(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }
}

/// An integer bound or default, kept as tokens and, when it is a literal, as
/// a value for compile-time checks.
struct Int {
    expr: Expr,
    value: i128,
}

impl Int {
    fn parse(expr: Expr) -> syn::Result<Self> {
        let value = match &expr {
            Expr::Lit(l) => lit_int(&l.lit),
            Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match &*u.expr {
                Expr::Lit(l) => lit_int(&l.lit).map(|v| -v),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) => Ok(Int { expr, value }),
            None => Err(syn::Error::new_spanned(
                &expr,
                "expected an integer literal",
            )),
        }
    }
}

fn lit_int(lit: &Lit) -> Option<i128> {
    match lit {
        Lit::Int(i) => i.base10_parse().ok(),
        _ => None,
    }
}

/// What `#[xenstore(...)]` says about one field.
#[derive(Default)]
struct FieldAttrs {
    rename: Option<LitStr>,
    default: Option<Expr>,
    min: Option<Int>,
    max: Option<Int>,
}

fn parse_attrs(attrs: &[syn::Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("xenstore")) {
        let r =
            attr.parse_nested_meta(|meta| {
                let name = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let dup = || meta.error(format!("duplicate `{name}` attribute"));
                match name.as_str() {
                    "rename" => {
                        let s: LitStr = meta.value()?.parse().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                "`rename` takes a string literal: `rename = \"key\"`",
                            )
                        })?;
                        if out.rename.replace(s).is_some() {
                            return Err(dup());
                        }
                    }
                    "default" => {
                        let e: Expr = meta.value()?.parse()?;
                        if out.default.replace(e).is_some() {
                            return Err(dup());
                        }
                    }
                    "min" | "max" => {
                        let v = Int::parse(meta.value()?.parse()?)?;
                        let slot = if name == "min" {
                            &mut out.min
                        } else {
                            &mut out.max
                        };
                        if slot.replace(v).is_some() {
                            return Err(dup());
                        }
                    }
                    _ => return Err(meta.error(
                        "unknown xenstore attribute; expected `rename`, `default`, `min` or `max`",
                    )),
                }
                Ok(())
            });
        if let Err(e) = r {
            errors.push(e);
        }
    }
    out
}

/// `max_ring_page_order` -> `max-ring-page-order`; a raw `r#type` -> `type`.
fn kebab(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").unwrap_or(&s).replace('_', "-")
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `ty` is written as an `Option<..>`.
fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "Option" && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        _ => false,
    }
}

struct Field {
    ident: syn::Ident,
    ty: Type,
    key: String,
    attrs: FieldAttrs,
}

pub fn derive(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let fields = validate(&input, &mut errors);
    match errors.0 {
        Some(e) => fallback(&input, e),
        None => expand(&input, &fields),
    }
}

fn validate(input: &DeriveInput, errors: &mut Errors) -> Vec<Field> {
    for a in input.attrs.iter().filter(|a| a.path().is_ident("xenstore")) {
        errors.spanned(
            a,
            "`#[xenstore(...)]` goes on fields, each of which names a key",
        );
    }
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "XenstoreConfig does not support generic parameters: a config names concrete types",
        );
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(n) => Some(n),
            _ => None,
        },
        _ => None,
    };
    let Some(named) = named else {
        errors.spanned(
            &input.ident,
            "XenstoreConfig needs a struct with named fields: each field names a key",
        );
        return Vec::new();
    };
    let mut out: Vec<Field> = Vec::new();
    for f in &named.named {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        let attrs = parse_attrs(&f.attrs, errors);
        let (key, key_span) = match &attrs.rename {
            Some(s) => (s.value(), s.span()),
            None => (kebab(&ident), ident.span()),
        };
        if !valid_key(&key) {
            errors.push(syn::Error::new(
                key_span,
                format!(
                    "invalid Xenstore key `{key}`: a key is 1 to {MAX_KEY_LEN} characters \
                     from `A-Z`, `a-z`, `0-9`, `-` and `_`"
                ),
            ));
        }
        if let Some(prev) = out.iter().find(|p| p.key == key) {
            errors.push(syn::Error::new(
                key_span,
                format!(
                    "duplicate Xenstore key `{key}`: field `{}` already uses it",
                    prev.ident
                ),
            ));
        }
        if let (Some(d), true) = (&attrs.default, is_option(&f.ty)) {
            errors.spanned(
                d,
                "`default` does nothing on an `Option` field: a missing key reads as `None`",
            );
        }
        if let (Some(lo), Some(hi)) = (&attrs.min, &attrs.max) {
            if lo.value > hi.value {
                errors.spanned(
                    &hi.expr,
                    format!("`min = {}` is greater than `max = {}`", lo.value, hi.value),
                );
            }
        }
        if let Some(Ok(d)) = attrs.default.clone().map(Int::parse) {
            let low = attrs.min.as_ref().is_some_and(|m| d.value < m.value);
            let high = attrs.max.as_ref().is_some_and(|m| d.value > m.value);
            if low || high {
                let bounds = match (&attrs.min, &attrs.max) {
                    (Some(a), Some(b)) => format!("{}..={}", a.value, b.value),
                    (Some(a), None) => format!("{}..", a.value),
                    (None, Some(b)) => format!("..={}", b.value),
                    (None, None) => String::from(".."),
                };
                errors.spanned(
                    &d.expr,
                    format!("`default = {}` is outside the bounds {bounds}", d.value),
                );
            }
        }
        out.push(Field {
            ident,
            ty: f.ty.clone(),
            key,
            attrs,
        });
    }
    out
}

fn expand(input: &DeriveInput, fields: &[Field]) -> TokenStream {
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
fn fallback(input: &DeriveInput, e: syn::Error) -> TokenStream {
    let errors = e.to_compile_error();
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

/// Expansion snapshots of the derive, kept in
/// `tests/ui-config/expanded/*.expanded.rs` so that a change in the
/// generated code shows in review. `XENMQ_BLESS=1` rewrites them.
#[cfg(test)]
mod snapshot {
    use std::path::Path;

    use quote::quote;

    fn check(name: &str, input: proc_macro2::TokenStream) {
        let input: DeriveInput = syn::parse2(input).expect("a derive input");
        let out = super::derive(input);
        let file = syn::parse2::<syn::File>(out).expect("the expansion parses as a file");
        let text = prettyplease::unparse(&file);
        assert!(
            !text.contains("unsafe"),
            "{name}: the expansion contains `unsafe`"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/ui-config/expanded")
            .join(format!("{name}.expanded.rs"));
        if std::env::var_os("XENMQ_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, &text).expect("write snapshot");
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (XENMQ_BLESS=1 creates it)", path.display()));
        assert_eq!(text, expected, "expansion of {name} changed");
    }

    use syn::DeriveInput;

    #[test]
    fn config() {
        check(
            "config",
            quote! {
                pub struct Ring {
                    #[xenstore(rename = "ring-ref")]
                    pub ring: ::xenmq::xenbus::RingRefs,
                    pub event_channel: u32,
                    pub protocol: Option<String>,
                    pub feature_persistent: bool,
                    #[xenstore(default = 11, min = 1, max = 256)]
                    pub max_segments: u16,
                    #[xenstore(default = "vkv")]
                    pub r#type: String,
                }
            },
        );
    }

    #[test]
    fn fallback() {
        check(
            "fallback",
            quote! {
                pub struct Bad {
                    #[xenstore(rename = "a/b", min = 3, max = 1)]
                    pub a: u32,
                }
            },
        );
    }
}
