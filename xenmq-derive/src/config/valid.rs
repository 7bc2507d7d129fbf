//! Validation of a `XenstoreConfig` item: its shape, each field's key
//! (well-formed, unique, not one the framework owns) and its bounds.

use syn::{Data, DeriveInput, Fields, Type};

use super::parse::{self, FieldAttrs, Int};
use super::reserved;
use crate::ctxt::Ctxt;

/// The longest key name the derive accepts.
const MAX_KEY_LEN: usize = 128;

/// A field that passed validation.
pub struct Field {
    pub ident: syn::Ident,
    pub ty: Type,
    pub key: String,
    pub attrs: FieldAttrs,
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

/// The last segment of a path type, if `ty` is one.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// Whether `ty` is written as an `Option<..>`.
fn is_option(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| {
        s.ident == "Option" && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
    })
}

/// Whether `ty` is written as `RingRefs`, which also reads `ring-page-order`.
fn is_ring_refs(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "RingRefs")
}

pub fn item(cx: &mut Ctxt, input: &DeriveInput) -> Vec<Field> {
    for a in input.attrs.iter().filter(|a| a.path().is_ident("xenstore")) {
        cx.error_spanned(
            a,
            "`#[xenstore(...)]` goes on fields, each of which names a key",
        );
    }
    if !input.generics.params.is_empty() {
        cx.error_spanned(
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
        cx.error_spanned(
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
        let attrs = parse::field_attrs(cx, &f.attrs);
        let (key, key_span) = match &attrs.rename {
            Some(s) => (s.value(), s.span()),
            None => (kebab(&ident), ident.span()),
        };
        if !valid_key(&key) {
            cx.error_at(
                key_span,
                format!(
                    "invalid Xenstore key `{key}`: a key is 1 to {MAX_KEY_LEN} characters \
                     from `A-Z`, `a-z`, `0-9`, `-` and `_`"
                ),
            );
        }
        if let Some(prev) = out.iter().find(|p| p.key == key) {
            cx.error_at(
                key_span,
                format!(
                    "duplicate Xenstore key `{key}`: field `{}` already uses it",
                    prev.ident
                ),
            );
        }
        if attrs.reserved.is_none() {
            framework_keys(cx, &ident, &f.ty, &key, key_span);
        }
        if let (Some(d), true) = (&attrs.default, is_option(&f.ty)) {
            cx.error_spanned(
                d,
                "`default` does nothing on an `Option` field: a missing key reads as `None`",
            );
        }
        bounds(cx, &attrs);
        out.push(Field {
            ident,
            ty: f.ty.clone(),
            key,
            attrs,
        });
    }
    out
}

/// A driver's key must not be one the framework writes: the handshake
/// would read the driver's value as its own, or overwrite it.
fn framework_keys(
    cx: &mut Ctxt,
    ident: &syn::Ident,
    ty: &Type,
    key: &str,
    key_span: proc_macro2::Span,
) {
    let field = ident.to_string();
    let field = field.strip_prefix("r#").unwrap_or(&field);
    let hint = "rename it (`#[xenstore(rename = \"...\")]`), or mark a field that \
                reads the framework's key on purpose `#[xenstore(reserved)]`";
    if let Some(owner) = reserved::owner(key) {
        cx.error_at(
            key_span,
            format!(
                "field `{field}` uses the Xenstore key `{key}`, which {owner}: a config \
                 may not use the framework's keys; {hint}"
            ),
        );
    } else if is_ring_refs(ty) {
        cx.error_spanned(
            ty,
            format!(
                "field `{field}` is a `RingRefs`, which also uses the Xenstore key \
                 `ring-page-order`, which {}: a config may not use the framework's \
                 keys; {hint}",
                reserved::owner("ring-page-order").unwrap_or("the framework writes")
            ),
        );
    }
}

/// `min <= max`, and a literal default within them.
fn bounds(cx: &mut Ctxt, attrs: &FieldAttrs) {
    if let (Some(lo), Some(hi)) = (&attrs.min, &attrs.max) {
        if lo.value > hi.value {
            cx.error_spanned(
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
            cx.error_spanned(
                &d.expr,
                format!("`default = {}` is outside the bounds {bounds}", d.value),
            );
        }
    }
}
