//! Generation of the Rust module from the parsed header and gcc's layout.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::ast::*;
use crate::probe::{CInt, Layout};
use crate::{Error, Options};

/// A ported header.
#[derive(Debug, Clone)]
pub struct Output {
    /// The Rust module's source (use it as `mod NAME;`).
    pub rust: String,
    /// What was left out, one line each (also in the module's docs).
    pub notes: Vec<String>,
    /// The protocols declared, by Rust type name.
    pub protocols: Vec<String>,
    /// The rings that could not be declared as protocols, and why.
    pub undeclared: Vec<(String, String)>,
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// A C name as a Rust identifier (raw if it is a keyword).
fn ident(name: &str) -> String {
    match name {
        "self" | "Self" | "super" | "crate" => format!("{name}_"),
        _ if KEYWORDS.contains(&name) => format!("r#{name}"),
        _ => name.to_string(),
    }
}

/// `blkif_request` -> `BlkifRequest`, `USB_VER_USB11` -> `UsbVerUsb11`.
fn camel(name: &str) -> String {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.push(c.to_ascii_uppercase());
            out.push_str(&chars.as_str().to_ascii_lowercase());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

/// A comment's text without the `*` column and banner lines.
fn clean(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_end();
            let s = t.trim_start();
            let s = match s.strip_prefix('*') {
                Some(rest) if !rest.starts_with('*') && !rest.starts_with('/') => {
                    rest.strip_prefix(' ').unwrap_or(rest)
                }
                _ => s,
            };
            let banner = s.len() >= 3 && s.chars().all(|c| c == '*');
            if banner {
                String::new()
            } else {
                s.replace("```", "'''")
            }
        })
        .collect();
    while lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Doc lines (without the `///`) for comments: one line as text, more in
/// a `text` block so that their layout (tables, diagrams) survives.
fn doc_lines(docs: &[Doc]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in docs {
        let lines = clean(&d.text);
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(String::new());
        }
        if lines.len() == 1 {
            out.push(lines[0].trim().to_string());
        } else {
            out.push("```text".into());
            out.extend(lines);
            out.push("```".into());
        }
    }
    out
}

struct Gen<'a> {
    h: &'a Header,
    l: &'a Layout,
    o: &'a Options,
    file: &'a str,
    out: String,
    rec_names: Vec<String>,
    enum_names: Vec<String>,
    /// Enums emitted as Rust enums (the others as constants).
    enum_is_enum: Vec<bool>,
    alias_names: Vec<String>,
    notes: Vec<String>,
    protocols: Vec<String>,
    undeclared: Vec<(String, String)>,
}

pub fn emit(h: &Header, l: &Layout, o: &Options) -> Result<Output, Error> {
    let mut g = Gen {
        h,
        l,
        o,
        file: &o.file_name,
        out: String::new(),
        rec_names: Vec::new(),
        enum_names: Vec::new(),
        enum_is_enum: Vec::new(),
        alias_names: Vec::new(),
        notes: h.notes.iter().map(|(_, n)| n.clone()).collect(),
        protocols: Vec::new(),
        undeclared: Vec::new(),
    };
    g.names()?;
    let mut body = String::new();
    for (i, item) in h.items.iter().enumerate() {
        g.out.clear();
        match item {
            Item::Const(c) => g.constant(i, c),
            Item::Str(s) => g.string(s),
            Item::Alias(a) => g.alias(*a),
            Item::Record(r) => g.record(*r)?,
            Item::Enum(e) => g.enumeration(*e),
            Item::Ring(r) => g.ring(i, r)?,
        }
        if !g.out.is_empty() {
            body.push('\n');
            body.push_str(&g.out);
        }
    }
    let mut top = String::new();
    g.module_docs(&mut top);
    top.push_str(&body);
    Ok(Output {
        rust: top,
        notes: g.notes,
        protocols: g.protocols,
        undeclared: g.undeclared,
    })
}

impl Gen<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::at(self.file, line, msg)
    }

    fn docs(&mut self, indent: &str, lines: &[String]) {
        for l in lines {
            if l.is_empty() {
                let _ = writeln!(self.out, "{indent}///");
            } else {
                let _ = writeln!(self.out, "{indent}/// {l}");
            }
        }
    }

    /// Rust names of records, enums and aliases, unique across the module.
    fn names(&mut self) -> Result<(), Error> {
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for a in &self.h.aliases {
            let base = a.name.strip_suffix("_t").unwrap_or(&a.name);
            let mut n = camel(base);
            if taken.contains(&n) {
                n = camel(&a.name);
            }
            if !taken.insert(n.clone()) {
                return Err(self.err(
                    a.line,
                    format!("`{}` ports to `{n}`, a name already used", a.name),
                ));
            }
            self.alias_names.push(n);
        }
        for (r, rec) in self.h.records.iter().enumerate() {
            let path = |names: &[String]| -> Option<String> {
                let (p, member) = rec.parent.as_ref()?;
                Some(format!("{}{}", names.get(*p)?, camel(member)))
            };
            let mut n = match (&rec.tag, rec.typedefs.first()) {
                (Some(t), _) => camel(t),
                (None, Some(t)) => camel(t.strip_suffix("_t").unwrap_or(t)),
                (None, None) => path(&self.rec_names).unwrap_or_else(|| format!("Record{r}")),
            };
            if taken.contains(&n) {
                if let Some(p) = path(&self.rec_names) {
                    n = p;
                }
            }
            if !taken.insert(n.clone()) {
                return Err(self.err(
                    rec.line,
                    format!("this {} ports to `{n}`, a name already used", rec.kind.c()),
                ));
            }
            self.rec_names.push(n);
        }
        for (e, en) in self.h.enums.iter().enumerate() {
            let n = match (&en.tag, en.typedefs.first()) {
                (Some(t), _) => camel(t),
                (None, Some(t)) => camel(t.strip_suffix("_t").unwrap_or(t)),
                (None, None) => format!("Enum{e}"),
            };
            if !taken.insert(n.clone()) {
                return Err(self.err(
                    en.line,
                    format!("this enum ports to `{n}`, a name already used"),
                ));
            }
            self.enum_names.push(n);
            let mut seen = BTreeSet::new();
            let values = &self.l.enums[e].values;
            let unique = values.iter().all(|v| seen.insert(*v));
            self.enum_is_enum
                .push(unique && self.enum_repr(e).is_some());
        }
        for item in &self.h.items {
            if let Item::Ring(ring) = item {
                let n = camel(&ring.name);
                if !taken.insert(n.clone()) {
                    return Err(self.err(
                        ring.line,
                        format!("ring `{}` ports to `{n}`, a name already used", ring.name),
                    ));
                }
            }
        }
        Ok(())
    }

    fn enum_repr(&self, e: usize) -> Option<&'static str> {
        let el = &self.l.enums[e];
        let signed = el.ty.is_none_or(CInt::signed);
        Some(match (el.size, signed) {
            (1, false) => "u8",
            (2, false) => "u16",
            (4, false) => "u32",
            (8, false) => "u64",
            (1, true) => "i8",
            (2, true) => "i16",
            (4, true) => "i32",
            (8, true) => "i64",
            _ => return None,
        })
    }

    fn module_docs(&self, top: &mut String) {
        let mut d: Vec<String> = vec![
            format!(
                "`{}`, ported to Rust by `xenmq port` from the C header.",
                self.file
            ),
            String::new(),
            "Sizes, alignments, offsets and constants are gcc's for x86_64, asserted at \
             compile time; the padding gcc inserts is written out as `_pad` fields. A peer \
             built for i386 aligns 64-bit members to 4: where that changes a struct, it \
             needs that struct's x86_32 layout, which this module does not contain (the \
             struct's docs give it)."
                .into(),
        ];
        match &self.l.x86_32 {
            Ok(_) => {
                let differ: Vec<String> = (0..self.h.records.len())
                    .filter(|r| {
                        self.x86_32_difference(*r)
                            .is_some_and(|d| d.contains("differs"))
                    })
                    .map(|r| format!("[`{}`]", self.rec_names[r]))
                    .collect();
                if !differ.is_empty() {
                    d.push(String::new());
                    d.push(format!(
                        "gcc lays out the bytes of these differently for i386 (`-m32`), as their \
                         docs say: {}.",
                        differ.join(", ")
                    ));
                }
            }
            Err(why) => {
                d.push(String::new());
                d.push(format!("The i386 layout could not be probed: {why}"));
            }
        }
        let file = doc_lines(&self.h.file_docs);
        if !file.is_empty() {
            d.push(String::new());
            d.extend(file);
        }
        let rings: Vec<String> = self
            .h
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                Item::Ring(r) => Some((i, r)),
                _ => None,
            })
            .map(|(i, r)| {
                let ring = self.l.rings[i].clone().unwrap_or_default();
                let decl = match self.undeclared.iter().find(|(n, _)| *n == r.name) {
                    Some((_, why)) => format!("Not declared as a protocol: {why}"),
                    None => format!("Declared as [`{}`].", camel(&r.name)),
                };
                format!(
                    "- `{}` (line {}): requests [`{}`], responses [`{}`]; entries of {} bytes, \
                     {} in a one-page ring. {decl}",
                    r.name,
                    r.line,
                    self.rec_names[r.request],
                    self.rec_names[r.response],
                    ring.entry,
                    ring.slots
                )
            })
            .collect();
        if !rings.is_empty() {
            d.push(String::new());
            d.push("# Rings".into());
            d.push(String::new());
            d.extend(rings);
        }
        if !self.notes.is_empty() {
            d.push(String::new());
            d.push("# Not ported".into());
            d.push(String::new());
            for n in &self.notes {
                d.push(format!("- {n}"));
            }
        }
        if !self.h.free_docs.is_empty() {
            d.push(String::new());
            d.push("# From the header".into());
            d.push(String::new());
            d.push("The header's comments that document no single declaration, in order.".into());
            for doc in &self.h.free_docs {
                let lines = doc_lines(std::slice::from_ref(doc));
                if lines.is_empty() {
                    continue;
                }
                d.push(String::new());
                d.push(format!("Line {}:", doc.line));
                d.push(String::new());
                d.extend(lines);
            }
        }
        for l in d {
            if l.is_empty() {
                top.push_str("//!\n");
            } else {
                let _ = writeln!(top, "//! {l}");
            }
        }
    }

    fn constant(&mut self, i: usize, c: &Const) {
        let Some((value, cty)) = self.l.consts[i] else {
            return;
        };
        let field_ty = c
            .field
            .as_ref()
            .and_then(|t| self.int_of(t))
            .map(|i| i.rust);
        let ty = match field_ty {
            Some(t) if fits(value, t) => t,
            _ => cty.rust(),
        };
        let mut d = doc_lines(&c.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        d.push(format!(
            "C: `#define {} {}` (line {}).",
            c.name, c.expr, c.line
        ));
        self.docs("", &d);
        let lit = if c.expr.trim_start_matches('(').starts_with("0x") && value >= 0 {
            format!("{value:#x}")
        } else {
            value.to_string()
        };
        if c.name.chars().any(|ch| ch.is_ascii_lowercase()) {
            self.out.push_str("#[allow(non_upper_case_globals)]\n");
        }
        let _ = writeln!(self.out, "pub const {}: {ty} = {lit};", ident(&c.name));
    }

    fn string(&mut self, s: &StrConst) {
        let ok = {
            let mut chars = s.value.chars();
            let mut ok = true;
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('\\' | '"' | 'n' | 't' | 'r') => {}
                        _ => ok = false,
                    }
                }
            }
            ok
        };
        if !ok {
            self.notes.push(format!(
                "Line {}: the string `{}` uses an escape this port does not translate",
                s.line, s.name
            ));
            return;
        }
        let mut d = doc_lines(&s.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        d.push(format!(
            "C: `#define {} \"{}\"` (line {}).",
            s.name, s.value, s.line
        ));
        self.docs("", &d);
        if s.name.chars().any(|ch| ch.is_ascii_lowercase()) {
            self.out.push_str("#[allow(non_upper_case_globals)]\n");
        }
        let _ = writeln!(
            self.out,
            "pub const {}: &str = \"{}\";",
            ident(&s.name),
            s.value
        );
    }

    fn alias(&mut self, a: usize) {
        let al = &self.h.aliases[a];
        let mut d = doc_lines(&al.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        d.push(if al.define {
            format!("C: `#define {} {}` (line {}).", al.name, al.ty.c, al.line)
        } else {
            format!("C: `typedef {} {}` (line {}).", al.ty.c, al.name, al.line)
        });
        self.docs("", &d);
        let _ = writeln!(
            self.out,
            "pub type {} = {};",
            self.alias_names[a], al.ty.rust
        );
    }

    fn int_of(&self, t: &CType) -> Option<Int> {
        match t {
            CType::Int(i) => Some(*i),
            CType::Alias(a) => Some(self.h.aliases[*a].ty),
            _ => None,
        }
    }

    /// A member's element type (without its array dimensions).
    fn base_type(&self, t: &CType) -> String {
        match t {
            CType::Int(i) => i.rust.to_string(),
            CType::Alias(a) => self.alias_names[*a].clone(),
            CType::Record(r) => self.rec_names[*r].clone(),
            CType::Enum(e) if self.enum_is_enum[*e] => {
                format!("::xenmq::wire::Enum<{}>", self.enum_names[*e])
            }
            CType::Enum(e) => self.enum_repr(*e).unwrap_or("u32").to_string(),
        }
    }

    fn member_type(&self, m: &Member, dims: &[u64]) -> String {
        let mut ty = self.base_type(&m.ty);
        for d in dims.iter().rev() {
            ty = format!("[{ty}; {d}]");
        }
        ty
    }

    fn c_type_name(&self, t: &CType) -> String {
        match t {
            CType::Int(i) => i.c.to_string(),
            CType::Alias(a) => self.h.aliases[*a].name.clone(),
            CType::Record(r) => {
                let rec = &self.h.records[*r];
                match &rec.tag {
                    Some(tag) => format!("{} {tag}", rec.kind.c()),
                    None => format!("{} {{ ... }}", rec.kind.c()),
                }
            }
            CType::Enum(e) => match &self.h.enums[*e].tag {
                Some(tag) => format!("enum {tag}"),
                None => "enum { ... }".into(),
            },
        }
    }

    /// A member's declaration as C writes it (`uint8_t seg[N]`).
    fn c_decl(&self, m: &Member) -> String {
        let dims: String = m
            .dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(e) => format!("[{e}]"),
                Dim::Flexible => "[]".into(),
            })
            .collect();
        format!("{} {}{dims}", self.c_type_name(&m.ty), m.name)
    }

    fn record_header_docs(&self, r: usize) -> Vec<String> {
        let rec = &self.h.records[r];
        let rl = &self.l.records[r];
        let mut d = doc_lines(&rec.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        let what = match (&rec.tag, &rec.parent) {
            (Some(tag), _) => format!("`{} {tag}`", rec.kind.c()),
            (None, Some((p, m))) => format!(
                "the anonymous {} of member `{m}` of [`{}`]",
                rec.kind.c(),
                self.rec_names[*p]
            ),
            (None, None) => format!("an anonymous {}", rec.kind.c()),
        };
        let typedefs = if rec.typedefs.is_empty() {
            String::new()
        } else {
            let t: Vec<String> = rec.typedefs.iter().map(|t| format!("`{t}`")).collect();
            format!(" (typedef {})", t.join(", "))
        };
        d.push(format!(
            "C: {what}{typedefs}, line {}: {} bytes, aligned to {}.",
            rec.line, rl.size, rl.align
        ));
        if let Some(diff) = self.x86_32_difference(r) {
            d.push(String::new());
            d.push(diff);
        }
        for n in &rec.notes {
            d.push(String::new());
            d.extend(clean(n));
        }
        d
    }

    /// How gcc lays the record out for i386, where that differs.
    fn x86_32_difference(&self, r: usize) -> Option<String> {
        let rl = &self.l.records[r];
        let Ok(x32) = &self.l.x86_32 else { return None };
        let other = x32.get(r)?;
        let moved: Vec<String> = self.h.records[r]
            .members
            .iter()
            .zip(rl.members.iter().zip(&other.members))
            .filter(|(_, (a, b))| a.offset != b.offset || a.size != b.size)
            .map(|(m, (_, b))| format!("`{}` at {} ({} bytes)", m.name, b.offset, b.size))
            .collect();
        if moved.is_empty() && rl.size == other.size {
            return (rl.align != other.align).then(|| {
                format!(
                    "On x86_32 (gcc `-m32`) it has the same bytes, aligned to {}.",
                    other.align
                )
            });
        }
        let mut s = format!(
            "On x86_32 (gcc `-m32`) this {} differs: {} bytes, aligned to {}",
            self.h.records[r].kind.c(),
            other.size,
            other.align
        );
        if !moved.is_empty() {
            s.push_str(&format!(", with {}", moved.join(", ")));
        }
        s.push_str(". This port is the x86_64 layout only.");
        Some(s)
    }

    fn record(&mut self, r: usize) -> Result<(), Error> {
        let rec = &self.h.records[r];
        let rl = &self.l.records[r];
        match rec.kind {
            Kind::Struct => self.structure(r, rec, rl),
            Kind::Union => self.union(r, rec, rl),
        }
    }

    fn structure(
        &mut self,
        r: usize,
        rec: &Record,
        rl: &crate::probe::RecordLayout,
    ) -> Result<(), Error> {
        let name = self.rec_names[r].clone();
        let d = self.record_header_docs(r);
        self.docs("", &d);
        let _ = writeln!(
            self.out,
            "#[::xenmq::message]\n#[xenmq(size = {}, align = {})]\npub struct {name} {{",
            rl.size, rl.align
        );
        let names: BTreeSet<&str> = rec.members.iter().map(|m| m.name.as_str()).collect();
        let mut pads = 0usize;
        let mut pad_name = || loop {
            pads += 1;
            let n = format!("_pad{pads}");
            if !names.contains(n.as_str()) {
                return n;
            }
        };
        let mut cursor = 0u64;
        let mut fields = String::new();
        for (m, ml) in rec.members.iter().zip(&rl.members) {
            if ml.offset < cursor {
                return Err(self.err(
                    m.line,
                    format!(
                        "member `{}` overlaps the one before it (gcc puts it at {})",
                        m.name, ml.offset
                    ),
                ));
            }
            if ml.offset > cursor {
                let n = pad_name();
                let _ = writeln!(
                    fields,
                    "    /// Padding: gcc aligns `{}` to offset {}.\n    #[xenmq(offset = {cursor})]\n    pub {n}: [u8; {}],",
                    m.name,
                    ml.offset,
                    ml.offset - cursor
                );
            }
            let mut d = doc_lines(&m.docs);
            if !d.is_empty() {
                d.push(String::new());
            }
            d.push(format!("C: `{}`.", self.c_decl(m)));
            if m.dims.contains(&Dim::Flexible) {
                d.push(String::new());
                d.push(format!(
                    "C: a flexible array member (`{}[]`): its entries follow the struct, \
                     outside its {} bytes; this field only places it.",
                    m.name, rl.size
                ));
            }
            let mut tmp = std::mem::take(&mut self.out);
            self.docs("    ", &d);
            std::mem::swap(&mut tmp, &mut self.out);
            fields.push_str(&tmp);
            let _ = writeln!(
                fields,
                "    #[xenmq(offset = {})]\n    pub {}: {},",
                ml.offset,
                ident(&m.name),
                self.member_type(m, &ml.dims)
            );
            cursor = ml.offset + ml.size;
        }
        if rl.size > cursor {
            let n = pad_name();
            let _ = writeln!(
                fields,
                "    /// Padding: gcc rounds the struct up to {} bytes.\n    #[xenmq(offset = {cursor})]\n    pub {n}: [u8; {}],",
                rl.size,
                rl.size - cursor
            );
        }
        self.out.push_str(&fields);
        self.out.push_str("}\n");
        Ok(())
    }

    fn union(
        &mut self,
        r: usize,
        rec: &Record,
        rl: &crate::probe::RecordLayout,
    ) -> Result<(), Error> {
        let name = self.rec_names[r].clone();
        let mut d = self.record_header_docs(r);
        d.push(String::new());
        d.push(
            "A union: the port keeps its bytes, aligned as C aligns them, and reads or \
             writes each member as a typed copy of their start. Which member holds is the \
             protocol's business (a type or operation field); any bytes are a valid value \
             of every member."
                .into(),
        );
        self.docs("", &d);
        let align_ty = match rl.align {
            1 => None,
            2 => Some("u16"),
            4 => Some("u32"),
            8 => Some("u64"),
            a => {
                return Err(self.err(
                    rec.line,
                    format!("a union aligned to {a} bytes is not supported"),
                ))
            }
        };
        let _ = writeln!(
            self.out,
            "#[::xenmq::message]\n#[xenmq(size = {}, align = {})]\npub struct {name} {{",
            rl.size, rl.align
        );
        if let Some(t) = align_ty {
            let _ = writeln!(
                self.out,
                "    /// Aligns the union to {} as C does; takes no bytes.\n    pub _align: [{t}; 0],",
                rl.align
            );
        }
        let _ = writeln!(
            self.out,
            "    /// The union's bytes; read and write them through the members' methods.\n    #[xenmq(offset = 0)]\n    pub bytes: [u8; {}],\n}}\n",
            rl.size
        );
        let _ = writeln!(self.out, "impl {name} {{");
        for (i, (m, ml)) in rec.members.iter().zip(&rl.members).enumerate() {
            if ml.offset != 0 || m.dims.contains(&Dim::Flexible) {
                return Err(self.err(
                    m.line,
                    format!(
                        "union member `{}` is not a plain member at offset 0",
                        m.name
                    ),
                ));
            }
            let ty = self.member_type(m, &ml.dims);
            let mut d = doc_lines(&m.docs);
            if !d.is_empty() {
                d.push(String::new());
            }
            d.push(format!(
                "Member `{}` (C `{}`, {} bytes), copied out of the union's bytes.",
                m.name,
                self.c_decl(m),
                ml.size
            ));
            if i > 0 {
                self.out.push('\n');
            }
            let mut tmp = std::mem::take(&mut self.out);
            self.docs("    ", &d);
            std::mem::swap(&mut tmp, &mut self.out);
            self.out.push_str(&tmp);
            let getter = ident(&m.name);
            let setter = format!("set_{}", m.name);
            let _ = writeln!(
                self.out,
                "    pub fn {getter}(&self) -> {ty} {{\n        ::xenmq::wire::read_prefix(&self.bytes)\n    }}\n\n    \
                 /// Writes member `{}` over the start of the union's bytes; the bytes after it keep their values.\n    \
                 pub fn {setter}(&mut self, value: {ty}) {{\n        ::xenmq::wire::write_prefix(&mut self.bytes, &value);\n    }}",
                m.name
            );
        }
        self.out.push_str("}\n");
        Ok(())
    }

    fn enumeration(&mut self, e: usize) {
        let en = &self.h.enums[e];
        let el = &self.l.enums[e];
        let name = self.enum_names[e].clone();
        let repr = self.enum_repr(e).unwrap_or("i32");
        let mut d = doc_lines(&en.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        let what = match &en.tag {
            Some(t) => format!("`enum {t}`"),
            None => "an anonymous enum".into(),
        };
        d.push(format!("C: {what}, line {}: {} bytes.", en.line, el.size));
        if !self.enum_is_enum[e] {
            d.push(String::new());
            d.push("Two enumerators share a value, so the port gives them as constants.".into());
            self.docs("", &d);
            let _ = writeln!(
                self.out,
                "pub mod {} {{",
                ident(&en.tag.clone().unwrap_or(format!("enum{e}")))
            );
            for (v, val) in en.variants.iter().zip(&el.values) {
                let mut vd = doc_lines(&v.docs);
                if !vd.is_empty() {
                    vd.push(String::new());
                }
                vd.push(format!("C: `{}` (line {}).", v.name, v.line));
                let mut tmp = std::mem::take(&mut self.out);
                self.docs("    ", &vd);
                std::mem::swap(&mut tmp, &mut self.out);
                self.out.push_str(&tmp);
                let _ = writeln!(
                    self.out,
                    "    pub const {}: {repr} = {val};",
                    ident(&v.name)
                );
            }
            self.out.push_str("}\n");
            return;
        }
        self.docs("", &d);
        let _ = writeln!(
            self.out,
            "#[::xenmq::message]\n#[repr({repr})]\n#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub enum {name} {{"
        );
        // Variants lose the prefix all enumerators share.
        let names: Vec<String> = en.variants.iter().map(|v| v.name.clone()).collect();
        let prefix = common_prefix(&names);
        for (v, val) in en.variants.iter().zip(&el.values) {
            let short = &v.name[prefix..];
            let vname = if short.is_empty() || short.starts_with(|c: char| c.is_ascii_digit()) {
                camel(&v.name)
            } else {
                camel(short)
            };
            let mut vd = doc_lines(&v.docs);
            if !vd.is_empty() {
                vd.push(String::new());
            }
            vd.push(format!("C: `{}` (line {}).", v.name, v.line));
            let mut tmp = std::mem::take(&mut self.out);
            self.docs("    ", &vd);
            std::mem::swap(&mut tmp, &mut self.out);
            self.out.push_str(&tmp);
            let _ = writeln!(self.out, "    {vname} = {val},");
        }
        self.out.push_str("}\n");
    }

    fn ring(&mut self, i: usize, ring: &Ring) -> Result<(), Error> {
        let rl = self.l.rings[i].clone().unwrap_or_default();
        let (req, rsp) = (ring.request, ring.response);
        let (req_n, rsp_n) = (self.rec_names[req].clone(), self.rec_names[rsp].clone());
        let name = camel(&ring.name);
        let proto_name = self
            .o
            .names
            .iter()
            .find(|(r, _)| *r == ring.name)
            .map_or(ring.name.as_str(), |(_, n)| n.as_str())
            .to_string();
        let valid = !proto_name.is_empty()
            && proto_name.len() <= 64
            && proto_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        // `#[xenmq::protocol]` carries the request id in a `u64` field `id`
        // of both messages.
        let id_of = |r: usize| -> Result<(), String> {
            let rec = &self.h.records[r];
            let tag = rec.tag.clone().unwrap_or_default();
            match rec.members.iter().find(|m| m.name == "id") {
                None => Err(format!("`{tag}` has no member `id`")),
                Some(m)
                    if !m.dims.is_empty() || self.int_of(&m.ty).map(|i| i.rust) != Some("u64") =>
                {
                    Err(format!("`{tag}.id` is `{}`", self.c_type_name(&m.ty)))
                }
                Some(_) => Ok(()),
            }
        };
        let why = match (id_of(req), id_of(rsp)) {
            _ if !valid => Some(format!(
                "its protocol name `{proto_name}` is not a device type (a-z, 0-9, `-`, `_`); \
                 give one with `--name {}=NAME`",
                ring.name
            )),
            (Ok(()), Ok(())) => None,
            (Err(e), _) | (_, Err(e)) => Some(format!(
                "`#[xenmq::protocol]` takes the request id from a `u64` field `id` of both \
                 messages, and {e}"
            )),
        };
        let mut d = doc_lines(&ring.docs);
        if !d.is_empty() {
            d.push(String::new());
        }
        let entry_check = format!(
            "const _: () = {{\n    let req = <{req_n} as ::xenmq::wire::Message>::SIZE;\n    let rsp = <{rsp_n} as ::xenmq::wire::Message>::SIZE;\n    assert!(\n        (if req > rsp {{ req }} else {{ rsp }}) == {},\n        \"ring `{}`: an entry is as large as the larger message\"\n    );\n}};",
            rl.entry, ring.name
        );
        d.push(format!(
            "C: `DEFINE_RING_TYPES({}, {}, {})` (line {}): entries of {} bytes, {} in a one-page ring.",
            ring.name,
            self.c_type_name(&CType::Record(req)),
            self.c_type_name(&CType::Record(rsp)),
            ring.line,
            rl.entry,
            rl.slots
        ));
        if let Some(why) = why {
            self.undeclared.push((ring.name.clone(), format!("{why}.")));
            d.push(String::new());
            d.push(format!("Not declared as a protocol: {why}."));
            self.docs("", &d);
            self.out.push_str(&entry_check);
            self.out.push('\n');
            return Ok(());
        }
        d.push(String::new());
        d.push(
            "Declared as a xenmq protocol on the `compat` ring (ring.h's layout). The C \
             drivers of this header negotiate the Xenstore keys its comments describe (see \
             the module's docs), not xenmq's identity keys; `#[xenmq::protocol]` cannot \
             declare that contract yet, so this protocol connects a xenmq peer only."
                .into(),
        );
        self.docs("", &d);
        let _ = writeln!(
            self.out,
            "#[::xenmq::protocol(name = \"{proto_name}\", request = {req_n}, response = {rsp_n})]\npub struct {name};\n\n{entry_check}"
        );
        self.protocols.push(name);
        Ok(())
    }
}

fn fits(v: i128, ty: &str) -> bool {
    let (lo, hi): (i128, i128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return false,
    };
    (lo..=hi).contains(&v)
}

/// The length of the prefix, up to and including an `_`, that all names share.
fn common_prefix(names: &[String]) -> usize {
    let Some(first) = names.first() else { return 0 };
    let mut len = first.len();
    for n in &names[1..] {
        len = len.min(
            first
                .bytes()
                .zip(n.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    if names.len() < 2 {
        return 0;
    }
    first[..len].rfind('_').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(camel("blkif_request"), "BlkifRequest");
        assert_eq!(camel("_xen_pvcalls_socket"), "XenPvcallsSocket");
        assert_eq!(camel("USB_VER_USB11"), "UsbVerUsb11");
        assert_eq!(ident("type"), "r#type");
        assert_eq!(ident("self"), "self_");
        let v: Vec<String> = ["USB_VER_UNKNOWN", "USB_VER_USB11"]
            .map(String::from)
            .into();
        assert_eq!(common_prefix(&v), 8);
    }

    #[test]
    fn comments_lose_their_star_column_and_banners() {
        let c = clean("*****\n * blkif.h\n *\n * Unified block-device\n ");
        assert_eq!(c, ["blkif.h", "", "Unified block-device"]);
        let d = doc_lines(&[Doc {
            line: 1,
            text: " only this ".into(),
        }]);
        assert_eq!(d, ["only this"]);
    }
}
