//! Proves that xenmq's ring hot path allocates nothing per message: a
//! counting global allocator (`sys::counting`), counting per thread on the
//! two threads that run the frontend and backend loops, must see zero
//! allocations while thousands of messages go through, in every mode and
//! wait policy. Everything is set up (rings, buffers, the latency vector's
//! capacity) before counting starts, as the benchmark does.

use std::os::fd::AsRawFd;

use xenmq::ring::{self, native};
use xenmq::shm::Region;

use crate::proto::{Req, Rsp, BUF};
use crate::sys::counting::counted;
use crate::sys::{self, EventFd, Mapping};
use crate::{xring, Mode, DATA_LEN, DATA_OFF, RING_OFF, SHM_LEN};

#[test]
fn the_counter_counts() {
    let (v, n) = counted(|| vec![1u8; 10]);
    assert_eq!(v.len(), 10);
    assert_eq!(n, 1);
}

/// Runs every mode and wait policy through `front` and `back` (two ends of
/// one ring) on two threads and asserts that neither allocates.
fn assert_no_allocation<F, B>(front: F, mut back: B, data: Region)
where
    F: xring::FrontOps + Send,
    B: xring::BackOps + Send,
{
    let (ev_back, ev_front) = (EventFd::new().unwrap(), EventFd::new().unwrap());
    let mut front = xring::Front::new(front, data).unwrap();
    let nslots = front_size(&front);

    std::thread::scope(|s| {
        let backend = s.spawn(|| {
            let mut buf = Box::new([0u64; BUF / 8]);
            let mut bad = 0;
            let (r, n) = counted(|| {
                xring::back_run(
                    &mut back,
                    data,
                    nslots,
                    &ev_back,
                    &ev_front,
                    64,
                    &mut buf,
                    |c| {
                        bad = c.errors;
                        Ok(())
                    },
                )
            });
            r.unwrap();
            assert_eq!(bad, 0, "the backend saw bad requests");
            n
        });
        let mut lat = Vec::with_capacity(100_000);
        let mut total = 0;
        let mut allocs = 0;
        for mode in [Mode::Tput, Mode::Lat, Mode::Bulk] {
            for spin in [0, 64] {
                let (out, n) = counted(|| {
                    front.run(
                        &ev_front,
                        &ev_back,
                        spin,
                        mode,
                        3000,
                        u64::MAX / 2,
                        &mut lat,
                    )
                });
                let out = out.unwrap();
                assert_eq!(out.errors, 0, "{mode:?}: bad responses");
                assert_eq!(out.ops, 3000, "{mode:?}: every request answered");
                total += out.ops;
                allocs += n;
            }
        }
        let (stop, n) = counted(|| front.run(&ev_front, &ev_back, 0, Mode::Stop, 1, 0, &mut lat));
        stop.unwrap();
        allocs += n;
        let back_allocs = backend.join().unwrap();
        assert_eq!(total, 18_000);
        assert_eq!(allocs, 0, "frontend allocated on the hot path");
        assert_eq!(back_allocs, 0, "backend allocated on the hot path");
    });
}

fn front_size<F: xring::FrontOps>(f: &xring::Front<F>) -> u32 {
    f.ring().size()
}

/// A memfd mapping holding a one-page ring and the bulk pool.
fn shared() -> (Mapping, Region, Region) {
    let memfd = sys::memfd(c"alloc-test", SHM_LEN).unwrap();
    let map = Mapping::new(memfd.as_raw_fd(), SHM_LEN).unwrap();
    let shm = map.region();
    let ring = shm.subregion(RING_OFF, 4096).unwrap();
    let data = shm.subregion(DATA_OFF, DATA_LEN).unwrap();
    (map, ring, data)
}

#[test]
fn native_ring_hot_path_allocates_nothing() {
    let (map, ring, data) = shared();
    let front = native::Front::<Req, Rsp>::init(ring).unwrap();
    let back = native::Back::<Req, Rsp>::attach(ring).unwrap();
    assert_no_allocation(front, back, data);
    drop(map);
}

#[test]
fn compat_ring_hot_path_allocates_nothing() {
    let (map, ring, data) = shared();
    let front = ring::FrontRing::<Req, Rsp>::init(ring).unwrap();
    let back = xring::CompatBack::new(ring::BackRing::<Req, Rsp>::attach(ring, 0).unwrap());
    assert_no_allocation(front, back, data);
    drop(map);
}
