//! A native ring layout for new protocols: the semantics of `xen/io/ring.h`
//! (single producer and consumer per direction, private indices, event
//! indices for notification suppression, one response per request) with a
//! layout that does not make the two sides fight over cache lines.
//!
//! Layout of the shared area (all offsets in bytes, lines are 64 bytes):
//!
//! | offset | field | written by |
//! |---|---|---|
//! | 0 | `req_prod` (u32) | front |
//! | 64 | `req_event` (u32) | back |
//! | 128 | `rsp_prod` (u32) | back |
//! | 192 | `rsp_event` (u32) | front |
//! | 256 | `n` slots | see [`Slots`] |
//!
//! `n` is the largest power of two that fits. Compared with ring.h, each
//! index has its own cache line, so publishing one never invalidates the line
//! the peer is polling for another, and the producer's index is published
//! with one locked instruction (a swap) that is also the full barrier the
//! event check needs. Slots are [`Slots::Shared`] by default (a response
//! replaces its request, as in ring.h: the slot's line travels with the
//! message, which measured faster than [`Slots::Split`] arrays written by one
//! side each, where every reuse of a slot costs its writer an ownership
//! miss). When a consumer sees a new producer index it prefetches every
//! entry just published, so the transfers of their cache lines overlap
//! instead of stalling the copies one after the other. A producer publishes
//! on its own every quarter ring of entries, so that in a long batch the
//! consumer works on the first quarter while the rest is written; the
//! notification decision of those publishes is carried to the next explicit
//! push, so the caller's notify logic is ring.h's. (All three measured
//! faster in `xenmq bench`.)
//!
//! Safety rules are ring.h's hardened ones: entries are copied out of the
//! shared area exactly once, into private memory, before anything looks at
//! them; the peer's producer index is checked before use (a backend that
//! answers requests never sent, or a frontend with more requests in flight
//! than slots, is reported as [`Error::PeerOverflow`], and the ring stays
//! faulted: every later read of the peer's index and every publish returns
//! the same error); no reference into the shared area is ever formed (all
//! access goes through [`Region`](crate::shm::Region)).
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used
    )
)]

use core::mem::size_of;

use super::Error;

const LINE: usize = 64;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = LINE;
const RSP_PROD: usize = 2 * LINE;
const RSP_EVENT: usize = 3 * LINE;
const HEADER: usize = 4 * LINE;

/// Where things are in a native ring of a given size and message types.
/// Both ends compute it from the same inputs, so they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    slots: u32,
    req_off: usize,
    req_size: usize,
    rsp_off: usize,
    rsp_size: usize,
}

fn line_up(x: usize) -> Option<usize> {
    x.checked_add(LINE - 1).map(|v| v & !(LINE - 1))
}

/// How requests and responses share the slot area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slots {
    /// One array of slots as large as the larger message; a response goes
    /// into the slot of the request it answers, as in ring.h. Each slot's
    /// line then moves between the CPUs with the message in it, which is
    /// what the CPUs' coherence protocols handle best.
    #[default]
    Shared,
    /// A request array written only by the frontend and a response array
    /// written only by the backend.
    Split,
}

impl Layout {
    /// The layout of a ring of `Req`/`Rsp` in `bytes` bytes of shared
    /// memory, with [`Slots::Shared`].
    pub fn new<Req, Rsp>(bytes: usize) -> Result<Layout, Error> {
        Layout::with::<Req, Rsp>(bytes, Slots::Shared)
    }

    /// The layout of a ring of `Req`/`Rsp` in `bytes` bytes, slots as `slots`.
    pub fn with<Req, Rsp>(bytes: usize, slots: Slots) -> Result<Layout, Error> {
        let (req_size, rsp_size) = (size_of::<Req>(), size_of::<Rsp>());
        let bad = Error::Layout {
            size: req_size.max(rsp_size),
            align: core::mem::align_of::<Req>().max(core::mem::align_of::<Rsp>()),
            len: bytes,
        };
        if req_size == 0 || rsp_size == 0 {
            return Err(bad);
        }
        let (req_size, rsp_size) = match slots {
            Slots::Shared => (req_size.max(rsp_size), req_size.max(rsp_size)),
            Slots::Split => (req_size, rsp_size),
        };
        let fits = |n: usize| -> Option<usize> {
            let rsp_off = match slots {
                Slots::Shared => HEADER,
                Slots::Split => line_up(HEADER.checked_add(n.checked_mul(req_size)?)?)?,
            };
            let end = rsp_off.checked_add(n.checked_mul(rsp_size)?)?;
            (end <= bytes).then_some(rsp_off)
        };
        let mut n: usize = 1;
        let mut rsp_off = fits(1).ok_or(bad)?;
        while n < (1 << 30) {
            let Some(bigger) = n.checked_mul(2) else {
                break;
            };
            match fits(bigger) {
                Some(off) => {
                    n = bigger;
                    rsp_off = off;
                }
                None => break,
            }
        }
        Ok(Layout {
            // n <= 2^30, so it fits in a u32.
            slots: u32::try_from(n).unwrap_or(1 << 30),
            req_off: HEADER,
            req_size,
            rsp_off,
            rsp_size,
        })
    }

    /// How many entries a producer puts before it publishes them on its own.
    #[inline(always)]
    fn publish_every(&self) -> u32 {
        (self.slots / 4).max(1)
    }

    /// The number of slots (a power of two): the most requests in flight.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    #[inline(always)]
    fn req_at(&self, idx: u32) -> usize {
        // `idx & (slots - 1)` < slots and the layout fits the area, so these
        // products and sums are bounded by the area's length; wrapping ops
        // only keep the lint quiet, and Region rechecks every access.
        let i = (idx & self.slots.wrapping_sub(1)) as usize;
        self.req_off.wrapping_add(i.wrapping_mul(self.req_size))
    }

    #[inline(always)]
    fn rsp_at(&self, idx: u32) -> usize {
        let i = (idx & self.slots.wrapping_sub(1)) as usize;
        self.rsp_off.wrapping_add(i.wrapping_mul(self.rsp_size))
    }
}

mod back;
mod front;
#[cfg(test)]
mod tests;

pub use back::Back;
pub use front::Front;
