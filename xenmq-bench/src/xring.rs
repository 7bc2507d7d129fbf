//! The xenmq contenders, through the public driver API: the frontend
//! process is a [`Client`], the backend process a [`Server`] serving a
//! [`Backend`] ([`Checker`]), over the bench protocols of [`proto`]
//! (`xenmq-compat`: [`proto::Compat1`]/[`proto::Compat4`], ring.h's layout;
//! `xenmq-native`: [`proto::Native1`]/[`proto::Native4`], the native
//! layout). The loops mirror `c/cring.c` step by step:
//!
//! - `tput` and `bulk`: [`Client::queue`] into every free slot, one
//!   [`Client::flush`] (one push, one notify decision), take every
//!   completion with [`Client::poll_each`], and wait only when nothing came
//!   back and the ring is full (or everything is sent). `bulk` leases a pool
//!   slot per request ([`Client::lease`]), fills it in place
//!   ([`Client::write`]) and queues it with the request; the lease comes
//!   back with the completion and is given back from `poll_each`.
//! - `lat`: one [`Client::submit`], then `poll_each` until its completion.
//! - the backend: [`Server::serve`] (every request waiting, each copied out
//!   of the ring once, checked by [`Checker`], which copies a bulk buffer
//!   out of the pool once with [`Io::read`] and checks every word; one push,
//!   at most one notify), then [`Server::wait`].
//!
//! Waits are the driver API's: [`Client::wait_event`] and [`Server::wait`]
//! spin on the ring (`block`: not at all; `spin`: `--spin` checks, set as
//! [`Spin::fixed`] so that the count is the C loop's rather than the
//! adaptive default), then re-arm the event index (final check) and sleep
//! on the eventfd: the same steps as the C loop's.
//!
//! Every response is checked: the framework's id (the completion's tag),
//! the sequence number (in order), the status, and the pool slot coming
//! back for bulk. A wrong one counts as an error, which fails the run.

use std::cell::Cell;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use xenmq::driver::{
    BackRingOf, Backend, Client, FrontRingOf, Io, Pool, Protocol, Reply, Server, Spin,
};
use xenmq::evtchn::{self, Channel, Port, Status};
use xenmq::ring::{BackSide, FrontSide};
use xenmq::shm::Region;
use zerocopy::IntoBytes;

use crate::proto::{self, Request, Response, BUF, OP_BULK, OP_DATA, OP_STOP};
use crate::{Error, FrontOut, Mode};
use xenmq_sys::EventFd;

/// An event channel over the bench's eventfd pair: `wait` sleeps on one,
/// `notify` signals the other and counts.
#[derive(Debug)]
pub struct Chan<'a> {
    wait: &'a EventFd,
    notify: &'a EventFd,
    sent: Cell<u64>,
}

impl<'a> Chan<'a> {
    /// A channel waiting on `wait` and notifying `notify`.
    pub fn new(wait: &'a EventFd, notify: &'a EventFd) -> Self {
        Chan {
            wait,
            notify,
            sent: Cell::new(0),
        }
    }

    /// Notifications sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }
}

fn os(e: std::io::Error) -> evtchn::Error {
    evtchn::Error::Os(e.raw_os_error().unwrap_or(0))
}

impl Channel for Chan<'_> {
    fn port(&self) -> Port {
        // The eventfd's number names the port (it is never negative).
        u32::try_from(self.wait.raw()).unwrap_or(0)
    }

    #[inline]
    fn notify(&self) -> Result<(), evtchn::Error> {
        self.notify.notify().map_err(os)?;
        self.sent.set(self.sent.get().wrapping_add(1));
        Ok(())
    }

    fn poll(&self) -> Result<bool, evtchn::Error> {
        self.wait.try_take().map_err(os)
    }

    #[inline]
    fn wait(&self, timeout: Option<Duration>) -> Result<bool, evtchn::Error> {
        self.wait.wait_for(timeout).map_err(os)
    }

    fn status(&self) -> Result<Status, evtchn::Error> {
        Ok(Status::Interdomain {
            remote: 0,
            remote_port: u32::try_from(self.notify.raw()).unwrap_or(0),
        })
    }
}

/// A bench protocol: the bench's messages on some ring layout and size.
pub trait BenchProtocol: Protocol<Request = Request, Response = Response> {}
impl<P: Protocol<Request = Request, Response = Response>> BenchProtocol for P {}

/// The pool of a ring of `nslots` slots: one 4 KiB buffer per slot, at the
/// start of `data`.
fn pool(data: Region, nslots: u32) -> Result<Pool, Error> {
    let len = (nslots as usize).saturating_mul(BUF);
    if len > data.len() {
        return Err(Error::Setup("bulk pool smaller than the ring".into()));
    }
    Ok(Pool::new(data.subregion(0, len)?))
}

/// One frontend phase, whatever the protocol (the harness holds a
/// `Box<dyn Phase>`).
pub trait Phase {
    /// Runs `mode` for `budget_ns` (or `max_ops` operations). Latency
    /// samples go to `lat`, never grown past its capacity.
    fn run(
        &mut self,
        mode: Mode,
        max_ops: u64,
        budget_ns: u64,
        lat: &mut Vec<u64>,
    ) -> Result<FrontOut, Error>;
}

/// The frontend: a [`Client`] of protocol `P`, and the stream's state.
pub struct Front<'a, P: BenchProtocol> {
    client: Client<P, Chan<'a>>,
    nslots: u32,
    seq: u64,
    expect: u64,
    buf: Box<[u64; BUF / 8]>,
}

impl<'a, P: BenchProtocol> Front<'a, P> {
    /// Initialises the ring in `ring` and attaches a client to it, with the
    /// pool in `data`, waiting on `ev_wait` and notifying `ev_notify`,
    /// spinning up to `spin` checks before sleeping.
    pub fn new(
        ring: Region,
        data: Region,
        ev_wait: &'a EventFd,
        ev_notify: &'a EventFd,
        spin: u32,
    ) -> Result<Self, Error> {
        let ring = FrontRingOf::<P>::init(ring)?;
        let nslots = ring.size();
        let pool = pool(data, nslots)?;
        let mut client = Client::new();
        client.set_spin_policy(Spin::fixed(spin));
        client.attach(ring, Chan::new(ev_wait, ev_notify), Some(pool));
        Ok(Front {
            client,
            nslots,
            seq: 0,
            expect: 0,
            buf: Box::new([0; BUF / 8]),
        })
    }

    /// Slots in the ring.
    pub fn slots(&self) -> u32 {
        self.nslots
    }

    fn sent(&self) -> u64 {
        self.client.channel().map_or(0, Chan::sent)
    }

    /// Whether another request fits the ring (every completion is taken as
    /// soon as it is there, so what is in flight is on the ring).
    #[inline(always)]
    fn room(&self) -> bool {
        self.client.in_flight() < self.nslots as usize
    }

    /// Queues the next request of the stream; a bulk one with a leased pool
    /// slot filled in place.
    #[inline(always)]
    fn put(&mut self, op: u32) -> Result<(), Error> {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        if op == OP_BULK {
            let lease = self.client.lease()?;
            proto::fill(&mut self.buf, seq);
            if let Err(e) = self.client.write(&lease, 0, self.buf.as_bytes()) {
                self.client.release(lease);
                return Err(e.into());
            }
            let req = Request::new(seq, op, lease.slot());
            self.client.queue(req, Some(lease))?;
        } else {
            self.client.queue(Request::new(seq, op, 0), None)?;
        }
        Ok(())
    }

    /// Takes every completion waiting, checking each; returns how many.
    #[inline(always)]
    fn take_all(&mut self, bulk: bool, errors: &mut u64) -> Result<u64, Error> {
        // Counters in locals while the loop runs (stored once at the end,
        // not once per completion).
        let (mut n, mut bad, mut expect) = (0, 0, self.expect);
        let r = self.client.poll_each(|done| {
            let ok = match &done.result {
                Ok(rsp) => rsp.id == done.tag.id() && rsp.seq == expect as u32 && rsp.status == 0,
                Err(_) => false,
            };
            // The pool slot comes back with a bulk request, and only then.
            let lease_ok = done.lease.is_some() == bulk;
            bad += u64::from(!(ok && lease_ok));
            expect = expect.wrapping_add(1);
            n += 1;
            done.lease
        });
        let r = r.map(|_| n).map_err(Error::from);
        self.expect = expect;
        *errors += bad;
        r
    }

    #[inline(always)]
    fn flush(&mut self, out: &mut FrontOut) -> Result<(), Error> {
        out.pushes += 1;
        Ok(self.client.flush()?)
    }

    #[inline(always)]
    fn wait(&mut self) -> Result<(), Error> {
        // No timeout: the harness's watchdog ends a run that hangs.
        self.client.wait_event(None)?;
        Ok(())
    }
}

impl<P: BenchProtocol> Phase for Front<'_, P> {
    fn run(
        &mut self,
        mode: Mode,
        max_ops: u64,
        budget_ns: u64,
        lat: &mut Vec<u64>,
    ) -> Result<FrontOut, Error> {
        let mut out = FrontOut::default();
        let sent0 = self.sent();
        lat.clear();
        let start = Instant::now();
        match mode {
            Mode::Lat | Mode::Stop => {
                let (max, op) = if mode == Mode::Stop {
                    (1, OP_STOP)
                } else {
                    (max_ops, OP_DATA)
                };
                let mut sent = 0;
                while sent < max {
                    let t0 = Instant::now();
                    if mode == Mode::Lat
                        && ((sent > 0 && t0.duration_since(start).as_nanos() as u64 > budget_ns)
                            || lat.len() == lat.capacity())
                    {
                        break;
                    }
                    let seq = self.seq;
                    self.seq = seq.wrapping_add(1);
                    self.client.submit(Request::new(seq, op, 0))?;
                    out.pushes += 1;
                    while self.take_all(false, &mut out.errors)? == 0 {
                        self.wait()?;
                    }
                    if mode == Mode::Lat {
                        lat.push(t0.elapsed().as_nanos() as u64);
                    }
                    sent += 1;
                }
                out.ops = sent;
            }
            Mode::Tput | Mode::Bulk => {
                let bulk = mode == Mode::Bulk;
                let op = if bulk { OP_BULK } else { OP_DATA };
                let (mut max, mut sent, mut done, mut next_check) = (max_ops, 0u64, 0u64, 256u64);
                while done < max {
                    let mut queued = false;
                    while sent < max && self.room() {
                        self.put(op)?;
                        sent += 1;
                        queued = true;
                    }
                    if queued {
                        self.flush(&mut out)?;
                    }
                    let got = self.take_all(bulk, &mut out.errors)?;
                    done += got;
                    if done >= max {
                        break;
                    }
                    if sent >= next_check {
                        next_check += 256;
                        if start.elapsed().as_nanos() as u64 > budget_ns {
                            max = sent;
                        }
                    }
                    if got == 0 && (sent >= max || !self.room()) {
                        self.wait()?;
                    }
                }
                out.ops = done;
            }
        }
        out.elapsed_ns = start.elapsed().as_nanos() as u64;
        out.notifies = self.sent().wrapping_sub(sent0);
        Ok(out)
    }
}

/// Counters the backend publishes in the control page.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackCounters {
    /// Notifications sent.
    pub notifies: u64,
    /// Requests that failed their check.
    pub errors: u64,
}

/// The backend driver: checks every request (a bulk buffer copied out of
/// the pool once, every word checked) and answers with its status.
pub struct Checker<P> {
    nslots: u32,
    buf: Box<[u64; BUF / 8]>,
    errors: u64,
    stop: bool,
    _p: PhantomData<P>,
}

impl<P> Checker<P> {
    /// A checker for a ring (and pool) of `nslots` slots.
    pub fn new(nslots: u32) -> Self {
        Checker {
            nslots,
            buf: Box::new([0; BUF / 8]),
            errors: 0,
            stop: false,
            _p: PhantomData,
        }
    }
}

impl<P: BenchProtocol> Backend for Checker<P> {
    type Protocol = P;

    #[inline(always)]
    fn handle(&mut self, req: Request, io: &mut Io<'_, P>) -> Reply<Response> {
        let mut ok = req.check(self.nslots);
        if ok && req.op == OP_BULK {
            // Copy once out of the shared page, then check the copy.
            use zerocopy::IntoBytes as _;
            ok = io.read(req.slot, 0, self.buf.as_mut_bytes()).is_ok()
                && proto::check_buf(&self.buf, req.seq);
        }
        self.errors += u64::from(!ok);
        self.stop |= req.op == OP_STOP;
        Reply::Now(Response {
            id: 0,
            seq: req.seq as u32,
            status: u32::from(!ok),
        })
    }
}

/// The backend: a [`Server`] of protocol `P` and its [`Checker`].
pub struct Back<'a, P: BenchProtocol> {
    server: Server<P, Chan<'a>>,
    checker: Checker<P>,
}

impl<'a, P: BenchProtocol> Back<'a, P> {
    /// Attaches a server to the ring the frontend initialised in `ring`,
    /// with the pool in `data`, waiting on `ev_wait` and notifying
    /// `ev_notify`, spinning up to `spin` checks before sleeping.
    pub fn new(
        ring: Region,
        data: Region,
        ev_wait: &'a EventFd,
        ev_notify: &'a EventFd,
        spin: u32,
    ) -> Result<Self, Error> {
        let ring = BackRingOf::<P>::attach(ring)?;
        let nslots = ring.size();
        let pool = pool(data, nslots)?;
        let mut server = Server::new();
        server.set_spin_policy(Spin::fixed(spin));
        server.attach(ring, Chan::new(ev_wait, ev_notify), Some(pool));
        Ok(Back {
            server,
            checker: Checker::new(nslots),
        })
    }

    /// Serves requests until STOP. `publish` is called with the new counts
    /// after every batch that notified or failed a check.
    pub fn run(
        &mut self,
        mut publish: impl FnMut(BackCounters) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut shown = BackCounters::default();
        loop {
            self.server.serve(&mut self.checker)?;
            let now = BackCounters {
                notifies: self.server.channel().map_or(0, Chan::sent),
                errors: self.checker.errors,
            };
            if now != shown {
                shown = now;
                publish(now)?;
            }
            if self.checker.stop {
                return Ok(());
            }
            // No timeout: the frontend's STOP (or its death) ends the loop.
            self.server.wait(None)?;
        }
    }
}

#[cfg(test)]
mod tests {

    use xenmq::driver::{Client, FrontRingOf};
    use xenmq::ring::compat;

    use super::{Back, Chan, Front, Phase};
    use crate::peer::{DATA_LEN, DATA_OFF, RING_OFF, SHM_LEN};
    use crate::proto::{Compat1, Request, Response, GOLDEN, OP_DATA, OP_STOP};
    use crate::Mode;
    use xenmq_sys::{EventFd, EventfdFlags, Mapping, MemfdFlags};

    fn shared() -> (Mapping, xenmq::shm::Region, xenmq::shm::Region) {
        let memfd = xenmq_sys::memfd(c"xring-test", SHM_LEN, MemfdFlags::empty()).unwrap();
        let map = Mapping::file(&memfd, 0, SHM_LEN, true).unwrap();
        let shm = map.region();
        let ring = shm.subregion(RING_OFF, 4096).unwrap();
        let data = shm.subregion(DATA_OFF, DATA_LEN).unwrap();
        (map, ring, data)
    }

    #[test]
    fn the_backend_counts_a_request_that_fails_its_check() {
        let (_map, ring, data) = shared();
        let (ev_back, ev_front) = (
            EventFd::new(EventfdFlags::empty()).unwrap(),
            EventFd::new(EventfdFlags::empty()).unwrap(),
        );
        let mut client: Client<Compat1, Chan<'_>> = Client::new();
        client.attach(
            FrontRingOf::<Compat1>::init(ring).unwrap(),
            Chan::new(&ev_front, &ev_back),
            None,
        );
        std::thread::scope(|s| {
            let backend = s.spawn(|| {
                let mut back = Back::<Compat1>::new(ring, data, &ev_back, &ev_front, 0).unwrap();
                let mut errors = 0;
                back.run(|c| {
                    errors = c.errors;
                    Ok(())
                })
                .unwrap();
                errors
            });
            let good = Request::new(7, OP_DATA, 0);
            let bad = Request {
                check: 7u64.wrapping_mul(GOLDEN) ^ 1,
                ..good
            };
            let rsp = client.call(good, None).unwrap();
            assert_eq!((rsp.seq, rsp.status), (7, 0));
            let rsp = client.call(bad, None).unwrap();
            assert_eq!(
                (rsp.seq, rsp.status),
                (7, 1),
                "a bad check is answered as such"
            );
            client.call(Request::new(8, OP_STOP, 0), None).unwrap();
            assert_eq!(backend.join().unwrap(), 1, "and counted");
        });
    }

    #[test]
    fn the_frontend_counts_responses_out_of_sequence() {
        let (_map, ring, data) = shared();
        let (ev_back, ev_front) = (
            EventFd::new(EventfdFlags::empty()).unwrap(),
            EventFd::new(EventfdFlags::empty()).unwrap(),
        );
        let mut front = Front::<Compat1>::new(ring, data, &ev_front, &ev_back, 0).unwrap();
        std::thread::scope(|s| {
            // A backend on the raw ring that answers the third request with
            // the wrong sequence number (and the right framework id).
            s.spawn(|| {
                let mut back = compat::Back::<Request, Response>::attach(ring).unwrap();
                let mut n = 0;
                loop {
                    while let Some(req) = back.consume_request().unwrap() {
                        n += 1;
                        let seq = (if n == 3 { req.seq + 1 } else { req.seq }) as u32;
                        back.produce_response(&Response {
                            id: req.id,
                            seq,
                            status: 0,
                        })
                        .unwrap();
                        if req.op == OP_STOP {
                            back.push_responses().unwrap();
                            ev_front.notify().unwrap();
                            return;
                        }
                    }
                    back.push_responses().unwrap();
                    ev_front.notify().unwrap();
                    if !back.final_check_for_requests().unwrap() {
                        ev_back.wait().unwrap();
                    }
                }
            });
            let mut lat = Vec::with_capacity(16);
            let out = front.run(Mode::Lat, 5, u64::MAX / 2, &mut lat).unwrap();
            assert_eq!((out.ops, out.errors), (5, 1));
            let out = front.run(Mode::Stop, 1, 0, &mut lat).unwrap();
            assert_eq!((out.ops, out.errors), (1, 0));
        });
    }
}
