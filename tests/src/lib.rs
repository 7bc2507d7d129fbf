//! Shared helpers for the integration and conformance tests.
#![forbid(unsafe_code)]

pub mod cc;
pub mod ours;
pub mod ref_xenstored;
pub mod wire;
