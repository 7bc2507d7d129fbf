//! The ground truth: gcc compiles a probe of the header whose only content
//! is an array of the numbers the port needs (every size, alignment,
//! offset, array length, enum value and constant), and the port reads
//! them from gcc's assembly. Nothing runs, so any gcc that targets x86_64
//! will do.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ast::*;
use crate::{Error, Options};

/// The C type a constant expression has (after integer promotion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CInt {
    Int,
    UInt,
    Long,
    ULong,
    LongLong,
    ULongLong,
}

impl CInt {
    fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            1 => CInt::Int,
            2 => CInt::UInt,
            3 => CInt::Long,
            4 => CInt::ULong,
            5 => CInt::LongLong,
            6 => CInt::ULongLong,
            _ => return None,
        })
    }

    pub fn signed(self) -> bool {
        matches!(self, CInt::Int | CInt::Long | CInt::LongLong)
    }

    /// The Rust type of the same size and signedness on x86_64.
    pub fn rust(self) -> &'static str {
        match self {
            CInt::Int => "i32",
            CInt::UInt => "u32",
            CInt::Long | CInt::LongLong => "i64",
            CInt::ULong | CInt::ULongLong => "u64",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MemberLayout {
    pub offset: u64,
    /// The member's size; 0 for a flexible array member.
    pub size: u64,
    /// Each dimension's length; 0 for a flexible one.
    pub dims: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct RecordLayout {
    pub size: u64,
    pub align: u64,
    pub members: Vec<MemberLayout>,
}

#[derive(Debug, Clone, Default)]
pub struct EnumLayout {
    pub size: u64,
    pub ty: Option<CInt>,
    pub values: Vec<i128>,
}

#[derive(Debug, Clone, Default)]
pub struct RingLayout {
    /// `sizeof(union NAME_sring_entry)`.
    pub entry: u64,
    /// `__CONST_RING_SIZE(NAME, 4096)`: entries in a one-page ring.
    pub slots: u64,
}

/// gcc's numbers, indexed like the header's records, enums and items.
#[derive(Debug, Clone)]
pub struct Layout {
    pub records: Vec<RecordLayout>,
    pub enums: Vec<EnumLayout>,
    /// By item index: constants' values and types.
    pub consts: Vec<Option<(i128, CInt)>>,
    /// By item index: rings.
    pub rings: Vec<Option<RingLayout>>,
    /// The records as gcc lays them out for i386 (`-m32`), or why that
    /// could not be probed.
    pub x86_32: Result<Vec<RecordLayout>, String>,
}

/// A C expression naming a record's type.
pub fn c_type(h: &Header, r: usize) -> String {
    let rec = &h.records[r];
    if let Some(tag) = &rec.tag {
        return format!("{} {tag}", rec.kind.c());
    }
    if let Some(t) = rec.typedefs.first() {
        return t.clone();
    }
    match &rec.parent {
        Some((p, member)) => {
            let dims = h.records[*p]
                .members
                .iter()
                .find(|m| &m.name == member)
                .map_or(0, |m| m.dims.len());
            format!(
                "__typeof__((({} *)0)->{member}{})",
                c_type(h, *p),
                "[0]".repeat(dims)
            )
        }
        // Unreachable for a parsed header: an anonymous record is a member's type.
        None => "int".into(),
    }
}

fn enum_c_type(e: &EnumDef) -> String {
    match (&e.tag, e.typedefs.first()) {
        (Some(tag), _) => format!("enum {tag}"),
        (None, Some(t)) => t.clone(),
        (None, None) => "int".into(),
    }
}

/// What each number of the probe array is.
enum Slot {
    RecSize(usize),
    RecAlign(usize),
    Offset(usize, usize),
    Size(usize, usize),
    Dim(usize, usize, usize),
    EnumSize(usize),
    EnumType(usize),
    EnumValue(usize, usize),
    ConstValue(usize),
    ConstType(usize),
    RingEntry(usize),
    RingSlots(usize),
}

pub fn probe(h: &Header, text: &str, options: &Options) -> Result<Layout, Error> {
    let file = options.file_name.as_str();
    let mut exprs: Vec<(Slot, String)> = Vec::new();
    for (r, rec) in h.records.iter().enumerate() {
        let ty = c_type(h, r);
        exprs.push((Slot::RecSize(r), format!("sizeof({ty})")));
        exprs.push((Slot::RecAlign(r), format!("_Alignof({ty})")));
        for (m, mem) in rec.members.iter().enumerate() {
            let name = &mem.name;
            exprs.push((
                Slot::Offset(r, m),
                format!("__builtin_offsetof({ty}, {name})"),
            ));
            let flexible = mem.dims.contains(&Dim::Flexible);
            if !flexible {
                exprs.push((Slot::Size(r, m), format!("sizeof((({ty} *)0)->{name})")));
            }
            for d in 0..mem.dims.len() {
                let e = if mem.dims[d] == Dim::Flexible {
                    "0".to_string()
                } else {
                    let outer = "[0]".repeat(d);
                    format!(
                        "sizeof((({ty} *)0)->{name}{outer}) / sizeof((({ty} *)0)->{name}{outer}[0])"
                    )
                };
                exprs.push((Slot::Dim(r, m, d), e));
            }
        }
    }
    for (e, en) in h.enums.iter().enumerate() {
        let ty = enum_c_type(en);
        exprs.push((Slot::EnumSize(e), format!("sizeof({ty})")));
        exprs.push((Slot::EnumType(e), format!("XENMQ_T(({ty})0)")));
        for (v, var) in en.variants.iter().enumerate() {
            exprs.push((
                Slot::EnumValue(e, v),
                format!("(unsigned long long)(long long)({})", var.name),
            ));
        }
    }
    for (i, item) in h.items.iter().enumerate() {
        match item {
            Item::Const(c) => {
                exprs.push((
                    Slot::ConstValue(i),
                    format!("(unsigned long long)({})", c.name),
                ));
                exprs.push((Slot::ConstType(i), format!("XENMQ_T({})", c.name)));
            }
            Item::Ring(ring) => {
                exprs.push((
                    Slot::RingEntry(i),
                    format!("sizeof(union {}_sring_entry)", ring.name),
                ));
                exprs.push((
                    Slot::RingSlots(i),
                    format!("__CONST_RING_SIZE({}, 4096)", ring.name),
                ));
            }
            _ => {}
        }
    }
    let mut c = String::new();
    c.push_str("#include <stddef.h>\n#include <stdint.h>\n");
    c.push_str(&format!("#include \"{file}\"\n"));
    c.push_str(
        "#ifndef __x86_64__\n#error \"xenmq port generates the x86_64 layout: the C compiler \
         must target x86_64\"\n#endif\n",
    );
    c.push_str(
        "#define XENMQ_T(x) _Generic((x) + 0, int: 1, unsigned int: 2, long: 3, \
         unsigned long: 4, long long: 5, unsigned long long: 6, default: 0)\n",
    );
    c.push_str("const unsigned long long xenmq_probe[] = {\n");
    for (_, e) in &exprs {
        c.push_str(&format!("    (unsigned long long)({e}),\n"));
    }
    c.push_str("    0x5e9a11e5\n};\n");

    let dir = TempDir::new()?;
    let io = |what: String| move |source| Error::Io { what, source };
    std::fs::write(dir.0.join(file), text).map_err(io(format!(
        "cannot write the header into {}",
        dir.0.display()
    )))?;
    let probe_c = dir.0.join("xenmq-probe.c");
    std::fs::write(&probe_c, &c).map_err(io("cannot write the probe".into()))?;
    let values = compile(&dir, options, &[], exprs.len())?;
    // The same probe for i386, freestanding so that no 32-bit libc headers
    // are needed: only the records' layouts are kept, for the docs.
    let c32 = c.replace("#ifndef __x86_64__", "#ifndef __i386__");
    std::fs::write(&probe_c, &c32).map_err(io("cannot write the probe".into()))?;
    let x86_32 = match compile(&dir, options, &["-m32", "-ffreestanding"], exprs.len()) {
        Ok(v) => Ok(v),
        Err(Error::Probe { stderr, .. }) => {
            Err(stderr.lines().next().unwrap_or_default().to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let mut l = Layout {
        records: h
            .records
            .iter()
            .map(|r| RecordLayout {
                members: r
                    .members
                    .iter()
                    .map(|m| MemberLayout {
                        dims: vec![0; m.dims.len()],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        enums: h
            .enums
            .iter()
            .map(|e| EnumLayout {
                values: vec![0; e.variants.len()],
                ..Default::default()
            })
            .collect(),
        consts: vec![None; h.items.len()],
        rings: vec![None; h.items.len()],
        x86_32: Err(String::new()),
    };
    let empty = l.records.clone();
    let mut const_values = vec![0u64; h.items.len()];
    for ((slot, _), v) in exprs.iter().zip(values) {
        match *slot {
            Slot::RecSize(r) => l.records[r].size = v,
            Slot::RecAlign(r) => l.records[r].align = v,
            Slot::Offset(r, m) => l.records[r].members[m].offset = v,
            Slot::Size(r, m) => l.records[r].members[m].size = v,
            Slot::Dim(r, m, d) => l.records[r].members[m].dims[d] = v,
            Slot::EnumSize(e) => l.enums[e].size = v,
            Slot::EnumType(e) => l.enums[e].ty = CInt::from_code(v),
            Slot::EnumValue(e, i) => l.enums[e].values[i] = i128::from(v as i64),
            Slot::ConstValue(i) => const_values[i] = v,
            Slot::ConstType(i) => {
                let Some(ty) = CInt::from_code(v) else {
                    let line = match &h.items[i] {
                        Item::Const(c) => c.line,
                        _ => 0,
                    };
                    return Err(Error::at(
                        file,
                        line,
                        "the constant is not of an integer type",
                    ));
                };
                let raw = const_values[i];
                let value = if ty.signed() {
                    i128::from(raw as i64)
                } else if matches!(ty, CInt::UInt) {
                    i128::from(raw as u32)
                } else {
                    i128::from(raw)
                };
                l.consts[i] = Some((value, ty));
            }
            Slot::RingEntry(i) => l.rings[i].get_or_insert_with(Default::default).entry = v,
            Slot::RingSlots(i) => l.rings[i].get_or_insert_with(Default::default).slots = v,
        }
    }
    l.x86_32 = x86_32.map(|values| {
        let mut records = empty;
        for ((slot, _), v) in exprs.iter().zip(values) {
            match *slot {
                Slot::RecSize(r) => records[r].size = v,
                Slot::RecAlign(r) => records[r].align = v,
                Slot::Offset(r, m) => records[r].members[m].offset = v,
                Slot::Size(r, m) => records[r].members[m].size = v,
                Slot::Dim(r, m, d) => records[r].members[m].dims[d] = v,
                _ => {}
            }
        }
        records
    });
    Ok(l)
}

/// Compiles the probe in `dir` with `flags` and reads its `count` numbers.
fn compile(
    dir: &TempDir,
    options: &Options,
    flags: &[&str],
    count: usize,
) -> Result<Vec<u64>, Error> {
    let file = options.file_name.as_str();
    let asm = dir.0.join("xenmq-probe.s");
    let mut cmd = Command::new(&options.cc);
    cmd.args(flags)
        .args(["-S", "-O0", "-std=gnu11", "-w", "-o"])
        .arg(&asm)
        .arg(dir.0.join("xenmq-probe.c"));
    for d in &options.include_dirs {
        cmd.arg("-iquote").arg(d);
    }
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("cannot run the C compiler `{}`", options.cc),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Probe {
            file: file.to_string(),
            // The header's copy is named as the header: drop the directory.
            stderr: String::from_utf8_lossy(&out.stderr)
                .replace(&format!("{}/", dir.0.display()), ""),
        });
    }
    let s = std::fs::read_to_string(&asm).map_err(|source| Error::Io {
        what: "cannot read gcc's assembly".into(),
        source,
    })?;
    let values = numbers(&s).ok_or_else(|| Error::Answer {
        file: file.to_string(),
        msg: "no `xenmq_probe` array in gcc's assembly".into(),
    })?;
    if values.len() != count + 1 || values.last() != Some(&0x5e9a11e5) {
        return Err(Error::Answer {
            file: file.to_string(),
            msg: format!(
                "expected {} numbers and the end marker, read {}",
                count + 1,
                values.len()
            ),
        });
    }
    Ok(values)
}

/// The numbers of the `xenmq_probe` array in gcc's x86_64 assembly.
fn numbers(asm: &str) -> Option<Vec<u64>> {
    let mut lines = asm.lines().skip_while(|l| l.trim() != "xenmq_probe:");
    lines.next()?;
    let mut out = Vec::new();
    // i386 writes each 64-bit number as two `.long`s, low half first.
    let mut low: Option<u64> = None;
    for line in lines {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(".quad"), Some(v)) => out.push(v.parse::<i128>().ok()? as u64),
            (Some(".long"), Some(v)) => {
                let half = u64::from(v.parse::<i64>().ok()? as u32);
                match low.take() {
                    None => low = Some(half),
                    Some(lo) => out.push(lo | half << 32),
                }
            }
            (Some(".zero"), Some(n)) => {
                let n: usize = n.parse().ok()?;
                out.extend(std::iter::repeat_n(0, n / 8));
            }
            (Some(".align" | ".p2align"), _) => {}
            _ => break,
        }
    }
    Some(out)
}

/// A private directory for the probe, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, Error> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xenmq-port-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: format!("cannot create {}", dir.display()),
            source,
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_quads_and_zero_runs() {
        let asm = "\t.globl\txenmq_probe\nxenmq_probe:\n\t.quad\t112\n\t.zero\t16\n\t.quad\t-1\n\t.ident\t\"x\"\n";
        assert_eq!(super::numbers(asm), Some(vec![112, 0, 0, u64::MAX]));
        let asm32 =
            "xenmq_probe:\n\t.long\t108\n\t.long\t0\n\t.long\t-1\n\t.long\t-1\n\t.ident\t\"x\"\n";
        assert_eq!(super::numbers(asm32), Some(vec![108, u64::MAX]));
    }
}
