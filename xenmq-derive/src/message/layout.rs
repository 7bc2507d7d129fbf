//! Layout the macro can compute itself: structs whose fields are integers
//! and arrays of integers. It finds implicit padding before the compiler
//! does, so the user gets one error on the field at fault instead of
//! zerocopy's follow-ups. Everything else is left to the layout checks the
//! expansion emits.

use syn::{Expr, Lit, Type};

/// A gap the compiler would fill with padding.
#[derive(PartialEq, Eq, Debug)]
pub enum Gap {
    /// Between field `next - 1` (ending at `end`) and field `next`
    /// (aligned to `align`, at `at`).
    Between {
        next: usize,
        end: usize,
        align: usize,
        at: usize,
    },
    /// After the last field (ending at `end`) in a struct of `size` bytes
    /// aligned to `align`.
    Tail {
        end: usize,
        size: usize,
        align: usize,
    },
}

/// Whether the macro knows `ty`'s layout itself: an integer or an array
/// of integers, which is a wire field by construction.
pub fn known(ty: &Type) -> bool {
    size_align(ty, 8).is_some()
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
            gaps.push(Gap::Between {
                next: i,
                end,
                align,
                at,
            });
        }
        end = at.checked_add(size)?;
        max_align = max_align.max(align);
    }
    let size = end.checked_next_multiple_of(max_align)?;
    if size != end {
        gaps.push(Gap::Tail {
            end,
            size,
            align: max_align,
        });
    }
    Some(gaps)
}

/// The gaps of a struct with these field types, if the macro can know the
/// layout (`None` if a field's layout is unknown here), with 64-bit
/// integers 8-aligned as on every 64-bit peer; and whether 32-bit x86,
/// which aligns them to 4, would lay the struct out differently. Filling
/// these gaps gives one layout on every peer.
pub fn gaps(fields: &[&Type]) -> Option<(Vec<Gap>, bool)> {
    let wide = gaps_for(fields, 8)?;
    let narrow = gaps_for(fields, 4)?;
    let differs = wide != narrow;
    Some((wide, differs))
}
