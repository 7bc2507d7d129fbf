//! The socket contender: the same request/response stream over a Unix
//! stream socket pair. Every `write` is a wake-up of the peer, so writes are
//! counted as notifications. Spinning means polling with `MSG_DONTWAIT`
//! before a blocking `read`.

use std::hint::spin_loop;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use zerocopy::{FromBytes, IntoBytes};

use crate::proto::{self, Req, Rsp, BUF, OP_BULK, OP_DATA, OP_STOP};
use crate::{Error, FrontOut, Mode};

/// A connected pair of Unix stream sockets, the second inherited across
/// exec (for the peer process).
pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    xenmq_sys::keep_on_exec(&b)?;
    Ok((a, b))
}

const REQ: usize = std::mem::size_of::<Req>();
const RSP: usize = std::mem::size_of::<Rsp>();

/// A receive buffer: bytes `start..end` of `buf` are unparsed input.
#[derive(Debug)]
struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    fn new(cap: usize) -> InBuf {
        InBuf {
            buf: vec![0; cap],
            start: 0,
            end: 0,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more input: spins `spin` times on a non-blocking receive, then
    /// blocks (or, with `wait == false`, only tries once).
    fn fill(&mut self, s: &mut UnixStream, wait: bool, spin: u32) -> Result<usize, Error> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = &mut self.buf[self.end..];
        let tries = if wait { spin } else { 1 };
        for _ in 0..tries {
            match xenmq_sys::sock::recv_dontwait(&*s, room) {
                Ok(0) => return Err(Error::Setup("socket closed by the peer".into())),
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
        if !wait {
            return Ok(0);
        }
        let n = s.read(room)?;
        if n == 0 {
            return Err(Error::Setup("socket closed by the peer".into()));
        }
        self.end += n;
        Ok(n)
    }
}

/// The socket frontend.
#[derive(Debug)]
pub struct Front {
    s: UnixStream,
    window: u32,
    next_id: u64,
    expect: u64,
    inbuf: InBuf,
    out: Vec<u8>,
    bulk: Box<[u64; BUF / 8]>,
}

impl Front {
    /// A frontend keeping at most `window` requests in flight (the ring size
    /// it is compared with).
    pub fn new(s: UnixStream, window: u32) -> Front {
        let window = window.max(1);
        Front {
            s,
            window,
            next_id: 0,
            expect: 0,
            inbuf: InBuf::new(RSP * window as usize * 2),
            out: Vec::with_capacity((REQ + BUF) * window as usize),
            bulk: Box::new([0; BUF / 8]),
        }
    }

    fn queue(&mut self, op: u32) {
        let id = self.next_id;
        self.next_id += 1;
        let slot = (id as u32) & (self.window - 1);
        self.out
            .extend_from_slice(Req::new(id, op, slot).as_bytes());
        if op == OP_BULK {
            proto::fill(&mut self.bulk, id);
            self.out.extend_from_slice(self.bulk.as_bytes());
        }
    }

    fn flush(&mut self, out: &mut FrontOut) -> Result<(), Error> {
        if !self.out.is_empty() {
            self.s.write_all(&self.out)?;
            self.out.clear();
            out.notifies += 1;
            out.pushes += 1;
        }
        Ok(())
    }

    fn take_all(&mut self, errors: &mut u64) -> u64 {
        let mut got = 0;
        while let Ok((rsp, _)) = Rsp::read_from_prefix(self.inbuf.avail()) {
            self.inbuf.consume(RSP);
            if rsp.id != self.expect || rsp.status != 0 {
                *errors += 1;
            }
            self.expect += 1;
            got += 1;
        }
        got
    }

    /// Runs one phase, like the xenmq contenders' `xring::Phase::run`.
    pub fn run(
        &mut self,
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
                    self.queue(op);
                    self.flush(&mut out)?;
                    while self.take_all(&mut out.errors) == 0 {
                        self.inbuf.fill(&mut self.s, true, spin)?;
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
                    while sent < max && sent - done < u64::from(self.window) {
                        self.queue(op);
                        sent += 1;
                    }
                    self.flush(&mut out)?;
                    let full = sent >= max || sent - done >= u64::from(self.window);
                    self.inbuf.fill(&mut self.s, full, spin)?;
                    done += self.take_all(&mut out.errors);
                    if done >= max {
                        break;
                    }
                    if sent >= next_check {
                        next_check += 256;
                        if start.elapsed().as_nanos() as u64 > budget_ns {
                            max = sent;
                        }
                    }
                }
                out.ops = done;
            }
        }
        out.elapsed_ns = start.elapsed().as_nanos() as u64;
        Ok(out)
    }
}

/// Serves the socket stream until STOP. `publish` gets the counters after
/// every write and every failed check.
pub fn back_run(
    mut s: UnixStream,
    window: u32,
    spin: u32,
    mut publish: impl FnMut(crate::xring::BackCounters) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut inbuf = InBuf::new((REQ + BUF) * window.max(1) as usize * 2);
    let mut out: Vec<u8> = Vec::with_capacity(RSP * window.max(1) as usize * 2);
    let mut bulk: Box<[u64; BUF / 8]> = Box::new([0; BUF / 8]);
    let mut counters = crate::xring::BackCounters::default();
    let mut stop = false;
    loop {
        inbuf.fill(&mut s, true, spin)?;
        while let Ok((req, rest)) = Req::read_from_prefix(inbuf.avail()) {
            let bulk_len = if req.op == OP_BULK { BUF } else { 0 };
            if rest.len() < bulk_len {
                break;
            }
            let mut ok = proto::check_req(&req, window);
            if req.op == OP_BULK {
                // The read already copied the buffer into private memory.
                bulk.as_mut_bytes().copy_from_slice(&rest[..BUF]);
                ok = ok && proto::check_buf(&bulk, req.id);
            }
            inbuf.consume(REQ + bulk_len);
            out.extend_from_slice(
                Rsp {
                    id: req.id,
                    status: u32::from(!ok),
                    pad: 0,
                }
                .as_bytes(),
            );
            if !ok {
                counters.errors += 1;
                publish(counters)?;
            }
            if req.op == OP_STOP {
                stop = true;
            }
        }
        if !out.is_empty() {
            s.write_all(&out)?;
            out.clear();
            counters.notifies += 1;
            publish(counters)?;
        }
        if stop {
            return Ok(());
        }
    }
}
