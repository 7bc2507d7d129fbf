//! Events for the `tracing` crate, behind the `tracing` feature.
//!
//! The core emits events only where something changes or goes wrong: a
//! lifecycle transition, a refusal and its reason, a hostile peer's ring
//! fault. Nothing is emitted per message, so the data path costs the same
//! with the feature on or off. Without the feature the macro expands to
//! nothing and its arguments are not evaluated.
//!
//! Targets are the module paths (`xenmq::xenbus::machine`,
//! `xenmq::ring::compat::back`, ...), so `RUST_LOG=xenmq=debug` selects
//! all of them.

/// `event!(level, fields..., "message")`: `tracing`'s macro of that level
/// with the feature, nothing without it.
#[cfg(feature = "tracing")]
macro_rules! event {
    (error, $($t:tt)*) => { ::tracing::error!($($t)*) };
    (warn, $($t:tt)*) => { ::tracing::warn!($($t)*) };
    (info, $($t:tt)*) => { ::tracing::info!($($t)*) };
    (debug, $($t:tt)*) => { ::tracing::debug!($($t)*) };
    (trace, $($t:tt)*) => { ::tracing::trace!($($t)*) };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($t:tt)*) => {{}};
}

pub(crate) use event;
