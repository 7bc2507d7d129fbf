//! Proves that the xenmq contenders' hot path allocates nothing per
//! message: a counting global allocator (`allocation-counter`'s), counting per
//! thread on the two threads that run the frontend ([`Client`] queue,
//! flush, submit, poll_each, leases and waits) and the backend ([`Server`] serve
//! and wait), must see zero allocations while thousands of messages go
//! through, in every mode and wait policy. Everything is set up (rings,
//! client and server attached, buffers, the latency vector's capacity)
//! before counting starts, as the benchmark does.
//!
//! [`Client`]: xenmq::driver::Client
//! [`Server`]: xenmq::driver::Server

use xenmq::shm::Region;
use xenmq_sys::{EventFd, EventfdFlags, Mapping, MemfdFlags};

use crate::peer::{DATA_LEN, DATA_OFF, RING_OFF, SHM_LEN};
use crate::proto::{Compat1, Compat4, Native1, Native4};
use crate::xring::{self, BenchProtocol, Phase};
use crate::Mode;

/// Runs `f` and returns what it returned and how many allocations (and
/// reallocations) it made on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    let out = out.unwrap_or_else(|| unreachable!("measure runs the closure"));
    (out, info.count_total)
}

#[test]
fn the_counter_counts() {
    let (v, n) = counted(|| vec![1u8; 10]);
    assert_eq!(v.len(), 10);
    assert_eq!(n, 1);
}

/// Runs every mode and wait policy through a client and a server of `P`
/// on two threads over `pages` pages of shared ring, and asserts that
/// neither allocates.
fn assert_no_allocation<P: BenchProtocol>(pages: usize) {
    let memfd = xenmq_sys::memfd(c"alloc-test", SHM_LEN, MemfdFlags::empty()).unwrap();
    let map = Mapping::file(&memfd, 0, SHM_LEN, true).unwrap();
    let shm = map.region();
    let ring = shm.subregion(RING_OFF, pages * 4096).unwrap();
    let data: Region = shm.subregion(DATA_OFF, DATA_LEN).unwrap();
    let (ev_back, ev_front) = (
        EventFd::new(EventfdFlags::empty()).unwrap(),
        EventFd::new(EventfdFlags::empty()).unwrap(),
    );
    for spin in [0, 64] {
        // A fresh ring per wait policy (the spin budget is set at attach).
        let mut front = xring::Front::<P>::new(ring, data, &ev_front, &ev_back, spin).unwrap();
        std::thread::scope(|s| {
            let backend = s.spawn(|| {
                let mut back =
                    xring::Back::<P>::new(ring, data, &ev_back, &ev_front, spin).unwrap();
                let mut bad = 0;
                let (r, n) = counted(|| {
                    back.run(|c| {
                        bad = c.errors;
                        Ok(())
                    })
                });
                r.unwrap();
                assert_eq!(bad, 0, "the backend saw bad requests");
                n
            });
            let mut lat = Vec::with_capacity(100_000);
            let mut total = 0;
            let mut allocs = 0;
            for mode in [Mode::Tput, Mode::Lat, Mode::Bulk] {
                let (out, n) = counted(|| front.run(mode, 3000, u64::MAX / 2, &mut lat));
                let out = out.unwrap();
                assert_eq!(out.errors, 0, "{mode:?}: bad responses");
                assert_eq!(out.ops, 3000, "{mode:?}: every request answered");
                assert!(out.pushes > 0, "{mode:?}: requests published");
                total += out.ops;
                allocs += n;
            }
            let (stop, n) = counted(|| front.run(Mode::Stop, 1, 0, &mut lat));
            assert_eq!(stop.unwrap().ops, 1);
            allocs += n;
            let back_allocs = backend.join().unwrap();
            assert_eq!(total, 9000);
            assert_eq!(
                allocs, 0,
                "frontend allocated on the hot path (spin {spin})"
            );
            assert_eq!(
                back_allocs, 0,
                "backend allocated on the hot path (spin {spin})"
            );
        });
    }
    drop(map);
}

#[test]
fn compat_client_server_hot_path_allocates_nothing() {
    assert_no_allocation::<Compat1>(1);
    assert_no_allocation::<Compat4>(4);
}

#[test]
fn native_client_server_hot_path_allocates_nothing() {
    assert_no_allocation::<Native1>(1);
    assert_no_allocation::<Native4>(4);
}
