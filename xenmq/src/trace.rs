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

/// Where a ring found a peer's producer index out of bounds.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum Overflow {
    /// A `ring.h` backend's `req_prod`.
    CompatRequests,
    /// A `ring.h` frontend's `rsp_prod`.
    CompatResponses,
    /// A native backend's `req_prod`.
    NativeRequests,
    /// A native frontend's `rsp_prod`.
    NativeResponses,
}

#[cfg(feature = "tracing")]
impl Overflow {
    /// The layout, the side that found it and the rule it broke.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        const RESPONSES: &str = "rsp_prod at most the requests pushed past rsp_cons";
        match self {
            Overflow::CompatRequests => (
                "ring.h",
                "backend",
                "req_prod within the ring's free room past req_cons (RING_REQUEST_PROD_OVERFLOW)",
            ),
            Overflow::CompatResponses => ("ring.h", "frontend", RESPONSES),
            Overflow::NativeRequests => (
                "native",
                "backend",
                "req_prod at most a ring past req_cons and the responses produced",
            ),
            Overflow::NativeResponses => ("native", "frontend", RESPONSES),
        }
    }
}

/// A peer's producer index out of bounds: the ring is faulted from now on.
/// Out of line and cold, so that the ring's consumer keeps the same code
/// on its path whether the feature is on or off.
#[cfg(feature = "tracing")]
#[cold]
#[inline(never)]
pub(crate) fn peer_overflow(at: Overflow, prod: u32, cons: u32, max: u32) {
    let (layout, side, rule) = at.describe();
    ::tracing::warn!(
        layout,
        side,
        rule,
        index = if side == "backend" {
            "req_prod"
        } else {
            "rsp_prod"
        },
        prod,
        cons,
        max,
        "hostile peer: producer index out of bounds"
    );
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn peer_overflow(_at: Overflow, _prod: u32, _cons: u32, _max: u32) {}
