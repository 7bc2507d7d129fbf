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
//! access goes through [`Region`]).
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used
    )
)]

use core::marker::PhantomData;
use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::Error;
use crate::shm::Region;
use crate::sync::Ordering;

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

/// The frontend of a native ring: puts requests, takes responses.
#[derive(Debug)]
pub struct Front<Req, Rsp> {
    region: Region,
    layout: Layout,
    req_prod_pvt: u32,
    req_published: u32,
    notify_due: bool,
    rsp_cons: u32,
    rsp_seen: u32,
    fault: Option<Error>,
    _msg: PhantomData<fn(Req) -> Rsp>,
}

/// The backend of a native ring: takes requests, puts responses.
#[derive(Debug)]
pub struct Back<Req, Rsp> {
    region: Region,
    layout: Layout,
    rsp_prod_pvt: u32,
    rsp_published: u32,
    notify_due: bool,
    req_cons: u32,
    req_seen: u32,
    fault: Option<Error>,
    _msg: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp> Front<Req, Rsp>
where
    Req: IntoBytes + Immutable,
    Rsp: FromBytes,
{
    /// Lays out a fresh ring in `region` (the frontend owns the shared
    /// area's initial state, as `XEN_FRONT_RING_INIT` does) and attaches.
    pub fn init(region: Region) -> Result<Self, Error> {
        Self::init_with(region, Slots::default())
    }

    /// As [`init`](Self::init), with the slot arrangement `slots` (both
    /// ends must use the same).
    pub fn init_with(region: Region, slots: Slots) -> Result<Self, Error> {
        let layout = Layout::with::<Req, Rsp>(region.len(), slots)?;
        // Relaxed: nobody reads the ring before the frontend hands it to the
        // backend, and that hand-over (grant, Xenstore, process start) is
        // itself a synchronising event.
        region.store_u32(REQ_PROD, 0, Ordering::Relaxed)?;
        region.store_u32(RSP_PROD, 0, Ordering::Relaxed)?;
        region.store_u32(REQ_EVENT, 1, Ordering::Relaxed)?;
        region.store_u32(RSP_EVENT, 1, Ordering::Relaxed)?;
        Ok(Front {
            region,
            layout,
            req_prod_pvt: 0,
            req_published: 0,
            notify_due: false,
            rsp_cons: 0,
            rsp_seen: 0,
            fault: None,
            _msg: PhantomData,
        })
    }

    /// The number of slots.
    pub fn size(&self) -> u32 {
        self.layout.slots
    }

    /// Whether every slot holds a request in flight.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// The peer fault this ring saw, if any.
    pub fn fault(&self) -> Option<Error> {
        self.fault
    }

    /// How many more requests may be put before responses are taken.
    #[inline(always)]
    pub fn free_requests(&self) -> u32 {
        self.layout
            .slots
            .wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Writes `req` into the next free slot. The backend sees it after
    /// [`push_requests`](Self::push_requests) at the latest: every quarter
    /// ring of puts the ring publishes on its own, so that the backend can
    /// start on a long batch while the rest is being written (the
    /// notification that publishing may call for is reported by the next
    /// `push_requests`).
    #[inline(always)]
    pub fn put_request(&mut self, req: &Req) -> Result<(), Error> {
        if self.free_requests() == 0 {
            return Err(Error::Full {
                size: self.layout.slots,
            });
        }
        self.region
            .write(self.layout.req_at(self.req_prod_pvt), req)?;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        if self.req_prod_pvt.wrapping_sub(self.req_published) >= self.layout.publish_every() {
            self.notify_due |= self.publish_requests()?;
        }
        Ok(())
    }

    /// Publishes the requests put so far and says whether the backend asked
    /// to be notified of them, or of any published on their own since the
    /// last push (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    #[inline(always)]
    pub fn push_requests(&mut self) -> Result<bool, Error> {
        let notify = self.publish_requests()?;
        let due = core::mem::take(&mut self.notify_due);
        Ok(notify || due)
    }

    #[inline(always)]
    fn publish_requests(&mut self) -> Result<bool, Error> {
        if let Some(e) = self.fault {
            return Err(e);
        }
        let (old, new) = (self.req_published, self.req_prod_pvt);
        if old == new {
            return Ok(false);
        }
        // SeqCst swap (one locked instruction): its Release half publishes
        // the slots written by `put_request`, pairing with the backend's
        // Acquire load of req_prod in `take_request`; its full-barrier half
        // orders this store before the load of req_event below, pairing with
        // the SeqCst store of req_event and reload of req_prod in the
        // backend's `final_check_for_requests` (no lost wake-up).
        self.region.swap_u32(REQ_PROD, new, Ordering::SeqCst)?;
        self.req_published = new;
        // SeqCst: read after the swap above (see there).
        let event = self.region.load_u32(REQ_EVENT, Ordering::SeqCst)?;
        Ok(new.wrapping_sub(event) < new.wrapping_sub(old))
    }

    /// Re-reads rsp_prod if every response seen so far has been taken, and
    /// checks it: the backend may not answer requests never sent.
    #[inline(always)]
    fn refresh(&mut self, order: Ordering) -> Result<bool, Error> {
        if self.rsp_cons != self.rsp_seen {
            return Ok(true);
        }
        if let Some(e) = self.fault {
            return Err(e);
        }
        // Acquire (or SeqCst after re-arming): pairs with the backend's
        // SeqCst swap of rsp_prod in `push_responses`, so the response slots
        // it published are visible before we copy them.
        let prod = self.region.load_u32(RSP_PROD, order)?;
        let limit = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if prod.wrapping_sub(self.rsp_cons) > limit {
            let e = Error::PeerOverflow {
                prod,
                cons: self.rsp_cons,
                max: limit,
            };
            self.fault = Some(e);
            return Err(e);
        }
        // Start fetching every newly published response now (at most
        // `limit`, checked above), so their misses overlap.
        let mut idx = self.rsp_cons;
        while idx != prod {
            self.region.prefetch_read(self.layout.rsp_at(idx));
            idx = idx.wrapping_add(1);
        }
        self.rsp_seen = prod;
        Ok(prod != self.rsp_cons)
    }

    /// Whether a response is waiting (`RING_HAS_UNCONSUMED_RESPONSES`).
    #[inline(always)]
    pub fn has_responses(&mut self) -> Result<bool, Error> {
        self.refresh(Ordering::Acquire)
    }

    /// Copies the next response out of the ring, once.
    #[inline(always)]
    pub fn take_response(&mut self) -> Result<Option<Rsp>, Error> {
        if !self.refresh(Ordering::Acquire)? {
            return Ok(None);
        }
        let rsp = self.region.read::<Rsp>(self.layout.rsp_at(self.rsp_cons))?;
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Asks for a notification on the next response and checks once more
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`): `true` means work arrived, do not
    /// sleep.
    #[inline(always)]
    pub fn final_check_for_responses(&mut self) -> Result<bool, Error> {
        if self.refresh(Ordering::Acquire)? {
            return Ok(true);
        }
        // SeqCst store then SeqCst load: the store of rsp_event is ordered
        // before the reload of rsp_prod; pairs with the backend's SeqCst swap
        // of rsp_prod and load of rsp_event in `push_responses`.
        self.region
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1), Ordering::SeqCst)?;
        self.refresh(Ordering::SeqCst)
    }
}

impl<Req, Rsp> Back<Req, Rsp>
where
    Req: FromBytes,
    Rsp: IntoBytes + Immutable,
{
    /// Attaches to a ring the frontend initialised (`BACK_RING_INIT`).
    pub fn attach(region: Region) -> Result<Self, Error> {
        Self::attach_with(region, Slots::default())
    }

    /// As [`attach`](Self::attach), with the slot arrangement `slots`.
    pub fn attach_with(region: Region, slots: Slots) -> Result<Self, Error> {
        let layout = Layout::with::<Req, Rsp>(region.len(), slots)?;
        Ok(Back {
            region,
            layout,
            rsp_prod_pvt: 0,
            rsp_published: 0,
            notify_due: false,
            req_cons: 0,
            req_seen: 0,
            fault: None,
            _msg: PhantomData,
        })
    }

    /// The number of slots.
    pub fn size(&self) -> u32 {
        self.layout.slots
    }

    /// Requests taken and not yet answered.
    #[inline(always)]
    pub fn pending_responses(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// The peer fault this ring saw, if any.
    pub fn fault(&self) -> Option<Error> {
        self.fault
    }

    #[inline(always)]
    fn refresh(&mut self, order: Ordering) -> Result<bool, Error> {
        if self.req_cons != self.req_seen {
            return Ok(true);
        }
        if let Some(e) = self.fault {
            return Err(e);
        }
        // Acquire (SeqCst after re-arming): pairs with the frontend's SeqCst
        // swap of req_prod in `push_requests`.
        let prod = self.region.load_u32(REQ_PROD, order)?;
        // RING_REQUEST_PROD_OVERFLOW: more requests than slots in flight;
        // and a frontend may not move req_prod backwards past what we
        // consumed.
        let limit = self.layout.slots;
        if prod.wrapping_sub(self.rsp_prod_pvt) > limit || prod.wrapping_sub(self.req_cons) > limit
        {
            let e = Error::PeerOverflow {
                prod,
                cons: self.req_cons,
                max: limit,
            };
            self.fault = Some(e);
            return Err(e);
        }
        // Start fetching every newly published entry now (at most `slots`,
        // checked above), so their cache misses overlap instead of stalling
        // the copies one by one.
        let mut idx = self.req_cons;
        while idx != prod {
            self.region.prefetch_read(self.layout.req_at(idx));
            idx = idx.wrapping_add(1);
        }
        self.req_seen = prod;
        Ok(prod != self.req_cons)
    }

    /// Whether a request is waiting (`RING_HAS_UNCONSUMED_REQUESTS`).
    #[inline(always)]
    pub fn has_requests(&mut self) -> Result<bool, Error> {
        self.refresh(Ordering::Acquire)
    }

    /// Copies the next request out of the ring, once
    /// (`RING_COPY_REQUEST`). `None` when no request is waiting, or when as
    /// many requests are unanswered as the ring holds.
    #[inline(always)]
    pub fn take_request(&mut self) -> Result<Option<Req>, Error> {
        // RING_REQUEST_CONS_OVERFLOW: never hold more unanswered requests
        // than there are response slots.
        if self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= self.layout.slots {
            return Ok(None);
        }
        if !self.refresh(Ordering::Acquire)? {
            return Ok(None);
        }
        let req = self.region.read::<Req>(self.layout.req_at(self.req_cons))?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes the response to the oldest unanswered request. The frontend
    /// sees it after [`push_responses`](Self::push_responses) at the latest
    /// (every quarter ring of puts is published on its own, as requests are).
    #[inline(always)]
    pub fn put_response(&mut self, rsp: &Rsp) -> Result<(), Error> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(Error::NoPendingRequest);
        }
        self.region
            .write(self.layout.rsp_at(self.rsp_prod_pvt), rsp)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        if self.rsp_prod_pvt.wrapping_sub(self.rsp_published) >= self.layout.publish_every() {
            self.notify_due |= self.publish_responses()?;
        }
        Ok(())
    }

    /// Publishes the responses put so far and says whether the frontend
    /// asked to be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    #[inline(always)]
    pub fn push_responses(&mut self) -> Result<bool, Error> {
        let notify = self.publish_responses()?;
        let due = core::mem::take(&mut self.notify_due);
        Ok(notify || due)
    }

    #[inline(always)]
    fn publish_responses(&mut self) -> Result<bool, Error> {
        if let Some(e) = self.fault {
            return Err(e);
        }
        let (old, new) = (self.rsp_published, self.rsp_prod_pvt);
        if old == new {
            return Ok(false);
        }
        // SeqCst swap: Release half publishes the response slots, pairing
        // with the frontend's Acquire load of rsp_prod; full-barrier half
        // orders it before the load of rsp_event below, pairing with the
        // frontend's `final_check_for_responses`.
        self.region.swap_u32(RSP_PROD, new, Ordering::SeqCst)?;
        self.rsp_published = new;
        // SeqCst: read after the swap above (see there).
        let event = self.region.load_u32(RSP_EVENT, Ordering::SeqCst)?;
        Ok(new.wrapping_sub(event) < new.wrapping_sub(old))
    }

    /// Asks for a notification on the next request and checks once more
    /// (`RING_FINAL_CHECK_FOR_REQUESTS`): `true` means work arrived.
    #[inline(always)]
    pub fn final_check_for_requests(&mut self) -> Result<bool, Error> {
        if self.refresh(Ordering::Acquire)? {
            return Ok(true);
        }
        // SeqCst store then SeqCst load: pairs with the frontend's SeqCst
        // swap of req_prod and load of req_event in `push_requests`.
        self.region
            .store_u32(REQ_EVENT, self.req_cons.wrapping_add(1), Ordering::SeqCst)?;
        self.refresh(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::KnownLayout;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
    #[repr(C)]
    struct Req {
        id: u64,
        body: [u8; 56],
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
    #[repr(C)]
    struct Rsp {
        id: u64,
        status: u64,
    }

    #[test]
    fn layout_of_one_page() {
        let l = Layout::with::<Req, Rsp>(4096, Slots::Split).unwrap();
        assert_eq!(l.slots(), 32);
        assert_eq!(l.rsp_off, 256 + 32 * 64);
        let l = Layout::new::<Req, Rsp>(4096).unwrap();
        assert_eq!(l.slots(), 32);
        assert_eq!((l.req_off, l.rsp_off, l.rsp_size), (256, 256, 64));
        assert!(Layout::new::<Req, Rsp>(256).is_err());
        assert_eq!(Layout::new::<Req, Rsp>(16384).unwrap().slots(), 128);
    }

    #[test]
    fn round_trip_and_notifications() {
        let r = crate::shm::leak_pages(1);
        let mut f = Front::<Req, Rsp>::init(r).unwrap();
        let mut b = Back::<Req, Rsp>::attach(r).unwrap();
        assert!(!b.final_check_for_requests().unwrap());
        for id in 0..32 {
            f.put_request(&Req {
                id,
                body: [id as u8; 56],
            })
            .unwrap();
        }
        assert_eq!(
            f.put_request(&Req {
                id: 99,
                body: [0; 56]
            }),
            Err(Error::Full { size: 32 })
        );
        assert!(f.push_requests().unwrap(), "back armed req_event: notify");
        assert!(!f.push_requests().unwrap(), "nothing new: no notify");
        let mut n = 0;
        while let Some(req) = b.take_request().unwrap() {
            assert_eq!(req.body, [req.id as u8; 56]);
            b.put_response(&Rsp {
                id: req.id,
                status: 0,
            })
            .unwrap();
            n += 1;
        }
        assert_eq!(n, 32);
        assert_eq!(
            b.put_response(&Rsp { id: 0, status: 0 }),
            Err(Error::NoPendingRequest)
        );
        // The front never armed rsp_event past 1, so one notify is due.
        assert!(b.push_responses().unwrap());
        for id in 0..32 {
            assert_eq!(f.take_response().unwrap().unwrap().id, id);
        }
        assert!(!f.final_check_for_responses().unwrap());
    }

    #[test]
    fn hostile_indices_are_errors() {
        let r = crate::shm::leak_pages(1);
        let mut f = Front::<Req, Rsp>::init(r).unwrap();
        let mut b = Back::<Req, Rsp>::attach(r).unwrap();
        // A frontend claiming 33 requests in a 32-slot ring.
        r.store_u32(REQ_PROD, 33, Ordering::Relaxed).unwrap();
        let e = b.take_request().unwrap_err();
        assert!(matches!(e, Error::PeerOverflow { .. }), "{e:?}");
        // The fault sticks, even once the index looks honest again.
        r.store_u32(REQ_PROD, 0, Ordering::Relaxed).unwrap();
        assert_eq!(b.take_request(), Err(e));
        assert_eq!(b.final_check_for_requests(), Err(e));
        assert_eq!(b.fault(), Some(e));
        // A backend answering a request never sent.
        r.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
        let e = f.take_response().unwrap_err();
        assert!(matches!(e, Error::PeerOverflow { .. }), "{e:?}");
        r.store_u32(RSP_PROD, 0, Ordering::Relaxed).unwrap();
        assert_eq!(f.has_responses(), Err(e));
        f.put_request(&Req {
            id: 1,
            body: [0; 56],
        })
        .unwrap();
        assert_eq!(
            f.push_requests(),
            Err(e),
            "a faulted ring publishes nothing"
        );
    }

    /// A seeded stream through both ends, in random batch sizes, with a
    /// hostile peer scribbling on the shared indices and slots now and then:
    /// messages arrive in order while nobody scribbles, and scribbling yields
    /// typed errors or garbage copies, never a panic.
    #[test]
    fn random_stream_with_a_scribbling_peer() {
        for slots in [Slots::Shared, Slots::Split] {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            let mut rand = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let r = crate::shm::leak_pages(4);
            let mut f = Front::<Req, Rsp>::init_with(r, slots).unwrap();
            let mut b = Back::<Req, Rsp>::attach_with(r, slots).unwrap();
            let (mut next, mut expect) = (0u64, 0u64);
            for _ in 0..5000 {
                for _ in 0..rand() % 8 {
                    if f.put_request(&Req {
                        id: next,
                        body: [next as u8; 56],
                    })
                    .is_ok()
                    {
                        next += 1;
                    }
                }
                f.push_requests().unwrap();
                for _ in 0..rand() % 8 {
                    match b.take_request() {
                        Ok(Some(req)) => {
                            assert_eq!(req.body, [req.id as u8; 56]);
                            b.put_response(&Rsp {
                                id: req.id,
                                status: 0,
                            })
                            .unwrap();
                        }
                        Ok(None) => break,
                        Err(e) => panic!("honest stream failed: {e}"),
                    }
                }
                b.push_responses().unwrap();
                while let Some(rsp) = f.take_response().unwrap() {
                    assert_eq!(rsp.id, expect);
                    expect += 1;
                }
            }
            assert!(expect > 1000, "the stream moved: {expect}");
            // Now the peer turns hostile: random words anywhere in the area.
            for _ in 0..20000 {
                let off = (rand() as usize % (16384 / 4)) * 4;
                r.store_u32(off, rand() as u32, Ordering::Relaxed).unwrap();
                let _ = f.put_request(&Req {
                    id: 0,
                    body: [0; 56],
                });
                let _ = f.push_requests();
                if let Ok(Some(req)) = b.take_request() {
                    let _ = b.put_response(&Rsp {
                        id: req.id,
                        status: 1,
                    });
                }
                let _ = b.push_responses();
                let _ = f.take_response();
                let _ = f.final_check_for_responses();
                let _ = b.final_check_for_requests();
            }
        }
    }

    #[test]
    fn a_quarter_ring_is_published_on_its_own() {
        let r = crate::shm::leak_pages(1);
        let mut f = Front::<Req, Rsp>::init(r).unwrap();
        let mut b = Back::<Req, Rsp>::attach(r).unwrap();
        assert!(!b.final_check_for_requests().unwrap(), "armed, nothing yet");
        for id in 0..7 {
            f.put_request(&Req { id, body: [0; 56] }).unwrap();
        }
        assert!(!b.has_requests().unwrap(), "7 puts: not yet published");
        f.put_request(&Req {
            id: 7,
            body: [0; 56],
        })
        .unwrap();
        assert!(
            b.has_requests().unwrap(),
            "8 puts (a quarter of 32): published"
        );
        f.put_request(&Req {
            id: 8,
            body: [0; 56],
        })
        .unwrap();
        // The auto-publish found req_event armed: the push reports it.
        assert!(f.push_requests().unwrap());
        assert!(!f.push_requests().unwrap());
        let mut ids = alloc::vec::Vec::new();
        while let Some(req) = b.take_request().unwrap() {
            ids.push(req.id);
        }
        assert_eq!(ids, (0..9).collect::<alloc::vec::Vec<_>>());
    }
}
