//! Parsing of `#[xenmq(...)]` helper attributes into typed values.

use syn::{Attribute, LitInt};

use crate::ctxt::Ctxt;

/// A declared number and the literal it came from (for spans).
#[derive(Clone)]
pub struct Declared {
    pub value: usize,
    pub lit: LitInt,
}

impl Declared {
    /// The value as an unsuffixed `usize` literal at the user's span.
    pub fn literal(&self) -> proc_macro2::Literal {
        let mut l = proc_macro2::Literal::usize_unsuffixed(self.value);
        l.set_span(self.lit.span());
        l
    }
}

/// `#[xenmq(size = N, align = M)]` on a struct.
#[derive(Default)]
pub struct StructAttrs {
    pub size: Option<Declared>,
    pub align: Option<Declared>,
}

/// `#[xenmq(offset = K)]` on a field.
#[derive(Default)]
pub struct FieldAttrs {
    pub offset: Option<Declared>,
}

/// Whether an attribute is one of ours.
pub fn is_xenmq(attr: &Attribute) -> bool {
    attr.path().is_ident("xenmq")
}

fn parse_attrs(
    cx: &mut Ctxt,
    attrs: &[Attribute],
    keys: &[&str],
    place: &str,
    mut set: impl FnMut(&str, Declared, &mut Ctxt),
) {
    for attr in attrs.iter().filter(|a| is_xenmq(a)) {
        let res = attr.parse_nested_meta(|meta| {
            let Some(key) = keys.iter().find(|k| meta.path.is_ident(k)) else {
                let expected = keys
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                return Err(meta.error(format!(
                    "unknown `#[xenmq]` key on {place}: expected {expected}"
                )));
            };
            let bytes_msg =
                format!("`{key}` takes a number of bytes: an integer literal such as `{key} = 8`");
            let expr: syn::Expr = meta.value().map_err(|_| meta.error(&bytes_msg))?.parse()?;
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(lit),
                ..
            }) = expr
            else {
                return Err(syn::Error::new_spanned(expr, bytes_msg));
            };
            let value = lit
                .base10_parse::<usize>()
                .map_err(|_| syn::Error::new_spanned(&lit, &bytes_msg))?;
            set(key, Declared { value, lit }, cx);
            Ok(())
        });
        if let Err(e) = res {
            cx.syn_error(e);
        }
    }
}

fn store(slot: &mut Option<Declared>, key: &str, d: Declared, cx: &mut Ctxt) {
    if slot.is_some() {
        cx.error_spanned(&d.lit, format!("duplicate `#[xenmq({key} = ...)]`"));
    } else {
        *slot = Some(d);
    }
}

pub fn struct_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> StructAttrs {
    let mut out = StructAttrs::default();
    parse_attrs(cx, attrs, &["size", "align"], "a message", |key, d, cx| {
        let slot = if key == "size" {
            &mut out.size
        } else {
            &mut out.align
        };
        store(slot, key, d, cx);
    });
    out
}

pub fn field_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    parse_attrs(cx, attrs, &["offset"], "a field", |key, d, cx| {
        store(&mut out.offset, key, d, cx);
    });
    out
}
