//! Enums on the wire: a raw integer, checked when read.

use core::fmt;
use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{Error, Field, Fnv};

/// The integer types an enum can be carried as.
pub trait Int: Field + Copy + Eq + fmt::Debug {
    /// The value, widened without loss (for error messages).
    fn to_i128(self) -> i128;
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl Int for $t {
            fn to_i128(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}
ints!(u8, u16, u32, u64, i8, i16, i32, i64);

/// A fieldless enum with an explicit integer `#[repr]`, implemented by
/// `#[xenmq::message]` on such an enum. Carry it in a message as [`Enum`].
pub trait WireEnum: Sized {
    /// The `#[repr]` integer.
    type Repr: Int;
    /// The enum's name, as written.
    const NAME: &'static str;
    /// The variant's discriminant.
    fn to_raw(self) -> Self::Repr;
    /// The variant whose discriminant is `raw`, if there is one.
    fn from_raw(raw: Self::Repr) -> Option<Self>;
}

/// An enum as it sits in a message: its raw integer, which the peer may
/// have set to anything. [`get`](Enum::get) checks it; there is no way to
/// obtain an `E` from a value that is not one of its variants.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(transparent)]
pub struct Enum<E: WireEnum> {
    raw: E::Repr,
    _enum: PhantomData<E>,
}

impl<E: WireEnum> Enum<E> {
    /// Wraps a variant.
    pub fn new(value: E) -> Self {
        Self::from_raw(value.to_raw())
    }

    /// Wraps a raw integer, for instance one read from a C driver.
    pub const fn from_raw(raw: E::Repr) -> Self {
        Self {
            raw,
            _enum: PhantomData,
        }
    }

    /// The raw integer, as received.
    pub const fn raw(&self) -> E::Repr {
        self.raw
    }

    /// The variant, or [`Error::UnknownVariant`] if the integer names none.
    pub fn get(&self) -> Result<E, Error> {
        E::from_raw(self.raw).ok_or(Error::UnknownVariant {
            name: E::NAME,
            value: self.raw.to_i128(),
        })
    }

    /// Stores a variant.
    pub fn set(&mut self, value: E) {
        self.raw = value.to_raw();
    }
}

impl<E: WireEnum> From<E> for Enum<E> {
    fn from(value: E) -> Self {
        Self::new(value)
    }
}

impl<E: WireEnum> Clone for Enum<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: WireEnum> Copy for Enum<E> {}

impl<E: WireEnum> PartialEq for Enum<E> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<E: WireEnum> Eq for Enum<E> {}

impl<E: WireEnum> fmt::Debug for Enum<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Enum<{}>({:?})", E::NAME, self.raw)
    }
}

impl<E: WireEnum> Field for Enum<E> {
    const TYPE_FINGERPRINT: u64 = Fnv::new()
        .str("enum")
        .str(E::NAME)
        .u64(<E::Repr as Field>::TYPE_FINGERPRINT)
        .finish();
}
