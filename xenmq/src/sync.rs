//! The one door through which the core reaches atomics, so that a model
//! checker can stand in for them in tests.

pub use core::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
