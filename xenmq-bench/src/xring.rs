//! The frontend and backend loops for xenmq's rings, written once over two
//! small traits so that the ring.h-compatible ring and the native ring run
//! exactly the same code. They mirror `c/cring.c` step by step: same
//! batching, same checks, same wait policy (spin, then arm the event index
//! and sleep on the eventfd).

use std::hint::spin_loop;
use std::time::Instant;

use xenmq::ring::{self, native};
use xenmq::shm::Region;

use crate::proto::{self, Req, Rsp, BUF, MAX_SLOTS, OP_BULK, OP_DATA, OP_STOP};
use crate::sys::EventFd;
use crate::{Error, FrontOut, Mode};
use zerocopy::FromZeros;

/// The frontend operations the loops need.
pub trait FrontOps {
    /// Slots in the ring.
    fn size(&self) -> u32;
    /// Free request slots.
    fn free(&self) -> u32;
    /// Writes a request into the next free slot.
    fn put(&mut self, req: &Req) -> Result<(), Error>;
    /// Publishes; `true` if the backend must be notified.
    fn push(&mut self) -> Result<bool, Error>;
    /// Copies every waiting response out, in order, handing each to `f`;
    /// returns how many.
    fn take_all(&mut self, f: &mut impl FnMut(Rsp)) -> Result<u64, Error>;
    /// Whether a response is waiting.
    fn has_responses(&mut self) -> Result<bool, Error>;
    /// Re-arms rsp_event and checks again.
    fn final_check(&mut self) -> Result<bool, Error>;
}

/// The backend operations the loops need.
pub trait BackOps {
    /// Serves at most `max` of the requests waiting now: copies each out
    /// once, answers it with `f`'s response. Returns how many.
    fn serve(&mut self, max: u32, f: &mut impl FnMut(&Req) -> Rsp) -> Result<u32, Error>;
    /// Publishes; `true` if the frontend must be notified.
    fn push(&mut self) -> Result<bool, Error>;
    /// Whether a request is waiting.
    fn has_requests(&mut self) -> Result<bool, Error>;
    /// Re-arms req_event and checks again.
    fn final_check(&mut self) -> Result<bool, Error>;
}

impl FrontOps for native::Front<Req, Rsp> {
    #[inline(always)]
    fn size(&self) -> u32 {
        native::Front::size(self)
    }
    #[inline(always)]
    fn free(&self) -> u32 {
        self.free_requests()
    }
    #[inline(always)]
    fn put(&mut self, req: &Req) -> Result<(), Error> {
        Ok(self.put_request(req)?)
    }
    #[inline(always)]
    fn push(&mut self) -> Result<bool, Error> {
        Ok(self.push_requests()?)
    }
    #[inline(always)]
    fn take_all(&mut self, f: &mut impl FnMut(Rsp)) -> Result<u64, Error> {
        let mut n = 0;
        while let Some(rsp) = self.take_response()? {
            f(rsp);
            n += 1;
        }
        Ok(n)
    }
    #[inline(always)]
    fn has_responses(&mut self) -> Result<bool, Error> {
        Ok(native::Front::has_responses(self)?)
    }
    #[inline(always)]
    fn final_check(&mut self) -> Result<bool, Error> {
        Ok(self.final_check_for_responses()?)
    }
}

impl BackOps for native::Back<Req, Rsp> {
    #[inline(always)]
    fn serve(&mut self, max: u32, f: &mut impl FnMut(&Req) -> Rsp) -> Result<u32, Error> {
        let mut n = 0;
        while n < max {
            let Some(req) = self.take_request()? else {
                break;
            };
            self.put_response(&f(&req))?;
            n += 1;
        }
        Ok(n)
    }
    #[inline(always)]
    fn push(&mut self) -> Result<bool, Error> {
        Ok(self.push_responses()?)
    }
    #[inline(always)]
    fn has_requests(&mut self) -> Result<bool, Error> {
        Ok(native::Back::has_requests(self)?)
    }
    #[inline(always)]
    fn final_check(&mut self) -> Result<bool, Error> {
        Ok(self.final_check_for_requests()?)
    }
}

impl FrontOps for ring::FrontRing<Req, Rsp> {
    #[inline(always)]
    fn size(&self) -> u32 {
        ring::FrontRing::size(self)
    }
    #[inline(always)]
    fn free(&self) -> u32 {
        self.free_requests()
    }
    #[inline(always)]
    fn put(&mut self, req: &Req) -> Result<(), Error> {
        Ok(self.produce_request(req)?)
    }
    #[inline(always)]
    fn push(&mut self) -> Result<bool, Error> {
        Ok(self.push_requests()?)
    }
    #[inline(always)]
    fn take_all(&mut self, f: &mut impl FnMut(Rsp)) -> Result<u64, Error> {
        // rsp_prod read once, then each response copied out once, as the C
        // loop does.
        let mut n = 0;
        for rsp in self.responses()? {
            f(rsp);
            n += 1;
        }
        Ok(n)
    }
    #[inline(always)]
    fn has_responses(&mut self) -> Result<bool, Error> {
        Ok(self.has_unconsumed_responses()?)
    }
    #[inline(always)]
    fn final_check(&mut self) -> Result<bool, Error> {
        Ok(self.final_check_for_responses()?)
    }
}

/// The ring.h-compatible backend with a private array for a batch's
/// answers: [`ring::BackRing::requests`] reads req_prod once per batch (as
/// the C loop does) but holds the ring while it yields, so the answers are
/// kept aside and written after the batch is read, with one
/// [`ring::BackRing::produce_responses`]. (Measured faster than
/// `consume_request`, which re-reads req_prod for every request.)
#[derive(Debug)]
pub struct CompatBack {
    ring: ring::BackRing<Req, Rsp>,
    answers: Box<[Rsp; MAX_SLOTS]>,
}

impl CompatBack {
    /// Wraps an attached backend.
    pub fn new(ring: ring::BackRing<Req, Rsp>) -> CompatBack {
        CompatBack {
            ring,
            answers: Box::new([Rsp::new_zeroed(); MAX_SLOTS]),
        }
    }
}

impl BackOps for CompatBack {
    #[inline(always)]
    fn serve(&mut self, max: u32, f: &mut impl FnMut(&Req) -> Rsp) -> Result<u32, Error> {
        let mut n = 0;
        let batch = self.ring.requests()?.take(max as usize);
        for (req, slot) in batch.zip(self.answers.iter_mut()) {
            *slot = f(&req);
            n += 1;
        }
        let answers = self.answers.get(..n).unwrap_or(&[]);
        if self.ring.produce_responses(answers)? != n {
            return Err(Error::Setup(
                "a batch of answers did not fit the ring".into(),
            ));
        }
        Ok(n as u32)
    }
    #[inline(always)]
    fn push(&mut self) -> Result<bool, Error> {
        Ok(self.ring.push_responses()?)
    }
    #[inline(always)]
    fn has_requests(&mut self) -> Result<bool, Error> {
        Ok(self.ring.has_unconsumed_requests()?)
    }
    #[inline(always)]
    fn final_check(&mut self) -> Result<bool, Error> {
        Ok(self.ring.final_check_for_requests()?)
    }
}

/// A frontend driving one of xenmq's rings, with its bulk pool.
#[derive(Debug)]
pub struct Front<F> {
    ring: F,
    data: Region,
    next_id: u64,
    expect: u64,
    buf: Box<[u64; BUF / 8]>,
}

impl<F: FrontOps> Front<F> {
    /// Wraps an initialised ring; `data` holds one 4 KiB buffer per slot.
    pub fn new(ring: F, data: Region) -> Result<Self, Error> {
        if (ring.size() as usize).saturating_mul(BUF) > data.len() {
            return Err(Error::Setup("bulk pool smaller than the ring".into()));
        }
        Ok(Front {
            ring,
            data,
            next_id: 0,
            expect: 0,
            buf: Box::new([0; BUF / 8]),
        })
    }

    /// The ring driven.
    pub fn ring(&self) -> &F {
        &self.ring
    }

    #[inline(always)]
    fn wait(&mut self, ev: &EventFd, spin: u32) -> Result<(), Error> {
        for _ in 0..spin {
            if self.ring.has_responses()? {
                return Ok(());
            }
            spin_loop();
        }
        loop {
            if self.ring.final_check()? {
                return Ok(());
            }
            ev.wait()?;
        }
    }

    #[inline(always)]
    fn put(&mut self, op: u32) -> Result<(), Error> {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        let slot = (id as u32) & self.ring.size().wrapping_sub(1);
        if op == OP_BULK {
            proto::fill(&mut self.buf, id);
            self.data.write_words(slot as usize * BUF, &self.buf[..])?;
        }
        self.ring.put(&Req::new(id, op, slot))
    }

    /// Takes every response waiting; returns how many.
    #[inline(always)]
    fn take_all(&mut self, errors: &mut u64) -> Result<u64, Error> {
        let expect = &mut self.expect;
        self.ring.take_all(&mut |rsp: Rsp| {
            if rsp.id != *expect || rsp.status != 0 {
                *errors += 1;
            }
            *expect = expect.wrapping_add(1);
        })
    }

    #[inline(always)]
    fn push(&mut self, ev: &EventFd, out: &mut FrontOut) -> Result<(), Error> {
        out.pushes += 1;
        if self.ring.push()? {
            ev.notify()?;
            out.notifies += 1;
        }
        Ok(())
    }

    /// Runs one phase: `mode` for `budget_ns` (or `max_ops` operations).
    /// Latency samples go to `lat`, which is never grown past its capacity.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        ev_wait: &EventFd,
        ev_notify: &EventFd,
        spin: u32,
        mode: Mode,
        max_ops: u64,
        budget_ns: u64,
        lat: &mut Vec<u64>,
    ) -> Result<FrontOut, Error> {
        let mut out = FrontOut::default();
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
                    self.put(op)?;
                    self.push(ev_notify, &mut out)?;
                    while self.take_all(&mut out.errors)? == 0 {
                        self.wait(ev_wait, spin)?;
                    }
                    if mode == Mode::Lat {
                        lat.push(t0.elapsed().as_nanos() as u64);
                    }
                    sent += 1;
                }
                out.ops = sent;
            }
            Mode::Tput | Mode::Bulk => {
                let op = if mode == Mode::Bulk { OP_BULK } else { OP_DATA };
                let (mut max, mut sent, mut done, mut next_check) = (max_ops, 0u64, 0u64, 256u64);
                while done < max {
                    let mut pushed = false;
                    while sent < max && self.ring.free() != 0 {
                        self.put(op)?;
                        sent += 1;
                        pushed = true;
                    }
                    if pushed {
                        self.push(ev_notify, &mut out)?;
                    }
                    let got = self.take_all(&mut out.errors)?;
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
                    if got == 0 && (sent >= max || self.ring.free() == 0) {
                        self.wait(ev_wait, spin)?;
                    }
                }
                out.ops = done;
            }
        }
        out.elapsed_ns = start.elapsed().as_nanos() as u64;
        Ok(out)
    }
}

/// Counters the backend publishes in the control page.
#[derive(Debug, Default, Clone, Copy)]
pub struct BackCounters {
    /// Notifications sent.
    pub notifies: u64,
    /// Requests that failed their check.
    pub errors: u64,
}

/// Serves requests on one of xenmq's rings until STOP. `publish` is called
/// after every notification and every failed check with the new counts;
/// `buf` is the private buffer bulk data is copied into.
#[allow(clippy::too_many_arguments)]
pub fn back_run<B: BackOps>(
    ring: &mut B,
    data: Region,
    nslots: u32,
    ev_wait: &EventFd,
    ev_notify: &EventFd,
    spin: u32,
    buf: &mut [u64; BUF / 8],
    mut publish: impl FnMut(BackCounters) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut counters = BackCounters::default();
    let mut stop = false;
    loop {
        // One batch at most a ring's worth, like the C backend's single read
        // of req_prod per batch.
        let mut bad = 0u64;
        let mut bulk_err = None;
        ring.serve(nslots, &mut |req: &Req| {
            let mut ok = proto::check_req(req, nslots);
            if ok && req.op == OP_BULK {
                // Copy once out of the shared page, then check the copy.
                match data.read_words(req.slot as usize * BUF, &mut buf[..]) {
                    Ok(()) => ok = proto::check_buf(buf, req.id),
                    Err(e) => {
                        bulk_err = Some(e);
                        ok = false;
                    }
                }
            }
            bad += u64::from(!ok);
            stop |= req.op == OP_STOP;
            Rsp {
                id: req.id,
                status: u32::from(!ok),
                pad: 0,
            }
        })?;
        if let Some(e) = bulk_err {
            return Err(e.into());
        }
        if bad != 0 {
            counters.errors += bad;
            publish(counters)?;
        }
        if ring.push()? {
            ev_notify.notify()?;
            counters.notifies += 1;
            publish(counters)?;
        }
        if stop {
            return Ok(());
        }
        let mut ready = false;
        for _ in 0..spin {
            if ring.has_requests()? {
                ready = true;
                break;
            }
            spin_loop();
        }
        if !ready {
            while !ring.final_check()? {
                ev_wait.wait()?;
            }
        }
    }
}
