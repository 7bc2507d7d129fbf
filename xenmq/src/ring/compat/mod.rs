//! The ring layout of `xen/io/ring.h`, byte for byte.
//!
//! A ring is one shared region of 1, 2, 4, 8 or 16 pages (`ring-page-order`
//! 0 to 4) laid out exactly as `DEFINE_RING_TYPES` lays it out in C:
//!
//! ```text
//! offset 0   req_prod  req_event  rsp_prod  rsp_event   (u32 each)
//! offset 16  pvt[4], pad[44]                             (zeroed at init)
//! offset 64  entry[0] entry[1] ... entry[size - 1]
//! ```
//!
//! Each entry is the union of a request and a response (its size is the
//! larger of the two, rounded up to the larger alignment), and `size` is the
//! number of entries that fit, rounded down to a power of two. A C driver
//! using the genuine macros and a Rust driver using this module can be the
//! two ends of one ring; the tests check this against `ring.h` itself.
//!
//! The frontend owns a [`Front`]: it produces requests and consumes
//! responses. The backend owns a [`Back`]: it consumes requests and
//! produces responses. Each keeps its private indices (`req_prod_pvt`,
//! `rsp_cons`, and so on) outside the shared region, as in C.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod back;
mod front;
#[cfg(test)]
mod tests;

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

pub use back::{Back, Requests};
pub use front::{Front, Responses};

use super::{Entry, Error, Idx, MAX_PAGE_ORDER};
use crate::grant::PAGE_SIZE;
use crate::shm::{self, Region};
use crate::sync::Ordering;

/// Bytes before the first entry: four indices and padding.
pub const HEADER_SIZE: usize = 64;

/// Offsets of the shared header's fields.
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// `pvt` and `__pad`: zeroed by [`init_shared`].
const PAD: usize = 16;

/// The shape of a ring of `Req`/`Rsp` entries in a region of some length
/// (`__CONST_RING_SIZE` and the offsets of `DEFINE_RING_TYPES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size of one entry (the union of request and response).
    pub entry_size: usize,
    /// Alignment of one entry.
    pub entry_align: usize,
    /// Offset of the first entry.
    pub entries_offset: usize,
    /// Number of entries, a power of two.
    pub size: u32,
}

impl Layout {
    /// The layout for `Req`/`Rsp` in a region of `len` bytes, which must be
    /// 1, 2, 4, 8 or 16 pages.
    pub fn new<Req, Rsp>(len: usize) -> Result<Layout, Error> {
        if !(0..=MAX_PAGE_ORDER).any(|order| PAGE_SIZE.checked_shl(order) == Some(len)) {
            return Err(Error::RegionSize { len });
        }
        Self::for_len::<Req, Rsp>(len)
    }

    /// As [`Layout::new`], for any region length.
    fn for_len<Req, Rsp>(len: usize) -> Result<Layout, Error> {
        let align = Shared::<Req, Rsp>::ALIGN;
        let entry_size = Shared::<Req, Rsp>::STRIDE;
        let bad = Error::Layout {
            size: size_of::<Req>().max(size_of::<Rsp>()),
            align,
            len,
        };
        if entry_size == 0 || align > HEADER_SIZE {
            return Err(bad);
        }
        // `ring[]` follows the 64-byte header; with align <= 64 it starts at 64.
        let entries_offset = HEADER_SIZE;
        let fit = len
            .checked_sub(entries_offset)
            .and_then(|space| space.checked_div(entry_size))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(bad)?;
        let size = round_down_pow2(fit);
        if size == 0 {
            return Err(bad);
        }
        Ok(Layout {
            entry_size,
            entry_align: align,
            entries_offset,
            size,
        })
    }
}

/// `__RD32`: `x` rounded down to a power of two (0 stays 0).
pub const fn round_down_pow2(x: u32) -> u32 {
    match x.checked_ilog2() {
        Some(log) => 1u32.wrapping_shl(log),
        None => 0,
    }
}

/// `SHARED_RING_INIT`: both producer indices 0, both event indices 1,
/// padding zeroed. Entries are left as they are.
///
/// Call it before the peer is told where the ring is (grant reference
/// published through Xenstore), which is what orders these stores before
/// any access of the peer's: they are Relaxed.
pub fn init_shared(region: &Region) -> Result<(), Error> {
    region.store_u32(REQ_PROD, 0, Ordering::Relaxed)?;
    region.store_u32(RSP_PROD, 0, Ordering::Relaxed)?;
    region.store_u32(REQ_EVENT, 1, Ordering::Relaxed)?;
    region.store_u32(RSP_EVENT, 1, Ordering::Relaxed)?;
    region.fill(PAD, HEADER_SIZE.wrapping_sub(PAD), 0)?;
    Ok(())
}

/// The shared region with its layout: header fields and entry slots.
struct Shared<Req, Rsp> {
    region: Region,
    size: u32,
    _entries: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp> Clone for Shared<Req, Rsp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Rsp> Copy for Shared<Req, Rsp> {}

impl<Req, Rsp> Shared<Req, Rsp> {
    /// The entry (union) alignment, a compile-time constant.
    const ALIGN: usize = if align_of::<Req>() > align_of::<Rsp>() {
        align_of::<Req>()
    } else {
        align_of::<Rsp>()
    };

    /// The entry (union) size: the larger size rounded up to the larger
    /// alignment (0 if that overflows; `Layout` then refuses the types).
    const STRIDE: usize = {
        let raw = if size_of::<Req>() > size_of::<Rsp>() {
            size_of::<Req>()
        } else {
            size_of::<Rsp>()
        };
        match raw.checked_next_multiple_of(Self::ALIGN) {
            Some(n) => n,
            None => 0,
        }
    };

    fn new(region: Region) -> Result<Self, Error> {
        let layout = Layout::new::<Req, Rsp>(region.len())?;
        Ok(Shared {
            region,
            size: layout.size,
            _entries: PhantomData,
        })
    }

    fn size(&self) -> u32 {
        self.size
    }

    /// The offset of the slot of index `idx`. Always in bounds: the masked
    /// index is below `size`, and `Layout` checked that `size` entries fit
    /// after the header (the region access checks again).
    #[inline]
    fn slot(&self, idx: Idx) -> usize {
        let masked = (idx & self.size.wrapping_sub(1)) as usize;
        masked.wrapping_mul(Self::STRIDE).wrapping_add(HEADER_SIZE)
    }

    #[inline]
    fn load(&self, field: usize, order: Ordering) -> Result<u32, Error> {
        Ok(self.region.load_u32(field, order)?)
    }

    #[inline]
    fn store(&self, field: usize, value: u32, order: Ordering) -> Result<(), Error> {
        Ok(self.region.store_u32(field, value, order)?)
    }

    /// Copies the entry at `idx` out of the page, once.
    #[inline]
    fn read<T: Entry>(&self, idx: Idx) -> Result<T, Error> {
        Ok(self.region.read::<T>(self.slot(idx))?)
    }

    /// Starts fetching the cache lines of the entries in `[from, to)`, so
    /// that their misses overlap instead of stalling the copies one after
    /// the other. A hint only: it reads nothing, forms no reference and
    /// changes no state. The caller bounds `to - from` by the ring size
    /// (a checked producer index), so this does at most `size` entries'
    /// work; each line is hinted once even when entries share one.
    #[inline]
    fn prefetch(&self, from: Idx, to: Idx) {
        const LINE: usize = 64;
        let mut idx = from;
        // The line hinted last: an impossible line number at first.
        let mut last = usize::MAX;
        while idx != to {
            let start = self.slot(idx);
            let end = start.wrapping_add(Self::STRIDE);
            let mut line = start / LINE;
            while line.wrapping_mul(LINE) < end {
                if line != last {
                    self.region.prefetch_read(line.wrapping_mul(LINE));
                    last = line;
                }
                line = line.wrapping_add(1);
            }
            idx = idx.wrapping_add(1);
        }
    }

    #[inline]
    fn write<T: Entry>(&self, idx: Idx, value: &T) -> Result<(), Error> {
        Ok(self.region.write(self.slot(idx), value)?)
    }

    /// The push of `RING_PUSH_*_AND_CHECK_NOTIFY`: publish `new` at `prod`,
    /// then decide from `event` whether the consumer asked to be woken for
    /// an index in `(old, new]`.
    #[inline]
    fn push(&self, prod: usize, event: usize, old: Idx, new: Idx) -> Result<bool, Error> {
        // Release: the entries written into their slots before this store are
        // visible to a consumer that reads `new`; pairs with the consumer's
        // Acquire load of this index (in C, its xen_rmb() after reading it).
        self.store(prod, new, Ordering::Release)?;
        // Full fence: the store above is visible before the load below; pairs
        // with the fence the consumer puts between re-arming `event` and
        // re-reading `prod` (RING_FINAL_CHECK_FOR_*), so either we see its new
        // event index or it sees our new producer index.
        shm::full_fence();
        // Relaxed: the event index carries no data; the fence above orders it.
        let ev = self.load(event, Ordering::Relaxed)?;
        Ok(new.wrapping_sub(ev) < new.wrapping_sub(old))
    }

    /// The re-arm of `RING_FINAL_CHECK_FOR_*`: ask to be woken when the
    /// peer's producer index passes `cons`.
    #[inline]
    fn rearm(&self, event: usize, cons: Idx) -> Result<(), Error> {
        // Relaxed: the event index publishes no data; what must follow it
        // (our re-read of the producer index) is ordered by the fence below.
        self.store(event, cons.wrapping_add(1), Ordering::Relaxed)?;
        // Full fence: the re-armed event index is visible before we re-read
        // the producer index; pairs with the fence the producer puts between
        // publishing its index and reading this event index.
        shm::full_fence();
        Ok(())
    }
}
