//! Expansion: the `#[repr(C)]` struct with zerocopy's derives, the
//! compile-time layout assertions and the `Message`/`WireEnum` impls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Item, ItemEnum, ItemStruct};

use super::parse::{is_xenmq, FieldAttrs, StructAttrs};
use super::valid;
use crate::ctxt::Ctxt;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    valid::args(&mut cx, &args);
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            cx.syn_error(e);
            return fallback(cx, input);
        }
    };
    match item {
        Item::Struct(s) => message_struct(cx, s),
        Item::Enum(e) => wire_enum(cx, e),
        Item::Union(u) => {
            cx.error_spanned(
                u.union_token,
                "unions are not supported as messages: reading one member of bytes \
                 the peer wrote as another is how confusion bugs start; declare one \
                 message per variant and dispatch on an `Enum` field",
            );
            fallback(cx, quote!(#u))
        }
        other => {
            cx.error_spanned(
                &other,
                "`#[xenmq::message]` applies to a struct with named fields or to a \
                 fieldless enum with an integer `#[repr]`",
            );
            fallback(cx, input)
        }
    }
}

/// On error: the errors, plus the item with our helper attributes removed,
/// so that the user sees the real error and not follow-ups about unknown
/// attributes or a missing type.
fn fallback(cx: Ctxt, item: TokenStream) -> TokenStream {
    let errors = cx.finish().unwrap_or_default();
    let item = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(mut s)) => {
            stub(&mut s);
            quote!(#s)
        }
        Ok(Item::Enum(mut e)) => {
            // A bad `#[repr]` would only add the compiler's own follow-ups.
            e.attrs
                .retain(|a| !is_xenmq(a) && !a.path().is_ident("repr"));
            let stub = enum_stub(&e);
            quote!(#e #stub)
        }
        Ok(Item::Union(mut u)) => {
            u.attrs.retain(|a| !is_xenmq(a));
            for f in &mut u.fields.named {
                f.attrs.retain(|a| !is_xenmq(a));
            }
            quote!(#u)
        }
        _ => item,
    };
    quote! { #errors #item }
}

/// A `WireEnum` impl whose bodies never run (compilation fails), so that
/// uses of the enum as `Enum<E>` report nothing further.
fn enum_stub(e: &ItemEnum) -> TokenStream {
    if !e.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &e.ident;
    let name = ident.unraw().to_string();
    quote! {
        impl ::xenmq::wire::WireEnum for #ident {
            type Repr = ::core::primitive::u8;
            const NAME: &'static str = #name;
            fn to_raw(self) -> ::core::primitive::u8 {
                ::core::unreachable!()
            }
            fn from_raw(_: ::core::primitive::u8) -> ::core::option::Option<Self> {
                ::core::unreachable!()
            }
        }
    }
}

fn strip(s: &mut ItemStruct) {
    s.attrs.retain(|a| !is_xenmq(a));
    for f in s.fields.iter_mut() {
        f.attrs.retain(|a| !is_xenmq(a));
    }
}

/// The struct as the fallback emits it: without our attributes, and with
/// field types that cannot even be struct fields (already reported) made
/// `()`, so the compiler adds nothing to the macro's own errors.
fn stub(s: &mut ItemStruct) {
    strip(s);
    for f in s.fields.iter_mut() {
        if valid::unsized_type(&f.ty) {
            f.ty = syn::parse_quote!(());
        }
    }
}

fn message_struct(mut cx: Ctxt, item: ItemStruct) -> TokenStream {
    valid::item_struct(&mut cx, &item);
    let (sattrs, fattrs) = valid::attrs(&mut cx, &item);
    if let Some(errors) = cx.finish() {
        let mut s = item;
        stub(&mut s);
        return quote! { #errors #s };
    }
    let mut s = item.clone();
    strip(&mut s);
    let checks = checks(&item, &sattrs, &fattrs);
    let wrapped = wrap(&s);
    let impls = message_impls(wrapped.as_ref().unwrap_or(&s));
    let id = id_field(&item);
    let derives = quote! {
        #[repr(C)]
        #[derive(
            ::xenmq::__private::zerocopy::FromBytes,
            ::xenmq::__private::zerocopy::IntoBytes,
            ::xenmq::__private::zerocopy::Immutable,
            ::xenmq::__private::zerocopy::KnownLayout
        )]
        #[zerocopy(crate = "::xenmq::__private::zerocopy")]
    };
    let structs = match wrapped {
        // Documentation shows the types as written; they are the same
        // types once the projections normalize.
        Some(w) => quote! {
            #[cfg(not(doc))]
            #derives
            #w
            #[cfg(doc)]
            #derives
            #s
        },
        None => quote! {
            #derives
            #s
        },
    };
    quote! {
        #checks
        #structs
        #impls
        #id
    }
}

/// The struct with each field type the macro cannot judge itself written
/// `<T as xenmq::__private::FieldType>::Type`: `T` for every wire field,
/// and `Enum<T>` for a `#[xenmq::message]` enum `T`, so that zerocopy's
/// derives accept the struct and the field check's one error (write
/// `Enum<T>`) is all the user sees. `None` if every field is an integer
/// or an array of integers.
fn wrap(s: &ItemStruct) -> Option<ItemStruct> {
    let mut w = s.clone();
    let mut any = false;
    for f in w.fields.iter_mut() {
        if !super::layout::known(&f.ty) {
            let ty = &f.ty;
            f.ty = syn::parse_quote_spanned! {ty.span()=>
                <#ty as ::xenmq::__private::FieldType>::Type
            };
            any = true;
        }
    }
    any.then_some(w)
}

/// The layout checks: each field type is a wire `Field` (a `#[xenmq::message]`
/// enum is told to be carried as `Enum<E>`), no implicit padding, and the
/// declared offsets, size and alignment. Each is an impl of
/// `xenmq::__private::Checked<N>` whose where-clause fails when the check
/// does, so the compiler reports it while checking items, ahead of
/// zerocopy's derives; each is spanned to what it checks.
fn checks(item: &ItemStruct, sattrs: &StructAttrs, fattrs: &[FieldAttrs]) -> TokenStream {
    let ident = &item.ident;
    let name = ident.unraw().to_string();
    let mut out = TokenStream::new();
    let mut n = 0usize;
    let mut check = |span: proc_macro2::Span, cond: TokenStream| {
        let k = proc_macro2::Literal::usize_unsuffixed(n);
        n += 1;
        out.extend(quote_spanned! {span=>
            impl ::xenmq::__private::Checked<#k> for #ident where #cond {}
        });
    };
    let passes = |call: TokenStream| {
        quote! { ::xenmq::__private::Check<{ #call; 0 }>: ::xenmq::__private::Passed }
    };
    let fields: Vec<_> = item.fields.iter().collect();
    for f in &fields {
        let ty = &f.ty;
        check(
            ty.span(),
            quote_spanned! {ty.span()=>
                #ty: ::xenmq::__private::FieldType,
                <#ty as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict
            },
        );
    }
    let mut prev: Option<&syn::Field> = None;
    for (f, fa) in fields.iter().zip(fattrs) {
        let fid = f.ident.as_ref().expect("validated: named fields");
        let fname = fid.unraw().to_string();
        let fty = &f.ty;
        if let Some(p) = prev {
            let pid = p.ident.as_ref().expect("validated: named fields");
            let pname = pid.unraw().to_string();
            let pty = &p.ty;
            check(
                fid.span(),
                passes(quote_spanned! {fid.span()=>
                    ::xenmq::__private::check_gap(
                        #pname,
                        ::core::mem::offset_of!(#ident, #pid) + ::core::mem::size_of::<#pty>(),
                        #fname,
                        ::core::mem::align_of::<#fty>(),
                        ::core::mem::offset_of!(#ident, #fid),
                    )
                }),
            );
        }
        if let Some(off) = &fa.offset {
            let lit = off.literal();
            check(
                off.lit.span(),
                passes(quote_spanned! {off.lit.span()=>
                    ::xenmq::__private::check_offset(
                        #fname,
                        #lit,
                        ::core::mem::offset_of!(#ident, #fid),
                    )
                }),
            );
        }
        prev = Some(f);
    }
    if let Some(last) = prev {
        let lid = last.ident.as_ref().expect("validated: named fields");
        let lname = lid.unraw().to_string();
        let lty = &last.ty;
        check(
            lid.span(),
            passes(quote_spanned! {lid.span()=>
                ::xenmq::__private::check_tail(
                    #name,
                    #lname,
                    ::core::mem::offset_of!(#ident, #lid) + ::core::mem::size_of::<#lty>(),
                    ::core::mem::size_of::<#ident>(),
                    ::core::mem::align_of::<#ident>(),
                )
            }),
        );
    }
    if let Some(size) = &sattrs.size {
        let lit = size.literal();
        check(
            size.lit.span(),
            passes(quote_spanned! {size.lit.span()=>
                ::xenmq::__private::check_size(#name, #lit, ::core::mem::size_of::<#ident>())
            }),
        );
    }
    if let Some(align) = &sattrs.align {
        let lit = align.literal();
        check(
            align.lit.span(),
            passes(quote_spanned! {align.lit.span()=>
                ::xenmq::__private::check_align(#name, #lit, ::core::mem::align_of::<#ident>())
            }),
        );
    }
    out
}

/// `xenmq::__private::IdField` for a struct with a field named `id`: the
/// request id a protocol carries unless it names another field.
fn id_field(item: &ItemStruct) -> TokenStream {
    let ident = &item.ident;
    let Some(f) = item
        .fields
        .iter()
        .find(|f| f.ident.as_ref().is_some_and(|i| i.unraw() == "id"))
    else {
        return TokenStream::new();
    };
    let (fid, ty) = (&f.ident, &f.ty);
    quote! {
        impl ::xenmq::__private::IdField for #ident {
            type Id = #ty;
            #[inline]
            fn id(&self) -> &#ty {
                &self.#fid
            }
            #[inline]
            fn id_mut(&mut self) -> &mut #ty {
                &mut self.#fid
            }
        }
    }
}

fn message_impls(item: &ItemStruct) -> TokenStream {
    let ident = &item.ident;
    let name = ident.unraw().to_string();
    let folds = item.fields.iter().map(|f| {
        let fid = f.ident.as_ref().expect("validated: named fields");
        let fname = fid.unraw().to_string();
        let ty = &f.ty;
        quote! {
            .str(#fname)
            .u64(<#ty as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
            .usize(::core::mem::offset_of!(#ident, #fid))
            .usize(::core::mem::size_of::<#ty>())
        }
    });
    quote! {
        impl ::xenmq::wire::Field for #ident {
            const TYPE_FINGERPRINT: u64 = <Self as ::xenmq::wire::Message>::FINGERPRINT;
        }
        impl ::xenmq::wire::Message for #ident {
            const NAME: &'static str = #name;
            const SIZE: usize = ::core::mem::size_of::<Self>();
            const ALIGN: usize = ::core::mem::align_of::<Self>();
            const FINGERPRINT: u64 = ::xenmq::wire::Fnv::new()
                .str("message")
                .str(#name)
                #(#folds)*
                .usize(::core::mem::size_of::<Self>())
                .usize(::core::mem::align_of::<Self>())
                .finish();
        }
    }
}

fn wire_enum(mut cx: Ctxt, item: ItemEnum) -> TokenStream {
    let repr = valid::item_enum(&mut cx, &item);
    let Some(repr) = repr.filter(|_| !cx.has_errors()) else {
        return fallback(cx, quote!(#item));
    };
    let ident = &item.ident;
    let name = ident.unraw().to_string();
    let arms = item.variants.iter().map(|v| {
        let vid = &v.ident;
        quote! {
            if __raw == #ident::#vid as #repr {
                return ::core::option::Option::Some(#ident::#vid);
            }
        }
    });
    quote! {
        #item
        impl ::xenmq::wire::WireEnum for #ident {
            type Repr = #repr;
            const NAME: &'static str = #name;
            fn to_raw(self) -> #repr {
                self as #repr
            }
            fn from_raw(__raw: #repr) -> ::core::option::Option<Self> {
                #(#arms)*
                ::core::option::Option::None
            }
        }
        // As a message field the enum must be `Enum<Self>`: the field
        // check's error says so.
        impl ::xenmq::__private::FieldType for #ident {
            type Verdict = ::xenmq::wire::Enum<#ident>;
            type Type = ::xenmq::wire::Enum<#ident>;
        }
    }
}
