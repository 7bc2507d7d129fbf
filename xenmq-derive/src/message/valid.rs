//! Validation: every rule a message or wire enum must follow that can be
//! checked on the syntax. Layout rules that need type sizes (padding,
//! offsets, size, alignment) are emitted as constant assertions instead.

use syn::ext::IdentExt;
use syn::{Fields, GenericArgument, ItemEnum, ItemStruct, PathArguments, Type};

use super::layout::Gap;
use super::parse::{self as attr, is_xenmq};
use crate::ctxt::Ctxt;

/// The integer `#[repr]`s an enum may have.
pub const INT_REPRS: &[&str] = &["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"];

pub fn item_struct(cx: &mut Ctxt, item: &ItemStruct) {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_spanned(
            &item.generics,
            "generic messages are not supported: a wire layout is one fixed type, \
             declare a message per instance",
        );
    }
    for a in item.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        cx.error_spanned(
            a,
            "`#[xenmq::message]` sets `#[repr(C)]` itself: remove this `#[repr]` \
             (alignment comes from the fields; assert it with `#[xenmq(align = N)]`)",
        );
    }
    match &item.fields {
        Fields::Named(named) if named.named.is_empty() => cx.error_spanned(
            &item.ident,
            "a message needs at least one field: an empty struct puts nothing on the wire",
        ),
        Fields::Named(named) => {
            for f in &named.named {
                field_type(cx, &f.ty);
                for a in f.attrs.iter().filter(|a| a.path().is_ident("cfg")) {
                    cx.error_spanned(
                        a,
                        "`#[cfg]` on a message field would make the wire layout depend on \
                         the build configuration; declare one message per layout",
                    );
                }
            }
            padding(cx, &item.ident.unraw().to_string(), named);
        }
        Fields::Unnamed(fields) => cx.error_spanned(
            fields,
            "tuple structs are not supported as messages: name every field, \
             the fingerprint and `#[xenmq(offset = N)]` refer to field names",
        ),
        Fields::Unit => cx.error_spanned(
            &item.ident,
            "a message needs at least one field: a unit struct puts nothing on the wire",
        ),
    }
}

/// The rule every padding error states.
const NO_PADDING: &str = "`#[xenmq::message]` structs have no implicit padding";

/// Implicit padding, where the macro can compute the layout itself (the
/// layout checks of the expansion catch the rest).
fn padding(cx: &mut Ctxt, message: &str, named: &syn::FieldsNamed) {
    let fields: Vec<&syn::Field> = named.named.iter().collect();
    let types: Vec<&Type> = fields.iter().map(|f| &f.ty).collect();
    let Some((gaps, differs)) = super::layout::gaps(&types) else {
        return;
    };
    let name = |f: &syn::Field| {
        f.ident
            .as_ref()
            .map(|i| i.unraw().to_string())
            .unwrap_or_default()
    };
    let peers = if differs {
        " (a 64-bit peer's layout: 32-bit x86 aligns 64-bit integers to 4 and would \
         leave no gap, so without the pad the two disagree)"
    } else {
        ""
    };
    for gap in gaps {
        match gap {
            Gap::Between {
                next,
                end,
                align,
                at,
            } => {
                let (Some(p), Some(f)) = (fields.get(next.wrapping_sub(1)), fields.get(next))
                else {
                    continue;
                };
                cx.error_spanned(
                    &f.ident,
                    format!(
                        "{NO_PADDING}: {} bytes between `{}` (ends at {end}) and `{}` \
                         (align {align}, at {at}); add `_pad: [u8; {}]` before it{peers}",
                        at - end,
                        name(p),
                        name(f),
                        at - end
                    ),
                );
            }
            Gap::Tail { end, size, align } => {
                let Some(last) = fields.last() else { continue };
                cx.error_spanned(
                    &last.ident,
                    format!(
                        "{NO_PADDING}: {} bytes after the last field `{}` (ends at {end}; \
                         `{message}` is aligned to {align}, so {size} bytes); \
                         add `_pad: [u8; {}]` at the end{peers}",
                        size - end,
                        name(last),
                        size - end
                    ),
                );
            }
        }
    }
}

/// The syntactic rules for a field's type. Types that pass here still
/// have to implement `xenmq::wire::Field`, checked by the compiler.
fn field_type(cx: &mut Ctxt, ty: &Type) {
    match ty {
        Type::Array(a) => field_type(cx, &a.elem),
        Type::Paren(p) => field_type(cx, &p.elem),
        Type::Group(g) => field_type(cx, &g.elem),
        Type::Reference(_) => cx.error_spanned(
            ty,
            "references cannot be in a message: the peer cannot follow a pointer into \
             this domain's memory; send the data, an index or a grant reference",
        ),
        Type::Ptr(_) => cx.error_spanned(
            ty,
            "raw pointers cannot be in a message: the peer cannot follow a pointer into \
             this domain's memory; send the data, an index or a grant reference",
        ),
        Type::Slice(_) => cx.error_spanned(
            ty,
            "slices have no fixed size and cannot be in a message: use an array `[T; N]`",
        ),
        Type::Tuple(_) => cx.error_spanned(
            ty,
            "tuples cannot be in a message: their layout is unspecified; \
             use a nested `#[xenmq::message]` struct",
        ),
        Type::BareFn(_) => cx.error_spanned(
            ty,
            "function pointers cannot be in a message: they mean nothing in the peer domain",
        ),
        Type::TraitObject(_) | Type::ImplTrait(_) => cx.error_spanned(
            ty,
            "trait objects have no fixed size and cannot be in a message",
        ),
        Type::Never(_) => cx.error_spanned(ty, "`!` cannot be in a message"),
        Type::Infer(_) => cx.error_spanned(ty, "write the field's type: `_` is not allowed here"),
        Type::Path(p) => {
            if let Some(seg) = p.path.segments.last() {
                if let Some(msg) = path_rule(&seg.ident.to_string()) {
                    cx.error_spanned(ty, msg);
                    return;
                }
                if let PathArguments::AngleBracketed(args) = &seg.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(t) = arg {
                            if matches!(t, Type::Reference(_) | Type::Ptr(_)) {
                                field_type(cx, t);
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn path_rule(name: &str) -> Option<&'static str> {
    Some(match name {
        "usize" | "isize" => {
            "`usize` and `isize` are 4 bytes on a 32-bit peer and 8 on a 64-bit one: \
             use a fixed-size integer (`u32`, `u64`, `i32`, `i64`)"
        }
        "bool" => {
            "`bool` cannot be in a message: the peer may send any byte and only 0 and 1 \
             are valid; use `u8` and compare it"
        }
        "char" => {
            "`char` cannot be in a message: the peer may send a value that is not a \
             Unicode scalar; use `u32` and convert it with `char::from_u32`"
        }
        "f32" | "f64" => {
            "floats cannot be in a message: no Xen protocol carries them; \
             send the bits (`f64::to_bits`) as `u32`/`u64`"
        }
        "str" => "`str` has no fixed size and cannot be in a message: use `[u8; N]`",
        "String" | "Vec" | "Box" | "Rc" | "Arc" | "Cow" | "BTreeMap" | "HashMap" => {
            "heap-owning types cannot be in a message: the peer cannot see this \
             domain's heap; use a fixed-size array `[T; N]`"
        }
        "Option" => {
            "`Option` has no fixed wire layout: send a flag or a sentinel value \
             in an integer field"
        }
        _ => return None,
    })
}

/// An enum's integer `#[repr]`, if it has exactly one.
pub fn item_enum(cx: &mut Ctxt, item: &ItemEnum) -> Option<syn::Ident> {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_spanned(&item.generics, "generic wire enums are not supported");
    }
    for a in item.attrs.iter().filter(|a| is_xenmq(a)) {
        cx.error_spanned(
            a,
            "`#[xenmq(...)]` layout assertions apply to message structs, not to enums",
        );
    }
    for v in &item.variants {
        if !matches!(v.fields, Fields::Unit) {
            cx.error_spanned(
                &v.fields,
                format!(
                    "variant `{}` carries data: a wire enum is an integer, \
                     so its variants must be fieldless",
                    v.ident
                ),
            );
        }
    }
    if item.variants.is_empty() {
        cx.error_spanned(
            &item.ident,
            "a wire enum needs at least one variant: no value of it could be sent",
        );
    }
    let mut found: Option<syn::Ident> = None;
    let mut repr_error = false;
    for a in item.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let res = a.parse_nested_meta(|meta| {
            if let Some(ident) = meta.path.get_ident() {
                let name = ident.to_string();
                if INT_REPRS.contains(&name.as_str()) {
                    if found.is_some() {
                        return Err(meta.error("conflicting integer `#[repr]`s"));
                    }
                    found = Some(ident.clone());
                } else if name == "usize" || name == "isize" {
                    return Err(meta.error(
                        "`#[repr(usize)]`/`#[repr(isize)]` differ between 32- and 64-bit \
                         peers: use a fixed-size integer",
                    ));
                }
            }
            Ok(())
        });
        if let Err(e) = res {
            repr_error = true;
            cx.syn_error(e);
        }
    }
    if found.is_none() && !repr_error {
        cx.error_spanned(
            &item.ident,
            "a wire enum needs an explicit integer `#[repr(u8)]` (or u16, u32, u64, \
             i8, i16, i32, i64): it fixes the size on the wire",
        );
    }
    found
}

/// `#[xenmq::message]` takes no arguments.
pub fn args(cx: &mut Ctxt, args: &proc_macro2::TokenStream) {
    if !args.is_empty() {
        cx.error_spanned(
            args,
            "`#[xenmq::message]` takes no arguments: assert the layout with \
             `#[xenmq(size = N, align = M)]` on the struct and `#[xenmq(offset = K)]` \
             on a field",
        );
    }
}

/// Parses and validates the helper attributes of a struct and its fields.
pub fn attrs(cx: &mut Ctxt, item: &ItemStruct) -> (attr::StructAttrs, Vec<attr::FieldAttrs>) {
    let s = attr::struct_attrs(cx, &item.attrs);
    let f = item
        .fields
        .iter()
        .map(|f| attr::field_attrs(cx, &f.attrs))
        .collect();
    (s, f)
}

/// Whether a type cannot be a (non-last) struct field at all: slices,
/// `str`, trait objects, `!`, `_`, anywhere inside arrays.
pub fn unsized_type(ty: &Type) -> bool {
    match ty {
        Type::Array(a) => unsized_type(&a.elem),
        Type::Paren(p) => unsized_type(&p.elem),
        Type::Group(g) => unsized_type(&g.elem),
        Type::Slice(_)
        | Type::TraitObject(_)
        | Type::ImplTrait(_)
        | Type::Never(_)
        | Type::Infer(_) => true,
        Type::Path(p) => p.path.is_ident("str"),
        _ => false,
    }
}
