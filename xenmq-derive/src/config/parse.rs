//! Parsing of `#[xenstore(...)]` field attributes into typed values.

use syn::{Expr, Lit, LitStr, UnOp};

use crate::ctxt::Ctxt;

/// The keys `#[xenstore(...)]` takes.
const KEYS: &[&str] = &["rename", "default", "min", "max", "reserved"];

/// An integer bound or default, kept as tokens and, when it is a literal, as
/// a value for compile-time checks.
pub struct Int {
    pub expr: Expr,
    pub value: i128,
}

impl Int {
    pub fn parse(expr: Expr) -> syn::Result<Self> {
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
pub struct FieldAttrs {
    pub rename: Option<LitStr>,
    pub default: Option<Expr>,
    pub min: Option<Int>,
    pub max: Option<Int>,
    /// `reserved`: the field reads a key the framework owns, on purpose.
    pub reserved: Option<syn::Path>,
}

pub fn field_attrs(cx: &mut Ctxt, attrs: &[syn::Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("xenstore")) {
        let r = attr.parse_nested_meta(|meta| {
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
                "reserved" => {
                    if meta.input.peek(syn::Token![=]) {
                        return Err(
                            meta.error("`reserved` takes no value: `#[xenstore(reserved)]`")
                        );
                    }
                    if out.reserved.replace(meta.path.clone()).is_some() {
                        return Err(dup());
                    }
                }
                _ => {
                    let hint = crate::ctxt::did_you_mean(&name, KEYS)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    return Err(meta.error(format!(
                        "unknown xenstore attribute{hint}; expected `rename`, `default`, \
                         `min`, `max` or `reserved`"
                    )));
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            cx.syn_error(e);
        }
    }
    out
}
