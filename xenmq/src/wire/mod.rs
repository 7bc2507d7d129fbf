//! Wire types: fixed layouts checked against the C headers they port.
//!
//! A driver declares each ring entry as a plain struct under
//! [`#[xenmq::message]`](crate::message). The attribute makes it
//! `#[repr(C)]`, derives zerocopy's `FromBytes`, `IntoBytes`, `Immutable`
//! and `KnownLayout` (so zerocopy, not this crate, proves that any byte
//! pattern is a valid value and that the struct has no padding), checks the
//! layout at compile time, and implements [`Message`].
//!
//! ```
//! use xenmq::wire::{Enum, Message};
//!
//! #[xenmq::message]
//! #[repr(u8)]
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! pub enum Op {
//!     Read = 0,
//!     Write = 1,
//! }
//!
//! #[xenmq::message]
//! #[xenmq(size = 16, align = 8)]
//! pub struct Request {
//!     pub op: Enum<Op>,
//!     pub _pad: [u8; 7],
//!     #[xenmq(offset = 8)]
//!     pub id: u64,
//! }
//!
//! let req = Request { op: Enum::new(Op::Write), _pad: [0; 7], id: 7 };
//! let copy = Request::from_wire(req.wire_bytes()).unwrap();
//! assert_eq!(copy.op.get(), Ok(Op::Write));
//! assert_eq!(Request::SIZE, 16);
//! ```
//!
//! # What a message may hold
//!
//! Every field's type implements [`Field`]: `u8`..`u64`, `i8`..`i64`,
//! arrays of fields, other messages, [`Enum`]s of `#[xenmq::message]`
//! enums and the explicit-endian integers in [`le`] and [`be`]. There is
//! no implicit padding: where C leaves a gap, the port writes a `_pad`
//! field, so every byte on the ring is one the driver chose to send.
//!
//! Rejected at compile time, with an error on the field at fault:
//! references, raw pointers, slices and `str` (they point at memory the
//! peer cannot see), `usize`/`isize` (their size differs between a 32-bit
//! and a 64-bit peer), `bool`/`char` (most byte patterns are invalid, and a
//! peer chooses the bytes), floats (no Xen protocol carries them; send
//! `f64::to_bits` as a `u64` if one must), owned heap types, tuples,
//! generics, tuple structs, unions and data-carrying enums.

// Peer data is parsed here: no unwrap, no indexing, no unchecked arithmetic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[doc(hidden)]
pub mod check;
mod enums;
mod fingerprint;
#[doc(hidden)]
pub mod layout;
mod prefix;

pub use enums::{Enum, Int, WireEnum};
pub use fingerprint::{combine as combine_fingerprints, Fnv};
pub use prefix::{read_prefix, write_prefix};

use zerocopy::byteorder::{BigEndian, LittleEndian};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Little-endian integers with alignment 1: the layout is the same on
/// every host, at the cost of unaligned loads.
pub mod le {
    pub use zerocopy::byteorder::little_endian::{I16, I32, I64, U16, U32, U64};
}

/// Big-endian integers with alignment 1 (network byte order).
pub mod be {
    pub use zerocopy::byteorder::big_endian::{I16, I32, I64, U16, U32, U64};
}

/// The errors of reading a message or a field the peer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent an integer that names no variant of a wire enum.
    #[error("value {value} is not a variant of enum `{name}`")]
    UnknownVariant {
        /// The enum's name.
        name: &'static str,
        /// The raw value the peer sent.
        value: i128,
    },
    /// A buffer is not exactly one message long.
    #[error("message `{name}` is {expected} bytes, got {actual}")]
    Length {
        /// The message's name.
        name: &'static str,
        /// The message's size.
        expected: usize,
        /// The buffer's length.
        actual: usize,
    },
}

/// A type that can be a field of a `#[xenmq::message]`: fixed size, the
/// same layout on every peer, no padding, and every byte pattern valid.
///
/// The zerocopy supertraits carry the soundness proof; this trait adds the
/// type's part of the layout fingerprint. Implemented for the integers,
/// arrays, [`le`]/[`be`] integers, [`Enum`] and every message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a `#[xenmq::message]`",
    label = "not a fixed-size wire type",
    note = "fields are u8..u64, i8..i64, arrays of them, `xenmq::wire::le`/`be` integers, \
            `xenmq::wire::Enum<E>` and other `#[xenmq::message]` structs"
)]
pub trait Field: FromBytes + IntoBytes + Immutable + KnownLayout + Sized {
    /// A hash of the type's identity and layout, folded into the
    /// fingerprint of every message that holds it.
    const TYPE_FINGERPRINT: u64;
}

/// A fixed wire layout, implemented by `#[xenmq::message]` on a struct.
///
/// # Fingerprint
///
/// [`FINGERPRINT`](Message::FINGERPRINT) is FNV-1a (64-bit, computed in a
/// `const fn`, see [`Fnv`]) over the struct's name, then for each field in
/// order its name, its type's [`Field::TYPE_FINGERPRINT`], its offset and
/// its size, then the struct's size and alignment. Nested messages fold in
/// their own fingerprint; integers fold in their type name (`"u32"`,
/// `"le::U32"`), arrays their element and length, [`Enum`]s the enum's name
/// and integer type (not its variants: a new variant is caught when read,
/// by [`Enum::get`]). Integers are hashed as 8 little-endian bytes, so the
/// value is the same on every host and every build.
///
/// Negotiation combines the fingerprints of a protocol's messages with
/// [`combine_fingerprints`] (in a fixed order: request, then response) and
/// publishes the result; two peers whose fingerprints differ do not agree
/// on the bytes.
pub trait Message: Field {
    /// The struct's name, as written.
    const NAME: &'static str;
    /// `size_of::<Self>()`.
    const SIZE: usize;
    /// `align_of::<Self>()`.
    const ALIGN: usize;
    /// The layout fingerprint (see the trait's documentation).
    const FINGERPRINT: u64;

    /// Copies a message out of `bytes`, which must be exactly
    /// [`SIZE`](Message::SIZE) long. Any byte pattern is a valid message;
    /// enum fields are checked when read ([`Enum::get`]).
    fn from_wire(bytes: &[u8]) -> Result<Self, Error> {
        Self::read_from_bytes(bytes).map_err(|_| Error::Length {
            name: Self::NAME,
            expected: Self::SIZE,
            actual: bytes.len(),
        })
    }

    /// The message's bytes, as they go on the wire.
    fn wire_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

macro_rules! int_fields {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Field for $t {
            const TYPE_FINGERPRINT: u64 = Fnv::new().str($name).finish();
        }
    )*};
}

int_fields! {
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64",
    zerocopy::byteorder::U16<LittleEndian> => "le::U16",
    zerocopy::byteorder::U32<LittleEndian> => "le::U32",
    zerocopy::byteorder::U64<LittleEndian> => "le::U64",
    zerocopy::byteorder::I16<LittleEndian> => "le::I16",
    zerocopy::byteorder::I32<LittleEndian> => "le::I32",
    zerocopy::byteorder::I64<LittleEndian> => "le::I64",
    zerocopy::byteorder::U16<BigEndian> => "be::U16",
    zerocopy::byteorder::U32<BigEndian> => "be::U32",
    zerocopy::byteorder::U64<BigEndian> => "be::U64",
    zerocopy::byteorder::I16<BigEndian> => "be::I16",
    zerocopy::byteorder::I32<BigEndian> => "be::I32",
    zerocopy::byteorder::I64<BigEndian> => "be::I64",
}

impl<T: Field, const N: usize> Field for [T; N] {
    const TYPE_FINGERPRINT: u64 = Fnv::new()
        .str("array")
        .u64(T::TYPE_FINGERPRINT)
        .usize(N)
        .finish();
}

#[cfg(test)]
mod tests;
