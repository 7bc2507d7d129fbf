//! Grant tables: sharing pages with a peer domain and mapping a peer's pages.
//!
//! The platform trait lives here; `xenmq-runtime` implements it for the
//! simulator, Linux userspace and the kernel.

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;

/// The size of a Xen page, the unit of sharing.
pub const PAGE_SIZE: usize = 4096;
