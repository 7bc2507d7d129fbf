//! FNV-1a, 64-bit, in `const fn`: the layout fingerprint's hash.

/// An FNV-1a (64-bit) hasher usable in constants.
///
/// Strings are hashed with their length first, so `("ab", "c")` and
/// `("a", "bc")` differ; integers as 8 little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u64);

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

impl Fnv {
    /// A hasher in its initial state.
    #[must_use]
    pub const fn new() -> Self {
        Self(OFFSET_BASIS)
    }

    /// Folds in raw bytes.
    #[must_use]
    pub const fn bytes(self, bytes: &[u8]) -> Self {
        let mut h = self.0;
        let mut rest = bytes;
        while let [b, tail @ ..] = rest {
            h = (h ^ *b as u64).wrapping_mul(PRIME);
            rest = tail;
        }
        Self(h)
    }

    /// Folds in a `u64`, as 8 little-endian bytes.
    #[must_use]
    pub const fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Folds in a `usize`, widened to `u64` so every host agrees.
    #[must_use]
    pub const fn usize(self, v: usize) -> Self {
        self.u64(v as u64)
    }

    /// Folds in a string, prefixed by its length.
    #[must_use]
    pub const fn str(self, s: &str) -> Self {
        self.usize(s.len()).bytes(s.as_bytes())
    }

    /// The hash value.
    #[must_use]
    pub const fn finish(self) -> u64 {
        self.0
    }
}

/// One fingerprint for a protocol from its messages' fingerprints, in the
/// order given (request before response, say): what a peer publishes so
/// that the other can tell whether they agree on every layout.
#[must_use]
pub const fn combine(fingerprints: &[u64]) -> u64 {
    let mut h = Fnv::new().str("protocol").usize(fingerprints.len());
    let mut rest = fingerprints;
    while let [fp, tail @ ..] = rest {
        h = h.u64(*fp);
        rest = tail;
    }
    h.finish()
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn known_fnv1a_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(Fnv::new().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::new().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv::new().bytes(b"foobar").finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn combine_depends_on_every_fingerprint_and_the_order() {
        let ab = super::combine(&[1, 2]);
        assert_eq!(ab, super::combine(&[1, 2]));
        assert_ne!(ab, super::combine(&[2, 1]));
        assert_ne!(ab, super::combine(&[1, 3]));
        assert_ne!(ab, super::combine(&[1, 2, 0]));
        assert_ne!(super::combine(&[]), super::combine(&[0]));
    }

    #[test]
    fn strings_are_length_prefixed() {
        let ab_c = Fnv::new().str("ab").str("c").finish();
        let a_bc = Fnv::new().str("a").str("bc").finish();
        assert_ne!(ab_c, a_bc);
    }
}
