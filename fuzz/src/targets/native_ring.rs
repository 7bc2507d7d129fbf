//! A hostile peer against both ends of a native ring (`xenmq::ring::native`):
//! the input is the peer's writes (index words, entry bytes) interleaved
//! with our operations, for both slot arrangements.

use xenmq::ring::native::{Back, Front, Slots};
use xenmq::sync::Ordering;

use crate::harness::{Input, Pages};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Req {
    id: u64,
    body: [u8; 56],
}

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Rsp {
    id: u64,
    status: u64,
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let pages = 1usize << (input.byte()? % 3);
    let slots = if input.byte()? % 2 == 0 {
        Slots::Shared
    } else {
        Slots::Split
    };
    let mem = Pages::new(pages);
    let region = mem.region();
    let mut front = Front::<Req, Rsp>::init_with(region, slots).unwrap();
    let mut back = Back::<Req, Rsp>::attach_with(region, slots).unwrap();
    let size = front.size();
    let req = Req {
        id: 0,
        body: [0; 56],
    };
    let rsp = Rsp { id: 0, status: 0 };
    while let Some(op) = input.byte() {
        match op % 10 {
            // The peer: any index word (each on its own line), entry bytes.
            0 => {
                let off = (input.byte()? % 4) as usize * 64;
                region
                    .store_u32(off, input.word()?, Ordering::Relaxed)
                    .unwrap();
            }
            1 => {
                let off =
                    (u16::from_le_bytes([input.byte()?, input.byte()?]) as usize) % region.len();
                region.write(off, &input.byte()?).unwrap();
            }
            // Our side: every operation; a consumer loop ends, whatever the
            // peer wrote: the backend answers as it goes, so it may finish
            // a cached batch and then take one more ring's worth from a
            // newer index, never more.
            2 => {
                let mut n = 0;
                while let Ok(Some(_)) = back.consume_request() {
                    n += 1;
                    assert!(
                        n <= 2 * size,
                        "backend took more than two rings of requests"
                    );
                    if back.produce_response(&rsp).is_err() {
                        break;
                    }
                }
            }
            3 => {
                let mut n = 0;
                while let Ok(Some(_)) = front.consume_response() {
                    n += 1;
                    assert!(n <= size, "frontend took more than a ring of responses");
                }
            }
            4 => {
                let _ = back.final_check_for_requests();
            }
            5 => {
                let _ = front.final_check_for_responses();
            }
            6 => {
                for _ in 0..input.byte()? {
                    if front.produce_request(&req).is_err() {
                        break;
                    }
                }
                let _ = front.push_requests();
            }
            7 => {
                let _ = back.push_responses();
            }
            8 => {
                let _ = back.has_requests();
            }
            _ => {
                let _ = front.has_responses();
            }
        }
        assert!(front.free_requests() <= size);
    }
    drop(mem);
    Some(())
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
