//! Grant tables: sharing pages with a peer domain and mapping a peer's pages.
//!
//! The platform trait [`Grants`] lives here; `xenmq-runtime` implements it for
//! the simulator (memfds handed over a Unix socket), Linux userspace
//! (`/dev/xen/gntalloc` and `/dev/xen/gntdev`) and the kernel
//! (`gnttab_grant_foreign_access` and `xenbus_map_ring_valloc`).
//!
//! # Ownership of shared memory
//!
//! [`Shared`] and [`Mapped`] values own their pages. They hand out a
//! [`Region`], a raw window that does not keep the pages alive: **the region is
//! valid only while the value it came from is alive.** Whatever keeps a region
//! (a ring, a buffer pool) must keep its owner next to it and drop the region
//! first; the simplest way is to own a `P: Pages` and call [`Pages::region`]
//! when needed.
//!
//! # Ending access (XSA-396)
//!
//! A granting domain cannot take its pages back while the peer still maps
//! them: [`Shared::end_access`] then fails with [`Error::StillMapped`] and hands
//! the value back. Dropping a [`Shared`] value tries to end access, and if the
//! peer still maps the pages the platform keeps them (never reused, never
//! freed) and retries later; [`Grants::deferred`] counts such pages.

use crate::shm::Region;

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;

/// The size of a Xen page, the unit of sharing.
pub const PAGE_SIZE: usize = 4096;

/// The first domain id Xen reserves for itself (`DOMID_FIRST_RESERVED`);
/// a peer's domain id must be below it.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// What a grant lets the peer do with the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// The peer may map the pages read-only (`GTF_readonly`); a write faults.
    ReadOnly,
    /// The peer may map the pages read-write.
    ReadWrite,
}

impl Access {
    /// Whether this is [`Access::ReadOnly`].
    pub fn is_read_only(self) -> bool {
        self == Access::ReadOnly
    }
}

/// Why a grant operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The reference does not name a live grant from that domain to us
    /// (`GNTST_bad_gntref`): never granted, already ended, or granted to
    /// another domain.
    #[error("grant reference {gref} of domain {domid} is not granted to this domain")]
    BadRef {
        /// The granting domain named in the request.
        domid: DomId,
        /// The reference.
        gref: GrantRef,
    },
    /// A read-write mapping was asked of a read-only grant
    /// (`GNTST_permission_denied`).
    #[error("grant reference {gref} of domain {domid} is read-only")]
    ReadOnly {
        /// The granting domain.
        domid: DomId,
        /// The reference.
        gref: GrantRef,
    },
    /// The peer still maps the pages, so access cannot end yet (XSA-396).
    #[error("the pages are still mapped by the peer")]
    StillMapped,
    /// The number of pages is zero or above the platform's limit.
    #[error("bad page count {count} (limit {limit})")]
    BadCount {
        /// The count asked for.
        count: usize,
        /// The largest count the platform accepts in one call.
        limit: usize,
    },
    /// The grant table (or the mapping table) is full.
    #[error("no free grant entries")]
    NoSpace,
    /// The domain id is not a valid peer (reserved, or no such domain).
    #[error("no domain {0}")]
    NoDomain(DomId),
    /// The platform (hypervisor, driver, simulator host) is not reachable.
    #[error("the grant platform is unavailable")]
    Unavailable,
    /// The platform failed with an OS error number.
    #[error("platform error (errno {0})")]
    Os(i32),
}

/// Memory shared with a peer: granted by us or mapped from the peer.
pub trait Pages {
    /// The pages, as a raw window. Valid only while `self` is alive
    /// (see the [module documentation](self)).
    fn region(&self) -> Region;

    /// The number of pages.
    fn pages(&self) -> usize {
        self.region().len() / PAGE_SIZE
    }
}

/// Pages this domain granted to a peer. Dropping the value ends access, or,
/// if the peer still maps the pages, defers their release (XSA-396).
pub trait Shared: Pages + Sized {
    /// The domain the pages are granted to.
    fn peer(&self) -> DomId;

    /// The grant references, one per page, in page order.
    fn refs(&self) -> &[GrantRef];

    /// The access granted.
    fn access(&self) -> Access;

    /// Revokes the grants now. Fails with [`Error::StillMapped`] while the
    /// peer maps any of the pages, handing the value back so the caller can
    /// retry (or drop it, deferring the release to the platform).
    fn end_access(self) -> Result<(), (Self, Error)>;
}

/// A peer's pages mapped into this domain; dropping the value unmaps them.
pub trait Mapped: Pages {
    /// The granting domain.
    fn peer(&self) -> DomId;

    /// The references that were mapped, in page order.
    fn refs(&self) -> &[GrantRef];

    /// The access of the mapping (a read-only mapping faults on write).
    fn access(&self) -> Access;
}

/// A platform's grant table, as seen by one domain.
pub trait Grants {
    /// Pages we granted.
    type Shared: Shared;
    /// Pages we mapped from a peer.
    type Mapped: Mapped;

    /// This domain's id.
    fn domid(&self) -> DomId;

    /// Allocates `pages` zeroed pages and grants them to `peer`.
    fn share(&self, peer: DomId, pages: usize, access: Access) -> Result<Self::Shared, Error>;

    /// Maps the pages `peer` granted us under `refs`, contiguously in `refs`
    /// order. `access` must not exceed what each grant allows.
    fn map(&self, peer: DomId, refs: &[GrantRef], access: Access) -> Result<Self::Mapped, Error>;

    /// How many pages are waiting for a peer to unmap them before they can
    /// be released (dropped [`Shared`] values whose access could not end).
    fn deferred(&self) -> usize;

    /// Retries ending access to deferred pages; returns how many pages were
    /// released.
    fn reclaim(&self) -> usize;
}
