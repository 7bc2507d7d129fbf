//! The reference points: `memcpy` bandwidth (the ceiling for bulk
//! transfer), a bare cache-line round trip between the two CPUs (the floor
//! for round-trip latency), and streams through the raw rings against the
//! same streams through `Client`/`Server`, on one CPU and across two
//! threads (what the driver layer costs). The one-CPU and two-thread loops
//! are written out separately although they share steps: folding them into
//! shared helpers measurably changed the raw compat loop's code (5.8 ->
//! 7.0 ns per request on one CPU), and these figures are the reference.

use std::hint::spin_loop;
use std::time::{Duration, Instant};

use xenmq::shm::Region;
use xenmq::sync::Ordering;

use crate::proto::{BUF, MAX_SLOTS};
use crate::{report, Error, Options};

/// GB/s of copying 4 KiB buffers out of a pool as large as the 4-page
/// ring's bulk pool into one private buffer — what a backend's copy-once
/// of a bulk buffer costs when the data is already in this CPU's cache
/// hierarchy.
pub fn memcpy_bw(budget: Duration) -> Result<f64, Error> {
    let pool = vec![0x5au8; MAX_SLOTS * BUF];
    let mut dst = vec![0u8; BUF];
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut i = 0;
    // At least one round, however late it starts.
    while bytes == 0 || start.elapsed() < budget {
        for _ in 0..64 {
            let off = (i % MAX_SLOTS) * BUF;
            dst.copy_from_slice(&pool[off..off + BUF]);
            std::hint::black_box(&mut dst);
            i += 1;
            bytes += BUF as u64;
        }
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e9)
}

/// The median round trip, in ns, of one atomic word bounced between this
/// process and a peer pinned to the other CPU: the frontend writes an odd
/// value, the peer answers with the next even one. Timed per round trip,
/// like the latency figures, so the clock's cost is in both.
pub fn cacheline(
    opts: &Options,
    peer_cpu: Option<usize>,
    lat: &mut Vec<u64>,
) -> Result<f64, Error> {
    let limit = opts.budget * 20 + Duration::from_secs(30);
    let (peer, map) = crate::peer::spawn_cacheline_peer(peer_cpu, limit)?;
    let ctl = map.region().subregion(0, 4096)?;
    let word = crate::peer::CTL_PING;
    let mut v = 0u64;
    let mut run = |budget: Duration, lat: &mut Vec<u64>| -> Result<(), Error> {
        lat.clear();
        let start = Instant::now();
        // At least one sample, however late it starts.
        while lat.is_empty() || (start.elapsed() < budget && lat.len() < lat.capacity()) {
            let t0 = Instant::now();
            // Release/Acquire: the word is the whole message; these pair
            // with the peer's Acquire load and Release store.
            ctl.store_u64(word, v + 1, Ordering::Release)?;
            while ctl.load_u64(word, Ordering::Acquire)? != v + 2 {
                spin_loop();
            }
            lat.push(t0.elapsed().as_nanos() as u64);
            v += 2;
        }
        Ok(())
    };
    run(opts.warmup, lat)?;
    run(opts.budget, lat)?;
    ctl.store_u64(word, u64::MAX, Ordering::Release)?;
    peer.finish()?;
    lat.sort_unstable();
    Ok(report::percentile(lat, 50.0))
}

/// The peer side of [`cacheline`]: answers odd values until `u64::MAX`.
pub fn cacheline_peer(ctl: Region, word: usize) -> Result<(), Error> {
    loop {
        // Acquire/Release: pair with the frontend's Release store and
        // Acquire load in `cacheline`.
        let v = ctl.load_u64(word, Ordering::Acquire)?;
        if v == u64::MAX {
            return Ok(());
        }
        if v % 2 == 1 {
            ctl.store_u64(word, v + 1, Ordering::Release)?;
        } else {
            spin_loop();
        }
    }
}

/// What the driver layer costs: ns per request of a stream through both
/// ends of a 4-page ring on this one CPU (no cross-CPU traffic, so the
/// figure is steady), once with the raw rings (`ring`) and once through
/// `Client`/`Server` with a `Backend` (`driver`), for each layout.
/// Returns `(name, ns)` with names `ring-compat`, `driver-compat`,
/// `ring-native`, `driver-native`.
pub fn driver_overhead(budget: Duration) -> Result<Vec<(&'static str, f64)>, Error> {
    use crate::proto::{Compat4, Native4};
    Ok(vec![
        ("ring-compat", one_cpu::<Compat4>(budget, false)?),
        ("driver-compat", one_cpu::<Compat4>(budget, true)?),
        ("ring-native", one_cpu::<Native4>(budget, false)?),
        ("driver-native", one_cpu::<Native4>(budget, true)?),
    ])
}

/// A channel with no peer: nothing to signal, nothing to wait for (both
/// ends run in this thread).
struct Quiet;

impl xenmq::evtchn::Channel for Quiet {
    fn port(&self) -> xenmq::evtchn::Port {
        0
    }
    fn notify(&self) -> Result<(), xenmq::evtchn::Error> {
        Ok(())
    }
    fn poll(&self) -> Result<bool, xenmq::evtchn::Error> {
        Ok(false)
    }
    fn wait(&self, _: Option<Duration>) -> Result<bool, xenmq::evtchn::Error> {
        Ok(true)
    }
    fn status(&self) -> Result<xenmq::evtchn::Status, xenmq::evtchn::Error> {
        Ok(xenmq::evtchn::Status::Closed)
    }
}

/// Echoes the sequence number.
struct Echo<P>(std::marker::PhantomData<P>);

impl<P: crate::xring::BenchProtocol> xenmq::driver::Backend for Echo<P> {
    type Protocol = P;
    #[inline(always)]
    fn handle(
        &mut self,
        req: crate::proto::Request,
        _io: &mut xenmq::driver::Io<'_, P>,
    ) -> xenmq::driver::Reply<crate::proto::Response> {
        xenmq::driver::Reply::Now(crate::proto::Response {
            id: 0,
            seq: req.seq as u32,
            status: 0,
        })
    }
}

/// One CPU, both ends, full-ring batches for `budget`: ns per request.
/// Every response is checked (a wrong stream is an error, not a figure).
fn one_cpu<P: crate::xring::BenchProtocol>(budget: Duration, driver: bool) -> Result<f64, Error> {
    use crate::proto::{Request, Response};
    use xenmq::driver::{BackRingOf, Client, FrontRingOf, Server};
    use xenmq::ring::{BackSide, FrontSide};

    let bytes = 4 * 4096;
    let fd = xenmq_sys::memfd(c"xenmq-overhead", bytes, xenmq_sys::MemfdFlags::CLOEXEC)?;
    let map = xenmq_sys::Mapping::file(&fd, 0, bytes, true)?;
    let ring = map.region();
    // Slots in the ring: a full ring is one batch.
    let size = u64::from(FrontRingOf::<P>::init(ring)?.size());
    let (mut seq, mut expect, mut done) = (0u64, 0u64, 0u64);
    let mut bad = false;
    let start = Instant::now();
    if driver {
        let mut c = Client::<P, Quiet>::new();
        c.attach(FrontRingOf::<P>::init(ring)?, Quiet, None);
        let mut s = Server::<P, Quiet>::new();
        s.attach(BackRingOf::<P>::attach(ring)?, Quiet, None);
        let mut echo = Echo::<P>(std::marker::PhantomData);
        while done == 0 || start.elapsed() < budget {
            for _ in 0..64 {
                while seq - done < size {
                    c.queue(Request::new(seq, crate::proto::OP_DATA, 0), None)
                        .map_err(|e| Error::Setup(format!("queue: {e}")))?;
                    seq += 1;
                }
                c.flush().map_err(|e| Error::Setup(format!("flush: {e}")))?;
                s.serve(&mut echo)
                    .map_err(|e| Error::Setup(format!("serve: {e}")))?;
                // Checks in locals, so that they stay in registers.
                let (mut wrong, mut next) = (false, expect);
                c.poll_each(|d| {
                    wrong |= !matches!(&d.result, Ok(r) if r.seq == next as u32);
                    next += 1;
                    d.lease
                })
                .map_err(|e| Error::Setup(format!("poll: {e}")))?;
                bad |= wrong;
                done += next - expect;
                expect = next;
            }
        }
    } else {
        let mut f = FrontRingOf::<P>::init(ring)?;
        let mut b = BackRingOf::<P>::attach(ring)?;
        while done == 0 || start.elapsed() < budget {
            for _ in 0..64 {
                while seq - done < size {
                    f.produce_request(&Request::new(seq, crate::proto::OP_DATA, 0))?;
                    seq += 1;
                }
                f.push_requests()?;
                while let Some(req) = b.consume_request()? {
                    b.produce_response(&Response {
                        id: req.id,
                        seq: req.seq as u32,
                        status: 0,
                    })?;
                }
                b.push_responses()?;
                let (mut wrong, mut next) = (false, expect);
                while let Some(r) = f.consume_response()? {
                    wrong |= r.seq != next as u32;
                    next += 1;
                }
                bad |= wrong;
                done += next - expect;
                expect = next;
            }
        }
    }
    if bad {
        return Err(Error::Setup(
            "one-CPU stream: a response out of sequence".into(),
        ));
    }
    Ok(start.elapsed().as_nanos() as f64 / done as f64)
}

/// The same stream as [`driver_overhead`] (4-page rings, full-ring
/// batches, every response checked), with the frontend in this thread and
/// the backend in a thread pinned to `back_cpu`: raw rings against
/// `Client`/`Server` across the two CPUs, in requests per second. Names:
/// `threads-ring-compat`, `threads-driver-compat`, `threads-ring-native`,
/// `threads-driver-native`. Where the process-pair figures compare with the
/// C ring, these tell the ring from the driver layer on it.
pub fn two_threads(budget: Duration, back_cpu: usize) -> Result<Vec<(&'static str, f64)>, Error> {
    use crate::proto::{Compat4, Native4};
    Ok(vec![
        (
            "threads-ring-compat",
            across::<Compat4>(budget, back_cpu, false)?,
        ),
        (
            "threads-driver-compat",
            across::<Compat4>(budget, back_cpu, true)?,
        ),
        (
            "threads-ring-native",
            across::<Native4>(budget, back_cpu, false)?,
        ),
        (
            "threads-driver-native",
            across::<Native4>(budget, back_cpu, true)?,
        ),
    ])
}

/// One stream across two threads for `budget`: requests per second.
fn across<P: crate::xring::BenchProtocol>(
    budget: Duration,
    back_cpu: usize,
    driver: bool,
) -> Result<f64, Error>
where
    xenmq::driver::BackRingOf<P>: Send,
{
    use crate::proto::{Request, Response};
    use std::sync::atomic::AtomicBool;
    use xenmq::driver::{BackRingOf, Client, FrontRingOf, Server, Spin};
    use xenmq::ring::{BackSide, FrontSide};

    let bytes = 4 * 4096;
    let fd = xenmq_sys::memfd(c"xenmq-threads", bytes, xenmq_sys::MemfdFlags::CLOEXEC)?;
    let map = xenmq_sys::Mapping::file(&fd, 0, bytes, true)?;
    let ring = map.region();
    let size = u64::from(FrontRingOf::<P>::init(ring)?.size());
    // Set by the frontend once every response is in: the backend stops.
    let stop = AtomicBool::new(false);
    let setup = |e: xenmq::driver::Error| Error::Setup(format!("two threads: {e}"));
    std::thread::scope(|scope| -> Result<f64, Error> {
        let (mut front_ring, mut client) = (None, None);
        let back = if driver {
            let mut c = Client::<P, Quiet>::new();
            c.set_spin_policy(Spin::fixed(1024));
            c.attach(FrontRingOf::<P>::init(ring)?, Quiet, None);
            client = Some(c);
            Backer::Server(BackRingOf::<P>::attach(ring)?)
        } else {
            front_ring = Some(FrontRingOf::<P>::init(ring)?);
            Backer::Ring(BackRingOf::<P>::attach(ring)?)
        };
        let stop = &stop;
        let backend = scope.spawn(move || -> Result<(), Error> {
            xenmq_sys::process::pin_to(back_cpu)?;
            match back {
                Backer::Ring(mut b) => {
                    while !stop.load(Ordering::Acquire) {
                        while let Some(req) = b.consume_request()? {
                            b.produce_response(&Response {
                                id: req.id,
                                seq: req.seq as u32,
                                status: 0,
                            })?;
                        }
                        b.push_responses()?;
                        for _ in 0..1024 {
                            if b.has_requests()? {
                                break;
                            }
                            spin_loop();
                        }
                    }
                }
                Backer::Server(b) => {
                    let mut s = Server::<P, Quiet>::new();
                    s.set_spin_policy(Spin::fixed(1024));
                    s.attach(b, Quiet, None);
                    let mut echo = Echo::<P>(std::marker::PhantomData);
                    while !stop.load(Ordering::Acquire) {
                        s.serve(&mut echo).map_err(setup)?;
                        // Quiet's wait returns at once: the loop sees `stop`.
                        s.wait(None).map_err(setup)?;
                    }
                }
            }
            Ok(())
        });
        let (mut seq, mut expect) = (0u64, 0u64);
        let mut bad = false;
        let start = Instant::now();
        let mut deadline_passed = false;
        // Stream until the budget is spent, then take every answer.
        let result = (|| -> Result<(), Error> {
            while !(deadline_passed && expect == seq) {
                if let Some(c) = client.as_mut() {
                    while !deadline_passed && seq - expect < size {
                        c.queue(Request::new(seq, crate::proto::OP_DATA, 0), None)
                            .map_err(setup)?;
                        seq += 1;
                    }
                    c.flush().map_err(setup)?;
                    let (mut wrong, mut next) = (false, expect);
                    let got = c
                        .poll_each(|d| {
                            wrong |= !matches!(&d.result, Ok(r) if r.seq == next as u32);
                            next += 1;
                            d.lease
                        })
                        .map_err(setup)?;
                    bad |= wrong;
                    expect = next;
                    if got == 0 {
                        c.wait_event(None).map_err(setup)?;
                    }
                } else if let Some(f) = front_ring.as_mut() {
                    while !deadline_passed && seq - expect < size {
                        f.produce_request(&Request::new(seq, crate::proto::OP_DATA, 0))?;
                        seq += 1;
                    }
                    f.push_requests()?;
                    let (mut wrong, mut next) = (false, expect);
                    while let Some(r) = f.consume_response()? {
                        wrong |= r.seq != next as u32;
                        next += 1;
                    }
                    bad |= wrong;
                    if next == expect {
                        for _ in 0..1024 {
                            if f.has_responses()? {
                                break;
                            }
                            spin_loop();
                        }
                    }
                    expect = next;
                }
                deadline_passed = deadline_passed || start.elapsed() >= budget;
                if backend.is_finished() {
                    // It only ends on `stop`, or on an error.
                    return Err(Error::Setup(
                        "two threads: the backend stopped early".into(),
                    ));
                }
            }
            Ok(())
        })();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Release);
        let joined = backend
            .join()
            .map_err(|_| Error::Setup("two threads: the backend thread panicked".into()))?;
        result?;
        joined?;
        if bad {
            return Err(Error::Setup(
                "two-thread stream: a response out of sequence".into(),
            ));
        }
        Ok(seq as f64 / elapsed.as_secs_f64())
    })
}

/// The backend's end handed to its thread.
enum Backer<B> {
    Ring(B),
    Server(B),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-thread streams run on both layouts, raw and through the
    /// driver, with the backend on the other CPU (or this one, if there is
    /// only one), each response checked.
    #[test]
    fn two_thread_streams_are_checked_and_timed() {
        let cpus = xenmq_sys::process::allowed_cpus().unwrap();
        let back = *cpus.get(1).or(cpus.first()).unwrap();
        let figs = two_threads(Duration::from_millis(5), back).unwrap();
        let names: Vec<&str> = figs.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "threads-ring-compat",
                "threads-driver-compat",
                "threads-ring-native",
                "threads-driver-native"
            ]
        );
        for (name, rate) in figs {
            assert!(rate.is_finite() && rate > 1000.0, "{name}: {rate}");
        }
    }

    /// The one-CPU streams run on both layouts, raw and through the driver,
    /// each response checked (a wrong one fails the figure).
    #[test]
    fn driver_overhead_streams_are_checked_and_timed() {
        let figs = driver_overhead(Duration::from_millis(5)).unwrap();
        let names: Vec<&str> = figs.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "ring-compat",
                "driver-compat",
                "ring-native",
                "driver-native"
            ]
        );
        for (name, ns) in figs {
            assert!(ns.is_finite() && ns > 0.0, "{name}: {ns}");
        }
    }
}
