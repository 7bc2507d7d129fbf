//! Trait checks the `#[xenmq::message]` and `#[xenmq::protocol]`
//! expansions name, so that a mistake is reported once, in xenmq's words,
//! at the user's code. Not a public API.

use super::Field;

/// What a message field's type is, for the check `#[xenmq::message]`
/// emits for each field: every [`Field`] is [`Accepted`]; a
/// `#[xenmq::message]` enum answers with the type it must be carried as,
/// `Enum<Self>`, which is not a [`Verdict`], so the error names it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a `#[xenmq::message]`",
    label = "not a fixed-size wire type",
    note = "fields are u8..u64, i8..i64, arrays of them, `xenmq::wire::le`/`be` integers, \
            `xenmq::wire::Enum<E>` and other `#[xenmq::message]` structs"
)]
#[doc(hidden)]
pub trait FieldType {
    /// [`Accepted`], or what to write instead.
    type Verdict;
    /// The type the expansion gives the field: `Self` for a [`Field`], the
    /// verdict for an enum (so that zerocopy's derives add no errors to
    /// the check's).
    type Type;
}

impl<T: Field> FieldType for T {
    type Verdict = Accepted;
    type Type = T;
}

/// The verdict on a type that can be a field.
#[doc(hidden)]
pub struct Accepted;

/// Implemented by [`Accepted`] only: the error on any other verdict is the
/// advice to write the field's type as that verdict.
#[diagnostic::on_unimplemented(
    message = "a `#[xenmq::message]` enum is carried in a message as `{Self}`, whose `get` \
               checks the integer the peer sent: write the field's type as `{Self}`",
    label = "write `{Self}` here"
)]
#[doc(hidden)]
pub trait Verdict {}

impl Verdict for Accepted {}

/// One check of a message's layout, as an impl whose where-clause fails
/// to compile when the check does: the compiler evaluates it while it
/// checks items, before zerocopy's derives report the same fault in their
/// words. `N` tells a message's checks apart.
#[doc(hidden)]
pub trait Checked<const N: usize> {}

/// A constant the layout check computed: 0 when it passed (a failing
/// check does not compute one, its evaluation panics with the message).
#[doc(hidden)]
pub struct Check<const N: usize>;

/// Implemented for the passing [`Check`] only.
#[doc(hidden)]
pub trait Passed {}

impl Passed for Check<0> {}

/// A message's `id` field, the request id a protocol carries when its
/// `#[xenmq::protocol]` names no other with `id = FIELD`. Implemented by
/// `#[xenmq::message]` for every struct with a field named `id`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no field `id` to carry the request id",
    label = "no field `id`",
    note = "name the `u64` field both messages carry the request id in with \
            `#[xenmq::protocol(id = FIELD, ...)]`, or add a field `id: u64`"
)]
#[doc(hidden)]
pub trait IdField {
    /// The field's type (the protocol needs `u64`).
    type Id;
    /// The field.
    fn id(&self) -> &Self::Id;
    /// The field, to set it.
    fn id_mut(&mut self) -> &mut Self::Id;
}

/// The type of a protocol's request id field, which must be `u64`.
#[diagnostic::on_unimplemented(
    message = "a protocol's request id field is a `u64`, not `{Self}`",
    label = "its id field is not a `u64`",
    note = "make the field `id: u64`, or name a `u64` field with \
            `#[xenmq::protocol(id = FIELD, ...)]`"
)]
#[doc(hidden)]
pub trait IdType {
    /// The id.
    fn get(&self) -> u64;
    /// Stores the id.
    fn set(&mut self, id: u64);
}

impl IdType for u64 {
    #[inline]
    fn get(&self) -> u64 {
        *self
    }
    #[inline]
    fn set(&mut self, id: u64) {
        *self = id;
    }
}
