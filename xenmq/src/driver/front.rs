//! The frontend's data path: submit requests with framework-owned ids,
//! match the responses by id, fail what is in flight on disconnect.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::table::Table;
use super::{Error, FrontRingOf, Lease, Pool, Protocol, Spin};
use crate::evtchn::Channel;
use crate::ring::FrontSide;

/// Names a submitted request; its [`Completion`] carries the same tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub(crate) u64);

impl Tag {
    /// The id the request carried on the ring.
    pub fn id(self) -> u64 {
        self.0
    }
}

/// The outcome of one submitted request: exactly one per submit.
pub struct Completion<P: Protocol> {
    /// The request's tag.
    pub tag: Tag,
    /// The response, or why there is none ([`Error::Disconnected`] when the
    /// device went away with the request in flight).
    pub result: Result<P::Response, Error>,
    /// The buffer slot submitted with the request, back to the caller.
    pub lease: Option<Lease>,
}

impl<P: Protocol> core::fmt::Debug for Completion<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Completion")
            .field("tag", &self.tag)
            .field("ok", &self.result.is_ok())
            .field("lease", &self.lease)
            .finish()
    }
}

struct Link<P: Protocol, C> {
    ring: FrontRingOf<P>,
    chan: C,
    pool: Option<Pool>,
}

/// The frontend end of one device's data path. It lives as long as the
/// device; [`attach`](Client::attach) gives it each connection's ring.
///
/// No allocation, lock or system call per request: the in-flight table,
/// the completion queue and the free buffer slots are sized at attach; a
/// notification is sent only when the backend asked for one.
pub struct Client<P: Protocol, C> {
    link: Option<Link<P, C>>,
    /// Requests in flight, with the buffer slot each holds ([`NO_LEASE`]:
    /// none).
    inflight: Table<u32>,
    ready: VecDeque<Completion<P>>,
    free_slots: Vec<u32>,
    pool_slots: u32,
    spin: Spin,
    stray: u64,
    /// Requests queued since the last push.
    unpushed: u32,
    /// A failure of a push that had already put requests in flight,
    /// reported by the next poll or wait.
    deferred: Option<Error>,
}

impl<P: Protocol, C: Channel> Default for Client<P, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Protocol, C: Channel> Client<P, C> {
    /// A client with no connection.
    pub fn new() -> Self {
        Client {
            link: None,
            inflight: Table::new(),
            ready: VecDeque::new(),
            free_slots: Vec::new(),
            pool_slots: 0,
            spin: Spin::default(),
            stray: 0,
            unpushed: 0,
            deferred: None,
        }
    }

    /// Starts using `ring` (shared with the backend and initialised),
    /// notifying through `chan`, with the buffer `pool`.
    pub fn attach(&mut self, ring: FrontRingOf<P>, chan: C, pool: Option<Pool>) {
        let size = ring.size();
        self.inflight.reserve(size);
        let want = (size as usize).saturating_mul(2);
        self.ready.reserve(want.saturating_sub(self.ready.len()));
        let slots = pool.map_or(0, |p| p.slots());
        if slots > self.pool_slots {
            // Slots beyond what we had are new and free.
            self.free_slots.reserve(slots as usize);
            self.free_slots.extend((self.pool_slots..slots).rev());
            self.pool_slots = slots;
        }
        self.link = Some(Link { ring, chan, pool });
    }

    /// Stops using the ring: every request in flight completes with
    /// [`Error::Disconnected`] (queued for [`poll`](Client::poll)), and the
    /// channel is returned. Returns how many requests were failed.
    pub fn detach(&mut self) -> (usize, Option<C>) {
        // Answers already on the ring complete normally.
        self.deferred = None;
        let _ = self.collect();
        let ready = &mut self.ready;
        let mut lost = 0usize;
        self.inflight.drain(|id, slot| {
            lost = lost.saturating_add(1);
            ready.push_back(Completion {
                tag: Tag(id),
                result: Err(Error::Disconnected),
                lease: lease_of(slot),
            });
        });
        self.unpushed = 0;
        (lost, self.link.take().map(|l| l.chan))
    }

    /// Whether a ring is attached.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// The event channel, to poll its descriptor.
    pub fn channel(&self) -> Option<&C> {
        self.link.as_ref().map(|l| &l.chan)
    }

    /// Requests submitted whose completion has not been taken yet (on the
    /// ring, or answered and queued for [`poll`](Client::poll)).
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.inflight.len().saturating_add(self.ready.len())
    }

    /// Whether `tag`'s request is on the ring, unanswered (its completion
    /// not yet collected).
    pub fn is_in_flight(&self, tag: Tag) -> bool {
        self.inflight.contains(tag.0)
    }

    /// Responses that matched no request in flight (a misbehaving backend
    /// answering twice or inventing ids); they are dropped.
    pub fn stray_responses(&self) -> u64 {
        self.stray
    }

    /// Sets the largest spin budget of waits (0: never spin).
    pub fn set_spin(&mut self, max: u32) {
        self.spin = Spin::new(max);
    }

    /// Sets how waits spin before blocking ([`Spin::new`]: adaptive, the
    /// default; [`Spin::fixed`]: always the same count).
    pub fn set_spin_policy(&mut self, spin: Spin) {
        self.spin = spin;
    }

    /// Borrows a free buffer slot of the pool.
    #[inline]
    pub fn lease(&mut self) -> Result<Lease, Error> {
        self.free_slots
            .pop()
            .map(|slot| Lease { slot })
            .ok_or(Error::NoBuffer(self.pool_slots))
    }

    /// Gives a buffer slot back.
    #[inline]
    pub fn release(&mut self, lease: Lease) {
        Free {
            slots: &mut self.free_slots,
            total: self.pool_slots,
        }
        .give(lease);
    }

    #[inline]
    fn pool(&self) -> Result<&Pool, Error> {
        self.link
            .as_ref()
            .ok_or(Error::NotConnected)?
            .pool
            .as_ref()
            .ok_or(Error::NoBuffer(0))
    }

    /// Writes `data` at `offset` of a leased slot, in place.
    #[inline]
    pub fn write(&self, lease: &Lease, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.pool()?.write(lease.slot, offset, data)
    }

    /// Copies bytes at `offset` of a leased slot out, once.
    pub fn read(&self, lease: &Lease, offset: usize, out: &mut [u8]) -> Result<(), Error> {
        self.pool()?.read(lease.slot, offset, out)
    }

    /// Puts a request on the ring, to be published by
    /// [`flush`](Client::flush): many queued requests cost one push. (A
    /// long batch is also published every quarter ring on its own, so that
    /// the backend can start on it while the rest is queued.)
    #[inline(always)]
    pub fn queue(&mut self, req: P::Request, lease: Option<Lease>) -> Result<Tag, Error> {
        let slot = lease.as_ref().map(Lease::slot);
        let r = self.produce(req, slot);
        if let (Err(_), Some(lease)) = (&r, lease) {
            // A request that did not go out gives its buffer back.
            self.release(lease);
        }
        r
    }

    #[inline(always)]
    fn produce(&mut self, mut req: P::Request, slot: Option<u32>) -> Result<Tag, Error> {
        let link = self.link.as_mut().ok_or(Error::NotConnected)?;
        if link.ring.is_full() {
            return Err(Error::Busy(link.ring.size()));
        }
        let id = self
            .inflight
            .insert(slot.unwrap_or(NO_LEASE))
            .ok_or(Error::Busy(link.ring.size()))?;
        P::set_request_id(&mut req, id);
        if let Err(e) = link.ring.produce_request(&req) {
            self.inflight.remove(id);
            return Err(e.into());
        }
        self.unpushed = self.unpushed.wrapping_add(1);
        if self.unpushed >= (link.ring.size() / 4).max(1) {
            // A long batch is published every quarter ring, so that the
            // backend starts on it while the rest is queued; a failure is
            // the requests' already in flight (see `flush_queued`).
            self.flush_queued();
        }
        Ok(Tag(id))
    }

    /// Publishes the queued requests and notifies the backend if it asked.
    #[inline]
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.unpushed == 0 {
            return Ok(());
        }
        let link = self.link.as_mut().ok_or(Error::NotConnected)?;
        self.unpushed = 0;
        if link.ring.push_requests()? {
            link.chan.notify()?;
        }
        Ok(())
    }

    /// Submits a request now; the answer comes through
    /// [`poll`](Client::poll) or [`wait`](Client::wait).
    #[inline]
    pub fn submit(&mut self, req: P::Request) -> Result<Tag, Error> {
        let tag = self.queue(req, None)?;
        self.flush_queued();
        Ok(tag)
    }

    /// Flushes requests already in flight: a failure is theirs, reported
    /// by the next poll or wait (and completes them on detach).
    #[inline(always)]
    fn flush_queued(&mut self) {
        if let Err(e) = self.flush() {
            self.deferred.get_or_insert(e);
        }
    }

    /// Submits a request with a buffer slot, which comes back with the
    /// completion.
    pub fn submit_with(&mut self, req: P::Request, lease: Lease) -> Result<Tag, Error> {
        let tag = self.queue(req, Some(lease))?;
        self.flush_queued();
        Ok(tag)
    }

    /// Moves every response waiting on the ring to the completion queue.
    fn collect(&mut self) -> Result<(), Error> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        while let Some(rsp) = link.ring.consume_response()? {
            if let Some(c) = answer(&mut self.inflight, &mut self.stray, rsp) {
                self.ready.push_back(c);
            }
        }
        Ok(())
    }

    /// The next completion, if one is ready (never blocks).
    #[inline(always)]
    pub fn poll(&mut self) -> Result<Option<Completion<P>>, Error> {
        if !self.ready.is_empty() || self.deferred.is_some() {
            if let Some(c) = self.ready.pop_front() {
                return Ok(Some(c));
            }
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(None);
        };
        // Nothing queued: the oldest response on the ring is the next
        // completion, handed over directly (no trip through the queue).
        // Bounded: each response is consumed once, and the ring checks
        // that there are no more than requests pushed.
        while let Some(rsp) = link.ring.consume_response()? {
            if let Some(c) = answer(&mut self.inflight, &mut self.stray, rsp) {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Hands every completion that is ready to `f`, oldest first, and
    /// returns how many: a loop of [`poll`](Client::poll) in one call, which
    /// checks the completion queue, a deferred failure and the connection
    /// once per batch instead of once per completion. `f` returns the lease
    /// it is done with (`done.lease`, once its buffer is read), given back
    /// as [`release`](Client::release) would, or `None` to keep it. A
    /// failure is returned after the completions before it.
    #[inline]
    pub fn poll_each(
        &mut self,
        mut f: impl FnMut(Completion<P>) -> Option<Lease>,
    ) -> Result<usize, Error> {
        let mut n = 0usize;
        while let Some(c) = self.ready.pop_front() {
            if let Some(lease) = f(c) {
                self.release(lease);
            }
            n = n.wrapping_add(1);
        }
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(n);
        };
        let mut free = Free {
            slots: &mut self.free_slots,
            total: self.pool_slots,
        };
        // Bounded: each response is consumed once, and the ring checks
        // that there are no more than requests pushed.
        while let Some(rsp) = link.ring.consume_response()? {
            if let Some(c) = answer(&mut self.inflight, &mut self.stray, rsp) {
                if let Some(lease) = f(c) {
                    free.give(lease);
                }
                n = n.wrapping_add(1);
            }
        }
        Ok(n)
    }

    /// Sleeps until responses may be waiting: spins a few checks, re-arms
    /// the ring's event index, then blocks on the channel up to `timeout`.
    /// `false` on timeout.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.spin_check()? {
            return Ok(true);
        }
        let link = self.link.as_mut().ok_or(Error::NotConnected)?;
        Ok(link.chan.wait(timeout)?)
    }

    /// Before sleeping on the channel, and on other things too (a poll
    /// loop, an async reactor): spins a few checks, then re-arms the
    /// ring's event index and checks once more. `true`: responses are
    /// waiting, do not sleep; `false`: the next response notifies the
    /// channel.
    pub fn spin_check(&mut self) -> Result<bool, Error> {
        let link = self.link.as_mut().ok_or(Error::NotConnected)?;
        let ring = &mut link.ring;
        if self.spin.run(|| Ok(ring.has_responses()?))? {
            return Ok(true);
        }
        Ok(ring.final_check_for_responses()?)
    }

    /// The next completion, waiting up to `timeout` for it.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Completion<P>, Error> {
        loop {
            if let Some(c) = self.poll()? {
                return Ok(c);
            }
            if self.inflight.is_empty() {
                return Err(Error::NotConnected);
            }
            if !self.wait_event(timeout)? {
                return Err(Error::Timeout);
            }
        }
    }

    /// Takes the completion of `tag` if it is ready; others stay queued.
    pub fn take(&mut self, tag: Tag) -> Result<Option<Completion<P>>, Error> {
        self.collect()?;
        let pos = self.ready.iter().position(|c| c.tag == tag);
        Ok(pos.and_then(|i| self.ready.remove(i)))
    }

    /// One round trip: submits `req` and waits for its response (other
    /// completions arriving meanwhile stay queued for `poll`).
    pub fn call(
        &mut self,
        req: P::Request,
        timeout: Option<Duration>,
    ) -> Result<P::Response, Error> {
        let tag = self.submit(req)?;
        self.wait_for(tag, timeout)?.result
    }

    /// One round trip with a buffer slot: leases a slot, writes `data` at
    /// its start, builds the request from the slot number, and waits for
    /// the answer, returned with the slot (read what the backend wrote,
    /// then [`release`](Client::release) it). On failure the slot is given
    /// back.
    pub fn call_with(
        &mut self,
        data: &[u8],
        req: impl FnOnce(u32) -> P::Request,
        timeout: Option<Duration>,
    ) -> Result<(P::Response, Lease), Error> {
        let lease = self.lease()?;
        if let Err(e) = self.write(&lease, 0, data) {
            self.release(lease);
            return Err(e);
        }
        // A failed submit gives the slot back itself.
        let tag = self.submit_with(req(lease.slot()), lease)?;
        let done = self.wait_for(tag, timeout)?;
        match (done.result, done.lease) {
            (Ok(rsp), Some(lease)) => Ok((rsp, lease)),
            (result, lease) => {
                if let Some(lease) = lease {
                    self.release(lease);
                }
                Err(result
                    .err()
                    .unwrap_or(Error::BadAnswer("buffer not returned")))
            }
        }
    }

    /// Waits for the completion of `tag`.
    pub fn wait_for(
        &mut self,
        tag: Tag,
        timeout: Option<Duration>,
    ) -> Result<Completion<P>, Error> {
        loop {
            if let Some(c) = self.take(tag)? {
                return Ok(c);
            }
            if !self.inflight.contains(tag.0) {
                return Err(Error::UnknownTag(tag.0));
            }
            if !self.wait_event(timeout)? {
                return Err(Error::Timeout);
            }
        }
    }
}

/// The free buffer slots of a pool of `total`.
struct Free<'a> {
    slots: &'a mut Vec<u32>,
    total: u32,
}

impl Free<'_> {
    /// Takes a slot back: only one of the pool's, and never more than the
    /// pool has (a lease is not Clone, but a forged one could be made).
    #[inline(always)]
    fn give(&mut self, lease: Lease) {
        if lease.slot < self.total && self.slots.len() < self.total as usize {
            self.slots.push(lease.slot);
        }
    }
}

/// The table's mark for a request without a buffer slot (a pool has at
/// most [`MAX_POOL_PAGES`](super::MAX_POOL_PAGES) slots).
const NO_LEASE: u32 = u32::MAX;

/// The completion a response brings, taking its request out of
/// `inflight`; `None` for a response that answers no request in flight (a
/// stray, counted).
#[inline(always)]
fn answer<P: Protocol>(
    inflight: &mut Table<u32>,
    stray: &mut u64,
    rsp: P::Response,
) -> Option<Completion<P>> {
    let id = P::response_id(&rsp);
    match inflight.remove(id) {
        Some(slot) => Some(Completion {
            tag: Tag(id),
            result: Ok(rsp),
            lease: lease_of(slot),
        }),
        None => {
            *stray = stray.wrapping_add(1);
            None
        }
    }
}

#[inline(always)]
fn lease_of(slot: u32) -> Option<Lease> {
    (slot != NO_LEASE).then_some(Lease { slot })
}
