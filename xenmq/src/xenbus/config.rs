//! Xenstore configuration as data: typed values read from and written to the
//! keys of a device directory.
//!
//! `#[derive(XenstoreConfig)]` implements [`Config`] for a struct from its
//! fields, each of which implements [`Setting`]. Nothing here knows a concrete
//! store: reading takes a closure that answers a key relative to the
//! directory, writing takes a closure that receives key/value pairs, so the
//! same code runs over the platform `Store`, Linux's xenbus API or a map in a
//! test.
//!
//! Every value may come from the peer domain and is untrusted: lengths are
//! bounded before parsing, parsing never panics, and an error names the full
//! path, the (truncated, escaped) value and what was expected.
//!
//! ```
//! use std::collections::BTreeMap;
//! use xenmq::prelude::*;
//! use xenmq::xenbus::RingRefs;
//!
//! // Reads a frontend's directory, the handshake's own keys included: a
//! // driver's config may not use those, `reserved` says it is on purpose.
//! #[derive(XenstoreConfig)]
//! struct Ring {
//!     #[xenstore(rename = "ring-ref", reserved)] // ring-ref, or ring-page-order + ring-ref0..N-1
//!     ring: RingRefs,
//!     #[xenstore(reserved)]
//!     event_channel: u32,            // key `event-channel`
//!     #[xenstore(reserved)]
//!     protocol: Option<String>,      // optional
//!     feature_persistent: bool,      // "0"/"1", missing is false
//!     #[xenstore(default = 11, min = 1, max = 256)]
//!     max_segments: u16,             // key `max-segments`
//! }
//!
//! let dir = "/local/domain/3/device/vkv/0";
//! let mut store = BTreeMap::from([
//!     ("ring-page-order".to_string(), "1".to_string()),
//!     ("ring-ref0".to_string(), "8".to_string()),
//!     ("ring-ref1".to_string(), "9".to_string()),
//!     ("event-channel".to_string(), "5".to_string()),
//! ]);
//! let r = Ring::read(dir, &mut |k| store.get(k).cloned()).unwrap();
//! assert_eq!(r.ring.refs(), &[8, 9]);
//! assert_eq!((r.protocol, r.feature_persistent, r.max_segments), (None, false, 11));
//!
//! store.insert("ring-page-order".into(), "9".into());
//! let e = Ring::read(dir, &mut |k| store.get(k).cloned()).err().unwrap();
//! assert_eq!(
//!     e.to_string(),
//!     "/local/domain/3/device/vkv/0/ring-page-order: \"9\" is out of range 0..=4"
//! );
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::grant::GrantRef;

/// The longest value accepted from a key (Xenstore's `XENSTORE_PAYLOAD_MAX`).
pub const MAX_VALUE_LEN: usize = 4096;

/// How much of a bad value an error message quotes.
const QUOTE_LEN: usize = 64;

/// The largest ring Xen's multi-page protocol describes:
/// `ring-page-order` at most 4, so 16 pages (Linux's `XENBUS_MAX_RING_GRANT_ORDER`).
pub const MAX_RING_PAGE_ORDER: u8 = 4;

/// A key or value of a device directory that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A required key is absent.
    #[error("{path}: missing, expected {expected}")]
    Missing {
        /// Full path of the key.
        path: String,
        /// What the key should hold.
        expected: &'static str,
    },
    /// A value does not parse as its type.
    #[error("{path}: {value:?} is not {expected}")]
    Invalid {
        /// Full path of the key.
        path: String,
        /// The value, truncated to 64 characters.
        value: String,
        /// What the key should hold.
        expected: &'static str,
    },
    /// A value parses but lies outside its bounds.
    #[error("{path}: {value:?} is out of range {range}")]
    OutOfRange {
        /// Full path of the key.
        path: String,
        /// The value as read.
        value: String,
        /// The accepted range, in Rust syntax (`0..=4`).
        range: String,
    },
    /// A value is longer than any key may hold.
    #[error("{path}: value of {len} bytes is longer than {max} bytes")]
    TooLong {
        /// Full path of the key.
        path: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Joins a directory and a key into a full path.
pub fn path(dir: &str, key: &str) -> String {
    if dir.is_empty() {
        key.to_string()
    } else {
        format!("{dir}/{key}")
    }
}

/// The first 64 characters of an untrusted value, for a message.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LEN) {
        Some((end, _)) => {
            let mut s = value.get(..end).unwrap_or_default().to_string();
            s.push('…');
            s
        }
        None => value.to_string(),
    }
}

impl Error {
    /// A required key `dir/key` is absent.
    pub fn missing(dir: &str, key: &str, expected: &'static str) -> Self {
        Error::Missing {
            path: path(dir, key),
            expected,
        }
    }

    /// `value` at `dir/key` does not parse.
    pub fn invalid(dir: &str, key: &str, value: &str, expected: &'static str) -> Self {
        Error::Invalid {
            path: path(dir, key),
            value: quote(value),
            expected,
        }
    }

    /// `value` at `dir/key` is outside `range`.
    pub fn out_of_range(dir: &str, key: &str, value: impl fmt::Display, range: String) -> Self {
        Error::OutOfRange {
            path: path(dir, key),
            value: quote(&value.to_string()),
            range,
        }
    }

    /// The full path of the key at fault.
    pub fn path(&self) -> &str {
        match self {
            Error::Missing { path, .. }
            | Error::Invalid { path, .. }
            | Error::OutOfRange { path, .. }
            | Error::TooLong { path, .. } => path,
        }
    }
}

/// Reads `dir/key` through `get`, refusing values longer than [`MAX_VALUE_LEN`].
pub fn get_bounded(
    dir: &str,
    key: &str,
    get: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Option<String>, Error> {
    match get(key) {
        Some(v) if v.len() > MAX_VALUE_LEN => Err(Error::TooLong {
            path: path(dir, key),
            len: v.len(),
            max: MAX_VALUE_LEN,
        }),
        other => Ok(other),
    }
}

/// A set of Xenstore keys read as one struct.
///
/// Implemented by `#[derive(XenstoreConfig)]`; see the derive for the
/// attribute syntax.
pub trait Config: Sized {
    /// Appends every key [`read`](Config::read) may ask for, relative to the
    /// directory (families such as `ring-ref0..N-1` expanded to their maximum).
    fn keys(out: &mut Vec<String>);

    /// Reads the struct from the directory `dir`; `get` answers a key relative
    /// to `dir` (`None` when absent). `dir` is only used in error messages.
    fn read(dir: &str, get: &mut dyn FnMut(&str) -> Option<String>) -> Result<Self, Error>;

    /// Hands every key/value pair to `put`, keys relative to the directory.
    /// Absent optional values are skipped.
    fn write(&self, put: &mut dyn FnMut(&str, String));

    /// The pairs [`write`](Config::write) produces, collected.
    fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        self.write(&mut |k, val| v.push((k.to_string(), val)));
        v
    }
}

/// A scalar that lives in one key.
pub trait Value: Sized {
    /// What the key should hold, for error messages ("an unsigned 32-bit integer").
    const EXPECTED: &'static str;
    /// Parses a value; `None` if it is not one.
    fn parse(s: &str) -> Option<Self>;
    /// Formats the value as Xenstore holds it.
    fn format(&self) -> String;
    /// The value a missing key stands for, if the absence has a meaning
    /// (Xen's `feature-*` booleans: missing is false).
    fn missing() -> Option<Self> {
        None
    }
}

/// A struct field of a [`Config`]: one key, or a family of keys.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a Xenstore config",
    label = "no Xenstore representation",
    note = "fields are integers, `bool`, `String`, `Fingerprint`, `RingRefs`, or an `Option` of a scalar"
)]
pub trait Setting: Sized {
    /// What the key should hold, for error messages.
    const EXPECTED: &'static str;
    /// Appends the keys this field reads under the name `key`.
    fn keys(key: &str, out: &mut Vec<String>);
    /// Reads the field; `Ok(None)` if its key is absent.
    fn read(
        dir: &str,
        key: &str,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error>;
    /// The value a missing key stands for, if any.
    fn missing() -> Option<Self>;
    /// Reads a field that has no default: absent is an error unless the
    /// type gives absence a meaning ([`Setting::missing`]).
    fn read_required(
        dir: &str,
        key: &str,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        match Self::read(dir, key, get)? {
            Some(v) => Ok(v),
            None => Self::missing().ok_or_else(|| Error::missing(dir, key, Self::EXPECTED)),
        }
    }
    /// Writes the field under the name `key`.
    fn write(&self, key: &str, put: &mut dyn FnMut(&str, String));
}

impl<T: Value> Setting for T {
    const EXPECTED: &'static str = T::EXPECTED;
    fn keys(key: &str, out: &mut Vec<String>) {
        out.push(key.to_string());
    }
    fn read(
        dir: &str,
        key: &str,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        match get_bounded(dir, key, get)? {
            None => Ok(None),
            Some(s) => match T::parse(&s) {
                Some(v) => Ok(Some(v)),
                None => Err(Error::invalid(dir, key, &s, T::EXPECTED)),
            },
        }
    }
    fn missing() -> Option<Self> {
        T::missing()
    }
    fn write(&self, key: &str, put: &mut dyn FnMut(&str, String)) {
        put(key, self.format());
    }
}

impl<T: Value> Setting for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn keys(key: &str, out: &mut Vec<String>) {
        out.push(key.to_string());
    }
    fn read(
        dir: &str,
        key: &str,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        <T as Setting>::read(dir, key, get).map(|v| Some(v.or_else(T::missing)))
    }
    fn missing() -> Option<Self> {
        Some(T::missing())
    }
    fn write(&self, key: &str, put: &mut dyn FnMut(&str, String)) {
        if let Some(v) = self {
            put(key, v.format());
        }
    }
}

/// A field with `min`/`max` bounds.
#[diagnostic::on_unimplemented(
    message = "`min`/`max` need an integer field, not `{Self}`",
    label = "cannot be bounded",
    note = "bounds apply to integers, `Option`s of integers and `RingRefs` (its page order)"
)]
pub trait Bounded {
    /// The type the bounds are written in.
    type Bound: PartialOrd + fmt::Display + Copy;
    /// Checks the value against the bounds; the error names `dir/key`.
    fn check_range(
        &self,
        dir: &str,
        key: &str,
        min: Option<Self::Bound>,
        max: Option<Self::Bound>,
    ) -> Result<(), Error>;
}

/// Formats a range as Rust writes it.
pub fn range<B: fmt::Display>(min: Option<B>, max: Option<B>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        (Some(a), None) => format!("{a}.."),
        (None, Some(b)) => format!("..={b}"),
        (None, None) => String::from(".."),
    }
}

fn check<B: PartialOrd + fmt::Display + Copy>(
    v: B,
    dir: &str,
    key: &str,
    min: Option<B>,
    max: Option<B>,
) -> Result<(), Error> {
    let low = min.is_some_and(|m| v < m);
    let high = max.is_some_and(|m| v > m);
    if low || high {
        Err(Error::out_of_range(dir, key, v, range(min, max)))
    } else {
        Ok(())
    }
}

impl<T: Bounded> Bounded for Option<T> {
    type Bound = T::Bound;
    fn check_range(
        &self,
        dir: &str,
        key: &str,
        min: Option<Self::Bound>,
        max: Option<Self::Bound>,
    ) -> Result<(), Error> {
        match self {
            Some(v) => v.check_range(dir, key, min, max),
            None => Ok(()),
        }
    }
}

/// The longest decimal integer accepted (`u64::MAX` has 20 digits, plus a sign).
const MAX_INT_LEN: usize = 21;

macro_rules! integer {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Value for $t {
            const EXPECTED: &'static str = $what;
            fn parse(s: &str) -> Option<Self> {
                // Decimal only, as Xen writes with `%u`/`%d`: no sign for
                // unsigned, no `+`, no spaces, no empty string.
                let digits = s.strip_prefix('-').unwrap_or(s);
                if s.len() > MAX_INT_LEN
                    || digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                s.parse().ok()
            }
            fn format(&self) -> String {
                self.to_string()
            }
        }
        impl Bounded for $t {
            type Bound = $t;
            fn check_range(
                &self,
                dir: &str,
                key: &str,
                min: Option<$t>,
                max: Option<$t>,
            ) -> Result<(), Error> {
                check(*self, dir, key, min, max)
            }
        }
    )*};
}

integer! {
    u8 => "an unsigned 8-bit integer",
    u16 => "an unsigned 16-bit integer",
    u32 => "an unsigned 32-bit integer",
    u64 => "an unsigned 64-bit integer",
    usize => "an unsigned integer",
    i8 => "an 8-bit integer",
    i16 => "a 16-bit integer",
    i32 => "a 32-bit integer",
    i64 => "a 64-bit integer",
}

impl Value for bool {
    const EXPECTED: &'static str = "\"0\" or \"1\"";
    fn parse(s: &str) -> Option<Self> {
        match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
    fn format(&self) -> String {
        String::from(if *self { "1" } else { "0" })
    }
    fn missing() -> Option<Self> {
        // Xen's `feature-*` convention: a key the peer did not write is a
        // feature it does not offer.
        Some(false)
    }
}

impl Value for String {
    const EXPECTED: &'static str = "a string";
    fn parse(s: &str) -> Option<Self> {
        // Length is bounded by `get_bounded`; control characters have no
        // business in a key and would garble logs.
        if s.chars().any(char::is_control) {
            None
        } else {
            Some(s.to_string())
        }
    }
    fn format(&self) -> String {
        self.clone()
    }
}

/// A protocol layout fingerprint, written as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Value for Fingerprint {
    const EXPECTED: &'static str = "a fingerprint of 16 hex digits";
    fn parse(s: &str) -> Option<Self> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
    fn format(&self) -> String {
        self.to_string()
    }
}

/// The grant references of a shared ring, as Xen publishes them.
///
/// One page: a single `ring-ref` key. More pages: `ring-page-order` = k and
/// `ring-ref0` .. `ring-ref{2^k - 1}` (the multi-page convention of
/// blkif.h/netif.h). Read under the field name `ring-ref`; the order key is
/// always `ring-page-order`, so a config holds at most one `RingRefs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRefs {
    order: u8,
    refs: Vec<GrantRef>,
}

/// The key holding a multi-page ring's order.
pub const RING_PAGE_ORDER: &str = "ring-page-order";

impl RingRefs {
    /// A ring of `refs.len()` pages; `None` unless that is a power of two of
    /// order at most [`MAX_RING_PAGE_ORDER`].
    pub fn new(refs: Vec<GrantRef>) -> Option<Self> {
        let n = refs.len();
        if !n.is_power_of_two() {
            return None;
        }
        let order = u8::try_from(n.trailing_zeros()).ok()?;
        (order <= MAX_RING_PAGE_ORDER).then_some(RingRefs { order, refs })
    }

    /// log2 of the number of pages.
    pub fn order(&self) -> u8 {
        self.order
    }

    /// The grant references, page by page.
    pub fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    /// Takes the grant references out.
    pub fn into_refs(self) -> Vec<GrantRef> {
        self.refs
    }
}

impl Setting for RingRefs {
    const EXPECTED: &'static str = "a grant reference";
    fn keys(key: &str, out: &mut Vec<String>) {
        out.push(key.to_string());
        out.push(RING_PAGE_ORDER.to_string());
        for i in 0..(1u32 << MAX_RING_PAGE_ORDER) {
            out.push(format!("{key}{i}"));
        }
    }
    fn read(
        dir: &str,
        key: &str,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let order = match <u8 as Setting>::read(dir, RING_PAGE_ORDER, get)? {
            // Single page: `ring-ref` alone, as blkfront/netfront write it.
            None => {
                return Ok(
                    <GrantRef as Setting>::read(dir, key, get)?.map(|r| RingRefs {
                        order: 0,
                        refs: alloc::vec![r],
                    }),
                );
            }
            Some(o) => o,
        };
        // Checked before any allocation: a hostile order never sizes a Vec.
        check(
            order,
            dir,
            RING_PAGE_ORDER,
            Some(0),
            Some(MAX_RING_PAGE_ORDER),
        )?;
        let n = 1usize << order;
        let mut refs = Vec::with_capacity(n);
        for i in 0..n {
            let k = format!("{key}{i}");
            match <GrantRef as Setting>::read(dir, &k, get)? {
                Some(r) => refs.push(r),
                None => return Err(Error::missing(dir, &k, Self::EXPECTED)),
            }
        }
        Ok(Some(RingRefs { order, refs }))
    }
    fn missing() -> Option<Self> {
        None
    }
    fn write(&self, key: &str, put: &mut dyn FnMut(&str, String)) {
        if let [single] = self.refs.as_slice() {
            put(key, single.to_string());
        } else {
            put(RING_PAGE_ORDER, self.order.to_string());
            for (i, r) in self.refs.iter().enumerate() {
                put(&format!("{key}{i}"), r.to_string());
            }
        }
    }
}

impl Bounded for RingRefs {
    type Bound = u8;
    fn check_range(
        &self,
        dir: &str,
        _key: &str,
        min: Option<u8>,
        max: Option<u8>,
    ) -> Result<(), Error> {
        check(self.order, dir, RING_PAGE_ORDER, min, max)
    }
}

/// Values read from a peer's directory, answering an `Action::ReadPeer`.
///
/// Holds at most [`Keys::MAX_ENTRIES`] keys. Values are kept as given; one
/// longer than [`MAX_VALUE_LEN`] is refused when a config reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    entries: Vec<(String, String)>,
}

impl Keys {
    /// The most keys a snapshot holds.
    pub const MAX_ENTRIES: usize = 128;

    /// An empty snapshot.
    pub fn new() -> Self {
        Keys::default()
    }

    /// Reads each of `keys` through `read` (`None` when absent).
    pub fn read_with(keys: &[String], mut read: impl FnMut(&str) -> Option<String>) -> Self {
        let mut k = Keys::new();
        for key in keys {
            if let Some(v) = read(key) {
                k.insert(key, v);
            }
        }
        k
    }

    /// Records `key` = `value`, replacing an earlier value. Past
    /// [`Keys::MAX_ENTRIES`] distinct keys, new ones are dropped (and so read
    /// as missing).
    pub fn insert(&mut self, key: &str, value: String) {
        if let Some(e) = self.entries.iter_mut().find(|(k, _)| k == key) {
            e.1 = value;
        } else if self.entries.len() < Self::MAX_ENTRIES {
            self.entries.push((key.to_string(), value));
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Reads a config from the snapshot.
    pub fn parse<C: Config>(&self, dir: &str) -> Result<C, Error> {
        C::read(dir, &mut |k| self.get(k))
    }

    /// The entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn integers_are_strict_decimal() {
        assert_eq!(u64::parse("18446744073709551615"), Some(u64::MAX));
        assert_eq!(u64::parse("18446744073709551616"), None);
        assert_eq!(i64::parse("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(u32::parse("-0"), None);
        assert_eq!(i32::parse("-0"), Some(0));
        for bad in ["", "-", "+1", " 1", "1 ", "0x1", "1_000", "1e3", "١"] {
            assert_eq!(u32::parse(bad), None, "{bad:?}");
            assert_eq!(i32::parse(bad), None, "{bad:?}");
        }
        assert_eq!(u8::parse(&"9".repeat(1000)), None);
    }

    #[test]
    fn bools_fingerprints_strings() {
        assert_eq!(bool::parse("1"), Some(true));
        assert_eq!(bool::parse("0"), Some(false));
        assert_eq!(bool::parse("01"), None);
        assert_eq!(<bool as Value>::missing(), Some(false));
        assert_eq!(
            Fingerprint::parse("00000000000000FF"),
            Some(Fingerprint(0xff))
        );
        assert_eq!(Fingerprint(0xff).format(), "00000000000000ff");
        assert_eq!(Fingerprint::parse("ff"), None);
        assert_eq!(Fingerprint::parse("+0000000000000ff"), None);
        assert_eq!(String::parse("a\tb"), None);
        assert_eq!(String::parse("é"), Some("é".into()));
    }

    #[test]
    fn quotes_are_bounded_on_char_boundaries() {
        let s = "é".repeat(100);
        let q = quote(&s);
        assert_eq!(q.chars().count(), 65);
        assert!(q.ends_with('…'));
        assert_eq!(quote("short"), "short");
    }

    #[test]
    fn ranges_print_as_rust() {
        assert_eq!(range(Some(0), Some(4)), "0..=4");
        assert_eq!(range(Some(1), None), "1..");
        assert_eq!(range(None, Some(-1)), "..=-1");
        assert_eq!(range::<u8>(None, None), "..");
    }

    #[test]
    fn keys_hold_a_bounded_number_of_entries() {
        let mut k = Keys::new();
        for i in 0..1000 {
            k.insert(&alloc::format!("k{i}"), "v".into());
        }
        assert_eq!(k.iter().count(), Keys::MAX_ENTRIES);
        k.insert("k0", "w".into());
        assert_eq!(k.get("k0").as_deref(), Some("w"));
        assert_eq!(k.get("k999"), None);
    }

    #[test]
    fn ring_refs_write_both_forms() {
        let mut out = vec![];
        RingRefs::new(vec![5])
            .unwrap()
            .write("ring-ref", &mut |k, v| out.push((k.to_string(), v)));
        assert_eq!(out, vec![("ring-ref".to_string(), "5".to_string())]);
        out.clear();
        RingRefs::new(vec![5, 6])
            .unwrap()
            .write("ring-ref", &mut |k, v| out.push((k.to_string(), v)));
        assert_eq!(
            out,
            vec![
                ("ring-page-order".to_string(), "1".to_string()),
                ("ring-ref0".to_string(), "5".to_string()),
                ("ring-ref1".to_string(), "6".to_string()),
            ]
        );
    }
}
