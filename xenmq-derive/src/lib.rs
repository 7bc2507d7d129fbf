//! Procedural macros for xenmq. Entry points only: each macro lives in its
//! own module (`message`, `config`, `protocol`), split into `parse`,
//! `valid` and `expand`, and all three collect their errors in one
//! `ctxt::Ctxt`.
#![forbid(unsafe_code)]

mod config;
mod ctxt;
mod message;
mod protocol;
#[cfg(test)]
mod snapshot;

use proc_macro::TokenStream;

/// Makes a struct a fixed wire layout, or a fieldless `#[repr(int)]` enum
/// a wire enum.
///
/// On a struct with named fields it emits the struct as `#[repr(C)]` with
/// zerocopy's `FromBytes`, `IntoBytes`, `Immutable` and `KnownLayout`
/// derives (the macro writes no `unsafe`: zerocopy proves soundness),
/// constant assertions of the layout, and impls of `xenmq::wire::Field`
/// and `xenmq::wire::Message` (`NAME`, `SIZE`, `ALIGN`, `FINGERPRINT`).
///
/// Layout assertions, written *after* `#[xenmq::message]`:
///
/// - `#[xenmq(size = N, align = M)]` on the struct (either key alone is
///   fine): `size_of`/`align_of` must be exactly `N`/`M`;
/// - `#[xenmq(offset = K)]` on a field: `offset_of!` must be exactly `K`.
///
/// Implicit padding is an error: write the gap as a `_pad: [u8; N]` field.
/// Each field's type must implement `xenmq::wire::Field`.
///
/// On a fieldless enum with `#[repr(u8)]` (or `u16`, `u32`, `u64`, `i8`,
/// `i16`, `i32`, `i64`) it implements `xenmq::wire::WireEnum`; carry the
/// enum in a message as `xenmq::wire::Enum<E>`, whose `get` checks the
/// integer the peer sent.
///
/// See `xenmq::wire` for the rules and an example.
#[proc_macro_attribute]
pub fn message(attr: TokenStream, item: TokenStream) -> TokenStream {
    message::expand(attr.into(), item.into()).into()
}

/// Maps a struct's fields to the keys of a Xenstore directory: implements
/// `xenmq::xenbus::config::Config` (`keys`, `read`, `write`).
///
/// Keys are the field names in kebab-case; per field,
/// `#[xenstore(rename = "key", default = expr, min = lit, max = lit)]`.
/// A key the framework writes itself (`xenmq::xenbus::key::RESERVED`:
/// `state`, `ring-ref`, `event-channel`, ...) is a compile error, unless
/// the field says `#[xenstore(reserved)]`: a struct that reads a
/// handshake directory on purpose, never a protocol's config.
/// `Option<T>` fields are optional, `bool` is `"0"`/`"1"` with a missing key
/// read as false (Xen's `feature-*` convention), `RingRefs` reads `ring-ref`
/// or `ring-page-order` + `ring-ref0..N-1`.
#[proc_macro_derive(XenstoreConfig, attributes(xenstore))]
pub fn xenstore_config(item: TokenStream) -> TokenStream {
    config::expand(item.into()).into()
}

/// Declares a split-device protocol on a unit struct and implements
/// `xenmq::driver::Protocol` for it:
///
/// ```
/// #[xenmq::message]
/// pub struct Ping { pub id: u64, pub seq: u64 }
/// #[xenmq::message]
/// pub struct Pong { pub id: u64, pub seq: u64 }
///
/// #[xenmq::protocol(name = "echo", version = 1, request = Ping, response = Pong)]
/// pub struct Echo;
///
/// use xenmq::driver::Protocol;
/// assert_eq!(Echo::NAME, "echo");
/// ```
///
/// Arguments: `name` (the device type, required), `version` (default 1),
/// `request` and `response` (`#[xenmq::message]` structs, required),
/// `ring_pages` (default 1) and `max_ring_pages` (default `ring_pages`),
/// powers of two up to 16; `pool_pages`, the persistent-grant buffer pool
/// (default 0, at most 256); `layout`, the ring layout: `compat` (the
/// default, byte-compatible with `xen/io/ring.h`, for protocols shared with
/// C drivers) or `native` (`xenmq::ring::native`, faster, for protocols
/// with xenmq at both ends; both ends publish it and refuse a peer using
/// the other); `id`, the `u64` field both messages carry the
/// request id in (default `id`); `frontend_config` and `backend_config`,
/// `#[derive(XenstoreConfig)]` structs of the keys each end publishes
/// (default none). The layout fingerprint combines the two messages'.
#[proc_macro_attribute]
pub fn protocol(attr: TokenStream, item: TokenStream) -> TokenStream {
    protocol::expand(attr.into(), item.into()).into()
}
