//! xenmq's ring on the simulator's grants and event channels: a frontend
//! and a backend domain exchanging requests, and a host that corrupts the
//! ring's indices as a hostile peer would.

use std::time::Duration;

use xenmq::evtchn::{Channel as _, Events};
use xenmq::grant::{Access, Grants, Pages, Shared as _};
use xenmq::ring::{compat, Error as RingError};
use xenmq_runtime::sim::{fault, Domain, Host};
use xenmq_tests::run_dir;

/// Offset of `req_prod` in the shared ring header (`xen/io/ring.h`).
const REQ_PROD: u32 = 0;

#[test]
fn requests_and_responses_cross_domains_through_the_ring() {
    let dir = run_dir("ring");
    let host = Host::start(&dir).unwrap();
    let id = host.create_domain("front").unwrap();
    let dom0 = Domain::connect(&dir, 0).unwrap();
    let guest = Domain::connect(&dir, id).unwrap();

    // Frontend: share a page, initialise the ring on it, offer a port.
    let page = guest.share(0, 1, Access::ReadWrite).unwrap();
    let mut front: compat::Front<u64, u64> = compat::Front::init(page.region()).unwrap();
    let fch = guest.alloc_unbound(0).unwrap();
    let (gref, port) = (page.refs()[0], fch.port());

    // Backend in its own thread: map, attach, answer each request with
    // its square until request 0.
    let backend = std::thread::spawn(move || {
        let mapped = dom0.map(id, &[gref], Access::ReadWrite).unwrap();
        let bch = dom0.bind_interdomain(id, port).unwrap();
        let mut back: compat::Back<u64, u64> = compat::Back::attach(mapped.region()).unwrap();
        let mut answered = 0u64;
        loop {
            while let Some(q) = back.consume_request().unwrap() {
                back.produce_response(&(q * q)).unwrap();
                answered += 1;
                if q == 0 {
                    if back.push_responses().unwrap() {
                        bch.notify().unwrap();
                    }
                    return answered;
                }
            }
            if back.push_responses().unwrap() {
                bch.notify().unwrap();
            }
            if !back.final_check_for_requests().unwrap() {
                bch.wait(Some(Duration::from_secs(10))).unwrap();
            }
        }
    });

    let n = 2000u64;
    let mut next = 1u64;
    let mut got = 0u64;
    while got < n {
        while next <= n && !front.is_full() {
            let q = if next == n { 0 } else { next };
            front.produce_request(&q).unwrap();
            next += 1;
        }
        if front.push_requests().unwrap() {
            fch.notify().unwrap();
        }
        while let Some(r) = front.consume_response().unwrap() {
            got += 1;
            let q = if got == n { 0 } else { got };
            assert_eq!(r, q * q);
        }
        let can_produce = next <= n && !front.is_full();
        // Sleep only with requests in flight and nothing else to do.
        if got < n && !can_produce && !front.final_check_for_responses().unwrap() {
            assert!(
                fch.wait(Some(Duration::from_secs(10))).unwrap(),
                "backend stalled"
            );
        }
    }
    assert_eq!(backend.join().unwrap(), n);
    page.end_access().unwrap();
}

#[test]
fn corrupted_ring_indices_are_a_peer_fault_not_a_crash() {
    let dir = run_dir("ringfault");
    let host = Host::start(&dir).unwrap();
    let id = host.create_domain("front").unwrap();
    let dom0 = Domain::connect(&dir, 0).unwrap();
    let guest = Domain::connect(&dir, id).unwrap();
    let page = guest.share(0, 1, Access::ReadWrite).unwrap();
    let mut front: compat::Front<u64, u64> = compat::Front::init(page.region()).unwrap();
    let mapped = dom0.map(id, page.refs(), Access::ReadWrite).unwrap();
    let mut back: compat::Back<u64, u64> = compat::Back::attach(mapped.region()).unwrap();
    front.produce_request(&7).unwrap();
    front.push_requests().unwrap();
    assert_eq!(back.consume_request().unwrap(), Some(7));

    // The host, as a hostile frontend, claims 1000 new requests on a ring
    // of far fewer slots.
    host.poke(id, page.refs()[0], REQ_PROD, &1001u32.to_le_bytes())
        .unwrap();
    let err = back.consume_request().unwrap_err();
    assert!(
        matches!(
            err,
            RingError::PeerOverflow {
                prod: 1001,
                cons: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // The fault sticks.
    assert!(back.consume_request().is_err());

    // A seeded corruption repeats: the same seed writes the same index.
    let a = host.corrupt(id, page.refs()[0], 77, &[REQ_PROD]).unwrap();
    let b = host.corrupt(id, page.refs()[0], 77, &[REQ_PROD]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, fault::corruption(77, &[REQ_PROD]));
    let mut fresh: compat::Back<u64, u64> = compat::Back::attach_at(mapped.region(), 1).unwrap();
    match fresh.unconsumed_requests() {
        Ok(n) => assert!(n <= fresh.size()),
        Err(e) => assert!(matches!(e, RingError::PeerOverflow { .. }), "{e:?}"),
    }
    drop((front, back, fresh, mapped));
    page.end_access().unwrap();
}
