//! Integer constant expressions: which `#define`s a port turns into
//! constants. Only the form is checked here; gcc gives the values.

use crate::lex::{Tok, Token};
use crate::types::{keyword_int, INTS, TYPE_WORDS};

/// The names of the header an expression may use.
pub trait Names {
    /// `struct tag` or `union tag` (`kind`) is defined.
    fn has_tag(&self, kind: &str, tag: &str) -> bool;
    /// A typedef (or type macro) of this header.
    fn has_typedef(&self, name: &str) -> bool;
    /// A ring declared with `DEFINE_RING_TYPES`.
    fn has_ring(&self, name: &str) -> bool;
    /// An integer constant or an enumerator.
    fn has_const(&self, name: &str) -> bool;
}

/// Whether tokens form an integer constant expression over literals, this
/// header's integer constants and enumerators, `sizeof(type)` and casts to
/// integer types: the `#define`s a port turns into constants (gcc gives
/// their values).
pub struct ExprCheck<'a, N: Names> {
    pub names: &'a N,
    pub toks: &'a [Token],
    pub pos: usize,
}

impl<N: Names> ExprCheck<'_, N> {
    pub fn check(mut self) -> bool {
        self.cond() && self.pos == self.toks.len()
    }
    fn tok(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.tok(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn cond(&mut self) -> bool {
        if !self.binary(0) {
            return false;
        }
        if self.eat("?") {
            return self.cond() && self.eat(":") && self.cond();
        }
        true
    }
    fn binary(&mut self, level: usize) -> bool {
        const LEVELS: &[&[&str]] = &[
            &["||"],
            &["&&"],
            &["|"],
            &["^"],
            &["&"],
            &["==", "!="],
            &["<", ">", "<=", ">="],
            &["<<", ">>"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        if !self.binary(level + 1) {
            return false;
        }
        while ops
            .iter()
            .any(|op| matches!(self.tok(), Some(Tok::Punct(q)) if q == op))
        {
            self.pos += 1;
            if !self.binary(level + 1) {
                return false;
            }
        }
        true
    }
    /// A type name in `sizeof(...)` or a cast.
    fn type_name(&mut self) -> bool {
        let mut words = Vec::new();
        while let Some(Tok::Ident(w)) = self.tok() {
            words.push(w.clone());
            self.pos += 1;
        }
        match words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [kind @ ("struct" | "union"), tag] => self.names.has_tag(kind, tag),
            [one] => INTS.iter().any(|i| i.c == *one) || self.names.has_typedef(one),
            w if !w.is_empty() && w.iter().all(|x| TYPE_WORDS.contains(x)) => {
                keyword_int(w).is_some()
            }
            _ => false,
        }
    }
    fn is_type_start(&self) -> bool {
        match self.tok() {
            Some(Tok::Ident(w)) => {
                w == "struct"
                    || w == "union"
                    || TYPE_WORDS.contains(&w.as_str())
                    || INTS.iter().any(|i| i.c == w)
                    || self.names.has_typedef(w)
            }
            _ => false,
        }
    }
    fn unary(&mut self) -> bool {
        if self.eat("-") || self.eat("+") || self.eat("~") || self.eat("!") {
            return self.unary();
        }
        if self.eat("(") {
            if self.is_type_start() {
                return self.type_name() && self.eat(")") && self.unary();
            }
            return self.cond() && self.eat(")");
        }
        match self.tok().cloned() {
            Some(Tok::Number(n)) => {
                self.pos += 1;
                let digits = n.trim_end_matches(['u', 'U', 'l', 'L']);
                let ok = if let Some(hex) = digits
                    .strip_prefix("0x")
                    .or_else(|| digits.strip_prefix("0X"))
                {
                    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
                } else {
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                };
                ok
            }
            // ring.h's `__CONST_RING_SIZE(ring, bytes)` of a ring of this header.
            Some(Tok::Ident(w)) if w == "__CONST_RING_SIZE" => {
                self.pos += 1;
                if !self.eat("(") {
                    return false;
                }
                let Some(Tok::Ident(ring)) = self.tok().cloned() else {
                    return false;
                };
                self.pos += 1;
                self.names.has_ring(&ring) && self.eat(",") && self.cond() && self.eat(")")
            }
            Some(Tok::Ident(w)) if w == "sizeof" => {
                self.pos += 1;
                self.eat("(") && self.type_name() && self.eat(")")
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                self.names.has_const(&w)
            }
            _ => false,
        }
    }
}
