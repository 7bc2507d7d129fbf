//! The backend's half: consume requests, produce responses.

use core::fmt;
use core::marker::PhantomData;

use super::{Entry, Error, Idx, Shared, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::shm::Region;
use crate::sync::Ordering;

/// The backend's end of a ring (`BACK_RING_*`): it consumes `Req`s and
/// produces `Rsp`s.
///
/// Private state: `req_cons` (the next request to take), `rsp_prod_pvt`
/// (the next slot to answer into) and the index last published. A response
/// goes into the slot of the request it answers, so there are never more
/// responses than consumed requests. A peer fault is kept, and every later
/// call reports it.
pub struct Back<Req, Rsp> {
    shared: Shared<Req, Rsp>,
    rsp_prod_pvt: Idx,
    rsp_pushed: Idx,
    req_cons: Idx,
    /// The last `req_prod` checked (never behind `req_cons`): entries below
    /// it are already prefetched.
    req_seen: Idx,
    fault: Option<Error>,
    _entries: PhantomData<fn(Rsp) -> Req>,
}

impl<Req, Rsp> fmt::Debug for Back<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Back")
            .field("size", &self.shared.size())
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_pushed", &self.rsp_pushed)
            .field("req_cons", &self.req_cons)
            .field("fault", &self.fault)
            .finish()
    }
}

impl<Req: Entry, Rsp: Entry> Back<Req, Rsp> {
    /// `BACK_RING_INIT`: attaches at index 0. Only the frontend initialises
    /// the shared ring; the page is untouched.
    pub fn attach(region: Region) -> Result<Self, Error> {
        Self::attach_at(region, 0)
    }

    /// `BACK_RING_ATTACH`: takes over a ring whose indices are at `index`
    /// (both `rsp_prod_pvt` and `req_cons`). The shared page is untouched.
    pub fn attach_at(region: Region, index: Idx) -> Result<Self, Error> {
        Ok(Back {
            shared: Shared::new(region)?,
            rsp_prod_pvt: index,
            rsp_pushed: index,
            req_cons: index,
            req_seen: index,
            fault: None,
            _entries: PhantomData,
        })
    }

    /// `RING_SIZE`: the number of entries, a power of two.
    pub fn size(&self) -> u32 {
        self.shared.size()
    }

    /// The shared region.
    pub fn region(&self) -> Region {
        self.shared.region
    }

    /// `rsp_prod_pvt`: the index the next response goes to.
    pub fn rsp_prod_pvt(&self) -> Idx {
        self.rsp_prod_pvt
    }

    /// `req_cons`: the index of the next request to consume.
    pub fn req_cons(&self) -> Idx {
        self.req_cons
    }

    /// The peer fault this ring saw, if any. A faulted ring refuses all work.
    pub fn fault(&self) -> Option<Error> {
        self.fault
    }

    /// Requests consumed and not yet answered.
    pub fn pending_responses(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    fn healthy(&self) -> Result<(), Error> {
        match self.fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`: how many requests are waiting.
    ///
    /// Fails with [`Error::PeerOverflow`] if the frontend's `req_prod` is
    /// further ahead than the free room of the ring
    /// (`RING_REQUEST_PROD_OVERFLOW`), or behind `req_cons`.
    #[inline]
    pub fn unconsumed_requests(&mut self) -> Result<u32, Error> {
        self.healthy()?;
        // Acquire: pairs with the frontend's Release of req_prod (in C, the
        // xen_wmb() before its store): the requests below `prod` are visible
        // before we read them.
        let prod = self.shared.load(REQ_PROD, Ordering::Acquire)?;
        let avail = prod.wrapping_sub(self.req_cons);
        // Slots not holding an unanswered request (the private invariant
        // rsp_prod_pvt <= req_cons <= rsp_prod_pvt + size keeps this <= size).
        let room = self.shared.size().wrapping_sub(self.pending_responses());
        if avail > room {
            let e = Error::PeerOverflow {
                prod,
                cons: self.req_cons,
                max: room,
            };
            self.fault = Some(e);
            crate::trace::peer_overflow(
                crate::trace::Overflow::CompatRequests,
                prod,
                self.req_cons,
                room,
            );
            return Err(e);
        }
        // Entries in [req_seen, prod) are new since the last check: start
        // fetching them now. `prod` is checked above, so at most `room`
        // (<= size) entries; `req_seen` is the previous checked `prod`, not
        // behind `req_cons` and not past this `prod` (unless the peer moved
        // it backwards, in which case nothing is new).
        let seen = self.req_seen.wrapping_sub(self.req_cons);
        if avail > seen {
            self.shared.prefetch(self.req_seen, prod);
        }
        self.req_seen = prod;
        Ok(avail)
    }

    /// Whether any request is waiting.
    pub fn has_requests(&mut self) -> Result<bool, Error> {
        Ok(self.unconsumed_requests()? > 0)
    }

    /// Every request waiting now, each copied out of the page once
    /// (`RING_COPY_REQUEST`) as the iterator yields it. `req_cons` advances
    /// per request taken; requests not taken stay for later.
    pub fn requests(&mut self) -> Result<Requests<'_, Req, Rsp>, Error> {
        let avail = self.unconsumed_requests()?;
        let prod = self.req_cons.wrapping_add(avail);
        Ok(Requests { ring: self, prod })
    }

    /// Copies the next request out, if there is one. `req_prod` is read
    /// (and checked) only once every request seen at the last read has
    /// been consumed, as [`requests`](Self::requests) does per batch.
    #[inline]
    pub fn consume_request(&mut self) -> Result<Option<Req>, Error> {
        self.healthy()?;
        // `req_seen` is the last checked `req_prod`: requests up to it are
        // valid to copy without reading the peer's index again.
        if self.req_cons == self.req_seen && self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let req = self.shared.read::<Req>(self.req_cons)?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes `rsp` into the slot at `rsp_prod_pvt` (that of the oldest
    /// unanswered request) and advances it. The frontend sees it after the
    /// next [`push_responses`](Self::push_responses).
    #[inline]
    pub fn produce_response(&mut self, rsp: &Rsp) -> Result<(), Error> {
        self.healthy()?;
        if self.pending_responses() == 0 {
            return Err(Error::NoPendingRequest);
        }
        self.shared.write(self.rsp_prod_pvt, rsp)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Produces as many of `rsps` as there are consumed requests awaiting an
    /// answer, in order, and returns how many.
    pub fn produce_responses(&mut self, rsps: &[Rsp]) -> Result<usize, Error> {
        self.healthy()?;
        let mut n = 0usize;
        for rsp in rsps.iter().take(self.pending_responses() as usize) {
            self.shared.write(self.rsp_prod_pvt, rsp)?;
            self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
            n = n.wrapping_add(1);
        }
        Ok(n)
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes every response
    /// produced so far and returns whether the frontend asked to be notified
    /// (its `rsp_event` lies among the newly published indices).
    #[inline]
    pub fn push_responses(&mut self) -> Result<bool, Error> {
        self.healthy()?;
        let (old, new) = (self.rsp_pushed, self.rsp_prod_pvt);
        if old == new {
            return Ok(false);
        }
        let notify = self.shared.push(RSP_PROD, RSP_EVENT, old, new)?;
        self.rsp_pushed = new;
        Ok(notify)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: whether requests are waiting; if
    /// none, first re-arms `req_event` so that the frontend notifies on the
    /// next one, then checks again. `false` means: safe to sleep until the
    /// next notification.
    pub fn final_check_for_requests(&mut self) -> Result<bool, Error> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.shared.rearm(REQ_EVENT, self.req_cons)?;
        Ok(self.unconsumed_requests()? > 0)
    }
}

/// The requests waiting when [`Back::requests`] was called, copied out
/// one by one.
pub struct Requests<'a, Req, Rsp> {
    ring: &'a mut Back<Req, Rsp>,
    prod: Idx,
}

impl<Req: Entry, Rsp: Entry> Iterator for Requests<'_, Req, Rsp> {
    type Item = Req;

    #[inline]
    fn next(&mut self) -> Option<Req> {
        if self.ring.req_cons == self.prod {
            return None;
        }
        match self.ring.shared.read::<Req>(self.ring.req_cons) {
            Ok(req) => {
                self.ring.req_cons = self.ring.req_cons.wrapping_add(1);
                Some(req)
            }
            Err(e) => {
                // Unreachable with a valid layout; keep it, stop here.
                self.ring.fault = Some(e);
                self.prod = self.ring.req_cons;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.prod.wrapping_sub(self.ring.req_cons) as usize;
        (n, Some(n))
    }
}

impl<Req: Entry, Rsp: Entry> ExactSizeIterator for Requests<'_, Req, Rsp> {}
