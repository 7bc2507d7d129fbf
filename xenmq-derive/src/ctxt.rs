//! The one error collector of all three macros (serde_derive's `Ctxt`):
//! every error of an item is recorded on the tokens at fault, and the
//! macro reports them all at once, followed by its fallback stub.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

#[derive(Default)]
pub struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error on the tokens at fault.
    pub fn error_spanned<T: ToTokens, M: Display>(&mut self, tokens: T, msg: M) {
        self.errors.push(syn::Error::new_spanned(tokens, msg));
    }

    /// Records an error at a span syn gave (a parser's, or a literal's).
    pub fn error_at<M: Display>(&mut self, span: proc_macro2::Span, msg: M) {
        self.errors.push(syn::Error::new(span, msg));
    }

    /// Records an error from a parser, with the span syn gave it.
    pub fn syn_error(&mut self, err: syn::Error) {
        self.errors.push(err);
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// All errors, as `compile_error!` invocations, or `None` if there were none.
    pub fn finish(self) -> Option<TokenStream> {
        let mut iter = self.errors.into_iter();
        let mut first = iter.next()?;
        for e in iter {
            first.combine(e);
        }
        Some(first.to_compile_error())
    }
}

/// The candidate closest to a misspelt `word`, if one is close enough to
/// be what the user meant (at most a third of its letters differ).
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d > 0 && *d <= c.len().max(3) / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, over bytes (the names compared are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != cb)).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions() {
        let keys = ["name", "version", "request", "response", "id"];
        assert_eq!(did_you_mean("reqest", &keys), Some("request"));
        assert_eq!(did_you_mean("respones", &keys), Some("response"));
        assert_eq!(did_you_mean("verison", &keys), Some("version"));
        assert_eq!(did_you_mean("colour", &keys), None);
        assert_eq!(did_you_mean("name", &keys), None);
    }
}
