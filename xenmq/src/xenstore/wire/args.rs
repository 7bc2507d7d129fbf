//! Payload arguments: NUL-terminated strings, as C xenstored splits them.
//!
//! A payload is a run of strings, each ended by a NUL. Bytes after the last
//! NUL do not form an argument (they are a `WRITE`'s value, or ignored).
//! Numbers are read the way C xenstored reads them (`atoi`, `strtol`), so
//! that odd input gets the same answer from every server.

/// The NUL-terminated strings at the start of `payload`, without their NULs.
/// Trailing bytes with no NUL are not returned.
pub fn strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = payload;
    core::iter::from_fn(move || {
        let nul = rest.iter().position(|&b| b == 0)?;
        let (s, tail) = rest.split_at(nul);
        rest = tail.get(1..).unwrap_or(&[]);
        Some(s)
    })
}

/// How many NUL-terminated strings `payload` holds.
pub fn count(payload: &[u8]) -> usize {
    strings(payload).count()
}

/// The single argument of a one-argument request: the payload must be
/// exactly one string and its NUL, nothing before or after.
pub fn one(payload: &[u8]) -> Option<&[u8]> {
    match payload.split_last() {
        Some((0, s)) if !s.contains(&0) => Some(s),
        _ => None,
    }
}

/// The first string of `payload` and every byte after its NUL (a `WRITE`'s
/// path and value). `None` if there is no NUL.
pub fn split_first(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = payload.iter().position(|&b| b == 0)?;
    let (s, tail) = payload.split_at(nul);
    Some((s, tail.get(1..).unwrap_or(&[])))
}

/// The first `n` strings, if there are at least `n`.
pub fn first_n<const N: usize>(payload: &[u8]) -> Option<[&[u8]; N]> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut it = strings(payload);
    for slot in out.iter_mut() {
        *slot = it.next()?;
    }
    Some(out)
}

/// C's `strtol(s, &end, base)` with base 0 (decimal, `0x` hex, `0` octal):
/// the value, saturated to `i64` as glibc does, and how many bytes were
/// consumed (0 if no digits were found).
pub fn strtol(s: &[u8]) -> (i64, usize) {
    let mut i = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(s.len());
    let mut neg = false;
    if let Some(&c @ (b'+' | b'-')) = s.get(i) {
        neg = c == b'-';
        i = i.saturating_add(1);
    }
    let mut radix = 10u32;
    if s.get(i) == Some(&b'0') {
        let hex = matches!(s.get(i.saturating_add(1)), Some(b'x' | b'X'))
            && s.get(i.saturating_add(2))
                .is_some_and(u8::is_ascii_hexdigit);
        if hex {
            radix = 16;
            i = i.saturating_add(2);
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut mag: u64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        match mag
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => mag = m,
            None => overflow = true,
        }
        i = i.saturating_add(1);
    }
    if i == start {
        return (0, 0);
    }
    let limit = if neg { 1u64 << 63 } else { (1u64 << 63) - 1 };
    let mag = if overflow { limit } else { mag.min(limit) };
    let v = if neg {
        0i64.saturating_sub_unsigned(mag)
    } else {
        i64::try_from(mag).unwrap_or(i64::MAX)
    };
    (v, i)
}

/// C's `atoi`, as an `unsigned int`: what C xenstored makes of a domid
/// argument (`"x"` is 0, `"-1"` is 4294967295).
pub fn atoi_u32(s: &[u8]) -> u32 {
    let mut i = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(s.len());
    let mut neg = false;
    if let Some(&c @ (b'+' | b'-')) = s.get(i) {
        neg = c == b'-';
        i = i.saturating_add(1);
    }
    let mut mag: u64 = 0;
    while let Some(d) = s.get(i).and_then(|&c| char::from(c).to_digit(10)) {
        mag = mag.saturating_mul(10).saturating_add(u64::from(d));
        i = i.saturating_add(1);
    }
    // glibc's atoi is strtol truncated to int; keep the low 32 bits.
    let v = mag.min(1u64 << 63) as u32;
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn split_strings() {
        let v: Vec<&[u8]> = strings(b"a\0bc\0\0tail").collect();
        assert_eq!(v, [&b"a"[..], b"bc", b""]);
        assert_eq!(count(b""), 0);
        assert_eq!(one(b"/x\0"), Some(&b"/x"[..]));
        assert_eq!(one(b"/x"), None);
        assert_eq!(one(b"/x\0y"), None);
        assert_eq!(one(b"/x\0y\0"), None);
        assert_eq!(one(b""), None);
        assert_eq!(one(b"\0"), Some(&b""[..]));
        assert_eq!(
            split_first(b"/p\0val\0ue"),
            Some((&b"/p"[..], &b"val\0ue"[..]))
        );
        assert_eq!(first_n::<2>(b"a\0b\0c\0"), Some([&b"a"[..], b"b"]));
        assert_eq!(first_n::<2>(b"a\0b"), None);
    }

    #[test]
    fn c_numbers() {
        assert_eq!(strtol(b"5"), (5, 1));
        assert_eq!(strtol(b" 5"), (5, 2));
        assert_eq!(strtol(b"0x10"), (16, 4));
        assert_eq!(strtol(b"010"), (8, 3));
        assert_eq!(strtol(b"0x"), (0, 1));
        assert_eq!(strtol(b"-1"), (-1, 2));
        assert_eq!(strtol(b"x"), (0, 0));
        assert_eq!(strtol(b"5x"), (5, 1));
        assert_eq!(strtol(b"99999999999999999999").0, i64::MAX);
        assert_eq!(atoi_u32(b"5"), 5);
        assert_eq!(atoi_u32(b"x"), 0);
        assert_eq!(atoi_u32(b"-1"), u32::MAX);
        assert_eq!(atoi_u32(b"70000"), 70000);
    }
}
