//! Event channels: allocating, binding and notifying ports.
//!
//! The platform trait lives here; `xenmq-runtime` implements it.

/// An event channel port (`evtchn_port_t`).
pub type Port = u32;
