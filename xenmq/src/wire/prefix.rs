//! Typed copies in and out of the start of a byte array: how a message
//! carries a C union (its bytes, aligned as C aligns it) and reads or
//! writes one member at a time.

use super::Field;

/// Copies a `T` out of the first `size_of::<T>()` bytes of `bytes`.
///
/// That `T` fits in `N` bytes is checked at compile time. Any byte pattern
/// is a valid [`Field`] (an [`Enum`](super::Enum) is checked when read), so
/// bytes a peer wrote cannot make this fail.
///
/// ```
/// let bytes = [1u8, 0, 0, 0, 9, 9];
/// let n: u32 = xenmq::wire::read_prefix(&bytes);
/// assert_eq!(n, u32::from_ne_bytes([1, 0, 0, 0]));
/// ```
pub fn read_prefix<T: Field, const N: usize>(bytes: &[u8; N]) -> T {
    const {
        assert!(
            core::mem::size_of::<T>() <= N,
            "read_prefix: the type is larger than the array"
        )
    };
    match T::read_from_prefix(bytes) {
        Ok((value, _)) => value,
        // Unreachable: the length is checked above and `T: FromBytes` has
        // no alignment requirement when copied out.
        Err(_) => T::new_zeroed(),
    }
}

/// Writes `value`'s bytes over the first `size_of::<T>()` bytes of `bytes`,
/// leaving the rest as they were. That `T` fits in `N` bytes is checked at
/// compile time.
///
/// ```
/// let mut bytes = [0u8; 6];
/// xenmq::wire::write_prefix(&mut bytes, &7u16);
/// assert_eq!(bytes[..2], 7u16.to_ne_bytes());
/// ```
pub fn write_prefix<T: Field, const N: usize>(bytes: &mut [u8; N], value: &T) {
    const {
        assert!(
            core::mem::size_of::<T>() <= N,
            "write_prefix: the type is larger than the array"
        )
    };
    if let Some(dst) = bytes.get_mut(..core::mem::size_of::<T>()) {
        dst.copy_from_slice(value.as_bytes());
    }
}
