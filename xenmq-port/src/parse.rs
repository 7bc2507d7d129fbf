//! The parser: the C subset of Xen's ring protocol headers, into
//! [`Header`]. Whatever it does not understand is an error naming the
//! construct and the line, or (for code that is no wire layout: function
//! definitions, function-like macros) a note in the port's docs.

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::*;
use crate::cond::tok_text;
use crate::expr::{ExprCheck, Names};
use crate::lex::{Tok, Token};
use crate::types::{keyword_int, unsupported_type, INTS, TYPE_WORDS};
use crate::Error;

/// Parses the tokens (conditionals already applied) of `file`, whose text
/// is `src` (quoted in notes).
pub fn parse(file: &str, src: &str, toks: Vec<Token>) -> Result<Header, Error> {
    let mut p = P {
        file,
        lines: src.lines().collect(),
        toks,
        pos: 0,
        h: Header::default(),
        pending: Vec::new(),
        last: None,
        seen_code: false,
        tags: BTreeMap::new(),
        enum_tags: BTreeMap::new(),
        typedefs: BTreeMap::new(),
        consts: BTreeSet::new(),
        rings: BTreeSet::new(),
    };
    p.top()?;
    p.h.nodes = nodes(src);
    Ok(p.h)
}

/// The Xenstore nodes documented in comments the way Xen's headers do it
/// (blkif, vscsiif, usbif, sndif...): ` * name` alone, then ` *  Values:`
/// within two lines, under a `Backend XenBus Nodes` or `Frontend XenBus
/// Nodes` heading.
fn nodes(src: &str) -> Vec<Node> {
    let text: Vec<&str> = src
        .lines()
        .map(|l| l.trim_start().strip_prefix('*').unwrap_or("").trim())
        .collect();
    let mut side = None;
    let mut out = Vec::new();
    for (i, t) in text.iter().enumerate() {
        if t.contains("Backend XenBus Nodes") {
            side = Some("backend");
        } else if t.contains("Frontend XenBus Nodes") {
            side = Some("frontend");
        }
        let is_name = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_%<>/".contains(&b))
            && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let values = text
            .iter()
            .skip(i + 1)
            .take(2)
            .any(|n| n.starts_with("Values:") || n.starts_with("Value:"));
        if is_name && values {
            out.push(Node {
                name: t.to_string(),
                line: i + 1,
                side,
            });
        }
    }
    out
}

/// What a trailing comment attaches to.
#[derive(Clone, Copy)]
enum Target {
    Item(usize),
    Members(usize, usize, usize),
    Record(usize),
    Variant(usize, usize),
}

#[derive(Clone, Copy)]
enum Named {
    Record(usize),
    Enum(usize),
    Alias(usize),
}

struct P<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    toks: Vec<Token>,
    pos: usize,
    h: Header,
    /// Comments not yet attached, with their last line.
    pending: Vec<(Doc, usize)>,
    /// The last thing that can take a trailing comment, and its last line.
    last: Option<(Target, usize)>,
    seen_code: bool,
    tags: BTreeMap<(&'static str, String), usize>,
    enum_tags: BTreeMap<String, usize>,
    typedefs: BTreeMap<String, Named>,
    /// Integer constants and enumerators a `#define` may refer to.
    consts: BTreeSet<String>,
    /// The rings declared so far.
    rings: BTreeSet<String>,
}

impl P<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::at(self.file, line, msg)
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn line(&self) -> usize {
        self.peek().or(self.toks.last()).map_or(0, |t| t.line)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(q), .. }) if *q == p)
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(q), .. }) if q == s)
    }

    fn expect(&mut self, p: &str, what: &str) -> Result<(), Error> {
        if self.is_punct(p) {
            self.pos += 1;
            Ok(())
        } else {
            let line = self.line();
            let found = self.peek().map_or("the end of the header".into(), |t| {
                format!("`{}`", tok_text(t))
            });
            Err(self.err(line, format!("expected `{p}` {what}, found {found}")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, usize), Error> {
        match self.next() {
            Some(Token {
                tok: Tok::Ident(n),
                line,
            }) => Ok((n, line)),
            Some(t) => Err(self.err(t.line, format!("expected {what}, found `{}`", tok_text(&t)))),
            None => Err(self.err(self.line(), format!("expected {what}, found the end"))),
        }
    }

    /// Comments and conditional markers between code; `in_record`: the
    /// record being parsed, whose notes take the markers.
    fn trivia(&mut self, in_record: Option<usize>) -> bool {
        let Some(t) = self.peek().cloned() else {
            return false;
        };
        match t.tok {
            Tok::Comment {
                text,
                end_line,
                trailing,
            } => {
                self.pos += 1;
                let doc = Doc { line: t.line, text };
                match self.last {
                    Some((target, l)) if trailing && l == t.line => self.attach(target, doc),
                    _ if !self.seen_code => self.h.file_docs.push(doc),
                    _ => self.pending.push((doc, end_line)),
                }
                true
            }
            Tok::Skipped { cond, end_line } => {
                self.pos += 1;
                let note = self.skipped_note(t.line, &cond, end_line);
                match in_record {
                    Some(r) => self.h.records[r].notes.push(note),
                    None => self.h.notes.push((t.line, note)),
                }
                true
            }
            _ => false,
        }
    }

    fn skipped_note(&self, from: usize, cond: &str, to: usize) -> String {
        let body: Vec<&str> = self
            .lines
            .iter()
            .take(to.saturating_sub(1))
            .skip(from)
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let shown = if body.len() <= 4 {
            body.join(" ")
        } else {
            format!("{} ...", body.first().copied().unwrap_or_default())
        };
        format!(
            "Lines {from}-{to} (`{cond}`) are not compiled for x86_64 and not ported: `{shown}`"
        )
    }

    fn attach(&mut self, target: Target, doc: Doc) {
        match target {
            Target::Item(i) => {
                if let Some(d) = self.h.items.get_mut(i).and_then(item_docs) {
                    d.push(doc);
                }
            }
            Target::Members(r, from, to) => {
                for m in &mut self.h.records[r].members[from..to] {
                    m.docs.push(doc.clone());
                }
            }
            Target::Record(r) => self.h.records[r].docs.push(doc),
            Target::Variant(e, v) => self.h.enums[e].variants[v].docs.push(doc),
        }
    }

    /// The comments that document what starts at `line`: the run of
    /// pending comments right above it. Earlier ones go to the module's
    /// free-standing docs when `top`, else they document it too.
    fn take_docs(&mut self, line: usize, top: bool) -> Vec<Doc> {
        let mut start = self.pending.len();
        let mut next_line = line;
        while start > 0 && self.pending[start - 1].1 + 1 >= next_line {
            start -= 1;
            next_line = self.pending[start].0.line;
        }
        let attached: Vec<Doc> = self.pending.drain(start..).map(|(d, _)| d).collect();
        if top {
            let free = self.pending.drain(..).map(|(d, _)| d);
            self.h.free_docs.extend(free);
            attached
        } else {
            let mut all: Vec<Doc> = self.pending.drain(..).map(|(d, _)| d).collect();
            all.extend(attached);
            all
        }
    }

    fn top(&mut self) -> Result<(), Error> {
        while self.pos < self.toks.len() {
            if self.trivia(None) {
                continue;
            }
            self.seen_code = true;
            let t = self.peek().cloned().expect("checked above");
            match &t.tok {
                Tok::Directive {
                    name,
                    body,
                    function_like,
                } => {
                    self.pos += 1;
                    self.directive(&t, name, body, *function_like, None, None)?;
                }
                Tok::Punct(";") => self.pos += 1,
                _ => self.declaration()?,
            }
        }
        let rest: Vec<Doc> = self.pending.drain(..).map(|(d, _)| d).collect();
        self.h.free_docs.extend(rest);
        Ok(())
    }

    fn directive(
        &mut self,
        t: &Token,
        name: &str,
        body: &[Token],
        function_like: bool,
        in_record: Option<usize>,
        field: Option<CType>,
    ) -> Result<(), Error> {
        match name {
            "include" => {
                // The port takes the types it knows from Xen's other
                // headers (grant_ref_t, RING_IDX...); gcc reads the rest.
                self.take_docs(t.line, in_record.is_none());
                Ok(())
            }
            "pragma" if matches!(body.first(), Some(Token { tok: Tok::Ident(n), .. }) if n == "once") => {
                Ok(())
            }
            "pragma" => Err(self.err(
                t.line,
                "`#pragma` is not supported: it can change the layout (`#pragma pack`)",
            )),
            "define" => self.define(t, body, function_like, in_record.is_none(), field),
            "error" | "warning" => Err(self.err(
                t.line,
                format!("`#{name}` in a compiled part of the header"),
            )),
            "" => Ok(()),
            other => Err(self.err(t.line, format!("`#{other}` is not supported"))),
        }
    }

    fn define(
        &mut self,
        t: &Token,
        body: &[Token],
        function_like: bool,
        top: bool,
        field: Option<CType>,
    ) -> Result<(), Error> {
        let docs = self.take_docs(t.line, top);
        let Some(Token {
            tok: Tok::Ident(name),
            ..
        }) = body.first()
        else {
            return Err(self.err(t.line, "`#define` without a macro name"));
        };
        let name = name.clone();
        let value = &body[1..];
        let text: Vec<String> = value.iter().map(tok_text).collect();
        let text = text.join(" ");
        let last_line = body.last().map_or(t.line, |b| b.line);
        if function_like {
            let args_end = value
                .iter()
                .position(|v| v.tok == Tok::Punct(")"))
                .unwrap_or(0);
            let args: Vec<String> = value[..=args_end.min(value.len().saturating_sub(1))]
                .iter()
                .map(tok_text)
                .collect();
            self.h.notes.push((
                t.line,
                format!(
                    "Line {}: the function-like macro `{name}{}` is not ported (a port carries \
                     layouts and constants, not code)",
                    t.line,
                    args.join("")
                ),
            ));
            return Ok(());
        }
        if value.is_empty() {
            self.h.notes.push((
                t.line,
                format!(
                    "Line {}: `#define {name}` has no value and is not ported",
                    t.line
                ),
            ));
            return Ok(());
        }
        let item = if value.iter().all(|v| matches!(v.tok, Tok::Str(_))) {
            let s: String = value
                .iter()
                .filter_map(|v| match &v.tok {
                    Tok::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            Item::Str(StrConst {
                name,
                value: s,
                line: t.line,
                docs,
            })
        } else if let Some(ty) = self.type_words(value) {
            let idx = self.h.aliases.len();
            self.h.aliases.push(Alias {
                name: name.clone(),
                ty,
                line: t.line,
                docs,
                define: true,
            });
            self.typedefs.insert(name, Named::Alias(idx));
            Item::Alias(idx)
        } else if (ExprCheck {
            names: self,
            toks: value,
            pos: 0,
        })
        .check()
        {
            self.consts.insert(name.clone());
            Item::Const(Const {
                name,
                expr: text,
                line: t.line,
                docs,
                field,
            })
        } else {
            self.h.notes.push((
                t.line,
                format!(
                    "Line {}: `#define {name} {text}` is not ported: not an integer constant \
                     expression of this header's names",
                    t.line
                ),
            ));
            return Ok(());
        };
        self.h.items.push(item);
        self.last = Some((Target::Item(self.h.items.len() - 1), last_line));
        Ok(())
    }

    /// `tokens` as an integer type, if they are one.
    fn type_words(&self, toks: &[Token]) -> Option<Int> {
        let words: Vec<&str> = toks
            .iter()
            .map(|t| match &t.tok {
                Tok::Ident(s) => Some(s.as_str()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        if let [one] = words.as_slice() {
            if let Some(i) = INTS.iter().find(|i| i.c == *one) {
                return Some(*i);
            }
            if let Some(Named::Alias(a)) = self.typedefs.get(*one) {
                return Some(self.h.aliases[*a].ty);
            }
        }
        if words.iter().all(|w| TYPE_WORDS.contains(w)) {
            return keyword_int(&words);
        }
        None
    }

    fn declaration(&mut self) -> Result<(), Error> {
        let t = self.peek().cloned().expect("caller checked");
        let docs = self.take_docs(t.line, true);
        let Tok::Ident(first) = &t.tok else {
            return Err(self.err(
                t.line,
                format!(
                    "unexpected `{}`: a port understands struct, union, enum, typedef, \
                     #define and DEFINE_RING_TYPES",
                    tok_text(&t)
                ),
            ));
        };
        match first.as_str() {
            "typedef" => {
                self.pos += 1;
                self.typedef(docs)
            }
            "struct" | "union" | "enum" => {
                self.type_spec(docs)?;
                if self.is_ident("__attribute__") {
                    let line = self.line();
                    return Err(self.err(line, "`__attribute__` is not supported"));
                }
                if !self.is_punct(";") {
                    let line = self.line();
                    return Err(self.err(
                        line,
                        "variable declarations are not supported: a header ported to xenmq \
                         declares types",
                    ));
                }
                self.pos += 1;
                Ok(())
            }
            "DEFINE_RING_TYPES" => self.ring(t.line, docs),
            "__attribute__" => Err(self.err(t.line, "`__attribute__` is not supported")),
            "static" | "extern" | "inline" | "__inline__" => {
                self.skip_code(&t, "a function or variable")
            }
            _ if matches!(
                self.toks.get(self.pos + 1),
                Some(Token {
                    tok: Tok::Punct("("),
                    ..
                })
            ) =>
            {
                self.skip_code(&t, "a macro invocation")
            }
            _ => Err(self.err(
                t.line,
                format!(
                    "unexpected `{first}`: a port understands struct, union, enum, typedef, \
                     #define and DEFINE_RING_TYPES"
                ),
            )),
        }
    }

    /// Skips code that is no layout (to the `;` or the closing `}` of a
    /// function body) and notes it.
    fn skip_code(&mut self, t: &Token, what: &str) -> Result<(), Error> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let Some(n) = self.next() else {
                return Err(self.err(t.line, format!("{what} that does not end")));
            };
            match n.tok {
                Tok::Punct("(") | Tok::Punct("{") => depth += 1,
                Tok::Punct(")") => depth = depth.saturating_sub(1),
                Tok::Punct("}") => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 && !self.is_punct(";") {
                        break;
                    }
                }
                Tok::Punct(";") if depth == 0 => break,
                _ => {}
            }
        }
        let head: Vec<String> = self.toks[start..self.pos.min(start + 12)]
            .iter()
            .filter(|t| !matches!(t.tok, Tok::Comment { .. }))
            .map(tok_text)
            .take_while(|s| s != "{")
            .collect();
        self.h.notes.push((
            t.line,
            format!(
                "Line {}: {what} is not ported (a port carries layouts and constants, not \
                 code): `{}`",
                t.line,
                head.join(" ")
            ),
        ));
        Ok(())
    }

    fn ring(&mut self, line: usize, docs: Vec<Doc>) -> Result<(), Error> {
        self.pos += 1;
        self.expect("(", "after DEFINE_RING_TYPES")?;
        let (name, _) = self.ident("the ring's name")?;
        self.expect(",", "after the ring's name")?;
        let request = self.ring_type()?;
        self.expect(",", "after the request type")?;
        let response = self.ring_type()?;
        self.expect(")", "closing DEFINE_RING_TYPES")?;
        self.expect(";", "after DEFINE_RING_TYPES(...)")?;
        self.rings.insert(name.clone());
        self.h.items.push(Item::Ring(Ring {
            name,
            request,
            response,
            line,
            docs,
        }));
        self.last = Some((Target::Item(self.h.items.len() - 1), line));
        Ok(())
    }

    fn ring_type(&mut self) -> Result<usize, Error> {
        let line = self.line();
        match self.type_spec(Vec::new())? {
            CType::Record(r) if self.h.records[r].kind == Kind::Struct => Ok(r),
            _ => Err(self.err(line, "a ring's request and response must be structs")),
        }
    }

    fn typedef(&mut self, docs: Vec<Doc>) -> Result<(), Error> {
        let line = self.line();
        let ty = self.type_spec(docs.clone())?;
        loop {
            if self.is_punct("*") {
                let l = self.line();
                return Err(self.err(l, "pointer typedefs are not supported"));
            }
            let (name, nline) = self.ident("the typedef's name")?;
            if self.is_punct("[") {
                return Err(self.err(nline, format!("array typedef `{name}` is not supported")));
            }
            match &ty {
                CType::Record(r) => {
                    self.h.records[*r].typedefs.push(name.clone());
                    self.typedefs.insert(name, Named::Record(*r));
                }
                CType::Enum(e) => {
                    self.h.enums[*e].typedefs.push(name.clone());
                    self.typedefs.insert(name, Named::Enum(*e));
                }
                CType::Int(i) => {
                    let idx = self.h.aliases.len();
                    self.h.aliases.push(Alias {
                        name: name.clone(),
                        ty: *i,
                        line,
                        docs: docs.clone(),
                        define: false,
                    });
                    self.typedefs.insert(name, Named::Alias(idx));
                    self.h.items.push(Item::Alias(idx));
                }
                CType::Alias(a) => {
                    let ty = self.h.aliases[*a].ty;
                    let idx = self.h.aliases.len();
                    self.h.aliases.push(Alias {
                        name: name.clone(),
                        ty,
                        line,
                        docs: docs.clone(),
                        define: false,
                    });
                    self.typedefs.insert(name, Named::Alias(idx));
                    self.h.items.push(Item::Alias(idx));
                }
            }
            if self.is_punct(",") {
                self.pos += 1;
                continue;
            }
            self.expect(";", "after a typedef")?;
            return Ok(());
        }
    }

    /// A type specifier; a struct, union or enum body is parsed and
    /// registered. `parent`: the record whose member this is.
    fn type_spec(&mut self, docs: Vec<Doc>) -> Result<CType, Error> {
        let mut words: Vec<String> = Vec::new();
        let line = self.line();
        while let Some(Token {
            tok: Tok::Ident(w), ..
        }) = self.peek().cloned()
        {
            match w.as_str() {
                "const" | "volatile" => self.pos += 1,
                "__attribute__" | "__attribute" => {
                    return Err(self.err(line, "`__attribute__` is not supported"))
                }
                "struct" | "union" => {
                    self.pos += 1;
                    return self.record_spec(&w, docs, line);
                }
                "enum" => {
                    self.pos += 1;
                    return self.enum_spec(docs, line);
                }
                _ if TYPE_WORDS.contains(&w.as_str()) => {
                    self.pos += 1;
                    words.push(w);
                }
                _ if !words.is_empty() => break,
                _ => {
                    self.pos += 1;
                    if let Some(why) = unsupported_type(&w) {
                        return Err(self.err(line, format!("type `{w}` is not supported: {why}")));
                    }
                    if let Some(i) = INTS.iter().find(|i| i.c == w) {
                        return Ok(CType::Int(*i));
                    }
                    return match self.typedefs.get(&w) {
                        Some(Named::Record(r)) => Ok(CType::Record(*r)),
                        Some(Named::Enum(e)) => Ok(CType::Enum(*e)),
                        Some(Named::Alias(a)) => Ok(CType::Alias(*a)),
                        None => Err(self.err(
                            line,
                            format!(
                                "unknown type `{w}`: not defined in this header nor one of \
                                 Xen's fixed-size types"
                            ),
                        )),
                    };
                }
            }
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        if refs.contains(&"long") && refs.iter().filter(|w| **w == "long").count() == 1 {
            return Err(self.err(
                line,
                format!(
                    "type `{}` is not supported: {}",
                    refs.join(" "),
                    unsupported_type("long").unwrap_or_default()
                ),
            ));
        }
        match keyword_int(&refs) {
            Some(i) => Ok(CType::Int(i)),
            None if refs.is_empty() => {
                let found = self
                    .peek()
                    .map_or("the end".into(), |t| format!("`{}`", tok_text(t)));
                Err(self.err(line, format!("expected a type, found {found}")))
            }
            None => Err(self.err(line, format!("type `{}` is not supported", refs.join(" ")))),
        }
    }

    fn record_spec(&mut self, kw: &str, docs: Vec<Doc>, line: usize) -> Result<CType, Error> {
        let kind = if kw == "struct" {
            Kind::Struct
        } else {
            Kind::Union
        };
        let tag = match self.peek() {
            Some(Token {
                tok: Tok::Ident(t), ..
            }) => {
                let t = t.clone();
                self.pos += 1;
                Some(t)
            }
            _ => None,
        };
        if !self.is_punct("{") {
            let Some(tag) = tag else {
                return Err(self.err(line, format!("`{kw}` without a tag or a body")));
            };
            return match self.tags.get(&(kind.c(), tag.clone())) {
                Some(r) => Ok(CType::Record(*r)),
                None => Err(self.err(line, format!("`{kw} {tag}` is not defined in this header"))),
            };
        }
        self.pos += 1;
        let idx = self.h.records.len();
        self.h.records.push(Record {
            kind,
            tag: tag.clone(),
            parent: None,
            typedefs: Vec::new(),
            members: Vec::new(),
            line,
            docs,
            notes: Vec::new(),
        });
        if let Some(tag) = &tag {
            if self.tags.insert((kind.c(), tag.clone()), idx).is_some() {
                return Err(self.err(line, format!("`{kw} {tag}` is defined twice")));
            }
        }
        self.members(idx)?;
        self.h.items.push(Item::Record(idx));
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(line, |t| t.line);
        self.last = Some((Target::Record(idx), end));
        Ok(CType::Record(idx))
    }

    fn members(&mut self, rec: usize) -> Result<(), Error> {
        let mut last_ty: Option<CType> = None;
        loop {
            if self.trivia(Some(rec)) {
                continue;
            }
            let Some(t) = self.peek().cloned() else {
                let line = self.h.records[rec].line;
                return Err(self.err(line, "struct or union without its closing `}`"));
            };
            match &t.tok {
                Tok::Punct("}") => {
                    self.pos += 1;
                    let rest = self.take_docs(t.line, false);
                    let notes = rest.into_iter().map(|d| d.text);
                    self.h.records[rec].notes.extend(notes);
                    if self.h.records[rec].members.is_empty() {
                        return Err(self.err(t.line, "an empty struct or union has no layout"));
                    }
                    return Ok(());
                }
                Tok::Punct(";") => self.pos += 1,
                Tok::Directive {
                    name,
                    body,
                    function_like,
                } => {
                    self.pos += 1;
                    self.directive(&t, name, body, *function_like, Some(rec), last_ty.clone())?;
                }
                _ => {
                    let docs = self.take_docs(t.line, false);
                    let defined_from = self.h.records.len();
                    let ty = self.type_spec(Vec::new())?;
                    let from = self.h.records[rec].members.len();
                    loop {
                        if self.is_punct("*") {
                            let l = self.line();
                            return Err(self.err(
                                l,
                                "pointer members are not supported: a pointer means nothing \
                                 in the peer's domain",
                            ));
                        }
                        if self.is_punct(";") {
                            return Err(self.err(
                                t.line,
                                "anonymous struct or union members are not supported: name \
                                 the member",
                            ));
                        }
                        let (name, nline) = self.ident("a member name")?;
                        if self.is_punct(":") {
                            return Err(
                                self.err(nline, format!("bit-field `{name}` is not supported"))
                            );
                        }
                        if self.is_punct("(") {
                            return Err(self
                                .err(nline, format!("function member `{name}` is not supported")));
                        }
                        let mut dims = Vec::new();
                        while self.is_punct("[") {
                            self.pos += 1;
                            let start = self.pos;
                            let mut depth = 0usize;
                            while !(depth == 0 && self.is_punct("]")) {
                                match self.next().map(|t| t.tok) {
                                    None => return Err(self.err(nline, "`[` without `]`")),
                                    Some(Tok::Punct("[")) => depth += 1,
                                    Some(Tok::Punct("]")) => depth -= 1,
                                    _ => {}
                                }
                            }
                            let text: Vec<String> =
                                self.toks[start..self.pos].iter().map(tok_text).collect();
                            self.pos += 1;
                            dims.push(if text.is_empty() {
                                Dim::Flexible
                            } else {
                                Dim::Fixed(text.join(" "))
                            });
                        }
                        if self.is_ident("__attribute__") {
                            return Err(self.err(nline, "`__attribute__` is not supported"));
                        }
                        if let CType::Record(r) = ty {
                            // Defined in this member's declaration: nested.
                            if r >= defined_from && self.h.records[r].parent.is_none() {
                                self.h.records[r].parent = Some((rec, name.clone()));
                            }
                        }
                        if self.h.records[rec].members.iter().any(|m| m.name == name) {
                            return Err(
                                self.err(nline, format!("member `{name}` is declared twice"))
                            );
                        }
                        self.h.records[rec].members.push(Member {
                            name,
                            ty: ty.clone(),
                            dims,
                            line: nline,
                            docs: docs.clone(),
                        });
                        if self.is_punct(",") {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                    let end = self.line();
                    self.expect(";", "after a member")?;
                    let to = self.h.records[rec].members.len();
                    self.last = Some((Target::Members(rec, from, to), end));
                    last_ty = Some(ty);
                }
            }
        }
    }

    fn enum_spec(&mut self, docs: Vec<Doc>, line: usize) -> Result<CType, Error> {
        let tag = match self.peek() {
            Some(Token {
                tok: Tok::Ident(t), ..
            }) => {
                let t = t.clone();
                self.pos += 1;
                Some(t)
            }
            _ => None,
        };
        if !self.is_punct("{") {
            let Some(tag) = tag else {
                return Err(self.err(line, "`enum` without a tag or a body"));
            };
            return match self.enum_tags.get(&tag) {
                Some(e) => Ok(CType::Enum(*e)),
                None => Err(self.err(line, format!("`enum {tag}` is not defined in this header"))),
            };
        }
        self.pos += 1;
        let idx = self.h.enums.len();
        self.h.enums.push(EnumDef {
            tag: tag.clone(),
            typedefs: Vec::new(),
            variants: Vec::new(),
            line,
            docs,
        });
        if let Some(tag) = tag {
            self.enum_tags.insert(tag, idx);
        }
        loop {
            if self.trivia(None) {
                continue;
            }
            if self.is_punct("}") {
                self.pos += 1;
                break;
            }
            let t = self.peek().cloned();
            let vline = t.as_ref().map_or(line, |t| t.line);
            let docs = self.take_docs(vline, false);
            let (name, _) = self.ident("an enumerator")?;
            if self.is_punct("=") {
                self.pos += 1;
                let start = self.pos;
                while !(self.is_punct(",") || self.is_punct("}")) {
                    if self.next().is_none() {
                        return Err(self.err(vline, "enum without its closing `}`"));
                    }
                }
                let value = &self.toks[start..self.pos];
                let value: Vec<Token> = value
                    .iter()
                    .filter(|t| !matches!(t.tok, Tok::Comment { .. }))
                    .cloned()
                    .collect();
                if !(ExprCheck {
                    names: self,
                    toks: &value,
                    pos: 0,
                })
                .check()
                {
                    return Err(self.err(
                        vline,
                        format!("the value of enumerator `{name}` is not an integer constant expression"),
                    ));
                }
            }
            self.consts.insert(name.clone());
            self.h.enums[idx].variants.push(Enumerator {
                name,
                line: vline,
                docs,
            });
            let v = self.h.enums[idx].variants.len() - 1;
            self.last = Some((Target::Variant(idx, v), self.line()));
            if self.is_punct(",") {
                let l = self.line();
                self.pos += 1;
                self.last = Some((Target::Variant(idx, v), l));
            }
        }
        if self.h.enums[idx].variants.is_empty() {
            return Err(self.err(line, "an empty enum"));
        }
        self.h.items.push(Item::Enum(idx));
        Ok(CType::Enum(idx))
    }
}

fn item_docs(item: &mut Item) -> Option<&mut Vec<Doc>> {
    match item {
        Item::Const(c) => Some(&mut c.docs),
        Item::Str(s) => Some(&mut s.docs),
        Item::Ring(r) => Some(&mut r.docs),
        Item::Alias(_) | Item::Record(_) | Item::Enum(_) => None,
    }
}

impl Names for P<'_> {
    fn has_tag(&self, kind: &str, tag: &str) -> bool {
        let kind = if kind == "struct" {
            Kind::Struct
        } else {
            Kind::Union
        };
        self.tags.contains_key(&(kind.c(), tag.to_string()))
    }
    fn has_typedef(&self, name: &str) -> bool {
        self.typedefs.contains_key(name)
    }
    fn has_ring(&self, name: &str) -> bool {
        self.rings.contains(name)
    }
    fn has_const(&self, name: &str) -> bool {
        self.consts.contains(name)
    }
}
