//! The frontend's half: produce requests, consume responses.

use core::fmt;
use core::marker::PhantomData;

use super::{init_shared, Entry, Error, Idx, Shared, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::shm::Region;
use crate::sync::Ordering;

/// The frontend's end of a ring (`FRONT_RING_*`): it produces `Req`s and
/// consumes `Rsp`s.
///
/// Private state: `req_prod_pvt` (the next slot to fill), the index last
/// published (for the notify decision) and `rsp_cons` (the next response to
/// take). A peer fault is kept, and every later call reports it.
pub struct Front<Req, Rsp> {
    shared: Shared<Req, Rsp>,
    req_prod_pvt: Idx,
    req_pushed: Idx,
    rsp_cons: Idx,
    /// The last `rsp_prod` checked (never behind `rsp_cons`): entries below
    /// it are already prefetched.
    rsp_seen: Idx,
    fault: Option<Error>,
    _entries: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp> fmt::Debug for Front<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Front")
            .field("size", &self.shared.size())
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_pushed", &self.req_pushed)
            .field("rsp_cons", &self.rsp_cons)
            .field("fault", &self.fault)
            .finish()
    }
}

impl<Req: Entry, Rsp: Entry> Front<Req, Rsp> {
    /// `XEN_FRONT_RING_INIT`: initialises the shared ring
    /// ([`init_shared`]) and attaches at index 0. Do it before the backend
    /// learns of the ring.
    pub fn init(region: Region) -> Result<Self, Error> {
        let ring = Self::attach_at(region, 0)?;
        init_shared(&region)?;
        Ok(ring)
    }

    /// `FRONT_RING_ATTACH`: takes over a ring whose indices are at `index`
    /// (both `req_prod_pvt` and `rsp_cons`). The shared page is untouched.
    pub fn attach_at(region: Region, index: Idx) -> Result<Self, Error> {
        Ok(Front {
            shared: Shared::new(region)?,
            req_prod_pvt: index,
            req_pushed: index,
            rsp_cons: index,
            rsp_seen: index,
            fault: None,
            _entries: PhantomData,
        })
    }
}

impl<Req: Entry, Rsp: Entry> Front<Req, Rsp> {
    /// `RING_SIZE`: the number of entries, a power of two.
    pub fn size(&self) -> u32 {
        self.shared.size()
    }

    /// The shared region.
    pub fn region(&self) -> Region {
        self.shared.region
    }

    /// `req_prod_pvt`: the index the next request goes to.
    pub fn req_prod_pvt(&self) -> Idx {
        self.req_prod_pvt
    }

    /// `rsp_cons`: the index of the next response to consume.
    pub fn rsp_cons(&self) -> Idx {
        self.rsp_cons
    }

    /// The peer fault this ring saw, if any. A faulted ring refuses all work.
    pub fn fault(&self) -> Option<Error> {
        self.fault
    }

    /// `RING_FREE_REQUESTS`: slots free for new requests. Never more than
    /// [`size`](Self::size): only validated responses free slots.
    pub fn free_requests(&self) -> u32 {
        self.shared
            .size()
            .wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// `RING_FULL`: no slot is free.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    fn healthy(&self) -> Result<(), Error> {
        match self.fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes `req` into the slot at `req_prod_pvt` and advances it. The
    /// backend sees it after the next [`push_requests`](Self::push_requests).
    #[inline]
    pub fn produce_request(&mut self, req: &Req) -> Result<(), Error> {
        self.healthy()?;
        if self.is_full() {
            return Err(Error::Full {
                size: self.shared.size(),
            });
        }
        self.shared.write(self.req_prod_pvt, req)?;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Produces as many of `reqs` as there are free slots, in order, and
    /// returns how many.
    pub fn produce_requests(&mut self, reqs: &[Req]) -> Result<usize, Error> {
        self.healthy()?;
        let mut n = 0usize;
        for req in reqs.iter().take(self.free_requests() as usize) {
            self.shared.write(self.req_prod_pvt, req)?;
            self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
            n = n.wrapping_add(1);
        }
        Ok(n)
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes every request
    /// produced so far and returns whether the backend asked to be notified
    /// (its `req_event` lies among the newly published indices).
    #[inline]
    pub fn push_requests(&mut self) -> Result<bool, Error> {
        self.healthy()?;
        let (old, new) = (self.req_pushed, self.req_prod_pvt);
        if old == new {
            return Ok(false);
        }
        let notify = self.shared.push(REQ_PROD, REQ_EVENT, old, new)?;
        self.req_pushed = new;
        Ok(notify)
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`: how many responses are waiting.
    ///
    /// Fails with [`Error::PeerOverflow`] if the backend claims more
    /// responses than requests were pushed.
    #[inline]
    pub fn unconsumed_responses(&mut self) -> Result<u32, Error> {
        self.healthy()?;
        // Acquire: pairs with the backend's Release of rsp_prod (in C, the
        // xen_wmb() before its store): the responses below `prod` are
        // visible before we read them.
        let prod = self.shared.load(RSP_PROD, Ordering::Acquire)?;
        let avail = prod.wrapping_sub(self.rsp_cons);
        let max = self.req_pushed.wrapping_sub(self.rsp_cons);
        if avail > max {
            let e = Error::PeerOverflow {
                prod,
                cons: self.rsp_cons,
                max,
            };
            self.fault = Some(e);
            crate::trace::peer_overflow(
                crate::trace::Overflow::CompatResponses,
                prod,
                self.rsp_cons,
                max,
            );
            return Err(e);
        }
        // Entries in [rsp_seen, prod) are new since the last check: start
        // fetching them now. `prod` is checked above, so at most `max`
        // (<= size) entries; `rsp_seen` is the previous checked `prod`, not
        // behind `rsp_cons` and not past this `prod` (unless the peer moved
        // it backwards, in which case nothing is new).
        let seen = self.rsp_seen.wrapping_sub(self.rsp_cons);
        if avail > seen {
            self.shared.prefetch(self.rsp_seen, prod);
        }
        self.rsp_seen = prod;
        Ok(avail)
    }

    /// Whether any response is waiting.
    pub fn has_responses(&mut self) -> Result<bool, Error> {
        Ok(self.unconsumed_responses()? > 0)
    }

    /// Every response waiting now, each copied out of the page once
    /// (`RING_COPY_RESPONSE`) as the iterator yields it. `rsp_cons` advances
    /// per response taken; responses not taken stay for later.
    pub fn responses(&mut self) -> Result<Responses<'_, Req, Rsp>, Error> {
        let avail = self.unconsumed_responses()?;
        let prod = self.rsp_cons.wrapping_add(avail);
        Ok(Responses { ring: self, prod })
    }

    /// Copies the next response out, if there is one. `rsp_prod` is read
    /// (and checked) only once every response seen at the last read has
    /// been consumed, as [`responses`](Self::responses) does per batch.
    #[inline]
    pub fn consume_response(&mut self) -> Result<Option<Rsp>, Error> {
        self.healthy()?;
        // `rsp_seen` is the last checked `rsp_prod`.
        if self.rsp_cons == self.rsp_seen && self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let rsp = self.shared.read::<Rsp>(self.rsp_cons)?;
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: whether responses are waiting; if
    /// none, first re-arms `rsp_event` so that the backend notifies on the
    /// next one, then checks again. `false` means: safe to sleep until the
    /// next notification.
    pub fn final_check_for_responses(&mut self) -> Result<bool, Error> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.shared.rearm(RSP_EVENT, self.rsp_cons)?;
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The responses waiting when [`Front::responses`] was called, copied
/// out one by one.
pub struct Responses<'a, Req, Rsp> {
    ring: &'a mut Front<Req, Rsp>,
    prod: Idx,
}

impl<Req: Entry, Rsp: Entry> Iterator for Responses<'_, Req, Rsp> {
    type Item = Rsp;

    #[inline]
    fn next(&mut self) -> Option<Rsp> {
        if self.ring.rsp_cons == self.prod {
            return None;
        }
        match self.ring.shared.read::<Rsp>(self.ring.rsp_cons) {
            Ok(rsp) => {
                self.ring.rsp_cons = self.ring.rsp_cons.wrapping_add(1);
                Some(rsp)
            }
            Err(e) => {
                // Unreachable with a valid layout; keep it, stop here.
                self.ring.fault = Some(e);
                self.prod = self.ring.rsp_cons;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.prod.wrapping_sub(self.ring.rsp_cons) as usize;
        (n, Some(n))
    }
}

impl<Req: Entry, Rsp: Entry> ExactSizeIterator for Responses<'_, Req, Rsp> {}
