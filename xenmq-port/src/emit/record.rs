//! Structs and unions: messages with gcc's layout asserted.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::docs::{clean, doc_lines};
use super::names::ident;
use super::Gen;
use crate::ast::*;
use crate::probe::RecordLayout;
use crate::Error;

impl Gen<'_> {
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
    pub(super) fn x86_32_difference(&self, r: usize) -> Option<String> {
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

    pub(super) fn record(&mut self, r: usize) -> Result<(), Error> {
        let rec = &self.h.records[r];
        let rl = &self.l.records[r];
        match rec.kind {
            Kind::Struct => self.structure(r, rec, rl),
            Kind::Union => self.union(r, rec, rl),
        }
    }

    fn structure(&mut self, r: usize, rec: &Record, rl: &RecordLayout) -> Result<(), Error> {
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
        self.flexible(&name, rec, rl);
        Ok(())
    }

    /// Accessors of a flexible array member's entries in a byte buffer
    /// that holds the struct and what follows it: the entries are outside
    /// the message, so they are read from the bytes, bounds-checked.
    fn flexible(&mut self, name: &str, rec: &Record, rl: &RecordLayout) {
        let (Some(m), Some(ml)) = (rec.members.last(), rl.members.last()) else {
            return;
        };
        if m.dims != [Dim::Flexible] {
            return;
        }
        let (elem, size, read) = match &m.ty {
            CType::Int(_) | CType::Alias(_) => {
                let Some(int) = self.int_of(&m.ty) else {
                    return;
                };
                let size: u64 = int.rust[1..].parse::<u64>().unwrap_or(8) / 8;
                let ty = self.base_type(&m.ty);
                let read = format!("Some({ty}::from_ne_bytes(entry.try_into().ok()?))");
                (ty, size, read)
            }
            CType::Record(r) => {
                let ty = self.rec_names[*r].clone();
                let size = self.l.records[*r].size;
                let read = format!("<{ty} as ::xenmq::wire::Message>::from_wire(entry).ok()");
                (ty, size, read)
            }
            CType::Enum(_) => return,
        };
        if size == 0 {
            return;
        }
        let field = &m.name;
        let _ = writeln!(
            self.out,
            "\nimpl {name} {{\n    \
             /// How many whole entries of the flexible array `{field}` `bytes` holds after the \
             struct's first {off} bytes (`bytes` starts with the struct).\n    \
             pub fn {field}_len(bytes: &[u8]) -> usize {{\n        \
             bytes.len().saturating_sub({off}) / {size}\n    }}\n\n    \
             /// Entry `index` of the flexible array `{field}`, copied out of `bytes` (which starts \
             with the struct); `None` past the end of `bytes`.\n    \
             pub fn {field}_at(bytes: &[u8], index: usize) -> Option<{elem}> {{\n        \
             let start = index.checked_mul({size})?.checked_add({off})?;\n        \
             let entry = bytes.get(start..start.checked_add({size})?)?;\n        \
             {read}\n    }}\n}}",
            off = ml.offset,
        );
    }

    fn union(&mut self, r: usize, rec: &Record, rl: &RecordLayout) -> Result<(), Error> {
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
}
