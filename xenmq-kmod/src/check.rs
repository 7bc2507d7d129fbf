//! Checks on the Rust object and the module, with binutils' `readelf`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::{run, Error, Result};

/// Relocation types that go through the GOT: a module loader rejects them
/// (Linux's x86-64 `apply_relocate_add` knows none of them).
const GOT_RELOCS: &[&str] = &[
    "R_X86_64_GOTPCREL",
    "R_X86_64_REX_GOTPCRELX",
    "R_X86_64_GOTPCRELX",
    "R_X86_64_GOTPC32",
    "R_X86_64_GOTPC64",
    "R_X86_64_GOT32",
    "R_X86_64_GOT64",
    "R_X86_64_GOTOFF64",
    "R_X86_64_PLT32_GOT",
];

/// One relocation: the section it patches, its type and its symbol
/// (raw, as readelf prints it).
struct Reloc {
    section: String,
    ty: String,
    sym: String,
}

/// The relocations of `obj`.
fn relocations(obj: &Path) -> Result<Vec<Reloc>> {
    let text = run(Command::new("readelf").args(["-rW"]).arg(obj), "readelf -r")?;
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Relocation section '") {
            section = rest
                .split('\'')
                .next()
                .unwrap_or("")
                .trim_start_matches(".rela")
                .to_owned();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(ty), Some(sym)) = (f.get(2), f.get(4)) else {
            continue;
        };
        if ty.starts_with("R_X86_64_") {
            out.push(Reloc {
                section: section.clone(),
                ty: (*ty).to_owned(),
                sym: (*sym).to_owned(),
            });
        }
    }
    Ok(out)
}

/// Refuses an object with GOT relocations.
pub fn no_got(obj: &Path) -> Result<()> {
    let bad: Vec<String> = relocations(obj)?
        .into_iter()
        .filter(|r| GOT_RELOCS.contains(&r.ty.as_str()))
        .map(|r| format!("{} against {}", r.ty, r.sym))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Unfit(format!(
        "{} GOT relocation(s) in {} (insmod rejects them; built without -C relro-level=off or \
         -C relocation-model=static?): {}",
        bad.len(),
        obj.display(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// The panic entry points, as paths: a path of two segments names a
/// module (every function in it), of three a function.
pub const PANIC_PATHS: &[&[&str]] = &[
    &["core", "panicking"],
    &["core", "result", "unwrap_failed"],
    &["core", "option", "unwrap_failed"],
    &["core", "option", "expect_failed"],
    &["core", "str", "slice_error_fail"],
    &["core", "slice", "index", "slice_index_fail"],
    &["core", "slice", "index", "slice_start_index_len_fail"],
    &["core", "slice", "index", "slice_end_index_len_fail"],
    &["core", "slice", "index", "slice_index_order_fail"],
    &["core", "cell", "panic_already_borrowed"],
    &["core", "cell", "panic_already_mutably_borrowed"],
    &["alloc", "alloc", "handle_alloc_error"],
    &["alloc", "raw_vec", "capacity_overflow"],
    &["alloc", "raw_vec", "handle_error"],
];

/// The panic entry point a raw symbol (or a `.text.<symbol>` section
/// name) refers to, as `a::b::c`. Both Rust manglings (legacy `_ZN` and v0
/// `_R`) spell each path segment as its length and its text, so the
/// segments are matched in that form.
pub fn panic_symbol(sym: &str) -> Option<String> {
    PANIC_PATHS.iter().find_map(|path| {
        let encoded: String = path
            .iter()
            .map(|seg| format!("{}{seg}", seg.len()))
            .collect();
        let at = sym.find(&encoded)?;
        // The encoded path must start a segment: not preceded by a digit.
        if sym[..at].ends_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut name = path.join("::");
        if path.len() == 2 {
            // The function in the module: the next segment, if legible.
            let rest = &sym[at + encoded.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>() {
                if let Some(f) = rest.get(digits.len()..digits.len() + n) {
                    name = format!("{name}::{f}");
                }
            }
        }
        Some(name)
    })
}

/// Panic sites in the Rust object: the relocations that refer to a panic
/// entry point ([`PANIC_PATHS`]) from code that is not itself one, i.e.
/// the calls (and address loads) of those functions left after LTO, by
/// entry point. Each is a place where the object can still panic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PanicSites {
    /// Sites per entry point (the hash suffix stripped).
    pub by_symbol: BTreeMap<String, usize>,
}

impl PanicSites {
    /// All sites.
    pub fn total(&self) -> usize {
        self.by_symbol.values().sum()
    }
}

/// Counts the panic sites of `obj`.
pub fn panic_sites(obj: &Path) -> Result<PanicSites> {
    let mut sites = PanicSites::default();
    for r in relocations(obj)? {
        if panic_symbol(&r.section).is_some() {
            continue;
        }
        if let Some(name) = panic_symbol(&r.sym) {
            *sites.by_symbol.entry(name).or_default() += 1;
        }
    }
    Ok(sites)
}

/// The module's `.modinfo` entries (`key=value`).
pub fn modinfo(ko: &Path) -> Result<Vec<String>> {
    let text = run(
        Command::new("readelf")
            .args(["-W", "-p", ".modinfo"])
            .arg(ko),
        "readelf -p .modinfo",
    )?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, v)| v.trim().to_owned()))
        .collect())
}

/// Refuses a module whose license is not `GPL` (every Xen symbol a split
/// driver needs is `EXPORT_SYMBOL_GPL`).
pub fn gpl(ko: &Path) -> Result<()> {
    let info = modinfo(ko)?;
    match info.iter().find_map(|e| e.strip_prefix("license=")) {
        Some("GPL") => Ok(()),
        Some(other) => Err(Error::Unfit(format!(
            "{}: license {other:?}, not \"GPL\" (the Xen API is EXPORT_SYMBOL_GPL)",
            ko.display()
        ))),
        None => Err(Error::Unfit(format!("{}: no MODULE_LICENSE", ko.display()))),
    }
}
