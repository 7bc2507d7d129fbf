//! Xenstore, platform-free: the [`Store`] trait every platform implements,
//! the wire protocol both ends speak ([`wire`]), node paths ([`path`]) and
//! permissions ([`perms`]).
//!
//! The names of the pieces say what they are, here and in `xenmq-runtime`:
//!
//! | piece | where |
//! |---|---|
//! | the platform trait | [`Store`] (this module) |
//! | the wire protocol (`xs_wire.h`) | [`wire`] |
//! | the client over a socket or `/dev/xen/xenbus` | `xenmq_runtime::xenstore::client` |
//! | the server the simulator runs | `xenmq_runtime::xenstore::server` |
//!
//! Operations take a [`Tx`]: [`Tx::NONE`] outside a transaction, or the id
//! [`Store::transaction_start`] returned. [`transaction`] runs a closure in
//! a transaction and retries it while the commit answers `EAGAIN`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod path;
pub mod perms;
mod store;
pub mod wire;

pub use store::*;
