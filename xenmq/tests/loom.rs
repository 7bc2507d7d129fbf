//! The ring indices and notification protocol of both layouts under loom:
//! every interleaving of a frontend and a backend thread (to a preemption
//! bound), with loom's weak memory for the shared page. Run by
//! `scripts/loom.sh` (`RUSTFLAGS="--cfg loom"`).
//!
//! Each model starts from a ring that has already carried one entry, which
//! the consumer took before re-arming (so the event index is no longer its
//! initial 1, which makes the first notification a certainty). Then a
//! producer publishes two more entries, one push each, and notes whether
//! each push said to notify, while the consumer drains the ring and
//! re-arms it (`final_check_for_*`) until it would sleep. Two properties:
//! - no lost wake-up: a consumer that goes to sleep without every entry
//!   was told by the push that published the first one it lacks, or a
//!   later one, to expect a notification;
//! - no stale entry: every entry consumed holds what the producer wrote
//!   (the index publication orders the copy).
#![cfg(loom)]

use loom::thread;
use xenmq::ring::{native, BackSide, Compat, FrontSide, Native, Rings};
use xenmq::shm::Region;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Msg {
    id: u32,
    check: u32,
}

fn msg(id: u32) -> Msg {
    Msg {
        id,
        check: id.wrapping_mul(0x9e37_79b9),
    }
}

/// Entries each model publishes, after the first.
const N: u32 = 2;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // Deep enough for every ordering of the two sides' publish, re-arm and
    // re-check steps; the state space grows steeply past it.
    b.preemption_bound = Some(3);
    b.check(f);
}

/// What a consumer saw before it would sleep, against what each push said.
fn drained(got: &[Msg], notified: &[bool]) {
    for (i, m) in got.iter().enumerate() {
        assert_eq!(*m, msg(i as u32 + 1), "entry {i} read stale or torn");
    }
    let k = got.len();
    assert!(
        k == N as usize || notified[k..].iter().any(|&n| n),
        "lost wake-up: the consumer sleeps with {k} of {N} entries, pushes said {notified:?}"
    );
}

/// Publishes entries 1..=N one push each; what each push said.
fn publish<E>(end: &mut E, put: fn(&mut E, &Msg), push: fn(&mut E) -> bool) -> Vec<bool> {
    (1..=N)
        .map(|id| {
            put(end, &msg(id));
            push(end)
        })
        .collect()
}

/// Drains with `next` and re-arms with `recheck` until it would sleep.
fn consume<E>(
    end: &mut E,
    next: fn(&mut E) -> Option<Msg>,
    recheck: fn(&mut E) -> bool,
) -> Vec<Msg> {
    let mut got = Vec::new();
    loop {
        while let Some(m) = next(end) {
            got.push(m);
        }
        if !recheck(end) {
            return got;
        }
    }
}

/// The producer publishes requests while the backend drains and re-arms.
fn requests<R: Rings>(len: usize)
where
    R::Back<Msg, Msg>: Send + 'static,
{
    model(move || {
        let region = Region::model(len);
        let mut front = R::Front::<Msg, Msg>::init(region).unwrap();
        let mut back = R::Back::<Msg, Msg>::attach(region).unwrap();
        front.produce_request(&msg(0)).unwrap();
        let _ = front.push_requests().unwrap();
        assert_eq!(back.consume_request().unwrap(), Some(msg(0)));
        assert!(!back.final_check_for_requests().unwrap());
        let consumer = thread::spawn(move || {
            consume(
                &mut back,
                |b| b.consume_request().unwrap(),
                |b| b.final_check_for_requests().unwrap(),
            )
        });
        let said = publish(
            &mut front,
            |f, m| f.produce_request(m).unwrap(),
            |f| f.push_requests().unwrap(),
        );
        drained(&consumer.join().unwrap(), &said);
    });
}

/// The backend publishes responses while the frontend drains and re-arms.
fn responses<R: Rings>(len: usize)
where
    R::Front<Msg, Msg>: Send + 'static,
{
    model(move || {
        let region = Region::model(len);
        let mut front = R::Front::<Msg, Msg>::init(region).unwrap();
        let mut back = R::Back::<Msg, Msg>::attach(region).unwrap();
        for id in 0..=N {
            front.produce_request(&msg(id)).unwrap();
        }
        let _ = front.push_requests().unwrap();
        while back.consume_request().unwrap().is_some() {}
        back.produce_response(&msg(0)).unwrap();
        let _ = back.push_responses().unwrap();
        assert_eq!(front.consume_response().unwrap(), Some(msg(0)));
        assert!(!front.final_check_for_responses().unwrap());
        let consumer = thread::spawn(move || {
            consume(
                &mut front,
                |f| f.consume_response().unwrap(),
                |f| f.final_check_for_responses().unwrap(),
            )
        });
        let said = publish(
            &mut back,
            |b, m| b.produce_response(m).unwrap(),
            |b| b.push_responses().unwrap(),
        );
        drained(&consumer.join().unwrap(), &said);
    });
}

/// A ring.h ring is one page.
const COMPAT_LEN: usize = 4096;

/// The smallest area the native layout puts four slots in: few model words.
fn native_len() -> usize {
    (64..=4096)
        .step_by(64)
        .find(|&l| native::Layout::new::<Msg, Msg>(l).is_ok_and(|x| x.slots() >= 4))
        .unwrap()
}

#[test]
fn compat_requests_are_seen_or_notified() {
    requests::<Compat>(COMPAT_LEN);
}

#[test]
fn compat_responses_are_seen_or_notified() {
    responses::<Compat>(COMPAT_LEN);
}

#[test]
fn native_requests_are_seen_or_notified() {
    requests::<Native>(native_len());
}

#[test]
fn native_responses_are_seen_or_notified() {
    responses::<Native>(native_len());
}
