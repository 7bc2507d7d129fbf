//! Compile-time layout checks the `#[xenmq::message]` expansion calls in
//! constants. Not a public API: each function panics (a compile error,
//! since it only runs in const evaluation) with a message that states the
//! rule and the numbers.

// These functions run in constant evaluation, on numbers the compiler
// computed from the driver's own types; no peer data reaches them, and an
// index or overflow fault here is a compile error, not a runtime panic.
// Every index is still bounds-checked by the loops.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// A fixed-capacity message built in a `const fn`.
struct Msg {
    buf: [u8; 256],
    len: usize,
}

impl Msg {
    const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    const fn str(mut self, s: &str) -> Self {
        let mut rest = s.as_bytes();
        while let [b, tail @ ..] = rest {
            if self.len < self.buf.len() {
                self.buf[self.len] = *b;
                self.len += 1;
            }
            rest = tail;
        }
        self
    }

    const fn num(mut self, mut n: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while i < digits.len() {
            if self.len < self.buf.len() {
                self.buf[self.len] = digits[i];
                self.len += 1;
            }
            i += 1;
        }
        self
    }

    const fn fail(&self) -> ! {
        match core::str::from_utf8(self.buf.split_at(self.len).0) {
            Ok(s) => panic!("{}", s),
            // Only reachable if truncation split a character in a name.
            Err(_) => panic!("xenmq layout check failed (message truncated)"),
        }
    }
}

/// `#[xenmq(offset = declared)]` on field `field` must match its offset.
pub const fn check_offset(field: &str, declared: usize, actual: usize) {
    if declared != actual {
        Msg::new()
            .str("`#[xenmq(offset = ")
            .num(declared)
            .str(")]` does not match: field `")
            .str(field)
            .str("` is at offset ")
            .num(actual)
            .fail();
    }
}

/// `#[xenmq(size = declared)]` on message `name` must match its size.
pub const fn check_size(name: &str, declared: usize, actual: usize) {
    if declared != actual {
        Msg::new()
            .str("`#[xenmq(size = ")
            .num(declared)
            .str(")]` does not match: `")
            .str(name)
            .str("` is ")
            .num(actual)
            .str(" bytes")
            .fail();
    }
}

/// `#[xenmq(align = declared)]` on message `name` must match its alignment.
pub const fn check_align(name: &str, declared: usize, actual: usize) {
    if declared != actual {
        Msg::new()
            .str("`#[xenmq(align = ")
            .num(declared)
            .str(")]` does not match: `")
            .str(name)
            .str("` is aligned to ")
            .num(actual)
            .str(" bytes")
            .fail();
    }
}

/// The rule both padding checks state.
const NO_PADDING: &str = "`#[xenmq::message]` structs have no implicit padding: ";

/// Field `next` (aligned to `next_align`) at `next_offset` must start
/// where field `prev` ends.
pub const fn check_gap(
    prev: &str,
    prev_end: usize,
    next: &str,
    next_align: usize,
    next_offset: usize,
) {
    if prev_end != next_offset {
        Msg::new()
            .str(NO_PADDING)
            .num(next_offset.saturating_sub(prev_end))
            .str(" bytes between `")
            .str(prev)
            .str("` (ends at ")
            .num(prev_end)
            .str(") and `")
            .str(next)
            .str("` (align ")
            .num(next_align)
            .str(", at ")
            .num(next_offset)
            .str("); add `_pad: [u8; ")
            .num(next_offset.saturating_sub(prev_end))
            .str("]` before it")
            .fail();
    }
}

/// The last field `last` must end where message `name` (aligned to
/// `align`) ends.
pub const fn check_tail(name: &str, last: &str, last_end: usize, size: usize, align: usize) {
    if last_end != size {
        Msg::new()
            .str(NO_PADDING)
            .num(size.saturating_sub(last_end))
            .str(" bytes after the last field `")
            .str(last)
            .str("` (ends at ")
            .num(last_end)
            .str("; `")
            .str(name)
            .str("` is aligned to ")
            .num(align)
            .str(", so ")
            .num(size)
            .str(" bytes); add `_pad: [u8; ")
            .num(size.saturating_sub(last_end))
            .str("]` at the end")
            .fail();
    }
}

/// Names `T` as a message field type; fails to compile (at the field's
/// type) unless `T: Field`.
pub const fn assert_field<T: super::Field>() {}
