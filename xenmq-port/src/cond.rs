//! Conditional compilation, decided as gcc decides it for x86_64 Linux:
//! `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`/`#endif` keep or drop tokens,
//! and each dropped block leaves a [`Tok::Skipped`] marker so that the
//! port can say what it left out. The include guard is recognised and
//! dropped silently.

use std::collections::BTreeSet;

use crate::lex::{Tok, Token};
use crate::Error;

/// Macros gcc predefines for the target the port is generated for (only
/// those a protocol header would test).
const PREDEFINED: &[&str] = &["__x86_64__", "__GNUC__", "__linux__", "__STDC__"];

struct Frame {
    /// Whether the enclosing block is kept.
    outer: bool,
    /// Whether this block's current branch is kept.
    taking: bool,
    /// Whether a branch of this chain was already taken.
    done: bool,
    /// Where the dropped stretch began, and its condition.
    skip_from: Option<(usize, String)>,
}

/// Applies the conditionals. `guard` names the include guard, if the
/// header has one (its `#define` is dropped too).
pub fn apply(file: &str, toks: Vec<Token>) -> Result<(Vec<Token>, Option<String>), Error> {
    let mut defined: BTreeSet<String> = PREDEFINED.iter().map(|s| s.to_string()).collect();
    let guard = include_guard(&toks);
    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let keeping = |stack: &[Frame]| stack.last().is_none_or(|f| f.outer && f.taking);
    // The line of the last conditional directive: a comment on it (such as
    // `#endif /* GUARD */`) goes with it.
    let mut cond_line = 0;
    for t in toks {
        let Tok::Directive { name, body, .. } = &t.tok else {
            let on_cond =
                matches!(t.tok, Tok::Comment { trailing: true, .. }) && t.line == cond_line;
            if keeping(&stack) && !on_cond {
                out.push(t);
            }
            continue;
        };
        if matches!(
            name.as_str(),
            "if" | "ifdef" | "ifndef" | "elif" | "else" | "endif"
        ) {
            cond_line = t.line;
        }
        let text = || {
            let b: Vec<String> = body.iter().map(tok_text).collect();
            format!("#{name} {}", b.join(" "))
        };
        match name.as_str() {
            "ifdef" | "ifndef" | "if" => {
                let outer = keeping(&stack);
                let value = if outer {
                    cond(file, t.line, name, body, &defined)?
                } else {
                    false
                };
                let is_guard = name == "ifndef"
                    && stack.is_empty()
                    && guard.as_deref() == ident(body).as_deref();
                stack.push(Frame {
                    outer,
                    taking: value,
                    done: value,
                    skip_from: (outer && !value && !is_guard).then(|| (t.line, text())),
                });
            }
            "elif" | "else" => {
                let Some(f) = stack.last_mut() else {
                    return Err(Error::at(file, t.line, format!("`#{name}` without `#if`")));
                };
                let value = if f.done || !f.outer {
                    false
                } else if name == "else" {
                    true
                } else {
                    cond(file, t.line, "if", body, &defined)?
                };
                if f.outer && f.taking {
                    // The branch that was kept ends; the rest is dropped.
                    f.skip_from = Some((t.line, text()));
                } else if value {
                    if let Some((from, c)) = f.skip_from.take() {
                        out.push(skipped(from, c, t.line));
                    }
                }
                f.taking = value;
                f.done |= value;
            }
            "endif" => {
                let Some(f) = stack.pop() else {
                    return Err(Error::at(file, t.line, "`#endif` without `#if`"));
                };
                if let Some((from, c)) = f.skip_from {
                    if f.outer && !f.taking {
                        out.push(skipped(from, c, t.line));
                    }
                }
            }
            _ if !keeping(&stack) => {}
            "define" => {
                if let Some(n) = ident(body) {
                    defined.insert(n);
                }
                if stack.len() == 1 && guard.is_some() && ident(body) == guard && body.len() == 1 {
                    continue;
                }
                out.push(t);
            }
            "undef" => {
                return Err(Error::at(
                    file,
                    t.line,
                    "`#undef` is not supported: a port takes each macro's one definition",
                ))
            }
            _ => out.push(t),
        }
    }
    if let Some(f) = stack.last() {
        let line = f.skip_from.as_ref().map_or(0, |s| s.0);
        return Err(Error::at(file, line, "`#if` without `#endif`"));
    }
    Ok((out, guard))
}

fn skipped(from: usize, cond: String, to: usize) -> Token {
    Token {
        tok: Tok::Skipped { cond, end_line: to },
        line: from,
    }
}

fn ident(body: &[Token]) -> Option<String> {
    match body.first().map(|t| &t.tok) {
        Some(Tok::Ident(n)) => Some(n.clone()),
        _ => None,
    }
}

/// The guard of `#ifndef X` / `#define X` as the first two directives.
fn include_guard(toks: &[Token]) -> Option<String> {
    let mut dirs = toks.iter().filter_map(|t| match &t.tok {
        Tok::Directive { name, body, .. } => Some((name, body)),
        _ => None,
    });
    let (n1, b1) = dirs.next()?;
    let (n2, b2) = dirs.next()?;
    let g = ident(b1)?;
    (n1 == "ifndef" && n2 == "define" && b1.len() == 1 && b2.len() == 1 && ident(b2)? == g)
        .then_some(g)
}

pub fn tok_text(t: &Token) -> String {
    match &t.tok {
        Tok::Ident(s) | Tok::Number(s) => s.clone(),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Char(s) => format!("'{s}'"),
        Tok::Punct(p) => p.to_string(),
        Tok::Comment { text, .. } => format!("/*{text}*/"),
        Tok::Directive { name, .. } => format!("#{name}"),
        Tok::Skipped { cond, .. } => cond.clone(),
    }
}

/// Evaluates a condition: `defined`, `!`, `&&`, `||`, parentheses and
/// integer literals; anything else is an error naming the condition.
fn cond(
    file: &str,
    line: usize,
    kind: &str,
    body: &[Token],
    defined: &BTreeSet<String>,
) -> Result<bool, Error> {
    match kind {
        "ifdef" | "ifndef" => {
            let Some(n) = ident(body).filter(|_| body.len() == 1) else {
                return Err(Error::at(
                    file,
                    line,
                    format!("`#{kind}` needs one macro name"),
                ));
            };
            Ok(defined.contains(&n) == (kind == "ifdef"))
        }
        _ => {
            let mut p = CondParser {
                toks: body,
                pos: 0,
                defined,
            };
            let v = p.or();
            match v {
                Some(v) if p.pos == body.len() => Ok(v != 0),
                _ => {
                    let text: Vec<String> = body.iter().map(tok_text).collect();
                    Err(Error::at(
                        file,
                        line,
                        format!(
                            "`#if {}` is not supported: a port evaluates `defined`, `!`, `&&`, \
                             `||` and integer literals only",
                            text.join(" ")
                        ),
                    ))
                }
            }
        }
    }
}

struct CondParser<'a> {
    toks: &'a [Token],
    pos: usize,
    defined: &'a BTreeSet<String>,
}

impl CondParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Option<i64> {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            v = i64::from(v != 0 || r != 0);
        }
        Some(v)
    }
    fn and(&mut self) -> Option<i64> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = i64::from(v != 0 && r != 0);
        }
        Some(v)
    }
    fn unary(&mut self) -> Option<i64> {
        if self.eat("!") {
            return Some(i64::from(self.unary()? == 0));
        }
        if self.eat("(") {
            let v = self.or()?;
            return self.eat(")").then_some(v);
        }
        match self.peek()?.clone() {
            Tok::Ident(n) if n == "defined" => {
                self.pos += 1;
                let paren = self.eat("(");
                let Some(Tok::Ident(m)) = self.peek().cloned() else {
                    return None;
                };
                self.pos += 1;
                if paren && !self.eat(")") {
                    return None;
                }
                Some(i64::from(self.defined.contains(&m)))
            }
            Tok::Number(n) => {
                self.pos += 1;
                n.trim_end_matches(['u', 'U', 'l', 'L']).parse().ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::lex;

    fn kept(src: &str) -> Vec<Tok> {
        let toks = lex("t.h", src).unwrap();
        apply("t.h", toks)
            .unwrap()
            .0
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn i386_only_members_are_left_out_and_marked() {
        let k = kept("#ifndef G\n#define G\nint a;\n#ifdef __i386__\nint pad;\n#endif\n#endif\n");
        assert_eq!(k.len(), 4, "{k:?}");
        assert!(matches!(&k[3], Tok::Skipped { cond, end_line: 6 } if cond == "#ifdef __i386__"));
    }

    #[test]
    fn else_branches_and_defined() {
        let k = kept("#if defined(__x86_64__) && !defined(FOO)\nint a;\n#else\nint b;\n#endif\n");
        assert_eq!(k[1], Tok::Ident("a".into()));
        assert!(matches!(&k[3], Tok::Skipped { cond, .. } if cond.starts_with("#else")));
        assert_eq!(k.len(), 4);
    }

    #[test]
    fn unsupported_condition_names_it_and_its_line() {
        let toks = lex(
            "t.h",
            "int a;\n#if __XEN_INTERFACE_VERSION__ >= 0x00040200\n#endif\n",
        )
        .unwrap();
        let e = apply("t.h", toks).unwrap_err().to_string();
        assert!(
            e.starts_with("t.h:2: `#if __XEN_INTERFACE_VERSION__ >= 0x00040200` is not supported"),
            "{e}"
        );
    }
}
