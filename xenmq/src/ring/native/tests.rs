use super::*;
use crate::sync::Ordering;
use zerocopy::KnownLayout;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Req {
    id: u64,
    body: [u8; 56],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Rsp {
    id: u64,
    status: u64,
}

#[test]
fn layout_of_one_page() {
    let l = Layout::with::<Req, Rsp>(4096, Slots::Split).unwrap();
    assert_eq!(l.slots(), 32);
    assert_eq!(l.rsp_off, 256 + 32 * 64);
    let l = Layout::new::<Req, Rsp>(4096).unwrap();
    assert_eq!(l.slots(), 32);
    assert_eq!((l.req_off, l.rsp_off, l.rsp_size), (256, 256, 64));
    assert!(Layout::new::<Req, Rsp>(256).is_err());
    assert_eq!(Layout::new::<Req, Rsp>(16384).unwrap().slots(), 128);
}

#[test]
fn round_trip_and_notifications() {
    let r = crate::shm::leak_pages(1);
    let mut f = Front::<Req, Rsp>::init(r).unwrap();
    let mut b = Back::<Req, Rsp>::attach(r).unwrap();
    assert!(!b.final_check_for_requests().unwrap());
    for id in 0..32 {
        f.produce_request(&Req {
            id,
            body: [id as u8; 56],
        })
        .unwrap();
    }
    assert_eq!(
        f.produce_request(&Req {
            id: 99,
            body: [0; 56]
        }),
        Err(Error::Full { size: 32 })
    );
    assert!(f.push_requests().unwrap(), "back armed req_event: notify");
    assert!(!f.push_requests().unwrap(), "nothing new: no notify");
    let mut n = 0;
    while let Some(req) = b.consume_request().unwrap() {
        assert_eq!(req.body, [req.id as u8; 56]);
        b.produce_response(&Rsp {
            id: req.id,
            status: 0,
        })
        .unwrap();
        n += 1;
    }
    assert_eq!(n, 32);
    assert_eq!(
        b.produce_response(&Rsp { id: 0, status: 0 }),
        Err(Error::NoPendingRequest)
    );
    // The front never armed rsp_event past 1, so one notify is due.
    assert!(b.push_responses().unwrap());
    for id in 0..32 {
        assert_eq!(f.consume_response().unwrap().unwrap().id, id);
    }
    assert!(!f.final_check_for_responses().unwrap());
}

#[test]
fn hostile_indices_are_errors() {
    let r = crate::shm::leak_pages(1);
    let mut f = Front::<Req, Rsp>::init(r).unwrap();
    let mut b = Back::<Req, Rsp>::attach(r).unwrap();
    // A frontend claiming 33 requests in a 32-slot ring.
    r.store_u32(REQ_PROD, 33, Ordering::Relaxed).unwrap();
    let e = b.consume_request().unwrap_err();
    assert!(matches!(e, Error::PeerOverflow { .. }), "{e:?}");
    // The fault sticks, even once the index looks honest again.
    r.store_u32(REQ_PROD, 0, Ordering::Relaxed).unwrap();
    assert_eq!(b.consume_request(), Err(e));
    assert_eq!(b.final_check_for_requests(), Err(e));
    assert_eq!(b.fault(), Some(e));
    // A backend answering a request never sent.
    r.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
    let e = f.consume_response().unwrap_err();
    assert!(matches!(e, Error::PeerOverflow { .. }), "{e:?}");
    r.store_u32(RSP_PROD, 0, Ordering::Relaxed).unwrap();
    assert_eq!(f.has_responses(), Err(e));
    f.produce_request(&Req {
        id: 1,
        body: [0; 56],
    })
    .unwrap();
    assert_eq!(
        f.push_requests(),
        Err(e),
        "a faulted ring publishes nothing"
    );
}

/// A seeded stream through both ends, in random batch sizes, with a
/// hostile peer scribbling on the shared indices and slots now and then:
/// messages arrive in order while nobody scribbles, and scribbling yields
/// typed errors or garbage copies, never a panic.
#[test]
fn random_stream_with_a_scribbling_peer() {
    for slots in [Slots::Shared, Slots::Split] {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let r = crate::shm::leak_pages(4);
        let mut f = Front::<Req, Rsp>::init_with(r, slots).unwrap();
        let mut b = Back::<Req, Rsp>::attach_with(r, slots).unwrap();
        let (mut next, mut expect) = (0u64, 0u64);
        for _ in 0..5000 {
            for _ in 0..rand() % 8 {
                if f.produce_request(&Req {
                    id: next,
                    body: [next as u8; 56],
                })
                .is_ok()
                {
                    next += 1;
                }
            }
            f.push_requests().unwrap();
            for _ in 0..rand() % 8 {
                match b.consume_request() {
                    Ok(Some(req)) => {
                        assert_eq!(req.body, [req.id as u8; 56]);
                        b.produce_response(&Rsp {
                            id: req.id,
                            status: 0,
                        })
                        .unwrap();
                    }
                    Ok(None) => break,
                    Err(e) => panic!("honest stream failed: {e}"),
                }
            }
            b.push_responses().unwrap();
            while let Some(rsp) = f.consume_response().unwrap() {
                assert_eq!(rsp.id, expect);
                expect += 1;
            }
        }
        assert!(expect > 1000, "the stream moved: {expect}");
        // Now the peer turns hostile: random words anywhere in the area.
        for _ in 0..20000 {
            let off = (rand() as usize % (16384 / 4)) * 4;
            r.store_u32(off, rand() as u32, Ordering::Relaxed).unwrap();
            let _ = f.produce_request(&Req {
                id: 0,
                body: [0; 56],
            });
            let _ = f.push_requests();
            if let Ok(Some(req)) = b.consume_request() {
                let _ = b.produce_response(&Rsp {
                    id: req.id,
                    status: 1,
                });
            }
            let _ = b.push_responses();
            let _ = f.consume_response();
            let _ = f.final_check_for_responses();
            let _ = b.final_check_for_requests();
        }
    }
}

#[test]
fn a_quarter_ring_is_published_on_its_own() {
    let r = crate::shm::leak_pages(1);
    let mut f = Front::<Req, Rsp>::init(r).unwrap();
    let mut b = Back::<Req, Rsp>::attach(r).unwrap();
    assert!(!b.final_check_for_requests().unwrap(), "armed, nothing yet");
    for id in 0..7 {
        f.produce_request(&Req { id, body: [0; 56] }).unwrap();
    }
    assert!(!b.has_requests().unwrap(), "7 puts: not yet published");
    f.produce_request(&Req {
        id: 7,
        body: [0; 56],
    })
    .unwrap();
    assert!(
        b.has_requests().unwrap(),
        "8 puts (a quarter of 32): published"
    );
    f.produce_request(&Req {
        id: 8,
        body: [0; 56],
    })
    .unwrap();
    // The auto-publish found req_event armed: the push reports it.
    assert!(f.push_requests().unwrap());
    assert!(!f.push_requests().unwrap());
    let mut ids = alloc::vec::Vec::new();
    while let Some(req) = b.consume_request().unwrap() {
        ids.push(req.id);
    }
    assert_eq!(ids, (0..9).collect::<alloc::vec::Vec<_>>());
}
