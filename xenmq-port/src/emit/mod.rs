//! Generation of the Rust module from the parsed header and gcc's layout.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::ast::*;
use crate::probe::{CInt, Layout};
use crate::{Error, Options};

mod docs;
mod names;
mod record;

use docs::doc_lines;
use names::{camel, common_prefix, ident};

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
        if !self.h.nodes.is_empty() {
            d.push(String::new());
            d.push("# Xenstore nodes".into());
            d.push(String::new());
            d.push(
                "The nodes the header's comments document (a name, then its `Values:`), by \
                 the side whose directory holds them; the comments under \"From the header\" \
                 say what each means and when it is written. Nodes named only in running \
                 text are not in this list."
                    .into(),
            );
            d.push(String::new());
            for side in [Some("backend"), Some("frontend"), None] {
                let names: Vec<String> = self
                    .h
                    .nodes
                    .iter()
                    .filter(|n| n.side == side)
                    .map(|n| format!("`{}` ({})", n.name, n.line))
                    .collect();
                if !names.is_empty() {
                    let who = side.unwrap_or("either side (no heading)");
                    d.push(format!("- {who}: {}", names.join(", ")));
                }
            }
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
        d.push(if self.h.nodes.is_empty() {
            "Declared as a xenmq protocol on the `compat` ring (ring.h's layout). The C \
                 drivers of this header negotiate the Xenstore keys its comments describe \
                 (see the module's docs), not xenmq's identity keys; `#[xenmq::protocol]` \
                 cannot declare that contract yet, so this protocol connects a xenmq peer \
                 only."
                .into()
        } else {
            "Declared as a xenmq protocol on the `compat` ring (ring.h's layout). The C \
                 drivers of this header negotiate the Xenstore nodes listed under \"Xenstore \
                 nodes\" in the module's docs, not xenmq's identity keys; \
                 `#[xenmq::protocol]` cannot declare that contract yet, so this protocol \
                 connects a xenmq peer only."
                .into()
        });
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
