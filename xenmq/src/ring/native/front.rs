//! The frontend's half of a native ring: produce requests, consume responses.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{Layout, Slots, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::ring::Error;
use crate::shm::Region;
use crate::sync::Ordering;

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
    pub fn produce_request(&mut self, req: &Req) -> Result<(), Error> {
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
        // the slots written by `produce_request`, pairing with the backend's
        // Acquire load of req_prod in `consume_request`; its full-barrier half
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
            crate::trace::peer_overflow(
                crate::trace::Overflow::NativeResponses,
                prod,
                self.rsp_cons,
                limit,
            );
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
    pub fn consume_response(&mut self) -> Result<Option<Rsp>, Error> {
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
