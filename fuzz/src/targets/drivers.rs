//! A hostile frontend against every example driver's request validation,
//! through the real [`Server`]: the input picks the driver (echo, vkv, the
//! block device) and fills requests with any bytes (ids, opcodes, lengths,
//! sectors, buffer slots), between scribbles on the ring's indices and the
//! buffer pool, and the server serves them. Nothing may panic; a batch
//! takes at most a ring of requests; every answer is for a request taken;
//! the block device never grows its disk.

use std::cell::Cell;
use std::fs::File;
use std::time::Duration;

use xenmq::driver::{BackRingOf, Backend, FrontRingOf, Pool, Protocol, Server};
use xenmq::evtchn::{self, Channel, Port, Status};
use xenmq::ring::{BackSide, FrontSide};
use xenmq::sync::Ordering;
use xenmq_examples::{blk, echo, vkv};
use zerocopy::FromBytes;

use crate::harness::{Input, Pages};

/// The backend's end of an event channel whose peer is this target: it
/// counts notifications; the server never needs to sleep here.
#[derive(Default)]
struct Port0 {
    sent: Cell<u64>,
}

impl Channel for Port0 {
    fn port(&self) -> Port {
        1
    }
    fn notify(&self) -> Result<(), evtchn::Error> {
        self.sent.set(self.sent.get() + 1);
        Ok(())
    }
    fn poll(&self) -> Result<bool, evtchn::Error> {
        Ok(false)
    }
    fn wait(&self, _timeout: Option<Duration>) -> Result<bool, evtchn::Error> {
        Ok(false)
    }
    fn status(&self) -> Result<Status, evtchn::Error> {
        Ok(Status::Closed)
    }
}

fn serve<P: Protocol, B: Backend<Protocol = P>>(
    input: &mut Input<'_>,
    mut driver: B,
) -> Option<()> {
    let ring_pages = Pages::new(1usize << P::RING_PAGE_ORDER);
    let pool_pages = Pages::new((P::POOL_PAGES as usize).max(1));
    let ring = ring_pages.region();
    let mut front = FrontRingOf::<P>::init(ring).expect("a ring");
    let back = BackRingOf::<P>::attach(ring).expect("a ring");
    let pool = (P::POOL_PAGES > 0).then(|| Pool::new(pool_pages.region()));
    let mut server = Server::<P, Port0>::new();
    server.attach(back, Port0::default(), pool);
    let size = front.size();
    let mut taken = 0u64;
    while let Some(op) = input.byte() {
        match op % 6 {
            // Requests of any bytes.
            0..=2 => {
                for _ in 0..input.byte()? % 8 {
                    let bytes = input.bytes(size_of::<P::Request>())?;
                    let mut whole = vec![0u8; size_of::<P::Request>()];
                    whole[..bytes.len()].copy_from_slice(bytes);
                    let req = P::Request::read_from_bytes(&whole).expect("the size of a request");
                    if front.produce_request(&req).is_err() {
                        break;
                    }
                }
                let _ = front.push_requests();
            }
            // The peer scribbles a ring word or a pool byte.
            3 => {
                let off = usize::from(input.byte()? % 16) * 4;
                ring.store_u32(off, input.word()?, Ordering::Relaxed)
                    .expect("in the header");
            }
            4 => {
                let r = pool_pages.region();
                let off = usize::from(input.u16()?) % r.len();
                r.write(off, &input.byte()?).expect("in the pool");
            }
            _ => while let Ok(Some(_)) = front.consume_response() {},
        }
        match server.serve(&mut driver) {
            Ok(n) => {
                assert!(
                    n as u32 <= size,
                    "a batch took {n} requests of a {size}-slot ring"
                );
                taken += n as u64;
            }
            // A peer fault stops the data path for good: nothing more to do.
            Err(e) if e.is_fatal() => break,
            Err(_) => {}
        }
    }
    assert!(server.served() <= taken, "answered more than was asked");
    Some(())
}

fn disk() -> File {
    let fd = xenmq_sys::memfd(c"xenmq-fuzz-disk", 64 * 512, xenmq_sys::MemfdFlags::CLOEXEC)
        .expect("a memfd");
    File::from(fd)
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    match input.byte()? % 3 {
        0 => serve::<echo::Echo, _>(&mut input, echo::EchoBack::default()),
        1 => serve::<vkv::Vkv, _>(&mut input, vkv::KvBack::default()),
        _ => {
            let file = disk();
            let size = file.metadata().expect("metadata").len();
            let disk =
                blk::FileDisk::new(file.try_clone().expect("a second handle")).expect("a disk");
            serve::<blk::Blk, _>(&mut input, disk);
            assert_eq!(
                file.metadata().expect("metadata").len(),
                size,
                "the disk grew"
            );
            Some(())
        }
    }
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
