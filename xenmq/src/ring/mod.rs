//! Rings in shared pages: a device's requests and responses, in two layouts.
//!
//! - [`compat`] is byte-compatible with `xen/io/ring.h` (`DEFINE_RING_TYPES`):
//!   the layout for protocols whose other end may be an existing C driver;
//! - [`native`] keeps ring.h's semantics with a layout in which the two
//!   sides never write the same cache line, for protocols that are xenmq's
//!   at both ends.
//!
//! Both have the same shape and verbs. The frontend's `Front` is made with
//! `init` (it lays out the shared area) and the backend's `Back` with
//! `attach`; the frontend calls `produce_request`, `push_requests`,
//! `consume_response` and `final_check_for_responses`, the backend
//! `consume_request`, `produce_response`, `push_responses` and
//! `final_check_for_requests`. [`FrontSide`] and [`BackSide`] are those verbs
//! as traits, so that the driver layer is generic over the layout, which
//! [`Kind`] names in Xenstore. Each end keeps its private indices outside
//! the shared region, as in C.
//!
//! # A driver's loop
//!
//! ```
//! use xenmq::ring::compat::{Back, Front};
//! use zerocopy::{FromBytes, Immutable, IntoBytes};
//!
//! #[derive(FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Req { id: u64, op: u32, len: u32 }
//! #[derive(FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Rsp { id: u64, status: i32, _pad: u32 }
//!
//! # #[repr(C, align(4096))] struct Page([u8; 4096]);
//! # let page = Box::leak(Box::new(Page([0; 4096])));
//! # let ptr = core::ptr::NonNull::from(page).cast::<u8>();
//! // SAFETY: a leaked, page-aligned, 4096-byte allocation no one else references.
//! let region = unsafe { xenmq::shm::Region::new(ptr, 4096) };
//!
//! // Frontend: initialise the shared ring, queue a batch, push once.
//! let mut front = Front::<Req, Rsp>::init(region)?;
//! for id in 0..3 {
//!     front.produce_request(&Req { id, op: 1, len: 0 })?;
//! }
//! if front.push_requests()? {
//!     // notify the backend's event channel
//! }
//!
//! // Backend: drain every request (each copied out of the page once),
//! // answer, push once, and re-arm before sleeping.
//! let mut back = Back::<Req, Rsp>::attach(region)?;
//! loop {
//!     let mut answered = 0;
//!     while let Some(req) = back.consume_request()? {
//!         back.produce_response(&Rsp { id: req.id, status: 0, _pad: 0 })?;
//!         answered += 1;
//!     }
//!     if answered > 0 && back.push_responses()? {
//!         // notify the frontend
//!     }
//!     if !back.final_check_for_requests()? {
//!         break; // sleep until the frontend notifies
//!     }
//! }
//!
//! // Frontend again: take the responses.
//! let ids: Vec<u64> = front.responses()?.map(|rsp| rsp.id).collect();
//! assert_eq!(ids, [0, 1, 2]);
//! assert!(!front.final_check_for_responses()?);
//! # Ok::<(), xenmq::ring::Error>(())
//! ```
//!
//! Batching is the point of the API: produce many entries, then push once
//! (one index store, one full fence, one notify decision); on the other
//! side, [`compat::Front::responses`] and [`compat::Back::requests`] read the peer's
//! producer index once and iterate over everything it covers.
//!
//! # The peer is hostile
//!
//! The peer can write any value into any shared byte at any time. This
//! module guarantees, whatever it writes:
//!
//! - no panic, no out-of-bounds access, no unbounded loop: every entry
//!   offset is the private index masked by `size - 1`, and one call does at
//!   most `size` entries' work;
//! - no reference into the page: each entry is copied out exactly once with
//!   a volatile read (`RING_COPY_REQUEST`) and handed over by value; entry
//!   types are [`zerocopy::FromBytes`],
//!   so any bytes are a valid entry, and validating the copy is the caller's
//!   job;
//! - a producer index further ahead than it can be is reported as
//!   [`Error::PeerOverflow`]: for requests, more than the free room of the
//!   ring (`RING_REQUEST_PROD_OVERFLOW`), or behind what was already
//!   consumed; for responses, more responses than requests pushed (stricter
//!   than `RING_RESPONSE_PROD_OVERFLOW`). The ring then stays faulted: every
//!   later call that reads the peer's index returns the same error, as do
//!   produce and push, until the driver tears the ring down;
//! - the event indices are the peer's to set: a bad value can only cost a
//!   spurious or a missing notification, which is the peer's loss.
//!
//! Our own producer index is never read back from the page: the notify
//! decision uses the value we last published (ring.h reads it from the
//! page, which gives the same answer with an honest peer).
//!
//! # Memory ordering
//!
//! Producer indices are published with Release and read with Acquire.
//! Between publishing a producer index and reading the peer's event index,
//! and between re-arming our event index and re-reading the peer's producer
//! index, there is one full fence ([`shm::full_fence`], ring.h's
//! `xen_mb()`), so that either the producer sees the re-armed event or the
//! consumer sees the new index.
//!
//! When a consumer sees a new producer index (checked first), it prefetches
//! the entries just published, so that the cache misses of a batch overlap
//! instead of stalling each copy in turn.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod compat;
mod kind;
pub mod native;

use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use kind::{BackSide, Compat, FrontSide, Kind, Native, Rings};

use crate::shm;

/// A ring index (`RING_IDX`): free-running, wrapping, masked on use.
pub type Idx = u32;

/// The largest `ring-page-order`: a ring spans at most 16 pages.
pub const MAX_PAGE_ORDER: u32 = 4;

/// What a request or response must be to travel on a ring: plain bytes
/// both ways. Any bytes are a valid value (`FromBytes`), so a copy of
/// whatever the peer wrote is safe to hold; and there is no padding
/// (`IntoBytes`), so writing one never leaks uninitialised memory.
pub trait Entry: FromBytes + IntoBytes + Immutable {}

impl<T: FromBytes + IntoBytes + Immutable> Entry for T {}

/// Everything that can go wrong on a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer published a producer index more entries ahead of our
    /// consumer index than it can possibly be (or behind it). The ring
    /// stays faulted.
    #[error(
        "peer's producer index {prod} is {} entries past consumer index {cons}, but at most {max} can be",
        prod.wrapping_sub(*cons)
    )]
    PeerOverflow {
        /// The producer index the peer published.
        prod: Idx,
        /// Our consumer index.
        cons: Idx,
        /// How many entries it could be ahead.
        max: u32,
    },
    /// The region is not 1, 2, 4, 8 or 16 pages long.
    #[error("a ring spans 1, 2, 4, 8 or 16 pages, not a region of {len} bytes")]
    RegionSize {
        /// The region's length in bytes.
        len: usize,
    },
    /// The entry type cannot make a ring in this region: zero-sized,
    /// aligned to more than 64 bytes, or larger than the region.
    #[error("entries of {size} bytes aligned to {align} cannot make a ring in {len} bytes")]
    Layout {
        /// The entry (union) size.
        size: usize,
        /// The entry (union) alignment.
        align: usize,
        /// The region's length.
        len: usize,
    },
    /// No free slot: every entry is a request in flight.
    #[error("the ring is full: all {size} entries are in flight")]
    Full {
        /// The ring size.
        size: u32,
    },
    /// A response was produced with no consumed request to answer.
    #[error("no consumed request is waiting for a response")]
    NoPendingRequest,
    /// A shared-memory access did not fit the region (a local bug).
    #[error("shared memory access failed")]
    Memory(#[from] shm::Error),
}
