//! Both data paths over one ring in private memory, with a loopback
//! channel: ids, batching, deferral, the in-flight rule and the pool.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;

use super::*;
use crate::evtchn::{self, Port, Status};
use crate::ring::compat;
use crate::shm::leak_pages;

#[xenmq::message]
#[derive(Debug)]
pub struct Req {
    pub id: u64,
    pub op: u32,
    pub slot: u32,
    pub val: u64,
}

#[xenmq::message]
#[derive(Debug)]
pub struct Rsp {
    pub id: u64,
    pub val: u64,
}

#[xenmq::protocol(name = "test", version = 3, request = Req, response = Rsp, pool_pages = 2)]
pub struct Test;

/// One end of an in-process channel: `notify` sets the peer's flag.
struct Loop {
    mine: Rc<Cell<u32>>,
    theirs: Rc<Cell<u32>>,
}

fn pair() -> (Loop, Loop) {
    let a = Rc::new(Cell::new(0));
    let b = Rc::new(Cell::new(0));
    (
        Loop {
            mine: a.clone(),
            theirs: b.clone(),
        },
        Loop { mine: b, theirs: a },
    )
}

impl evtchn::Channel for Loop {
    fn port(&self) -> Port {
        1
    }
    fn notify(&self) -> Result<(), evtchn::Error> {
        self.theirs.set(self.theirs.get() + 1);
        Ok(())
    }
    fn poll(&self) -> Result<bool, evtchn::Error> {
        Ok(self.mine.replace(0) > 0)
    }
    fn wait(&self, _timeout: Option<Duration>) -> Result<bool, evtchn::Error> {
        self.poll()
    }
    fn status(&self) -> Result<Status, evtchn::Error> {
        Ok(Status::Interdomain {
            remote: 0,
            remote_port: 1,
        })
    }
}

/// Doubles every value; op 1 defers, op 2 writes the value into the slot.
#[derive(Default)]
struct Doubler {
    later: Vec<(Ticket, u64)>,
    connected: bool,
}

impl Backend for Doubler {
    type Protocol = Test;
    fn handle(&mut self, req: Req, io: &mut Io<'_, Test>) -> Reply<Rsp> {
        match req.op {
            1 => match io.defer() {
                Ok(t) => {
                    self.later.push((io.defer().unwrap(), req.val));
                    Reply::Later(t)
                }
                Err(_) => Reply::Now(Rsp { id: 0, val: 0 }),
            },
            2 => {
                let ok = io.write(req.slot, 8, &req.val.to_le_bytes()).is_ok();
                Reply::Now(Rsp {
                    id: 0,
                    val: u64::from(ok),
                })
            }
            _ => Reply::Now(Rsp {
                id: 12345,
                val: req.val * 2,
            }),
        }
    }
    fn poll(&mut self, done: &mut Completer<'_, Test>) {
        // Answer deferred requests newest first.
        while let Some((t, v)) = self.later.pop() {
            done.complete(t, Rsp { id: 0, val: v + 1 }).unwrap();
        }
    }
    fn connect(&mut self, _peer: &NoConfig) -> Result<(), Refused> {
        self.connected = true;
        Ok(())
    }
}

fn connect() -> (Client<Test, Loop>, Server<Test, Loop>, crate::shm::Region) {
    let region = leak_pages(1);
    let pool = Pool::new(leak_pages(2));
    let (fc, bc) = pair();
    let mut client = Client::new();
    client.set_spin(0);
    client.attach(compat::Front::init(region).unwrap(), fc, Some(pool));
    let mut server = Server::new();
    server.set_spin(0);
    server.attach(compat::Back::attach(region).unwrap(), bc, Some(pool));
    (client, server, region)
}

#[test]
fn protocol_constants() {
    assert_eq!(Test::NAME, "test");
    assert_eq!(Test::VERSION, 3);
    assert_eq!(Test::RING_PAGE_ORDER, 0);
    assert_eq!(Test::POOL_PAGES, 2);
    assert_eq!(
        Test::FINGERPRINT,
        crate::wire::combine_fingerprints(&[
            <Req as crate::wire::Message>::FINGERPRINT,
            <Rsp as crate::wire::Message>::FINGERPRINT
        ])
    );
    let id = Test::identity();
    assert_eq!((id.name.as_str(), id.version), ("test", 3));
}

#[test]
fn a_batch_is_answered_with_the_ids_of_its_requests() {
    let (mut c, mut s, _) = connect();
    let mut b = Doubler::default();
    let tags: Vec<Tag> = (0..10)
        .map(|v| {
            c.queue(
                Req {
                    id: 999,
                    op: 0,
                    slot: 0,
                    val: v,
                },
                None,
            )
            .unwrap()
        })
        .collect();
    c.flush().unwrap();
    assert_eq!(c.in_flight(), 10);
    assert_eq!(s.serve(&mut b).unwrap(), 10);
    assert_eq!(s.served(), 10);
    for (v, tag) in tags.iter().enumerate() {
        let done = c.poll().unwrap().unwrap();
        assert_eq!(done.tag, *tag);
        assert_eq!(done.result.unwrap().val, v as u64 * 2);
    }
    assert!(c.poll().unwrap().is_none());
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.stray_responses(), 0);
}

#[test]
fn deferred_answers_complete_out_of_order() {
    let (mut c, mut s, _) = connect();
    let mut b = Doubler::default();
    let t1 = c
        .submit(Req {
            id: 0,
            op: 1,
            slot: 0,
            val: 10,
        })
        .unwrap();
    let t2 = c
        .submit(Req {
            id: 0,
            op: 1,
            slot: 0,
            val: 20,
        })
        .unwrap();
    s.serve(&mut b).unwrap();
    // Newest first: t2's answer comes first, and each finds its request.
    assert_eq!(c.take(t1).unwrap().unwrap().result.unwrap().val, 11);
    assert_eq!(c.poll().unwrap().unwrap().tag, t2);
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_disconnect_fails_what_is_in_flight_once() {
    let (mut c, mut s, _) = connect();
    let lease = c.lease().unwrap();
    let t1 = c
        .submit_with(
            Req {
                id: 0,
                op: 0,
                slot: lease.slot(),
                val: 1,
            },
            lease,
        )
        .unwrap();
    let t2 = c
        .submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 2,
        })
        .unwrap();
    let (lost, chan) = c.detach();
    assert_eq!(lost, 2);
    assert!(chan.is_some());
    let a = c.poll().unwrap().unwrap();
    let b = c.poll().unwrap().unwrap();
    assert_eq!((a.tag, b.tag), (t1, t2));
    assert_eq!(a.result.unwrap_err(), Error::Disconnected);
    assert_eq!(b.result.unwrap_err(), Error::Disconnected);
    assert!(a.lease.is_some(), "the buffer comes back");
    assert!(c.poll().unwrap().is_none(), "never twice");
    // The backend answering after the disconnect reaches no one.
    let mut d = Doubler::default();
    s.serve(&mut d).unwrap();
    assert_eq!(
        c.submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 0
        }),
        Err(Error::NotConnected)
    );
}

#[test]
fn forged_and_repeated_responses_are_strays() {
    let (mut c, _s, region) = connect();
    let tag = c
        .submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 5,
        })
        .unwrap();
    // A hostile backend answers our one request three times: the right id,
    // the same id again, and an invented one.
    let mut evil = compat::Back::<Req, Rsp>::attach(region).unwrap();
    evil.consume_request().unwrap().unwrap();
    evil.produce_response(&Rsp {
        id: tag.id(),
        val: 1,
    })
    .unwrap();
    evil.push_responses().unwrap();
    assert_eq!(c.poll().unwrap().unwrap().tag, tag);
    // Claiming more responses than requests faults the ring: the hostile
    // peer cannot make us complete anything twice.
    region
        .store_u32(8, 3, crate::sync::Ordering::Release)
        .unwrap();
    assert!(matches!(c.poll(), Err(Error::Ring(_))));
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn a_stale_id_is_counted_not_completed() {
    let (mut c, _s, region) = connect();
    let t1 = c
        .submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 5,
        })
        .unwrap();
    let _t2 = c
        .submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 6,
        })
        .unwrap();
    let mut evil = compat::Back::<Req, Rsp>::attach(region).unwrap();
    evil.consume_request().unwrap();
    evil.consume_request().unwrap();
    evil.produce_response(&Rsp {
        id: t1.id(),
        val: 1,
    })
    .unwrap();
    evil.produce_response(&Rsp {
        id: t1.id(),
        val: 2,
    })
    .unwrap();
    evil.push_responses().unwrap();
    assert_eq!(c.poll().unwrap().unwrap().tag, t1);
    assert!(c.poll().unwrap().is_none());
    assert_eq!(c.stray_responses(), 1);
    assert_eq!(c.in_flight(), 1, "the other request is still waiting");
}

#[test]
fn the_pool_carries_data_and_checks_slots() {
    let (mut c, mut s, _) = connect();
    let mut b = Doubler::default();
    let lease = c.lease().unwrap();
    let other = c.lease().unwrap();
    assert_eq!(c.lease().unwrap_err(), Error::NoBuffer(2));
    c.write(&lease, 0, b"in place").unwrap();
    let slot = lease.slot();
    let tag = c
        .submit_with(
            Req {
                id: 0,
                op: 2,
                slot,
                val: 0x1122,
            },
            lease,
        )
        .unwrap();
    let bad = c
        .submit(Req {
            id: 0,
            op: 2,
            slot: 7,
            val: 1,
        })
        .unwrap();
    s.serve(&mut b).unwrap();
    let done = c.take(tag).unwrap().unwrap();
    assert_eq!(done.result.unwrap().val, 1);
    let lease = done.lease.unwrap();
    let mut out = [0u8; 16];
    c.read(&lease, 0, &mut out).unwrap();
    assert_eq!(&out[..8], b"in place");
    assert_eq!(u64::from_le_bytes(out[8..].try_into().unwrap()), 0x1122);
    assert_eq!(c.take(bad).unwrap().unwrap().result.unwrap().val, 0);
    assert!(matches!(
        c.write(&lease, SLOT_SIZE - 1, b"xy"),
        Err(Error::BufferBounds { .. })
    ));
    c.release(lease);
    c.release(other);
    assert!(c.lease().is_ok());
}

#[test]
fn tickets_die_with_their_connection() {
    let (mut c, mut s, _) = connect();
    struct Keep(Option<Ticket>);
    impl Backend for Keep {
        type Protocol = Test;
        fn handle(&mut self, _req: Req, io: &mut Io<'_, Test>) -> Reply<Rsp> {
            let t = io.defer().unwrap();
            self.0 = Some(io.defer().unwrap());
            Reply::Later(t)
        }
    }
    let mut k = Keep(None);
    c.submit(Req {
        id: 0,
        op: 0,
        slot: 0,
        val: 0,
    })
    .unwrap();
    s.serve(&mut k).unwrap();
    assert_eq!(s.pending(), 1);
    let chan = s.detach().unwrap();
    let region = leak_pages(1);
    compat::Front::<Req, Rsp>::init(region).unwrap();
    s.attach(compat::Back::attach(region).unwrap(), chan, None);
    struct Late(Option<Ticket>, Option<Error>);
    impl Backend for Late {
        type Protocol = Test;
        fn handle(&mut self, _req: Req, _io: &mut Io<'_, Test>) -> Reply<Rsp> {
            Reply::Now(Rsp { id: 0, val: 0 })
        }
        fn poll(&mut self, done: &mut Completer<'_, Test>) {
            if let Some(t) = self.0.take() {
                self.1 = done.complete(t, Rsp { id: 0, val: 0 }).err();
            }
        }
    }
    let mut late = Late(k.0.take(), None);
    s.serve(&mut late).unwrap();
    assert!(matches!(late.1, Some(Error::UnknownTicket(_))));
}

#[test]
fn spin_budget_adapts() {
    let mut spin = Spin::new(64);
    assert_eq!(spin.budget(), 16);
    assert!(!spin.run(|| Ok(false)).unwrap());
    assert_eq!(spin.budget(), 8);
    for _ in 0..8 {
        assert!(!spin.run(|| Ok(false)).unwrap());
    }
    assert_eq!(spin.budget(), 4, "never below a sixteenth");
    spin.hit();
    let mut n = 0;
    assert!(spin
        .run(|| {
            n += 1;
            Ok(n == 3)
        })
        .unwrap());
    assert_eq!(spin.budget(), 16);

    let mut fixed = Spin::fixed(5);
    let mut n = 0;
    assert!(!fixed
        .run(|| {
            n += 1;
            Ok(false)
        })
        .unwrap());
    assert_eq!((n, fixed.budget()), (5, 5), "a miss keeps a fixed budget");
    assert!(fixed.run(|| Ok(true)).unwrap());
    assert_eq!(fixed.budget(), 5, "a hit keeps a fixed budget");
    assert_eq!(Spin::fixed(0).budget(), 0);
}

/// A long batch is published every quarter ring by both ends, so that the
/// peer can start on it: the client without waiting for `flush`, the
/// server before the batch is over. Fewer stay private until then.
#[test]
fn long_batches_are_published_every_quarter_ring() {
    use crate::sync::Ordering::Relaxed;
    let (mut c, mut s, region) = connect();
    let size = crate::ring::compat::Layout::new::<Req, Rsp>(4096)
        .unwrap()
        .size;
    let quarter = size / 4;
    assert!(quarter > 1);
    let req = |val| Req {
        id: 0,
        op: 0,
        slot: 0,
        val,
    };
    // req_prod is at offset 0 of a ring.h header, rsp_prod at 8.
    for v in 0..u64::from(quarter) - 1 {
        c.queue(req(v), None).unwrap();
    }
    assert_eq!(region.load_u32(0, Relaxed).unwrap(), 0, "not yet");
    c.queue(req(99), None).unwrap();
    assert_eq!(region.load_u32(0, Relaxed).unwrap(), quarter);
    c.queue(req(100), None).unwrap();
    assert_eq!(region.load_u32(0, Relaxed).unwrap(), quarter);
    c.flush().unwrap();
    assert_eq!(region.load_u32(0, Relaxed).unwrap(), quarter + 1);

    /// Answers, noting the published rsp_prod each request finds.
    struct Peek {
        region: crate::shm::Region,
        seen: Vec<u32>,
    }
    impl Backend for Peek {
        type Protocol = Test;
        fn handle(&mut self, req: Req, _io: &mut Io<'_, Test>) -> Reply<Rsp> {
            self.seen.push(self.region.load_u32(8, Relaxed).unwrap());
            Reply::Now(Rsp {
                id: 0,
                val: req.val,
            })
        }
    }
    let mut peek = Peek {
        region,
        seen: Vec::new(),
    };
    assert_eq!(s.serve(&mut peek).unwrap(), quarter as usize + 1);
    let q = quarter as usize;
    assert!(peek.seen[..q].iter().all(|&p| p == 0), "{:?}", peek.seen);
    assert_eq!(
        peek.seen[q], quarter,
        "the first quarter went out mid-batch"
    );
    assert_eq!(region.load_u32(8, Relaxed).unwrap(), quarter + 1);
    let mut n = 0;
    while c.poll().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, quarter + 1);
}

#[test]
fn poll_each_hands_over_every_completion_and_takes_leases_back() {
    let (mut c, mut s, region) = connect();
    let mut b = Doubler::default();
    // Two requests with the pool's two buffers, one without.
    let mut tags = Vec::new();
    for val in 0..2u64 {
        let lease = c.lease().unwrap();
        let req = Req {
            id: 0,
            op: 0,
            slot: lease.slot(),
            val,
        };
        tags.push(c.submit_with(req, lease).unwrap());
    }
    tags.push(
        c.submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val: 7,
        })
        .unwrap(),
    );
    assert_eq!(c.lease().unwrap_err(), Error::NoBuffer(2));
    s.serve(&mut b).unwrap();
    let mut seen = Vec::new();
    let n = c
        .poll_each(|done| {
            seen.push((done.tag, done.result.as_ref().map(|r| r.val).ok()));
            // Give back the first buffer only.
            if seen.len() == 1 {
                done.lease
            } else {
                // Kept: not given back (the pool stays one short).
                None
            }
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        seen,
        [(tags[0], Some(0)), (tags[1], Some(2)), (tags[2], Some(14))]
    );
    assert_eq!(c.in_flight(), 0);
    // One buffer came back through the closure, one was kept.
    let lease = c.lease().unwrap();
    assert_eq!(c.lease().unwrap_err(), Error::NoBuffer(2));
    assert_eq!(c.poll_each(|_| None).unwrap(), 0, "nothing twice");

    // A stray is counted, not handed over.
    let sub = |c: &mut Client<Test, Loop>, val| {
        c.submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val,
        })
        .unwrap()
    };
    let (t, _u) = (sub(&mut c, 1), sub(&mut c, 2));
    let mut evil = compat::Back::<Req, Rsp>::attach_at(region, 3).unwrap();
    evil.consume_request().unwrap().unwrap();
    evil.consume_request().unwrap().unwrap();
    for val in [9, 10] {
        evil.produce_response(&Rsp { id: t.id(), val }).unwrap();
    }
    evil.push_responses().unwrap();
    let mut got = Vec::new();
    let n = c.poll_each(|d| {
        got.push((d.tag, d.result.map(|r| r.val).ok()));
        d.lease
    });
    assert_eq!(n, Ok(1));
    assert_eq!(got, [(t, Some(9))]);
    assert_eq!(c.stray_responses(), 1);
    assert_eq!(c.in_flight(), 1, "the other request is still waiting");
    // Now more responses than requests: the ring faults.
    region
        .store_u32(8, 10, crate::sync::Ordering::Release)
        .unwrap();
    assert!(matches!(c.poll_each(|d| d.lease), Err(Error::Ring(_))));
    c.release(lease);
}

#[test]
fn poll_each_delivers_queued_completions_before_a_deferred_failure() {
    let (mut c, _s, _) = connect();
    for val in 0..2 {
        c.submit(Req {
            id: 0,
            op: 0,
            slot: 0,
            val,
        })
        .unwrap();
    }
    let (lost, _) = c.detach();
    assert_eq!(lost, 2);
    let mut failed = 0;
    let n = c
        .poll_each(|d| {
            failed += usize::from(matches!(d.result, Err(Error::Disconnected)));
            d.lease
        })
        .unwrap();
    assert_eq!((n, failed), (2, 2));
    assert_eq!(c.poll_each(|d| d.lease), Ok(0));
}
