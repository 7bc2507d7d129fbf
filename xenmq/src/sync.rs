//! The one door through which the core reaches atomics, so that a model
//! checker can stand in for them in tests.
//!
//! Built with `--cfg loom`, [`AtomicU32`], [`AtomicU64`] and [`fence`] are
//! loom's, and `shm::Region::model` makes regions whose every access goes
//! through them: the ring code runs unchanged under loom's exploration of
//! thread interleavings and weak memory. [`raw`] is for memory the core does not own (mapped pages),
//! which only the machine's atomics can reach.

pub use core::sync::atomic::{compiler_fence, Ordering};
#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

/// The machine's atomics, over pages shared with a peer.
pub mod raw {
    pub use core::sync::atomic::{fence, AtomicU32, AtomicU64};
}
