//! Layout the macro can compute itself: structs whose fields are integers
//! and arrays of integers. It finds implicit padding before the compiler
//! does, so the user gets one error on the field at fault instead of
//! zerocopy's follow-ups. Everything else is left to the constant checks.

use syn::{Expr, Lit, Type};

/// A gap the compiler would fill with padding.
#[derive(PartialEq, Eq, Debug)]
pub enum Gap {
    /// Between field `next - 1` (ending at `end`) and field `next` (at `at`).
    Between { next: usize, end: usize, at: usize },
    /// After the last field (ending at `end`) in a struct of `size` bytes.
    Tail { end: usize, size: usize },
}

/// Size and alignment of an integer or an array of integers, with 64-bit
/// integers aligned to `align64` (4 on i386, 8 on x86_64 and Arm).
fn size_align(ty: &Type, align64: usize) -> Option<(usize, usize)> {
    match ty {
        Type::Paren(p) => size_align(&p.elem, align64),
        Type::Group(g) => size_align(&g.elem, align64),
        Type::Array(a) => {
            let (size, align) = size_align(&a.elem, align64)?;
            let Expr::Lit(lit) = &a.len else { return None };
            let Lit::Int(n) = &lit.lit else { return None };
            Some((size.checked_mul(n.base10_parse::<usize>().ok()?)?, align))
        }
        Type::Path(p) if p.qself.is_none() => {
            let ident = p.path.get_ident()?.to_string();
            match ident.as_str() {
                "u8" | "i8" => Some((1, 1)),
                "u16" | "i16" => Some((2, 2)),
                "u32" | "i32" => Some((4, 4)),
                "u64" | "i64" => Some((8, align64)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn gaps_for(fields: &[&Type], align64: usize) -> Option<Vec<Gap>> {
    let mut gaps = Vec::new();
    let mut end = 0usize;
    let mut max_align = 1usize;
    for (i, ty) in fields.iter().enumerate() {
        let (size, align) = size_align(ty, align64)?;
        let at = end.checked_next_multiple_of(align)?;
        if i > 0 && at != end {
            gaps.push(Gap::Between { next: i, end, at });
        }
        end = at.checked_add(size)?;
        max_align = max_align.max(align);
    }
    let size = end.checked_next_multiple_of(max_align)?;
    if size != end {
        gaps.push(Gap::Tail { end, size });
    }
    Some(gaps)
}

/// The gaps of a struct with these field types, if the macro can know them
/// for every target: `None` if a field's layout is unknown here or the
/// answer depends on the alignment of 64-bit integers.
pub fn gaps(fields: &[&Type]) -> Option<Vec<Gap>> {
    let a = gaps_for(fields, 4)?;
    let b = gaps_for(fields, 8)?;
    (a == b).then_some(a)
}
