//! Unit and property tests of the ring, with a hostile peer scribbling on
//! the shared page between operations.

use std::string::ToString;
use std::vec::Vec;

use proptest::prelude::*;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::*;
use crate::shm::leak_pages;

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Req {
    id: u64,
    seed: u64,
    op: u32,
    len: u32,
    data: [u8; 16],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Rsp {
    id: u64,
    sum: u64,
    status: i32,
    op: u32,
    echo: [u8; 32],
}

/// Big entries: a 1-page ring of these has 2 slots, so wrap-around is common.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Big {
    id: u32,
    body: [u8; 1500],
}

fn req(id: u64) -> Req {
    Req {
        id,
        seed: id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        op: (id % 7) as u32,
        len: 16,
        data: core::array::from_fn(|i| (id as u8).wrapping_add(i as u8)),
    }
}

fn rsp(id: u64) -> Rsp {
    Rsp {
        id,
        sum: id.wrapping_mul(31),
        status: -(id as i32 % 3),
        op: 0,
        echo: core::array::from_fn(|i| (id as u8) ^ (i as u8)),
    }
}

fn big(id: u32) -> Big {
    Big {
        id,
        body: [id as u8; 1500],
    }
}

fn pair(pages: usize) -> (Front<Req, Rsp>, Back<Req, Rsp>) {
    let region = leak_pages(pages);
    let front = Front::init(region).unwrap();
    let back = Back::attach(region).unwrap();
    (front, back)
}

#[test]
fn layout_matches_ring_h_arithmetic() {
    // (4096 - 64) / 56 = 72 -> 64; (16384 - 64) / 56 = 291 -> 256.
    let l = Layout::new::<Req, Rsp>(4096).unwrap();
    assert_eq!(
        l,
        Layout {
            entry_size: 56,
            entry_align: 8,
            entries_offset: 64,
            size: 64
        }
    );
    assert_eq!(Layout::new::<Req, Rsp>(4 * 4096).unwrap().size, 256);
    assert_eq!(Layout::new::<Req, Rsp>(16 * 4096).unwrap().size, 1024);
    // A union of a 6-byte, 2-aligned and a 4-byte, 4-aligned type is 8 bytes.
    assert_eq!(Layout::new::<[u16; 3], u32>(4096).unwrap().entry_size, 8);
    assert_eq!(Layout::new::<Big, Big>(4096).unwrap().size, 2);
    assert_eq!(round_down_pow2(0), 0);
    assert_eq!(round_down_pow2(1), 1);
    assert_eq!(round_down_pow2(255), 128);
    assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
}

#[test]
fn layout_rejects_bad_regions_and_entries() {
    for len in [0, 64, 4095, 3 * 4096, 32 * 4096] {
        assert_eq!(
            Layout::new::<Req, Rsp>(len),
            Err(Error::RegionSize { len }),
            "{len}"
        );
    }
    assert!(matches!(
        Layout::new::<(), ()>(4096),
        Err(Error::Layout { size: 0, .. })
    ));
    assert!(matches!(
        Layout::new::<[u8; 5000], u8>(4096),
        Err(Error::Layout { size: 5000, .. })
    ));
    #[derive(FromBytes, IntoBytes, Immutable)]
    #[repr(C, align(128))]
    struct Wide([u8; 128]);
    assert!(matches!(
        Layout::new::<Wide, u8>(4096),
        Err(Error::Layout { align: 128, .. })
    ));
}

#[test]
fn init_writes_the_shared_ring_init_header() {
    let region = leak_pages(1);
    region.fill(0, 4096, 0xff).unwrap();
    let front = Front::<Req, Rsp>::init(region).unwrap();
    let mut header = [0u8; 64];
    region.read_bytes(0, &mut header).unwrap();
    let mut expect = [0u8; 64];
    expect[4] = 1; // req_event
    expect[12] = 1; // rsp_event
    assert_eq!(header, expect);
    // Entries are left alone.
    assert_eq!(region.read::<u8>(64).unwrap(), 0xff);
    assert_eq!(front.free_requests(), 64);
    assert!(!front.is_full());
}

#[test]
fn requests_and_responses_round_trip_in_order() {
    let (mut front, mut back) = pair(1);
    let mut next_rsp = 0u64;
    for round in 0..50u64 {
        let n = 1 + round % 64;
        for i in 0..n {
            front.produce_request(&req(round * 100 + i)).unwrap();
        }
        front.push_requests().unwrap();
        let got: Vec<Req> = back.requests().unwrap().collect();
        assert_eq!(got.len() as u64, n);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(*r, req(round * 100 + i as u64));
            back.produce_response(&rsp(r.id)).unwrap();
        }
        back.push_responses().unwrap();
        for r in front.responses().unwrap() {
            assert_eq!(r, rsp(r.id));
            assert_eq!(r.id / 100, round);
            next_rsp += 1;
        }
    }
    assert_eq!(front.rsp_cons() as u64, next_rsp);
    assert_eq!(back.req_cons(), front.req_prod_pvt());
}

/// Starts both ends at `index` as ring.h's ATTACH would after the shared
/// indices were set there.
fn attached_pair(pages: usize, index: u32) -> (Front<Big, Big>, Back<Big, Big>) {
    let region = leak_pages(pages);
    init_shared(&region).unwrap();
    for (field, v) in [
        (REQ_PROD, index),
        (RSP_PROD, index),
        (REQ_EVENT, index.wrapping_add(1)),
        (RSP_EVENT, index.wrapping_add(1)),
    ] {
        region.store_u32(field, v, Ordering::Relaxed).unwrap();
    }
    (
        Front::attach_at(region, index).unwrap(),
        Back::attach_at(region, index).unwrap(),
    )
}

#[test]
fn indices_wrap_around_u32() {
    let (mut front, mut back) = attached_pair(1, u32::MAX - 5);
    for id in 0..40u32 {
        // Two slots: the second request fills the ring, a third is refused.
        front.produce_request(&big(id)).unwrap();
        front.produce_request(&big(id)).unwrap();
        assert_eq!(
            front.produce_request(&big(id)),
            Err(Error::Full { size: 2 })
        );
        front.push_requests().unwrap();
        let got = back.consume_request().unwrap().unwrap();
        assert_eq!(got, big(id));
        let got2 = back.consume_request().unwrap().unwrap();
        assert_eq!(got2, big(id));
        assert_eq!(back.consume_request().unwrap(), None);
        back.produce_responses(&[big(id), big(id + 1), big(id + 2)])
            .map(|n| assert_eq!(n, 2))
            .unwrap();
        back.push_responses().unwrap();
        assert_eq!(front.unconsumed_responses().unwrap(), 2);
        assert_eq!(front.consume_response().unwrap(), Some(big(id)));
        assert_eq!(front.consume_response().unwrap(), Some(big(id + 1)));
        assert_eq!(front.consume_response().unwrap(), None);
    }
    assert_eq!(front.rsp_cons(), (u32::MAX - 5).wrapping_add(80));
}

#[test]
fn full_ring_refuses_and_batches_stop_at_free_room() {
    let (mut front, mut back) = pair(1);
    let reqs: Vec<Req> = (0..100).map(req).collect();
    assert_eq!(front.produce_requests(&reqs).unwrap(), 64);
    assert!(front.is_full());
    assert_eq!(
        front.produce_request(&req(0)),
        Err(Error::Full { size: 64 })
    );
    assert_eq!(front.produce_requests(&reqs).unwrap(), 0);
    front.push_requests().unwrap();
    // Consuming requests does not free slots: answering them does.
    assert_eq!(back.requests().unwrap().take(10).count(), 10);
    assert_eq!(back.pending_responses(), 10);
    assert_eq!(back.unconsumed_requests().unwrap(), 54);
    back.produce_responses(&[rsp(0); 20]).unwrap();
    assert_eq!(back.pending_responses(), 0);
    assert_eq!(back.produce_response(&rsp(0)), Err(Error::NoPendingRequest));
    back.push_responses().unwrap();
    assert!(front.is_full());
    let mut rsps = front.responses().unwrap();
    assert_eq!(rsps.len(), 10);
    assert_eq!(rsps.by_ref().take(4).count(), 4);
    assert_eq!(rsps.len(), 6);
    assert_eq!(rsps.count(), 6);
    assert_eq!(front.free_requests(), 10);
}

#[test]
fn notifications_follow_the_event_indices() {
    let (mut front, mut back) = pair(1);
    // Fresh ring: req_event = 1, so the first push notifies.
    front.produce_request(&req(0)).unwrap();
    assert!(front.push_requests().unwrap());
    // The backend has not re-armed: further pushes are silent.
    front.produce_request(&req(1)).unwrap();
    assert!(!front.push_requests().unwrap());
    // Pushing nothing is silent.
    assert!(!front.push_requests().unwrap());
    assert!(back.final_check_for_requests().unwrap());
    assert_eq!(back.requests().unwrap().count(), 2);
    // Nothing left: re-arms req_event = req_cons + 1 and reports no work.
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(
        back.region()
            .load_u32(REQ_EVENT, Ordering::Relaxed)
            .unwrap(),
        3
    );
    front.produce_request(&req(2)).unwrap();
    front.produce_request(&req(3)).unwrap();
    assert!(front.push_requests().unwrap());

    // Responses: rsp_event = 1 from init; the first push of rsp 0 notifies.
    back.produce_responses(&[rsp(0), rsp(1)]).unwrap();
    assert!(back.push_responses().unwrap());
    assert!(front.final_check_for_responses().unwrap());
    assert_eq!(front.responses().unwrap().count(), 2);
    assert!(!front.final_check_for_responses().unwrap());
    assert_eq!(back.requests().unwrap().count(), 2);
    back.produce_response(&rsp(2)).unwrap();
    assert!(back.push_responses().unwrap());
    back.produce_response(&rsp(3)).unwrap();
    assert!(!back.push_responses().unwrap());
}

#[test]
fn final_check_sees_work_that_raced_in() {
    let (mut front, mut back) = pair(1);
    front.produce_request(&req(0)).unwrap();
    front.push_requests().unwrap();
    assert!(back.final_check_for_requests().unwrap());
    // A check that finds work leaves req_event alone.
    assert_eq!(
        back.region()
            .load_u32(REQ_EVENT, Ordering::Relaxed)
            .unwrap(),
        1
    );
}

#[test]
fn request_overflow_is_reported_and_sticks() {
    let (mut front, mut back) = pair(1);
    let region = back.region();
    front.produce_requests(&[req(0); 3]).unwrap();
    front.push_requests().unwrap();
    assert_eq!(back.requests().unwrap().count(), 3);
    // Three requests consumed, unanswered: room for 61 more, not 62.
    region
        .store_u32(REQ_PROD, 3 + 61, Ordering::Relaxed)
        .unwrap();
    assert_eq!(back.unconsumed_requests().unwrap(), 61);
    region
        .store_u32(REQ_PROD, 3 + 62, Ordering::Relaxed)
        .unwrap();
    let e = Error::PeerOverflow {
        prod: 65,
        cons: 3,
        max: 61,
    };
    assert_eq!(back.unconsumed_requests(), Err(e));
    assert_eq!(back.fault(), Some(e));
    // Even with an honest index restored, the ring stays faulted.
    region.store_u32(REQ_PROD, 3, Ordering::Relaxed).unwrap();
    assert_eq!(back.unconsumed_requests(), Err(e));
    assert_eq!(back.requests().err(), Some(e));
    assert_eq!(back.consume_request(), Err(e));
    assert_eq!(back.final_check_for_requests(), Err(e));
    assert_eq!(back.produce_response(&rsp(0)), Err(e));
    assert_eq!(back.push_responses(), Err(e));
    assert_eq!(
        e.to_string(),
        "peer's producer index 65 is 62 entries past consumer index 3, but at most 61 can be"
    );
}

#[test]
fn producer_index_stepping_back_within_bounds_changes_nothing_taken() {
    // The prefetch bookkeeping remembers the last checked producer index;
    // a peer that moves it back (not behind the consumer) and forward again
    // must still get exactly its entries, in order, on both sides.
    let (mut front, mut back) = pair(1);
    let reqs: Vec<Req> = (0..6).map(req).collect();
    assert_eq!(front.produce_requests(&reqs).unwrap(), 6);
    front.push_requests().unwrap();
    assert_eq!(back.unconsumed_requests(), Ok(6));
    assert_eq!(back.consume_request().unwrap(), Some(req(0)));
    back.region()
        .store_u32(REQ_PROD, 2, Ordering::Relaxed)
        .unwrap();
    let got: Vec<Req> = back.requests().unwrap().collect();
    assert_eq!(got, [req(1)]);
    back.region()
        .store_u32(REQ_PROD, 6, Ordering::Relaxed)
        .unwrap();
    let got: Vec<Req> = back.requests().unwrap().collect();
    assert_eq!(got, (2..6).map(req).collect::<Vec<_>>());
    assert_eq!(back.fault(), None);

    let rsps: Vec<Rsp> = (0..6).map(rsp).collect();
    assert_eq!(back.produce_responses(&rsps).unwrap(), 6);
    back.push_responses().unwrap();
    assert_eq!(front.unconsumed_responses(), Ok(6));
    assert_eq!(front.consume_response().unwrap(), Some(rsp(0)));
    front
        .region()
        .store_u32(RSP_PROD, 3, Ordering::Relaxed)
        .unwrap();
    let got: Vec<Rsp> = front.responses().unwrap().collect();
    assert_eq!(got, [rsp(1), rsp(2)]);
    front
        .region()
        .store_u32(RSP_PROD, 6, Ordering::Relaxed)
        .unwrap();
    let got: Vec<Rsp> = front.responses().unwrap().collect();
    assert_eq!(got, (3..6).map(rsp).collect::<Vec<_>>());
    assert_eq!(front.fault(), None);
}

#[test]
fn request_index_moving_backwards_is_an_overflow() {
    let (mut front, mut back) = pair(1);
    front.produce_requests(&[req(0); 5]).unwrap();
    front.push_requests().unwrap();
    assert_eq!(back.requests().unwrap().count(), 5);
    back.region()
        .store_u32(REQ_PROD, 4, Ordering::Relaxed)
        .unwrap();
    assert!(matches!(
        back.unconsumed_requests(),
        Err(Error::PeerOverflow {
            prod: 4,
            cons: 5,
            ..
        })
    ));
}

#[test]
fn response_overflow_is_reported_and_sticks() {
    let (mut front, _back) = pair(1);
    let region = front.region();
    front.produce_requests(&[req(0); 4]).unwrap();
    // Produced but not pushed: the backend cannot answer these yet.
    region.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
    let e = Error::PeerOverflow {
        prod: 1,
        cons: 0,
        max: 0,
    };
    assert_eq!(front.unconsumed_responses(), Err(e));
    assert_eq!(front.produce_request(&req(0)), Err(e));
    assert_eq!(front.push_requests(), Err(e));
    assert_eq!(front.final_check_for_responses(), Err(e));
    assert_eq!(front.responses().err(), Some(e));
}

#[test]
fn responses_up_to_the_pushed_requests_are_accepted() {
    let (mut front, _back) = pair(1);
    let region = front.region();
    front.produce_requests(&[req(0); 4]).unwrap();
    front.push_requests().unwrap();
    region.store_u32(RSP_PROD, 4, Ordering::Relaxed).unwrap();
    assert_eq!(front.responses().unwrap().count(), 4);
    region.store_u32(RSP_PROD, 5, Ordering::Relaxed).unwrap();
    assert!(matches!(
        front.unconsumed_responses(),
        Err(Error::PeerOverflow {
            prod: 5,
            cons: 4,
            max: 0
        })
    ));
}

#[test]
fn a_second_shared_memory_error_path_is_a_local_error() {
    // A sub-page region cannot host a ring.
    let region = leak_pages(1).subregion(0, 2048).unwrap();
    assert_eq!(
        Front::<Req, Rsp>::init(region).err(),
        Some(Error::RegionSize { len: 2048 })
    );
    assert!(matches!(
        leak_pages(1).subregion(64, 4096),
        Err(shm::Error::OutOfBounds { .. })
    ));
}

// ---------------------------------------------------------------------------
// Property tests: a hostile peer.

/// One step of a hostile peer or of our side.
#[derive(Clone, Debug)]
enum Step {
    /// The peer sets its producer index relative to our consumer index.
    ProdRel(i64),
    /// The peer writes any value into any header word.
    Header(usize, u32),
    /// The peer scribbles on an entry byte.
    Scribble(usize, u8),
    /// We take up to n entries.
    Consume(usize),
    /// We produce up to n entries.
    Produce(usize),
    /// We push.
    Push,
    /// We final-check.
    FinalCheck,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (-4i64..80).prop_map(Step::ProdRel),
        1 => (0usize..16, any::<u32>()).prop_map(|(w, v)| Step::Header(w * 4, v)),
        2 => (64usize..4096, any::<u8>()).prop_map(|(o, b)| Step::Scribble(o, b)),
        3 => (0usize..80).prop_map(Step::Consume),
        3 => (0usize..80).prop_map(Step::Produce),
        2 => Just(Step::Push),
        2 => Just(Step::FinalCheck),
    ]
}

/// The backend facing a hostile frontend.
fn hostile_frontend(pages: usize, start: u32, steps: &[Step]) {
    let region = leak_pages(pages);
    init_shared(&region).unwrap();
    region
        .store_u32(REQ_PROD, start, Ordering::Relaxed)
        .unwrap();
    let mut back = Back::<Req, Rsp>::attach_at(region, start).unwrap();
    let size = back.size();
    let mut fault: Option<Error> = None;
    for s in steps {
        // The model: what the ring must say about the peer's req_prod now.
        let prod = region.load_u32(REQ_PROD, Ordering::Relaxed).unwrap();
        let room = size - back.pending_responses();
        let expect = fault.or_else(|| {
            let avail = prod.wrapping_sub(back.req_cons());
            (avail > room).then_some(Error::PeerOverflow {
                prod,
                cons: back.req_cons(),
                max: room,
            })
        });
        let before = back.req_cons();
        match s {
            Step::ProdRel(d) => {
                let v = (back.req_cons() as i64).wrapping_add(*d) as u32;
                region.store_u32(REQ_PROD, v, Ordering::Relaxed).unwrap();
                continue;
            }
            Step::Header(off, v) => {
                region.store_u32(*off, *v, Ordering::Relaxed).unwrap();
                continue;
            }
            Step::Scribble(off, b) => {
                region.write(*off % region.len(), b).unwrap();
                continue;
            }
            Step::Consume(n) => match back.requests() {
                Ok(it) => {
                    assert_eq!(expect, None);
                    let avail = it.len();
                    assert!(avail as u32 <= room);
                    assert_eq!(it.take(*n).count(), avail.min(*n));
                }
                Err(e) => assert_eq!(Some(e), expect),
            },
            Step::Produce(n) => {
                let pending = back.pending_responses() as usize;
                match back.produce_responses(&std::vec![rsp(1); *n]) {
                    Ok(k) => assert_eq!(k, pending.min(*n)),
                    Err(e) => assert_eq!(Some(e), fault),
                }
            }
            Step::Push => {
                if let Err(e) = back.push_responses() {
                    assert_eq!(Some(e), fault);
                }
            }
            Step::FinalCheck => match back.final_check_for_requests() {
                // The peer cannot change req_prod during the call here, so
                // the answer is the model's.
                Ok(work) => {
                    assert_eq!(expect, None);
                    assert_eq!(work, prod != back.req_cons());
                }
                Err(e) => assert_eq!(Some(e), expect),
            },
        }
        // Work per call is bounded by the ring size; invariants hold.
        assert!(back.req_cons().wrapping_sub(before) <= size);
        assert!(back.pending_responses() <= size);
        if matches!(s, Step::Consume(_) | Step::FinalCheck) && expect.is_some() {
            fault = expect;
        }
        assert_eq!(back.fault(), fault);
    }
}

/// The frontend facing a hostile backend.
fn hostile_backend(pages: usize, start: u32, steps: &[Step]) {
    let region = leak_pages(pages);
    init_shared(&region).unwrap();
    region
        .store_u32(RSP_PROD, start, Ordering::Relaxed)
        .unwrap();
    let mut front = Front::<Req, Rsp>::attach_at(region, start).unwrap();
    let size = front.size();
    let mut pushed = start;
    let mut fault: Option<Error> = None;
    for s in steps {
        let prod = region.load_u32(RSP_PROD, Ordering::Relaxed).unwrap();
        let max = pushed.wrapping_sub(front.rsp_cons());
        let expect = fault.or_else(|| {
            (prod.wrapping_sub(front.rsp_cons()) > max).then_some(Error::PeerOverflow {
                prod,
                cons: front.rsp_cons(),
                max,
            })
        });
        let before = front.rsp_cons();
        match s {
            Step::ProdRel(d) => {
                let v = (front.rsp_cons() as i64).wrapping_add(*d) as u32;
                region.store_u32(RSP_PROD, v, Ordering::Relaxed).unwrap();
                continue;
            }
            Step::Header(off, v) => {
                region.store_u32(*off, *v, Ordering::Relaxed).unwrap();
                continue;
            }
            Step::Scribble(off, b) => {
                region.write(*off % region.len(), b).unwrap();
                continue;
            }
            Step::Consume(n) => match front.responses() {
                Ok(it) => {
                    assert_eq!(expect, None);
                    let avail = it.len();
                    assert!(avail as u32 <= max);
                    assert_eq!(it.take(*n).count(), avail.min(*n));
                }
                Err(e) => assert_eq!(Some(e), expect),
            },
            Step::Produce(n) => {
                let free = front.free_requests() as usize;
                match front.produce_requests(&std::vec![req(1); *n]) {
                    Ok(k) => assert_eq!(k, free.min(*n)),
                    Err(e) => assert_eq!(Some(e), fault),
                }
            }
            Step::Push => match front.push_requests() {
                Ok(_) => pushed = front.req_prod_pvt(),
                Err(e) => assert_eq!(Some(e), fault),
            },
            Step::FinalCheck => match front.final_check_for_responses() {
                Ok(work) => {
                    assert_eq!(expect, None);
                    assert_eq!(work, prod != front.rsp_cons());
                }
                Err(e) => assert_eq!(Some(e), expect),
            },
        }
        assert!(front.rsp_cons().wrapping_sub(before) <= size);
        assert!(front.free_requests() <= size);
        if matches!(s, Step::Consume(_) | Step::FinalCheck) && expect.is_some() {
            fault = expect;
        }
        assert_eq!(front.fault(), fault);
    }
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(u32::MAX - 40), any::<u32>()]
}

proptest! {
    #[test]
    fn backend_survives_any_frontend(
        pages in prop_oneof![Just(1usize), Just(2), Just(4)],
        start in start_index(),
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        hostile_frontend(pages, start, &steps);
    }

    #[test]
    fn frontend_survives_any_backend(
        pages in prop_oneof![Just(1usize), Just(2), Just(4)],
        start in start_index(),
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        hostile_backend(pages, start, &steps);
    }

    /// Honest peers, random interleaving: entries arrive in order and
    /// intact, and a push never stays silent while the consumer sleeps
    /// (its final check said "no work").
    #[test]
    fn honest_peers_never_lose_a_wakeup(
        start in start_index(),
        ops in proptest::collection::vec(0u8..6, 0..400),
    ) {
        let (mut front, mut back) = attached_pair(1, start);
        let (mut back_asleep, mut front_asleep) = (false, false);
        let (mut sent, mut seen_req, mut answered, mut seen_rsp) = (0u32, 0u32, 0u32, 0u32);
        for op in ops {
            match op {
                0 => {
                    if front.produce_request(&big(sent)).is_ok() {
                        sent += 1;
                    }
                }
                1 => {
                    let new = front.req_prod_pvt() != front.region()
                        .load_u32(REQ_PROD, Ordering::Relaxed).unwrap();
                    let notify = front.push_requests().unwrap();
                    if back_asleep && new {
                        prop_assert!(notify, "lost wakeup of the backend");
                    }
                    if notify {
                        back_asleep = false;
                    }
                }
                2 => {
                    for r in back.requests().unwrap() {
                        prop_assert_eq!(r, big(seen_req));
                        seen_req += 1;
                    }
                    while back.produce_response(&big(answered)).is_ok() {
                        answered += 1;
                    }
                }
                3 => {
                    let new = back.rsp_prod_pvt() != back.region()
                        .load_u32(RSP_PROD, Ordering::Relaxed).unwrap();
                    let notify = back.push_responses().unwrap();
                    if front_asleep && new {
                        prop_assert!(notify, "lost wakeup of the frontend");
                    }
                    if notify {
                        front_asleep = false;
                    }
                }
                4 => {
                    if !back.final_check_for_requests().unwrap() {
                        back_asleep = true;
                    }
                }
                _ => {
                    while let Some(r) = front.consume_response().unwrap() {
                        prop_assert_eq!(r, big(seen_rsp));
                        seen_rsp += 1;
                    }
                    if !front.final_check_for_responses().unwrap() {
                        front_asleep = true;
                    }
                }
            }
        }
        prop_assert!(seen_rsp <= answered && answered <= seen_req && seen_req <= sent);
    }
}

/// A peer thread writes random words all over the page while the backend
/// and the frontend work: every call returns (Ok or a peer fault), nothing
/// panics, and a fault, once seen, sticks.
#[test]
fn concurrent_scribbler_cannot_break_either_end() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let region = leak_pages(1);
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let off = (x as usize % 1024) * 4;
                // Mostly small values near the indices, sometimes anything.
                let v = if x & 0x100 == 0 {
                    (x >> 40) as u32 % 70
                } else {
                    (x >> 32) as u32
                };
                region.store_u32(off, v, Ordering::Relaxed).unwrap();
            }
        })
    };
    for _ in 0..200 {
        let mut front = Front::<Req, Rsp>::init(region).unwrap();
        let mut back = Back::<Req, Rsp>::attach(region).unwrap();
        for i in 0..200u64 {
            let _ = front.produce_request(&req(i));
            let _ = front.push_requests();
            if let Ok(it) = back.requests() {
                assert!(it.len() <= 64);
                it.count();
            }
            let _ = back.produce_response(&rsp(i));
            let _ = back.push_responses();
            let _ = back.final_check_for_requests();
            if let Ok(it) = front.responses() {
                assert!(it.len() <= 64);
                it.count();
            }
            let _ = front.final_check_for_responses();
            if let Some(e) = back.fault() {
                assert_eq!(back.unconsumed_requests(), Err(e));
            }
            if let Some(e) = front.fault() {
                assert_eq!(front.unconsumed_responses(), Err(e));
            }
            assert!(front.free_requests() <= 64 && back.pending_responses() <= 64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
}

/// An event channel for the threaded test: a counter the notifier bumps
/// and the waiter watches, yielding. A lost wakeup shows as a stall.
struct Evtchn(std::sync::atomic::AtomicU32);

impl Evtchn {
    fn notify(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Waits until a notification newer than `seen` arrives; false after
    /// 10 s without one.
    fn wait(&self, seen: &mut u32) -> bool {
        let t0 = std::time::Instant::now();
        loop {
            let now = self.0.load(Ordering::Acquire);
            if now != *seen {
                *seen = now;
                return true;
            }
            if t0.elapsed() > std::time::Duration::from_secs(10) {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

/// Both ends on two threads, sleeping only when their final check says so
/// and woken only by the other's notify decision: 200,000 requests go
/// through with no stall (no lost wakeup) and intact, in order.
#[test]
fn two_threads_stream_without_lost_wakeups() {
    use std::sync::Arc;

    const N: u64 = 200_000;
    let region = leak_pages(1);
    let to_back = Arc::new(Evtchn(0.into()));
    let to_front = Arc::new(Evtchn(0.into()));
    let mut front = Front::<Req, Rsp>::init(region).unwrap();
    let backend = {
        let (to_back, to_front) = (Arc::clone(&to_back), Arc::clone(&to_front));
        std::thread::spawn(move || {
            let mut back = Back::<Req, Rsp>::attach(region).unwrap();
            let (mut done, mut seen) = (0u64, 0u32);
            while done < N {
                for r in back.requests().unwrap() {
                    assert_eq!(r, req(done));
                    done += 1;
                }
                while back
                    .produce_response(&rsp(back.rsp_prod_pvt() as u64))
                    .is_ok()
                {}
                if back.push_responses().unwrap() {
                    to_front.notify();
                }
                if !back.final_check_for_requests().unwrap() && done < N {
                    assert!(to_back.wait(&mut seen), "backend stalled at {done}");
                }
            }
        })
    };
    let (mut sent, mut got, mut seen) = (0u64, 0u64, 0u32);
    while got < N {
        while sent < N && front.produce_request(&req(sent)).is_ok() {
            sent += 1;
        }
        if front.push_requests().unwrap() {
            to_back.notify();
        }
        let mut progress = false;
        loop {
            for r in front.responses().unwrap() {
                assert_eq!(r, rsp(got));
                got += 1;
                progress = true;
            }
            if !front.final_check_for_responses().unwrap() {
                break;
            }
        }
        if !progress && got < N && (sent == N || front.is_full()) {
            assert!(to_front.wait(&mut seen), "frontend stalled at {got}");
        }
    }
    backend.join().unwrap();
}
