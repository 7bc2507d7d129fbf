//! Parsing of `#[xenmq::protocol(...)]`'s arguments into typed values.
//! Each value is read up to the next top-level comma and then typed, so a
//! value of the wrong kind is one error on that value, an unknown argument
//! one error on its name (with the closest known one), and the rest of the
//! arguments still parse.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};

use crate::ctxt::{did_you_mean, Ctxt};

/// Every argument, in the order the docs give them.
pub const ARGS: &[&str] = &[
    "name",
    "version",
    "request",
    "response",
    "ring_pages",
    "max_ring_pages",
    "pool_pages",
    "layout",
    "id",
    "frontend_config",
    "backend_config",
];

/// The parsed arguments. `mentioned` holds every argument the user wrote,
/// even with an ill-typed value or misspelt as one the suggestion names,
/// so that none of them is then reported missing.
#[derive(Default)]
pub struct Args {
    pub name: Option<syn::LitStr>,
    pub version: Option<syn::LitInt>,
    pub request: Option<syn::Type>,
    pub response: Option<syn::Type>,
    pub ring_pages: Option<syn::LitInt>,
    pub max_ring_pages: Option<syn::LitInt>,
    pub pool_pages: Option<syn::LitInt>,
    pub layout: Option<syn::Ident>,
    pub id: Option<syn::Ident>,
    pub frontend_config: Option<syn::Type>,
    pub backend_config: Option<syn::Type>,
    pub mentioned: Vec<&'static str>,
}

/// Everything up to the next comma outside `<...>` (a type's generic
/// arguments) and outside groups.
fn value_tokens(input: ParseStream) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut out = TokenStream::new();
        let mut depth = 0usize;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                match p.as_char() {
                    ',' if depth == 0 => break,
                    '<' => depth += 1,
                    '>' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            out.extend([tt]);
            rest = next;
        }
        Ok((out, rest))
    })
}

/// What kind of value each argument takes, as the error states it.
fn kind(arg: &str) -> &'static str {
    match arg {
        "name" => "a string literal, the device type: `name = \"vkv\"`",
        "version" => "an integer literal: `version = 1`",
        "request" | "response" => "a `#[xenmq::message]` type: `request = Req`",
        "ring_pages" | "max_ring_pages" => {
            "an integer literal, a number of pages: `ring_pages = 2`"
        }
        "pool_pages" => "an integer literal, a number of pages: `pool_pages = 16`",
        "layout" => "`compat` or `native`, unquoted: `layout = native`",
        "id" => "the name of a `u64` field, unquoted: `id = tag`",
        _ => "a `#[derive(XenstoreConfig)]` type: `backend_config = Limits`",
    }
}

fn typed<T: syn::parse::Parse>(cx: &mut Ctxt, arg: &str, tokens: &TokenStream) -> Option<T> {
    match syn::parse2::<T>(tokens.clone()) {
        Ok(v) => Some(v),
        Err(_) => {
            cx.error_spanned(tokens, format!("`{arg}` takes {}", kind(arg)));
            None
        }
    }
}

fn ident(cx: &mut Ctxt, arg: &str, tokens: &TokenStream) -> Option<syn::Ident> {
    typed::<syn::Ident>(cx, arg, tokens)
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<T>, key: &syn::Path, value: Option<T>) {
    let Some(value) = value else { return };
    if slot.is_some() {
        cx.error_spanned(
            key,
            format!(
                "duplicate protocol argument `{}`: each is given once",
                key.to_token_stream()
            ),
        );
    } else {
        *slot = Some(value);
    }
}

pub fn args(cx: &mut Ctxt, attr: TokenStream) -> Args {
    let mut a = Args::default();
    let parser = |input: ParseStream| -> syn::Result<()> {
        while !input.is_empty() {
            let key: syn::Path = input.call(syn::Path::parse_mod_style)?;
            let name = key.get_ident().map(ToString::to_string);
            let value = if input.peek(syn::Token![=]) {
                input.parse::<syn::Token![=]>()?;
                let v = value_tokens(input)?;
                if v.is_empty() {
                    cx.error_spanned(
                        &key,
                        format!("`{}` needs a value after `=`", key.to_token_stream()),
                    );
                    None
                } else {
                    Some(v)
                }
            } else {
                // `key(...)` or a bare `key`: skip what follows, if anything.
                let rest = value_tokens(input)?;
                let arg = name.as_deref().unwrap_or("argument");
                let shown = if ARGS.contains(&arg) {
                    kind(arg)
                } else {
                    "a value"
                };
                cx.error_spanned(
                    quote::quote!(#key #rest),
                    format!("protocol arguments are `key = value`: `{arg}` takes {shown}"),
                );
                if let Some(known) = ARGS.iter().find(|k| Some(**k) == name.as_deref()) {
                    a.mentioned.push(known);
                }
                None
            };
            if let Some(v) = value {
                match name.as_deref() {
                    Some("name") => {
                        let v = typed(cx, "name", &v);
                        set(cx, &mut a.name, &key, v);
                    }
                    Some("version") => {
                        let v = typed(cx, "version", &v);
                        set(cx, &mut a.version, &key, v);
                    }
                    Some("request") => {
                        let v = typed(cx, "request", &v);
                        set(cx, &mut a.request, &key, v);
                    }
                    Some("response") => {
                        let v = typed(cx, "response", &v);
                        set(cx, &mut a.response, &key, v);
                    }
                    Some("ring_pages") => {
                        let v = typed(cx, "ring_pages", &v);
                        set(cx, &mut a.ring_pages, &key, v);
                    }
                    Some("max_ring_pages") => {
                        let v = typed(cx, "max_ring_pages", &v);
                        set(cx, &mut a.max_ring_pages, &key, v);
                    }
                    Some("pool_pages") => {
                        let v = typed(cx, "pool_pages", &v);
                        set(cx, &mut a.pool_pages, &key, v);
                    }
                    Some("layout") => {
                        let v = ident(cx, "layout", &v);
                        set(cx, &mut a.layout, &key, v);
                    }
                    Some("id") => {
                        let v = ident(cx, "id", &v);
                        set(cx, &mut a.id, &key, v);
                    }
                    Some("frontend_config") => {
                        let v = typed(cx, "frontend_config", &v);
                        set(cx, &mut a.frontend_config, &key, v);
                    }
                    Some("backend_config") => {
                        let v = typed(cx, "backend_config", &v);
                        set(cx, &mut a.backend_config, &key, v);
                    }
                    _ => unknown(cx, &key, name.as_deref(), &mut a.mentioned),
                }
                if let Some(known) = ARGS.iter().find(|k| Some(**k) == name.as_deref()) {
                    a.mentioned.push(known);
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<syn::Token![,]>()?;
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(attr) {
        cx.syn_error(e);
    }
    a
}

/// One error on an unknown argument's name, with the known one it is
/// closest to; that one then counts as given.
fn unknown(cx: &mut Ctxt, key: &syn::Path, name: Option<&str>, mentioned: &mut Vec<&'static str>) {
    let shown = key.to_token_stream().to_string().replace(' ', "");
    let suggestion = name.and_then(|n| did_you_mean(n, ARGS));
    let hint = match suggestion {
        Some(s) => {
            mentioned.push(s);
            format!("; did you mean `{s}`?")
        }
        None => format!("; the arguments are {}", ARGS.join(", ")),
    };
    cx.error_spanned(key, format!("unknown protocol argument `{shown}`{hint}"));
}
