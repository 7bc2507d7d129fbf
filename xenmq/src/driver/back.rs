//! The backend's data path: drain a batch of requests, hand each to the
//! driver, push the answers once.

use core::time::Duration;

use super::table::Table;
use super::{BackRingOf, Backend, Error, Pool, Protocol, Spin};
use crate::evtchn::Channel;
use crate::ring::BackSide;

/// What [`Backend::handle`] does with a request.
#[derive(Debug)]
pub enum Reply<R> {
    /// Here is the answer.
    Now(R),
    /// The answer comes later, through [`Completer::complete`] with this
    /// ticket (from [`Io::defer`]).
    Later(Ticket),
}

/// A request answered later. Each ticket completes once; a ticket of an
/// earlier connection is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket's number (unique among the open tickets).
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// What a handler reaches while it answers a request: the buffer pool, and
/// deferral.
pub struct Io<'a, P: Protocol> {
    pool: Option<&'a Pool>,
    waiting: &'a mut Table<u64>,
    id: u64,
    ticket: Option<u64>,
    _p: core::marker::PhantomData<P>,
}

impl<P: Protocol> Io<'_, P> {
    fn pool(&self) -> Result<&Pool, Error> {
        self.pool.ok_or(Error::BadSlot { slot: 0, slots: 0 })
    }

    /// Copies bytes at `offset` of the frontend's buffer `slot` (a slot
    /// number the request carried; checked) into `out`, once.
    pub fn read(&self, slot: u32, offset: usize, out: &mut [u8]) -> Result<(), Error> {
        self.pool()?.read(slot, offset, out)
    }

    /// Writes `data` at `offset` of the frontend's buffer `slot`.
    pub fn write(&self, slot: u32, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.pool()?.write(slot, offset, data)
    }

    /// Answer this request later: return [`Reply::Later`] with the ticket.
    pub fn defer(&mut self) -> Result<Ticket, Error> {
        if let Some(t) = self.ticket {
            return Ok(Ticket(t));
        }
        // The table holds one entry per ring slot: a consumed request
        // always finds room.
        let t = self.waiting.insert(self.id).ok_or(Error::Busy(0))?;
        self.ticket = Some(t);
        Ok(Ticket(t))
    }
}

/// Completes deferred requests (given to [`Backend::poll`]).
pub struct Completer<'a, P: Protocol> {
    link: &'a mut Link<P>,
    waiting: &'a mut Table<u64>,
}

impl<P: Protocol> Completer<'_, P> {
    /// Answers the request of `ticket`. Fails for a ticket already
    /// completed or from an earlier connection.
    pub fn complete(&mut self, ticket: Ticket, mut rsp: P::Response) -> Result<(), Error> {
        let id = self
            .waiting
            .remove(ticket.0)
            .ok_or(Error::UnknownTicket(ticket.0))?;
        P::set_response_id(&mut rsp, id);
        self.link.ring.produce_response(&rsp)?;
        Ok(())
    }

    /// The buffer pool, for a deferred answer's data.
    pub fn pool(&self) -> Option<&Pool> {
        self.link.pool.as_ref()
    }
}

struct Link<P: Protocol> {
    ring: BackRingOf<P>,
    pool: Option<Pool>,
}

/// The backend end of one device's data path. It lives as long as the
/// device; [`attach`](Server::attach) gives it each connection's ring.
pub struct Server<P: Protocol, C> {
    link: Option<(Link<P>, C)>,
    waiting: Table<u64>,
    spin: Spin,
    served: u64,
}

impl<P: Protocol, C: Channel> Default for Server<P, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Protocol, C: Channel> Server<P, C> {
    /// A server with no connection.
    pub fn new() -> Self {
        Server {
            link: None,
            waiting: Table::new(),
            spin: Spin::default(),
            served: 0,
        }
    }

    /// Starts serving `ring` (mapped from the frontend), notifying through
    /// `chan`, with the frontend's buffer `pool`.
    pub fn attach(&mut self, ring: BackRingOf<P>, chan: C, pool: Option<Pool>) {
        self.waiting.reserve(ring.size());
        self.link = Some((Link { ring, pool }, chan));
    }

    /// Stops serving; returns the channel. Open tickets become void.
    pub fn detach(&mut self) -> Option<C> {
        self.waiting.drain(|_, _| {});
        self.link.take().map(|(_, c)| c)
    }

    /// Whether a ring is attached.
    pub fn is_attached(&self) -> bool {
        self.link.is_some()
    }

    /// The event channel, to poll its descriptor.
    pub fn channel(&self) -> Option<&C> {
        self.link.as_ref().map(|(_, c)| c)
    }

    /// Requests answered since creation.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Requests consumed and not yet answered.
    pub fn pending(&self) -> u32 {
        self.link
            .as_ref()
            .map_or(0, |(l, _)| l.ring.pending_responses())
    }

    /// Sets the largest spin budget of [`wait`](Server::wait) (0: never spin).
    pub fn set_spin(&mut self, max: u32) {
        self.spin = Spin::new(max);
    }

    /// Sets how waits spin before blocking ([`Spin::new`]: adaptive, the
    /// default; [`Spin::fixed`]: always the same count).
    pub fn set_spin_policy(&mut self, spin: Spin) {
        self.spin = spin;
    }

    /// Serves one batch: every request waiting (at most a ring's worth),
    /// each handed to `backend`, then the deferred completions of
    /// [`Backend::poll`], then one push and at most one notification.
    /// Returns how many requests were taken.
    #[inline]
    pub fn serve<B: Backend<Protocol = P> + ?Sized>(
        &mut self,
        backend: &mut B,
    ) -> Result<usize, Error> {
        let (link, chan) = self.link.as_mut().ok_or(Error::NotConnected)?;
        let mut taken = 0usize;
        let limit = link.ring.size() as usize;
        // In a long batch, the answers so far are published every quarter
        // ring, so that the frontend takes them while the rest is served.
        let every = (limit / 4).max(1);
        let mut unpushed = 0usize;
        while taken < limit {
            let Some(req) = link.ring.consume_request()? else {
                break;
            };
            taken = taken.saturating_add(1);
            let id = P::request_id(&req);
            let mut io = Io {
                pool: link.pool.as_ref(),
                waiting: &mut self.waiting,
                id,
                ticket: None,
                _p: core::marker::PhantomData,
            };
            let reply = backend.handle(req, &mut io);
            let ticket = io.ticket;
            match reply {
                Reply::Now(mut rsp) => {
                    if let Some(t) = ticket {
                        self.waiting.remove(t);
                    }
                    P::set_response_id(&mut rsp, id);
                    link.ring.produce_response(&rsp)?;
                    self.served = self.served.wrapping_add(1);
                    unpushed = unpushed.wrapping_add(1);
                    if unpushed == every {
                        unpushed = 0;
                        if link.ring.push_responses()? {
                            chan.notify()?;
                        }
                    }
                }
                // The ticket came from this request's `defer` (a ticket is
                // only made there); the driver completes it later.
                Reply::Later(_) => {}
            }
        }
        let before = link.ring.pending_responses();
        backend.poll(&mut Completer {
            link,
            waiting: &mut self.waiting,
        });
        let completed = before.saturating_sub(link.ring.pending_responses());
        self.served = self.served.wrapping_add(u64::from(completed));
        if link.ring.push_responses()? {
            chan.notify()?;
        }
        Ok(taken)
    }

    /// Before sleeping on the channel: re-arms the ring's event index and
    /// checks once more (`RING_FINAL_CHECK_FOR_REQUESTS`). `true`: work
    /// is waiting, do not sleep.
    pub fn final_check(&mut self) -> Result<bool, Error> {
        let (link, _) = self.link.as_mut().ok_or(Error::NotConnected)?;
        Ok(link.ring.final_check_for_requests()?)
    }

    /// Consumes a pending notification after a wake-up (see
    /// [`Channel::poll`]).
    pub fn consume(&mut self) -> Result<bool, Error> {
        let (_, chan) = self.link.as_mut().ok_or(Error::NotConnected)?;
        Ok(chan.poll()?)
    }

    /// Before sleeping on the channel, and on other things too (a poll
    /// loop, an async reactor): spins a few checks, then re-arms the
    /// ring's event index and checks once more. `true`: work is waiting,
    /// do not sleep; `false`: the next request notifies the channel.
    pub fn spin_check(&mut self) -> Result<bool, Error> {
        let (link, _) = self.link.as_mut().ok_or(Error::NotConnected)?;
        let ring = &mut link.ring;
        if self.spin.run(|| Ok(ring.has_requests()?))? {
            return Ok(true);
        }
        Ok(ring.final_check_for_requests()?)
    }

    /// Waits for requests: [`spin_check`](Server::spin_check), then sleeps
    /// on the channel for up to `timeout`. `true` if there is work (or a
    /// notification), `false` on timeout.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.spin_check()? {
            return Ok(true);
        }
        let (_, chan) = self.link.as_mut().ok_or(Error::NotConnected)?;
        Ok(chan.wait(timeout)?)
    }
}
