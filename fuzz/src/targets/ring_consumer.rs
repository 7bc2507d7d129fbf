//! A hostile peer against both ends of a ring: the input is the peer's
//! writes (header words, entry bytes) interleaved with our operations.

use xenmq::ring::{self, compat, Error};
use xenmq::sync::Ordering;

use crate::harness::{Input, Pages};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Req {
    id: u64,
    body: [u8; 24],
}

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Rsp {
    id: u32,
    status: i32,
    body: [u8; 120],
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let pages = 1usize << (input.byte()? % 3);
    let start = input.word()?;
    let mem = Pages::new(pages);
    let region = mem.region();
    ring::compat::init_shared(&region).unwrap();
    for off in [0, 8] {
        region.store_u32(off, start, Ordering::Relaxed).unwrap();
    }
    let mut front = compat::Front::<Req, Rsp>::attach_at(region, start).unwrap();
    let mut back = compat::Back::<Req, Rsp>::attach_at(region, start).unwrap();
    let size = front.size();
    let zero_req = Req {
        id: 0,
        body: [0; 24],
    };
    let zero_rsp = Rsp {
        id: 0,
        status: 0,
        body: [0; 120],
    };
    let (mut front_fault, mut back_fault): (Option<Error>, Option<Error>) = (None, None);
    while let Some(op) = input.byte() {
        let (f0, b0) = (front.rsp_cons(), back.req_cons());
        match op % 12 {
            // The peer: any word of the header, indices near ours, entry bytes.
            0 => {
                let off = (input.byte()? % 16) as usize * 4;
                region
                    .store_u32(off, input.word()?, Ordering::Relaxed)
                    .unwrap();
            }
            1 => {
                let v = back.req_cons().wrapping_add(input.byte()? as i8 as u32);
                region.store_u32(0, v, Ordering::Relaxed).unwrap();
            }
            2 => {
                let v = front.rsp_cons().wrapping_add(input.byte()? as i8 as u32);
                region.store_u32(8, v, Ordering::Relaxed).unwrap();
            }
            3 => {
                let off =
                    (u16::from_le_bytes([input.byte()?, input.byte()?]) as usize) % region.len();
                region.write(off, &input.byte()?).unwrap();
            }
            // Our side: every consumer and producer operation.
            4 => {
                if let Ok(it) = back.requests() {
                    assert!(it.len() as u32 <= size);
                    it.take(input.byte()? as usize).for_each(drop);
                }
            }
            5 => {
                if let Ok(it) = front.responses() {
                    assert!(it.len() as u32 <= size);
                    it.take(input.byte()? as usize).for_each(drop);
                }
            }
            6 => {
                let _ = back.final_check_for_requests();
            }
            7 => {
                let _ = front.final_check_for_responses();
            }
            8 => {
                let n = input.byte()? as usize;
                let _ = back.produce_responses(&vec![zero_rsp; n]);
                let _ = back.push_responses();
            }
            9 => {
                let n = input.byte()? as usize;
                let _ = front.produce_requests(&vec![zero_req; n]);
                let _ = front.push_requests();
            }
            10 => {
                let _ = back.consume_request();
            }
            _ => {
                let _ = front.consume_response();
            }
        }
        // Bounded work, consistent private state, sticky faults.
        assert!(front.rsp_cons().wrapping_sub(f0) <= size);
        assert!(back.req_cons().wrapping_sub(b0) <= size);
        assert!(front.free_requests() <= size);
        assert!(back.pending_responses() <= size);
        for (fault, now) in [
            (&mut front_fault, front.fault()),
            (&mut back_fault, back.fault()),
        ] {
            if let Some(e) = *fault {
                assert_eq!(now, Some(e));
            }
            *fault = now;
        }
        if let Some(e) = back_fault {
            assert_eq!(back.unconsumed_requests(), Err(e));
        }
        if let Some(e) = front_fault {
            assert_eq!(front.unconsumed_responses(), Err(e));
        }
    }
    drop(mem);
    Some(())
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
