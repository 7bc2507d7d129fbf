//! The backend's half of a native ring: consume requests, produce responses.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{Layout, Slots, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::ring::Error;
use crate::shm::Region;
use crate::sync::Ordering;

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
            crate::trace::peer_overflow(
                crate::trace::Overflow::NativeRequests,
                prod,
                self.req_cons,
                limit,
            );
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
    pub fn consume_request(&mut self) -> Result<Option<Req>, Error> {
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
    pub fn produce_response(&mut self, rsp: &Rsp) -> Result<(), Error> {
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
